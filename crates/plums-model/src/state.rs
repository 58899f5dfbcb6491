//! What a model knows of the folder it last loaded or saved: the digest of that folder's
//! `metadata.yaml` (to detect another writer's change, a lost update) and the files whose
//! checksums are known (so that a save reuses unchanged files without reading them).
//!
//! Passive data built by `load` (from what validation read) and by `save` (from what it wrote);
//! [`crate::Model`] carries it, and language bindings keep it detached as a [`SavedState`].

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::Md5;
use crate::hash::md5_file_sized;
use crate::location::ObjectUrl;
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::paths::key_of;
use crate::storage::Listed;
use crate::validate::ValidatedModel;

/// The identity of a file's content as far as `stat` tells: size, modification time, inode.
/// (Not the change time: hard-linking a file into the staging tree changes it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Stamp {
    /// The stamp of the regular file at `path` (not followed if it is a link), if it is one.
    pub(crate) fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
        Some(Stamp { size: m.len(), mtime: (m.mtime(), m.mtime_nsec()), ino: m.ino(), dev: m.dev() })
    }
}

/// What the model knows of the folder it was loaded from or last saved to: lets a save detect
/// that another writer changed the folder since (lost updates), and skip work on unchanged files.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    /// The folder, canonical.
    pub root: PathBuf,
    /// The MD5 of its `metadata.yaml` bytes.
    pub metadata_digest: Md5,
    /// The metadata whose `metadata.yaml` has that digest (a save need not parse it again).
    pub metadata: Arc<Metadata>,
    /// The files whose checksums are known.
    pub known: Arc<KnownFiles>,
}

impl SyncState {
    /// Whether this is the state of the folder `root` whose `metadata.yaml` has `digest` now:
    /// nobody changed the folder since this model last saw it.
    pub(crate) fn matches(&self, root: &Path, digest: Md5) -> bool {
        self.root == root && self.metadata_digest == digest
    }
}

/// What a model knows of the object-store prefix it was loaded from or last saved to: the
/// version (ETag) of its `metadata.yaml`, for the conditional commit of the next save (no lost
/// update), and the objects whose content is known, so that a save does not send them again.
#[derive(Debug, Clone)]
pub(crate) struct ObjectState {
    /// The model's location.
    pub url: ObjectUrl,
    /// The ETag of its `metadata.yaml`.
    pub metadata_etag: Option<String>,
    /// What that `metadata.yaml` says.
    pub metadata: Arc<Metadata>,
    /// Objects whose MD5 is known, by key relative to the model's prefix.
    pub known: Arc<HashMap<String, KnownObject>>,
    /// The last save's commit, when it failed without a definite answer (a time-out): the
    /// store may have applied it.
    pub attempted: Option<Attempt>,
}

/// A commit of `metadata.yaml` whose outcome is unknown: the digest of the bytes sent, what
/// they say, and the objects that model would reference.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub digest: Md5,
    pub metadata: Arc<Metadata>,
    pub known: Arc<HashMap<String, KnownObject>>,
}

/// An object whose content is known: it has `hash` while its ETag and size are these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownObject {
    pub hash: Md5,
    pub etag: Option<String>,
    pub size: u64,
}

impl ObjectState {
    /// The objects whose content a validated remote model records (`lookup` gives the listed
    /// object of a key): trusted while their ETag and size stay as listed.
    pub(crate) fn known_of<'a>(
        v: &ValidatedModel,
        lookup: impl Fn(&str) -> Option<&'a Listed>,
    ) -> HashMap<String, KnownObject> {
        let files = KnownFiles::from_validated(v, true);
        let mut known = HashMap::new();
        for rel in files.paths() {
            let key = key_of(rel);
            if let (Some(hash), Some(listed)) = (files.hash_of(rel), lookup(&key)) {
                known.insert(key, KnownObject { hash, etag: listed.etag.clone(), size: listed.size });
            }
        }
        known
    }

    /// Whether `url` is this state's location and its `metadata.yaml` is still the version
    /// `etag`: nobody saved the model since.
    pub(crate) fn matches(&self, url: &ObjectUrl, etag: Option<&str>) -> bool {
        &self.url == url && self.metadata_etag.is_some() && self.metadata_etag.as_deref() == etag
    }
}

/// What a model knows of the folder or object-store prefix it was loaded from or last saved
/// to, detached from the model (language bindings keep it next to their own model objects).
/// Opaque.
#[derive(Debug, Clone)]
pub struct SavedState {
    pub(crate) folder: Option<SyncState>,
    pub(crate) object: Option<Arc<ObjectState>>,
}

