//! Every refusal kind the CLI can meet: its exit code, its `--json` kind and data, and its human
//! message and hint. Concurrent writers are simulated by holding the model's lock
//! (`<model>/.pmf.lock`, an advisory `flock`) from the test while `pmf` waits for it.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{edit_metadata, run, run_json, s, Scratch};
use rustix::fs::{flock, FlockOperation};
use serde_json::{json, Value};

/// `pmf args... --json`, expecting `code`: the `failure` object, checked to agree with the
/// top-level `error` string and the exit code.
fn failure(args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let doc = run_json(&args, code);
    let f = doc["failure"].clone();
    assert!(f.is_object(), "no failure object: {doc}");
    assert_eq!(f["exit_code"], code, "{doc}");
    assert_eq!(doc["error"], f["message"], "{doc}");
    assert_eq!(doc["saved"], false, "{doc}");
    f
}

/// The `error:` line, the detail lines and the `hint:` line of a human failure on stderr.
fn human(args: &[&str], code: i32) -> (String, Vec<String>, String) {
    let (stdout, stderr) = run(args, code);
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    let error = stderr.lines().next().unwrap_or_default().to_owned();
    assert!(error.starts_with("error: "), "{stderr}");
    let details = stderr.lines().filter(|l| l.starts_with("  ")).map(|l| l.trim_start().to_owned()).collect();
    let hint = stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default().to_owned();
    (error, details, hint)
}

// ---------------------------------------------------------------- the library refused (exit 1)

#[test]
fn would_not_validate_lists_its_reasons_as_data() {
    let t = Scratch::new();
    let dest = t.path("m");
    let config = t.path("config.yaml");
    let args = ["new", s(&dest), "--producer", "t", "--version", "1", "--config", s(&config), "--id", "x"];
    let f = failure(&args, 1);
    assert_eq!(f["kind"], "would_not_validate");
    let reasons = f["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 1, "{f}");
    assert_eq!(reasons[0]["location"], "producer.name");
    assert!(reasons[0]["message"].as_str().is_some_and(|m| m.starts_with("producer name \"t\" is invalid")), "{f}");
    assert_eq!(f["message"], "cannot save: the model would not be valid (1 reason)");

    let (error, details, _) = human(&args, 1);
    assert_eq!(error, format!("error: cannot save: the model would not be valid (1 reason) ({})", s(&dest)));
    assert_eq!(details.len(), 1);
    assert!(details[0].starts_with("producer.name: producer name \"t\" is invalid"), "{details:?}");
    assert!(!dest.exists(), "nothing written");
}

#[test]
fn two_checkpoint_files_with_one_name_would_not_validate() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "1"], 0);
    let sub = t.path("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(sub.join("e1.pt"), "other weights").expect("write");
    let file = sub.join("e1.pt");
    let args = ["checkpoint", "add", s(&m), s(&file), "--epoch", "2"];
    let f = failure(&args, 1);
    assert_eq!(f["kind"], "would_not_validate");
    assert_eq!(f["reasons"][0]["location"], "checkpoints.2", "{f}");
    let (_, details, _) = human(&args, 1);
    assert!(details[0].contains("both have files named \"e1.pt\""), "{details:?}");
}

#[test]
fn duplicate_reference() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let file = t.path("e1.pt");
    let args = ["checkpoint", "add", s(&m), s(&file), "--epoch", "1", "--ref", "2"];
    let f = failure(&args, 1);
    assert_eq!(f["kind"], "duplicate_reference");
    assert_eq!(f["reference"], 2, "an int reference is a JSON number: {f}");
    let (error, _, hint) = human(&args, 1);
    assert!(error.starts_with("error: checkpoint reference 2 is already registered"), "{error}");
    assert!(hint.contains("--ref") && hint.contains("pmf checkpoint rm"), "{hint}");
}

#[test]
fn missing_reference() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let f = failure(&["checkpoint", "rm", s(&m), "best"], 1);
    assert_eq!(f["kind"], "missing_reference");
    assert_eq!(f["reference"], "best");
    assert_eq!(f["hint"], "registered references: 1, 2, 3");
    let (error, _, hint) = human(&["checkpoint", "rm", s(&m), "best"], 1);
    assert!(error.starts_with("error: checkpoint reference \"best\" is not registered"), "{error}");
    assert_eq!(hint, "hint: registered references: 1, 2, 3");
}

