//! Interoperability with the reference Python package `plums` 0.5.2: a model written ONLY with
//! `pmf new / checkpoint add / training ...` must validate strictly and load with the reference.
//!
//! The Python is `$PMF_PYTHON`, else `<workspace>/.venv/bin/python`. Without it the tests print
//! a skip line on stderr and pass, unless `PMF_REQUIRE_REFERENCE=1`, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, s, Scratch};
use serde_json::json;

/// The Python with the reference `plums` installed, or `None` (after a skip line) when absent.
fn reference_python(test: &str) -> Option<PathBuf> {
    let python = match std::env::var_os("PMF_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
    };
    let usable = Command::new(&python).args(["-c", "import plums.model"]).output().is_ok_and(|o| o.status.success());
    if usable {
        return Some(python);
    }
    let required = std::env::var("PMF_REQUIRE_REFERENCE").is_ok_and(|v| v == "1");
    assert!(!required, "PMF_REQUIRE_REFERENCE=1 but {} cannot import plums.model", python.display());
    eprintln!("skipped {test}: no reference Python with plums at {} (set PMF_PYTHON)", python.display());
    None
}

/// Run the reference on `model`: strict `validate`, then `Model.load`; returns its description.
fn reference_describe(python: &Path, model: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
from plums.model.validation import validate
from plums.model import Model
path = sys.argv[1]
validate(path, strict=True)
m = Model.load(path)
def describe(m):
    init = m.initialisation
    if init is None:
        init_d = None
    elif isinstance(init, Model):
        init_d = {"pmf": describe(init), "checkpoint": init.checkpoint}
    else:
        init_d = {"file": init.name, "hash": init.hash}
    return {
        "name": m.name, "id": m.id, "producer": m.producer.name, "version": str(m.producer.version),
        "status": m.training.status, "start_epoch": m.training.start_epoch,
        "latest_epoch": m.training.latest_epoch, "end_epoch": m.training.end_epoch,
        "references": list(m.checkpoint_collection.keys()),
        "epochs": [c.epoch for c in m.checkpoint_collection.values()],
        "latest": m.checkpoint_collection.latest,
        "build_parameters": m.build_parameters,
        "initialisation": init_d,
    }
print(json.dumps(describe(m)))
"#;
    let out = Command::new(python).args(["-c", SCRIPT, s(model)]).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the reference refuses {}:\n{}\n{}",
        model.display(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("reference output is not JSON ({e}): {stdout}"))
}

#[test]
fn a_model_written_by_pmf_validates_and_loads_with_the_reference() {
    let Some(python) = reference_python("a_model_written_by_pmf_validates_and_loads_with_the_reference") else {
        return;
    };
    let t = Scratch::new();
    let cfg = s(&t.path("config.yaml")).to_owned();
    let file = |name: &str| s(&t.path(name)).to_owned();

    // An initialisation model, itself initialised from a weight file.
    let backbone = t.path("backbone");
    run(
        &[
            "new",
            s(&backbone),
            "--producer",
            "backbone_trainer",
            "--version",
            "2.0.0rc1",
            "--config",
            &cfg,
            "--name",
            "backbone",
            "--id",
            "bb-1",
            "--init-file",
            &file("init.bin"),
            "--init-name",
            "imagenet",
        ],
        0,
    );
    run(&["training", "start", s(&backbone)], 0);
    run(&["checkpoint", "add", s(&backbone), &file("e1.pt"), "--epoch", "1"], 0);
    run(&["checkpoint", "add", s(&backbone), &file("e2.pt"), "--epoch", "2", "--ref", "best"], 0);
    run(&["training", "end", s(&backbone)], 0);

    // The model: PMF initialisation, typed build parameters, int and string references.
    let m = t.path("model");
    run(
        &[
            "new",
            s(&m),
            "--producer",
            "faster_rcnn",
            "--version",
            "0.4.0",
            "--config",
            &cfg,
            "--name",
            "detector",
            "--id",
            "det-1",
            "--param",
            "lr=0.1",
            "--param",
            "epochs=10",
            "--param",
            "pretrained=yes",
            "--param",
            "tag='yes'",
            "--param",
            "sci=1e10",
            "--param",
            "backbone.depth=50",
            "--init-model",
            s(&backbone),
            "--init-checkpoint",
            "best",
        ],
        0,
    );
    run(&["training", "start", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), &file("e1.pt"), "--epoch", "1"], 0);
    run(&["training", "epoch", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), &file("e2.pt"), "--epoch", "2", "--ref", "2", "--ref-str"], 0);
    run(&["checkpoint", "add", s(&m), &file("e3.pt"), "--epoch", "4"], 0);
    run(&["checkpoint", "add", s(&m), &file("e3.pt"), "--epoch", "4", "--ref", "best"], 0);
    run(&["checkpoint", "rm", s(&m), "1"], 0);
    run(&["training", "end", s(&m)], 0);
    run(&["validate", s(&m)], 0);

    let d = reference_describe(&python, &m);
    assert_eq!(d["name"], "detector");
    assert_eq!(d["id"], "det-1");
    assert_eq!(d["producer"], "faster_rcnn");
    assert_eq!(d["version"], "0.4.0");
    assert_eq!(d["status"], "finished");
    assert_eq!(
        (d["start_epoch"].clone(), d["latest_epoch"].clone(), d["end_epoch"].clone()),
        (json!(0), json!(4), json!(4))
    );
    let mut refs: Vec<String> = d["references"].as_array().expect("references").iter().map(|r| r.to_string()).collect();
    refs.sort();
    assert_eq!(refs, ["\"2\"", "\"best\"", "4"], "the string reference '2' stays a string");
    assert_eq!(d["latest"], "best");
    assert_eq!(
        d["build_parameters"],
        json!({"lr": 0.1, "epochs": 10, "pretrained": true, "tag": "yes", "sci": "1e10", "backbone": {"depth": 50}})
    );
    let init = &d["initialisation"];
    assert_eq!(init["checkpoint"], "best");
    assert_eq!(init["pmf"]["id"], "bb-1");
    assert_eq!(init["pmf"]["version"], "2.0.0rc1");
    assert_eq!(init["pmf"]["initialisation"]["file"], "imagenet");
    assert_eq!(
        init["pmf"]["initialisation"]["hash"],
        plums_model::md5_file(t.path("init.bin")).expect("md5").to_string()
    );
}

#[test]
fn the_shipped_example_validates_and_loads_with_the_reference() {
    let Some(python) = reference_python("the_shipped_example_validates_and_loads_with_the_reference") else { return };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/detector");
    let d = reference_describe(&python, &example);
    assert_eq!(d["name"], "detector");
    assert_eq!(d["status"], "finished");
    assert!(d["initialisation"]["pmf"]["initialisation"]["file"].is_string(), "{d}");
}
