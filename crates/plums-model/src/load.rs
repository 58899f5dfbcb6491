//! Loading: a [`Model`] from a validated folder, and the initialisation found at a path.
//!
//! Loading only reads: it validates the folder (`validate.rs`, read-only) and builds the
//! model's data from what validation parsed, plus what the model knows of the folder
//! (`state.rs`); it never changes the file system. A model folder missing because a save was
//! interrupted is reported ([`Error::InterruptedSave`]), never repaired: the next writer does that.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{Cache, Fetched};
use crate::checkpoint::Checkpoint;
use crate::collection::CheckpointCollection;
use crate::digest::Md5;
use crate::error::{Error, Report, Result};
use crate::location::Location;
use crate::metadata::InitialisationMetadata;
use crate::model::{Initialisation, Model, RemoteOrigin};
use crate::object_files::ObjectFiles;
use crate::paths::{relative_inside, Entry, Root};
use crate::producer::Producer;
use crate::reference::Reference;
use crate::state::{KnownFiles, ObjectState, SyncState};
use crate::storage::{Listed, Remote, StorageOptions};
use crate::training::Training;
use crate::validate::{check_remote, validate_model, ValidateOptions, ValidatedModel};
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

    /// Reach object stores with these options (over the environment).
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.validation.storage = storage;
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
        let mut model = from_validated(&validated, &options.formats, &Files::Local)?;
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

impl Model {
    /// Load and validate the model at `location`: a local folder (as [`Model::load`]) or an
    /// object-store prefix (validated as [`crate::check_at`] says).
    ///
    /// A remote model's files are in the local cache ([`crate::Cache`]): its producer's
    /// configuration is always fetched (verified against its MD5); with a strict load (the
    /// default) every checkpoint and the initialisation file are fetched and verified too, and
    /// their `path` is their cache file. With a non-strict load the checkpoints' `path` is
    /// `None` (nothing large is downloaded): [`Model::fetch_checkpoint`] fetches one, verified.
    /// [`Model::path`] is `None` for a remote model; [`Model::location`] is its URL. Saving it
    /// back ([`Model::save_at`]) commits over the version loaded, and sends only what changed.
    pub fn load_at(location: &Location, options: &LoadOptions) -> Result<Self> {
        match location {
            Location::Local(path) => Model::load(path, options),
            Location::Object(url) => {
                let (check, files) = check_remote(url, &options.validation)?;
                let validated = check.into_result(Path::new(&url.to_string()))?;
                let mut model = from_validated(
                    &validated,
                    &options.formats,
                    &Files::Remote { files: &files, prefix: PathBuf::new() },
                )?;
                // A later save to this prefix commits over this very version of metadata.yaml
                // (no lost update) and does not send again the objects it already holds.
                model.object_sync = Some(Arc::new(ObjectState {
                    url: url.clone(),
                    metadata_etag: files.object("metadata.yaml").and_then(|l| l.etag.clone()),
                    metadata: Arc::new(validated.metadata.clone()),
                    known: Arc::new(ObjectState::known_of(&validated, |k| files.object(k))),
                    attempted: None,
                }));
                Ok(model)
            }
        }
    }

    /// The local file of the checkpoint `reference` of a model loaded from an object store,
    /// fetched into the cache and verified against its MD5 if it is not there yet; its `path`
    /// is set to it. For a local model, its `path` as loaded.
    pub fn fetch_checkpoint(&mut self, reference: &Reference, storage: &StorageOptions) -> Result<PathBuf> {
        let checkpoint =
            self.checkpoint_collection.get(reference).ok_or_else(|| Error::MissingReference(reference.clone()))?;
        let Some(remote) = &self.remote else {
            return checkpoint
                .path
                .clone()
                .ok_or_else(|| Error::CheckpointWithoutSource { reference: reference.clone() });
        };
        let entry = remote
            .metadata
            .model
            .training
            .checkpoints
            .get(reference)
            .ok_or_else(|| Error::MissingReference(reference.clone()))?;
        let path = fetch(&Location::Object(remote.url.clone()), &entry.path, entry.hash, storage)?;
        let mut updated = checkpoint.clone();
        updated.path = Some(path.clone());
        self.checkpoint_collection.insert(reference.clone(), &updated)?;
        Ok(path)
    }
}

