//! `pmf ls LOCATION... --html FILE`: one self-contained HTML page of the models listed.
//!
//! The page is rendered here, server-side, so that it reads without JavaScript and every
//! string from a model goes through one escaping function ([`esc`]): the table of every model
//! (the columns of `pmf ls`), each model's details in a hidden row under it (the training
//! timeline as a small SVG bar, the checkpoints by epoch, the build parameters as YAML, the
//! offences), and the lineage graph as SVG (nodes in layers by depth, an arrow from each
//! parent to the model initialised from it; missing parents, duplicate ids and cycles marked).
//! The inline script (`html/page.js`) only adds behaviour: sorting by a header, the filter
//! box, showing details, and the state in `location.hash` (`#filter=...&sort=-id&open=0`), so
//! a link reopens the same view; it never inserts markup built from data.
//!
//! Nothing is loaded from anywhere: the styles and the script are inline, there is no image,
//! font or link to another page, and a Content-Security-Policy meta tag ([`csp`]) forbids
//! every load anyway. The page is written atomically: a temporary file next to FILE, flushed,
//! then renamed over it; on any error the temporary file is removed and FILE is untouched.
//!
//! The details are read after the listing, for each model whose metadata could be read, by
//! one more quick check of the model (`plums_model::check_at`, read-only, checkpoint files not
//! required), in parallel: the checkpoint list and the build parameters are not part of a
//! `ModelSummary`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use plums_model::{
    check_at, InitialisationSummary, LineageProblem, Location, Metadata, ModelSummary, NodeKind, Reference, Status,
    StorageOptions, Timestamp, ValidateOptions,
};

use crate::failure::{kind, Failure, EXIT_USAGE};
use crate::output::{human_bytes, human_duration, human_time};

const STYLE: &str = include_str!("html/page.css");
const SCRIPT: &str = include_str!("html/page.js");
/// The style applied without JavaScript (in `<noscript>`): the details shown, the filter hidden.
const NOSCRIPT_STYLE: &str =
    "#models tr.detail[hidden] { display: table-row; } #filter, #shown, .hint { display: none; }";

/// The exact text of the inline `<style>` and `<script>` elements (what their CSP hashes are
/// of: everything between the tags).
fn style_text() -> String {
    format!("\n{STYLE}")
}
fn script_text() -> String {
    format!("\n{SCRIPT}")
}

/// The Content-Security-Policy of the page: nothing may be loaded, and only the page's own
/// inline style and script elements apply or run, each allowed by the SHA-256 of its text
/// (no `'unsafe-inline'`: markup injected into the page could neither run a script, an event
/// handler attribute or a `javascript:` URL, nor style itself). `img-src data:` is the only
/// source, and the page has no image. The page has no `style=` nor `on*=` attribute: its
/// script adds its handlers with `addEventListener`.
pub fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; style-src {} {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
            csp_hash(&style_text()),
            csp_hash(NOSCRIPT_STYLE),
            csp_hash(&script_text()),
        )
    })
}

/// `'sha256-BASE64'`: a CSP source allowing the inline element whose text is `text`.
fn csp_hash(text: &str) -> String {
    use sha2::Digest as _;
    format!("'sha256-{}'", crate::output::base64(&sha2::Sha256::digest(text.as_bytes())))
}

/// One model of the page: where it is shown, its summary, and its cells in the table.
pub struct Listed<'a> {
    /// The model's location as `pmf ls` shows it.
    pub path: &'a str,
    /// What the listing found.
    pub summary: &'a ModelSummary,
    /// The cells of its `pmf ls` line, in the order of [`Page::header`].
    pub cells: [String; 11],
    /// Why it could not be examined, when it could not (the `error:` line of `pmf ls`).
    pub error: Option<String>,
}

/// Everything the page shows.
pub struct Page<'a> {
    /// The LOCATIONs as given.
    pub locations: Vec<String>,
    /// The column titles of `pmf ls`.
    pub header: [&'a str; 11],
    /// The models, in the order of the listing (after `--where` and `--sort`).
    pub rows: Vec<Listed<'a>>,
    /// The LOCATIONs that could not be listed, with why.
    pub failed: Vec<(String, String)>,
    /// Whether checksums were verified (`--strict`).
    pub strict: bool,
    /// The `--where` filters applied, as given.
    pub filters: Vec<String>,
    /// How to reach object stores, to read the details.
    pub storage: StorageOptions,
}

/// Render the page and write it to `file` atomically.
pub fn write(file: &Path, page: &Page<'_>) -> Result<(), Failure> {
    let details = read_details(&page.rows, &page.storage);
    let text = render(page, &details);
    write_atomically(file, text.as_bytes()).map_err(|e| {
        Failure::of_kind(EXIT_USAGE, kind::OUTPUT, format!("cannot write the HTML page: {e}")).at(file).hint(
            "FILE is written as a temporary file in its folder, then renamed: the folder must exist and be writable",
        )
    })
}

