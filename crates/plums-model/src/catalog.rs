//! Many models at once: every PMF model under a folder or an object-store prefix
//! ([`list_models`], [`for_each_model`]), each checked as [`crate::check_at`] checks one and
//! summarised ([`ModelSummary`]): name, id, producer, training, checkpoints, initialisation,
//! validity with every offence.
//!
//! # What is a model
//! A folder (or a prefix) holding an entry named `metadata.yaml` is a model, whatever that
//! entry is (a file, a link, a FIFO: validation says what is wrong with it), and is not
//! descended into: the PMF model in its `data/initialisation/` is part of it (summarised in
//! [`ModelSummary::initialisation`]), and so is anything else below it. Other folders are
//! walked, up to [`ListOptions::depth`] levels below the location (unlimited by default; `0`:
//! the location itself only), and are not rows. The folders that interrupted saves leave
//! next to a model (`.<name>.pmf-save-*`, `-new-*`, `-old-*`, see `leftovers.rs`) are not
//! walked; a model folder that such a save left missing is a row whose
//! [`ModelSummary::error`] is an [`Error::InterruptedSave`].
//!
//! # Links and confinement
//! The location itself may be a link (the caller named it). Below it, links to folders are
//! never followed, wherever they lead, inside the location or out of it: a linked folder is
//! skipped, and so is a model folder that is itself a link (list its target instead). Each
//! model is then checked by `validate` with its confinement (`paths.rs`): a file of the model
//! that is a link leading out of the model root, `metadata.yaml` included, is an offence and
//! its target is never opened. Nothing outside the location is read. For an object store,
//! only the keys that the one listing of the prefix returned are read.
//!
//! # How
//! One walk of the folder tree, in parallel with rayon (each folder that is not a model is
//! read once; a model folder is recognised by one `lstat` of its `metadata.yaml`, then read by
//! its checks), or one paginated listing of the prefix, which gives every key,
//! its size and its ETag: each model is checked on its part of the listing (no listing per
//! model); its YAML files are downloaded conditionally on the listed ETag, and a model
//! replaced since the listing is checked again on its own (`validate::check_remote`, which
//! lists its prefix). The quick check by default (tree and metadata, no checksum); strict
//! verifies every checksum (see [`ListOptions::strict`]). Models are checked in parallel; the
//! rows come back sorted by path.
//!
//! What a listing does not do: on an object store, a model is not asked again after its check
//! whether a save began since the listing (`check_at` on one prefix does, with two `HEAD`
//! requests: too many for thousands of models); a save in progress at the listing is still
//! reported, by its marker. On disk, a model folder that another program replaces by a link
//! between the walk and the model's checks is read where the link leads: the checks resolve the
//! model root once and confine its files to it, as `check` of one path does.
//!
//! Read-only: nothing is created, renamed or removed, on disk or in a store.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::FileType;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Offence, Result, StorageErrorKind};
use crate::files::ModelFiles;
use crate::location::{Location, ObjectUrl};
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::object_files::ObjectFiles;
use crate::paths::{key_of, relative_inside, Entry, Root};
use crate::reference::Reference;
use crate::status::Status;
use crate::storage::{Listed, Remote, StorageOptions};
use crate::training::Timestamp;
use crate::validate::{check, check_files, check_remote, Check, ValidateOptions};
use crate::yaml::Limits;
use crate::yaml_file::YamlFile;

/// How many models of an object store are checked at once by default (requests, not CPU,
/// bound them).
const REMOTE_THREADS: usize = 16;

/// The kinds of the folders an interrupted save leaves next to a model (`leftovers.rs`).
const LEFTOVER_KINDS: [&str; 3] = ["save", "new", "old"];

