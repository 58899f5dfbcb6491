//! A training session: a guard that records a training's start, epochs and end in the model and
//! saves it, so that a training that ends in any way (its end, an error, a panic, SIGTERM)
//! leaves its metadata saying so, never "running" forever.
//!
//! The session orders calls of the model and of a [`SaveQueue`]; every rule (the status
//! machine, epochs, checkpoints, retention, the save's guarantees) is theirs.
//!
//! SIGTERM (when [`SessionOptions::handle_sigterm`]): while a session runs, the signal only sets
//! a flag. The next [`TrainingSession::epoch`] (or [`TrainingSession::check_terminated`], for a
//! loop that wants to look sooner) records the training `failed`, saves the model, waits for
//! every save, and ends the process as SIGTERM asks: the default action (killed by SIGTERM,
//! exit status 143 in a shell); so does the end of a session during which it arrived. The
//! handlers are `signal-hook`'s, installed once per process: when no session runs, SIGTERM has
//! its default action again, and actions a program registers through `signal-hook` run too. A
//! program with its own `sigaction` handler for SIGTERM sets `handle_sigterm(false)`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::background::SaveQueue;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::model::Model;
use crate::save::SaveOptions;

/// How a [`TrainingSession`] runs.
///
/// ```
/// use plums_model::{SessionOptions, SaveOptions};
/// let options = SessionOptions::new().start_epoch(1).save_every(5).background(false);
/// assert_eq!((options.start_epoch, options.save_every, options.background), (1, 5, false));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionOptions {
    /// The epoch the training starts at (when it is pending; a running training goes on).
    pub start_epoch: i64,
    /// Save every `save_every` epochs (at least 1).
    pub save_every: u64,
    /// Save in the background ([`SaveQueue`]); the session's end always waits for every save.
    pub background: bool,
    /// How to save (the retention policy included: [`SaveOptions::retention`]).
    pub save: SaveOptions,
    /// Record `failed` and save on SIGTERM, then end the process as SIGTERM asks (see the
    /// module documentation). Default true.
    pub handle_sigterm: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            start_epoch: 0,
            save_every: 1,
            background: true,
            save: SaveOptions::new(),
            handle_sigterm: true,
        }
    }
}

impl SessionOptions {
    /// Start at epoch 0, save every epoch in the background, default save options, SIGTERM
    /// handled.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`SessionOptions::start_epoch`].
    pub fn start_epoch(mut self, epoch: i64) -> Self {
        self.start_epoch = epoch;
        self
    }

    /// See [`SessionOptions::save_every`].
    pub fn save_every(mut self, every: u64) -> Self {
        self.save_every = every;
        self
    }

    /// See [`SessionOptions::background`].
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// See [`SessionOptions::save`].
    pub fn save(mut self, save: SaveOptions) -> Self {
        self.save = save;
        self
    }

    /// See [`SessionOptions::handle_sigterm`].
    pub fn handle_sigterm(mut self, handle: bool) -> Self {
        self.handle_sigterm = handle;
        self
    }
}

/// A running training of a model, saved to one location: see the module documentation.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// # let weights = dir.path().join("weights.pt");
/// use plums_model::{Location, Model, Producer, SessionOptions, Version};
/// let mut model = Model::new("id-1", Producer::new("trainer", Version::pep440("1.0.0")?, &cfg)?);
/// let root = Location::Local(dir.path().join("model"));
/// let mut session = model.training_session(&root, SessionOptions::new())?; // running, saved
/// for epoch in 1..=3 {
///     std::fs::write(&weights, format!("weights of epoch {epoch}")).unwrap();
///     let file = dir.path().join(format!("{epoch}.pt"));
///     std::fs::copy(&weights, &file).unwrap();
///     session.epoch_with_file(Some(epoch), &file)?; // registered, saved in the background
/// }
/// session.finish()?; // finished, saved, every save done
/// assert!(model.training.is_finished());
/// # Ok::<(), plums_model::Error>(())
/// ```
pub struct TrainingSession<'m> {
    model: &'m mut Model,
    location: Location,
    options: SessionOptions,
    saves: SaveQueue,
    epochs: u64,
    ended: bool,
    sigterm: Option<&'static Sigterm>,
}

