//! A model in an object store, as validation reads it ([`ModelFiles`]): one listing of the
//! model's prefix gives every key with its size and ETag, and the tree checks run on it.
//!
//! Folders exist through the keys under them. Confinement holds by construction: only keys
//! that the listing of the model's prefix returned are ever read, and metadata paths were
//! already refused by `paths::relative_inside` if absolute or with `..`. The YAML files' sizes
//! are checked from the listing before they are downloaded, and each download is conditional
//! on the listed ETag (an object replaced since is a clear error, not a mixture). Strict
//! validation fetches the files through the cache (`cache.rs`: reused while ETag and size are
//! unchanged, else downloaded in parallel and hashed while they stream, each made durable and
//! installed while its worker streams the next one; all are installed before the verdict).
//!
//! Read-only: nothing is written to the store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::cache::{Cache, Fetched, Fetching};
use crate::error::{Error, Offence, Result, StorageErrorKind};
use crate::files::{HashJob, ModelFiles};
use crate::hash::Progress;
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::paths::{key_of, relative_inside, Entry, SAVE_MARKER};
use crate::storage::{Listed, Remote};
use crate::yaml::Limits;
use crate::yaml_file::{ReadError, YamlFile};

/// Parallel downloads of a strict validation.
const PARALLEL_DOWNLOADS: usize = 4;

/// The objects under one model's prefix.
pub(crate) struct ObjectFiles {
    pub remote: Remote,
    objects: HashMap<String, Listed>,
    folders: BTreeSet<String>,
    /// Local, verified files of the objects hashed so far (by relative key).
    verified: Mutex<HashMap<String, PathBuf>>,
}

impl ObjectFiles {
    /// List the model's prefix (one paginated listing). An empty prefix is an
    /// [`Error::Storage`] with kind not found.
    pub(crate) fn list(remote: Remote) -> Result<ObjectFiles> {
        let listed = remote.list()?;
        if listed.is_empty() {
            return Err(Error::Storage {
                location: remote.url.to_string(),
                operation: "cannot validate model".to_owned(),
                kind: StorageErrorKind::NotFound,
                message: "no object under this prefix".to_owned(),
            });
        }
        Ok(Self::from_listing(remote, listed))
    }

    pub(crate) fn from_listing(remote: Remote, listed: Vec<Listed>) -> ObjectFiles {
        let mut folders = BTreeSet::new();
        let mut objects = HashMap::new();
        for item in listed {
            let mut parent = item.rel.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                folders.insert(p.to_owned());
                parent = p;
            }
            objects.insert(item.rel.clone(), item);
        }
        ObjectFiles { remote, objects, folders, verified: Mutex::new(HashMap::new()) }
    }

    /// Whether the model changed after it was listed: a save began replacing its objects
    /// (the marker is there now), or committed (`metadata.yaml` has another version). Two
    /// `HEAD` requests, in that order: a save deletes its marker only after its commit, so a
    /// reader that finds no marker, then the listed `metadata.yaml`, read no mixture.
    pub(crate) fn changed_since_listing(&self) -> Result<bool> {
        if self.objects.contains_key(SAVE_MARKER) {
            return Ok(false);
        }
        if self.remote.head_opt(SAVE_MARKER)?.is_some() {
            return Ok(true);
        }
        let now = self.remote.head_opt("metadata.yaml")?;
        let listed = self.objects.get("metadata.yaml");
        Ok(now.map(|n| (n.etag, n.size)) != listed.map(|l| (l.etag.clone(), l.size)))
    }

    /// The sizes of the listed objects under `prefix` (empty, or ending with `/`), by key
    /// relative to it.
    pub(crate) fn sizes_under(&self, prefix: &str) -> HashMap<String, u64> {
        self.objects.iter().filter_map(|(k, l)| Some((k.strip_prefix(prefix)?.to_owned(), l.size))).collect()
    }

    /// The listed object `rel`.
    pub(crate) fn object(&self, rel: &str) -> Option<&Listed> {
        self.objects.get(rel)
    }

    /// The local file of `rel` verified by the strict validation, if it was.
    pub(crate) fn verified(&self, rel: &str) -> Option<PathBuf> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(rel).cloned()
    }

    /// Record a verified local file.
    pub(crate) fn set_verified(&self, rel: &str, path: PathBuf) {
        self.verified.lock().unwrap_or_else(|e| e.into_inner()).insert(rel.to_owned(), path);
    }
}

impl ModelFiles for ObjectFiles {
    /// The key relative to the model's prefix.
    type File = String;

