//! `pmf gc`: the lines, the summary, `--json`, `--dry-run` (nothing changed, byte for byte),
//! `--depth`, a model another writer holds (skipped, exit 1), a LOCATION that cannot be listed
//! (exit 2), and on the S3 test server (skipped without it unless `PMF_REQUIRE_S3=1`):
//! unreferenced objects deleted, registered, foreign and neighbouring objects kept.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::s3::{s3_or_skip, S3Test};
use common::{pmf, run, run_json, s, Scratch};
use serde_json::Value;

const SUFFIX: &str = "4242-0-0000abcd";

/// Every file and folder under `root` with its content (links as their target).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                out.insert(rel, None);
                todo.push(path);
            } else if kind.is_symlink() {
                out.insert(rel, Some(fs::read_link(&path).expect("link").into_os_string().into_encoded_bytes()));
            } else {
                out.insert(rel, Some(fs::read(&path).expect("read")));
            }
        }
    }
    out
}

/// A folder `runs/` holding the trained model `runs/model` and what interrupted saves leave
/// next to it and in it, plus the user's files; returns (runs, model).
fn runs_with_leftovers(t: &Scratch) -> (PathBuf, PathBuf) {
    let runs = t.path("runs");
    fs::create_dir_all(&runs).expect("runs");
    let built = t.trained_model("model");
    let model = runs.join("model");
    fs::rename(&built, &model).expect("move the model");
    // A staging folder (its files hard-linked from the model, one of its own), a temporary
    // file, the journal of an in-place save and the file it created.
    let staging = runs.join(format!(".model.pmf-save-{SUFFIX}"));
    fs::create_dir_all(staging.join("data/checkpoints")).expect("staging");
    fs::hard_link(model.join("data/checkpoints/e1.pt"), staging.join("data/checkpoints/e1.pt")).expect("link");
    fs::write(staging.join("data/checkpoints/e4.pt"), vec![4u8; 100]).expect("write");
    fs::write(model.join(format!(".metadata.yaml.pmf-tmp-{SUFFIX}")), b"half").expect("write");
    fs::write(model.join("data/checkpoints/e9.pt"), b"never registered").expect("write");
    fs::write(model.join(format!("data/checkpoints/.pmf-append-{SUFFIX}")), b"e9.pt\0e1.pt\0").expect("write");
    // The user's.
    fs::write(model.join("notes.txt"), b"mine").expect("write");
    fs::create_dir_all(runs.join(".model.pmf-save-notasuffix")).expect("look-alike");
    (runs, model)
}

/// The four leftovers of [`runs_with_leftovers`] as `pmf gc` names them, with their kinds.
fn leftovers(runs: &Path, model: &Path) -> Vec<(String, &'static str)> {
    let mut out = vec![
        (s(&runs.join(format!(".model.pmf-save-{SUFFIX}"))).to_owned(), "staging_folder"),
        (s(&model.join(format!(".metadata.yaml.pmf-tmp-{SUFFIX}"))).to_owned(), "temp_file"),
        (s(&model.join(format!("data/checkpoints/.pmf-append-{SUFFIX}"))).to_owned(), "journal"),
        (s(&model.join("data/checkpoints/e9.pt")).to_owned(), "journal_file"),
    ];
    out.sort();
    out
}

