//! `pmf ls LOCATION...`: every PMF model under folders or object-store prefixes, found and
//! checked by the library (`plums_model::list_models`: one walk or one listing, in parallel,
//! nothing outside LOCATION read), as an aligned table for people or one JSON document whose
//! entries extend those of `pmf validate --json` with the summary fields (shape in
//! docs/CLI.md). `--where KEY=VALUE` filters and `--sort KEY` orders on the summary's keys.
//! `--html FILE` writes the same models as one self-contained page (`html.rs`).

use std::cmp::Ordering;
use std::path::Path;

use plums_model::{list_models, InitialisationSummary, ListOptions, ModelSummary, Reference, Status};
use serde::Serialize;

use crate::cli::LsArgs;
use crate::failure::{Failure, JsonFailure, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::output::{errln, outln};
use crate::output::{
    human_bytes, paint, printable, rfc3339, show_path, JsonOffence, JsonRef, JsonTime, BAD, DIM, GOOD,
};
use crate::{html, location, progress};

/// A key of `--where` and `--sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Path,
    Name,
    Id,
    Producer,
    Version,
    Status,
    Valid,
    Latest,
    Initialisation,
    InitId,
    StartEpoch,
    LatestEpoch,
    EndEpoch,
    Checkpoints,
    Size,
    Offences,
}

/// Every key, by name.
const KEYS: [(&str, Key); 16] = [
    ("path", Key::Path),
    ("name", Key::Name),
    ("id", Key::Id),
    ("producer", Key::Producer),
    ("version", Key::Version),
    ("status", Key::Status),
    ("valid", Key::Valid),
    ("latest", Key::Latest),
    ("initialisation", Key::Initialisation),
    ("init_id", Key::InitId),
    ("start_epoch", Key::StartEpoch),
    ("latest_epoch", Key::LatestEpoch),
    ("end_epoch", Key::EndEpoch),
    ("checkpoints", Key::Checkpoints),
    ("size", Key::Size),
    ("offences", Key::Offences),
];