    fn lookup(&self, prefix: &Path, rel: &Path) -> std::result::Result<(String, Entry), Offence> {
        let key = key_of(&prefix.join(rel));
        let entry = if self.objects.contains_key(&key) {
            Entry::File
        } else if self.folders.contains(&key) {
            Entry::Dir
        } else {
            Entry::Missing
        };
        Ok((key, entry))
    }

    fn subfolders(&self, dir: &Path) -> Vec<String> {
        let dir = key_of(dir);
        self.folders.iter().filter(|f| f.rsplit_once('/').is_some_and(|(p, _)| p == dir)).cloned().collect()
    }

    /// The marker of a save that replaces objects: until it commits, the objects may mix two
    /// versions of the model.
    fn tree_offences(&self) -> Vec<Offence> {
        if !self.objects.contains_key(SAVE_MARKER) {
            return Vec::new();
        }
        vec![Offence::tree(
            SAVE_MARKER,
            "a save that replaces objects of this model is in progress, or was interrupted: until it commits, the objects may mix two versions of the model; read the model again when that save is done, or save the model again to repair it",
        )]
    }

    fn read_yaml(&self, file: &String, limits: &Limits) -> std::result::Result<YamlFile, ReadError> {
        let listed = self.objects.get(file).ok_or(ReadError::NotAFile)?;
        let limit = limits.max_bytes;
        if listed.size > limit as u64 {
            return Err(ReadError::TooLarge { size: listed.size, limit });
        }
        let bytes =
            self.remote.read_small(file, listed.etag.as_deref(), limit).map_err(|e| ReadError::Store(Box::new(e)))?;
        YamlFile::from_bytes(bytes, limits)
    }

    fn check_hashes(&self, mut jobs: Vec<HashJob<String>>, progress: Option<&dyn Progress>) -> Result<Vec<Offence>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let size = |j: &HashJob<String>| self.objects.get(&j.file).map_or(0, |l| l.size);
        if let Some(p) = progress {
            p.start(jobs.iter().map(size).sum());
        }
        let cache = Cache::for_options(&self.remote.options)?;
        jobs.sort_by_key(|j| std::cmp::Reverse(size(j)));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<Option<Offence>>>> = Mutex::new(Vec::new());
        let push = |outcome: Result<Option<Offence>>| {
            let failed = outcome.is_err();
            results.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
            if failed {
                // Stop the other workers early: the first store failure is reported.
                next.store(jobs.len(), Ordering::Relaxed);
            }
        };
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_DOWNLOADS.min(jobs.len()) {
                s.spawn(|| {
                    // The previous download, installing while the next one streams.
                    let mut installing: Option<(&HashJob<String>, Fetching)> = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let started = self.start_verify(&cache, job, progress);
                        if let Some((job, fetching)) = installing.take() {
                            push(self.finish_verify(job, fetching.wait()));
                        }
                        match started {
                            Ok(Started::Offence(offence)) => push(Ok(Some(offence))),
                            Ok(Started::Fetching(fetching)) => installing = Some((job, fetching)),
                            Err(e) => push(Err(e)),
                        }
                    }
                    if let Some((job, fetching)) = installing {
                        push(self.finish_verify(job, fetching.wait()));
                    }
                });
            }
        });
        let mut offences = Vec::new();
        for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            if let Some(o) = r? {
                offences.push(o);
            }
        }
        Ok(offences)
    }

    fn root_of(&self, prefix: &Path) -> PathBuf {
        PathBuf::from(self.remote.url.join(&key_of(prefix)).to_string())
    }

    fn implicit_folders(&self) -> bool {
        true
    }
}

impl ObjectFiles {
    /// Start verifying one job through the cache: the download is over when this returns.
    fn start_verify(&self, cache: &Cache, job: &HashJob<String>, progress: Option<&dyn Progress>) -> Result<Started> {
        let Some(listed) = self.objects.get(&job.file) else {
            return Ok(Started::Offence(Offence::tree(
                job.location.clone(),
                format!("{} is not in the listing", job.what),
            )));
        };
        Ok(Started::Fetching(cache.start_fetch_verified(&self.remote, listed, job.expected, progress)?))
    }

    /// The outcome of a verification once its file is installed; a mismatch is an offence.
    fn finish_verify(&self, job: &HashJob<String>, fetched: Result<Fetched>) -> Result<Option<Offence>> {
        match fetched? {
            Fetched::Verified { path, .. } => {
                self.set_verified(&job.file, path);
                Ok(None)
            }
            Fetched::Mismatch { found } => Ok(Some(job.mismatch(found))),
        }
    }
}

/// A verification whose download is over.
enum Started {
    Offence(Offence),
    Fetching(Fetching),
}

