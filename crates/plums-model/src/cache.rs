//! The local cache of downloaded objects: a remote model's files, verified, that a user opens
//! like local files (`torch.load(checkpoint.path)`).
//!
//! One entry per (store URL, key, ETag, size): a folder `objects/<id>/` holding the file under
//! its own name (`file/<name>`, so that tools that look at the extension keep working) and a
//! record (`entry`) of what it is and of the MD5 it was verified against. A download is
//! streamed into a temporary folder under `tmp/`, hashed while it is written (bounded memory),
//! synced, and renamed into place as a whole only once its MD5 matched: a partial or corrupt
//! file is never under a final name, and many processes can fill the cache at once (the first
//! rename wins; the others find the entry there and drop theirs). An entry is reused without a
//! request to the store while the object's ETag and size are unchanged; an object whose ETag
//! changed is another entry. An object without an ETag is downloaded every time.
//!
//! Durability without waiting for the disk: each download has a syncer thread that
//! `fdatasync`s the file every 16 MiB written, so that the disk writes while the
//! network reads; once the MD5 matched, the same thread syncs the rest (little) and installs
//! the entry, while the caller goes on (`Cache::start_fetch_verified`: a strict validation
//! starts its next download, and reports once every entry is installed). The file's data and
//! size are on disk before its record is written and the folder renamed: after a power cut an
//! entry is whole, or missing, or has a lost or empty record (then it is not reused, and the
//! next download replaces it); its file is never garbage under a valid record. After a failed
//! `fdatasync` nothing is installed (the kernel may have dropped the pages it could not write).
//!
//! Where: `PMF_CACHE_DIR`, else `$XDG_CACHE_HOME/plums-model`, else `~/.cache/plums-model`, or
//! the folder set with [`crate::StorageOptions::cache_dir`]. [`Cache::info`] and
//! [`Cache::prune`] report and trim it (least recently used first).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::digest::Md5;
use crate::error::{Error, Result};
use crate::hash::{Progress, StreamHasher};
use crate::storage::{Listed, Remote, StorageOptions};

/// Temporary folders older than this are leftovers of killed processes ([`Cache::prune`]).
const STALE_TEMPORARY: Duration = Duration::from_secs(24 * 3600);

/// The cache of downloaded, verified objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

/// What [`Cache::info`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The cache folder.
    pub root: PathBuf,
    /// Verified entries.
    pub entries: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Temporary downloads in progress or left by killed processes.
    pub temporaries: u64,
    /// Their size in bytes.
    pub temporary_bytes: u64,
}

/// What [`Cache::prune`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Remove least recently used entries until the cache holds at most this many bytes.
    pub max_bytes: Option<u64>,
    /// Remove the entries not used for this long.
    pub older_than: Option<Duration>,
}

impl PruneOptions {
    /// Remove nothing but stale temporary folders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep at most `bytes` bytes.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Remove the entries not used for `age`.
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = Some(age);
        self
    }
}

/// What [`Cache::prune`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PruneReport {
    /// Entries removed.
    pub entries: u64,
    /// Bytes freed (entries and stale temporaries).
    pub bytes: u64,
}

/// The outcome of [`Cache::fetch_verified`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// The verified local file.
    Verified {
        path: PathBuf,
        /// Whether it was downloaded now (not reused).
        downloaded: bool,
        /// Its MD5.
        md5: Md5,
    },
    /// The object's MD5 is `found`, not the one expected (nothing was kept).
    Mismatch { found: Md5 },
}