fn key_names() -> String {
    KEYS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The key named `name` (`--where` or `--sort`, for the message), or a usage failure listing
/// the keys.
fn parse_key(name: &str, option: &str) -> Result<Key, Failure> {
    KEYS.iter().find(|(n, _)| *n == name.trim()).map(|(_, k)| *k).ok_or_else(|| {
        Failure::usage(format!("unknown key {name:?} for {option}: expected one of {}", key_names())).hint(
            if option == "--sort" {
                format!("for example --sort latest_epoch; the keys are {}", key_names())
            } else {
                format!("for example {option} status=running; the keys are {}", key_names())
            },
        )
    })
}

/// One `--where KEY=VALUE`.
struct Filter {
    key: Key,
    pattern: String,
}

fn parse_filter(text: &str) -> Result<Filter, Failure> {
    let Some((key, pattern)) = text.split_once('=') else {
        return Err(Failure::usage(format!("invalid --where {text:?}: expected KEY=VALUE"))
            .hint(format!("for example --where status=running; the keys are {}", key_names())));
    };
    Ok(Filter { key: parse_key(key, "--where")?, pattern: pattern.to_owned() })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// One model listed, with the location it is shown under.
struct Row {
    /// The model's location as text: LOCATION joined with its relative path, or a URL.
    path: String,
    summary: ModelSummary,
}

/// A key's value for sorting: text or a number; `None` (unknown) sorts last.
enum SortValue {
    Text(Option<String>),
    Number(Option<i128>),
}

impl Row {
    /// Whether the metadata was read (else every field from it is unknown).
    fn known(&self) -> bool {
        self.summary.id.is_some()
    }

    /// The value of `key` as `--where` compares it (unknown: the empty text).
    fn text(&self, key: Key) -> String {
        match key {
            Key::Valid => self.summary.valid.to_string(),
            Key::Status => self.summary.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            _ => match self.sort_value(key) {
                SortValue::Text(t) => t.unwrap_or_default(),
                SortValue::Number(n) => n.map(|n| n.to_string()).unwrap_or_default(),
            },
        }
    }

    fn sort_value(&self, key: Key) -> SortValue {
        let s = &self.summary;
        let number = |n: Option<i64>| SortValue::Number(n.map(i128::from));
        match key {
            Key::Path => SortValue::Text(Some(self.path.clone())),
            Key::Name => SortValue::Text(s.name.clone()),
            Key::Id => SortValue::Text(s.id.clone()),
            Key::Producer => SortValue::Text(s.producer.clone()),
            Key::Version => SortValue::Text(s.producer_version.clone()),
            // In the order of a training's life.
            Key::Status => SortValue::Number(s.status.map(|st| match st {
                Status::Pending => 0,
                Status::Running => 1,
                Status::Finished => 2,
                Status::Failed => 3,
            })),
            // Invalid models first.
            Key::Valid => SortValue::Number(Some(i128::from(s.valid))),
            Key::Latest => SortValue::Text(s.latest.as_ref().map(Reference::to_string)),
            Key::Initialisation => SortValue::Text(self.known().then(|| init_kind(s).to_owned())),
            Key::InitId => SortValue::Text(match &s.initialisation {
                Some(InitialisationSummary::Model { id, .. }) => Some(id.clone()),
                _ => None,
            }),
            Key::StartEpoch => number(s.start_epoch),
            Key::LatestEpoch => number(s.latest_epoch),
            Key::EndEpoch => number(s.end_epoch),
            Key::Checkpoints => SortValue::Number(s.checkpoint_count.map(|n| n as i128)),
            Key::Size => SortValue::Number(s.checkpoint_bytes.map(i128::from)),
            Key::Offences => SortValue::Number(Some(s.offences.len() as i128)),
        }
    }
}

/// `none`, `file` or `pmf` (as the `kind` of the JSON `initialisation`).
fn init_kind(s: &ModelSummary) -> &'static str {
    match &s.initialisation {
        None => "none",
        Some(InitialisationSummary::WeightFile { .. }) => "file",
        Some(_) => "pmf",
    }
}

/// Unknown values last, whatever the key.
fn compare(a: &SortValue, b: &SortValue) -> Ordering {
    match (a, b) {
        (SortValue::Text(a), SortValue::Text(b)) => option_last(a.as_ref(), b.as_ref()),
        (SortValue::Number(a), SortValue::Number(b)) => option_last(a.as_ref(), b.as_ref()),
        _ => Ordering::Equal,
    }
}

fn option_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// One entry of `pmf ls --json`: the keys of a `pmf validate --json` entry, then the summary.
#[derive(Serialize)]
struct JsonEntry<'a> {
    path: String,
    valid: bool,
    strict: bool,
    checkpoints: bool,
    offences: Vec<JsonOffence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
    relative_path: Option<&'a str>,
    name: Option<&'a str>,
    id: Option<&'a str>,
    producer: Option<JsonProducer<'a>>,
    status: Option<&'static str>,
    start_epoch: Option<i64>,
    start_time: Option<JsonTime>,
    start_time_utc: Option<String>,
    latest_epoch: Option<i64>,
    latest_time: Option<JsonTime>,
    latest_time_utc: Option<String>,
    end_epoch: Option<i64>,
    end_time: Option<JsonTime>,
    end_time_utc: Option<String>,
    checkpoint_count: Option<usize>,
    checkpoint_bytes: Option<u64>,
    latest: Option<JsonRef<'a>>,
    initialisation: Option<JsonInitialisation<'a>>,
}

#[derive(Serialize)]
struct JsonProducer<'a> {
    name: &'a str,
    version_format: Option<&'a str>,
    version: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum JsonInitialisation<'a> {
    File { name: Option<&'a str>, path: &'a str },
    Pmf { name: Option<&'a str>, id: &'a str, checkpoint: JsonRef<'a> },
}

/// `pmf ls --json` output.
#[derive(Serialize)]
struct JsonList<'a> {
    models: Vec<JsonEntry<'a>>,
}

/// Print the `--json` document as `crate::failure::print_json` does (pretty, one final
/// newline; exit code 2 when stdout is closed or cannot be written), but written at once to
/// stdout: a listing of thousands of models is megabytes of JSON, which the line writer of
/// `outln!` would scan for colour codes (JSON has none: serde_json escapes control
/// characters) and copy once more.
fn print_json(doc: &JsonList<'_>) -> u8 {
    use std::io::Write;
    let Ok(mut bytes) = serde_json::to_vec_pretty(doc) else {
        // Reported as print_json reports it.
        return crate::failure::print_json(doc, EXIT_OK);
    };
    bytes.push(b'\n');
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            errln!("error: cannot write to stdout: {e}");
        }
        std::process::exit(i32::from(EXIT_USAGE));
    }
    EXIT_OK
}

