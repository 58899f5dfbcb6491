//! `pmf ls --html FILE`: one self-contained page of the models listed. Every model is a row of
//! the table and a node of the lineage graph; nothing is loaded from elsewhere (no URL in a
//! `src` or `href`, a Content-Security-Policy that forbids loads); every string from a model
//! is escaped; the page is written atomically (nothing is left behind when it cannot be).
//! The page in a real browser: `scripts/browser-test`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{run, run_json, s, Scratch};
use sha2::Digest as _;

/// The policy the page must carry (`&#39;` is `'`), but for the hashes of its inline elements:
/// `style-src STYLE NOSCRIPT-STYLE; script-src SCRIPT`, each `&#39;sha256-...&#39;`.
fn csp(style: &str, noscript_style: &str, script: &str) -> String {
    let h = |text: &str| format!("&#39;sha256-{}&#39;", base64(&sha2::Sha256::digest(text.as_bytes())));
    format!(
        "default-src &#39;none&#39;; style-src {} {}; script-src {}; img-src data:; base-uri &#39;none&#39;; \
         form-action &#39;none&#39;",
        h(style),
        h(noscript_style),
        h(script)
    )
}

/// Base64 (RFC 4648, padded), six bits at a time.
fn base64(bytes: &[u8]) -> String {
    let alphabet: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='9').chain(['+', '/']).collect();
    let bits: Vec<u8> = bytes.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let mut out: String =
        bits.chunks(6).map(|c| alphabet[(0..6).fold(0, |n, i| n << 1 | usize::from(c.get(i) == Some(&1)))]).collect();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

/// A name that would run a script if it were not escaped.
const HOSTILE: &str = "<script>alert(1)</script>";

/// ```text
/// models/base           finished, 3 checkpoints, initialised from the weight file imagenet
/// models/finetune       initialised from base (checkpoint 2), build parameters classes: 3
/// models/orphan         initialised from pretrained-0007, which is not under models/
/// models/broken         metadata.yaml is not YAML
/// models/hostile        named <script>alert(1)</script>, a hostile build parameter
/// ```
fn tree(t: &Scratch) -> (PathBuf, Vec<&'static str>) {
    let root = t.path("models");
    let new = |dest: &Path, id: &str, extra: &[&str]| {
        let config = t.path("config.yaml");
        let mut args =
            vec!["new", s(dest), "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", id];
        args.extend_from_slice(extra);
        run(&args, 0);
    };
    let base = root.join("base");
    let init = t.path("init.bin");
    new(&base, "base-0001", &["--name", "resnet", "--init-file", s(&init), "--init-name", "imagenet"]);
    run(&["training", "start", s(&base)], 0);
    for i in 1..=3 {
        run(&["checkpoint", "add", s(&base), s(&t.path(&format!("e{i}.pt"))), "--epoch", &i.to_string()], 0);
    }
    run(&["training", "end", s(&base)], 0);
    new(
        &root.join("finetune"),
        "finetune-0001",
        &["--name", "detector", "--param", "classes=3", "--init-model", s(&base), "--init-checkpoint", "2"],
    );
    let outside = t.path("pretrained");
    new(&outside, "pretrained-0007", &[]);
    run(&["training", "start", s(&outside)], 0);
    run(&["checkpoint", "add", s(&outside), s(&t.path("e1.pt")), "--epoch", "1"], 0);
    new(&root.join("orphan"), "orphan-0001", &["--init-model", s(&outside), "--init-checkpoint", "1"]);
    new(&root.join("broken"), "broken-0001", &[]);
    fs::write(root.join("broken/metadata.yaml"), "model: [unclosed\n").expect("write");
    new(&root.join("hostile"), "hostile-0001", &["--name", HOSTILE, "--param", "note='</pre><script>x()</script>'"]);
    (root, vec!["base-0001", "finetune-0001", "orphan-0001", "hostile-0001"])
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?} in the page"));
    let to = text[from..].find(end).map(|i| from + i).unwrap_or_else(|| panic!("no {end:?} after {start:?}"));
    &text[from..to]
}

