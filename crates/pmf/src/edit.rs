//! The writing commands: `pmf new`, `pmf checkpoint add|rm`, `pmf training start|epoch|end|fail`
//! (and the load and save that `pmf checkpoint prune`, in `prune`, shares).
//!
//! Each edit loads the model with the library (`Model::load`, without checksums: the save
//! verifies every file it keeps or copies), changes it with the library's API, and saves it in
//! place: the library refuses, before writing anything, a change that would make the model
//! invalid, and its save is crash-safe. Refusals exit with code 1 (see `failure`). Each command
//! returns what it did, which [`finish`] prints for people or as JSON (`--json`).
//!
//! A model location is a local folder or an object-store URL (`s3://bucket/prefix`, reached
//! with `--storage-option` and the `AWS_*` variables): the library saves to either with the same
//! guarantees; a URL is never taken for a local path (see `location`). Input files
//! (`--config`, checkpoint files) are local.

use std::path::Path;

use plums_model::{
    check_at, initialisation_at, Checkpoint, Error, Location, Model, OffenceKind, Producer, Reference, SaveOptions,
    Status, ValidateOptions, Version,
};
use serde::Serialize;

use crate::cli::{CheckpointAddArgs, CheckpointRmArgs, EditOptions, NewArgs, TrainingCommand};
use crate::failure::{kind, parse_reference, print_json, Failure, JsonFailure, EXIT_OK, EXIT_USAGE};
use crate::location::Target;
use crate::output::{errln, outln};
use crate::output::{paint, printable, show_path, DIM, WARN};
use crate::{location, params, progress};

/// `--json` output of a writing command.
#[derive(Serialize)]
struct JsonEdit {
    /// The model folder.
    path: String,
    /// Whether the edit was saved.
    saved: bool,
    /// What was done (absent on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// What is wrong (absent on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The failure as data (absent on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
}

/// Report the outcome of an edit of `dest` (a success message, or a failure) for people or as
/// JSON; returns the exit code.
pub fn finish(dest: &Path, options: &EditOptions, outcome: Result<String, Failure>) -> u8 {
    let code = match &outcome {
        Ok(_) => EXIT_OK,
        Err(f) => f.code,
    };
    if !options.json {
        match outcome {
            Ok(message) => {
                outln!("{} {}", printable(&message), paint(DIM, format!("({})", crate::output::human_path(dest))))
            }
            Err(failure) => failure.report(),
        }
        return code;
    }
    let mut out = JsonEdit { path: show_path(dest), saved: false, message: None, error: None, failure: None };
    match outcome {
        Ok(message) => {
            out.saved = true;
            out.message = Some(message);
        }
        Err(failure) => {
            out.error = Some(failure.message.clone());
            out.failure = Some(failure.to_json());
        }
    }
    print_json(&out, code)
}

/// Load the model at `dest` for editing.
pub(crate) fn load(dest: &Target) -> Result<Model, Failure> {
    let path = dest.path();
    progress::during(format!("reading {}", show_path(path)), || {
        Model::load_at(&dest.at, &dest.load_options().strict(false))
    })
    .map_err(|e| {
        let invalid = e.report().is_some();
        let mut f = Failure::from_library(e, path);
        if invalid {
            f.message = format!("cannot edit an invalid model ({})", f.message);
            f = f.replace_hint(format!("fix it first; `pmf validate {}` lists the offences", show_path(path)));
        }
        f
    })
}

/// Save `model` in place at `dest` with `options`.
pub(crate) fn save(model: &mut Model, dest: &Target, edit: &EditOptions, options: SaveOptions) -> Result<(), Failure> {
    let options = options.lock_timeout(edit.lock_timeout()).storage(dest.storage.clone());
    progress::during(format!("saving {}", show_path(dest.path())), || model.save_at(&dest.at, &options))
        .map_err(|e| Failure::from_library(e, dest.path()))
}

/// Whether a PMF model (a `metadata.yaml`) is at `dest` already.
fn holds_model(dest: &Target) -> Result<bool, Failure> {
    match &dest.at {
        Location::Local(path) => Ok(std::fs::symlink_metadata(path.join("metadata.yaml")).is_ok()),
        remote => match check_at(remote, &ValidateOptions::new().storage(dest.storage.clone())) {
            // A metadata.yaml that parsed, or whose content has offences, is there.
            Ok(check) => Ok(check.metadata.is_some() || check.offences.iter().any(|o| o.kind == OffenceKind::Metadata)),
            Err(e) if e.storage_kind() == Some(plums_model::StorageErrorKind::NotFound) => Ok(false),
            Err(e) => Err(Failure::from_library(e, dest.path())),
        },
    }
}

fn warn(message: &str) {
    errln!("{} {message}", paint(WARN, "warning:"));
}