#[test]
fn training_state_refusals() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    let f = failure(&["training", "end", s(&m)], 1);
    assert_eq!(f["kind"], "status_change");
    assert_eq!(f["message"], "invalid training status change: a pending training cannot become finished");
    assert_eq!(f["hint"], format!("start it first: pmf training start {}", s(&m)));

    let f = failure(&["training", "epoch", s(&m)], 1);
    assert_eq!(f["kind"], "training_not_running");
    let (error, _, hint) = human(&["training", "epoch", s(&m)], 1);
    assert!(error.contains("cannot register an epoch: the training is pending"), "{error}");
    assert!(hint.starts_with("hint: start it first"), "{hint}");

    let done = t.trained_model("done");
    let f = failure(&["training", "start", s(&done)], 1);
    assert_eq!(f["kind"], "status_change");
    assert!(f["hint"].as_str().is_some_and(|h| h.starts_with("a finished training cannot change")), "{f}");

    // A checkpoint after the end epoch: the training record would be invalid.
    let file = t.path("e1.pt");
    let args = ["checkpoint", "add", s(&done), s(&file), "--epoch", "4", "--ref", "late"];
    let f = failure(&args, 1);
    assert_eq!(f["kind"], "invalid_training");
    let offences = f["offences"].as_array().expect("offences");
    assert_eq!(offences.len(), 1, "{f}");
    assert_eq!(offences[0]["location"], "training.checkpoints");
    assert_eq!(offences[0]["kind"], "metadata");
    let (error, _, hint) = human(&args, 1);
    assert!(error.starts_with("error: cannot add a checkpoint at epoch 4: a checkpoint has epoch 4"), "{error}");
    assert_eq!(hint, "hint: the training is finished at epoch 3: its checkpoints cannot be after that epoch");
}

#[test]
fn invalid_models_refuse_edits_with_their_offences() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    std::fs::remove_file(m.join("config.yaml")).expect("remove");
    let f = failure(&["training", "fail", s(&m)], 1);
    assert_eq!(f["kind"], "tree_validation");
    assert_eq!(f["offences"][0]["location"], "config.yaml", "{f}");
    assert_eq!(f["offences"][0]["kind"], "tree");
    let (error, details, hint) = human(&["training", "fail", s(&m)], 1);
    assert!(error.starts_with("error: cannot edit an invalid model (not a valid PMF model, 1 offence)"), "{error}");
    assert!(details[0].contains("config.yaml"), "{details:?}");
    assert!(hint.starts_with("hint: fix it first;"), "{hint}");

    let m2 = t.trained_model("m2");
    edit_metadata(&m2, "status: finished", "status: sleeping");
    let f = failure(&["checkpoint", "rm", s(&m2), "1"], 1);
    assert_eq!(f["kind"], "metadata_validation");
    assert!(f["offences"].as_array().expect("offences").iter().any(|o| o["location"] == "model.training.status"));
}

#[test]
fn version_and_initialisation_refusals() {
    let t = Scratch::new();
    let config = t.path("config.yaml");
    let dest = t.path("m");
    let call = |extra: &[&str], code: i32| {
        let mut args = vec!["new", s(&dest), "--producer", "trainer", "--config", s(&config), "--id", "x"];
        args.extend_from_slice(extra);
        (failure(&args, code), human(&args, code))
    };
    let (f, (error, _, hint)) = call(&["--version", "1", "--version-format", "semver9"], 1);
    assert_eq!(f["kind"], "unknown_version_format");
    assert_eq!(error, format!("error: invalid version format \"semver9\": it is unknown ({})", s(&dest)));
    assert_eq!(hint, "hint: choose a --version-format among: py_pa");
    let (f, (error, _, _)) = call(&["--version", "not a version"], 1);
    assert_eq!(f["kind"], "invalid_version");
    assert!(error.contains("PEP 440"), "{error}");

    let trained = t.trained_model("trained");
    let (f, (error, _, hint)) = call(&["--version", "1", "--init-model", s(&trained), "--init-checkpoint", "7"], 1);
    assert_eq!(f["kind"], "initialisation_checkpoint_missing");
    assert_eq!(f["reference"], 7);
    assert_eq!(f["path"], s(&trained));
    assert!(error.starts_with("error: the initialisation model has no checkpoint 7"), "{error}");
    assert_eq!(hint, "hint: its checkpoints: 1, 2, 3");

    let nope = t.path("nope.bin");
    let (f, (error, _, hint)) = call(&["--version", "1", "--init-file", s(&nope), "--init-name", "n"], 2);
    assert_eq!(f["kind"], "initialisation_not_found");
    assert_eq!(f["path"], s(&nope));
    assert_eq!(error, format!("error: the initialisation path does not exist ({})", s(&nope)));
    assert_eq!(hint, "hint: check the path");
    assert!(!dest.exists(), "nothing written");
}

// ---------------------------------------------------------------- the command could not run (exit 2)

