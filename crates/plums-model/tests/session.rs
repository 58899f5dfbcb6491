//! Training sessions ([`TrainingSession`], [`SessionOptions`]): the start, epochs and end of a
//! training recorded and saved; a session that ends any other way (an early `?` return, a
//! panic, SIGTERM) leaves the model saved as `failed`, whole; `save_every`; which trainings
//! may start a session.
//!
//! The SIGTERM tests run a child process: this test binary re-invoked on the `#[ignore]`d
//! [`sigterm_child`] with `PMF_SESSION_ROLE` set (it returns at once without it).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::rng::content;
use plums_model::{
    validate, Error, Location, Md5, Metadata, Model, Producer, Reference, SaveOptions, SessionOptions, Status,
    ValidateOptions, Version,
};

const ROLE: &str = "PMF_SESSION_ROLE";
const DIR: &str = "PMF_SESSION_DIR";
const BIG: &str = "PMF_SESSION_BIG";

/// Far longer than anything here takes: only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// The size of the checkpoint of `epoch` in these tests (`big` for epoch 4 when not 0).
fn size_of(epoch: i64, big: usize) -> usize {
    if big > 0 && epoch == 4 {
        big
    } else {
        1000 + epoch as usize
    }
}

/// A trainer's folder: a configuration, a work folder for checkpoint files, model folders.
struct Bench {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Bench {
    fn new() -> Bench {
        let temp = tempfile::tempdir().unwrap();
        let mut b = Bench::at(temp.path().to_path_buf());
        b._temp = Some(temp);
        b
    }

    /// A bench in `dir` (created), kept after the test.
    fn at(dir: PathBuf) -> Bench {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        std::fs::write(dir.join("config.py"), b"lr = 0.1\n").unwrap();
        Bench { dir, _temp: None }
    }

    /// A model whose training is pending.
    fn model(&self, id: &str) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.dir.join("config.py")).unwrap();
        let mut m = Model::new(id, producer);
        m.name = Some("detector".into());
        m
    }

    /// The checkpoint file of `epoch` (`size_of(epoch, big)` bytes), written.
    fn file(&self, epoch: i64, big: usize) -> PathBuf {
        let path = self.dir.join("work").join(format!("{epoch}.pt"));
        std::fs::write(&path, content(epoch as u64, size_of(epoch, big))).unwrap();
        path
    }

    fn root(&self) -> PathBuf {
        self.dir.join("model")
    }

    fn location(&self) -> Location {
        Location::Local(self.root())
    }
}

/// Sessions in the test process never handle SIGTERM (the harness's process is shared).
fn options() -> SessionOptions {
    SessionOptions::new().handle_sigterm(false)
}

/// The metadata of `root`, validated strictly (every checksum verified).
fn read(root: &Path) -> Metadata {
    validate(root, &ValidateOptions::new().strict(true))
        .unwrap_or_else(|e| panic!("{} does not validate strictly: {e}", root.display()))
}

/// Check that `md` records the checkpoints of epochs `1..=last` with their contents.
fn assert_checkpoints(md: &Metadata, last: i64, big: usize) {
    let found: Vec<(Reference, i64, Md5)> =
        md.model.training.checkpoints.iter().map(|(r, e)| (r.clone(), e.epoch, e.hash)).collect();
    let expected: Vec<(Reference, i64, Md5)> =
        (1..=last).map(|e| (Reference::Int(e), e, Md5::of_bytes(&content(e as u64, size_of(e, big))))).collect();
    assert_eq!(found, expected);
    assert_eq!(md.model.training.latest, (last > 0).then_some(Reference::Int(last)));
}

/// Status, start, latest and end epochs of `md`.
fn epochs(md: &Metadata) -> (Status, Option<i64>, Option<i64>, Option<i64>) {
    let r = &md.model.training.record;
    (r.status, r.start_epoch, r.latest_epoch, r.end_epoch)
}

// ---------------------------------------------------------------------------------------------
// 1. finish and fail
// ---------------------------------------------------------------------------------------------