/// The keys of a model's prefix that its `metadata` points to (`metadata.yaml`, the build
/// parameters, the configuration, the checkpoint files, the initialisation file), and, for a
/// PMF initialisation model, every key of `listed` under `data/initialisation/` (which PMF
/// owns whole). What a save may delete, and what gc keeps, are told apart by this set.
pub(crate) fn referenced_keys<'a>(metadata: &Metadata, listed: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut add = |path: &str| {
        if let Ok(rel) = relative_inside(path) {
            if !rel.as_os_str().is_empty() {
                keys.insert(key_of(&rel));
            }
        }
    };
    add("metadata.yaml");
    add("data/build_parameters.yaml");
    registered_paths(metadata).filter(|p| *p != ".").for_each(&mut add);
    if let Some(InitialisationMetadata::Pmf { .. }) = &metadata.model.initialisation {
        keys.extend(listed.filter(|k| k.starts_with("data/initialisation/")).map(str::to_owned))
    }
    keys
}

/// The file paths a model's metadata registers, as written: the configuration, every
/// checkpoint, a weight-file initialisation (a PMF initialisation is a folder: not here).
pub(crate) fn registered_paths(metadata: &Metadata) -> impl Iterator<Item = &str> {
    let m = &metadata.model;
    let initialisation = match &m.initialisation {
        Some(InitialisationMetadata::File { path, .. }) => Some(path.as_str()),
        _ => None,
    };
    std::iter::once(m.configuration.path.as_str())
        .chain(m.training.checkpoints.values().map(|c| c.path.as_str()))
        .chain(initialisation)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use object_store::memory::InMemory;

    use crate::error::Error;
    use crate::location::Location;
    use crate::storage::{Remote, StorageOptions};
    use crate::validate::{check_at, validate_at, ValidateOptions};

    /// A small valid model saved locally, uploaded key by key to an in-memory store.
    fn uploaded() -> (tempfile::TempDir, Location, StorageOptions) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.py");
        std::fs::write(&cfg, b"lr = 0.1").unwrap();
        let weights = dir.path().join("1.pt");
        std::fs::write(&weights, vec![7u8; 3 << 20]).unwrap();
        let producer =
            crate::producer::Producer::new("trainer", crate::version::Version::pep440("1.0").unwrap(), &cfg).unwrap();
        let mut model = crate::model::Model::new("id-1", producer);
        model.register_training_start(0).unwrap();
        model.register_epoch(Some(1)).unwrap();
        model.add_checkpoint(crate::checkpoint::Checkpoint::new(1, Some(&weights), Some(1), None).unwrap()).unwrap();
        let root = dir.path().join("model");
        model.save(&root, &crate::save::SaveOptions::new()).unwrap();
        let mut storage = StorageOptions::new().with_store(Arc::new(InMemory::new()));
        storage.cache_dir(dir.path().join("cache"));
        let location = Location::parse("s3://bucket/models/m").unwrap();
        let remote = Remote::new(location.as_object().unwrap(), &storage).unwrap();
        for item in walkdir::WalkDir::new(&root).min_depth(1) {
            let item = item.unwrap();
            if item.file_type().is_file() {
                let rel = item.path().strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
                remote.put(&rel, std::fs::read(item.path()).unwrap(), crate::storage::WriteMode::Overwrite).unwrap();
            }
        }
        (dir, location, storage)
    }

    fn put(location: &Location, storage: &StorageOptions, rel: &str, bytes: &[u8]) {
        Remote::new(location.as_object().unwrap(), storage)
            .unwrap()
            .put(rel, bytes.to_vec(), crate::storage::WriteMode::Overwrite)
            .unwrap();
    }

    #[test]
    fn a_valid_model_validates_strictly_and_the_cache_is_reused() {
        let (_dir, location, storage) = uploaded();
        let options = ValidateOptions::new().strict(true).storage(storage.clone());
        let metadata = validate_at(&location, &options).unwrap();
        assert_eq!(metadata.model.id, "id-1");
        let first = storage.stats();
        assert_eq!(first.lists, 1, "one listing");
        assert_eq!(first.gets, 4, "metadata, build parameters, configuration, checkpoint");
        validate_at(&location, &options).unwrap();
        let second = storage.stats();
        assert_eq!(second.gets - first.gets, 2, "only the two YAML files again: the verified files are reused");
        // A changed object (new ETag) is downloaded again and checked.
        put(&location, &storage, "data/checkpoints/1.pt", b"corrupted");
        let err = validate_at(&location, &options).unwrap_err();
        assert!(matches!(err, Error::TreeValidation(_)), "{err:?}");
        assert!(err.to_string().contains("checkpoint 1 checksum mismatch"), "{err}");
        assert_eq!(storage.stats().gets - second.gets, 3);
        // Not strict: no checksum compared, nothing large downloaded.
        validate_at(&location, &ValidateOptions::new().storage(storage.clone())).unwrap();
    }

    /// What a progress observer was told: the starts, and the bytes advanced since the last.
    #[derive(Default)]
    struct Recorder {
        starts: Mutex<Vec<u64>>,
        done: AtomicU64,
    }

    impl crate::hash::Progress for Recorder {
        fn start(&self, total_bytes: u64) {
            self.starts.lock().unwrap().push(total_bytes);
            self.done.store(0, Ordering::SeqCst);
        }
        fn advance(&self, bytes: u64) {
            self.done.fetch_add(bytes, Ordering::SeqCst);
        }
    }

    #[test]
    fn downloads_and_cache_hits_advance_the_observer_up_to_the_listed_total() {
        let (dir, location, storage) = uploaded();
        let total = std::fs::metadata(dir.path().join("config.py")).unwrap().len() + (3 << 20);
        for round in ["downloaded", "reused from the cache"] {
            let recorder = Arc::new(Recorder::default());
            let options = ValidateOptions::new().strict(true).storage(storage.clone()).progress(recorder.clone());
            validate_at(&location, &options).unwrap();
            assert_eq!(*recorder.starts.lock().unwrap(), vec![total], "{round}");
            assert_eq!(recorder.done.load(Ordering::SeqCst), total, "{round}");
        }
        let recorder = Arc::new(Recorder::default());
        validate_at(&location, &ValidateOptions::new().storage(storage.clone()).progress(recorder.clone())).unwrap();
        assert!(recorder.starts.lock().unwrap().is_empty(), "not strict: nothing to hash");
    }

    #[test]
    fn tree_offences_are_the_same_as_on_disk() {
        let (_dir, location, storage) = uploaded();
        let options = ValidateOptions::new().storage(storage.clone());
        let store = Remote::new(location.as_object().unwrap(), &storage).unwrap();
        let path = object_store::path::Path::from("models/m/data/checkpoints/1.pt");
        let inner = storage.store.clone().unwrap();
        crate::storage::block_on(async move { object_store::ObjectStoreExt::delete(&inner, &path).await }).unwrap();
        let check = check_at(&location, &options).unwrap();
        assert_eq!(check.offences.len(), 1, "{:?}", check.offences);
        assert_eq!(check.offences[0].location, "data/checkpoints/1.pt");
        assert!(check.offences[0].message.contains("is missing"), "{:?}", check.offences);
        store.put("data/checkpoints/sub/x", b"x".to_vec(), crate::storage::WriteMode::Overwrite).unwrap();
        let check = check_at(&location, &options).unwrap();
        assert!(check
            .offences
            .iter()
            .any(|o| o.location == "data/checkpoints/sub" && o.message.contains("is a folder")));
        // Nothing at the prefix.
        let empty = Location::parse("s3://bucket/nothing").unwrap();
        let err = check_at(&empty, &options).unwrap_err();
        assert_eq!(err.storage_kind(), Some(crate::error::StorageErrorKind::NotFound), "{err:?}");
        assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn hostile_metadata_cannot_reach_outside_the_prefix_and_large_yaml_is_not_downloaded() {
        let (_dir, location, storage) = uploaded();
        let options = ValidateOptions::new().strict(true).storage(storage.clone());
        let meta =
            Remote::new(location.as_object().unwrap(), &storage).unwrap().read_small("metadata.yaml", None, 1 << 20);
        let text = String::from_utf8(meta.unwrap()).unwrap();
        let hostile = text.replace("path: data/checkpoints/1.pt", "path: data/checkpoints/../../../secret");
        assert_ne!(hostile, text);
        put(&location, &storage, "metadata.yaml", hostile.as_bytes());
        let err = validate_at(&location, &options).unwrap_err();
        assert!(err.to_string().contains("contains \"..\""), "{err}");
        let before = storage.stats().gets;
        put(&location, &storage, "metadata.yaml", &vec![b'#'; 2 << 20]);
        let limits = crate::yaml::Limits { max_bytes: 1 << 20, ..Default::default() };
        let err = validate_at(&location, &options.clone().limits(limits)).unwrap_err();
        assert!(err.to_string().contains("over the"), "{err}");
        assert_eq!(storage.stats().gets - before, 1, "only the build parameters: metadata.yaml is refused unread");
    }
}
