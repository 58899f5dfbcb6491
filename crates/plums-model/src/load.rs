//! Loading: a [`Model`] from a validated folder, and the initialisation found at a path.
//!
//! Loading only reads: it validates the folder (`validate.rs`, read-only) and builds the
//! model's data from what validation parsed, plus what the model knows of the folder
//! (`state.rs`); it never changes the file system. A model folder missing because a save was
//! interrupted is reported ([`Error::InterruptedSave`]), never repaired: the next writer does that.

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::collection::CheckpointCollection;
use crate::error::{Error, Result};
use crate::metadata::InitialisationMetadata;
use crate::model::{Initialisation, Model};
use crate::producer::Producer;
use crate::reference::Reference;
use crate::state::{KnownFiles, SyncState};
use crate::training::Training;
use crate::validate::{validate_model, ValidateOptions, ValidatedModel};
use crate::version::VersionFormats;

/// How to load a model.
///
/// ```
/// use plums_model::LoadOptions;
/// let quick = LoadOptions::new().strict(false).checkpoints(false);
/// assert!(!quick.validation.strict);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOptions {
    /// How the folder is validated first; strict by default, as in the reference.
    pub validation: ValidateOptions,
    /// The version formats producer versions are parsed with (default: the built-in ones).
    pub formats: VersionFormats,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { validation: ValidateOptions::new().strict(true), formats: VersionFormats::default() }
    }
}

impl LoadOptions {
    /// The defaults: strict validation, checkpoint files required, built-in version formats.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compare every checksum with the file's content (default `true`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.validation.strict = strict;
        self
    }

    /// Require the registered checkpoint files (default `true`; `false` for initialisation
    /// models, whose checkpoint files are not kept).
    pub fn checkpoints(mut self, checkpoints: bool) -> Self {
        self.validation.checkpoints = checkpoints;
        self
    }

    /// Validate with these options (strictness, checkpoints, links, limits).
    pub fn validation(mut self, validation: ValidateOptions) -> Self {
        self.validation = validation;
        self
    }

    /// Parse producer versions with these formats.
    pub fn formats(mut self, formats: VersionFormats) -> Self {
        self.formats = formats;
        self
    }
}

impl Model {
    /// Load and validate the model at `path`.
    ///
    /// An invalid model is an [`Error::TreeValidation`] or [`Error::MetadataValidation`] with
    /// every offence; a producer version format that `options.formats` does not know is an
    /// [`Error::UnknownVersionFormat`].
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let validated = validate_model(path.as_ref(), &options.validation)?;
        let mut model = from_validated(&validated, &options.formats)?;
        if let Ok(root) = validated.root.canonicalize() {
            // A load trusts the folder's recorded checksums (a strict one verified them): a later
            // save reuses those files while their size, mtime and inode are unchanged.
            let known = Arc::new(KnownFiles::from_validated(&validated, true));
            model.sync = Some(SyncState {
                root,
                metadata_digest: validated.metadata_digest,
                metadata: Arc::new(validated.metadata),
                known,
            });
        }
        Ok(model)
    }
}

/// The model described by a validated folder (no file access but the configuration check).
fn from_validated(v: &ValidatedModel, formats: &VersionFormats) -> Result<Model> {
    let meta = &v.metadata;
    let m = &meta.model;
    let version = formats.parse(&meta.producer.version_format, &meta.producer.version)?;
    let producer = Producer::new(&meta.producer.name, version, v.root.join(&m.configuration.path))?;
    let mut collection = CheckpointCollection::new();
    for (reference, entry) in &m.training.checkpoints {
        let file = v.root.join(&entry.path);
        let path = if v.checkpoints_checked || (entry.path != "." && crate::paths::is_file_inside(&v.root, &entry.path))
        {
            Some(file)
        } else {
            None
        };
        collection.add(Checkpoint::from_parts(reference.clone(), path, Some(entry.epoch), entry.hash))?;
    }
    if let Some(latest) = &m.training.latest {
        if collection.contains(latest) {
            collection.set_latest(latest)?;
        }
    }
    let initialisation = match (&m.initialisation, &v.initialisation) {
        (Some(InitialisationMetadata::Pmf { checkpoint, .. }), Some(nested)) => {
            let mut init = from_validated(nested, formats)?;
            init.set_checkpoint(Some(checkpoint.clone()));
            Some(Initialisation::Model(Box::new(init)))
        }
        (Some(InitialisationMetadata::File { name, path, hash }), _) => {
            let name = Reference::Str(name.clone().unwrap_or_else(|| "None".to_owned()));
            Some(Initialisation::File(Checkpoint::from_parts(name, Some(v.root.join(path)), None, *hash)))
        }
        _ => None,
    };
    let mut model = Model::new(m.id.clone(), producer);
    model.name = m.name.clone();
    model.build_parameters = v.build_parameters.clone();
    model.training = Training::from_record_unchecked(m.training.record);
    model.checkpoint_collection = collection;
    model.set_initialisation(initialisation);
    model.set_path(Some(v.root.clone()));
    Ok(model)
}

/// The initialisation at `path`: a [`Checkpoint`] for a weight file (which needs `name`), a
/// [`Model`] loaded strictly without its checkpoint files for a PMF model folder (which needs
/// a `checkpoint_reference` that it registers).
///
/// Nothing at `path` is an [`Error::InitialisationNotFound`], a folder without
/// `metadata.yaml` an [`Error::InitialisationPath`]; a missing argument an
/// [`Error::InitialisationNeedsName`] or [`Error::InitialisationNeedsCheckpoint`], a reference
/// the model does not register an [`Error::InitialisationCheckpointMissing`]; an invalid PMF
/// model a validation error. The messages keep the reference's wording, which callers match.
pub fn initialisation(
    path: impl AsRef<Path>,
    checkpoint_reference: Option<Reference>,
    name: Option<&str>,
    options: &LoadOptions,
) -> Result<Initialisation> {
    let path = path.as_ref();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::InitialisationNotFound { path: path.to_path_buf() })
        }
        Err(e) => return Err(Error::io(path, "cannot examine the initialisation path", e)),
    };
    if meta.is_file() {
        let name = name.ok_or_else(|| Error::InitialisationNeedsName { path: path.to_path_buf() })?;
        return Ok(Initialisation::File(Checkpoint::new(name, Some(path), None, None)?));
    }
    if meta.is_dir() && path.join("metadata.yaml").is_file() {
        let reference =
            checkpoint_reference.ok_or_else(|| Error::InitialisationNeedsCheckpoint { path: path.to_path_buf() })?;
        let mut model = Model::load(path, &options.clone().checkpoints(false))?;
        if !model.checkpoint_collection.contains(&reference) {
            return Err(Error::InitialisationCheckpointMissing {
                path: path.to_path_buf(),
                reference,
                available: model.checkpoint_collection.keys().cloned().collect(),
            });
        }
        model.set_checkpoint(Some(reference));
        model.set_saved_state(None);
        return Ok(Initialisation::Model(Box::new(model)));
    }
    Err(Error::InitialisationPath { path: path.to_path_buf() })
}

impl Model {
    /// Register the initialisation found at `path` (see [`initialisation`]; the initialisation
    /// model is loaded with the built-in version formats).
    pub fn register_initialisation(
        &mut self,
        path: impl AsRef<Path>,
        checkpoint_reference: Option<Reference>,
        name: Option<&str>,
    ) -> Result<()> {
        let found = initialisation(path, checkpoint_reference, name, &LoadOptions::default())?;
        self.set_initialisation(Some(found));
        Ok(())
    }
}