impl Cache {
    /// The cache in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// The default cache folder: `PMF_CACHE_DIR`, else `$XDG_CACHE_HOME/plums-model`, else
    /// `$HOME/.cache/plums-model` ([`Error::Io`] when none is set).
    pub fn default_root() -> Result<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = var("PMF_CACHE_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
            return Ok(dir.join("plums-model"));
        }
        if let Some(home) = var("HOME") {
            return Ok(home.join(".cache").join("plums-model"));
        }
        Err(Error::io(
            "PMF_CACHE_DIR",
            "no cache folder",
            io::Error::new(io::ErrorKind::NotFound, "set PMF_CACHE_DIR, XDG_CACHE_HOME or HOME"),
        ))
    }

    /// The cache at [`Cache::default_root`].
    pub fn open_default() -> Result<Self> {
        Ok(Cache::new(Self::default_root()?))
    }

    /// The cache `options` name, or the default one.
    pub(crate) fn for_options(options: &StorageOptions) -> Result<Self> {
        match options.cache_dir_option() {
            Some(dir) => Ok(Cache::new(dir)),
            None => Self::open_default(),
        }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The entries, their sizes, and the temporary downloads.
    pub fn info(&self) -> Result<CacheInfo> {
        let entries = self.entries()?;
        let temporaries = list_dir(&self.tmp())?;
        Ok(CacheInfo {
            root: self.root.clone(),
            entries: entries.len() as u64,
            bytes: entries.iter().map(|e| e.bytes).sum(),
            temporaries: temporaries.len() as u64,
            temporary_bytes: temporaries.iter().map(|p| tree_size(p)).sum(),
        })
    }

    /// Remove the entries `options` selects (not used for `older_than`; then the least recently
    /// used ones until at most `max_bytes` remain) and the temporary folders of downloads that
    /// were killed (older than a day). An entry is moved away in one rename before it is removed,
    /// so a reader sees it whole or not at all; a file already opened stays readable.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let now = SystemTime::now();
        for tmp in list_dir(&self.tmp())? {
            let age =
                fs::symlink_metadata(&tmp).and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
            if age.is_some_and(|a| a > STALE_TEMPORARY) {
                report.bytes += tree_size(&tmp);
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        let mut entries = self.entries()?;
        entries.sort_by_key(|e| e.used);
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for entry in entries {
            let old = options.older_than.is_some_and(|age| now.duration_since(entry.used).is_ok_and(|a| a > age));
            let over = options.max_bytes.is_some_and(|max| total > max);
            if !(old || over) {
                continue;
            }
            let away = self.temporary_dir()?;
            if fs::rename(&entry.dir, &away).is_ok() {
                let _ = fs::remove_dir_all(&away);
                total -= entry.bytes;
                report.entries += 1;
                report.bytes += entry.bytes;
            } else {
                let _ = fs::remove_dir(&away);
            }
        }
        Ok(report)
    }

    fn entries(&self) -> Result<Vec<EntryInfo>> {
        Ok(list_dir(&self.objects())?
            .into_iter()
            .map(|dir| {
                let used = fs::metadata(dir.join("entry")).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
                EntryInfo { bytes: tree_size(&dir), used, dir }
            })
            .collect())
    }

    /// A new, empty temporary folder (unique across processes and threads).
    fn temporary_dir(&self) -> Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.tmp();
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, "cannot create the cache folder", e))?;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = tmp.join(format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, "cannot create a cache temporary folder", e))?;
        Ok(dir)
    }

    /// The verified entry of `object` (key `key` in `store`), if the cache has it.
    fn lookup(&self, record: &Record) -> Option<(PathBuf, Md5)> {
        record.etag.as_ref()?;
        let dir = self.objects().join(record.id());
        let text = fs::read_to_string(dir.join("entry")).ok()?;
        let found = Record::parse(&text)?;
        if found.store != record.store
            || found.key != record.key
            || found.etag != record.etag
            || found.size != record.size
        {
            return None;
        }
        let file = dir.join("file").join(record.name());
        let meta = fs::symlink_metadata(&file).ok()?;
        if !meta.is_file() || meta.len() != record.size {
            return None;
        }
        // The last use, for pruning; failure is harmless.
        if let Ok(f) = fs::File::options().append(true).open(dir.join("entry")) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some((file, found.md5?))
    }

    /// The local file of the object `listed` of `remote`, verified against `expected`: reused
    /// from the cache when its ETag and size are unchanged (no request), else downloaded,
    /// hashed while it streams and moved into place only if its MD5 is `expected`.
    pub(crate) fn fetch_verified(&self, remote: &Remote, listed: &Listed, expected: Md5) -> Result<Fetched> {
        self.start_fetch(remote, listed, Some(expected), None)?.wait()
    }

    /// [`Cache::fetch_verified`], returning as soon as the download is over: the file is then
    /// made durable and installed by another thread while the caller goes on (say, with the next
    /// download); [`Fetching::wait`] gives the outcome. `progress` is told of every chunk
    /// downloaded and hashed (of the whole size at once when the cache already holds the object).
    pub(crate) fn start_fetch_verified(
        &self,
        remote: &Remote,
        listed: &Listed,
        expected: Md5,
        progress: Option<&dyn Progress>,
    ) -> Result<Fetching> {
        self.start_fetch(remote, listed, Some(expected), progress)
    }

    /// The local file of the object `listed` of `remote`, whatever its content, and its MD5
    /// (computed while it streams, or recorded when the cache already holds it): for a file
    /// whose checksum nobody recorded yet (a weight file given as an initialisation).
    pub(crate) fn fetch_hashed(&self, remote: &Remote, listed: &Listed) -> Result<(PathBuf, Md5)> {
        match self.start_fetch(remote, listed, None, None)?.wait()? {
            Fetched::Verified { path, md5, .. } => Ok((path, md5)),
            Fetched::Mismatch { .. } => unreachable!("nothing was expected"),
        }
    }

    fn start_fetch(
        &self,
        remote: &Remote,
        listed: &Listed,
        expected: Option<Md5>,
        progress: Option<&dyn Progress>,
    ) -> Result<Fetching> {
        let record = Record {
            store: remote.url.store_url(),
            key: remote.url.key(&listed.rel),
            etag: listed.etag.clone(),
            size: listed.size,
            md5: None,
        };
        if let Some((path, md5)) = self.lookup(&record) {
            if let Some(p) = progress {
                p.advance(listed.size);
            }
            return Ok(Fetching::done(if expected.is_none_or(|e| e == md5) {
                Fetched::Verified { path, downloaded: false, md5 }
            } else {
                Fetched::Mismatch { found: md5 }
            }));
        }
        let tmp = self.temporary_dir()?;
        let result = self.download_into(remote, listed, record, &tmp, expected, progress);
        // Once installing, the installer owns the temporary folder; else nothing is kept.
        if !matches!(result, Ok(Fetching { state: State::Installing(_), .. })) {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Stream the object into `tmp/file/<name>`, hashing it; a syncer thread follows the writes
    /// (`fdatasync` every [`SYNC_EVERY`] bytes, so that the disk writes while the network reads)
    /// and, if the MD5 is the expected one, makes the file durable and installs the entry.
    fn download_into(
        &self,
        remote: &Remote,
        listed: &Listed,
        record: Record,
        tmp: &Path,
        expected: Option<Md5>,
        progress: Option<&dyn Progress>,
    ) -> Result<Fetching> {
        let file_dir = tmp.join("file");
        fs::create_dir(&file_dir).map_err(|e| Error::io(&file_dir, "cannot create a cache folder", e))?;
        let path = file_dir.join(record.name());
        let file = fs::File::create(&path).map_err(|e| Error::io(&path, "cannot create a cache file", e))?;
        let syncer = Syncer {
            file: file.try_clone().map_err(|e| Error::io(&path, "cannot open a cache file", e))?,
            cache: self.clone(),
            tmp: tmp.to_owned(),
            record,
            expected,
        };
        let (steps, received) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pmf-cache-sync".to_owned())
            .spawn(move || syncer.run(received))
            .map_err(|e| Error::io(&path, "cannot start a thread", e))?;
        // On every failure below: stop the syncer (it ends at its next step) before the caller
        // removes the temporary folder.
        let abandon = |steps: mpsc::Sender<Step>, thread: std::thread::JoinHandle<Result<Fetched>>| {
            drop(steps);
            let _ = thread.join();
        };
        let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = StreamHasher::new(listed.size);
        let mut unsynced = 0u64;
        let downloaded = remote.download(&listed.rel, listed.etag.as_deref(), &mut |chunk| {
            hasher.update(chunk)?;
            out.write_all(chunk)?;
            unsynced += chunk.len() as u64;
            if unsynced >= SYNC_EVERY {
                out.flush()?;
                unsynced = 0;
                // The syncer gone early is reported when it is joined.
                let _ = steps.send(Step::Sync);
            }
            if let Some(p) = progress {
                p.advance(chunk.len() as u64);
            }
            Ok(())
        });
        if let Err(e) = downloaded {
            abandon(steps, thread);
            return Err(e);
        }
        // Close this handle: the syncer's, on the same file, syncs what was written through it.
        if let Err(e) = out.into_inner().map_err(|e| e.into_error()) {
            abandon(steps, thread);
            return Err(Error::io(&path, "cannot write a cache file", e));
        }
        let found = match hasher.finish() {
            Ok(found) => found,
            Err(e) => {
                abandon(steps, thread);
                return Err(Error::io(&path, "cannot compute MD5", e));
            }
        };
        if expected.is_some_and(|e| e != found) {
            abandon(steps, thread);
            return Ok(Fetching::done(Fetched::Mismatch { found }));
        }
        if steps.send(Step::Install(found)).is_err() {
            // The syncer ended early: its error.
            let err = thread.join().unwrap_or_else(|_| Err(panicked(&path)));
            return Err(err.err().unwrap_or_else(|| panicked(&path)));
        }
        Ok(Fetching { state: State::Installing(thread), path })
    }

    /// Move the complete, synced temporary folder `tmp` into place as the entry of `record`
    /// (whose file has MD5 `found`), or find the entry another process installed first.
    fn install(&self, tmp: &Path, record: &mut Record, found: Md5, expected: Option<Md5>) -> Result<Fetched> {
        record.md5 = Some(found);
        let entry = tmp.join("entry");
        fs::write(&entry, record.to_text()).map_err(|e| Error::io(&entry, "cannot write a cache record", e))?;
        let final_dir = self.objects().join(record.id());
        let objects = self.objects();
        fs::create_dir_all(&objects).map_err(|e| Error::io(&objects, "cannot create the cache folder", e))?;
        if fs::rename(tmp, &final_dir).is_err() {
            // Another process installed the entry first, or (no ETag) an older download is there,
            // or an entry that cannot be used (its record lost in a power cut): replace those two.
            let existing = self.lookup(record);
            if record.etag.is_none() || existing.is_none() {
                let away = self.temporary_dir()?;
                let _ = fs::rename(&final_dir, away.join("old"));
                let _ = fs::remove_dir_all(&away);
                if fs::rename(tmp, &final_dir).is_ok() {
                    return Ok(Fetched::Verified {
                        path: final_dir.join("file").join(record.name()),
                        downloaded: true,
                        md5: found,
                    });
                }
            }
            let _ = fs::remove_dir_all(tmp);
            return match existing.or_else(|| self.lookup(record)) {
                Some((path, md5)) if expected.is_none_or(|e| e == md5) => {
                    Ok(Fetched::Verified { path, downloaded: true, md5 })
                }
                Some((_, md5)) => Ok(Fetched::Mismatch { found: md5 }),
                None => Err(Error::io(&final_dir, "cannot install a cache entry", io::Error::other("entry unusable"))),
            };
        }
        Ok(Fetched::Verified { path: final_dir.join("file").join(record.name()), downloaded: true, md5: found })
    }
}

/// Chunks smaller than this are gathered before they are written; larger ones (a local
/// server's, of hundreds of KiB) are written as they come, without a copy.
const WRITE_BUFFER: usize = 64 << 10;

/// Bytes written between two `fdatasync` calls of a download's syncer.
const SYNC_EVERY: u64 = 16 << 20;

/// A fetch whose download is over ([`Cache::start_fetch_verified`]).
pub(crate) struct Fetching {
    state: State,
    /// The downloaded file (for errors).
    path: PathBuf,
}

enum State {
    Done(Fetched),
    /// The syncer makes the file durable and installs it. Dropped without [`Fetching::wait`],
    /// it goes on alone (a process that exits first leaves a temporary folder).
    Installing(std::thread::JoinHandle<Result<Fetched>>),
}

impl Fetching {
    fn done(fetched: Fetched) -> Self {
        Fetching { state: State::Done(fetched), path: PathBuf::new() }
    }

    /// The outcome, once the file is durable and installed.
    pub(crate) fn wait(self) -> Result<Fetched> {
        match self.state {
            State::Done(fetched) => Ok(fetched),
            State::Installing(thread) => thread.join().unwrap_or_else(|_| Err(panicked(&self.path))),
        }
    }
}

fn panicked(path: &Path) -> Error {
    Error::io(path, "cannot install a cache entry", io::Error::other("the cache syncer thread ended unexpectedly"))
}

/// What a download tells its syncer.
enum Step {
    /// More was written: sync it.
    Sync,
    /// All was written and its MD5 is this one: make it durable, install it.
    Install(Md5),
}

/// The thread that follows a download's writes and installs its entry.
struct Syncer {
    /// Another handle on the file being written.
    file: fs::File,
    cache: Cache,
    tmp: PathBuf,
    record: Record,
    expected: Option<Md5>,
}

impl Syncer {
    fn run(mut self, steps: mpsc::Receiver<Step>) -> Result<Fetched> {
        let path = self.tmp.join("file").join(self.record.name());
        // After a failed fsync the kernel may drop the dirty pages and the next one succeed:
        // the first failure is the verdict.
        let mut failed = None;
        let found = loop {
            match steps.recv() {
                Ok(Step::Sync) => {
                    if failed.is_none() {
                        failed = self.file.sync_data().err();
                    }
                }
                Ok(Step::Install(found)) => break found,
                // Abandoned: the download removes the temporary folder.
                Err(_) => return Err(Error::io(&path, "cannot download", io::Error::other("abandoned"))),
            }
        };
        let synced = match failed {
            Some(e) => Err(e),
            None => self.file.sync_data(),
        };
        drop(self.file);
        let outcome = synced
            .map_err(|e| Error::io(&path, "cannot sync a cache file", e))
            .and_then(|()| self.cache.install(&self.tmp, &mut self.record, found, self.expected));
        if !matches!(outcome, Ok(Fetched::Verified { .. })) {
            let _ = fs::remove_dir_all(&self.tmp);
        }
        outcome
    }
}

struct EntryInfo {
    dir: PathBuf,
    bytes: u64,
    used: SystemTime,
}

/// What a cache entry is: the object, and the MD5 it was verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    store: String,
    key: String,
    etag: Option<String>,
    size: u64,
    md5: Option<Md5>,
}

