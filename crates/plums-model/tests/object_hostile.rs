//! Hostile object-store prefixes and saves: a remote model's prefix is prepared with boto3 to
//! be hostile (metadata that points outside, oversized or broken YAML, another model, foreign
//! objects, odd keys, planted locks and markers), then a model is saved over it (or loaded, then
//! saved). Each case checks the typed error (or the success), and that nothing outside the
//! model's prefix was listed, read, written or deleted:
//!
//! - sentinel objects lie next to the model (`m`, `m2/...`, `m-evil/...`, `model-x/...` and
//!   `modelx` which share the model's name as a string prefix, `secret.pt`, `x`, `etc/passwd`),
//!   and the whole listing under the test's prefix (keys, sizes, ETags) is compared before and
//!   after, the model's own prefix excepted;
//! - the library reaches the server through a recording proxy ([`Proxy`]): every request it
//!   made (method, decoded key, query, conditional headers) must name a key under
//!   `<model>/`, or be a listing of exactly the prefix `<model>/` (with its trailing slash);
//! - `StorageOptions::stats` counts the listings and downloads (an oversized YAML file is
//!   refused without a `GET`).
//!
//! Objects are planted and looked at with boto3 (independently of the code under test), in
//! batches run by long-lived Python workers ([`boto3_batch`]): one Python start per test, not
//! per request.
//!
//! Skipped without a server unless `PMF_REQUIRE_S3=1` (see `tests/common/s3.rs`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::s3::{boto3_python, s3_or_skip, S3Server, S3Test};
use plums_model::{
    Checkpoint, Error, LoadOptions, Location, Md5, Model, OffenceKind, Producer, Reference, SaveOptions,
    StorageOptions, StorageStats, Version, LOCK_FILE, SAVE_MARKER,
};
use serde_json::{json, Value as Json};

const ID: &str = "hostile-remote";
/// The size of the secrets next to the model: any download of one shows in the byte count.
const SECRET_SIZE: usize = 7_777;
/// The YAML size limit of a save's look at its destination (`YamlLimits::default`).
const YAML_LIMIT: usize = 64 * 1024 * 1024;
/// A short wait for a lock held by someone else.
const LOCK_WAIT: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// A recording proxy in front of the S3 server
// ---------------------------------------------------------------------------------------------

/// One request the code under test sent.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// The object key, percent-decoded once (empty for a request on the bucket).
    key: String,
    /// The query, decoded.
    query: Vec<(String, String)>,
    /// `if-match` and `if-none-match`, when sent.
    if_match: Option<String>,
    if_none_match: Option<String>,
    /// The keys of a bulk delete (`POST ?delete`), from its body.
    bulk_deleted: Vec<String>,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn is_list(&self) -> bool {
        self.key.is_empty() && self.method == "GET" && self.param("list-type").is_some()
    }
}

/// A TCP proxy to the S3 server that records the head of every HTTP request (bytes are relayed
/// unchanged, so signatures stay valid: the client signs the proxy's host, which the server
/// sees).
struct Proxy {
    endpoint: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Proxy {
    fn start(server: &S3Server) -> Proxy {
        let upstream = server.endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (log2, bucket) = (log.clone(), server.bucket.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (log, upstream, bucket) = (log2.clone(), upstream.clone(), bucket.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, &upstream, &bucket, &log);
                });
            }
        });
        Proxy { endpoint, log }
    }

    /// The requests since the last call.
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn relay(client: TcpStream, upstream: &str, bucket: &str, log: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (mut from_server, mut to_client) = (server.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut reader = BufReader::new(client);
    let mut out = server;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line == b"\r\n" {
            out.write_all(&line)?;
            continue;
        }
        let request_line = String::from_utf8_lossy(&line).trim_end().to_owned();
        let mut head = line.clone();
        let (mut length, mut chunked, mut if_match, mut if_none_match) = (0u64, false, None, None);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            if let Some((name, value)) = text.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                match name.as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                    "if-match" => if_match = Some(value),
                    "if-none-match" => if_none_match = Some(value),
                    _ => {}
                }
            }
        }
        let mut words = request_line.split(' ');
        let method = words.next().unwrap_or("").to_owned();
        let target = words.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = decode(path, false);
        let key = path
            .strip_prefix(&format!("/{bucket}"))
            .map(|k| k.strip_prefix('/').unwrap_or(k).to_owned())
            .unwrap_or_else(|| format!("<not in the bucket: {path}>"));
        let query: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k, true), decode(v, true))
            })
            .collect();
        let bulk = method == "POST" && query.iter().any(|(k, _)| k == "delete");
        let mut request = Request { method, key, query, if_match, if_none_match, bulk_deleted: Vec::new() };
        // Logged before it is forwarded: a client that got its answer finds its request logged.
        if bulk && !chunked {
            // The body names the keys: keep it.
            let mut body = vec![0; length as usize];
            reader.read_exact(&mut body)?;
            let text = String::from_utf8_lossy(&body);
            request.bulk_deleted = text
                .split("<Key>")
                .skip(1)
                .map(|k| k.split("</Key>").next().unwrap_or("").to_owned())
                .map(|k| {
                    k.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&amp;", "&")
                })
                .collect();
            log.lock().unwrap().push(request);
            out.write_all(&head)?;
            out.write_all(&body)?;
            out.flush()?;
            continue;
        }
        log.lock().unwrap().push(request);
        out.write_all(&head)?;
        if chunked {
            loop {
                line.clear();
                reader.read_until(b'\n', &mut line)?;
                out.write_all(&line)?;
                let size = String::from_utf8_lossy(&line);
                let size = u64::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                if size == 0 {
                    loop {
                        line.clear();
                        if reader.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" {
                            out.write_all(&line)?;
                            break;
                        }
                        out.write_all(&line)?;
                    }
                    break;
                }
                std::io::copy(&mut (&mut reader).take(size + 2), &mut out)?;
            }
        } else {
            std::io::copy(&mut (&mut reader).take(length), &mut out)?;
        }
        out.flush()?;
    }
    out.shutdown(Shutdown::Write)
}

/// Percent-decode `text` once (and `+` as a space in a query).
fn decode(text: &str, query: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if query => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the requests did, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    lists: usize,
    reads: usize,
    heads: usize,
    writes: Vec<String>,
    deletes: Vec<String>,
}

