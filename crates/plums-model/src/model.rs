//! The model: producer, training, checkpoints, build parameters and initialisation, as plain
//! data, plus what it knows of the folder it last loaded or saved (`state.rs`). It does no I/O
//! of its own and depends on no I/O module: loading is in `load.rs`, saving in `save.rs`,
//! which both build on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::collection::CheckpointCollection;
use crate::error::Result;
use crate::location::{Location, ObjectUrl};
use crate::metadata::Metadata;
use crate::producer::Producer;
use crate::reference::Reference;
use crate::state::{ObjectState, SavedState, SyncState};
use crate::training::Training;
use crate::yaml::{Mapping, Value};

/// What a model was initialised from.
#[derive(Debug, Clone)]
pub enum Initialisation {
    /// A whole PMF model; its [`Model::checkpoint`] is the reference that was used.
    Model(Box<Model>),
    /// One weight file; the checkpoint's name identifies the initial network.
    File(Checkpoint),
}

/// A PMF model.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// # let weights = dir.path().join("1.pt");
/// # std::fs::write(&weights, b"weights").unwrap();
/// use plums_model::{Checkpoint, LoadOptions, Model, Producer, SaveOptions, Version};
/// let mut model = Model::new("id-1", Producer::new("trainer", Version::pep440("1.0.0")?, &cfg)?);
/// model.name = Some("detector".into());
/// model.register_training_start(0)?;
/// model.register_epoch(Some(1))?;
/// model.add_checkpoint(Checkpoint::new(1, Some(&weights), Some(1), None)?)?;
/// model.register_training_end(true)?;
/// model.save(dir.path().join("model"), &SaveOptions::new())?;
/// let loaded = Model::load(dir.path().join("model"), &LoadOptions::new())?;
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
    /// What it knows of the object-store prefix it last loaded or saved (when it did).
    pub(crate) object_sync: Option<Arc<ObjectState>>,
    /// For a model loaded from an object store: where, and the metadata it was loaded from.
    pub(crate) remote: Option<RemoteOrigin>,
    /// The MD5 of the configuration file when a background save's snapshot was taken: the
    /// save verifies the file against it (see `background.rs`).
    pub(crate) configuration_md5: Option<crate::digest::Md5>,
}

/// Where a remote model was loaded from (its checkpoints' files are fetched from there).
#[derive(Debug, Clone)]
pub(crate) struct RemoteOrigin {
    pub url: ObjectUrl,
    pub metadata: Arc<Metadata>,
}

impl Model {
    /// A new model `id` by `producer`: no name, empty build parameters, a pending training,
    /// no checkpoint and no initialisation. Set the public fields for the rest.
    pub fn new(id: impl Into<String>, producer: Producer) -> Self {
        Model {
            name: None,
            id: id.into(),
            build_parameters: Value::Map(Mapping::new()),
            producer,
            training: Training::default(),
            checkpoint_collection: CheckpointCollection::new(),
            initialisation: None,
            path: None,
            checkpoint: None,
            sync: None,
            object_sync: None,
            remote: None,
            configuration_md5: None,
        }
    }

    /// The initialisation, if any.
    pub fn initialisation(&self) -> Option<&Initialisation> {
        self.initialisation.as_ref()
    }

    /// The folder the model was loaded from, if it was loaded from a local folder.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the model was loaded from: its folder, or its object-store URL.
    pub fn location(&self) -> Option<Location> {
        match (&self.remote, &self.path) {
            (Some(r), _) => Some(Location::Object(r.url.clone())),
            (None, Some(p)) => Some(Location::Local(p.clone())),
            (None, None) => None,
        }
    }

    /// For a model used as an initialisation: the reference of the checkpoint that was used.
    pub fn checkpoint(&self) -> Option<&Reference> {
        self.checkpoint.as_ref()
    }

    /// Make this model the initialisation model whose checkpoint `reference` was used.
    pub fn set_checkpoint(&mut self, reference: Option<Reference>) {
        self.checkpoint = reference;
    }

    /// What the model knows of the folder it was loaded from or last saved to (see
    /// [`crate::SaveOptions`]).
    pub fn saved_state(&self) -> Option<SavedState> {
        (self.sync.is_some() || self.object_sync.is_some())
            .then(|| SavedState { folder: self.sync.clone(), object: self.object_sync.clone() })
    }

    /// Restore what [`Model::saved_state`] gave, so that a later save detects concurrent changes
    /// and reuses unchanged files.
    pub fn set_saved_state(&mut self, state: Option<SavedState>) {
        let (folder, object) = state.map(|s| (s.folder, s.object)).unwrap_or_default();
        self.sync = folder;
        self.object_sync = object;
    }

    /// Where the file of checkpoint `reference` is saved in a model folder or prefix
    /// (`data/checkpoints/3.pt`): after its file name; for a model loaded from object storage
    /// whose file was not fetched (no `path`), the path its metadata records.
    pub fn checkpoint_file(&self, reference: &Reference) -> Option<String> {
        let ck = self.checkpoint_collection.get(reference)?;
        if let Some(name) = ck.file_name() {
            return Some(format!("data/checkpoints/{}", name.to_string_lossy()));
        }
        let metadata = match (&self.remote, &self.object_sync) {
            (Some(r), _) => &r.metadata,
            (None, Some(s)) => &s.metadata,
            (None, None) => return None,
        };
        let entry = metadata.model.training.checkpoints.get(reference)?;
        (entry.hash == ck.hash && entry.path != ".").then(|| entry.path.clone())
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

    /// The initialisation, to change it in place.
    pub(crate) fn initialisation_mut(&mut self) -> Option<&mut Initialisation> {
        self.initialisation.as_mut()
    }

    /// Replace the initialisation (or remove it with `None`).
    pub fn set_initialisation(&mut self, initialisation: Option<Initialisation>) {
        self.initialisation = initialisation;
    }

    /// The folder the model was loaded from.
    pub(crate) fn set_path(&mut self, path: Option<PathBuf>) {
        self.path = path;
    }
}
