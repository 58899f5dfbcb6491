//! The native model components: `Training`, `Checkpoint` and `CheckpointCollection` (with its
//! `eloc` and `iloc` indexers).
//!
//! Their rules are the core's: `Training` wraps a [`plums_model::Training`] (defaults, cross-checks,
//! status machine), `Checkpoint` checks its file and checksum with [`plums_model::Checkpoint`]
//! and keeps the hashed core checkpoint (so that a save copies an unchanged file without
//! reading it again), and `CheckpointCollection` is a [`plums_model::CheckpointCollection`] of
//! the Python `Checkpoint` objects themselves, so `collection[ref] is checkpoint` holds.

use std::path::PathBuf;
use std::sync::Arc;

use plums_model::{
    Checkpoint, CheckpointCollection, CollectionItem, InitialisationMetadata, Location, Md5, Model, ObjectUrl,
    Reference, Status, StorageOptions, Training, TrainingRecord, ValidateOptions,
};
use pyo3::exceptions::{PyFileNotFoundError, PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PySlice, PyTuple};

use crate::convert::{
    epoch_from_py, opt_path, opt_ref_to_py, path_to_py, reference_from_py, reference_to_py, time_from_py, time_to_py,
};
use crate::errors::to_py_err;
use crate::retention::PyRetention;

// ------------------------------------------------------------------------------------------------
// Training
// ------------------------------------------------------------------------------------------------

/// A model's training state: status, epochs and times (the core's `Training`).
///
/// Missing latest values default to the end values, then the start values; an invalid
/// combination raises `ValueError` listing every broken rule.
#[pyclass(module = "plums_model", name = "Training", subclass)]
pub struct PyTraining {
    /// The core training.
    pub inner: Training,
}

fn status_from_py(value: &Bound<'_, PyAny>) -> PyResult<Status> {
    let text = match value.extract::<String>() {
        Ok(s) => s,
        Err(_) => value.repr()?.to_string(),
    };
    text.parse::<Status>().map_err(to_py_err)
}