/// Assert that every request names a key under one of `prefixes` (keys relative to the
/// bucket, without a trailing `/`), or lists exactly `<prefix>/`; what they did.
#[track_caller]
fn assert_confined(requests: &[Request], prefixes: &[&str], what: &str) -> Seen {
    let mut seen = Seen::default();
    for r in requests {
        if !r.bulk_deleted.is_empty() || (r.method == "POST" && r.param("delete").is_some()) {
            assert!(!r.bulk_deleted.is_empty(), "{what}: a bulk delete naming no key: {r:?}");
            for key in &r.bulk_deleted {
                let rel = prefixes.iter().find_map(|p| key.strip_prefix(&format!("{p}/")));
                let rel = rel.unwrap_or_else(|| panic!("{what}: a delete outside {prefixes:?}: {key:?}"));
                assert!(rel.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{what}: deleted {key:?}");
                seen.deletes.push(rel.to_owned());
            }
            continue;
        }
        if r.is_list() {
            let prefix = r.param("prefix").unwrap_or("<none>");
            assert!(
                prefixes.iter().any(|p| prefix == format!("{p}/")),
                "{what}: a listing of {prefix:?}, not of {prefixes:?} (with their trailing \"/\"): {r:?}"
            );
            seen.lists += 1;
            continue;
        }
        let inside = prefixes.iter().find_map(|p| r.key.strip_prefix(&format!("{p}/")));
        let Some(rel) = inside else {
            panic!("{what}: a request outside {prefixes:?}: {r:?}");
        };
        assert!(
            !rel.is_empty() && rel.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "{what}: a key with an empty, \".\" or \"..\" segment: {r:?}"
        );
        match r.method.as_str() {
            "GET" => seen.reads += 1,
            "HEAD" => seen.heads += 1,
            "PUT" | "POST" => seen.writes.push(rel.to_owned()),
            "DELETE" => seen.deletes.push(rel.to_owned()),
            other => panic!("{what}: unexpected method {other}: {r:?}"),
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// boto3, batched (one Python process for many operations)
// ---------------------------------------------------------------------------------------------

const BATCH_DRIVER: &str = r#"
import json, os, sys
import boto3
e = os.environ
s3 = boto3.client("s3", endpoint_url=e["PMF_S3_ENDPOINT"], region_name=e["PMF_S3_REGION"],
                  aws_access_key_id=e["PMF_S3_ACCESS_KEY_ID"],
                  aws_secret_access_key=e["PMF_S3_SECRET_ACCESS_KEY"])
bucket = e["PMF_S3_BUCKET"]

def run(r):
    if r["op"] == "put":
        if "file" in r:
            with open(r["file"], "rb") as f:
                body = f.read()
        elif "fill" in r:
            body = bytes([r["fill"][0]]) * r["fill"][1]
        else:
            body = bytes.fromhex(r["hex"])
        return s3.put_object(Bucket=bucket, Key=r["key"], Body=body)["ETag"]
    if r["op"] == "list":
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=r["key"]):
            objects += [[o["Key"], o["Size"], o["ETag"]] for o in page.get("Contents", [])]
        return sorted(objects)
    if r["op"] == "get":
        return s3.get_object(Bucket=bucket, Key=r["key"])["Body"].read().hex()
    raise SystemExit("unknown op " + r["op"])

# One batch (a JSON array of operations) per line, one answer per line, until stdin closes.
for line in sys.stdin:
    try:
        out = {"ok": [run(r) for r in json.loads(line)]}
    except Exception as err:
        out = {"error": repr(err)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"#;

/// A batch of boto3 operations on the test's prefix.
#[derive(Default)]
struct Batch {
    ops: Vec<Json>,
    /// Files holding large bodies (kept until the batch ran).
    files: Vec<tempfile::NamedTempFile>,
}

impl Batch {
    fn put(&mut self, s3: &S3Test, rel: &str, body: &[u8]) -> &mut Self {
        if body.len() > 1 << 16 {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(body).unwrap();
            self.ops.push(json!({"op": "put", "key": s3.key(rel), "file": f.path()}));
            self.files.push(f);
        } else {
            let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
            self.ops.push(json!({"op": "put", "key": s3.key(rel), "hex": hex}));
        }
        self
    }

    /// `count` bytes `byte` (no temporary file, nothing large in the request).
    fn fill(&mut self, s3: &S3Test, rel: &str, byte: u8, count: usize) -> &mut Self {
        self.ops.push(json!({"op": "put", "key": s3.key(rel), "fill": [byte, count]}));
        self
    }

    /// The files `files` of a model under `prefix`, `metadata` instead of its own when given.
    fn model(
        &mut self,
        s3: &S3Test,
        prefix: &str,
        files: &BTreeMap<String, Vec<u8>>,
        metadata: Option<&[u8]>,
    ) -> &mut Self {
        for (rel, bytes) in files {
            let body = if rel == "metadata.yaml" { metadata.unwrap_or(bytes) } else { bytes };
            self.put(s3, &format!("{prefix}/{rel}"), body);
        }
        self
    }

    /// The [`sentinels`] next to a model at `dir`.
    fn sentinels(&mut self, s3: &S3Test, dir: &str, metadata: &[u8]) -> &mut Self {
        for (rel, bytes) in sentinels(dir, metadata) {
            if bytes.len() == SECRET_SIZE {
                self.fill(s3, &rel, 0x5A, SECRET_SIZE);
            } else {
                self.put(s3, &rel, &bytes);
            }
        }
        self
    }

    /// Run the batch; the answers (an ETag per put).
    fn run(&mut self, server: &S3Server) -> Vec<Json> {
        let ops = std::mem::take(&mut self.ops);
        let out = boto3_batch(server, &Json::Array(ops));
        self.files.clear();
        out.as_array().unwrap().clone()
    }
}

/// A Python process running [`BATCH_DRIVER`] (boto3 imported once).
struct Worker {
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    _child: std::process::Child,
}

/// Idle workers, shared by the tests of this process (each test takes one, or starts one).
static WORKERS: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

fn boto3_batch(server: &S3Server, request: &Json) -> Json {
    let taken = WORKERS.lock().unwrap().pop();
    let mut worker = taken.unwrap_or_else(|| {
        let mut child = server
            .boto3_command(&boto3_python(), BATCH_DRIVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with boto3");
        let (stdin, stdout) = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
        Worker { stdin, stdout, _child: child }
    });
    writeln!(worker.stdin, "{request}").unwrap();
    worker.stdin.flush().unwrap();
    let mut line = String::new();
    worker.stdout.read_line(&mut line).unwrap();
    let answer: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("boto3 worker: {e}: {line:?}"));
    WORKERS.lock().unwrap().push(worker);
    match answer.get("ok") {
        Some(ok) => ok.clone(),
        None => panic!("boto3 batch failed: {answer}"),
    }
}

/// The contents of the objects `rels` of the test's prefix (one boto3 run).
fn get_many(s3: &S3Test, rels: &[String]) -> Vec<Vec<u8>> {
    let ops: Vec<Json> = rels.iter().map(|r| json!({"op": "get", "key": s3.key(r)})).collect();
    let out = boto3_batch(&s3.server, &Json::Array(ops));
    out.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let h = h.as_str().unwrap();
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
        })
        .collect()
}

/// Every object under the test's prefix: key (relative to it) -> (size, ETag).
fn listing(s3: &S3Test) -> BTreeMap<String, (u64, String)> {
    let out = boto3_batch(&s3.server, &json!([{"op": "list", "key": format!("{}/", s3.prefix)}]));
    let strip = format!("{}/", s3.prefix);
    out[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let key = o[0].as_str().unwrap();
            (
                key.strip_prefix(&strip).unwrap_or(key).to_owned(),
                (o[1].as_u64().unwrap(), o[2].as_str().unwrap().into()),
            )
        })
        .collect()
}

/// The objects of `listing` outside the model prefixes `models` (relative to the test's prefix).
fn outside(listing: &BTreeMap<String, (u64, String)>, models: &[&str]) -> BTreeMap<String, (u64, String)> {
    listing
        .iter()
        .filter(|(k, _)| !models.iter().any(|m| k.starts_with(&format!("{m}/"))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The objects of `listing` under the model prefix `model`, relative to it.
fn inside(listing: &BTreeMap<String, (u64, String)>, model: &str) -> BTreeMap<String, (u64, String)> {
    let p = format!("{model}/");
    listing.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|r| (r.to_owned(), v.clone()))).collect()
}

// ---------------------------------------------------------------------------------------------
// The test bed
// ---------------------------------------------------------------------------------------------

fn secret() -> Vec<u8> {
    vec![0x5A; SECRET_SIZE]
}

/// The sentinels planted next to a model at `dir` (`""`: the test's prefix): relative key ->
/// content. Secrets (distinctive size) where hostile paths point; PMF-looking objects in the
/// siblings whose names share the model's as a string prefix.
fn sentinels(dir: &str, metadata: &[u8]) -> Vec<(String, Vec<u8>)> {
    let at = |rel: &str| if dir.is_empty() { rel.to_owned() } else { format!("{dir}/{rel}") };
    let s = secret();
    let mut out: Vec<(String, Vec<u8>)> = vec![
        (at("secret.pt"), s.clone()),
        (at("x"), s.clone()),
        (at("etc/passwd"), s.clone()),
        (at("m"), b"an object named like a prefix".to_vec()),
        (at("m2/data/checkpoints/1.pt"), s.clone()),
        (at("m2/config.py"), s.clone()),
        (at("m2/metadata.yaml"), metadata.to_vec()),
        (at("m-evil/data/checkpoints/1.pt"), s.clone()),
        (at("m-evil/metadata.yaml"), metadata.to_vec()),
        (at("model-x/metadata.yaml"), metadata.to_vec()),
        (at("model-x/config.py"), s.clone()),
        (at("model-x/data/checkpoints/1.pt"), s.clone()),
        (at("model-x/data/build_parameters.yaml"), b"{}\n".to_vec()),
        (at(&format!("model-x/{LOCK_FILE}")), b"pid 1 on otherhost since unix time 1\nexpires 9999999999\n".to_vec()),
        (at(&format!("model-x/{SAVE_MARKER}")), b"planted".to_vec()),
        (at("modelx"), s.clone()),
        (at("model.pt"), s),
    ];
    out.sort();
    out
}

struct Bed {
    s3: S3Test,
    proxy: Proxy,
    dir: tempfile::TempDir,
    /// Options through the proxy.
    storage: StorageOptions,
}

impl Bed {
    fn new(test: &str) -> Option<Bed> {
        let s3 = s3_or_skip(test)?;
        let proxy = Proxy::start(&s3.server);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.py"), b"lr = 0.1\n").unwrap();
        let mut storage = StorageOptions::new();
        for (k, v) in s3.server.storage_options() {
            storage.set(&k, if k == "endpoint" { &proxy.endpoint } else { &v }).unwrap();
        }
        storage.set("retry_max", "1").unwrap();
        storage.cache_dir(dir.path().join("cache"));
        Some(Bed { s3, proxy, dir, storage })
    }

    /// The key of the model prefix `rel`, relative to the bucket.
    fn key(&self, rel: &str) -> String {
        self.s3.key(rel)
    }

    fn at(&self, rel: &str) -> Location {
        Location::parse(&self.s3.url(rel)).unwrap()
    }

    fn model(&self, id: &str) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.dir.path().join("config.py"));
        let mut m = Model::new(id, producer.unwrap());
        m.name = Some("detector".into());
        m.register_training_start(0).unwrap();
        m
    }

    /// A checkpoint file named `name` with `size` bytes derived from `seed`.
    fn file(&self, name: &str, size: usize, seed: u8) -> PathBuf {
        let folder = self.dir.path().join(format!("files-{seed}"));
        fs::create_dir_all(&folder).unwrap();
        let path = folder.join(name);
        let bytes: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        fs::write(&path, bytes).unwrap();
        path
    }

    /// A model with checkpoints 1 and 2 (files `1.pt`, `2.pt`).
    fn model_with_two(&self, id: &str) -> Model {
        let mut m = self.model(id);
        for e in 1..=2 {
            m.register_epoch(Some(e)).unwrap();
            let p = self.file(&format!("{e}.pt"), 1000 + e as usize, e as u8);
            m.add_checkpoint(Checkpoint::new(e, Some(&p), Some(e), None).unwrap()).unwrap();
        }
        m
    }

    /// The files of `model` saved locally (relative path -> bytes).
    fn local_files(&self, model: &mut Model) -> BTreeMap<String, Vec<u8>> {
        let root = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
        model.save(&root, &SaveOptions::new()).unwrap();
        // Not the (empty) lock file a local save leaves: see `an_uploaded_local_lock_file_...`.
        common::snapshot(&root, &|_| false)
            .into_iter()
            .filter_map(|(rel, c)| c.map(|c| (rel.to_string_lossy().into_owned(), c)))
            .filter(|(rel, _)| rel != LOCK_FILE)
            .collect()
    }

    fn save(&self) -> SaveOptions {
        SaveOptions::new().storage(self.storage.clone()).lock_timeout(Duration::from_secs(5))
    }

    fn load(&self) -> LoadOptions {
        LoadOptions::new().storage(self.storage.clone())
    }
}

