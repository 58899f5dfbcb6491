//! Saving a model to an object store: the same rules as a save to a folder (what is written
//! validates, old or new, no lost update, only PMF's objects change), on a store that has no
//! rename.
//!
//! # The protocol
//! 1. Check the model (as every save) and plan its tree (`plan.rs`); take the model's writer
//!    lock (`object_lock.rs`: the `.pmf.lock` object, create-only, with a renewed lease).
//! 2. List the model's prefix once. Its `metadata.yaml` (version: ETag) says what is there;
//!    the same refusals as on disk apply (not a model, another model, a changed model).
//! 3. Send every object of the new tree that is not already there with the same content (known
//!    by its ETag and size from the last load or save, or verified by a strict validation),
//!    each read once, hashed while it is sent; a file whose content does not have its
//!    recorded MD5 is never stored.
//! 4. Commit: write `metadata.yaml` last, conditionally: `If-Match` the version read in 2 (or
//!    `If-None-Match: *` for a new model). A writer that changed it meanwhile makes the save
//!    fail with [`Error::ConcurrentChange`]: no lost update.
//! 5. Delete what the old metadata registered and the new one does not (unless
//!    `keep_unregistered_files`), then the lock.
//!
//! A save that only adds objects (every save of a training loop) leaves the old model or the
//! new one, whole, wherever it stops: before 4 the old metadata points only at old objects. A
//! save that must replace an object the current metadata points to (new configuration or
//! build parameters, a checkpoint file replaced under its name) cannot be atomic without a
//! rename: it first writes the marker [`SAVE_MARKER`], and deletes it after the commit.
//! Readers that see the marker report a tree offence (a save is in progress or was
//! interrupted) instead of a model that mixes two versions; the next save of the model, which
//! finds the marker under the lock, rewrites every object and removes it.
//!
//! Objects left by a save that stopped before its commit (new checkpoint files) are not
//! registered: the next save that needs their names overwrites them; the others stay until
//! removed (PMF never deletes an object it cannot prove it wrote).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::plan::{Content, Plan, Planned};
use super::{preflight_model, SaveOptions};
use crate::digest::Md5;
use crate::error::{Error, Result, SaveProblem, StorageErrorKind};
use crate::location::ObjectUrl;
use crate::metadata::Metadata;
use crate::model::Model;
use crate::object_files::ObjectFiles;
use crate::object_lock::ObjectLock;
use crate::paths::{key_of, LOCK_FILE, SAVE_MARKER};
use crate::state::{Attempt, KnownObject, ObjectState};
use crate::storage::{Listed, Remote, WriteMode};
use crate::upload::upload_file;
use crate::validate::{check_files, ValidateOptions};
use crate::yaml::Limits;
use crate::yaml_file::{self, YamlFile};

/// Objects uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// What a save may rely on at the destination (see [`Saver::knowledge`]).
struct Knowledge {
    /// Objects whose content is known.
    known: Arc<HashMap<String, KnownObject>>,
    /// Whether the destination's metadata says which objects are PMF's (to delete).
    trusted: bool,
}

impl Knowledge {
    fn nothing() -> Knowledge {
        Knowledge { known: Arc::default(), trusted: false }
    }
}

/// What is at the destination prefix.
enum Destination {
    /// Nothing (or only PMF's lock and marker).
    Missing,
    /// Objects, but no `metadata.yaml`.
    Foreign,
    /// A model: its metadata, the version of its `metadata.yaml`, and the digest of its bytes
    /// (when they were read: not when the model knew that version).
    Pmf { metadata: Arc<Metadata>, etag: Option<String>, digest: Option<Md5> },
}

/// Save `model` to the prefix `url` (see the module documentation).
pub(super) fn save(model: &mut Model, url: &ObjectUrl, options: &SaveOptions) -> Result<()> {
    preflight_model(model, options)?;
    let plan = Plan::of(model, options.checkpoints)?;
    let remote = Remote::new(url, &options.storage)?;
    let lock = ObjectLock::acquire(&remote, options.lock_timeout)?;
    let outcome = Saver { model, remote: &remote, plan: &plan, options, lock: lock.as_ref() }.run();
    // A lock that cannot be deleted expires with its lease (or with this process, for writers
    // on this machine): the save's own outcome is what the caller needs to know.
    if let Some(lock) = lock {
        let _ = lock.release();
    }
    outcome
}