/// The local file of the file `path` (a metadata path, relative to the model root: confined,
/// no absolute path nor `..`) of the model at `location`, verified to have the MD5 `hash`.
///
/// For an object store: the cache file, reused while the object's ETag and size are unchanged
/// (one `HEAD` request), else downloaded and verified while it streams; a content with another
/// MD5 is an [`Error::ChecksumMismatch`] and nothing is kept. For a local folder: the file in
/// it, confined to the folder, not hashed (validate strictly to compare checksums).
pub fn fetch(location: &Location, path: &str, hash: Md5, storage: &StorageOptions) -> Result<PathBuf> {
    let rel = relative_inside(path).map_err(|reason| Error::InvalidLocation { location: path.to_owned(), reason })?;
    match location {
        Location::Local(root) => {
            let root = Root::new(root, false).map_err(|e| Error::io(root, "cannot resolve model path", e))?;
            match root.resolve(&rel, path) {
                Ok((file, Entry::File)) => Ok(file),
                Ok((file, _)) => Err(Error::NotAFile { path: file, what: "model file" }),
                Err(offence) => Err(Error::from_report(Report { path: root.given.clone(), offences: vec![offence] })),
            }
        }
        Location::Object(url) => {
            let remote = Remote::new(url, storage)?;
            let key = rel.to_string_lossy().into_owned();
            let listed = remote.head(&key)?;
            fetch_listed(&remote, &listed, hash)
        }
    }
}

/// The verified cache file of the listed object.
fn fetch_listed(remote: &Remote, listed: &Listed, hash: Md5) -> Result<PathBuf> {
    match Cache::for_options(&remote.options)?.fetch_verified(remote, listed, hash)? {
        Fetched::Verified { path, .. } => Ok(path),
        Fetched::Mismatch { found } => {
            Err(Error::ChecksumMismatch { path: PathBuf::from(remote.url_of(&listed.rel)), expected: hash, found })
        }
    }
}

/// Where the files of a validated model are: a local folder, or an object store (the model at
/// `prefix` inside the listed one).
enum Files<'a> {
    Local,
    Remote { files: &'a ObjectFiles, prefix: PathBuf },
}

impl Files<'_> {
    /// The key of `path` (relative to the model at `prefix`) from the listed model's prefix.
    fn key(prefix: &Path, path: &str) -> Option<String> {
        let rel = relative_inside(path).ok()?;
        Some(prefix.join(rel).to_string_lossy().into_owned())
    }

    /// The verified local file of `path`, for a remote model (`None` if it was not verified).
    fn verified(&self, path: &str) -> Option<PathBuf> {
        match self {
            Files::Local => None,
            Files::Remote { files, prefix } => files.verified(&Self::key(prefix, path)?),
        }
    }
}

/// The producer's configuration file of a remote model: verified by a strict validation, else
/// fetched now (small), verified.
fn remote_configuration(files: &ObjectFiles, prefix: &Path, path: &str, hash: Md5) -> Result<PathBuf> {
    let key = Files::key(prefix, path).unwrap_or_default();
    if let Some(found) = files.verified(&key) {
        return Ok(found);
    }
    let listed = files
        .object(&key)
        .ok_or_else(|| Error::NotAFile { path: PathBuf::from(files.remote.url_of(&key)), what: "configuration" })?;
    let found = fetch_listed(&files.remote, listed, hash)?;
    files.set_verified(&key, found.clone());
    Ok(found)
}

/// The model described by a validated folder (no file access but the configuration check), or
/// by a validated remote model (whose configuration is fetched).
///
/// Recursive along the chain of initialisation models (as deep as paths allow: about 200
/// levels): the frame of the recursion holds only the initialisation; the model itself is
/// built by [`model_of`], whose frame is gone before the next level.
fn from_validated(v: &ValidatedModel, formats: &VersionFormats, files: &Files<'_>) -> Result<Model> {
    let initialisation = match (&v.metadata.model.initialisation, &v.initialisation) {
        (Some(InitialisationMetadata::Pmf { checkpoint, .. }), Some(nested)) => {
            let nested_files = match files {
                Files::Local => Files::Local,
                Files::Remote { files, prefix } => Files::Remote { files, prefix: prefix.join("data/initialisation") },
            };
            let mut init = Box::new(from_validated(nested, formats, &nested_files)?);
            init.set_checkpoint(Some(checkpoint.clone()));
            Some(Initialisation::Model(init))
        }
        _ => None,
    };
    model_of(v, formats, files, initialisation)
}