fn delta(after: StorageStats, before: StorageStats) -> StorageStats {
    let mut d = StorageStats::default();
    d.lists = after.lists - before.lists;
    d.gets = after.gets - before.gets;
    d.bytes = after.bytes - before.bytes;
    d.puts = after.puts - before.puts;
    d.bytes_up = after.bytes_up - before.bytes_up;
    d.deletes = after.deletes - before.deletes;
    d
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Whether `err` is a validation failure of a model read (load or validation).
fn is_validation(err: &Error) -> bool {
    matches!(err, Error::TreeValidation(_) | Error::MetadataValidation(_))
}

// ---------------------------------------------------------------------------------------------
// The prefix and its string-prefix siblings
// ---------------------------------------------------------------------------------------------

/// `<test>/model` is the prefix `<test>/model/`: the objects of `model-x/` (a model of the
/// same id, its lock, its save marker), `modelx` and `model.pt` are never taken as the model's.
#[test]
fn siblings_sharing_the_name_are_not_the_model() {
    let Some(bed) = Bed::new("oh_siblings") else { return };
    let s3 = &bed.s3;
    let mut m = bed.model_with_two(ID);
    let files = bed.local_files(&mut bed.model_with_two(ID));
    Batch::default().sentinels(s3, "", &files["metadata.yaml"]).model(s3, "model-x", &files, None).run(&s3.server);
    let before = listing(s3);
    let model = bed.key("model");

    // Nothing at the prefix yet: not found, although model-x/ holds a model.
    let err = Model::load_at(&bed.at("model"), &bed.load()).unwrap_err();
    assert_eq!(err.storage_kind(), Some(plums_model::StorageErrorKind::NotFound), "{err:?}");
    let seen = assert_confined(&bed.proxy.take(), &[&model], "load of an empty prefix");
    assert_eq!((seen.lists, seen.reads), (1, 0), "{seen:?}");

    // A save there: a new model (not foreign, not model-x's lock, not its marker).
    let stats = bed.storage.stats();
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let d = delta(bed.storage.stats(), stats);
    assert_eq!((d.lists, d.gets), (1, 0), "{d:?}");
    let seen = assert_confined(&bed.proxy.take(), &[&model], "save next to model-x");
    assert!(seen.deletes.iter().all(|k| k == LOCK_FILE), "{seen:?}");
    let after = listing(s3);
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]), "nothing outside changed");
    let keys: Vec<String> = inside(&after, "model").into_keys().collect();
    assert_eq!(
        keys,
        ["config.py", "data/build_parameters.yaml", "data/checkpoints/1.pt", "data/checkpoints/2.pt", "metadata.yaml"],
        "no lock or marker taken from model-x/"
    );
    let loaded = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    assert_eq!(loaded.checkpoint_collection.len(), 2);
    assert_confined(&bed.proxy.take(), &[&model], "strict load");
}

// ---------------------------------------------------------------------------------------------
// Metadata paths outside the prefix
// ---------------------------------------------------------------------------------------------

/// The destination's `metadata.yaml` (the model's id) registers checkpoint 1, or the
/// configuration, at a path outside the prefix, whose object has the recorded MD5. A load
/// refuses it; a save of a new model object refuses it (`InvalidSameModel`); with force it is
/// saved over, and the removal of checkpoint 1 (registered outside) deletes nothing outside.
/// Nothing outside the prefix is ever listed, read, written or deleted.
#[test]
fn hostile_paths_in_the_destination_never_reach_outside() {
    let Some(bed) = Bed::new("oh_hostile_paths") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let metadata = String::from_utf8(files["metadata.yaml"].clone()).unwrap();
    let secret_md5 = Md5::of_bytes(&secret()).to_string();
    let ck1 = "path: data/checkpoints/1.pt";
    let cfg = "path: config.py";
    assert!(metadata.contains(ck1) && metadata.contains(cfg), "{metadata}");
    let ck1_md5 = Md5::of_bytes(&files["data/checkpoints/1.pt"]).to_string();
    let cfg_md5 = Md5::of_bytes(&files["config.py"]).to_string();
    let hostile = |case: &str| {
        vec![
            "../m2/data/checkpoints/1.pt".to_owned(),
            "/etc/passwd".to_owned(),
            "data/../../x".to_owned(),
            "../secret.pt".to_owned(),
            "./../secret.pt".to_owned(),
            "data/checkpoints/../../../m-evil/data/checkpoints/1.pt".to_owned(),
            "../model-x/data/checkpoints/1.pt".to_owned(),
            format!("/{}", s3.key(&format!("{case}/secret.pt"))),
            format!("/{}/{}", s3.server.bucket, s3.key(&format!("{case}/secret.pt"))),
            "data/checkpoints/..%2F..%2F..%2Fm2%2Fdata%2Fcheckpoints%2F1.pt".to_owned(),
            "data/checkpoints/..\\..\\..\\secret.pt".to_owned(),
            "data//checkpoints/../../../x".to_owned(),
        ]
    };
    let mut cases = Vec::new();
    let mut batch = Batch::default();
    for field in ["checkpoint", "configuration"] {
        for path in hostile("case-X") {
            let case = format!("case-{}", cases.len());
            let path = path.replace("case-X", &case);
            let text = match field {
                "checkpoint" => {
                    metadata.replacen(ck1, &format!("path: '{path}'"), 1).replacen(&ck1_md5, &secret_md5, 1)
                }
                _ => metadata.replacen(cfg, &format!("path: '{path}'"), 1).replacen(&cfg_md5, &secret_md5, 1),
            };
            assert_ne!(text, metadata);
            batch.model(s3, &format!("{case}/model"), &files, Some(text.as_bytes())).sentinels(
                s3,
                &case,
                text.as_bytes(),
            );
            cases.push((case, field, path));
        }
    }
    // One listing, then every case's model planted with hostile metadata (a case per listing
    // would be slow: one Python process per boto3 run).
    batch.run(&s3.server);
    let before = listing(s3);
    let models: Vec<String> = cases.iter().map(|(c, _, _)| format!("{c}/model")).collect();
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    for (case, field, path) in &cases {
        let what = format!("{field} path {path:?}");
        let rel = format!("{case}/model");
        let key = bed.key(&rel);
        let at = bed.at(&rel);
        bed.proxy.take();
        for strict in [true, false] {
            let err = Model::load_at(&at, &bed.load().strict(strict)).unwrap_err();
            assert!(is_validation(&err), "{what}: load(strict={strict}): {err:?}");
        }
        let seen = assert_confined(&bed.proxy.take(), &[&key], &format!("{what}: loads"));
        assert!(seen.writes.is_empty() && seen.deletes.is_empty(), "{what}: a load wrote: {seen:?}");

        // A new model object with the same id, without checkpoint 1: refused.
        let mut fresh = bed.model(ID);
        fresh.register_epoch(Some(1)).unwrap();
        fresh.register_epoch(Some(2)).unwrap();
        let p = bed.file("2.pt", 1002, 2);
        fresh.add_checkpoint(Checkpoint::new(2, Some(&p), Some(2), None).unwrap()).unwrap();
        let err = fresh.save_at(&at, &bed.save()).unwrap_err();
        assert!(matches!(err, Error::InvalidSameModel { .. }), "{what}: save: {err:?}");
        let seen = assert_confined(&bed.proxy.take(), &[&key], &format!("{what}: refused save"));
        // The lock (and, first, the once-per-store check of conditional writes), nothing else.
        assert!(!seen.writes.is_empty() && seen.writes.iter().all(|k| k == LOCK_FILE), "{what}: {seen:?}");
        assert_eq!(seen.deletes, [LOCK_FILE], "{what}: the refused save deleted more than its lock");
        let shown = err.to_string();
        assert!(shown.contains(path.as_str()) || shown.contains(&format!("{path:?}")), "{what}: {shown}");

        // With force: saved over; checkpoint 1's registered path is outside: nothing deleted there.
        fresh.save_at(&at, &bed.save().force(true)).unwrap_or_else(|e| panic!("{what}: forced save: {e}"));
        let seen = assert_confined(&bed.proxy.take(), &[&key], &format!("{what}: forced save"));
        for k in &seen.deletes {
            assert!([LOCK_FILE, SAVE_MARKER, "data/checkpoints/1.pt"].contains(&k.as_str()), "{what}: deleted {k}");
        }
        let loaded = Model::load_at(&at, &bed.load()).unwrap_or_else(|e| panic!("{what}: load after force: {e}"));
        assert_eq!(loaded.checkpoint_collection.len(), 1, "{what}");
        assert_confined(&bed.proxy.take(), &[&key], &format!("{what}: load after the forced save"));
    }
    let after = listing(s3);
    assert_eq!(outside(&after, &models), outside(&before, &models), "something outside the models changed");
    assert_eq!(outside(&before, &models).len(), cases.len() * sentinels("", b"").len());
    for entry in cache_keys(&bed) {
        assert!(models.iter().any(|m| entry.starts_with(&format!("{}/", bed.key(m)))), "cached from outside: {entry}");
    }
}

