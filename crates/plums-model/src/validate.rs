//! Validation of a model folder: the tree checks of PMF-SPEC section 3, on top of the metadata
//! checks of [`crate::metadata`], reporting every offence at once.
//!
//! The folder is walked once without following links (special files are offences and are never
//! opened); every metadata path is confined to the model root (`paths.rs`); YAML files are read
//! by `yaml_file.rs`; strict mode hashes all files that have a recorded checksum in parallel.
//!
//! Validation only reads: it never creates, renames or removes anything. A model folder missing
//! because a save was interrupted between its two renames is reported
//! ([`Error::InterruptedSave`], found by `leftovers::interrupted_commit`, which only lists the
//! parent); the other leftovers of interrupted saves (staging folders next to the model,
//! temporary files and append journals inside it) are extra files that validation ignores.

use std::collections::HashMap;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Md5;
use crate::error::{Error, Offence, Report, Result};
use crate::hash::md5_file_sized;
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::paths::{relative_inside, Entry, Root};
use crate::reference::Reference;
use crate::yaml::{Limits, Value};
use crate::yaml_file::YamlFile;

/// How to validate a model.
///
/// ```
/// use plums_model::ValidateOptions;
/// let options = ValidateOptions::new().strict(true).checkpoints(false);
/// assert!(options.strict && !options.checkpoints);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ValidateOptions {
    /// Compare MD5 checksums of the configuration, checkpoints and initialisation file with
    /// the files' contents.
    pub strict: bool,
    /// Check that the registered checkpoint files exist (and, when strict, their checksums).
    pub checkpoints: bool,
    /// Accept symbolic links that point outside the model root (only for trusted models).
    pub allow_external_links: bool,
    /// Bounds on the YAML files.
    pub limits: Limits,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { strict: false, checkpoints: true, allow_external_links: false, limits: Limits::default() }
    }
}

impl ValidateOptions {
    /// The defaults: not strict, checkpoint files required, no external links, default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compare every checksum with the file's content (default `false`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Require the registered checkpoint files (default `true`).
    pub fn checkpoints(mut self, checkpoints: bool) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Accept symbolic links that lead outside the model root (default `false`; trusted models only).
    pub fn allow_external_links(mut self, allow: bool) -> Self {
        self.allow_external_links = allow;
        self
    }

    /// Bounds on the YAML files.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A model folder that passed validation: its metadata, build parameters and, for a PMF
/// initialisation, the validated initialisation model.
#[derive(Debug, Clone)]
pub struct ValidatedModel {
    /// The model root, as given.
    pub root: PathBuf,
    /// The parsed metadata.
    pub metadata: Metadata,
    /// The parsed `data/build_parameters.yaml`.
    pub build_parameters: Value,
    /// The model in `data/initialisation/`, when there is one.
    pub initialisation: Option<Box<ValidatedModel>>,
    /// Whether the registered checkpoint files were checked to exist.
    pub checkpoints_checked: bool,
    /// The MD5 of the `metadata.yaml` bytes: identifies the saved state of the folder.
    pub metadata_digest: Md5,
}

/// The outcome of checking a folder: every offence, and the metadata if it could be parsed.
#[derive(Debug, Clone)]
pub struct Check {
    /// The metadata, when `metadata.yaml` parsed and passed its schema.
    pub metadata: Option<Metadata>,
    /// Every offence found; empty when the model is valid.
    pub offences: Vec<Offence>,
    validated: Option<ValidatedModel>,
}

impl Check {
    /// Whether the model is valid.
    pub fn is_valid(&self) -> bool {
        self.offences.is_empty()
    }

