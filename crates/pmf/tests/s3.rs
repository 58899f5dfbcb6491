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

/// `--storage-option`s for a store at a closed port of 127.0.0.1, with credentials (no
/// metadata service is asked) and no retry: every request fails at once, nothing leaves the
/// machine.
fn unreachable_store() -> Vec<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    [
        format!("endpoint=http://127.0.0.1:{port}"),
        "allow_http=true".to_owned(),
        "region=us-east-1".to_owned(),
        "access_key_id=nobody".to_owned(),
        "secret_access_key=unreachable-sEcReT".to_owned(),
        "retry_max=0".to_owned(),
    ]
    .into_iter()
    .flat_map(|o| ["--storage-option".to_owned(), o])
    .collect()
}

#[test]
fn writing_commands_and_cp_take_a_url_for_a_store_never_for_a_local_path() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    let cwd = tempfile::tempdir().expect("tempdir");
    let options = unreachable_store();
    let config = t.path("config.yaml");
    let e1 = t.path("e1.pt");
    let url = "s3://bucket/m";
    let new = ["new", url, "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", "x"];
    let commands: Vec<Vec<&str>> = vec![
        new.to_vec(),
        vec!["checkpoint", "add", url, s(&e1), "--epoch", "1"],
        vec!["checkpoint", "rm", url, "1"],
        vec!["checkpoint", "prune", url, "--keep-last", "1"],
        vec!["training", "start", url],
        vec!["training", "epoch", url],
        vec!["training", "end", url],
        vec!["training", "fail", url],
        vec!["cp", s(&m), url],
        // A local destination relative to the current folder is not created either.
        vec!["cp", url, "copy"],
    ];
    for args in &commands {
        // The store is asked (and fails): the URL was not taken for a folder `s3:/bucket/m`.
        let out = run_in(cwd.path(), &[], None, &with_options(args, &options), 2);
        assert!(out.stderr.contains("the store failed"), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("({url}")), "{}", out.stderr);
        out.assert_hides("unreachable-sEcReT");
        let json =
            run_in(cwd.path(), &[], None, &with_options(&with_options(args, &["--json".to_owned()]), &options), 2)
                .json();
        let failure = &json["failure"];
        assert_eq!((&failure["kind"], &failure["storage_kind"]), (&"storage".into(), &"other".into()), "{json}");
        assert_eq!(failure["exit_code"], 2);
        assert!(failure["path"].as_str().is_some_and(|p| p.starts_with(url)), "{json}");
        if args[0] == "cp" {
            assert_eq!(json["copied"], false, "{json}");
            assert!(json.get("id").is_none() && json.get("sent").is_none(), "{json}");
        } else {
            assert_eq!((&json["saved"], &json["path"]), (&false.into(), &url.into()), "{json}");
        }
    }
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
    let e1 = t.path("e1.pt");
    let m = t.trained_model("m");
    for args in [
        vec!["checkpoint", "add", "foo://x", s(&e1), "--epoch", "1", "--json"],
        vec!["checkpoint", "rm", "foo://x", "1", "--json"],
        vec!["checkpoint", "prune", "foo://x", "--keep-last", "1", "--json"],
        vec!["training", "epoch", "foo://x", "--json"],
        vec!["training", "end", "foo://x", "--json"],
        vec!["training", "fail", "foo://x", "--json"],
        vec!["cp", "foo://x", s(&m), "--json"],
        vec!["cp", s(&m), "foo://x", "--json"],
    ] {
        let json = run_in(cwd.path(), &[], None, &args, 2).json();
        assert_eq!(json["failure"]["kind"], "invalid_location", "{args:?}: {json}");
        assert_eq!(json["failure"]["exit_code"], 2);
    }
    // A URL is not a local input file either.
    let m = t.new_model("pending", &[]);
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
    // Sizes come from the listing (nothing is downloaded, no local path read).
    assert!(checkpoints.iter().all(|c| c["size"] == 9), "{model}");
    assert_eq!(model["configuration"]["size"], 8, "{model}");
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

// ------------------------------------------------------------ writing to S3

/// The keys under `PREFIX/rel` (boto3), relative to it.
fn keys(s3: &S3Test, rel: &str) -> Vec<String> {
    let strip = if rel.is_empty() { String::new() } else { format!("{}/", rel.trim_end_matches('/')) };
    s3.list(rel).into_iter().map(|(k, _, _)| k.strip_prefix(&strip).map(str::to_owned).unwrap_or(k)).collect()
}

