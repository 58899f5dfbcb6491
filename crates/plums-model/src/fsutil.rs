//! File-system primitives for saving: atomic writes, verified copies, durable directories,
//! tree mirroring with hard links, and the atomic directory exchange.
//!
//! Rules kept here: a file is never written in place (always a temporary name in the same
//! folder, synced, then renamed), and a hard-linked file is never opened for writing (that
//! would change the previous model's copy too).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::FileStamp;
use crate::digest::Md5;
use crate::error::{Error, Result};
use crate::hash::copy_hashing;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, for temporary files and staging folders.
pub(crate) fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// Whether `text` has the form [`unique_suffix`] gives: `<pid>-<counter>-<8 hex digits>`.
pub(crate) fn is_unique_suffix(text: &[u8]) -> bool {
    let parts: Vec<&[u8]> = text.split(|&b| b == b'-').collect();
    matches!(parts.as_slice(), [pid, n, hex]
        if !pid.is_empty() && pid.iter().all(u8::is_ascii_digit)
        && !n.is_empty() && n.iter().all(u8::is_ascii_digit)
        && hex.len() == 8 && hex.iter().all(u8::is_ascii_hexdigit))
}

/// The temporary sibling used to write `dst` atomically.
fn temp_for(dst: &Path) -> PathBuf {
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dst.with_file_name(format!(".{name}.pmf-tmp-{}", unique_suffix()))
}

fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o644)
        .open(path)
        .map_err(|e| Error::io(path, "cannot create file", e))
}

/// Whether `name` is a temporary file of [`write_atomic`] or [`copy_verified`]
/// (`.<name>.pmf-tmp-<suffix>`): a leftover when no save is running.
pub(crate) fn is_temp_leftover(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    const MARK: &[u8] = b".pmf-tmp-";
    bytes.starts_with(b".")
        && bytes
            .windows(MARK.len())
            .rposition(|w| w == MARK)
            .is_some_and(|i| i > 1 && is_unique_suffix(&bytes[i + MARK.len()..]))
}

/// Remove the temporary-file leftovers of interrupted writes directly in `dir` (the caller
/// holds the model lock, so no write of ours is running there).
pub(crate) fn remove_temp_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if is_temp_leftover(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// How a finished temporary file takes its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Atomically replace whatever file has the name.
    Replace,
    /// Take a name that nothing has: an existing entry is an error and stays as it is.
    New,
}

fn finish(file: File, tmp: &Path, dst: &Path, durable: bool, placement: Placement) -> Result<()> {
    if durable {
        file.sync_all().map_err(|e| Error::io(tmp, "cannot sync file to disk", e))?;
    }
    drop(file);
    let moved = match placement {
        Placement::Replace => fs::rename(tmp, dst),
        Placement::New => rename_no_replace(tmp, dst),
    };
    moved.map_err(|e| {
        let _ = fs::remove_file(tmp);
        Error::io(dst, "cannot move file into place", e)
    })
}

/// Rename `from` to `to` unless `to` exists (`renameat2(RENAME_NOREPLACE)`, or a hard link
/// where the file system lacks it: a link never replaces an entry either).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::NOTSUP => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Write `bytes` to `dst` atomically: temporary file in the same folder, sync, rename.
pub(crate) fn write_atomic(dst: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let tmp = temp_for(dst);
    let mut file = create_new(&tmp)?;
    if let Err(e) = file.write_all(bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp, "cannot write file", e));
    }
    finish(file, &tmp, dst, durable, Placement::Replace)
}

/// Copy `src` to `dst` atomically and check the copy has checksum `expected`.
///
/// With `trusted` (what the source looked like when `expected` was computed from it), a source
/// that still looks so before and after the copy is copied by the file system
/// (copy_file_range / reflink) without being read here; otherwise the bytes are hashed while
/// copied, and a checksum other than `expected` aborts the copy.
/// `placement` says whether an existing `dst` is replaced or the copy fails.
pub(crate) fn copy_verified(
    src: &Path,
    dst: &Path,
    expected: Md5,
    trusted: Option<FileStamp>,
    durable: bool,
    placement: Placement,
) -> Result<()> {
    let tmp = temp_for(dst);
    let stamp = || fs::metadata(src).ok().map(|m| FileStamp::of(&m));
    if trusted.is_some() && stamp() == trusted {
        // std::fs::copy uses copy_file_range (reflinks on file systems that support them).
        // The source is trusted because it looked unchanged since its MD5 was computed; if it
        // changes while it is copied (a trainer rewriting `last.pt` during a background
        // save), its size or modification time says so and it is copied again, hashed.
        if let Err(e) = fs::copy(src, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(src, "cannot copy file", e));
        }
        if stamp() == trusted {
            let file = OpenOptions::new().write(true).open(&tmp).map_err(|e| Error::io(&tmp, "cannot open copy", e))?;
            let _ = file.set_permissions(fs::Permissions::from_mode(0o644));
            return finish(file, &tmp, dst, durable, placement);
        }
        let _ = fs::remove_file(&tmp);
    }
    let mut file = create_new(&tmp)?;
    let found = match copy_hashing(src, &mut file, &tmp) {
        Ok((d, _)) => d,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if found != expected {
        let _ = fs::remove_file(&tmp);
        return Err(Error::ChecksumMismatch { path: src.to_path_buf(), expected, found });
    }
    finish(file, &tmp, dst, durable, placement)
}