/// How to list models.
///
/// ```
/// use plums_model::ListOptions;
/// let options = ListOptions::new().depth(2).strict(true).threads(4);
/// assert_eq!((options.depth, options.strict, options.threads), (Some(2), true, Some(4)));
/// assert_eq!(ListOptions::new().depth, None, "unlimited by default");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListOptions {
    /// How many levels of folders (or `/`-separated prefix segments) below the location are
    /// searched for models: `None` (the default) is unlimited, `Some(0)` the location itself
    /// only, `Some(1)` the location and the folders directly in it.
    pub depth: Option<usize>,
    /// Verify every checksum (the configuration, checkpoints, initialisation file), as
    /// `pmf validate` does by default; for an object store, that downloads the files into
    /// the cache. Default `false`: the tree and metadata checks only.
    pub strict: bool,
    /// How to reach an object store (unused for a local folder).
    pub storage: StorageOptions,
    /// Bounds on each model's YAML files.
    pub limits: Limits,
    /// How many models are checked at once: `None` (the default) is rayon's global pool for a
    /// folder (one thread per CPU), 16 for an object store.
    pub threads: Option<usize>,
}

impl ListOptions {
    /// The defaults: unlimited depth, quick check, default storage options and limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Search `depth` levels below the location (`None`: unlimited; `0`: the location only).
    pub fn depth(mut self, depth: impl Into<Option<usize>>) -> Self {
        self.depth = depth.into();
        self
    }

    /// Verify every checksum (default `false`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Reach object stores with these options (over the environment).
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.storage = storage;
        self
    }

    /// Bounds on the YAML files.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Check `threads` models at once (at least 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    fn validate_options(&self) -> ValidateOptions {
        ValidateOptions::new().strict(self.strict).checkpoints(true).limits(self.limits).storage(self.storage.clone())
    }
}

/// What a model was initialised from, as its metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitialisationSummary {
    /// One weight file in `data/initialisation/`.
    WeightFile {
        /// The name that identifies the initial network.
        name: Option<String>,
        /// The file's path in the model (`data/initialisation/imagenet.bin`).
        path: String,
    },
    /// A PMF model, stored in `data/initialisation/`.
    Model {
        /// The initialisation model's name.
        name: Option<String>,
        /// The initialisation model's id.
        id: String,
        /// The reference of its checkpoint that was used.
        checkpoint: Reference,
    },
}

/// One model found by [`list_models`]: where it is, what its metadata says, and whether it is
/// valid.
///
/// The fields read from the metadata are `None` when `metadata.yaml` could not be read or does
/// not have the schema's types (then `id` is `None`); for an invalid model whose metadata
/// parses, they are what it records. `initialisation` is `None` for a model trained from
/// scratch too.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelSummary {
    /// The model's path relative to the listed location, `/`-separated (`runs/detector`), or
    /// `.` for the location itself.
    pub relative_path: String,
    /// Where the model is: the listed location joined with [`ModelSummary::relative_path`]
    /// (a folder, or the URL of its prefix), to give to [`crate::Model::load_at`] or
    /// [`crate::check_at`].
    pub location: Location,
    /// `model.name`.
    pub name: Option<String>,
    /// `model.id`.
    pub id: Option<String>,
    /// `format.producer.name`.
    pub producer: Option<String>,
    /// `format.producer.version.value`.
    pub producer_version: Option<String>,
    /// `format.producer.version.format`.
    pub producer_version_format: Option<String>,
    /// The training status.
    pub status: Option<Status>,
    /// The training's start epoch.
    pub start_epoch: Option<i64>,
    /// The training's latest epoch.
    pub latest_epoch: Option<i64>,
    /// The training's end epoch.
    pub end_epoch: Option<i64>,
    /// The training's start time.
    pub start_time: Option<Timestamp>,
    /// The time of the latest epoch.
    pub latest_time: Option<Timestamp>,
    /// The training's end time.
    pub end_time: Option<Timestamp>,
    /// How many checkpoints are registered.
    pub checkpoint_count: Option<usize>,
    /// The total size in bytes of the checkpoint files (each file once, if checkpoints share
    /// one): from the files on disk, or from the listing for an object store. `None` when the
    /// tree checks did not pass (a file may be missing).
    pub checkpoint_bytes: Option<u64>,
    /// The latest checkpoint's reference.
    pub latest: Option<Reference>,
    /// What the model was initialised from (`None`: from scratch, or unknown metadata).
    pub initialisation: Option<InitialisationSummary>,
    /// Whether the model is valid (no offence, and it could be read).
    pub valid: bool,
    /// Whether checksums were verified ([`ListOptions::strict`]).
    pub strict: bool,
    /// Every offence, as [`crate::check_at`] reports them (locations relative to the model).
    pub offences: Vec<Offence>,
    /// Why the model (or a folder below the location, which may hold models) could not be
    /// examined at all: an unreadable folder ([`Error::Io`]), a model folder an interrupted
    /// save left missing ([`Error::InterruptedSave`]), a store that failed
    /// ([`Error::Storage`]). Then `valid` is `false` and `offences` is empty.
    pub error: Option<Error>,
}

