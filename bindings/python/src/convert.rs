//! Conversions between Python objects and the core's types: YAML values, references,
//! training records, whole models (as descriptions) and metadata.
//!
//! A model description is a dict:
//! `{"producer": {"name", "version_format", "version", "configuration"}, "name", "id",
//!   "build_parameters", "training": {<record>}, "checkpoints": [(ref, path|None, epoch, hash, handle|None)],
//!   "latest": ref|None, "initialisation": None | ("file", name, path, hash, handle|None) |
//!   ("model", <description>, checkpoint_ref), "path": str|None, "checkpoint": ref|None}`.

use std::path::PathBuf;

use plums_model::metadata::Metadata;
use plums_model::yaml::{Mapping, Value};
use plums_model::{
    Checkpoint, Initialisation, Model, Reference, SavedState, Status, Timestamp, Training, TrainingRecord,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::to_py_err;

/// What a model knows of the folder it was loaded from or saved to (opaque to Python).
#[pyclass(module = "plums_model._native", frozen)]
pub struct Token(pub Option<SavedState>);

/// A checkpoint hashed by the core, kept by a Python `Checkpoint` (see `hash_checkpoint`).
#[pyclass(module = "plums_model._native", frozen)]
pub struct NativeCheckpoint(pub Checkpoint);

/// `copy`, `deepcopy` and `pickle` support for the opaque handles that Python objects keep.
///
/// The handles are immutable, so a copy shares them. Pickled, a handle becomes `None`: it
/// describes files of this machine as this process last saw them, which means nothing elsewhere;
/// the unpickled object just loses the shortcut (a save hashes the file again, and checks
/// for concurrent changes as for a model that was never loaded).
macro_rules! opaque_handle_copy_support {
    ($ty:ty) => {
        #[pymethods]
        impl $ty {
            fn __copy__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
                slf
            }

            fn __deepcopy__<'py>(slf: PyRef<'py, Self>, _memo: &Bound<'py, PyAny>) -> PyRef<'py, Self> {
                slf
            }

            /// Unpickles as `None` (`type(None)()`).
            fn __reduce__<'py>(&self, py: Python<'py>) -> (Bound<'py, PyType>, Bound<'py, PyTuple>) {
                (py.None().into_bound(py).get_type(), PyTuple::empty(py))
            }
        }
    };
}

opaque_handle_copy_support!(Token);
opaque_handle_copy_support!(NativeCheckpoint);

/// The core checkpoint for a description entry: the hashed one when it still matches the
/// entry's path and checksum (no second read of the file), else one built from the entry.
fn checkpoint_from_entry(
    name: Reference,
    path: Option<PathBuf>,
    epoch: Option<i64>,
    hash: &str,
    handle: Option<&Bound<'_, PyAny>>,
) -> PyResult<Checkpoint> {
    if let Some(native) = handle.and_then(|h| h.cast::<NativeCheckpoint>().ok()) {
        let c = &native.get().0;
        if c.path == path && c.hash.to_string() == hash {
            let mut c = c.clone();
            c.name = name;
            c.epoch = epoch;
            return Ok(c);
        }
    }
    Checkpoint::new(name, path, epoch, Some(hash)).map_err(to_py_err)
}

