//! The S3 test server (SeaweedFS `weed mini`, started by `scripts/test` through
//! `scripts/s3-server`, always with `-master.telemetry=false` on 127.0.0.1) as the tests see it.
//!
//! `scripts/s3-server start DIR` exports `PMF_TEST_S3_ENDPOINT` (`http://127.0.0.1:PORT`),
//! `PMF_TEST_S3_BUCKET`, `PMF_TEST_S3_ACCESS_KEY_ID`, `PMF_TEST_S3_SECRET_ACCESS_KEY` and
//! `PMF_TEST_S3_REGION`. A test that needs the server starts with
//!
//! ```ignore
//! let Some(s3) = common::s3::s3_or_skip("save_to_s3") else { return };
//! let url = s3.url("model"); // s3://BUCKET/pmf-tests/save_to_s3-PID-N/model
//! ```
//!
//! Without those variables the test prints `skipped: ...` and returns, unless `PMF_REQUIRE_S3=1`
//! (set by `scripts/test`, hence on CI): then it fails. Every [`S3Test`] has its own key prefix in
//! the bucket, so tests run in parallel, in one process or many, without seeing each other.
//!
//! [`S3Test::put`], [`S3Test::get`], [`S3Test::list`] and [`S3Test::delete`] reach the bucket
//! with boto3 (the Python of `PMF_PYTHON`, else `.venv/bin/python`), independently of the code
//! under test: to plant hostile objects, to look at what a save left, to interoperate.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};

/// The variables `scripts/s3-server start` exports, in the order of [`S3Server`]'s fields.
pub const VARIABLES: [&str; 5] = [
    "PMF_TEST_S3_ENDPOINT",
    "PMF_TEST_S3_BUCKET",
    "PMF_TEST_S3_ACCESS_KEY_ID",
    "PMF_TEST_S3_SECRET_ACCESS_KEY",
    "PMF_TEST_S3_REGION",
];

/// Where the test server is and how to sign in.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl std::fmt::Debug for S3Server {
    // The secret stays out of panic messages and logs, as the code under test must keep it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

impl S3Server {
    /// `python -c script` with this server's endpoint, bucket, credentials and region in its
    /// environment (`PMF_S3_*`: never on its command line).
    pub fn boto3_command(&self, python: &std::path::Path, script: &str) -> Command {
        let mut command = Command::new(python);
        command
            .args(["-c", script])
            .env("PMF_S3_ENDPOINT", &self.endpoint)
            .env("PMF_S3_BUCKET", &self.bucket)
            .env("PMF_S3_ACCESS_KEY_ID", &self.access_key_id)
            .env("PMF_S3_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("PMF_S3_REGION", &self.region);
        command
    }

    /// The server from the environment, or why there is none (names of the missing variables).
    pub fn from_env() -> Result<S3Server, String> {
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for name in VARIABLES {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => values.push(v),
                _ => missing.push(name),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "no S3 test server: {} unset (scripts/test starts one; by hand: \
                 eval \"$(scripts/s3-server start DIR)\")",
                missing.join(", ")
            ));
        }
        let mut values = values.into_iter();
        let mut next = || values.next().expect("five values");
        Ok(S3Server {
            endpoint: next(),
            bucket: next(),
            access_key_id: next(),
            secret_access_key: next(),
            region: next(),
        })
    }

    /// Options in `object_store`'s names (`AmazonS3ConfigKey`), for the `storage_options` of
    /// the API and `--storage-option KEY=VALUE` of the CLI. The endpoint is plain HTTP.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", &self.endpoint),
            ("access_key_id", &self.access_key_id),
            ("secret_access_key", &self.secret_access_key),
            ("region", &self.region),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .chain([("allow_http".to_owned(), "true".to_owned())])
        .collect()
    }

    /// The same as `AWS_*` environment variables, for a child process (`Command::envs`).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_access_key.clone()),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }
}

/// Whether the S3 tests must run (`PMF_REQUIRE_S3=1`): then a missing server fails them.
pub fn required() -> bool {
    std::env::var("PMF_REQUIRE_S3").as_deref() == Ok("1")
}

/// The server, or `None` after printing `skipped: TEST: ...`; panics instead when
/// `PMF_REQUIRE_S3=1`.
pub fn server_or_skip(test: &str) -> Option<S3Server> {
    match S3Server::from_env() {
        Ok(s) => Some(s),
        Err(why) if required() => {
            panic!("{test}: the S3 test server is required (PMF_REQUIRE_S3=1) but {why}")
        }
        Err(why) => {
            eprintln!("skipped: {test}: {why}");
            None
        }
    }
}