/// Write `bytes` to `target` through a temporary file in its folder, renamed over it once
/// complete and flushed; the temporary file is removed on failure.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = target.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file (it ends in `..` or `/`)")
    })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let temp = dir.join(format!(".{}.pmf-html-{}-{nanos}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        drop(out);
        std::fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------

/// `text` escaped for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_esc(&mut out, text);
    out
}

fn push_esc(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls other than tab and newline are not allowed in HTML text.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

// ---------------------------------------------------------------------------------------------
// Details: read from each model after the listing
// ---------------------------------------------------------------------------------------------

/// What a model's details show beyond its summary.
#[derive(Default)]
struct Details {
    /// The metadata (checkpoints, configuration), when the check gave it.
    metadata: Option<Metadata>,
    /// The build parameters as YAML, when the model passed the check.
    build_parameters: Option<String>,
    /// Why the details could not be read, when they could not.
    note: Option<String>,
}

/// The details of every row, read in parallel (one quick check per model whose metadata the
/// listing could read).
fn read_details(rows: &[Listed<'_>], storage: &StorageOptions) -> Vec<Details> {
    let options = ValidateOptions::new().strict(false).checkpoints(false).storage(storage.clone());
    let remote = rows.iter().any(|r| matches!(r.summary.location, Location::Object(_)));
    let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let threads = if remote { 16 } else { cpus }.clamp(1, rows.len().max(1));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Details>>> = Mutex::new((0..rows.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(row) = rows.get(i) else { break };
                let details = details_of(row.summary, &options);
                if let Ok(mut out) = out.lock() {
                    out[i] = Some(details);
                }
            });
        }
    });
    out.into_inner().unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect()
}

fn details_of(summary: &ModelSummary, options: &ValidateOptions) -> Details {
    if summary.error.is_some() || summary.id.is_none() {
        return Details::default();
    }
    match check_at(&summary.location, options) {
        Err(e) => Details { note: Some(format!("the details could not be read: {e}")), ..Details::default() },
        Ok(check) if check.is_valid() => match check.into_result(Path::new(&summary.location.to_string())) {
            Ok(v) => Details {
                build_parameters: Some(plums_model::to_yaml(&v.build_parameters)),
                metadata: Some(v.metadata),
                note: None,
            },
            Err(e) => Details { note: Some(format!("the details could not be read: {e}")), ..Details::default() },
        },
        Ok(check) => Details { metadata: check.metadata, build_parameters: None, note: None },
    }
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

/// The columns: the key used in `#sort=` and `column:text` filters, and whether they sort as
/// numbers.
const COLUMNS: [(&str, bool); 11] = [
    ("path", false),
    ("name", false),
    ("id", false),
    ("producer", false),
    ("status", true),
    ("epochs", true),
    ("ckpts", true),
    ("size", true),
    ("latest", false),
    ("init", false),
    ("valid", true),
];

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The whole page.
fn render(page: &Page<'_>, details: &[Details]) -> String {
    let mut out = String::with_capacity(16_384 + page.rows.len() * 4096);
    let n = page.rows.len();
    let n_valid = page.rows.iter().filter(|r| r.summary.valid).count();
    let locations = page.locations.join(", ");
    let now = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"pmf {version}\">\n\
         <title>PMF models: {title}</title>\n<style>{style}</style>\n\
         <noscript><style>{NOSCRIPT_STYLE}</style></noscript>\n\
         </head>\n<body>\n",
        csp = esc(csp()),
        style = style_text(),
        version = env!("CARGO_PKG_VERSION"),
        title = esc(&locations),
    );
    let check = if page.strict { "strict check (checksums verified)" } else { "quick check (checksums not verified)" };
    let _ = write!(
        out,
        "<header>\n<h1>PMF models</h1>\n<p class=\"sub\">under <b>{}</b> · {check} · written {now} by pmf {}</p>\n",
        esc(&locations),
        env!("CARGO_PKG_VERSION"),
    );
    let _ = write!(
        out,
        "<p class=\"stats\"><span class=\"total\">{n} model{}</span>: <span class=\"ok\">{n_valid} valid</span>, \
         <span class=\"bad\">{} invalid</span>",
        plural(n),
        n - n_valid
    );
    if !page.filters.is_empty() {
        let filters: Vec<String> = page.filters.iter().map(|f| format!("<code>{}</code>", esc(f))).collect();
        let _ = write!(out, " · listed with --where {}", filters.join(" "));
    }
    out.push_str("</p>\n</header>\n<main>\n");
    if !page.failed.is_empty() {
        out.push_str("<section class=\"failures\">\n<h2>Locations that could not be listed</h2>\n<ul>\n");
        for (location, message) in &page.failed {
            let _ = writeln!(out, "<li><code>{}</code>: {}</li>", esc(location), esc(message));
        }
        out.push_str("</ul>\n</section>\n");
    }
    out.push_str(
        "<div class=\"toolbar\"><input id=\"filter\" type=\"search\" autocomplete=\"off\" spellcheck=\"false\" \
         placeholder=\"Filter: any text, or column:prefix (status:running valid:invalid id:backbone)\" \
         aria-label=\"Filter the models\"> <span id=\"shown\" aria-live=\"polite\"></span>\
         <span class=\"hint\">click a header to sort, a row for its details</span></div>\n",
    );
    render_table(&mut out, page, details);
    render_lineage(&mut out, page);
    let _ = write!(out, "</main>\n<script>{}</script>\n</body>\n</html>\n", script_text());
    out
}

