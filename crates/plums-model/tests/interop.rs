//! Interoperability with the reference implementation, the Python package `plums` 0.5.2, both
//! ways, through `tests/interop/reference.py` (see `tests/interop/README.md`):
//!
//! 1. models saved by the reference load here, and describe exactly as the reference describes them;
//! 2. models saved here (rebuilt from the reference's recipes with our API) validate strictly and
//!    load in the reference, and describe as our in-memory model and as the reference's own model;
//! 3. every model the reference refuses is refused here too (and the ones it wrongly accepts),
//!    with offences of the right kind at the right location, without crashing or hanging.
//!
//! The reference is found through `PMF_PYTHON`, else `<workspace>/.venv/bin/python`. Without it
//! each test prints `skipped: ...` and passes, unless `PMF_REQUIRE_REFERENCE=1`.
//! `reference.py corpus` and `invalid` run once per test binary; their output stays in
//! `target/tmp/interop/<pid>/` for inspection (older runs' folders are removed).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    compare, describe, describe_args, describe_with, json_time, run_reference_many, untag, untag_ref, Compare,
    DescribeOptions,
};
use plums_model::{
    check, validate, Checkpoint, Error, LoadOptions, Model, Offence, OffenceKind, Producer, SaveOptions, Status,
    Training, TrainingRecord, ValidateOptions, Version, VersionFormats, PY_PA,
};
use serde_json::Value as Json;

const REFERENCE_LIMIT: Duration = Duration::from_secs(300);
/// How long one validation of a small invalid model may take before it counts as a hang.
const CHECK_LIMIT: Duration = Duration::from_secs(30);
const PARALLEL: usize = 4;
const WRONGLY_ACCEPTS: &str = "reference wrongly accepts: ";

/// Invalid cases that validation accepts, as the reference's `validate` does, and that only
/// `Model::load` refuses (as the reference's `Model.load` does): the case, and what load must
/// say. A producer version format is checked where a version is parsed: validation only checks
/// `py_pa` versions, and `Model::load` refuses a format its `LoadOptions::formats` does not know.
const LOAD_REFUSES: [(&str, &str); 1] = [("unknown_version_format", "semver")];

// ---------------------------------------------------------------------------------------------
// What the reference generates, once per test binary
// ---------------------------------------------------------------------------------------------

struct Generated {
    root: PathBuf,
    corpus_dir: PathBuf,
    invalid_dir: PathBuf,
    /// Corpus case names, in the reference's order.
    cases: Vec<String>,
    /// `reference.py describe <corpus>/<case>/model` for each case.
    reference_descriptions: BTreeMap<String, Json>,
    /// The `cases` of `reference.py invalid`.
    invalid: Vec<Json>,
}

fn pid_alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

fn generated(python: &Path) -> &'static Generated {
    static GENERATED: OnceLock<Generated> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
        fs::create_dir_all(&base).unwrap();
        // Remove the folders of earlier runs (their process is gone).
        for entry in fs::read_dir(&base).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_ok() && !pid_alive(&name) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let root = base.join(std::process::id().to_string());
        if root.exists() {
            fs::remove_dir_all(&root).unwrap();
        }
        fs::create_dir_all(&root).unwrap();
        let corpus_dir = root.join("corpus");
        let invalid_dir = root.join("invalid");
        let runs = run_reference_many(
            python,
            vec![
                vec!["corpus".into(), corpus_dir.clone().into_os_string()],
                vec!["invalid".into(), invalid_dir.clone().into_os_string()],
            ],
            2,
            REFERENCE_LIMIT,
        );
        let corpus = runs[0].json();
        let invalid = runs[1].json();
        let cases: Vec<String> =
            corpus["cases"].as_array().expect("corpus cases").iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        assert!(cases.len() >= 20, "the reference corpus has only {} cases: {cases:?}", cases.len());
        let describes = run_reference_many(
            python,
            cases.iter().map(|c| describe_args(&corpus_dir.join(c).join("model"), &[])).collect(),
            PARALLEL,
            REFERENCE_LIMIT,
        );
        let reference_descriptions = cases.iter().cloned().zip(describes.iter().map(|r| r.json())).collect();
        let invalid = invalid["cases"].as_array().expect("invalid cases").clone();
        assert!(invalid.len() >= 80, "the reference produced only {} invalid cases", invalid.len());
        Generated { root, corpus_dir, invalid_dir, cases, reference_descriptions, invalid }
    })
}

