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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Md5;
use crate::error::{Error, Offence, Report, Result, StorageErrorKind};
use crate::files::{HashJob, LocalFiles, ModelFiles};
use crate::hash::Progress;
use crate::location::{Location, ObjectUrl};
use crate::metadata::{InitialisationMetadata, Metadata};
use crate::object_files::ObjectFiles;
use crate::paths::{relative_inside, Entry, Root};
use crate::reference::Reference;
use crate::storage::{Remote, StorageOptions};
use crate::yaml::{Limits, Value};
use crate::yaml_file::{ReadError, YamlFile};

/// How to validate a model.
///
/// ```
/// use plums_model::ValidateOptions;
/// let options = ValidateOptions::new().strict(true).checkpoints(false);
/// assert!(options.strict && !options.checkpoints);
/// ```
#[derive(Clone)]
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
    /// How to reach an object store, for a remote location (unused for a local one).
    pub storage: StorageOptions,
    /// Told of the bytes strict validation hashes (and downloads), if set ([`Progress`]).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            strict: false,
            checkpoints: true,
            allow_external_links: false,
            limits: Limits::default(),
            storage: StorageOptions::default(),
            progress: None,
        }
    }
}

impl std::fmt::Debug for ValidateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateOptions")
            .field("strict", &self.strict)
            .field("checkpoints", &self.checkpoints)
            .field("allow_external_links", &self.allow_external_links)
            .field("limits", &self.limits)
            .field("storage", &self.storage)
            .field("progress", &self.progress.as_ref().map(|_| "<observer>"))
            .finish()
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

    /// Reach object stores with these options (over the environment).
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.storage = storage;
        self
    }

    /// Tell `progress` of the bytes strict validation hashes: [`Progress::start`] with the sum
    /// of the sizes of the files to hash, then [`Progress::advance`] per chunk (default none;
    /// nothing is counted without one).
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
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
    /// For a model on object storage: the size of every object the listing gave, by path
    /// relative to this model's root (`data/checkpoints/3.pt`). Empty for a folder, whose
    /// files' sizes are on disk.
    pub listed_sizes: Arc<HashMap<String, u64>>,
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

/// Check the model at `location` (a local folder, as [`check`], or an object-store prefix) and
/// return every offence.
///
/// For an object store: one listing of the prefix gives every key with its size and ETag, and
/// the tree checks run on it with the same rules and offences as on disk (folders exist through
/// the keys under them; `data/initialisation/` and `data/checkpoints/`, which may be empty, are
/// present when `data/` is). `metadata.yaml` and `data/build_parameters.yaml` are refused
/// before download when the listing says they are over the size limit. Strict mode fetches every
/// file with a checksum into the local cache ([`crate::Cache`]), verifying it while it streams,
/// and reuses what the cache verified while the object's ETag and size are unchanged. Nothing
/// outside the model's prefix is ever read. A prefix with no object, or a store that fails, is
/// an [`Error::Storage`].
pub fn check_at(location: &Location, options: &ValidateOptions) -> Result<Check> {
    match location {
        Location::Local(path) => check(path, options),
        Location::Object(url) => Ok(check_remote(url, options)?.0),
    }
}

/// Check the model at the object-store URL `url`, returning what was listed and verified too.
pub(crate) fn check_remote(url: &ObjectUrl, options: &ValidateOptions) -> Result<(Check, ObjectFiles)> {
    let remote = Remote::new(url, &options.storage)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let files = ObjectFiles::list(remote.clone())?;
        let failure = match check_files(&files, options) {
            // An object replaced since the listing (downloads are conditional on its ETag).
            Err(e) if e.storage_kind() == Some(StorageErrorKind::PreconditionFailed) => e,
            Err(e) => return Err(e),
            Ok(check) if !files.changed_since_listing()? => return Ok((check, files)),
            Ok(_) => Error::Storage {
                location: url.to_string(),
                operation: "cannot read the model".to_owned(),
                kind: StorageErrorKind::PreconditionFailed,
                message: format!(
                    "the model changed while it was read, {attempt} times in a row (saves keep replacing it)"
                ),
            },
        };
        if attempt >= MAX_READ_ATTEMPTS {
            return Err(failure);
        }
    }
}