#[pymethods]
impl PyTraining {
    #[new]
    #[pyo3(
        signature = (start_time=None, start_epoch=None, latest_time=None, latest_epoch=None, end_time=None, end_epoch=None, status=None),
        text_signature = "(start_time=None, start_epoch=None, latest_time=None, latest_epoch=None, end_time=None, end_epoch=None, status='pending')"
    )]
    #[allow(clippy::too_many_arguments)] // the reference's constructor
    fn new(
        start_time: Option<Bound<'_, PyAny>>,
        start_epoch: Option<Bound<'_, PyAny>>,
        latest_time: Option<Bound<'_, PyAny>>,
        latest_epoch: Option<Bound<'_, PyAny>>,
        end_time: Option<Bound<'_, PyAny>>,
        end_epoch: Option<Bound<'_, PyAny>>,
        status: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let status = match status {
            None => Status::Pending,
            Some(s) => status_from_py(&s)?,
        };
        let record = TrainingRecord {
            status,
            start_epoch: epoch_from_py(start_epoch, "start_epoch")?,
            start_time: time_from_py(start_time)?,
            latest_epoch: epoch_from_py(latest_epoch, "latest_epoch")?,
            latest_time: time_from_py(latest_time)?,
            end_epoch: epoch_from_py(end_epoch, "end_epoch")?,
            end_time: time_from_py(end_time)?,
        };
        Ok(PyTraining { inner: Training::new(record).map_err(to_py_err)? })
    }

    /// str: pending, running, failed or finished; set it through the status machine.
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status().as_str()
    }

    #[setter]
    fn set_status(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let next = status_from_py(value)?;
        self.inner.set_status(next).map_err(to_py_err)
    }

    /// int: The starting epoch, or None.
    #[getter]
    fn start_epoch(&self) -> Option<i64> {
        self.inner.start_epoch()
    }

    /// float: The starting time, or None.
    #[getter]
    fn start_timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.inner.start_time())
    }

    /// int: The latest epoch, or None.
    #[getter]
    fn latest_epoch(&self) -> Option<i64> {
        self.inner.latest_epoch()
    }

    /// float: The latest epoch's time, or None.
    #[getter]
    fn latest_timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.inner.latest_time())
    }

    /// int: The ending epoch, or None.
    #[getter]
    fn end_epoch(&self) -> Option<i64> {
        self.inner.end_epoch()
    }

    /// float: The ending time, or None.
    #[getter]
    fn end_timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        time_to_py(py, self.inner.end_time())
    }

    /// bool: Whether the training is running.
    #[getter]
    fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// bool: Whether the training is pending.
    #[getter]
    fn is_pending(&self) -> bool {
        self.inner.is_pending()
    }

    /// bool: Whether the training is finished.
    #[getter]
    fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// bool: Whether the training is failed.
    #[getter]
    fn is_failed(&self) -> bool {
        self.inner.is_failed()
    }

    /// Start the training at ``epoch``, now.
    fn start(&mut self, epoch: Bound<'_, PyAny>) -> PyResult<()> {
        let epoch = epoch_from_py(Some(epoch), "epoch")?
            .ok_or_else(|| PyValueError::new_err("cannot start a training at epoch None: give an int"))?;
        self.inner.start(epoch).map_err(to_py_err)
    }

    /// Register ``epoch`` (default: latest + 1) as the latest epoch, now.
    ///
    /// Raises ValueError if the training is not running (the reference crashes with a TypeError).
    #[pyo3(signature = (epoch=None))]
    fn register_epoch(&mut self, epoch: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let epoch = epoch_from_py(epoch, "epoch")?;
        self.inner.register_epoch(epoch).map_err(to_py_err)
    }

    /// End the training abnormally: status failed, end set to latest.
    fn interrupt(&mut self) -> PyResult<()> {
        self.inner.interrupt().map_err(to_py_err)
    }

    /// End the training normally: status finished, end set to latest.
    fn end(&mut self) -> PyResult<()> {
        self.inner.end().map_err(to_py_err)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(format!("{}({})", slf.get_type().name()?, slf.borrow().inner.status()))
    }

    /// Copies and pickles rebuild the training from its fields.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let t = slf.borrow();
        let r = t.inner.record();
        let args = PyTuple::new(
            py,
            [
                time_to_py(py, r.start_time)?,
                r.start_epoch.into_pyobject(py)?.unbind(),
                time_to_py(py, r.latest_time)?,
                r.latest_epoch.into_pyobject(py)?.unbind(),
                time_to_py(py, r.end_time)?,
                r.end_epoch.into_pyobject(py)?.unbind(),
                r.status.as_str().into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }
}

// ------------------------------------------------------------------------------------------------
// Checkpoint
// ------------------------------------------------------------------------------------------------

/// A model loaded from an object store, as its checkpoints need it to fetch their files
/// later: the core model (which knows the remote metadata) and the storage options it was
/// loaded with (never shown: they may hold secrets).
#[derive(Clone)]
pub struct RemoteModel {
    model: Arc<Model>,
    storage: StorageOptions,
}

impl RemoteModel {
    /// The remote source of the checkpoints of `model`, loaded with `storage`.
    pub fn new(model: &Model, storage: &StorageOptions) -> Self {
        RemoteModel { model: Arc::new(model.clone()), storage: storage.clone() }
    }
}

/// Where the file of a checkpoint of a remote model is, until it is fetched.
#[derive(Clone)]
pub enum RemoteSource {
    /// The checkpoint `reference` of a remote model.
    Checkpoint {
        /// The model.
        model: RemoteModel,
        /// Its reference there.
        reference: Reference,
    },
    /// The initialisation weight file of the remote model at `url` (an initialisation model's
    /// too), reached with `storage` (never shown).
    Initialisation {
        /// The model's prefix.
        url: ObjectUrl,
        /// The storage options it was loaded with.
        storage: StorageOptions,
    },
}

impl RemoteSource {
    /// The URL of the model the file belongs to.
    fn url(&self) -> String {
        match self {
            RemoteSource::Checkpoint { model, .. } => model.model.location().map(|l| l.to_string()).unwrap_or_default(),
            RemoteSource::Initialisation { url, .. } => url.to_string(),
        }
    }

