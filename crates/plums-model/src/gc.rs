//! Garbage collection ([`gc()`], `pmf gc`): remove what interrupted saves left behind under a
//! folder or an object-store prefix, model by model, under each model's writer lock, as the
//! next save of that model would; never a file a model registers, never a foreign file.
//!
//! A **writer**: it takes the writer lock (`commit::lock_writer`, `object_lock.rs`) and
//! changes model folders and prefixes; no reader reaches it (`tests/gc.rs` checks the sources).
//!
//! # What is removed, on disk
//! Exactly what the next save of the model would remove before it starts ([`commit::repair`],
//! which does the removal): the folders next to the model `<parent>/.<name>.pmf-save-*`
//! (staging trees, or the previous tree after an exchange), `-new-*` and `-old-*` (trees of a
//! commit without `RENAME_EXCHANGE`), the temporary files `.<file>.pmf-tmp-<suffix>` at the
//! model root and in `data/checkpoints/`, the journals `data/checkpoints/.pmf-append-*` of
//! interrupted in-place saves and the checkpoint files they name that the metadata does not
//! reference (names as `leftovers.rs` and `commit.rs` define them: the exact prefix, then a
//! suffix of the form the library makes). A model folder that a commit without
//! `RENAME_EXCHANGE` left missing is put back first, as a save would (`commit::lock_writer`: the
//! complete new tree, else the old one), and reported in [`GcReport::completed`]. Nothing else
//! is touched: an unregistered file that no journal names (it may be the user's), folders
//! whose names only look like PMF's, anything reached through a link (a model folder or a
//! leftover that is a link is skipped; a link to a model given as the location is followed).
//!
//! Models are found as [`crate::list_models`] finds them; leftover folders of a folder that is
//! not (or no longer) a model are found by the same walk rules: a folder holding a `.pmf.lock`
//! (a save's destination) gets its staging folders removed; a staging folder whose model folder
//! is gone is removed under the lock file it carries (kept, [`SkipKind::Changed`], when that lock
//! file is replaced while gc takes it: the lock is then not gc's); one without a lock file only
//! when it has not changed for an hour (a save creates its staging folder, then links the lock
//! file into it: a younger one may be a save at work, kept as [`SkipKind::Recent`]). A folder
//! without `metadata.yaml` and without `.pmf.lock` is not known to be PMF's: its look-alike
//! neighbours are kept and reported. A journal's file is registered when a checkpoint path
//! names it in any form the validator accepts (`./data/checkpoints/x.pt`).
//!
//! # What is removed, on object storage
//! Under the model's lock object (taken as a save takes it: a gone writer's lock is taken
//! over), after one listing of the model's prefix and a read of its `metadata.yaml`: the objects
//! at paths PMF owns that the metadata does not reference: `data/checkpoints/<name>` (one
//! segment: the checkpoint files a save writes), and everything under `data/initialisation/`
//! when the initialisation is a weight file and that folder holds no `metadata.yaml` (a PMF
//! model's tree belongs to it whole; with no initialisation, nothing there is known to be a
//! save's, and all of it is kept). Never an object the metadata registers (`metadata.yaml`,
//! `data/build_parameters.yaml`, the configuration, every checkpoint and initialisation path),
//! nor one whose file name is the file name of a registered path (a second guard: a path that
//! is not literally its object's key still protects it), never another key (at the prefix
//! root, elsewhere under `data/`), never a key outside the prefix (keys come from its listing,
//! which is by `/`-separated segments: `models/detector-2/` is not under `models/detector`).
//! A model whose `metadata.yaml` cannot be read is skipped: without it nothing can be proved
//! unreferenced. So is a model with an offence ([`SkipKind::Invalid`], checked on the same
//! listing, as a reader checks it), but the marker below and folders directly in
//! `data/checkpoints/` (never deleted, never a valid checkpoint path): an invalid model's
//! metadata does not prove what it uses (a checkpoint registered as `checkpoints/1.h5`, or by
//! its file name, is at `data/checkpoints/1.h5`). Before deleting, `metadata.yaml` is checked again (one `HEAD`): a commit that
//! landed since the listing stops the collection of that model. A stale lock object (a gone
//! writer's) is replaced by gc's own and deleted with it ([`GcKind::StaleLock`]).
//!
//! The marker `.pmf-save-in-progress` of a save that replaced objects and was interrupted is
//! **kept**: the next save repairs such a model by sending every object again from the model it
//! saves; gc has only the objects in the store, which may mix two versions (nothing records the
//! MD5 of `data/build_parameters.yaml`, so no check can prove they do not), and removing the
//! marker would make readers trust a mixture. The model is reported in [`GcReport::skipped`]
//! ([`SkipKind::InterruptedSave`]); its unreferenced objects are still removed. On a store used
//! with `conditional_writes=false` there is no lock: gc refuses to delete objects there.
//!
//! # Dry runs
//! [`GcOptions::dry_run`] reports what would be removed and changes nothing, on disk or in a
//! store: no lock is taken. On disk it holds a shared `flock` on each model's `.pmf.lock`
//! while it looks (a saving writer holds it exclusively: such a model is reported as locked);
//! on object storage it reads the lock object and judges its holder as a writer would.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;

use crate::catalog::{list_models, ListOptions};
use crate::commit;
use crate::error::{Error, LockHolder, Offence, OffenceKind, Result, StorageErrorKind};
use crate::fsutil;
use crate::leftovers;
use crate::location::{Location, ObjectUrl};
use crate::lock::{self, Attempt, Backoff};
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::object_files::ObjectFiles;
use crate::object_lock::{self, ObjectLock};
use crate::paths::{self, Entry, Root, LOCK_FILE, SAVE_MARKER};
use crate::storage::{Listed, Remote, StorageOptions};
use crate::validate::{check_files, ValidateOptions};
use crate::yaml::Limits;
use crate::yaml_file::{self, YamlFile};

/// The default of [`GcOptions::lock_timeout`]: gc does not wait long for a writer at work.
pub const GC_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// How many models of an object store are collected at once.
const REMOTE_THREADS: usize = 16;

/// How to collect garbage.
///
/// ```
/// use plums_model::GcOptions;
/// let options = GcOptions::new().dry_run(true).depth(2);
/// assert!(options.dry_run);
/// assert_eq!(options.depth, Some(2));
/// assert_eq!(GcOptions::new().lock_timeout, plums_model::GC_LOCK_TIMEOUT);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcOptions {
    /// Report what would be removed; change nothing.
    pub dry_run: bool,
    /// How many levels of folders (or prefix segments) below the location are searched for
    /// models, as [`ListOptions::depth`]: `None` (the default) is unlimited.
    pub depth: Option<usize>,
    /// How to reach an object store.
    pub storage: StorageOptions,
    /// How long to wait for another writer of a model before skipping it
    /// ([`GC_LOCK_TIMEOUT`] by default).
    pub lock_timeout: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions { dry_run: false, depth: None, storage: StorageOptions::new(), lock_timeout: GC_LOCK_TIMEOUT }
    }
}

impl GcOptions {
    /// The defaults: remove, unlimited depth, default storage options, [`GC_LOCK_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`GcOptions::dry_run`].
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// See [`GcOptions::depth`].
    pub fn depth(mut self, depth: impl Into<Option<usize>>) -> Self {
        self.depth = depth.into();
        self
    }

    /// See [`GcOptions::storage`].
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.storage = storage;
        self
    }

    /// See [`GcOptions::lock_timeout`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
}

