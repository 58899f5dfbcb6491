//! The one error type of the crate, the offences that validation reports, and the reasons a
//! save refuses a model.
//!
//! Every refusal that a caller handles differently is its own variant of [`Error`], with what
//! went wrong as data (paths, references, offences, the lock holder); callers branch on the
//! variant and read the data through its fields or the accessors, never by parsing messages.
//! [`Error::category`] says which exception of the reference API a variant stands for.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::digest::Md5;
use crate::reference::Reference;
use crate::status::Status;

/// What a validation offence is about: the folder layout and files, or the metadata content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OffenceKind {
    /// A file or folder is missing, misplaced, of the wrong type, unsafe, or has the wrong checksum.
    Tree,
    /// `metadata.yaml` (or `data/build_parameters.yaml`) does not parse or breaks a schema rule.
    Metadata,
}

impl OffenceKind {
    /// `"tree"` or `"metadata"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffenceKind::Tree => "tree",
            OffenceKind::Metadata => "metadata",
        }
    }
}

impl fmt::Display for OffenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a model: its kind, where it is, and what is wrong and expected.
///
/// `location` is a file path relative to the validated root (`data/checkpoints/3.pt`) or a
/// key path in the metadata (`model.training.latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Offence {
    /// Tree or metadata.
    pub kind: OffenceKind,
    /// Where: a relative file path or a dotted metadata key path.
    pub location: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Offence {
    /// A tree offence.
    pub fn tree(location: impl Into<String>, message: impl Into<String>) -> Self {
        Offence { kind: OffenceKind::Tree, location: location.into(), message: message.into() }
    }

    /// A metadata offence.
    pub fn metadata(location: impl Into<String>, message: impl Into<String>) -> Self {
        Offence { kind: OffenceKind::Metadata, location: location.into(), message: message.into() }
    }

    /// The same offence, with its location placed under `prefix` (for nested models).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.location = if self.location.is_empty() || self.location == "." {
                prefix.trim_end_matches('/').to_owned()
            } else {
                format!("{prefix}{}", self.location)
            };
        }
        self
    }
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.kind, self.location, self.message)
    }
}

/// Every offence found in one model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The validated model root.
    pub path: PathBuf,
    /// The offences, in the order they were found.
    pub offences: Vec<Offence>,
}

impl Report {
    /// The first line of the report: `<path> is not a valid PMF model (N offences)`.
    pub fn summary(&self) -> String {
        let n = self.offences.len();
        format!("{} is not a valid PMF model ({} offence{})", self.path.display(), n, plural(n))
    }

    /// Whether any offence is a metadata offence.
    pub fn has_metadata_offence(&self) -> bool {
        self.offences.iter().any(|o| o.kind == OffenceKind::Metadata)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        for offence in &self.offences {
            write!(f, "\n  {offence}")?;
        }
        Ok(())
    }
}

/// One reason a model cannot be saved as a valid PMF model (see [`Error::WouldNotValidate`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaveProblem {
    /// What the reason is about, as a key path of the model: `producer.name`,
    /// `training.end_epoch`, `checkpoints.3`, `initialisation`, or one of these under
    /// `initialisation.model.` for the initialisation model; for the written tree, the offence's
    /// location.
    pub location: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl SaveProblem {
    /// A reason at `location`.
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        SaveProblem { location: location.into(), message: message.into() }
    }
}

impl fmt::Display for SaveProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// One broken rule of a training record (PMF-SPEC section 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrainingOffence {
    /// The field the rule is about (`end_time`, `latest_epoch`, `status`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Who holds the writer lock of a model, as the holder recorded it in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockHolder {
    /// The holder's process id.
    pub pid: Option<u32>,
    /// The holder's host name.
    pub host: Option<String>,
    /// When it took the lock, in seconds since the Unix epoch.
    pub since: Option<u64>,
}