    /// The file's verified local file (with the checksum `hash`), fetched into the cache by
    /// the core (GIL released).
    fn fetch(&self, py: Python<'_>, hash: Md5) -> PyResult<PathBuf> {
        let source = self.clone();
        let fetched = py.detach(move || match source {
            RemoteSource::Checkpoint { model, reference } => {
                let mut core = (*model.model).clone();
                core.fetch_checkpoint(&reference, &model.storage).map(Some)
            }
            RemoteSource::Initialisation { url, storage } => {
                // Where the file is: the model's metadata says (read again: only a non-strict
                // load leaves the file unfetched, and the core keeps no origin a binding reaches).
                let location = Location::Object(url);
                let options = ValidateOptions::new().checkpoints(false).storage(storage.clone());
                match plums_model::validate_at(&location, &options)?.model.initialisation {
                    Some(InitialisationMetadata::File { path, hash: found, .. }) if found == hash => {
                        plums_model::fetch(&location, &path, hash, &storage).map(Some)
                    }
                    _ => Ok(None),
                }
            }
        });
        match fetched.map_err(to_py_err)? {
            Some(path) => Ok(path),
            None => Err(PyFileNotFoundError::new_err(format!(
                "the initialisation file of the model at {} is not there any more: its metadata no longer registers a file with checksum {hash}",
                self.url()
            ))),
        }
    }
}

/// What a save does with the files of a remote model that were not fetched yet (a non-strict
/// load): fetch them, or leave them to the core.
///
/// The core needs no file of the checkpoints when the save writes no checkpoint file. Nor of
/// any file when it saves the model to the prefix its saved state is about (loaded from or
/// last saved to there): the state knows those objects (their ETags), so the save sends none
/// of them, and knows where to fetch one from if the prefix lost it. Saved anywhere else, they
/// are fetched first, with the storage options of the load that found them (the save's own may
/// be for another store, or none for a local folder); so is the initialisation file of an
/// initialisation model, whose origin the core does not keep.
pub struct Unfetched {
    checkpoints: bool,
    to_known_prefix: bool,
}

impl Unfetched {
    /// For a save (`checkpoints`: whether it writes checkpoint files) whose destination is
    /// (`to_known_prefix`) or is not the prefix its model's saved state is about.
    pub fn new(checkpoints: bool, to_known_prefix: bool) -> Self {
        Unfetched { checkpoints, to_known_prefix }
    }

    /// For the initialisation model of a save (saved without its checkpoint files; its files
    /// are not in the saved state).
    pub fn initialisation_model() -> Self {
        Unfetched { checkpoints: false, to_known_prefix: false }
    }

    /// Whether the file of `source`, named `name` in the saved model, can stay unfetched.
    fn leaves(&self, name: &Reference, source: &RemoteSource) -> bool {
        match source {
            // Under another reference the saved state does not know it: the core would find no object.
            RemoteSource::Checkpoint { reference, .. } => {
                !self.checkpoints || (self.to_known_prefix && name == reference)
            }
            RemoteSource::Initialisation { .. } => self.to_known_prefix,
        }
    }
}

/// A checkpoint: a unique reference (``name``), a data file, an epoch and an MD5 checksum.
///
/// A checkpoint of a model loaded from object storage without its files (``strict=False``),
/// and its initialisation weight file, fetch their file into the local cache, verified, on
/// the first access of ``path``.
///
/// Equality and hashing use ``(epoch, hash)`` only. Raises OSError if ``path`` is given and is
/// not a file, ValueError if ``hash`` is not 32 lowercase hexadecimal digits or neither path
/// nor hash is given.
#[pyclass(module = "plums_model", name = "Checkpoint", subclass)]
pub struct PyCheckpoint {
    /// The reference (any object; an int or a str in a collection).
    pub name: Py<PyAny>,
    /// The data file (`None`: none, or for a remote model's file, not fetched yet).
    pub path: Option<PathBuf>,
    epoch: Option<i64>,
    hash: Md5,
    /// The core checkpoint as hashed from its file (it remembers what the file looked like).
    handle: Option<Checkpoint>,
    /// For a checkpoint of a remote model whose file was not fetched yet: where it is.
    pub remote: Option<RemoteSource>,
}