/// The removed items of a `pmf gc --json` document as (path, kind), sorted.
fn removed(doc: &Value) -> Vec<(String, &str)> {
    let mut out: Vec<(String, &str)> = doc["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|i| (i["path"].as_str().expect("path").to_owned(), i["kind"].as_str().expect("kind")))
        .collect();
    out.sort();
    out
}

#[test]
fn gc_prints_what_it_removes_and_a_summary_and_leaves_a_valid_model() {
    let t = Scratch::new();
    let (runs, model) = runs_with_leftovers(&t);
    let (stdout, stderr) = run(&["gc", s(&runs)], 0);
    assert!(stderr.is_empty(), "{stderr}");
    let staging = runs.join(format!(".model.pmf-save-{SUFFIX}"));
    for line in [
        format!("removed {} (staging folder, 109 B, 100 B freed: the rest is linked from the model)", s(&staging)),
        format!("removed {} (temporary file, 4 B)", s(&model.join(format!(".metadata.yaml.pmf-tmp-{SUFFIX}")))),
        format!("removed {} (save journal, 12 B)", s(&model.join(format!("data/checkpoints/.pmf-append-{SUFFIX}")))),
        format!(
            "removed {} (unregistered checkpoint file of an interrupted save, 16 B)",
            s(&model.join("data/checkpoints/e9.pt"))
        ),
        "freed 132 bytes in 4 items across 1 model (132 B; 1 model examined)".to_owned(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in:\n{stdout}");
    }
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(!staging.exists());
    assert!(!model.join("data/checkpoints/e9.pt").exists());
    assert_eq!(fs::read(model.join("notes.txt")).expect("kept"), b"mine");
    assert!(runs.join(".model.pmf-save-notasuffix").is_dir());
    assert_eq!(fs::read(model.join("data/checkpoints/e1.pt")).expect("registered"), b"weights 1");
    run(&["validate", s(&model)], 0);
    // Nothing left: a second run removes nothing.
    let (stdout, _) = run(&["gc", s(&runs)], 0);
    assert_eq!(stdout.trim(), "freed 0 bytes in 0 items across 0 models (0 B; 1 model examined)");
}

#[test]
fn a_dry_run_changes_nothing_byte_for_byte_and_json_is_one_document() {
    let t = Scratch::new();
    let (runs, model) = runs_with_leftovers(&t);
    let before = tree(t.dir.path());
    let (stdout, _) = run(&["gc", "--dry-run", s(&runs)], 0);
    assert!(stdout.lines().filter(|l| l.starts_with("would remove ")).count() == 4, "{stdout}");
    assert!(stdout.contains("would free 132 bytes in 4 items across 1 model"), "{stdout}");
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert!(!stdout.contains("\nremoved "), "{stdout}");
    let dry = run_json(&["gc", "--dry-run", "--json", s(&runs)], 0);
    assert_eq!(tree(t.dir.path()), before, "a dry run changed the tree");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(removed(&dry), leftovers(&runs, &model).iter().map(|(p, k)| (p.clone(), *k)).collect::<Vec<_>>());

    let doc = run_json(&["gc", "--json", s(&runs)], 0);
    assert_eq!(doc["dry_run"], false);
    assert_eq!(removed(&doc), removed(&dry));
    assert_eq!((&doc["freed_bytes"], &doc["items"]), (&Value::from(132), &Value::from(4)), "{doc}");
    assert_eq!((&doc["models_examined"], &doc["models_cleaned"]), (&Value::from(1), &Value::from(1)), "{doc}");
    let sum: u64 =
        doc["removed"].as_array().expect("removed").iter().map(|i| i["freed_bytes"].as_u64().expect("n")).sum();
    assert_eq!(sum, 132);
    for item in doc["removed"].as_array().expect("removed") {
        assert_eq!(item["model"], s(&model), "{item}");
        assert!(item["bytes"].as_u64() >= item["freed_bytes"].as_u64(), "{item}");
    }
    assert_eq!(doc["skipped"], Value::Array(vec![]));
    assert_eq!(doc["errors"], Value::Array(vec![]));
    assert_ne!(tree(t.dir.path()), before);
}

#[test]
fn depth_limits_where_models_are_looked_for() {
    let t = Scratch::new();
    let (runs, _) = runs_with_leftovers(&t);
    let top = t.path("top");
    fs::create_dir_all(top.join("a")).expect("mkdir");
    fs::rename(&runs, top.join("a/runs")).expect("move");
    // top/a/runs/model is 3 levels below top.
    let doc = run_json(&["gc", "--json", "--depth", "2", s(&top)], 0);
    assert_eq!(doc["items"], 0, "{doc}");
    let doc = run_json(&["gc", "--json", "--depth", "3", s(&top)], 0);
    assert_eq!(doc["items"], 4, "{doc}");
}

#[test]
fn a_model_another_writer_holds_is_skipped_with_exit_code_1() {
    let t = Scratch::new();
    let (runs, model) = runs_with_leftovers(&t);
    let lock = model.join(".pmf.lock");
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock).expect("lock");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("flock");
    fs::write(&lock, b"pid 4242 on testhost since unix time 1700000000\n").expect("holder");
    let before = tree(t.dir.path());
    let (stdout, stderr) = run(&["gc", "--lock-timeout", "0.2", s(&runs)], 1);
    assert!(
        stderr.contains(&format!("skipped {}: another writer holds the model's lock (pid 4242 on testhost", s(&model))),
        "{stderr}"
    );
    assert!(stdout.contains("freed 0 bytes in 0 items"), "{stdout}");
    let doc = run_json(&["gc", "--json", "--dry-run", "--lock-timeout", "0", s(&runs)], 1);
    let skipped = doc["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{doc}");
    assert_eq!((&skipped[0]["kind"], &skipped[0]["path"]), (&Value::from("locked"), &Value::from(s(&model))));
    assert_eq!(skipped[0]["failure"]["kind"], "locked", "{doc}");
    assert_eq!(skipped[0]["failure"]["holder"]["pid"], 4242, "{doc}");
    assert_eq!(tree(t.dir.path()), before, "a locked model was changed");
    drop(file);
    let doc = run_json(&["gc", "--json", s(&runs)], 0);
    assert_eq!(doc["items"], 4, "{doc}");
}

#[test]
fn a_location_that_cannot_be_listed_is_exit_code_2() {
    let t = Scratch::new();
    let missing = t.path("missing");
    let (_, stderr) = run(&["gc", s(&missing)], 2);
    assert!(stderr.contains("error:") && stderr.contains(s(&missing)), "{stderr}");
    let doc = run_json(&["gc", "--json", s(&missing)], 2);
    assert_eq!(doc["errors"][0]["path"], s(&missing), "{doc}");
    assert_eq!(doc["errors"][0]["failure"]["kind"], "io", "{doc}");
    let doc = run_json(&["gc", "--json", "--storage-option", "colour=blue", s(&missing)], 2);
    assert_eq!(doc["errors"][0]["failure"]["kind"], "invalid_storage_option", "{doc}");
    assert_eq!(doc["dry_run"], false, "{doc}");
    // A failure before anything was collected still reports the --dry-run asked for.
    let doc = run_json(&["gc", "--dry-run", "--json", "--storage-option", "nokey", s(&missing)], 2);
    assert_eq!((&doc["dry_run"], &doc["items"]), (&Value::from(true), &Value::from(0)), "{doc}");
    assert_eq!(doc["errors"][0]["failure"]["kind"], "usage", "{doc}");
    run(&["gc"], 2);
}

/// What would set a terminal's title and forge a line, if printed as is.
const HOSTILE: &str = "\u{1b}]0;PWNED\u{7}\r\n";
/// [`HOSTILE`] as people see it (`printable`).
const HOSTILE_SHOWN: &str = "\\u{1b}]0;PWNED\\u{7}\\r\\n";

#[test]
fn paths_and_reasons_cannot_drive_the_terminal() {
    let t = Scratch::new();
    let runs = t.path("runs");
    fs::create_dir_all(&runs).expect("runs");
    // A model in a folder named with control characters, a leftover in it.
    let built = t.trained_model("model");
    let model = runs.join(format!("evil{HOSTILE}x"));
    fs::rename(&built, &model).expect("move the model");
    let temp = model.join(format!(".metadata.yaml.pmf-tmp-{SUFFIX}"));
    fs::write(&temp, b"half").expect("write");
    let no_raw = |text: &str| {
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
    };
    let shown = s(&model).replace(HOSTILE, HOSTILE_SHOWN);
    let (out, err) = run(&["gc", "--dry-run", s(&runs)], 0);
    no_raw(&out);
    no_raw(&err);
    assert!(
        out.lines().any(|l| l == format!("would remove {shown}/.metadata.yaml.pmf-tmp-{SUFFIX} (temporary file, 4 B)")),
        "{out}"
    );
    // A model another writer holds, whose lock names a hostile holder: the skip line.
    let lock = model.join(".pmf.lock");
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock).expect("lock");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("flock");
    fs::write(&lock, format!("pid 4242 on host{HOSTILE}y since unix time 1700000000\n")).expect("holder");
    let (out, err) = run(&["gc", "--lock-timeout", "0", s(&runs)], 1);
    no_raw(&out);
    no_raw(&err);
    assert!(err.contains(&format!("skipped {shown}: ")), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("PWNED")).count(), 1, "one line, none forged: {err}");
    // JSON carries the text itself.
    let doc = run_json(&["gc", "--json", "--dry-run", "--lock-timeout", "0", s(&runs)], 1);
    assert_eq!(doc["skipped"][0]["path"], s(&model), "{doc}");
    drop(file);
    let doc = run_json(&["gc", "--json", "--dry-run", s(&runs)], 0);
    assert_eq!(doc["removed"][0]["path"], s(&temp), "{doc}");
}

