//! `pmf diff A B`: equal models (a copy) exit 0, different ones exit 1 with the changes grouped
//! by section (`- before` / `+ after`) or as one JSON document; a side that cannot be read
//! exits 2 with the usual failure (also in JSON); an invalid model whose metadata reads is
//! compared with a warning; a folder and its copy in a bucket (`pmf cp`) are equal. The
//! object-storage test needs the S3 test server (`common/s3.rs`): skipped without it unless
//! `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::path::PathBuf;

use common::s3::s3_or_skip;
use common::{copy_tree, edit_metadata, run, run_cached, run_json, s, storage_option_args, Scratch};
use serde_json::{json, Value};

/// A trained model (`Scratch::trained_model`) and a copy of it, `copy`.
fn pair(t: &Scratch) -> (PathBuf, PathBuf) {
    let a = t.trained_model("a");
    let b = t.path("copy");
    copy_tree(&a, &b);
    (a, b)
}

fn changes(doc: &Value) -> Vec<(String, String, String)> {
    doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or("?").to_owned();
            (text("section"), text("key"), text("kind"))
        })
        .collect()
}

fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
}

#[test]
fn a_copy_is_equal_exit_0() {
    let t = Scratch::new();
    let (a, b) = pair(&t);
    let (out, err) = run(&["diff", s(&a), s(&b)], 0);
    assert!(out.starts_with("no difference"), "{out}");
    assert!(err.is_empty(), "{err}");
    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 0);
    assert_eq!(doc["equal"], true);
    assert_eq!(doc["changes"], json!([]));
    assert_eq!(doc["a"], json!({"path": s(&a), "valid": true, "offences": []}));
    assert_eq!(doc["b"]["path"], s(&b));
    assert!(doc.get("error").is_none(), "{doc}");
}

#[test]
fn differences_by_section_exit_1() {
    let t = Scratch::new();
    let (a, b) = pair(&t);
    run(&["checkpoint", "rm", s(&b), "1"], 0);
    edit_metadata(&b, "name: detector", "name: tracker");
    edit_metadata(&b, "value: 1.0.0", "value: 1.0.1");
    fs::write(b.join("data/build_parameters.yaml"), "lr: 0.01\nlayers: [3, 4]\n").expect("write");
    let (out, _) = run(&["diff", s(&a), s(&b)], 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("--- {} (id a-id)", s(&a)));
    assert_eq!(lines[1], format!("+++ {} (id a-id)", s(&b)));
    let expected = [
        "model",
        "  ~ model.name (changed)",
        "      - \"detector\"",
        "      + \"tracker\"",
        "producer",
        "  ~ format.producer.version.value (changed)",
        "      - \"1.0.0\"",
        "      + \"1.0.1\"",
        "checkpoints",
        "  - model.training.checkpoints.1 (removed)",
    ];
    assert_eq!(lines[2..12], expected, "{out}");
    assert!(lines[12].starts_with("      - {\"epoch\":1,\"path\":\"data/checkpoints/e1.pt\",\"hash\":\""), "{out}");
    assert_eq!(
        lines[13..],
        [
            "build parameters",
            "  ~ model.build_parameters.lr (changed)",
            "      - 0.1",
            "      + 0.01",
            "  + model.build_parameters.layers (added)",
            "      + [3,4]",
            "5 differences",
        ],
        "{out}"
    );

    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 1);
    assert_eq!(doc["equal"], false);
    assert_eq!(
        changes(&doc),
        triples(&[
            ("model", "model.name", "changed"),
            ("producer", "format.producer.version.value", "changed"),
            ("checkpoints", "model.training.checkpoints.1", "removed"),
            ("build_parameters", "model.build_parameters.lr", "changed"),
            ("build_parameters", "model.build_parameters.layers", "added"),
        ])
    );
    let removed = &doc["changes"][2];
    assert_eq!(removed["before"]["epoch"], 1);
    assert_eq!(removed["before"]["path"], "data/checkpoints/e1.pt");
    assert_eq!(removed["after"], Value::Null);
    assert_eq!((&doc["changes"][3]["before"], &doc["changes"][3]["after"]), (&json!(0.1), &json!(0.01)));
    assert_eq!(doc["changes"][4]["after"], json!([3, 4]));
}

