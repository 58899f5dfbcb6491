//! Mapping `plums_model::Error` onto Python exceptions, by variant (never by message text).
//!
//! Each refusal that callers handle differently raises its own class of
//! `plums_model.exception` (`ConcurrentChangeError`, `OtherModelError`, ...), a subclass of the
//! built-in exception the reference raises, with the variant's data as attributes; the other
//! variants raise the built-in exception of their [`Category`] (for `OSError`s, the subclass
//! that [`Error::io_kind`] names), with `errno` set from [`Error::raw_os_error`].

use std::io::ErrorKind;
use std::path::Path;

use plums_model::{Category, Error, Location, Report, StorageErrorKind};
use pyo3::exceptions::{
    PyBlockingIOError, PyFileExistsError, PyFileNotFoundError, PyInterruptedError, PyIsADirectoryError, PyKeyError,
    PyNotADirectoryError, PyOSError, PyPermissionError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{path_to_py, reference_to_py};

/// The Python exception for a core error, with every offence in the message of validation errors.
pub fn to_py_err(error: Error) -> PyErr {
    Python::attach(|py| build(py, error, true, None))
}

/// The Python exception for an error of reading the model folder `path` (`validate`,
/// `Model.load`): a missing folder is a `ModelNotFoundError`, and validation messages list
/// every offence only when `verbose`.
pub fn read_err(error: Error, path: &Path, verbose: bool) -> PyErr {
    Python::attach(|py| build(py, error, verbose, Some(path)))
}

fn build(py: Python<'_>, error: Error, verbose: bool, read_path: Option<&Path>) -> PyErr {
    match make(py, &error, verbose, read_path) {
        Ok(err) => err,
        // Building the precise exception failed (the package is broken): still say what went wrong.
        Err(_) => PyOSError::new_err(error.to_string()),
    }
}

/// A `plums_model.exception` class called with `message` and the keyword arguments `kwargs`.
fn precise(py: Python<'_>, class: &str, message: String, kwargs: &Bound<'_, PyDict>) -> PyResult<PyErr> {
    let cls = py.import("plums_model.exception")?.getattr(class)?;
    let value = cls.call((message,), Some(kwargs))?;
    Ok(PyErr::from_value(value))
}

/// The offences of a report as `(kind, location, message)` tuples.
fn offences_to_py<'py>(py: Python<'py>, report: &Report) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for o in &report.offences {
        list.append(PyTuple::new(py, [o.kind.as_str(), o.location.as_str(), o.message.as_str()])?)?;
    }
    Ok(list)
}

/// The message of a validation error: the whole report when `verbose`, else its summary line
/// and the first offence (and where to find the others).
fn validation_message(report: &Report, verbose: bool) -> String {
    if verbose || report.offences.is_empty() {
        return report.to_string();
    }
    let head = report.summary();
    if report.offences.len() == 1 {
        format!("{head}: {}", report.offences[0])
    } else {
        format!("{head}; first: {} (verbose=True lists them all; see .offences)", report.offences[0])
    }
}