/// Validate the model at `location` and return its metadata (see [`check_at`]).
pub fn validate_at(location: &Location, options: &ValidateOptions) -> Result<Metadata> {
    Ok(validate_model_at(location, options)?.metadata)
}

/// Validate the model at `location` and return everything load needs (see [`check_at`]); for
/// a remote model, `root` is its URL.
pub fn validate_model_at(location: &Location, options: &ValidateOptions) -> Result<ValidatedModel> {
    match location {
        Location::Local(path) => validate_model(path, options),
        Location::Object(url) => {
            let (check, files) = check_remote(url, options)?;
            let mut validated = check.into_result(Path::new(&url.to_string()))?;
            let mut level = Some(&mut validated);
            let mut prefix = String::new();
            while let Some(v) = level {
                v.listed_sizes = Arc::new(files.sizes_under(&prefix));
                prefix = format!("{prefix}data/initialisation/");
                level = v.initialisation.as_deref_mut();
            }
            Ok(validated)
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
    check_files(&LocalFiles::scan(root)?, options)
}

/// Check the model whose files are `files` (a folder or an object-store prefix): the same rules.
pub(crate) fn check_files<F: ModelFiles>(files: &F, options: &ValidateOptions) -> Result<Check> {
    let mut ctx = Ctx { files, options, offences: files.tree_offences(), hashes: Vec::new(), failure: None };
    let validated = check_model(&mut ctx, Path::new(""), options.checkpoints);
    if let Some(e) = ctx.failure {
        return Err(e);
    }
    let mut offences = ctx.offences;
    let mut mismatches = files.check_hashes(ctx.hashes, options.progress.as_deref())?;
    mismatches.sort_by(|a, b| a.location.cmp(&b.location));
    offences.extend(mismatches);
    let metadata = validated.as_ref().map(|v| v.metadata.clone());
    Ok(Check { metadata, offences, validated })
}

struct Ctx<'a, F: ModelFiles> {
    files: &'a F,
    options: &'a ValidateOptions,
    offences: Vec<Offence>,
    hashes: Vec<HashJob<F::File>>,
    /// The first failure of the store holding the files (the check fails with it).
    failure: Option<Error>,
}

fn loc(prefix: &Path, rel: &Path) -> String {
    prefix.join(rel).display().to_string()
}

impl<F: ModelFiles> Ctx<'_, F> {
    /// What is at `rel` in the model at `prefix` (inside the top-level root).
    fn lookup(&mut self, prefix: &Path, rel: &Path) -> Option<(F::File, Entry)> {
        match self.files.lookup(prefix, rel) {
            Ok(found) => Some(found),
            Err(offence) => {
                self.offences.push(offence);
                None
            }
        }
    }

    /// In strict mode, remember to compare the checksum of `path` with `expected`; `describe`
    /// gives the job's location and what the file is (only called in strict mode: listing
    /// thousands of models quickly makes none of these strings).
    fn hash_later(&mut self, file: F::File, expected: Md5, describe: impl FnOnce() -> (String, String)) {
        if self.options.strict {
            let (location, what) = describe();
            self.hashes.push(HashJob { file, expected, location, what });
        }
    }

    fn tree_offence(&mut self, location: String, message: String) {
        self.offences.push(Offence::tree(location, message));
    }

    /// Read a YAML file of the model (`yaml_file.rs`); its offences are recorded at `location`.
    fn read_yaml(&mut self, file: &F::File, location: &str) -> Option<YamlFile> {
        match self.files.read_yaml(file, &self.options.limits) {
            Ok(file) => Some(file),
            Err(ReadError::Store(e)) => {
                self.failure.get_or_insert(*e);
                None
            }
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

    /// What is at `rel` if it is a `want`; else a tree offence saying the model needs `what`.
    fn require(&mut self, prefix: &Path, rel: &str, want: Entry, what: &str) -> Option<F::File> {
        let rel = Path::new(rel);
        match self.lookup(prefix, rel) {
            Some((file, e)) if e == want => Some(file),
            // An object store has no empty folders: the folders that may be empty are present
            // when their parent (`data/`, required first) is.
            Some((file, Entry::Missing))
                if want == Entry::Dir
                    && self.files.implicit_folders()
                    && MAY_BE_EMPTY.iter().any(|d| rel == Path::new(d)) =>
            {
                Some(file)
            }
            Some((_, Entry::Missing)) => {
                self.tree_offence(loc(prefix, rel), format!("is missing: a PMF model needs {what}"));
                None
            }
            Some(_) => {
                let expected = if want == Entry::Dir { "a folder" } else { "a file" };
                self.tree_offence(loc(prefix, rel), format!("is not {expected}: a PMF model needs {what}"));
                None
            }
            None => None,
        }
    }
}

/// The required folders that may be empty (taken as present on an object store when `data/` is).
const MAY_BE_EMPTY: [&str; 2] = ["data/initialisation", "data/checkpoints"];

fn metadata_prefix(prefix: &Path) -> String {
    if prefix.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}/metadata.yaml:", prefix.display())
    }
}

