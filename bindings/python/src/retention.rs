//! `plums_model.Retention`: a retention policy whose rules are the core's `Retention`. The
//! metric is a Python callable, called once per checkpoint when the policy is applied (GIL
//! held, before anything is removed); its values are then handed to the core, which decides.

use std::collections::HashMap;

use plums_model::{Checkpoint, CheckpointCollection, CollectionItem, MetricMode, Reference, Retention};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

use crate::components::Item;
use crate::convert::{reference_from_py, reference_to_py};
use crate::errors::to_py_err;

/// A retention policy: which checkpoints to keep; the others are removed.
///
/// Kept: the latest checkpoint (always), the pinned references ``keep``, the ``last`` N by
/// epoch, every checkpoint whose epoch is a multiple of ``every``, and the ``best`` N by
/// ``metric(checkpoint)`` (``mode="min"`` or ``"max"``); a checkpoint whose metric is None or NaN
/// cannot be ranked and is kept. See the core's `Retention` for the tie rules.
#[pyclass(module = "plums_model", name = "Retention", frozen)]
pub struct PyRetention {
    last: Option<i64>,
    every: Option<i64>,
    best: Option<i64>,
    metric: Option<Py<PyAny>>,
    mode: MetricMode,
    keep: Vec<Reference>,
    keep_objects: Vec<Py<PyAny>>,
}

/// `n` as a count for the core (a negative one is 0, which the core refuses with its message).
fn count(n: Option<i64>) -> Option<usize> {
    n.map(|n| usize::try_from(n).unwrap_or(0))
}

impl PyRetention {
    /// The core policy for `collection`: the metric evaluated now for each of its checkpoints.
    pub fn policy(&self, py: Python<'_>, collection: &CheckpointCollection<Item>) -> PyResult<Retention<Item>> {
        let mut policy = self.rules::<Item>();
        if let (Some(n), Some(metric)) = (self.best, &self.metric) {
            let mut values: HashMap<Reference, f64> = HashMap::new();
            for (reference, item) in collection.iter() {
                let value = metric.bind(py).call1((item.object(py),))?;
                if value.is_none() {
                    continue;
                }
                let number: f64 = value.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "the retention metric returned {} for checkpoint {}: expected a number or None",
                        value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "an object".into()),
                        reference.quoted()
                    ))
                })?;
                values.insert(reference.clone(), number);
            }
            policy = policy.best(count(Some(n)).unwrap_or(0), self.mode, move |item: &Item| {
                values.get(&item.reference()).copied()
            });
        }
        Ok(policy)
    }

    /// The rules other than `best`.
    fn rules<C: CollectionItem>(&self) -> Retention<C> {
        let mut policy = Retention::new();
        if let Some(n) = count(self.last) {
            policy = policy.last(n);
        }
        if let Some(k) = self.every {
            policy = policy.every(k);
        }
        if !self.keep.is_empty() {
            policy = policy.keep(self.keep.iter().cloned());
        }
        policy
    }
}

#[pymethods]
impl PyRetention {
    #[new]
    #[pyo3(signature = (last=None, every=None, best=None, metric=None, mode="min", keep=None))]
    fn new(
        py: Python<'_>,
        last: Option<i64>,
        every: Option<i64>,
        best: Option<i64>,
        metric: Option<Bound<'_, PyAny>>,
        mode: &str,
        keep: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mode: MetricMode = mode.parse().map_err(to_py_err)?;
        let metric = metric.filter(|m| !m.is_none());
        match (&metric, best) {
            (Some(m), _) if !m.is_callable() => {
                return Err(PyTypeError::new_err("metric must be a callable: metric(checkpoint) -> float or None"))
            }
            (Some(_), None) => return Err(PyValueError::new_err("metric is only used with best=N: give best too")),
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "best=N needs a metric: metric(checkpoint) -> float (smaller is better with mode=\"min\")",
                ))
            }
            _ => {}
        }
        let mut keep_objects = Vec::new();
        if let Some(keep) = keep.filter(|k| !k.is_none()) {
            // One reference (a str or an int) is a pin, not an iterable of characters.
            if keep.is_instance_of::<PyString>() || keep.is_instance_of::<PyInt>() {
                keep_objects.push(keep.unbind());
            } else {
                let not_references = || {
                    PyTypeError::new_err(format!(
                        "keep must be a checkpoint reference (an int or a str) or an iterable of them, got {}",
                        keep.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an object".into())
                    ))
                };
                if keep.is_instance_of::<pyo3::types::PyBytes>() {
                    return Err(not_references());
                }
                for r in keep.try_iter().map_err(|_| not_references())? {
                    keep_objects.push(r?.unbind());
                }
            }
        }
        let keep = keep_objects.iter().map(|r| reference_from_py(r.bind(py))).collect::<PyResult<Vec<_>>>()?;
        let made = PyRetention { last, every, best, metric: metric.map(Bound::unbind), mode, keep, keep_objects };
        // The core's rules decide whether the policy is usable (with a stand-in metric).
        let mut check = made.rules::<Checkpoint>();
        if let Some(n) = best {
            check = check.best(count(Some(n)).unwrap_or(0), mode, |_: &Checkpoint| None);
        }
        check.check().map_err(to_py_err)?;
        Ok(made)
    }

    /// int or None: Keep the N checkpoints with the highest epochs.
    #[getter]
    fn last(&self) -> Option<i64> {
        self.last
    }

    /// int or None: Keep every checkpoint whose epoch is a multiple of K.
    #[getter]
    fn every(&self) -> Option<i64> {
        self.every
    }

    /// int or None: Keep the N checkpoints with the best metric.
    #[getter]
    fn best(&self) -> Option<i64> {
        self.best
    }

    /// callable or None: ``metric(checkpoint) -> float or None``.
    #[getter]
    fn metric(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.metric.as_ref().map(|m| m.clone_ref(py))
    }

    /// str: ``"min"`` (a smaller metric is better) or ``"max"``.
    #[getter]
    fn mode(&self) -> String {
        self.mode.to_string()
    }

    /// tuple: The pinned references.
    #[getter]
    fn keep(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.keep.iter().map(|r| reference_to_py(py, r)).collect()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = Vec::new();
        for (name, value) in [("last", self.last), ("every", self.every), ("best", self.best)] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        if let Some(m) = &self.metric {
            parts.push(format!("metric={}", m.bind(py).repr()?));
            parts.push(format!("mode={:?}", self.mode.to_string()));
        }
        if !self.keep_objects.is_empty() {
            let pins: Vec<String> =
                self.keep_objects.iter().map(|r| r.bind(py).repr().map(|r| r.to_string())).collect::<PyResult<_>>()?;
            let comma = if pins.len() == 1 { "," } else { "" };
            parts.push(format!("keep=({}{comma})", pins.join(", ")));
        }
        Ok(format!("Retention({})", parts.join(", ")))
    }
}