/// The sort key of each column (`data-k`): numbers for the numeric columns, `""` unknown.
fn sort_keys(row: &Listed<'_>) -> [String; 11] {
    let s = row.summary;
    let number = |n: Option<i128>| n.map(|n| n.to_string()).unwrap_or_default();
    let status = s.status.map(|st| match st {
        Status::Pending => 0,
        Status::Running => 1,
        Status::Finished => 2,
        Status::Failed => 3,
    });
    let verdict = if s.error.is_some() {
        0
    } else if s.valid {
        2
    } else {
        1
    };
    let text = |cell: &str| if cell == "-" { String::new() } else { cell.to_owned() };
    [
        row.path.to_owned(),
        text(&row.cells[1]),
        text(&row.cells[2]),
        text(&row.cells[3]),
        number(status.map(i128::from)),
        number(s.latest_epoch.or(s.start_epoch).map(i128::from)),
        number(s.checkpoint_count.map(|n| n as i128)),
        number(s.checkpoint_bytes.map(i128::from)),
        text(&row.cells[8]),
        text(&row.cells[9]),
        verdict.to_string(),
    ]
}

fn render_table(out: &mut String, page: &Page<'_>, details: &[Details]) {
    out.push_str("<div class=\"table-wrap\">\n<table id=\"models\">\n<thead><tr>");
    for (title, (key, numeric)) in page.header.iter().zip(COLUMNS) {
        let _ = write!(
            out,
            "<th data-col=\"{key}\" data-type=\"{}\" tabindex=\"0\" aria-sort=\"none\" title=\"sort by {key}\">{}</th>",
            if numeric { "num" } else { "text" },
            esc(title)
        );
    }
    out.push_str("</tr></thead>\n");
    for (i, (row, details)) in page.rows.iter().zip(details).enumerate() {
        let s = row.summary;
        let verdict = if s.error.is_some() {
            "unreadable"
        } else if s.valid {
            "valid"
        } else {
            "invalid"
        };
        let _ = write!(
            out,
            "<tbody class=\"model {verdict}\" id=\"m{i}\" data-index=\"{i}\" data-id=\"{}\">\n\
             <tr class=\"row\" tabindex=\"0\" aria-expanded=\"false\">",
            esc(s.id.as_deref().unwrap_or(""))
        );
        let mut keys = sort_keys(row);
        let mut cells = row.cells.clone();
        if page.locations.len() == 1 {
            // One LOCATION, named in the header: the path below it is enough.
            cells[0].clone_from(&s.relative_path);
            keys[0].clone_from(&s.relative_path);
        }
        for (c, (cell, key)) in cells.iter().zip(&keys).enumerate() {
            let class = match c {
                6 | 7 => " class=\"num\"",
                10 => " class=\"verdict\"",
                _ => "",
            };
            // Long cells are cut by the style; the whole text is the tooltip.
            let title = match c {
                0 => format!(" title=\"{}\"", esc(row.path)),
                _ if cell.chars().count() > 40 => format!(" title=\"{}\"", esc(cell)),
                _ => String::new(),
            };
            let _ = write!(out, "<td{class}{title} data-k=\"{}\">{}</td>", esc(key), esc(cell));
        }
        let _ = write!(out, "</tr>\n<tr class=\"detail\" hidden><td colspan=\"{}\">", row.cells.len());
        render_details(out, row, details);
        out.push_str("</td></tr>\n</tbody>\n");
    }
    out.push_str("</table>\n</div>\n");
    if page.rows.is_empty() {
        out.push_str("<p class=\"empty\">No PMF model found (a model is a folder holding metadata.yaml).</p>\n");
    }
}

/// A `<dt>`/`<dd>` pair, the value escaped.
fn pair(out: &mut String, term: &str, value: &str) {
    let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(term), esc(value));
}