impl LockHolder {
    /// The holder recorded in a lock file's text (`pid <n> on <host> since unix time <t>`);
    /// unknown fields stay `None`.
    pub fn parse(text: &str) -> LockHolder {
        let words: Vec<&str> = text.split_whitespace().collect();
        let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
        LockHolder {
            pid: after("pid").and_then(|p| p.parse().ok()),
            host: after("on").map(str::to_owned),
            since: words.windows(3).find(|w| w[0] == "unix" && w[1] == "time").and_then(|w| w[2].parse().ok()),
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.host) {
            (Some(pid), Some(host)) => write!(f, "pid {pid} on {host}")?,
            (Some(pid), None) => write!(f, "pid {pid}")?,
            _ => f.write_str("an unknown process")?,
        }
        if let Some(since) = self.since {
            write!(f, " since unix time {since}")?;
        }
        Ok(())
    }
}

/// What kind of failure an object store reported ([`Error::Storage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// No object (or bucket) there.
    NotFound,
    /// The credentials are refused or lack the permission.
    PermissionDenied,
    /// A conditional request failed: the object changed since it was listed or read.
    PreconditionFailed,
    /// The store did not answer in time (after the retries).
    Timeout,
    /// The store cannot be configured from the options and environment given.
    Configuration,
    /// The store ignores conditional writes (`If-None-Match`, `If-Match`), which saves need
    /// to refuse lost updates; the storage option `conditional_writes=false` accepts that the
    /// last writer wins.
    NoConditionalWrites,
    /// Anything else (connection refused, server error after the retries, ...).
    Other,
}

impl StorageErrorKind {
    /// `not_found`, `permission_denied`, `precondition_failed`, `timeout`, `configuration`,
    /// `no_conditional_writes`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageErrorKind::NotFound => "not_found",
            StorageErrorKind::PermissionDenied => "permission_denied",
            StorageErrorKind::PreconditionFailed => "precondition_failed",
            StorageErrorKind::Timeout => "timeout",
            StorageErrorKind::NoConditionalWrites => "no_conditional_writes",
            StorageErrorKind::Configuration => "configuration",
            StorageErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which exception of the reference API an [`Error`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// `OSError` (or a subclass): the file system refused, or a path is not what is needed.
    Os,
    /// `ValueError`: an argument or a model that cannot be accepted.
    Value,
    /// `KeyError`: a checkpoint reference registered twice, or not registered.
    Key,
    /// `PlumsModelTreeValidationError` or `PlumsModelMetadataValidationError`.
    Validation,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| format!("\n  - {i}")).collect()
}

fn references(refs: &[Reference]) -> String {
    if refs.is_empty() {
        "none".to_owned()
    } else {
        refs.iter().map(Reference::quoted).collect::<Vec<_>>().join(", ")
    }
}

