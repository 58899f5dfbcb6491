//! `pmf checkpoint prune`: remove the checkpoints that a retention policy does not keep.
//!
//! The policy is the library's `Retention` (its rules, checked by the library: an unusable
//! policy is an `invalid_retention` failure, exit 2); the model is loaded and saved as by the
//! other writing commands (`edit::load`, `edit::save`: a folder or an object-store URL, the
//! save's crash-safety and its refusal of concurrent changes), and the save removes the files
//! of the checkpoints the model no longer registers. A `--keep` reference the model does not
//! have is refused before anything is changed (a typo must not cost a checkpoint).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use plums_model::{KeepReason, Location, Model, Reference, Retention, SaveOptions, Selection, ValidateOptions};
use serde::Serialize;

use crate::cli::CheckpointPruneArgs;
use crate::edit;
use crate::failure::{parse_reference, print_json, Failure, JsonFailure, EXIT_OK};
use crate::location::Target;
use crate::output::{errln, human_bytes, outln, paint, show_path, DIM};
use crate::progress;

/// A checkpoint the policy removes.
struct Removed {
    reference: Reference,
    epoch: Option<i64>,
    /// Its file in the model (`data/checkpoints/3.pt`), if known.
    path: Option<String>,
    /// The file's size, if known.
    size: Option<u64>,
    /// Whether a kept checkpoint uses the same file (which then stays).
    file_kept: bool,
}

/// What a prune did (or would do, with `--dry-run`).
struct Pruned {
    dry_run: bool,
    /// Whether the model was saved (not on a dry run, nor when nothing is removed).
    saved: bool,
    removed: Vec<Removed>,
    /// The kept references, their epochs and why they are kept.
    kept: Vec<(Reference, Option<i64>, Vec<KeepReason>)>,
    /// The bytes of the files deleted (or that would be), when every size is known.
    freed: Option<u64>,
}

impl Pruned {
    /// The summary line: `kept 4, removed 6, freed 54 B`.
    fn summary(&self) -> String {
        let (kept, removed) = (self.kept.len(), self.removed.len());
        let freed = self.freed.map(human_bytes);
        match (self.dry_run, removed, freed) {
            (_, 0, _) => format!("nothing to remove: kept {kept}"),
            (false, _, Some(freed)) => format!("kept {kept}, removed {removed}, freed {freed}"),
            (false, _, None) => format!("kept {kept}, removed {removed}"),
            (true, _, Some(freed)) => format!("dry run: would keep {kept}, remove {removed}, free {freed}"),
            (true, _, None) => format!("dry run: would keep {kept}, remove {removed}"),
        }
    }
}

