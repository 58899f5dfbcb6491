//! The commit of a save, and the repair of interrupted ones: everything a save does to the
//! folders next to the model and to its own leftovers.
//!
//! Only writers holding the model's lock call this module (its functions that change anything
//! take the [`ModelLock`] as proof). What saves leave behind is named in `leftovers.rs`, which
//! readers use, read-only, to report an interrupted save ([`crate::Error::InterruptedSave`]) or
//! tolerate it; the next writer repairs.
//!
//! # Locking a model whose folder is missing
//! A save interrupted between the two renames of [`commit`] leaves no folder at the model's
//! name, so no lock file there either. [`lock_writer`] then locks the `.pmf.lock` of the tree
//! [`interrupted_commit`] names (the same file as the model's: every tree a save builds
//! hard-links it), checks again under the lock that the model is still missing and that tree
//! still the one to use, and renames it into place: two writers can never both repair.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::leftovers::{interrupted_commit, is_sibling_of, parent_of, sibling_name};
use crate::lock::{self, Attempt, Backoff, ModelLock};
use crate::metadata::Metadata;
use crate::paths::{self, LOCK_FILE};

/// Take the writer lock of the model folder `dest`, waiting at most `timeout`; create the
/// folder if there is none, and put the tree of an interrupted commit in place first (under
/// its lock, see the module documentation).
///
/// On time-out: an [`Error::Locked`] naming the holder.
pub(crate) fn lock_writer(dest: &Path, timeout: Duration) -> Result<ModelLock> {
    lock_writer_of(dest, timeout, true)
}

/// [`lock_writer`] of a model folder that must be there already (or be the tree of an
/// interrupted commit), for `gc`, which never creates a model folder: an [`Error::Io`]
/// (`NotFound`) when it is gone.
pub(crate) fn lock_existing_writer(dest: &Path, timeout: Duration) -> Result<ModelLock> {
    lock_writer_of(dest, timeout, false)
}

fn lock_writer_of(dest: &Path, timeout: Duration, create: bool) -> Result<ModelLock> {
    let mut backoff = Backoff::new(timeout);
    loop {
        let leftover = if fs::metadata(dest).is_ok() {
            None
        } else if let Some(tree) = interrupted_commit(dest) {
            Some(tree)
        } else if create {
            fs::create_dir_all(dest).map_err(|e| Error::io(dest, "cannot create the save destination", e))?;
            None
        } else {
            let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(Error::io(dest, "the model folder is gone", gone));
        };
        let lock_path = leftover.as_deref().unwrap_or(dest).join(LOCK_FILE);
        match lock::try_lock(&lock_path)? {
            Attempt::Locked(lock) => match &leftover {
                None => return Ok(lock),
                Some(tree) => {
                    // Under the lock: nobody else repaired in the meantime, and this tree is
                    // still the one to put in place.
                    if interrupted_commit(dest).as_ref() == Some(tree) {
                        match fs::rename(tree, dest) {
                            Ok(()) => {
                                let _ = fsutil::sync_dir(parent_of(dest));
                                return Ok(lock);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(Error::io(tree, "cannot put the interrupted save in place", e)),
                        }
                    }
                    continue;
                }
            },
            Attempt::Moved(e) if leftover.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                // The folder exists but its lock file cannot be created (a dangling link, say),
                // unless a commit is moving it right now.
                if fs::metadata(dest).is_ok() {
                    return Err(Error::io(&lock_path, "cannot open the model lock file", e));
                }
            }
            Attempt::Busy | Attempt::Moved(_) => {}
        }
        if !backoff.wait() {
            return Err(Error::Locked { path: dest.to_path_buf(), holder: lock::holder(&lock_path), waited: timeout });
        }
    }
}

/// Replace the model folder `real` (named `name` in `parent`) by the complete, synced staging
/// tree: atomically with `renameat2(RENAME_EXCHANGE)`, or else with plain renames (staging ->
/// `.pmf-new-`, model -> `.pmf-old-`, new -> model; a process killed between the last two
/// leaves no folder at the model's name, which [`lock_writer`] repairs). Returns the old tree,
/// to be removed once the new state is recorded. On failure the staging tree is removed and the
/// model is as it was.
pub(crate) fn commit(staging: &Path, real: &Path, parent: &Path, name: &OsStr, _lock: &ModelLock) -> Result<PathBuf> {
    let committed = match fsutil::exchange(staging, real) {
        Ok(true) => Ok(staging.to_path_buf()),
        Ok(false) => commit_by_renames(staging, real, parent, name),
        Err(e) => Err(e),
    };
    if committed.is_err() {
        fsutil::remove_tree_quietly(staging);
    }
    committed
}

