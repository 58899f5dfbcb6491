//! The writer lock of a model folder: an advisory `flock` on `<root>/.pmf.lock`.
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

/// The lock file name, inside the model root.
pub const LOCK_FILE: &str = ".pmf.lock";

/// A held writer lock; released when dropped.
#[derive(Debug)]
pub struct ModelLock {
    file: File,
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(|e| Error::io(path, "cannot open the model lock file", e))
}

fn holder(path: &Path) -> LockHolder {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = Read::by_ref(&mut f).take(512).read_to_string(&mut text);
    }
    LockHolder::parse(&text)
}

impl ModelLock {
    /// Take the writer lock of the model folder `root`, waiting at most `timeout`.
    ///
    /// On time-out: an [`Error::Locked`] naming the holder.
    pub fn acquire(root: &Path, timeout: Duration) -> Result<ModelLock> {
        let path = root.join(LOCK_FILE);
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let file = open_lock(&path)?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    // The lock is only ours if the name still leads to the locked file.
                    let same = match (file.metadata(), std::fs::symlink_metadata(&path)) {
                        (Ok(a), Ok(b)) => crate::fsutil::same_inode(&a, &b),
                        _ => false,
                    };
                    if same {
                        let mut lock = ModelLock { file };
                        lock.write_holder();
                        return Ok(lock);
                    }
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(Error::io(&path, "cannot lock the model", std::io::Error::from(e))),
            }
            if Instant::now() >= deadline {
                return Err(Error::Locked { path: root.to_path_buf(), holder: holder(&path), waited: timeout });
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = ModelLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        let err = ModelLock::acquire(dir.path(), Duration::from_millis(50)).unwrap_err();
        let text = err.to_string();
        let Error::Locked { holder, .. } = &err else { panic!("{text}") };
        assert_eq!(holder.pid, Some(std::process::id()));
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(held);
        ModelLock::acquire(dir.path(), Duration::from_millis(50)).unwrap();
    }
}