/// The error type of every fallible operation in this crate.
///
/// It is `Clone` (an operating system error is shared): a background save's error is given to
/// its handle and to the queue's next save or wait alike.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation on a path (`OSError`).
    #[error("{operation}: {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done (`cannot create folder`).
        operation: String,
        /// The operating system's error, shared (so that [`Error`] is `Clone`): `source()`
        /// gives this `Arc<io::Error>`.
        #[source]
        source: Arc<io::Error>,
    },
    /// A path that must be a regular file is something else: a folder, a link to nothing, a
    /// special file (`OSError`).
    #[error("invalid {what}: {} is not a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it should have been (`configuration`, `checkpoint`).
        what: &'static str,
    },
    /// A file, link or special file stands where a save needs a folder, or a special file is
    /// in the folder being saved over; nothing was changed (`OSError`).
    #[error("{} is {found}, but PMF needs {needed} there: move it away and save again (nothing was changed)", path.display())]
    Obstructed {
        /// The path.
        path: PathBuf,
        /// What is there (`a symbolic link`, `a file`, `a special file`).
        found: &'static str,
        /// What a save needs there (`a folder`, `no special file`).
        needed: &'static str,
    },
    /// A training status that is not one of PMF's four (`ValueError`).
    #[error("invalid training status {value:?}: expected pending, running, finished or failed")]
    InvalidStatus {
        /// The refused text.
        value: String,
    },
    /// A training record that breaks PMF's cross-checks (`ValueError`): every broken rule.
    #[error("invalid training parameters: {}", offences.iter().map(|o| o.message.as_str()).collect::<Vec<_>>().join("; "))]
    InvalidTraining {
        /// The broken rules.
        offences: Vec<TrainingOffence>,
    },
    /// A status change that the status machine forbids (`ValueError`).
    #[error("invalid training status change: a {from} training cannot become {to}")]
    StatusChange {
        /// The current status.
        from: Status,
        /// The refused status.
        to: Status,
    },
    /// An epoch registered on a training that is not running (`ValueError`; the reference
    /// crashes with a `TypeError`).
    #[error("cannot register an epoch: the training is {status}, expected running (call start first)")]
    TrainingNotRunning {
        /// The training's status.
        status: Status,
    },
    /// The next epoch does not fit in 64 bits (`ValueError`).
    #[error("cannot register the next epoch: epoch {latest} is the largest PMF can record")]
    EpochOverflow {
        /// The latest epoch.
        latest: i64,
    },
    /// A checksum that is not 32 lowercase hexadecimal digits (`ValueError`).
    #[error("invalid {subject} checksum {value:?}: expected 32 lowercase hexadecimal digits (an MD5)")]
    InvalidChecksum {
        /// Whose checksum (`checkpoint 3`).
        subject: String,
        /// The refused text.
        value: String,
    },
    /// A file whose content does not have the checksum it was given or registered with
    /// (`ValueError`): found while copying it, nothing was saved.
    #[error("{} does not have the checksum it was registered with (it changed since, or was given a wrong checksum): expected {expected}, its content has {found}; nothing was saved: register it again", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The checksum it was given.
        expected: Md5,
        /// The checksum of its content.
        found: Md5,
    },
    /// A checkpoint with neither a file nor a checksum (`ValueError`; the reference crashes).
    #[error("invalid checkpoint {}: give a path to its file or its MD5 hash (neither was given)", reference.quoted())]
    CheckpointWithoutSource {
        /// The checkpoint's reference.
        reference: Reference,
    },
    /// A checkpoint without an epoch added to a collection (`ValueError`).
    #[error("checkpoint {} has no epoch: a checkpoint needs an epoch to join a collection", reference.quoted())]
    CheckpointWithoutEpoch {
        /// The checkpoint's reference.
        reference: Reference,
    },
    /// A checkpoint reference that is already registered (`KeyError`).
    #[error("checkpoint reference {} is already registered in the collection", .0.quoted())]
    DuplicateReference(Reference),
    /// A checkpoint reference that is not registered (`KeyError`).
    #[error("checkpoint reference {} is not registered in the collection", .0.quoted())]
    MissingReference(Reference),
    /// A version format that is not registered (`ValueError`).
    #[error("invalid version format {format:?}: it is unknown (registered formats: {})", known.join(", "))]
    UnknownVersionFormat {
        /// The refused format.
        format: String,
        /// The registered formats.
        known: Vec<String>,
    },
    /// A version string that its format does not accept (`ValueError`).
    #[error("invalid {format} version {value:?}: {reason}")]
    InvalidVersion {
        /// The format.
        format: String,
        /// The refused version string.
        value: String,
        /// Why the format refuses it.
        reason: String,
    },
    /// An initialisation path where nothing is (`OSError`, the reference's wording).
    #[error("Invalid path provided: {} does not exists.", path.display())]
    InitialisationNotFound {
        /// The path.
        path: PathBuf,
    },
    /// An initialisation path that is neither a weight file nor a PMF model folder (`OSError`).
    #[error("Invalid path provided: {} must either be a PMF model or a weight file (a folder with metadata.yaml, or a file).", path.display())]
    InitialisationPath {
        /// The path.
        path: PathBuf,
    },
    /// A weight file given as initialisation without a name to identify it (`ValueError`).
    #[error("Invalid arguments provided: {} points to a file but name is None (a weight file needs a name to identify it).", path.display())]
    InitialisationNeedsName {
        /// The weight file.
        path: PathBuf,
    },
    /// A PMF model given as initialisation without the reference of the checkpoint used
    /// (`ValueError`).
    #[error("Invalid arguments provided: {} points to a PMF model but no checkpoint reference was given.", path.display())]
    InitialisationNeedsCheckpoint {
        /// The model folder.
        path: PathBuf,
    },
    /// A PMF model given as initialisation that does not register the checkpoint named
    /// (`ValueError`).
    #[error("Invalid arguments provided: {} points to a PMF model which does not contains {} as a checkpoint (it has: {}).", path.display(), reference.quoted(), references(available))]
    InitialisationCheckpointMissing {
        /// The model folder.
        path: PathBuf,
        /// The reference asked for.
        reference: Reference,
        /// The references the model registers.
        available: Vec<Reference>,
    },
    /// The save destination is a file (`ValueError`, as in the reference).
    #[error("invalid path: {} is a file, expected a folder to save the model in", path.display())]
    DestinationIsFile {
        /// The destination.
        path: PathBuf,
    },
    /// The save destination is a folder with files but no PMF model (`OSError` unless forced).
    #[error("invalid path: {} exists and is not a PMF model (no metadata.yaml); save with force to write into it (its files are kept)", path.display())]
    ForeignFolder {
        /// The destination.
        path: PathBuf,
    },
    /// The save destination holds a PMF model with another id (`OSError`, always).
    #[error("invalid path: {} holds a different PMF model (id {found_id:?}, saving id {saving_id:?}); refusing to overwrite it", path.display())]
    OtherModel {
        /// The destination.
        path: PathBuf,
        /// The id of the model there.
        found_id: String,
        /// The id of the model being saved.
        saving_id: String,
    },
    /// The save destination's `metadata.yaml` cannot be read as PMF metadata (`OSError`,
    /// always: it may be another model's).
    #[error("invalid path: {} is not a valid PMF metadata file ({reason}); refusing to save over it", path.display())]
    InvalidDestination {
        /// The destination's `metadata.yaml`.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// The save destination holds a model with the same id whose tree is invalid, for
    /// example a checkpoint that fails its checksum (`OSError` unless forced, as in the
    /// reference: "an invalid PMF model with the same model id").
    #[error("invalid path: {} is an invalid PMF model with the same model id; save with force to replace its PMF files ({} offence{}){}", path.display(), report.offences.len(), plural(report.offences.len()), report.offences.iter().map(|o| format!("\n  {o}")).collect::<String>())]
    InvalidSameModel {
        /// The destination.
        path: PathBuf,
        /// What is wrong with the model there.
        report: Report,
    },
    /// Another writer saved the model since this model object loaded or last saved it
    /// (`OSError`): saving would lose that update.
    #[error("{} changed since this model was loaded from or saved to it (another writer saved it): reload it and apply your changes again, or save with overwrite_concurrent_changes to discard the other update", path.display())]
    ConcurrentChange {
        /// The model folder.
        path: PathBuf,
    },
    /// Another writer holds the model's lock and did not release it in time (`OSError`).
    #[error("{} is being written by {holder} (lock .pmf.lock); gave up after {:.1}s: retry when it is done", path.display(), waited.as_secs_f64())]
    Locked {
        /// The model folder.
        path: PathBuf,
        /// Who holds the lock.
        holder: LockHolder,
        /// How long this writer waited.
        waited: Duration,
    },
    /// A save was interrupted in the middle of replacing the model folder: the folder is
    /// missing and the complete new tree lies next to it (`OSError`). The next save of the
    /// model puts it in place; readers never move it.
    #[error("{} is missing: a save was interrupted while replacing it, and its complete new tree is at {}; the next save of this model puts it in place", path.display(), leftover.display())]
    InterruptedSave {
        /// The model folder.
        path: PathBuf,
        /// The new (or old) tree that a writer will put in place.
        leftover: PathBuf,
    },
    /// The model cannot be saved as a valid PMF model (`ValueError`): every reason.
    #[error("cannot save: the model would not be valid ({} reason{}){}", reasons.len(), plural(reasons.len()), lines(reasons))]
    WouldNotValidate {
        /// Every reason.
        reasons: Vec<SaveProblem>,
    },
    /// A location that cannot be used (`ValueError`): an unknown URL scheme, a URL without a
    /// bucket, credentials, a query or a fragment in a URL, an empty, `.` or `..` key segment.
    /// A URL is never taken for a local path.
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given (credentials in it replaced by `<redacted>`).
        location: String,
        /// Why it is refused.
        reason: String,
    },
    /// A storage option that is unknown or whose value cannot be used (`ValueError`).
    #[error("invalid storage option {key:?}: {reason}")]
    InvalidStorageOption {
        /// The option's key, as given.
        key: String,
        /// Why it is refused (never the value of a secret).
        reason: String,
    },
    /// A retention policy that cannot be used (`ValueError`): a rule that keeps no checkpoint
    /// (`last` or `best` of 0, `every` below 1), an unknown metric mode, or no rule at all.
    #[error("invalid retention policy: `{field}`: {reason}")]
    InvalidRetention {
        /// The refused field: `last`, `every`, `best`, `mode`, or `rules` (no rule at all).
        field: &'static str,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// A training session that cannot be run as asked (`ValueError`), such as `save_every` 0.
    #[error("invalid training session: {reason}")]
    InvalidSession {
        /// Why, and what would be right.
        reason: String,
    },
    /// An object store refused or failed a request (`OSError`). The message never carries
    /// credentials: `location` is the URL of the object (`s3://bucket/key`).
    #[error("{operation}: {location}: {kind}: {message}")]
    Storage {
        /// The URL of the object or prefix.
        location: String,
        /// What was being done (`cannot list model`, `cannot download`).
        operation: String,
        /// What kind of failure.
        kind: StorageErrorKind,
        /// The store's description of the failure.
        message: String,
    },
    /// The model tree is invalid (`PlumsModelTreeValidationError`): every offence found.
    #[error("{0}")]
    TreeValidation(Report),
    /// The model metadata is invalid (`PlumsModelMetadataValidationError`): every offence found.
    #[error("{0}")]
    MetadataValidation(Report),
}