/// `--storage-option`s of the test server, but with the secret `secret`.
fn options_with_secret(s3: &S3Test, secret: &str) -> Vec<String> {
    s3.server
        .storage_options()
        .into_iter()
        .map(|(k, v)| if k == "secret_access_key" { (k, secret.to_owned()) } else { (k, v) })
        .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
        .collect()
}

/// The MD5 of a local file, as metadata records it.
fn md5(path: &Path) -> String {
    plums_model::md5_file(path).expect("md5").to_string()
}

/// `pmf validate --json` of one location: asserts it is valid, strictly (every checksum).
fn assert_valid_strictly(cwd: &Path, cache: &Path, location: &str, options: &[String]) {
    let json = run_in(cwd, &[], Some(cache), &with_options(&["validate", "--json", location], options), 0).json();
    let model = &json["models"][0];
    assert_eq!((&model["valid"], &model["strict"]), (&true.into(), &true.into()), "{json}");
}

/// The `model` of `pmf show --json LOCATION` (file sizes included: a remote model's come from
/// its listing).
fn shown(cwd: &Path, cache: &Path, location: &str, options: &[String]) -> Value {
    let json = run_in(cwd, &[], Some(cache), &with_options(&["show", "--json", location], options), 0).json();
    assert_eq!(json["valid"], true, "{json}");
    json["model"].clone()
}

/// The reference Python `plums` 0.5.2's strict validation and load of the local model
/// `model`: (id, references, latest, status); `None` (after a skip line) without it, unless
/// `PMF_REQUIRE_REFERENCE=1`.
fn reference_load(model: &Path) -> Option<Value> {
    const SCRIPT: &str = r#"
import json, sys
from plums.model.validation import validate
from plums.model import Model
validate(sys.argv[1], strict=True)
m = Model.load(sys.argv[1])
print(json.dumps({"id": m.id, "references": list(m.checkpoint_collection.keys()),
                  "latest": m.checkpoint_collection.latest, "status": m.training.status}))
"#;
    let python = common::s3::boto3_python();
    let usable = std::process::Command::new(&python)
        .args(["-c", "import plums.model"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        assert!(std::env::var("PMF_REQUIRE_REFERENCE").as_deref() != Ok("1"), "no reference plums at {python:?}");
        eprintln!("skipped: the reference load of {}: no plums at {}", model.display(), python.display());
        return None;
    }
    let out = std::process::Command::new(&python).args(["-c", SCRIPT, s(model)]).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the reference refuses {}:\n{stdout}\n{}", model.display(), {
        String::from_utf8_lossy(&out.stderr)
    });
    Some(serde_json::from_str(&stdout).expect("JSON"))
}