    /// The validated model, or the validation error with every offence.
    pub fn into_result(self, path: &Path) -> Result<ValidatedModel> {
        match self.validated {
            Some(v) if self.offences.is_empty() => Ok(v),
            _ => Err(Error::from_report(Report { path: path.to_path_buf(), offences: self.offences })),
        }
    }
}

/// Validate the model at `path` and return its metadata (the reference's `validate`).
///
/// A missing path is an [`Error::Io`]; an invalid model is an [`Error::TreeValidation`] or
/// [`Error::MetadataValidation`] whose report lists every offence.
///
/// ```no_run
/// use plums_model::{validate, ValidateOptions};
/// let metadata = validate("examples/detector", &ValidateOptions::new().strict(true))?;
/// println!("{} by {}", metadata.model.id, metadata.producer.name);
/// # Ok::<(), plums_model::Error>(())
/// ```
pub fn validate(path: impl AsRef<Path>, options: &ValidateOptions) -> Result<Metadata> {
    let path = path.as_ref();
    Ok(check(path, options)?.into_result(path)?.metadata)
}

/// Validate the model at `path` and return everything load needs.
pub fn validate_model(path: impl AsRef<Path>, options: &ValidateOptions) -> Result<ValidatedModel> {
    let path = path.as_ref();
    check(path, options)?.into_result(path)
}

/// Check the model at `path` and return every offence (an `Err` only when the path itself
/// cannot be examined: missing, unreadable, or missing because a save replacing it was
/// interrupted, an [`Error::InterruptedSave`]).
///
/// Checking only reads: it never creates, renames or removes anything, not even to finish an
/// interrupted save (the next writer does that, under the model's lock).
pub fn check(path: impl AsRef<Path>, options: &ValidateOptions) -> Result<Check> {
    let path = path.as_ref();
    // A save replaces the whole folder at once (a directory exchange): if that happened while we
    // read it, read again, so that a reader sees the old model or the new one, never a mix. The
    // folder we start from stays open during the read: an open directory keeps its inode, so
    // its number cannot be reused by the next save's new folder, and an unchanged (device,
    // inode) pair at the end proves that every path we read resolved inside that one folder.
    let mut attempts = 0;
    loop {
        let pinned = open_folder(path);
        let before = pinned.as_ref().and_then(|f| f.metadata().ok());
        let result = check_once(path, options);
        attempts += 1;
        let unchanged = match (&before, std::fs::metadata(path)) {
            (Some(before), Ok(after)) => crate::fsutil::same_inode(before, &after),
            _ => false,
        };
        if unchanged || pinned.is_none() || attempts == MAX_READ_ATTEMPTS {
            return result;
        }
    }
}

/// How many times [`check`] reads a folder that keeps being replaced by saves before it reports
/// what it saw last.
const MAX_READ_ATTEMPTS: u32 = 20;

/// Open `path` if it is a folder (never blocks: a FIFO given as the model path is not opened).
fn open_folder(path: &Path) -> Option<std::fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .ok()
}

fn check_once(path: &Path, options: &ValidateOptions) -> Result<Check> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            if let Some(leftover) = crate::leftovers::interrupted_commit(path) {
                return Err(Error::InterruptedSave { path: path.to_path_buf(), leftover });
            }
            return Err(Error::io(path, "cannot validate model", e));
        }
    };
    if !meta.is_dir() {
        return Ok(Check {
            metadata: None,
            offences: vec![Offence::tree(
                ".",
                format!("{} is not a folder: a PMF model is a folder holding metadata.yaml and data/", path.display()),
            )],
            validated: None,
        });
    }
    let root =
        Root::new(path, options.allow_external_links).map_err(|e| Error::io(path, "cannot resolve model path", e))?;
    let tree = Tree::scan(path)?;
    let mut ctx = Ctx { tree: &tree, options, offences: tree.special_offences(), hashes: Vec::new() };
    let validated = check_model(&mut ctx, &root, Path::new(""), options.checkpoints);
    let mut offences = ctx.offences;
    offences.extend(run_hashes(ctx.hashes));
    let metadata = validated.as_ref().map(|v| v.metadata.clone());
    Ok(Check { metadata, offences, validated })
}

/// One file walk of a model folder: the type of every entry, links not followed.
pub(crate) struct Tree {
    entries: HashMap<PathBuf, FileType>,
}