/// The objects under the prefix `rel`, relative to it (one boto3 listing).
fn objects(bed: &Bed, rel: &str) -> BTreeMap<String, (u64, String)> {
    listing(&bed.s3.child(rel))
}

/// The keys of the objects in the bed's cache.
fn cache_keys(bed: &Bed) -> Vec<String> {
    let objects = bed.dir.path().join("cache/objects");
    let Ok(dirs) = fs::read_dir(&objects) else { return Vec::new() };
    dirs.map(|d| {
        let record = fs::read_to_string(d.unwrap().path().join("entry")).unwrap();
        record.lines().find_map(|l| l.strip_prefix("key ")).unwrap().to_owned()
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Oversized and broken YAML, another model
// ---------------------------------------------------------------------------------------------

/// A `metadata.yaml` over the YAML size limit is refused from the listing, never downloaded
/// (`InvalidDestination`, with force too); a `data/build_parameters.yaml` over it makes the
/// strict look at a same-id model refuse it (`InvalidSameModel`) without downloading it; with
/// force it is replaced, unread.
#[test]
fn oversized_yaml_at_the_destination_is_refused_unread() {
    let Some(bed) = Bed::new("oh_oversized") else { return };
    let s3 = &bed.s3;
    let key = bed.key("model");
    let mut m = bed.model_with_two(ID);
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let saved = get_many(s3, &["model/metadata.yaml".to_owned()]).remove(0);
    let mut big = saved.clone();
    big.extend(std::iter::repeat_n(b'#', YAML_LIMIT + 1 - big.len()));
    Batch::default().sentinels(s3, "", &saved).put(s3, "model/metadata.yaml", &big).run(&s3.server);
    let before = listing(s3);
    bed.proxy.take();

    for (who, force) in
        [("a new model object", false), ("a new model object, forced", true), ("the saving model", false)]
    {
        let stats = bed.storage.stats();
        let err = if who == "the saving model" {
            m.save_at(&bed.at("model"), &bed.save()).unwrap_err()
        } else {
            bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save().force(force)).unwrap_err()
        };
        assert!(
            matches!(&err, Error::InvalidDestination { reason, .. } if reason.contains("over the limit")),
            "{who}: {err:?}"
        );
        let d = delta(bed.storage.stats(), stats);
        assert_eq!((d.lists, d.gets, d.bytes), (1, 0, 0), "{who}: metadata.yaml was downloaded: {d:?}");
        let seen = assert_confined(&bed.proxy.take(), &[&key], who);
        assert!(seen.writes.iter().chain(&seen.deletes).all(|k| k == LOCK_FILE), "{who}: {seen:?}");
    }
    // A load refuses it too, downloading only the build parameters.
    let stats = bed.storage.stats();
    let err = Model::load_at(&bed.at("model"), &bed.load()).unwrap_err();
    assert!(is_validation(&err) && err.to_string().contains("metadata.yaml"), "{err:?}");
    let d = delta(bed.storage.stats(), stats);
    assert!(d.bytes < 4096, "{d:?}");
    assert_confined(&bed.proxy.take(), &[&key], "load");
    assert_eq!(listing(s3), before, "the refused saves changed something");

    // The build parameters over the limit (metadata.yaml back as saved: the same ETag).
    let mut big = b"layers: 3\n".to_vec();
    big.extend(std::iter::repeat_n(b'#', YAML_LIMIT + 1 - big.len()));
    Batch::default()
        .put(s3, "model/metadata.yaml", &saved)
        .put(s3, "model/data/build_parameters.yaml", &big)
        .run(&s3.server);
    bed.proxy.take();
    let stats = bed.storage.stats();
    let err = bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save()).unwrap_err();
    let Error::InvalidSameModel { report, .. } = &err else { panic!("{err:?}") };
    assert!(
        report.offences.iter().any(|o| o.location == "data/build_parameters.yaml" && o.message.contains("over the")),
        "{err}"
    );
    let d = delta(bed.storage.stats(), stats);
    assert!(d.bytes < 1 << 20, "the oversized build parameters were downloaded: {d:?}");
    let requests = bed.proxy.take();
    assert!(
        !requests.iter().any(|r| r.method == "GET" && r.key.ends_with("/data/build_parameters.yaml")),
        "{requests:?}"
    );
    assert_confined(&requests, &[&key], "refused save");
    // With force: the object is replaced, still unread (the save marks the model meanwhile).
    let stats = bed.storage.stats();
    bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save().force(true)).unwrap();
    let d = delta(bed.storage.stats(), stats);
    assert!(d.bytes < 1 << 20, "{d:?}");
    let requests = bed.proxy.take();
    assert!(
        !requests.iter().any(|r| r.method == "GET" && r.key.ends_with("/data/build_parameters.yaml")),
        "{requests:?}"
    );
    let seen = assert_confined(&requests, &[&key], "forced save");
    assert!(seen.writes.iter().any(|k| k == "data/build_parameters.yaml"), "{seen:?}");
    assert!(seen.writes.iter().any(|k| k == SAVE_MARKER), "replacing a registered object: marked: {seen:?}");
    let after = listing(s3);
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]));
    assert!(after["model/data/build_parameters.yaml"].0 < 100, "{:?}", after["model/data/build_parameters.yaml"]);
    assert!(!after.contains_key(&format!("model/{SAVE_MARKER}")) && !after.contains_key(&format!("model/{LOCK_FILE}")));
    Model::load_at(&bed.at("model"), &bed.load()).unwrap();
}

/// Objects of a model replaced behind the back of the model object that saved it, without a
/// commit of `metadata.yaml` (a tool or a person rewriting a checkpoint, the build parameters,
/// the configuration; ETags and sizes change): the next save of that model object must not
/// commit a model that does not validate. It sends them again (as the save that listed the
/// prefix did), or refuses. (Found a save that skipped the listing when the plan only added
/// checkpoints: every save lists the prefix since.)
#[test]
fn objects_replaced_behind_the_models_back_are_not_trusted() {
    let Some(bed) = Bed::new("oh_replaced_behind") else { return };
    let s3 = &bed.s3;
    let mut m = bed.model_with_two(ID);
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    Batch::default()
        .put(s3, "model/data/checkpoints/1.pt", b"rewritten by someone else")
        .put(s3, "model/data/build_parameters.yaml", b"rewritten: true\n")
        .put(s3, "model/config.py", b"lr = 'rewritten'\n")
        .run(&s3.server);
    m.register_epoch(Some(3)).unwrap();
    let p = bed.file("3.pt", 300, 3);
    m.add_checkpoint(Checkpoint::new(3, Some(&p), Some(3), None).unwrap()).unwrap();
    bed.proxy.take();
    let saved = m.save_at(&bed.at("model"), &bed.save());
    let seen = assert_confined(&bed.proxy.take(), &[&bed.key("model")], "save");
    if saved.is_ok() {
        let check = Model::load_at(&bed.at("model"), &bed.load());
        assert!(
            check.is_ok(),
            "the save succeeded (requests: {seen:?}) and committed a model that does not validate: {}",
            check.unwrap_err()
        );
    }
}

