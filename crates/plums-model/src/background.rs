//! Background saves: the save of a model as it is at the call, run on a worker thread, so that
//! a training loop does not wait while files are copied, hashed, uploaded and synced.
//!
//! A [`SaveQueue`] orders the background saves of one model: they run one at a time, in call
//! order, on one worker thread (started when a save is queued, gone when the queue is empty).
//! Each save starts from the saved state the previous one left (what the folder or prefix holds
//! now), so a queued save is incremental and still refuses another writer's change (no lost
//! update). A save does not stop the ones queued behind it: each writes a complete model.
//!
//! # What is saved
//! The model as it is when [`SaveQueue::save`] is called: the queue keeps a copy (a
//! [`Model`] clone: metadata, checkpoint paths and MD5s, no file content). A checkpoint file
//! is read by the worker later; its MD5, computed when the [`crate::Checkpoint`] was created, is
//! verified while it is copied or uploaded, so a file rewritten in between (a trainer that
//! reuses `last.pt`) fails the save with [`Error::ChecksumMismatch`] naming the file: it is
//! never stored with other bytes than the registered ones. The configuration file's MD5 is
//! taken at the call too, and verified in the same way. (A file that changes while the
//! file system copies it unhashed, because it was unchanged since its MD5 was computed, is
//! detected by its size and modification time after the copy and copied again, hashed.)
//!
//! # Errors
//! A save's error is returned by [`SaveHandle::wait`] (every time it is asked). If nobody
//! asked the handle, the next [`SaveQueue::save`] or [`SaveQueue::wait`] returns it (the
//! oldest first, each once), so none is lost. Dropping the queue waits for its saves (unless
//! [`SaveQueue::abandon_on_drop`]) and writes the errors nobody took to the standard error stream (the last resort: take them with
//! [`SaveQueue::wait`]).
//!
//! A process killed during a background save leaves the old model or the new one, as any save.

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hash::md5_file;
use crate::location::Location;
use crate::model::{Initialisation, Model};
use crate::save::{self, SaveOptions};
use crate::state::SavedState;

/// The background saves of one model, applied in call order (see the module documentation).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// use plums_model::{Location, Model, Producer, SaveOptions, SaveQueue, Version};
/// let mut model = Model::new("id-1", Producer::new("trainer", Version::pep440("1.0.0")?, &cfg)?);
/// model.register_training_start(0)?;
/// let saves = SaveQueue::new();
/// let root = Location::Local(dir.path().join("model"));
/// for epoch in 1..=3 {
///     model.register_epoch(Some(epoch))?;
///     saves.save(&mut model, &root, &SaveOptions::new())?; // returns at once
/// }
/// saves.wait(&mut model)?; // every save done; the model knows what the folder holds
/// # Ok::<(), plums_model::Error>(())
/// ```
pub struct SaveQueue {
    shared: Arc<Shared>,
    /// Whether dropping the queue waits for its saves (see [`SaveQueue::abandon_on_drop`]).
    wait_on_drop: AtomicBool,
}

/// One queued save: its outcome is given by [`SaveHandle::wait`], or by the queue's next save
/// or wait when nobody asked the handle.
#[must_use = "a background save's error is given by `wait` (or by the queue's next save or wait)"]
#[derive(Clone)]
pub struct SaveHandle {
    job: Arc<Job>,
}

/// What the worker reports of one save.
struct Job {
    location: Location,
    outcome: Mutex<Outcome>,
    finished: Condvar,
}

#[derive(Default)]
struct Outcome {
    /// `None` while the save is queued or running.
    result: Option<Result<()>>,
    /// The error was given to someone (the handle, or the queue's next save or wait).
    reported: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    idle: Condvar,
}

#[derive(Default)]
struct Inner {
    tasks: VecDeque<Task>,
    /// A worker thread is running (it exits when `tasks` is empty).
    running: bool,
    /// The worker is running a save (popped from `tasks`).
    busy: bool,
    /// The saved state the last save left, not yet taken back by the model (`wait`): the
    /// state the next save starts from.
    state: Option<Option<SavedState>>,
    /// Where the last successful save wrote, since the last `wait`.
    saved_to: Option<Location>,
    /// Finished saves that failed, oldest first (their error may have been taken since).
    failed: VecDeque<Arc<Job>>,
}