/// A session of five epochs (in the background, the default) ended by `finish` saves the
/// training `finished` at the last epoch, by `fail` `failed`; every checkpoint is there; the
/// model knows the folder as the session left it (its next save is accepted).
#[test]
fn finish_saves_finished_and_fail_saves_failed_at_the_last_epoch() {
    for finish in [true, false] {
        let b = Bench::new();
        let mut m = b.model("session-1");
        let mut session = m.training_session(&b.location(), options()).unwrap();
        assert!(session.model().training.is_running());
        for e in 1..=4 {
            session.epoch_with_file(Some(e), b.file(e, 0)).unwrap();
        }
        // No epoch given: the next one.
        session.epoch_with_file(None, b.file(5, 0)).unwrap();
        assert_eq!(session.epochs(), 5);
        assert!(!session.terminated());
        if finish {
            session.finish().unwrap();
        } else {
            session.fail().unwrap();
        }
        let status = if finish { Status::Finished } else { Status::Failed };
        let md = read(&b.root());
        assert_eq!(epochs(&md), (status, Some(0), Some(5), Some(5)), "finish: {finish}");
        assert_checkpoints(&md, 5, 0);
        assert_eq!(m.training.status(), status);
        assert_eq!(md.model.training.record, *m.training.record());
        m.name = Some("renamed".into());
        m.save(b.root(), &SaveOptions::new()).unwrap();
        assert_eq!(read(&b.root()).model.name.as_deref(), Some("renamed"));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A session dropped without an end
// ---------------------------------------------------------------------------------------------

/// A training function that returns early with `?` (a checkpoint file that is missing).
fn train_until_a_missing_file(m: &mut Model, b: &Bench) -> plums_model::Result<()> {
    let mut session = m.training_session(&b.location(), options())?;
    for e in 1..=2 {
        session.epoch_with_file(Some(e), b.file(e, 0))?;
    }
    session.epoch_with_file(Some(3), b.dir.join("work").join("missing.pt"))?;
    session.finish()
}

/// A session dropped by an early `?` return saves the training `failed` at the last epoch
/// registered, strictly valid, and the error is the caller's.
#[test]
fn a_session_dropped_by_an_early_return_saves_failed() {
    let b = Bench::new();
    let mut m = b.model("session-early");
    let err = train_until_a_missing_file(&mut m, &b).unwrap_err();
    assert_err!(err, Error::Io { .. }, kind = std::io::ErrorKind::NotFound, &["missing.pt"]);
    let md = read(&b.root());
    assert_eq!(epochs(&md), (Status::Failed, Some(0), Some(2), Some(2)));
    assert_checkpoints(&md, 2, 0);
    assert!(m.training.is_failed());
}

/// A session dropped while a panic unwinds saves the training `failed`, strictly valid.
#[test]
fn a_session_dropped_by_a_panic_saves_failed() {
    let b = Bench::new();
    let mut m = b.model("session-panic");
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut session = m.training_session(&b.location(), options()).unwrap();
        for e in 1..=3 {
            session.epoch_with_file(Some(e), b.file(e, 0)).unwrap();
        }
        panic!("the loss diverged");
    }));
    let panic = outcome.unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the loss diverged"));
    let md = read(&b.root());
    assert_eq!(epochs(&md), (Status::Failed, Some(0), Some(3), Some(3)));
    assert_checkpoints(&md, 3, 0);
    assert!(m.training.is_failed());
}

// ---------------------------------------------------------------------------------------------
// 3. save_every
// ---------------------------------------------------------------------------------------------

/// `save_every(3)` over 7 epochs, saving synchronously: the folder is saved at the start, at
/// epochs 3 and 6, and at the end, and not in between. `save_every(0)` is refused before
/// anything happens.
#[test]
fn save_every_saves_at_its_multiples_and_zero_is_refused() {
    let b = Bench::new();
    let mut m = b.model("session-every");
    let mut session =
        m.training_session(&b.location(), options().save_every(3).background(false).start_epoch(0)).unwrap();
    assert_eq!(epochs(&read(&b.root())), (Status::Running, Some(0), Some(0), None), "the start is saved at once");
    let mut seen = Vec::new();
    for e in 1..=7 {
        session.epoch_with_file(Some(e), b.file(e, 0)).unwrap();
        let md = read(&b.root());
        seen.push(md.model.training.record.latest_epoch.unwrap());
        assert_eq!(md.model.training.record.status, Status::Running);
        assert_checkpoints(&md, *seen.last().unwrap(), 0);
    }
    assert_eq!(seen, [0, 0, 3, 3, 3, 6, 6]);
    session.finish().unwrap();
    let md = read(&b.root());
    assert_eq!(epochs(&md), (Status::Finished, Some(0), Some(7), Some(7)));
    assert_checkpoints(&md, 7, 0);

    let b = Bench::new();
    let mut m = b.model("session-zero");
    let err = m.training_session(&b.location(), options().save_every(0)).unwrap_err();
    assert_err!(err, Error::InvalidSession { .. }, &["invalid training session", "save_every must be at least 1"]);
    assert_eq!(err.code(), "invalid_session");
    assert!(m.training.is_pending(), "nothing started");
    assert!(!b.root().exists(), "nothing saved");
}

