//! The model: producer, training, checkpoints, build parameters and initialisation, with
//! loading from a folder and registering an initialisation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::collection::CheckpointCollection;
use crate::error::{Error, Result};
use crate::hash::Md5;
use crate::metadata::InitialisationMetadata;
use crate::producer::Producer;
use crate::reference::Reference;
use crate::save::{KnownFiles, SaveOptions};
use crate::training::Training;
use crate::validate::{validate_model, ValidateOptions, ValidatedModel};
use crate::yaml::{Mapping, Value};

/// What a model was initialised from.
#[derive(Debug, Clone)]
pub enum Initialisation {
    /// A whole PMF model; its [`Model::checkpoint`] is the reference that was used.
    Model(Box<Model>),
    /// One weight file; the checkpoint's name identifies the initial network.
    File(Checkpoint),
}

/// What the model knows of the folder it was loaded from or last saved to: lets a save detect
/// that another writer changed the folder since (lost updates), and skip work on unchanged files.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    pub root: PathBuf,
    pub metadata_digest: Md5,
    /// The metadata whose `metadata.yaml` has that digest (a save need not parse it again).
    pub metadata: Arc<crate::metadata::Metadata>,
    pub known: Arc<KnownFiles>,
}

/// What a model knows of the folder it was loaded from or last saved to, detached from the
/// model (language bindings keep it next to their own model objects).
#[derive(Debug, Clone)]
pub struct SavedState(pub(crate) SyncState);

/// A PMF model.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// # let weights = dir.path().join("1.pt");
/// # std::fs::write(&weights, b"weights").unwrap();
/// use plums_model::{Checkpoint, Model, yaml::Value};
/// let mut model = Model::new("trainer", "py_pa", "1.0.0", Some("detector".into()), "id-1", &cfg, Value::Map(Default::default()))?;
/// model.register_training_start(0)?;
/// model.register_epoch(Some(1))?;
/// model.add_checkpoint(Checkpoint::new(1, Some(&weights), Some(1), None)?)?;
/// model.register_training_end(true)?;
/// model.save(dir.path().join("model"), false)?;
/// let loaded = Model::load(dir.path().join("model"), true, true)?;
/// assert_eq!(loaded.checkpoint_collection, model.checkpoint_collection);
/// # Ok::<(), plums_model::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Model {
    /// The model name (may be absent).
    pub name: Option<String>,
    /// The model's unique identifier.
    pub id: String,
    /// Values a consumer needs to instantiate the model from its weights.
    pub build_parameters: Value,
    /// Who produced the model.
    pub producer: Producer,
    /// The training state.
    pub training: Training,
    /// The registered checkpoints.
    pub checkpoint_collection: CheckpointCollection,
    initialisation: Option<Initialisation>,
    path: Option<PathBuf>,
    checkpoint: Option<Reference>,
    pub(crate) sync: Option<SyncState>,
}

impl Model {
    /// A new model with a pending training, no checkpoint and no initialisation.
    ///
    /// The configuration must be an existing file; the version format must be registered.
    pub fn new(
        producer_name: &str,
        producer_version_format: &str,
        producer_version_string: &str,
        model_name: Option<String>,
        model_id: impl Into<String>,
        configuration: impl AsRef<Path>,
        build_parameters: Value,
    ) -> Result<Self> {
        Ok(Model {
            name: model_name,
            id: model_id.into(),
            build_parameters,
            producer: Producer::new(producer_name, producer_version_format, producer_version_string, configuration)?,
            training: Training::default(),
            checkpoint_collection: CheckpointCollection::new(),
            initialisation: None,
            path: None,
            checkpoint: None,
            sync: None,
        })
    }

    /// The initialisation, if any.
    pub fn initialisation(&self) -> Option<&Initialisation> {
        self.initialisation.as_ref()
    }

    /// The folder the model was loaded from, if it was loaded.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// For a model used as an initialisation: the reference of the checkpoint that was used.
    pub fn checkpoint(&self) -> Option<&Reference> {
        self.checkpoint.as_ref()
    }

    /// Make this model the initialisation model whose checkpoint `reference` was used.
    pub fn set_checkpoint(&mut self, reference: Option<Reference>) {
        self.checkpoint = reference;
    }

    /// What the model knows of the folder it was loaded from or last saved to (see [`SaveOptions`]).
    pub fn saved_state(&self) -> Option<SavedState> {
        self.sync.clone().map(SavedState)
    }

    /// Restore what [`Model::saved_state`] gave, so that a later save detects concurrent changes
    /// and reuses unchanged files.
    pub fn set_saved_state(&mut self, state: Option<SavedState>) {
        self.sync = state.map(|s| s.0);
    }

    /// Add checkpoints to the collection (see [`CheckpointCollection::add`]).
    pub fn add_checkpoint(&mut self, checkpoint: Checkpoint) -> Result<()> {
        self.checkpoint_collection.add(checkpoint)
    }

    /// Start the training at `epoch` (see [`Training::start`]).
    pub fn register_training_start(&mut self, epoch: i64) -> Result<()> {
        self.training.start(epoch)
    }

    /// Register the latest epoch (see [`Training::register_epoch`]).
    pub fn register_epoch(&mut self, epoch: Option<i64>) -> Result<()> {
        self.training.register_epoch(epoch)
    }

    /// End the training: finished when `success`, failed otherwise.
    pub fn register_training_end(&mut self, success: bool) -> Result<()> {
        if success {
            self.training.end()
        } else {
            self.training.interrupt()
        }
    }