/// What a removed leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GcKind {
    /// `.<name>.pmf-save-*` next to the model: a staging tree, or the previous tree after an
    /// exchange.
    StagingFolder,
    /// `.<name>.pmf-new-*`: the new tree of a commit without `RENAME_EXCHANGE` that is not
    /// needed (the model folder is in place).
    NewTree,
    /// `.<name>.pmf-old-*`: the previous tree of a commit without `RENAME_EXCHANGE`.
    OldTree,
    /// `.<file>.pmf-tmp-*`: a temporary file of an interrupted write.
    TempFile,
    /// `data/checkpoints/.pmf-append-*`: the journal of an interrupted in-place save.
    Journal,
    /// A checkpoint file that an interrupted in-place save created (its journal names it)
    /// and that the metadata does not reference.
    JournalFile,
    /// An object at a path PMF owns that the model's metadata does not reference.
    OrphanObject,
    /// The lock object of a writer that is gone.
    StaleLock,
}

impl GcKind {
    /// The kind as a word: `staging_folder`, `new_tree`, `old_tree`, `temp_file`, `journal`,
    /// `journal_file`, `orphan_object`, `stale_lock`.
    pub fn as_str(self) -> &'static str {
        match self {
            GcKind::StagingFolder => "staging_folder",
            GcKind::NewTree => "new_tree",
            GcKind::OldTree => "old_tree",
            GcKind::TempFile => "temp_file",
            GcKind::Journal => "journal",
            GcKind::JournalFile => "journal_file",
            GcKind::OrphanObject => "orphan_object",
            GcKind::StaleLock => "stale_lock",
        }
    }

    /// The kind for people: `staging folder`, `unreferenced object`, ...
    pub fn describe(self) -> &'static str {
        match self {
            GcKind::StagingFolder => "staging folder",
            GcKind::NewTree => "unused new tree",
            GcKind::OldTree => "old tree",
            GcKind::TempFile => "temporary file",
            GcKind::Journal => "save journal",
            GcKind::JournalFile => "unregistered checkpoint file of an interrupted save",
            GcKind::OrphanObject => "unreferenced object",
            GcKind::StaleLock => "stale lock object",
        }
    }
}

/// One leftover removed (or that would be, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcItem {
    /// The file, folder or object (a path, or the URL of the object).
    pub location: Location,
    /// The model it was left by (its folder or prefix).
    pub model: Location,
    /// What it is.
    pub kind: GcKind,
    /// Its size: the bytes of its regular files (each file once), or of the object.
    pub bytes: u64,
    /// The space its removal frees: a file's bytes count only when no link to it remains
    /// outside what is removed (a staging tree's files hard-linked into the model free
    /// nothing); an object's bytes.
    pub freed_bytes: u64,
}

/// A model folder that an interrupted commit left missing, put back in place (or that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcCompleted {
    /// The model folder.
    pub model: PathBuf,
    /// The tree put in place (`.<name>.pmf-new-*`, else `.<name>.pmf-old-*`).
    pub from: PathBuf,
}

/// Why a model, or one of its leftovers, was not collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipKind {
    /// Another writer held the model's lock for [`GcOptions::lock_timeout`].
    Locked,
    /// The model folder (or the folder named like a model next to leftovers) is a link, or is
    /// not a folder: gc never works through links.
    Link,
    /// Leftover-like folders next to a folder that is neither a model nor a save's
    /// destination (no `metadata.yaml`, no `.pmf.lock`): not known to be PMF's, kept.
    NotAModel,
    /// `metadata.yaml` could not be read: nothing can be proved unreferenced.
    UnreadableMetadata,
    /// The object-store marker of an interrupted save that replaced objects: kept (only a save
    /// repairs such a model).
    InterruptedSave,
    /// The store is used without conditional writes (`conditional_writes=false`): no lock.
    NoLock,
    /// The model changed while it was collected (a commit landed): collection stopped.
    Changed,
    /// A leftover was still there after its removal (permissions, a busy file system).
    NotRemoved,
    /// An I/O or storage error ([`GcSkip::error`]).
    Failed,
    /// The model has validation offences (other than the marker of an interrupted save and
    /// folders inside `data/checkpoints/`): its metadata does not prove which objects it uses
    /// (a checkpoint path outside `data/checkpoints/`, ...), so nothing is removed.
    Invalid,
    /// A staging folder without a lock file that changed recently: it may be a save at work
    /// (a save links the lock file into its staging folder after creating it); kept.
    Recent,
}

impl SkipKind {
    /// The kind as a word: `locked`, `link`, `not_a_model`, `unreadable_metadata`,
    /// `interrupted_save`, `no_lock`, `changed`, `not_removed`, `failed`, `invalid`, `recent`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::Locked => "locked",
            SkipKind::Link => "link",
            SkipKind::NotAModel => "not_a_model",
            SkipKind::UnreadableMetadata => "unreadable_metadata",
            SkipKind::InterruptedSave => "interrupted_save",
            SkipKind::NoLock => "no_lock",
            SkipKind::Changed => "changed",
            SkipKind::NotRemoved => "not_removed",
            SkipKind::Failed => "failed",
            SkipKind::Invalid => "invalid",
            SkipKind::Recent => "recent",
        }
    }
}

/// A model (or a leftover) gc did not collect, and why.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcSkip {
    /// The model folder or prefix (or the leftover).
    pub location: Location,
    /// Why, as a kind.
    pub kind: SkipKind,
    /// Why, for people.
    pub reason: String,
    /// The error, when there is one ([`Error::Locked`] with its holder, an I/O or storage
    /// error).
    pub error: Option<Error>,
}

/// What [`gc()`] did (or would do).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// Every leftover removed (or that would be), sorted by location.
    pub removed: Vec<GcItem>,
    /// Model folders put back in place.
    pub completed: Vec<GcCompleted>,
    /// The sum of the items' [`GcItem::freed_bytes`].
    pub freed_bytes: u64,
    /// How many models (and folders with leftovers next to them) were examined.
    pub models_examined: usize,
    /// What was not collected, and why.
    pub skipped: Vec<GcSkip>,
}

impl GcReport {
    /// How many models had at least one leftover removed.
    pub fn models_cleaned(&self) -> usize {
        self.removed.iter().map(|i| i.model.to_string()).collect::<HashSet<_>>().len()
    }

    fn absorb(&mut self, outcome: Outcome) {
        self.models_examined += 1;
        self.removed.extend(outcome.removed);
        self.completed.extend(outcome.completed);
        self.skipped.extend(outcome.skipped);
    }

    fn finish(mut self) -> GcReport {
        self.removed.sort_by_key(|i| (i.location.to_string(), i.kind));
        self.skipped.sort_by_key(|s| s.location.to_string());
        self.completed.sort_by(|a, b| a.model.cmp(&b.model));
        self.freed_bytes = self.removed.iter().map(|i| i.freed_bytes).sum();
        self
    }
}

/// What collecting one model gave.
#[derive(Default)]
struct Outcome {
    removed: Vec<GcItem>,
    completed: Vec<GcCompleted>,
    skipped: Vec<GcSkip>,
}

impl Outcome {
    fn skip(location: Location, kind: SkipKind, reason: impl Into<String>, error: Option<Error>) -> Outcome {
        Outcome { skipped: vec![GcSkip { location, kind, reason: reason.into(), error }], ..Outcome::default() }
    }

    fn failed(location: Location, error: Error) -> Outcome {
        let kind = if matches!(error, Error::Locked { .. }) { SkipKind::Locked } else { SkipKind::Failed };
        let reason = match &error {
            Error::Locked { holder, .. } => {
                format!("another writer holds the model's lock ({holder}); try again later")
            }
            other => other.to_string(),
        };
        Outcome::skip(location, kind, reason, Some(error))
    }
}