fn reference_model<'a>(g: &'a Generated, case: &str) -> &'a Json {
    let d = &g.reference_descriptions[case];
    assert_eq!(d["ok"], Json::Bool(true), "the reference refuses its own corpus model {case}: {d}");
    &d["model"]
}

fn fail_with_all(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!("{what}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. reference -> here
// ---------------------------------------------------------------------------------------------

#[test]
fn models_saved_by_the_reference_load_here_identically() {
    let Some(python) = common::reference_or_skip("models_saved_by_the_reference_load_here_identically") else { return };
    let g = generated(&python);
    let mut problems = Vec::new();
    for case in &g.cases {
        let theirs = reference_model(g, case);
        let dir = g.corpus_dir.join(case).join("model");
        let model = match Model::load(&dir, &LoadOptions::new()) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{case}: Model::load(strict, checkpoints) refuses the reference model: {e}"));
                continue;
            }
        };
        let ours = describe(&model);
        for d in compare(&ours, theirs, Compare { checkpoints_any_order: false }) {
            problems.push(format!("{case}: ours vs reference: {d}"));
        }
        // Also the plain validate entry points, every mode.
        for (strict, checkpoints) in [(true, true), (false, true), (true, false), (false, false)] {
            if let Err(e) = validate(&dir, &ValidateOptions::new().strict(strict).checkpoints(checkpoints)) {
                problems.push(format!(
                    "{case}: validate(strict={strict}, checkpoints={checkpoints}) refuses the reference model: {e}"
                ));
            }
        }
    }
    fail_with_all(&format!("{} reference models loaded here", g.cases.len()), &problems);
}

// ---------------------------------------------------------------------------------------------
// 2. here -> reference
// ---------------------------------------------------------------------------------------------

fn opt_i64(v: &Json, key: &str) -> Option<i64> {
    match &v[key] {
        Json::Null => None,
        other => Some(other.as_i64().unwrap_or_else(|| panic!("{key}: not an int: {other}"))),
    }
}

/// Rebuild a recipe (README: recipe.json) with our API.
fn build_from_recipe(case_dir: &Path, recipe: &Json) -> plums_model::Result<Model> {
    let p = &recipe["producer"];
    let s = |v: &Json| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned();
    let version = Version::parse(&s(&p["version_format"]), &s(&p["version"]))?;
    let producer = Producer::new(s(&p["name"]), version, case_dir.join(s(&recipe["configuration"])))?;
    let mut model = Model::new(s(&recipe["id"]), producer);
    model.name = recipe["name"].as_str().map(str::to_owned);
    model.build_parameters = untag(&recipe["build_parameters"]);
    let t = &recipe["training"];
    model.training = Training::new(TrainingRecord {
        status: s(&t["status"]).parse::<Status>()?,
        start_epoch: opt_i64(t, "start_epoch"),
        start_time: json_time(&t["start_time"]),
        latest_epoch: opt_i64(t, "latest_epoch"),
        latest_time: json_time(&t["latest_time"]),
        end_epoch: opt_i64(t, "end_epoch"),
        end_time: json_time(&t["end_time"]),
    })?;
    for entry in recipe["checkpoints"].as_array().expect("checkpoints") {
        let file = case_dir.join(s(&entry["file"]));
        model.add_checkpoint(Checkpoint::new(
            untag_ref(&entry["reference"]),
            Some(&file),
            Some(entry["epoch"].as_i64().expect("epoch")),
            None,
        )?)?;
    }
    match &recipe["initialisation"] {
        Json::Null => {}
        init if init.get("file").is_some() => {
            let f = &init["file"];
            model.register_initialisation(case_dir.join(s(&f["path"])), None, f["name"].as_str())?;
        }
        init => {
            let pmf = &init["pmf"];
            model.register_initialisation(case_dir.join(s(&pmf["path"])), Some(untag_ref(&pmf["checkpoint"])), None)?;
        }
    }
    Ok(model)
}

