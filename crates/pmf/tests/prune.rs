//! `pmf checkpoint prune`: what it removes and keeps (read back with `pmf show --json` and a
//! strict `pmf validate`), `--dry-run` (not a byte changes), its refusals (no rule, a bad
//! value, an unknown `--keep` reference: exit 2, nothing changed) and its `--json` document.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{references, run, run_json, s, show, Scratch};
use serde_json::json;

/// A running model with checkpoints 1..=n (files `w1.pt`.. `wn.pt`, "weights i") at epochs 1..=n.
fn model_with(t: &Scratch, n: i64) -> PathBuf {
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    for i in 1..=n {
        let file = t.path(&format!("w{i}.pt"));
        std::fs::write(&file, format!("weights {i}")).expect("write");
        run(&["checkpoint", "add", s(&m), s(&file), "--epoch", &i.to_string()], 0);
    }
    m
}

/// Every file under `root` and its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.strip_prefix(root).expect("inside").to_path_buf(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn checkpoint_files(m: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(m.join("data/checkpoints"))
        .expect("read checkpoints")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn prune_keeps_the_last_and_every_kth_and_deletes_the_other_files() {
    let t = Scratch::new();
    let m = model_with(&t, 10);
    let (stdout, _) = run(&["checkpoint", "prune", s(&m), "--keep-last", "3", "--keep-every", "5"], 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..6],
        [1, 2, 3, 4, 6, 7].map(|i| format!("removed checkpoint {i} (epoch {i}, data/checkpoints/w{i}.pt, 9 B)"))
    );
    assert!(stdout.contains("kept checkpoint 10 (epoch 10): latest, last, every"), "{stdout}");
    assert!(stdout.contains("kept checkpoint 5 (epoch 5): every"), "{stdout}");
    assert!(lines.last().is_some_and(|l| l.starts_with("kept 4, removed 6, freed 54 B")), "{stdout}");

    assert_eq!(checkpoint_files(&m), ["w10.pt", "w5.pt", "w8.pt", "w9.pt"]);
    let model = show(&m);
    assert_eq!(references(&model), [json!(5), json!(8), json!(9), json!(10)]);
    assert_eq!(model["latest"], 10);
    assert_eq!(model["training"]["latest_epoch"], 10, "the training is not changed");
    let metadata = std::fs::read_to_string(m.join("metadata.yaml")).expect("metadata");
    assert!(!metadata.contains("w1.pt") && !metadata.contains("w7.pt") && metadata.contains("w8.pt"), "{metadata}");
    // Valid strictly (every checksum verified), and a second prune has nothing to remove.
    let doc = run_json(&["validate", "--json", s(&m)], 0);
    assert_eq!((&doc["models"][0]["valid"], &doc["models"][0]["strict"]), (&json!(true), &json!(true)), "{doc}");
    let (stdout, _) = run(&["checkpoint", "prune", s(&m), "--keep-last", "3", "--keep-every", "5"], 0);
    assert!(stdout.lines().last().is_some_and(|l| l.starts_with("nothing to remove: kept 4")), "{stdout}");
}

#[test]
fn dry_run_changes_nothing_and_says_what_would_go() {
    let t = Scratch::new();
    let m = model_with(&t, 10);
    let before = tree(&m);
    let (stdout, _) = run(&["checkpoint", "prune", s(&m), "--keep-last", "2", "--dry-run"], 0);
    assert!(stdout.starts_with("would remove checkpoint 1 (epoch 1, data/checkpoints/w1.pt, 9 B)\n"), "{stdout}");
    assert!(stdout.contains("would keep checkpoint 9 (epoch 9): last"), "{stdout}");
    assert!(stdout.contains("dry run: would keep 2, remove 8, free 72 B; nothing was changed"), "{stdout}");
    assert_eq!(tree(&m), before, "not a byte changed");
    let doc = run_json(&["checkpoint", "prune", s(&m), "--keep-last", "2", "--dry-run", "--json"], 0);
    assert_eq!((&doc["dry_run"], &doc["saved"]), (&json!(true), &json!(false)), "{doc}");
    assert_eq!(doc["removed"].as_array().map(Vec::len), Some(8), "{doc}");
    assert_eq!(doc["freed_bytes"], 72);
    assert_eq!(tree(&m), before, "not a byte changed");
}