fn commit_by_renames(staging: &Path, real: &Path, parent: &Path, name: &OsStr) -> Result<PathBuf> {
    let suffix = fsutil::unique_suffix();
    let new = parent.join(sibling_name(name, "new", &suffix));
    let old = parent.join(sibling_name(name, "old", &suffix));
    fs::rename(staging, &new).map_err(|e| Error::io(&new, "cannot mark the new model complete", e))?;
    fsutil::sync_dir(parent)?;
    if let Err(e) = fs::rename(real, &old) {
        let _ = fs::rename(&new, staging);
        return Err(Error::io(real, "cannot move the old model aside", e));
    }
    if let Err(e) = fs::rename(&new, real) {
        let _ = fs::rename(&old, real);
        return Err(Error::io(real, "cannot move the new model into place", e));
    }
    Ok(old)
}

/// Remove what interrupted saves left of the model folder `real` (canonical, locked, whose
/// current metadata is `current` when it holds a model): staging, new and old trees next to it
/// (none is needed: the model folder exists), temporary files at its root and in
/// `data/checkpoints/`, and the files journals of interrupted in-place saves name that the
/// metadata does not reference.
pub(crate) fn repair(real: &Path, current: Option<&Metadata>, _lock: &ModelLock) {
    if let Some(name) = real.file_name() {
        clean_stale(parent_of(real), name);
    }
    fsutil::remove_temp_leftovers(real);
    if paths::is_real_dir(real, Path::new("data/checkpoints")) {
        fsutil::remove_temp_leftovers(&real.join("data/checkpoints"));
        if let Some(current) = current {
            recover_interrupted_appends(real, current);
        }
    }
}

fn clean_stale(parent: &Path, name: &OsStr) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let leftover = ["save", "new", "old"].iter().any(|k| is_sibling_of(&entry.file_name(), name, k));
        if is_dir && leftover {
            fsutil::remove_tree_quietly(&entry.path());
        }
    }
}

const JOURNAL_PREFIX: &str = ".pmf-append-";

/// The list of checkpoint files an in-place save created, NUL-separated, in
/// `data/checkpoints/.pmf-append-<suffix>`: written after each file is created (so that it
/// never names a file the save did not create), removed once the metadata is in place. Not
/// synced: after a power cut, a file it does not name is only left over, never lost.
pub(crate) struct Journal {
    path: PathBuf,
    file: Option<fs::File>,
}

impl Journal {
    /// A journal in the checkpoint folder `dir`, created on the first [`Journal::open`].
    pub(crate) fn new(dir: &Path, _lock: &ModelLock) -> Journal {
        Journal { path: dir.join(format!("{JOURNAL_PREFIX}{}", fsutil::unique_suffix())), file: None }
    }

    /// Create the journal file if it is not yet.
    pub(crate) fn open(&mut self) -> Result<()> {
        if self.file.is_none() {
            let file = fs::OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&self.path)
                .map_err(|e| Error::io(&self.path, "cannot create the save journal", e))?;
            self.file = Some(file);
        }
        Ok(())
    }

    /// Name the file `rel` (just created) in the journal.
    pub(crate) fn add(&mut self, rel: &Path) {
        use std::io::Write;
        if let (Some(file), Some(name)) = (&mut self.file, rel.file_name()) {
            let _ = file.write_all(&[name.as_bytes(), b"\0"].concat());
        }
    }

    /// Remove the journal (its files are referenced by the metadata now, or removed).
    pub(crate) fn remove(&self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn is_journal(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix(JOURNAL_PREFIX))
        .is_some_and(|rest| fsutil::is_unique_suffix(rest.as_bytes()))
}

/// Whether `current` registers the file `data/checkpoints/<name>` as a checkpoint, under a path
/// of any form the validator accepts (`./data/checkpoints/<name>` too).
pub(crate) fn registers_checkpoint_file(current: &Metadata, name: &str) -> bool {
    let file = Path::new("data/checkpoints").join(name);
    current.model.training.checkpoints.values().any(|c| paths::relative_inside(&c.path).is_ok_and(|p| p == file))
}

/// Undo what interrupted in-place saves left in `data/checkpoints/` (a real folder) of the
/// model at `root`, whose metadata is `current`: the checkpoint files they created that the
/// metadata does not reference (their metadata never got in place), and their journals.
fn recover_interrupted_appends(root: &Path, current: &Metadata) {
    let dir = root.join("data/checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        if !is_journal(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(bytes) = fs::read(entry.path()) else { continue };
        for name in bytes.split(|&b| b == 0).filter_map(|n| std::str::from_utf8(n).ok()) {
            // Only plain names (never a path) that the journal's save created.
            let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
            if plain && !registers_checkpoint_file(current, name) {
                let _ = fs::remove_file(dir.join(name));
            }
        }
        let _ = fs::remove_file(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = crate::commit::lock_writer(dir.path(), Duration::from_secs(1)).unwrap();
        let err = crate::commit::lock_writer(dir.path(), Duration::from_millis(50)).unwrap_err();
        let text = err.to_string();
        let Error::Locked { holder, .. } = &err else { panic!("{text}") };
        assert_eq!(holder.pid, Some(std::process::id()));
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(held);
        crate::commit::lock_writer(dir.path(), Duration::from_millis(50)).unwrap();
    }
}
