//! Saving a model: destination rules, incremental copies, and the crash-safe commit.
//!
//! # What save guarantees
//! - What it writes validates: the model is checked before anything is written, and the new
//!   tree is validated before it replaces the old one.
//! - The folder always holds either the previous model or the new one, whole. The new tree is
//!   built in a staging folder next to the model (`.<name>.pmf-save-*`): unchanged files are
//!   hard-linked from the old tree, new files are written and synced, then the two folders are
//!   exchanged atomically (`renameat2(RENAME_EXCHANGE)`) and the old tree is removed. A save
//!   interrupted before the exchange leaves the old model untouched. Where the file system
//!   cannot exchange folders, the complete new tree is renamed into place right after the old
//!   one is moved aside; a process killed between the two renames leaves no folder at the
//!   model's name. The commit and the repair of every leftover are in `commit.rs`: the next save
//!   repairs them under the model's lock, before anything else; readers only report a missing
//!   folder (`Error::InterruptedSave`) and ignore the other leftovers.
//! - Nothing but PMF-owned files changes: extra files and folders are carried over as they are.
//!   Files the previous save registered and the new model no longer uses are removed (unless
//!   [`SaveOptions::keep_unregistered_files`]), so an incremental save leaves what a full one would.
//! - One writer at a time (`lock.rs`, `commit::lock_writer`), and no lost update: a model remembers the state of
//!   the folder it was loaded from or saved to, and refuses to save over a folder that another
//!   writer changed since, unless [`SaveOptions::overwrite_concurrent_changes`] says so.
//! - Incremental: a file already in the folder with the recorded checksum and the same size is
//!   not copied again; a file that must be copied is hashed during the copy, or copied by the
//!   file system (`copy_file_range`) when it has not changed since its checksum was computed.
//! - A save that only adds checkpoints (and changes metadata) to the state this model last saw,
//!   the save of a training loop, is done in place at a cost independent of the checkpoints
//!   already saved: new files first, `metadata.yaml` renamed over the old one last
//!   (`save/append.rs`). Every other save goes through the staging exchange.

mod append;
mod plan;
mod remote;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::checkpoint::FileStamp;
use crate::commit;
use crate::digest::Md5;
use crate::error::{Error, Result, SaveProblem};
use crate::fsutil::{self, copy_verified, link_or_copy, make_dir, write_atomic, Placement};
use crate::hash::Progress;
use crate::lock::ModelLock;
use crate::metadata::{
    CheckpointEntry, FileEntry, InitialisationMetadata, Metadata, ModelMetadata, ProducerMetadata, TrainingMetadata,
};
use crate::model::{Initialisation, Model};
use crate::paths::{self, Root, LOCK_FILE};
use crate::producer::is_valid_producer_name;
use crate::reference::Reference;
use crate::retention::Retention;
use crate::state::{KnownFiles, Stamp, SyncState};
use crate::storage::StorageOptions;
use crate::training::check_training;
use crate::validate::{validate_model, ValidateOptions};
use crate::yaml::{self, Limits};
use crate::yaml_file::{self, ReadError, YamlFile};
use plan::{Content, Plan};

/// How to save a model.
///
/// ```
/// use plums_model::SaveOptions;
/// let options = SaveOptions::new().force(true).durable(false);
/// assert!(options.force && !options.durable);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SaveOptions {
    /// Save into an existing folder that is not a PMF model, or over a PMF model with the same
    /// id whose tree is invalid (its PMF-owned files are replaced; nothing else is touched).
    pub force: bool,
    /// Write the checkpoint files (`false` writes their metadata with path `.`, as for
    /// initialisation models).
    pub checkpoints: bool,
    /// How long to wait for another writer of the same folder.
    pub lock_timeout: Duration,
    /// Save even if the folder changed since this model was loaded from or saved to it
    /// (overwrites the other writer's update).
    pub overwrite_concurrent_changes: bool,
    /// Sync files and folders to disk before returning.
    pub durable: bool,
    /// Keep files that the previous save registered and the model no longer uses (a removed
    /// checkpoint's file, a renamed configuration). By default they are removed, so that saving
    /// over a model leaves exactly what saving into a fresh folder would (plus foreign files,
    /// which are always kept).
    pub keep_unregistered_files: bool,
    /// How to reach an object store: for a save to one, and to fetch the files of a model
    /// loaded from one that were not fetched yet.
    pub storage: StorageOptions,
    /// Told of the bytes a save to an object store sends: started with their total, advanced
    /// per chunk read, hashed and sent (from the upload threads). Saves to a folder do not
    /// report (they copy, or link, at disk speed).
    pub progress: Option<Arc<dyn Progress>>,
    /// Apply this retention policy before saving: the checkpoints it does not keep are removed
    /// from the model (its collection) and their files from the destination, by this save and
    /// with its guarantees (see [`Retention`]).
    pub retention: Option<Retention>,
}