fn opt(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn render_details(out: &mut String, row: &Listed<'_>, details: &Details) {
    let s = row.summary;
    out.push_str("<div class=\"details\">\n<section class=\"about\"><h3>Model</h3><dl>");
    pair(out, "location", row.path);
    pair(out, "below LOCATION", &s.relative_path);
    pair(out, "name", opt(s.name.as_deref()));
    pair(out, "id", opt(s.id.as_deref()));
    if let Some(producer) = &s.producer {
        let version = format!("{} ({})", opt(s.producer_version.as_deref()), opt(s.producer_version_format.as_deref()));
        pair(out, "producer", producer);
        pair(out, "version", &version);
    }
    if let Some(metadata) = &details.metadata {
        pair(out, "configuration", &metadata.model.configuration.path);
    }
    let init = match &s.initialisation {
        None if s.id.is_some() => "none (trained from scratch)".to_owned(),
        None => "-".to_owned(),
        Some(InitialisationSummary::WeightFile { name, path }) => match name {
            Some(name) => format!("weight file {name} ({path})"),
            None => format!("weight file {path}"),
        },
        Some(InitialisationSummary::Model { name, id, checkpoint }) => match name {
            Some(name) => format!("model {id} ({name}), checkpoint {}", checkpoint.quoted()),
            None => format!("model {id}, checkpoint {}", checkpoint.quoted()),
        },
        Some(_) => "?".to_owned(),
    };
    pair(out, "initialisation", &init);
    pair(out, "check", if s.strict { "strict (checksums verified)" } else { "quick (checksums not verified)" });
    out.push_str("</dl></section>\n");

    out.push_str("<section class=\"training\"><h3>Training</h3>");
    let checkpoints: Vec<(&Reference, i64, &str)> = details
        .metadata
        .as_ref()
        .map(|m| m.model.training.checkpoints.iter().map(|(r, e)| (r, e.epoch, e.path.as_str())).collect())
        .unwrap_or_default();
    if s.id.is_some() {
        timeline(out, s, &checkpoints);
        out.push_str("<dl>");
        pair(out, "status", s.status.map(Status::as_str).unwrap_or("-"));
        let epoch_time = |epoch: Option<i64>, time: Option<Timestamp>| -> String {
            match (epoch, time) {
                (None, None) => "-".to_owned(),
                (e, t) => format!(
                    "epoch {} · {}",
                    e.map(|e| e.to_string()).unwrap_or_else(|| "-".to_owned()),
                    t.map(human_time).unwrap_or_else(|| "-".to_owned())
                ),
            }
        };
        pair(out, "start", &epoch_time(s.start_epoch, s.start_time));
        pair(out, "latest", &epoch_time(s.latest_epoch, s.latest_time));
        pair(out, "end", &epoch_time(s.end_epoch, s.end_time));
        if let (Some(start), Some(last)) = (s.start_time, s.end_time.or(s.latest_time)) {
            pair(out, "duration", &human_duration(last.as_f64() - start.as_f64()));
        }
        out.push_str("</dl>");
    } else {
        out.push_str("<p class=\"muted\">unknown: the metadata could not be read</p>");
    }
    out.push_str("</section>\n");

    let _ = write!(out, "<section class=\"checkpoints\"><h3>Checkpoints ({})</h3>", opt_count(s.checkpoint_count));
    if let Some(metadata) = &details.metadata {
        let mut entries: Vec<_> = metadata.model.training.checkpoints.iter().collect();
        // By epoch; the order of registration among equal epochs.
        entries.sort_by_key(|(_, e)| e.epoch);
        if entries.is_empty() {
            out.push_str("<p class=\"muted\">none registered</p>");
        } else {
            out.push_str(
                "<table class=\"ckpts\"><thead><tr><th>epoch</th><th>reference</th><th>file</th><th>MD5</th>\
                 </tr></thead><tbody>",
            );
            let latest = metadata.model.training.latest.as_ref();
            for (reference, entry) in entries {
                let hash = entry.hash.to_string();
                let mark = if Some(reference) == latest { " <span class=\"tag\">latest</span>" } else { "" };
                let _ = write!(
                    out,
                    "<tr><td class=\"num\">{}</td><td>{}{mark}</td><td><code>{}</code></td>\
                     <td><code title=\"{hash}\">{}</code></td></tr>",
                    entry.epoch,
                    esc(&reference.quoted()),
                    esc(&entry.path),
                    esc(&truncate(&hash, 9)),
                    hash = esc(&hash),
                );
            }
            out.push_str("</tbody></table>");
        }
        if let Some(bytes) = s.checkpoint_bytes {
            let _ = write!(out, "<p class=\"muted\">{} in total</p>", esc(&human_bytes(bytes)));
        }
    } else {
        out.push_str("<p class=\"muted\">not available</p>");
    }
    out.push_str("</section>\n");

    out.push_str("<section class=\"params\"><h3>Build parameters</h3>");
    match &details.build_parameters {
        Some(yaml) => {
            let _ = write!(out, "<pre>{}</pre>", esc(yaml.trim_end()));
        }
        None if s.valid => out.push_str("<p class=\"muted\">not available</p>"),
        None => out.push_str("<p class=\"muted\">not shown: the model is not valid</p>"),
    }
    if let Some(note) = &details.note {
        let _ = write!(out, "<p class=\"muted\">{}</p>", esc(note));
    }
    out.push_str("</section>\n");

    if let Some(error) = &row.error {
        let _ = writeln!(
            out,
            "<section class=\"offences\"><h3>Could not be read</h3><p class=\"error\">{}</p></section>",
            esc(error)
        );
    } else if !s.offences.is_empty() {
        let _ = write!(out, "<section class=\"offences\"><h3>Offences ({})</h3><ul>", s.offences.len());
        for offence in &s.offences {
            let location = if offence.location.is_empty() { "." } else { offence.location.as_str() };
            let _ = write!(
                out,
                "<li><span class=\"kind\">{}</span> <code>{}</code>: {}</li>",
                esc(offence.kind.as_str()),
                esc(location),
                esc(&offence.message)
            );
        }
        out.push_str("</ul></section>\n");
    }
    out.push_str("</div>");
}

fn opt_count(n: Option<usize>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_owned())
}