/// Hard-link `src` as `dst` (replacing `dst`), or copy it where links are not possible.
pub(crate) fn link_or_copy(src: &Path, dst: &Path, durable: bool) -> Result<()> {
    let tmp = temp_for(dst);
    match fs::hard_link(src, &tmp) {
        Ok(()) => fs::rename(&tmp, dst).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(dst, "cannot move file into place", e)
        }),
        Err(_) => {
            if let Err(e) = fs::copy(src, &tmp) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io(src, "cannot copy file", e));
            }
            let file = OpenOptions::new().write(true).open(&tmp).map_err(|e| Error::io(&tmp, "cannot open copy", e))?;
            finish(file, &tmp, dst, durable, Placement::Replace)
        }
    }
}

/// Sync a folder, so that the names created or renamed in it survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io(dir, "cannot open folder to sync it", e))?;
    f.sync_all().map_err(|e| Error::io(dir, "cannot sync folder to disk", e))
}

/// Create `dir` (not its parents) with the permissions of `like`, if given.
///
/// A symbolic link or a file already standing at `dir` is an error: it is never written
/// through (a link could lead outside the model) nor replaced (it may be someone's data).
pub(crate) fn make_dir(dir: &Path, like: Option<&fs::Metadata>) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) => {
            let found = if m.file_type().is_symlink() { "a symbolic link" } else { "a file" };
            return Err(Error::Obstructed { path: dir.to_path_buf(), found, needed: "a folder" });
        }
        Err(_) => {}
    }
    if let Err(e) = fs::create_dir(dir) {
        return Err(Error::io(dir, "cannot create folder", e));
    }
    if let Some(m) = like {
        let _ = fs::set_permissions(dir, m.permissions());
    }
    Ok(())
}

/// Mirror the tree `src` into the existing, empty folder `dst`: folders are recreated, files
/// hard-linked (copied where links fail), symbolic links recreated as links. Paths for which
/// `skip` answers true (relative to `src`) are left out with everything below them.
///
/// A special file (FIFO, socket, device) is an error: it cannot be mirrored and PMF never opens one.
pub(crate) fn mirror_tree(src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool, durable: bool) -> Result<()> {
    let mut walker = walkdir::WalkDir::new(src).follow_links(false).min_depth(1).into_iter();
    while let Some(item) = walker.next() {
        let item = item.map_err(|e| {
            let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| src.to_path_buf());
            Error::io(p, "cannot read folder", e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed")))
        })?;
        let Ok(rel) = item.path().strip_prefix(src) else { continue };
        if skip(rel) || (item.file_type().is_file() && is_temp_leftover(item.file_name())) {
            if item.file_type().is_dir() {
                walker.skip_current_dir();
            }
            continue;
        }
        let target = dst.join(rel);
        let ft = item.file_type();
        if ft.is_dir() {
            let meta = item.metadata().ok();
            make_dir(&target, meta.as_ref())?;
        } else if ft.is_symlink() {
            let link = fs::read_link(item.path()).map_err(|e| Error::io(item.path(), "cannot read link", e))?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| Error::io(&target, "cannot recreate link", e))?;
        } else if ft.is_file() {
            if fs::hard_link(item.path(), &target).is_err() {
                link_or_copy(item.path(), &target, durable)?;
            }
        } else {
            return Err(Error::Obstructed {
                path: item.path().to_path_buf(),
                found: "a special file (FIFO, socket or device)",
                needed: "no special file",
            });
        }
    }
    Ok(())
}

/// Sync every folder of the tree `root` (including `root`).
pub(crate) fn sync_tree_dirs(root: &Path) -> Result<()> {
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let item = item.map_err(|e| {
            let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
            Error::io(p, "cannot read folder", e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed")))
        })?;
        if item.file_type().is_dir() {
            sync_dir(item.path())?;
        }
    }
    Ok(())
}

/// Atomically exchange two folders of the same file system (Linux `renameat2(RENAME_EXCHANGE)`).
///
/// `Ok(false)` when the file system or kernel does not support the exchange.
pub(crate) fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::NOTSUP => {
            Ok(false)
        }
        Err(e) => Err(Error::io(b, "cannot swap the new model into place", io::Error::from(e))),
    }
}