#[test]
fn an_unknown_keep_reference_is_refused_and_nothing_changes() {
    let t = Scratch::new();
    let m = model_with(&t, 4);
    let before = tree(&m);
    let (stdout, stderr) = run(&["checkpoint", "prune", s(&m), "--keep-last", "1", "--keep", "2", "--keep", "9"], 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: --keep 9: checkpoint reference 9 is not registered; nothing was changed"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: registered references: 1, 2, 3, 4"), "{stderr}");
    let (_, stderr) = run(&["checkpoint", "prune", s(&m), "--keep", "2", "--keep", "best", "--ref-str"], 2);
    assert!(stderr.contains("checkpoint references \"2\", \"best\" are not registered"), "{stderr}");
    assert!(stderr.contains("the model has the int reference 2: drop --ref-str"), "{stderr}");
    // Also on a dry run, and as data with --json.
    let doc = run_json(&["checkpoint", "prune", s(&m), "--keep", "typo", "--dry-run", "--json"], 2);
    assert_eq!(
        (&doc["saved"], &doc["failure"]["kind"], &doc["failure"]["exit_code"]),
        (&json!(false), &json!("usage"), &json!(2))
    );
    assert!(doc["error"].as_str().is_some_and(|e| e.contains("\"typo\" is not registered")), "{doc}");
    assert!(doc.get("removed").is_none() && doc.get("kept").is_none(), "{doc}");
    assert_eq!(tree(&m), before, "nothing changed");
}

#[test]
fn a_policy_without_a_rule_or_with_a_bad_value_is_refused() {
    let t = Scratch::new();
    let m = model_with(&t, 3);
    let before = tree(&m);
    let (_, stderr) = run(&["checkpoint", "prune", s(&m)], 2);
    assert!(stderr.starts_with("error: invalid retention policy: no rule given"), "{stderr}");
    assert!(stderr.contains("hint: give at least one of --keep-last N, --keep-every K"), "{stderr}");
    for (args, text) in [
        (&["--keep-last", "0"][..], "invalid retention policy: --keep-last: must be at least 1"),
        (&["--keep-every", "0"][..], "invalid retention policy: --keep-every: must be at least 1, got 0"),
        (&["--keep-every", "-5", "--keep-last", "2"][..], "--keep-every: must be at least 1, got -5"),
    ] {
        let mut all = vec!["checkpoint", "prune", s(&m), "--json"];
        all.extend_from_slice(args);
        let doc = run_json(&all, 2);
        assert_eq!(doc["failure"]["kind"], "invalid_retention", "{doc}");
        assert!(doc["error"].as_str().is_some_and(|e| e.contains(text)), "{args:?}: {doc}");
    }
    let (_, stderr) = run(&["checkpoint", "prune", s(&m), "--keep-last", "-1"], 2);
    assert!(stderr.contains("invalid value '-1' for '--keep-last <N>'"), "{stderr}");
    // The policy is refused before the model is read: a missing model is not even looked at.
    let (_, stderr) = run(&["checkpoint", "prune", s(&t.path("nope"))], 2);
    assert!(stderr.contains("no rule given"), "{stderr}");
    assert_eq!(tree(&m), before);
}

#[test]
fn json_document() {
    let t = Scratch::new();
    let m = model_with(&t, 4);
    // "best" shares w2.pt with checkpoint 2, and is the latest.
    run(&["checkpoint", "add", s(&m), s(&t.path("w2.pt")), "--epoch", "2", "--ref", "best"], 0);
    let doc = run_json(&["checkpoint", "prune", s(&m), "--keep-last", "1", "--keep", "1", "--json"], 0);
    assert_eq!(
        doc,
        json!({
            "path": s(&m),
            "saved": true,
            "dry_run": false,
            "message": "kept 3, removed 2, freed 9 B",
            "removed": [
                {"reference": 2, "epoch": 2, "path": "data/checkpoints/w2.pt", "size": 9, "file_kept": true},
                {"reference": 3, "epoch": 3, "path": "data/checkpoints/w3.pt", "size": 9, "file_kept": false},
            ],
            "kept": [
                {"reference": 1, "epoch": 1, "reasons": ["pinned"]},
                {"reference": 4, "epoch": 4, "reasons": ["last"]},
                {"reference": "best", "epoch": 2, "reasons": ["latest"]},
            ],
            "freed_bytes": 9,
        })
    );
    assert_eq!(checkpoint_files(&m), ["w1.pt", "w2.pt", "w4.pt"], "the shared file stays");
    assert_eq!(show(&m)["latest"], "best");
    run(&["validate", s(&m)], 0);
    let doc = run_json(&["checkpoint", "prune", s(&m), "--keep-last", "1", "--keep", "1", "--json"], 0);
    assert_eq!((&doc["saved"], &doc["removed"], &doc["freed_bytes"]), (&json!(false), &json!([]), &json!(0)), "{doc}");
    assert_eq!(doc["message"], "nothing to remove: kept 3");
}
