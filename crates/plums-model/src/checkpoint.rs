//! A checkpoint: a reference, an optional data file, an epoch and an MD5 checksum.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::digest::Md5;
use crate::error::{Error, Result};
use crate::hash::md5_file_sized;
use crate::reference::Reference;

/// What the file looked like when its checksum was computed: lets a save copy it without
/// reading it again when it has not changed since. Size and modification time, and the inode
/// and its change time: a rewrite that restores the modification time (`cp -p`, `touch -r`,
/// `tar x`) changes the change time, and a file renamed over the old one has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub size: u64,
    pub modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: (u64, u64),
}

impl FileStamp {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: meta.len(),
            modified: meta.modified().ok(),
            changed: (meta.ctime(), meta.ctime_nsec()),
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// A model checkpoint.
///
/// Equality and hashing use the epoch and the checksum only, as in the reference: two
/// checkpoints with the same weights at the same epoch are the same checkpoint.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let file = dir.path().join("1.pt");
/// # std::fs::write(&file, b"weights").unwrap();
/// use plums_model::Checkpoint;
/// let c = Checkpoint::new(1, Some(&file), Some(1), None).unwrap();
/// assert_eq!(c.hash, plums_model::Md5::of_bytes(b"weights"));
/// let d = Checkpoint::new("other", None::<&std::path::Path>, Some(1), Some(&c.hash.to_string())).unwrap();
/// assert_eq!(c, d);
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The checkpoint's unique reference.
    pub name: Reference,
    /// The checkpoint data file, if known.
    pub path: Option<PathBuf>,
    /// The epoch the checkpoint was taken at, if known (required in a collection).
    pub epoch: Option<i64>,
    /// The MD5 checksum of the data file.
    pub hash: Md5,
    pub(crate) stamp: Option<FileStamp>,
}

impl Checkpoint {
    /// A checkpoint named `name`.
    ///
    /// A given `path` must be a regular file ([`Error::NotAFile`] for anything else that exists,
    /// [`Error::Io`] when nothing can be read there). A given `hash` must be 32 lowercase
    /// hexadecimal digits ([`Error::InvalidChecksum`] otherwise); when no hash is given, it is
    /// computed from the file. Neither path nor hash is an [`Error::CheckpointWithoutSource`].
    pub fn new(
        name: impl Into<Reference>,
        path: Option<impl AsRef<Path>>,
        epoch: Option<i64>,
        hash: Option<&str>,
    ) -> Result<Self> {
        let name = name.into();
        let path = path.map(|p| p.as_ref().to_path_buf());
        let mut stamp = None;
        if let Some(p) = &path {
            let meta = std::fs::metadata(p).map_err(|e| Error::io(p, "invalid checkpoint: cannot read its file", e))?;
            if !meta.is_file() {
                return Err(Error::NotAFile { path: p.clone(), what: "checkpoint" });
            }
            stamp = Some(FileStamp::of(&meta));
        }
        let hash = match (hash, &path) {
            (Some(h), _) => {
                // A given checksum was not computed from the file: a save verifies it while copying.
                stamp = None;
                h.parse::<Md5>().map_err(|_| Error::InvalidChecksum {
                    subject: format!("checkpoint {}", name.quoted()),
                    value: h.to_owned(),
                })?
            }
            (None, Some(p)) => {
                let (digest, size) = md5_file_sized(p)?;
                if stamp.map(|s| s.size) != Some(size) {
                    // The file changed while we read it: do not trust the stamp.
                    stamp = None;
                }
                digest
            }
            (None, None) => return Err(Error::CheckpointWithoutSource { reference: name }),
        };
        Ok(Checkpoint { name, path, epoch, hash, stamp })
    }

    /// A checkpoint whose fields come from validated metadata (no file access).
    pub(crate) fn from_parts(name: Reference, path: Option<PathBuf>, epoch: Option<i64>, hash: Md5) -> Self {
        Checkpoint { name, path, epoch, hash, stamp: None }
    }

    /// The last component of the data file path, if there is a path.
    pub fn file_name(&self) -> Option<&std::ffi::OsStr> {
        self.path.as_deref().and_then(Path::file_name)
    }
}

impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch && self.hash == other.hash
    }
}

impl Eq for Checkpoint {}

impl Hash for Checkpoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        self.hash.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_hash_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"abc").unwrap();
        let c = Checkpoint::new(1, Some(&f), Some(3), None).unwrap();
        assert_eq!(c.hash, Md5::of_bytes(b"abc"));
        assert_eq!(c.epoch, Some(3));
        assert_eq!(c.file_name().unwrap(), "a.bin");
        assert_eq!(c.stamp.unwrap().size, 3);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let err = Checkpoint::new(1, None::<&Path>, None, None).unwrap_err();
        assert!(
            matches!(err, Error::CheckpointWithoutSource { .. }) && err.to_string().contains("neither was given"),
            "{err}"
        );
        let err = Checkpoint::new("x", None::<&Path>, None, Some("ABC")).unwrap_err();
        assert!(matches!(err, Error::InvalidChecksum { ref value, .. } if value == "ABC"), "{err}");
        assert!(err.to_string().contains("32 lowercase hexadecimal"), "{err}");
        let err = Checkpoint::new(1, Some(dir.path()), None, None).unwrap_err();
        assert!(matches!(err, Error::NotAFile { what: "checkpoint", .. }), "{err}");
        let err = Checkpoint::new(1, Some(dir.path().join("missing")), None, None).unwrap_err();
        assert!(err.io_kind() == Some(std::io::ErrorKind::NotFound), "{err}");
    }

    #[test]
    fn equality_is_epoch_and_hash() {
        let h = "0123456789abcdef0123456789abcdef";
        let a = Checkpoint::new(1, None::<&Path>, Some(1), Some(h)).unwrap();
        let b = Checkpoint::new("b", None::<&Path>, Some(1), Some(h)).unwrap();
        let c = Checkpoint::new(1, None::<&Path>, Some(2), Some(h)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