/// `pmf new`.
pub fn new(args: &NewArgs) -> Result<String, Failure> {
    let dest = &Target::of(&args.dest, &args.edit.storage)?;
    let config = location::local_file(&args.config, "the configuration file (--config)")?;
    let params_file = args
        .params_file
        .as_deref()
        .map(|f| location::local_file(f, "the build parameters file (--params)"))
        .transpose()?;
    if holds_model(dest)? {
        let message = "the folder already holds a PMF model (metadata.yaml)";
        return Err(Failure::of_kind(EXIT_USAGE, kind::MODEL_EXISTS, message).at(dest.path()).hint(
            "`pmf new` creates a model: edit this one with `pmf checkpoint` / `pmf training`, or choose another folder",
        ));
    }
    let build_parameters = params::build(params_file.as_deref(), &args.params)?;
    let version = Version::parse(&args.version_format, &args.producer_version).map_err(|e| {
        let unknown = matches!(e, Error::UnknownVersionFormat { .. });
        let f = Failure::from_library(e, dest.path());
        if unknown {
            let known = plums_model::VersionFormats::new().names().join(", ");
            f.replace_hint(format!("choose a --version-format among: {known}"))
        } else {
            f
        }
    })?;
    let producer = Producer::new(&args.producer, version, &config).map_err(|e| Failure::from_library(e, &config))?;
    let mut model = Model::new(args.id.clone(), producer);
    model.name = args.name.clone();
    model.build_parameters = build_parameters;
    if let Some(raw) = &args.init_file {
        let at = location::model_location(raw)?;
        let file = Path::new(raw);
        if file.extension().is_none() {
            warn(&format!(
                "the initialisation file {} has no extension: the reference Python plums 0.5.2 cannot load such a model (rename it, e.g. to {}.bin)",
                show_path(file),
                file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
        }
        let found = progress::during(format!("hashing {}", show_path(file)), || {
            initialisation_at(&at, None, args.init_name.as_deref(), &dest.load_options())
        })
        .map_err(|e| Failure::from_library(e, file))?;
        model.set_initialisation(Some(found));
    }
    if let (Some(raw), Some(text)) = (&args.init_model, &args.init_checkpoint) {
        let at = location::model_location(raw)?;
        let dir = Path::new(raw);
        let reference = parse_reference(text, args.init_checkpoint_str)?;
        let found = progress::during(format!("reading {}", show_path(dir)), || {
            initialisation_at(&at, Some(reference), None, &dest.load_options())
        })
        .map_err(|e| Failure::from_library(e, dir))?;
        model.set_initialisation(Some(found));
    }
    save(&mut model, dest, &args.edit, SaveOptions::new())?;
    let name = args.name.as_deref().map(|n| format!("{n} ")).unwrap_or_default();
    Ok(format!("created model {name}id {} (training pending)", args.id))
}

/// `pmf checkpoint add`.
pub fn checkpoint_add(args: &CheckpointAddArgs) -> Result<String, Failure> {
    let dest = &Target::of(&args.dest, &args.edit.storage)?;
    let file = &location::local_file(&args.file, "the checkpoint file")?;
    let reference = match &args.reference {
        Some(text) => parse_reference(text, args.ref_str)?,
        None if args.ref_str => Reference::Str(args.epoch.to_string()),
        None => Reference::Int(args.epoch),
    };
    let mut model = load(dest)?;
    if model.checkpoint_collection.contains(&reference) {
        return Err(Failure::from_library(Error::DuplicateReference(reference), dest.path()));
    }
    // A running training registers the epoch first; the library then checks the result
    // (before the file is hashed, which may take long).
    let mut registered = None;
    if model.training.is_running() && model.training.latest_epoch().is_some_and(|latest| args.epoch > latest) {
        model.register_epoch(Some(args.epoch)).map_err(|e| Failure::from_library(e, dest.path()))?;
        registered = Some(args.epoch);
    }
    let mut epochs: Vec<i64> = model.checkpoint_collection.values().filter_map(|c| c.epoch).collect();
    epochs.push(args.epoch);
    let offences = plums_model::check_training(model.training.record(), false, &epochs);
    if let Some(message) = offences.first().map(|o| o.message.clone()) {
        let status = model.training.status();
        let hint = match status {
            Status::Finished | Status::Failed => format!(
                "the training is {status} at epoch {}: its checkpoints cannot be after that epoch",
                model.training.latest_epoch().unwrap_or_default()
            ),
            _ => "register the epoch first with `pmf training epoch`".to_owned(),
        };
        let mut f = Failure::from_library(Error::InvalidTraining { offences }, dest.path()).replace_hint(hint);
        f.message = format!("cannot add a checkpoint at epoch {}: {message}", args.epoch);
        f.details.clear();
        return Err(f);
    }
    let file = file.as_path();
    let checkpoint = progress::during(format!("hashing {}", show_path(file)), || {
        Checkpoint::new(reference.clone(), Some(file), Some(args.epoch), None)
    })
    .map_err(|e| Failure::from_library(e, file))?;
    let stored =
        checkpoint.file_name().map(|n| format!("data/checkpoints/{}", n.to_string_lossy())).unwrap_or_default();
    model.add_checkpoint(checkpoint).map_err(|e| Failure::from_library(e, dest.path()))?;
    save(&mut model, dest, &args.edit, SaveOptions::new())?;
    let registered = registered.map(|e| format!("; latest epoch is now {e}")).unwrap_or_default();
    Ok(format!("added checkpoint {} (epoch {}, {stored}){registered}", reference.quoted(), args.epoch))
}

/// `pmf checkpoint rm`.
pub fn checkpoint_rm(args: &CheckpointRmArgs) -> Result<String, Failure> {
    let dest = &Target::of(&args.dest, &args.edit.storage)?;
    let reference = parse_reference(&args.reference, args.ref_str)?;
    let mut model = load(dest)?;
    if !model.checkpoint_collection.contains(&reference) {
        let hint = missing_reference_hint(&model, &reference);
        return Err(Failure::from_library(Error::MissingReference(reference), dest.path()).hint(hint));
    }
    let stored = model.checkpoint_file(&reference);
    model.checkpoint_collection.remove(&reference).map_err(|e| Failure::from_library(e, dest.path()))?;
    let shared = stored.is_some() && model.checkpoint_collection.keys().any(|r| model.checkpoint_file(r) == stored);
    // The library removes a file the model no longer registers, unless asked to keep it.
    save(&mut model, dest, &args.edit, SaveOptions::new().keep_unregistered_files(args.keep_file))?;
    let note = match stored {
        Some(file) if !args.keep_file && !shared => format!("; deleted {file}"),
        Some(file) => format!("; kept {file}"),
        None => String::new(),
    };
    Ok(format!("removed checkpoint {}{note}", reference.quoted()))
}

/// What to do about a `reference` that `model` does not register: use the other form (int or
/// string: add or drop `--ref-str`) when the model has it, else the registered references.
pub(crate) fn missing_reference_hint(model: &Model, reference: &Reference) -> String {
    let other = match reference {
        Reference::Int(i) => Reference::Str(i.to_string()),
        Reference::Str(s) => parse_reference(s, false).unwrap_or_else(|_| reference.clone()),
    };
    let registered: Vec<String> = model.checkpoint_collection.keys().map(Reference::quoted).collect();
    if &other != reference && model.checkpoint_collection.contains(&other) {
        match other {
            Reference::Str(_) => format!("the model has the string reference {}: add --ref-str", other.quoted()),
            Reference::Int(_) => format!("the model has the int reference {}: drop --ref-str", other.quoted()),
        }
    } else if registered.is_empty() {
        "the model has no checkpoint".to_owned()
    } else {
        format!("registered references: {}", registered.join(", "))
    }
}

/// `pmf training ...`.
pub fn training(command: &TrainingCommand) -> Result<String, Failure> {
    let (raw, edit) = training_target(command);
    let dest = &Target::of(raw, &edit.storage)?;
    let mut model = load(dest)?;
    let before = model.training.clone();
    let outcome = match command {
        TrainingCommand::Start(a) => model.register_training_start(a.epoch),
        TrainingCommand::Epoch(a) => model.register_epoch(a.epoch),
        TrainingCommand::End(_) => model.register_training_end(true),
        TrainingCommand::Fail(_) => model.register_training_end(false),
    };
    if let Err(e) = outcome {
        let status = before.status();
        let hint = match (command, status) {
            (_, Status::Finished) => {
                "a finished training cannot change: create a new model with `pmf new` for a new training".to_owned()
            }
            (TrainingCommand::Epoch(_) | TrainingCommand::End(_), Status::Pending) => {
                format!("start it first: pmf training start {}", show_path(dest.path()))
            }
            (_, Status::Failed) => {
                "a failed training stays failed: create a new model with `pmf new` for a new training".to_owned()
            }
            _ => String::new(),
        };
        let mut f = Failure::from_library(e, dest.path());
        if !hint.is_empty() {
            f = f.hint(hint);
        }
        return Err(f);
    }
    save(&mut model, dest, edit, SaveOptions::new())?;
    let t = &model.training;
    let latest = t.latest_epoch().map(|e| e.to_string()).unwrap_or_else(|| "none".into());
    let message = match command {
        TrainingCommand::Start(a) => format!("training running at epoch {}", a.epoch),
        TrainingCommand::Epoch(a) => match (a.epoch, before.latest_epoch()) {
            (Some(n), Some(old)) if n < old => {
                format!("latest epoch stays {latest} (epoch {n} is before it); time updated")
            }
            _ => format!("latest epoch {latest}"),
        },
        TrainingCommand::End(_) => format!("training finished at epoch {latest}"),
        TrainingCommand::Fail(_) => format!("training failed at epoch {latest}"),
    };
    Ok(message)
}

/// The model location (as given) and the edit options of a `pmf training` command.
pub fn training_target(command: &TrainingCommand) -> (&std::ffi::OsStr, &EditOptions) {
    match command {
        TrainingCommand::Start(a) => (&a.dest, &a.edit),
        TrainingCommand::Epoch(a) => (&a.dest, &a.edit),
        TrainingCommand::End(a) | TrainingCommand::Fail(a) => (&a.dest, &a.edit),
    }
}
