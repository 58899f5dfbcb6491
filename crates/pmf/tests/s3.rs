//! `pmf` on object storage: locations (a URL is never a local path), `--storage-option` over the
//! `AWS_*` environment, secrets kept out of every output, `pmf validate` and `pmf show` on a
//! real S3 server (SeaweedFS, started by `scripts/test`; see `common/s3.rs`), the storage
//! failures' exit codes and kinds, and `pmf cache info|prune`.
//!
//! The tests that need the server print `skipped: ...` without it, unless `PMF_REQUIRE_S3=1`.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::s3::{s3_or_skip, S3Test};
use common::{pmf, s, Scratch};
use serde_json::Value;

/// The `AWS_*` variables a test controls: removed from the inherited environment first.
const AWS_VARIABLES: [&str; 8] = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ALLOW_HTTP",
    "AWS_PROFILE",
];

/// What one run of `pmf` printed.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}\n{}", self.stdout, self.stderr))
    }

    /// Panics if `secret` appears on stdout or stderr.
    fn assert_hides(&self, secret: &str) {
        assert!(!self.stdout.contains(secret), "a secret is on stdout:\n{}", self.stdout.replace(secret, "<SECRET>"));
        assert!(!self.stderr.contains(secret), "a secret is on stderr:\n{}", self.stderr.replace(secret, "<SECRET>"));
    }
}

/// Run `pmf args...` with the `AWS_*` variables `env` only (and `PMF_CACHE_DIR=cache`, if
/// given), in the folder `cwd`; expect exit code `code`.
fn run_in(cwd: &Path, env: &[(String, String)], cache: Option<&Path>, args: &[&str], code: i32) -> Output {
    let mut cmd = pmf();
    for name in AWS_VARIABLES {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(cache) = cache {
        cmd.env("PMF_CACHE_DIR", cache);
    }
    let out = cmd.current_dir(cwd).args(args).output().expect("pmf runs");
    let output = Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        output.code,
        Some(code),
        "pmf {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" ").replace(&env_secret(env), "<SECRET>"),
        output.stdout,
        output.stderr
    );
    output
}

fn env_secret(env: &[(String, String)]) -> String {
    env.iter().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").map(|(_, v)| v.clone()).unwrap_or_else(|| "\0".into())
}

/// `--storage-option KEY=VALUE` for each of the test server's options.
fn option_args(s3: &S3Test) -> Vec<String> {
    s3.server
        .storage_options()
        .into_iter()
        .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
        .collect()
}

/// A finished model with checkpoints 1, 2, 3 made locally with `pmf`, uploaded with boto3 to
/// `PREFIX/model`; returns its URL.
fn uploaded_model(t: &Scratch, s3: &S3Test) -> String {
    let local = t.trained_model("model");
    s3.upload_dir(&local, "model");
    s3.url("model")
}

/// `args` then the `--storage-option`s of the test server.
fn with_options<'a>(args: &[&'a str], options: &'a [String]) -> Vec<&'a str> {
    args.iter().copied().chain(options.iter().map(String::as_str)).collect()
}

// ------------------------------------------------------------ without the server

