//! `pmf lineage LOCATION...`: the forest of models by initialisation, for people (children
//! indented under their parents, from weight files and missing parents down) and as one JSON
//! document (nodes, edges, problems, errors); chains, a parent outside LOCATION, duplicate ids,
//! a cycle, weight files; exit codes. The object-storage test needs the S3 test server
//! (`common/s3.rs`): skipped without it unless `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::s3::s3_or_skip;
use common::{copy_tree, run, run_json, run_json_cached, s, storage_option_args, workspace_root, Scratch};
use serde_json::{json, Value};

/// `pmf new DEST --id ID` (producer trainer 1.0.0) with `extra`, then a running training with
/// checkpoints 1 and 2.
fn model(t: &Scratch, dest: &Path, id: &str, extra: &[&str]) -> PathBuf {
    t.new_model_at(dest, id, extra);
    t.train(dest, 2);
    dest.to_path_buf()
}

/// `model` initialised from checkpoint `checkpoint` of the model at `parent`.
fn child(t: &Scratch, dest: &Path, id: &str, parent: &Path, checkpoint: &str) -> PathBuf {
    model(t, dest, id, &["--name", id, "--init-model", s(parent), "--init-checkpoint", checkpoint])
}

/// ```text
/// models/backbone   from the weight file init.bin ("imagenet")
/// models/det        from backbone, checkpoint 2
/// models/det/..     (its copy of backbone, in data/initialisation: part of det)
/// models/track      from det, checkpoint 1
/// models/seg        from backbone, checkpoint 1
/// models/scratch    from scratch
/// ```
fn chain(t: &Scratch) -> PathBuf {
    let root = t.path("models");
    let init = t.path("init.bin");
    let backbone =
        model(t, &root.join("backbone"), "backbone-1", &["--init-file", s(&init), "--init-name", "imagenet"]);
    let det = child(t, &root.join("det"), "det-1", &backbone, "2");
    child(t, &root.join("track"), "track-1", &det, "1");
    child(t, &root.join("seg"), "seg-1", &backbone, "1");
    model(t, &root.join("scratch"), "scratch-1", &[]);
    root
}

fn edges(doc: &Value) -> Vec<(String, String, Value)> {
    doc["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["child"].as_str().unwrap_or("?").to_owned(),
                e["parent"].as_str().unwrap_or("?").to_owned(),
                e["checkpoint"].clone(),
            )
        })
        .collect()
}

fn edge(child: &str, parent: &str, checkpoint: Value) -> (String, String, Value) {
    (child.to_owned(), parent.to_owned(), checkpoint)
}

