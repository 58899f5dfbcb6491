//! `pmf diff A B`: what differs between two models (`plums_model::diff`: metadata and build
//! parameters, by key path), grouped by section for people (`- before` / `+ after`), or one
//! JSON document. Each side is read by `plums_model::DiffSide::read`: checked quickly (no
//! checksum), and compared even when invalid if its metadata can be read (a warning says so).
//!
//! Exit codes as diff(1): 0 equal, 1 different, 2 when a side cannot be read or the command
//! line is wrong.

use std::path::Path;

use anstyle::{AnsiColor, Style};
use plums_model::{diff, Change, ChangeKind, DiffSection, DiffSide, Timestamp, ValidateOptions, Value};
use serde::Serialize;

use crate::cli::DiffArgs;
use crate::failure::{Failure, JsonFailure, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::location;
use crate::output::{errln, outln};
use crate::output::{
    human_path, human_time, offence_line, paint, printable, show_path, JsonOffence, JsonYaml, BOLD, DIM, KEY, WARN,
};

/// Red: what the first model has.
const BEFORE: Style = AnsiColor::Red.on_default();
/// Green: what the second model has.
const AFTER: Style = AnsiColor::Green.on_default();

/// A section's title for people.
fn title(section: DiffSection) -> &'static str {
    match section {
        DiffSection::Model => "model",
        DiffSection::Producer => "producer",
        DiffSection::Training => "training record",
        DiffSection::Checkpoints => "checkpoints",
        DiffSection::Configuration => "configuration",
        DiffSection::Initialisation => "initialisation",
        DiffSection::BuildParameters => "build parameters",
        _ => "other",
    }
}