struct Task {
    model: Model,
    options: SaveOptions,
    job: Arc<Job>,
}

/// What [`SaveQueue::drain`] found once every queued save had run.
#[derive(Debug)]
#[non_exhaustive]
pub struct Drained {
    /// The saved state the last save left (`None`: no save ran since the last drain). Give it to
    /// the model ([`Model::set_saved_state`]) so that its next save is incremental.
    pub state: Option<Option<SavedState>>,
    /// Where the last successful save wrote, if one did since the last drain.
    pub saved_to: Option<Location>,
    /// The oldest error nobody has taken yet (the others stay for the next call).
    pub error: Option<Error>,
}

impl Default for SaveQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SaveQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveQueue").field("pending", &self.pending()).finish()
    }
}

impl SaveQueue {
    /// An empty queue (no thread until a save is queued).
    pub fn new() -> Self {
        SaveQueue {
            shared: Arc::new(Shared { inner: Mutex::new(Inner::default()), idle: Condvar::new() }),
            wait_on_drop: AtomicBool::new(true),
        }
    }

    /// Let a drop of the queue return at once instead of waiting for its saves, which go on
    /// until they end or the process exits (then the location holds the old model or the new
    /// one). For a process that bounds its wait at exit, after [`SaveQueue::drain_timeout`].
    pub fn abandon_on_drop(&self) {
        self.wait_on_drop.store(false, Ordering::SeqCst);
    }

    /// Queue a save of `model`, as it is now, to `location`, and return at once.
    ///
    /// First returns the error of an earlier save of this queue that nobody took (nothing is
    /// queued then: the error is the answer of this call). Then applies the retention policy
    /// of `options` to `model` itself ([`SaveOptions::retention`]), checks the model as a save
    /// would ([`Error::WouldNotValidate`] now, not later) and queues a copy of it; the model
    /// may change at once (next epoch, new checkpoint) without changing what this save writes.
    pub fn save(&self, model: &mut Model, location: &Location, options: &SaveOptions) -> Result<SaveHandle> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        save::apply_retention(model, options)?;
        let mut options = options.clone();
        options.retention = None;
        self.push(model.clone(), location.clone(), options)
    }

    /// Queue a save of `snapshot` to `location` as it is (no retention is applied; the
    /// snapshot's saved state is replaced by the one the previous save of the queue leaves,
    /// when there is one). For bindings that build the snapshot themselves; checks it as
    /// [`SaveQueue::save`] does.
    pub fn push(&self, mut snapshot: Model, location: Location, options: SaveOptions) -> Result<SaveHandle> {
        save::preflight_model(&snapshot, &options)?;
        pin_configurations(&mut snapshot)?;
        let job = Arc::new(Job { location, outcome: Mutex::default(), finished: Condvar::new() });
        let mut inner = self.shared.lock();
        inner.tasks.push_back(Task { model: snapshot, options, job: job.clone() });
        if !inner.running {
            inner.running = true;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new().name("pmf-save".into()).spawn(move || shared.work());
            if let Err(e) = spawned {
                inner.running = false;
                inner.tasks.pop_back();
                return Err(Error::io(PathBuf::from(job.location.to_string()), "cannot start the background save", e));
            }
        }
        Ok(SaveHandle { job })
    }

    /// How many saves are queued or running.
    pub fn pending(&self) -> usize {
        let inner = self.shared.lock();
        inner.tasks.len() + usize::from(inner.busy)
    }

    /// Whether no save is queued or running.
    pub fn is_idle(&self) -> bool {
        !self.shared.lock().running
    }

    /// The oldest error of a finished save that nobody took, taken (without waiting).
    pub fn take_error(&self) -> Option<Error> {
        let mut inner = self.shared.lock();
        take_failed(&mut inner)
    }

    /// Wait until every queued save has run, then give `model` the saved state the last one
    /// left (so that its next save, in the background or not, starts from what the folder or
    /// prefix holds) and return the oldest error nobody took.
    pub fn wait(&self, model: &mut Model) -> Result<()> {
        let drained = self.drain();
        if let Some(state) = drained.state {
            model.set_saved_state(state);
        }
        drained.error.map_or(Ok(()), Err)
    }

    /// Wait until every queued save has run; what they left (see [`Drained`]).
    pub fn drain(&self) -> Drained {
        let inner = self.shared.lock();
        let inner = self.shared.idle.wait_while(inner, |i| i.running).unwrap_or_else(|p| p.into_inner());
        drained(inner)
    }

    /// [`SaveQueue::drain`], waiting at most `timeout`: `None` if saves are still running then.
    pub fn drain_timeout(&self, timeout: Duration) -> Option<Drained> {
        let inner = self.shared.lock();
        let (inner, _) =
            self.shared.idle.wait_timeout_while(inner, timeout, |i| i.running).unwrap_or_else(|p| p.into_inner());
        (!inner.running).then(|| drained(inner))
    }
}