impl Record {
    /// The entry's folder name: a digest of (store, key, ETag, size). Collisions are harmless:
    /// the record inside is compared field by field.
    fn id(&self) -> String {
        let text = format!("{}\0{}\0{}\0{}", self.store, self.key, self.etag.as_deref().unwrap_or(""), self.size);
        Md5::of_bytes(text.as_bytes()).to_string()
    }

    /// The file's name: the key's last segment.
    fn name(&self) -> &str {
        self.key.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("object")
    }

    fn to_text(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "pmf-cache 1\nmd5 {}\nsize {}\netag {}\nstore {}\nkey {}\n",
            self.md5.map(|m| m.to_string()).unwrap_or_default(),
            self.size,
            one_line(self.etag.as_deref().unwrap_or("")),
            one_line(&self.store),
            one_line(&self.key)
        )
    }

    fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        if lines.next()? != "pmf-cache 1" {
            return None;
        }
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned);
        let md5 = field("md5")?.parse::<Md5>().ok();
        let size = field("size")?.parse().ok()?;
        let etag = Some(field("etag")?).filter(|e| !e.is_empty());
        Some(Record { md5, size, etag, store: field("store")?, key: field("key")? })
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(items) => Ok(items.filter_map(|i| i.ok()).map(|i| i.path()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, "cannot read the cache folder", e)),
    }
}