impl Tree {
    pub(crate) fn scan(root: &Path) -> Result<Tree> {
        let mut entries = HashMap::new();
        for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                    let io = e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed"));
                    return Err(Error::io(p, "cannot read model folder", io));
                }
            };
            if let Ok(rel) = item.path().strip_prefix(root) {
                entries.insert(rel.to_path_buf(), item.file_type());
            }
        }
        Ok(Tree { entries })
    }

    fn special_offences(&self) -> Vec<Offence> {
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

    /// The direct children of `dir`.
    fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = (&'a PathBuf, &'a FileType)> + 'a {
        self.entries.iter().filter(move |(p, _)| p.parent() == Some(dir))
    }
}

struct HashJob {
    path: PathBuf,
    expected: Md5,
    location: String,
    what: String,
}

struct Ctx<'a> {
    tree: &'a Tree,
    options: &'a ValidateOptions,
    offences: Vec<Offence>,
    hashes: Vec<HashJob>,
}

fn loc(prefix: &Path, rel: &Path) -> String {
    prefix.join(rel).display().to_string()
}

impl Ctx<'_> {
    /// What is at `rel` (relative to `root`, which is `prefix` inside the top-level root).
    fn lookup(&mut self, root: &Root, prefix: &Path, rel: &Path) -> Option<(PathBuf, Entry)> {
        let full = prefix.join(rel);
        match self.tree.entries.get(&full) {
            Some(t) if t.is_file() => return Some((root.given.join(rel), Entry::File)),
            Some(t) if t.is_dir() => return Some((root.given.join(rel), Entry::Dir)),
            Some(t) if !t.is_symlink() => return Some((root.given.join(rel), Entry::Other)),
            _ => {}
        }
        match root.resolve(rel, &full.display().to_string()) {
            Ok(found) => Some(found),
            Err(offence) => {
                self.offences.push(offence);
                None
            }
        }
    }

    /// In strict mode, remember to compare the checksum of `path` with `expected`.
    fn hash_later(&mut self, path: PathBuf, expected: Md5, location: String, what: String) {
        if self.options.strict {
            self.hashes.push(HashJob { path, expected, location, what });
        }
    }

    fn tree_offence(&mut self, location: String, message: String) {
        self.offences.push(Offence::tree(location, message));
    }

    /// Read a YAML file of the model (`yaml_file.rs`); its offences are recorded at `location`.
    fn read_yaml(&mut self, path: &Path, location: &str) -> Option<YamlFile> {
        match YamlFile::read(path, &self.options.limits) {
            Ok(file) => Some(file),
            Err(e) => {
                self.offences.push(e.offence(location));
                None
            }
        }
    }

    /// The YAML value of a file read by [`Ctx::read_yaml`].
    fn yaml_value(&mut self, file: &YamlFile, location: &str) -> Option<Value> {
        match file.value(&self.options.limits) {
            Ok(v) => Some(v),
            Err(e) => {
                self.offences.push(e.offence(location));
                None
            }
        }
    }

    fn require(&mut self, root: &Root, prefix: &Path, rel: &str, want: Entry, what: &str) -> bool {
        let rel = Path::new(rel);
        match self.lookup(root, prefix, rel) {
            Some((_, e)) if e == want => true,
            Some((_, Entry::Missing)) => {
                self.tree_offence(loc(prefix, rel), format!("is missing: a PMF model needs {what}"));
                false
            }
            Some(_) => {
                let expected = if want == Entry::Dir { "a folder" } else { "a file" };
                self.tree_offence(loc(prefix, rel), format!("is not {expected}: a PMF model needs {what}"));
                false
            }
            None => false,
        }
    }
}

fn metadata_prefix(prefix: &Path) -> String {
    if prefix.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}/metadata.yaml:", prefix.display())
    }
}