#[test]
fn a_whole_training_session_on_s3_with_the_writing_commands() {
    let Some(s3) = s3_or_skip("cli_session_on_s3") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let secret = s3.server.secret_access_key.clone();
    let cache = t.path("cache");
    let cwd = tempfile::tempdir().expect("tempdir");
    let cwd = cwd.path();
    let url = s3.url("run-42");
    std::fs::write(t.path("params.yaml"), "lr: 0.1\nbackbone: {depth: 50}\n").unwrap();
    let (config, params, init) = (t.path("config.yaml"), t.path("params.yaml"), t.path("init.bin"));
    let file = |name: &str| t.path(name).to_str().expect("UTF-8").to_owned();
    let (e1, e2, e3) = (file("e1.pt"), file("e2.pt"), file("e3.pt"));
    // Each edit, with --json: saved, at the URL; its message.
    let edit = |args: &[&str]| -> String {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let out = run_in(cwd, &[], Some(&cache), &with_options(&args, &options), 0);
        out.assert_hides(&secret);
        let json = out.json();
        assert_eq!((&json["saved"], &json["path"]), (&true.into(), &Value::from(url.as_str())), "{json}");
        assert!(json.get("failure").is_none() && json.get("error").is_none(), "{json}");
        json["message"].as_str().expect("message").to_owned()
    };

    let message = edit(&[
        "new",
        &url,
        "--producer",
        "trainer",
        "--version",
        "1.0.0",
        "--config",
        s(&config),
        "--id",
        "run-42",
        "--name",
        "detector",
        "--params",
        s(&params),
        "--param",
        "epochs=10",
        "--init-file",
        s(&init),
        "--init-name",
        "imagenet",
    ]);
    assert_eq!(message, "created model detector id run-42 (training pending)");
    assert_eq!(edit(&["training", "start", &url]), "training running at epoch 0");
    assert_eq!(
        edit(&["checkpoint", "add", &url, &e1, "--epoch", "1"]),
        "added checkpoint 1 (epoch 1, data/checkpoints/e1.pt); latest epoch is now 1"
    );
    edit(&["checkpoint", "add", &url, &e2, "--epoch", "2"]);
    assert_eq!(
        edit(&["checkpoint", "add", &url, &e3, "--epoch", "3", "--ref", "best"]),
        "added checkpoint \"best\" (epoch 3, data/checkpoints/e3.pt); latest epoch is now 3"
    );
    assert_eq!(edit(&["training", "epoch", &url]), "latest epoch 4");
    assert!(keys(&s3, "run-42").contains(&"data/checkpoints/e2.pt".to_owned()));
    let removed = edit(&["checkpoint", "rm", &url, "2"]);
    assert!(removed.starts_with("removed checkpoint 2; deleted data/checkpoints/"), "{removed}");
    assert_eq!(edit(&["training", "end", &url]), "training finished at epoch 4");

    // The objects are the model's files, and nothing else (no lock, no save marker): the
    // removed checkpoint's object was deleted.
    assert_eq!(
        keys(&s3, "run-42"),
        [
            "config.yaml",
            "data/build_parameters.yaml",
            "data/checkpoints/e1.pt",
            "data/checkpoints/e3.pt",
            "data/initialisation/init.bin",
            "metadata.yaml"
        ]
    );
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["validate", &url], &options), 0);
    assert_eq!(out.stdout.trim(), format!("valid   {url}"));
    assert_valid_strictly(cwd, &cache, &url, &options);
    let model = shown(cwd, &cache, &url, &options);
    assert_eq!((&model["id"], &model["name"]), (&"run-42".into(), &"detector".into()), "{model}");
    assert_eq!(
        model["producer"],
        serde_json::json!({"name": "trainer", "version_format": "py_pa", "version": "1.0.0"})
    );
    assert_eq!(model["configuration"], serde_json::json!({"path": "config.yaml", "hash": md5(&config), "size": 8}));
    let training = &model["training"];
    assert_eq!(training["status"], "finished");
    assert_eq!(
        (&training["start_epoch"], &training["latest_epoch"], &training["end_epoch"]),
        (&0.into(), &4.into(), &4.into())
    );
    assert_eq!(model["latest"], "best");
    assert_eq!(
        model["checkpoints"],
        serde_json::json!([
            {"reference": 1, "epoch": 1, "path": "data/checkpoints/e1.pt", "size": 9,
             "hash": md5(&t.path("e1.pt")), "latest": false},
            {"reference": "best", "epoch": 3, "path": "data/checkpoints/e3.pt", "size": 9,
             "hash": md5(&t.path("e3.pt")), "latest": true}
        ])
    );
    assert_eq!(model["build_parameters"], serde_json::json!({"lr": 0.1, "backbone": {"depth": 50}, "epochs": 10}));
    assert_eq!(
        model["initialisation"],
        serde_json::json!({"kind": "file", "name": "imagenet", "path": "data/initialisation/init.bin",
                           "hash": md5(&init), "size": 15})
    );

    // Downloaded with boto3, it is the same model, valid for pmf and for the reference.
    let copy = t.path("downloaded");
    s3.download_dir("run-42", &copy);
    assert_valid_strictly(cwd, &cache, s(&copy), &[]);
    assert_eq!(shown(cwd, &cache, s(&copy), &[]), model);
    if let Some(d) = reference_load(&copy) {
        assert_eq!(
            d,
            serde_json::json!({"id": "run-42", "references": [1, "best"], "latest": "best", "status": "finished"})
        );
    }

    // `pmf new` never overwrites a model, remote or not.
    let metadata = s3.get("run-42/metadata.yaml");
    let new = ["new", &url, "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", "other"];
    let json =
        run_in(cwd, &[], Some(&cache), &with_options(&with_options(&new, &["--json".into()]), &options), 2).json();
    assert_eq!((&json["saved"], &json["failure"]["kind"]), (&false.into(), &"model_exists".into()), "{json}");
    assert_eq!(json["failure"]["path"], url.as_str());
    assert_eq!(s3.get("run-42/metadata.yaml"), metadata);
    // Nothing was written to the current folder.
    let left: Vec<_> = std::fs::read_dir(cwd).expect("read cwd").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn checkpoint_rm_on_s3_keeps_the_object_with_keep_file() {
    let Some(s3) = s3_or_skip("cli_rm_keep_file_on_s3") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let kept =
        run_in(cwd, &[], Some(&cache), &with_options(&["checkpoint", "rm", &url, "2", "--keep-file"], &options), 0);
    assert!(kept.stdout.starts_with("removed checkpoint 2; kept data/checkpoints/e2.pt"), "{}", kept.stdout);
    assert!(keys(&s3, "model").contains(&"data/checkpoints/e2.pt".to_owned()));
    let gone = run_in(cwd, &[], Some(&cache), &with_options(&["checkpoint", "rm", &url, "1"], &options), 0);
    assert!(gone.stdout.starts_with("removed checkpoint 1; deleted data/checkpoints/e1.pt"), "{}", gone.stdout);
    let left = keys(&s3, "model");
    assert!(!left.contains(&"data/checkpoints/e1.pt".to_owned()), "{left:?}");
    assert!(left.contains(&"data/checkpoints/e2.pt".to_owned()), "the kept file stays: {left:?}");
    assert_valid_strictly(cwd, &cache, &url, &options);
    let model = shown(cwd, &cache, &url, &options);
    assert_eq!(model["checkpoints"].as_array().map(Vec::len), Some(1), "{model}");
    assert_eq!(model["latest"], 3);
}

