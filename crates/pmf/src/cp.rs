//! `pmf cp SRC DEST`: copy a whole model between any two locations (local folders and
//! object-store URLs, in any direction).
//!
//! The copy is the library's load and save: SRC is loaded strictly (every checksum verified;
//! a remote model's files are fetched into the cache, verified while they download), then
//! saved to DEST with a save's guarantees (DEST holds the old model or the new one; on object
//! storage, `metadata.yaml` last and conditional). Incremental: what DEST already holds with
//! the same content (known from its strict validation, or by an ETag that is the MD5) is not
//! sent again. Each phase shows a progress bar on a terminal (bytes of the total, rate, ETA),
//! nothing on a pipe or with `--json`.

use std::sync::Arc;

use plums_model::{Error, LoadOptions, Location, Model, SaveOptions, StorageStats, ValidateOptions};
use serde::Serialize;

use crate::cli::CpArgs;
use crate::failure::{print_json, Failure, JsonFailure, EXIT_OK};
use crate::location::Target;
use crate::output::{human_bytes, outln, paint, show_path, DIM};
use crate::progress::{self, Meter};

/// `--json` output of `pmf cp`.
#[derive(Serialize)]
struct JsonCopy {
    source: String,
    destination: String,
    copied: bool,
    /// The model's id (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Checkpoints copied (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoints: Option<usize>,
    /// Objects and bytes sent to an object-store destination (absent for a folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<Sent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

/// What a copy to an object store sent.
#[derive(Serialize, Clone, Copy)]
struct Sent {
    objects: u64,
    bytes: u64,
}

/// What a copy did.
struct Copied {
    id: String,
    checkpoints: usize,
    sent: Option<Sent>,
}

/// Run `pmf cp`; the exit code.
pub fn run(args: &CpArgs) -> u8 {
    let outcome = copy(args);
    let (source, destination) = (show_path(args.src.as_ref()), show_path(args.dest.as_ref()));
    if args.edit.json {
        let mut out =
            JsonCopy { source, destination, copied: false, id: None, checkpoints: None, sent: None, failure: None };
        let code = match outcome {
            Ok(done) => {
                out.copied = true;
                out.id = Some(done.id);
                out.checkpoints = Some(done.checkpoints);
                out.sent = done.sent;
                EXIT_OK
            }
            Err(f) => {
                let code = f.code;
                out.failure = Some(f.to_json());
                code
            }
        };
        return print_json(&out, code);
    }
    match outcome {
        Ok(done) => {
            let sent = match done.sent {
                Some(s) if s.objects <= 1 => "; only metadata.yaml sent: the destination had every file".to_owned(),
                Some(s) => format!("; sent {} objects, {}", s.objects, human_bytes(s.bytes)),
                None => String::new(),
            };
            outln!(
                "copied model {} ({} checkpoints){sent} {}",
                done.id,
                done.checkpoints,
                paint(DIM, format!("({source} -> {destination})"))
            );
            EXIT_OK
        }
        Err(f) => {
            let code = f.code;
            f.report();
            code
        }
    }
}

fn copy(args: &CpArgs) -> Result<Copied, Failure> {
    let src = Target::of(&args.src, &args.edit.storage)?;
    let dest = Target::of(&args.dest, &args.edit.storage)?;
    if same_place(&src.at, &dest.at) {
        return Err(Failure::usage(format!(
            "{} and {} are the same model",
            show_path(src.path()),
            show_path(dest.path())
        ))
        .hint("copy to another folder or prefix"));
    }
    let show = progress::wanted(args.edit.json);
    let meter = show.then(|| Arc::new(Meter::default()));
    let mut validation = ValidateOptions::new().strict(true).storage(src.storage.clone());
    if let Some(m) = &meter {
        validation = validation.progress(m.clone());
    }
    let load = LoadOptions::new().validation(validation);
    let mut model = progress::measuring(format!("verifying {}", show_path(src.path())), meter.as_ref(), || {
        Model::load_at(&src.at, &load)
    })
    .map_err(|e| Failure::from_library(e, src.path()))?;
    // The model is saved as a new model object would be: DEST is judged on its own (a model with
    // the same id there must validate, unless --force), not as the place SRC was loaded from.
    model.set_saved_state(None);

    let meter = show.then(|| Arc::new(Meter::default()));
    let mut save =
        SaveOptions::new().force(args.force).lock_timeout(args.edit.lock_timeout()).storage(dest.storage.clone());
    if let Some(m) = &meter {
        save = save.progress(m.clone());
    }
    let before = dest.storage.stats();
    progress::measuring(format!("copying to {}", show_path(dest.path())), meter.as_ref(), || {
        model.save_at(&dest.at, &save)
    })
    .map_err(|e| copy_refused(e, &dest))?;
    let sent = matches!(dest.at, Location::Object(_)).then(|| sent_between(&before, &dest.storage.stats()));
    Ok(Copied { id: model.id.clone(), checkpoints: model.checkpoint_collection.len(), sent })
}

/// A save to DEST refused, with the hint a copy needs.
fn copy_refused(error: Error, dest: &Target) -> Failure {
    let hint = match &error {
        Error::ForeignFolder { .. } => Some(
            "copy to a missing or empty folder or prefix, or add --force to save beside what is there (it is kept)"
                .to_owned(),
        ),
        Error::OtherModel { found_id, .. } => Some(format!(
            "{} holds model {found_id:?}: copy to another folder or prefix, or remove that model first",
            show_path(dest.path())
        )),
        _ => None,
    };
    let failure = Failure::from_library(error, dest.path());
    match hint {
        Some(h) => failure.replace_hint(h),
        None => failure,
    }
}

/// Whether two locations name the same model (the same URL, or folders that resolve to one).
fn same_place(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Local(x), Location::Local(y)) => match (x.canonicalize(), y.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// The model's objects and bytes a save sent, between two readings of the counters.
fn sent_between(before: &StorageStats, after: &StorageStats) -> Sent {
    Sent { objects: after.saved_objects - before.saved_objects, bytes: after.saved_bytes - before.saved_bytes }
}