/// Check one model (the top-level one, or a nested initialisation at `prefix`).
fn check_model(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path, checkpoints: bool) -> Option<ValidatedModel> {
    let first_offence = ctx.offences.len();
    let metadata = check_metadata_file(ctx, root, prefix);
    let data = check_data_dir(ctx, root, prefix, checkpoints);
    let nested = if data.has_init_dir {
        check_initialisation(ctx, root, prefix, metadata.as_ref().map(|(m, _)| m))
    } else {
        None
    };
    let (metadata, metadata_digest) = metadata?;
    check_configuration(ctx, root, prefix, &metadata);
    if checkpoints && data.exists {
        check_checkpoints(ctx, root, prefix, &metadata);
    }
    if ctx.offences.len() > first_offence {
        return None;
    }
    Some(ValidatedModel {
        root: root.given.clone(),
        metadata,
        build_parameters: data.build_parameters.unwrap_or(Value::Null),
        initialisation: nested.map(Box::new),
        checkpoints_checked: checkpoints,
        metadata_digest,
    })
}

/// `metadata.yaml` of the model at `prefix`: its metadata (even with value offences, so that
/// the tree checks can run on it) and the digest of its bytes.
fn check_metadata_file(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path) -> Option<(Metadata, Md5)> {
    if !ctx.require(root, prefix, "metadata.yaml", Entry::File, "a metadata.yaml file") {
        return None;
    }
    let location = loc(prefix, Path::new("metadata.yaml"));
    let file = ctx.read_yaml(&root.given.join("metadata.yaml"), &location)?;
    let (metadata, offences) = match file.metadata(&ctx.options.limits) {
        Ok(parsed) => parsed,
        Err(e) => {
            ctx.offences.push(e.offence(&location));
            return None;
        }
    };
    let mp = metadata_prefix(prefix);
    ctx.offences.extend(offences.into_iter().map(|mut o| {
        if o.location.is_empty() {
            // A document-level offence: locate it at the file itself.
            o.location = location.clone();
            o
        } else {
            o.prefixed(&mp)
        }
    }));
    metadata.map(|m| (m, file.digest))
}

/// What [`check_data_dir`] found.
struct DataDir {
    exists: bool,
    has_init_dir: bool,
    build_parameters: Option<Value>,
}

/// `data/` of the model at `prefix`: the build parameters, the initialisation folder, and (when
/// `checkpoints`) a checkpoint folder holding no folder.
fn check_data_dir(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path, checkpoints: bool) -> DataDir {
    let mut data = DataDir { exists: false, has_init_dir: false, build_parameters: None };
    data.exists = ctx.require(root, prefix, "data", Entry::Dir, "a data/ folder");
    if !data.exists {
        return data;
    }
    if ctx.require(root, prefix, "data/build_parameters.yaml", Entry::File, "a data/build_parameters.yaml file") {
        let location = loc(prefix, Path::new("data/build_parameters.yaml"));
        if let Some(file) = ctx.read_yaml(&root.given.join("data/build_parameters.yaml"), &location) {
            data.build_parameters = ctx.yaml_value(&file, &location);
        }
    }
    data.has_init_dir = ctx.require(
        root,
        prefix,
        "data/initialisation",
        Entry::Dir,
        "a data/initialisation/ folder (empty when trained from scratch)",
    );
    if checkpoints && ctx.require(root, prefix, "data/checkpoints", Entry::Dir, "a data/checkpoints/ folder") {
        report_subfolders(
            ctx,
            &prefix.join("data/checkpoints"),
            "is a folder: data/checkpoints/ holds checkpoint files only",
        );
    }
    data
}

/// A tree offence `message` for each folder directly in `dir`.
fn report_subfolders(ctx: &mut Ctx<'_>, dir: &Path, message: &str) {
    let subdirs: Vec<String> =
        ctx.tree.children(dir).filter(|(_, t)| t.is_dir()).map(|(p, _)| p.display().to_string()).collect();
    for d in subdirs {
        ctx.tree_offence(d, message.to_owned());
    }
}

