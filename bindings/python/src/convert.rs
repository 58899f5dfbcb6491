//! Conversions between Python objects and the core's types: YAML values (build parameters),
//! references, times and epochs, paths, and whole models.
//!
//! A model crosses the boundary as its objects: [`model_to_py`] builds the Python `Model`
//! (with native `Training`, `CheckpointCollection` and `Checkpoint` objects) from a core model,
//! and [`model_from_py`] reads a Python `Model`'s attributes into a core model for a save.

use std::path::{Path, PathBuf};

use plums_model::{
    Initialisation, Location, Model, ObjectUrl, Producer, Reference, SavedState, StorageOptions, Timestamp,
    VersionFormats,
};
use plums_model::{Mapping, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::components::{PyCheckpoint, PyCheckpointCollection, PyTraining, RemoteModel, RemoteSource, Unfetched};
use crate::errors::to_py_err;

/// What a model knows of the folder or object-store prefix it was loaded from or saved to
/// (opaque to Python): the core's saved state, and the prefix its object-store part is about.
#[pyclass(module = "plums_model._native", frozen)]
pub struct Token {
    /// The core's saved state.
    pub state: Option<SavedState>,
    /// The prefix the state's object-store part is about (the core keeps that part through a
    /// local save).
    pub remote: Option<ObjectUrl>,
}

impl Token {
    /// No state: a model that was neither loaded nor saved.
    pub fn none() -> Self {
        Token { state: None, remote: None }
    }
}

#[pymethods]
impl Token {
    /// A copy shares the handle (it is immutable).
    fn __copy__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// A deep copy shares the handle: the copy of a loaded model still detects concurrent changes.
    fn __deepcopy__<'py>(slf: PyRef<'py, Self>, _memo: &Bound<'py, PyAny>) -> PyRef<'py, Self> {
        slf
    }

    /// Unpickles as `None` (`type(None)()`): the handle describes files of this machine as this
    /// process last saw them, which means nothing elsewhere.
    fn __reduce__<'py>(&self, py: Python<'py>) -> (Bound<'py, PyType>, Bound<'py, PyTuple>) {
        (py.None().into_bound(py).get_type(), PyTuple::empty(py))
    }
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

/// An optional reference as a Python int, str or `None`.
pub fn opt_ref_to_py(py: Python<'_>, r: Option<&Reference>) -> PyResult<Py<PyAny>> {
    r.map(|r| reference_to_py(py, r)).unwrap_or_else(|| Ok(py.None()))
}

/// A time in seconds (int or float) or `None`; bools refused.
pub fn time_from_py(obj: Option<Bound<'_, PyAny>>) -> PyResult<Option<Timestamp>> {
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

/// An epoch (int) or `None`; bools refused, `what` names it in errors.
pub fn epoch_from_py(obj: Option<Bound<'_, PyAny>>, what: &str) -> PyResult<Option<i64>> {
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

/// A time as the Python int or float it was given as (or `None`).
pub fn time_to_py(py: Python<'_>, t: Option<Timestamp>) -> PyResult<Py<PyAny>> {
    Ok(match t {
        None => py.None(),
        Some(Timestamp::Int(i)) => i.into_pyobject(py)?.into_any().unbind(),
        Some(Timestamp::Float(f)) => f.into_pyobject(py)?.into_any().unbind(),
    })
}

static PATH_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A path as a `pathlib.Path` (or `None`).
pub fn path_to_py(py: Python<'_>, p: Option<&Path>) -> PyResult<Py<PyAny>> {
    match p {
        None => Ok(py.None()),
        Some(p) => {
            let cls = PATH_TYPE.import(py, "pathlib", "Path")?;
            Ok(cls.call1((p.as_os_str(),))?.unbind())
        }
    }
}

/// `None`, or a path given as a str or an `os.PathLike`.
pub fn opt_path(obj: &Bound<'_, PyAny>) -> PyResult<Option<PathBuf>> {
    if obj.is_none() {
        Ok(None)
    } else {
        obj.extract::<PathBuf>().map(Some)
    }
}

fn module_attr<'py>(py: Python<'py>, module: &str, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import(module)?.getattr(name)
}

/// A new instance of `cls` made without calling its `__init__` (`cls.__new__(cls)`).
fn bare_instance<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    cls.getattr("__new__")?.call1((cls,))
}

/// The Python `Model` of class `cls` for a core model (its initialisation model too, of
/// `cls`), with the saved state `token`. For a model loaded from an object store with
/// `storage`, the checkpoints without a local file fetch it on first access of their `path`
/// (not those of its initialisation model, whose checkpoint files are never kept), and so do
/// the initialisation files (its initialisation model's too).
pub fn model_to_py<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    model: Model,
    token: Token,
    storage: Option<&StorageOptions>,
) -> PyResult<Bound<'py, PyAny>> {
    model_to_py_as(py, cls, model, token, storage, false)
}

