//! `pmf validate`, `pmf show`, and the command line itself (help, completions, colours, unknown
//! options): outputs, JSON shapes and exit codes.

mod common;

use common::{edit_metadata, pmf, references, run, run_json, s, show, Scratch};
use predicates::prelude::*;

// ---------------------------------------------------------------- validate

#[test]
fn validate_a_valid_model() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let (stdout, stderr) = run(&["validate", s(&m)], 0);
    assert!(stdout.starts_with("valid"), "{stdout}");
    assert!(stdout.contains(s(&m)), "{stdout}");
    assert!(!stdout.contains("checksums not verified"), "strict by default: {stdout}");
    assert!(stderr.is_empty(), "no progress or noise when stderr is not a terminal: {stderr:?}");

    let doc = run_json(&["validate", "--json", s(&m)], 0);
    let models = doc["models"].as_array().expect("models");
    assert_eq!(models.len(), 1);
    let entry = &models[0];
    assert_eq!(entry["path"], s(&m));
    assert_eq!(entry["valid"], true);
    assert_eq!(entry["strict"], true);
    assert_eq!(entry["checkpoints"], true);
    assert_eq!(entry["offences"].as_array().map(Vec::len), Some(0));
    assert!(entry.get("error").is_none(), "{entry}");
}

#[test]
fn validate_verifies_checksums_unless_quick() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    // Same size, other content: only a checksum comparison finds it.
    std::fs::write(m.join("data/checkpoints/e2.pt"), "weights X").expect("corrupt");
    let (stdout, _) = run(&["validate", s(&m)], 1);
    assert!(stdout.starts_with("invalid"), "{stdout}");
    assert!(stdout.contains("data/checkpoints/e2.pt") && stdout.contains("checksum mismatch"), "{stdout}");

    let (stdout, _) = run(&["validate", "--quick", s(&m)], 0);
    assert!(stdout.contains("checksums not verified"), "{stdout}");

    let doc = run_json(&["validate", "--json", s(&m)], 1);
    let entry = &doc["models"][0];
    assert_eq!((entry["valid"].clone(), entry["strict"].clone()), (false.into(), true.into()));
    let offences = entry["offences"].as_array().expect("offences");
    assert_eq!(offences.len(), 1, "{offences:?}");
    assert_eq!(offences[0]["kind"], "tree");
    assert_eq!(offences[0]["location"], "data/checkpoints/e2.pt");
    assert!(offences[0]["message"].as_str().is_some_and(|m| m.contains("checksum mismatch")));

    let doc = run_json(&["validate", "--json", "--quick", s(&m)], 0);
    assert_eq!(doc["models"][0]["strict"], false);
    assert_eq!(doc["models"][0]["valid"], true);
}

#[test]
fn validate_no_checkpoints_skips_checkpoint_files() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    std::fs::remove_file(m.join("data/checkpoints/e1.pt")).expect("remove");
    let (stdout, _) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("data/checkpoints/e1.pt") && stdout.contains("is missing"), "{stdout}");
    let (stdout, _) = run(&["validate", "--no-checkpoints", s(&m)], 0);
    assert!(stdout.contains("checkpoint files not checked"), "{stdout}");
    let doc = run_json(&["validate", "--no-checkpoints", "--json", s(&m)], 0);
    assert_eq!(doc["models"][0]["checkpoints"], false);
}

