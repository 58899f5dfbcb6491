//! `pmf validate LOCATION...`: check models with the library (`plums_model::check_at`: local
//! folders or object-store prefixes) and report every offence, for people (one line per model,
//! offences indented) or as one JSON document. Strict validation shows a bar of the bytes
//! hashed (or downloaded) of the total on a terminal, never on a pipe or with `--json`.

use std::path::Path;
use std::sync::Arc;

use plums_model::{check_at, ValidateOptions};
use serde::Serialize;

use crate::cli::ValidateArgs;
use crate::failure::{Failure, JsonFailure, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::output::outln;
use crate::output::{human_path, offence_line, paint, show_path, JsonOffence, BAD, DIM, GOOD};
use crate::{location, progress};

/// The verdict on one path.
#[derive(Debug, Serialize)]
pub struct JsonModel {
    /// The path as given.
    pub path: String,
    /// Whether the model is valid.
    pub valid: bool,
    /// Whether checksums were verified.
    pub strict: bool,
    /// Whether checkpoint files were required.
    pub checkpoints: bool,
    /// Every offence (empty when valid, or when the path could not be examined).
    pub offences: Vec<JsonOffence>,
    /// Why the path could not be examined (missing, unreadable); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The same failure as data (kind, exit code, path, hint, ...); present with `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<JsonFailure>,
}

/// `pmf validate --json` output.
#[derive(Debug, Serialize)]
pub struct JsonReport {
    /// One entry per path, in the order given.
    pub models: Vec<JsonModel>,
}

/// Run `pmf validate`; returns the exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    let storage = match location::storage_options(&args.storage) {
        Ok(s) => s,
        Err(failure) => return fail_early(args.json, failure),
    };
    let mut options = ValidateOptions::new().strict(!args.quick).checkpoints(!args.no_checkpoints).storage(storage);
    // The library tells the meter of the bytes it hashes only when a bar may be shown.
    let meter = progress::wanted(args.json).then(|| Arc::new(progress::Meter::default()));
    if let Some(m) = &meter {
        options = options.progress(m.clone());
    }
    let mut code = EXIT_OK;
    let mut report = JsonReport { models: Vec::new() };
    let (mut n_valid, mut n_invalid, mut n_error) = (0usize, 0usize, 0usize);
    for raw in &args.paths {
        let path = Path::new(raw);
        let what = if options.strict { "validating (verifying checksums)" } else { "validating" };
        let outcome = match location::model_location(raw) {
            Ok(at) => {
                progress::measuring(format!("{what} {}", show_path(path)), meter.as_ref(), || check_at(&at, &options))
                    .map_err(|e| Failure::from_library(e, path))
            }
            Err(failure) => Err(failure),
        };
        let mut entry = JsonModel {
            path: location::shown(raw),
            valid: false,
            strict: options.strict,
            checkpoints: options.checkpoints,
            offences: Vec::new(),
            error: None,
            failure: None,
        };
        match outcome {
            Ok(checked) => {
                entry.valid = checked.is_valid();
                entry.offences = checked.offences.iter().map(JsonOffence::from).collect();
                if entry.valid {
                    n_valid += 1;
                } else {
                    n_invalid += 1;
                    code = code.max(EXIT_INVALID);
                }
                if !args.json {
                    print_human(path, &checked.offences, &options);
                }
            }
            Err(failure) => {
                n_error += 1;
                // check_at() fails only when the path cannot be examined: exit 2.
                code = code.max(failure.code).max(EXIT_USAGE);
                entry.error = Some(failure.message.clone());
                entry.failure = Some(failure.to_json());
                if !args.json {
                    failure.report();
                }
            }
        }
        report.models.push(entry);
    }
    if args.json {
        if crate::failure::print_json(&report, EXIT_OK) != EXIT_OK {
            return EXIT_USAGE;
        }
    } else if args.paths.len() > 1 {
        let mut parts = vec![format!("{n_valid} valid"), format!("{n_invalid} invalid")];
        if n_error > 0 {
            parts.push(format!("{n_error} not examined"));
        }
        outln!("{}", paint(DIM, parts.join(", ")));
    }
    code
}

/// A failure before any model was looked at (a bad --storage-option): with `--json`, one
/// document `{"models": [], "error": ..., "failure": {...}}`.
fn fail_early(json: bool, failure: Failure) -> u8 {
    if !json {
        failure.report();
        return failure.code;
    }
    let doc = serde_json::json!({ "models": [], "error": failure.message, "failure": failure.to_json() });
    outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    failure.code
}

fn print_human(path: &Path, offences: &[plums_model::Offence], options: &ValidateOptions) {
    let mut notes = Vec::new();
    if !options.strict {
        notes.push("checksums not verified");
    }
    if !options.checkpoints {
        notes.push("checkpoint files not checked");
    }
    let notes =
        if notes.is_empty() { String::new() } else { format!(" {}", paint(DIM, format!("({})", notes.join(", ")))) };
    if offences.is_empty() {
        outln!("{} {}{notes}", paint(GOOD, "valid  "), human_path(path));
    } else {
        let n = offences.len();
        outln!(
            "{} {}{notes} {}",
            paint(BAD, "invalid"),
            human_path(path),
            paint(DIM, format!("({n} offence{})", if n == 1 { "" } else { "s" }))
        );
        for offence in offences {
            outln!("{}", offence_line(offence, "    "));
        }
    }
}