impl std::fmt::Debug for SaveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveOptions")
            .field("force", &self.force)
            .field("checkpoints", &self.checkpoints)
            .field("lock_timeout", &self.lock_timeout)
            .field("overwrite_concurrent_changes", &self.overwrite_concurrent_changes)
            .field("durable", &self.durable)
            .field("keep_unregistered_files", &self.keep_unregistered_files)
            .field("storage", &self.storage)
            .field("progress", &self.progress.as_ref().map(|_| "<observer>"))
            .field("retention", &self.retention)
            .finish()
    }
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            force: false,
            checkpoints: true,
            lock_timeout: Duration::from_secs(30),
            overwrite_concurrent_changes: false,
            durable: true,
            keep_unregistered_files: false,
            storage: StorageOptions::new(),
            progress: None,
            retention: None,
        }
    }
}

impl SaveOptions {
    /// The defaults: no force, checkpoint files written, 30 s lock timeout, concurrent changes
    /// refused, durable, unregistered files removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`SaveOptions::force`].
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// See [`SaveOptions::checkpoints`].
    pub fn checkpoints(mut self, checkpoints: bool) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// See [`SaveOptions::lock_timeout`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// See [`SaveOptions::overwrite_concurrent_changes`].
    pub fn overwrite_concurrent_changes(mut self, overwrite: bool) -> Self {
        self.overwrite_concurrent_changes = overwrite;
        self
    }

    /// See [`SaveOptions::durable`].
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// See [`SaveOptions::keep_unregistered_files`].
    pub fn keep_unregistered_files(mut self, keep: bool) -> Self {
        self.keep_unregistered_files = keep;
        self
    }

    /// See [`SaveOptions::storage`].
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.storage = storage;
        self
    }

    /// See [`SaveOptions::progress`].
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// See [`SaveOptions::retention`].
    pub fn retention(mut self, policy: Retention) -> Self {
        self.retention = Some(policy);
        self
    }
}

impl Model {
    /// Save the model to the folder `path` (see the module documentation of the guarantees,
    /// and [`SaveOptions`]).
    ///
    /// Refusals are typed: [`Error::WouldNotValidate`] (every reason), [`Error::DestinationIsFile`],
    /// [`Error::ForeignFolder`], [`Error::OtherModel`], [`Error::InvalidDestination`],
    /// [`Error::InvalidSameModel`], [`Error::ConcurrentChange`], [`Error::Locked`],
    /// [`Error::InvalidRetention`].
    pub fn save(&mut self, path: impl AsRef<Path>, options: &SaveOptions) -> Result<()> {
        apply_retention(self, options)?;
        save(self, path.as_ref(), options)
    }

    /// Save the model to `location`: a local folder as [`Model::save`], or an object-store
    /// prefix with the guarantees of a save (`save/remote.rs`: new objects first,
    /// `metadata.yaml` last and conditional, a marker while objects are replaced), reached
    /// with [`SaveOptions::storage`].
    pub fn save_at(&mut self, location: &crate::location::Location, options: &SaveOptions) -> Result<()> {
        apply_retention(self, options)?;
        match location {
            crate::location::Location::Local(path) => self.save(path, options),
            crate::location::Location::Object(url) => remote::save(self, url, options),
        }
    }
}

/// What is at the destination before saving.
enum Destination {
    Missing,
    Empty,
    Foreign,
    Pmf { metadata: Arc<Metadata>, digest: Md5 },
}

impl Destination {
    /// The metadata of the model there, if there is one.
    fn metadata(&self) -> Option<&Metadata> {
        match self {
            Destination::Pmf { metadata, .. } => Some(metadata),
            _ => None,
        }
    }
}

