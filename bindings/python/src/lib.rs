//! `plums_model._native`: the Rust core of the Python package `plums_model`.
//!
//! Every rule lives in the core crate `plums_model`; this module exposes it to Python:
//!
//! - native classes for the model components (`Training`, `Checkpoint`, `CheckpointCollection`,
//!   see `components.rs`), which the package re-exports as they are;
//! - `load`, `save`, `validate` and `initialisation`, which read and build those objects and the
//!   package's Python `Model` directly (see `convert.rs`), with the GIL released while reading,
//!   checking, hashing, downloading, uploading and writing; each takes a location (a `str` is
//!   parsed by the core: a URL such as `s3://bucket/prefix` is never a local path; an
//!   `os.PathLike` is a local path), local or in an object store alike, and `storage_options`
//!   (a dict, over the `AWS_*` environment);
//! - PEP 440 versions (`Pep440`) and the set of version formats the package registered
//!   (`VersionFormats`): formats registered from Python are the core's "unparsed" formats,
//!   whose rules are the Python classes', so the core never calls back into Python;
//! - the mapping of the core's error variants onto the package's exceptions (`errors.rs`).
#![deny(missing_docs)]

mod background;
mod catalog;
mod components;
mod convert;
mod errors;
mod retention;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use plums_model::{LoadOptions, Location, Model, Reference, SaveOptions, ValidateOptions, Version, PY_PA};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::background::{SaveHandle, SaveQueue};
use crate::components::{EpochIndexer, IndexIndexer, PyCheckpoint, PyCheckpointCollection, PyTraining};
use crate::convert::{
    initialisation_to_py, location_from_py, model_from_py, model_to_py, reference_from_py, storage_from_py,
    token_remote, value_to_py, Token,
};
use crate::errors::{read_err, to_py_err};

/// The MD5 checksum of a file, as 32 lowercase hexadecimal digits (GIL released).
#[pyfunction]
fn md5_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| plums_model::md5_file(&path)).map(|d| d.to_string()).map_err(to_py_err)
}

/// Check a producer configuration file with the core's rule (`Producer::check_configuration`:
/// OSError if it is not an existing file).
#[pyfunction]
fn check_configuration(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| plums_model::Producer::check_configuration(&path)).map_err(to_py_err)
}

/// Whether two configuration files have the same content (the core's rule of
/// `Producer::strict_equals`; names and versions are compared by the Python `Producer`).
#[pyfunction]
fn same_configuration(py: Python<'_>, a: PathBuf, b: PathBuf) -> PyResult<bool> {
    py.detach(|| plums_model::Producer::same_configuration(&a, &b)).map_err(to_py_err)
}

/// A PEP 440 version, parsed, normalised, ordered and hashed by the core.
#[pyclass(module = "plums_model._native", frozen)]
struct Pep440(Version);

#[pymethods]
impl Pep440 {
    #[new]
    fn new(value: &str) -> PyResult<Self> {
        Version::pep440(value).map(Pep440).map_err(to_py_err)
    }

    fn __str__(&self) -> String {
        self.0.value()
    }

    fn __eq__(&self, other: PyRef<'_, Pep440>) -> bool {
        self.0 == other.0
    }

    fn __lt__(&self, other: PyRef<'_, Pep440>) -> bool {
        self.0 < other.0
    }

    /// Consistent with equality (`1.0 == 1.0.0`): the core's hash.
    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }
}

/// The version formats registered in the package: `py_pa` (the core's) and the formats of
/// the registered Python classes, known to the core by name only (their rules are the classes').
#[pyclass(module = "plums_model._native")]
struct VersionFormats(plums_model::VersionFormats);

#[pymethods]
impl VersionFormats {
    #[new]
    fn new() -> Self {
        VersionFormats(plums_model::VersionFormats::new())
    }

    /// Register the format `name` (a Python class's; `py_pa` stays the core's).
    fn register(&mut self, name: &str) {
        if name != PY_PA {
            self.0.register_unparsed(name);
        }
    }