#[test]
fn a_chain_as_a_tree_exit_0() {
    let t = Scratch::new();
    let root = chain(&t);
    let (out, err) = run(&["lineage", s(&root)], 0);
    let r = |name: &str| format!("{}/{name}", s(&root));
    let expected = [
        format!("scratch-1 ({})", r("scratch")),
        "weight file init.bin (\"imagenet\")".to_owned(),
        format!("└── backbone-1 ({})", r("backbone")),
        format!("    ├── det-1 ({}), from checkpoint 2", r("det")),
        format!("    │   └── track-1 ({}), from checkpoint 1", r("track")),
        format!("    └── seg-1 ({}), from checkpoint 1", r("seg")),
        "5 models, 1 weight file".to_owned(),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn the_graph_in_json() {
    let t = Scratch::new();
    let root = chain(&t);
    let doc = run_json(&["lineage", "--json", s(&root)], 0);
    let keys: Vec<&str> =
        doc["nodes"].as_array().expect("nodes").iter().map(|n| n["key"].as_str().unwrap_or("?")).collect();
    assert_eq!(keys, ["backbone", "det", "scratch", "seg", "track", "weight:init.bin"]);
    assert_eq!(
        doc["nodes"][1],
        json!({"key": "det", "kind": "model", "label": "det-1", "id": "det-1", "name": "det-1", "path": format!("{}/det", s(&root))})
    );
    assert_eq!(
        doc["nodes"][5],
        json!({"key": "weight:init.bin", "kind": "weight_file", "label": "init.bin", "id": null, "name": "imagenet", "path": "data/initialisation/init.bin"})
    );
    assert_eq!(
        edges(&doc),
        [
            edge("backbone", "weight:init.bin", Value::Null),
            edge("det", "backbone", json!(2)),
            edge("seg", "backbone", json!(1)),
            edge("track", "det", json!(1)),
        ]
    );
    assert_eq!((&doc["problems"], &doc["errors"]), (&json!([]), &json!([])));
}

#[test]
fn missing_parents_duplicates_and_weight_files_exit_1() {
    let t = Scratch::new();
    let root = t.path("models");
    copy_tree(&workspace_root().join("examples/detector"), &root.join("detector"));
    let outside = model(&t, &t.path("elsewhere"), "outside-1", &["--name", "outside"]);
    child(&t, &root.join("a"), "a-1", &outside, "2");
    let shared = model(&t, &root.join("dup/one"), "shared", &[]);
    copy_tree(&shared, &root.join("dup/two"));
    child(&t, &root.join("b"), "b-1", &shared, "1");

    let (out, _) = run(&["lineage", s(&root)], 1);
    let r = |name: &str| format!("{}/{name}", s(&root));
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        format!("shared ({}) [duplicate id]", r("dup/one")),
        format!("└── b-1 ({}), from checkpoint 1", r("b")),
        format!("shared ({}) [duplicate id]", r("dup/two")),
        format!("└── b-1 ({}), from checkpoint 1", r("b")),
        "model backbone-0001 (\"backbone\") [missing: no model listed has this id]".to_owned(),
        format!("└── detector (id detector-0001, {}), from checkpoint 2", r("detector")),
        "model outside-1 (\"outside\") [missing: no model listed has this id]".to_owned(),
        format!("└── a-1 ({}), from checkpoint 2", r("a")),
        "3 problems:".to_owned(),
        format!("  missing parent: {} was initialised from model \"outside-1\", which no model listed has", r("a")),
        format!(
            "  missing parent: {} was initialised from model \"backbone-0001\", which no model listed has",
            r("detector")
        ),
        format!("  duplicate id: \"shared\" is the id of 2 models: {}, {}", r("dup/one"), r("dup/two")),
        "5 models, 0 weight files, 2 missing parent models".to_owned(),
    ];
    assert_eq!(lines, expected, "{out}");

    let doc = run_json(&["lineage", "--json", s(&root)], 1);
    assert_eq!(
        doc["problems"],
        json!([
            {"kind": "missing_parent", "child": "a", "id": "outside-1"},
            {"kind": "missing_parent", "child": "detector", "id": "backbone-0001"},
            {"kind": "duplicate_id", "id": "shared", "paths": ["dup/one", "dup/two"]},
        ])
    );
    let missing = doc["nodes"].as_array().expect("nodes").iter().find(|n| n["key"] == "missing:backbone-0001").cloned();
    assert_eq!(
        missing,
        Some(
            json!({"key": "missing:backbone-0001", "kind": "missing_model", "label": "backbone-0001", "id": "backbone-0001", "name": "backbone", "path": null})
        )
    );
    assert!(
        edges(&doc).contains(&edge("b", "dup/one", json!(1))) && edges(&doc).contains(&edge("b", "dup/two", json!(1)))
    );
}

#[test]
fn a_cycle_is_shown_and_ends_exit_1() {
    let t = Scratch::new();
    let root = t.path("models");
    let b = model(&t, &root.join("b"), "b-id", &[]);
    let a = child(&t, &root.join("a"), "a-id", &b, "1");
    // b again, initialised from a (which holds the first b): a <- b <- a.
    let again = child(&t, &t.path("b-again"), "b-id", &a, "2");
    fs::remove_dir_all(&b).expect("remove");
    fs::rename(again, &b).expect("rename");
    child(&t, &root.join("c"), "c-id", &a, "2");

    let (out, _) = run(&["lineage", s(&root)], 1);
    let r = |name: &str| format!("{}/{name}", s(&root));
    let expected = [
        format!("a-id ({}) [cycle] (on a cycle: no root above it)", r("a")),
        format!("├── b-id ({}), from checkpoint 2 [cycle]", r("b")),
        format!(
            "│   └── a-id ({}), from checkpoint 1 [cycle] (cycle: initialised from its descendant, shown above)",
            r("a")
        ),
        format!("└── c-id ({}), from checkpoint 2", r("c")),
        "1 problem:".to_owned(),
        format!("  cycle: {}, {} are initialised from one another", r("a"), r("b")),
        "3 models, 0 weight files".to_owned(),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    let doc = run_json(&["lineage", "--json", s(&root)], 1);
    assert_eq!(doc["problems"], json!([{"kind": "cycle", "keys": ["a", "b"]}]));
    assert_eq!(edges(&doc), [edge("a", "b", json!(1)), edge("b", "a", json!(2)), edge("c", "a", json!(2))]);
}

#[test]
fn string_references_unreadable_models_and_depth() {
    let t = Scratch::new();
    let root = t.path("models");
    let parent = model(&t, &root.join("deep/er/parent"), "p-1", &[]);
    run(&["checkpoint", "add", s(&parent), s(&t.path("e3.pt")), "--epoch", "2", "--ref", "best"], 0);
    child(&t, &root.join("kid"), "kid-1", &parent, "best");
    let broken = model(&t, &root.join("broken"), "broken-1", &[]);
    fs::write(broken.join("metadata.yaml"), "model: [unclosed\n").expect("write");
    let (out, _) = run(&["lineage", s(&root)], 0);
    assert!(out.contains(&format!("broken ({}/broken, metadata not readable)", s(&root))), "{out}");
    assert!(out.contains(&format!("└── kid-1 ({}/kid), from checkpoint \"best\"", s(&root))), "{out}");
    let doc = run_json(&["lineage", "--json", s(&root)], 0);
    assert_eq!(edges(&doc), [edge("kid", "deep/er/parent", json!("best"))]);
    // Not deep enough to find the parent: missing.
    let doc = run_json(&["lineage", "--json", "--depth", "2", s(&root)], 1);
    assert_eq!(doc["problems"], json!([{"kind": "missing_parent", "child": "kid", "id": "p-1"}]));
}

#[test]
fn several_locations_and_locations_that_cannot_be_listed() {
    let t = Scratch::new();
    let one = model(&t, &t.path("one"), "one-1", &[]);
    let two = child(&t, &t.path("two"), "two-1", &one, "1");
    let doc = run_json(&["lineage", "--json", s(&two), s(&one), s(&one)], 0);
    let keys: Vec<&str> =
        doc["nodes"].as_array().expect("nodes").iter().map(|n| n["key"].as_str().unwrap_or("?")).collect();
    assert_eq!(keys, [s(&one), s(&two)], "both are `.`: keyed by their locations; one listed twice is one node");
    assert_eq!(edges(&doc), [edge(s(&two), s(&one), json!(1))]);

    let missing = t.path("missing");
    let (out, err) = run(&["lineage", s(&one), s(&missing)], 2);
    assert!(out.contains(&format!("one-1 ({})", s(&one))), "{out}");
    assert!(err.starts_with("error: ") && err.contains(s(&missing)), "{err}");
    let doc = run_json(&["lineage", "--json", s(&missing)], 2);
    assert_eq!(doc["nodes"], json!([]));
    assert_eq!(doc["errors"][0]["path"], s(&missing));
    assert_eq!(
        (&doc["errors"][0]["failure"]["kind"], &doc["errors"][0]["failure"]["exit_code"]),
        (&json!("io"), &json!(2))
    );
    let doc = run_json(&["lineage", "--json", s(&one), "--storage-option", "nonsense"], 2);
    assert_eq!((&doc["errors"][0]["path"], &doc["errors"][0]["failure"]["kind"]), (&Value::Null, &json!("usage")));
    fs::create_dir(t.path("empty")).expect("mkdir");
    let (out, err) = run(&["lineage", s(&t.path("empty"))], 0);
    assert!(out.is_empty() && err.contains("no PMF model found"), "{out}{err}");
}

#[test]
fn a_bucket_prefix() {
    let Some(s3) = s3_or_skip("cli_lineage_prefix") else { return };
    let t = Scratch::new();
    let root = chain(&t);
    s3.upload_dir(&root, "models");
    let options = storage_option_args(&s3);
    let url = s3.url("models");
    let mut args = vec!["lineage", "--json", url.as_str()];
    args.extend(options.iter().map(String::as_str));
    let doc = run_json_cached(&args, &t.path("cache"), 0);
    assert_eq!(
        edges(&doc),
        [
            edge("backbone", "weight:init.bin", Value::Null),
            edge("det", "backbone", json!(2)),
            edge("seg", "backbone", json!(1)),
            edge("track", "det", json!(1)),
        ]
    );
    assert_eq!(doc["nodes"][1]["path"], s3.url("models/det"));
}

/// What would set a terminal's title and forge a line, if printed as is.
const HOSTILE: &str = "\u{1b}]0;PWNED\u{7}\r\n";
/// [`HOSTILE`] as people see it (`printable`).
const HOSTILE_SHOWN: &str = "\\u{1b}]0;PWNED\\u{7}\\r\\n";

#[test]
fn names_ids_and_paths_cannot_drive_the_terminal() {
    let t = Scratch::new();
    let root = t.path("models");
    let evil = root.join(format!("evil{HOSTILE}x"));
    model(&t, &evil, &format!("id{HOSTILE}1"), &["--name", &format!("name{HOSTILE}1")]);
    // A parent outside LOCATION (a missing parent, whose id the problem line names).
    let outside = model(&t, &t.path("outside"), &format!("parent{HOSTILE}2"), &[]);
    child(&t, &root.join("kid"), "kid-1", &outside, "1");
    let (out, err) = run(&["lineage", s(&root)], 1);
    for text in [&out, &err] {
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
    }
    assert!(out.contains(&format!("name{HOSTILE_SHOWN}1 (id id{HOSTILE_SHOWN}1, ")), "{out}");
    assert!(out.contains(&format!("evil{HOSTILE_SHOWN}x)")), "the path: {out}");
    assert!(out.contains("parent\\u{1b}]0;PWNED\\u{7}\\r\\n2"), "the missing parent's id: {out}");
    assert_eq!(out.lines().filter(|l| l.contains("PWNED")).count(), 3, "one line each, none forged: {out}");
    // JSON carries the text itself.
    let doc = run_json(&["lineage", "--json", s(&root)], 1);
    let nodes = doc["nodes"].as_array().expect("nodes");
    assert!(nodes.iter().any(|n| n["name"] == json!(format!("name{HOSTILE}1"))), "{doc}");
    assert!(nodes.iter().any(|n| n["id"] == json!(format!("parent{HOSTILE}2"))), "{doc}");
}

#[test]
fn a_model_reached_through_two_locations_is_one_node() {
    let t = Scratch::new();
    let one = model(&t, &t.path("one"), "one-1", &[]);
    child(&t, &t.path("two"), "two-1", &one, "1");
    std::os::unix::fs::symlink(t.path("one"), t.path("link")).expect("symlink");
    // `one`, `./one`, `./one/`, a path through `..` and a link to it: one model.
    let cmd = || {
        let mut cmd = common::pmf();
        cmd.current_dir(t.dir.path()).args(["lineage", "one", "./one", "./one/", "two/../one", "link", "two"]);
        cmd
    };
    let out = cmd().output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("duplicate id"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("2 models, 0 weight files"), "{stdout}");
    let out = cmd().arg("--json").output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["nodes"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(doc["problems"], json!([]), "{doc}");
    // Two copies of one model are still two models sharing an id.
    copy_tree(&one, &t.path("copy"));
    let (out, _) = run(&["lineage", s(&one), s(&t.path("copy"))], 1);
    assert!(out.contains("duplicate id"), "{out}");
}