/// The model of one level of [`from_validated`], given its initialisation model (if any).
#[inline(never)]
fn model_of(
    v: &ValidatedModel,
    formats: &VersionFormats,
    files: &Files<'_>,
    init_model: Option<Initialisation>,
) -> Result<Model> {
    let meta = &v.metadata;
    let m = &meta.model;
    let version = formats.parse(&meta.producer.version_format, &meta.producer.version)?;
    let configuration = match files {
        Files::Local => v.root.join(&m.configuration.path),
        Files::Remote { files, prefix } => {
            remote_configuration(files, prefix, &m.configuration.path, m.configuration.hash)?
        }
    };
    let producer = Producer::new(&meta.producer.name, version, configuration)?;
    let mut collection = CheckpointCollection::new();
    for (reference, entry) in &m.training.checkpoints {
        let path = match files {
            Files::Remote { .. } => files.verified(&entry.path).filter(|_| v.checkpoints_checked),
            Files::Local
                if v.checkpoints_checked
                    || (entry.path != "." && crate::paths::is_file_inside(&v.root, &entry.path)) =>
            {
                Some(v.root.join(&entry.path))
            }
            Files::Local => None,
        };
        collection.add(Checkpoint::from_parts(reference.clone(), path, Some(entry.epoch), entry.hash))?;
    }
    if let Some(latest) = &m.training.latest {
        if collection.contains(latest) {
            collection.set_latest(latest)?;
        }
    }
    let initialisation = match (&m.initialisation, init_model) {
        (_, Some(init)) => Some(init),
        (Some(InitialisationMetadata::File { name, path, hash }), None) => {
            let name = Reference::Str(name.clone().unwrap_or_else(|| "None".to_owned()));
            let file = match files {
                Files::Local => Some(v.root.join(path)),
                Files::Remote { .. } => files.verified(path),
            };
            Some(Initialisation::File(Checkpoint::from_parts(name, file, None, *hash)))
        }
        _ => None,
    };
    let mut model = Model::new(m.id.clone(), producer);
    model.name = m.name.clone();
    model.build_parameters = v.build_parameters.clone();
    model.training = Training::from_record_unchecked(m.training.record);
    model.checkpoint_collection = collection;
    model.set_initialisation(initialisation);
    match files {
        Files::Local => model.set_path(Some(v.root.clone())),
        Files::Remote { files, prefix } => {
            model.remote = Some(RemoteOrigin {
                url: files.remote.url.join(&prefix.to_string_lossy()),
                metadata: Arc::new(v.metadata.clone()),
            })
        }
    }
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

/// The initialisation at `location` (see [`initialisation`]), a local path or an object-store
/// URL: an object at the URL itself is a weight file (fetched into the cache, its MD5 computed
/// while it downloads); a prefix holding `metadata.yaml` is a PMF model (loaded as
/// [`Model::load_at`] does, without its checkpoint files: only its configuration is fetched).
/// The same errors as on disk: nothing there, a prefix without `metadata.yaml`, a missing name
/// or checkpoint reference.
pub fn initialisation_at(
    location: &Location,
    checkpoint_reference: Option<Reference>,
    name: Option<&str>,
    options: &LoadOptions,
) -> Result<Initialisation> {
    let url = match location {
        Location::Local(path) => return initialisation(path, checkpoint_reference, name, options),
        Location::Object(url) => url,
    };
    let at = || PathBuf::from(url.to_string());
    let remote = Remote::new(url, &options.validation.storage)?;
    let object = if url.prefix().is_empty() { None } else { remote.head_opt("")? };
    if let Some(listed) = object {
        let name = name.ok_or_else(|| Error::InitialisationNeedsName { path: at() })?;
        let (path, md5) = Cache::for_options(&remote.options)?.fetch_hashed(&remote, &listed)?;
        return Ok(Initialisation::File(Checkpoint::from_parts(Reference::from(name), Some(path), None, md5)));
    }
    if remote.head_opt("metadata.yaml")?.is_some() {
        let reference = checkpoint_reference.ok_or_else(|| Error::InitialisationNeedsCheckpoint { path: at() })?;
        let mut model = Model::load_at(location, &options.clone().checkpoints(false))?;
        if !model.checkpoint_collection.contains(&reference) {
            return Err(Error::InitialisationCheckpointMissing {
                path: at(),
                reference,
                available: model.checkpoint_collection.keys().cloned().collect(),
            });
        }
        model.set_checkpoint(Some(reference));
        model.set_saved_state(None);
        return Ok(Initialisation::Model(Box::new(model)));
    }
    match remote.list()?.is_empty() {
        true => Err(Error::InitialisationNotFound { path: at() }),
        false => Err(Error::InitialisationPath { path: at() }),
    }
}

impl Model {
    /// Register the initialisation found at `location` (see [`initialisation_at`]), reached
    /// with `options` (and their storage options).
    pub fn register_initialisation_at(
        &mut self,
        location: &Location,
        checkpoint_reference: Option<Reference>,
        name: Option<&str>,
        options: &LoadOptions,
    ) -> Result<()> {
        let found = initialisation_at(location, checkpoint_reference, name, options)?;
        self.set_initialisation(Some(found));
        Ok(())
    }

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