#[test]
fn validate_lists_every_offence() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    std::fs::remove_file(m.join("config.yaml")).expect("remove config");
    std::fs::remove_file(m.join("data/checkpoints/e1.pt")).expect("remove e1");
    std::fs::remove_file(m.join("data/checkpoints/e3.pt")).expect("remove e3");
    std::fs::write(m.join("data/checkpoints/e2.pt"), "weights X").expect("corrupt e2");
    let expected = ["config.yaml", "data/checkpoints/e1.pt", "data/checkpoints/e2.pt", "data/checkpoints/e3.pt"];

    let (stdout, _) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("(4 offences)"), "{stdout}");
    let offence_lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(offence_lines.len(), 4, "{stdout}");
    for location in expected {
        assert!(
            offence_lines.iter().any(|l| l.starts_with("    tree") && l.contains(&format!("{location}:"))),
            "{location} not listed:\n{stdout}"
        );
    }

    let doc = run_json(&["validate", "--json", s(&m)], 1);
    let offences = doc["models"][0]["offences"].as_array().expect("offences").clone();
    let mut locations: Vec<&str> = offences.iter().filter_map(|o| o["location"].as_str()).collect();
    locations.sort_unstable();
    assert_eq!(locations, expected);
    assert!(offences.iter().all(|o| o["kind"] == "tree" && o["message"].as_str().is_some_and(|m| !m.is_empty())));
}

#[test]
fn validate_reports_metadata_and_tree_offences_together() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    edit_metadata(&m, "  name: detector\n", "  name: detector\n  colour: blue\n");
    edit_metadata(&m, "status: finished", "status: sleeping");
    std::fs::remove_file(m.join("data/build_parameters.yaml")).expect("remove build parameters");
    let doc = run_json(&["validate", "--json", s(&m)], 1);
    let offences = doc["models"][0]["offences"].as_array().expect("offences").clone();
    let has = |kind: &str, location: &str| offences.iter().any(|o| o["kind"] == kind && o["location"] == location);
    assert!(has("metadata", "model.colour"), "{offences:?}");
    assert!(has("metadata", "model.training.status"), "{offences:?}");
    assert!(has("tree", "data/build_parameters.yaml"), "{offences:?}");
    let (stdout, _) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("metadata  model.colour: unknown key"), "{stdout}");
    assert!(stdout.contains("tree      data/build_parameters.yaml: is missing"), "{stdout}");
}

#[test]
fn validate_invalid_yaml_in_metadata() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    std::fs::write(m.join("metadata.yaml"), "format: [unclosed\nmodel: {").expect("write");
    let (stdout, _) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("metadata  metadata.yaml: is not valid YAML"), "{stdout}");
    let doc = run_json(&["validate", "--json", s(&m)], 1);
    let offences = doc["models"][0]["offences"].as_array().expect("offences").clone();
    assert!(offences.iter().any(|o| o["kind"] == "metadata" && o["location"] == "metadata.yaml"), "{offences:?}");
}