#[test]
fn models_saved_here_load_in_the_reference_identically() {
    let Some(python) = common::reference_or_skip("models_saved_here_load_in_the_reference_identically") else { return };
    let g = generated(&python);
    let ours_dir = g.root.join("ours");
    if ours_dir.exists() {
        fs::remove_dir_all(&ours_dir).unwrap();
    }
    fs::create_dir_all(&ours_dir).unwrap();
    let mut problems = Vec::new();
    let mut saved: Vec<(String, PathBuf, Json)> = Vec::new();
    for case in &g.cases {
        let case_dir = g.corpus_dir.join(case);
        let recipe: Json = serde_json::from_slice(&fs::read(case_dir.join("recipe.json")).unwrap()).unwrap();
        let mut model = match build_from_recipe(&case_dir, &recipe) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{case}: cannot rebuild the recipe with our API: {e}"));
                continue;
            }
        };
        let dest = ours_dir.join(case);
        if let Err(e) = model.save(&dest, &SaveOptions::new()) {
            problems.push(format!("{case}: save refused: {e}"));
            continue;
        }
        let in_memory = describe_with(&model, DescribeOptions { init_as_saved: true }, false);
        // Our own loader agrees with our in-memory model.
        match Model::load(&dest, &LoadOptions::new()) {
            Ok(loaded) => {
                for d in compare(&describe(&loaded), &in_memory, Compare { checkpoints_any_order: false }) {
                    problems.push(format!("{case}: loaded here vs in memory: {d}"));
                }
            }
            Err(e) => problems.push(format!("{case}: our own saved model does not load here: {e}")),
        }
        saved.push((case.clone(), dest, in_memory));
    }
    let runs = run_reference_many(
        &python,
        saved.iter().map(|(_, dest, _)| describe_args(dest, &[])).collect(),
        PARALLEL,
        REFERENCE_LIMIT,
    );
    for ((case, _, in_memory), run) in saved.iter().zip(&runs) {
        let result = run.json();
        if result["ok"] != Json::Bool(true) {
            problems.push(format!(
                "{case}: the reference refuses our saved model: {} ({}): {}",
                result["error"], result["kind"], result["message"]
            ));
            continue;
        }
        let described = &result["model"];
        for d in compare(described, in_memory, Compare { checkpoints_any_order: false }) {
            problems.push(format!("{case}: reference's view of our model vs our in-memory model: {d}"));
        }
        // The reference's own model of the same recipe: its YAML writer sorts comparable
        // checkpoint references, so checkpoints are compared by reference, not by position.
        for d in compare(described, reference_model(g, case), Compare { checkpoints_any_order: true }) {
            problems.push(format!("{case}: reference's view of our model vs of its own model: {d}"));
        }
    }
    fail_with_all(&format!("{} models saved here and loaded by the reference", g.cases.len()), &problems);
}

// ---------------------------------------------------------------------------------------------
// 3. invalid models
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Mode {
    key: &'static str,
    strict: bool,
    checkpoints: bool,
}

const MODES: [Mode; 3] = [
    Mode { key: "strict", strict: true, checkpoints: true },
    Mode { key: "non_strict", strict: false, checkpoints: true },
    Mode { key: "strict_no_checkpoints", strict: true, checkpoints: false },
];

type Outcome = Result<Vec<Offence>, String>;