/// A `metadata.yaml` that is not PMF metadata (not UTF-8, not YAML, a YAML bomb, too deep,
/// another shape, empty) may be anything's: a save over it is refused, with force too
/// (`InvalidDestination`), and nothing but the lock is written.
#[test]
fn destination_metadata_that_is_not_pmf_metadata_is_refused_even_with_force() {
    let Some(bed) = Bed::new("oh_not_yaml") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let valid = String::from_utf8(files["metadata.yaml"].clone()).unwrap();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", b"\xff\xfe\x00model:\n  id: \xc3\x28\n".to_vec()),
        ("not YAML", b"model: [unclosed\n  id: hostile-remote\n".to_vec()),
        ("a list", b"- model\n- id\n".to_vec()),
        ("empty", Vec::new()),
        ("a YAML bomb", bomb.into_bytes()),
        ("too deep", format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("a wrong shape with the model's id", format!("model:\n  id: {ID}\n  training: 5\n").into_bytes()),
        ("the model's id, a field of the wrong type", valid.replacen("name: detector", "name: [1, 2]", 1).into_bytes()),
    ];
    let mut batch = Batch::default();
    batch.sentinels(s3, "", valid.as_bytes());
    for (n, (_, text)) in cases.iter().enumerate() {
        batch.model(s3, &format!("case-{n}"), &files, Some(text));
    }
    batch.run(&s3.server);
    let before = listing(s3);
    bed.proxy.take();
    for (n, (what, _)) in cases.iter().enumerate() {
        let rel = format!("case-{n}");
        for force in [false, true] {
            let err = bed.model_with_two(ID).save_at(&bed.at(&rel), &bed.save().force(force)).unwrap_err();
            assert!(matches!(err, Error::InvalidDestination { .. }), "{what} (force={force}): {err:?}");
            assert_eq!(err.code(), "invalid_destination");
            let seen = assert_confined(&bed.proxy.take(), &[&bed.key(&rel)], what);
            assert!(seen.writes.iter().chain(&seen.deletes).all(|k| k == LOCK_FILE), "{what}: {seen:?}");
            assert!(seen.reads <= 1, "{what}: only metadata.yaml is read: {seen:?}");
        }
        let err = Model::load_at(&bed.at(&rel), &bed.load()).unwrap_err();
        assert!(is_validation(&err), "{what}: load: {err:?}");
        assert_confined(&bed.proxy.take(), &[&bed.key(&rel)], what);
    }
    assert_eq!(listing(s3), before, "a refused save changed something");
}

/// A destination holding another model (its metadata pointing outside, too) is never saved
/// over (`OtherModel`, with force too): only its `metadata.yaml` is read.
#[test]
fn another_model_is_never_saved_over() {
    let Some(bed) = Bed::new("oh_other_model") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two("someone-else"));
    let metadata = String::from_utf8(files["metadata.yaml"].clone()).unwrap();
    let hostile = metadata.replacen("path: data/checkpoints/1.pt", "path: ../m2/data/checkpoints/1.pt", 1);
    assert_ne!(hostile, metadata);
    Batch::default()
        .sentinels(s3, "", metadata.as_bytes())
        .model(s3, "model", &files, None)
        .model(s3, "hostile", &files, Some(hostile.as_bytes()))
        .run(&s3.server);
    let before = listing(s3);
    bed.proxy.take();
    for rel in ["model", "hostile"] {
        for force in [false, true] {
            let stats = bed.storage.stats();
            let err = bed.model_with_two(ID).save_at(&bed.at(rel), &bed.save().force(force)).unwrap_err();
            assert!(
                matches!(&err, Error::OtherModel { found_id, saving_id, .. }
                    if found_id == "someone-else" && saving_id == ID),
                "{rel} (force={force}): {err:?}"
            );
            assert_eq!(delta(bed.storage.stats(), stats).gets, 1, "only metadata.yaml");
            let seen = assert_confined(&bed.proxy.take(), &[&bed.key(rel)], rel);
            assert!(seen.writes.iter().chain(&seen.deletes).all(|k| k == LOCK_FILE), "{rel}: {seen:?}");
        }
    }
    // Loaded, then saved under its own id elsewhere: fine; under another id: refused.
    let mut other = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    other.id = ID.into();
    let err = other.save_at(&bed.at("model"), &bed.save()).unwrap_err();
    assert!(matches!(err, Error::OtherModel { .. }), "{err:?}");
    assert_confined(&bed.proxy.take(), &[&bed.key("model")], "a loaded model renamed");
    assert_eq!(listing(s3), before);
}

// ---------------------------------------------------------------------------------------------
// Odd keys
// ---------------------------------------------------------------------------------------------

/// Checkpoint files whose names hold spaces, unicode, `%2F`, `%2e%2e`, `+`, `?`, `#` and other
/// characters a URL encodes: saved under exactly those keys, loaded back strictly, fetched,
/// saved again incrementally, copied to another prefix, removed; an encoded `..%2F` is never
/// decoded into a path out of the prefix.
#[test]
fn odd_characters_in_checkpoint_names_round_trip() {
    let Some(bed) = Bed::new("oh_odd_keys") else { return };
    let s3 = &bed.s3;
    let names = [
        "a b%2F.pt",
        "ünï 模型 🙂.pt",
        "x+y=z&q?#.pt",
        "%2e%2e",
        "..%2F..%2F..%2Fm2%2Fx.pt",
        "~!$'()*,;@[]{}^`|\"<>.pt",
        "trailing space .pt",
        "...",
    ];
    Batch::default().sentinels(s3, "", b"{}\n").fill(s3, "m2/x.pt", 0x5A, SECRET_SIZE).run(&s3.server);
    let before = listing(s3);
    let key = bed.key("model");
    let mut m = bed.model(ID);
    let mut contents = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let e = i as i64 + 1;
        m.register_epoch(Some(e)).unwrap();
        let p = bed.file(name, 500 + i, i as u8);
        contents.insert(name.to_string(), fs::read(&p).unwrap());
        m.add_checkpoint(Checkpoint::new(*name, Some(&p), Some(e), None).unwrap()).unwrap();
    }
    bed.proxy.take();
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "save");
    for name in names {
        assert!(seen.writes.contains(&format!("data/checkpoints/{name}")), "{name}: {seen:?}");
    }
    let stored = objects(&bed, "model");
    let rels: Vec<String> = contents.keys().map(|n| format!("model/data/checkpoints/{n}")).collect();
    for ((name, bytes), got) in contents.iter().zip(get_many(s3, &rels)) {
        let rel = format!("data/checkpoints/{name}");
        assert!(stored.contains_key(&rel), "{rel} not stored under its name: {:?}", stored.keys());
        assert_eq!(&got, bytes, "{rel}");
    }
    assert_eq!(stored.len(), names.len() + 3, "{:?}", stored.keys());

    // Loaded back strictly, and fetched one by one.
    let loaded = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    for (r, c) in loaded.checkpoint_collection.iter() {
        let Reference::Str(name) = r else { panic!("{r:?}") };
        assert_eq!(&fs::read(c.path.as_deref().unwrap()).unwrap(), &contents[name.as_str()], "{name}");
    }
    let mut lazy = Model::load_at(&bed.at("model"), &bed.load().strict(false)).unwrap();
    for name in names {
        let path = lazy.fetch_checkpoint(&Reference::from(name), &bed.storage).unwrap();
        assert_eq!(fs::read(path).unwrap(), contents[name], "{name}");
    }
    assert_confined(&bed.proxy.take(), &[&key], "loads");

    // Saved again: nothing sent again.
    let stats = bed.storage.stats();
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let d = delta(bed.storage.stats(), stats);
    assert!(d.bytes_up < 4096, "{d:?}");
    assert_confined(&bed.proxy.take(), &[&key], "second save");

    // A model loaded without its files, copied to another prefix: fetched from the model's keys.
    let mut lazy = Model::load_at(&bed.at("model"), &bed.load().strict(false)).unwrap();
    lazy.save_at(&bed.at("copy"), &bed.save()).unwrap();
    assert_confined(&bed.proxy.take(), &[&key, &bed.key("copy")], "copy");
    let copied = objects(&bed, "copy");
    assert_eq!(copied.keys().collect::<Vec<_>>(), stored.keys().collect::<Vec<_>>());
    Model::load_at(&bed.at("copy"), &bed.load()).unwrap();

    // Removed: exactly its object goes.
    let mut loaded = Model::load_at(&bed.at("model"), &bed.load().strict(false)).unwrap();
    for name in ["..%2F..%2F..%2Fm2%2Fx.pt", "a b%2F.pt"] {
        loaded.checkpoint_collection.remove(&Reference::from(name)).unwrap();
    }
    bed.proxy.take();
    loaded.save_at(&bed.at("model"), &bed.save()).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "removal");
    let mut deleted = seen.deletes.clone();
    deleted.sort();
    assert_eq!(deleted, [LOCK_FILE, "data/checkpoints/..%2F..%2F..%2Fm2%2Fx.pt", "data/checkpoints/a b%2F.pt"]);
    let now = objects(&bed, "model");
    assert_eq!(now.len(), stored.len() - 2, "{:?}", now.keys());
    let after = listing(s3);
    assert_eq!(outside(&after, &["model", "copy"]), outside(&before, &["model", "copy"]));
    Model::load_at(&bed.at("model"), &bed.load()).unwrap();
}