/// What is at `dest` (read-only). `seen`: what the model knows of the folder it last loaded or
/// saved; when `metadata.yaml` still has those bytes, its known metadata is used instead of
/// parsing it again.
fn inspect(dest: &Path, seen: Option<&SyncState>) -> Result<Destination> {
    let meta = match fs::metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Destination::Missing),
        Err(e) => return Err(Error::io(dest, "cannot examine the save destination", e)),
    };
    if !meta.is_dir() {
        return Err(Error::DestinationIsFile { path: dest.to_path_buf() });
    }
    let md = dest.join("metadata.yaml");
    if fs::symlink_metadata(&md).is_err() {
        let mut entries = fs::read_dir(dest).map_err(|e| Error::io(dest, "cannot list the save destination", e))?;
        let non_empty = entries.any(|e| e.map(|e| e.file_name() != LOCK_FILE).unwrap_or(true));
        return Ok(if non_empty { Destination::Foreign } else { Destination::Empty });
    }
    let invalid = |reason: String| Error::InvalidDestination { path: md.clone(), reason };
    // Never read through a link that leads out of the folder.
    let root = Root::new(dest, false).map_err(|e| Error::io(dest, "cannot resolve the save destination", e))?;
    let path = match root.resolve(Path::new("metadata.yaml"), "metadata.yaml") {
        Ok((path, _)) => path,
        Err(_) => return Err(invalid("it is a link that leads outside the model folder, or a dangling link".into())),
    };
    let limits = Limits::default();
    let file = YamlFile::read(&path, &limits).map_err(|e| match e {
        ReadError::Unreadable(e) => Error::io(&md, "cannot read the destination metadata", e),
        other => invalid(other.to_string()),
    })?;
    let digest = file.digest;
    if let Some(seen) = seen.filter(|s| s.metadata_digest == digest) {
        return Ok(Destination::Pmf { metadata: seen.metadata.clone(), digest });
    }
    let metadata = yaml_file::parse_checked(&file, &limits).map_err(invalid)?;
    Ok(Destination::Pmf { metadata: Arc::new(metadata), digest })
}

fn refuse(dest: &Path, state: &Destination, model: &Model, options: &SaveOptions) -> Result<()> {
    match state {
        Destination::Foreign if !options.force => Err(Error::ForeignFolder { path: dest.to_path_buf() }),
        Destination::Pmf { metadata, .. } if metadata.model.id != model.id => Err(Error::OtherModel {
            path: dest.to_path_buf(),
            found_id: metadata.model.id.clone(),
            saving_id: model.id.clone(),
        }),
        _ => Ok(()),
    }
}

/// What the save may rely on in the destination `real` (locked): whether its PMF-owned files
/// are this model's to replace, and which of its files have known checksums.
///
/// The fast path: the model saved or loaded this very folder, unchanged since. A model that
/// did not (a new model object, or one that saw another folder) may only replace a model with
/// the same id that validates strictly, checksums included ("an invalid PMF model with the
/// same model id", PMF-SPEC section 4), unless `force`, which repairs it.
fn knowledge(
    model: &Model,
    dest: &Path,
    real: &Path,
    state: &Destination,
    options: &SaveOptions,
) -> Result<(bool, Arc<KnownFiles>)> {
    let Destination::Pmf { digest, .. } = state else { return Ok((false, Arc::default())) };
    match &model.sync {
        Some(sync) if sync.matches(real, *digest) => return Ok((true, sync.known.clone())),
        Some(sync) if sync.root == real && !options.overwrite_concurrent_changes => {
            return Err(Error::ConcurrentChange { path: dest.to_path_buf() });
        }
        _ => {}
    }
    let strict = ValidateOptions::new().strict(true).checkpoints(options.checkpoints);
    match validate_model(real, &strict) {
        // Every checksum was just verified: trust the files as they are now.
        Ok(v) => Ok((true, Arc::new(KnownFiles::from_validated(&v, true)))),
        Err(Error::TreeValidation(report) | Error::MetadataValidation(report)) if !options.force => {
            Err(Error::InvalidSameModel { path: dest.to_path_buf(), report })
        }
        Err(e) if !options.force => Err(e),
        Err(_) => Ok((true, Arc::default())),
    }
}