#[test]
fn checkpoint_prune_on_s3_deletes_the_objects_it_removes() {
    let Some(s3) = s3_or_skip("cli_prune_on_s3") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let prune = |extra: &[&str], code: i32| {
        let args: Vec<&str> =
            ["checkpoint", "prune", url.as_str(), "--json"].into_iter().chain(extra.iter().copied()).collect();
        let out = run_in(cwd, &[], Some(&cache), &with_options(&args, &options), code);
        out.assert_hides(&s3.server.secret_access_key);
        out.json()
    };
    // A dry run lists what would go (sizes from the listing) and changes no object.
    let before = s3.list("model");
    let json = prune(&["--keep-last", "1", "--dry-run"], 0);
    assert_eq!(
        (&json["dry_run"], &json["saved"], &json["freed_bytes"]),
        (&true.into(), &false.into(), &18.into()),
        "{json}"
    );
    assert_eq!(s3.list("model"), before);
    // An unknown --keep is refused, nothing changes.
    let json = prune(&["--keep-last", "1", "--keep", "7"], 2);
    assert_eq!(json["failure"]["kind"], "usage", "{json}");
    assert_eq!(s3.list("model"), before);

    let json = prune(&["--keep-last", "1", "--keep", "1"], 0);
    assert_eq!((&json["saved"], &json["path"]), (&true.into(), &Value::from(url.as_str())), "{json}");
    assert_eq!(
        json["removed"],
        serde_json::json!([{"reference": 2, "epoch": 2, "path": "data/checkpoints/e2.pt", "size": 9, "file_kept": false}])
    );
    assert_eq!(json["kept"][1], serde_json::json!({"reference": 3, "epoch": 3, "reasons": ["latest", "last"]}));
    assert_eq!(json["freed_bytes"], 9);
    let left = keys(&s3, "model");
    assert!(!left.contains(&"data/checkpoints/e2.pt".to_owned()), "{left:?}");
    assert!(left.contains(&"data/checkpoints/e1.pt".to_owned()) && left.contains(&"data/checkpoints/e3.pt".to_owned()));
    assert_valid_strictly(cwd, &cache, &url, &options);
    let model = shown(cwd, &cache, &url, &options);
    assert_eq!(model["checkpoints"].as_array().map(Vec::len), Some(2), "{model}");
    assert_eq!(model["latest"], 3);
}