impl ModelSummary {
    /// A row with nothing known yet (also the lineage tests' starting point).
    pub(crate) fn empty(relative_path: String, location: Location, strict: bool) -> Self {
        ModelSummary {
            relative_path,
            location,
            name: None,
            id: None,
            producer: None,
            producer_version: None,
            producer_version_format: None,
            status: None,
            start_epoch: None,
            latest_epoch: None,
            end_epoch: None,
            start_time: None,
            latest_time: None,
            end_time: None,
            checkpoint_count: None,
            checkpoint_bytes: None,
            latest: None,
            initialisation: None,
            valid: false,
            strict,
            offences: Vec::new(),
            error: None,
        }
    }

    /// The row of a model or folder that could not be examined.
    fn unreadable(relative_path: String, location: Location, strict: bool, error: Error) -> Self {
        ModelSummary { error: Some(error), ..Self::empty(relative_path, location, strict) }
    }

    /// Fill the fields the metadata records.
    fn with_metadata(mut self, metadata: &Metadata) -> Self {
        let m = &metadata.model;
        let r = &m.training.record;
        self.name = m.name.clone();
        self.id = Some(m.id.clone());
        self.producer = Some(metadata.producer.name.clone());
        self.producer_version = Some(metadata.producer.version.clone());
        self.producer_version_format = Some(metadata.producer.version_format.clone());
        self.status = Some(r.status);
        self.start_epoch = r.start_epoch;
        self.latest_epoch = r.latest_epoch;
        self.end_epoch = r.end_epoch;
        self.start_time = r.start_time;
        self.latest_time = r.latest_time;
        self.end_time = r.end_time;
        self.checkpoint_count = Some(m.training.checkpoints.len());
        self.latest = m.training.latest.clone();
        self.initialisation = m.initialisation.as_ref().map(|init| match init {
            InitialisationMetadata::File { name, path, .. } => {
                InitialisationSummary::WeightFile { name: name.clone(), path: path.clone() }
            }
            InitialisationMetadata::Pmf { name, id, checkpoint, .. } => {
                InitialisationSummary::Model { name: name.clone(), id: id.clone(), checkpoint: checkpoint.clone() }
            }
        });
        self
    }

    /// The order of rows: by relative path, segment by segment (`a/b` before `a-b`).
    fn path_order(&self, other: &Self) -> std::cmp::Ordering {
        self.relative_path.split('/').cmp(other.relative_path.split('/'))
    }
}

