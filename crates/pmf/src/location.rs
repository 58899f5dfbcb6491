//! Model locations and storage options from the command line.
//!
//! Every argument naming a model is parsed with `plums_model::Location::parse`: text with a
//! scheme (`s3://`, `file://`, ...) is a URL and never a local path, an unknown scheme is an
//! `invalid_location` failure, and an argument that is not UTF-8 stays a local path. Input
//! files (`--config`, checkpoint files, `--params`) must be local: a URL there is refused
//! rather than read as a relative path. `--storage-option KEY=VALUE` builds the library's
//! `StorageOptions` (which win over the `AWS_*` environment and never show a secret).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use plums_model::{LoadOptions, Location, StorageOptions};

use crate::cli::StorageArgs;
use crate::failure::Failure;

/// How to name the location argument `raw` in messages and JSON: as given, unless it is
/// refused as a location (its text may hold credentials, as in `s3://KEY:SECRET@bucket`): then
/// the library's redacted form.
pub fn shown(raw: &OsStr) -> String {
    match raw.to_str().map(Location::parse) {
        Some(Err(plums_model::Error::InvalidLocation { location, .. })) => location,
        _ => crate::output::show_path(Path::new(raw)),
    }
}

/// The model location `raw` names.
pub fn model_location(raw: &OsStr) -> Result<Location, Failure> {
    match raw.to_str() {
        Some(text) => Location::parse(text).map_err(|e| Failure::from_library(e, Path::new(raw))),
        None => Ok(Location::Local(PathBuf::from(raw))),
    }
}

/// A model location a command reads or writes, how to reach it, and how to name it.
pub struct Target {
    /// Where the model is.
    pub at: Location,
    /// How to reach its object store (`--storage-option`).
    pub storage: StorageOptions,
    /// The location as shown in messages (a URL for a remote model).
    shown: PathBuf,
}

impl Target {
    /// The location `raw`, reached with `storage`.
    pub fn of(raw: &OsStr, storage: &StorageArgs) -> Result<Target, Failure> {
        let at = model_location(raw)?;
        let storage = storage_options(storage)?;
        let shown = match &at {
            Location::Local(path) => path.clone(),
            other => PathBuf::from(other.to_string()),
        };
        Ok(Target { at, storage, shown })
    }

    /// The location as a path for messages and failures.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Load options reaching this location's store (the library's defaults otherwise).
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::default().storage(self.storage.clone())
    }
}

/// The local file `raw` given for `what` (`--config`, a checkpoint file): a URL is refused.
pub fn local_file(raw: &OsStr, what: &str) -> Result<PathBuf, Failure> {
    match model_location(raw)? {
        Location::Local(path) => Ok(path),
        other => Err(Failure::usage(format!("{what} must be a local file, not {other}"))
            .hint("download the file first; only model locations can be URLs")),
    }
}

/// The storage options of `--storage-option KEY=VALUE` (an unknown key or a bad value is an
/// `invalid_storage_option` failure, which never shows the value of a secret).
pub fn storage_options(args: &StorageArgs) -> Result<StorageOptions, Failure> {
    let mut options = StorageOptions::new();
    for pair in &args.options {
        // The text is not echoed when it has no `=`: it may be a secret given alone.
        if !pair.contains('=') {
            return Err(Failure::usage("invalid --storage-option: expected KEY=VALUE")
                .hint("for example --storage-option endpoint=http://127.0.0.1:8333"));
        }
        options.set_pair(pair).map_err(|e| {
            let mut f = Failure::from_library(e, Path::new(""));
            f.path = None;
            f
        })?;
    }
    Ok(options)
}

/// Whether `root` (the root of a validated model: a path, or a URL for a remote model) is on
/// object storage, hence not to be looked at on the local file system.
pub fn is_remote(root: &Path) -> bool {
    root.to_str().is_some_and(|text| matches!(Location::parse(text), Ok(Location::Object(_))))
}
