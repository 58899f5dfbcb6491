//! `pmf new`, `pmf checkpoint add|rm`, `pmf training ...`: what they write (read back with
//! `pmf show --json` and `pmf validate`), what they refuse, and their exit codes.

mod common;

use common::{edit_metadata, references, run, s, show, Scratch};
use serde_json::json;

// ---------------------------------------------------------------- new

#[test]
fn new_writes_a_valid_pending_model() {
    let t = Scratch::new();
    let m = t.new_model("m", &["--name", "detector"]);
    run(&["validate", s(&m)], 0);
    let model = show(&m);
    assert_eq!(model["name"], "detector");
    assert_eq!(model["id"], "m-id");
    assert_eq!(model["producer"]["name"], "trainer");
    assert_eq!(model["training"]["status"], "pending");
    assert!(model["training"]["start_epoch"].is_null());
    assert_eq!(model["checkpoints"], json!([]));
    assert_eq!(model["build_parameters"], json!({}));
    assert!(model["initialisation"].is_null());
    assert_eq!(std::fs::read_to_string(m.join("config.yaml")).expect("config copied"), "lr: 0.1\n");
}

#[test]
fn new_params_are_yaml_values_and_dotted_keys_nest() {
    let t = Scratch::new();
    let m = t.new_model(
        "m",
        &[
            "--param",
            "lr=0.1",
            "--param",
            "epochs=10",
            "--param",
            "pretrained=yes",
            "--param",
            "name=resnet",
            "--param",
            "quoted='yes'",
        ],
    );
    let model = show(&m);
    assert_eq!(
        model["build_parameters"],
        json!({"lr": 0.1, "epochs": 10, "pretrained": true, "name": "resnet", "quoted": "yes"})
    );

    let m2 = t.new_model(
        "m2",
        &[
            "--param",
            "backbone.depth=50",
            "--param",
            "backbone.name=resnet",
            "--param",
            "sizes=[1, 2]",
            "--param",
            "none=",
        ],
    );
    let model = show(&m2);
    assert_eq!(
        model["build_parameters"],
        json!({"backbone": {"depth": 50, "name": "resnet"}, "sizes": [1, 2], "none": null})
    );
    assert_eq!(
        std::fs::read_to_string(m2.join("data/build_parameters.yaml")).expect("read"),
        "backbone:\n  depth: 50\n  name: resnet\nsizes:\n- 1\n- 2\nnone: null\n"
    );

    let file = t.path("params.yaml");
    std::fs::write(&file, "lr: 0.5\nlayers: {a: 1}\n").expect("write");
    let m3 = t.new_model("m3", &["--params", s(&file), "--param", "lr=0.2", "--param", "layers.b=2"]);
    assert_eq!(show(&m3)["build_parameters"], json!({"lr": 0.2, "layers": {"a": 1, "b": 2}}));
}

#[test]
fn new_refuses_bad_params_with_exit_2() {
    let t = Scratch::new();
    let base = ["new", "m", "--producer", "trainer", "--version", "1", "--config", "c", "--id", "x"];
    for (param, text) in [("noequals", "expected KEY=VALUE"), ("a..b=1", "empty part"), ("a=[1", "not valid YAML")] {
        let dest = t.path("m");
        let config = t.path("config.yaml");
        let mut args = base.to_vec();
        args[1] = s(&dest);
        args[7] = s(&config);
        args.extend(["--param", param]);
        let (_, stderr) = run(&args, 2);
        assert!(stderr.contains(text), "{param}: {stderr}");
        assert!(!dest.exists(), "nothing written on a refused command");
    }
}