/// `--json` output of `pmf checkpoint prune`.
#[derive(Serialize)]
struct JsonPrune {
    /// The model, as given.
    path: String,
    /// Whether the model was saved.
    saved: bool,
    /// Whether this was a dry run.
    dry_run: bool,
    /// The summary (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The removed checkpoints (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<Vec<JsonRemoved>>,
    /// The kept checkpoints (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<Vec<JsonKept>>,
    /// The bytes freed, or null when a size is unknown (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    freed_bytes: Option<Option<u64>>,
    /// What is wrong (absent on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The failure as data (absent on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

/// A removed checkpoint in JSON.
#[derive(Serialize)]
struct JsonRemoved {
    #[serde(serialize_with = "json_ref")]
    reference: Reference,
    epoch: Option<i64>,
    path: Option<String>,
    size: Option<u64>,
    file_kept: bool,
}

/// A kept checkpoint in JSON.
#[derive(Serialize)]
struct JsonKept {
    #[serde(serialize_with = "json_ref")]
    reference: Reference,
    epoch: Option<i64>,
    reasons: Vec<&'static str>,
}

fn json_ref<S: serde::Serializer>(r: &Reference, s: S) -> Result<S::Ok, S::Error> {
    crate::output::JsonRef(r).serialize(s)
}

/// `pmf checkpoint prune`: run it and report; returns the exit code.
pub fn run(args: &CheckpointPruneArgs) -> u8 {
    let dest = Path::new(&args.dest);
    let outcome = prune(args);
    let code = outcome.as_ref().map_or_else(|f| f.code, |_| EXIT_OK);
    if !args.edit.json {
        match outcome {
            Ok(pruned) => print_human(dest, &pruned),
            Err(failure) => failure.report(),
        }
        return code;
    }
    let mut out = JsonPrune {
        path: show_path(dest),
        saved: false,
        dry_run: args.dry_run,
        message: None,
        removed: None,
        kept: None,
        freed_bytes: None,
        error: None,
        failure: None,
    };
    match outcome {
        Ok(pruned) => {
            out.saved = pruned.saved;
            out.message = Some(pruned.summary());
            out.freed_bytes = Some(pruned.freed);
            out.kept = Some(
                pruned
                    .kept
                    .into_iter()
                    .map(|(reference, epoch, reasons)| JsonKept {
                        reference,
                        epoch,
                        reasons: reasons.into_iter().map(KeepReason::as_str).collect(),
                    })
                    .collect(),
            );
            out.removed = Some(
                pruned
                    .removed
                    .into_iter()
                    .map(|r| JsonRemoved {
                        reference: r.reference,
                        epoch: r.epoch,
                        path: r.path,
                        size: r.size,
                        file_kept: r.file_kept,
                    })
                    .collect(),
            );
        }
        Err(failure) => {
            out.error = Some(failure.message.clone());
            out.failure = Some(failure.to_json());
        }
    }
    print_json(&out, code)
}

fn print_human(dest: &Path, pruned: &Pruned) {
    let verb = if pruned.dry_run { "would remove" } else { "removed" };
    for r in &pruned.removed {
        let mut what = vec![match r.epoch {
            Some(e) => format!("epoch {e}"),
            None => "no epoch".to_owned(),
        }];
        match (&r.path, r.file_kept) {
            (Some(path), true) => what.push(format!("{path} kept: another kept checkpoint uses it")),
            (Some(path), false) => what.push(path.clone()),
            (None, _) => {}
        }
        if let (Some(size), false) = (r.size, r.file_kept) {
            what.push(human_bytes(size));
        }
        outln!("{verb} checkpoint {} ({})", r.reference.quoted(), what.join(", "));
    }
    let verb = if pruned.dry_run { "would keep" } else { "kept" };
    for (reference, epoch, reasons) in &pruned.kept {
        let epoch = epoch.map(|e| format!("epoch {e}")).unwrap_or_else(|| "no epoch".to_owned());
        let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        outln!("{}", paint(DIM, format!("{verb} checkpoint {} ({epoch}): {}", reference.quoted(), reasons.join(", "))));
    }
    let note = if pruned.dry_run { "; nothing was changed" } else { "" };
    outln!("{}{note} {}", pruned.summary(), paint(DIM, format!("({})", show_path(dest))));
}

/// The policy of the command line (checked by the library).
fn policy(args: &CheckpointPruneArgs, dest: &Target) -> Result<Retention, Failure> {
    let mut policy = Retention::new();
    if let Some(n) = args.keep_last {
        policy = policy.last(n);
    }
    if let Some(k) = args.keep_every {
        policy = policy.every(k);
    }
    let pins = args.keep.iter().map(|text| parse_reference(text, args.ref_str)).collect::<Result<Vec<_>, _>>()?;
    policy = policy.keep(pins);
    policy.check().map_err(|e| Failure::from_library(e, dest.path()))?;
    Ok(policy)
}

fn prune(args: &CheckpointPruneArgs) -> Result<Pruned, Failure> {
    let dest = &Target::of(&args.dest, &args.edit.storage)?;
    let policy = policy(args, dest)?;
    let mut model = edit::load(dest)?;
    let selection = policy.select(&model.checkpoint_collection).map_err(|e| Failure::from_library(e, dest.path()))?;
    if !selection.unknown_pins.is_empty() {
        return Err(unknown_pins(&model, &selection.unknown_pins).at(dest.path()));
    }
    let mut pruned = describe(&model, dest, &selection, args.dry_run);
    if !args.dry_run && !pruned.removed.is_empty() {
        let applied = model.checkpoint_collection.prune(&policy).map_err(|e| Failure::from_library(e, dest.path()))?;
        debug_assert_eq!(applied, selection);
        // The save removes the files the model no longer registers.
        edit::save(&mut model, dest, &args.edit, SaveOptions::new())?;
        pruned.saved = true;
    }
    Ok(pruned)
}

/// The refusal of `--keep` references the model does not register (exit 2, nothing changed).
fn unknown_pins(model: &Model, unknown: &[Reference]) -> Failure {
    let names: Vec<String> = unknown.iter().map(Reference::quoted).collect();
    let message = match names.as_slice() {
        [one] => format!("--keep {one}: checkpoint reference {one} is not registered; nothing was changed"),
        many => format!("--keep: checkpoint references {} are not registered; nothing was changed", many.join(", ")),
    };
    Failure::usage(message).hint(edit::missing_reference_hint(model, &unknown[0]))
}

/// What the selection removes and keeps in `model`, with the files and their sizes.
fn describe(model: &Model, dest: &Target, selection: &Selection, dry_run: bool) -> Pruned {
    let collection = &model.checkpoint_collection;
    let epoch = |r: &Reference| collection.get(r).and_then(|c| c.epoch);
    let kept_files: HashSet<String> = selection.kept.iter().filter_map(|(r, _)| model.checkpoint_file(r)).collect();
    let sizes = file_sizes(model, dest, &selection.removed);
    let mut freed = Some(0u64);
    let mut counted = HashSet::new();
    let removed = selection
        .removed
        .iter()
        .map(|r| {
            let path = model.checkpoint_file(r);
            let file_kept = path.as_ref().is_some_and(|p| kept_files.contains(p));
            let size = path.as_ref().and_then(|p| sizes.get(p).copied());
            if let Some(p) = path.as_ref().filter(|_| !file_kept) {
                // Two removed checkpoints may share a file: it is deleted once.
                if counted.insert(p.clone()) {
                    freed = freed.and_then(|f| size.map(|s| f + s));
                }
            }
            Removed { reference: r.clone(), epoch: epoch(r), path, size, file_kept }
        })
        .collect();
    let kept = selection.kept.iter().map(|(r, why)| (r.clone(), epoch(r), why.clone())).collect();
    Pruned { dry_run, saved: false, removed, kept, freed }
}

/// The sizes of the files of the checkpoints `references`, by path in the model
/// (`data/checkpoints/3.pt`), as far as known: from the folder, or for a model on object
/// storage from one listing of its prefix (none when that listing fails: the sizes are only
/// reported).
fn file_sizes(model: &Model, dest: &Target, references: &[Reference]) -> HashMap<String, u64> {
    let files: Vec<String> = references.iter().filter_map(|r| model.checkpoint_file(r)).collect();
    if files.is_empty() {
        return HashMap::new();
    }
    match &dest.at {
        Location::Local(root) => files
            .into_iter()
            .filter_map(|f| {
                let meta = std::fs::symlink_metadata(root.join(&f)).ok().filter(|m| m.is_file())?;
                Some((f, meta.len()))
            })
            .collect(),
        remote => {
            let options = ValidateOptions::new().storage(dest.storage.clone());
            let listed = progress::during(format!("listing {}", show_path(dest.path())), || {
                plums_model::validate_model_at(remote, &options)
            });
            match listed {
                Ok(v) => files.into_iter().filter_map(|f| v.listed_sizes.get(&f).map(|s| (f, *s))).collect(),
                Err(e) => {
                    errln!("{}", paint(DIM, format!("(the sizes of the files are unknown: {e})")));
                    HashMap::new()
                }
            }
        }
    }
}