/// Check one model (the top-level one, or a nested initialisation at `prefix`).
fn check_model<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path, checkpoints: bool) -> Option<ValidatedModel> {
    let first_offence = ctx.offences.len();
    let metadata = check_metadata_file(ctx, prefix);
    let data = check_data_dir(ctx, prefix, checkpoints);
    let nested =
        if data.has_init_dir { check_initialisation(ctx, prefix, metadata.as_ref().map(|(m, _)| m)) } else { None };
    let (metadata, metadata_digest) = metadata?;
    check_configuration(ctx, prefix, &metadata);
    if checkpoints && data.exists {
        check_checkpoints(ctx, prefix, &metadata);
    }
    if ctx.offences.len() > first_offence {
        return None;
    }
    Some(ValidatedModel {
        listed_sizes: Arc::default(),
        root: ctx.files.root_of(prefix),
        metadata,
        build_parameters: data.build_parameters.unwrap_or(Value::Null),
        initialisation: nested.map(Box::new),
        checkpoints_checked: checkpoints,
        metadata_digest,
    })
}

/// `metadata.yaml` of the model at `prefix`: its metadata (even with value offences, so that
/// the tree checks can run on it) and the digest of its bytes.
fn check_metadata_file<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path) -> Option<(Metadata, Md5)> {
    let found = ctx.require(prefix, "metadata.yaml", Entry::File, "a metadata.yaml file")?;
    let location = loc(prefix, Path::new("metadata.yaml"));
    let file = ctx.read_yaml(&found, &location)?;
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
fn check_data_dir<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path, checkpoints: bool) -> DataDir {
    let mut data = DataDir { exists: false, has_init_dir: false, build_parameters: None };
    data.exists = ctx.require(prefix, "data", Entry::Dir, "a data/ folder").is_some();
    if !data.exists {
        return data;
    }
    if let Some(found) =
        ctx.require(prefix, "data/build_parameters.yaml", Entry::File, "a data/build_parameters.yaml file")
    {
        let location = loc(prefix, Path::new("data/build_parameters.yaml"));
        if let Some(file) = ctx.read_yaml(&found, &location) {
            data.build_parameters = ctx.yaml_value(&file, &location);
        }
    }
    data.has_init_dir = ctx
        .require(
            prefix,
            "data/initialisation",
            Entry::Dir,
            "a data/initialisation/ folder (empty when trained from scratch)",
        )
        .is_some();
    if checkpoints && ctx.require(prefix, "data/checkpoints", Entry::Dir, "a data/checkpoints/ folder").is_some() {
        report_subfolders(
            ctx,
            &prefix.join("data/checkpoints"),
            "is a folder: data/checkpoints/ holds checkpoint files only",
        );
    }
    data
}

