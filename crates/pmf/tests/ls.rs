//! `pmf ls`: every model under folders and bucket prefixes, as a table or one JSON document
//! whose entries extend those of `pmf validate --json`; `--where`, `--sort`, `--depth`,
//! `--strict`; invalid, unreadable, nested and linked trees (nothing outside LOCATION is
//! opened: inotify watches say so); exit codes. The object-storage test needs the S3 test
//! server (`common/s3.rs`): skipped without it unless `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::s3::s3_or_skip;
use common::{
    copy_tree, pmf, run, run_cached, run_json, run_json_cached, s, storage_option_args, workspace_root, Scratch,
};
use rustix::fs::inotify;
use serde_json::{json, Value};

/// A finished model with checkpoints 1, 2, 3 (files e1.pt, e2.pt, e3.pt: 9 bytes each).
fn trained(t: &Scratch, dest: &Path, id: &str) -> PathBuf {
    t.finished_model_at(dest, id, &["--name", "detector-small"])
}

/// ```text
/// models/a/             finished, 3 checkpoints (27 bytes), latest 3
/// models/broken/        metadata.yaml is not YAML
/// models/detector/      examples/detector (its initialisation model inside)
/// models/group/b/       running at epoch 0, initialised from the weight file init.bin
/// models/group/notes.txt
/// models/empty/sub/
/// ```
fn tree(t: &Scratch) -> PathBuf {
    let root = t.path("models");
    trained(t, &root.join("a"), "a-id");
    t.new_model_at(&root.join("broken"), "broken-id", &[]);
    fs::write(root.join("broken/metadata.yaml"), "model: [unclosed\n").expect("write");
    copy_tree(&workspace_root().join("examples/detector"), &root.join("detector"));
    let init = t.path("init.bin");
    let b = t.new_model_at(&root.join("group/b"), "b-id", &["--init-file", s(&init), "--init-name", "imagenet"]);
    run(&["training", "start", s(&b)], 0);
    fs::write(root.join("group/notes.txt"), "not a model").expect("write");
    fs::create_dir_all(root.join("empty/sub")).expect("mkdir");
    root
}

fn entry<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["path"] == path)
        .unwrap_or_else(|| panic!("no entry {path} in {doc:#}"))
}

fn listed_paths(doc: &Value) -> Vec<String> {
    doc["models"].as_array().expect("models").iter().map(|m| m["path"].as_str().unwrap_or("?").to_owned()).collect()
}

#[test]
fn a_table_of_every_model_one_line_each_aligned() {
    let t = Scratch::new();
    let root = tree(&t);
    let (out, err) = run(&["ls", s(&root)], 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "header, 4 models, summary:\n{out}");
    let header = lines[0];
    for column in ["PATH", "NAME", "ID", "PRODUCER", "STATUS", "EPOCHS", "CKPTS", "SIZE", "LATEST", "INIT", "VALID"] {
        assert!(header.contains(column), "{column} not in {header}");
    }
    let r = |name: &str| format!("{}/{name}", s(&root));
    let order: Vec<&str> = lines[1..5].iter().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(order, [r("a"), r("broken"), r("detector"), r("group/b")]);
    // Aligned: every column starts where its header does.
    fn start<'a>(header: &str, line: &'a str, column: &str) -> Option<&'a str> {
        header.find(column).map(|i| line.get(i..).unwrap_or(""))
    }
    let a = lines[1];
    assert!(start(header, a, "NAME").is_some_and(|rest| rest.starts_with("detector-small ")), "{out}");
    assert!(start(header, a, "ID").is_some_and(|rest| rest.starts_with("a-id ")), "{out}");
    assert!(start(header, a, "PRODUCER").is_some_and(|rest| rest.starts_with("trainer@1.0.0 ")), "{out}");
    assert!(start(header, a, "STATUS").is_some_and(|rest| rest.starts_with("finished ")), "{out}");
    assert!(start(header, a, "EPOCHS").is_some_and(|rest| rest.starts_with("0/3/3 ")), "{out}");
    assert!(start(header, a, "LATEST").is_some_and(|rest| rest.starts_with("3 ")), "{out}");
    assert!(start(header, a, "INIT").is_some_and(|rest| rest.starts_with("none ")), "{out}");
    assert!(start(header, a, "VALID").is_some_and(|rest| rest == "valid"), "{out}");
    let words: Vec<&str> = a.split_whitespace().collect();
    assert_eq!(words[5..], ["0/3/3", "3", "27", "B", "3", "none", "valid"], "{a}");
    let ckpts_end = header.find("CKPTS").map(|i| i + "CKPTS".len()).unwrap_or(0);
    assert_eq!(a.get(ckpts_end - 1..ckpts_end), Some("3"), "counts are right-aligned: {out}");
    assert!(lines[2].ends_with("invalid (1 offence)"), "{out}");
    assert!(lines[2].contains(" - "), "nothing known of a model whose metadata is not YAML: {out}");
    assert!(lines[3].contains("pmf:backbone-0001@2") && lines[3].contains("\"best\""), "{out}");
    assert!(lines[4].contains("running") && lines[4].contains("0/0/-") && lines[4].contains("file:imagenet"), "{out}");
    assert_eq!(lines[5], "4 models: 3 valid, 1 invalid (checksums not verified)");
    assert!(err.is_empty(), "{err}");
    assert!(!out.contains("initialisation/"), "the initialisation model is not a row: {out}");
}