#[test]
fn validate_missing_path_is_exit_2() {
    let t = Scratch::new();
    let missing = t.path("nope");
    let (stdout, stderr) = run(&["validate", s(&missing)], 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: cannot validate model"), "{stderr}");
    assert!(stderr.contains(&format!("({})", s(&missing))), "the path is named: {stderr}");
    assert!(stderr.contains("hint: check the path"), "{stderr}");

    let doc = run_json(&["validate", "--json", s(&missing)], 2);
    let entry = &doc["models"][0];
    assert_eq!(entry["valid"], false);
    assert!(entry["error"].as_str().is_some_and(|e| e.contains("No such file")), "{entry}");
    assert_eq!(entry["offences"].as_array().map(Vec::len), Some(0));
}

#[test]
fn validate_a_file_instead_of_a_folder() {
    let t = Scratch::new();
    let file = t.path("config.yaml");
    let (stdout, _) = run(&["validate", s(&file)], 1);
    assert!(stdout.starts_with("invalid") && stdout.contains("is not a folder"), "{stdout}");
    let doc = run_json(&["validate", "--json", s(&file)], 1);
    assert_eq!(doc["models"][0]["offences"][0]["kind"], "tree");
}

#[test]
fn validate_several_paths_worst_code_wins() {
    let t = Scratch::new();
    let good = t.trained_model("good");
    let bad = t.trained_model("bad");
    std::fs::remove_file(bad.join("config.yaml")).expect("remove");
    let missing = t.path("missing");

    let (stdout, _) = run(&["validate", s(&good), s(&bad)], 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("valid") && lines[0].contains(s(&good)), "{stdout}");
    assert!(lines[1].starts_with("invalid") && lines[1].contains(s(&bad)), "{stdout}");
    assert_eq!(lines.last().copied(), Some("1 valid, 1 invalid"), "{stdout}");

    let (stdout, stderr) = run(&["validate", s(&good), s(&bad), s(&missing)], 2);
    assert!(stdout.contains("1 valid, 1 invalid, 1 not examined"), "{stdout}");
    assert!(stderr.contains(s(&missing)), "{stderr}");

    let doc = run_json(&["validate", "--json", s(&good), s(&missing), s(&bad)], 2);
    let valid: Vec<bool> = doc["models"].as_array().expect("models").iter().map(|m| m["valid"] == true).collect();
    assert_eq!(valid, [true, false, false]);
    assert!(doc["models"][1].get("error").is_some() && doc["models"][2].get("error").is_none(), "{doc}");
}

#[test]
fn validate_needs_a_path_and_known_options() {
    pmf().arg("validate").assert().code(2).stderr(predicate::str::contains("LOCATION"));
    pmf()
        .args(["validate", "--strictest", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unexpected argument '--strictest'"));
}

// ---------------------------------------------------------------- show

/// A model initialised from a PMF model (backbone), itself initialised from a file.
fn chain(t: &Scratch) -> std::path::PathBuf {
    let backbone = t.new_model(
        "backbone",
        &["--name", "backbone", "--init-file", s(&t.path("init.bin")), "--init-name", "imagenet"],
    );
    run(&["training", "start", s(&backbone)], 0);
    run(&["checkpoint", "add", s(&backbone), s(&t.path("e1.pt")), "--epoch", "1"], 0);
    run(&["checkpoint", "add", s(&backbone), s(&t.path("e2.pt")), "--epoch", "2", "--ref", "best"], 0);
    run(&["training", "end", s(&backbone)], 0);
    let m = t.new_model(
        "det",
        &["--name", "detector", "--param", "classes=3", "--init-model", s(&backbone), "--init-checkpoint", "best"],
    );
    run(&["training", "start", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), s(&t.path("e3.pt")), "--epoch", "1"], 0);
    run(&["training", "end", s(&m)], 0);
    m
}

#[test]
fn show_human() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let (stdout, stderr) = run(&["show", s(&m)], 0);
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.starts_with("detector  id m-id"), "{stdout}");
    assert!(stdout.contains("producer         trainer 1.0.0 (py_pa), PMF 1.0.0"), "{stdout}");
    assert!(stdout.contains("configuration    config.yaml"), "{stdout}");
    assert!(stdout.contains("training         finished  epochs 0 → 3"), "{stdout}");
    assert!(stdout.contains(" UTC"), "times in UTC: {stdout}");
    assert!(stdout.contains("checkpoints      3, latest 3"), "{stdout}");
    assert!(stdout.contains("REF  EPOCH  SIZE  FILE"), "table header: {stdout}");
    let row = |r: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().trim_start_matches('*').trim_start().starts_with(&format!("{r}  ")))
            .map(str::to_owned)
    };
    let r1 = row("1").expect("row 1");
    let r3 = row("3").expect("row 3");
    assert!(r1.contains("data/checkpoints/e1.pt") && r1.contains("9 B") && !r1.contains('*'), "{r1}");
    assert!(r3.trim_start().starts_with('*'), "latest is marked: {r3}");
    let md5 = plums_model::md5_file(t.path("e3.pt")).expect("md5").prefix(8);
    assert!(r3.contains(&md5), "hash prefix {md5}: {r3}");
    assert!(stdout.contains("build parameters lr: 0.1"), "{stdout}");
    assert!(stdout.contains("initialisation   none"), "{stdout}");
}

#[test]
fn show_human_initialisation_chain() {
    let t = Scratch::new();
    let m = chain(&t);
    let (stdout, _) = run(&["show", s(&m)], 0);
    assert!(stdout.contains("initialisation   PMF model backbone (id backbone-id), checkpoint \"best\""), "{stdout}");
    assert!(stdout.contains("\n      backbone  id backbone-id\n"), "nested model indented: {stdout}");
    assert!(
        stdout.contains("\n        initialisation   weight file imagenet data/initialisation/init.bin"),
        "{stdout}"
    );
    assert!(stdout.contains("(not stored)"), "nested checkpoints have no file: {stdout}");
}

