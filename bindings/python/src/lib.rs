//! `plums_model._native`: the Rust core of the Python package `plums_model`.
//!
//! The Python classes (`Model`, `Training`, `Checkpoint`, ...) live in the package's Python
//! modules and keep the reference API's object semantics; everything that reads, checks or
//! writes a model runs here, in Rust, with the GIL released: hashing, validation, loading and
//! saving. Models cross the boundary as plain descriptions (dicts and tuples, see `convert.rs`).

mod convert;
mod errors;

use std::path::PathBuf;
use std::sync::Arc;

use plums_model::version::{VersionFormat, VersionValue};
use plums_model::{Model, SaveOptions, Status, Training, ValidateOptions};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{describe_model, metadata_to_py, model_from_description, record_from_py, Token};
use crate::errors::{to_py_err, ValidationFailure};

/// The MD5 checksum of a file, as 32 lowercase hexadecimal digits (GIL released).
#[pyfunction]
fn md5_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| plums_model::md5_file(&path)).map(|d| d.to_string()).map_err(to_py_err)
}

/// A checkpoint file hashed by the core: its checksum, and a handle that remembers what the file
/// looked like when hashed, so that a save can copy it without reading it again.
#[pyfunction]
fn hash_checkpoint(py: Python<'_>, path: PathBuf) -> PyResult<(String, convert::NativeCheckpoint)> {
    let checkpoint = py
        .detach(|| plums_model::Checkpoint::new(plums_model::Reference::Int(0), Some(&path), None, None))
        .map_err(to_py_err)?;
    Ok((checkpoint.hash.to_string(), convert::NativeCheckpoint(checkpoint)))
}

/// Every training cross-check offence of a record, as `(field, message)` pairs.
#[pyfunction]
fn check_training(record: &Bound<'_, PyDict>) -> PyResult<Vec<(String, String)>> {
    let record = record_from_py(record)?;
    Ok(plums_model::training::check_training(&record, false, &[]).into_iter().map(|(f, m)| (f.to_owned(), m)).collect())
}

/// Whether a training in status `current` may move to `next`.
#[pyfunction]
fn status_can_become(current: &str, next: &str) -> PyResult<bool> {
    let a: Status = current.parse().map_err(to_py_err)?;
    let b: Status = next.parse().map_err(to_py_err)?;
    Ok(a.can_become(b))
}

/// The normalised form of a PEP 440 version (ValueError when invalid).
#[pyfunction]
fn pep440_normalize(value: &str) -> PyResult<String> {
    plums_model::version(plums_model::version::PY_PA, value).map(|v| v.value()).map_err(to_py_err)
}

/// The order of two versions of the registered format `format`: -1, 0 or 1, or `None` when
/// the format says they cannot be compared (ValueError for an unknown format or invalid value).
///
/// This is the core's comparison: for `py_pa` the PEP 440 order, for a format registered from
/// Python the class's own `__eq__` and `__lt__`, called back from Rust.
#[pyfunction]
fn compare_versions(format: &str, a: &str, b: &str) -> PyResult<Option<i32>> {
    let a = plums_model::version(format, a).map_err(to_py_err)?;
    let b = plums_model::version(format, b).map_err(to_py_err)?;
    Ok(a.partial_cmp(&b).map(|o| o as i32))
}

/// A version format registered from Python: `factory(value)` builds an instance of the
/// registered class (through its hook), whose `__str__` is the string written to the metadata
/// and whose `__eq__` and `__lt__` order versions.
struct PyFormat {
    name: String,
    factory: Py<PyAny>,
}

/// A version of a Python-registered format: the Python instance and its string form.
struct PyVersion {
    text: String,
    object: Py<PyAny>,
}

impl std::fmt::Debug for PyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyVersion({:?})", self.text)
    }
}

impl VersionValue for PyVersion {
    fn to_version_string(&self) -> String {
        self.text.clone()
    }