#[test]
fn json_entries_are_validate_entries_plus_the_summary() {
    let t = Scratch::new();
    let root = tree(&t);
    let doc = run_json(&["ls", "--json", s(&root)], 1);
    let r = |name: &str| format!("{}/{name}", s(&root));
    assert_eq!(listed_paths(&doc), [r("a"), r("broken"), r("detector"), r("group/b")]);
    // The part shared with `pmf validate --json` is identical, key for key.
    for name in ["a", "broken", "detector", "group/b"] {
        let path = r(name);
        let code = if name == "broken" { 1 } else { 0 };
        let validated = run_json(&["validate", "--json", "--quick", &path], code);
        let expected = &validated["models"][0];
        let listed = entry(&doc, &path);
        for (key, value) in expected.as_object().expect("object") {
            assert_eq!(&listed[key], value, "{name}: {key}");
        }
    }
    let a = entry(&doc, &r("a"));
    assert_eq!(a["relative_path"], "a");
    assert_eq!((&a["name"], &a["id"], &a["status"]), (&json!("detector-small"), &json!("a-id"), &json!("finished")));
    assert_eq!(a["producer"], json!({"name": "trainer", "version_format": "py_pa", "version": "1.0.0"}));
    assert_eq!((&a["start_epoch"], &a["latest_epoch"], &a["end_epoch"]), (&json!(0), &json!(3), &json!(3)));
    assert!(a["end_time"].is_number() && a["end_time_utc"].as_str().is_some_and(|t| t.ends_with('Z')), "{a}");
    assert_eq!((&a["checkpoint_count"], &a["checkpoint_bytes"], &a["latest"]), (&json!(3), &json!(27), &json!(3)));
    assert_eq!(a["initialisation"], Value::Null);
    let d = entry(&doc, &r("detector"));
    assert_eq!(d["latest"], "best", "a string reference is a JSON string");
    assert_eq!(
        d["initialisation"],
        json!({"kind": "pmf", "name": "backbone", "id": "backbone-0001", "checkpoint": 2}),
        "the initialisation model is summarised in its parent's entry"
    );
    let b = entry(&doc, &r("group/b"));
    assert_eq!(
        b["initialisation"],
        json!({"kind": "file", "name": "imagenet", "path": "data/initialisation/init.bin"})
    );
    assert_eq!((&b["status"], &b["end_epoch"], &b["checkpoint_count"]), (&json!("running"), &Value::Null, &json!(0)));
    let broken = entry(&doc, &r("broken"));
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["offences"][0]["kind"], "metadata");
    assert_eq!(broken["offences"][0]["location"], "metadata.yaml");
    for key in ["name", "id", "producer", "status", "checkpoint_count", "checkpoint_bytes", "latest", "initialisation"]
    {
        assert_eq!(broken[key], Value::Null, "{key} is unknown");
    }
    assert!(broken.get("error").is_none() && broken.get("failure").is_none(), "{broken}");
}