/// A checksum set on a checkpoint (the core's MD5 syntax).
fn parse_hash(value: &Bound<'_, PyAny>) -> PyResult<Md5> {
    value.extract::<String>().ok().and_then(|s| s.parse::<Md5>().ok()).ok_or_else(|| {
        PyValueError::new_err(format!(
            "Invalid checkpoint hash {}: expected 32 lowercase hexadecimal digits.",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

impl PyCheckpoint {
    /// A Python checkpoint for a core one (loaded or hashed), keeping it as the handle.
    pub fn from_core(py: Python<'_>, c: Checkpoint) -> PyResult<Self> {
        Ok(PyCheckpoint {
            name: reference_to_py(py, &c.name)?,
            path: c.path.clone(),
            epoch: c.epoch,
            hash: c.hash,
            handle: Some(c),
            remote: None,
        })
    }

    /// The core checkpoint named `name`: the hashed one when it still matches the path and
    /// checksum (no second read of the file), else one built from the fields (the core checks
    /// that the path is a file).
    ///
    /// A checkpoint of a remote model whose file was not fetched yet stays so when `unfetched`
    /// says the save needs no file of it; otherwise its file is fetched now (verified, with the
    /// storage options of the load that found it).
    pub fn to_core(&self, py: Python<'_>, name: Reference, unfetched: &Unfetched) -> PyResult<Checkpoint> {
        if let (None, Some(remote)) = (&self.path, &self.remote) {
            if unfetched.leaves(&name, remote) {
                return Checkpoint::new(name, None::<&std::path::Path>, self.epoch, Some(&self.hash.to_string()))
                    .map_err(to_py_err);
            }
            // A save elsewhere needs the file (copied from the cache, checked on copy).
            let path = remote.fetch(py, self.hash)?;
            return Checkpoint::new(name, Some(&path), self.epoch, Some(&self.hash.to_string())).map_err(to_py_err);
        }
        if let Some(c) = &self.handle {
            if c.path == self.path && c.hash == self.hash {
                let mut c = c.clone();
                c.name = name;
                c.epoch = self.epoch;
                return Ok(c);
            }
        }
        Checkpoint::new(name, self.path.as_ref(), self.epoch, Some(&self.hash.to_string())).map_err(to_py_err)
    }

    fn copy_named(&self, name: Py<PyAny>) -> Self {
        PyCheckpoint {
            name,
            path: self.path.clone(),
            epoch: self.epoch,
            hash: self.hash,
            handle: self.handle.clone(),
            remote: self.remote.clone(),
        }
    }
}

#[pymethods]
impl PyCheckpoint {
    #[new]
    #[pyo3(signature = (name, path=None, epoch=None, hash=None))]
    fn new(
        py: Python<'_>,
        name: Py<PyAny>,
        path: Option<Bound<'_, PyAny>>,
        epoch: Option<Bound<'_, PyAny>>,
        hash: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let path = match path {
            Some(p) => opt_path(&p)?,
            None => None,
        };
        let epoch = epoch_from_py(epoch, "epoch")?;
        // The checksum's syntax is the core's rule; only a value that is no str is refused here.
        let hash = match hash {
            Some(h) if !h.is_none() => Some(h.extract::<String>().map_err(|_| {
                PyValueError::new_err(format!(
                    "Invalid checkpoint hash {}: expected 32 lowercase hexadecimal digits.",
                    h
                ))
            })?),
            _ => None,
        };
        let reference = reference_from_py(name.bind(py))
            .or_else(|_| name.bind(py).repr().map(|r| Reference::Str(r.to_string())))?;
        let core =
            py.detach(|| Checkpoint::new(reference, path.as_ref(), epoch, hash.as_deref())).map_err(to_py_err)?;
        Ok(PyCheckpoint { name, path, epoch, hash: core.hash, handle: Some(core), remote: None })
    }

    /// A checkpoint from its fields, without file checks (unpickling).
    #[staticmethod]
    fn _restore(
        name: Py<PyAny>,
        path: Option<Bound<'_, PyAny>>,
        epoch: Option<i64>,
        hash: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let path = match path {
            Some(p) => opt_path(&p)?,
            None => None,
        };
        Ok(PyCheckpoint { name, path, epoch, hash: parse_hash(hash)?, handle: None, remote: None })
    }

    /// hashable: The checkpoint's reference.
    #[getter]
    fn name(&self, py: Python<'_>) -> Py<PyAny> {
        self.name.clone_ref(py)
    }

    #[setter]
    fn set_name(&mut self, name: Py<PyAny>) {
        self.name = name;
    }

    /// Path: The checkpoint data file, or None.
    ///
    /// For a checkpoint (or the initialisation weight file) of a model loaded from object
    /// storage, the verified local cache file: fetched on the first access if the load did not
    /// fetch it (``strict=False``), which can raise ``StorageError`` or ``ChecksumMismatchError``.
    #[getter]
    fn path(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let pending = {
            let c = slf.borrow();
            if c.path.is_none() {
                c.remote.clone()
            } else {
                None
            }
        };
        let Some(source) = pending else { return path_to_py(py, slf.borrow().path.as_deref()) };
        let hash = slf.borrow().hash;
        let fetched = source.fetch(py, hash)?;
        if let Ok(mut c) = slf.try_borrow_mut() {
            // Unless the path was set meanwhile (another thread), this is the checkpoint's file now.
            if c.path.is_none() && c.remote.is_some() {
                c.path = Some(fetched.clone());
                c.remote = None;
            }
        }
        path_to_py(py, Some(&fetched))
    }

    #[setter]
    fn set_path(&mut self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.path = match value {
            Some(v) => opt_path(&v)?,
            None => None,
        };
        // A path set by the caller replaces the remote file.
        self.remote = None;
        Ok(())
    }

    /// bool: Whether ``path`` is a file of object storage not fetched yet (its first access
    /// downloads it).
    #[getter]
    fn _remote_pending(&self) -> bool {
        self.path.is_none() && self.remote.is_some()
    }

    /// int: The epoch the checkpoint was taken at, or None.
    #[getter]
    fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    #[setter]
    fn set_epoch(&mut self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.epoch = epoch_from_py(value, "epoch")?;
        Ok(())
    }

    /// str: The MD5 checksum of the data file (32 lowercase hexadecimal digits).
    #[getter]
    fn hash(&self) -> String {
        self.hash.to_string()
    }

    #[setter]
    fn set_hash(&mut self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let value = value.ok_or_else(|| PyTypeError::new_err("cannot delete a checkpoint's hash"))?;
        self.hash = parse_hash(&value)?;
        Ok(())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let c = slf.borrow();
        let path = match (&c.path, &c.remote) {
            (Some(p), _) => p.display().to_string(),
            // Never fetched by a repr; never showing the storage options.
            (None, Some(remote)) => format!("<not fetched yet, in {}>", remote.url()),
            (None, None) => "None".to_owned(),
        };
        let epoch = c.epoch.map(|e| e.to_string()).unwrap_or_else(|| "None".to_owned());
        Ok(format!(
            "{}(name={}, path={}, epoch={}, hash={})",
            slf.get_type().name()?,
            c.name.bind(py).str()?,
            path,
            epoch,
            c.hash
        ))
    }

    fn __str__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::__repr__(slf)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        match other.cast::<PyCheckpoint>() {
            Ok(o) => {
                let o = o.borrow();
                Ok(pyo3::types::PyBool::new(py, self.epoch == o.epoch && self.hash == o.hash)
                    .to_owned()
                    .into_any()
                    .unbind())
            }
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        (self.epoch, self.hash.to_string()).into_pyobject(py)?.hash()
    }

    fn __copy__(slf: &Bound<'_, Self>) -> PyResult<Py<PyCheckpoint>> {
        let py = slf.py();
        let c = slf.borrow();
        let copy = c.copy_named(c.name.clone_ref(py));
        Py::new(py, copy)
    }

    /// A deep copy keeps the handle (the same file as this process last saw it).
    fn __deepcopy__(slf: &Bound<'_, Self>, memo: &Bound<'_, PyAny>) -> PyResult<Py<PyCheckpoint>> {
        let py = slf.py();
        let c = slf.borrow();
        let name = py.import("copy")?.getattr("deepcopy")?.call1((c.name.bind(py), memo))?.unbind();
        Py::new(py, c.copy_named(name))
    }

    /// Pickled without the handle: it describes files of this machine as this process saw them.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let c = slf.borrow();
        let args = PyTuple::new(
            py,
            [
                c.name.clone_ref(py),
                path_to_py(py, c.path.as_deref())?,
                c.epoch.into_pyobject(py)?.unbind(),
                c.hash.to_string().into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        Ok((py.get_type::<PyCheckpoint>().getattr("_restore")?, args))
    }
}

// ------------------------------------------------------------------------------------------------
// CheckpointCollection
// ------------------------------------------------------------------------------------------------

/// A Python checkpoint in a collection, under its key.
pub struct Item {
    key: Reference,
    obj: Py<PyCheckpoint>,
}

impl Clone for Item {
    fn clone(&self) -> Self {
        Python::attach(|py| Item { key: self.key.clone(), obj: self.obj.clone_ref(py) })
    }
}

impl Item {
    /// The Python `Checkpoint` object.
    pub fn object(&self, py: Python<'_>) -> Py<PyCheckpoint> {
        self.obj.clone_ref(py)
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        if self.obj.is(&other.obj) {
            return true;
        }
        Python::attach(|py| {
            let (a, b) = (self.obj.borrow(py), other.obj.borrow(py));
            a.epoch == b.epoch && a.hash == b.hash
        })
    }
}

impl CollectionItem for Item {
    fn reference(&self) -> Reference {
        self.key.clone()
    }

    fn epoch(&self) -> Option<i64> {
        Python::attach(|py| self.obj.borrow(py).epoch)
    }

    fn renamed(&self, reference: Reference) -> Self {
        Python::attach(|py| {
            let name = reference_to_py(py, &reference).unwrap_or_else(|_| py.None());
            let copy = self.obj.borrow(py).copy_named(name);
            let obj = Py::new(py, copy).expect("allocating a checkpoint");
            Item { key: reference, obj }
        })
    }
}

/// An insertion-ordered mapping of reference to `Checkpoint`, with a ``latest``.
///
/// The rules (duplicates, epochs, ``latest``) are the core's `CheckpointCollection`'s.
#[pyclass(module = "plums_model", name = "CheckpointCollection", subclass)]
pub struct PyCheckpointCollection {
    inner: CheckpointCollection<Item>,
}

impl PyCheckpointCollection {
    /// A collection of new Python checkpoints for a core collection; with `remote` (a model
    /// loaded from object storage), the checkpoints without a local file fetch it on first access.
    pub fn from_core(py: Python<'_>, c: &CheckpointCollection, remote: Option<&RemoteModel>) -> PyResult<Self> {
        let inner = c.try_map(|r, ck| {
            let mut checkpoint = PyCheckpoint::from_core_loaded(py, ck.clone())?;
            if let (None, Some(model)) = (&checkpoint.path, remote) {
                checkpoint.remote = Some(RemoteSource::Checkpoint { model: model.clone(), reference: r.clone() });
            }
            Ok::<_, PyErr>(Item { key: r.clone(), obj: Py::new(py, checkpoint)? })
        })?;
        Ok(PyCheckpointCollection { inner })
    }

    /// The core collection of the checkpoints' current fields (for a save: see [`Unfetched`]).
    pub fn to_core(&self, py: Python<'_>, unfetched: &Unfetched) -> PyResult<CheckpointCollection> {
        self.inner.try_map(|r, item| item.obj.borrow(py).to_core(py, r.clone(), unfetched))
    }

    fn add_object(&mut self, checkpoint: &Bound<'_, PyAny>) -> PyResult<()> {
        let obj = checkpoint
            .cast::<PyCheckpoint>()
            .map_err(|_| PyTypeError::new_err("a CheckpointCollection holds plums_model.Checkpoint objects"))?;
        let key = reference_from_py(obj.borrow().name.bind(checkpoint.py()))?;
        self.inner.add(Item { key, obj: obj.clone().unbind() }).map_err(to_py_err)
    }

    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (r, item) in self.inner.iter() {
            d.set_item(reference_to_py(py, r)?, item.obj.clone_ref(py))?;
        }
        Ok(d)
    }
}

impl PyCheckpoint {
    /// A loaded checkpoint: no handle (the load's saved state knows the files).
    fn from_core_loaded(py: Python<'_>, c: Checkpoint) -> PyResult<Self> {
        let mut p = Self::from_core(py, c)?;
        p.handle = None;
        Ok(p)
    }
}

#[pymethods]
impl PyCheckpointCollection {
    #[new]
    #[pyo3(signature = (*checkpoints))]
    fn new(checkpoints: &Bound<'_, PyTuple>) -> PyResult<Self> {
        let mut c = PyCheckpointCollection { inner: CheckpointCollection::new() };
        for checkpoint in checkpoints.iter() {
            c.add_object(&checkpoint)?;
        }
        Ok(c)
    }

    /// A collection of `(reference, checkpoint)` pairs and its latest (unpickling).
    #[staticmethod]
    fn _restore(items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>, latest: Option<Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut c = PyCheckpointCollection { inner: CheckpointCollection::new() };
        for (key, obj) in items {
            let obj = obj.cast::<PyCheckpoint>()?.clone().unbind();
            c.inner.add(Item { key: reference_from_py(&key)?, obj }).map_err(to_py_err)?;
        }
        if let Some(latest) = latest.filter(|l| !l.is_none()) {
            c.inner.set_latest(&reference_from_py(&latest)?).map_err(to_py_err)?;
        }
        Ok(c)
    }

    /// hashable: The reference of the latest added checkpoint, or None.
    #[getter]
    fn latest(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        opt_ref_to_py(py, self.inner.latest())
    }

    /// Indexer: ``eloc[epoch]`` is a new collection of the checkpoints of that epoch (IndexError if none).
    #[getter]
    fn eloc(slf: &Bound<'_, Self>) -> EpochIndexer {
        EpochIndexer { collection: slf.clone().unbind() }
    }

    /// Indexer: ``iloc[i]`` is a checkpoint by insertion index, ``iloc[a:b]`` a tuple.
    #[getter]
    fn iloc(slf: &Bound<'_, Self>) -> IndexIndexer {
        IndexIndexer { collection: slf.clone().unbind() }
    }

    /// Add a checkpoint under its name; it becomes the latest.
    ///
    /// Raises KeyError if the name is already registered, ValueError if the checkpoint has no
    /// epoch or its name is not an int or a str.
    fn add(&mut self, checkpoint: &Bound<'_, PyAny>) -> PyResult<()> {
        self.add_object(checkpoint)
    }

    fn __getitem__(&self, py: Python<'_>, reference: &Bound<'_, PyAny>) -> PyResult<Py<PyCheckpoint>> {
        reference_from_py(reference)
            .ok()
            .and_then(|r| self.inner.get(&r))
            .map(|item| item.obj.clone_ref(py))
            .ok_or_else(|| PyKeyError::new_err(reference.clone().unbind()))
    }

    fn __setitem__(&mut self, reference: &Bound<'_, PyAny>, checkpoint: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = reference_from_py(reference)?;
        let obj = checkpoint
            .cast::<PyCheckpoint>()
            .map_err(|_| PyTypeError::new_err("a CheckpointCollection holds plums_model.Checkpoint objects"))?;
        let item = Item { key: key.clone(), obj: obj.clone().unbind() };
        self.inner.insert(key, &item).map_err(to_py_err)
    }

    /// Apply the retention ``policy`` (a ``Retention``): remove the checkpoints it does not
    /// keep (never the latest, a pinned one or one of the best); returns their references, in
    /// the collection's order. The metric is called first for every checkpoint: if it raises,
    /// nothing is removed.
    fn prune(slf: &Bound<'_, Self>, policy: PyRef<'_, PyRetention>) -> PyResult<Vec<Py<PyAny>>> {
        let py = slf.py();
        let core = policy.policy(py, &slf.borrow().inner)?;
        let selection = slf.borrow_mut().inner.prune(&core).map_err(to_py_err)?;
        selection.removed.iter().map(|r| reference_to_py(py, r)).collect()
    }

    fn __delitem__(&mut self, reference: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = reference_from_py(reference).map_err(|_| PyKeyError::new_err(reference.clone().unbind()))?;
        self.inner.remove(&key).map(|_| ()).map_err(to_py_err)
    }

    fn __contains__(&self, reference: &Bound<'_, PyAny>) -> bool {
        reference_from_py(reference).is_ok_and(|r| self.inner.contains(&r))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.try_iter().map(|i| i.into_any())
    }

    /// The checkpoint ``reference``, or ``default``.
    #[pyo3(signature = (reference, default=None))]
    fn get(&self, py: Python<'_>, reference: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> Py<PyAny> {
        match reference_from_py(reference).ok().and_then(|r| self.inner.get(&r)) {
            Some(item) => item.obj.clone_ref(py).into_any(),
            None => default.unwrap_or_else(|| py.None()),
        }
    }

    /// The references, in insertion order.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_dict(py)?.call_method0("keys")
    }

    /// The checkpoints, in insertion order.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_dict(py)?.call_method0("values")
    }

    /// The ``(reference, checkpoint)`` pairs, in insertion order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_dict(py)?.call_method0("items")
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let values: Vec<Py<PyCheckpoint>> = slf.borrow().inner.values().map(|i| i.obj.clone_ref(py)).collect();
        Ok(format!("{}({})", slf.get_type().name()?, PyTuple::new(py, values)?.repr()?))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        match other.cast::<PyCheckpointCollection>() {
            Ok(o) => {
                let equal = self.inner == o.borrow().inner;
                Ok(pyo3::types::PyBool::new(py, equal).to_owned().into_any().unbind())
            }
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    #[classattr]
    #[allow(non_upper_case_globals)]
    const __hash__: Option<Py<PyAny>> = None;

    /// Copies and pickles rebuild the collection from its pairs and latest.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let c = slf.borrow();
        let items = pyo3::types::PyList::empty(py);
        for (r, item) in c.inner.iter() {
            items.append((reference_to_py(py, r)?, item.obj.clone_ref(py)))?;
        }
        let args = PyTuple::new(py, [items.into_any().unbind(), opt_ref_to_py(py, c.inner.latest())?])?;
        Ok((py.get_type::<PyCheckpointCollection>().getattr("_restore")?, args))
    }
}

/// ``collection.eloc[epoch]``: the checkpoints of an epoch.
#[pyclass(module = "plums_model._native")]
pub struct EpochIndexer {
    collection: Py<PyCheckpointCollection>,
}

#[pymethods]
impl EpochIndexer {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.collection.bind(py).repr()?.to_string())
    }

    fn __getitem__(&self, py: Python<'_>, epoch: &Bound<'_, PyAny>) -> PyResult<PyCheckpointCollection> {
        let selected = match epoch.extract::<i64>() {
            Ok(e) if epoch.is_instance_of::<PyInt>() => self.collection.borrow(py).inner.by_epoch(e),
            _ => CheckpointCollection::new(),
        };
        if selected.is_empty() {
            return Err(PyIndexError::new_err(format!("Invalid epoch number provided: {epoch}")));
        }
        // As in the reference, a new collection of the selected checkpoints, added by their names.
        let mut out = PyCheckpointCollection { inner: CheckpointCollection::new() };
        for item in selected.values() {
            out.add_object(item.obj.bind(py).as_any())?;
        }
        Ok(out)
    }
}

/// ``collection.iloc[i]``: the checkpoints by insertion index.
#[pyclass(module = "plums_model._native")]
pub struct IndexIndexer {
    collection: Py<PyCheckpointCollection>,
}

#[pymethods]
impl IndexIndexer {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.collection.bind(py).repr()?.to_string())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let c = self.collection.borrow(py);
        let n = c.inner.len();
        if let Ok(slice) = key.cast::<PySlice>() {
            let idx = slice.indices(n as isize)?;
            let mut out = Vec::new();
            let mut i = idx.start;
            while (idx.step > 0 && i < idx.stop) || (idx.step < 0 && i > idx.stop) {
                if let Some((_, item)) = c.inner.by_index(i as usize) {
                    out.push(item.obj.clone_ref(py));
                }
                i += idx.step;
            }
            return Ok(PyTuple::new(py, out)?.into_any().unbind());
        }
        let i: isize = key.extract().map_err(|_| PyTypeError::new_err("iloc indices must be integers or slices"))?;
        let j = if i < 0 { i + n as isize } else { i };
        match (j >= 0).then(|| c.inner.by_index(j as usize)).flatten() {
            Some((_, item)) => Ok(item.obj.clone_ref(py).into_any()),
            None => Err(PyIndexError::new_err("tuple index out of range")),
        }
    }
}