#[test]
fn writing_commands_refuse_object_locations_before_writing_anything() {
    let t = Scratch::new();
    let cwd = tempfile::tempdir().expect("tempdir");
    let config = t.path("config.yaml");
    let e1 = t.path("e1.pt");
    let new =
        ["new", "s3://bucket/m", "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", "x"];
    let commands: Vec<Vec<&str>> = vec![
        new.to_vec(),
        vec!["checkpoint", "add", "s3://bucket/m", s(&e1), "--epoch", "1"],
        vec!["checkpoint", "rm", "s3://bucket/m", "1"],
        vec!["training", "start", "s3://bucket/m"],
        vec!["training", "epoch", "s3://bucket/m"],
        vec!["training", "end", "s3://bucket/m"],
        vec!["training", "fail", "s3://bucket/m"],
    ];
    for args in &commands {
        let out = run_in(cwd.path(), &[], None, args, 2);
        assert!(out.stderr.contains("not supported on object storage"), "{}", out.stderr);
        assert!(out.stderr.contains("hint: `pmf validate` and `pmf show`"), "{}", out.stderr);
        let json = run_in(cwd.path(), &[], None, &with_options(args, &["--json".to_owned()]), 2).json();
        assert_eq!(json["saved"], false);
        assert_eq!(json["path"], "s3://bucket/m");
        assert_eq!(json["failure"]["kind"], "unsupported", "{json}");
        assert_eq!(json["failure"]["exit_code"], 2);
        assert_eq!(json["failure"]["path"], "s3://bucket/m");
    }
    // Nothing was created in the current folder (no `s3:` folder), and no request was made
    // (no endpoint or credentials were given).
    let left: Vec<_> = std::fs::read_dir(cwd.path()).expect("read cwd").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unknown_scheme_is_an_invalid_location_everywhere() {
    let t = Scratch::new();
    let cwd = tempfile::tempdir().expect("tempdir");
    let config = t.path("config.yaml");
    let json = run_in(cwd.path(), &[], None, &["validate", "--json", "foo://x"], 2).json();
    let model = &json["models"][0];
    assert_eq!((&model["path"], &model["valid"]), (&Value::from("foo://x"), &Value::from(false)));
    assert_eq!(model["failure"]["kind"], "invalid_location", "{json}");
    assert!(model["error"].as_str().is_some_and(|e| e.contains("unknown scheme")), "{json}");
    let json = run_in(cwd.path(), &[], None, &["show", "--json", "foo://x"], 2).json();
    assert_eq!(json["failure"]["kind"], "invalid_location", "{json}");
    let out = run_in(cwd.path(), &[], None, &["training", "start", "foo://x"], 2);
    assert!(out.stderr.contains("invalid location \"foo://x\""), "{}", out.stderr);
    let out = run_in(
        cwd.path(),
        &[],
        None,
        &["new", "foo://x/m", "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "x"],
        2,
    );
    assert!(out.stderr.contains("unknown scheme"), "{}", out.stderr);
    // A URL is not a local input file either.
    let m = t.new_model("m", &[]);
    let json =
        run_in(cwd.path(), &[], None, &["checkpoint", "add", s(&m), "s3://b/e1.pt", "--epoch", "0", "--json"], 2)
            .json();
    assert_eq!(json["failure"]["kind"], "usage", "{json}");
    assert!(json["error"].as_str().is_some_and(|e| e.contains("must be a local file")), "{json}");
    let left: Vec<_> = std::fs::read_dir(cwd.path()).expect("read cwd").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn file_urls_are_local_folders() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let url = format!("file://{}", m.canonicalize().expect("canonical").display());
    let cwd = tempfile::tempdir().expect("tempdir");
    run_in(cwd.path(), &[], None, &["validate", &url], 0);
    run_in(cwd.path(), &[], None, &["training", "fail", &url], 1);
}

#[test]
fn bad_storage_options_are_usage_errors_that_do_not_echo_values() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let secret = "sEcReT-never-printed-41";
    for (option, kind) in [
        (format!("endpiont={secret}"), "invalid_storage_option"),
        (secret.to_owned(), "usage"),
        ("timeout=soon".to_owned(), "invalid_storage_option"),
    ] {
        let args = ["validate", "--json", "s3://bucket/m", "--storage-option", &option];
        let out = run_in(cwd.path(), &[], None, &args, 2);
        out.assert_hides(secret);
        let json = out.json();
        assert_eq!(json["failure"]["kind"], kind, "{json}");
        assert_eq!(json["models"], Value::Array(vec![]));
        let out = run_in(cwd.path(), &[], None, &["show", "s3://bucket/m", "--storage-option", &option], 2);
        out.assert_hides(secret);
        assert!(out.stderr.contains("--storage-option"), "{}", out.stderr);
    }
}

#[test]
fn cache_commands_on_an_empty_cache() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let cache = cwd.path().join("cache");
    let out = run_in(cwd.path(), &[], Some(&cache), &["cache", "info", "--json"], 0).json();
    assert_eq!(out["root"], s(&cache));
    assert_eq!((&out["entries"], &out["bytes"]), (&Value::from(0), &Value::from(0)));
    let out = run_in(cwd.path(), &[], Some(&cache), &["cache", "prune", "--max-size", "1G", "--json"], 0).json();
    assert_eq!(out["removed_entries"], 0);
    let out = run_in(cwd.path(), &[], Some(&cache), &["cache", "info"], 0);
    assert!(out.stdout.contains(s(&cache)), "{}", out.stdout);
    run_in(cwd.path(), &[], Some(&cache), &["cache", "prune", "--max-size", "lots"], 2);
    run_in(cwd.path(), &[], Some(&cache), &["cache", "prune", "--older-than", "3"], 2);
}

// ------------------------------------------------------------ on the S3 test server