/// Every PMF model under `location` (a folder, or an object-store prefix `s3://bucket/prefix`),
/// each checked and summarised, sorted by [`ModelSummary::relative_path`].
///
/// A model that is invalid or cannot be read is a row too (`valid: false`, with its offences
/// or its [`ModelSummary::error`]), and the listing goes on; so is a folder below the
/// location that cannot be read (it may hold models). The `Err` cases are the location's own:
/// a missing or unreadable folder or a path that is not a folder ([`Error::Io`]), a store that
/// cannot be listed ([`Error::Storage`]), or storage options that cannot configure a client. A
/// prefix with no object holds no model: an empty list.
///
/// A folder (or prefix) holding an entry named `metadata.yaml` is a model and is not
/// descended into: the model in its `data/initialisation/` is part of it, summarised in
/// [`ModelSummary::initialisation`]. Other folders are walked down to [`ListOptions::depth`]
/// and skipped; the staging folders of interrupted saves are not walked. Links to folders are
/// never followed below the location (a linked folder, and a model folder that is a link, are
/// skipped); each model is confined to its root as [`crate::check`] confines it (a
/// `metadata.yaml` that is a link leading out of it is an offence, and its target is never
/// read), so nothing outside the location is read. Folders are walked and models checked in
/// parallel ([`ListOptions::threads`]); each `metadata.yaml` is read once (twice for an
/// invalid model whose checks stop before giving its metadata). On an object store, one
/// listing of the prefix gives every model's keys, sizes and ETags.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// use plums_model::{list_models, ListOptions, Location, Model, Producer, SaveOptions, Version};
/// for id in ["a", "b"] {
///     let mut model = Model::new(id, Producer::new("trainer", Version::pep440("1.0")?, &cfg)?);
///     model.save(dir.path().join("runs").join(id), &SaveOptions::new())?;
/// }
/// let models = list_models(&Location::from(dir.path()), &ListOptions::new())?;
/// let found: Vec<_> = models.iter().map(|m| (m.relative_path.as_str(), m.id.as_deref(), m.valid)).collect();
/// assert_eq!(found, [("runs/a", Some("a"), true), ("runs/b", Some("b"), true)]);
/// # Ok::<(), plums_model::Error>(())
/// ```
pub fn list_models(location: &Location, options: &ListOptions) -> Result<Vec<ModelSummary>> {
    let found = Mutex::new(Vec::new());
    for_each_model(location, options, |summary| found.lock().unwrap_or_else(|e| e.into_inner()).push(summary))?;
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by(ModelSummary::path_order);
    Ok(found)
}

/// Like [`list_models`], but gives each summary to `each` as soon as its model is checked, in
/// no particular order, from the worker threads; returns how many were given. The `Err` cases
/// happen before the first call.
pub fn for_each_model(location: &Location, options: &ListOptions, each: impl Fn(ModelSummary) + Sync) -> Result<usize> {
    let threads = match (options.threads, location) {
        (Some(n), _) => Some(n),
        (None, Location::Object(_)) => Some(REMOTE_THREADS),
        (None, Location::Local(_)) => None,
    };
    let run = || match location {
        Location::Local(root) => list_local(root, options, &each),
        Location::Object(url) => list_remote(url, options, &each),
    };
    match threads {
        None => run(),
        Some(n) => {
            match rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("pmf-ls-{i}")).build() {
                Ok(pool) => pool.install(run),
                // No thread could be started: list on the global pool.
                Err(_) => run(),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------------------------

/// One walk of a local location.
struct LocalWalk<'a, F> {
    root: &'a Path,
    depth: Option<usize>,
    validate: ValidateOptions,
    limits: &'a Limits,
    each: &'a F,
    count: AtomicUsize,
}

/// The entries of a folder: names and types (links not followed).
fn read_entries(dir: &Path) -> std::io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        out.push((entry.file_name(), entry.file_type()?));
    }
    Ok(out)
}

/// The model folder an interrupted save's leftover folder `name` was made for, when it is one
/// (`.<model>.pmf-<kind>-<suffix>`), with the kind.
fn leftover_of(name: &[u8]) -> Option<(OsString, &'static str)> {
    let rest = name.strip_prefix(b".")?;
    LEFTOVER_KINDS.iter().find_map(|kind| {
        let marker = format!(".pmf-{kind}-");
        let at = rest.windows(marker.len()).rposition(|w| w == marker.as_bytes())?;
        let model = std::ffi::OsStr::from_bytes(&rest[..at]);
        (!model.is_empty() && crate::leftovers::is_sibling_of(std::ffi::OsStr::from_bytes(name), model, kind))
            .then(|| (model.to_os_string(), *kind))
    })
}

/// `rel` as a row's relative path (`.` for the location itself).
fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        key_of(rel)
    }
}

fn list_local(root: &Path, options: &ListOptions, each: &(impl Fn(ModelSummary) + Sync)) -> Result<usize> {
    let refuse = |e: std::io::Error| Error::io(root, "cannot list models", e);
    let meta = std::fs::metadata(root).map_err(refuse)?;
    if !meta.is_dir() {
        return Err(refuse(std::io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error())));
    }
    let walk = LocalWalk {
        root,
        depth: options.depth,
        validate: options.validate_options(),
        limits: &options.limits,
        each,
        count: AtomicUsize::new(0),
    };
    if has_metadata(root) {
        walk.emit(walk.summarise(Path::new("")));
    } else {
        let entries = read_entries(root).map_err(refuse)?;
        rayon::scope(|s| walk.walk(s, PathBuf::new(), entries, 0));
    }
    Ok(walk.count.into_inner())
}