    /// Register the initialisation found at `path` (see [`initialisation`]).
    pub fn register_initialisation(
        &mut self,
        path: impl AsRef<Path>,
        checkpoint_reference: Option<Reference>,
        name: Option<&str>,
    ) -> Result<()> {
        self.initialisation = Some(initialisation(path, checkpoint_reference, name)?);
        Ok(())
    }

    /// Replace the initialisation (or remove it with `None`).
    pub fn set_initialisation(&mut self, initialisation: Option<Initialisation>) {
        self.initialisation = initialisation;
    }

    /// Load and validate the model at `path` (strict: also compare checksums).
    ///
    /// `checkpoints = false` does not require the checkpoint files (initialisation models).
    pub fn load(path: impl AsRef<Path>, strict: bool, checkpoints: bool) -> Result<Self> {
        Self::load_with(path, &ValidateOptions::new(strict, checkpoints))
    }

    /// Load and validate the model at `path` with full validation options.
    pub fn load_with(path: impl AsRef<Path>, options: &ValidateOptions) -> Result<Self> {
        let validated = validate_model(path.as_ref(), options)?;
        let mut model = Self::from_validated(&validated)?;
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

    pub(crate) fn from_validated(v: &ValidatedModel) -> Result<Self> {
        let meta = &v.metadata;
        let m = &meta.model;
        let producer = Producer::new(
            &meta.producer.name,
            &meta.producer.version_format,
            &meta.producer.version,
            v.root.join(&m.configuration.path),
        )?;
        let mut collection = CheckpointCollection::new();
        for (reference, entry) in &m.training.checkpoints {
            let file = v.root.join(&entry.path);
            let path = if v.checkpoints_checked || (entry.path != "." && is_file_inside(&v.root, &entry.path)) {
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
                let mut init = Model::from_validated(nested)?;
                init.checkpoint = Some(checkpoint.clone());
                Some(Initialisation::Model(Box::new(init)))
            }
            (Some(InitialisationMetadata::File { name, path, hash }), _) => {
                let name = Reference::Str(name.clone().unwrap_or_else(|| "None".to_owned()));
                Some(Initialisation::File(Checkpoint::from_parts(name, Some(v.root.join(path)), None, *hash)))
            }
            _ => None,
        };
        Ok(Model {
            name: m.name.clone(),
            id: m.id.clone(),
            build_parameters: v.build_parameters.clone(),
            producer,
            training: Training::from_record_unchecked(m.training.record),
            checkpoint_collection: collection,
            initialisation,
            path: Some(v.root.clone()),
            checkpoint: None,
            sync: None,
        })
    }

    /// Save the model to the folder `path` (see [`SaveOptions`] for the rules).
    pub fn save(&mut self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        self.save_with(path, &SaveOptions { force, ..SaveOptions::default() })
    }

    /// Save the model to the folder `path` with full options.
    pub fn save_with(&mut self, path: impl AsRef<Path>, options: &SaveOptions) -> Result<()> {
        crate::save::save(self, path.as_ref(), options)
    }

    /// Build parameters default: an empty mapping.
    pub fn empty_build_parameters() -> Value {
        Value::Map(Mapping::new())
    }
}

/// Whether the metadata path `rel` names a regular file that really lies inside `root`
/// (no absolute path, no `..`, no link leading out).
fn is_file_inside(root: &Path, rel: &str) -> bool {
    let Ok(rel) = crate::paths::relative_inside(rel) else { return false };
    match (root.join(rel).canonicalize(), root.canonicalize()) {
        (Ok(file), Ok(root)) => file.starts_with(root) && file.is_file(),
        _ => false,
    }
}

/// The initialisation at `path`: a [`Checkpoint`] for a weight file (which needs `name`), a
/// [`Model`] loaded without its checkpoint files for a PMF model folder (which needs a
/// `checkpoint_reference` that it registers).
///
/// A missing path or a folder that is not a PMF model is an [`Error::Io`]; a missing or
/// unknown argument an [`Error::InvalidArgument`]; an invalid PMF model a validation error.
pub fn initialisation(
    path: impl AsRef<Path>,
    checkpoint_reference: Option<Reference>,
    name: Option<&str>,
) -> Result<Initialisation> {
    let path = path.as_ref();
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(path, "invalid initialisation path: it does not exist", e))?;
    if meta.is_file() {
        let name = name.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid arguments: {} is a weight file, so a name is needed to identify it",
                path.display()
            ))
        })?;
        return Ok(Initialisation::File(Checkpoint::new(name, Some(path), None, None)?));
    }
    if meta.is_dir() && path.join("metadata.yaml").is_file() {
        let reference = checkpoint_reference.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid arguments: {} is a PMF model, so the reference of the checkpoint used is needed",
                path.display()
            ))
        })?;
        let mut model = Model::load(path, true, false)?;
        if !model.checkpoint_collection.contains(&reference) {
            return Err(Error::InvalidArgument(format!(
                "invalid arguments: the PMF model {} has no checkpoint {} (it has: {})",
                path.display(),
                reference.quoted(),
                model.checkpoint_collection.keys().map(Reference::quoted).collect::<Vec<_>>().join(", ")
            )));
        }
        model.checkpoint = Some(reference);
        model.sync = None;
        return Ok(Initialisation::Model(Box::new(model)));
    }
    Err(Error::os(
        path,
        std::io::ErrorKind::InvalidInput,
        "invalid initialisation path: expected a weight file or a PMF model folder (with metadata.yaml)",
    ))
}