#[test]
fn writing_commands_on_s3_fail_with_the_kinds_they_have_on_folders() {
    let Some(s3) = s3_or_skip("cli_write_failures_on_s3") else { return };
    let t = Scratch::new();
    let url = uploaded_model(&t, &s3);
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let e1 = t.path("e1.pt");
    let config = t.path("config.yaml");
    let before = s3.list("model");
    // `pmf ARGS --json`, expecting `code`.
    let json_run = |args: &[&str], options: &[String], code: i32| -> Output {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        run_in(cwd, &[], Some(&cache), &with_options(&args, options), code)
    };
    // The library's refusals: exit 1, nothing written.
    for (args, kind) in [
        (vec!["checkpoint", "add", &url, s(&e1), "--epoch", "9", "--ref", "late"], "invalid_training"),
        (vec!["training", "start", &url], "status_change"),
        (vec!["checkpoint", "rm", &url, "7"], "missing_reference"),
        (vec!["checkpoint", "add", &url, s(&e1), "--epoch", "1"], "duplicate_reference"),
    ] {
        let json = json_run(&args, &options, 1).json();
        assert_eq!((&json["saved"], &json["failure"]["kind"]), (&false.into(), &kind.into()), "{args:?}: {json}");
        assert_eq!(json["failure"]["path"], url.as_str());
    }
    assert_eq!(s3.list("model"), before, "a refused edit writes nothing");

    // A prefix holding foreign objects: `pmf new` refuses it (foreign_folder, exit 2) and leaves
    // it as it was; an edit finds no model there (an invalid model: exit 1).
    s3.put("foreign/notes.txt", b"mine");
    let foreign = s3.url("foreign");
    let new = ["new", &foreign, "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", "x"];
    let json = json_run(&new, &options, 2).json();
    assert_eq!(json["failure"]["kind"], "foreign_folder", "{json}");
    assert_eq!(json["failure"]["path"], foreign.as_str());
    let json = json_run(&["checkpoint", "add", &foreign, s(&e1), "--epoch", "1"], &options, 1).json();
    assert_eq!(json["failure"]["kind"], "tree_validation", "{json}");
    assert!(json["error"].as_str().is_some_and(|e| e.starts_with("cannot edit an invalid model")), "{json}");
    let offences: Vec<&Value> = json["failure"]["offences"].as_array().expect("offences").iter().collect();
    assert!(offences.iter().any(|o| o["location"] == "metadata.yaml"), "{json}");
    assert_eq!(keys(&s3, "foreign"), ["notes.txt"]);
    assert_eq!(s3.get("foreign/notes.txt").as_deref(), Some(&b"mine"[..]));
    // An empty prefix holds no model to edit: storage not_found, exit 2.
    let json = json_run(&["training", "start", &s3.url("nothing")], &options, 2).json();
    assert_eq!((&json["failure"]["kind"], &json["failure"]["storage_kind"]), (&"storage".into(), &"not_found".into()));

    // Wrong credentials (as an option, over the right ones in the environment): storage,
    // permission_denied, exit 2, no secret shown, nothing written.
    let right = s3.server.secret_access_key.clone();
    let wrong = "WrOnG-sEcReT-for-writes-5d1e";
    let bad = options_with_secret(&s3, wrong);
    let env = s3.server.aws_env();
    let fresh = s3.url("fresh");
    let local = t.trained_model("local");
    for args in [
        vec!["checkpoint", "add", &url, s(&e1), "--epoch", "2", "--ref", "again"],
        vec!["training", "fail", &url],
        vec!["new", &fresh, "--producer", "trainer", "--version", "1", "--config", s(&config), "--id", "y"],
        vec!["cp", s(&local), &fresh],
        vec!["cp", &url, &fresh],
    ] {
        let all: Vec<&str> = with_options(&args, &bad);
        let out = run_in(cwd, &env, Some(&cache), &all, 2);
        assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
        assert!(out.stderr.contains("hint: check the credentials"), "{}", out.stderr);
        out.assert_hides(&right);
        out.assert_hides(wrong);
        let out = run_in(cwd, &env, Some(&cache), &with_options(&all, &["--json".into()]), 2);
        out.assert_hides(&right);
        out.assert_hides(wrong);
        let json = out.json();
        let failure = &json["failure"];
        assert_eq!((&failure["kind"], &failure["storage_kind"]), (&"storage".into(), &"permission_denied".into()));
        let done = if args[0] == "cp" { &json["copied"] } else { &json["saved"] };
        assert_eq!(done, false, "{json}");
    }
    assert_eq!(s3.list("model"), before);
    assert!(keys(&s3, "fresh").is_empty());
}