/// Remove what interrupted saves left behind under `location` (a folder or an object-store
/// prefix): for every model found there (see the module documentation), under its writer lock,
/// the leftovers the next save of that model would remove, and on object storage the objects
/// at PMF's paths that its metadata does not reference. Never a file or object a model
/// registers, never a foreign one, never anything outside `location` but the leftovers next
/// to a model folder (where saves build their staging trees).
///
/// A model another writer holds for longer than [`GcOptions::lock_timeout`] is skipped
/// ([`SkipKind::Locked`]), and so is, for its part, anything gc cannot prove it may remove; the
/// report says why. The `Err` cases are the location's own, as for [`crate::list_models`]: a
/// folder that cannot be listed, a store that fails on its listing, bad storage options.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// use plums_model::{gc, GcKind, GcOptions, Location, Model, Producer, SaveOptions, Version};
/// let mut model = Model::new("a", Producer::new("trainer", Version::pep440("1.0")?, &cfg)?);
/// model.save(dir.path().join("runs/a"), &SaveOptions::new())?;
/// // What a save killed before its commit leaves: a staging folder next to the model.
/// std::fs::create_dir(dir.path().join("runs/.a.pmf-save-4242-0-0000abcd")).unwrap();
/// let report = gc(&Location::from(dir.path()), &GcOptions::new())?;
/// assert_eq!(report.removed.len(), 1);
/// assert_eq!(report.removed[0].kind, GcKind::StagingFolder);
/// assert!(!dir.path().join("runs/.a.pmf-save-4242-0-0000abcd").exists());
/// # Ok::<(), plums_model::Error>(())
/// ```
pub fn gc(location: &Location, options: &GcOptions) -> Result<GcReport> {
    let report = match location {
        Location::Local(root) => gc_local(root, options)?,
        Location::Object(url) => gc_remote(url, options)?,
    };
    Ok(report.finish())
}

// ---------------------------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------------------------

/// The kinds of the folders next to a model, with the kind of item each is.
const SIBLING_KINDS: [(&str, GcKind); 3] =
    [("save", GcKind::StagingFolder), ("new", GcKind::NewTree), ("old", GcKind::OldTree)];

/// The model folder a leftover folder `name` next to it was made for
/// (`.<model>.pmf-<kind>-<suffix>`), with its kind.
fn leftover_of(name: &OsStr) -> Option<(OsString, GcKind)> {
    let rest = name.as_bytes().strip_prefix(b".")?;
    SIBLING_KINDS.iter().find_map(|(kind, item)| {
        let marker = format!(".pmf-{kind}-");
        let at = rest.windows(marker.len()).rposition(|w| w == marker.as_bytes())?;
        let model = OsStr::from_bytes(&rest[..at]);
        (!model.is_empty() && leftovers::is_sibling_of(name, model, kind)).then(|| (model.to_os_string(), *item))
    })
}

/// A leftover found by a walk: its path and kind.
type Found = (PathBuf, GcKind);

/// Leftover folders next to models, found by walking `root` as the catalog walks it (links
/// and models not entered, down to `depth`): by model folder path.
fn walk_leftovers(root: &Path, depth: Option<usize>) -> HashMap<PathBuf, Vec<Found>> {
    let mut found: HashMap<PathBuf, Vec<Found>> = HashMap::new();
    let mut todo = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, level)) = todo.pop() {
        let is_model = fs::symlink_metadata(dir.join("metadata.yaml")).is_ok();
        if is_model || depth.is_some_and(|max| level >= max) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if !kind.is_dir() {
                continue;
            }
            let name = entry.file_name();
            match leftover_of(&name) {
                Some((model, item)) => found.entry(dir.join(model)).or_default().push((entry.path(), item)),
                None => todo.push((entry.path(), level + 1)),
            }
        }
    }
    found
}

fn gc_local(root: &Path, options: &GcOptions) -> Result<GcReport> {
    let mut report = GcReport { dry_run: options.dry_run, ..GcReport::default() };
    // Model folders (and folders with leftovers next to them), and whether their parent was
    // walked (then the walk found every leftover next to them).
    let mut candidates: Vec<(PathBuf, Option<Vec<Found>>)> = Vec::new();
    if fs::symlink_metadata(root).is_err() && leftovers::interrupted_commit(root).is_some() {
        // The location is a model folder an interrupted commit left missing.
        candidates.push((root.to_path_buf(), None));
    } else {
        let rows = list_models(&Location::Local(root.to_path_buf()), &ListOptions::new().depth(options.depth))?;
        let mut beside = walk_leftovers(root, options.depth);
        for row in rows {
            let Location::Local(path) = row.location else { continue };
            match row.error {
                None | Some(Error::InterruptedSave { .. }) => {}
                Some(e) => {
                    report.skipped.push(GcSkip {
                        location: Location::Local(path),
                        kind: SkipKind::Failed,
                        reason: e.to_string(),
                        error: Some(e),
                    });
                    continue;
                }
            }
            // The location itself: its parent was not walked.
            let known = if path == root { None } else { Some(beside.remove(&path).unwrap_or_default()) };
            candidates.push((path, known));
        }
        candidates.extend(beside.into_iter().map(|(path, found)| (path, Some(found))));
    }
    let outcomes: Vec<Outcome> = candidates
        .par_iter()
        .with_max_len(1)
        .map(|(path, known)| collect_folder(path, path == root, known.as_deref(), options))
        .collect();
    for outcome in outcomes {
        report.absorb(outcome);
    }
    Ok(report)
}

/// What is at a candidate model path.
enum Place {
    /// A real folder (or the location, followed): a model, or a save's destination.
    Folder { model: bool, lock_file: bool },
    /// Missing; a commit without `RENAME_EXCHANGE` left this tree to put in place.
    Interrupted(PathBuf),
    /// Missing, with only staging folders next to it.
    Gone,
    /// A link, or not a folder.
    Other(&'static str),
}

fn place_of(path: &Path, is_location: bool) -> Place {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() && !is_location => Place::Other("is a link: gc never works through links"),
        Ok(_) => match fs::metadata(path) {
            Ok(m) if m.is_dir() => Place::Folder {
                model: fs::symlink_metadata(path.join("metadata.yaml")).is_ok(),
                lock_file: fs::symlink_metadata(path.join(LOCK_FILE)).is_ok_and(|m| m.is_file()),
            },
            _ => Place::Other("is not a folder"),
        },
        Err(_) => match leftovers::interrupted_commit(path) {
            Some(tree) => Place::Interrupted(tree),
            None => Place::Gone,
        },
    }
}

/// The leftover folders next to the model folder `path` (its parent read now).
fn siblings_now(path: &Path) -> Vec<Found> {
    let Some(name) = path.file_name() else { return Vec::new() };
    let parent = leftovers::parent_of(path);
    let Ok(entries) = fs::read_dir(parent) else { return Vec::new() };
    let mut out: Vec<Found> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let entry_name = e.file_name();
            SIBLING_KINDS
                .iter()
                .find(|(kind, _)| leftovers::is_sibling_of(&entry_name, name, kind))
                .map(|(_, item)| (e.path(), *item))
        })
        .collect();
    out.sort();
    out
}