/// A name `object_store` cannot use as a key (a control character): the save is refused with
/// a typed error, and leaves nothing behind (no lock, no partial object).
#[test]
fn a_checkpoint_name_that_cannot_be_a_key_is_refused_cleanly() {
    let Some(bed) = Bed::new("oh_bad_key") else { return };
    let key = bed.key("model");
    let mut m = bed.model_with_two(ID);
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let saved = objects(&bed, "model");
    m.register_epoch(Some(3)).unwrap();
    let p = bed.file("tab\tand\u{1}control.pt", 100, 3);
    m.add_checkpoint(Checkpoint::new(3, Some(&p), Some(3), None).unwrap()).unwrap();
    bed.proxy.take();
    let err = m.save_at(&bed.at("model"), &bed.save()).unwrap_err();
    eprintln!("a control character in a checkpoint name: {err}");
    assert!(
        matches!(err, Error::Storage { .. } | Error::WouldNotValidate { .. } | Error::InvalidLocation { .. }),
        "{err:?}"
    );
    assert_confined(&bed.proxy.take(), &[&key], "refused save");
    assert_eq!(objects(&bed, "model"), saved, "the refused save left something");
    Model::load_at(&bed.at("model"), &bed.load()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Foreign objects
// ---------------------------------------------------------------------------------------------

/// A prefix of objects that are not a model: refused (`ForeignFolder`); with force the model is
/// saved there and the foreign objects stay, also through later saves that remove objects.
#[test]
fn a_foreign_prefix_is_refused_and_force_keeps_its_objects() {
    let Some(bed) = Bed::new("oh_foreign") else { return };
    let s3 = &bed.s3;
    let key = bed.key("model");
    Batch::default()
        .sentinels(s3, "", b"{}\n")
        .put(s3, "model/notes.txt", b"mine")
        .put(s3, "model/docs/readme.md", b"# mine")
        .put(s3, "model/a b%2F.txt", b"mine too")
        .run(&s3.server);
    let before = listing(s3);
    let foreign = inside(&before, "model");
    let mut m = bed.model_with_two(ID);
    bed.proxy.take();
    let err = m.save_at(&bed.at("model"), &bed.save()).unwrap_err();
    assert!(matches!(err, Error::ForeignFolder { .. }), "{err:?}");
    let seen = assert_confined(&bed.proxy.take(), &[&key], "refused");
    assert_eq!(seen.reads, 0, "{seen:?}");
    assert!(seen.writes.iter().chain(&seen.deletes).all(|k| k == LOCK_FILE), "{seen:?}");
    assert_eq!(listing(s3), before);

    m.save_at(&bed.at("model"), &bed.save().force(true)).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "forced");
    assert!(seen.deletes.iter().all(|k| k == LOCK_FILE), "{seen:?}");
    m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "removal");
    let mut deleted = seen.deletes.clone();
    deleted.sort();
    assert_eq!(deleted, [LOCK_FILE, "data/checkpoints/1.pt"]);
    let after = listing(s3);
    let now = inside(&after, "model");
    for (rel, v) in &foreign {
        assert_eq!(now.get(rel), Some(v), "{rel}: a foreign object changed");
    }
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]));
    Model::load_at(&bed.at("model"), &bed.load()).unwrap();
}