/// The process's SIGTERM actions (`signal-hook`), registered by the first session that handles
/// SIGTERM and kept: `received` is set by every SIGTERM; the default action runs when `armed`
/// (no session is running).
struct Sigterm {
    armed: Arc<AtomicBool>,
    received: Arc<AtomicBool>,
    /// How many sessions handle SIGTERM now.
    sessions: Mutex<usize>,
}

static SIGTERM: OnceLock<std::result::Result<Sigterm, String>> = OnceLock::new();

impl Sigterm {
    /// The process's actions, registered now if they were not; one more session counted.
    fn enter() -> Result<&'static Sigterm> {
        let registered = SIGTERM.get_or_init(|| {
            use signal_hook::{consts::SIGTERM, flag};
            let armed = Arc::new(AtomicBool::new(true));
            let received = Arc::new(AtomicBool::new(false));
            flag::register_conditional_default(SIGTERM, armed.clone())
                .and_then(|_| flag::register(SIGTERM, received.clone()))
                .map(|_| Sigterm { armed, received, sessions: Mutex::new(0) })
                .map_err(|e| e.to_string())
        });
        let sigterm = registered.as_ref().map_err(|reason| Error::InvalidSession {
            reason: format!("cannot handle SIGTERM for the training session ({reason}): use handle_sigterm(false)"),
        })?;
        let mut sessions = sigterm.sessions.lock().unwrap_or_else(|p| p.into_inner());
        *sessions += 1;
        sigterm.armed.store(false, Ordering::SeqCst);
        Ok(sigterm)
    }

    /// One session fewer: the last one gives SIGTERM its default action back.
    fn leave(&self) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        *sessions = sessions.saturating_sub(1);
        if *sessions == 0 {
            self.armed.store(true, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for TrainingSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingSession")
            .field("model", &self.model.id)
            .field("location", &self.location.to_string())
            .field("epochs", &self.epochs)
            .finish()
    }
}

impl Model {
    /// Start a training session saving this model to `location`: the training starts at
    /// `options.start_epoch` (a pending training; a running one, a resumed model, goes on as it
    /// is; a finished or failed one refuses, [`Error::StatusChange`]) and the model is saved,
    /// synchronously. If that save fails, the error is returned and the training is left as it
    /// was (the session did not start).
    pub fn training_session(&mut self, location: &Location, options: SessionOptions) -> Result<TrainingSession<'_>> {
        if options.save_every == 0 {
            return Err(Error::InvalidSession { reason: "save_every must be at least 1 (save every N epochs)".into() });
        }
        let before = self.training.clone();
        if !self.training.is_running() {
            self.training.start(options.start_epoch)?;
        }
        let sigterm = if options.handle_sigterm { Some(Sigterm::enter()?) } else { None };
        let mut session = TrainingSession {
            model: self,
            location: location.clone(),
            options,
            saves: SaveQueue::new(),
            epochs: 0,
            ended: false,
            sigterm,
        };
        // Synchronous: the location says "running" before the loop runs, and a destination that
        // refuses the model says so now. Then the session has not started: the training is as
        // it was (a retry may start it), and nothing records it failed.
        if let Err(e) = session.save_with(false) {
            session.ended = true;
            session.unregister();
            session.model.training = before;
            return Err(e);
        }
        Ok(session)
    }
}

