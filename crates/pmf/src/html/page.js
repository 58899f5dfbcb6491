// pmf ls --html: sorting, filtering, details and the view's state in location.hash
// (#filter=TEXT&sort=[-]COLUMN&open=I,J). The page is complete without this script: it only
// shows, hides and reorders what is there, and never inserts markup built from data.
(function () {
  "use strict";
  var table = document.getElementById("models");
  if (!table) { return; }
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var cols = heads.map(function (th) { return th.getAttribute("data-col"); });
  var bodies = Array.prototype.slice.call(table.tBodies);
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var nodes = Array.prototype.slice.call(document.querySelectorAll("svg.lineage g.node[data-index]"));
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var texts = bodies.map(function (b) { return b.rows[0].textContent.toLowerCase(); });
  var state = { filter: "", sort: "", desc: false, open: {} };

  function index(body) { return Number(body.getAttribute("data-index")); }
  function key(body, i) {
    var td = body.rows[0].cells[i];
    var k = td.getAttribute("data-k");
    return k === null ? td.textContent : k;
  }

  function sort() {
    var i = cols.indexOf(state.sort);
    var numeric = i >= 0 && heads[i].getAttribute("data-type") === "num";
    var order = bodies.slice();
    order.sort(function (a, b) {
      if (i < 0) { return index(a) - index(b); }
      var x = key(a, i), y = key(b, i);
      // Unknown values last, whichever the direction; ties keep the listing's order.
      if (x === "" || y === "") { return (x === "") - (y === "") || index(a) - index(b); }
      var c = numeric ? Number(x) - Number(y) : collator.compare(x, y);
      return (state.desc ? -c : c) || index(a) - index(b);
    });
    order.forEach(function (b) { table.appendChild(b); });
    heads.forEach(function (th, j) {
      th.setAttribute("aria-sort", j === i ? (state.desc ? "descending" : "ascending") : "none");
    });
  }

  // A token is any text of the row, or column:prefix (status:run, valid:invalid, id:backbone).
  function matches(n, tokens) {
    return tokens.every(function (t) {
      var m = /^([a-z_]+):(.*)$/.exec(t);
      var c = m ? cols.indexOf(m[1]) : -1;
      if (c >= 0) {
        var cell = bodies[n].rows[0].cells[c].textContent.toLowerCase();
        return cell.indexOf(m[2]) === 0;
      }
      return texts[n].indexOf(t) >= 0;
    });
  }

  function filter() {
    var tokens = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
    var count = 0;
    bodies.forEach(function (b, n) {
      var keep = matches(n, tokens);
      b.hidden = !keep;
      if (keep) { count += 1; }
    });
    nodes.forEach(function (g) {
      var b = bodies[Number(g.getAttribute("data-index"))];
      g.classList.toggle("dim", !b || b.hidden);
    });
    shown.textContent = "Showing " + count + " of " + bodies.length + " model" + (bodies.length === 1 ? "" : "s");
    shown.setAttribute("data-count", String(count));
  }

  function details() {
    bodies.forEach(function (b, n) {
      var open = !!state.open[n];
      b.rows[1].hidden = !open;
      b.rows[0].setAttribute("aria-expanded", open ? "true" : "false");
    });
    nodes.forEach(function (g) {
      g.classList.toggle("selected", !!state.open[Number(g.getAttribute("data-index"))]);
    });
  }

  function read() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    state.filter = p.get("filter") || "";
    var s = p.get("sort") || "";
    state.desc = s.charAt(0) === "-";
    state.sort = s.replace(/^-/, "");
    state.open = {};
    (p.get("open") || "").split(",").forEach(function (n) {
      if (/^\d+$/.test(n) && Number(n) < bodies.length) { state.open[Number(n)] = true; }
    });
    if (input.value !== state.filter) { input.value = state.filter; }
  }

  function write() {
    var p = new URLSearchParams();
    if (state.filter) { p.set("filter", state.filter); }
    if (state.sort) { p.set("sort", (state.desc ? "-" : "") + state.sort); }
    var open = Object.keys(state.open).filter(function (n) { return state.open[n]; });
    if (open.length) { p.set("open", open.join(",")); }
    var hash = p.toString();
    try {
      history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    } catch (e) {
      // Some browsers refuse history changes on file: pages; the view still works.
    }
  }

  function apply() { sort(); filter(); details(); }

  function toggle(n, scroll) {
    state.open[n] = !state.open[n];
    details();
    write();
    if (scroll && state.open[n]) { bodies[n].scrollIntoView({ block: "start", behavior: "smooth" }); }
  }

  heads.forEach(function (th) {
    function go() {
      var col = th.getAttribute("data-col");
      if (state.sort === col) { state.desc = !state.desc; } else { state.sort = col; state.desc = false; }
      sort();
      write();
    }
    th.addEventListener("click", go);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
  });

  bodies.forEach(function (b, n) {
    var row = b.rows[0];
    row.addEventListener("click", function () { toggle(n, false); });
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(n, false); }
    });
  });

  nodes.forEach(function (g) {
    function go() {
      var n = Number(g.getAttribute("data-index"));
      if (bodies[n].hidden) { state.filter = ""; input.value = ""; filter(); }
      state.open[n] = false;
      toggle(n, true);
    }
    g.addEventListener("click", go);
    g.addEventListener("keydown", function (e) { if (e.key === "Enter") { go(); } });
  });

  input.addEventListener("input", function () { state.filter = input.value; filter(); write(); });
  window.addEventListener("hashchange", function () { read(); apply(); });

  read();
  apply();
  document.body.setAttribute("data-ready", "true");
})();
