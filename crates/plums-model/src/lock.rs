//! The writer lock of a model folder: an advisory `flock` on `<root>/.pmf.lock`. Writers take it
//! with `commit::lock_writer` (which waits, and handles a folder missing after an interrupted
//! save) from the single attempts [`try_lock`] makes.
//!
//! The lock file lives inside the model root (PMF touches nothing outside it but its staging
//! folder) and survives saves: the directory swap hard-links it into the new tree, so a writer
//! waiting on it before a save still waits on the same lock after. The holder writes its process
//! id, host and start time into the file, so that a writer that gives up can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, LockHolder, Result};

/// A held writer lock; released when dropped.
#[derive(Debug)]
pub struct ModelLock {
    file: File,
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

/// Who holds the lock file at `path`, as far as it says.
pub(crate) fn holder(path: &Path) -> LockHolder {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = Read::by_ref(&mut f).take(512).read_to_string(&mut text);
    }
    LockHolder::parse(&text)
}

/// The outcome of one attempt to take a lock file.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The lock is ours.
    Locked(ModelLock),
    /// Another writer holds it.
    Busy,
    /// The folder holding the lock file is gone, or its name now leads to another lock file
    /// (a save replaced the folder): look again.
    Moved(std::io::Error),
}

/// One attempt, without waiting, to take the lock file at `path` (created if missing).
pub(crate) fn try_lock(path: &Path) -> Result<Attempt> {
    let file = match open_lock(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Attempt::Moved(e)),
        Err(e) => return Err(Error::io(path, "cannot open the model lock file", e)),
    };
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            // The lock is only ours if the name still leads to the locked file.
            let same = match (file.metadata(), std::fs::symlink_metadata(path)) {
                (Ok(a), Ok(b)) => crate::fsutil::same_inode(&a, &b),
                _ => false,
            };
            if !same {
                return Ok(Attempt::Moved(std::io::Error::other("the lock file was replaced")));
            }
            let mut lock = ModelLock { file };
            lock.write_holder();
            Ok(Attempt::Locked(lock))
        }
        Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => Ok(Attempt::Busy),
        Err(e) => Err(Error::io(path, "cannot lock the model", std::io::Error::from(e))),
    }
}

/// Pauses between attempts to take a lock, growing up to 50 ms, until a deadline.
pub(crate) struct Backoff {
    deadline: Instant,
    pause: Duration,
}

impl Backoff {
    /// Attempts for at most `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Backoff { deadline: Instant::now() + timeout, pause: Duration::from_millis(2) }
    }

    /// Wait before the next attempt; `false` when the deadline has passed.
    pub(crate) fn wait(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        std::thread::sleep(self.pause.min(self.deadline.saturating_duration_since(Instant::now())));
        self.pause = (self.pause * 2).min(Duration::from_millis(50));
        true
    }
}

impl ModelLock {
    fn write_holder(&mut self) {
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let text = format!("pid {} on {host} since unix time {since}\n", std::process::id());
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = self.file.write_all(text.as_bytes());
    }
}

impl Drop for ModelLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}