impl Error {
    /// An I/O error on `path` while doing `operation`.
    pub(crate) fn io(path: impl AsRef<Path>, operation: impl Into<String>, source: impl Into<Arc<io::Error>>) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), operation: operation.into(), source: source.into() }
    }

    /// A validation error built from a report: metadata if any offence is about metadata, tree otherwise.
    pub(crate) fn from_report(report: Report) -> Self {
        if report.has_metadata_offence() {
            Error::MetadataValidation(report)
        } else {
            Error::TreeValidation(report)
        }
    }

    /// A stable name of the variant, in snake case (`concurrent_change`, `other_model`, ...),
    /// for machine-readable output (the CLI's `--json`) and logs.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            Io { .. } => "io",
            NotAFile { .. } => "not_a_file",
            Obstructed { .. } => "obstructed",
            InvalidStatus { .. } => "invalid_status",
            InvalidTraining { .. } => "invalid_training",
            StatusChange { .. } => "status_change",
            TrainingNotRunning { .. } => "training_not_running",
            EpochOverflow { .. } => "epoch_overflow",
            InvalidChecksum { .. } => "invalid_checksum",
            ChecksumMismatch { .. } => "checksum_mismatch",
            CheckpointWithoutSource { .. } => "checkpoint_without_source",
            CheckpointWithoutEpoch { .. } => "checkpoint_without_epoch",
            DuplicateReference(_) => "duplicate_reference",
            MissingReference(_) => "missing_reference",
            UnknownVersionFormat { .. } => "unknown_version_format",
            InvalidVersion { .. } => "invalid_version",
            InitialisationNotFound { .. } => "initialisation_not_found",
            InitialisationPath { .. } => "initialisation_path",
            InitialisationNeedsName { .. } => "initialisation_needs_name",
            InitialisationNeedsCheckpoint { .. } => "initialisation_needs_checkpoint",
            InitialisationCheckpointMissing { .. } => "initialisation_checkpoint_missing",
            DestinationIsFile { .. } => "destination_is_file",
            ForeignFolder { .. } => "foreign_folder",
            OtherModel { .. } => "other_model",
            InvalidDestination { .. } => "invalid_destination",
            InvalidSameModel { .. } => "invalid_same_model",
            ConcurrentChange { .. } => "concurrent_change",
            Locked { .. } => "locked",
            InterruptedSave { .. } => "interrupted_save",
            WouldNotValidate { .. } => "would_not_validate",
            InvalidLocation { .. } => "invalid_location",
            InvalidStorageOption { .. } => "invalid_storage_option",
            InvalidRetention { .. } => "invalid_retention",
            InvalidSession { .. } => "invalid_session",
            Storage { .. } => "storage",
            TreeValidation(_) => "tree_validation",
            MetadataValidation(_) => "metadata_validation",
        }
    }

    /// Which exception of the reference API this error stands for.
    pub fn category(&self) -> Category {
        use Error::*;
        match self {
            Io { .. }
            | NotAFile { .. }
            | Obstructed { .. }
            | InitialisationNotFound { .. }
            | InitialisationPath { .. }
            | ForeignFolder { .. }
            | OtherModel { .. }
            | InvalidDestination { .. }
            | InvalidSameModel { .. }
            | ConcurrentChange { .. }
            | Locked { .. }
            | InterruptedSave { .. }
            | Storage { .. } => Category::Os,
            DuplicateReference(_) | MissingReference(_) => Category::Key,
            TreeValidation(_) | MetadataValidation(_) => Category::Validation,
            InvalidStatus { .. }
            | InvalidTraining { .. }
            | StatusChange { .. }
            | TrainingNotRunning { .. }
            | EpochOverflow { .. }
            | InvalidChecksum { .. }
            | ChecksumMismatch { .. }
            | CheckpointWithoutSource { .. }
            | CheckpointWithoutEpoch { .. }
            | UnknownVersionFormat { .. }
            | InvalidVersion { .. }
            | InitialisationNeedsName { .. }
            | InitialisationNeedsCheckpoint { .. }
            | InitialisationCheckpointMissing { .. }
            | DestinationIsFile { .. }
            | WouldNotValidate { .. }
            | InvalidLocation { .. }
            | InvalidStorageOption { .. }
            | InvalidRetention { .. }
            | InvalidSession { .. } => Category::Value,
        }
    }

    /// The closest [`io::ErrorKind`] of an `OSError`-like error (`None` for the others): the
    /// operating system's for [`Error::Io`], else what the refusal means (`AlreadyExists` for
    /// another model or writer, `WouldBlock` for a held lock, `NotFound`, ...).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        use Error::*;
        Some(match self {
            Io { source, .. } => source.kind(),
            NotAFile { path, .. } if path.is_dir() => io::ErrorKind::IsADirectory,
            NotAFile { .. } | InitialisationPath { .. } => io::ErrorKind::InvalidInput,
            InitialisationNotFound { .. } | InterruptedSave { .. } => io::ErrorKind::NotFound,
            Obstructed { .. } | ForeignFolder { .. } | OtherModel { .. } | ConcurrentChange { .. } => {
                io::ErrorKind::AlreadyExists
            }
            InvalidDestination { .. } | InvalidSameModel { .. } => io::ErrorKind::InvalidData,
            Locked { .. } => io::ErrorKind::WouldBlock,
            Storage { kind, .. } => match kind {
                StorageErrorKind::NotFound => io::ErrorKind::NotFound,
                StorageErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
                StorageErrorKind::Timeout => io::ErrorKind::TimedOut,
                StorageErrorKind::PreconditionFailed => io::ErrorKind::AlreadyExists,
                StorageErrorKind::Configuration => io::ErrorKind::InvalidInput,
                StorageErrorKind::NoConditionalWrites => io::ErrorKind::Unsupported,
                StorageErrorKind::Other => io::ErrorKind::Other,
            },
            _ => return None,
        })
    }

    /// The operating system's error number, for [`Error::Io`].
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        use Error::*;
        match self {
            Io { path, .. }
            | NotAFile { path, .. }
            | Obstructed { path, .. }
            | ChecksumMismatch { path, .. }
            | InitialisationNotFound { path }
            | InitialisationPath { path }
            | InitialisationNeedsName { path }
            | InitialisationNeedsCheckpoint { path }
            | InitialisationCheckpointMissing { path, .. }
            | DestinationIsFile { path }
            | ForeignFolder { path }
            | OtherModel { path, .. }
            | InvalidDestination { path, .. }
            | InvalidSameModel { path, .. }
            | ConcurrentChange { path }
            | Locked { path, .. }
            | InterruptedSave { path, .. } => Some(path),
            TreeValidation(report) | MetadataValidation(report) => Some(&report.path),
            _ => None,
        }
    }

    /// The kind of an object store's failure ([`Error::Storage`]).
    pub fn storage_kind(&self) -> Option<StorageErrorKind> {
        match self {
            Error::Storage { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The validation report, if this is a validation error.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Error::TreeValidation(r) | Error::MetadataValidation(r) => Some(r),
            _ => None,
        }
    }

    /// The offences of a validation error, of a destination holding an invalid model with the
    /// same id, or (as metadata offences) of an invalid training record; empty otherwise.
    pub fn offences(&self) -> Vec<Offence> {
        match self {
            Error::TreeValidation(r) | Error::MetadataValidation(r) | Error::InvalidSameModel { report: r, .. } => {
                r.offences.clone()
            }
            Error::InvalidTraining { offences } => {
                offences.iter().map(|o| Offence::metadata(format!("training.{}", o.field), o.message.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The reasons a save refused the model ([`Error::WouldNotValidate`]); empty otherwise.
    pub fn reasons(&self) -> &[SaveProblem] {
        match self {
            Error::WouldNotValidate { reasons } => reasons,
            _ => &[],
        }
    }

    /// The holder of the lock ([`Error::Locked`]).
    pub fn lock_holder(&self) -> Option<&LockHolder> {
        match self {
            Error::Locked { holder, .. } => Some(holder),
            _ => None,
        }
    }

    /// The checkpoint reference the error is about, when it is about one.
    pub fn reference(&self) -> Option<&Reference> {
        use Error::*;
        match self {
            DuplicateReference(r)
            | MissingReference(r)
            | CheckpointWithoutSource { reference: r }
            | CheckpointWithoutEpoch { reference: r }
            | InitialisationCheckpointMissing { reference: r, .. } => Some(r),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holder_round_trips_through_its_text() {
        let h = LockHolder::parse("pid 42 on node-7 since unix time 1700000000\n");
        assert_eq!(h, LockHolder { pid: Some(42), host: Some("node-7".into()), since: Some(1_700_000_000) });
        assert_eq!(LockHolder::parse(&h.to_string()), h);
        assert_eq!(LockHolder::parse("garbage").to_string(), "an unknown process");
    }

    #[test]
    fn categories_match_the_reference_exceptions() {
        let p = PathBuf::from("m");
        assert_eq!(Error::ConcurrentChange { path: p.clone() }.category(), Category::Os);
        assert_eq!(Error::ConcurrentChange { path: p.clone() }.io_kind(), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(Error::DestinationIsFile { path: p.clone() }.category(), Category::Value);
        assert_eq!(Error::MissingReference(1.into()).category(), Category::Key);
        assert_eq!(Error::TreeValidation(Report::default()).category(), Category::Validation);
        let e = Error::WouldNotValidate { reasons: vec![SaveProblem::new("producer.name", "too short")] };
        assert_eq!(e.to_string(), "cannot save: the model would not be valid (1 reason)\n  - producer.name: too short");
        assert_eq!(e.reasons().len(), 1);
    }
}