#[test]
fn training_times_are_shown_as_dates_too() {
    let t = Scratch::new();
    let a = t.new_model("a", &[]);
    let b = t.path("b");
    copy_tree(&a, &b);
    run(&["training", "start", s(&b), "--epoch", "2"], 0);
    let (out, _) = run(&["diff", s(&a), s(&b)], 1);
    assert!(
        out.contains("training record\n  ~ model.training.status (changed)\n      - \"pending\"\n      + \"running\""),
        "{out}"
    );
    assert!(out.contains("  ~ model.training.start_epoch (changed)\n      - null\n      + 2\n"), "{out}");
    let start = out.lines().skip_while(|l| !l.contains("model.training.start_time")).nth(2).unwrap_or("");
    assert!(start.starts_with("      + 1") && start.ends_with(" UTC)"), "{out}");
    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 1);
    let time = doc["changes"].as_array().expect("changes").iter().find(|c| c["key"] == "model.training.start_time");
    assert!(time.is_some_and(|c| c["before"].is_null() && c["after"].is_number()), "{doc}");
}

#[test]
fn an_invalid_model_that_reads_is_compared_with_a_warning() {
    let t = Scratch::new();
    let (a, b) = pair(&t);
    fs::remove_file(b.join("data/checkpoints/e2.pt")).expect("remove");
    let (out, err) = run(&["diff", s(&a), s(&b)], 0);
    assert!(out.starts_with("no difference"), "{out}");
    assert!(
        err.starts_with(&format!(
            "warning: {} is not a valid PMF model (1 offence): comparing what its metadata records",
            s(&b)
        )),
        "{err}"
    );
    assert!(err.contains("data/checkpoints/e2.pt"), "{err}");
    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 0);
    assert_eq!(doc["b"]["valid"], false);
    assert_eq!(doc["b"]["offences"][0]["location"], "data/checkpoints/e2.pt");
}

#[test]
fn a_side_that_cannot_be_read_exits_2() {
    let t = Scratch::new();
    let (a, b) = pair(&t);
    let missing = t.path("missing");
    let (out, err) = run(&["diff", s(&a), s(&missing)], 2);
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("error: ") && err.contains(s(&missing)), "{err}");
    let doc = run_json(&["diff", "--json", s(&missing), s(&a)], 2);
    assert_eq!(doc["equal"], Value::Null);
    assert_eq!(doc["changes"], json!([]));
    assert_eq!(doc["failure"]["kind"], "io");
    assert_eq!(doc["failure"]["exit_code"], 2);
    assert_eq!(doc["a"]["failure"]["io_kind"], "not_found");
    assert_eq!(doc["b"]["valid"], true);
    assert_eq!(doc["error"], doc["failure"]["message"]);

    fs::write(b.join("metadata.yaml"), "model: [unclosed\n").expect("write");
    let (_, err) = run(&["diff", s(&a), s(&b)], 2);
    assert!(err.starts_with("error: not a valid PMF model, 1 offence"), "{err}");
    assert!(err.contains("metadata.yaml: is not valid YAML"), "{err}");
    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 2);
    assert_eq!((&doc["failure"]["kind"], &doc["failure"]["exit_code"]), (&json!("metadata_validation"), &json!(2)));
    assert_eq!(doc["b"]["failure"]["offences"][0]["location"], "metadata.yaml");

    // Both sides unreadable: both reported.
    let (_, err) = run(&["diff", s(&missing), s(&b)], 2);
    assert_eq!(err.matches("error: ").count(), 2, "{err}");
    // A bad option stops the command before reading anything.
    let doc = run_json(&["diff", "--json", s(&a), s(&a), "--storage-option", "nonsense"], 2);
    assert_eq!((&doc["a"], &doc["failure"]["kind"]), (&Value::Null, &json!("usage")));
    let (_, err) = run(&["diff", s(&a), "foo://x"], 2);
    assert!(err.contains("invalid location"), "{err}");
}