impl TrainingSession<'_> {
    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The model, to change it between epochs (build parameters, a checkpoint added by hand).
    pub fn model_mut(&mut self) -> &mut Model {
        self.model
    }

    /// The epochs registered in this session.
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// Register `epoch` (or latest + 1), add `checkpoint`, and save every
    /// [`SessionOptions::save_every`] calls. After SIGTERM: ends the training and the process
    /// instead (see the module documentation).
    pub fn epoch(&mut self, epoch: Option<i64>, checkpoint: Option<Checkpoint>) -> Result<()> {
        self.check_terminated();
        self.model.register_epoch(epoch)?;
        if let Some(checkpoint) = checkpoint {
            self.model.add_checkpoint(checkpoint)?;
        }
        self.epochs += 1;
        if self.epochs % self.options.save_every == 0 {
            self.save()?;
        }
        Ok(())
    }

    /// [`TrainingSession::epoch`] with the checkpoint of the file `path`, referenced by the
    /// epoch (its MD5 computed now).
    pub fn epoch_with_file(&mut self, epoch: Option<i64>, path: impl AsRef<std::path::Path>) -> Result<()> {
        self.check_terminated();
        let latest = self.model.training.latest_epoch().unwrap_or(self.options.start_epoch);
        let at = epoch.map_or_else(|| latest.checked_add(1).ok_or(Error::EpochOverflow { latest }), Ok)?.max(latest);
        let checkpoint = Checkpoint::new(at, Some(path.as_ref()), Some(at), None)?;
        self.epoch(Some(at), Some(checkpoint))
    }

    /// Save the model now (in the background when the session does).
    pub fn save(&mut self) -> Result<()> {
        self.save_with(self.options.background)
    }

    fn save_with(&mut self, background: bool) -> Result<()> {
        let handle = self.saves.save(self.model, &self.location, &self.options.save)?;
        if !background {
            self.saves.wait(self.model)?;
            handle.wait()?;
        }
        Ok(())
    }

    /// Whether SIGTERM arrived during the session.
    pub fn terminated(&self) -> bool {
        self.sigterm.is_some_and(|s| s.received.load(Ordering::SeqCst))
    }

    /// If SIGTERM arrived: record the training `failed`, save, wait for every save, and end the
    /// process as SIGTERM asks. Returns when it did not arrive.
    pub fn check_terminated(&mut self) {
        if !self.terminated() {
            return;
        }
        if let Err(e) = self.end(false) {
            eprintln!("plums-model: the training session could not save the model's end after SIGTERM: {e}");
        }
        terminate();
    }

    /// End the training normally: record it `finished`, save, and wait for every save.
    pub fn finish(mut self) -> Result<()> {
        self.end(true)
    }

    /// End the training abnormally: record it `failed` (`interrupt`), save, and wait for every
    /// save.
    pub fn fail(mut self) -> Result<()> {
        self.end(false)
    }

    /// Wait for the background saves (their errors kept), record the end, save it and wait:
    /// the first error (of the end's save, else of a background save nobody took).
    fn end(&mut self, success: bool) -> Result<()> {
        self.ended = true;
        let mut earlier = Ok(());
        while let Err(e) = self.saves.wait(self.model) {
            if earlier.is_ok() {
                earlier = Err(e);
            }
        }
        let recorded =
            if self.model.training.is_running() { self.model.register_training_end(success) } else { Ok(()) };
        let saved = recorded.and_then(|()| {
            let handle = self.saves.save(self.model, &self.location, &self.options.save)?;
            self.saves.wait(self.model)?;
            handle.wait()
        });
        let terminated = self.terminated();
        self.unregister();
        if terminated {
            // SIGTERM arrived while the end was being saved: it is saved, now end as asked.
            terminate();
        }
        saved.and(earlier)
    }

    fn unregister(&mut self) {
        if let Some(sigterm) = self.sigterm.take() {
            sigterm.leave();
        }
    }
}

/// End the process as SIGTERM asks (its default action).
fn terminate() -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGTERM);
    // The default action of SIGTERM ends the process; never go on as if nothing happened.
    std::process::exit(128 + signal_hook::consts::SIGTERM)
}

impl Drop for TrainingSession<'_> {
    /// A session dropped without [`TrainingSession::finish`] or [`TrainingSession::fail`] (an
    /// early return with `?`, a panic) records the training `failed` and saves it.
    fn drop(&mut self) {
        if !self.ended {
            if let Err(e) = self.end(false) {
                eprintln!("plums-model: the training session could not save the model's end: {e}");
            }
        }
        self.unregister();
    }
}
