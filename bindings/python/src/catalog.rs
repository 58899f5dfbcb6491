//! `plums_model.list_models`: every model under a folder or an object-storage prefix, as the
//! core's `list_models` finds and checks them (GIL released), each a `ModelSummary`.

use plums_model::{InitialisationSummary, ListOptions, Location};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{location_from_py, path_to_py, reference_to_py, storage_from_py, time_to_py};
use crate::errors::to_py_err;

/// One model found by ``list_models``: where it is, what its metadata says, whether it is valid.
///
/// The fields read from the metadata are None when ``metadata.yaml`` could not be read.
#[pyclass(module = "plums_model", name = "ModelSummary", frozen)]
pub struct PyModelSummary(plums_model::ModelSummary);

/// A location as the rest of the package gives it: a local folder as a ``Path``, a URL as a ``str``.
fn location_to_py(py: Python<'_>, location: &Location) -> PyResult<Py<PyAny>> {
    match location.as_local() {
        Some(path) => path_to_py(py, Some(path)),
        None => Ok(location.to_string().into_pyobject(py)?.into_any().unbind()),
    }
}

#[pymethods]
impl PyModelSummary {
    /// str: The model's path relative to the listed location (``.`` for the location itself).
    #[getter]
    fn path(&self) -> &str {
        &self.0.relative_path
    }

    /// Path or str: Where the model is (a folder, or the URL of its prefix), for ``Model.load``.
    #[getter]
    fn location(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        location_to_py(py, &self.0.location)
    }

    /// str or None: The model name.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// str or None: The model id.
    #[getter]
    fn id(&self) -> Option<&str> {
        self.0.id.as_deref()
    }

    /// str or None: The producer's name.
    #[getter]
    fn producer(&self) -> Option<&str> {
        self.0.producer.as_deref()
    }

    /// str or None: The producer's version.
    #[getter]
    fn producer_version(&self) -> Option<&str> {
        self.0.producer_version.as_deref()
    }

    /// str or None: The producer's version format (``py_pa``).
    #[getter]
    fn producer_version_format(&self) -> Option<&str> {
        self.0.producer_version_format.as_deref()
    }

    /// str or None: The training status: pending, running, finished or failed.
    #[getter]
    fn status(&self) -> Option<&'static str> {
        self.0.status.map(|s| s.as_str())
    }

    /// int or None: The training's start epoch.
    #[getter]
    fn start_epoch(&self) -> Option<i64> {
        self.0.start_epoch
    }

    /// int or None: The training's latest epoch.
    #[getter]
    fn latest_epoch(&self) -> Option<i64> {
        self.0.latest_epoch
    }

    /// int or None: The training's end epoch.
    #[getter]
    fn end_epoch(&self) -> Option<i64> {
        self.0.end_epoch
    }

    /// int or float or None: The training's start time (a POSIX timestamp).
    #[getter]
    fn start_time(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.0.start_time)
    }

    /// int or float or None: The time of the latest epoch.
    #[getter]
    fn latest_time(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.0.latest_time)
    }

    /// int or float or None: The training's end time.
    #[getter]
    fn end_time(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.0.end_time)
    }

    /// int or None: How many checkpoints are registered.
    #[getter]
    fn checkpoint_count(&self) -> Option<usize> {
        self.0.checkpoint_count
    }

    /// int or None: The total size in bytes of the checkpoint files (None when the tree is invalid).
    #[getter]
    fn checkpoint_bytes(&self) -> Option<u64> {
        self.0.checkpoint_bytes
    }

    /// hashable or None: The latest checkpoint's reference.
    #[getter]
    fn latest(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.0.latest {
            Some(r) => reference_to_py(py, r),
            None => Ok(py.None()),
        }
    }

    /// dict or None: What the model was initialised from: ``{"kind": "weight_file", "name",
    /// "path"}`` or ``{"kind": "model", "name", "id", "checkpoint"}``; None from scratch.
    #[getter]
    fn initialisation<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(init) = &self.0.initialisation else { return Ok(None) };
        let d = PyDict::new(py);
        match init {
            InitialisationSummary::WeightFile { name, path } => {
                d.set_item("kind", "weight_file")?;
                d.set_item("name", name)?;
                d.set_item("path", path)?;
            }
            InitialisationSummary::Model { name, id, checkpoint } => {
                d.set_item("kind", "model")?;
                d.set_item("name", name)?;
                d.set_item("id", id)?;
                d.set_item("checkpoint", reference_to_py(py, checkpoint)?)?;
            }
            other => d.set_item("kind", format!("{other:?}"))?,
        }
        Ok(Some(d))
    }

    /// bool: Whether the model is valid (no offence, and it could be read).
    #[getter]
    fn valid(&self) -> bool {
        self.0.valid
    }

    /// bool: Whether checksums were verified (``strict=True``).
    #[getter]
    fn strict(&self) -> bool {
        self.0.strict
    }

    /// list of Offence: Every offence (``kind``, ``location``, ``message``).
    #[getter]
    fn offences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let offence = py.import("plums_model.exception")?.getattr("Offence")?;
        let list = PyList::empty(py);
        for o in &self.0.offences {
            list.append(offence.call1((o.kind.as_str(), o.location.as_str(), o.message.as_str()))?)?;
        }
        Ok(list)
    }

    /// Exception or None: Why the model could not be examined at all (an unreadable folder, a
    /// model an interrupted save left missing, a store that failed): the exception a load
    /// would raise.
    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.0.error.clone().map(|e| to_py_err(e).into_value(py).into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "ModelSummary(path={:?}, id={:?}, status={:?}, valid={})",
            self.0.relative_path,
            self.0.id.as_deref().unwrap_or("?"),
            self.0.status.map(|s| s.as_str()).unwrap_or("?"),
            if self.0.valid { "True" } else { "False" }
        )
    }
}

/// Every model under `location` (a folder or an object-storage prefix), sorted by path.
#[pyfunction]
#[pyo3(signature = (location, depth=None, strict=false, storage_options=None))]
pub fn list_models(
    py: Python<'_>,
    location: &Bound<'_, PyAny>,
    depth: Option<usize>,
    strict: bool,
    storage_options: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<PyModelSummary>> {
    let location = location_from_py(location)?;
    let options = ListOptions::new().depth(depth).strict(strict).storage(storage_from_py(storage_options)?);
    let found = py.detach(|| plums_model::list_models(&location, &options)).map_err(to_py_err)?;
    Ok(found.into_iter().map(PyModelSummary).collect())
}