/// Objects inside the prefix that the destination's metadata registers while it does not
/// validate (a checkpoint at `notes.txt`, the configuration at `readme.md`: paths PMF never
/// writes) were not written by PMF. A forced save keeps them, as a forced save to a folder
/// keeps such files; so does a save that finds a planted save marker (which makes it skip the
/// strict look at the destination). (Found deleting what untrusted metadata registered: fixed.)
#[test]
fn unverified_metadata_never_decides_what_a_save_deletes() {
    let Some(bed) = Bed::new("oh_forced_registered") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let metadata = String::from_utf8(files["metadata.yaml"].clone()).unwrap();
    let notes = b"the user's notes, not a checkpoint".to_vec();
    let text = metadata
        .replacen("path: data/checkpoints/1.pt", "path: notes.txt", 1)
        .replacen(&Md5::of_bytes(&files["data/checkpoints/1.pt"]).to_string(), &Md5::of_bytes(&notes).to_string(), 1)
        .replacen("path: config.py", "path: readme.md", 1);
    assert_ne!(text, metadata);
    let mut extra = files.clone();
    extra.insert("notes.txt".into(), notes.clone());
    extra.insert("readme.md".into(), b"# read me\n".to_vec());
    Batch::default()
        .sentinels(s3, "", b"{}\n")
        .model(s3, "forced", &extra, Some(text.as_bytes()))
        .model(s3, "marked", &extra, Some(text.as_bytes()))
        .put(s3, &format!("marked/{SAVE_MARKER}"), b"planted\n")
        .run(&s3.server);

    // The same on disk: the local forced save keeps them.
    let local = bed.dir.path().join("local");
    for (rel, bytes) in &extra {
        let p = local.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, if rel == "metadata.yaml" { text.as_bytes() } else { bytes }).unwrap();
    }
    let fresh = || {
        let mut m = bed.model(ID);
        m.register_epoch(Some(1)).unwrap();
        m.register_epoch(Some(2)).unwrap();
        let p = bed.file("2.pt", 1002, 2);
        m.add_checkpoint(Checkpoint::new(2, Some(&p), Some(2), None).unwrap()).unwrap();
        m
    };
    let err = fresh().save(&local, &SaveOptions::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidSameModel { .. }), "{err:?}");
    fresh().save(&local, &SaveOptions::new().force(true)).unwrap();
    assert!(local.join("notes.txt").exists() && local.join("readme.md").exists(), "the local forced save removed them");

    let err = fresh().save_at(&bed.at("forced"), &bed.save()).unwrap_err();
    assert!(matches!(err, Error::InvalidSameModel { .. }), "{err:?}");
    bed.proxy.take();
    fresh().save_at(&bed.at("forced"), &bed.save().force(true)).unwrap();
    let forced = assert_confined(&bed.proxy.take(), &[&bed.key("forced")], "forced save");
    // With the marker: refused (the metadata does not validate) or saved; either way they stay.
    let marked = fresh().save_at(&bed.at("marked"), &bed.save());
    let seen = assert_confined(&bed.proxy.take(), &[&bed.key("marked")], "save over the marker");
    for (rel, deleted, outcome) in
        [("forced", &forced.deletes, "Ok".to_owned()), ("marked", &seen.deletes, format!("{marked:?}"))]
    {
        let now = objects(&bed, rel);
        assert!(
            now.contains_key("notes.txt") && now.contains_key("readme.md"),
            "{rel}: the save ({outcome}) deleted objects only unverified metadata registers (deleted: {deleted:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Planted locks
// ---------------------------------------------------------------------------------------------

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn host() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

fn pid_ns() -> String {
    fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy().into_owned()
}

/// The start time of `pid` (field 22 of its stat), as the lock records it.
fn start_of(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().to_owned()
}

/// The pid of a process that ran on this machine and is gone.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

/// A lock object as a writer on this machine writes it (see `object_lock.rs`).
fn local_lock(pid: u32, since: u64, expires: Option<u64>, boot: &str, pidns: &str, start: &str) -> Vec<u8> {
    let expires = expires.map(|e| format!("expires {e}\n")).unwrap_or_default();
    format!("pid {pid} on {} since unix time {since}\n{expires}boot {boot}\npidns {pidns}\nstart {start}\n", host())
        .into_bytes()
}

/// The holder an `Error::Locked` names: pid, host, since.
type Holder = (Option<u32>, Option<String>, Option<u64>);

/// A lock held by a writer that may still run (another machine's live lease, a process of
/// this machine that runs, a lock that says nothing provable) is never taken: the save waits
/// `lock_timeout`, then fails with `Error::Locked` naming the holder, and never overwrites or
/// deletes the lock (only create-only writes of it are tried) nor touches anything else.
#[test]
fn a_lock_whose_holder_may_run_is_never_taken() {
    let Some(bed) = Bed::new("oh_locked") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let now = now_secs();
    let mut sleeper = Command::new("sleep").arg("120").spawn().unwrap();
    let live = sleeper.id();
    let dead = dead_pid();
    let (boot, pidns) = (boot_id(), pid_ns());
    let other_boot = "00000000-0000-0000-0000-000000000000";
    let mut oversized = b"pid 1 on otherhost since unix time 1\nexpires 2\n".to_vec();
    oversized.extend(std::iter::repeat_n(b'#', 1 << 20));
    // (what, lock text, expected holder (pid, host, since))
    let cases: Vec<(&str, Vec<u8>, Option<Holder>)> = vec![
        (
            "a live lease on another host",
            format!("pid 1 on otherhost since unix time {now}\nexpires {}\n", now + 60).into_bytes(),
            Some((Some(1), Some("otherhost".into()), Some(now))),
        ),
        (
            "a lease expired less than the clock skew ago",
            format!("pid 2 on otherhost since unix time {}\nexpires {}\n", now - 100, now - 30).into_bytes(),
            Some((Some(2), Some("otherhost".into()), Some(now - 100))),
        ),
        (
            "a lease without expiry on another host",
            b"pid 3 on otherhost since unix time 5\n".to_vec(),
            Some((Some(3), Some("otherhost".into()), Some(5))),
        ),
        (
            "a dead pid of another boot of this host",
            local_lock(dead, now, Some(now + 60), other_boot, &pidns, "1"),
            Some((Some(dead), Some(host()), Some(now))),
        ),
        (
            "a dead pid of another pid namespace",
            local_lock(dead, now, Some(now + 60), &boot, "pid:[1]", "1"),
            Some((Some(dead), Some(host()), Some(now))),
        ),
        (
            "a dead pid of this host without boot id",
            format!("pid {dead} on {} since unix time {now}\nexpires {}\n", host(), now + 60).into_bytes(),
            Some((Some(dead), Some(host()), Some(now))),
        ),
        (
            "a live process of this machine",
            local_lock(live, now, Some(now + 60), &boot, &pidns, &start_of(live)),
            Some((Some(live), Some(host()), Some(now))),
        ),
        ("garbage", b"\x00\xffnot a lock at all\n".to_vec(), Some((None, None, None))),
        ("an oversized lock object (saying it expired)", oversized, None),
    ];
    let mut batch = Batch::default();
    batch.sentinels(s3, "", b"{}\n");
    for (n, (_, text, _)) in cases.iter().enumerate() {
        batch.model(s3, &format!("lock-{n}"), &files, None).put(s3, &format!("lock-{n}/{LOCK_FILE}"), text);
    }
    batch.run(&s3.server);
    let before = listing(s3);
    bed.proxy.take();
    for (n, (what, _, holder)) in cases.iter().enumerate() {
        let rel = format!("lock-{n}");
        let mut m = bed.model_with_two(ID);
        let stats = bed.storage.stats();
        let started = Instant::now();
        let err = m.save_at(&bed.at(&rel), &bed.save().lock_timeout(LOCK_WAIT)).unwrap_err();
        let took = started.elapsed();
        let requests = bed.proxy.take();
        let seen = assert_confined(&requests, &[&bed.key(&rel)], what);
        assert_eq!(seen.lists, 0, "{what}: listed without the lock: {seen:?}");
        assert!(seen.deletes.is_empty(), "{what}: deleted the holder's lock: {seen:?}");
        for r in requests.iter().filter(|r| r.method == "PUT") {
            assert!(r.key.ends_with(&format!("/{LOCK_FILE}")), "{what}: {r:?}");
            assert_eq!((r.if_none_match.as_deref(), r.if_match.as_deref()), (Some("*"), None), "{what}: {r:?}");
        }
        match holder {
            Some((pid, host, since)) => {
                let Error::Locked { holder, waited, path } = &err else { panic!("{what}: {err:?}") };
                assert_eq!((&holder.pid, &holder.host, &holder.since), (pid, host, since), "{what}");
                assert!(
                    *waited >= LOCK_WAIT && took < LOCK_WAIT + Duration::from_secs(5),
                    "{what}: {waited:?} {took:?}"
                );
                assert!(path.to_string_lossy().ends_with(&format!("{rel}/{LOCK_FILE}")), "{what}: {path:?}");
                assert_eq!(err.code(), "locked");
            }
            None => {
                eprintln!("{what}: {err}");
                let d = delta(bed.storage.stats(), stats);
                assert!(d.bytes < 1 << 20, "{what}: the whole lock object was downloaded: {d:?}");
                assert!(!matches!(err, Error::Locked { .. }) || took >= LOCK_WAIT, "{what}: {err:?}");
            }
        }
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(listing(s3), before, "a planted lock or the model changed");
}

/// A lock whose holder is provably gone is taken over (a conditional overwrite of the
/// version read: `If-Match` its ETag) and the save succeeds: a lease expired long ago on
/// another host, a process of this machine (same host, boot and pid namespace) that no longer
/// runs, with or without a lease, or whose pid now names another process.
#[test]
fn a_lock_whose_holder_is_gone_is_taken_over() {
    let Some(bed) = Bed::new("oh_stale_lock") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let now = now_secs();
    let dead = dead_pid();
    let (boot, pidns) = (boot_id(), pid_ns());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a lease expired long ago", b"pid 1 on otherhost since unix time 1000\nexpires 1060\n".to_vec()),
        ("a dead process of this machine", local_lock(dead, now, Some(now + 60), &boot, &pidns, "1")),
        ("a dead process of this machine, no lease", local_lock(dead, now, None, &boot, &pidns, "1")),
        ("a pid now naming another process", local_lock(std::process::id(), now, Some(now + 60), &boot, &pidns, "1")),
    ];
    let mut batch = Batch::default();
    batch.sentinels(s3, "", b"{}\n");
    for (n, (_, text)) in cases.iter().enumerate() {
        batch.model(s3, &format!("stale-{n}"), &files, None).put(s3, &format!("stale-{n}/{LOCK_FILE}"), text);
    }
    let etags = batch.run(&s3.server);
    let before = listing(s3);
    let models: Vec<String> = (0..cases.len()).map(|n| format!("stale-{n}")).collect();
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    bed.proxy.take();
    for (n, (what, _)) in cases.iter().enumerate() {
        let rel = format!("stale-{n}");
        let planted = before[&format!("{rel}/{LOCK_FILE}")].1.clone();
        assert!(etags.iter().any(|e| e.as_str() == Some(planted.as_str())));
        let mut m = bed.model_with_two(ID);
        m.register_epoch(Some(3)).unwrap();
        let p = bed.file("3.pt", 300, 3);
        m.add_checkpoint(Checkpoint::new(3, Some(&p), Some(3), None).unwrap()).unwrap();
        m.save_at(&bed.at(&rel), &bed.save().lock_timeout(Duration::from_secs(3)))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let requests = bed.proxy.take();
        assert_confined(&requests, &[&bed.key(&rel)], what);
        let takeover: Vec<&Request> = requests
            .iter()
            .filter(|r| r.method == "PUT" && r.key.ends_with(LOCK_FILE) && r.if_match.is_some())
            .collect();
        assert_eq!(takeover.len(), 1, "{what}: {requests:?}");
        assert_eq!(
            takeover[0].if_match.as_deref(),
            Some(planted.as_str()),
            "{what}: not conditional on the version read"
        );
        let now = objects(&bed, &rel);
        assert!(!now.contains_key(LOCK_FILE), "{what}: the lock stayed");
        assert!(now.contains_key("data/checkpoints/3.pt"), "{what}");
        let loaded = Model::load_at(&bed.at(&rel), &bed.load()).unwrap();
        assert_eq!(loaded.checkpoint_collection.len(), 3, "{what}");
        assert_confined(&bed.proxy.take(), &[&bed.key(&rel)], what);
    }
    let after = listing(s3);
    assert_eq!(outside(&after, &models), outside(&before, &models));
}

/// A model folder saved locally and uploaded whole with boto3 (as `aws s3 sync` would) carries
/// the local lock file, empty when no save holds it. An empty `.pmf.lock` names no holder and
/// is never what an object-store writer writes (its lock is created whole, in one request):
/// it must not block the saves of the uploaded model.
#[test]
fn an_uploaded_local_lock_file_does_not_block_saves() {
    let Some(bed) = Bed::new("oh_uploaded_lock") else { return };
    let s3 = &bed.s3;
    let root = bed.dir.path().join("local-model");
    let mut m = bed.model_with_two(ID);
    m.save(&root, &SaveOptions::new()).unwrap();
    assert_eq!(fs::read(root.join(LOCK_FILE)).unwrap(), b"", "the local save leaves an empty lock file");
    // Every file of the folder, as `aws s3 sync` (or `S3Test::upload_dir`) uploads it.
    let files: BTreeMap<String, Vec<u8>> = common::snapshot(&root, &|_| false)
        .into_iter()
        .filter_map(|(rel, c)| c.map(|c| (rel.to_string_lossy().into_owned(), c)))
        .collect();
    Batch::default().model(s3, "model", &files, None).run(&s3.server);
    assert!(objects(&bed, "model").contains_key(LOCK_FILE));
    let mut loaded = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    loaded.register_epoch(Some(3)).unwrap();
    let p = bed.file("3.pt", 300, 3);
    loaded.add_checkpoint(Checkpoint::new(3, Some(&p), Some(3), None).unwrap()).unwrap();
    let planted = objects(&bed, "model")[LOCK_FILE].1.clone();
    bed.proxy.take();
    let result = loaded.save_at(&bed.at("model"), &bed.save().lock_timeout(LOCK_WAIT));
    assert!(result.is_ok(), "the uploaded empty lock file blocks the save: {result:?}");
    let requests = bed.proxy.take();
    assert_confined(&requests, &[&bed.key("model")], "save");
    let takeover = requests.iter().find(|r| r.method == "PUT" && r.key.ends_with(LOCK_FILE) && r.if_match.is_some());
    assert_eq!(takeover.and_then(|r| r.if_match.as_deref()), Some(planted.as_str()), "{requests:?}");
    assert!(!objects(&bed, "model").contains_key(LOCK_FILE));
    assert_eq!(Model::load_at(&bed.at("model"), &bed.load()).unwrap().checkpoint_collection.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// A planted save marker
// ---------------------------------------------------------------------------------------------

/// A planted `.pmf-save-in-progress`: loads report the marker (a tree offence); the next save
/// of the model, by the object that saved it or by a new one, rewrites every object and
/// removes the marker; then it loads.
#[test]
fn a_planted_save_marker_fails_loads_and_the_next_save_repairs() {
    let Some(bed) = Bed::new("oh_marker") else { return };
    let s3 = &bed.s3;
    let key = bed.key("model");
    let mut m = bed.model_with_two(ID);
    m.save_at(&bed.at("model"), &bed.save()).unwrap();
    Batch::default().sentinels(s3, "", b"{}\n").put(s3, &format!("model/{SAVE_MARKER}"), b"planted\n").run(&s3.server);
    let before = listing(s3);
    bed.proxy.take();
    for strict in [true, false] {
        let err = Model::load_at(&bed.at("model"), &bed.load().strict(strict)).unwrap_err();
        let Error::TreeValidation(report) = &err else { panic!("{err:?}") };
        assert!(report.offences.iter().any(|o| o.kind == OffenceKind::Tree && o.location == SAVE_MARKER), "{err}");
    }
    assert_confined(&bed.proxy.take(), &[&key], "loads");

    for who in ["the saving model", "a new model object"] {
        if who == "a new model object" {
            Batch::default().put(s3, &format!("model/{SAVE_MARKER}"), b"planted again\n").run(&s3.server);
            bed.proxy.take();
        }
        let result = if who == "the saving model" {
            m.save_at(&bed.at("model"), &bed.save())
        } else {
            bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save())
        };
        result.unwrap_or_else(|e| panic!("{who}: {e}"));
        let seen = assert_confined(&bed.proxy.take(), &[&key], who);
        let mut written = seen.writes.clone();
        written.sort();
        written.dedup();
        assert_eq!(
            written,
            [
                SAVE_MARKER,
                LOCK_FILE,
                "config.py",
                "data/build_parameters.yaml",
                "data/checkpoints/1.pt",
                "data/checkpoints/2.pt",
                "metadata.yaml"
            ],
            "{who}: the marker written again (a late delete of the interrupted writer's may have removed it), every object rewritten"
        );
        assert!(seen.deletes.iter().any(|k| k == SAVE_MARKER), "{who}: {seen:?}");
        let now = objects(&bed, "model");
        assert!(!now.contains_key(SAVE_MARKER) && !now.contains_key(LOCK_FILE), "{who}: {:?}", now.keys());
        Model::load_at(&bed.at("model"), &bed.load()).unwrap_or_else(|e| panic!("{who}: load after: {e}"));
    }
    let after = listing(s3);
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]));
}