#[test]
fn a_folder_and_its_copy_in_a_bucket_are_equal() {
    let Some(s3) = s3_or_skip("cli_diff_local_s3") else { return };
    let t = Scratch::new();
    let a = t.trained_model("a");
    let options = storage_option_args(&s3);
    let url = s3.url("a");
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).chain(options.iter().cloned()).collect::<Vec<String>>()
    };
    let go = |args: Vec<String>, code: i32| -> String {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cached(&args, &t.path("cache"), code).0
    };
    go(with(&["cp", s(&a), &url]), 0);
    let out = go(with(&["diff", s(&a), &url]), 0);
    assert!(out.starts_with("no difference"), "{out}");
    run(&["checkpoint", "rm", s(&a), "3"], 0);
    let doc: Value = serde_json::from_str(&go(with(&["diff", "--json", &url, s(&a)]), 1)).expect("JSON");
    assert_eq!(doc["a"]["path"], url.as_str());
    let kinds = changes(&doc);
    assert!(kinds.contains(&("checkpoints".into(), "model.training.checkpoints.3".into(), "removed".into())), "{doc}");
    let doc: Value = serde_json::from_str(&go(with(&["diff", "--json", &s3.url("nothing"), s(&a)]), 2)).expect("JSON");
    assert_eq!((&doc["failure"]["kind"], &doc["failure"]["storage_kind"]), (&json!("storage"), &json!("not_found")));
}

/// What would set a terminal's title and forge a line, if printed as is.
const HOSTILE: &str = "\u{1b}]0;PWNED\u{7}\r\n";
/// [`HOSTILE`] as people see it (`printable`).
const HOSTILE_SHOWN: &str = "\\u{1b}]0;PWNED\\u{7}\\r\\n";

#[test]
fn paths_ids_keys_and_values_cannot_drive_the_terminal() {
    let t = Scratch::new();
    let a = t.path(&format!("evil{HOSTILE}a"));
    t.new_model_at(&a, &format!("id{HOSTILE}1"), &["--name", &format!("name{HOSTILE}1"), "--param", "lr=0.1"]);
    let b = t.path("b");
    copy_tree(&a, &b);
    edit_metadata(&b, "name: \"name", "name: \"other");
    // A build parameter whose key and value hold ESC, BEL, CR and LF (YAML escapes).
    fs::write(
        b.join("data/build_parameters.yaml"),
        "lr: 0.1\n\"k\\e]0;PWNED\\a\\r\\nk\": \"v\\e]0;PWNED\\a\\r\\nv\"\n",
    )
    .expect("write");
    let (out, err) = run(&["diff", s(&a), s(&b)], 1);
    for text in [&out, &err] {
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
    }
    let lines: Vec<&str> = out.lines().collect();
    let shown = s(&a).replace(HOSTILE, HOSTILE_SHOWN);
    assert_eq!(lines[0], format!("--- {shown} (id id{HOSTILE_SHOWN}1)"), "{out}");
    assert_eq!(lines[1], format!("+++ {} (id id{HOSTILE_SHOWN}1)", s(&b)), "{out}");
    // The key (maybe quoted by the library: a segment that is not an identifier).
    let added = lines.iter().find(|l| l.starts_with("  + model.build_parameters.")).expect("the added key");
    assert!(added.contains(&format!("k{HOSTILE_SHOWN}k")) && added.ends_with(" (added)"), "{out}");
    // The values are JSON strings (`\u001b`, `\r`).
    assert!(out.contains("      - \"name\\u001b]0;PWNED\\u0007\\r\\n1\""), "{out}");
    assert!(out.contains("      + \"v\\u001b]0;PWNED\\u0007\\r\\nv\""), "{out}");
    // JSON carries the text itself.
    let doc = run_json(&["diff", "--json", s(&a), s(&b)], 1);
    assert_eq!(doc["a"]["path"], s(&a), "{doc}");
    let added = doc["changes"].as_array().expect("changes").iter().find(|c| c["kind"] == "added");
    let key = added.and_then(|c| c["key"].as_str()).unwrap_or("");
    assert!(key.starts_with("model.build_parameters.") && key.contains("PWNED"), "{doc}");
    assert!(doc["changes"][0]["after"].as_str().is_some_and(|v| v.contains(HOSTILE)), "{doc}");
}