// ---------------------------------------------------------------------------------------------
// 4. Which trainings may start a session
// ---------------------------------------------------------------------------------------------

/// A finished training refuses a new session (`StatusChange`), a failed one too, and the
/// folder is left as it was; a running one (a model loaded from a folder a trainer left
/// running) goes on: its start epoch and time are kept, whatever `start_epoch` says.
#[test]
fn a_finished_training_refuses_a_session_and_a_running_one_resumes() {
    for (finish, from) in [(true, Status::Finished), (false, Status::Failed)] {
        let b = Bench::new();
        let mut m = b.model("session-ended");
        let mut session = m.training_session(&b.location(), options()).unwrap();
        session.epoch_with_file(Some(1), b.file(1, 0)).unwrap();
        if finish {
            session.finish().unwrap();
        } else {
            session.fail().unwrap();
        }
        let before = std::fs::read(b.root().join("metadata.yaml")).unwrap();
        let err = m.training_session(&b.location(), options()).unwrap_err();
        assert_err!(
            err,
            Error::StatusChange { from: f, to: Status::Running } if *f == from,
            &[&format!("a {from} training cannot become running")]
        );
        assert_eq!(m.training.status(), from);
        assert_eq!(std::fs::read(b.root().join("metadata.yaml")).unwrap(), before, "the folder is unchanged");
    }

    // A model left running (a trainer killed, the folder saved at its epoch 7 of a training
    // started at 5).
    let b = Bench::new();
    let mut m = b.model("session-resume");
    m.register_training_start(5).unwrap();
    for e in 6..=7 {
        m.register_epoch(Some(e)).unwrap();
        m.add_checkpoint(plums_model::Checkpoint::new(e, Some(b.file(e, 0)), Some(e), None).unwrap()).unwrap();
    }
    m.save(b.root(), &SaveOptions::new()).unwrap();
    let started = m.training.start_time();
    let mut loaded = Model::load(b.root(), &plums_model::LoadOptions::new()).unwrap();
    assert!(loaded.training.is_running());
    let mut session = loaded.training_session(&b.location(), options().start_epoch(0)).unwrap();
    session.epoch_with_file(None, b.file(8, 0)).unwrap();
    session.finish().unwrap();
    let md = read(&b.root());
    assert_eq!(epochs(&md), (Status::Finished, Some(5), Some(8), Some(8)));
    assert_eq!(md.model.training.record.start_time, started);
    let refs: Vec<Reference> = md.model.training.checkpoints.keys().cloned().collect();
    assert_eq!(refs, [6, 7, 8].map(Reference::Int));
}

/// A session whose first save fails (the folder is locked by another writer) is an error of
/// the call, and leaves the model as it can be tried again: not recorded `failed` (the
/// training did not run), nothing saved meanwhile, and the retry once the lock is free works.
#[test]
fn a_session_whose_first_save_fails_can_be_started_again() {
    let b = Bench::new();
    let mut m = b.model("session-retry");
    std::fs::create_dir(b.root()).unwrap();
    let lock = hold_lock(&b.root());
    let impatient = options().background(false).save(SaveOptions::new().lock_timeout(Duration::from_millis(50)));
    let err = m.training_session(&b.location(), impatient.clone()).unwrap_err();
    assert_err!(err, Error::Locked { .. }, &["is being written by"]);
    drop(lock);
    assert!(!b.root().join("metadata.yaml").exists(), "nothing was saved");
    assert!(!m.training.is_failed(), "a session that never started recorded the training failed: {:?}", m.training);
    let mut session = m.training_session(&b.location(), impatient).unwrap();
    session.epoch_with_file(Some(1), b.file(1, 0)).unwrap();
    session.finish().unwrap();
    assert_eq!(epochs(&read(&b.root())).0, Status::Finished);
}