struct Saver<'a> {
    model: &'a mut Model,
    remote: &'a Remote,
    plan: &'a Plan,
    options: &'a SaveOptions,
    lock: Option<&'a ObjectLock>,
}

/// One object to send: the planned file, its key, and whether an object is there now.
struct Send<'p> {
    file: &'p Planned,
    key: String,
    present: bool,
}

impl Saver<'_> {
    fn run(self) -> Result<()> {
        // One listing, every save: it is the `stat` of every object, so that an object replaced
        // behind the model's back (without a new metadata.yaml) is never trusted.
        let listing: HashMap<String, Listed> = self.remote.list()?.into_iter().map(|l| (l.rel.clone(), l)).collect();
        let dest = self.inspect(&listing)?;
        self.refuse(&dest)?;
        let interrupted = listing.contains_key(SAVE_MARKER);
        let Knowledge { known, trusted } = self.knowledge(&listing, &dest, interrupted)?;

        let mut now_known: HashMap<String, KnownObject> = HashMap::new();
        let mut sends = Vec::new();
        for file in &self.plan.files {
            let key = key_of(&file.rel);
            let hash = file.content.hash();
            let present = listing.get(&key);
            if let Some(l) = present.filter(|_| !interrupted) {
                let recorded = known.get(&key).filter(|k| k.hash == hash && k.etag.is_some() && k.etag == l.etag);
                if recorded.is_some_and(|k| k.size == l.size) || etag_is(l, hash) {
                    now_known.insert(key, KnownObject { hash, etag: l.etag.clone(), size: l.size });
                    continue;
                }
            }
            sends.push(Send { file, key, present: present.is_some() });
        }
        let referenced = referenced_keys(dest_metadata(&dest), &listing);
        let replacing = sends.iter().any(|s| s.present && referenced.contains(&s.key));
        // Written again by a repair: the interrupted writer's last requests (the delete of its
        // marker) may have reached the store after it died.
        if replacing || interrupted {
            let marker = format!(
                "a save replacing objects of this model started at unix time {} (pid {}); until it commits, the objects may mix two versions\n",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                std::process::id()
            );
            self.remote.put(SAVE_MARKER, marker.into_bytes(), WriteMode::Overwrite)?;
        }
        let created: Vec<&str> = sends.iter().filter(|s| !s.present).map(|s| s.key.as_str()).collect();
        let sent = match self.send_all(&sends) {
            Ok(sent) => sent,
            Err(e) => {
                self.forget(&created, replacing || interrupted);
                return Err(e);
            }
        };
        now_known.extend(sent);
        if let Some(lock) = self.lock {
            if let Err(e) = lock.check() {
                self.forget(&created, replacing || interrupted);
                return Err(e);
            }
        }
        let etag = match self.commit(&dest) {
            Ok(etag) => etag,
            Err(e @ Error::ConcurrentChange { .. }) => {
                self.forget(&created, replacing || interrupted);
                return Err(e);
            }
            Err(e) => {
                // The store may still apply a commit whose answer was lost (a time-out): keep
                // what it would reference, and remember the attempt, so that the next save
                // recognises this model's own commit instead of calling it another writer's.
                let attempted = Attempt {
                    digest: Md5::of_bytes(self.plan.metadata_text.as_bytes()),
                    metadata: Arc::from(self.plan.metadata.clone()),
                    known: Arc::new(now_known),
                };
                self.model.object_sync = Some(Arc::new(match self.model.object_sync.as_deref() {
                    Some(seen) if seen.url == self.remote.url => {
                        ObjectState { attempted: Some(attempted), ..seen.clone() }
                    }
                    _ => ObjectState {
                        url: self.remote.url.clone(),
                        metadata_etag: None,
                        metadata: attempted.metadata.clone(),
                        known: Arc::default(),
                        attempted: Some(attempted),
                    },
                }));
                return Err(e);
            }
        };
        // The new model is in place: remember it before anything else can fail.
        self.model.object_sync = Some(Arc::new(ObjectState {
            url: self.remote.url.clone(),
            metadata_etag: etag,
            metadata: Arc::from(self.plan.metadata.clone()),
            known: Arc::new(now_known),
            attempted: None,
        }));
        let unregistered = if trusted { self.unregistered(&dest, &listing) } else { Vec::new() };
        if replacing || interrupted {
            self.remote.delete(SAVE_MARKER)?;
        }
        for key in unregistered {
            self.remote.delete(&key)?;
        }
        Ok(())
    }

    /// What is at the destination, from its listing (and its `metadata.yaml`, read unless the
    /// model knows that very version).
    fn inspect(&self, listing: &HashMap<String, Listed>) -> Result<Destination> {
        let Some(md) = listing.get("metadata.yaml") else {
            let foreign = listing.keys().any(|k| k != LOCK_FILE && k != SAVE_MARKER);
            return Ok(if foreign { Destination::Foreign } else { Destination::Missing });
        };
        if let Some(seen) = &self.model.object_sync {
            if seen.matches(&self.remote.url, md.etag.as_deref()) {
                return Ok(Destination::Pmf { metadata: seen.metadata.clone(), etag: md.etag.clone(), digest: None });
            }
        }
        let invalid =
            |reason: String| Error::InvalidDestination { path: self.remote.url_of("metadata.yaml").into(), reason };
        let limits = Limits::default();
        if md.size > limits.max_bytes as u64 {
            return Err(invalid(format!(
                "metadata.yaml is {} bytes, over the limit of {} bytes",
                md.size, limits.max_bytes
            )));
        }
        let bytes = self.remote.read_small("metadata.yaml", md.etag.as_deref(), limits.max_bytes)?;
        let file = YamlFile::from_bytes(bytes, &limits).map_err(|e| invalid(e.to_string()))?;
        let metadata = yaml_file::parse_checked(&file, &limits).map_err(invalid)?;
        Ok(Destination::Pmf { metadata: Arc::new(metadata), etag: md.etag.clone(), digest: Some(file.digest) })
    }

    fn refuse(&self, dest: &Destination) -> Result<()> {
        let path = || self.remote.url.to_string().into();
        match dest {
            Destination::Foreign if !self.options.force => Err(Error::ForeignFolder { path: path() }),
            Destination::Pmf { metadata, .. } if metadata.model.id != self.model.id => Err(Error::OtherModel {
                path: path(),
                found_id: metadata.model.id.clone(),
                saving_id: self.model.id.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The objects whose content the save may trust (not send again), and whether the
    /// destination's metadata is trusted to say which objects PMF owns there (to delete the
    /// ones the new model no longer registers). The fast path: this model last loaded or saved
    /// this very version. Else a model with the same id must validate strictly (checksums
    /// verified), unless `force`; a model whose last save was interrupted (the marker), or one
    /// that `force` saves over although it does not validate, is rewritten whole, and what its
    /// metadata registers is never deleted.
    fn knowledge(&self, listing: &HashMap<String, Listed>, dest: &Destination, interrupted: bool) -> Result<Knowledge> {
        let Destination::Pmf { etag, digest, .. } = dest else { return Ok(Knowledge::nothing()) };
        match self.model.object_sync.as_deref() {
            Some(seen) if seen.matches(&self.remote.url, etag.as_deref()) => {
                return Ok(Knowledge { known: seen.known.clone(), trusted: true })
            }
            // The commit of this model's last save, applied although its answer was lost.
            Some(ObjectState { url, attempted: Some(a), .. })
                if *url == self.remote.url && digest.is_some_and(|d| d == a.digest) =>
            {
                return Ok(Knowledge { known: a.known.clone(), trusted: true })
            }
            Some(seen) if seen.url == self.remote.url && !self.options.overwrite_concurrent_changes => {
                return Err(Error::ConcurrentChange { path: self.remote.url.to_string().into() });
            }
            _ => {}
        }
        if interrupted {
            return Ok(Knowledge::nothing());
        }
        let files = ObjectFiles::from_listing(self.remote.clone(), listing.values().cloned().collect());
        let strict = ValidateOptions::new()
            .strict(true)
            .checkpoints(self.options.checkpoints)
            .storage(self.options.storage.clone());
        let check = check_files(&files, &strict)?;
        match check.into_result(Path::new(&self.remote.url.to_string())) {
            Ok(v) => Ok(Knowledge { known: Arc::new(ObjectState::known_of(&v, |k| files.object(k))), trusted: true }),
            Err(Error::TreeValidation(report) | Error::MetadataValidation(report)) if !self.options.force => {
                Err(Error::InvalidSameModel { path: self.remote.url.to_string().into(), report })
            }
            Err(e) if !self.options.force => Err(e),
            Err(_) => Ok(Knowledge::nothing()),
        }
    }

    /// Send every object, [`PARALLEL_UPLOADS`] at once; what is known of them now. The first
    /// failure stops the others and is returned.
    fn send_all(&self, sends: &[Send<'_>]) -> Result<Vec<(String, KnownObject)>> {
        if let Some(p) = &self.options.progress {
            p.start(sends.iter().map(|s| s.file.content.size()).sum());
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<(String, KnownObject)>>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_UPLOADS.min(sends.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(send) = sends.get(i) else { break };
                    let outcome = self.send(send);
                    let failed = outcome.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
                    if failed {
                        next.store(sends.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().collect()
    }

    fn send(&self, send: &Send<'_>) -> Result<(String, KnownObject)> {
        let hash = send.file.content.hash();
        let (etag, size) = match &send.file.content {
            Content::Bytes(bytes) => {
                let size = bytes.len() as u64;
                let etag = self.remote.put(&send.key, bytes.clone(), WriteMode::Overwrite)?;
                if let Some(p) = &self.options.progress {
                    p.advance(size);
                }
                (etag, size)
            }
            Content::File { .. } => {
                let src =
                    send.file.content.local_file(&self.options.storage)?.ok_or_else(|| Error::WouldNotValidate {
                        reasons: vec![SaveProblem::new(
                            send.key.clone(),
                            format!(
                                "{} has no file (path is None) and the destination holds no identical copy",
                                send.file.what
                            ),
                        )],
                    })?;
                let done = upload_file(self.remote, &send.key, &src, hash, self.options.progress.as_deref())?;
                (done.etag, done.size)
            }
        };
        self.remote.count_saved(size);
        Ok((send.key.clone(), KnownObject { hash, etag, size }))
    }

    /// Write `metadata.yaml`, the commit point: over the version read (`If-Match`), or only if
    /// there is none (`If-None-Match: *`); unconditionally when the options accept that the
    /// last writer wins. Another writer's version there is an [`Error::ConcurrentChange`].
    fn commit(&self, dest: &Destination) -> Result<Option<String>> {
        let bytes = self.plan.metadata_text.clone().into_bytes();
        let size = bytes.len() as u64;
        let conditional = self.remote.options.conditional_writes();
        let mode = match dest {
            _ if !conditional => WriteMode::Overwrite,
            Destination::Pmf { etag: Some(etag), .. } => WriteMode::Update(etag),
            Destination::Pmf { etag: None, .. } => {
                return Err(Error::Storage {
                    location: self.remote.url_of("metadata.yaml"),
                    operation: "cannot save safely".to_owned(),
                    kind: StorageErrorKind::NoConditionalWrites,
                    message: "the store gives no ETag for metadata.yaml: its version cannot be checked at the commit; set the storage option conditional_writes=false to accept that the last writer wins".to_owned(),
                })
            }
            Destination::Missing | Destination::Foreign => WriteMode::Create,
        };
        match self.remote.put("metadata.yaml", bytes, mode) {
            Err(e) if e.storage_kind() == Some(StorageErrorKind::PreconditionFailed) => {
                Err(Error::ConcurrentChange { path: self.remote.url.to_string().into() })
            }
            Err(e) => Err(e),
            Ok(etag) => {
                self.remote.count_saved(size);
                Ok(etag)
            }
        }
    }

    /// The objects to delete after the commit: what the old (trusted) metadata registered (or,
    /// for its initialisation model, anything under `data/initialisation/`) that the new tree
    /// does not hold. None with `keep_unregistered_files`.
    fn unregistered(&self, dest: &Destination, listing: &HashMap<String, Listed>) -> Vec<String> {
        if self.options.keep_unregistered_files {
            return Vec::new();
        }
        let new: HashSet<String> = self.plan.files.iter().map(|f| key_of(&f.rel)).collect();
        let mut old: Vec<String> = referenced_keys(dest_metadata(dest), listing)
            .into_iter()
            .filter(|k| k != "metadata.yaml" && !new.contains(k) && listing.contains_key(k))
            .collect();
        old.sort();
        old
    }

    /// After a failed save: delete the objects it created (new keys: nobody else writes under
    /// the lock), and the marker when nothing the old metadata points to was replaced.
    fn forget(&self, created: &[&str], replaced: bool) {
        for key in created {
            let _ = self.remote.delete(key);
        }
        if !replaced {
            let _ = self.remote.delete(SAVE_MARKER);
        }
    }
}

/// Whether the listed object's ETag is the MD5 `hash` (as S3 and most stores make it for an
/// object written in one request): then it holds those bytes. A multipart ETag (`<md5>-<n>`)
/// or a store's opaque one never matches, and the object is sent again unless known.
fn etag_is(listed: &Listed, hash: Md5) -> bool {
    listed.etag.as_deref().is_some_and(|e| e.trim_matches('"').eq_ignore_ascii_case(&hash.to_string()))
}

fn dest_metadata(dest: &Destination) -> Option<&Metadata> {
    match dest {
        Destination::Pmf { metadata, .. } => Some(metadata),
        _ => None,
    }
}

/// The keys the metadata of the destination (if any) points to
/// (`object_files::referenced_keys`).
fn referenced_keys(metadata: Option<&Metadata>, listing: &HashMap<String, Listed>) -> HashSet<String> {
    metadata.map_or_else(HashSet::new, |m| crate::object_files::referenced_keys(m, listing.keys().map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::atomic::AtomicBool;

    use futures_util::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path as StorePath;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
        PutOptions, PutPayload, PutResult,
    };

    use super::*;
    use crate::location::Location;
    use crate::producer::Producer;
    use crate::storage::StorageOptions;
    use crate::version::Version;
    use crate::Checkpoint;

    /// An in-memory store that, when told, applies the next write of `metadata.yaml` and then
    /// answers with an error, as a server whose answer was lost after a time-out.
    #[derive(Debug)]
    struct LosesAnswer {
        inner: InMemory,
        lose_next_commit: AtomicBool,
        /// Ignore `If-None-Match` and `If-Match` (a store without conditional writes).
        unconditional: bool,
    }

    impl fmt::Display for LosesAnswer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("LosesAnswer")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for LosesAnswer {
        async fn put_opts(&self, p: &StorePath, payload: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
            let o = if self.unconditional { PutOptions::default() } else { o };
            let done = self.inner.put_opts(p, payload, o).await?;
            if p.as_ref().ends_with("/metadata.yaml") && self.lose_next_commit.swap(false, Ordering::SeqCst) {
                return Err(object_store::Error::Generic { store: "test", source: "the answer was lost".into() });
            }
            Ok(done)
        }
        async fn put_multipart_opts(
            &self,
            p: &StorePath,
            o: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(p, o).await
        }
        async fn get_opts(&self, p: &StorePath, o: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(p, o).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<StorePath>>,
        ) -> BoxStream<'static, object_store::Result<StorePath>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&StorePath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&StorePath>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &StorePath, to: &StorePath, o: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }

    #[test]
    fn a_commit_applied_although_its_answer_was_lost_is_recognised_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.py"), b"lr = 1").unwrap();
        let store = Arc::new(LosesAnswer {
            inner: InMemory::new(),
            lose_next_commit: AtomicBool::new(false),
            unconditional: false,
        });
        let storage = StorageOptions::new().with_store(store.clone());
        let options = SaveOptions::new().storage(storage.clone());
        let url = Location::parse("s3://bucket/models/m").unwrap();
        let producer = Producer::new("trainer", Version::pep440("1.0").unwrap(), dir.path().join("config.py"));
        let mut m = Model::new("m", producer.unwrap());
        m.register_training_start(0).unwrap();
        let epoch = |m: &mut Model, e: i64| {
            let p = dir.path().join(format!("{e}.pt"));
            std::fs::write(&p, format!("weights {e}")).unwrap();
            m.register_epoch(Some(e)).unwrap();
            m.add_checkpoint(Checkpoint::new(e, Some(&p), Some(e), None).unwrap()).unwrap();
        };
        epoch(&mut m, 1);
        m.save_at(&url, &options).unwrap();
        epoch(&mut m, 2);
        store.lose_next_commit.store(true, Ordering::SeqCst);
        let err = m.save_at(&url, &options).unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Other), "{err:?}");
        // The store applied it: the objects it references are kept (not deleted as a failed
        // save's leftovers), and the next save takes it for this model's own commit.
        let remote = Remote::new(url.as_object().unwrap(), &storage).unwrap();
        let keys: Vec<String> = remote.list().unwrap().into_iter().map(|l| l.rel).collect();
        assert!(keys.contains(&"data/checkpoints/2.pt".to_owned()), "{keys:?}");
        epoch(&mut m, 3);
        m.save_at(&url, &options).unwrap();
        let loaded = Model::load_at(&url, &crate::LoadOptions::new().storage(storage.clone())).unwrap();
        assert_eq!(loaded.checkpoint_collection.len(), 3);
        // Recognised as its own by this model object only: another one that loaded the model
        // before this model's next save is refused as usual.
        epoch(&mut m, 4);
        store.lose_next_commit.store(true, Ordering::SeqCst);
        m.save_at(&url, &options).unwrap_err();
        let mut other =
            Model::load_at(&url, &crate::LoadOptions::new().storage(storage.clone()).strict(false)).unwrap();
        epoch(&mut m, 5);
        m.save_at(&url, &options).unwrap();
        other.register_epoch(Some(6)).unwrap();
        let refused = other.save_at(&url, &options).unwrap_err();
        assert!(matches!(refused, Error::ConcurrentChange { .. }), "{refused:?}");
    }

    #[test]
    fn a_store_that_ignores_conditional_writes_is_refused_unless_the_last_writer_may_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.py"), b"lr = 1").unwrap();
        let store = Arc::new(LosesAnswer {
            inner: InMemory::new(),
            lose_next_commit: AtomicBool::new(false),
            unconditional: true,
        });
        let storage = StorageOptions::new().with_store(store);
        let url = Location::parse("s3://bucket/models/unconditional").unwrap();
        let producer = Producer::new("trainer", Version::pep440("1.0").unwrap(), dir.path().join("config.py"));
        let mut m = Model::new("m", producer.unwrap());
        let err = m.save_at(&url, &SaveOptions::new().storage(storage.clone())).unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::NoConditionalWrites), "{err:?}");
        assert!(err.to_string().contains("conditional_writes=false"), "{err}");
        let remote = Remote::new(url.as_object().unwrap(), &storage).unwrap();
        assert!(remote.list().unwrap().is_empty(), "nothing left: the lock is deleted");
        // Accepted explicitly: no lock, no condition, the last writer wins.
        let mut accepting = storage.clone();
        accepting.set("conditional_writes", "false").unwrap();
        m.save_at(&url, &SaveOptions::new().storage(accepting.clone())).unwrap();
        let loaded = Model::load_at(&url, &crate::LoadOptions::new().storage(accepting)).unwrap();
        assert_eq!(loaded.id, "m");
    }
}