/// The entry of a LOCATION that could not be listed: no summary, the failure.
fn json_failed(path: String, strict: bool, failure: &Failure) -> JsonEntry<'static> {
    JsonEntry {
        path,
        valid: false,
        strict,
        checkpoints: true,
        offences: Vec::new(),
        error: Some(failure.message.clone()),
        failure: Some(failure.to_json()),
        relative_path: None,
        name: None,
        id: None,
        producer: None,
        status: None,
        start_epoch: None,
        start_time: None,
        start_time_utc: None,
        latest_epoch: None,
        latest_time: None,
        latest_time_utc: None,
        end_epoch: None,
        end_time: None,
        end_time_utc: None,
        checkpoint_count: None,
        checkpoint_bytes: None,
        latest: None,
        initialisation: None,
    }
}

fn json_entry(row: &Row) -> JsonEntry<'_> {
    let s = &row.summary;
    let failure = s.error.clone().map(|e| Failure::from_library(e, Path::new(&row.path)));
    JsonEntry {
        path: row.path.clone(),
        valid: s.valid,
        strict: s.strict,
        checkpoints: true,
        offences: s.offences.iter().map(JsonOffence::from).collect(),
        error: failure.as_ref().map(|f| f.message.clone()),
        failure: failure.as_ref().map(Failure::to_json),
        relative_path: Some(&s.relative_path),
        name: s.name.as_deref(),
        id: s.id.as_deref(),
        producer: s.producer.as_deref().map(|name| JsonProducer {
            name,
            version_format: s.producer_version_format.as_deref(),
            version: s.producer_version.as_deref(),
        }),
        status: s.status.map(Status::as_str),
        start_epoch: s.start_epoch,
        start_time: s.start_time.map(JsonTime),
        start_time_utc: s.start_time.and_then(rfc3339),
        latest_epoch: s.latest_epoch,
        latest_time: s.latest_time.map(JsonTime),
        latest_time_utc: s.latest_time.and_then(rfc3339),
        end_epoch: s.end_epoch,
        end_time: s.end_time.map(JsonTime),
        end_time_utc: s.end_time.and_then(rfc3339),
        checkpoint_count: s.checkpoint_count,
        checkpoint_bytes: s.checkpoint_bytes,
        latest: s.latest.as_ref().map(JsonRef),
        initialisation: s.initialisation.as_ref().and_then(|init| match init {
            InitialisationSummary::WeightFile { name, path } => {
                Some(JsonInitialisation::File { name: name.as_deref(), path })
            }
            InitialisationSummary::Model { name, id, checkpoint } => {
                Some(JsonInitialisation::Pmf { name: name.as_deref(), id, checkpoint: JsonRef(checkpoint) })
            }
            // A kind the library may add later: no JSON shape defined yet.
            _ => None,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

const HEADER: [&str; 11] =
    ["PATH", "NAME", "ID", "PRODUCER", "STATUS", "EPOCHS", "CKPTS", "SIZE", "LATEST", "INIT", "VALID"];
/// The columns aligned to the right (numbers).
const RIGHT: [usize; 2] = [6, 7];

fn dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The cells of a row, without style.
fn cells(row: &Row) -> [String; 11] {
    let s = &row.summary;
    let epoch = |e: Option<i64>| dash(e.map(|e| e.to_string()));
    let epochs = if row.known() {
        format!("{}/{}/{}", epoch(s.start_epoch), epoch(s.latest_epoch), epoch(s.end_epoch))
    } else {
        "-".to_owned()
    };
    let producer = s.producer.as_ref().map(|p| format!("{p}@{}", s.producer_version.as_deref().unwrap_or("?")));
    let init = match &s.initialisation {
        _ if !row.known() => "-".to_owned(),
        None => "none".to_owned(),
        Some(InitialisationSummary::WeightFile { name, path }) => {
            let file = Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned());
            format!("file:{}", name.clone().or(file).unwrap_or_else(|| path.clone()))
        }
        Some(InitialisationSummary::Model { id, checkpoint, .. }) => format!("pmf:{id}@{}", checkpoint.quoted()),
        Some(_) => "?".to_owned(),
    };
    let verdict = if s.error.is_some() {
        "unreadable".to_owned()
    } else if s.valid {
        "valid".to_owned()
    } else {
        let n = s.offences.len();
        format!("invalid ({n} offence{})", plural(n))
    };
    // Model data shown as `printable` text: a name or path cannot drive the terminal or forge
    // a row (the widths are those of the escaped text).
    let text = |t: String| printable(&t).into_owned();
    [
        text(row.path.clone()),
        dash(s.name.clone().map(text)),
        dash(s.id.clone().map(text)),
        dash(producer.map(text)),
        dash(s.status.map(|st| st.as_str().to_owned())),
        epochs,
        dash(s.checkpoint_count.map(|n| n.to_string())),
        dash(s.checkpoint_bytes.map(human_bytes)),
        dash(s.latest.as_ref().map(|r| text(r.quoted()))),
        text(init),
        verdict,
    ]
}

fn print_table(rows: &[Row], strict: bool) {
    let table: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for cells in &table {
        for (w, cell) in widths.iter_mut().zip(cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 11]| -> String {
        let mut out = Vec::with_capacity(cells.len());
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            out.push(match i {
                _ if i == cells.len() - 1 => cell.clone(),
                _ if RIGHT.contains(&i) => format!("{cell:>width$}"),
                _ => format!("{cell:<width$}"),
            });
        }
        out.join("  ")
    };
    // One write for the whole table (thousands of lines).
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&paint(DIM, line(&HEADER.map(str::to_owned))));
        out.push('\n');
    }
    for (row, cells) in rows.iter().zip(&table) {
        let mut text = line(cells);
        // The verdict, last, is painted after alignment (styles have no width).
        let verdict = &cells[cells.len() - 1];
        text.truncate(text.len() - verdict.len());
        let style = if row.summary.valid { GOOD } else { BAD };
        out.push_str(&text);
        out.push_str(&paint(style, verdict));
        out.push('\n');
    }
    let n_valid = rows.iter().filter(|r| r.summary.valid).count();
    let n = rows.len();
    let note = if strict { "" } else { " (checksums not verified)" };
    out.push_str(&paint(DIM, format!("{n} model{}: {n_valid} valid, {} invalid{note}", plural(n), n - n_valid)));
    outln!("{out}");
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// A failure before any location was listed (bad --where, --sort or --storage-option): with
/// `--json`, one document `{"models": [], "error": ..., "failure": {...}}`.
fn fail_early(json: bool, failure: Failure) -> u8 {
    if !json {
        failure.report();
        return failure.code;
    }
    let doc = serde_json::json!({ "models": [], "error": failure.message, "failure": failure.to_json() });
    outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    failure.code
}

/// Run `pmf ls`; returns the exit code.
pub fn run(args: &LsArgs) -> u8 {
    let prepared = (|| -> Result<_, Failure> {
        let filters = args.filters.iter().map(|f| parse_filter(f)).collect::<Result<Vec<_>, _>>()?;
        // Without --sort, each location's rows come in path order, the locations in the order
        // given; --sort (also --sort path) orders every listed row.
        let sort = args.sort.as_deref().map(|k| parse_key(k, "--sort")).transpose()?;
        let storage = location::storage_options(&args.storage)?;
        // The page is a local file: a URL there is refused before anything is listed.
        let html = args.html.as_deref().map(|f| location::local_file(f, "--html FILE")).transpose()?;
        Ok((filters, sort, storage, html))
    })();
    let (filters, sort, storage, html) = match prepared {
        Ok(p) => p,
        Err(failure) => return fail_early(args.json, failure),
    };
    let options = ListOptions::new().depth(args.depth).strict(args.strict).storage(storage.clone());
    let mut code = EXIT_OK;
    let mut rows: Vec<Row> = Vec::new();
    let mut failed: Vec<(String, Failure)> = Vec::new();
    for raw in &args.paths {
        let path = Path::new(raw);
        let listed = location::model_location(raw).and_then(|at| {
            progress::during(format!("listing models under {}", show_path(path)), || list_models(&at, &options))
                .map_err(|e| Failure::from_library(e, path))
        });
        match listed {
            Ok(found) => {
                rows.extend(found.into_iter().map(|summary| Row { path: summary.location.to_string(), summary }))
            }
            Err(failure) => {
                code = code.max(failure.code).max(EXIT_USAGE);
                failed.push((location::shown(raw), failure));
            }
        }
    }
    let listed = rows.len();
    rows.retain(|row| filters.iter().all(|f| matches(&f.pattern, &row.text(f.key))));
    if let Some(sort) = sort {
        // Stable: equal keys keep the order of the locations and paths.
        rows.sort_by(|a, b| compare(&a.sort_value(sort), &b.sort_value(sort)));
    }
    if rows.iter().any(|r| !r.summary.valid) {
        code = code.max(EXIT_INVALID);
    }
    let page_written = match &html {
        None => None,
        Some(file) => {
            let written = write_page(file, args, &rows, &failed, storage);
            if let Err(failure) = &written {
                code = code.max(failure.code);
            }
            Some((file, written))
        }
    };
    if let Some((_, Err(failure))) = &page_written {
        failure.report();
    }
    if args.json {
        let mut doc = JsonList { models: rows.iter().map(json_entry).collect() };
        doc.models.extend(failed.iter().map(|(path, failure)| json_failed(path.clone(), args.strict, failure)));
        if print_json(&doc) != EXIT_OK {
            return EXIT_USAGE;
        }
        return code;
    }
    match &page_written {
        None => print_table(&rows, args.strict),
        Some((file, Ok(()))) => {
            let n = rows.len();
            let n_valid = rows.iter().filter(|r| r.summary.valid).count();
            let file = crate::output::human_path(file);
            outln!("wrote {file}: {n} model{}, {n_valid} valid, {} invalid", plural(n), n - n_valid);
        }
        Some((_, Err(_))) => {}
    }
    for row in rows.iter().filter(|r| r.summary.error.is_some()) {
        if let Some(e) = row.summary.error.clone() {
            Failure::from_library(e, Path::new(&row.path)).report();
        }
    }
    for (_, failure) in &failed {
        failure.report();
    }
    if rows.is_empty() && failed.is_empty() {
        if listed > 0 {
            errln!("{}", paint(DIM, format!("no model matches --where ({listed} listed)")));
        } else {
            errln!("{}", paint(DIM, "no PMF model found (a model is a folder holding metadata.yaml)"));
        }
    }
    code
}

/// `--html FILE`: the listed models (after `--where` and `--sort`) as one page.
fn write_page(
    file: &Path,
    args: &LsArgs,
    rows: &[Row],
    failed: &[(String, Failure)],
    storage: plums_model::StorageOptions,
) -> Result<(), Failure> {
    let page = html::Page {
        locations: args.paths.iter().map(|p| location::shown(p)).collect(),
        header: HEADER,
        rows: rows
            .iter()
            .map(|row| html::Listed {
                path: &row.path,
                summary: &row.summary,
                cells: cells(row),
                error: row.summary.error.clone().map(|e| Failure::from_library(e, Path::new(&row.path)).message),
            })
            .collect(),
        failed: failed.iter().map(|(path, failure)| (path.clone(), failure.message.clone())).collect(),
        strict: args.strict,
        filters: args.filters.clone(),
        storage,
    };
    progress::during(format!("writing {}", show_path(file)), || html::write(file, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("abc", "abc") && !matches("abc", "abcd"));
        assert!(matches("det*", "detector") && matches("*tor", "detector") && matches("d*t*r", "detector"));
        assert!(matches("*", "") && matches("", "") && !matches("", "x"));
        assert!(!matches("a*a", "a"), "the two ends do not overlap");
        assert!(matches("*-0001", "backbone-0001") && !matches("*-0002", "backbone-0001"));
    }

    #[test]
    fn unknown_keys_are_usage_errors_listing_the_keys() {
        let f = parse_filter("colour=red").err().expect("refused");
        assert_eq!(f.code, EXIT_USAGE);
        assert!(
            f.message.contains("unknown key \"colour\" for --where") && f.message.contains("status"),
            "{}",
            f.message
        );
        assert!(parse_filter("status").is_err());
        assert!(parse_key("size", "--sort").is_ok() && parse_key("colour", "--sort").is_err());
        let f = parse_filter("name=a=b").expect("a value may hold =");
        assert_eq!((f.key, f.pattern.as_str()), (Key::Name, "a=b"));
    }

    #[test]
    fn unknown_values_sort_last() {
        let (some, none) = (SortValue::Number(Some(3)), SortValue::Number(None));
        assert_eq!(compare(&some, &none), Ordering::Less);
        assert_eq!(compare(&SortValue::Text(Some("b".into())), &SortValue::Text(Some("a".into()))), Ordering::Greater);
    }
}