// ------------------------------------------------------------ pmf cp

/// `pmf cp --json SRC DEST` (with the server's options), expecting `code`; the JSON.
fn cp(t: &Scratch, options: &[String], src: &str, dest: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["cp", src, dest, "--json"];
    args.extend_from_slice(extra);
    let out = run_in(t.dir.path(), &[], Some(&t.path("cache")), &with_options(&args, options), code);
    for secret in options.iter().filter_map(|o| o.strip_prefix("secret_access_key=")) {
        out.assert_hides(secret);
    }
    let json = out.json();
    assert_eq!((&json["source"], &json["destination"]), (&Value::from(src), &Value::from(dest)), "{json}");
    json
}

/// Asserts the `--json` of a successful copy of the trained model (3 checkpoints); `sent`
/// only for an object-store destination.
fn assert_copied(json: &Value, remote_dest: bool) {
    assert_eq!((&json["copied"], &json["id"], &json["checkpoints"]), (&true.into(), &"model-id".into(), &3.into()));
    assert!(json.get("failure").is_none(), "{json}");
    assert_eq!(json.get("sent").is_some(), remote_dest, "{json}");
}

#[test]
fn cp_copies_between_folders_and_s3_in_every_direction() {
    let Some(s3) = s3_or_skip("cli_cp_directions") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let src = t.trained_model("model");
    let original = shown(cwd, &cache, s(&src), &[]);

    // local -> S3: every file sent, once; exactly the model's objects.
    let a = s3.url("a");
    let json = cp(&t, &options, s(&src), &a, &[], 0);
    assert_copied(&json, true);
    let listed = s3.list("a");
    let names: Vec<&str> = listed.iter().map(|(k, _, _)| k.strip_prefix("a/").unwrap_or(k)).collect();
    assert_eq!(
        names,
        [
            "config.yaml",
            "data/build_parameters.yaml",
            "data/checkpoints/e1.pt",
            "data/checkpoints/e2.pt",
            "data/checkpoints/e3.pt",
            "metadata.yaml"
        ]
    );
    assert_eq!(json["sent"]["objects"], listed.len());
    assert_eq!(json["sent"]["bytes"], listed.iter().map(|(_, size, _)| size).sum::<u64>());
    // S3 -> S3 (one set of options reaches both).
    let b = s3.url("b");
    assert_copied(&cp(&t, &options, &a, &b, &[], 0), true);
    // S3 -> local, local -> local.
    let down = t.path("down");
    assert_copied(&cp(&t, &options, &b, s(&down), &[], 0), false);
    let again = t.path("again");
    assert_copied(&cp(&t, &[], s(&down), s(&again), &[], 0), false);

    // Each copy validates strictly and is the same model (same metadata, times included).
    for (location, options) in [(a.as_str(), &options[..]), (&b, &options), (s(&down), &[]), (s(&again), &[])] {
        assert_valid_strictly(cwd, &cache, location, options);
        assert_eq!(shown(cwd, &cache, location, options), original, "{location}");
    }
    for local in [&down, &again] {
        if let Some(d) = reference_load(local) {
            assert_eq!(
                d,
                serde_json::json!({"id": "model-id", "references": [1, 2, 3], "latest": 3, "status": "finished"})
            );
        }
    }

    // For people: one line.
    let c = s3.url("c");
    let out = run_in(cwd, &[], Some(&cache), &with_options(&["cp", s(&src), &c], &options), 0);
    assert!(out.stdout.starts_with("copied model model-id (3 checkpoints); sent 6 objects, "), "{}", out.stdout);
    assert!(out.stdout.trim_end().ends_with(&format!("({} -> {c})", s(&src))), "{}", out.stdout);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = run_in(cwd, &[], Some(&cache), &["cp", s(&src), s(&t.path("plain"))], 0);
    assert!(out.stdout.starts_with("copied model model-id (3 checkpoints) ("), "{}", out.stdout);
}