fn model_to_py_as<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    model: Model,
    token: Token,
    storage: Option<&StorageOptions>,
    initialisation_model: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let obj = bare_instance(cls)?;
    let producer_cls = module_attr(py, "plums_model._components", "Producer")?;
    let producer = bare_instance(&producer_cls)?;
    producer.setattr("name", &model.producer.name)?;
    let version = module_attr(py, "plums_model._version", "version")?
        .call1((model.producer.version.format(), model.producer.version.value()))?;
    producer.setattr("version", version)?;
    producer.setattr("configuration", path_to_py(py, Some(&model.producer.configuration))?)?;
    obj.setattr("producer", producer)?;
    obj.setattr("name", model.name.as_deref())?;
    obj.setattr("id", &model.id)?;
    obj.setattr("build_parameters", value_to_py(py, &model.build_parameters)?)?;
    obj.setattr("training", Py::new(py, PyTraining { inner: model.training.clone() })?)?;
    let location = model.location();
    let remote = match (&location, storage) {
        (Some(Location::Object(_)), Some(storage)) if !initialisation_model => Some(RemoteModel::new(&model, storage)),
        _ => None,
    };
    let collection = PyCheckpointCollection::from_core(py, &model.checkpoint_collection, remote.as_ref())?;
    obj.setattr("checkpoint_collection", Py::new(py, collection)?)?;
    let initialisation = match model.initialisation().cloned() {
        Some(Initialisation::Model(m)) => {
            let token = Token { state: m.saved_state(), remote: None };
            model_to_py_as(py, cls, *m, token, storage, true)?
        }
        Some(Initialisation::File(c)) => {
            let mut checkpoint = PyCheckpoint::from_core(py, c)?;
            if let (None, Some(Location::Object(url)), Some(storage)) = (&checkpoint.path, &location, storage) {
                checkpoint.remote = Some(RemoteSource::Initialisation { url: url.clone(), storage: storage.clone() });
            }
            Py::new(py, checkpoint)?.into_bound(py).into_any()
        }
        None => py.None().into_bound(py),
    };
    obj.setattr("_initialisation", initialisation)?;
    obj.setattr("_path", path_to_py(py, model.path())?)?;
    let location = match &location {
        Some(Location::Local(path)) => path_to_py(py, Some(path))?,
        Some(remote) => remote.to_string().into_pyobject(py)?.into_any().unbind(),
        None => py.None(),
    };
    obj.setattr("_location", location)?;
    obj.setattr("_checkpoint", opt_ref_to_py(py, model.checkpoint())?)?;
    obj.setattr("_token", Py::new(py, token)?)?;
    Ok(obj)
}

/// A core initialisation as a Python `Checkpoint` or `Model` (of class `cls`), or `None`.
pub fn initialisation_to_py<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    initialisation: Option<Initialisation>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match initialisation {
        None => py.None().into_bound(py),
        Some(Initialisation::File(c)) => Py::new(py, PyCheckpoint::from_core(py, c)?)?.into_bound(py).into_any(),
        Some(Initialisation::Model(m)) => model_to_py(py, cls, *m, Token::none(), None)?,
    })
}

/// The prefix the object-store part of a Python `Model`'s saved state is about (`None`: it
/// was never loaded from nor saved to an object store).
pub fn token_remote(obj: &Bound<'_, PyAny>) -> PyResult<Option<ObjectUrl>> {
    let token = obj.getattr("_token")?;
    Ok(token.cast::<Token>().ok().and_then(|t| t.get().remote.clone()))
}

/// A core model from a Python `Model`'s attributes, parsing its producer version with `formats`,
/// for a save to `dest` (`checkpoints`: with the checkpoint files); its initialisation model
/// is saved without them.
pub fn model_from_py(
    obj: &Bound<'_, PyAny>,
    formats: &VersionFormats,
    dest: &Location,
    checkpoints: bool,
) -> PyResult<Model> {
    let remote = token_remote(obj)?;
    let to_known_prefix = matches!((dest.as_object(), &remote), (Some(d), Some(u)) if d == u);
    model_from_py_with(obj, formats, &Unfetched::new(checkpoints, to_known_prefix))
}

