//! The one error type of the crate, and the offences that validation reports.
//!
//! Each [`Error`] variant maps onto one exception of the reference API: [`Error::Io`] is an
//! `OSError`, [`Error::InvalidArgument`] a `ValueError`, [`Error::DuplicateReference`] and
//! [`Error::MissingReference`] a `KeyError`, [`Error::TreeValidation`] a
//! `PlumsModelTreeValidationError` and [`Error::MetadataValidation`] a
//! `PlumsModelMetadataValidationError`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::reference::Reference;

/// What a validation offence is about: the folder layout and files, or the metadata content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Whether any offence is a metadata offence.
    pub fn has_metadata_offence(&self) -> bool {
        self.offences.iter().any(|o| o.kind == OffenceKind::Metadata)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.offences.len();
        write!(f, "{} is not a valid PMF model ({} offence{})", self.path.display(), n, if n == 1 { "" } else { "s" })?;
        for offence in &self.offences {
            write!(f, "\n  {offence}")?;
        }
        Ok(())
    }
}

/// The error type of every fallible operation in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a path (the reference's `OSError`).
    #[error("{message}: {}{}", path.display(), source.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done, or what is wrong with the path.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<io::Error>,
        /// The closest `std::io::ErrorKind`, for callers that map it (e.g. to `FileNotFoundError`).
        kind: io::ErrorKind,
    },
    /// An argument that cannot be accepted (the reference's `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A checkpoint reference that is already registered (the reference's `KeyError`).
    #[error("checkpoint reference {} is already registered in the collection", .0.quoted())]
    DuplicateReference(Reference),
    /// A checkpoint reference that is not registered (the reference's `KeyError`).
    #[error("checkpoint reference {} is not registered in the collection", .0.quoted())]
    MissingReference(Reference),
    /// The model tree is invalid (`PlumsModelTreeValidationError`): every offence found.
    #[error("{0}")]
    TreeValidation(Report),
    /// The model metadata is invalid (`PlumsModelMetadataValidationError`): every offence found.
    #[error("{0}")]
    MetadataValidation(Report),
}

impl Error {
    /// An I/O error on `path` while doing `message`.
    pub fn io(path: impl AsRef<Path>, message: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
            kind: source.kind(),
            source: Some(source),
        }
    }

    /// An OS-level refusal on `path` that has no underlying `io::Error`.
    pub fn os(path: impl AsRef<Path>, kind: io::ErrorKind, message: impl Into<String>) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), message: message.into(), source: None, kind }
    }

    /// A validation error built from a report: metadata if any offence is about metadata, tree otherwise.
    pub fn from_report(report: Report) -> Self {
        if report.has_metadata_offence() {
            Error::MetadataValidation(report)
        } else {
            Error::TreeValidation(report)
        }
    }

    /// The validation report, if this is a validation error.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Error::TreeValidation(r) | Error::MetadataValidation(r) => Some(r),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