/// Check the model before writing anything: every reason it could not be saved as a valid
/// model, located by key path under `at` (`""`, or `initialisation.model.` for the
/// initialisation model).
fn preflight(model: &Model, checkpoints: bool, at: &str, problems: &mut Vec<SaveProblem>) {
    let mut problem =
        |location: &str, message: String| problems.push(SaveProblem::new(format!("{at}{location}"), message));
    preflight_producer(model, &mut problem);
    let record = model.training.record();
    let epochs: Vec<i64> = model.checkpoint_collection.values().filter_map(|c| c.epoch).collect();
    for offence in check_training(record, false, &epochs) {
        problem(&format!("training.{}", offence.field), offence.message);
    }
    if checkpoints {
        preflight_checkpoint_files(model, &mut problem);
    }
    if let Some(init) = preflight_initialisation(model, &mut problem) {
        preflight(init, false, &format!("{at}initialisation.model."), problems);
    }
}

/// The producer name is valid, and the configuration file has a UTF-8 name PMF does not reserve.
fn preflight_producer(model: &Model, problem: &mut impl FnMut(&str, String)) {
    if !is_valid_producer_name(&model.producer.name) {
        problem(
            "producer.name",
            format!(
                "producer name {:?} is invalid: expected a letter then at least one letter, digit or \"_\"",
                model.producer.name
            ),
        );
    }
    match model.producer.configuration.file_name().map(|n| n.to_str()) {
        Some(Some(name)) if paths::is_reserved_name(name) => problem(
            "producer.configuration",
            format!("the configuration file is named {name:?}, a name PMF reserves: rename it"),
        ),
        Some(Some(_)) => {}
        _ => problem(
            "producer.configuration",
            format!("the configuration path {} has no UTF-8 file name", model.producer.configuration.display()),
        ),
    }
}

/// The initialisation can be written: a file with a UTF-8 name, or a model with a registered
/// checkpoint reference; returns the initialisation model, to be checked in turn.
fn preflight_initialisation<'m>(model: &'m Model, problem: &mut impl FnMut(&str, String)) -> Option<&'m Model> {
    match model.initialisation()? {
        Initialisation::File(ck) => {
            let origin = plan::init_file_origin(model, ck);
            match ck.file_name().or_else(|| origin.as_ref().and_then(|o| Path::new(&o.path).file_name())) {
                None => problem(
                    "initialisation",
                    "the initialisation file has no local file to save (path is None: a model loaded from object storage without strict validation has not fetched it)".to_owned(),
                ),
                Some(name) if name.to_str().is_none() => {
                    problem("initialisation", "the initialisation file has no UTF-8 file name".to_owned())
                }
                Some(_) => {}
            }
            None
        }
        Initialisation::Model(init) => {
            match init.checkpoint() {
                None => problem(
                    "initialisation",
                    "the initialisation model has no checkpoint reference (register it with a checkpoint reference)"
                        .to_owned(),
                ),
                Some(r) if !init.checkpoint_collection.contains(r) => {
                    problem("initialisation", format!("the initialisation model has no checkpoint {}", r.quoted()))
                }
                Some(_) => {}
            }
            Some(init)
        }
    }
}

/// Every checkpoint has a file to save, with a UTF-8 name, and no two files of different
/// content share a name in `data/checkpoints/`.
fn preflight_checkpoint_files(model: &Model, problem: &mut impl FnMut(&str, String)) {
    let mut names: HashMap<std::ffi::OsString, (&Reference, Md5)> = HashMap::new();
    for (reference, ck) in model.checkpoint_collection.iter() {
        let location = format!("checkpoints.{reference}");
        let origin = plan::checkpoint_origin(model, reference, ck);
        let name = ck
            .file_name()
            .or_else(|| origin.as_ref().and_then(|o| Path::new(&o.path).file_name()))
            .map(std::ffi::OsStr::to_os_string);
        match name {
            None => problem(&location, "the checkpoint has no file to save (path is None)".to_owned()),
            Some(name) if name.to_str().is_none() => {
                problem(&location, "the checkpoint's file name is not UTF-8".to_owned())
            }
            Some(name) => match names.get(&name) {
                Some((other, hash)) if *hash != ck.hash => problem(
                    &location,
                    format!(
                        "checkpoints {} and {} both have files named {:?} with different contents: they would overwrite each other in data/checkpoints/; rename one",
                        other.quoted(),
                        reference.quoted(),
                        name
                    ),
                ),
                Some(_) => {}
                None => {
                    names.insert(name, (reference, ck.hash));
                }
            },
        }
    }
}