/// Every value of the attribute `name` in `html`.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let needle = format!(" {name}=");
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
            _ => rest.split([' ', '>']).next().unwrap_or(""),
        };
        out.push(value);
    }
    out
}

fn page(t: &Scratch, args: &[&str], code: i32) -> (String, String) {
    let file = t.path("page.html");
    let mut all = vec!["ls"];
    all.extend_from_slice(args);
    all.extend(["--html", s(&file)]);
    let (out, _) = run(&all, code);
    (fs::read_to_string(&file).expect("the page is written"), out)
}

#[test]
fn every_model_is_a_row_of_the_table_and_a_node_of_the_graph() {
    let t = Scratch::new();
    let (root, ids) = tree(&t);
    let (html, out) = page(&t, &[s(&root)], 1);
    assert_eq!(out.trim_end(), format!("wrote {}: 5 models, 4 valid, 1 invalid", s(&t.path("page.html"))));
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"), "complete");
    let table = between(&html, "<table id=\"models\">", "</table>\n</div>");
    let svg = between(&html, "<svg class=\"lineage\"", "</svg>");
    assert_eq!(table.matches("<tbody class=\"model ").count(), 5, "one row per model");
    for id in &ids {
        assert!(table.contains(&format!("data-id=\"{id}\"")) && table.contains(&format!(">{id}</td>")), "{id} row");
        assert!(svg.contains(&format!("\nid {id}")), "{id} is a node of the graph");
    }
    // The broken model: a row and a node, whose id is unknown.
    assert!(table.contains("<tbody class=\"model invalid\"") && table.contains("invalid (1 offence)"));
    assert!(svg.contains(">broken</text>") && svg.contains("(id unknown)"));
    // The lineage: imagenet -> base -> finetune, missing pretrained-0007 -> orphan.
    assert!(svg.contains("class=\"node file\"") && svg.contains(">imagenet · init.bin</text>"), "the weight file");
    assert!(svg.contains("class=\"node missing\"") && svg.contains(">pretrained-0007</text>"), "the missing parent");
    assert_eq!(svg.matches("<path class=\"edge").count(), 3, "{svg}");
    assert_eq!(svg.matches("class=\"elbl\"").count(), 2, "the checkpoints used label the model edges");
    assert!(html.contains("was initialised from model pretrained-0007, which is not among the listed models"));
    // Details: checkpoints by epoch, build parameters, offences.
    let base = between(&html, "data-id=\"base-0001\"", "</tbody>");
    assert_eq!(base.matches("<circle class=\"ckpt\"").count(), 3, "a dot per checkpoint on the timeline");
    let epochs: Vec<&str> = base.match_indices("<tr><td class=\"num\">").map(|(i, _)| &base[i + 20..i + 21]).collect();
    assert_eq!(epochs, ["1", "2", "3"], "checkpoints by epoch");
    assert!(base.contains("weight file imagenet (data/initialisation/init.bin)"), "{base}");
    let finetune = between(&html, "data-id=\"finetune-0001\"", "</tbody>");
    assert!(finetune.contains("<pre>classes: 3</pre>"), "build parameters as YAML");
    assert!(finetune.contains("model base-0001 (resnet), checkpoint 2"));
    let broken = between(&html, "data-id=\"\"", "</tbody>");
    assert!(broken.contains("Offences (1)") && broken.contains("is not valid YAML"), "{broken}");
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let t = Scratch::new();
    let (root, _) = tree(&t);
    let (html, _) = page(&t, &[s(&root)], 1);
    let head = between(&html, "<head>", "</head>");
    // The inline elements, each allowed by the hash of its text: no 'unsafe-inline'.
    let text = |start: &str, end: &str| between(&html, start, end)[start.len()..].to_owned();
    let style = text("<style>", "</style>");
    let noscript = text("<noscript><style>", "</style>");
    let script = text("<script>", "</script>");
    let policy = csp(&style, &noscript, &script);
    assert!(
        head.contains(&format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">")),
        "the policy forbids every load and allows only the page's own style and script: {head}"
    );
    assert!(!html.contains("unsafe-inline") && !html.contains("unsafe-eval"));
    assert_eq!(html.matches("<style>").count(), 2, "the style, and the one without JavaScript");
    // Nothing the policy would block: no inline event handler, no style attribute.
    assert!(attribute_values(&html, "style").is_empty(), "no style attribute");
    let markup = html.replace(&script, "").replace(&style, "");
    let tags: Vec<&str> = markup.split('<').skip(1).filter_map(|t| t.split('>').next()).collect();
    assert!(tags.len() > 100, "{}", tags.len());
    for tag in tags.iter().filter(|t| !t.starts_with('/')) {
        assert!(!tag.split_whitespace().skip(1).any(|a| a.starts_with("on")), "an event handler attribute: <{tag}>");
    }
    assert!(!html.contains("javascript:"));
    for name in ["src", "href", "action", "srcset", "poster", "data"] {
        for value in attribute_values(&html, name) {
            let v = value.trim().to_ascii_lowercase();
            assert!(
                !(v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//") || v.contains("://")),
                "{name}={value}"
            );
        }
    }
    assert!(attribute_values(&html, "src").is_empty() && attribute_values(&html, "href").is_empty());
    for needle in ["<link", "<img", "<iframe", "<object", "<embed", "@import", "@font-face", "fetch(", "XMLHttpRequest"]
    {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    for (i, _) in html.match_indices("url(") {
        assert!(html[i..].starts_with("url(#"), "only fragment references: {}", &html[i..i + 20]);
    }
    assert_eq!(html.matches("<script").count(), 1, "one inline script");
    assert!(!html.contains("<script src"), "inline");
    assert!(html.contains("<style>"), "inline style");
}

#[test]
fn strings_from_models_are_escaped() {
    let t = Scratch::new();
    let (root, _) = tree(&t);
    let (html, _) = page(&t, &[s(&root)], 1);
    assert_eq!(html.matches("<script").count(), 1, "only the page's own script");
    assert_eq!(html.matches("</script>").count(), 1);
    assert!(!html.contains(HOSTILE));
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    let table = between(&html, "<table id=\"models\">", "</table>\n</div>");
    assert!(table.contains(&format!(">{escaped}</td>")), "the name is text in its cell");
    let svg = between(&html, "<svg class=\"lineage\"", "</svg>");
    assert!(svg.contains(escaped), "and in the graph");
    let hostile = between(&html, "data-id=\"hostile-0001\"", "</tbody>");
    assert!(hostile.contains("<pre>note: &lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;</pre>"), "{hostile}");
    assert!(!html.contains("</pre><script>"));
}

#[test]
fn the_page_is_written_atomically_or_not_at_all() {
    let t = Scratch::new();
    let (root, _) = tree(&t);
    // A folder that does not exist: exit 2, nothing written.
    let missing = t.path("no-such-folder/page.html");
    let (out, err) = run(&["ls", s(&root), "--html", s(&missing)], 2);
    assert!(err.contains("cannot write the HTML page") && err.contains("no-such-folder"), "{err}");
    assert!(out.is_empty(), "no table, no line: {out}");
    assert!(!t.path("no-such-folder").exists());
    // A folder in the way: exit 2, the folder untouched, no temporary file left.
    let out_dir = t.path("out");
    fs::create_dir_all(out_dir.join("page.html")).expect("mkdir");
    let (_, err) = run(&["ls", s(&root), "--html", s(&out_dir.join("page.html"))], 2);
    assert!(err.contains("cannot write the HTML page"), "{err}");
    let left: Vec<_> = fs::read_dir(&out_dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, ["page.html"], "nothing but the folder");
    assert!(out_dir.join("page.html").is_dir());
    // A folder that cannot be written (not for root, who may write anywhere).
    if !rustix::process::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        let locked = t.path("locked");
        fs::create_dir(&locked).expect("mkdir");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).expect("chmod");
        run(&["ls", s(&root), "--html", s(&locked.join("page.html"))], 2);
        let entries = fs::read_dir(&locked).expect("list").count();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(entries, 0, "no file, no temporary file");
    }
    // An existing page is replaced whole, and nothing else is left next to it.
    let file = out_dir.join("models.html");
    fs::write(&file, "old page").expect("write");
    run(&["ls", s(&root.join("base")), "--html", s(&file)], 0);
    let html = fs::read_to_string(&file).expect("read");
    assert!(html.contains("base-0001") && !html.contains("finetune-0001") && html.ends_with("</html>\n"));
    let mut names: Vec<String> =
        fs::read_dir(&out_dir).expect("list").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    assert_eq!(names, ["models.html", "page.html"]);
}