fn check_configuration(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path, metadata: &Metadata) {
    let text = &metadata.model.configuration.path;
    let mp = metadata_prefix(prefix);
    let rel = match relative_inside(text) {
        Ok(r) => r,
        Err(m) => return ctx.tree_offence(format!("{mp}model.configuration.path"), m),
    };
    if rel.components().count() != 1 {
        return ctx.tree_offence(
            format!("{mp}model.configuration.path"),
            format!("{text:?} is not a file name: the configuration file lies at the model root"),
        );
    }
    if rel.to_str().is_some_and(crate::paths::is_reserved_name) {
        return ctx.tree_offence(
            format!("{mp}model.configuration.path"),
            format!(
                "{text:?} is a name PMF reserves: the configuration cannot be {}",
                crate::paths::RESERVED_NAMES.join(", ")
            ),
        );
    }
    match ctx.lookup(root, prefix, &rel) {
        Some((path, Entry::File)) => {
            ctx.hash_later(path, metadata.model.configuration.hash, loc(prefix, &rel), "configuration file".into())
        }
        Some((_, Entry::Missing)) => ctx.tree_offence(
            loc(prefix, &rel),
            "is missing: the configuration file named in model.configuration.path must be at the model root".to_owned(),
        ),
        Some(_) => ctx.tree_offence(
            loc(prefix, &rel),
            "is not a file: expected the configuration file named in model.configuration.path".to_owned(),
        ),
        None => {}
    }
}

fn check_checkpoints(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path, metadata: &Metadata) {
    let mp = metadata_prefix(prefix);
    let mut by_file: HashMap<PathBuf, (String, Md5)> = HashMap::new();
    for (reference, entry) in &metadata.model.training.checkpoints {
        let key = format!("{mp}model.training.checkpoints.{reference}.path");
        let rel = match relative_inside(&entry.path) {
            Ok(r) => r,
            Err(m) => {
                ctx.tree_offence(key, m);
                continue;
            }
        };
        if rel.parent() != Some(Path::new("data/checkpoints")) {
            ctx.tree_offence(
                key,
                format!("{:?} is not in data/checkpoints/: expected data/checkpoints/<file name>", entry.path),
            );
            continue;
        }
        if let Some((other, hash)) = by_file.get(&rel) {
            if *hash != entry.hash {
                ctx.tree_offence(
                    key,
                    format!(
                        "checkpoints {} and {} share the file {} but record different checksums",
                        other,
                        reference.quoted(),
                        rel.display()
                    ),
                );
            }
            continue;
        }
        by_file.insert(rel.clone(), (reference.quoted(), entry.hash));
        match ctx.lookup(root, prefix, &rel) {
            Some((path, Entry::File)) => {
                ctx.hash_later(path, entry.hash, loc(prefix, &rel), format!("checkpoint {}", reference.quoted()))
            }
            Some((_, Entry::Missing)) => ctx.tree_offence(
                loc(prefix, &rel),
                format!("is missing: checkpoint {} is registered with this file", reference.quoted()),
            ),
            Some(_) => ctx.tree_offence(
                loc(prefix, &rel),
                format!("is not a file: checkpoint {} is registered with this file", reference.quoted()),
            ),
            None => {}
        }
    }
}

/// `data/initialisation/` of the model at `prefix`: a nested PMF model or at most one weight
/// file, matching what the metadata declares. Returns the validated nested model.
fn check_initialisation(
    ctx: &mut Ctx<'_>,
    root: &Root,
    prefix: &Path,
    metadata: Option<&Metadata>,
) -> Option<ValidatedModel> {
    let init_rel = Path::new("data/initialisation");
    let init_dir = prefix.join(init_rel);
    let has_pmf = matches!(ctx.lookup(root, prefix, &init_rel.join("metadata.yaml")), Some((_, Entry::File)));
    let nested = if has_pmf {
        check_model(ctx, &root.child(init_rel), &init_dir, false)
    } else {
        report_subfolders(
            ctx,
            &init_dir,
            "is a folder: without a metadata.yaml, data/initialisation/ holds one weight file only",
        );
        None
    };
    let mp = metadata_prefix(prefix);
    match metadata.and_then(|m| m.model.initialisation.as_ref()) {
        Some(InitialisationMetadata::Pmf { id, checkpoint, path, .. }) => {
            if let Err(m) = relative_inside(path) {
                ctx.tree_offence(format!("{mp}model.initialisation.pmf.path"), m);
            }
            if !has_pmf {
                ctx.tree_offence(
                    init_dir.display().to_string(),
                    "holds no metadata.yaml: model.initialisation says the model was initialised from a PMF model"
                        .to_owned(),
                );
            } else if let Some(n) = &nested {
                check_pmf_initialisation(ctx, &mp, n, id, checkpoint);
            }
        }
        Some(InitialisationMetadata::File { path, hash, .. }) => {
            if has_pmf {
                ctx.tree_offence(init_dir.display().to_string(), "holds a PMF model (metadata.yaml): model.initialisation says the model was initialised from a weight file".to_owned());
            } else {
                check_file_initialisation(ctx, root, prefix, path, *hash);
            }
        }
        None => {}
    }
    nested
}