fn make(py: Python<'_>, error: &Error, verbose: bool, read_path: Option<&Path>) -> PyResult<PyErr> {
    let message = error.to_string();
    let kw = PyDict::new(py);
    if let Some(path) = error.path() {
        kw.set_item("path", error_path_to_py(py, path)?)?;
    }
    let err = match error {
        Error::TreeValidation(report) | Error::MetadataValidation(report) => {
            kw.set_item("offences", offences_to_py(py, report)?)?;
            let class = if matches!(error, Error::MetadataValidation(_)) {
                "MetadataOffencesError"
            } else {
                "PlumsModelTreeValidationError"
            };
            precise(py, class, validation_message(report, verbose), &kw)?
        }
        Error::ConcurrentChange { .. } => precise(py, "ConcurrentChangeError", message, &kw)?,
        Error::OtherModel { found_id, saving_id, .. } => {
            kw.set_item("found_id", found_id)?;
            kw.set_item("saving_id", saving_id)?;
            precise(py, "OtherModelError", message, &kw)?
        }
        Error::ForeignFolder { .. } => precise(py, "ForeignFolderError", message, &kw)?,
        Error::InvalidDestination { reason, .. } => {
            kw.set_item("reason", reason)?;
            precise(py, "InvalidDestinationError", message, &kw)?
        }
        Error::InvalidSameModel { report, .. } => {
            kw.set_item("offences", offences_to_py(py, report)?)?;
            precise(py, "InvalidSameModelError", message, &kw)?
        }
        Error::Locked { holder, waited, .. } => {
            kw.set_item("pid", holder.pid)?;
            kw.set_item("host", holder.host.as_deref())?;
            kw.set_item("since", holder.since)?;
            kw.set_item("waited", waited.as_secs_f64())?;
            precise(py, "ModelLockedError", message, &kw)?
        }
        Error::InterruptedSave { leftover, .. } => {
            kw.set_item("leftover", path_to_py(py, Some(leftover))?)?;
            precise(py, "InterruptedSaveError", message, &kw)?
        }
        Error::WouldNotValidate { reasons } => {
            let list = PyList::empty(py);
            for r in reasons {
                list.append((r.location.as_str(), r.message.as_str()))?;
            }
            kw.set_item("reasons", list)?;
            precise(py, "WouldNotValidateError", message, &kw)?
        }
        Error::ChecksumMismatch { expected, found, .. } => {
            kw.set_item("expected", expected.to_string())?;
            kw.set_item("found", found.to_string())?;
            precise(py, "ChecksumMismatchError", message, &kw)?
        }
        Error::DestinationIsFile { .. } => precise(py, "DestinationIsFileError", message, &kw)?,
        Error::CheckpointWithoutEpoch { reference } => {
            // The reference's wording, which code written for it matches ("epoch is None").
            kw.set_item("reference", reference_to_py(py, reference)?)?;
            precise(
                py,
                "CheckpointWithoutEpochError",
                format!("Checkpoint epoch is None in a CheckpointCollection: {message}"),
                &kw,
            )?
        }
        Error::InvalidLocation { location, reason } => {
            kw.set_item("location", location)?;
            kw.set_item("reason", reason)?;
            precise(py, "InvalidLocationError", message, &kw)?
        }
        Error::InvalidStorageOption { key, reason } => {
            kw.set_item("key", key)?;
            kw.set_item("reason", reason)?;
            precise(py, "InvalidStorageOptionError", message, &kw)?
        }
        Error::InvalidRetention { field, reason } => {
            kw.set_item("field", *field)?;
            kw.set_item("reason", reason)?;
            precise(py, "InvalidRetentionError", message, &kw)?
        }
        Error::InvalidSession { reason } => {
            kw.set_item("reason", reason)?;
            precise(py, "InvalidSessionError", message, &kw)?
        }
        Error::Storage { location, operation, kind, .. } => {
            kw.set_item("location", location)?;
            kw.set_item("operation", operation)?;
            kw.set_item("kind", kind.as_str())?;
            // The OSError subclass of the kind, by variant (never by the store's message).
            let class = match kind {
                StorageErrorKind::NotFound => "StorageNotFoundError",
                StorageErrorKind::PermissionDenied => "StoragePermissionError",
                StorageErrorKind::Timeout => "StorageTimeoutError",
                _ => "StorageError",
            };
            precise(py, class, message, &kw)?
        }
        // The model folder itself is missing (not something inside it).
        Error::Io { source, path, .. } if source.kind() == ErrorKind::NotFound && read_path == Some(path.as_path()) => {
            let offences = PyList::empty(py);
            offences.append(("tree", ".", format!("{} does not exist", path.display())))?;
            kw.set_item("offences", offences)?;
            precise(py, "ModelNotFoundError", message, &kw)?
        }
        _ => match error.category() {
            Category::Key => PyKeyError::new_err(message),
            Category::Os => os_error(error.io_kind(), message),
            _ => PyValueError::new_err(message),
        },
    };
    if let Some(errno) = error.raw_os_error() {
        // `errno` as in the OSErrors Python raises itself (not `filename`: `str(error)` would
        // then drop our message for "[Errno n] strerror: filename"; the path is in the message).
        err.value(py).setattr("errno", errno)?;
    }
    Ok(err)
}

/// The `path` attribute of an error: a `pathlib.Path` for a local path, the URL itself (a `str`)
/// for an object-store location (a `Path` would fold `s3://bucket` into `s3:/bucket`).
fn error_path_to_py(py: Python<'_>, path: &Path) -> PyResult<Py<PyAny>> {
    if let Some(text) = path.to_str().filter(|t| t.contains("://")) {
        if Location::parse(text).is_ok_and(|l| l.as_object().is_some()) {
            return Ok(text.into_pyobject(py)?.into_any().unbind());
        }
    }
    path_to_py(py, Some(path))
}

/// The built-in `OSError` subclass for an I/O error kind.
fn os_error(kind: Option<ErrorKind>, message: String) -> PyErr {
    match kind {
        Some(ErrorKind::NotFound) => PyFileNotFoundError::new_err(message),
        Some(ErrorKind::AlreadyExists) => PyFileExistsError::new_err(message),
        Some(ErrorKind::PermissionDenied) => PyPermissionError::new_err(message),
        Some(ErrorKind::WouldBlock) => PyBlockingIOError::new_err(message),
        Some(ErrorKind::NotADirectory) => PyNotADirectoryError::new_err(message),
        Some(ErrorKind::IsADirectory) => PyIsADirectoryError::new_err(message),
        Some(ErrorKind::TimedOut) => PyTimeoutError::new_err(message),
        Some(ErrorKind::Interrupted) => PyInterruptedError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}