#[test]
fn new_refusals() {
    let t = Scratch::new();
    let config = t.path("config.yaml");
    let dest = t.path("m");
    let new = |extra: &[&str], code: i32| {
        let mut args = vec!["new", s(&dest), "--config", s(&config), "--id", "x"];
        args.extend_from_slice(extra);
        run(&args, code)
    };
    // Would be invalid: refused, exit 1, nothing written.
    let (_, stderr) = new(&["--producer", "t", "--version", "1"], 1);
    assert!(stderr.starts_with("error: cannot save: the model would not be valid"), "{stderr}");
    assert!(stderr.contains("producer name \"t\" is invalid"), "{stderr}");
    let (_, stderr) = new(&["--producer", "trainer", "--version", "1", "--version-format", "semver9"], 1);
    assert!(stderr.contains("invalid version format \"semver9\""), "{stderr}");
    let (_, stderr) = new(&["--producer", "trainer", "--version", "not a version"], 1);
    assert!(stderr.contains("PEP 440"), "{stderr}");
    assert!(!dest.exists());
    // Missing input file: exit 2.
    let (_, stderr) = run(
        &["new", s(&dest), "--producer", "trainer", "--version", "1", "--config", s(&t.path("nope.yaml")), "--id", "x"],
        2,
    );
    assert!(stderr.contains("nope.yaml") && stderr.contains("No such file"), "{stderr}");
    // An existing model is not overwritten: exit 2.
    new(&["--producer", "trainer", "--version", "1"], 0);
    let (_, stderr) = new(&["--producer", "trainer", "--version", "2"], 2);
    assert!(stderr.contains("already holds a PMF model"), "{stderr}");
    // A non-empty folder that is not a model: the library refuses, exit 2.
    let other = t.path("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), "x").expect("write");
    let (_, stderr) =
        run(&["new", s(&other), "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "x"], 2);
    assert!(stderr.contains("not a PMF model"), "{stderr}");
}

#[test]
fn new_initialisation_options() {
    let t = Scratch::new();
    let config = t.path("config.yaml");
    let init = t.path("init.bin");
    let base = |dest: &str| {
        vec![
            "new".to_owned(),
            s(&t.path(dest)).to_owned(),
            "--producer".into(),
            "trainer".into(),
            "--version".into(),
            "1".into(),
            "--config".into(),
            s(&config).to_owned(),
            "--id".into(),
            dest.to_owned(),
        ]
    };
    let call = |mut args: Vec<String>, extra: &[&str], code: i32| {
        args.extend(extra.iter().map(|e| e.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs, code)
    };
    // clap enforces the pairs and the exclusion.
    let (_, stderr) = call(base("a"), &["--init-file", s(&init)], 2);
    assert!(stderr.contains("--init-name"), "{stderr}");
    let (_, stderr) = call(
        base("a"),
        &["--init-model", s(&t.path("x")), "--init-checkpoint", "1", "--init-file", s(&init), "--init-name", "n"],
        2,
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    // A file initialisation.
    call(base("a"), &["--init-file", s(&init), "--init-name", "imagenet"], 0);
    let model = show(&t.path("a"));
    assert_eq!(model["initialisation"]["kind"], "file");
    assert_eq!(model["initialisation"]["name"], "imagenet");
    // A file without extension: saved, with a warning about the reference.
    let bare = t.path("weights");
    std::fs::write(&bare, "w").expect("write");
    let (_, stderr) = call(base("b"), &["--init-file", s(&bare), "--init-name", "w"], 0);
    assert!(stderr.contains("warning:") && stderr.contains("no extension"), "{stderr}");
    // A PMF initialisation: the checkpoint must exist in it.
    let trained = t.trained_model("trained");
    let (_, stderr) = call(base("c"), &["--init-model", s(&trained), "--init-checkpoint", "7"], 1);
    assert!(stderr.contains("has no checkpoint 7"), "{stderr}");
    let (_, stderr) =
        call(base("c"), &["--init-model", s(&trained), "--init-checkpoint", "2", "--init-checkpoint-str"], 1);
    assert!(stderr.contains("has no checkpoint \"2\""), "{stderr}");
    call(base("c"), &["--init-model", s(&trained), "--init-checkpoint", "2"], 0);
    let model = show(&t.path("c"));
    assert_eq!(model["initialisation"]["checkpoint"], 2);
    assert_eq!(model["initialisation"]["model"]["id"], "trained-id");
    // An invalid initialisation model is refused with its offences.
    std::fs::remove_file(trained.join("config.yaml")).expect("remove");
    let (_, stderr) = call(base("d"), &["--init-model", s(&trained), "--init-checkpoint", "2"], 1);
    assert!(stderr.contains("not a valid PMF model") && stderr.contains("config.yaml"), "{stderr}");
    // A missing initialisation path: exit 2.
    let (_, stderr) = call(base("e"), &["--init-file", s(&t.path("nope.bin")), "--init-name", "n"], 2);
    assert!(stderr.contains("nope.bin"), "{stderr}");
}

// ---------------------------------------------------------------- checkpoint add

#[test]
fn checkpoint_add_registers_the_epoch_of_a_running_training() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    let (stdout, _) = run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "1"], 0);
    assert!(stdout.contains("added checkpoint 1 (epoch 1, data/checkpoints/e1.pt); latest epoch is now 1"), "{stdout}");
    run(&["checkpoint", "add", s(&m), s(&t.path("e3.pt")), "--epoch", "5"], 0);
    let model = show(&m);
    assert_eq!(model["training"]["status"], "running");
    assert_eq!(model["training"]["latest_epoch"], 5);
    assert_eq!(references(&model), [json!(1), json!(5)]);
    assert_eq!(model["latest"], 5);
    // An earlier epoch does not move the latest epoch back.
    let (stdout, _) = run(&["checkpoint", "add", s(&m), s(&t.path("e2.pt")), "--epoch", "3"], 0);
    assert!(!stdout.contains("latest epoch is now"), "{stdout}");
    let model = show(&m);
    assert_eq!(model["training"]["latest_epoch"], 5);
    assert_eq!(model["latest"], 3, "the last added checkpoint is the latest");
    run(&["validate", s(&m)], 0);
}

#[test]
fn checkpoint_add_on_pending_and_finished_trainings() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "4"], 0);
    let model = show(&m);
    assert_eq!(model["training"]["status"], "pending");
    assert!(model["training"]["latest_epoch"].is_null(), "a pending training registers no epoch");

    let f = t.trained_model("f");
    let (_, stderr) = run(&["checkpoint", "add", s(&f), s(&t.path("e1.pt")), "--epoch", "4", "--ref", "late"], 1);
    assert!(stderr.starts_with("error: cannot add a checkpoint at epoch 4"), "{stderr}");
    assert!(stderr.contains("hint: the training is finished at epoch 3"), "{stderr}");
    run(&["checkpoint", "add", s(&f), s(&t.path("e1.pt")), "--epoch", "2", "--ref", "extra"], 0);
    assert_eq!(show(&f)["latest"], "extra");
}