/// The leftovers inside the model folder `root`, as [`commit::repair`] removes them: temporary
/// files at the root and in `data/checkpoints/`; with the metadata, the journals there and the
/// files they name that it does not reference.
fn inside_now(root: &Path, current: Option<&Metadata>) -> Vec<Found> {
    let mut out = Vec::new();
    let temp_files = |dir: &Path, out: &mut Vec<Found>| {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            if fsutil::is_temp_leftover(&e.file_name()) && e.file_type().is_ok_and(|t| t.is_file()) {
                out.push((e.path(), GcKind::TempFile));
            }
        }
    };
    temp_files(root, &mut out);
    if paths::is_real_dir(root, Path::new("data/checkpoints")) {
        let dir = root.join("data/checkpoints");
        temp_files(&dir, &mut out);
        if let Some(current) = current {
            journals(&dir, current, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The journals in the checkpoint folder `dir` and the files they name that `current` does
/// not reference (as `commit::recover_interrupted_appends` undoes them).
fn journals(dir: &Path, current: &Metadata, out: &mut Vec<Found>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let referenced = |name: &str| commit::registers_checkpoint_file(current, name);
    for entry in entries.flatten() {
        if !commit::is_journal(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(bytes) = fs::read(entry.path()) else { continue };
        for name in bytes.split(|&b| b == 0).filter_map(|n| std::str::from_utf8(n).ok()) {
            let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
            let file = dir.join(name);
            let exists = fs::symlink_metadata(&file).is_ok_and(|m| !m.is_dir());
            if plain && exists && !referenced(name) && !out.iter().any(|(p, _)| *p == file) {
                out.push((file, GcKind::JournalFile));
            }
        }
        out.push((entry.path(), GcKind::Journal));
    }
}

/// The journals in `data/checkpoints/` of the model folder `root` kept because its metadata
/// could not be read (which of the files they name it references is unknown): a skip each.
fn journals_kept(given: &Path, real: &Path, current: Option<&Metadata>) -> Vec<GcSkip> {
    let dir = real.join("data/checkpoints");
    if current.is_some() || !paths::is_real_dir(real, Path::new("data/checkpoints")) {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<GcSkip> = entries
        .flatten()
        .filter(|e| commit::is_journal(&e.file_name()) && e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| GcSkip {
            location: Location::Local(shown(given, real, &e.path())),
            kind: SkipKind::UnreadableMetadata,
            reason: "the journal of an interrupted save is kept: metadata.yaml cannot be read, so which of the files it names the model references is unknown".to_owned(),
            error: None,
        })
        .collect();
    out.sort_by_key(|s| s.location.to_string());
    out
}

/// Whether anything inside the model folder `root` may be a leftover (no metadata needed).
fn anything_inside(root: &Path) -> bool {
    let has = |dir: &Path| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| fsutil::is_temp_leftover(&e.file_name()) || commit::is_journal(&e.file_name()))
        })
    };
    has(root) || (paths::is_real_dir(root, Path::new("data/checkpoints")) && has(&root.join("data/checkpoints")))
}

/// The metadata of the model folder `root`, read as a save reads its destination (never through
/// a link out of it), when it has no offence.
fn read_local_metadata(root: &Path) -> Option<Metadata> {
    let root = Root::new(root, false).ok()?;
    let (path, Entry::File) = root.resolve(Path::new("metadata.yaml"), "metadata.yaml").ok()? else { return None };
    yaml_file::read_metadata(&path, &Limits::default()).ok().map(|(m, _)| m)
}

/// Sizes of the leftovers of one model: (bytes, freed) of each. A file's bytes are freed when
/// every link to it is among these leftovers (counted once, for the first that holds it).
fn measure(items: &[Found]) -> Vec<(u64, u64)> {
    /// A regular file: (device, inode), link count, size.
    type File = ((u64, u64), u64, u64);
    let mut files: Vec<Vec<File>> = Vec::with_capacity(items.len());
    let mut links: HashMap<(u64, u64), u64> = HashMap::new();
    for (path, _) in items {
        let mut mine = Vec::new();
        for entry in walkdir::WalkDir::new(path).follow_links(false).into_iter().flatten() {
            // The lock file a tree carries is the model's (hard-linked, written by the lock's
            // holder): never freed, and not the tree's content.
            if !entry.file_type().is_file() || (entry.depth() == 1 && entry.file_name() == LOCK_FILE) {
                continue;
            }
            let Ok(m) = entry.metadata() else { continue };
            let id = (m.dev(), m.ino());
            *links.entry(id).or_default() += 1;
            mine.push((id, m.nlink(), m.len()));
        }
        files.push(mine);
    }
    let mut claimed = HashSet::new();
    files
        .into_iter()
        .map(|mine| {
            let mut seen = HashSet::new();
            let (mut bytes, mut freed) = (0, 0);
            for (id, nlink, len) in mine {
                if !seen.insert(id) {
                    continue;
                }
                bytes += len;
                if links.get(&id).copied().unwrap_or(0) >= nlink && claimed.insert(id) {
                    freed += len;
                }
            }
            (bytes, freed)
        })
        .collect()
}

/// How a leftover is shown: under the model path as given, when it is where the real path's
/// leftovers are (a link given as the location shows the real paths).
fn shown(given: &Path, real: &Path, leftover: &Path) -> PathBuf {
    if let Ok(rel) = leftover.strip_prefix(real) {
        return given.join(rel);
    }
    let (given_parent, real_parent) = (leftovers::parent_of(given), leftovers::parent_of(real));
    match (leftover.file_name(), given_parent.canonicalize()) {
        (Some(name), Ok(p)) if p == real_parent && leftover.parent() == Some(real_parent) => given_parent.join(name),
        _ => leftover.to_path_buf(),
    }
}

/// A shared `flock` on an existing lock file, held while a dry run looks (a writer holds it
/// exclusively); `Err` with the holder when a writer keeps it for `timeout`.
fn probe_lock(lock_path: &Path, timeout: Duration) -> std::result::Result<Option<fs::File>, LockHolder> {
    use rustix::fs::{flock, FlockOperation, OFlags};
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK).bits() as i32)
        .open(lock_path);
    let Some(file) = opened.ok().filter(|f| f.metadata().is_ok_and(|m| m.is_file())) else { return Ok(None) };
    let mut backoff = Backoff::new(timeout);
    loop {
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            Ok(()) => return Ok(Some(file)),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(_) => return Ok(None),
        }
        if !backoff.wait() {
            return Err(lock::holder(lock_path));
        }
    }
}

fn locked_error(path: &Path, holder: LockHolder, waited: Duration) -> Error {
    Error::Locked { path: path.to_path_buf(), holder, waited }
}

/// Collect the leftovers of the model folder `path` (`known`: the leftovers next to it that the
/// walk found, when it read its parent).
fn collect_folder(path: &Path, is_location: bool, known: Option<&[Found]>, options: &GcOptions) -> Outcome {
    let here = || Location::Local(path.to_path_buf());
    let place = place_of(path, is_location);
    let beside = match known {
        Some(k) => k.to_vec(),
        None => siblings_now(path),
    };
    match place {
        Place::Other(why) if !beside.is_empty() => Outcome::skip(
            here(),
            SkipKind::Link,
            format!("{why}; the leftover-like folders next to it are kept"),
            None,
        ),
        Place::Other(_) => Outcome::default(),
        Place::Gone if beside.is_empty() => Outcome::default(),
        Place::Gone => collect_orphan_staging(path, &beside, options),
        Place::Folder { model, .. } if beside.is_empty() && (!model || !anything_inside(path)) => Outcome::default(),
        Place::Folder { model: false, lock_file: false } => Outcome::skip(
            here(),
            SkipKind::NotAModel,
            "holds neither metadata.yaml nor .pmf.lock: not known to be a PMF model folder; the leftover-like folders next to it are kept",
            None,
        ),
        Place::Folder { lock_file, .. } if options.dry_run => {
            let probe = if lock_file { probe_lock(&path.join(LOCK_FILE), options.lock_timeout) } else { Ok(None) };
            match probe {
                Err(holder) => Outcome::failed(here(), locked_error(path, holder, options.lock_timeout)),
                Ok(_held) => match path.canonicalize() {
                    Ok(real) => survey_folder(path, &real, None, read_local_metadata(&real).as_ref()),
                    Err(e) => Outcome::failed(here(), Error::io(path, "cannot resolve the model folder", e)),
                },
            }
        }
        Place::Interrupted(tree) if options.dry_run => {
            let probe = probe_lock(&tree.join(LOCK_FILE), options.lock_timeout);
            match probe {
                Err(holder) => Outcome::failed(here(), locked_error(path, holder, options.lock_timeout)),
                Ok(_held) => {
                    let mut outcome = survey_folder(path, &tree, Some(path), read_local_metadata(&tree).as_ref());
                    outcome.completed.push(GcCompleted { model: path.to_path_buf(), from: tree });
                    outcome
                }
            }
        }
        Place::Folder { .. } | Place::Interrupted(_) => collect_locked(path, is_location, options),
    }
}