#[test]
fn where_filters_and_sort_orders_on_the_summary_keys() {
    let t = Scratch::new();
    let root = tree(&t);
    let r = |name: &str| format!("{}/{name}", s(&root));
    let paths = |args: &[&str], code: i32| -> Vec<String> {
        let mut all = vec!["ls", "--json", s(&root)];
        all.extend_from_slice(args);
        listed_paths(&run_json(&all, code))
    };
    assert_eq!(paths(&["--where", "status=running"], 0), [r("group/b")]);
    assert_eq!(paths(&["--where", "valid=false"], 1), [r("broken")]);
    assert_eq!(paths(&["--where", "valid=true"], 0), [r("a"), r("detector"), r("group/b")]);
    assert_eq!(paths(&["--where", "producer=faster_rcnn"], 0), [r("detector")]);
    assert_eq!(paths(&["--where", "id=a-id"], 0), [r("a")]);
    assert_eq!(paths(&["--where", "name=det*"], 0), [r("a"), r("detector")]);
    assert_eq!(paths(&["--where", "name=det*", "--where", "producer=trainer"], 0), [r("a")], "ANDed");
    assert_eq!(paths(&["--where", "initialisation=pmf"], 0), [r("detector")]);
    assert_eq!(paths(&["--where", "init_id=backbone-*"], 0), [r("detector")]);
    assert_eq!(paths(&["--where", "latest=best"], 0), [r("detector")]);
    assert_eq!(paths(&["--where", "path=*/group/*"], 0), [r("group/b")]);
    assert_eq!(paths(&["--where", "id="], 1), [r("broken")], "an unknown value is the empty text");
    assert!(paths(&["--where", "status=pending"], 0).is_empty());
    // Sorted by a key: unknown values last, ties in path order.
    assert_eq!(paths(&["--sort", "latest_epoch"], 1), [r("group/b"), r("a"), r("detector"), r("broken")]);
    assert_eq!(paths(&["--sort", "checkpoints"], 1), [r("group/b"), r("a"), r("detector"), r("broken")]);
    assert_eq!(paths(&["--sort", "id"], 1), [r("a"), r("group/b"), r("detector"), r("broken")]);
    assert_eq!(paths(&["--sort", "status"], 1), [r("group/b"), r("a"), r("detector"), r("broken")]);
    assert_eq!(paths(&["--sort", "valid"], 1), [r("broken"), r("a"), r("detector"), r("group/b")]);
    assert_eq!(paths(&["--sort", "size"], 1)[0], r("group/b"));
    assert_eq!(paths(&["--sort", "path"], 1), [r("a"), r("broken"), r("detector"), r("group/b")]);

    // Unknown keys and malformed filters: usage errors (exit 2) naming the keys.
    let (_, err) = run(&["ls", s(&root), "--where", "colour=red"], 2);
    assert!(err.contains("unknown key \"colour\" for --where: expected one of path, name, id"), "{err}");
    assert!(err.contains("latest_epoch") && err.contains("size"), "{err}");
    let (_, err) = run(&["ls", s(&root), "--where", "status"], 2);
    assert!(err.contains("invalid --where \"status\": expected KEY=VALUE"), "{err}");
    let (_, err) = run(&["ls", s(&root), "--sort", "colour"], 2);
    assert!(err.contains("unknown key \"colour\" for --sort"), "{err}");
    let doc = run_json(&["ls", "--json", s(&root), "--where", "colour=red"], 2);
    assert_eq!(doc["models"], json!([]));
    assert_eq!((&doc["failure"]["kind"], &doc["failure"]["exit_code"]), (&json!("usage"), &json!(2)));
}

#[test]
fn depth_limits_the_search_and_a_location_may_be_a_model() {
    let t = Scratch::new();
    let root = tree(&t);
    let r = |name: &str| format!("{}/{name}", s(&root));
    let paths = |depth: &str, code: i32| listed_paths(&run_json(&["ls", "--json", s(&root), "--depth", depth], code));
    assert!(paths("0", 0).is_empty());
    assert_eq!(paths("1", 1), [r("a"), r("broken"), r("detector")]);
    assert_eq!(paths("2", 1), [r("a"), r("broken"), r("detector"), r("group/b")]);
    let (out, err) = run(&["ls", s(&root), "--depth", "0"], 0);
    assert_eq!(out.trim(), "0 models: 0 valid, 0 invalid (checksums not verified)");
    assert!(err.contains("no PMF model found"), "{err}");
    run(&["ls", s(&root), "--depth", "-1"], 2);
    // A LOCATION that is a model is one entry, the location itself.
    let doc = run_json(&["ls", "--json", &r("detector")], 0);
    assert_eq!(listed_paths(&doc), [r("detector")]);
    assert_eq!(doc["models"][0]["relative_path"], ".");
}