#[test]
fn show_json_shape() {
    let t = Scratch::new();
    let m = chain(&t);
    let doc = run_json(&["show", "--json", s(&m)], 0);
    assert_eq!(doc["path"], s(&m));
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["offences"].as_array().map(Vec::len), Some(0));
    let model = &doc["model"];
    assert_eq!(model["name"], "detector");
    assert_eq!(model["id"], "det-id");
    assert_eq!(model["format_version"], "1.0.0");
    assert_eq!(
        model["producer"],
        serde_json::json!({"name": "trainer", "version_format": "py_pa", "version": "1.0.0"})
    );
    assert_eq!(model["configuration"]["path"], "config.yaml");
    assert_eq!(model["configuration"]["size"], 8);
    assert_eq!(model["configuration"]["hash"], plums_model::md5_file(t.path("config.yaml")).expect("md5").to_string());
    let training = &model["training"];
    assert_eq!(training["status"], "finished");
    assert_eq!(
        (training["start_epoch"].as_i64(), training["latest_epoch"].as_i64(), training["end_epoch"].as_i64()),
        (Some(0), Some(1), Some(1))
    );
    assert!(training["start_time"].is_number() && training["end_time"].is_number(), "{training}");
    assert!(training["start_time_utc"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{training}");
    assert_eq!(model["latest"], 1);
    let ck = &model["checkpoints"][0];
    assert_eq!(ck["reference"], 1);
    assert_eq!(ck["epoch"], 1);
    assert_eq!(ck["path"], "data/checkpoints/e3.pt");
    assert_eq!(ck["size"], 9);
    assert_eq!(ck["latest"], true);
    assert_eq!(ck["hash"], plums_model::md5_file(t.path("e3.pt")).expect("md5").to_string());
    assert_eq!(model["build_parameters"], serde_json::json!({"classes": 3}));
    assert_eq!(model["build_parameters_yaml"], "classes: 3\n");

    let init = &model["initialisation"];
    assert_eq!(init["kind"], "pmf");
    assert_eq!(init["name"], "backbone");
    assert_eq!(init["id"], "backbone-id");
    assert_eq!(init["checkpoint"], "best");
    assert_eq!(init["path"], "data/initialisation");
    let nested = &init["model"];
    assert_eq!(nested["id"], "backbone-id");
    assert_eq!(references(nested), [serde_json::json!(1), serde_json::json!("best")]);
    assert_eq!(nested["checkpoints"][1]["path"], ".");
    assert!(nested["checkpoints"][1]["size"].is_null());
    assert_eq!(nested["latest"], "best");
    let file = &nested["initialisation"];
    assert_eq!(file["kind"], "file");
    assert_eq!(file["name"], "imagenet");
    assert_eq!(file["path"], "data/initialisation/init.bin");
    assert_eq!(file["size"], 15);
    assert_eq!(file["hash"], plums_model::md5_file(t.path("init.bin")).expect("md5").to_string());
    assert!(file.get("model").is_none());
    assert!(nested["initialisation"]["initialisation"].is_null());
}

#[test]
fn show_an_invalid_model_lists_offences_and_exits_1() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    std::fs::remove_file(m.join("config.yaml")).expect("remove");
    edit_metadata(&m, "latest: 3", "latest: 9");
    let (stdout, _) = run(&["show", s(&m)], 1);
    assert!(stdout.starts_with("invalid"), "{stdout}");
    assert!(stdout.contains("model.training.latest"), "{stdout}");
    let doc = run_json(&["show", "--json", s(&m)], 1);
    assert_eq!(doc["valid"], false);
    assert!(doc.get("model").is_none(), "{doc}");
    assert!(!doc["offences"].as_array().expect("offences").is_empty());
    // show does not verify checksums: a corrupted checkpoint alone does not stop it.
    let m2 = t.trained_model("m2");
    std::fs::write(m2.join("data/checkpoints/e1.pt"), "weights X").expect("corrupt");
    run(&["show", s(&m2)], 0);
}