/// A fresh, unique prefix in the test bucket for the test `test`, or `None` (skipped) as in
/// [`server_or_skip`]. Call at the start of every test that needs the server.
pub fn s3_or_skip(test: &str) -> Option<S3Test> {
    let server = server_or_skip(test)?;
    Some(S3Test::new(server, test))
}

/// One test's corner of the bucket: every key it uses starts with [`S3Test::prefix`].
#[derive(Debug, Clone)]
pub struct S3Test {
    pub server: S3Server,
    /// `pmf-tests/TEST-PID-SECONDS-N` (no leading or trailing `/`): unique across the test
    /// processes of a run and across runs on one server.
    pub prefix: String,
}

impl S3Test {
    /// A new prefix for `test` on `server`.
    pub fn new(server: S3Server, test: &str) -> S3Test {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(80)
            .collect();
        let prefix = format!("pmf-tests/{name}-{}-{now}-{n}", std::process::id());
        S3Test { server, prefix }
    }

    /// The key `PREFIX/rel` (`rel` without a leading `/`; empty for the prefix itself).
    pub fn key(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{}", self.prefix, rel.trim_start_matches('/'))
        }
    }

    /// `s3://BUCKET/PREFIX/rel`: a location for the code under test.
    pub fn url(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.server.bucket, self.key(rel))
    }

    /// A sub-prefix of this one, e.g. one per writer of a concurrency test.
    pub fn child(&self, rel: &str) -> S3Test {
        S3Test { server: self.server.clone(), prefix: self.key(rel) }
    }

    /// Store `body` at `PREFIX/rel` (boto3 `put_object`); returns the ETag (quoted).
    pub fn put(&self, rel: &str, body: &[u8]) -> String {
        let out = self.boto3(json!({"op": "put", "key": self.key(rel)}), body);
        out["etag"].as_str().expect("etag").to_owned()
    }

    /// The content of `PREFIX/rel`, `None` when there is no such key.
    pub fn get(&self, rel: &str) -> Option<Vec<u8>> {
        let out = self.boto3(json!({"op": "get", "key": self.key(rel)}), b"");
        if out["found"].as_bool() == Some(false) {
            return None;
        }
        let hex = out["hex"].as_str().expect("hex");
        Some((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect())
    }

    /// Every key under `PREFIX/rel` (all pages), relative to [`S3Test::prefix`], with its size
    /// and ETag (quoted), sorted by key.
    pub fn list(&self, rel: &str) -> Vec<(String, u64, String)> {
        let mut under = self.key(rel);
        if !under.ends_with('/') {
            under.push('/');
        }
        let out = self.boto3(json!({"op": "list", "key": under}), b"");
        let strip = format!("{}/", self.prefix);
        out["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .map(|o| {
                let key = o["key"].as_str().unwrap();
                (
                    key.strip_prefix(&strip).unwrap_or(key).to_owned(),
                    o["size"].as_u64().unwrap(),
                    o["etag"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Delete `PREFIX/rel` (no error when absent).
    pub fn delete(&self, rel: &str) {
        self.boto3(json!({"op": "delete", "key": self.key(rel)}), b"");
    }

    /// Upload the local folder `dir` to `PREFIX/rel/` (one object per file, relative paths as
    /// keys), as a user with boto3 would.
    pub fn upload_dir(&self, dir: &std::path::Path, rel: &str) {
        self.boto3(json!({"op": "upload_dir", "key": self.key(rel), "dir": dir}), b"");
    }

    /// Download every object under `PREFIX/rel/` into the local folder `dir`.
    pub fn download_dir(&self, rel: &str, dir: &std::path::Path) {
        self.boto3(json!({"op": "download_dir", "key": self.key(rel), "dir": dir}), b"");
    }

    /// Run one boto3 operation in a child Python (bounded: 120 s), `stdin` as the body of a put.
    fn boto3(&self, request: Json, stdin: &[u8]) -> Json {
        let python = boto3_python();
        let s = &self.server;
        let mut child = s
            .boto3_command(&python, BOTO3_DRIVER)
            .arg(request.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (boto3): {e}", python.display()));
        let mut input = child.stdin.take().expect("stdin");
        let body = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&body);
        });
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("boto3 {request} did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = writer.join();
        let stdout = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if !status.success() {
            panic!("boto3 {request} failed ({status}):\n{}", String::from_utf8_lossy(&stderr));
        }
        serde_json::from_slice(&stdout)
            .unwrap_or_else(|e| panic!("boto3 {request} printed no JSON ({e}): {}", String::from_utf8_lossy(&stdout)))
    }
}

/// The Python with boto3: `PMF_PYTHON`, else the workspace's `.venv/bin/python`.
pub fn boto3_python() -> PathBuf {
    match std::env::var_os("PMF_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => super::workspace_root().join(".venv").join("bin").join("python"),
    }
}

/// The child-side of [`S3Test::boto3`]: one request (JSON in argv[1]), one JSON answer.
const BOTO3_DRIVER: &str = r#"
import json, os, sys
import boto3
from botocore.exceptions import ClientError
e = os.environ
s3 = boto3.client("s3", endpoint_url=e["PMF_S3_ENDPOINT"], region_name=e["PMF_S3_REGION"],
                  aws_access_key_id=e["PMF_S3_ACCESS_KEY_ID"],
                  aws_secret_access_key=e["PMF_S3_SECRET_ACCESS_KEY"])
bucket = e["PMF_S3_BUCKET"]
req = json.loads(sys.argv[1])
op, key = req["op"], req["key"]

def listing(prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield o

if op == "put":
    r = s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
    out = {"etag": r["ETag"]}
elif op == "get":
    try:
        out = {"found": True, "hex": s3.get_object(Bucket=bucket, Key=key)["Body"].read().hex()}
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("NoSuchKey", "404"):
            raise
        out = {"found": False}
elif op == "list":
    out = {"objects": sorted(({"key": o["Key"], "size": o["Size"], "etag": o["ETag"]}
                              for o in listing(key)), key=lambda o: o["key"])}
elif op == "delete":
    s3.delete_object(Bucket=bucket, Key=key)
    out = {}
elif op == "upload_dir":
    root = req["dir"]
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            s3.upload_file(path, bucket, key + "/" + rel)
    out = {}
elif op == "download_dir":
    root = req["dir"]
    for o in listing(key + "/"):
        path = os.path.join(root, *o["Key"][len(key) + 1:].split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o["Key"], path)
    out = {}
else:
    raise SystemExit("unknown op " + op)
print(json.dumps(out))
"#;

/// A boto3 process kept running to list a test's prefix many times: [`S3Test::list`] starts
/// Python for each call (about a second on a busy machine), too slow after each of hundreds
/// of trials. The process ends with the value.
pub struct S3Lister {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    prefix: String,
}

impl S3Lister {
    /// A lister of the prefix of `s3`.
    pub fn new(s3: &S3Test) -> S3Lister {
        let python = boto3_python();
        let server = &s3.server;
        let mut child = server
            .boto3_command(&python, BOTO3_LISTER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (boto3): {e}", python.display()));
        let input = child.stdin.take().expect("stdin");
        let output = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        S3Lister { child, input, output, prefix: format!("{}/", s3.prefix) }
    }

    /// Every key under the prefix (all pages), relative to it, with its ETag (quoted), sorted
    /// by key.
    pub fn objects(&mut self) -> Vec<(String, String)> {
        use std::io::BufRead;
        writeln!(self.input, "{}", json!({"prefix": self.prefix})).expect("the boto3 lister runs");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("the boto3 lister answers");
        let objects: Vec<(String, String)> = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the boto3 lister printed no JSON ({e}): {line:?} (see its stderr)"));
        objects.into_iter().map(|(k, e)| (k.strip_prefix(&self.prefix).map(str::to_owned).unwrap_or(k), e)).collect()
    }

    /// Every key under the prefix, relative to it, sorted.
    pub fn keys(&mut self) -> Vec<String> {
        self.objects().into_iter().map(|(k, _)| k).collect()
    }
}

impl Drop for S3Lister {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child of [`S3Lister`]: one prefix per line in, its keys and ETags sorted, as one JSON
/// line out (bounded: requests time out, a failure ends the process).
const BOTO3_LISTER: &str = r#"
import json, os, sys
import boto3
from botocore.config import Config
e = os.environ
s3 = boto3.client("s3", endpoint_url=e["PMF_S3_ENDPOINT"], region_name=e["PMF_S3_REGION"],
                  aws_access_key_id=e["PMF_S3_ACCESS_KEY_ID"],
                  aws_secret_access_key=e["PMF_S3_SECRET_ACCESS_KEY"],
                  config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}))
for line in sys.stdin:
    prefix = json.loads(line)["prefix"]
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=e["PMF_S3_BUCKET"], Prefix=prefix):
        objects += [[o["Key"], o["ETag"]] for o in page.get("Contents", [])]
    print(json.dumps(sorted(objects)), flush=True)
"#;