#[test]
fn strict_verifies_checksums_and_the_listing_goes_on() {
    let t = Scratch::new();
    let root = tree(&t);
    fs::remove_dir_all(root.join("broken")).expect("remove");
    // Same size, other content: only strict validation sees it.
    fs::write(root.join("a/data/checkpoints/e2.pt"), "weights X").expect("write");
    let (out, _) = run(&["ls", s(&root)], 0);
    assert!(out.contains("3 models: 3 valid, 0 invalid (checksums not verified)"), "{out}");
    let (out, _) = run(&["ls", "--strict", s(&root)], 1);
    assert!(out.lines().nth(1).is_some_and(|l| l.ends_with("invalid (1 offence)")), "{out}");
    assert!(out.contains("3 models: 2 valid, 1 invalid\n"), "{out}");
    let doc = run_json(&["ls", "--json", "--strict", s(&root)], 1);
    let a = entry(&doc, &format!("{}/a", s(&root)));
    assert_eq!((&a["valid"], &a["strict"]), (&json!(false), &json!(true)));
    assert_eq!(a["offences"][0]["location"], "data/checkpoints/e2.pt");
    assert!(a["offences"][0]["message"].as_str().is_some_and(|m| m.contains("checksum mismatch")), "{a}");
    assert_eq!(a["id"], "a-id", "an invalid model is still summarised");
    assert_eq!(doc["models"].as_array().map(Vec::len), Some(3));
}

/// A non-blocking inotify instance watching `paths` for opens and reads.
fn watch_opens(paths: &[PathBuf]) -> std::os::fd::OwnedFd {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).expect("inotify");
    for p in paths {
        inotify::add_watch(&fd, p, inotify::WatchFlags::OPEN | inotify::WatchFlags::ACCESS).expect("watch");
    }
    fd
}

fn events(fd: &std::os::fd::OwnedFd) -> Vec<String> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Ok(event) = reader.next() {
        out.push(format!("{:?}: {:?}", event.file_name(), event.events()));
    }
    out
}