/// A dry run's report of the leftovers of the model folder `given` (real path `real`; when an
/// interrupted commit would put the tree `real` in place at `into`, its leftovers are those of
/// `into` but that tree).
fn survey_folder(given: &Path, real: &Path, into: Option<&Path>, current: Option<&Metadata>) -> Outcome {
    let model_path = into.unwrap_or(real);
    let mut items: Vec<Found> = siblings_now(model_path).into_iter().filter(|(p, _)| p != real).collect();
    items.extend(inside_now(real, current));
    let skipped = journals_kept(into.unwrap_or(given), real, current);
    let sizes = measure(&items);
    let removed = items
        .into_iter()
        .zip(sizes)
        .map(|((path, kind), (bytes, freed_bytes))| {
            let location = match into {
                Some(into) => match path.strip_prefix(real) {
                    Ok(rel) => into.join(rel),
                    Err(_) => path,
                },
                None => shown(given, real, &path),
            };
            GcItem {
                location: Location::Local(location),
                model: Location::Local(given.to_path_buf()),
                kind,
                bytes,
                freed_bytes,
            }
        })
        .collect();
    Outcome { removed, skipped, ..Outcome::default() }
}

/// Take the writer lock of the model folder `path` as a save does (putting an interrupted
/// commit's tree in place), then remove its leftovers with [`commit::repair`].
///
/// The folder must still be the one the walk saw, before and under the lock: a model folder
/// (not the location itself) that is a link, or that was replaced by another folder, is
/// skipped, so that a folder swapped for a link after the walk cannot lead gc out of the
/// location; a folder that is gone (and no interrupted commit's tree) is not created.
fn collect_locked(path: &Path, is_location: bool, options: &GcOptions) -> Outcome {
    let here = || Location::Local(path.to_path_buf());
    let pending = leftovers::interrupted_commit(path);
    let seen = fs::symlink_metadata(path).ok();
    let link = |m: &fs::Metadata| m.file_type().is_symlink() && !is_location;
    let became_link = || {
        Outcome::skip(
            here(),
            SkipKind::Link,
            "is a link (it became one while gc looked): gc never works through links; nothing removed",
            None,
        )
    };
    if seen.as_ref().is_some_and(link) {
        return became_link();
    }
    if seen.is_none() && pending.is_none() {
        return Outcome::default();
    }
    let lock = match commit::lock_existing_writer(path, options.lock_timeout) {
        Ok(lock) => lock,
        Err(_) if fs::symlink_metadata(path).is_err() && leftovers::interrupted_commit(path).is_none() => {
            return Outcome::default()
        }
        Err(e) => return Outcome::failed(here(), e),
    };
    match fs::symlink_metadata(path) {
        Ok(now) if link(&now) => return became_link(),
        Ok(now) if seen.as_ref().is_some_and(|s| (s.dev(), s.ino()) != (now.dev(), now.ino())) => {
            return Outcome::skip(
                here(),
                SkipKind::Changed,
                "the model folder was replaced while gc looked: nothing removed; run gc again",
                None,
            )
        }
        _ => {}
    }
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) => return Outcome::failed(here(), Error::io(path, "cannot resolve the model folder", e)),
    };
    let mut outcome = Outcome::default();
    if let Some(tree) = pending.filter(|t| fs::symlink_metadata(t).is_err()) {
        outcome.completed.push(GcCompleted { model: path.to_path_buf(), from: tree });
    }
    let current = read_local_metadata(&real);
    let mut items = siblings_now(&real);
    items.extend(inside_now(&real, current.as_ref()));
    outcome.skipped.extend(journals_kept(path, &real, current.as_ref()));
    let sizes = measure(&items);
    commit::repair(&real, current.as_ref(), &lock);
    drop(lock);
    for ((item, kind), (bytes, freed_bytes)) in items.into_iter().zip(sizes) {
        let location = Location::Local(shown(path, &real, &item));
        if fs::symlink_metadata(&item).is_ok() {
            outcome.skipped.push(GcSkip {
                location,
                kind: SkipKind::NotRemoved,
                reason: format!("{} could not be removed", kind.describe()),
                error: None,
            });
        } else {
            outcome.removed.push(GcItem { location, model: here(), kind, bytes, freed_bytes });
        }
    }
    outcome
}

/// Staging folders next to a model folder that is gone (no tree of an interrupted commit):
/// each removed under the lock file it carries (the model's, hard-linked into every tree a save
/// builds: a writer still at work holds it).
fn collect_orphan_staging(path: &Path, beside: &[Found], options: &GcOptions) -> Outcome {
    let mut outcome = Outcome::default();
    let staging: Vec<Found> = beside.iter().filter(|(_, k)| *k == GcKind::StagingFolder).cloned().collect();
    let sizes = measure(&staging);
    for ((tree, kind), (bytes, freed_bytes)) in staging.into_iter().zip(sizes) {
        let lock_path = tree.join(LOCK_FILE);
        let item = GcItem {
            location: Location::Local(tree.clone()),
            model: Location::Local(path.to_path_buf()),
            kind,
            bytes,
            freed_bytes,
        };
        let has_lock = fs::symlink_metadata(&lock_path).is_ok_and(|m| m.is_file());
        if !has_lock {
            // A save creates its staging folder, then links the model's lock file into it: a
            // young folder without one may be a live save's, early in its build.
            if let Some(age) = young(&tree) {
                outcome.skipped.push(GcSkip {
                    location: item.location,
                    kind: SkipKind::Recent,
                    reason: format!(
                        "staging folder without a lock file, changed {}s ago (less than {}s): it may be a save at work; kept",
                        age.as_secs(),
                        UNLOCKED_STAGING_AGE.as_secs()
                    ),
                    error: None,
                });
                continue;
            }
        }
        if options.dry_run {
            match if has_lock { probe_lock(&lock_path, options.lock_timeout) } else { Ok(None) } {
                Ok(_) => outcome.removed.push(item),
                Err(holder) => outcome
                    .skipped
                    .extend(Outcome::failed(item.location, locked_error(&tree, holder, options.lock_timeout)).skipped),
            }
            continue;
        }
        let held = if has_lock { lock_staging(&lock_path, options.lock_timeout) } else { Ok(Staging::Unlocked) };
        let _lock = match held {
            Err(e) => {
                outcome.skipped.extend(Outcome::failed(item.location, e).skipped);
                continue;
            }
            // Removed by another writer meanwhile: nothing for gc.
            Ok(Staging::Gone) => continue,
            Ok(Staging::Replaced) => {
                outcome.skipped.push(GcSkip {
                    location: item.location,
                    kind: SkipKind::Changed,
                    reason: "the lock file of the staging folder was replaced while gc took it (a writer is at work on it): kept; run gc again".to_owned(),
                    error: None,
                });
                continue;
            }
            Ok(Staging::Locked(lock)) => Some(lock),
            Ok(Staging::Unlocked) => None,
        };
        fsutil::remove_tree_quietly(&tree);
        if fs::symlink_metadata(&tree).is_ok() {
            outcome.skipped.push(GcSkip {
                location: item.location,
                kind: SkipKind::NotRemoved,
                reason: "staging folder could not be removed".to_owned(),
                error: None,
            });
        } else {
            outcome.removed.push(item);
        }
    }
    outcome
}

