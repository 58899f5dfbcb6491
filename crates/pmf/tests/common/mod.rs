//! Helpers shared by the `pmf` integration tests: running the binary, building models with it,
//! copying trees, and reading its JSON output.
#![allow(dead_code)]

/// The S3 test-server helpers: the library's tests' file, shared (not a copy).
#[path = "../../../plums-model/tests/common/s3.rs"]
pub mod s3;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// The `pmf` binary, with colour-forcing variables removed from its environment.
pub fn pmf() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pmf"));
    cmd.env_remove("CLICOLOR_FORCE").env_remove("FORCE_COLOR").env_remove("NO_COLOR");
    cmd
}

/// Run `pmf args...`, expect exit code `code`, return (stdout, stderr).
pub fn run(args: &[&str], code: i32) -> (String, String) {
    finished(args, pmf().args(args), code)
}

/// Run `pmf args...` expecting exit code `code` and parse stdout as one JSON document.
pub fn run_json(args: &[&str], code: i32) -> Value {
    let (stdout, stderr) = run(args, code);
    json_document(args, &stdout, &stderr)
}

/// Run `pmf args...` with `PMF_CACHE_DIR=cache` (where reads from object storage are cached),
/// expect exit code `code`, return (stdout, stderr).
pub fn run_cached(args: &[&str], cache: &Path, code: i32) -> (String, String) {
    finished(args, pmf().args(args).env("PMF_CACHE_DIR", cache), code)
}

/// [`run_cached`], then parse stdout as one JSON document.
pub fn run_json_cached(args: &[&str], cache: &Path, code: i32) -> Value {
    let (stdout, stderr) = run_cached(args, cache, code);
    json_document(args, &stdout, &stderr)
}

/// Run `cmd` (`pmf args...`), expect exit code `code`, return (stdout, stderr).
fn finished(args: &[&str], cmd: &mut Command, code: i32) -> (String, String) {
    let out = cmd.output().expect("pmf runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "pmf {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    (stdout, stderr)
}

/// `stdout` of `pmf args...` as one JSON document.
fn json_document(args: &[&str], stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| {
        panic!("pmf {args:?}: stdout is not one JSON document ({e}):\n{stdout}\n--- stderr\n{stderr}")
    })
}

/// `--storage-option KEY=VALUE` for each of the S3 test server's options.
pub fn storage_option_args(s3: &s3::S3Test) -> Vec<String> {
    s3.server
        .storage_options()
        .into_iter()
        .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
        .collect()
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// A path as a `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Copy the tree `src` into `dst` (files and folders only).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create folder");
    for entry in std::fs::read_dir(src).expect("read folder") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// A scratch folder with input files: `config.yaml`, `e1.pt`, `e2.pt`, `e3.pt`, `init.bin`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: [(&str, &str); 5] = [
            ("config.yaml", "lr: 0.1\n"),
            ("e1.pt", "weights 1"),
            ("e2.pt", "weights 2"),
            ("e3.pt", "weights 3"),
            ("init.bin", "initial weights"),
        ];
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write input");
        }
        Scratch { dir }
    }

    /// A path inside the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pmf new <name> --producer trainer --version 1.0.0 --config config.yaml --id <name>-id extra...`.
    pub fn new_model(&self, name: &str, extra: &[&str]) -> PathBuf {
        self.new_model_at(&self.path(name), &format!("{name}-id"), extra)
    }

    /// `pmf new DEST --producer trainer --version 1.0.0 --config config.yaml --id ID extra...`.
    pub fn new_model_at(&self, dest: &Path, id: &str, extra: &[&str]) -> PathBuf {
        let config = self.path("config.yaml");
        let mut args =
            vec!["new", s(dest), "--producer", "trainer", "--version", "1.0.0", "--config", s(&config), "--id", id];
        args.extend_from_slice(extra);
        run(&args, 0);
        dest.to_path_buf()
    }

    /// `pmf training start DEST`, then checkpoints 1 (e1.pt) to `epochs` (`e<epochs>.pt`, at most
    /// 3) at epochs 1..=`epochs`: a running model.
    pub fn train(&self, dest: &Path, epochs: i64) {
        run(&["training", "start", s(dest)], 0);
        for i in 1..=epochs {
            let file = self.path(&format!("e{i}.pt"));
            run(&["checkpoint", "add", s(dest), s(&file), "--epoch", &i.to_string()], 0);
        }
    }

    /// A finished model at DEST (`new_model_at` with `extra`) with checkpoints 1 (e1.pt),
    /// 2 (e2.pt), 3 (e3.pt) at epochs 1..3.
    pub fn finished_model_at(&self, dest: &Path, id: &str, extra: &[&str]) -> PathBuf {
        self.new_model_at(dest, id, extra);
        self.train(dest, 3);
        run(&["training", "end", s(dest)], 0);
        dest.to_path_buf()
    }

    /// A finished model with checkpoints 1 (e1.pt), 2 (e2.pt), 3 (e3.pt) at epochs 1..3.
    pub fn trained_model(&self, name: &str) -> PathBuf {
        let id = format!("{name}-id");
        self.finished_model_at(&self.path(name), &id, &["--name", "detector", "--param", "lr=0.1"])
    }
}

/// `pmf show --json` of a valid model: its `model` object.
pub fn show(dest: &Path) -> Value {
    let doc = run_json(&["show", "--json", s(dest)], 0);
    assert_eq!(doc["valid"], true, "{doc}");
    doc["model"].clone()
}

/// The checkpoint references of a `show --json` model, in order.
pub fn references(model: &Value) -> Vec<Value> {
    model["checkpoints"].as_array().expect("checkpoints array").iter().map(|c| c["reference"].clone()).collect()
}

/// Replace `from` by `to` in the model's metadata.yaml (which must contain it).
pub fn edit_metadata(dest: &Path, from: &str, to: &str) {
    let path = dest.join("metadata.yaml");
    let text = std::fs::read_to_string(&path).expect("read metadata");
    assert!(text.contains(from), "metadata.yaml has no {from:?}:\n{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write metadata");
}