/// The training as a bar over its epochs: from the start to the end (or the latest) epoch,
/// a dot per checkpoint at its epoch.
fn timeline(out: &mut String, s: &ModelSummary, checkpoints: &[(&Reference, i64, &str)]) {
    const W: f64 = 520.0;
    const H: f64 = 58.0;
    const LEFT: f64 = 14.0;
    const RIGHT: f64 = 14.0;
    let Some(start) = s.start_epoch else {
        out.push_str("<p class=\"muted\">not started</p>");
        return;
    };
    let last = s.end_epoch.or(s.latest_epoch).unwrap_or(start);
    let lo = checkpoints.iter().map(|c| c.1).chain([start]).min().unwrap_or(start);
    let hi = checkpoints.iter().map(|c| c.1).chain([last]).max().unwrap_or(last);
    // In i128: epochs span the whole i64 range (a model may start at i64::MIN and be at
    // i64::MAX), whose width does not fit in an i64.
    let span = (i128::from(hi) - i128::from(lo)).max(1) as f64;
    let x = |epoch: i64| LEFT + (i128::from(epoch) - i128::from(lo)) as f64 / span * (W - LEFT - RIGHT);
    let status = s.status.map(Status::as_str).unwrap_or("unknown");
    let _ = write!(
        out,
        "<svg class=\"timeline\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"training from epoch {start} to epoch {last}\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"26\" x2=\"{}\" y2=\"26\"/>",
        W - RIGHT
    );
    let (x0, x1) = (x(start), x(last));
    let _ = write!(
        out,
        "<rect class=\"bar {status}\" x=\"{x0:.1}\" y=\"20\" width=\"{:.1}\" height=\"12\" rx=\"3\"><title>{status}: \
         epochs {start} to {last}</title></rect>",
        (x1 - x0).max(3.0)
    );
    for (reference, epoch, path) in checkpoints {
        let _ = write!(
            out,
            "<circle class=\"ckpt\" cx=\"{:.1}\" cy=\"26\" r=\"4\"><title>checkpoint {} at epoch {epoch} ({})</title></circle>",
            x(*epoch),
            esc(&reference.quoted()),
            esc(path)
        );
    }
    let _ = write!(out, "<text class=\"lbl\" x=\"{x0:.1}\" y=\"48\" text-anchor=\"start\">start {start}</text>");
    let (label, epoch) = match (s.end_epoch, s.latest_epoch) {
        (Some(end), _) => ("end", end),
        (None, Some(latest)) => ("latest", latest),
        (None, None) => ("", start),
    };
    if !label.is_empty() {
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"13\" text-anchor=\"end\">{label} {epoch}</text>",
            x1.max(60.0)
        );
    }
    if let (Some(end), Some(latest)) = (s.end_epoch, s.latest_epoch) {
        if latest != end {
            let _ = write!(
                out,
                "<text class=\"lbl\" x=\"{:.1}\" y=\"48\" text-anchor=\"end\">latest {latest}</text>",
                x(latest).max(120.0)
            );
        }
    }
    out.push_str("</svg>");
}

// ---------------------------------------------------------------------------------------------
// The lineage graph
// ---------------------------------------------------------------------------------------------

/// What a node of the drawn graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A listed model: the row it is.
    Model(Option<usize>),
    /// A weight file a model was initialised from.
    File,
    /// A parent id that no listed model has.
    Missing,
}

/// A node of the drawn graph.
#[derive(Debug, Clone)]
struct GNode {
    shape: Shape,
    /// The first line (a name, `weight file`, `missing model`).
    title: String,
    /// The second line (an id, a file name).
    sub: String,
    /// The tooltip: everything known.
    tooltip: String,
    /// Marks: `invalid`, `dup` (shares its id), `cycle`.
    marks: Vec<&'static str>,
}

/// An edge of the drawn graph, from a parent to the model initialised from it.
#[derive(Debug, Clone)]
struct GEdge {
    parent: usize,
    child: usize,
    label: Option<String>,
    marks: Vec<&'static str>,
}

/// The graph to draw, and the problems to list under it.
#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<GNode>,
    edges: Vec<GEdge>,
    problems: Vec<String>,
}