// ---------------------------------------------------------------- on the S3 test server

/// `pmf args...` with the test server's `--storage-option`s (never the environment's AWS_*).
fn pmf_s3(s3: &S3Test, cache: &Path, args: &[&str], code: i32) -> (String, String) {
    let mut cmd = pmf();
    for name in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        cmd.env_remove(name);
    }
    cmd.env("PMF_CACHE_DIR", cache).env("AWS_EC2_METADATA_DISABLED", "true").args(args);
    for (k, v) in s3.server.storage_options() {
        cmd.arg("--storage-option").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("pmf runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let secret = &s3.server.secret_access_key;
    assert!(!stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()), "a secret was printed");
    assert_eq!(out.status.code(), Some(code), "pmf {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    (stdout, stderr)
}

#[test]
fn s3_gc_deletes_unreferenced_objects_and_keeps_the_rest() {
    let Some(s3) = s3_or_skip("pmf_gc_s3") else { return };
    let t = Scratch::new();
    let cache = t.path("cache");
    let local = t.trained_model("model");
    let url = s3.url("models/detector");
    pmf_s3(&s3, &cache, &["cp", s(&local), &url], 0);
    s3.put("models/detector/data/checkpoints/orphan.pt", b"orphan");
    s3.put("models/detector/notes.txt", b"the user's");
    s3.put("models/detector-2/data/checkpoints/orphan.pt", b"another prefix");
    s3.put("models/detectorx", b"another key");
    let objects = || -> BTreeMap<String, String> { s3.list("").into_iter().map(|(k, _, e)| (k, e)).collect() };
    let before = objects();

    let parent = s3.url("models");
    let dry = {
        let (stdout, _) = pmf_s3(&s3, &cache, &["gc", "--json", "--dry-run", &parent], 0);
        serde_json::from_str::<Value>(&stdout).expect("one JSON document")
    };
    assert_eq!(objects(), before, "a dry run changed the bucket");
    let orphan = format!("{url}/data/checkpoints/orphan.pt");
    assert_eq!(removed(&dry), [(orphan.clone(), "orphan_object")], "{dry}");

    let (stdout, _) = pmf_s3(&s3, &cache, &["gc", &parent], 0);
    assert!(stdout.lines().any(|l| l == format!("removed {orphan} (unreferenced object, 6 B)")), "{stdout}");
    assert!(stdout.contains("freed 6 bytes in 1 item across 1 model"), "{stdout}");
    let mut expected = before.clone();
    expected.remove("models/detector/data/checkpoints/orphan.pt").expect("was there");
    assert_eq!(objects(), expected, "only the orphan went");
    pmf_s3(&s3, &cache, &["validate", &url], 0);

    // The marker of an interrupted replacing save is kept and reported: exit 1.
    s3.put("models/detector/.pmf-save-in-progress", b"a save replacing objects started");
    let (_, stderr) = pmf_s3(&s3, &cache, &["gc", &url], 1);
    assert!(stderr.contains("skipped") && stderr.contains("only a save of the model repairs it"), "{stderr}");
    assert!(objects().contains_key("models/detector/.pmf-save-in-progress"));
}