/// How old (by modification time) a staging folder without a lock file must be before gc
/// removes it: a save links the lock file into its staging folder soon after creating it, and
/// writes into the folder (changing its modification time) while it builds.
const UNLOCKED_STAGING_AGE: Duration = Duration::from_secs(3600);

/// How long ago the folder `tree` was modified, when that is less than
/// [`UNLOCKED_STAGING_AGE`] (or unknown, or in the future: then as young as can be).
fn young(tree: &Path) -> Option<Duration> {
    let modified = fs::symlink_metadata(tree).and_then(|m| m.modified());
    let Ok(modified) = modified else { return Some(Duration::ZERO) };
    match std::time::SystemTime::now().duration_since(modified) {
        Ok(age) if age >= UNLOCKED_STAGING_AGE => None,
        Ok(age) => Some(age),
        Err(_) => Some(Duration::ZERO),
    }
}

/// What taking the lock file a staging tree carries gave.
enum Staging {
    /// The lock is gc's.
    Locked(lock::ModelLock),
    /// The tree has no lock file (and is old enough to be removed without one).
    Unlocked,
    /// The tree is gone (another writer removed it).
    Gone,
    /// The tree is there but its lock file was replaced: the lock is not held.
    Replaced,
}

/// The writer lock of the lock file a staging tree carries, waiting at most `timeout`.
fn lock_staging(lock_path: &Path, timeout: Duration) -> Result<Staging> {
    let mut backoff = Backoff::new(timeout);
    loop {
        match lock::try_lock(lock_path)? {
            Attempt::Locked(lock) => return Ok(Staging::Locked(lock)),
            Attempt::Moved(_) if fs::symlink_metadata(leftovers::parent_of(lock_path)).is_err() => {
                return Ok(Staging::Gone)
            }
            Attempt::Moved(_) => return Ok(Staging::Replaced),
            Attempt::Busy => {}
        }
        if !backoff.wait() {
            return Err(locked_error(lock_path, lock::holder(lock_path), timeout));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object stores
// ---------------------------------------------------------------------------------------------

fn gc_remote(url: &ObjectUrl, options: &GcOptions) -> Result<GcReport> {
    let list = ListOptions::new().depth(options.depth).storage(options.storage.clone());
    let rows = list_models(&Location::Object(url.clone()), &list)?;
    let mut report = GcReport { dry_run: options.dry_run, ..GcReport::default() };
    let mut models = Vec::new();
    for row in rows {
        let Location::Object(model) = row.location else { continue };
        match row.error {
            None => models.push(model),
            Some(e) => report.skipped.push(GcSkip {
                location: Location::Object(model),
                kind: SkipKind::Failed,
                reason: e.to_string(),
                error: Some(e),
            }),
        }
    }
    let run = || models.par_iter().with_max_len(1).map(|m| collect_remote(m, options)).collect::<Vec<Outcome>>();
    let outcomes = match rayon::ThreadPoolBuilder::new().num_threads(REMOTE_THREADS).build() {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    };
    for outcome in outcomes {
        report.absorb(outcome);
    }
    Ok(report)
}

/// Whether the key `rel` of a model is at a path PMF owns and a save may leave unreferenced:
/// a checkpoint file `data/checkpoints/<name>`, or anything under `data/initialisation/` when
/// `initialisation_files`: the initialisation is a weight file and `data/initialisation/`
/// holds no `metadata.yaml` (a PMF model's tree belongs to it whole; with no initialisation,
/// nothing proves a save put the files there).
fn pmf_owned(rel: &str, initialisation_files: bool) -> bool {
    let normal = |segment: &str| !segment.is_empty() && segment != "." && segment != "..";
    if let Some(name) = rel.strip_prefix("data/checkpoints/") {
        return !name.contains('/') && normal(name);
    }
    if let Some(rest) = rel.strip_prefix("data/initialisation/") {
        return initialisation_files && rest.split('/').all(normal);
    }
    false
}

/// The file names (last segments) of every path the metadata registers (configuration,
/// checkpoints, initialisation): an object with one of these names is never deleted, whatever
/// folder the metadata names (a path that is not literally the key it is stored at, such as a
/// checkpoint registered by its file name, still points to it).
fn registered_names(metadata: &Metadata) -> HashSet<String> {
    let pmf_initialisation = match &metadata.model.initialisation {
        Some(InitialisationMetadata::Pmf { path, .. }) => Some(path.as_str()),
        _ => None,
    };
    crate::object_files::registered_paths(metadata)
        .chain(pmf_initialisation)
        .filter_map(|p| p.rsplit(['/', '\\']).find(|s| !s.is_empty() && *s != "." && *s != ".."))
        .map(str::to_owned)
        .collect()
}

/// Whether a validation offence of a model leaves gc's survey sound: the marker of an
/// interrupted save (reported on its own, [`SkipKind::InterruptedSave`]), or a folder directly
/// in `data/checkpoints/` (the user's: nothing in it is ever deleted, and no metadata path can
/// name a key in it without an offence of its own).
fn harmless(offence: &Offence, listing: &[Listed]) -> bool {
    if offence.kind != OffenceKind::Tree {
        return false;
    }
    if offence.location == SAVE_MARKER {
        return true;
    }
    let folder = format!("{}/", offence.location);
    offence.location.strip_prefix("data/checkpoints/").is_some_and(|name| !name.is_empty() && !name.contains('/'))
        && listing.iter().any(|l| l.rel.starts_with(&folder))
}

/// What one listing of a model's prefix says gc may remove.
struct Survey {
    /// The listed ETag of `metadata.yaml`.
    metadata_etag: Option<String>,
    /// The objects at PMF's paths that the metadata does not reference.
    orphans: Vec<Listed>,
    /// Whether the marker of an interrupted replacing save is there.
    marker: bool,
}

/// List the model's prefix and read its metadata: what may be removed, or why nothing can be
/// (`Ok(Err((kind, reason)))`, only when a key at PMF's paths might be unreferenced): the
/// metadata cannot be read, or the model has an offence that makes its metadata no proof of
/// what it uses.
fn survey_remote(remote: &Remote) -> Result<std::result::Result<Survey, (SkipKind, String)>> {
    let limits = Limits::default();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let listing = remote.list()?;
        let marker = listing.iter().any(|l| l.rel == SAVE_MARKER);
        // Without the metadata, nothing to say when no key could be an orphan.
        let unknown = |reason: String| {
            let nothing = Survey { metadata_etag: None, orphans: Vec::new(), marker };
            if listing.iter().any(|l| pmf_owned(&l.rel, true)) {
                Err((SkipKind::UnreadableMetadata, format!("{reason}: nothing can be proved unreferenced")))
            } else {
                Ok(nothing)
            }
        };
        let Some(md) = listing.iter().find(|l| l.rel == "metadata.yaml") else {
            return Ok(unknown("the prefix holds no metadata.yaml (any more)".to_owned()));
        };
        if md.size > limits.max_bytes as u64 {
            let reason = format!("metadata.yaml is {} bytes, over the limit of {} bytes", md.size, limits.max_bytes);
            return Ok(unknown(reason));
        }
        let bytes = match remote.read_small("metadata.yaml", md.etag.as_deref(), limits.max_bytes) {
            Ok(bytes) => bytes,
            // Replaced since the listing: list again.
            Err(e) if e.storage_kind() == Some(StorageErrorKind::PreconditionFailed) && attempts < 3 => continue,
            Err(e) => return Err(e),
        };
        let parsed = YamlFile::from_bytes(bytes, &limits)
            .map_err(|e| e.to_string())
            .and_then(|file| yaml_file::parse_checked(&file, &limits));
        let metadata = match parsed {
            Ok(m) => m,
            Err(reason) => return Ok(unknown(format!("metadata.yaml cannot be read ({reason})"))),
        };
        let referenced = crate::object_files::referenced_keys(&metadata, listing.iter().map(|l| l.rel.as_str()));
        let names = registered_names(&metadata);
        let initialisation_files = matches!(metadata.model.initialisation, Some(InitialisationMetadata::File { .. }))
            && !listing.iter().any(|l| l.rel == "data/initialisation/metadata.yaml");
        let unreferenced = |l: &&Listed| {
            pmf_owned(&l.rel, initialisation_files)
                && !referenced.contains(&l.rel)
                && !l.rel.rsplit('/').next().is_some_and(|name| names.contains(name))
        };
        let mut orphans: Vec<Listed> = listing.iter().filter(unreferenced).cloned().collect();
        orphans.sort_by(|a, b| a.rel.cmp(&b.rel));
        if !orphans.is_empty() {
            // Only a valid model's metadata proves what it uses (a checkpoint path that is not
            // the key of its object, ...): check the model on this listing, as a reader would.
            let files = ObjectFiles::from_listing(remote.clone(), listing.clone());
            let offences = match check_files(&files, &ValidateOptions::new()) {
                Ok(check) => check.offences,
                Err(e) if e.storage_kind() == Some(StorageErrorKind::PreconditionFailed) && attempts < 3 => continue,
                Err(e) => return Err(e),
            };
            let blocking: Vec<&Offence> = offences.iter().filter(|o| !harmless(o, &listing)).collect();
            if let Some(first) = blocking.first() {
                let more = match blocking.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                let reason = format!(
                    "the model is not valid ({first}{more}): its metadata does not prove which objects it uses, so nothing is removed; repair the model (pmf validate says what is wrong), then run gc again"
                );
                return Ok(Err((SkipKind::Invalid, reason)));
            }
        }
        return Ok(Ok(Survey { metadata_etag: md.etag.clone(), orphans, marker }));
    }
}

fn marker_skip(url: &ObjectUrl) -> GcSkip {
    GcSkip {
        location: Location::Object(url.join(SAVE_MARKER)),
        kind: SkipKind::InterruptedSave,
        reason: "a save that replaces objects of this model was interrupted (.pmf-save-in-progress): its objects may mix two versions, and only a save of the model repairs it (save it again, or pmf cp a good copy over it); the marker is kept".to_owned(),
        error: None,
    }
}

/// Collect the unreferenced objects (and a stale lock) of the model at `url`.
fn collect_remote(url: &ObjectUrl, options: &GcOptions) -> Outcome {
    let here = || Location::Object(url.clone());
    match collect_remote_inner(url, options) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::failed(here(), e),
    }
}

fn collect_remote_inner(url: &ObjectUrl, options: &GcOptions) -> Result<Outcome> {
    let here = || Location::Object(url.clone());
    let remote = Remote::new(url, &options.storage)?;
    let unreadable = |(kind, reason): (SkipKind, String)| Outcome::skip(here(), kind, reason, None);
    // A first look, without the lock: most models have nothing to collect.
    let first = match survey_remote(&remote)? {
        Ok(s) => s,
        Err(reason) => return Ok(unreadable(reason)),
    };
    let lock_now = object_lock::inspect(&remote)?;
    let stale = lock_now.as_ref().is_some_and(|l| l.gone);
    if first.orphans.is_empty() && !stale {
        let mut outcome = Outcome::default();
        if first.marker {
            outcome.skipped.push(marker_skip(url));
        }
        return Ok(outcome);
    }
    if !remote.options.conditional_writes() {
        return Ok(Outcome::skip(
            here(),
            SkipKind::NoLock,
            "the store is used with conditional_writes=false: there is no writer lock, and a save at work could lose its objects; nothing removed",
            None,
        ));
    }
    let item = |listed: &Listed, kind: GcKind| GcItem {
        location: Location::Object(url.join(&listed.rel)),
        model: here(),
        kind,
        bytes: listed.size,
        freed_bytes: listed.size,
    };
    let stale_item = |size: u64| item(&Listed { rel: LOCK_FILE.to_owned(), size, etag: None }, GcKind::StaleLock);
    let mut outcome = Outcome::default();
    if options.dry_run {
        // Judge the lock as a writer would; wait for a live holder as a writer would.
        let mut backoff = Backoff::new(options.lock_timeout);
        let (mut state, mut waited) = (lock_now, false);
        while let Some(live) = state.as_ref().filter(|l| !l.gone) {
            if !backoff.wait() {
                let error = Error::Locked {
                    path: remote.url_of(LOCK_FILE).into(),
                    holder: live.holder.clone(),
                    waited: options.lock_timeout,
                };
                return Ok(Outcome::failed(here(), error));
            }
            waited = true;
            state = object_lock::inspect(&remote)?;
        }
        // The writer that held the lock may have committed meanwhile: look again.
        let survey = if waited {
            match survey_remote(&remote)? {
                Ok(s) => s,
                Err(reason) => return Ok(unreadable(reason)),
            }
        } else {
            first
        };
        if let Some(stale) = state {
            outcome.removed.push(stale_item(stale.size));
        }
        outcome.removed.extend(survey.orphans.iter().map(|l| item(l, GcKind::OrphanObject)));
        if survey.marker {
            outcome.skipped.push(marker_skip(url));
        }
        return Ok(outcome);
    }
    let Some(lock) = ObjectLock::acquire(&remote, options.lock_timeout)? else {
        return Ok(Outcome::skip(here(), SkipKind::NoLock, "no writer lock on this store; nothing removed", None));
    };
    if let Some(stale) = lock_now.filter(|l| l.gone) {
        // Taken over by the acquisition: gone once gc's own lock is released.
        outcome.removed.push(stale_item(stale.size));
    }
    let failed = |outcome: &mut Outcome, e: Error| outcome.skipped.extend(Outcome::failed(here(), e).skipped);
    match survey_remote(&remote) {
        Err(e) => failed(&mut outcome, e),
        Ok(Err(reason)) => outcome.skipped.extend(unreadable(reason).skipped),
        Ok(Ok(survey)) => {
            if survey.marker {
                outcome.skipped.push(marker_skip(url));
            }
            // A commit that reached the store since the listing (a gone writer's last
            // request) may reference what the listing called unreferenced.
            let unchanged = || -> Result<bool> {
                lock.check()?;
                Ok(remote.head_opt("metadata.yaml")?.map(|l| l.etag) == Some(survey.metadata_etag.clone()))
            };
            match if survey.orphans.is_empty() { Ok(None) } else { unchanged().map(Some) } {
                Ok(None) => {}
                Err(e) => failed(&mut outcome, e),
                Ok(Some(false)) => outcome.skipped.push(GcSkip {
                    location: here(),
                    kind: SkipKind::Changed,
                    reason: "metadata.yaml changed while gc looked at the model: nothing removed; run gc again"
                        .to_owned(),
                    error: None,
                }),
                Ok(Some(true)) => {
                    for orphan in &survey.orphans {
                        match remote.delete(&orphan.rel) {
                            Ok(()) => outcome.removed.push(item(orphan, GcKind::OrphanObject)),
                            Err(e) => {
                                failed(&mut outcome, e);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Err(e) = lock.release() {
        outcome.skipped.push(GcSkip {
            location: Location::Object(url.join(LOCK_FILE)),
            kind: SkipKind::Failed,
            reason: format!("gc's own lock could not be deleted (it expires with its lease): {e}"),
            error: Some(e),
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_folders_are_told_from_look_alikes() {
        let suffix = fsutil::unique_suffix();
        let staging = OsString::from(format!(".detector.pmf-save-{suffix}"));
        assert_eq!(leftover_of(&staging), Some((OsString::from("detector"), GcKind::StagingFolder)));
        let old = OsString::from(format!(".a.pmf-new-b.pmf-old-{suffix}"));
        assert_eq!(leftover_of(&old), Some((OsString::from("a.pmf-new-b"), GcKind::OldTree)));
        for name in [".detector", "detector.pmf-save-1-2-0000000f", ".detector.pmf-save-notasuffix", ".pmf-save-x"] {
            assert_eq!(leftover_of(OsStr::new(name)), None, "{name}");
        }
    }

    /// A saved model at `dest` with a temporary file a save left at its root (returned).
    fn model_with_leftover(dest: &Path) -> PathBuf {
        let inputs = dest.with_extension("inputs");
        fs::create_dir_all(&inputs).unwrap();
        let cfg = inputs.join("config.py");
        fs::write(&cfg, b"lr = 0.1").unwrap();
        let producer =
            crate::producer::Producer::new("trainer", crate::version::Version::pep440("1.0").unwrap(), &cfg).unwrap();
        crate::model::Model::new("id-1", producer).save(dest, &crate::save::SaveOptions::new()).unwrap();
        let leftover = dest.join(format!(".metadata.yaml.pmf-tmp-{}", fsutil::unique_suffix()));
        fs::write(&leftover, b"half").unwrap();
        leftover
    }

    #[test]
    fn a_model_folder_that_is_a_link_or_gone_at_lock_time_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let leftover = model_with_leftover(&outside);
        let options = GcOptions::new();
        // The walk saw a folder; it is a link when gc takes the lock.
        let link = dir.path().join("location/m");
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let outcome = collect_locked(&link, false, &options);
        assert!(outcome.removed.is_empty(), "{:?}", outcome.removed);
        assert_eq!(outcome.skipped.len(), 1, "{:?}", outcome.skipped);
        assert_eq!(outcome.skipped[0].kind, SkipKind::Link);
        assert!(leftover.exists(), "nothing outside the location is removed");
        // The location itself may be a link: then it is collected.
        let outcome = collect_locked(&link, true, &options);
        assert_eq!(outcome.removed.len(), 1, "{:?} {:?}", outcome.removed, outcome.skipped);
        assert!(!leftover.exists());
        // A model folder gone since the walk is not created again.
        let gone = dir.path().join("location/gone");
        let outcome = collect_locked(&gone, false, &options);
        assert!(
            outcome.removed.is_empty() && outcome.skipped.is_empty(),
            "{:?} {:?}",
            outcome.removed,
            outcome.skipped
        );
        assert!(!gone.exists(), "gc never creates a model folder");
        assert!(commit::lock_existing_writer(&gone, Duration::from_millis(10)).is_err());
        assert!(!gone.exists());
    }

    #[test]
    fn a_model_folder_swapped_for_a_link_while_gc_waits_for_its_lock_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let leftover = model_with_leftover(&outside);
        let m = dir.path().join("location/m");
        let _ = model_with_leftover(&m);
        // Another writer holds m's lock: gc waits for it, then finds a link in m's place.
        let held = commit::lock_writer(&m, Duration::from_secs(5)).unwrap();
        let waiting = {
            let m = m.clone();
            std::thread::spawn(move || {
                collect_locked(&m, false, &GcOptions::new().lock_timeout(Duration::from_secs(30)))
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        fs::rename(&m, dir.path().join("location/moved")).unwrap();
        std::os::unix::fs::symlink(&outside, &m).unwrap();
        drop(held);
        let outcome = waiting.join().unwrap();
        assert!(outcome.removed.is_empty(), "{:?}", outcome.removed);
        assert_eq!(outcome.skipped.len(), 1, "{:?}", outcome.skipped);
        assert!(matches!(outcome.skipped[0].kind, SkipKind::Link | SkipKind::Changed), "{:?}", outcome.skipped);
        assert!(leftover.exists(), "nothing outside the location is removed");
    }

    #[test]
    fn every_registered_file_name_is_kept_whatever_folder_the_metadata_names() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.py");
        fs::write(&cfg, b"lr = 0.1").unwrap();
        let weights = dir.path().join("7.pt");
        fs::write(&weights, b"weights").unwrap();
        let init = dir.path().join("w.bin");
        fs::write(&init, b"initial").unwrap();
        let producer =
            crate::producer::Producer::new("trainer", crate::version::Version::pep440("1.0").unwrap(), &cfg).unwrap();
        let mut model = crate::model::Model::new("id-1", producer);
        model.register_training_start(0).unwrap();
        model.register_epoch(Some(7)).unwrap();
        model.add_checkpoint(crate::checkpoint::Checkpoint::new(7, Some(&weights), Some(7), None).unwrap()).unwrap();
        model.set_initialisation(Some(crate::model::Initialisation::File(
            crate::checkpoint::Checkpoint::new("w", Some(&init), None, None).unwrap(),
        )));
        model.save(dir.path().join("m"), &crate::save::SaveOptions::new()).unwrap();
        let mut metadata = read_local_metadata(&dir.path().join("m")).unwrap();
        // Paths that are not the keys of their objects: the file names still protect them.
        for c in metadata.model.training.checkpoints.values_mut() {
            c.path = format!("/home/u/run/{}", c.path.rsplit('/').next().unwrap());
        }
        let Some(InitialisationMetadata::File { path, .. }) = &mut metadata.model.initialisation else { panic!() };
        *path = path.rsplit('/').next().unwrap().to_owned();
        metadata.model.configuration.path = "./config.py".into();
        let names = registered_names(&metadata);
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort();
        assert_eq!(sorted.len(), 3, "{sorted:?}");
        assert!(sorted.contains(&"config.py"), "{sorted:?}");
        let checkpoint = metadata.model.training.checkpoints.values().next().unwrap().path.clone();
        assert!(names.contains(checkpoint.rsplit('/').next().unwrap()), "{sorted:?}");
    }

    #[test]
    fn only_checkpoint_files_and_a_weight_file_initialisation_are_pmf_owned() {
        for (rel, init_files, owned) in [
            ("data/checkpoints/x.pt", true, true),
            ("data/checkpoints/x.pt", false, true),
            ("data/checkpoints/sub/x.pt", true, false),
            ("data/checkpoints/..", true, false),
            ("data/initialisation/w.bin", true, true),
            ("data/initialisation/nested/data/checkpoints/1.pt", true, true),
            // A PMF initialisation, or none: nothing under data/initialisation/ is an orphan.
            ("data/initialisation/w.bin", false, false),
            ("data/initialisation//w.bin", true, false),
            ("data/build_parameters.yaml", true, false),
            ("data/notes.txt", true, false),
            ("config.py", true, false),
            ("notes.txt", true, false),
            (".pmf.lock", true, false),
            (".pmf-save-in-progress", true, false),
            ("metadata.yaml", true, false),
        ] {
            assert_eq!(pmf_owned(rel, init_files), owned, "{rel} (initialisation files: {init_files})");
        }
    }
}