    /// The names of the formats, sorted.
    fn names(&self) -> Vec<String> {
        self.0.names()
    }
}

/// The path a read error of `location` is compared with (a missing local folder is a
/// `ModelNotFoundError`; a remote location never is a path).
fn read_path(location: &Location) -> PathBuf {
    match location.as_local() {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(location.to_string()),
    }
}

/// Validate the model at `location` (a local path or an object-store URL) and return its
/// metadata as a dict (GIL released while checking).
#[pyfunction]
#[pyo3(signature = (location, strict, checkpoints, verbose, storage_options=None))]
fn validate(
    py: Python<'_>,
    location: &Bound<'_, PyAny>,
    strict: bool,
    checkpoints: bool,
    verbose: bool,
    storage_options: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let location = location_from_py(location)?;
    let storage = storage_from_py(storage_options)?;
    let options = ValidateOptions::new().strict(strict).checkpoints(checkpoints).storage(storage);
    let path = read_path(&location);
    let metadata =
        py.detach(|| plums_model::validate_at(&location, &options)).map_err(|e| read_err(e, &path, verbose))?;
    value_to_py(py, &metadata.to_value())
}

/// Load the model at `location` (a local path or an object-store URL) as an instance of `cls`
/// (a `Model` class), GIL released while reading, downloading and checking.
#[pyfunction]
#[pyo3(signature = (cls, location, strict, checkpoints, verbose, formats, storage_options=None))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of `Model.load`
fn load<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    location: &Bound<'py, PyAny>,
    strict: bool,
    checkpoints: bool,
    verbose: bool,
    formats: PyRef<'_, VersionFormats>,
    storage_options: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let location = location_from_py(location)?;
    let storage = storage_from_py(storage_options)?;
    let options =
        LoadOptions::new().strict(strict).checkpoints(checkpoints).formats(formats.0.clone()).storage(storage.clone());
    drop(formats);
    let path = read_path(&location);
    let model = py.detach(|| Model::load_at(&location, &options)).map_err(|e| read_err(e, &path, verbose))?;
    let token = Token { state: model.saved_state(), remote: location.as_object().cloned() };
    model_to_py(py, cls, model, token, Some(&storage))
}

/// Save the Python `model` to `location` (a local folder or an object-store prefix); returns
/// its new saved state (GIL released while fetching, hashing, writing and uploading). With
/// `queue`, the model as it is now is queued there instead (a background save), and the
/// save's `SaveHandle` is returned at once.
///
/// `storage_options` reach the destination store. The files of a remote model that were not
/// fetched yet are left to the core when it saves the model back where its saved state is
/// about (it sends none of them), else fetched first with the options of the load that found
/// them (see `components::Unfetched`).
#[pyfunction]
#[pyo3(signature = (
    model, location, formats, force=false, checkpoints=true, lock_timeout=30.0, overwrite_concurrent_changes=false,
    durable=true, keep_unregistered_files=false, storage_options=None, queue=None,
))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of `Model.save`
fn save(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    location: &Bound<'_, PyAny>,
    formats: PyRef<'_, VersionFormats>,
    force: bool,
    checkpoints: bool,
    lock_timeout: f64,
    overwrite_concurrent_changes: bool,
    durable: bool,
    keep_unregistered_files: bool,
    storage_options: Option<&Bound<'_, PyAny>>,
    queue: Option<PyRef<'_, SaveQueue>>,
) -> PyResult<Py<PyAny>> {
    let location = location_from_py(location)?;
    let storage = storage_from_py(storage_options)?;
    if !lock_timeout.is_finite() || lock_timeout < 0.0 {
        return Err(PyValueError::new_err("lock_timeout must be a non-negative number of seconds"));
    }
    let previous = token_remote(model)?;
    let mut core = model_from_py(model, &formats.0, &location, checkpoints)?;
    drop(formats);
    let options = SaveOptions::new()
        .force(force)
        .checkpoints(checkpoints)
        .lock_timeout(std::time::Duration::from_secs_f64(lock_timeout))
        .overwrite_concurrent_changes(overwrite_concurrent_changes)
        .durable(durable)
        .keep_unregistered_files(keep_unregistered_files)
        .storage(storage);
    if let Some(queue) = queue {
        return Ok(Py::new(py, queue.push(core, location, options)?)?.into_any());
    }
    if let Err(e) = py.detach(|| core.save_at(&location, &options)) {
        // A save to an object store whose commit has an unknown outcome (a time-out) records it
        // in the state: keep that, so that the next save recognises its own commit.
        let state = core.saved_state();
        if let (Some(url), Some(dest)) = (state.as_ref().and_then(|s| s.object_url()).cloned(), location.as_object()) {
            if &url == dest {
                model.setattr("_token", Py::new(py, Token { state, remote: Some(url) })?)?;
            }
        }
        return Err(to_py_err(e));
    }
    // A save to an object store makes its prefix the state's remote part; a local save keeps it.
    let remote = location.as_object().cloned().or(previous);
    Ok(Py::new(py, Token { state: core.saved_state(), remote })?.into_any())
}