/// Whether the folder `dir` holds an entry named `metadata.yaml`, whatever it is (one
/// `lstat`: a model folder is not read here, its checks read it).
fn has_metadata(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join("metadata.yaml")).is_ok()
}

impl<'a, F: Fn(ModelSummary) + Sync> LocalWalk<'a, F> {
    fn emit(&self, summary: ModelSummary) {
        self.count.fetch_add(1, Ordering::Relaxed);
        (self.each)(summary);
    }

    fn location(&self, rel: &Path) -> Location {
        if rel.as_os_str().is_empty() {
            Location::Local(self.root.to_path_buf())
        } else {
            Location::Local(self.root.join(rel))
        }
    }

    /// The folder `rel`, `depth` levels below the root (a real folder, not a link): a model,
    /// or a folder to walk if the depth allows.
    fn enter<'s>(&'s self, scope: &rayon::Scope<'s>, rel: PathBuf, depth: usize) {
        let dir = self.root.join(&rel);
        if has_metadata(&dir) {
            return self.emit(self.summarise(&rel));
        }
        if self.depth.is_some_and(|max| depth >= max) {
            return;
        }
        match read_entries(&dir) {
            Ok(entries) => self.walk(scope, rel, entries, depth),
            Err(e) => {
                let error = Error::io(&dir, "cannot list folder", e);
                self.emit(ModelSummary::unreadable(shown(&rel), self.location(&rel), self.validate.strict, error))
            }
        }
    }

    /// The entries of the folder `rel` (not a model), `depth` levels below the root: its
    /// folders are entered in parallel.
    fn walk<'s>(&'s self, scope: &rayon::Scope<'s>, rel: PathBuf, entries: Vec<(OsString, FileType)>, depth: usize) {
        if self.depth.is_some_and(|max| depth >= max) {
            return;
        }
        let names: HashSet<&OsString> = entries.iter().map(|(name, _)| name).collect();
        let mut missing: Vec<OsString> = Vec::new();
        for (name, kind) in &entries {
            if let Some((model, kind)) = leftover_of(name.as_bytes()) {
                // A model folder that a save left missing between its two renames.
                if kind != "save" && !names.contains(&model) && !missing.contains(&model) {
                    missing.push(model);
                }
                continue;
            }
            if kind.is_dir() {
                let child = rel.join(name);
                scope.spawn(move |s| self.enter(s, child, depth + 1));
            }
        }
        for model in missing {
            let child = rel.join(model);
            scope.spawn(move |_| self.emit(self.summarise(&child)));
        }
    }

    /// Check the model folder `rel` and summarise it.
    fn summarise(&self, rel: &Path) -> ModelSummary {
        let path = if rel.as_os_str().is_empty() { self.root.to_path_buf() } else { self.root.join(rel) };
        let row = ModelSummary::empty(shown(rel), self.location(rel), self.validate.strict);
        match check(&path, &self.validate) {
            Err(e) => ModelSummary { error: Some(e), ..row },
            Ok(checked) => summary_of(row, checked, |metadata| local_sizes(&path, metadata), || self.reread(&path)),
        }
    }

    /// The metadata of an invalid model whose checks did not give it: `metadata.yaml` read
    /// again if it is a regular file inside the model root (never through a link out of it,
    /// never a special file).
    fn reread(&self, path: &Path) -> Option<Metadata> {
        let root = Root::new(path, false).ok()?;
        let (real, Entry::File) = root.resolve(Path::new("metadata.yaml"), "metadata.yaml").ok()? else { return None };
        YamlFile::read(&real, self.limits).ok()?.metadata(self.limits).ok()?.0
    }
}

