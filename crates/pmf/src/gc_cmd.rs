//! `pmf gc LOCATION...`: remove what interrupted saves left behind, through the library's
//! `plums_model::gc` (every model found as `pmf ls` finds it, each under its writer lock; the
//! leftovers a save would remove; on object storage, the unreferenced objects at PMF's paths).
//! One line per item removed (`removed <path> (<kind>, <size>)`, `would remove` with
//! `--dry-run`), one per model or leftover skipped, a summary; or one JSON document (shape in
//! docs/CLI.md).
//!
//! Exit codes: 0 when everything found was collected (or there was nothing), 1 when something
//! was skipped (a model another writer holds, the marker of an interrupted save on object
//! storage, a link, a look-alike folder of a folder that is not PMF's, a leftover that could
//! not be removed): run gc again later; 2 when a LOCATION cannot be listed, a model's folder or
//! store failed (I/O, storage errors), or the command line is wrong (2 wins over 1).

use std::path::Path;

use plums_model::{gc, GcItem, GcOptions, GcReport, GcSkip, Location, SkipKind};
use serde::Serialize;

use crate::cli::GcArgs;
use crate::failure::{print_json, Failure, JsonFailure, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::output::{errln, human_bytes, human_path, outln, paint, printable, show_path, DIM, WARN};
use crate::{location, progress};

/// `pmf gc --json` output.
#[derive(Serialize)]
struct JsonGc {
    dry_run: bool,
    /// The bytes freed (or that would be).
    freed_bytes: u64,
    /// How many items were removed (or would be).
    items: usize,
    /// How many models (and folders with leftovers next to them) were examined.
    models_examined: usize,
    /// How many models had something removed.
    models_cleaned: usize,
    removed: Vec<JsonItem>,
    completed: Vec<JsonCompleted>,
    skipped: Vec<JsonSkip>,
    /// The LOCATIONs that could not be collected at all.
    errors: Vec<JsonError>,
}

#[derive(Serialize)]
struct JsonItem {
    path: String,
    model: String,
    kind: &'static str,
    bytes: u64,
    freed_bytes: u64,
}

#[derive(Serialize)]
struct JsonCompleted {
    model: String,
    from: String,
}

#[derive(Serialize)]
struct JsonSkip {
    path: String,
    kind: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

#[derive(Serialize)]
struct JsonError {
    path: String,
    error: String,
    failure: JsonFailure,
}

/// The exit code a skip calls for: 2 for an I/O or storage failure, 1 otherwise.
fn skip_code(skip: &GcSkip) -> u8 {
    match (&skip.kind, &skip.error) {
        (SkipKind::Failed, _) => EXIT_USAGE,
        _ => EXIT_INVALID,
    }
}

fn item_line(item: &GcItem, dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut what = format!("{}, {}", item.kind.describe(), human_bytes(item.bytes));
    if item.freed_bytes < item.bytes {
        what.push_str(&format!(", {} freed: the rest is linked from the model", human_bytes(item.freed_bytes)));
    }
    format!("{verb} {} ({what})", printable(&item.location.to_string()))
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `freed N bytes in M items across K models` (what a dry run would free).
fn summary(report: &GcReport) -> String {
    let verb = if report.dry_run { "would free" } else { "freed" };
    let note = if report.dry_run { "; nothing was changed" } else { "" };
    format!(
        "{verb} {} in {} across {} ({}; {} examined){note}",
        plural(report.freed_bytes as usize, "byte"),
        plural(report.removed.len(), "item"),
        plural(report.models_cleaned(), "model"),
        human_bytes(report.freed_bytes),
        plural(report.models_examined, "model"),
    )
}

/// Run `pmf gc`; returns the exit code.
pub fn run(args: &GcArgs) -> u8 {
    let storage = match location::storage_options(&args.storage) {
        Ok(s) => s,
        Err(failure) => return fail_early(args.json, args.dry_run, failure),
    };
    let options =
        GcOptions::new().dry_run(args.dry_run).depth(args.depth).storage(storage).lock_timeout(
            std::time::Duration::try_from_secs_f64(args.lock_timeout).unwrap_or(std::time::Duration::MAX),
        );
    let mut total = GcReport::default();
    total.dry_run = args.dry_run;
    let mut failed: Vec<(String, Failure)> = Vec::new();
    for raw in &args.paths {
        let path = Path::new(raw);
        let what = if args.dry_run { "looking for leftovers under" } else { "collecting leftovers under" };
        let outcome = location::model_location(raw).and_then(|at: Location| {
            progress::during(format!("{what} {}", human_path(path)), || gc(&at, &options))
                .map_err(|e| Failure::from_library(e, path))
        });
        match outcome {
            Ok(report) => {
                total.removed.extend(report.removed);
                total.completed.extend(report.completed);
                total.skipped.extend(report.skipped);
                total.freed_bytes += report.freed_bytes;
                total.models_examined += report.models_examined;
            }
            Err(failure) => failed.push((show_path(path), failure)),
        }
    }
    let mut code = EXIT_OK;
    for skip in &total.skipped {
        code = code.max(skip_code(skip));
    }
    if !failed.is_empty() {
        code = EXIT_USAGE;
    }
    if args.json {
        let doc = JsonGc {
            dry_run: total.dry_run,
            freed_bytes: total.freed_bytes,
            items: total.removed.len(),
            models_examined: total.models_examined,
            models_cleaned: total.models_cleaned(),
            removed: total
                .removed
                .iter()
                .map(|i| JsonItem {
                    path: i.location.to_string(),
                    model: i.model.to_string(),
                    kind: i.kind.as_str(),
                    bytes: i.bytes,
                    freed_bytes: i.freed_bytes,
                })
                .collect(),
            completed: total
                .completed
                .iter()
                .map(|c| JsonCompleted { model: show_path(&c.model), from: show_path(&c.from) })
                .collect(),
            skipped: total
                .skipped
                .iter()
                .map(|s| JsonSkip {
                    path: s.location.to_string(),
                    kind: s.kind.as_str(),
                    reason: s.reason.clone(),
                    failure: s
                        .error
                        .clone()
                        .map(|e| Failure::from_library(e, Path::new(&s.location.to_string())).to_json()),
                })
                .collect(),
            errors: failed
                .iter()
                .map(|(path, f)| JsonError { path: path.clone(), error: f.message.clone(), failure: f.to_json() })
                .collect(),
        };
        if print_json(&doc, EXIT_OK) != EXIT_OK {
            return EXIT_USAGE;
        }
        return code;
    }
    for completed in &total.completed {
        let verb = if total.dry_run { "would complete" } else { "completed" };
        outln!(
            "{verb} {}: the interrupted save's tree {} put in place",
            human_path(&completed.model),
            human_path(&completed.from)
        );
    }
    for item in &total.removed {
        outln!("{}", item_line(item, total.dry_run));
    }
    for skip in &total.skipped {
        errln!("{} {}: {}", paint(WARN, "skipped"), printable(&skip.location.to_string()), printable(&skip.reason));
    }
    outln!("{}", paint(DIM, summary(&total)));
    for (_, failure) in &failed {
        failure.report();
    }
    code
}

/// A failure before any location was collected (a bad --storage-option): with `--json`, one
/// document with no item and the failure (`dry_run` as asked).
fn fail_early(json: bool, dry_run: bool, failure: Failure) -> u8 {
    if !json {
        failure.report();
        return failure.code;
    }
    let doc = serde_json::json!({
        "dry_run": dry_run, "freed_bytes": 0, "items": 0, "models_examined": 0, "models_cleaned": 0,
        "removed": [], "completed": [], "skipped": [],
        "errors": [{"path": null, "error": failure.message, "failure": failure.to_json()}],
    });
    outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    failure.code
}