/// The lineage of the listed models, as the core's `lineage` computes it, converted to a
/// graph to draw.
fn graph_of(rows: &[Listed<'_>]) -> Graph {
    let summaries: Vec<ModelSummary> = rows.iter().map(|r| r.summary.clone()).collect();
    let lineage = plums_model::lineage(&summaries);
    // Rows by the path the lineage gives its model nodes.
    let mut by_path: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        by_path.entry(row.summary.location.to_string()).or_default().push(i);
        if row.summary.relative_path != row.summary.location.to_string() {
            by_path.entry(row.summary.relative_path.clone()).or_default().push(i);
        }
    }
    let mut taken = vec![false; rows.len()];
    let mut graph = Graph::default();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut dup_ids: Vec<&str> = Vec::new();
    let mut cycle_keys: Vec<&str> = Vec::new();
    for problem in &lineage.problems {
        match problem {
            LineageProblem::DuplicateId { id, .. } => dup_ids.push(id),
            LineageProblem::Cycle { keys } => cycle_keys.extend(keys.iter().map(String::as_str)),
            _ => {}
        }
    }
    for node in &lineage.nodes {
        let shape = match node.kind {
            NodeKind::Model => {
                let row = node
                    .path
                    .as_ref()
                    .and_then(|p| by_path.get(p.as_str()))
                    .and_then(|candidates| candidates.iter().copied().find(|&i| !taken[i]));
                if let Some(i) = row {
                    taken[i] = true;
                }
                Shape::Model(row)
            }
            NodeKind::WeightFile => Shape::File,
            _ => Shape::Missing,
        };
        let mut marks = Vec::new();
        let (title, sub, mut tooltip) = match shape {
            Shape::Model(row) => {
                if row.is_some_and(|i| !rows[i].summary.valid) {
                    marks.push("invalid");
                }
                // A model without a name: its path below LOCATION.
                let title = node
                    .name
                    .clone()
                    .or_else(|| row.map(|i| rows[i].summary.relative_path.clone()))
                    .unwrap_or_else(|| node.label.clone());
                let sub = node.id.clone().unwrap_or_else(|| "(id unknown)".to_owned());
                let mut tip = format!("model {}", node.label);
                if let Some(id) = &node.id {
                    let _ = write!(tip, "\nid {id}");
                }
                if let Some(path) = row.map(|i| rows[i].path).or(node.path.as_deref()) {
                    let _ = write!(tip, "\nat {path}");
                }
                (title, sub, tip)
            }
            Shape::File => {
                let mut tip = format!("weight file {}", node.label);
                if let Some(name) = &node.name {
                    let _ = write!(tip, "\nnamed {name}");
                }
                if let Some(path) = &node.path {
                    let _ = write!(tip, "\n{path}");
                }
                // The name its first child gives it, and its file name.
                let sub = match &node.name {
                    Some(name) if !node.label.starts_with(name.as_str()) => format!("{name} · {}", node.label),
                    _ => node.label.clone(),
                };
                ("weight file".to_owned(), sub, tip)
            }
            Shape::Missing => {
                let id = node.id.clone().unwrap_or_else(|| node.label.clone());
                let tip = format!("model {id}: not among the listed models");
                ("missing model".to_owned(), id, tip)
            }
        };
        if node.id.as_deref().is_some_and(|id| dup_ids.contains(&id)) && shape != Shape::Missing {
            marks.push("dup");
            tooltip.push_str("\nthis id is used by several models");
        }
        if cycle_keys.contains(&node.key.as_str()) {
            marks.push("cycle");
            tooltip.push_str("\npart of an initialisation cycle");
        }
        index.insert(node.key.as_str(), graph.nodes.len());
        graph.nodes.push(GNode { shape, title, sub, tooltip, marks });
    }
    for edge in &lineage.edges {
        let (Some(&child), Some(&parent)) = (index.get(edge.child.as_str()), index.get(edge.parent.as_str())) else {
            continue;
        };
        let mut marks = Vec::new();
        if cycle_keys.contains(&edge.child.as_str()) && cycle_keys.contains(&edge.parent.as_str()) {
            marks.push("cycle");
        }
        if graph.nodes[parent].marks.contains(&"dup") {
            marks.push("dup");
        }
        if graph.nodes[parent].shape == Shape::Missing {
            marks.push("missing");
        }
        let label = edge.checkpoint.as_ref().map(|c| format!("@{}", c.quoted()));
        graph.edges.push(GEdge { parent, child, label, marks });
    }
    // A model of a problem, for people: its label and where it is.
    let at = |key: &str| -> String {
        match index.get(key).map(|&i| &graph.nodes[i]) {
            Some(GNode { shape: Shape::Model(Some(row)), .. }) => rows[*row].path.to_owned(),
            _ => key.to_owned(),
        }
    };
    let name = |key: &str| -> String {
        match index.get(key).map(|&i| &graph.nodes[i]) {
            Some(node @ GNode { shape: Shape::Model(Some(_)), .. }) => format!("{} ({})", node.title, at(key)),
            _ => key.to_owned(),
        }
    };
    let mut problems = Vec::new();
    for problem in &lineage.problems {
        problems.push(match problem {
            LineageProblem::MissingParent { child, id } => {
                format!("{} was initialised from model {id}, which is not among the listed models", name(child))
            }
            LineageProblem::DuplicateId { id, paths } => {
                let places: Vec<String> = paths.iter().map(|k| at(k)).collect();
                format!("id {id} is used by {} models: {}", paths.len(), places.join(", "))
            }
            LineageProblem::Cycle { keys } => {
                let names: Vec<String> = keys.iter().map(|k| name(k)).collect();
                format!("initialisation cycle between {}", names.join(", "))
            }
        });
    }
    graph.problems = problems;
    graph
}

/// Where each node is drawn, in grid units: `(layer, slot)`, and how big the grid is.
#[derive(Debug, PartialEq)]
struct Layout {
    /// `(column, row)` of each node: the column is its depth in the tree of initialisations.
    at: Vec<(usize, f64)>,
    /// Columns and rows used by the trees.
    columns: usize,
    rows: f64,
    /// The first row of the grid of models without any lineage (after the trees).
    isolated_from: Option<f64>,
}

/// How many columns the grid of models without lineage has, at least.
const ISOLATED_COLUMNS: usize = 5;

