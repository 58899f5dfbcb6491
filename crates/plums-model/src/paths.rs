//! Confinement: the one place that decides whether a path stays inside a model root.
//!
//! A path written in metadata is untrusted. [`relative_inside`] refuses absolute paths and
//! `..`; [`Root::resolve`] then follows symbolic links and refuses any file whose real location
//! is outside the root (unless the caller opted in to external links for a trusted model).
//! Readers (validation, load, save's look at its destination) use [`Root::resolve`]; writers,
//! which must never write, hash or link through a link at all, use [`is_real_dir`].
//! The names PMF reserves at a model root are defined here too ([`RESERVED_NAMES`]).

use std::path::{Component, Path, PathBuf};

use crate::error::Offence;

/// The lock file name, inside the model root (see `lock.rs`).
pub const LOCK_FILE: &str = ".pmf.lock";

/// The object a save to an object store writes before it replaces any object the current
/// metadata points to, and deletes after its commit: while it exists, the model's objects may
/// mix two versions, and readers report it (see `save/remote.rs`).
pub const SAVE_MARKER: &str = ".pmf-save-in-progress";

/// The names a configuration file cannot have: PMF's own entries at the model root.
pub(crate) const RESERVED_NAMES: [&str; 4] = ["metadata.yaml", "data", LOCK_FILE, SAVE_MARKER];

/// Whether `name` is one of the [`RESERVED_NAMES`].
pub(crate) fn is_reserved_name(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

/// A relative path as an object key fragment (`/`-separated; metadata paths are UTF-8 text).
pub(crate) fn key_of(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Why a metadata path cannot be used.
pub(crate) fn relative_inside(text: &str) -> Result<PathBuf, String> {
    let path = Path::new(text);
    if path.is_absolute() {
        return Err(format!("{text:?} is an absolute path: expected a path relative to the model root"));
    }
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("{text:?} contains \"..\": expected a path that stays inside the model root"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{text:?} is an absolute path: expected a path relative to the model root"));
            }
        }
    }
    Ok(out)
}

/// A model root, canonicalised once, that resolves relative paths without escaping it.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    /// The root as given.
    pub given: PathBuf,
    /// The canonical root (symbolic links resolved).
    pub real: PathBuf,
    /// Whether symbolic links may point outside the root (trusted models only).
    pub allow_external_links: bool,
}

/// What is at a resolved location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    File,
    Dir,
    Missing,
    Other,
}

impl Root {
    pub fn new(given: &Path, allow_external_links: bool) -> std::io::Result<Self> {
        Ok(Root { given: given.to_path_buf(), real: given.canonicalize()?, allow_external_links })
    }

    /// A sub-root (for a nested initialisation model), sharing the confinement of this root.
    pub fn child(&self, rel: &Path) -> Self {
        Root { given: self.given.join(rel), real: self.real.join(rel), allow_external_links: self.allow_external_links }
    }

    /// Resolve `rel` (already checked by [`relative_inside`]) and say what is there.
    ///
    /// `Err` is a tree offence: the location escapes the root through a link, or is a link loop.
    pub fn resolve(&self, rel: &Path, location: &str) -> Result<(PathBuf, Entry), Offence> {
        let joined = self.real.join(rel);
        match std::fs::symlink_metadata(&joined) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((joined, Entry::Missing)),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                return Ok((joined, Entry::Missing))
            }
            Err(e) => return Err(Offence::tree(location, format!("cannot be read: {e}"))),
        }
        let real = match joined.canonicalize() {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Offence::tree(location, "is a symbolic link to nothing (dangling link): expected a file"));
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(Offence::tree(location, "is a symbolic link loop: expected a file"));
            }
            Err(e) => return Err(Offence::tree(location, format!("cannot be resolved: {e}"))),
        };
        if !self.allow_external_links && !real.starts_with(&self.real) {
            return Err(Offence::tree(
                location,
                format!(
                    "resolves to {} outside the model root: refused (paths must stay inside the model)",
                    real.display()
                ),
            ));
        }
        let meta = match std::fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => return Err(Offence::tree(location, format!("cannot be read: {e}"))),
        };
        let entry = if meta.is_file() {
            Entry::File
        } else if meta.is_dir() {
            Entry::Dir
        } else {
            Entry::Other
        };
        Ok((real, entry))
    }
}

/// Whether `rel` (relative to `root`) and every folder on the way to it are folders, not links:
/// then nothing reached through `root.join(rel)` leads out of `root`. An empty `rel` is `root`.
pub(crate) fn is_real_dir(root: &Path, rel: &Path) -> bool {
    let mut path = root.to_path_buf();
    rel.components().all(|c| {
        path.push(c);
        matches!(c, Component::Normal(_)) && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
    })
}

/// Whether the metadata path `text` names a regular file that really lies inside `root` (no
/// absolute path, no `..`, no link leading out).
pub(crate) fn is_file_inside(root: &Path, text: &str) -> bool {
    let (Ok(rel), Ok(root)) = (relative_inside(text), Root::new(root, false)) else { return false };
    matches!(root.resolve(&rel, text), Ok((_, Entry::File)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        assert_eq!(relative_inside("data/checkpoints/1.h5").unwrap(), PathBuf::from("data/checkpoints/1.h5"));
        assert_eq!(relative_inside("./config.py").unwrap(), PathBuf::from("config.py"));
        assert!(relative_inside("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(relative_inside("data/../../x").unwrap_err().contains(".."));
    }

    #[test]
    fn links_outside_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("loop"), root.path().join("loop")).unwrap();
        std::fs::write(root.path().join("inside"), b"i").unwrap();
        std::os::unix::fs::symlink("inside", root.path().join("ok")).unwrap();
        let r = Root::new(root.path(), false).unwrap();
        let err = r.resolve(Path::new("link"), "link").unwrap_err();
        assert!(err.message.contains("outside the model root"), "{err}");
        let err = r.resolve(Path::new("loop"), "loop").unwrap_err();
        assert!(err.message.contains("loop"), "{err}");
        assert_eq!(r.resolve(Path::new("ok"), "ok").unwrap().1, Entry::File);
        assert_eq!(r.resolve(Path::new("missing"), "missing").unwrap().1, Entry::Missing);
        let trusted = Root::new(root.path(), true).unwrap();
        assert_eq!(trusted.resolve(Path::new("link"), "link").unwrap().1, Entry::File);
    }

    #[test]
    fn real_dirs_are_told_from_links_at_every_level() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/checkpoints")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere/checkpoints")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("linked")).unwrap();
        std::fs::write(root.join("file"), b"").unwrap();
        assert!(is_real_dir(root, Path::new("")));
        assert!(is_real_dir(root, Path::new("data/checkpoints")));
        assert!(!is_real_dir(root, Path::new("linked")));
        assert!(!is_real_dir(root, Path::new("linked/checkpoints")), "a link on the way");
        assert!(!is_real_dir(root, Path::new("file")));
        assert!(!is_real_dir(root, Path::new("missing")));
        assert!(!is_real_dir(root, Path::new("data/../data")), "only plain names");
    }
}