#[test]
fn show_missing_path_and_file() {
    let t = Scratch::new();
    let (_, stderr) = run(&["show", s(&t.path("nope"))], 2);
    assert!(stderr.starts_with("error: ") && stderr.contains("nope"), "{stderr}");
    let doc = run_json(&["show", "--json", s(&t.path("nope"))], 2);
    assert_eq!(doc["valid"], false);
    assert!(doc["error"].is_string(), "{doc}");
    let (stdout, _) = run(&["show", s(&t.path("e1.pt"))], 1);
    assert!(stdout.contains("is not a folder"), "{stdout}");
}

#[test]
fn show_the_shipped_example() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/detector");
    let (stdout, _) = run(&["validate", s(&example)], 0);
    assert!(stdout.starts_with("valid"), "{stdout}");
    let model = show(&example);
    assert_eq!(model["initialisation"]["kind"], "pmf");
    assert_eq!(model["initialisation"]["model"]["initialisation"]["kind"], "file");
    assert!(!example.join(".pmf.lock").exists(), "the example ships without a lock file");
}

// ---------------------------------------------------------------- command line

#[test]
fn help_has_examples_for_every_command() {
    let commands: [&[&str]; 13] = [
        &[],
        &["validate"],
        &["show"],
        &["new"],
        &["checkpoint"],
        &["training"],
        &["checkpoint", "add"],
        &["checkpoint", "rm"],
        &["training", "start"],
        &["training", "epoch"],
        &["training", "end"],
        &["training", "fail"],
        &["completions"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let (stdout, _) = run(&args, 0);
        assert!(stdout.contains("Example"), "pmf {command:?} --help has no example:\n{stdout}");
        assert!(stdout.contains("Usage: pmf"), "{stdout}");
    }
    let (stdout, _) = run(&["--help"], 0);
    assert!(stdout.contains("Exit codes"), "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    pmf().assert().code(2).stderr(predicate::str::contains("Usage: pmf"));
    pmf().arg("frobnicate").assert().code(2).stderr(predicate::str::contains("unrecognized subcommand"));
    pmf().args(["show", "--frob", "x"]).assert().code(2).stderr(predicate::str::contains("unexpected argument"));
    pmf().args(["checkpoint", "add", "m", "f"]).assert().code(2).stderr(predicate::str::contains("--epoch"));
    pmf()
        .args(["training", "epoch", "m", "seven"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'seven'"));
    pmf().arg("--version").assert().code(0).stdout(predicate::str::starts_with("pmf "));
}

#[test]
fn completions() {
    for (shell, marker) in [("bash", "_pmf()"), ("zsh", "#compdef pmf"), ("fish", "complete -c pmf")] {
        let (stdout, _) = run(&["completions", shell], 0);
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        assert!(stdout.contains("validate") && stdout.contains("checkpoint"), "{shell}");
    }
    pmf().args(["completions", "tcsh"]).assert().code(2).stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn colours_only_when_asked_or_on_a_terminal() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let plain = pmf().args(["show", s(&m)]).output().expect("run");
    assert!(!plain.stdout.contains(&0x1b), "no escape codes when stdout is not a terminal");
    let coloured = pmf().args(["--color", "always", "show", s(&m)]).output().expect("run");
    assert!(coloured.stdout.contains(&0x1b), "--color always colours");
    let err = pmf().args(["--color", "never", "validate", s(&t.path("nope"))]).output().expect("run");
    assert!(!err.stderr.contains(&0x1b));
    let json = pmf().args(["--color", "always", "show", "--json", s(&m)]).output().expect("run");
    assert!(serde_json::from_slice::<serde_json::Value>(&json.stdout).is_ok(), "JSON is never coloured");
}