/// A Python value as a YAML value (build parameters).
pub fn value_from_py(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 100 {
        return Err(PyValueError::new_err("build parameters are nested more than 100 levels deep"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Int).map_err(|_| {
            PyValueError::new_err(format!(
                "integer {obj} does not fit in 64 bits: PMF build parameters hold 64-bit integers"
            ))
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Binary(b.as_bytes().to_vec()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Mapping::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = value_from_py(&k, depth + 1)?;
            if matches!(key, Value::Seq(_) | Value::Map(_)) {
                return Err(PyTypeError::new_err("build parameter keys must be scalars"));
            }
            map.insert(key, value_from_py(&v, depth + 1)?);
        }
        return Ok(Value::Map(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut seq = Vec::new();
        for item in obj.try_iter()? {
            seq.push(value_from_py(&item?, depth + 1)?);
        }
        return Ok(Value::Seq(seq));
    }
    let datetime = obj.py().import("datetime")?;
    if obj.is_instance(&datetime.getattr("datetime")?)? {
        return Ok(Value::Timestamp(obj.call_method1("isoformat", (" ",))?.extract()?));
    }
    if obj.is_instance(&datetime.getattr("date")?)? {
        return Ok(Value::Timestamp(obj.call_method0("isoformat")?.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot store a {} in build parameters: use dicts, lists, str, int, float, bool, None, bytes or dates",
        obj.get_type().name()?
    )))
}

/// A YAML value as a Python value.
pub fn value_to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Binary(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Timestamp(t) => {
            let datetime = py.import("datetime")?;
            let cls = if t.len() == 10 { datetime.getattr("date")? } else { datetime.getattr("datetime")? };
            match cls.call_method1("fromisoformat", (t.as_str(),)) {
                Ok(v) => v.unbind(),
                Err(_) => t.into_pyobject(py)?.into_any().unbind(),
            }
        }
        Value::Seq(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Map(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(value_to_py(py, k)?, value_to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A Python checkpoint reference (int or str; bool refused).
pub fn reference_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Reference> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyValueError::new_err(format!(
            "invalid checkpoint reference {obj}: a reference is an int or a str, not a bool"
        )));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(Reference::Int)
            .map_err(|_| PyValueError::new_err(format!("checkpoint reference {obj} does not fit in 64 bits")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Reference::Str(s.to_str()?.to_owned()));
    }
    Err(PyValueError::new_err(format!(
        "invalid checkpoint reference {}: a reference is an int or a str",
        obj.repr().map(|r| r.to_string()).unwrap_or_default()
    )))
}

/// A reference as a Python int or str.
pub fn reference_to_py(py: Python<'_>, r: &Reference) -> PyResult<Py<PyAny>> {
    Ok(match r {
        Reference::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Reference::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
    })
}

fn opt_ref_to_py(py: Python<'_>, r: Option<&Reference>) -> PyResult<Py<PyAny>> {
    r.map(|r| reference_to_py(py, r)).unwrap_or_else(|| Ok(py.None()))
}

fn time_from_py(obj: Option<Bound<'_, PyAny>>) -> PyResult<Option<Timestamp>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) if o.is_instance_of::<PyBool>() => {
            Err(PyValueError::new_err("a time is a number of seconds, not a bool"))
        }
        Some(o) if o.is_instance_of::<PyInt>() => {
            o.extract::<i64>().map(|i| Some(Timestamp::Int(i))).map_err(|_| PyValueError::new_err("time out of range"))
        }
        Some(o) => o
            .extract::<f64>()
            .map(|f| Some(Timestamp::Float(f)))
            .map_err(|_| PyValueError::new_err(format!("invalid time {o}: expected a number of seconds or None"))),
    }
}

fn epoch_from_py(obj: Option<Bound<'_, PyAny>>, what: &str) -> PyResult<Option<i64>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) if o.is_instance_of::<PyBool>() => {
            Err(PyValueError::new_err(format!("invalid {what}: an int, not a bool")))
        }
        Some(o) => o
            .extract::<i64>()
            .map(Some)
            .map_err(|_| PyValueError::new_err(format!("invalid {what} {o}: expected an int or None"))),
    }
}

fn time_to_py(py: Python<'_>, t: Option<Timestamp>) -> PyResult<Py<PyAny>> {
    Ok(match t {
        None => py.None(),
        Some(Timestamp::Int(i)) => i.into_pyobject(py)?.into_any().unbind(),
        Some(Timestamp::Float(f)) => f.into_pyobject(py)?.into_any().unbind(),
    })
}

/// A training record from a dict with the metadata's keys.
pub fn record_from_py(d: &Bound<'_, PyDict>) -> PyResult<TrainingRecord> {
    let status: String =
        d.get_item("status")?.map(|s| s.extract()).transpose()?.unwrap_or_else(|| "pending".to_owned());
    Ok(TrainingRecord {
        status: status.parse::<Status>().map_err(to_py_err)?,
        start_epoch: epoch_from_py(d.get_item("start_epoch")?, "start_epoch")?,
        start_time: time_from_py(d.get_item("start_time")?)?,
        latest_epoch: epoch_from_py(d.get_item("latest_epoch")?, "latest_epoch")?,
        latest_time: time_from_py(d.get_item("latest_time")?)?,
        end_epoch: epoch_from_py(d.get_item("end_epoch")?, "end_epoch")?,
        end_time: time_from_py(d.get_item("end_time")?)?,
    })
}

fn record_to_py<'py>(py: Python<'py>, r: &TrainingRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("status", r.status.as_str())?;
    d.set_item("start_epoch", r.start_epoch)?;
    d.set_item("start_time", time_to_py(py, r.start_time)?)?;
    d.set_item("latest_epoch", r.latest_epoch)?;
    d.set_item("latest_time", time_to_py(py, r.latest_time)?)?;
    d.set_item("end_epoch", r.end_epoch)?;
    d.set_item("end_time", time_to_py(py, r.end_time)?)?;
    Ok(d)
}

fn path_to_py(py: Python<'_>, p: Option<&std::path::Path>) -> PyResult<Py<PyAny>> {
    match p {
        None => Ok(py.None()),
        Some(p) => Ok(p.as_os_str().into_pyobject(py)?.into_any().unbind()),
    }
}

/// A loaded model as a description dict.
pub fn describe_model(py: Python<'_>, model: &Model) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    let producer = PyDict::new(py);
    producer.set_item("name", &model.producer.name)?;
    producer.set_item("version_format", model.producer.version.format())?;
    producer.set_item("version", model.producer.version.value())?;
    producer.set_item("configuration", model.producer.configuration.as_path())?;
    d.set_item("producer", producer)?;
    d.set_item("name", &model.name)?;
    d.set_item("id", &model.id)?;
    d.set_item("build_parameters", value_to_py(py, &model.build_parameters)?)?;
    d.set_item("training", record_to_py(py, model.training.record())?)?;
    let checkpoints = PyList::empty(py);
    for (r, c) in model.checkpoint_collection.iter() {
        let item = PyTuple::new(
            py,
            [
                reference_to_py(py, r)?,
                path_to_py(py, c.path.as_deref())?,
                c.epoch.into_pyobject(py)?.into_any().unbind(),
                c.hash.to_string().into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        checkpoints.append(item)?;
    }
    d.set_item("checkpoints", checkpoints)?;
    d.set_item("latest", opt_ref_to_py(py, model.checkpoint_collection.latest())?)?;
    let init: Py<PyAny> = match model.initialisation() {
        None => py.None(),
        Some(Initialisation::File(c)) => PyTuple::new(
            py,
            [
                "file".into_pyobject(py)?.into_any().unbind(),
                reference_to_py(py, &c.name)?,
                path_to_py(py, c.path.as_deref())?,
                c.hash.to_string().into_pyobject(py)?.into_any().unbind(),
            ],
        )?
        .into_any()
        .unbind(),
        Some(Initialisation::Model(m)) => PyTuple::new(
            py,
            [
                "model".into_pyobject(py)?.into_any().unbind(),
                describe_model(py, m)?,
                opt_ref_to_py(py, m.checkpoint())?,
            ],
        )?
        .into_any()
        .unbind(),
    };
    d.set_item("initialisation", init)?;
    d.set_item("path", path_to_py(py, model.path())?)?;
    d.set_item("checkpoint", opt_ref_to_py(py, model.checkpoint())?)?;
    Ok(d.into_any().unbind())
}

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| PyValueError::new_err(format!("model description lacks {key:?}")))
}

fn opt_path(obj: &Bound<'_, PyAny>) -> PyResult<Option<PathBuf>> {
    if obj.is_none() {
        Ok(None)
    } else {
        obj.extract::<PathBuf>().map(Some)
    }
}

/// A core model from a description dict.
pub fn model_from_description(obj: &Bound<'_, PyAny>) -> PyResult<Model> {
    let d = obj.cast::<PyDict>()?;
    let producer = item(d, "producer")?;
    let producer = producer.cast::<PyDict>()?;
    let configuration: PathBuf = item(producer, "configuration")?.extract()?;
    let name: Option<String> =
        item(d, "name")?.extract().map_err(|_| PyValueError::new_err("the model name must be a str or None"))?;
    let id: String = item(d, "id")?.extract().map_err(|_| PyValueError::new_err("the model id must be a str"))?;
    let build_parameters = value_from_py(&item(d, "build_parameters")?, 0)?;
    let producer_name: String =
        item(producer, "name")?.extract().map_err(|_| PyValueError::new_err("the producer name must be a str"))?;
    let version_format: String = item(producer, "version_format")?.extract()?;
    let version: String = item(producer, "version")?.extract()?;
    let mut model = Model::new(&producer_name, &version_format, &version, name, id, &configuration, build_parameters)
        .map_err(to_py_err)?;
    let record = record_from_py(item(d, "training")?.cast::<PyDict>()?)?;
    model.training = Training::new(record).map_err(to_py_err)?;
    for entry in item(d, "checkpoints")?.try_iter()? {
        let entry = entry?;
        let (r, path, epoch, hash, handle): (
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            Option<i64>,
            String,
            Bound<'_, PyAny>,
        ) = entry.extract()?;
        let checkpoint = checkpoint_from_entry(reference_from_py(&r)?, opt_path(&path)?, epoch, &hash, Some(&handle))?;
        model.add_checkpoint(checkpoint).map_err(to_py_err)?;
    }
    let latest = item(d, "latest")?;
    if !latest.is_none() {
        let latest = reference_from_py(&latest)?;
        if model.checkpoint_collection.contains(&latest) {
            model.checkpoint_collection.set_latest(&latest).map_err(to_py_err)?;
        }
    }
    let init = item(d, "initialisation")?;
    if !init.is_none() {
        let kind: String = init.get_item(0)?.extract()?;
        let initialisation = match kind.as_str() {
            "file" => {
                let name = init.get_item(1)?;
                let name = if name.is_instance_of::<PyString>() || name.is_instance_of::<PyInt>() {
                    reference_from_py(&name)?
                } else {
                    Reference::Str(name.str()?.to_string())
                };
                let path = opt_path(&init.get_item(2)?)?;
                let hash: String = init.get_item(3)?.extract()?;
                let handle = init.get_item(4).ok();
                Initialisation::File(checkpoint_from_entry(name, path, None, &hash, handle.as_ref())?)
            }
            _ => {
                let mut nested = model_from_description(&init.get_item(1)?)?;
                let r = init.get_item(2)?;
                nested.set_checkpoint(if r.is_none() { None } else { Some(reference_from_py(&r)?) });
                Initialisation::Model(Box::new(nested))
            }
        };
        model.set_initialisation(Some(initialisation));
    }
    Ok(model)
}

/// Metadata as the nested dict the reference's `validate` returns (paths as str).
pub fn metadata_to_py(py: Python<'_>, metadata: &Metadata) -> PyResult<Py<PyAny>> {
    value_to_py(py, &metadata.to_value())
}
