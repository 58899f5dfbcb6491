//! What interrupted saves leave next to a model folder and inside it, by name; read-only.
//!
//! Writers (`commit.rs`, under the model's lock) create these names and repair what they find;
//! readers (`validate.rs`) only look them up, to report a model folder that an interrupted save
//! left missing.
//!
//! # Folders next to the model `<parent>/<name>`
//! `.<name>.pmf-<kind>-<suffix>` (`fsutil::unique_suffix`), where kind is
//! - `save`: a staging tree being built (removed by the next writer);
//! - `new`: a complete staging tree about to replace the model (only without an atomic
//!   exchange, see `commit.rs`);
//! - `old`: the replaced model, being removed.
//!
//! # Leftovers inside the model
//! - temporary files `.<file>.pmf-tmp-<suffix>` of interrupted writes ([`fsutil`]);
//! - journals `data/checkpoints/.pmf-append-<suffix>` of interrupted in-place saves
//!   (`save/append.rs`), naming the checkpoint files they created.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fsutil;

/// The name of a folder PMF keeps next to the model folder `name` during a save (see the
/// module documentation).
pub(crate) fn sibling_name(name: &OsStr, kind: &str, suffix: &str) -> OsString {
    let mut n = OsString::from(".");
    n.push(name);
    n.push(format!(".pmf-{kind}-"));
    n.push(suffix);
    n
}

/// Whether `entry` is a sibling folder of kind `kind` of the model folder `name`: the exact
/// prefix, then a suffix of the form [`fsutil::unique_suffix`] makes (so that a model named
/// `a.pmf-save-1` is never mistaken for a staging folder of `a`).
pub(crate) fn is_sibling_of(entry: &OsStr, name: &OsStr, kind: &str) -> bool {
    let prefix = sibling_name(name, kind, "");
    let Some(rest) = entry.as_bytes().strip_prefix(prefix.as_bytes()) else { return false };
    fsutil::is_unique_suffix(rest)
}

/// A new staging folder path for the model folder `name` in `parent`.
pub(crate) fn staging_path(parent: &Path, name: &OsStr) -> PathBuf {
    parent.join(sibling_name(name, "save", &fsutil::unique_suffix()))
}

/// The parent folder of `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The sibling folders of kind `kind` of the model folder at `path`, sorted.
fn siblings(path: &Path, kind: &str) -> Vec<PathBuf> {
    let Some(name) = path.file_name() else { return Vec::new() };
    let Ok(entries) = fs::read_dir(parent_of(path)) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false) && is_sibling_of(&e.file_name(), name, kind))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// When the model folder `path` is missing because a save was interrupted between the two
/// renames of a commit (`commit.rs`): the tree to put in place, the complete new one or else the old one.
/// Read-only (lists the parent folder): readers call it to report the state.
pub(crate) fn interrupted_commit(path: &Path) -> Option<PathBuf> {
    if fs::symlink_metadata(path).is_ok() {
        return None;
    }
    siblings(path, "new").pop().or_else(|| siblings(path, "old").pop())
}