/// The total size of the checkpoint files of a model whose tree checks passed (so every
/// checkpoint path is a file inside the model root), each file once: one `fstatat` per file
/// in its folder (`data/checkpoints/`, opened once), not a walk of the whole path.
fn local_sizes(root: &Path, metadata: &Metadata) -> Option<u64> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let mut seen = HashSet::new();
    let mut folder: Option<(PathBuf, std::os::fd::OwnedFd)> = None;
    let mut total = 0u64;
    for entry in metadata.model.training.checkpoints.values() {
        if !seen.insert(entry.path.as_str()) {
            continue;
        }
        let rel = relative_inside(&entry.path).ok()?;
        let (parent, name) = (rel.parent()?, rel.file_name()?);
        if folder.as_ref().is_none_or(|(p, _)| p != parent) {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            folder = Some((parent.to_path_buf(), rustix::fs::open(root.join(parent), flags, Mode::empty()).ok()?));
        }
        let (_, fd) = folder.as_ref()?;
        total += rustix::fs::statat(fd, name, AtFlags::empty()).ok()?.st_size as u64;
    }
    Some(total)
}

/// The row of a checked model: its offences, and its metadata (from the checks, else from
/// `reread`); checkpoint sizes from `sizes` when the checks gave the metadata.
fn summary_of(
    row: ModelSummary,
    checked: Check,
    sizes: impl FnOnce(&Metadata) -> Option<u64>,
    reread: impl FnOnce() -> Option<Metadata>,
) -> ModelSummary {
    let valid = checked.is_valid();
    let (row, bytes) = match &checked.metadata {
        Some(metadata) => (row.with_metadata(metadata), sizes(metadata)),
        None => match reread() {
            Some(metadata) => (row.with_metadata(&metadata), None),
            None => (row, None),
        },
    };
    ModelSummary { valid, checkpoint_bytes: bytes, offences: checked.offences, ..row }
}

// ---------------------------------------------------------------------------------------------
// Object stores
// ---------------------------------------------------------------------------------------------

/// The model prefix of the listed key `rel` if it is a `metadata.yaml` (`""` for the root).
fn model_prefix_of(rel: &str) -> Option<&str> {
    if rel == "metadata.yaml" {
        return Some("");
    }
    rel.strip_suffix("/metadata.yaml")
}

/// How many segments `prefix` has (`""`: 0).
fn depth_of(prefix: &str) -> usize {
    if prefix.is_empty() {
        0
    } else {
        prefix.split('/').count()
    }
}

/// Whether a proper ancestor of `prefix` is a model (then `prefix` is part of it).
fn inside_a_model(prefix: &str, models: &HashSet<&str>) -> bool {
    !prefix.is_empty() && (models.contains("") || prefix.match_indices('/').any(|(i, _)| models.contains(&prefix[..i])))
}

fn list_remote(url: &ObjectUrl, options: &ListOptions, each: &(impl Fn(ModelSummary) + Sync)) -> Result<usize> {
    let remote = Remote::new(url, &options.storage)?;
    let mut listed = remote.list()?;
    listed.sort_by(|a, b| a.rel.cmp(&b.rel));
    let all: HashSet<&str> = listed.iter().filter_map(|l| model_prefix_of(&l.rel)).collect();
    let models: Vec<&str> = all
        .iter()
        .copied()
        .filter(|p| options.depth.is_none_or(|max| depth_of(p) <= max) && !inside_a_model(p, &all))
        .collect();
    let validate = options.validate_options();
    models.par_iter().with_max_len(1).for_each(|prefix| {
        each(summarise_remote(url, &remote, &listed, prefix, &validate));
    });
    Ok(models.len())
}

/// The objects of the listing under the model prefix `prefix`, relative to it.
fn objects_under(listed: &[Listed], prefix: &str) -> Vec<Listed> {
    if prefix.is_empty() {
        return listed.to_vec();
    }
    let start = format!("{prefix}/");
    let first = listed.partition_point(|l| l.rel.as_str() < start.as_str());
    listed[first..]
        .iter()
        .map_while(|l| {
            l.rel.strip_prefix(&start).map(|rel| Listed { rel: rel.to_owned(), size: l.size, etag: l.etag.clone() })
        })
        .collect()
}

