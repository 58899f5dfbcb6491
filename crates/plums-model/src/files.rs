//! What validation reads of a model, whatever holds it: what is at a relative path, the
//! folders in a folder, a small YAML file, and the checksums of files. [`ModelFiles`] is the
//! interface; [`LocalFiles`] is a folder on disk (one walk, links confined by `paths.rs`), and
//! `object_files.rs` a prefix in an object store (one listing). `validate.rs` applies the same
//! rules to both.
//!
//! Read-only.

use std::collections::HashMap;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Md5;
use crate::error::{Error, Offence, Result};
use crate::hash::{md5_file_observed, Progress};
use crate::paths::{Entry, Root};
use crate::yaml::Limits;
use crate::yaml_file::{ReadError, YamlFile};

/// A checksum to compare with a file's content (strict validation).
pub(crate) struct HashJob<F> {
    pub file: F,
    pub expected: Md5,
    /// Where to report a mismatch (the file's path in the model).
    pub location: String,
    /// What the file is (`checkpoint 3`, `configuration file`).
    pub what: String,
}

impl<F> HashJob<F> {
    /// The offence of a file whose MD5 is `found`.
    pub(crate) fn mismatch(&self, found: Md5) -> Offence {
        Offence::tree(
            self.location.clone(),
            format!("{} checksum mismatch: metadata records {}, the file's MD5 is {found}", self.what, self.expected),
        )
    }
}

/// The files of a model, as validation reads them. Paths are relative: `prefix` is where a
/// nested model lies inside the validated one (empty for the top-level model).
pub(crate) trait ModelFiles {
    /// A file found by [`ModelFiles::lookup`], to read or hash.
    type File: Send + Sync;

    /// What is at `rel` in the model at `prefix`; `Err` is a tree offence (a link leading out
    /// of the model, a link loop).
    fn lookup(&self, prefix: &Path, rel: &Path) -> std::result::Result<(Self::File, Entry), Offence>;

    /// The folders directly in the folder `dir` (relative to the top-level model), sorted.
    fn subfolders(&self, dir: &Path) -> Vec<String>;

    /// Offences about the whole tree (special files).
    fn tree_offences(&self) -> Vec<Offence>;

    /// Read the YAML file `file` within `limits`.
    fn read_yaml(&self, file: &Self::File, limits: &Limits) -> std::result::Result<YamlFile, ReadError>;

    /// Compare every job's checksum with its file's content; the mismatches as offences. An
    /// `Err` when the files cannot be obtained at all (a store that fails). `progress`, when
    /// given and there is a job, is started with the sum of the files' sizes and told of every
    /// chunk hashed.
    fn check_hashes(&self, jobs: Vec<HashJob<Self::File>>, progress: Option<&dyn Progress>) -> Result<Vec<Offence>>;

    /// The root of the model at `prefix`, as a path (a URL for an object store).
    fn root_of(&self, prefix: &Path) -> PathBuf;

    /// Whether folders exist only through what they hold (object stores): then a required
    /// folder that may be empty is present when its parent is.
    fn implicit_folders(&self) -> bool {
        false
    }
}

/// A model folder on disk: one walk of the tree, links not followed (special files are
/// offences, never opened), metadata paths confined by [`Root::resolve`].
pub(crate) struct LocalFiles {
    root: Root,
    entries: HashMap<PathBuf, FileType>,
}

impl LocalFiles {
    pub(crate) fn scan(root: Root) -> Result<LocalFiles> {
        let mut entries = HashMap::new();
        for item in walkdir::WalkDir::new(&root.given).follow_links(false).min_depth(1) {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.given.clone());
                    let io = e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed"));
                    return Err(Error::io(p, "cannot read model folder", io));
                }
            };
            if let Ok(rel) = item.path().strip_prefix(&root.given) {
                entries.insert(rel.to_path_buf(), item.file_type());
            }
        }
        Ok(LocalFiles { root, entries })
    }
}

impl ModelFiles for LocalFiles {
    type File = PathBuf;

    fn lookup(&self, prefix: &Path, rel: &Path) -> std::result::Result<(PathBuf, Entry), Offence> {
        let full = prefix.join(rel);
        let given = || self.root.given.join(&full);
        match self.entries.get(&full) {
            Some(t) if t.is_file() => return Ok((given(), Entry::File)),
            Some(t) if t.is_dir() => return Ok((given(), Entry::Dir)),
            Some(t) if !t.is_symlink() => return Ok((given(), Entry::Other)),
            _ => {}
        }
        self.root.child(prefix).resolve(rel, &full.display().to_string())
    }

    fn subfolders(&self, dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|(p, t)| t.is_dir() && p.parent() == Some(dir))
            .map(|(p, _)| p.display().to_string())
            .collect();
        out.sort();
        out
    }

    fn tree_offences(&self) -> Vec<Offence> {
        let mut out: Vec<Offence> = self
            .entries
            .iter()
            .filter_map(|(p, t)| {
                let what = if t.is_fifo() {
                    "a FIFO"
                } else if t.is_socket() {
                    "a socket"
                } else if t.is_block_device() || t.is_char_device() {
                    "a device"
                } else {
                    return None;
                };
                Some(Offence::tree(
                    p.display().to_string(),
                    format!("is {what}: special files are not allowed in a model (never opened)"),
                ))
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out
    }

    fn read_yaml(&self, file: &PathBuf, limits: &Limits) -> std::result::Result<YamlFile, ReadError> {
        YamlFile::read(file, limits)
    }

    /// Hash every job in parallel, largest files first for balance.
    fn check_hashes(&self, jobs: Vec<HashJob<PathBuf>>, progress: Option<&dyn Progress>) -> Result<Vec<Offence>> {
        let mut sized: Vec<(u64, HashJob<PathBuf>)> =
            jobs.into_iter().map(|j| (std::fs::metadata(&j.file).map(|m| m.len()).unwrap_or(0), j)).collect();
        sized.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        if let (Some(p), false) = (progress, sized.is_empty()) {
            p.start(sized.iter().map(|(size, _)| size).sum());
        }
        Ok(sized
            .par_iter()
            .with_max_len(1)
            .filter_map(|(_, job)| match md5_file_observed(&job.file, progress) {
                Ok((found, _)) if found == job.expected => None,
                Ok((found, _)) => Some(job.mismatch(found)),
                Err(e) => Some(Offence::tree(job.location.clone(), format!("{} cannot be hashed: {e}", job.what))),
            })
            .collect())
    }

    fn root_of(&self, prefix: &Path) -> PathBuf {
        self.root.given.join(prefix)
    }
}