/// Record the MD5 of the configuration files of `model` and of its initialisation models as
/// they are now: the save, later, verifies the files against them (a configuration rewritten
/// after the call fails the save with [`Error::ChecksumMismatch`] instead of being stored under
/// the model of the call).
fn pin_configurations(model: &mut Model) -> Result<()> {
    let mut current = Some(model);
    while let Some(model) = current {
        model.configuration_md5 = Some(md5_file(&model.producer.configuration)?);
        current = match model.initialisation_mut() {
            Some(Initialisation::Model(init)) => Some(init.as_mut()),
            _ => None,
        };
    }
    Ok(())
}

fn drained(mut inner: MutexGuard<'_, Inner>) -> Drained {
    Drained { state: inner.state.take(), saved_to: inner.saved_to.take(), error: take_failed(&mut inner) }
}

fn take_failed(inner: &mut Inner) -> Option<Error> {
    while let Some(job) = inner.failed.pop_front() {
        let mut outcome = job.lock();
        if let (Some(Err(e)), false) = (&outcome.result, outcome.reported) {
            let error = e.clone();
            outcome.reported = true;
            return Some(error);
        }
    }
    None
}

impl Drop for SaveQueue {
    fn drop(&mut self) {
        if !self.wait_on_drop.load(Ordering::SeqCst) {
            return;
        }
        let drained = self.drain();
        let mut error = drained.error;
        while let Some(e) = error {
            eprintln!("plums-model: a background save failed and nobody took its error: {e}");
            error = self.take_error();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker: run the queued saves in order until none is left.
    fn work(&self) {
        loop {
            let (mut task, state) = {
                let mut inner = self.lock();
                let Some(task) = inner.tasks.pop_front() else {
                    inner.running = false;
                    self.idle.notify_all();
                    return;
                };
                inner.busy = true;
                (task, inner.state.clone())
            };
            if let Some(state) = state {
                task.model.set_saved_state(state);
            }
            let location = task.job.location.clone();
            let result = catch_unwind(AssertUnwindSafe(|| task.model.save_at(&location, &task.options)))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(Error::io(
                        PathBuf::from(location.to_string()),
                        "the background save stopped",
                        io::Error::other(format!("it panicked: {what}")),
                    ))
                });
            let failed = result.is_err();
            {
                let mut inner = self.lock();
                inner.busy = false;
                // A failed save may still have learnt something (an object-store commit whose
                // answer was lost): the next save starts from the state it left, as after a
                // synchronous save.
                inner.state = Some(task.model.saved_state());
                // The result is recorded before the job is listed as failed, under the same
                // lock: whoever takes it from the list finds it.
                task.job.lock().result = Some(result);
                if !failed {
                    inner.saved_to = Some(location);
                } else {
                    inner.failed.push_back(task.job.clone());
                }
            }
            task.job.finished.notify_all();
        }
    }
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for SaveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveHandle")
            .field("location", &self.job.location.to_string())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl SaveHandle {
    /// Where this save writes.
    pub fn location(&self) -> &Location {
        &self.job.location
    }

    /// Whether the save has finished (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.job.lock().result.is_some()
    }

    /// Wait until the save has finished, at most `timeout`; whether it has.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut outcome = self.job.lock();
        while outcome.result.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            outcome = self.job.finished.wait_timeout(outcome, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Wait until the save has finished; its result (each time it is asked). Its error is
    /// then no longer returned by the queue's next save or wait.
    pub fn wait(&self) -> Result<()> {
        let mut outcome = self.job.lock();
        while outcome.result.is_none() {
            outcome = self.job.finished.wait(outcome).unwrap_or_else(|p| p.into_inner());
        }
        outcome.reported = true;
        outcome.result.clone().unwrap_or(Ok(()))
    }
}