#[test]
fn validate_and_show_a_model_on_s3() {
    let Some(s3) = s3_or_skip("cli_validate_and_show") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 0);
    assert_eq!(out.stdout.trim(), format!("valid   {url}"), "strict by default: no note");
    out.assert_hides(&s3.server.secret_access_key);
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--json", &url], &options), 0).json();
    let model = &json["models"][0];
    assert_eq!(model["path"], url.as_str());
    assert_eq!((&model["valid"], &model["strict"], &model["checkpoints"]), (&true.into(), &true.into(), &true.into()));
    assert_eq!(model["offences"], Value::Array(vec![]));
    assert!(model.get("error").is_none() && model.get("failure").is_none(), "{json}");
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--quick", &url], &options), 0);
    assert!(out.stdout.contains("checksums not verified"), "{}", out.stdout);

    // The same through the AWS_* environment, without options.
    run_in(cwd, &s3.server.aws_env(), Some(&cache), &["validate", &url], 0);

    let out = run_in(cwd, &s3.server.aws_env(), Some(&cache), &["show", &url], 0);
    assert!(out.stdout.contains("detector  id model-id"), "{}", out.stdout);
    assert!(out.stdout.contains("finished"), "{}", out.stdout);
    let json = run_in(cwd, &s3.server.aws_env(), Some(&cache), &["show", "--json", &url], 0).json();
    assert_eq!((&json["path"], &json["valid"]), (&Value::from(url.as_str()), &Value::from(true)));
    let model = &json["model"];
    assert_eq!(model["id"], "model-id");
    assert_eq!(model["training"]["status"], "finished");
    let checkpoints = model["checkpoints"].as_array().expect("checkpoints");
    assert_eq!(checkpoints.len(), 3);
    // Sizes are not looked up for a remote model (nothing is downloaded, no local path read).
    assert!(checkpoints.iter().all(|c| c["size"].is_null()), "{model}");
    assert_eq!(model["build_parameters"]["lr"], 0.1);
}

#[test]
fn a_corrupted_object_is_a_checksum_offence() {
    let Some(s3) = s3_or_skip("cli_corrupted_object") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    // Same length, other content: only a checksum sees it.
    s3.put("model/data/checkpoints/e2.pt", b"weights X");
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 1);
    assert!(out.stdout.starts_with(&format!("invalid {url}")), "{}", out.stdout);
    assert!(out.stdout.contains("data/checkpoints/e2.pt"), "{}", out.stdout);
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--json", &url], &options), 1).json();
    let model = &json["models"][0];
    assert_eq!(model["valid"], false);
    let offences = model["offences"].as_array().expect("offences");
    assert_eq!(offences.len(), 1, "{json}");
    assert_eq!(offences[0]["kind"], "tree");
    assert_eq!(offences[0]["location"], "data/checkpoints/e2.pt");
    assert!(offences[0]["message"].as_str().is_some_and(|m| m.contains("checksum")), "{json}");
    // Without checksums the model passes; show (which does not verify them) shows it.
    run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--quick", &url], &options), 0);
    run_in(cwd, &[], Some(&cache), &with_options(&["show", &url], &options), 0);
    // A broken metadata.yaml is a metadata offence for validate and show alike.
    s3.put("model/metadata.yaml", b"format: [unclosed\n");
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["show", "--json", &url], &options), 1).json();
    assert_eq!(json["valid"], false);
    assert!(!json["offences"].as_array().expect("offences").is_empty(), "{json}");
}

#[test]
fn storage_options_win_over_the_environment_and_secrets_never_show() {
    let Some(s3) = s3_or_skip("cli_option_precedence") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let right = s3.server.secret_access_key.clone();
    let wrong = "WrOnG-sEcReT-7f3a9c";
    let env_with = |secret: &str| -> Vec<(String, String)> {
        s3.server
            .aws_env()
            .into_iter()
            .map(|(k, v)| if k == "AWS_SECRET_ACCESS_KEY" { (k, secret.to_owned()) } else { (k, v) })
            .collect()
    };
    let right_option = format!("secret_access_key={right}");
    let wrong_option = format!("secret_access_key={wrong}");

    // Wrong secret in the environment, right one as an option: works.
    for command in ["validate", "show"] {
        let out = run_in(cwd, &env_with(wrong), Some(&cache), &[command, &url, "--storage-option", &right_option], 0);
        out.assert_hides(&right);
        out.assert_hides(wrong);
    }
    // The aws_-prefixed key is the same option.
    let prefixed = format!("aws_secret_access_key={right}");
    run_in(cwd, &env_with(wrong), Some(&cache), &["validate", "--quick", &url, "--storage-option", &prefixed], 0);

    // Right secret in the environment, wrong one as an option: refused, exit 2, no secret shown.
    let out = run_in(cwd, &env_with(&right), Some(&cache), &["validate", &url, "--storage-option", &wrong_option], 2);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: check the credentials"), "{}", out.stderr);
    out.assert_hides(&right);
    out.assert_hides(wrong);
    for args in [
        vec!["validate", "--json", &url, "--storage-option", &wrong_option],
        vec!["show", "--json", &url, "--storage-option", &wrong_option],
    ] {
        let out = run_in(cwd, &env_with(&right), Some(&cache), &args, 2);
        out.assert_hides(&right);
        out.assert_hides(wrong);
        let json = out.json();
        let failure = if args[0] == "validate" { &json["models"][0]["failure"] } else { &json["failure"] };
        assert_eq!(failure["kind"], "storage", "{json}");
        assert_eq!(failure["storage_kind"], "permission_denied", "{json}");
        assert_eq!(failure["exit_code"], 2);
        assert!(failure["path"].as_str().is_some_and(|p| p.starts_with(&url)), "{json}");
    }
    // Nor in the failure of a human-readable show.
    let out = run_in(cwd, &env_with(&right), Some(&cache), &["show", &url, "--storage-option", &wrong_option], 2);
    out.assert_hides(&right);
    out.assert_hides(wrong);
}