/// Check the model at `prefix` (relative to the listed `url`) on its part of the listing, and
/// summarise it.
fn summarise_remote(
    url: &ObjectUrl,
    remote: &Remote,
    listed: &[Listed],
    prefix: &str,
    validate: &ValidateOptions,
) -> ModelSummary {
    let model_url = url.join(prefix);
    let row = ModelSummary::empty(
        if prefix.is_empty() { ".".to_owned() } else { prefix.to_owned() },
        Location::Object(model_url.clone()),
        validate.strict,
    );
    let mut model_remote = remote.clone();
    model_remote.url = model_url.clone();
    let files = ObjectFiles::from_listing(model_remote, objects_under(listed, prefix));
    let outcome = match check_files(&files, validate) {
        // An object replaced since the listing: check this model again on its own.
        Err(e) if e.storage_kind() == Some(StorageErrorKind::PreconditionFailed) => check_remote(&model_url, validate),
        other => other.map(|checked| (checked, files)),
    };
    match outcome {
        Err(e) => ModelSummary { error: Some(e), ..row },
        Ok((checked, files)) => summary_of(
            row,
            checked,
            |metadata| remote_sizes(&files, metadata),
            || reread_remote(&files, &validate.limits),
        ),
    }
}

/// The total size of the checkpoint objects, from the listing, each object once.
fn remote_sizes(files: &ObjectFiles, metadata: &Metadata) -> Option<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    for entry in metadata.model.training.checkpoints.values() {
        let key = key_of(&relative_inside(&entry.path).ok()?);
        if seen.insert(key.clone()) {
            total += files.object(&key)?.size;
        }
    }
    Some(total)
}

/// The metadata of an invalid remote model whose checks did not give it, if its listed
/// `metadata.yaml` has the schema's types.
fn reread_remote(files: &ObjectFiles, limits: &Limits) -> Option<Metadata> {
    files.object("metadata.yaml")?;
    files.read_yaml(&"metadata.yaml".to_owned(), limits).ok()?.metadata(limits).ok()?.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_folders_are_told_from_models() {
        let suffix = crate::fsutil::unique_suffix();
        let staging = format!(".detector.pmf-save-{suffix}");
        assert_eq!(leftover_of(staging.as_bytes()), Some((OsString::from("detector"), "save")));
        let new = format!(".a.pmf-old-b.pmf-new-{suffix}");
        assert_eq!(leftover_of(new.as_bytes()), Some((OsString::from("a.pmf-old-b"), "new")));
        for name in [".detector", "detector.pmf-save-1", ".detector.pmf-save-notasuffix", ".pmf-save-x", ".git"] {
            assert_eq!(leftover_of(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn prefixes_of_models_and_their_depth() {
        assert_eq!(model_prefix_of("metadata.yaml"), Some(""));
        assert_eq!(model_prefix_of("a/b/metadata.yaml"), Some("a/b"));
        assert_eq!(model_prefix_of("a/xmetadata.yaml"), None);
        assert_eq!((depth_of(""), depth_of("a"), depth_of("a/b")), (0, 1, 2));
        let models: HashSet<&str> = ["a", "a/data/initialisation", "ab/c"].into_iter().collect();
        assert!(inside_a_model("a/data/initialisation", &models));
        assert!(!inside_a_model("ab/c", &models), "a is not an ancestor of ab");
        assert!(!inside_a_model("a", &models));
    }

    #[test]
    fn objects_under_a_prefix_are_relative_to_it() {
        let item = |rel: &str| Listed { rel: rel.to_owned(), size: 1, etag: None };
        let mut listed: Vec<Listed> =
            ["a-b/metadata.yaml", "a/metadata.yaml", "a/data/x", "ab/metadata.yaml", "b"].map(item).to_vec();
        listed.sort_by(|a, b| a.rel.cmp(&b.rel));
        let under: Vec<String> = objects_under(&listed, "a").into_iter().map(|l| l.rel).collect();
        assert_eq!(under, ["data/x", "metadata.yaml"]);
        assert_eq!(objects_under(&listed, "").len(), 5);
    }
}
