//! Reliability: crash safety, concurrent writers, concurrent readers, full disks, read-only and
//! forbidden folders, and a save/load round trip of arbitrary models.
//!
//! The slow tests are `#[ignore]`d; CI runs them in release mode:
//!
//! ```text
//! cargo test --release -p plums-model --test reliability -- --ignored --nocapture
//! ```
//!
//! Tests that need another process re-invoke this test binary on one `*_child` test with
//! `PMF_RELIABILITY_ROLE` set (the child tests return at once without it). Random choices come
//! from a seed printed by each test; set `PMF_SEED` to replay one. The figures printed by these
//! tests are the ones quoted in docs/RELIABILITY.md.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rng::{repeated_block, Rng};
use common::{strace_injection_unavailable, STRACE_RENAMEAT2_EINVAL};
use plums_model::{
    md5_file, to_yaml, validate, validate_model, Checkpoint, Error, Initialisation, LoadOptions, Mapping, Md5, Model,
    Producer, Reference, SaveOptions, Status, Timestamp, Training, TrainingRecord, ValidateOptions, Value, Version,
    LOCK_FILE,
};

const ROLE: &str = "PMF_RELIABILITY_ROLE";
const DIR: &str = "PMF_RELIABILITY_DIR";

// ---------------------------------------------------------------------------------------------
// Small tools
// ---------------------------------------------------------------------------------------------