/// A value on one line: its JSON form (strings quoted, mappings in their order), and for a
/// time in seconds, its UTC date too; [`printable`] (JSON escapes the controls, not the bidi
/// overrides).
fn one_line(key: &str, value: &Value) -> String {
    let json = serde_json::to_string(&JsonYaml(value)).unwrap_or_else(|_| "?".to_owned());
    let text = printable(&json).into_owned();
    let time = match value {
        Value::Int(i) => Some(Timestamp::Int(*i)),
        Value::Float(f) => Some(Timestamp::Float(*f)),
        _ => None,
    };
    match time {
        Some(t) if key.ends_with("_time") => format!("{text} ({})", human_time(t)),
        _ => text,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// One side in JSON: where, whether it is valid, its offences; or why it could not be read.
#[derive(Serialize)]
struct JsonSide {
    path: String,
    valid: bool,
    offences: Vec<JsonOffence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    section: &'static str,
    key: &'a str,
    kind: &'static str,
    before: Option<JsonYaml<'a>>,
    after: Option<JsonYaml<'a>>,
}

#[derive(Serialize)]
struct JsonDiff<'a> {
    a: Option<JsonSide>,
    b: Option<JsonSide>,
    equal: Option<bool>,
    changes: Vec<JsonChange<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

fn json_side(path: &Path, side: &Result<DiffSide, Failure>) -> JsonSide {
    match side {
        Ok(side) => JsonSide {
            path: show_path(path),
            valid: side.is_valid(),
            offences: side.offences.iter().map(JsonOffence::from).collect(),
            error: None,
            failure: None,
        },
        Err(failure) => JsonSide {
            path: show_path(path),
            valid: false,
            offences: Vec::new(),
            error: Some(failure.message.clone()),
            failure: Some(failure.to_json()),
        },
    }
}

fn json_change(change: &Change) -> JsonChange<'_> {
    JsonChange {
        section: change.section.as_str(),
        key: &change.key,
        kind: change.kind.as_str(),
        before: change.before.as_ref().map(JsonYaml),
        after: change.after.as_ref().map(JsonYaml),
    }
}

// ---------------------------------------------------------------------------------------------
// For people
// ---------------------------------------------------------------------------------------------

/// How a side is named in the header: its location, and its id.
fn header(mark: &str, path: &Path, side: &DiffSide) -> String {
    format!("{mark} {} (id {})", human_path(path), printable(&side.metadata.model.id))
}

fn print_human(a: (&Path, &DiffSide), b: (&Path, &DiffSide), changes: &[Change]) {
    if changes.is_empty() {
        outln!("{}", paint(DIM, "no difference (checksums not verified: the MD5s the metadata records are compared)"));
        return;
    }
    // One write for the whole report.
    let mut out = String::new();
    out.push_str(&paint(BEFORE, header("---", a.0, a.1)));
    out.push('\n');
    out.push_str(&paint(AFTER, header("+++", b.0, b.1)));
    out.push('\n');
    for section in DiffSection::ALL {
        let mut in_section = changes.iter().filter(|c| c.section == section).peekable();
        if in_section.peek().is_none() {
            continue;
        }
        out.push_str(&paint(BOLD, title(section)));
        out.push('\n');
        for change in in_section {
            let (mark, what) = match change.kind {
                ChangeKind::Added => ("+", "added"),
                ChangeKind::Removed => ("-", "removed"),
                _ => ("~", "changed"),
            };
            out.push_str(&format!(
                "  {mark} {} {}\n",
                paint(KEY, printable(&change.key)),
                paint(DIM, format!("({what})"))
            ));
            if let Some(before) = &change.before {
                out.push_str(&format!("      {}\n", paint(BEFORE, format!("- {}", one_line(&change.key, before)))));
            }
            if let Some(after) = &change.after {
                out.push_str(&format!("      {}\n", paint(AFTER, format!("+ {}", one_line(&change.key, after)))));
            }
        }
    }
    let n = changes.len();
    out.push_str(&paint(DIM, format!("{n} difference{}", if n == 1 { "" } else { "s" })));
    outln!("{out}");
}

/// The warning for a side that is invalid but was compared.
fn warn_invalid(path: &Path, side: &DiffSide) {
    let n = side.offences.len();
    errln!(
        "{} {} is not a valid PMF model ({n} offence{}): comparing what its metadata records",
        paint(WARN, "warning:"),
        human_path(path),
        if n == 1 { "" } else { "s" }
    );
    for offence in &side.offences {
        errln!("{}", offence_line(offence, "  "));
    }
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// Read one side; any failure is exit 2 (even an invalid model: nothing could be compared).
fn read(raw: &std::ffi::OsStr, options: &ValidateOptions) -> Result<DiffSide, Failure> {
    let path = Path::new(raw);
    let at = location::model_location(raw)?;
    let side = crate::progress::during(format!("reading {}", human_path(path)), || DiffSide::read(&at, options));
    side.map_err(|e| {
        let mut failure = Failure::from_library(e, path);
        failure.code = EXIT_USAGE;
        failure
    })
}

/// Run `pmf diff`; returns the exit code.
pub fn run(args: &DiffArgs) -> u8 {
    let (a_path, b_path) = (Path::new(&args.a), Path::new(&args.b));
    let storage = match location::storage_options(&args.storage) {
        Ok(s) => s,
        Err(failure) => {
            if !args.json {
                failure.report();
                return failure.code;
            }
            let doc = JsonDiff {
                a: None,
                b: None,
                equal: None,
                changes: Vec::new(),
                error: Some(failure.message.clone()),
                failure: Some(failure.to_json()),
            };
            return crate::failure::print_json(&doc, failure.code);
        }
    };
    let options = ValidateOptions::new().strict(false).storage(storage);
    let a = read(&args.a, &options);
    let b = read(&args.b, &options);
    let (a_side, b_side) = match (&a, &b) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let first = [&a, &b].into_iter().find_map(|s| s.as_ref().err());
            if args.json {
                let doc = JsonDiff {
                    a: Some(json_side(a_path, &a)),
                    b: Some(json_side(b_path, &b)),
                    equal: None,
                    changes: Vec::new(),
                    error: first.map(|f| f.message.clone()),
                    failure: first.map(Failure::to_json),
                };
                return crate::failure::print_json(&doc, EXIT_USAGE);
            }
            for side in [&a, &b] {
                if let Err(failure) = side {
                    failure.report();
                }
            }
            return EXIT_USAGE;
        }
    };
    let d = diff(a_side, b_side);
    let code = if d.is_empty() { EXIT_OK } else { EXIT_INVALID };
    if args.json {
        let doc = JsonDiff {
            a: Some(json_side(a_path, &a)),
            b: Some(json_side(b_path, &b)),
            equal: Some(d.is_empty()),
            changes: d.changes.iter().map(json_change).collect(),
            error: None,
            failure: None,
        };
        return crate::failure::print_json(&doc, code);
    }
    for (path, side) in [(a_path, a_side), (b_path, b_side)] {
        if !side.is_valid() {
            warn_invalid(path, side);
        }
    }
    print_human((a_path, a_side), (b_path, b_side), &d.changes);
    code
}