#[test]
fn checkpoint_add_references() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    let e1 = t.path("e1.pt");
    run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1"], 0);
    run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1", "--ref", "best"], 0);
    run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1", "--ref", "7"], 0);
    run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1", "--ref", "7", "--ref-str"], 0);
    run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1", "--ref-str"], 0);
    assert_eq!(references(&show(&m)), [json!(1), json!("best"), json!(7), json!("7"), json!("1")]);
    let text = std::fs::read_to_string(m.join("metadata.yaml")).expect("read");
    let quoted = text.contains("\n      '7':\n") || text.contains("\n      \"7\":\n");
    assert!(text.contains("\n      7:\n") && quoted, "int and string references differ in YAML:\n{text}");
    // Duplicates are refused.
    let (_, stderr) = run(&["checkpoint", "add", s(&m), s(&e1), "--epoch", "1", "--ref", "best"], 1);
    assert!(stderr.contains("checkpoint reference \"best\" is already registered"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    run(&["validate", s(&m)], 0);
}

#[test]
fn checkpoint_add_refusals_and_errors() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "1"], 0);
    // Another file with the same name: it would overwrite the first one.
    let sub = t.path("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(sub.join("e1.pt"), "other weights").expect("write");
    let (_, stderr) = run(&["checkpoint", "add", s(&m), s(&sub.join("e1.pt")), "--epoch", "2"], 1);
    assert!(stderr.contains("both have files named \"e1.pt\""), "{stderr}");
    // Missing checkpoint file, missing model, invalid model.
    let (_, stderr) = run(&["checkpoint", "add", s(&m), s(&t.path("nope.pt")), "--epoch", "2"], 2);
    assert!(stderr.contains("nope.pt"), "{stderr}");
    let (_, stderr) = run(&["checkpoint", "add", s(&t.path("nomodel")), s(&t.path("e2.pt")), "--epoch", "2"], 2);
    assert!(stderr.contains("nomodel") && stderr.contains("hint: check the path"), "{stderr}");
    std::fs::remove_file(m.join("config.yaml")).expect("remove");
    let (_, stderr) = run(&["checkpoint", "add", s(&m), s(&t.path("e2.pt")), "--epoch", "2"], 1);
    assert!(stderr.starts_with("error: cannot edit an invalid model"), "{stderr}");
    assert!(stderr.contains("config.yaml"), "the offence is listed: {stderr}");
}