fn run_check(path: &Path, mode: Mode) -> Outcome {
    let fifos: Vec<PathBuf> = walk_fifos(path);
    let p = path.to_path_buf();
    common::guarded(&format!("check({}, {mode:?})", path.display()), CHECK_LIMIT, fifos, move || {
        match std::panic::catch_unwind(|| {
            check(&p, &ValidateOptions::new().strict(mode.strict).checkpoints(mode.checkpoints))
        }) {
            Ok(Ok(c)) => Ok(c.offences),
            Ok(Err(e)) => Err(format!("error instead of offences: {e:?}")),
            Err(panic) => Err(format!(
                "check panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    })
}

/// The FIFOs in a tree (to unblock them if validation ever opens one).
fn walk_fifos(root: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_fifo() {
                out.push(e.path());
            } else if ft.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn show(outcome: &Outcome) -> String {
    match outcome {
        Ok(o) if o.is_empty() => "valid".to_owned(),
        Ok(o) => o.iter().map(|o| format!("{}@{}", o.kind, o.location)).collect::<Vec<_>>().join(", "),
        Err(e) => format!("ERROR {e}"),
    }
}

/// An offence we must give: kind, exact location, a fragment of the message (lowercase match).
struct Expect {
    case: &'static str,
    kind: OffenceKind,
    location: &'static str,
    fragment: &'static str,
}

const fn tree(case: &'static str, location: &'static str, fragment: &'static str) -> Expect {
    Expect { case, kind: OffenceKind::Tree, location, fragment }
}

const fn meta(case: &'static str, location: &'static str, fragment: &'static str) -> Expect {
    Expect { case, kind: OffenceKind::Metadata, location, fragment }
}

/// Offences expected in strict mode (checkpoints checked) for named cases.
const EXPECTED: &[Expect] = &[
    // tree
    tree("missing_metadata", "metadata.yaml", "missing"),
    tree("missing_data", "data", "missing"),
    tree("missing_build_parameters", "data/build_parameters.yaml", "missing"),
    tree("missing_initialisation_dir", "data/initialisation", "missing"),
    tree("missing_checkpoints_dir", "data/checkpoints", "missing"),
    tree("missing_checkpoints_dir_no_checkpoint", "data/checkpoints", "missing"),
    tree("missing_configuration", "config.py", "missing"),
    tree("missing_checkpoint_file", "data/checkpoints/5.h5", "missing"),
    tree("configuration_checksum_mismatch", "config.py", "checksum"),
    tree("checkpoint_checksum_mismatch", "data/checkpoints/2.h5", "checksum"),
    tree("initialisation_checksum_mismatch", "data/initialisation/init.h5", "checksum"),
    tree("pmf_init_missing_checkpoint", "model.initialisation.pmf.checkpoint", "\"nope\""),
    tree("pmf_init_checkpoint_int_vs_str", "model.initialisation.pmf.checkpoint", "\"1\""),
    tree("pmf_init_without_metadata", "data/initialisation", "metadata.yaml"),
    tree("pmf_init_empty_initialisation_dir", "data/initialisation", "metadata.yaml"),
    tree("file_init_missing_file", "data/initialisation/init.h5", "missing"),
    tree("file_init_other_file", "data/initialisation/init.h5", "missing"),
    tree("file_init_with_metadata", "data/initialisation", "metadata.yaml"),
    tree("fifo_in_tree", "data/a_fifo", "fifo"),
    tree("checkpoint_path_absolute", "model.training.checkpoints.1.path", "absolute"),
    tree("checkpoint_path_escapes_root", "model.training.checkpoints.1.path", ".."),
    tree("checkpoint_path_outside_checkpoints_dir", "model.training.checkpoints.1.path", "data/checkpoints"),
    tree("configuration_path_escapes_root", "model.configuration.path", ".."),
    tree("symlink_outside_root", "data/checkpoints/5.h5", "outside the model root"),
    // metadata
    meta("invalid_yaml_syntax", "metadata.yaml", "yaml"),
    meta("build_parameters_invalid_yaml", "data/build_parameters.yaml", "yaml"),
    meta("unknown_key_root", "extra", "unknown key"),
    meta("unknown_key_format", "format.extra", "unknown key"),
    meta("unknown_key_producer_version", "format.producer.version.extra", "unknown key"),
    meta("unknown_key_model", "model.extra", "unknown key"),
    meta("unknown_key_training", "model.training.extra", "unknown key"),
    meta("unknown_key_checkpoint_entry", "model.training.checkpoints.1.extra", "unknown key"),
    meta("unknown_key_init_file", "model.initialisation.file.extra", "unknown key"),
    meta("unknown_key_init_pmf", "model.initialisation.pmf.extra", "unknown key"),
    meta("missing_key_latest", "model.training.latest", "missing"),
    meta("missing_key_model_name", "model.name", "missing"),
    meta("md5_uppercase", "model.configuration.hash", ""),
    meta("md5_31_chars", "model.training.checkpoints.1.hash", ""),
    meta("md5_init_not_hex", "model.initialisation.file.hash", ""),
    meta("wrong_type_checkpoint_epoch_str", "model.training.checkpoints.1.epoch", "int"),
    meta("wrong_type_start_epoch_str", "model.training.start_epoch", "int"),
    meta("wrong_type_epoch_float", "model.training.checkpoints.1.epoch", "int"),
    meta("bool_epoch", "model.training.checkpoints.1.epoch", "int"),
    meta("wrong_type_time_str", "model.training.start_time", "time"),
    meta("wrong_type_id_int", "model.id", "string"),
    meta("wrong_type_name_int", "model.name", "string"),
    meta("wrong_type_version_value_float", "format.producer.version.value", "string"),
    meta("empty_checkpoint_path", "model.training.checkpoints.1.path", "empty"),
    meta("status_done", "model.training.status", "done"),
    meta("format_version_1_0_1", "format.version", "1.0.1"),
    meta("producer_name_a", "format.producer.name", "\"a\""),
    meta("producer_name_1abc", "format.producer.name", "1abc"),
    meta("producer_name_dash", "format.producer.name", "faster-rcnn"),
    meta("init_both_forms", "model.initialisation", "exactly one"),
    meta("pmf_init_invalid_init_metadata", "data/initialisation/metadata.yaml:model.id", "string"),
];

/// The fields a PMF-SPEC training offence (as `spec_offences` words it) is about: our offence
/// must be located at one of them and its message must name all of `names`.
fn training_rule(spec: &str) -> (Vec<String>, Vec<String>) {
    let loc = |f: &str| format!("model.training.{f}");
    if spec == "latest not among checkpoints" {
        return (vec![loc("latest")], vec!["latest".into(), "checkpoints".into()]);
    }
    if spec == "checkpoint epoch > latest_epoch" {
        return (vec![loc("checkpoints"), loc("latest_epoch")], vec!["latest_epoch".into(), "checkpoint".into()]);
    }
    let words: Vec<&str> = spec.split(' ').collect();
    match words.as_slice() {
        [a, "without", b] | [a, ">", b] => (vec![loc(a), loc(b)], vec![a.to_string(), b.to_string()]),
        [a, "with", "status", s] => (vec![loc(a)], vec![a.to_string(), s.to_string()]),
        _ => panic!("unknown spec offence wording {spec:?}"),
    }
}

#[test]
fn invalid_models_are_refused_here_too() {
    let Some(python) = common::reference_or_skip("invalid_models_are_refused_here_too") else { return };
    let g = generated(&python);
    let mut problems = Vec::new();
    let mut table = Vec::new();
    let mut strict_offences: BTreeMap<String, Outcome> = BTreeMap::new();
    for case in &g.invalid {
        let name = case["case"].as_str().unwrap();
        let rule = case["rule"].as_str().unwrap_or_default();
        let path = g.invalid_dir.join(case["path"].as_str().unwrap());
        if let Some(&(_, format)) = LOAD_REFUSES.iter().find(|(c, _)| *c == name) {
            load_refuses(name, format, &path, &mut problems);
            continue;
        }
        let wrongly_accepts = rule.starts_with(WRONGLY_ACCEPTS);
        let mut row = format!("{name:45}");
        for mode in MODES {
            let verdict = &case[mode.key];
            let reference_valid = verdict["valid"].as_bool().expect("valid");
            let ours = run_check(&path, mode);
            let ref_text = if reference_valid {
                "valid".to_owned()
            } else {
                format!("invalid/{}", verdict["kind"].as_str().unwrap_or("?"))
            };
            row.push_str(&format!("\n    {:22} reference {:14} ours: {}", mode.key, ref_text, show(&ours)));
            match &ours {
                Err(e) => problems.push(format!("{name} [{}]: {e}", mode.key)),
                Ok(offences) => {
                    let must_refuse = !reference_valid || (wrongly_accepts && mode.checkpoints);
                    if must_refuse && offences.is_empty() {
                        let why = if reference_valid {
                            format!("the reference wrongly accepts it ({rule})")
                        } else {
                            format!("the reference refuses it: {}", verdict["message"])
                        };
                        problems.push(format!("{name} [{}]: we accept it, but {why}", mode.key));
                    }
                    if reference_valid && !wrongly_accepts && !offences.is_empty() {
                        problems.push(format!(
                            "{name} [{}]: the reference accepts it ({rule}) but we give {}",
                            mode.key,
                            show(&ours)
                        ));
                    }
                }
            }
            if mode.key == "strict" {
                strict_offences.insert(name.to_owned(), ours.clone());
            }
        }
        table.push(row);
    }
    eprintln!("case -> reference verdict -> our offences (kind@location)\n{}", table.join("\n"));

    // Named cases: the offence kind and location we give (strict mode).
    for e in EXPECTED {
        match strict_offences.get(e.case) {
            None => problems.push(format!("{}: no such case in the reference's invalid set", e.case)),
            Some(Err(_)) => {}
            Some(Ok(offences)) => {
                let found = offences.iter().any(|o| {
                    o.kind == e.kind
                        && o.location == e.location
                        && o.message.to_lowercase().contains(&e.fragment.to_lowercase())
                });
                if !found {
                    problems.push(format!(
                        "{}: expected a {} offence at {:?} mentioning {:?}; we give: {}",
                        e.case,
                        e.kind,
                        e.location,
                        e.fragment,
                        offences.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(" | ")
                    ));
                }
            }
        }
    }

    // Training cross-checks: every spec offence is reported, as a metadata offence at
    // model.training.<field>, and no other training offence is.
    let mut training_cases = 0;
    for case in &g.invalid {
        let Some(spec) = case.get("spec_offences").and_then(Json::as_array) else { continue };
        training_cases += 1;
        let name = case["case"].as_str().unwrap();
        let Some(Ok(offences)) = strict_offences.get(name) else { continue };
        let training: Vec<&Offence> = offences.iter().filter(|o| o.location.starts_with("model.training")).collect();
        let mut used = vec![false; training.len()];
        for s in spec {
            let s = s.as_str().unwrap();
            let (locations, names) = training_rule(s);
            let hit = training.iter().enumerate().find(|(i, o)| {
                !used[*i]
                    && o.kind == OffenceKind::Metadata
                    && locations.contains(&o.location)
                    && names.iter().all(|n| o.message.contains(n.as_str()))
            });
            match hit {
                Some((i, _)) => used[i] = true,
                None => problems.push(format!(
                    "{name}: spec offence {s:?} not reported as a metadata offence at one of {locations:?} naming {names:?}; we give: {}",
                    training.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(" | ")
                )),
            }
        }
        if spec.len() != training.len() {
            problems.push(format!(
                "{name}: PMF-SPEC gives {} training offence(s) {spec:?}, we give {}: {}",
                spec.len(),
                training.len(),
                training.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(" | ")
            ));
        }
        if let Some(other) = offences.iter().find(|o| !o.location.starts_with("model.training")) {
            problems.push(format!("{name}: only training offences expected, we also give {other}"));
        }
    }
    assert!(training_cases >= 25, "only {training_cases} training cross-check cases carry spec_offences");
    fail_with_all(&format!("{} invalid models checked here", g.invalid.len()), &problems);
}

/// A case of [`LOAD_REFUSES`]: no offence in any mode, `Model::load` refuses the unknown version
/// `format` (every mode), and loads it when its `LoadOptions::formats` know the format.
fn load_refuses(name: &str, format: &str, path: &Path, problems: &mut Vec<String>) {
    for mode in MODES {
        match run_check(path, mode) {
            Err(e) => problems.push(format!("{name} [{}]: {e}", mode.key)),
            Ok(offences) if !offences.is_empty() => problems.push(format!(
                "{name} [{}]: validation checks version formats only where versions are parsed (load), but we give {}",
                mode.key,
                show(&Ok(offences))
            )),
            Ok(_) => {}
        }
        let options = LoadOptions::new().strict(mode.strict).checkpoints(mode.checkpoints);
        match Model::load(path, &options) {
            Err(Error::UnknownVersionFormat { format: f, known }) if f == format && known == [PY_PA] => {}
            other => problems.push(format!(
                "{name} [{}]: Model::load must refuse the unknown version format {format:?} (as the reference's \
                 Model.load does), got {:?}",
                mode.key,
                other.map(|_| ())
            )),
        }
        let mut formats = VersionFormats::new();
        formats.register_unparsed(format);
        match Model::load(path, &options.formats(formats)) {
            Ok(m) if m.producer.version.format() == format => {}
            other => problems.push(format!(
                "{name} [{}]: Model::load with the format {format:?} registered: {:?}",
                mode.key,
                other.map(|m| m.producer.version.format().to_owned())
            )),
        }
    }
}

/// The FIFO case must never be opened: checked on its own, with a watchdog, in every mode.
#[test]
fn a_fifo_in_a_model_is_an_offence_and_never_opened() {
    let Some(python) = common::reference_or_skip("a_fifo_in_a_model_is_an_offence_and_never_opened") else { return };
    let g = generated(&python);
    let path = g.invalid_dir.join("fifo_in_tree");
    assert!(walk_fifos(&path).contains(&path.join("data/a_fifo")), "the reference's fifo_in_tree case holds no FIFO");
    for mode in MODES {
        let ours = run_check(&path, mode);
        let offences = ours.unwrap_or_else(|e| panic!("fifo_in_tree [{}]: {e}", mode.key));
        assert!(
            offences
                .iter()
                .any(|o| o.kind == OffenceKind::Tree && o.location == "data/a_fifo" && o.message.contains("FIFO")),
            "fifo_in_tree [{}]: no tree offence at data/a_fifo: {offences:?}",
            mode.key
        );
        // Loading is refused too, with the same offence, without blocking.
        let p = path.clone();
        let err = common::guarded("Model::load(fifo_in_tree)", CHECK_LIMIT, walk_fifos(&path), move || {
            Model::load(&p, &LoadOptions::new().strict(mode.strict).checkpoints(mode.checkpoints)).map(|_| ())
        })
        .expect_err("a model with a FIFO loads");
        assert!(
            matches!(&err, Error::TreeValidation(report) if report.offences.iter().any(|o| o.location == "data/a_fifo")),
            "{err:?}"
        );
        assert!(err.to_string().contains("data/a_fifo"), "{err}");
    }
}