/// Apply the retention policy of `options` (if any) to the model's checkpoint collection.
pub(crate) fn apply_retention(model: &mut Model, options: &SaveOptions) -> Result<()> {
    if let Some(policy) = &options.retention {
        model.checkpoint_collection.prune(policy)?;
    }
    Ok(())
}

/// Every reason `model` could not be saved with `options` ([`Error::WouldNotValidate`]),
/// checked before anything is written.
pub(crate) fn preflight_model(model: &Model, options: &SaveOptions) -> Result<()> {
    let mut reasons = Vec::new();
    preflight(model, options.checkpoints, "", &mut reasons);
    if !reasons.is_empty() {
        return Err(Error::WouldNotValidate { reasons });
    }
    Ok(())
}

/// Save `model` to `dest`: check it, refuse what must be refused before creating anything,
/// lock (repairing an interrupted commit), look at the destination again under the lock,
/// repair the leftovers of interrupted saves, then save in place or by a staging exchange.
pub(crate) fn save(model: &mut Model, dest: &Path, options: &SaveOptions) -> Result<()> {
    preflight_model(model, options)?;
    // Refuse early, before creating anything; a model folder missing because a save was
    // interrupted is judged by the tree the lock will put in place.
    let early = crate::leftovers::interrupted_commit(dest);
    match inspect(early.as_deref().unwrap_or(dest), model.sync.as_ref()) {
        Ok(state) => refuse(dest, &state, model, options)?,
        // Another writer put that tree in place meanwhile (it is gone from its leftover name):
        // the check under the lock below decides.
        Err(e) if early.is_some() && e.io_kind() == Some(io::ErrorKind::NotFound) => {}
        Err(e) => return Err(e),
    }

    let lock = commit::lock_writer(dest, options.lock_timeout)?;
    let real = dest.canonicalize().map_err(|e| Error::io(dest, "cannot resolve the save destination", e))?;
    let state = inspect(&real, model.sync.as_ref())?;
    refuse(dest, &state, model, options)?;
    let (owned, known) = knowledge(model, dest, &real, &state, options)?;
    commit::repair(&real, state.metadata(), &lock);

    if save_in_place(model, &real, &state, &known, options, &lock)? {
        return Ok(());
    }
    save_by_exchange(model, &real, owned, &known, options, &lock)
}

/// A save that only adds checkpoints to the state this model last saw: written in place
/// (`save/append.rs`). `false`: not such a save, nothing was written.
fn save_in_place(
    model: &mut Model,
    real: &Path,
    state: &Destination,
    known: &KnownFiles,
    options: &SaveOptions,
    lock: &ModelLock,
) -> Result<bool> {
    let (Destination::Pmf { metadata, digest }, Some(sync)) = (state, &model.sync) else { return Ok(false) };
    if !sync.matches(real, *digest) {
        return Ok(false);
    }
    let Some(done) = append::try_append(model, real, metadata, known, options, lock)? else { return Ok(false) };
    model.sync = Some(SyncState {
        root: real.to_path_buf(),
        metadata_digest: done.digest,
        metadata: Arc::from(done.metadata),
        known: Arc::new(done.known),
    });
    if options.durable {
        fsutil::sync_dir(real)?;
    }
    Ok(true)
}

/// Every other save: build the new tree in a staging folder next to the model, validate it,
/// and swap it into place ([`commit::commit`]).
fn save_by_exchange(
    model: &mut Model,
    real: &Path,
    owned: bool,
    known: &KnownFiles,
    options: &SaveOptions,
    lock: &ModelLock,
) -> Result<()> {
    let parent = real.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = real.file_name().unwrap_or_default().to_owned();
    let staging = crate::leftovers::staging_path(&parent, &name);
    let dest_meta = fs::metadata(real).ok();
    make_dir(&staging, dest_meta.as_ref()).map_err(|e| match e {
        Error::Io { source: src, .. } => Error::io(&staging, "cannot create the staging folder next to the model", src),
        other => other,
    })?;
    let (digest, metadata, new_known) = match build_staging(model, real, &staging, owned, known, options) {
        Ok(x) => x,
        Err(e) => {
            fsutil::remove_tree_quietly(&staging);
            return Err(in_destination(e, &staging, real));
        }
    };
    let old_tree = commit::commit(&staging, real, &parent, &name, lock)?;
    // The new model is in place: remember it before anything else can fail.
    model.sync = Some(SyncState {
        root: real.to_path_buf(),
        metadata_digest: digest,
        metadata: Arc::from(metadata),
        known: Arc::new(new_known),
    });
    let synced = if options.durable { fsutil::sync_dir(&parent) } else { Ok(()) };
    fsutil::remove_tree_quietly(&old_tree);
    synced
}