#[test]
fn a_missing_prefix_is_a_storage_not_found() {
    let Some(s3) = s3_or_skip("cli_missing_prefix") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let cwd = t.dir.path();
    let cache = t.path("cache");
    let url = s3.url("nothing-here");
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 2);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: check the URL"), "{}", out.stderr);
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--json", &url], &options), 2).json();
    let failure = &json["models"][0]["failure"];
    assert_eq!((&failure["kind"], &failure["storage_kind"]), (&"storage".into(), &"not_found".into()), "{json}");
    assert_eq!(failure["io_kind"], "not_found");
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["show", "--json", &url], &options), 2).json();
    assert_eq!(json["failure"]["storage_kind"], "not_found", "{json}");
    // One bad location among good ones: 2 wins, the others are still checked.
    let good = uploaded_model(&t, &s3);
    let json = run_in(cwd, &[], Some(&cache), &with_options(&["validate", "--json", &good, &url], &options), 2).json();
    assert_eq!(json["models"][0]["valid"], true);
    assert_eq!(json["models"][1]["failure"]["storage_kind"], "not_found");
}

/// The cache entries' folders with the modification times of their record and their file.
fn entries(cache: &Path) -> Vec<(std::path::PathBuf, SystemTime, SystemTime)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(cache.join("objects")).expect("objects").map(|e| e.expect("entry").path()) {
        let record = std::fs::metadata(dir.join("entry")).and_then(|m| m.modified()).expect("record");
        let files: Vec<_> = std::fs::read_dir(dir.join("file")).expect("file").map(|e| e.expect("f").path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let file = std::fs::metadata(&files[0]).and_then(|m| m.modified()).expect("file");
        out.push((dir, record, file));
    }
    out.sort();
    out
}

#[test]
fn strict_validation_fills_the_cache_which_is_reused_reported_and_pruned() {
    let Some(s3) = s3_or_skip("cli_cache") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cwd = t.dir.path();
    let cache = t.path("cache");
    let info = |cache: &Path| run_in(cwd, &[], Some(cache), &["cache", "info", "--json"], 0).json();
    assert_eq!(info(&cache)["entries"], 0);
    run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 0);
    let filled = info(&cache);
    // The configuration and the three checkpoints, verified.
    assert_eq!(filled["entries"], 4, "{filled}");
    assert!(filled["bytes"].as_u64().is_some_and(|b| b > 0), "{filled}");
    assert_eq!(filled["root"], s(&cache));

    // Age every record; a second strict validation reuses each entry (a reuse refreshes the
    // record's time, a download would not: its new entry loses the race to the existing one),
    // and downloads nothing again (the files are the same).
    let old = SystemTime::now() - Duration::from_secs(10 * 86400);
    for (dir, _, _) in entries(&cache) {
        std::fs::File::options().append(true).open(dir.join("entry")).and_then(|f| f.set_modified(old)).expect("age");
    }
    let before = entries(&cache);
    run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 0);
    let after = entries(&cache);
    assert_eq!(before.len(), after.len());
    for ((dir, record_before, file_before), (dir_after, record_after, file_after)) in before.iter().zip(&after) {
        assert_eq!(dir, dir_after);
        assert_eq!(file_before, file_after, "{} was downloaded again", dir.display());
        assert!(record_after > record_before, "{} was not reused", dir.display());
    }
    assert_eq!(info(&cache)["entries"], 4);

    // Age two entries: --older-than removes them only.
    for (dir, _, _) in after.iter().take(2) {
        std::fs::File::options().append(true).open(dir.join("entry")).and_then(|f| f.set_modified(old)).expect("age");
    }
    let pruned = run_in(cwd, &[], Some(&cache), &["cache", "prune", "--older-than", "1d", "--json"], 0).json();
    assert_eq!(pruned["removed_entries"], 2, "{pruned}");
    assert!(pruned["freed_bytes"].as_u64().is_some_and(|b| b > 0), "{pruned}");
    assert_eq!(pruned["cache"]["entries"], 2);
    let out = run_in(cwd, &[], Some(&cache), &["cache", "prune", "--max-size", "0"], 0);
    assert!(out.stdout.starts_with("removed 2 cached files"), "{}", out.stdout);
    assert_eq!(info(&cache)["entries"], 0);
    // The next strict validation downloads again, and is still valid.
    run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 0);
    assert_eq!(info(&cache)["entries"], 4);
}