#[test]
fn links_out_of_location_are_not_followed_and_nothing_outside_is_opened() {
    let t = Scratch::new();
    let outside = t.path("outside");
    let foreign = trained(&t, &outside.join("foreign"), "foreign-id");
    let secret = trained(&t, &outside.join("secret"), "secret-id");
    // A model whose metadata.yaml is a FIFO: opening it for reading would block.
    let trap = outside.join("trap");
    fs::create_dir_all(trap.join("data")).expect("mkdir");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        trap.join("metadata.yaml"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let root = t.path("models");
    trained(&t, &root.join("ok"), "ok-id");
    symlink(&foreign, root.join("linked-model")).expect("link");
    symlink(&outside, root.join("linked-folder")).expect("link");
    symlink(&trap, root.join("linked-trap")).expect("link");
    fs::create_dir(root.join("sub")).expect("mkdir");
    symlink(root.join("ok"), root.join("sub/linked-inside")).expect("link");
    // A model whose metadata.yaml is a link to another model's, outside.
    trained(&t, &root.join("evil"), "evil-id");
    fs::remove_file(root.join("evil/metadata.yaml")).expect("remove");
    symlink(secret.join("metadata.yaml"), root.join("evil/metadata.yaml")).expect("link");

    let watched =
        [outside.clone(), foreign.clone(), foreign.join("metadata.yaml"), trap.clone(), secret.join("metadata.yaml")];
    let watch = watch_opens(&watched);
    let out =
        pmf().args(["ls", "--json", "--strict", s(&root)]).timeout(Duration::from_secs(60)).output().expect("pmf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed_paths(&doc), [format!("{}/evil", s(&root)), format!("{}/ok", s(&root))]);
    let evil = &doc["models"][0];
    assert_eq!((&evil["valid"], &evil["id"]), (&json!(false), &Value::Null), "{evil}");
    assert_eq!(evil["offences"][0]["location"], "metadata.yaml");
    assert!(
        evil["offences"][0]["message"].as_str().is_some_and(|m| m.contains("outside the model root: refused")),
        "{evil}"
    );
    assert_eq!(doc["models"][1]["valid"], true);
    let seen = events(&watch);
    assert!(seen.is_empty(), "pmf ls opened or read something outside LOCATION: {seen:?}");
}

#[test]
fn unreadable_locations_and_models_left_missing_by_a_save() {
    let t = Scratch::new();
    let root = t.path("models");
    trained(&t, &root.join("ok"), "ok-id");
    // The complete new tree of a save interrupted between its two renames; `gone` is missing.
    trained(&t, &root.join(".gone.pmf-new-42-0-0000abcd"), "gone-id");
    let missing = t.path("missing");
    let (out, err) = run(&["ls", s(&root), s(&missing)], 2);
    assert!(out.contains(&format!("{}/gone", s(&root))) && out.contains("unreadable"), "{out}");
    assert!(out.contains("2 models: 1 valid, 1 invalid"), "{out}");
    assert!(err.contains("the model folder is missing: a save was interrupted"), "{err}");
    assert!(
        err.contains(&format!("error: cannot list models: No such file or directory (os error 2) ({})", s(&missing))),
        "{err}"
    );
    let doc = run_json(&["ls", "--json", s(&root), s(&missing)], 2);
    assert_eq!(listed_paths(&doc), [format!("{}/gone", s(&root)), format!("{}/ok", s(&root)), s(&missing).to_owned()]);
    let gone = &doc["models"][0];
    assert_eq!((&gone["valid"], &gone["offences"]), (&json!(false), &json!([])));
    assert_eq!(gone["failure"]["kind"], "interrupted_save", "{gone}");
    assert!(gone["error"].as_str().is_some(), "{gone}");
    let failed = &doc["models"][2];
    assert_eq!((&failed["valid"], &failed["relative_path"]), (&json!(false), &Value::Null));
    assert_eq!((&failed["failure"]["kind"], &failed["failure"]["io_kind"]), (&json!("io"), &json!("not_found")));
    // The model alone: exit 1 (an unreadable model is an invalid row); a file: exit 2.
    run(&["ls", s(&root)], 1);
    let (_, err) = run(&["ls", s(&t.path("config.yaml"))], 2);
    assert!(err.contains("cannot list models: Not a directory"), "{err}");
    let (_, err) = run(&["ls", "foo://x"], 2);
    assert!(err.contains("unknown scheme"), "{err}");
}

#[test]
fn models_under_a_bucket_prefix() {
    let Some(s3) = s3_or_skip("cli_ls_prefix") else { return };
    let t = Scratch::new();
    let local = t.path("upload");
    trained(&t, &local.join("a"), "a-id");
    copy_tree(&workspace_root().join("examples/detector"), &local.join("team/detector"));
    trained(&t, &local.join("team/broken"), "broken-id");
    fs::remove_file(local.join("team/broken/data/checkpoints/e1.pt")).expect("remove");
    s3.upload_dir(&local, "models");
    let options = storage_option_args(&s3);
    let url = s3.url("models");
    let mut args = vec!["ls", "--json", url.as_str()];
    args.extend(options.iter().map(String::as_str));
    let doc = run_json_cached(&args, &t.path("cache"), 1);
    assert_eq!(listed_paths(&doc), [s3.url("models/a"), s3.url("models/team/broken"), s3.url("models/team/detector")]);
    let a = &doc["models"][0];
    assert_eq!((&a["valid"], &a["id"], &a["checkpoint_bytes"]), (&json!(true), &json!("a-id"), &json!(27)));
    let broken = &doc["models"][1];
    assert_eq!((&broken["valid"], &broken["id"]), (&json!(false), &json!("broken-id")));
    assert_eq!(broken["offences"][0]["location"], "data/checkpoints/e1.pt");
    assert_eq!(doc["models"][2]["initialisation"]["id"], "backbone-0001");
    assert_eq!(doc["models"][2]["relative_path"], "team/detector");
    // The table, and a filter.
    let mut args = vec!["ls", url.as_str(), "--where", "valid=true", "--depth", "2"];
    args.extend(options.iter().map(String::as_str));
    let (stdout, _) = run_cached(&args, &t.path("cache"), 0);
    assert!(
        stdout.contains(&s3.url("models/team/detector")) && stdout.contains("2 models: 2 valid, 0 invalid"),
        "{stdout}"
    );
}

#[test]
fn hostile_names_are_escaped_in_the_table_and_kept_in_json() {
    let t = Scratch::new();
    let root = t.path("models");
    let name = "evil\u{1b}]0;PWNED\u{7}\u{1b}[31m\r\nforged  row  valid";
    t.new_model_at(&root.join("evil"), "evil-id", &["--name", name]);
    let (out, _) = run(&["ls", s(&root)], 0);
    assert!(!out.contains('\u{1b}') && !out.contains('\r') && !out.contains('\u{7}'), "raw control bytes: {out:?}");
    assert!(out.contains("evil\\u{1b}]0;PWNED\\u{7}\\u{1b}[31m\\r\\nforged  row  valid"), "{out}");
    assert_eq!(out.lines().count(), 3, "header, one row, summary: {out}");
    // JSON carries the name itself (serde escapes it).
    let doc = run_json(&["ls", "--json", s(&root)], 0);
    assert_eq!(doc["models"][0]["name"], name);
}

#[test]
fn sort_path_orders_the_models_of_every_location_and_a_filter_that_keeps_none_says_so() {
    let t = Scratch::new();
    let root = t.path("models");
    trained(&t, &root.join("b"), "b-id");
    trained(&t, &root.join("a"), "a-id");
    let (a, b) = (format!("{}/a", s(&root)), format!("{}/b", s(&root)));
    let paths = |extra: &[&str]| {
        let mut args = vec!["ls", "--json", &b, &a];
        args.extend_from_slice(extra);
        listed_paths(&run_json(&args, 0))
    };
    assert_eq!(paths(&[]), [b.clone(), a.clone()], "without --sort: the locations in the order given");
    assert_eq!(paths(&["--sort", "path"]), [a.clone(), b.clone()]);
    let (_, err) = run(&["ls", s(&root), "--where", "status=running"], 0);
    assert!(err.contains("no model matches --where (2 listed)"), "{err}");
    let (_, err) = run(&["ls", s(&root), "--sort", "colour"], 2);
    assert!(err.contains("for example --sort latest_epoch"), "{err}");
}

#[test]
fn html_file_must_be_local_and_is_refused_before_listing() {
    let t = Scratch::new();
    let root = t.path("models");
    trained(&t, &root.join("a"), "a-id");
    let (out, err) = pmf_in(t.path(""), &["ls", s(&root), "--html", "s3://bucket/page.html"], 2);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("--html FILE must be a local file, not s3://bucket/page.html"), "{err}");
    assert!(!t.path("s3:").exists(), "no folder named s3: is created");
}

/// `pmf args` run in `dir`, expecting exit code `code`: (stdout, stderr).
fn pmf_in(dir: PathBuf, args: &[&str], code: i32) -> (String, String) {
    let out = pmf().current_dir(dir).args(args).output().expect("run pmf");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(out.status.code(), Some(code), "pmf {args:?}\nstdout {stdout}\nstderr {stderr}");
    (stdout, stderr)
}

#[test]
fn credentials_in_a_location_are_never_printed() {
    let secret_parts = ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY"];
    for url in [
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bucket/p",
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY@bucket/p",
    ] {
        let t = Scratch::new();
        let page = t.path("page.html");
        for args in [
            vec!["ls", url],
            vec!["ls", "--json", url],
            vec!["ls", url, "--html", s(&page)],
            vec!["validate", "--json", url],
            vec!["show", "--json", url],
        ] {
            let out = pmf().args(&args).output().expect("run pmf");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
            assert!(text.contains("<redacted>"), "{args:?}: {text}");
            for part in secret_parts {
                assert!(!text.contains(part), "{args:?} printed {part}: {text}");
            }
        }
        let html = fs::read_to_string(&page).expect("the page is written, with the failure");
        for part in secret_parts {
            assert!(!html.contains(part), "the page shows {part}");
        }
    }
}