/// An obstruction found while building the staging tree stands in the destination (the staging
/// tree mirrors it, and is gone once the save gave up): name it there, where the user can move it.
fn in_destination(error: Error, staging: &Path, real: &Path) -> Error {
    match error {
        Error::Obstructed { path, found, needed } => match path.strip_prefix(staging) {
            Ok(rel) => Error::Obstructed { path: real.join(rel), found, needed },
            Err(_) => Error::Obstructed { path, found, needed },
        },
        other => other,
    }
}

fn build_staging(
    model: &Model,
    real: &Path,
    staging: &Path,
    owned: bool,
    known: &KnownFiles,
    options: &SaveOptions,
) -> Result<(Md5, Box<Metadata>, KnownFiles)> {
    // Carry the folder over, except what PMF owns and rewrites: the initialisation and the
    // files the previous metadata registered (reused below when the new model still has them).
    let skip = |rel: &Path| {
        owned && (rel.starts_with("data/initialisation") || (!options.keep_unregistered_files && known.contains(rel)))
    };
    fsutil::mirror_tree(real, staging, &skip, options.durable)?;
    let mut writer =
        Writer { staging, old_root: real, old: known, new: KnownFiles::default(), durable: options.durable };
    let plan = Plan::of(model, options.checkpoints)?;
    let digest = writer.write_plan(&plan, &options.storage)?;
    let metadata = plan.metadata;
    if options.durable {
        fsutil::sync_tree_dirs(staging)?;
    }
    // What we are about to commit must validate.
    validate_model(staging, &ValidateOptions::new().checkpoints(options.checkpoints)).map_err(|e| {
        let offences = e.offences();
        let reasons = if offences.is_empty() {
            vec![SaveProblem::new(".", format!("the written model cannot be validated: {e}"))]
        } else {
            offences
                .into_iter()
                .map(|o| SaveProblem::new(o.location, format!("written model: {}", o.message)))
                .collect()
        };
        Error::WouldNotValidate { reasons }
    })?;
    Ok((digest, metadata, writer.new))
}

struct Writer<'a> {
    staging: &'a Path,
    old_root: &'a Path,
    old: &'a KnownFiles,
    new: KnownFiles,
    durable: bool,
}

fn utf8_name(path: &Path, location: &str) -> Result<String> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or_else(|| Error::WouldNotValidate {
        reasons: vec![SaveProblem::new(location, format!("{} has no UTF-8 file name", path.display()))],
    })
}

/// The refusal of a save for one reason (checked by `preflight`, so only reached when the
/// model changed under a save).
fn refused(location: impl Into<String>, message: impl Into<String>) -> Error {
    Error::WouldNotValidate { reasons: vec![SaveProblem::new(location, message)] }
}