/// The initialisation at `location` (the core's `initialisation_at`): a `Checkpoint` for a
/// weight file (on an object store: the object at the URL, fetched into the cache and hashed),
/// an instance of `cls` for a PMF model (a folder, or a prefix holding `metadata.yaml`).
#[pyfunction]
#[pyo3(signature = (cls, location, checkpoint_reference, name, formats, storage_options=None))]
fn initialisation<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    location: &Bound<'py, PyAny>,
    checkpoint_reference: Option<Bound<'py, PyAny>>,
    name: Option<Bound<'py, PyAny>>,
    formats: PyRef<'_, VersionFormats>,
    storage_options: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let location = location_from_py(location)?;
    let storage = storage_from_py(storage_options)?;
    let reference: Option<Reference> = match checkpoint_reference {
        Some(r) if !r.is_none() => Some(reference_from_py(&r)?),
        _ => None,
    };
    let name_text: Option<String> = match &name {
        Some(n) if !n.is_none() => Some(match n.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_owned(),
            Err(_) => n.str()?.to_string(),
        }),
        _ => None,
    };
    let options = LoadOptions::new().formats(formats.0.clone()).storage(storage);
    drop(formats);
    let found = py
        .detach(|| plums_model::initialisation_at(&location, reference, name_text.as_deref(), &options))
        .map_err(to_py_err)?;
    let obj = initialisation_to_py(py, cls, Some(found))?;
    if let (Ok(checkpoint), Some(name)) = (obj.cast::<PyCheckpoint>(), name) {
        // The weight file's checkpoint is named by the object given, as in the reference.
        checkpoint.borrow_mut().name = name.unbind();
    }
    Ok(obj)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FORMAT_VERSION", plums_model::FORMAT_VERSION)?;
    m.add_class::<Token>()?;
    m.add_class::<SaveQueue>()?;
    m.add_class::<SaveHandle>()?;
    m.add_class::<retention::PyRetention>()?;
    m.add_class::<catalog::PyModelSummary>()?;
    m.add_function(wrap_pyfunction!(catalog::list_models, m)?)?;
    m.add_class::<Pep440>()?;
    m.add_class::<VersionFormats>()?;
    m.add_class::<PyTraining>()?;
    m.add_class::<PyCheckpoint>()?;
    m.add_class::<PyCheckpointCollection>()?;
    m.add_class::<EpochIndexer>()?;
    m.add_class::<IndexIndexer>()?;
    m.add_function(wrap_pyfunction!(md5_file, m)?)?;
    m.add_function(wrap_pyfunction!(check_configuration, m)?)?;
    m.add_function(wrap_pyfunction!(same_configuration, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(save, m)?)?;
    m.add_function(wrap_pyfunction!(initialisation, m)?)?;
    Ok(())
}