/// The nested model `n` is the one the metadata declares (`id`) and registers `checkpoint`.
fn check_pmf_initialisation(ctx: &mut Ctx<'_>, mp: &str, n: &ValidatedModel, id: &str, checkpoint: &Reference) {
    if !n.metadata.model.training.checkpoints.contains_key(checkpoint) {
        ctx.tree_offence(
            format!("{mp}model.initialisation.pmf.checkpoint"),
            format!(
                "checkpoint {} is not registered in the initialisation model (data/initialisation/metadata.yaml)",
                checkpoint.quoted()
            ),
        );
    }
    if n.metadata.model.id != id {
        ctx.tree_offence(
            format!("{mp}model.initialisation.pmf.id"),
            format!("{id:?} differs from the id of the model in data/initialisation ({:?})", n.metadata.model.id),
        );
    }
}

/// The weight file the metadata declares (`path`, with checksum `hash`) is in
/// `data/initialisation/`.
fn check_file_initialisation(ctx: &mut Ctx<'_>, root: &Root, prefix: &Path, path: &str, hash: Md5) {
    let key = format!("{}model.initialisation.file.path", metadata_prefix(prefix));
    let rel = match relative_inside(path) {
        Err(m) => return ctx.tree_offence(key, m),
        Ok(rel) if rel.parent() != Some(Path::new("data/initialisation")) => {
            return ctx.tree_offence(
                key,
                format!("{path:?} is not in data/initialisation/: expected data/initialisation/<file name>"),
            )
        }
        Ok(rel) => rel,
    };
    match ctx.lookup(root, prefix, &rel) {
        Some((p, Entry::File)) => ctx.hash_later(p, hash, loc(prefix, &rel), "initialisation file".into()),
        Some((_, Entry::Missing)) => {
            ctx.tree_offence(loc(prefix, &rel), "is missing: model.initialisation names this weight file".to_owned())
        }
        Some(_) => {
            ctx.tree_offence(loc(prefix, &rel), "is not a file: model.initialisation names this weight file".to_owned())
        }
        None => {}
    }
}

/// Hash every job in parallel and report mismatches, largest files first for balance.
fn run_hashes(mut jobs: Vec<HashJob>) -> Vec<Offence> {
    jobs.sort_by_cached_key(|j| std::cmp::Reverse(std::fs::metadata(&j.path).map(|m| m.len()).unwrap_or(0)));
    let mut out: Vec<(usize, Offence)> = jobs
        .par_iter()
        .enumerate()
        .with_max_len(1)
        .filter_map(|(i, job)| match md5_file_sized(&job.path) {
            Ok((found, _)) if found == job.expected => None,
            Ok((found, _)) => Some((
                i,
                Offence::tree(
                    job.location.clone(),
                    format!(
                        "{} checksum mismatch: metadata records {}, the file's MD5 is {found}",
                        job.what, job.expected
                    ),
                ),
            )),
            Err(e) => Some((i, Offence::tree(job.location.clone(), format!("{} cannot be hashed: {e}", job.what)))),
        })
        .collect();
    out.sort_by(|a, b| a.1.location.cmp(&b.1.location));
    out.into_iter().map(|(_, o)| o).collect()
}