/// Lay the graph out in layers: every node gets one parent in a forest (its first parent
/// that does not close a cycle), parents are centred on their children, a column per depth;
/// the models without parent nor child go in a grid after the trees.
fn layout(graph: &Graph) -> Layout {
    let n = graph.nodes.len();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut linked = vec![false; n];
    for e in &graph.edges {
        if e.parent != e.child {
            parents[e.child].push(e.parent);
        }
        linked[e.parent] = true;
        linked[e.child] = true;
    }
    // One parent each, never closing a cycle: a forest.
    let mut tree_parent: Vec<Option<usize>> = vec![None; n];
    for node in 0..n {
        for &p in &parents[node] {
            let mut at = Some(p);
            let mut closes = false;
            while let Some(a) = at {
                if a == node {
                    closes = true;
                    break;
                }
                at = tree_parent[a];
            }
            if !closes {
                tree_parent[node] = Some(p);
                break;
            }
        }
    }
    let order = |a: &usize, b: &usize| {
        let rank = |i: usize| match graph.nodes[i].shape {
            Shape::File => 0,
            Shape::Missing => 1,
            Shape::Model(_) => 2,
        };
        (rank(*a), &graph.nodes[*a].title, &graph.nodes[*a].sub, *a).cmp(&(
            rank(*b),
            &graph.nodes[*b].title,
            &graph.nodes[*b].sub,
            *b,
        ))
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, parent) in tree_parent.iter().enumerate() {
        if let Some(p) = parent {
            children[*p].push(node);
        }
    }
    for c in &mut children {
        c.sort_by(order);
    }
    let mut roots: Vec<usize> = (0..n).filter(|&i| tree_parent[i].is_none() && linked[i]).collect();
    roots.sort_by(order);
    let mut isolated: Vec<usize> = (0..n).filter(|&i| !linked[i]).collect();
    isolated.sort_by(order);

    let mut at = vec![(0usize, 0f64); n];
    let mut next_row = 0f64;
    let mut columns = 0usize;
    // Depth-first, without recursion (a chain may be long): leaves take the next row, a parent
    // is centred on its first and last children.
    for &root in &roots {
        let mut stack: Vec<(usize, usize, bool)> = vec![(root, 0, false)];
        while let Some((node, depth, expanded)) = stack.pop() {
            columns = columns.max(depth + 1);
            if children[node].is_empty() {
                at[node] = (depth, next_row);
                next_row += 1.0;
            } else if !expanded {
                stack.push((node, depth, true));
                for &c in children[node].iter().rev() {
                    stack.push((c, depth + 1, false));
                }
            } else {
                let first = at[children[node][0]].1;
                let last = at[children[node][children[node].len() - 1]].1;
                at[node] = (depth, (first + last) / 2.0);
            }
        }
    }
    let mut isolated_from = None;
    if !isolated.is_empty() {
        let start = if next_row > 0.0 { next_row + 0.6 } else { 0.0 };
        isolated_from = Some(start);
        let per_row = columns.max(ISOLATED_COLUMNS);
        for (k, &node) in isolated.iter().enumerate() {
            at[node] = (k % per_row, start + (k / per_row) as f64);
        }
        columns = per_row;
        next_row = start + isolated.len().div_ceil(per_row) as f64;
    }
    Layout { at, columns, rows: next_row, isolated_from }
}

const NODE_W: f64 = 210.0;
const NODE_H: f64 = 42.0;
const GAP_X: f64 = 64.0;
const GAP_Y: f64 = 14.0;
const PAD: f64 = 24.0;