/// Hold the writer lock of the model folder `root` as another writer does.
fn hold_lock(root: &Path) -> std::fs::File {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join(plums_model::LOCK_FILE))
        .unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    writeln!(file, "pid {} on test-host since unix time 0", std::process::id()).unwrap();
    file
}

// ---------------------------------------------------------------------------------------------
// 5. SIGTERM
// ---------------------------------------------------------------------------------------------

/// What follows `tag` in a line of the child's output (the harness may print `test NAME ... `
/// before the child test's first line).
fn after_tag<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| line[i + tag.len()..].trim_end())
}

/// Run the child training loop in `dir` (a checkpoint of `big` bytes at epoch 4 when not 0),
/// send it SIGTERM once it says it is ready, and check how it ended and what it saved.
fn sigterm_trial(big: usize) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigterm_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE, "sigterm")
        .env(DIR, &dir)
        .env(BIG, big.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut said = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let ready = after_tag(&line, "PMF-READY").is_some();
                said.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child never got ready: {said:?}\n{}", err_reader.join().unwrap_or_default());
            }
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {DEADLINE:?} of SIGTERM: {said:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    reader.join().unwrap();
    said.extend(lines.try_iter());
    let stderr = err_reader.join().unwrap();
    assert_eq!(
        status.signal(),
        Some(15),
        "the child ended with {status:?}, not killed by SIGTERM:\n{said:?}\n{stderr}"
    );
    assert!(!status.core_dumped());
    assert!(!stderr.contains("could not save"), "{stderr}");
    let last: i64 = said.iter().filter_map(|l| after_tag(l, "PMF-EPOCH ")).map(|e| e.parse().unwrap()).max().unwrap();
    let root = dir.join("model");
    let md = read(&root);
    assert_eq!(epochs(&md), (Status::Failed, Some(0), Some(last), Some(last)), "{said:?}");
    assert_checkpoints(&md, last, big);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".model.pmf-save-"))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "staging folders left: {leftovers:?}");
    let in_folder = said.iter().find_map(|l| after_tag(l, "PMF-SAVED-EPOCH ")).unwrap_or("?").to_owned();
    println!(
        "SIGTERM after epoch {last} (checkpoint of epoch 4: {big} bytes; the folder's latest epoch when SIGTERM was \
         sent: {in_folder}): the model was saved failed at epoch {last}"
    );
}

/// SIGTERM during a training loop with a session handling it: the process ends killed by
/// SIGTERM, the model saved `failed` at the last epoch registered, strictly valid.
#[test]
fn sigterm_saves_the_model_failed_and_ends_the_process_as_sigterm_asks() {
    sigterm_trial(0);
}

/// The same with a slow background save in flight when SIGTERM arrives (a 64 MiB checkpoint
/// at epoch 4, SIGTERM right after its save is queued): the saved model is whole, with it,
/// and says failed.
#[test]
fn sigterm_during_a_slow_background_save_saves_a_whole_failed_model() {
    sigterm_trial(64 << 20);
}

#[test]
#[ignore = "child process of the SIGTERM tests"]
fn sigterm_child() {
    if std::env::var(ROLE).as_deref() != Ok("sigterm") {
        return;
    }
    let b = Bench::at(PathBuf::from(std::env::var(DIR).unwrap()));
    let big: usize = std::env::var(BIG).unwrap().parse().unwrap();
    let mut m = b.model("session-sigterm");
    let mut session = m.training_session(&b.location(), SessionOptions::new().handle_sigterm(true)).unwrap();
    for e in 1..=2000 {
        let file = b.file(e, big);
        session.epoch_with_file(Some(e), &file).unwrap();
        println!("PMF-EPOCH {e}");
        if (big == 0 && e == 3) || (big > 0 && e == 4) {
            // What the folder holds now: below `e` while the save of epoch `e` is in flight.
            let md = validate(b.root(), &ValidateOptions::new()).ok();
            println!("PMF-SAVED-EPOCH {:?}", md.and_then(|md| md.model.training.record.latest_epoch));
            println!("PMF-READY");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no SIGTERM came");
}