fn model_from_py_with(obj: &Bound<'_, PyAny>, formats: &VersionFormats, unfetched: &Unfetched) -> PyResult<Model> {
    let py = obj.py();
    let producer = obj.getattr("producer")?;
    let name: String =
        producer.getattr("name")?.extract().map_err(|_| PyValueError::new_err("the producer name must be a str"))?;
    let version = producer.getattr("version")?;
    let format: String = version.getattr("format")?.extract()?;
    let value = version.str()?.to_str()?.to_owned();
    let version = formats.parse(&format, &value).map_err(to_py_err)?;
    let configuration: PathBuf = producer.getattr("configuration")?.extract()?;
    let producer = Producer::new(name, version, &configuration).map_err(to_py_err)?;
    let id: String = obj.getattr("id")?.extract().map_err(|_| PyValueError::new_err("the model id must be a str"))?;
    let mut model = Model::new(id, producer);
    model.name =
        obj.getattr("name")?.extract().map_err(|_| PyValueError::new_err("the model name must be a str or None"))?;
    model.build_parameters = value_from_py(&obj.getattr("build_parameters")?, 0)?;
    let training = obj.getattr("training")?;
    let training = training
        .cast::<PyTraining>()
        .map_err(|_| PyTypeError::new_err("the model's training must be a plums_model.Training"))?;
    model.training = training.borrow().inner.clone();
    let collection = obj.getattr("checkpoint_collection")?;
    let collection = collection.cast::<PyCheckpointCollection>().map_err(|_| {
        PyTypeError::new_err("the model's checkpoint_collection must be a plums_model.CheckpointCollection")
    })?;
    model.checkpoint_collection = collection.borrow().to_core(py, unfetched)?;
    let init = obj.getattr("_initialisation")?;
    let initialisation = if init.is_none() {
        None
    } else if let Ok(checkpoint) = init.cast::<PyCheckpoint>() {
        let checkpoint = checkpoint.borrow();
        let name = checkpoint.name.bind(py);
        let reference = reference_from_py(name).or_else(|_| name.str().map(|s| Reference::Str(s.to_string())))?;
        Some(Initialisation::File(checkpoint.to_core(py, reference, unfetched)?))
    } else if init.hasattr("checkpoint_collection")? {
        let mut nested = model_from_py_with(&init, formats, &Unfetched::initialisation_model())?;
        let r = init.getattr("_checkpoint")?;
        nested.set_checkpoint(if r.is_none() { None } else { Some(reference_from_py(&r)?) });
        Some(Initialisation::Model(Box::new(nested)))
    } else {
        return Err(PyTypeError::new_err("the initialisation must be a Model, a Checkpoint or None"));
    };
    model.set_initialisation(initialisation);
    let token = obj.getattr("_token")?;
    if let Ok(token) = token.cast::<Token>() {
        model.set_saved_state(token.get().state.clone());
    }
    Ok(model)
}

/// The location a Python argument names: an `os.PathLike` is always a local path; a `str` is
/// parsed by the core ([`Location::parse`]: `scheme://...` is a URL, never a local path, and an
/// unknown scheme is an `InvalidLocationError`).
pub fn location_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Location> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Location::parse(s.to_str()?).map_err(to_py_err);
    }
    obj.extract::<PathBuf>().map(Location::Local).map_err(|_| {
        PyTypeError::new_err(format!(
            "a model location is a str (a path or a URL such as s3://bucket/prefix) or an os.PathLike, not {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

/// Storage options from a Python mapping of str to str, bool (`"true"`/`"false"`), int or float;
/// `None` is no option (the environment only). Unknown keys are the core's
/// `InvalidStorageOption` (a `ValueError`). Messages never show a value (it may be a secret).
pub fn storage_from_py(obj: Option<&Bound<'_, PyAny>>) -> PyResult<StorageOptions> {
    let mut options = StorageOptions::new();
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(options) };
    let items = obj
        .call_method0("items")
        .map_err(|_| PyTypeError::new_err("storage_options must be a dict of str to str, bool or int"))?;
    for item in items.try_iter()? {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let key: String = key.extract().map_err(|_| PyTypeError::new_err("storage option keys must be str"))?;
        let text = if value.is_instance_of::<PyBool>() {
            if value.extract::<bool>()? { "true" } else { "false" }.to_owned()
        } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
            value.str()?.to_str()?.to_owned()
        } else if let Ok(s) = value.cast::<PyString>() {
            s.to_str()?.to_owned()
        } else {
            return Err(PyTypeError::new_err(format!(
                "storage option {key:?}: expected a str, bool or int, not {}",
                value.get_type().name()?
            )));
        };
        options.set(&key, &text).map_err(to_py_err)?;
    }
    Ok(options)
}