/// A tree offence `message` for each folder directly in `dir`.
fn report_subfolders<F: ModelFiles>(ctx: &mut Ctx<'_, F>, dir: &Path, message: &str) {
    for d in ctx.files.subfolders(dir) {
        ctx.tree_offence(d, message.to_owned());
    }
}

fn check_configuration<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path, metadata: &Metadata) {
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
    match ctx.lookup(prefix, &rel) {
        Some((path, Entry::File)) => {
            ctx.hash_later(path, metadata.model.configuration.hash, || (loc(prefix, &rel), "configuration file".into()))
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

fn check_checkpoints<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path, metadata: &Metadata) {
    let mp = metadata_prefix(prefix);
    let mut by_file: HashMap<PathBuf, (&Reference, Md5)> = HashMap::new();
    for (reference, entry) in &metadata.model.training.checkpoints {
        // Made only for an offence (the common case has none).
        let key = || format!("{mp}model.training.checkpoints.{reference}.path");
        let rel = match relative_inside(&entry.path) {
            Ok(r) => r,
            Err(m) => {
                ctx.tree_offence(key(), m);
                continue;
            }
        };
        if rel.parent() != Some(Path::new("data/checkpoints")) {
            ctx.tree_offence(
                key(),
                format!("{:?} is not in data/checkpoints/: expected data/checkpoints/<file name>", entry.path),
            );
            continue;
        }
        if let Some((other, hash)) = by_file.get(&rel) {
            if *hash != entry.hash {
                ctx.tree_offence(
                    key(),
                    format!(
                        "checkpoints {} and {} share the file {} but record different checksums",
                        other.quoted(),
                        reference.quoted(),
                        rel.display()
                    ),
                );
            }
            continue;
        }
        by_file.insert(rel.clone(), (reference, entry.hash));
        match ctx.lookup(prefix, &rel) {
            Some((path, Entry::File)) => {
                ctx.hash_later(path, entry.hash, || (loc(prefix, &rel), format!("checkpoint {}", reference.quoted())))
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
fn check_initialisation<F: ModelFiles>(
    ctx: &mut Ctx<'_, F>,
    prefix: &Path,
    metadata: Option<&Metadata>,
) -> Option<ValidatedModel> {
    let init_rel = Path::new("data/initialisation");
    let init_dir = prefix.join(init_rel);
    let has_pmf = matches!(ctx.lookup(prefix, &init_rel.join("metadata.yaml")), Some((_, Entry::File)));
    let nested = if has_pmf {
        check_model(ctx, &init_dir, false)
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
                check_file_initialisation(ctx, prefix, path, *hash);
            }
        }
        None => {}
    }
    nested
}

/// The nested model `n` is the one the metadata declares (`id`) and registers `checkpoint`.
fn check_pmf_initialisation<F: ModelFiles>(
    ctx: &mut Ctx<'_, F>,
    mp: &str,
    n: &ValidatedModel,
    id: &str,
    checkpoint: &Reference,
) {
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
fn check_file_initialisation<F: ModelFiles>(ctx: &mut Ctx<'_, F>, prefix: &Path, path: &str, hash: Md5) {
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
    match ctx.lookup(prefix, &rel) {
        Some((p, Entry::File)) => ctx.hash_later(p, hash, || (loc(prefix, &rel), "initialisation file".into())),
        Some((_, Entry::Missing)) => {
            ctx.tree_offence(loc(prefix, &rel), "is missing: model.initialisation names this weight file".to_owned())
        }
        Some(_) => {
            ctx.tree_offence(loc(prefix, &rel), "is not a file: model.initialisation names this weight file".to_owned())
        }
        None => {}
    }
}