fn render_lineage(out: &mut String, page: &Page<'_>) {
    let graph = graph_of(&page.rows);
    let layout = layout(&graph);
    let width = PAD * 2.0 + layout.columns as f64 * NODE_W + layout.columns.saturating_sub(1) as f64 * GAP_X;
    let height = PAD * 2.0 + layout.rows * (NODE_H + GAP_Y) - if layout.rows > 0.0 { GAP_Y } else { 0.0 };
    out.push_str(
        "<section class=\"lineage\">\n<h2>Lineage</h2>\n<p class=\"legend\">An arrow goes from a parent to the \
         model initialised from it (labelled with the checkpoint used). \
         <span class=\"key model\">model</span> <span class=\"key model invalid\">invalid model</span> \
         <span class=\"key file\">weight file</span> <span class=\"key missing\">missing parent</span> \
         <span class=\"key dup\">duplicate id</span> <span class=\"key cycle\">cycle</span> \
         Click a model to see its details.</p>\n",
    );
    if graph.nodes.is_empty() {
        out.push_str("<p class=\"muted\">No model.</p>\n</section>\n");
        return;
    }
    let _ = write!(
        out,
        "<div class=\"graph-wrap\"><svg class=\"lineage\" id=\"lineage\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"lineage graph of {} nodes\">\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0 0L10 5L0 10z\"/></marker>\
         <marker id=\"arrow-bad\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0 0L10 5L0 10z\"/></marker></defs>\n",
        graph.nodes.len()
    );
    let origin = |node: usize| -> (f64, f64) {
        let (column, row) = layout.at[node];
        (PAD + column as f64 * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    };
    if let Some(row) = layout.isolated_from.filter(|r| *r > 0.0) {
        let y = PAD + row * (NODE_H + GAP_Y) - GAP_Y * 0.6;
        let _ = write!(out, "<line class=\"sep\" x1=\"{PAD}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>", width - PAD);
    }
    out.push_str("<g class=\"edges\">\n");
    for edge in &graph.edges {
        let (px, py) = origin(edge.parent);
        let (cx, cy) = origin(edge.child);
        let (x1, y1, x2, y2) = (px + NODE_W, py + NODE_H / 2.0, cx, cy + NODE_H / 2.0);
        let bend = ((x2 - x1).abs() / 2.0).max(30.0);
        let bad = !edge.marks.is_empty();
        let mut class = String::from("edge");
        for mark in &edge.marks {
            class.push(' ');
            class.push_str(mark);
        }
        let d = if edge.parent == edge.child {
            // A model initialised from its own id: a loop on its right side.
            let (r, top, bottom) = (px + NODE_W, py + 8.0, py + NODE_H - 8.0);
            format!(
                "M{r:.1} {top:.1}C{:.1} {:.1} {:.1} {:.1} {r:.1} {bottom:.1}",
                r + 40.0,
                py - 8.0,
                r + 40.0,
                py + NODE_H + 8.0
            )
        } else if x2 <= x1 {
            // Back to an earlier column (a cycle): below the nodes, bottom to bottom.
            let (a, b) = (px + NODE_W / 2.0, cx + NODE_W / 2.0);
            let (ya, yb) = (py + NODE_H, cy + NODE_H);
            let low = ya.max(yb) + GAP_Y * 1.6;
            format!("M{a:.1} {ya:.1}C{a:.1} {low:.1} {b:.1} {low:.1} {b:.1} {yb:.1}")
        } else {
            format!("M{x1:.1} {y1:.1}C{:.1} {y1:.1} {:.1} {y2:.1} {x2:.1} {y2:.1}", x1 + bend, x2 - bend)
        };
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"{d}\" marker-end=\"url(#{})\"/>",
            if bad { "arrow-bad" } else { "arrow" }
        );
        if let Some(label) = &edge.label {
            let (lx, ly) = if edge.parent == edge.child {
                (px + NODE_W + 40.0, py + NODE_H / 2.0 + 4.0)
            } else if x2 <= x1 {
                ((px + cx) / 2.0 + NODE_W / 2.0, py.max(cy) + NODE_H + GAP_Y * 1.6)
            } else {
                ((x1 + x2) / 2.0, (y1 + y2) / 2.0 - 4.0)
            };
            let _ = write!(
                out,
                "<text class=\"elbl\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{}</text>",
                esc(&truncate(label, 14))
            );
        }
        out.push('\n');
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        let (x, y) = origin(i);
        let mut class = String::from(match node.shape {
            Shape::Model(_) => "node model",
            Shape::File => "node file",
            Shape::Missing => "node missing",
        });
        for mark in &node.marks {
            class.push(' ');
            class.push_str(mark);
        }
        let row = match node.shape {
            Shape::Model(Some(row)) => format!(" data-index=\"{row}\" tabindex=\"0\""),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<g class=\"{class}\"{row} transform=\"translate({x:.1} {y:.1})\"><title>{}</title>\
             <rect width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
             <text class=\"t1\" x=\"9\" y=\"17\">{}</text><text class=\"t2\" x=\"9\" y=\"33\">{}</text></g>",
            esc(&node.tooltip),
            esc(&truncate(&node.title, 28)),
            esc(&truncate(&node.sub, 31)),
        );
    }
    out.push_str("</g>\n</svg></div>\n");
    if !graph.problems.is_empty() {
        let _ = write!(out, "<h3>Problems ({})</h3>\n<ul class=\"problems\">\n", graph.problems.len());
        for problem in &graph.problems {
            let _ = writeln!(out, "<li>{}</li>", esc(problem));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(shape: Shape, title: &str) -> GNode {
        GNode { shape, title: title.to_owned(), sub: String::new(), tooltip: String::new(), marks: Vec::new() }
    }

    fn edge(parent: usize, child: usize) -> GEdge {
        GEdge { parent, child, label: None, marks: Vec::new() }
    }

    #[test]
    fn csp_hashes_are_base64_sha256() {
        // The SHA-256 of "" (a well-known value), as CSP writes it.
        assert_eq!(csp_hash(""), "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='");
    }

    #[test]
    fn the_csp_allows_only_the_page_own_inline_elements() {
        let csp = csp();
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 3, "{csp}");
        assert!(csp.contains(&csp_hash(&script_text())) && csp.contains(&csp_hash(NOSCRIPT_STYLE)), "{csp}");
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{0}b\tc"), "a\u{FFFD}b\tc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn a_chain_is_laid_out_in_layers_by_depth_and_parents_centred() {
        // file -> a -> b, a -> c; d alone.
        let graph = Graph {
            nodes: vec![
                node(Shape::File, "imagenet"),
                node(Shape::Model(Some(0)), "a"),
                node(Shape::Model(Some(1)), "b"),
                node(Shape::Model(Some(2)), "c"),
                node(Shape::Model(Some(3)), "d"),
            ],
            edges: vec![edge(0, 1), edge(1, 2), edge(1, 3)],
            problems: Vec::new(),
        };
        let l = layout(&graph);
        assert_eq!(l.at[0], (0, 0.5));
        assert_eq!(l.at[1], (1, 0.5));
        assert_eq!((l.at[2], l.at[3]), ((2, 0.0), (2, 1.0)));
        assert_eq!(l.isolated_from, Some(2.6));
        assert_eq!(l.at[4], (0, 2.6));
        assert_eq!(l.columns, ISOLATED_COLUMNS);
    }

    #[test]
    fn cycles_are_broken_for_the_layout() {
        // a -> b -> c -> a, and c -> d.
        let graph = Graph {
            nodes: ["a", "b", "c", "d"].map(|t| node(Shape::Model(None), t)).to_vec(),
            edges: vec![edge(0, 1), edge(1, 2), edge(2, 0), edge(2, 3)],
            problems: Vec::new(),
        };
        let l = layout(&graph);
        let columns: Vec<usize> = l.at.iter().map(|a| a.0).collect();
        assert_eq!(columns.iter().copied().collect::<std::collections::HashSet<_>>().len(), 3, "{l:?}");
        assert!(l.rows >= 1.0 && l.isolated_from.is_none(), "{l:?}");
        // Every node placed, none twice at the same spot.
        let mut spots: Vec<(usize, i64)> = l.at.iter().map(|&(c, r)| (c, (r * 10.0) as i64)).collect();
        spots.sort();
        spots.dedup();
        assert_eq!(spots.len(), 4, "{l:?}");
    }

    #[test]
    fn a_page_written_to_a_missing_folder_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("missing/page.html");
        assert!(write_atomically(&target, b"x").is_err());
        assert!(!target.exists());
        let target = dir.path().join("page.html");
        write_atomically(&target, b"<p>ok</p>").expect("written");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "<p>ok</p>");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "no temporary file left");
    }
}