impl SavedState {
    /// The object-store prefix this state knows, if any (the one last loaded or saved to, or
    /// where the last save's commit has an unknown outcome).
    pub fn object_url(&self) -> Option<&ObjectUrl> {
        self.object.as_deref().map(|o| &o.url)
    }
}

/// Files of a saved model whose checksum is recorded, by path relative to the model root.
///
/// A file with a stamp had that checksum when the stamp was taken (we wrote it, or a strict
/// load verified it): it can be reused without reading it as long as its stamp is unchanged.
/// A file without a stamp must be hashed before it is reused.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownFiles {
    files: HashMap<PathBuf, (Md5, Option<Stamp>)>,
    /// For a loaded model: when it was loaded. A file not modified (nor its inode changed)
    /// since then still has the checksum the loaded metadata records; this spares a `stat` of
    /// every file at load time.
    trusted_before: Option<SystemTime>,
}

impl KnownFiles {
    /// The files recorded in a validated model; trusted as they are now when `trust` (the
    /// validation was strict: it compared every checksum with the file's content).
    pub(crate) fn from_validated(v: &ValidatedModel, trust: bool) -> Self {
        // File times come from a coarse kernel clock: only trust files last changed well before the
        // load, so that a change right after it is never taken for an older one.
        let margin = Duration::from_secs(1);
        let trusted_before = trust.then(|| SystemTime::now() - margin);
        let mut k = KnownFiles { files: HashMap::new(), trusted_before };
        k.add_validated(v, Path::new(""));
        k
    }

    fn add_validated(&mut self, v: &ValidatedModel, prefix: &Path) {
        let m = &v.metadata.model;
        let mut add = |rel: PathBuf, hash: Md5| {
            self.files.insert(rel, (hash, None));
        };
        add(prefix.join(&m.configuration.path), m.configuration.hash);
        if v.checkpoints_checked {
            for entry in m.training.checkpoints.values() {
                add(prefix.join(&entry.path), entry.hash);
            }
        }
        match (&m.initialisation, &v.initialisation) {
            (Some(InitialisationMetadata::File { path, hash, .. }), _) => add(prefix.join(path), *hash),
            (Some(InitialisationMetadata::Pmf { .. }), Some(nested)) => {
                self.add_validated(nested, &prefix.join("data/initialisation"))
            }
            _ => {}
        }
    }

    /// The recorded checksum of `rel`.
    pub(crate) fn hash_of(&self, rel: &Path) -> Option<Md5> {
        self.files.get(rel).map(|(h, _)| *h)
    }

    /// Whether `rel` is a known file.
    pub(crate) fn contains(&self, rel: &Path) -> bool {
        self.files.contains_key(rel)
    }

    /// The known files' paths.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.keys()
    }

    /// Whether the file at `path` (known as `rel`) still has the recorded checksum `hash`,
    /// without reading it when its stamp says it is unchanged; if so its stamp now.
    pub(crate) fn still_has(&self, rel: &Path, path: &Path, hash: Md5) -> Option<Stamp> {
        match self.files.get(rel) {
            Some((h, stamp)) if *h == hash => {
                let now = Stamp::of(path)?;
                let unchanged = *stamp == Some(now)
                    || (stamp.is_none() && self.trusted_before.is_some_and(|t| unchanged_since(path, t)))
                    || md5_file_sized(path).map(|(d, _)| d == hash).unwrap_or(false);
                unchanged.then_some(now)
            }
            _ => None,
        }
    }

    /// Record that `rel` has checksum `hash`, as the file `written` is now.
    pub(crate) fn record(&mut self, rel: &Path, hash: Md5, written: &Path) {
        self.files.insert(rel.to_path_buf(), (hash, Stamp::of(written)));
    }

    /// Record that `rel` has checksum `hash` with this stamp (`None`: hash it before reuse).
    pub(crate) fn insert(&mut self, rel: &Path, hash: Md5, stamp: Option<Stamp>) {
        self.files.insert(rel.to_path_buf(), (hash, stamp));
    }
}

/// Whether neither the content (mtime) nor the inode (ctime) of `path` changed at or after `t`.
fn unchanged_since(path: &Path, t: SystemTime) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(path) else { return false };
    let as_time = |secs: i64, nanos: i64| {
        u64::try_from(secs).ok().map(|s| UNIX_EPOCH + Duration::new(s, nanos.clamp(0, 999_999_999) as u32))
    };
    match (as_time(m.mtime(), m.mtime_nsec()), as_time(m.ctime(), m.ctime_nsec())) {
        (Some(mtime), Some(ctime)) => m.is_file() && mtime < t && ctime < t,
        _ => false,
    }
}