fn tree_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record {
            store: "s3://b".into(),
            key: "m/data/checkpoints/1.pt".into(),
            etag: Some("\"abc\"".into()),
            size: 7,
            md5: Some(Md5::of_bytes(b"x")),
        };
        assert_eq!(Record::parse(&r.to_text()), Some(r.clone()));
        assert_eq!(r.name(), "1.pt");
        let other = Record { etag: Some("\"abd\"".into()), ..r.clone() };
        assert_ne!(r.id(), other.id());
        assert_eq!(Record::parse("garbage"), None);
    }

    /// A cache in a temporary folder, and an in-memory store holding `bytes` as `m/<name>`.
    fn store_with(name: &str, bytes: Vec<u8>) -> (tempfile::TempDir, Cache, Remote, Listed) {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageOptions::new().with_store(std::sync::Arc::new(object_store::memory::InMemory::new()));
        let location = crate::location::Location::parse("s3://bucket/m").unwrap();
        let remote = Remote::new(location.as_object().unwrap(), &storage).unwrap();
        remote.put(name, bytes, crate::storage::WriteMode::Overwrite).unwrap();
        let listed = remote.head(name).unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        (dir, cache, remote, listed)
    }

    #[test]
    fn a_download_over_several_syncs_is_installed_whole_and_reused() {
        let bytes: Vec<u8> = (0..SYNC_EVERY as usize * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let md5 = Md5::of_bytes(&bytes);
        let (_dir, cache, remote, listed) = store_with("big.bin", bytes.clone());
        // Returned before it is installed; installed when waited for.
        let fetching = cache.start_fetch_verified(&remote, &listed, md5, None).unwrap();
        let Fetched::Verified { path, downloaded: true, md5: found } = fetching.wait().unwrap() else {
            panic!("not verified")
        };
        assert_eq!(found, md5);
        assert!(path.starts_with(cache.objects()), "{}", path.display());
        assert_eq!(path.file_name().unwrap(), "big.bin");
        assert!(fs::read(&path).unwrap() == bytes, "the installed file is what was verified");
        let info = cache.info().unwrap();
        assert_eq!((info.entries, info.temporaries), (1, 0), "{info:?}");
        let again = cache.fetch_verified(&remote, &listed, md5).unwrap();
        assert_eq!(again, Fetched::Verified { path, downloaded: false, md5 });
    }

    #[test]
    fn a_mismatch_keeps_nothing() {
        let bytes = vec![3u8; SYNC_EVERY as usize + 1];
        let (_dir, cache, remote, listed) = store_with("w.pt", bytes.clone());
        let wrong = Md5::of_bytes(b"something else");
        let outcome = cache.start_fetch_verified(&remote, &listed, wrong, None).unwrap().wait().unwrap();
        assert_eq!(outcome, Fetched::Mismatch { found: Md5::of_bytes(&bytes) });
        let info = cache.info().unwrap();
        assert_eq!((info.entries, info.temporaries), (0, 0), "{info:?}");
    }

    #[test]
    fn an_entry_whose_record_was_lost_is_replaced() {
        let bytes = b"weights".to_vec();
        let md5 = Md5::of_bytes(&bytes);
        let (_dir, cache, remote, listed) = store_with("w.pt", bytes);
        let Fetched::Verified { path, .. } = cache.fetch_verified(&remote, &listed, md5).unwrap() else { panic!() };
        // What a power cut can leave: the renamed folder, its record empty.
        let entry = path.parent().unwrap().parent().unwrap().join("entry");
        fs::write(&entry, b"").unwrap();
        let outcome = cache.fetch_verified(&remote, &listed, md5).unwrap();
        assert_eq!(outcome, Fetched::Verified { path: path.clone(), downloaded: true, md5 });
        assert_eq!(fs::read(&path).unwrap(), b"weights");
        let again = cache.fetch_verified(&remote, &listed, md5).unwrap();
        assert_eq!(again, Fetched::Verified { path, downloaded: false, md5 });
        assert_eq!(cache.info().unwrap().temporaries, 0);
    }

    #[test]
    fn the_default_root_follows_the_environment_rules() {
        // Only reads the environment (tests never set it: they run in parallel).
        let root = Cache::default_root().unwrap();
        match std::env::var_os("PMF_CACHE_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => assert_eq!(root, PathBuf::from(dir)),
            None => assert!(root.ends_with("plums-model"), "{}", root.display()),
        }
    }
}