    /// Equal when `a == b`, less when `a < b`, greater when `b < a`, else not comparable; an
    /// exception raised by the Python methods also means not comparable.
    fn compare(&self, other: &dyn VersionValue) -> Option<std::cmp::Ordering> {
        let other = other.as_any().downcast_ref::<PyVersion>()?;
        Python::attach(|py| {
            let (a, b) = (self.object.bind(py), other.object.bind(py));
            if a.eq(b).ok()? {
                Some(std::cmp::Ordering::Equal)
            } else if a.lt(b).ok()? {
                Some(std::cmp::Ordering::Less)
            } else if b.lt(a).ok()? {
                Some(std::cmp::Ordering::Greater)
            } else {
                None
            }
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl VersionFormat for PyFormat {
    fn name(&self) -> &str {
        &self.name
    }

    fn parse(&self, value: &str) -> Result<Arc<dyn VersionValue>, String> {
        Python::attach(|py| {
            let object = self.factory.call1(py, (value,))?;
            let text = object.bind(py).str()?.to_str()?.to_owned();
            Ok::<_, PyErr>(Arc::new(PyVersion { text, object }) as Arc<dyn VersionValue>)
        })
        .map_err(|e| format!("invalid {} version {value:?}: {e}", self.name))
    }
}

/// Register, in the core's format registry, a version format implemented in Python:
/// `factory(value)` returns a version instance (see `PyFormat`).
#[pyfunction]
fn register_format(name: String, factory: Py<PyAny>) {
    plums_model::register(Arc::new(PyFormat { name, factory }));
}

/// Validate a model folder and return its metadata as a dict (GIL released while checking).
#[pyfunction]
fn validate(py: Python<'_>, path: PathBuf, strict: bool, checkpoints: bool) -> PyResult<Py<PyAny>> {
    let options = ValidateOptions::new(strict, checkpoints);
    let validated = py.detach(|| plums_model::validate_model(&path, &options)).map_err(to_py_err)?;
    metadata_to_py(py, &validated.metadata)
}

/// Load a model: `(description, token)` (GIL released while reading and checking).
#[pyfunction]
fn load<'py>(py: Python<'py>, path: PathBuf, strict: bool, checkpoints: bool) -> PyResult<Bound<'py, PyTuple>> {
    let options = ValidateOptions::new(strict, checkpoints);
    let model = py.detach(|| Model::load_with(&path, &options)).map_err(to_py_err)?;
    let token = Token(model.saved_state());
    let description = describe_model(py, &model)?;
    PyTuple::new(py, [description, Py::new(py, token)?.into_any()])
}

/// Save a model description to `path`; returns the new token (GIL released while writing).
#[pyfunction]
#[pyo3(signature = (
    description, path, force, checkpoints, lock_timeout, overwrite_concurrent_changes, token,
    durable = true, keep_unregistered_files = false,
))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of `Model.save`
fn save(
    py: Python<'_>,
    description: &Bound<'_, PyAny>,
    path: PathBuf,
    force: bool,
    checkpoints: bool,
    lock_timeout: f64,
    overwrite_concurrent_changes: bool,
    token: Option<PyRef<'_, Token>>,
    durable: bool,
    keep_unregistered_files: bool,
) -> PyResult<Token> {
    let mut model = model_from_description(description)?;
    model.set_saved_state(token.and_then(|t| t.0.clone()));
    if !lock_timeout.is_finite() || lock_timeout < 0.0 {
        return Err(pyo3::exceptions::PyValueError::new_err("lock_timeout must be a non-negative number of seconds"));
    }
    #[allow(clippy::needless_update)] // options the core may add later keep their defaults
    let options = SaveOptions {
        force,
        checkpoints,
        lock_timeout: std::time::Duration::from_secs_f64(lock_timeout),
        overwrite_concurrent_changes,
        durable,
        keep_unregistered_files,
        ..SaveOptions::default()
    };
    py.detach(|| model.save_with(&path, &options)).map_err(to_py_err)?;
    Ok(Token(model.saved_state()))
}

/// Check a training record the way the core does (defaults applied), raising ValueError.
#[pyfunction]
fn new_training(record: &Bound<'_, PyDict>) -> PyResult<()> {
    Training::new(record_from_py(record)?).map(|_| ()).map_err(to_py_err)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ValidationFailure", m.py().get_type::<ValidationFailure>())?;
    m.add_class::<Token>()?;
    m.add_class::<convert::NativeCheckpoint>()?;
    m.add_function(wrap_pyfunction!(hash_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(md5_file, m)?)?;
    m.add_function(wrap_pyfunction!(check_training, m)?)?;
    m.add_function(wrap_pyfunction!(status_can_become, m)?)?;
    m.add_function(wrap_pyfunction!(pep440_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(compare_versions, m)?)?;
    m.add_function(wrap_pyfunction!(register_format, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(save, m)?)?;
    m.add_function(wrap_pyfunction!(new_training, m)?)?;
    Ok(())
}
