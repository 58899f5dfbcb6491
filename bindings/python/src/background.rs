//! Background saves for Python: the core's `SaveQueue` (one per Python `Model`, created by its
//! first `save(..., background=True)`) and `SaveHandle`, with every wait done with the GIL
//! released, in slices, so that Ctrl-C (and any signal handler) still runs while a caller waits.

use std::time::{Duration, Instant};

use plums_model::{Location, Model, SaveOptions};
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::convert::{token_remote, Token};
use crate::errors::to_py_err;

/// How long a waiting caller goes without looking at signals.
const SLICE: Duration = Duration::from_millis(50);

/// The background saves of one Python `Model`, applied in call order (the core's `SaveQueue`).
#[pyclass(module = "plums_model._native", frozen, weakref)]
pub struct SaveQueue {
    /// Always `Some` but in `drop`.
    queue: Option<plums_model::SaveQueue>,
}

impl SaveQueue {
    fn queue(&self) -> &plums_model::SaveQueue {
        self.queue.as_ref().expect("the queue is only taken when the object is destroyed")
    }

    /// Queue the save of `snapshot` (a core model read from the Python model now).
    pub fn push(&self, snapshot: Model, location: Location, options: SaveOptions) -> PyResult<SaveHandle> {
        let handle = self.queue().push(snapshot, location, options).map_err(to_py_err)?;
        Ok(SaveHandle { handle })
    }
}

impl Drop for SaveQueue {
    /// A model destroyed with saves in flight waits for them (the core's rule), with the GIL
    /// released so that the other Python threads go on.
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            if queue.is_idle() {
                drop(queue);
            } else {
                Python::attach(|py| py.detach(move || drop(queue)));
            }
        }
    }
}

/// `timeout` in seconds (None: no limit) as a deadline.
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t == f64::INFINITY => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Instant::now() + Duration::from_secs_f64(t))),
        Some(_) => Err(PyValueError::new_err("timeout must be None or a non-negative number of seconds")),
    }
}

/// The next slice to wait (zero once the deadline has passed: one last look).
fn slice(deadline: Option<Instant>) -> Duration {
    match deadline {
        None => SLICE,
        Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
    }
}

/// Whether the deadline has passed.
fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

#[pymethods]
impl SaveQueue {
    #[new]
    fn new() -> Self {
        SaveQueue { queue: Some(plums_model::SaveQueue::new()) }
    }

    /// A copied model has no background saves (the copy is `None`).
    fn __copy__(&self) -> Option<()> {
        None
    }

    /// A deep-copied model has no background saves (the copy is `None`).
    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Option<()> {
        None
    }

    /// Unpickles as `None` (`type(None)()`): saves in flight belong to this process.
    fn __reduce__<'py>(&self, py: Python<'py>) -> (Bound<'py, PyType>, Bound<'py, PyTuple>) {
        (py.None().into_bound(py).get_type(), PyTuple::empty(py))
    }

    /// Let the queue's destruction return at once (the saves go on until the process exits):
    /// for the bounded wait at interpreter exit.
    fn abandon(&self) {
        self.queue().abandon_on_drop();
    }

    /// How many saves are queued or running.
    fn pending(&self) -> usize {
        self.queue().pending()
    }

    /// Raise the oldest error of a finished save that nobody took (without waiting).
    fn raise_error(&self) -> PyResult<()> {
        self.queue().take_error().map_or(Ok(()), |e| Err(to_py_err(e)))
    }

    /// Wait until every queued save has run (at most `timeout` seconds): then give `model` the
    /// saved state the last one left (its `_token`), raise the oldest error nobody took, and
    /// return True. False if saves are still running at the deadline (nothing changed).
    #[pyo3(signature = (model, timeout=None))]
    fn drain(&self, py: Python<'_>, model: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(timeout)?;
        let drained = loop {
            let wait = slice(deadline);
            if let Some(drained) = py.detach(|| self.queue().drain_timeout(wait)) {
                break drained;
            }
            if passed(deadline) {
                return Ok(false);
            }
            py.check_signals()?;
        };
        if let Some(state) = drained.state {
            // A save to an object store makes its prefix the state's remote part; a local save
            // keeps it (as a synchronous save does).
            let remote = match drained.saved_to {
                Some(Location::Object(url)) => Some(url),
                _ => token_remote(model)?,
            };
            model.setattr("_token", Py::new(py, Token { state, remote })?)?;
        }
        drained.error.map_or(Ok(true), |e| Err(to_py_err(e)))
    }
}

/// A background save: ``done()`` and ``result(timeout=None)``.
#[pyclass(module = "plums_model", name = "SaveHandle", frozen)]
pub struct SaveHandle {
    handle: plums_model::SaveHandle,
}

#[pymethods]
impl SaveHandle {
    /// bool: Whether the save has finished (successfully or not).
    fn done(&self) -> bool {
        self.handle.is_finished()
    }

    /// Wait until the save has finished (at most ``timeout`` seconds: ``TimeoutError`` after
    /// that, the save goes on); raise its exception if it failed (each time it is asked). An
    /// exception raised here is no longer raised by the model's next save or
    /// ``wait_for_saves()``.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let deadline = deadline(timeout)?;
        loop {
            let wait = slice(deadline);
            if py.detach(|| self.handle.wait_timeout(wait)) {
                break;
            }
            if passed(deadline) {
                return Err(PyTimeoutError::new_err(format!(
                    "the background save to {} has not finished",
                    self.handle.location()
                )));
            }
            py.check_signals()?;
        }
        py.detach(|| self.handle.wait()).map_err(to_py_err)
    }

    /// str: Where the save writes (a folder, or an object-storage URL).
    #[getter]
    fn location(&self) -> String {
        self.handle.location().to_string()
    }

    fn __repr__(&self) -> String {
        let state = if self.handle.is_finished() { "done" } else { "pending" };
        format!("SaveHandle({:?}, {state})", self.handle.location().to_string())
    }
}
