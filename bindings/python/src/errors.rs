//! Mapping `plums_model::Error` onto Python exceptions.
//!
//! I/O errors become the matching `OSError` subclass, invalid arguments `ValueError`, reference
//! errors `KeyError`; validation errors become `ValidationFailure(kind, message, offences)`,
//! which the Python package turns into its `PlumsModel*ValidationError` classes.

use std::io::ErrorKind;

use plums_model::Error;
use pyo3::exceptions::{
    PyBlockingIOError, PyException, PyFileExistsError, PyFileNotFoundError, PyInterruptedError, PyIsADirectoryError,
    PyKeyError, PyNotADirectoryError, PyOSError, PyPermissionError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    ValidationFailure,
    PyException,
    "A model failed validation: (kind, message, offences)."
);

/// The Python exception for a core error.
pub fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::Io { ref kind, ref source, .. } => {
            let message = error.to_string();
            let err = match kind {
                ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
                ErrorKind::AlreadyExists => PyFileExistsError::new_err(message),
                ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
                ErrorKind::WouldBlock => PyBlockingIOError::new_err(message),
                ErrorKind::NotADirectory => PyNotADirectoryError::new_err(message),
                ErrorKind::IsADirectory => PyIsADirectoryError::new_err(message),
                ErrorKind::TimedOut => PyTimeoutError::new_err(message),
                ErrorKind::Interrupted => PyInterruptedError::new_err(message),
                _ => PyOSError::new_err(message),
            };
            // `errno` is the operating system's error number when there is one, as in the
            // OSErrors Python raises itself. (Not `filename`: `str(error)` would then drop our
            // message for "[Errno n] strerror: filename"; the path is in the message.)
            if let Some(errno) = source.as_ref().and_then(std::io::Error::raw_os_error) {
                Python::attach(|py| {
                    let _ = err.value(py).setattr("errno", errno);
                });
            }
            err
        }
        Error::InvalidArgument(m) => PyValueError::new_err(m),
        Error::DuplicateReference(_) | Error::MissingReference(_) => PyKeyError::new_err(error.to_string()),
        Error::TreeValidation(ref report) | Error::MetadataValidation(ref report) => {
            let kind = if matches!(error, Error::MetadataValidation(_)) { "metadata" } else { "tree" };
            let offences: Vec<(String, String, String)> = report
                .offences
                .iter()
                .map(|o| (o.kind.as_str().to_owned(), o.location.clone(), o.message.clone()))
                .collect();
            ValidationFailure::new_err((kind, error.to_string(), offences))
        }
    }
}