impl Writer<'_> {
    /// Put a file with checksum `hash` at `rel` (relative to the model root): reuse the old
    /// copy when it is identical, otherwise copy `src`.
    fn place(&mut self, rel: &Path, src: Option<&Path>, hash: Md5, stamp: Option<FileStamp>, what: &str) -> Result<()> {
        let dst = self.staging.join(rel);
        // Never reuse (read, hash or link) a file reached through a link: it may lie outside.
        let inside = || paths::is_real_dir(self.old_root, rel.parent().unwrap_or(Path::new("")));
        if self.old.hash_of(rel) == Some(hash) && inside() {
            // Reused without reading it when its checksum is known to be right: written by this
            // model, or in the folder when it was loaded, and unchanged since (else it is hashed).
            let old_file = self.old_root.join(rel);
            // Or the very file being saved, hashed from these bytes when it was registered.
            let registered_here = || {
                let (Some(src), Some(stamp)) = (src, stamp) else { return None };
                let meta = fs::metadata(src).ok()?;
                (stamp == FileStamp::of(&meta) && same_file(src, &old_file)).then(|| Stamp::of(&old_file)).flatten()
            };
            if let Some(now) = registered_here().or_else(|| self.old.still_has(rel, &old_file, hash)) {
                match fs::hard_link(&old_file, &dst) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && same_file(&old_file, &dst) => {}
                    Err(_) => link_or_copy(&old_file, &dst, self.durable)?,
                }
                self.new.insert(rel, hash, Some(now));
                return Ok(());
            }
        }
        let src_size = match src {
            Some(s) => Some(fs::metadata(s).map_err(|e| Error::io(s, format!("cannot read {what}"), e))?),
            None => None,
        };
        let src = src.ok_or_else(|| {
            refused(
                rel.display().to_string(),
                format!("{what} has no file (path is None) and the destination holds no identical copy"),
            )
        })?;
        let trust = match (stamp, &src_size) {
            (Some(s), Some(m)) => s == FileStamp::of(m),
            _ => false,
        };
        if self.new.hash_of(rel) == Some(hash) {
            // Already written by this save (two references to one file).
            return Ok(());
        }
        if trust && same_file(src, &dst) {
            // The producer wrote the file straight into the model folder; the staging tree
            // already links it, and its checksum was computed from these very bytes.
            self.new.record(rel, hash, &dst);
            return Ok(());
        }
        copy_verified(src, &dst, hash, stamp, self.durable, Placement::Replace)?;
        self.new.record(rel, hash, &dst);
        Ok(())
    }

    /// Write the planned tree into the staging folder (the top-level `metadata.yaml` last);
    /// the digest of that `metadata.yaml`.
    fn write_plan(&mut self, plan: &Plan, storage: &StorageOptions) -> Result<Md5> {
        for (prefix, checkpoints) in &plan.models {
            let dir = self.staging.join(prefix);
            make_dir(&dir, None)?;
            for sub in ["data", "data/checkpoints", "data/initialisation"] {
                if sub == "data/checkpoints" && !checkpoints && fs::symlink_metadata(dir.join(sub)).is_ok() {
                    continue;
                }
                make_dir(&dir.join(sub), None)?;
            }
        }
        for file in &plan.files {
            match &file.content {
                Content::Bytes(bytes) => write_atomic(&self.staging.join(&file.rel), bytes, self.durable)?,
                Content::File { src, hash, stamp, .. } => {
                    // A file of a remote model that was not fetched: fetched now (verified),
                    // unless the destination already holds it.
                    let fetched = match src {
                        None if self.old.hash_of(&file.rel) != Some(*hash) => file.content.local_file(storage)?,
                        _ => None,
                    };
                    let src = src.as_deref().or(fetched.as_deref());
                    let stamp = if fetched.is_some() { None } else { *stamp };
                    self.place(&file.rel, src, *hash, stamp, &file.what)?
                }
            }
        }
        write_atomic(&self.staging.join("metadata.yaml"), plan.metadata_text.as_bytes(), self.durable)?;
        Ok(Md5::of_bytes(plan.metadata_text.as_bytes()))
    }
}

/// The `metadata.yaml` text of `model`, whose configuration file is `cfg_name` with checksum
/// `cfg_hash`, with these checkpoint entries and initialisation; checked against the schema.
/// Also the metadata as the schema check read it back (what a later read of the text gives).
fn metadata_text(
    model: &Model,
    cfg_name: String,
    cfg_hash: Md5,
    checkpoints: IndexMap<Reference, CheckpointEntry>,
    initialisation: Option<InitialisationMetadata>,
) -> Result<(String, Box<Metadata>)> {
    let metadata = Metadata {
        producer: ProducerMetadata {
            name: model.producer.name.clone(),
            version_format: model.producer.version.format().to_owned(),
            version: model.producer.version.value(),
        },
        model: ModelMetadata {
            name: model.name.clone(),
            id: model.id.clone(),
            configuration: FileEntry { path: cfg_name, hash: cfg_hash },
            initialisation,
            training: TrainingMetadata {
                record: *model.training.record(),
                latest: model.checkpoint_collection.latest().cloned(),
                checkpoints,
            },
        },
    };
    let value = metadata.to_value();
    match Metadata::from_value(&value) {
        Ok(checked) => Ok((yaml::to_string(&value), Box::new(checked))),
        Err(offences) => Err(Error::WouldNotValidate {
            reasons: offences.into_iter().map(|o| SaveProblem::new(o.location, o.message)).collect(),
        }),
    }
}

/// Whether two paths name the same file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => y.is_file() && fsutil::same_inode(&x, &y),
        _ => false,
    }
}