#[test]
fn checkpoint_add_a_file_already_in_the_model() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    let inside = m.join("data/checkpoints/direct.pt");
    std::fs::write(&inside, "written by the trainer").expect("write");
    run(&["checkpoint", "add", s(&m), s(&inside), "--epoch", "1"], 0);
    run(&["validate", s(&m)], 0);
    assert_eq!(show(&m)["checkpoints"][0]["path"], "data/checkpoints/direct.pt");
}

// ---------------------------------------------------------------- checkpoint rm

#[test]
fn checkpoint_rm() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let (stdout, _) = run(&["checkpoint", "rm", s(&m), "3"], 0);
    assert!(stdout.contains("removed checkpoint 3; deleted data/checkpoints/e3.pt"), "{stdout}");
    assert!(!m.join("data/checkpoints/e3.pt").exists());
    let model = show(&m);
    assert_eq!(references(&model), [json!(1), json!(2)]);
    assert_eq!(model["latest"], 2, "latest moves to the last remaining checkpoint");

    run(&["checkpoint", "rm", s(&m), "1", "--keep-file"], 0);
    assert!(m.join("data/checkpoints/e1.pt").exists(), "--keep-file keeps the file");
    assert_eq!(references(&show(&m)), [json!(2)]);

    // A file shared with another checkpoint is kept.
    run(&["checkpoint", "add", s(&m), s(&t.path("e2.pt")), "--epoch", "2", "--ref", "best"], 0);
    let (stdout, _) = run(&["checkpoint", "rm", s(&m), "2"], 0);
    assert!(stdout.contains("kept data/checkpoints/e2.pt"), "{stdout}");
    assert!(m.join("data/checkpoints/e2.pt").exists());
    run(&["validate", s(&m)], 0);
}

#[test]
fn checkpoint_rm_unknown_reference() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let (_, stderr) = run(&["checkpoint", "rm", s(&m), "9"], 1);
    assert!(stderr.contains("checkpoint reference 9 is not registered"), "{stderr}");
    assert!(stderr.contains("registered references: 1, 2, 3"), "{stderr}");
    let (_, stderr) = run(&["checkpoint", "rm", s(&m), "2", "--ref-str"], 1);
    assert!(stderr.contains("the model has the int reference 2: drop --ref-str"), "{stderr}");
    run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "1", "--ref", "5", "--ref-str"], 0);
    let (_, stderr) = run(&["checkpoint", "rm", s(&m), "5"], 1);
    assert!(stderr.contains("the model has the string reference \"5\": add --ref-str"), "{stderr}");
    run(&["checkpoint", "rm", s(&m), "5", "--ref-str"], 0);
}

// ---------------------------------------------------------------- training