#[test]
fn cp_to_s3_sends_only_what_the_destination_lacks() {
    let Some(s3) = s3_or_skip("cli_cp_incremental") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let src = t.trained_model("model");
    let dest = s3.url("copy");
    let first = cp(&t, &options, s(&src), &dest, &[], 0);
    assert_eq!(first["sent"]["objects"], 6, "{first}");
    let etags = s3.list("copy");

    // The same copy again: only metadata.yaml (the commit) is sent.
    let json = cp(&t, &options, s(&src), &dest, &[], 0);
    let metadata_size = s3.list("copy").into_iter().find(|(k, _, _)| k == "copy/metadata.yaml").expect("metadata").1;
    assert_eq!(json["sent"], serde_json::json!({"objects": 1, "bytes": metadata_size}), "{json}");
    let out = run_in(t.dir.path(), &[], Some(&t.path("cache")), &with_options(&["cp", s(&src), &dest], &options), 0);
    assert!(out.stdout.contains("only metadata.yaml sent: the destination had every file"), "{}", out.stdout);
    // The files' objects are the ones of the first copy.
    let now = s3.list("copy");
    for (key, size, etag) in etags.iter().filter(|(k, _, _)| !k.ends_with("metadata.yaml")) {
        assert!(now.iter().any(|(k, s, e)| (k, s, e) == (key, size, etag)), "{key} was rewritten");
    }

    // A new checkpoint in SRC: it and metadata.yaml are sent, nothing else.
    std::fs::write(t.path("best.pt"), "the best weights").unwrap();
    run_in(
        t.dir.path(),
        &[],
        None,
        &["checkpoint", "add", s(&src), s(&t.path("best.pt")), "--epoch", "3", "--ref", "best"],
        0,
    );
    let json = cp(&t, &options, s(&src), &dest, &[], 0);
    assert_eq!(json["checkpoints"], 4);
    let listed = s3.list("copy");
    let size_of = |key: &str| listed.iter().find(|(k, _, _)| k == key).map(|(_, s, _)| *s).expect(key);
    let bytes = size_of("copy/data/checkpoints/best.pt") + size_of("copy/metadata.yaml");
    assert_eq!(json["sent"], serde_json::json!({"objects": 2, "bytes": bytes}), "{json}");
    assert_valid_strictly(t.dir.path(), &t.path("cache"), &dest, &options);

    // S3 -> S3 again: the destination already has every file.
    let other = s3.url("other");
    assert_eq!(cp(&t, &options, &dest, &other, &[], 0)["sent"]["objects"], 7);
    assert_eq!(cp(&t, &options, &dest, &other, &[], 0)["sent"]["objects"], 1);
}