#[test]
fn where_sort_and_json_apply_with_html() {
    let t = Scratch::new();
    let (root, _) = tree(&t);
    let file = t.path("page.html");
    // --json still prints the document; the page holds the same models, in the same order.
    let doc = run_json(&["ls", s(&root), "--json", "--where", "valid=true", "--sort", "id", "--html", s(&file)], 0);
    let listed: Vec<&str> = doc["models"].as_array().expect("models").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(listed, ["base-0001", "finetune-0001", "hostile-0001", "orphan-0001"]);
    let html = fs::read_to_string(&file).expect("written");
    let rows: Vec<&str> = html
        .match_indices("<tbody class=\"model ")
        .filter_map(|(i, _)| html[i..].split("data-id=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(rows, listed);
    assert!(html.contains("listed with --where <code>valid=true</code>"));
    // A folder without models: an empty page, exit 0.
    let empty = t.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    let (html, out) = page(&t, &[s(&empty)], 0);
    assert!(out.contains(": 0 models, 0 valid, 0 invalid"), "{out}");
    assert!(html.contains("No PMF model found"));
}

#[test]
fn a_training_over_the_whole_range_of_epochs_is_drawn() {
    // Valid for the library: from epoch i64::MIN to i64::MAX, a checkpoint at epoch 3. The
    // width of the timeline (MAX - MIN) does not fit in an i64.
    let t = Scratch::new();
    let model = t.path("models/wide");
    let config = t.path("config.yaml");
    run(
        &["new", s(&model), "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", "wide-1"],
        0,
    );
    run(&["training", "start", s(&model)], 0);
    run(&["checkpoint", "add", s(&model), s(&t.path("e3.pt")), "--epoch", "3"], 0);
    let file = model.join("metadata.yaml");
    let yaml = fs::read_to_string(&file).expect("read");
    assert!(yaml.contains("start_epoch: 0\n") && yaml.contains("latest_epoch: 3\n"), "{yaml}");
    let yaml = yaml
        .replace("start_epoch: 0\n", &format!("start_epoch: {}\n", i64::MIN))
        .replace("latest_epoch: 3\n", &format!("latest_epoch: {}\n", i64::MAX));
    fs::write(&file, yaml).expect("write");
    run(&["validate", s(&model)], 0);
    let (html, out) = page(&t, &[s(&t.path("models"))], 0);
    assert!(out.contains("1 model, 1 valid"), "{out}");
    let timeline = between(&html, "<svg class=\"timeline\"", "</svg>");
    assert!(timeline.contains(&format!("epochs {} to {}", i64::MIN, i64::MAX)), "{timeline}");
    // The bar spans the axis, the checkpoint (epoch 3) is at its middle.
    assert!(timeline.contains("<rect class=\"bar running\" x=\"14.0\" y=\"20\" width=\"492.0\""), "{timeline}");
    assert!(timeline.contains("<circle class=\"ckpt\" cx=\"260.0\""), "{timeline}");
    assert!(html.trim_end().ends_with("</html>"));
}