#[test]
fn training_lifecycle() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    let (stdout, _) = run(&["training", "start", s(&m), "--epoch", "2"], 0);
    assert!(stdout.contains("training running at epoch 2"), "{stdout}");
    let training = show(&m)["training"].clone();
    assert_eq!(
        (training["status"].clone(), training["start_epoch"].clone(), training["latest_epoch"].clone()),
        (json!("running"), json!(2), json!(2))
    );
    assert!(training["start_time"].is_number());

    let (stdout, _) = run(&["training", "epoch", s(&m)], 0);
    assert!(stdout.contains("latest epoch 3"), "{stdout}");
    run(&["training", "epoch", s(&m), "6"], 0);
    let (stdout, _) = run(&["training", "epoch", s(&m), "4"], 0);
    assert!(stdout.contains("latest epoch stays 6"), "{stdout}");
    assert_eq!(show(&m)["training"]["latest_epoch"], 6);

    let (stdout, _) = run(&["training", "end", s(&m)], 0);
    assert!(stdout.contains("training finished at epoch 6"), "{stdout}");
    let training = show(&m)["training"].clone();
    assert_eq!(training["status"], "finished");
    assert_eq!(training["end_epoch"], 6);
    assert_eq!(training["end_time"], training["latest_time"]);
    run(&["validate", s(&m)], 0);

    // A finished training cannot change.
    for args in [&["training", "start"][..], &["training", "epoch"], &["training", "end"], &["training", "fail"]] {
        let mut args = args.to_vec();
        args.push(s(&m));
        let (_, stderr) = run(&args, 1);
        assert!(stderr.contains("hint: a finished training cannot change"), "{args:?}: {stderr}");
    }
}

#[test]
fn training_refusals_on_pending_and_failed() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    let (_, stderr) = run(&["training", "epoch", s(&m)], 1);
    assert!(stderr.contains("cannot register an epoch: the training is pending"), "{stderr}");
    assert!(stderr.contains("hint: start it first"), "{stderr}");
    let (_, stderr) = run(&["training", "end", s(&m)], 1);
    assert!(stderr.contains("a pending training cannot become finished"), "{stderr}");
    let (stdout, _) = run(&["training", "fail", s(&m)], 0);
    assert!(stdout.contains("training failed"), "{stdout}");
    assert_eq!(show(&m)["training"]["status"], "failed");
    let (_, stderr) = run(&["training", "start", s(&m)], 1);
    assert!(stderr.contains("a failed training cannot become running"), "{stderr}");
    run(&["training", "fail", s(&m)], 0);
    let (_, stderr) = run(&["training", "start", s(&t.path("nope"))], 2);
    assert!(stderr.contains("nope"), "{stderr}");
}

#[test]
fn training_restart_keeps_the_model_valid() {
    let t = Scratch::new();
    let m = t.new_model("m", &[]);
    run(&["training", "start", s(&m)], 0);
    run(&["checkpoint", "add", s(&m), s(&t.path("e1.pt")), "--epoch", "3"], 0);
    let (_, stderr) = run(&["training", "start", s(&m), "--epoch", "0"], 1);
    assert!(stderr.contains("after latest_epoch 0"), "{stderr}");
    assert_eq!(show(&m)["training"]["latest_epoch"], 3, "nothing written");
    run(&["training", "start", s(&m), "--epoch", "3"], 0);
    assert_eq!(show(&m)["training"]["start_epoch"], 3);
}

#[test]
fn edits_refuse_invalid_metadata() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    edit_metadata(&m, "status: finished", "status: {{");
    let (_, stderr) = run(&["training", "fail", s(&m)], 1);
    assert!(stderr.contains("cannot edit an invalid model") && stderr.contains("metadata.yaml"), "{stderr}");
    let before = std::fs::read(m.join("metadata.yaml")).expect("read");
    let (_, _) = run(&["checkpoint", "rm", s(&m), "1"], 1);
    assert_eq!(std::fs::read(m.join("metadata.yaml")).expect("read"), before, "nothing written");
}