#[test]
fn cp_refuses_the_same_location_foreign_destinations_and_another_model() {
    let Some(s3) = s3_or_skip("cli_cp_refusals") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let cache = t.path("cache");
    let cwd = t.dir.path();
    let src = t.trained_model("model");
    let url = s3.url("model");
    cp(&t, &options, s(&src), &url, &[], 0);

    // The same model: exit 2 (usage), whatever the spelling.
    let same = format!("{}/../model", s(&src));
    for (a, b) in [(s(&src), s(&src)), (s(&src), same.as_str()), (&url, &url), (&url, &format!("{url}/"))] {
        let json = cp(&t, &options, a, b, &[], 2);
        assert_eq!((&json["copied"], &json["failure"]["kind"]), (&false.into(), &"usage".into()), "{json}");
        assert!(json["failure"]["message"].as_str().is_some_and(|m| m.ends_with("are the same model")), "{json}");
        assert!(json.get("id").is_none() && json.get("checkpoints").is_none() && json.get("sent").is_none());
    }

    // A destination with foreign files (a folder) or objects (a prefix): refused without
    // --force (foreign_folder, exit 2), nothing written; with --force the model is saved over
    // it, the foreign file kept.
    let folder = t.path("foreign");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    s3.put("foreign/notes.txt", b"mine");
    let prefix = s3.url("foreign");
    for dest in [s(&folder), prefix.as_str()] {
        let json = cp(&t, &options, s(&src), dest, &[], 2);
        assert_eq!((&json["copied"], &json["failure"]["kind"]), (&false.into(), &"foreign_folder".into()), "{json}");
        assert_eq!(json["failure"]["exit_code"], 2);
        assert_eq!(json["failure"]["path"], dest);
    }
    let entries = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(entries(&folder), ["notes.txt"]);
    assert_eq!(keys(&s3, "foreign"), ["notes.txt"]);
    for dest in [s(&folder), prefix.as_str()] {
        assert_copied(&cp(&t, &options, s(&src), dest, &["--force"], 0), dest.starts_with("s3://"));
        assert_valid_strictly(cwd, &cache, dest, &options);
    }
    assert_eq!(std::fs::read_to_string(folder.join("notes.txt")).unwrap(), "mine");
    assert_eq!(s3.get("foreign/notes.txt").as_deref(), Some(&b"mine"[..]));
    assert!(keys(&s3, "foreign").contains(&"metadata.yaml".to_owned()));

    // An invalid model with the same id at the destination: invalid_same_model, exit 1, unless
    // --force, which repairs it.
    let broken = t.path("broken");
    cp(&t, &options, s(&src), s(&broken), &[], 0);
    std::fs::write(broken.join("data/checkpoints/e1.pt"), "weights X").unwrap();
    let broken_url = s3.url("broken");
    cp(&t, &options, s(&src), &broken_url, &[], 0);
    s3.put("broken/data/checkpoints/e1.pt", b"weights X");
    for dest in [s(&broken), broken_url.as_str()] {
        let json = cp(&t, &options, s(&src), dest, &[], 1);
        assert_eq!(json["failure"]["kind"], "invalid_same_model", "{json}");
        assert_eq!(json["failure"]["offences"][0]["location"], "data/checkpoints/e1.pt", "{json}");
        assert_copied(&cp(&t, &options, s(&src), dest, &["--force"], 0), dest.starts_with("s3://"));
        assert_valid_strictly(cwd, &cache, dest, &options);
    }

    // Another model (another id) at the destination: other_model, exit 2, even with --force.
    let other = t.new_model("other", &[]);
    let other_url = s3.url("other");
    cp(&t, &options, s(&other), &other_url, &[], 0);
    let before = s3.list("other");
    for dest in [s(&other), other_url.as_str()] {
        for extra in [&[][..], &["--force"]] {
            let json = cp(&t, &options, s(&src), dest, extra, 2);
            assert_eq!(json["failure"]["kind"], "other_model", "{json}");
        }
    }
    assert_eq!(s3.list("other"), before);
    assert_eq!(shown(cwd, &cache, s(&other), &[])["id"], "other-id");
}

#[test]
fn cp_refuses_a_corrupted_source_before_writing_anything() {
    let Some(s3) = s3_or_skip("cli_cp_corrupted_source") else { return };
    let t = Scratch::new();
    let options = option_args(&s3);
    let url = uploaded_model(&t, &s3);
    // Same length, other content: only a checksum sees it.
    s3.put("model/data/checkpoints/e2.pt", b"weights X");
    let local = t.trained_model("local");
    std::fs::write(local.join("data/checkpoints/e2.pt"), "weights X").unwrap();
    let to_s3 = s3.url("dest");
    let to_folder = t.path("dest");
    for src in [url.as_str(), s(&local)] {
        for dest in [to_s3.as_str(), s(&to_folder)] {
            let json = cp(&t, &options, src, dest, &[], 1);
            assert_eq!(json["copied"], false);
            let failure = &json["failure"];
            assert_eq!((&failure["kind"], &failure["exit_code"]), (&"tree_validation".into(), &1.into()), "{json}");
            assert_eq!(failure["path"], src, "the failure is about the source: {json}");
            let offences = failure["offences"].as_array().expect("offences");
            assert_eq!(offences.len(), 1, "{json}");
            assert_eq!(offences[0]["location"], "data/checkpoints/e2.pt");
            assert!(offences[0]["message"].as_str().is_some_and(|m| m.contains("checksum mismatch")), "{json}");
        }
    }
    // Even with --force.
    cp(&t, &options, &url, &to_s3, &["--force"], 1);
    assert!(keys(&s3, "dest").is_empty(), "nothing written to the destination prefix");
    assert!(!to_folder.exists(), "the destination folder was not created");
    let out = run_in(t.dir.path(), &[], Some(&t.path("cache")), &with_options(&["cp", &url, &to_s3], &options), 1);
    assert!(out.stderr.starts_with(&format!("error: not a valid PMF model, 1 offence ({url})")), "{}", out.stderr);
    assert!(out.stderr.contains("data/checkpoints/e2.pt: checkpoint 2 checksum mismatch"), "{}", out.stderr);
}