#[test]
fn foreign_folder() {
    let t = Scratch::new();
    let other = t.path("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), "x").expect("write");
    let config = t.path("config.yaml");
    let args = ["new", s(&other), "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "x"];
    let f = failure(&args, 2);
    assert_eq!(f["kind"], "foreign_folder");
    assert_eq!(f["path"], s(&other));
    assert_eq!(f["io_kind"], "already_exists");
    let (error, _, hint) = human(&args, 2);
    assert_eq!(
        error,
        format!("error: the folder (or prefix) exists and is not a PMF model (no metadata.yaml) ({})", s(&other))
    );
    assert_eq!(hint, "hint: choose a missing or empty folder, or move its files away");
    assert_eq!(std::fs::read_dir(&other).expect("list").count(), 1, "nothing written");
}

#[test]
fn new_over_a_model() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    let config = t.path("config.yaml");
    let args = ["new", s(&m), "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "other"];
    let f = failure(&args, 2);
    assert_eq!(f["kind"], "model_exists");
    let (error, _, hint) = human(&args, 2);
    assert!(error.starts_with("error: the folder already holds a PMF model"), "{error}");
    assert!(hint.contains("pmf checkpoint"), "{hint}");
}

#[test]
fn missing_paths() {
    let t = Scratch::new();
    let nope = t.path("nope");
    let f = failure(&["training", "start", s(&nope)], 2);
    assert_eq!(f["kind"], "io");
    assert_eq!(f["io_kind"], "not_found");
    assert_eq!(f["path"], s(&nope));
    assert_eq!(f["hint"], "check the path");
    let (error, _, hint) = human(&["training", "start", s(&nope)], 2);
    assert!(error.starts_with("error: cannot validate model: No such file"), "{error}");
    assert_eq!(hint, "hint: check the path");

    let doc = run_json(&["validate", "--json", s(&nope)], 2);
    let f = &doc["models"][0]["failure"];
    assert_eq!(
        (f["kind"].clone(), f["io_kind"].clone(), f["exit_code"].clone()),
        (json!("io"), json!("not_found"), json!(2))
    );
    assert_eq!(doc["models"][0]["error"], f["message"]);
    let doc = run_json(&["show", "--json", s(&nope)], 2);
    assert_eq!(doc["failure"]["kind"], "io");
    assert_eq!(doc["error"], doc["failure"]["message"]);
    assert_eq!(doc["failure"]["reasons"], json!([]));
    assert_eq!(doc["failure"]["offences"], json!([]));

    let (dest, config) = (t.path("m"), t.path("no.yaml"));
    let args = ["new", s(&dest), "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "x"];
    let f = failure(&args, 2);
    assert_eq!((f["kind"].clone(), f["io_kind"].clone()), (json!("io"), json!("not_found")));
    assert_eq!(f["path"], s(&t.path("no.yaml")));
}

#[test]
fn usage_errors_have_a_kind_too() {
    let t = Scratch::new();
    let (dest, config) = (t.path("m"), t.path("config.yaml"));
    let mut args = vec!["new", s(&dest), "--producer", "trainer", "--version", "1", "--config", s(&config)];
    args.extend(["--id", "x", "--param", "noequals"]);
    let f = failure(&args, 2);
    assert_eq!(f["kind"], "usage");
    assert_eq!(f["hint"], "for example --param lr=0.1");
}

#[test]
fn interrupted_save() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    // What a save leaves when it stops between its two renames: the model folder is missing and
    // its complete new tree lies next to it.
    let leftover = t.path(".m.pmf-new-1-0-0000abcd");
    std::fs::rename(&m, &leftover).expect("rename");
    let doc = run_json(&["validate", "--json", s(&m)], 2);
    let f = &doc["models"][0]["failure"];
    assert_eq!(f["kind"], "interrupted_save", "{doc}");
    assert_eq!(f["leftover"], s(&leftover));
    assert_eq!(f["io_kind"], "not_found");
    let f = failure(&["training", "fail", s(&m)], 2);
    assert_eq!(f["kind"], "interrupted_save");
    let (error, details, hint) = human(&["show", s(&m)], 2);
    assert!(error.starts_with("error: the model folder is missing: a save was interrupted"), "{error}");
    assert_eq!(details, [format!("its complete new tree is at {}", s(&leftover))]);
    assert!(hint.contains(&format!("`mv {} {}`", s(&leftover), s(&m))), "{hint}");
    assert!(!m.exists() && leftover.exists(), "readers change nothing");
}

// ---------------------------------------------------------------- other writers (exit 2)

/// Hold the writer lock of `model` as another writer would, recording `pid 4242 on testhost`.
fn hold_lock(model: &Path) -> File {
    let path = model.join(".pmf.lock");
    let mut file = File::options().read(true).write(true).create(true).truncate(false).open(&path).expect("open lock");
    flock(&file, FlockOperation::NonBlockingLockExclusive).expect("lock is free");
    file.set_len(0).expect("truncate");
    file.write_all(b"pid 4242 on testhost since unix time 1700000000\n").expect("write holder");
    file
}

#[test]
fn locked_by_another_writer() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    let lock = hold_lock(&m);
    let args = ["training", "start", s(&m), "--lock-timeout", "0.2"];
    let f = failure(&args, 2);
    assert_eq!(f["kind"], "locked");
    assert_eq!(f["holder"], json!({"pid": 4242, "host": "testhost", "since": 1_700_000_000}));
    assert_eq!(f["waited_secs"], 0.2);
    assert_eq!(f["io_kind"], "would_block");
    let (error, _, hint) = human(&args, 2);
    assert_eq!(
        error,
        format!(
            "error: the model is being written by pid 4242 on testhost since 2023-11-14 22:13:20 UTC (lock .pmf.lock) ({})",
            s(&m)
        )
    );
    assert_eq!(hint, "hint: gave up after 0.2s: retry when it is done, or wait longer with --lock-timeout");
    drop(lock);
    run(&["training", "start", s(&m)], 0);
}

/// Start `pmf args... [--json]` while the test holds the model's lock; once `pmf` waits for
/// the lock (it has loaded the model), apply `change` to the folder, then release the lock.
fn while_waiting(model: &Path, args: &[&str], json: bool, change: impl FnOnce()) -> Output {
    let lock = hold_lock(model);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pmf"));
    cmd.args(args).args(["--lock-timeout", "60"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if json {
        cmd.arg("--json");
    }
    let child = cmd.spawn().expect("pmf starts");
    wait_for_lock_attempt(&child, &model.join(".pmf.lock"));
    change();
    drop(lock);
    child.wait_with_output().expect("pmf ends")
}

/// Wait until `child` tries to take the lock: it has loaded the model by then. Seen when it has
/// the lock file open; as each attempt opens it only for a moment, after [`SETTLE`] without
/// seeing it the child is taken to be waiting (loading a three-file model takes milliseconds).
/// A child that had not loaded the model yet would see the change and succeed: the test then
/// fails, it never passes by chance.
fn wait_for_lock_attempt(child: &Child, lock: &Path) {
    let lock: PathBuf = lock.canonicalize().expect("lock path");
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        let open = std::fs::read_dir(&fds)
            .map(|entries| entries.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == lock)))
            .unwrap_or(false);
        if open {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a child that loads a small model may take before it waits for the lock.
const SETTLE: Duration = Duration::from_secs(2);

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn concurrent_change() {
    let t = Scratch::new();
    let m = t.new_model("m", &["--name", "detector"]);
    run(&["training", "start", s(&m)], 0);
    let out = while_waiting(&m, &["training", "epoch", s(&m)], true, || {
        edit_metadata(&m, "name: detector", "name: renamed");
    });
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = stdout_json(&out);
    let f = &doc["failure"];
    assert_eq!(f["kind"], "concurrent_change", "{doc}");
    assert_eq!(f["path"], s(&m));
    assert_eq!(f["hint"], "run the command again: it applies the change to the model as it is now");
    let text = std::fs::read_to_string(m.join("metadata.yaml")).expect("read");
    assert!(text.contains("name: renamed"), "the other writer's update is kept:\n{text}");

    let out = while_waiting(&m, &["training", "epoch", s(&m)], false, || {
        edit_metadata(&m, "name: renamed", "name: again");
    });
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: another writer saved the model while this command ran; nothing was saved"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: run the command again"), "{stderr}");
    // Run again, it works.
    run(&["training", "epoch", s(&m)], 0);
    assert_eq!(common::show(&m)["name"], "again");
}

#[test]
fn other_model_with_another_id() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    let out = while_waiting(&m, &["training", "epoch", s(&m)], true, || {
        edit_metadata(&m, "id: m-id", "id: intruder");
    });
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = stdout_json(&out);
    let f = &doc["failure"];
    assert_eq!(f["kind"], "other_model", "{doc}");
    assert_eq!((f["found_id"].clone(), f["saving_id"].clone()), (json!("intruder"), json!("m-id")));
    assert_eq!(
        f["message"],
        "the destination holds another PMF model (id \"intruder\"), not model \"m-id\"; refusing to overwrite it"
    );
    assert!(f["hint"].as_str().is_some_and(|h| h.contains("\"intruder\"")), "{f}");
    assert!(std::fs::read_to_string(m.join("metadata.yaml")).expect("read").contains("id: intruder"));
}