/// Whether two `stat` results are of the same file (same device and inode).
pub(crate) fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Remove a staging tree; failures are left for the next save to clean.
pub(crate) fn remove_tree_quietly(path: &Path) {
    let _ = fs::remove_dir_all(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::md5_file;

    #[test]
    fn unique_suffixes_are_recognised() {
        assert!(is_unique_suffix(unique_suffix().as_bytes()));
        for bad in ["", "1-2", "1-2-3", "a-2-0000000f", "1-2-0000000f.pmf-save-1-2-00000000", "1-2-0000000g"] {
            assert!(!is_unique_suffix(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn temporary_leftovers_are_recognised_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = temp_for(&dir.path().join("3.pt"));
        let tmp_name = tmp.file_name().unwrap().to_owned();
        assert!(is_temp_leftover(&tmp_name), "{tmp_name:?}");
        for keep in [
            "3.pt",
            ".3.pt",
            ".3.pt.pmf-tmp-",
            ".3.pt.pmf-tmp-1-2-3",
            "x.pmf-tmp-1-2-0000000f",
            ".pmf-tmp-1-2-0000000f",
        ] {
            assert!(!is_temp_leftover(std::ffi::OsStr::new(keep)), "{keep}");
        }
        fs::write(&tmp, b"half").unwrap();
        fs::write(dir.path().join("3.pt"), b"kept").unwrap();
        fs::create_dir(dir.path().join(format!(".d.pmf-tmp-{}", unique_suffix()))).unwrap();
        remove_temp_leftovers(dir.path());
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(left[1], "3.pt", "only the temporary file is removed, never a folder: {left:?}");
    }

    #[test]
    fn a_new_placement_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        let dst = dir.path().join("dst");
        fs::write(&dst, b"someone else's").unwrap();
        let hash = Md5::of_bytes(b"content");
        let stamp = Some(FileStamp::of(&fs::metadata(&src).unwrap()));
        for trust in [None, stamp] {
            let err = copy_verified(&src, &dst, hash, trust, false, Placement::New).unwrap_err();
            assert!(
                matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
                "{err:?}"
            );
            assert_eq!(fs::read(&dst).unwrap(), b"someone else's");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left");
        let new = dir.path().join("new");
        copy_verified(&src, &new, hash, None, true, Placement::New).unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"content");
    }

    #[test]
    fn atomic_write_replaces_without_touching_links() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"old").unwrap();
        let b = dir.path().join("b");
        fs::hard_link(&a, &b).unwrap();
        write_atomic(&b, b"new", true).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert_eq!(fs::read(&b).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left");
    }

    #[test]
    fn verified_copy_refuses_a_changed_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"content").unwrap();
        let dst = dir.path().join("dst");
        let err = copy_verified(&src, &dst, Md5::of_bytes(b"other"), None, false, Placement::Replace).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("does not have the checksum it was registered with"), "{err}");
        assert!(!dst.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        copy_verified(&src, &dst, Md5::of_bytes(b"content"), None, false, Placement::Replace).unwrap();
        let stamp = Some(FileStamp::of(&fs::metadata(&src).unwrap()));
        copy_verified(&src, &dir.path().join("fast"), Md5::of_bytes(b"content"), stamp, false, Placement::Replace)
            .unwrap();
        // A source that is not what its stamp says (rewritten since its MD5 was computed) is
        // hashed, and refused.
        fs::write(&src, b"rewritten").unwrap();
        let err =
            copy_verified(&src, &dir.path().join("late"), Md5::of_bytes(b"content"), stamp, false, Placement::Replace)
                .unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
        assert!(!dir.path().join("late").exists());
        assert_eq!(md5_file(&dst).unwrap(), Md5::of_bytes(b"content"));
        assert_eq!(md5_file(dir.path().join("fast")).unwrap(), Md5::of_bytes(b"content"));
    }

    #[test]
    fn mirror_links_files_and_skips() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("d/e")).unwrap();
        fs::write(src.path().join("d/e/f"), b"x").unwrap();
        fs::write(src.path().join("g"), b"y").unwrap();
        std::os::unix::fs::symlink("g", src.path().join("l")).unwrap();
        fs::create_dir_all(src.path().join("skip/me")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        mirror_tree(src.path(), dst.path(), &|p| p.starts_with("skip"), false).unwrap();
        assert_eq!(fs::read(dst.path().join("d/e/f")).unwrap(), b"x");
        assert_eq!(fs::read_link(dst.path().join("l")).unwrap(), PathBuf::from("g"));
        assert!(!dst.path().join("skip").exists());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(src.path().join("g")).unwrap().ino(),
            fs::metadata(dst.path().join("g")).unwrap().ino()
        );
    }

    #[test]
    fn exchange_swaps_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("x"), b"a").unwrap();
        fs::write(b.join("x"), b"b").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(fs::read(a.join("x")).unwrap(), b"b");
            assert_eq!(fs::read(b.join("x")).unwrap(), b"a");
        }
    }
}