/// Re-invoke this test binary on the child test `test` with the given environment.
fn child(test: &str, envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// The slow tests measure timings and race processes against each other: they run one at a
/// time, even when the test harness runs tests in parallel.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Staging folders of the model `root` left next to it.
fn staging_leftovers(root: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.pmf-save-", root.file_name().unwrap().to_string_lossy());
    fs::read_dir(root.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// What a model holds, as a whole: what must be exactly one saved state or the other.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    name: Option<String>,
    id: String,
    build_parameters: String,
    training: String,
    latest: Option<Reference>,
    /// Reference, epoch, file name, MD5 of the file's content.
    checkpoints: Vec<(Reference, i64, String, Md5)>,
    /// Configuration file name and the MD5 of its content.
    configuration: (String, Md5),
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn fingerprint_of_model(m: &Model) -> Fingerprint {
    Fingerprint {
        name: m.name.clone(),
        id: m.id.clone(),
        build_parameters: to_yaml(&m.build_parameters),
        training: format!("{:?}", m.training.record()),
        latest: m.checkpoint_collection.latest().cloned(),
        checkpoints: m
            .checkpoint_collection
            .iter()
            .map(|(r, c)| {
                let p = c.path.as_deref().unwrap();
                (r.clone(), c.epoch.unwrap(), file_name(p), md5_file(p).unwrap())
            })
            .collect(),
        configuration: (file_name(&m.producer.configuration), md5_file(&m.producer.configuration).unwrap()),
    }
}

/// Validate `root` strictly and read what it holds (file contents hashed again here).
fn fingerprint_of_folder(root: &Path) -> Result<Fingerprint, String> {
    let v = validate_model(root, &ValidateOptions::new().strict(true)).map_err(|e| e.to_string())?;
    let m = &v.metadata.model;
    let hash = |rel: &str| md5_file(root.join(rel)).map_err(|e| e.to_string());
    let mut checkpoints = Vec::new();
    for (r, e) in &m.training.checkpoints {
        checkpoints.push((r.clone(), e.epoch, file_name(Path::new(&e.path)), hash(&e.path)?));
    }
    Ok(Fingerprint {
        name: m.name.clone(),
        id: m.id.clone(),
        build_parameters: to_yaml(&v.build_parameters),
        training: format!("{:?}", m.training.record),
        latest: m.training.latest.clone(),
        checkpoints,
        configuration: (m.configuration.path.clone(), hash(&m.configuration.path)?),
    })
}

// ---------------------------------------------------------------------------------------------
// Two known states A and B
// ---------------------------------------------------------------------------------------------

/// Sources of two states of one model that differ in metadata (name, training, latest),
/// build parameters, configuration content and checkpoints (B replaces checkpoint 2's content
/// under the same file name and adds a 1-4 MiB checkpoint 4).
///
/// In *append* mode, B is A plus checkpoint 4 and its metadata (name, training, latest) only:
/// A -> B is a save that only adds a checkpoint (done in place, `save/append.rs`), B -> A
/// removes one (done by a staging exchange).
struct States {
    src: PathBuf,
    append: bool,
}

impl States {
    fn create(dir: &Path, rng: &mut Rng) -> States {
        Self::create_with(dir, rng, false)
    }

    /// `append`: B differs from A by an added checkpoint only (see [`States`]).
    fn create_with(dir: &Path, rng: &mut Rng, append: bool) -> States {
        let src = dir.join("src");
        for sub in ["a", "b"] {
            fs::create_dir_all(src.join(sub)).unwrap();
        }
        if append {
            fs::write(src.join("append-mode"), b"").unwrap();
        }
        fs::write(src.join("a/config.py"), b"state = 'A'\n").unwrap();
        fs::write(src.join("b/config.py"), b"state = 'B'\nlayers = [64, 128, 256]\n").unwrap();
        fs::write(src.join("1.bin"), rng.bytes(64 << 10)).unwrap();
        fs::write(src.join("a/2.bin"), rng.bytes(96 << 10)).unwrap();
        fs::write(src.join("b/2.bin"), rng.bytes(100 << 10)).unwrap();
        fs::write(src.join("3.bin"), rng.bytes(128 << 10)).unwrap();
        let big = (1 << 20) + rng.below(3 << 20) as usize;
        fs::write(src.join("4.bin"), rng.bytes(big)).unwrap();
        States { src, append }
    }

    fn open(dir: &Path) -> States {
        let src = dir.join("src");
        let append = src.join("append-mode").exists();
        States { src, append }
    }

    /// Whether state `b` differs from A in more than metadata and an added checkpoint.
    fn full(&self, b: bool) -> bool {
        b && !self.append
    }

    fn config(&self, b: bool) -> PathBuf {
        self.src.join(if self.full(b) { "b/config.py" } else { "a/config.py" })
    }

    fn params(b: bool) -> Value {
        let mut p = Mapping::new();
        p.insert("v".into(), (if b { "B" } else { "A" }).into());
        if b {
            p.insert("lr".into(), Value::Float(0.5));
            p.insert("layers".into(), Value::Seq(vec![Value::Int(64), Value::Int(128), Value::Int(256)]));
        }
        Value::Map(p)
    }

    fn training(b: bool) -> Training {
        let latest = if b { 4 } else { 3 };
        Training::new(TrainingRecord {
            status: Status::Running,
            start_epoch: Some(0),
            start_time: Some(Timestamp::Float(1_700_000_000.25)),
            latest_epoch: Some(latest),
            latest_time: Some(Timestamp::Float(1_700_000_000.25 + latest as f64)),
            end_epoch: None,
            end_time: None,
        })
        .unwrap()
    }

    fn checkpoint(&self, n: i64, b: bool) -> Checkpoint {
        let file = match n {
            2 if self.full(b) => self.src.join("b/2.bin"),
            2 => self.src.join("a/2.bin"),
            _ => self.src.join(format!("{n}.bin")),
        };
        Checkpoint::new(n, Some(file), Some(n), None).unwrap()
    }

    /// A new model object in state A or B.
    fn fresh(&self, b: bool) -> Model {
        let name = if b { "state-b" } else { "state-a" };
        let (cfg, params) = (self.config(b), Self::params(self.full(b)));
        let mut m =
            Model::new("kill-model", Producer::new("reliability", Version::pep440("1.0.0").unwrap(), cfg).unwrap());
        m.name = Some(name.into());
        m.build_parameters = params;
        m.training = Self::training(b);
        for n in 1..=(if b { 4 } else { 3 }) {
            m.add_checkpoint(self.checkpoint(n, b)).unwrap();
        }
        m
    }

    /// Turn a model loaded in one state into the other state, in place.
    fn mutate(&self, m: &mut Model, b: bool) {
        m.name = Some((if b { "state-b" } else { "state-a" }).into());
        m.build_parameters = Self::params(self.full(b));
        m.producer.configuration = self.config(b);
        m.training = Self::training(b);
        m.checkpoint_collection.insert(2, &self.checkpoint(2, b)).unwrap();
        if b {
            m.add_checkpoint(self.checkpoint(4, true)).unwrap();
        } else {
            m.checkpoint_collection.remove(&Reference::Int(4)).unwrap();
        }
    }

    /// Load the model at `root` and save the other state over it: with a new model object on
    /// even rounds, with the loaded object changed in place on odd rounds (always in append
    /// mode: only a model that knows the folder saves in place).
    /// `before_save` is told whether this save only adds a checkpoint (A -> B in append mode).
    fn flip(&self, root: &Path, round: u64, before_save: impl FnOnce(bool)) -> Result<bool, Error> {
        let mut loaded = Model::load(root, &LoadOptions::new().strict(false))?;
        let to_b = loaded.name.as_deref() == Some("state-a");
        let mut model = if round % 2 == 0 && !self.append {
            self.fresh(to_b)
        } else {
            self.mutate(&mut loaded, to_b);
            loaded
        };
        before_save(self.append && to_b);
        model.save(root, &SaveOptions::new())?;
        Ok(to_b)
    }
}

// ---------------------------------------------------------------------------------------------
// Kill -9 at random instants
// ---------------------------------------------------------------------------------------------

const KILL_TRIALS: usize = 200;

#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn kill_during_save_leaves_the_old_or_the_new_model() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    println!("kill: {} (RENAME_EXCHANGE supported: {})", describe_fs(dir.path()), supports_exchange(dir.path()));
    kill_trials("kill", dir.path(), false, false);
}

/// The same where every other save only adds a checkpoint, which save does in place (new file,
/// then metadata.yaml renamed over the old one) instead of exchanging folders.
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn kill_during_append_saves_leaves_the_old_or_the_new_model() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    kill_trials("kill (append)", dir.path(), false, true);
}

/// The same where `renameat2(RENAME_EXCHANGE)` fails with EINVAL, as on file systems without
/// it (NFS, some FUSE file systems): save then renames files into place one by one,
/// metadata.yaml last. The failure is injected with `strace` (skipped without it).
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn kill_during_save_without_rename_exchange_leaves_the_old_or_the_new_model() {
    let _serial = serial();
    if let Some(why) = strace_injection_unavailable() {
        println!("SKIPPED: strace with --seccomp-bpf and inject is not available ({why})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    kill_trials("kill (no exchange)", dir.path(), true, false);
}

/// The command that runs the kill child: directly, or under strace with RENAME_EXCHANGE failing.
fn kill_child_command(dir: &Path, no_exchange: bool) -> Command {
    let envs = [(ROLE, "kill".to_owned()), (DIR, dir.display().to_string())];
    let direct = child("kill_child", &envs);
    if !no_exchange {
        return direct;
    }
    let mut cmd = Command::new("strace");
    cmd.args(STRACE_RENAMEAT2_EINVAL);
    cmd.arg(direct.get_program()).args(direct.get_args());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn describe_fs(dir: &Path) -> String {
    let out = Command::new("df")
        .arg("--output=fstype")
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    format!("file system {}", out.unwrap_or_default().lines().last().unwrap_or("?").trim())
}

/// Whether the file system of `dir` can exchange two folders atomically.
fn supports_exchange(dir: &Path) -> bool {
    let (x, y) = (dir.join(".probe-x"), dir.join(".probe-y"));
    fs::create_dir_all(&x).unwrap();
    fs::create_dir_all(&y).unwrap();
    let ok =
        rustix::fs::renameat_with(rustix::fs::CWD, &x, rustix::fs::CWD, &y, rustix::fs::RenameFlags::EXCHANGE).is_ok();
    fs::remove_dir(&x).unwrap();
    fs::remove_dir(&y).unwrap();
    ok
}

/// Kill a child that flips the model in `dir` between A and B at random instants, and check
/// the folder after each kill.
fn kill_trials(label: &str, dir: &Path, no_exchange: bool, append: bool) {
    let mut rng = Rng::from_env(label);
    let trials: usize = std::env::var("PMF_KILL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(KILL_TRIALS);
    let states = States::create_with(dir, &mut rng, append);
    let a = fingerprint_of_model(&states.fresh(false));
    let b = fingerprint_of_model(&states.fresh(true));
    assert_ne!(a, b);
    let root = dir.join("model");
    states.fresh(false).save(&root, &SaveOptions::new()).unwrap();

    // How long one round (load, then save the other state) takes here.
    let mut rounds = Vec::new();
    let mut saves = Vec::new();
    for round in 0..10 {
        let start = Instant::now();
        let mut save_start = start;
        states.flip(&root, round, |_| save_start = Instant::now()).unwrap();
        rounds.push(start.elapsed());
        saves.push(save_start.elapsed());
    }
    let round = rounds.iter().sum::<Duration>() / rounds.len() as u32;
    let save = saves.iter().sum::<Duration>() / saves.len() as u32;
    // The round as the child runs it (slower under strace): one child for a while.
    let rest =
        probe(kill_child_command(dir, no_exchange).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let probe_saves = rest.matches("PMF-SAVED").count().max(1);
    let child_round = Duration::from_millis(1500) / probe_saves as u32;
    let round = round.max(child_round);
    // The first round of a fresh child is slower (start-up, and strace): kill within it and
    // the next round and a half.
    let first = rest
        .split("PMF-SAVED 0 after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|us| us.parse().ok())
        .map(Duration::from_micros)
        .unwrap_or(round);
    let window = first + round * 3 / 2;
    println!(
        "{label}: one round (load, then save the other state) takes {round:?} in the child ({first:?} for the first one), \
         save alone {save:?} in this process; kills at random within {window:?} of the child's start"
    );

    let mut failures = Vec::new();
    let mut in_save = 0;
    let mut in_save_with_staging = 0;
    let mut in_append = 0;
    let mut completed_saves = 0u64;
    let mut seen = [0usize; 2];
    let mut pending_leftovers: Vec<PathBuf> = Vec::new();
    let mut interrupted = 0;
    let mut max_leftovers = 0;
    let started = Instant::now();
    let mut failed_trials = 0;
    for trial in 0..trials {
        let before = failures.len();
        let mut proc =
            kill_child_command(dir, no_exchange).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(proc.stdout.take().unwrap());
        let (pid, _) = wait_ready(&mut out);
        // Spread the kills over the first rounds of the child, most of which is saving.
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        let (exited_early, rest, err) = kill_after(delay, pid, &mut proc, &mut out);
        let child_error = err
            .lines()
            .find(|l| l.contains("panicked") || l.contains("round "))
            .map(|l| format!(" (the child said: {l})"))
            .unwrap_or_default();
        if let Some(status) = exited_early {
            failures.push(format!("trial {trial}: the child exited by itself ({status}): {rest}\n{err}"));
            continue;
        }
        let saved = rest.matches("PMF-SAVED").count() as u64;
        completed_saves += saved;
        let last_marker =
            rest.rfind("PMF-SAVING").map(|i| (i, "saving")).max(rest.rfind("PMF-SAVED").map(|i| (i, "saved")));
        let killed_in_save = matches!(last_marker, Some((_, "saving")));
        let leftovers = staging_leftovers(&root);
        if killed_in_save {
            in_save += 1;
            if rest.lines().rfind(|l| l.starts_with("PMF-SAVING")).is_some_and(|l| l.ends_with(" append")) {
                in_append += 1;
            }
            if !leftovers.is_empty() {
                in_save_with_staging += 1;
            }
        }
        max_leftovers = max_leftovers.max(leftovers.len());
        // A save that completed in this trial removed the leftovers of earlier trials.
        if saved > 0 {
            let stale: Vec<_> = pending_leftovers.iter().filter(|p| p.exists()).collect();
            if !stale.is_empty() {
                failures.push(format!("trial {trial}: a completed save left earlier staging folders: {stale:?}"));
            }
        }
        pending_leftovers = leftovers;
        // Killed between the last two renames of a save without RENAME_EXCHANGE: no model folder,
        // its complete new tree next to it. Readers report it and change nothing; the next save
        // puts that tree in place (here: a save of the state it holds).
        if let Err(Error::InterruptedSave { path, leftover }) =
            validate_model(&root, &ValidateOptions::new().strict(true))
        {
            interrupted += 1;
            assert_eq!(path, root);
            assert!(
                !root.exists() && leftover.is_dir(),
                "trial {trial}: {} is not an interrupted save",
                leftover.display()
            );
            match fingerprint_of_folder(&leftover) {
                Ok(f) if f == a || f == b => {
                    let mut model = states.fresh(f == b);
                    if let Err(e) = model.save(&root, &SaveOptions::new()) {
                        failures.push(format!("trial {trial}: the save after an interrupted one failed: {e}"));
                    } else if leftover.exists() {
                        failures.push(format!(
                            "trial {trial}: the save after an interrupted one did not put {} in place",
                            leftover.display()
                        ));
                    }
                }
                other => failures.push(format!(
                    "trial {trial} (killed after {delay:?}{child_error}): the interrupted save's new tree {} is neither A nor B: {other:?}",
                    leftover.display()
                )),
            }
        }
        match fingerprint_of_folder(&root) {
            Ok(f) if f == a => seen[0] += 1,
            Ok(f) if f == b => seen[1] += 1,
            Ok(f) => failures.push(format!(
                "trial {trial} (killed after {delay:?}): the folder is valid but neither A nor B: {f:?}"
            )),
            Err(e) => failures.push(format!(
                "trial {trial} (killed after {delay:?}{child_error}): the folder does not validate strictly: {e}"
            )),
        }
        if failures.len() > before {
            failed_trials += 1;
            // Repair it, so that each failure is counted once.
            states.fresh(false).save(&root, &SaveOptions::new().force(true)).unwrap();
        }
    }
    // The next successful save cleans every leftover.
    states.flip(&root, 0, |_| {}).unwrap();
    let left = staging_leftovers(&root);
    if !left.is_empty() {
        failures.push(format!("after a final save, staging folders remain: {left:?}"));
    }
    // Nor any file an interrupted save wrote into data/checkpoints: only registered checkpoints.
    let extra = unregistered_checkpoint_files(&root);
    if !extra.is_empty() {
        failures.push(format!("after a final save, data/checkpoints holds files no save registered: {extra:?}"));
    }
    fingerprint_of_folder(&root).unwrap();
    println!(
        "{label}: {trials} SIGKILLs in {:?}; {in_save} landed inside save() ({in_save_with_staging} of them with a staging folder on disk, {in_append} in a save that only adds a checkpoint); \
         {completed_saves} saves completed between kills; state after kill: A {} times, B {} times ({interrupted} of them left by a save \
         interrupted between its renames, put in place by the next save); at most {max_leftovers} staging folder(s) left at once; \
         trials failed: {failed_trials}",
        started.elapsed(),
        seen[0],
        seen[1],
    );
    let shown: Vec<&String> = failures.iter().take(5).collect();
    assert!(failures.is_empty(), "{label}: {failed_trials} of {trials} trials failed; the first failures:\n{shown:#?}");
    assert!(in_save >= trials / 4, "only {in_save} of {trials} kills landed inside save: the test did not exercise it");
    if append {
        assert!(in_append >= trials / 10, "only {in_append} of {trials} kills landed inside an append save");
    }
}

/// The entries of `data/checkpoints/` of the model at `root` that its metadata does not register.
fn unregistered_checkpoint_files(root: &Path) -> Vec<String> {
    let registered: Vec<String> = Model::load(root, &LoadOptions::new().strict(false))
        .unwrap()
        .checkpoint_collection
        .values()
        .map(|c| file_name(c.path.as_deref().unwrap()))
        .collect();
    fs::read_dir(root.join("data/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !registered.contains(n))
        .collect()
}

/// Read the child's output up to `PMF-READY pid=<pid>`: its process id (under strace, it is
/// not our direct child).
fn wait_ready(out: &mut impl BufRead) -> (Option<i32>, String) {
    let mut seen = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            return (None, seen);
        }
        seen.push_str(&line);
        if let Some(i) = line.find("PMF-READY pid=") {
            return (line[i + 14..].trim().parse().ok(), seen);
        }
    }
}

/// SIGKILL the announced child process (or our direct child), and reap ours.
fn kill_announced(pid: Option<i32>, proc: &mut std::process::Child) {
    match pid.and_then(rustix::process::Pid::from_raw) {
        Some(pid) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        None => {
            let _ = proc.kill();
        }
    }
    proc.wait().unwrap();
}

/// Let the child `proc` (announced as `pid`) run for `delay`, note whether it exited by itself
/// meanwhile, SIGKILL it and read the rest of its stdout (`out`) and all of its stderr: (its
/// exit status if it exited early, the rest of stdout, stderr).
fn kill_after(
    delay: Duration,
    pid: Option<i32>,
    proc: &mut std::process::Child,
    out: &mut impl Read,
) -> (Option<std::process::ExitStatus>, String, String) {
    std::thread::sleep(delay);
    let exited_early = proc.try_wait().unwrap();
    kill_announced(pid, proc);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    proc.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (exited_early, rest, err)
}

/// Run a probe child (its stdout piped) for 1.5 s after it is ready, SIGKILL it and return what
/// it wrote on stdout after its ready line.
fn probe(mut proc: std::process::Child) -> String {
    let mut out = BufReader::new(proc.stdout.take().unwrap());
    let (pid, _) = wait_ready(&mut out);
    std::thread::sleep(Duration::from_millis(1500));
    kill_announced(pid, &mut proc);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    rest
}

#[test]
#[ignore = "child process of kill_during_save_leaves_the_old_or_the_new_model"]
fn kill_child() {
    if role().as_deref() != Some("kill") {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let states = States::open(&dir);
    let root = dir.join("model");
    println!("PMF-READY pid={}", std::process::id());
    let ready = Instant::now();
    for round in 0.. {
        states
            .flip(&root, round, |append| println!("PMF-SAVING {round}{}", if append { " append" } else { "" }))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        println!("PMF-SAVED {round} after {} us", ready.elapsed().as_micros());
    }
}

// ---------------------------------------------------------------------------------------------
// Kill -9 during background saves
// ---------------------------------------------------------------------------------------------

const BACKGROUND_KILLS: usize = 50;
const BACKGROUND_SEED: &str = "PMF_BACKGROUND_SEED";

/// A training loop saving in the background whose every state is known from its number `k`
/// and a seed: state `k` has run epochs 1..=k (latest epoch `k`, training running) and holds
/// the checkpoints of [`BackgroundLoop::epochs`]`(k)`, each of 1 to 4 MiB of its own content.
/// Every 4th save prunes the collection to its last 3 checkpoints (retention, through the
/// staging exchange: files are removed); the others only add a checkpoint (in place).
struct BackgroundLoop {
    seed: u64,
    /// Where this process writes its checkpoint files.
    work: PathBuf,
    hashes: std::sync::Mutex<std::collections::HashMap<i64, Md5>>,
}

impl BackgroundLoop {
    fn new(seed: u64, work: PathBuf) -> BackgroundLoop {
        fs::create_dir_all(&work).unwrap();
        BackgroundLoop { seed, work, hashes: Default::default() }
    }

    /// The content of the checkpoint of `epoch`: a random 64 KiB block repeated, each copy
    /// starting with its index.
    fn bytes(&self, epoch: i64) -> Vec<u8> {
        let mut rng = Rng((self.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        let size = (1 << 20) + rng.below(3 << 20) as usize;
        repeated_block(&mut rng, size)
    }

    fn hash(&self, epoch: i64) -> Md5 {
        *self.hashes.lock().unwrap().entry(epoch).or_insert_with(|| Md5::of_bytes(&self.bytes(epoch)))
    }

    fn path(&self, epoch: i64) -> PathBuf {
        self.work.join(format!("{epoch}.pt"))
    }

    /// The checkpoint of `epoch`, its file written (through a rename: a process killed
    /// meanwhile leaves no partial file under that name).
    fn checkpoint(&self, epoch: i64) -> Checkpoint {
        let path = self.path(epoch);
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, self.bytes(epoch)).unwrap();
        fs::rename(&tmp, &path).unwrap();
        Checkpoint::new(epoch, Some(&path), Some(epoch), None).unwrap()
    }

    /// The epochs whose checkpoints state `k` holds: since the last prune (at a multiple of 4,
    /// which kept the last 3).
    fn epochs(k: i64) -> std::ops::RangeInclusive<i64> {
        let pruned_at = k - k % 4;
        if pruned_at == 0 {
            1..=k
        } else {
            pruned_at - 2..=k
        }
    }

    /// How save `k` is done: durable (the default), pruning to the last 3 on multiples of 4.
    fn options(k: i64) -> SaveOptions {
        let options = SaveOptions::new().lock_timeout(Duration::from_secs(20));
        if k % 4 == 0 {
            options.retention(plums_model::Retention::new().last(3))
        } else {
            options
        }
    }

    /// A new model object in state `k` (its files written in this process's work folder).
    fn fresh(&self, k: i64) -> Model {
        let cfg = self.work.join("config.py");
        fs::write(&cfg, b"background = True\n").unwrap();
        let producer = Producer::new("reliability", Version::pep440("1.0.0").unwrap(), &cfg).unwrap();
        let mut m = Model::new("background-kill", producer);
        m.name = Some("background".into());
        m.register_training_start(0).unwrap();
        m.register_epoch(Some(k)).unwrap();
        for e in Self::epochs(k) {
            m.add_checkpoint(self.checkpoint(e)).unwrap();
        }
        m
    }

    /// The state of the model folder `root`: it loads strictly (every registered file has the
    /// MD5 its metadata records) and is exactly one state `k` of the loop (every checkpoint of
    /// that state with its own content, and nothing else): `k`.
    fn state_of(&self, root: &Path) -> Result<i64, String> {
        let m = Model::load(root, &LoadOptions::new()).map_err(|e| format!("the strict load failed: {e}"))?;
        let k = m.training.latest_epoch().ok_or("no latest epoch")?;
        if m.training.status() != Status::Running {
            return Err(format!("state {k}: the training is {}", m.training.status()));
        }
        let found: Vec<(Reference, Option<i64>, Md5)> =
            m.checkpoint_collection.iter().map(|(r, c)| (r.clone(), c.epoch, c.hash)).collect();
        let expected: Vec<(Reference, Option<i64>, Md5)> =
            Self::epochs(k).map(|e| (Reference::Int(e), Some(e), self.hash(e))).collect();
        if found != expected {
            return Err(format!("latest epoch {k}, but the checkpoints are not those of state {k}: {found:?}"));
        }
        if m.checkpoint_collection.latest() != (k > 0).then_some(&Reference::Int(k)) {
            return Err(format!("state {k}: latest is {:?}", m.checkpoint_collection.latest()));
        }
        Ok(k)
    }
}

/// A child runs a training loop saving in the background (`SaveQueue`, 1 to 4 MiB
/// checkpoints, durable, retention every 4th save) from the state the folder holds, and is
/// SIGKILLed at a random instant of its first epochs, 50 times. After each kill the folder
/// loads strictly as exactly one state of the loop (each registered checkpoint with its file
/// and the right MD5, never a mixture of two states), no older than before the child ran nor
/// than the last save it saw finish, no newer than the last save it queued; the next child's
/// saves (from that state) succeed. In the end a save removes every leftover.
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn kill_during_background_saves_leaves_the_old_or_the_new_model() {
    let _serial = serial();
    let mut rng = Rng::from_env("kill (background)");
    let kills: usize = std::env::var("PMF_KILL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(BACKGROUND_KILLS);
    let dir = tempfile::tempdir().unwrap();
    let seed = rng.next();
    let lp = BackgroundLoop::new(seed, dir.path().join("parent"));
    let root = dir.path().join("model");
    lp.fresh(0).save(&root, &SaveOptions::new()).unwrap();
    let envs =
        [(ROLE, "background".to_owned()), (DIR, dir.path().display().to_string()), (BACKGROUND_SEED, seed.to_string())];
    let spawn = || child("background_kill_child", &envs).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    // How long a child takes to finish its first saves: one child for a while.
    let said = probe(spawn());
    let saved_after: Vec<Duration> = said
        .lines()
        .filter_map(|l| l.split(" after ").nth(1).filter(|_| l.contains("PMF-SAVED ")))
        .filter_map(|us| us.trim_end_matches(" us").parse().ok())
        .map(Duration::from_micros)
        .collect();
    assert!(saved_after.len() >= 2, "the probe child saved {} times in 1.5 s:\n{said}", saved_after.len());
    // Kills spread over the child's first saves: its start, then several saves (a child
    // started after a kill is slower than the probe: its first durable saves also flush what
    // the killed one left). At least 300 ms.
    let window = (saved_after[saved_after.len().min(6) - 1] * 3).max(Duration::from_millis(300));
    let mut state = lp.state_of(&root).expect("the probe left a model");
    println!(
        "kill (background): the probe child finished {} saves in 1.5 s; kills at random within {window:?} of each child's start",
        saved_after.len()
    );

    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut loads_ok, mut advanced, mut in_flight, mut saves_done, mut first_saves_ok, mut queued_total) =
        (0, 0, 0, 0, 0, 0);
    for trial in 0..kills {
        let mut proc = spawn();
        let mut out = BufReader::new(proc.stdout.take().unwrap());
        let (pid, seen) = wait_ready(&mut out);
        let from: Option<i64> =
            seen.lines().find_map(|l| l.split("PMF-STATE ").nth(1)).and_then(|k| k.trim().parse().ok());
        if pid.is_none() || from != Some(state) {
            kill_announced(pid, &mut proc);
            let mut err = String::new();
            proc.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("trial {trial}: the child did not start from state {state}: {seen}\n{err}");
        }
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        let (exited_early, rest, err) = kill_after(delay, pid, &mut proc, &mut out);
        let numbers = |tag: &str| -> Vec<i64> {
            rest.lines().filter_map(|l| l.split(tag).nth(1)?.split(' ').next()?.trim().parse().ok()).collect()
        };
        let (queued, saved) = (numbers("PMF-QUEUED "), numbers("PMF-SAVED "));
        let what = format!(
            "trial {trial} (killed {delay:?} after its start, from state {state}, queued {queued:?}, saved {saved:?})"
        );
        if let Some(status) = exited_early {
            failures.push(format!("{what}: the child exited by itself ({status}):\n{err}"));
        }
        queued_total += queued.len();
        saves_done += saved.len();
        first_saves_ok += usize::from(!saved.is_empty());
        let last_queued = queued.last().copied().unwrap_or(state);
        let last_saved = saved.last().copied().unwrap_or(state);
        in_flight += usize::from(last_queued > last_saved);
        match lp.state_of(&root) {
            Ok(k) => {
                loads_ok += 1;
                // Saves run in call order: never older than what was there or what a finished save
                // wrote; never newer than the save the child was queueing when killed.
                if k < state.max(last_saved) || k > last_queued + 1 {
                    failures.push(format!("{what}: the folder holds state {k}"));
                }
                advanced += usize::from(k > state);
                state = k;
            }
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                // Repair, so that each failure counts once.
                state += 1;
                lp.fresh(state).save(&root, &SaveOptions::new().force(true)).unwrap();
            }
        }
        if failures.len() >= 5 {
            break;
        }
    }
    // A last save, by a model loaded from the folder: done, and it leaves no staging folder and
    // no unregistered checkpoint file.
    let mut m = Model::load(&root, &LoadOptions::new().strict(false)).unwrap();
    m.register_epoch(Some(state + 1)).unwrap();
    m.add_checkpoint(lp.checkpoint(state + 1)).unwrap();
    let saves = plums_model::SaveQueue::new();
    saves
        .save(&mut m, &plums_model::Location::Local(root.clone()), &BackgroundLoop::options(state + 1))
        .unwrap()
        .wait()
        .unwrap();
    saves.wait(&mut m).unwrap();
    assert_eq!(lp.state_of(&root), Ok(state + 1));
    let left = staging_leftovers(&root);
    let extra = unregistered_checkpoint_files(&root);
    println!(
        "kill (background): {kills} SIGKILLs in {:?}; the folder loaded strictly as one state of the loop after {loads_ok} of them \
         ({advanced} times a newer state than before the child, {} times the same); {in_flight} kills with a save queued or running; \
         the children queued {queued_total} saves and saw {saves_done} finish ({first_saves_ok} children saw their first save succeed); \
         trials failed: {}",
        started.elapsed(),
        loads_ok - advanced,
        failures.len(),
    );
    assert!(failures.is_empty(), "the first failures:\n{failures:#?}");
    assert!(left.is_empty(), "after a final save, staging folders remain: {left:?}");
    assert!(extra.is_empty(), "after a final save, data/checkpoints holds files no save registered: {extra:?}");
    assert!(in_flight >= kills / 4, "only {in_flight} of {kills} kills landed with a save in flight");
    assert!(first_saves_ok >= kills / 4, "only {first_saves_ok} of {kills} children saw a save finish");
}

#[test]
#[ignore = "child process of kill_during_background_saves_leaves_the_old_or_the_new_model"]
fn background_kill_child() {
    if role().as_deref() != Some("background") {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let lp = BackgroundLoop::new(std::env::var(BACKGROUND_SEED).unwrap().parse().unwrap(), dir.join("child"));
    let root = dir.join("model");
    let at = plums_model::Location::Local(root.clone());
    let mut m = Model::load(&root, &LoadOptions::new().strict(false)).unwrap_or_else(|e| panic!("load: {e}"));
    let mut k = m.training.latest_epoch().unwrap();
    println!("PMF-STATE {k}");
    println!("PMF-READY pid={}", std::process::id());
    let ready = Instant::now();
    let saves = plums_model::SaveQueue::new();
    let mut pending: std::collections::VecDeque<(i64, plums_model::SaveHandle)> = Default::default();
    loop {
        k += 1;
        m.register_epoch(Some(k)).unwrap();
        m.add_checkpoint(lp.checkpoint(k)).unwrap();
        let handle = saves.save(&mut m, &at, &BackgroundLoop::options(k)).unwrap_or_else(|e| panic!("save {k}: {e}"));
        println!("PMF-QUEUED {k}");
        pending.push_back((k, handle));
        // The training of the next epoch; at most 3 saves behind.
        std::thread::sleep(Duration::from_millis(5));
        while let Some((j, h)) = pending.front() {
            if !h.is_finished() && pending.len() <= 3 {
                break;
            }
            h.wait().unwrap_or_else(|e| panic!("save {j}: {e}"));
            println!("PMF-SAVED {j} after {} us", ready.elapsed().as_micros());
            // Saved: the folder has it, later saves take it from there.
            let _ = fs::remove_file(lp.path(*j));
            pending.pop_front();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two writers
// ---------------------------------------------------------------------------------------------

const WRITER_ROUNDS: usize = 100;

#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn two_writers_never_lose_an_update() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.py");
    fs::write(&cfg, b"shared = True\n").unwrap();
    let root = dir.path().join("model");
    let mut shared =
        Model::new("shared-model", Producer::new("reliability", Version::pep440("1.0.0").unwrap(), &cfg).unwrap());
    shared.name = Some("shared".into());
    shared.save(&root, &SaveOptions::new()).unwrap();
    let started = Instant::now();
    let procs: Vec<_> = (0..2)
        .map(|w| {
            child(
                "writer_child",
                &[(ROLE, "writer".into()), (DIR, dir.path().display().to_string()), ("PMF_WRITER", w.to_string())],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut stats = Vec::new();
    for p in procs {
        let out = p.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "writer failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stats.extend(stdout.lines().filter_map(|l| l.find("PMF-WRITER").map(|i| l[i + 4..].to_owned())));
    }
    let elapsed = started.elapsed();
    let v = validate(&root, &ValidateOptions::new().strict(true)).unwrap();
    let checkpoints = &v.model.training.checkpoints;
    let mut missing = Vec::new();
    for w in 0..2 {
        for i in 0..WRITER_ROUNDS {
            let r = Reference::from(format!("w{w}-{i}"));
            match checkpoints.get(&r) {
                Some(e) => assert_eq!(e.hash, Md5::of_bytes(writer_content(w, i).as_bytes()), "{r}"),
                None => missing.push(r),
            }
        }
    }
    println!(
        "two writers: {} checkpoints registered by 2 processes in {elapsed:?}; {}",
        2 * WRITER_ROUNDS,
        stats.join("; ")
    );
    assert!(missing.is_empty(), "lost updates: {missing:?}");
    assert_eq!(checkpoints.len(), 2 * WRITER_ROUNDS);
}

fn writer_content(w: usize, i: usize) -> String {
    format!("checkpoint {i} of writer {w}\n").repeat(1000)
}

#[test]
#[ignore = "child process of two_writers_never_lose_an_update"]
fn writer_child() {
    if role().as_deref() != Some("writer") {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let w: usize = std::env::var("PMF_WRITER").unwrap().parse().unwrap();
    let root = dir.join("model");
    let src = dir.join(format!("writer-{w}"));
    fs::create_dir_all(&src).unwrap();
    let (mut conflicts, mut timeouts, mut load_errors) = (0, 0, Vec::new());
    let mut rng = Rng(u64::from(std::process::id()) * 0x9e37_79b9 + 1);
    let options = SaveOptions::new().lock_timeout(Duration::from_secs(5));
    for i in 0..WRITER_ROUNDS {
        let file = src.join(format!("w{w}-{i}.bin"));
        fs::write(&file, writer_content(w, i)).unwrap();
        loop {
            let mut m = match Model::load(&root, &LoadOptions::new()) {
                Ok(m) => m,
                Err(e) => {
                    // A load that overlaps the other writer's save: reported, then retried.
                    load_errors.push(e.to_string());
                    continue;
                }
            };
            m.add_checkpoint(Checkpoint::new(format!("w{w}-{i}").as_str(), Some(&file), Some(i as i64), None).unwrap())
                .unwrap();
            // Some work between load and save, as a training loop would do: the other writer
            // often saves in between.
            std::thread::sleep(Duration::from_micros(rng.below(4000)));
            match m.save(&root, &options) {
                Ok(()) => break,
                Err(e @ Error::ConcurrentChange { .. }) if e.to_string().contains("changed since") => conflicts += 1,
                Err(Error::Locked { .. }) => timeouts += 1,
                Err(e) => panic!("writer {w} round {i}: unexpected error: {e}"),
            }
        }
    }
    println!(
        "PMF-WRITER {w}: {WRITER_ROUNDS} saves, {conflicts} conflicts detected and retried, {timeouts} lock time-outs, {} load errors{}",
        load_errors.len(),
        load_errors.first().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
}

/// Hold the writer lock of the model folder `root` as another writer does (an exclusive `flock`
/// on its lock file, which names the holder) until the returned file is dropped.
fn hold_lock(root: &Path) -> fs::File {
    use std::io::Write;
    let mut file =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(root.join(LOCK_FILE)).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    file.set_len(0).unwrap();
    writeln!(file, "pid {} on {host} since unix time {since}", std::process::id()).unwrap();
    file
}

/// Fast (runs with the ordinary tests): the lost-update check, its opt-out, and the lock.
#[test]
fn a_stale_model_is_refused_unless_the_caller_opts_out_and_the_lock_times_out_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.py");
    fs::write(&cfg, b"x = 1\n").unwrap();
    for n in ["1", "2"] {
        fs::write(dir.path().join(format!("{n}.bin")), n).unwrap();
    }
    let root = dir.path().join("model");
    Model::new("opt-out", Producer::new("reliability", Version::pep440("1.0").unwrap(), &cfg).unwrap())
        .save(&root, &SaveOptions::new())
        .unwrap();
    let mut first = Model::load(&root, &LoadOptions::new()).unwrap();
    let mut second = Model::load(&root, &LoadOptions::new()).unwrap();
    first.add_checkpoint(Checkpoint::new(1, Some(dir.path().join("1.bin")), Some(1), None).unwrap()).unwrap();
    second.add_checkpoint(Checkpoint::new(2, Some(dir.path().join("2.bin")), Some(2), None).unwrap()).unwrap();
    first.save(&root, &SaveOptions::new()).unwrap();
    // The second writer's model is stale: refused, with a message saying what to do.
    let err = second.save(&root, &SaveOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::ConcurrentChange { path } if *path == root)
            && err.io_kind() == Some(std::io::ErrorKind::AlreadyExists)
            && err.to_string().contains("changed since")
            && err.to_string().contains("reload"),
        "{err:?}"
    );
    let err = second.save(&root, &SaveOptions::new().force(true)).unwrap_err();
    assert!(
        matches!(err, Error::ConcurrentChange { .. }) && err.to_string().contains("changed since"),
        "force does not bypass the check: {err:?}"
    );
    assert_eq!(validate(&root, &ValidateOptions::new().strict(true)).unwrap().model.training.checkpoints.len(), 1);
    // The opt-out overwrites the other writer's update, as documented.
    second.save(&root, &SaveOptions::new().overwrite_concurrent_changes(true)).unwrap();
    let keys: Vec<_> =
        validate(&root, &ValidateOptions::new().strict(true)).unwrap().model.training.checkpoints.into_keys().collect();
    assert_eq!(keys, vec![Reference::Int(2)], "the opt-out replaced the folder with the second model");
    // A writer that holds the lock makes another one give up after its time-out, naming it.
    let held = hold_lock(&root);
    let mut third = Model::load(&root, &LoadOptions::new()).unwrap();
    let start = Instant::now();
    let err = third.save(&root, &SaveOptions::new().lock_timeout(Duration::from_millis(200))).unwrap_err();
    assert!(
        matches!(&err, Error::Locked { path, holder, waited }
            if *path == root && holder.pid == Some(std::process::id()) && *waited == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::WouldBlock), "{err:?}");
    assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(held);
    third.save(&root, &SaveOptions::new()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Readers during saves
// ---------------------------------------------------------------------------------------------

/// A reader that loads the model while another process saves it over and over must see the
/// old model or the new one, whole: never an error, never a mixture.
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn readers_during_saves_see_the_old_or_the_new_model() {
    readers_during_saves("readers", false);
}

/// The same when every other save only adds a checkpoint (done in place).
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn readers_during_append_saves_see_the_old_or_the_new_model() {
    readers_during_saves("readers (append)", true);
}

fn readers_during_saves(label: &str, append: bool) {
    let _serial = serial();
    let mut rng = Rng::from_env(label);
    let dir = tempfile::tempdir().unwrap();
    let states = States::create_with(dir.path(), &mut rng, append);
    let (a, b) = (fingerprint_of_model(&states.fresh(false)), fingerprint_of_model(&states.fresh(true)));
    let root = dir.path().join("model");
    states.fresh(false).save(&root, &SaveOptions::new()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let saves = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, saves, root) = (stop.clone(), saves.clone(), root.clone());
        let states = States::open(dir.path());
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                states.flip(&root, round, |_| {}).unwrap();
                saves.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut loads, mut errors, mut mixed) = (0, Vec::new(), 0);
    while Instant::now() < deadline {
        loads += 1;
        match Model::load(&root, &LoadOptions::new()) {
            Ok(m) => {
                // What the loaded metadata says (the strict load compared it with the files).
                let f = Fingerprint {
                    checkpoints: m
                        .checkpoint_collection
                        .iter()
                        .map(|(r, c)| (r.clone(), c.epoch.unwrap(), file_name(c.path.as_deref().unwrap()), c.hash))
                        .collect(),
                    configuration: (file_name(&m.producer.configuration), Md5::of_bytes(b"")),
                    ..fingerprint_of_model_shallow(&m)
                };
                if f != shallow(&a) && f != shallow(&b) {
                    mixed += 1;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    println!(
        "{label}: {loads} strict loads during {} saves: {} failed, {mixed} gave a mixture{}",
        saves.load(Ordering::Relaxed),
        errors.len(),
        errors.first().map(|e| format!("; first error: {e}")).unwrap_or_default()
    );
    assert!(
        errors.is_empty() && mixed == 0,
        "{} of {loads} loads failed and {mixed} saw a mixed model while the folder was being saved",
        errors.len()
    );
}

/// The fingerprint without the configuration checksum (not exposed by a loaded model).
fn shallow(f: &Fingerprint) -> Fingerprint {
    Fingerprint { configuration: (f.configuration.0.clone(), Md5::of_bytes(b"")), ..f.clone() }
}

/// The fingerprint fields that need no file access.
fn fingerprint_of_model_shallow(m: &Model) -> Fingerprint {
    Fingerprint {
        name: m.name.clone(),
        id: m.id.clone(),
        build_parameters: to_yaml(&m.build_parameters),
        training: format!("{:?}", m.training.record()),
        latest: m.checkpoint_collection.latest().cloned(),
        checkpoints: Vec::new(),
        configuration: (String::new(), Md5::of_bytes(b"")),
    }
}

// ---------------------------------------------------------------------------------------------
// Full disk, no inodes left, read-only file system, permission denied
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(at).output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            Ok(o) => {
                println!(
                    "SKIPPED: cannot mount a tmpfs ({}); run as root to test full disks",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: no mount command ({e})");
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let o = Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.0).output().unwrap();
        assert!(o.status.success(), "remount {options}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Fill the file system of `dir` with `filler`, then free `keep` bytes again.
fn fill(filler: &Path, keep: u64) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().create(true).append(true).open(filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(keep)).unwrap();
}

#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn a_full_disk_during_save_keeps_the_previous_model() {
    full_disk_trials("full disk", false);
}

/// The same for a save that only adds a checkpoint (done in place): a failure also leaves no
/// file of its own in `data/checkpoints/`.
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn a_full_disk_during_a_save_in_place_keeps_the_previous_model() {
    full_disk_trials("full disk (in place)", true);
}

fn full_disk_trials(label: &str, append: bool) {
    let _serial = serial();
    let mut rng = Rng::from_env(label);
    let dir = tempfile::tempdir().unwrap();
    let states = States::create_with(dir.path(), &mut rng, append);
    // State B from the folder's A: a new object, or (in place) the loaded one changed.
    let next = |root: &Path| {
        if append {
            let mut m = Model::load(root, &LoadOptions::new().strict(false)).unwrap();
            states.mutate(&mut m, true);
            m
        } else {
            states.fresh(true)
        }
    };
    let (a, b) = (fingerprint_of_model(&states.fresh(false)), fingerprint_of_model(&states.fresh(true)));
    let size_b: u64 = ["1.bin", "b/2.bin", "3.bin", "4.bin", "b/config.py"]
        .iter()
        .map(|f| fs::metadata(states.src.join(f)).unwrap().len())
        .sum();
    let Some(mnt) = Mount::tmpfs(&dir.path().join("mnt"), &format!("size={}", 2 * size_b + (4 << 20))) else { return };
    let root = mnt.0.join("model");
    let filler = mnt.0.join("filler");
    let (mut failed, mut succeeded, mut kinds) = (0, 0, std::collections::BTreeSet::new());
    // Free space from nothing to more than B needs, in steps that stop the save at each of its
    // writes (folders, configuration, build parameters, checkpoints, metadata).
    let mut keeps: Vec<u64> = (0..16).map(|k| k * 4096).collect();
    keeps.extend([
        96 << 10,
        192 << 10,
        512 << 10,
        1 << 20,
        size_b / 2,
        size_b - (128 << 10),
        size_b + (64 << 10),
        size_b + (1 << 20),
    ]);
    for (step, keep) in keeps.iter().enumerate() {
        let _ = fs::remove_file(&filler);
        let _ = fs::remove_dir_all(&root);
        states.fresh(false).save(&root, &SaveOptions::new()).unwrap();
        fill(&filler, *keep);
        let mut model = next(&root);
        match model.save(&root, &SaveOptions::new()) {
            Ok(()) => {
                succeeded += 1;
                assert_eq!(
                    fingerprint_of_folder(&root).unwrap(),
                    b,
                    "step {step}: save succeeded but the folder is not B"
                );
            }
            Err(e) => {
                failed += 1;
                let text = e.to_string();
                assert!(
                    matches!(e, Error::Io { .. }),
                    "step {step} ({keep} bytes free): expected Error::Io, got {e:?}"
                );
                if let Error::Io { source, operation, .. } = &e {
                    kinds.insert(format!("{:?}: {operation}", source.kind()));
                }
                assert!(
                    text.contains("No space left") || text.contains("space"),
                    "step {step}: unclear message: {text}"
                );
                assert_eq!(
                    fingerprint_of_folder(&root).unwrap_or_else(|e2| panic!("step {step}: after {text}: {e2}")),
                    a,
                    "step {step}: {text}"
                );
                assert!(staging_leftovers(&root).is_empty(), "step {step}: the failed save left its staging folder");
                let extra = unregistered_checkpoint_files(&root);
                assert!(extra.is_empty(), "step {step}: the failed save left files in data/checkpoints: {extra:?}");
            }
        }
    }
    // Running out of inodes instead of bytes.
    drop(mnt);
    let Some(mnt) = Mount::tmpfs(&dir.path().join("mnt2"), &format!("size={},nr_inodes=64", 4 * size_b)) else {
        return;
    };
    let root = mnt.0.join("model");
    let mut inode_failures = 0;
    for free in 0..16 {
        let _ = fs::remove_dir_all(mnt.0.join("inodes"));
        let _ = fs::remove_dir_all(&root);
        states.fresh(false).save(&root, &SaveOptions::new()).unwrap();
        fs::create_dir(mnt.0.join("inodes")).unwrap();
        let mut made = Vec::new();
        for i in 0.. {
            let p = mnt.0.join(format!("inodes/{i}"));
            if fs::write(&p, b"").is_err() {
                break;
            }
            made.push(p);
        }
        for p in made.iter().rev().take(free) {
            fs::remove_file(p).unwrap();
        }
        match next(&root).save(&root, &SaveOptions::new()) {
            Ok(()) => assert_eq!(fingerprint_of_folder(&root).unwrap(), b),
            Err(e) => {
                inode_failures += 1;
                assert!(matches!(e, Error::Io { .. }), "{free} inodes free: {e:?}");
                if let Error::Io { source, operation, .. } = &e {
                    kinds.insert(format!("{:?}: {operation}", source.kind()));
                }
                assert_eq!(fingerprint_of_folder(&root).unwrap(), a, "{free} inodes free: {e}");
                assert!(staging_leftovers(&root).is_empty());
            }
        }
    }
    println!(
        "{label}: {} saves with 0..{} bytes free: {failed} failed cleanly, {succeeded} succeeded; no inodes: 16 saves with 0..15 inodes free, \
         {inode_failures} failed cleanly; errors seen: {kinds:?}",
        keeps.len(),
        keeps.last().unwrap()
    );
    assert!(failed >= 10, "the test did not exercise a full disk");
}

#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn a_read_only_file_system_refuses_saves_and_still_loads() {
    let _serial = serial();
    let mut rng = Rng::from_env("read-only");
    let dir = tempfile::tempdir().unwrap();
    let states = States::create(dir.path(), &mut rng);
    let a = fingerprint_of_model(&states.fresh(false));
    let Some(mnt) = Mount::tmpfs(&dir.path().join("mnt"), "size=32m") else { return };
    let root = mnt.0.join("model");
    states.fresh(false).save(&root, &SaveOptions::new()).unwrap();
    mnt.remount("ro");
    // A read-only bind mount of a writable folder too.
    let writable = dir.path().join("writable");
    states.fresh(false).save(writable.join("model"), &SaveOptions::new()).unwrap();
    let bind = dir.path().join("bind");
    fs::create_dir(&bind).unwrap();
    let bound = Command::new("mount").arg("--bind").arg(&writable).arg(&bind).status().unwrap().success()
        && Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&bind).status().unwrap().success();
    let _bind_guard = Mount(bind.clone());
    let mut roots = vec![root.clone()];
    if bound {
        roots.push(bind.join("model"));
    } else {
        println!("SKIPPED part: cannot make a read-only bind mount");
    }
    for root in &roots {
        let mut loaded = Model::load(root, &LoadOptions::new()).unwrap();
        assert_eq!(fingerprint_of_folder(root).unwrap(), a);
        for mut model in [states.fresh(true), loaded.clone()] {
            let err = model.save(root, &SaveOptions::new()).unwrap_err();
            assert!(
                matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem),
                "{err:?}"
            );
            assert!(err.to_string().contains("Read-only file system"), "{err}");
            let err = model.save(root, &SaveOptions::new().force(true)).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err:?}");
        }
        assert_eq!(fingerprint_of_folder(root).unwrap(), a);
        // The loaded model can be saved elsewhere.
        let copy = dir.path().join(format!("copy-{}", roots.iter().position(|r| r == root).unwrap()));
        loaded.save(&copy, &SaveOptions::new()).unwrap();
        assert_eq!(fingerprint_of_folder(&copy).unwrap(), a);
    }
    println!("read-only: saves over {} read-only model folder(s) refused with ReadOnlyFilesystem; models intact and loadable", roots.len());
}

/// As root, permissions are not enforced: the checks run in a child process that drops to
/// the `nobody` user (uid/gid 65534).
#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn permission_denied_during_save_keeps_the_previous_model() {
    let _serial = serial();
    let mut rng = Rng::from_env("permissions");
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let states = States::create(dir.path(), &mut rng);
    for p in walk(&states.src) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    // (a) a model folder owned by root; (b) a model folder owned by nobody in a folder owned by
    // root; (c) both owned by nobody.
    let a_root = dir.path().join("a/model");
    let b_root = dir.path().join("b/model");
    let c_root = dir.path().join("c/model");
    for root in [&a_root, &b_root, &c_root] {
        states.fresh(false).save(root, &SaveOptions::new()).unwrap();
        fs::set_permissions(root.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in walk(&b_root).into_iter().chain(walk(&c_root)).chain([c_root.parent().unwrap().to_path_buf()]) {
        std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).unwrap();
    }
    let mut cmd = child("permission_child", &[(ROLE, "permission".into()), (DIR, dir.path().display().to_string())]);
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            println!("SKIPPED: cannot run a child as nobody: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    for l in stdout.lines().filter_map(|l| l.find("permission case").map(|i| &l[i..])) {
        println!("{l}");
    }
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PMF-CHILD-DONE"), "{stdout}");
    let a = fingerprint_of_model(&states.fresh(false));
    let b = fingerprint_of_model(&states.fresh(true));
    assert_eq!(fingerprint_of_folder(&a_root).unwrap(), a);
    assert_eq!(fingerprint_of_folder(&b_root).unwrap(), a);
    assert_eq!(fingerprint_of_folder(&c_root).unwrap(), b);
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if fs::symlink_metadata(&out[i]).map(|m| m.is_dir()).unwrap_or(false) {
            let children: Vec<_> = fs::read_dir(&out[i]).unwrap().flatten().map(|e| e.path()).collect();
            out.extend(children);
        }
        i += 1;
    }
    out
}

#[test]
#[ignore = "child process of permission_denied_during_save_keeps_the_previous_model"]
fn permission_child() {
    if role().as_deref() != Some("permission") {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let states = States::open(&dir);
    let a = fingerprint_of_model(&states.fresh(false));
    for (case, expected) in
        [("a", "cannot open the model lock file"), ("b", "cannot create the staging folder next to the model")]
    {
        let root = dir.join(case).join("model");
        Model::load(&root, &LoadOptions::new()).unwrap();
        let err = states.fresh(true).save(&root, &SaveOptions::new()).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied),
            "case {case}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "case {case}: {err}");
        assert_eq!(fingerprint_of_folder(&root).unwrap(), a, "case {case}");
        assert!(staging_leftovers(&root).is_empty());
        println!("permission case {case}: refused with PermissionDenied: {err}");
    }
    let root = dir.join("c/model");
    states.fresh(true).save(&root, &SaveOptions::new()).unwrap();
    println!("permission case c: saved");
    println!("PMF-CHILD-DONE");
}

// ---------------------------------------------------------------------------------------------
// Round trip of arbitrary models (fast: runs with the ordinary tests)
// ---------------------------------------------------------------------------------------------

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of strings that YAML 1.1 (PyYAML) would read as something else, or that need
    /// quoting or escaping.
    const TRICKY: &[&str] = &[
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "~",
        "null",
        "NULL",
        "true",
        "False",
        ".inf",
        "-.INF",
        ".nan",
        "1e10",
        "1.5e3",
        "0o17",
        "012",
        "0x1f",
        "1:20",
        "1_000",
        "2020-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "123e4567890123456789012345678901",
        "-",
        "?",
        ":",
        ": ",
        "#",
        " #",
        "'",
        "\"",
        "\\",
        "\n",
        "\t",
        " ",
        "é",
        "日本",
        "😀",
        "&a",
        "*a",
        "!tag",
        "%YAML",
        "@",
        "`",
        "{",
        "}",
        "[",
        "]",
        ",",
        "|",
        ">",
        "<<",
        "=",
        "---",
        "...",
        "0",
        "-1",
        "1.0",
        "+1",
        "0b101",
        "8",
        "09",
        "\u{85}",
        "\u{2028}",
        "\u{feff}",
        "\r",
        "\u{1}",
        "\u{7f}",
        "a",
        "model",
        "x y",
    ];

    fn tricky(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TRICKY), 1..=max).prop_map(|v| v.concat())
    }

    /// A file name: tricky, without `/` or NUL, not `.`/`..`, not a name PMF reserves.
    fn file_name() -> impl Strategy<Value = String> {
        tricky(3).prop_filter("a usable file name", |s| {
            !s.contains('/') && s != "." && s != ".." && !["metadata.yaml", "data", ".pmf.lock"].contains(&s.as_str())
        })
    }

    fn reference() -> impl Strategy<Value = Reference> {
        prop_oneof![any::<i64>().prop_map(Reference::Int), tricky(2).prop_map(Reference::Str)]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(Value::Float),
            tricky(3).prop_map(Value::Str),
        ]
    }

    fn key() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            tricky(3).prop_map(Value::Str),
            any::<bool>().prop_map(Value::Bool)
        ]
    }

    fn build_parameters() -> impl Strategy<Value = Value> {
        let leaf = scalar();
        let tree = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
                prop::collection::vec((key(), inner), 0..4).prop_map(|kv| Value::Map(kv.into_iter().collect())),
            ]
        });
        prop::collection::vec((key(), tree), 0..5).prop_map(|kv| Value::Map(kv.into_iter().collect()))
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            (-(1i64 << 53)..(1i64 << 53)).prop_map(Timestamp::Int),
            (-1e15f64..1e15).prop_map(Timestamp::Float),
            Just(Timestamp::Float(1552464823.166782)),
            Just(Timestamp::Float(-0.0)),
        ]
    }

    #[derive(Debug, Clone)]
    struct Spec {
        producer: String,
        version: &'static str,
        name: Option<String>,
        id: String,
        config_name: String,
        build_parameters: Value,
        training: TrainingRecord,
        checkpoints: Vec<(Reference, String, i64, Vec<u8>)>,
        latest: Option<usize>,
        init: u8,
        init_name: String,
    }

    fn training() -> impl Strategy<Value = TrainingRecord> {
        (
            0u8..4,
            prop::collection::vec(-1_000_000i64..1_000_000, 3),
            prop::collection::vec(timestamp(), 3),
            any::<bool>(),
        )
            .prop_filter_map("a valid training", |(status, mut epochs, mut times, with_latest)| {
                epochs.sort();
                times.sort_by(|a, b| a.as_f64().total_cmp(&b.as_f64()));
                let some = |i: usize| (Some(epochs[i]), Some(times[i]));
                let (s, l, e) = match status {
                    0 => ((None, None), (None, None), (None, None)),
                    1 => (some(0), if with_latest { some(1) } else { (None, None) }, (None, None)),
                    2 => (some(0), some(1), some(2)),
                    _ => (some(0), some(1), if with_latest { some(2) } else { (None, None) }),
                };
                let status = [Status::Pending, Status::Running, Status::Finished, Status::Failed][status as usize];
                let record = TrainingRecord {
                    status,
                    start_epoch: s.0,
                    start_time: s.1,
                    latest_epoch: l.0,
                    latest_time: l.1,
                    end_epoch: e.0,
                    end_time: e.1,
                };
                Training::new(record).ok().map(|t| *t.record())
            })
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let producer = "[a-zA-Z][0-9a-zA-Z_]{1,12}";
        let version = prop::sample::select(
            &["1.0.0", "0.4.0", "2!1.0", "1.0rc1", "1.0.post1", "1.0.dev3", "1.0+local.7", "v1.0", "1.0.0.0.1"][..],
        );
        let checkpoints =
            prop::collection::vec((reference(), file_name(), prop::collection::vec(any::<u8>(), 0..64)), 0..5);
        (
            (producer, version, prop::option::of(tricky(4)), tricky(4), file_name()),
            build_parameters(),
            training(),
            checkpoints,
            any::<prop::sample::Index>(),
            (0u8..3, tricky(3), any::<bool>()),
        )
            .prop_map(
                |(
                    (producer, version, name, id, config_name),
                    build_parameters,
                    training,
                    cks,
                    latest,
                    (init, init_name, set_latest),
                )| {
                    let max_epoch = training.latest_epoch.unwrap_or(i64::MAX);
                    let mut seen_refs = std::collections::HashSet::new();
                    let mut seen_files = std::collections::HashSet::new();
                    let mut checkpoints = Vec::new();
                    for (i, (r, f, content)) in cks.into_iter().enumerate() {
                        if !seen_refs.insert(r.clone()) {
                            continue;
                        }
                        let f = if seen_files.insert(f.clone()) { f } else { format!("{f}-{i}") };
                        seen_files.insert(f.clone());
                        let epoch = max_epoch.min(i as i64 * 7 - 3);
                        checkpoints.push((r, f, epoch, content));
                    }
                    let latest = (set_latest && !checkpoints.is_empty()).then(|| latest.index(checkpoints.len()));
                    Spec {
                        producer,
                        version,
                        name,
                        id,
                        config_name,
                        build_parameters,
                        training,
                        checkpoints,
                        latest,
                        init,
                        init_name,
                    }
                },
            )
    }

    fn build(spec: &Spec, dir: &Path) -> Model {
        let src = dir.join("src");
        fs::create_dir_all(src.join("cfg")).unwrap();
        let cfg = src.join("cfg").join(&spec.config_name);
        fs::write(&cfg, format!("config of {:?}\n", spec.id)).unwrap();
        let producer = Producer::new(&spec.producer, Version::pep440(spec.version).unwrap(), &cfg).unwrap();
        let mut m = Model::new(spec.id.clone(), producer);
        m.name = spec.name.clone();
        m.build_parameters = spec.build_parameters.clone();
        m.training = Training::new(spec.training).unwrap();
        for (i, (r, f, epoch, content)) in spec.checkpoints.iter().enumerate() {
            let d = src.join(format!("ck{i}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(f), content).unwrap();
            m.add_checkpoint(Checkpoint::new(r.clone(), Some(d.join(f)), Some(*epoch), None).unwrap()).unwrap();
        }
        if let Some(i) = spec.latest {
            let r = spec.checkpoints[i].0.clone();
            m.checkpoint_collection.set_latest(&r).unwrap();
        }
        match spec.init {
            1 => {
                let d = src.join("init");
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join(&spec.config_name), b"initial weights").unwrap();
                m.register_initialisation(d.join(&spec.config_name), None, Some(&spec.init_name)).unwrap();
            }
            2 => {
                let init_root = dir.join("init-model");
                let producer = Producer::new(&spec.producer, Version::pep440("0.1").unwrap(), &cfg).unwrap();
                let mut i = Model::new(format!("{}-init", spec.id), producer);
                i.name = Some(spec.init_name.clone());
                i.build_parameters = spec.build_parameters.clone();
                fs::write(src.join("init.bin"), b"init checkpoint").unwrap();
                let r = spec.checkpoints.first().map(|c| c.0.clone()).unwrap_or(Reference::Int(0));
                i.add_checkpoint(Checkpoint::new(r.clone(), Some(src.join("init.bin")), Some(0), None).unwrap())
                    .unwrap();
                i.save(&init_root, &SaveOptions::new()).unwrap();
                m.register_initialisation(&init_root, Some(r), None).unwrap();
            }
            _ => {}
        }
        m
    }

    /// Everything a model holds, as text (`files`: with the checkpoint file names, which an
    /// initialisation model does not keep).
    fn describe(m: &Model, files: bool) -> String {
        let init = match m.initialisation() {
            None => "none".to_owned(),
            Some(Initialisation::File(c)) => format!("file {:?} {} {:?}", c.name, c.hash, c.file_name()),
            Some(Initialisation::Model(i)) => {
                format!("model {:?} {:?} {:?} {}", i.id, i.name, i.checkpoint(), describe(i, false))
            }
        };
        let cks: Vec<String> = m
            .checkpoint_collection
            .iter()
            .map(|(r, c)| format!("{r:?}={:?}/{}/{:?}", c.epoch, c.hash, if files { c.file_name() } else { None }))
            .collect();
        format!(
            "{} {:?} {:?} {:?} {:?} params={} training={:?} latest={:?} checkpoints={cks:?} config={:?}/{} init={init}",
            m.producer.name,
            m.producer.version.value(),
            m.name,
            m.id,
            m.build_parameters.type_name(),
            to_yaml(&m.build_parameters),
            m.training.record(),
            m.checkpoint_collection.latest(),
            m.producer.configuration.file_name(),
            md5_file(&m.producer.configuration).unwrap(),
        )
    }

    fn roundtrip_cases() -> u32 {
        std::env::var("PMF_ROUNDTRIP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32)
    }

    proptest! {
        // 32 cases by default; PMF_ROUNDTRIP_CASES=10000 for a longer search.
        #![proptest_config(ProptestConfig { cases: roundtrip_cases(), failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary model -> save -> load -> the same model; then saved again unchanged.
        #[test]
        fn arbitrary_models_survive_save_and_load(spec in spec()) {
            let dir = tempfile::tempdir().unwrap();
            let mut model = build(&spec, dir.path());
            let root = dir.path().join(OsStr::new("model"));
            model.save(&root, &SaveOptions::new()).unwrap_or_else(|e| panic!("save failed: {e}\n{spec:?}"));
            let loaded = Model::load(&root, &LoadOptions::new()).unwrap_or_else(|e| panic!("load failed: {e}\n{spec:?}"));
            prop_assert_eq!(describe(&loaded, true), describe(&model, true));
            prop_assert!(loaded.producer.version == model.producer.version);
            prop_assert!(loaded.build_parameters == model.build_parameters);
            let first = fs::read(root.join("metadata.yaml")).unwrap();
            let mut again = loaded.clone();
            again.save(&root, &SaveOptions::new()).unwrap();
            prop_assert_eq!(fs::read(root.join("metadata.yaml")).unwrap(), first, "saving the loaded model changed metadata.yaml");
        }
    }
}