/// A planted marker next to hostile metadata of the model's id (checkpoint 1 and the
/// configuration at paths outside the prefix, with the MD5 of the objects there): the marker
/// makes the save skip the strict look at the destination (a replacing save's leftovers may not
/// validate) and rewrite everything; it repairs the model without reaching outside.
#[test]
fn a_planted_marker_next_to_hostile_metadata_stays_inside() {
    let Some(bed) = Bed::new("oh_marker_hostile") else { return };
    let s3 = &bed.s3;
    let files = bed.local_files(&mut bed.model_with_two(ID));
    let metadata = String::from_utf8(files["metadata.yaml"].clone()).unwrap();
    let secret_md5 = Md5::of_bytes(&secret()).to_string();
    let text = metadata
        .replacen("path: data/checkpoints/1.pt", "path: ../m2/data/checkpoints/1.pt", 1)
        .replacen(&Md5::of_bytes(&files["data/checkpoints/1.pt"]).to_string(), &secret_md5, 1)
        .replacen("path: config.py", "path: ../m2/config.py", 1)
        .replacen(&Md5::of_bytes(&files["config.py"]).to_string(), &secret_md5, 1);
    assert_ne!(text, metadata);
    Batch::default()
        .sentinels(s3, "", text.as_bytes())
        .model(s3, "model", &files, Some(text.as_bytes()))
        .put(s3, &format!("model/{SAVE_MARKER}"), b"planted\n")
        .run(&s3.server);
    let before = listing(s3);
    let key = bed.key("model");
    bed.proxy.take();
    let err = Model::load_at(&bed.at("model"), &bed.load()).unwrap_err();
    assert!(is_validation(&err), "{err:?}");
    assert_confined(&bed.proxy.take(), &[&key], "load");
    bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save()).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "save");
    let mut deleted = seen.deletes.clone();
    deleted.sort();
    assert_eq!(deleted, [SAVE_MARKER, LOCK_FILE], "{seen:?}");
    Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    assert_confined(&bed.proxy.take(), &[&key], "load after");
    let after = listing(s3);
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]));
}

/// A model loaded from the prefix, then hostile metadata planted there (checkpoint 1 at
/// `../m2/data/checkpoints/1.pt`, with the MD5 of that object), then the loaded model saved
/// without checkpoint 1: another writer changed the model (`ConcurrentChange`); accepting
/// that, the strict look refuses the hostile model (`InvalidSameModel`); with force too, the
/// model is saved and the removal of checkpoint 1 deletes nothing outside (nor the object at
/// the model's own `data/checkpoints/1.pt`, which the planted metadata does not register).
#[test]
fn a_loaded_model_saved_over_planted_hostile_metadata() {
    let Some(bed) = Bed::new("oh_loaded_then_hostile") else { return };
    let s3 = &bed.s3;
    let key = bed.key("model");
    bed.model_with_two(ID).save_at(&bed.at("model"), &bed.save()).unwrap();
    let mut loaded = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    let saved = get_many(s3, &["model/metadata.yaml".to_owned()]).remove(0);
    let metadata = String::from_utf8(saved).unwrap();
    let ck1 = loaded.checkpoint_collection.get(&Reference::Int(1)).unwrap().hash.to_string();
    let text = metadata.replacen("path: data/checkpoints/1.pt", "path: ../m2/data/checkpoints/1.pt", 1).replacen(
        &ck1,
        &Md5::of_bytes(&secret()).to_string(),
        1,
    );
    assert_ne!(text, metadata);
    Batch::default().sentinels(s3, "", text.as_bytes()).put(s3, "model/metadata.yaml", text.as_bytes()).run(&s3.server);
    let before = listing(s3);
    loaded.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
    bed.proxy.take();
    let err = loaded.save_at(&bed.at("model"), &bed.save()).unwrap_err();
    assert!(matches!(err, Error::ConcurrentChange { .. }), "{err:?}");
    let err = loaded.save_at(&bed.at("model"), &bed.save().overwrite_concurrent_changes(true)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidSameModel { .. }) && err.to_string().contains("../m2/data/checkpoints/1.pt"),
        "{err:?}"
    );
    let seen = assert_confined(&bed.proxy.take(), &[&key], "refused saves");
    assert!(seen.writes.iter().chain(&seen.deletes).all(|k| k == LOCK_FILE), "{seen:?}");
    assert_eq!(listing(s3), before, "a refused save changed something");
    loaded.save_at(&bed.at("model"), &bed.save().overwrite_concurrent_changes(true).force(true)).unwrap();
    let seen = assert_confined(&bed.proxy.take(), &[&key], "forced save");
    assert_eq!(seen.deletes, [LOCK_FILE], "{seen:?}");
    let after = listing(s3);
    assert_eq!(outside(&after, &["model"]), outside(&before, &["model"]));
    assert!(after.contains_key("model/data/checkpoints/1.pt"));
    let reloaded = Model::load_at(&bed.at("model"), &bed.load()).unwrap();
    assert_eq!(reloaded.checkpoint_collection.len(), 1);
}
