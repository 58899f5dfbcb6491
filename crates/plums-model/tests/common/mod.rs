//! Helpers shared by the integration tests of `plums-model`:
//!
//! - finding the reference Python implementation (`plums` 0.5.2) and running
//!   `tests/interop/reference.py` (see `tests/interop/README.md` at the workspace root);
//! - the JSON *description* of a model (the README's format), built from our [`Model`], and the
//!   TAGGED VALUE encoding of YAML values, both ways;
//! - comparing descriptions (every difference, with its JSON path);
//! - file-tree snapshots and copies, sorted folder listings, FIFOs and a watchdog for tests
//!   that must never block;
//! - the leftover states of an interrupted save, built by name ([`leftovers`]);
//! - inotify watches (what was done to files that nothing may touch);
//! - `strace` making `renameat2` fail, as on file systems without `RENAME_EXCHANGE`.
#![allow(dead_code)]

pub mod leftovers;
pub mod rng;
pub mod s3;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use plums_model::{Initialisation, Mapping, Model, Reference, Timestamp, Value};
use rustix::fs::inotify;
use serde_json::{json, Value as Json};

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Assert that the [`plums_model::Error`] `err` is the variant `pattern` (with an optional `if`
/// guard; with `kind = ...`, also that its closest `io::ErrorKind` is `kind`), and that its
/// message contains every fragment.
#[macro_export]
macro_rules! assert_err {
    ($err:expr, $pattern:pat $(if $guard:expr)?, $fragments:expr) => {{
        let err: &plums_model::Error = &$err;
        assert!(
            matches!(err, $pattern $(if $guard)?),
            "expected {}, got {err:?}",
            stringify!($pattern $(if $guard)?)
        );
        $crate::common::assert_message(err, $fragments);
    }};
    ($err:expr, $pattern:pat $(if $guard:expr)?, kind = $kind:expr, $fragments:expr) => {{
        let err: &plums_model::Error = &$err;
        $crate::assert_err!(err, $pattern $(if $guard)?, $fragments);
        assert_eq!(err.io_kind(), Some($kind), "the io::ErrorKind of {err:?}");
    }};
}

/// Assert that the message of `err` contains every fragment.
#[track_caller]
pub fn assert_message(err: &plums_model::Error, fragments: &[&str]) {
    let text = err.to_string();
    for f in fragments {
        assert!(text.contains(f), "{f:?} not in the message: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The reference implementation
// ---------------------------------------------------------------------------------------------

/// The workspace root (`crates/plums-model/../..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// `tests/interop/reference.py` at the workspace root.
pub fn reference_script() -> PathBuf {
    workspace_root().join("tests").join("interop").join("reference.py")
}

/// Why the reference cannot be used, or the Python interpreter that has it.
fn find_reference_python() -> Result<PathBuf, String> {
    let (python, origin) = match std::env::var_os("PMF_PYTHON") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "PMF_PYTHON"),
        _ => (workspace_root().join(".venv").join("bin").join("python"), "the workspace virtual environment"),
    };
    if !python.exists() {
        return Err(format!(
            "no Python at {} ({origin}); set PMF_PYTHON to a Python with plums 0.5.2",
            python.display()
        ));
    }
    let script = reference_script();
    if !script.is_file() {
        return Err(format!("the reference driver {} is missing", script.display()));
    }
    let out = Command::new(&python)
        .args(["-c", "import plums.model, yaml, importlib.metadata as m; print(m.version('plums'))"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import plums.model and yaml: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version != "0.5.2" {
        return Err(format!(
            "{} has plums {version}, the interoperability tests are written for plums 0.5.2",
            python.display()
        ));
    }
    Ok(python)
}

/// The Python interpreter that has the reference, looked up once per test binary.
pub fn reference_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(find_reference_python).clone()
}

/// The reference Python, or `None` after printing `skipped: ...` (a test failure instead when
/// `PMF_REQUIRE_REFERENCE=1`). Call at the start of every test that needs the reference.
pub fn reference_or_skip(test: &str) -> Option<PathBuf> {
    match reference_python() {
        Ok(p) => Some(p),
        Err(why) => {
            if std::env::var("PMF_REQUIRE_REFERENCE").as_deref() == Ok("1") {
                panic!(
                    "{test}: the reference implementation is required (PMF_REQUIRE_REFERENCE=1) but unavailable: {why}"
                );
            }
            eprintln!("skipped: {test}: the reference implementation is unavailable: {why}");
            None
        }
    }
}

/// The outcome of one run of `reference.py`.
#[derive(Debug)]
pub struct RefRun {
    pub args: Vec<OsString>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RefRun {
    /// The JSON document on stdout; panics (with stderr) when the run failed or printed no JSON.
    pub fn json(&self) -> Json {
        if self.code != Some(0) {
            panic!(
                "reference.py {:?} exited with {:?}\nstderr:\n{}\nstdout:\n{}",
                self.args, self.code, self.stderr, self.stdout
            );
        }
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "reference.py {:?} printed no JSON document ({e}):\n{}\nstderr:\n{}",
                self.args, self.stdout, self.stderr
            )
        })
    }
}

/// Run `reference.py ARGS` with `python`, failing the test after `limit`.
pub fn run_reference(python: &Path, args: &[OsString], limit: Duration) -> RefRun {
    let mut child = Command::new(python)
        .arg(reference_script())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {:?}: {e}", python.display(), args));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("reference.py {args:?} did not finish within {limit:?}");
            }
            Err(e) => panic!("waiting for reference.py {args:?}: {e}"),
        }
    };
    RefRun {
        args: args.to_vec(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// Run several `reference.py` commands, at most `parallel` at a time; results in input order.
pub fn run_reference_many(
    python: &Path,
    commands: Vec<Vec<OsString>>,
    parallel: usize,
    limit: Duration,
) -> Vec<RefRun> {
    let mut results: Vec<Option<RefRun>> = (0..commands.len()).map(|_| None).collect();
    let indexed: Vec<(usize, Vec<OsString>)> = commands.into_iter().enumerate().collect();
    for chunk in indexed.chunks(parallel.max(1)) {
        let handles: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(i, args)| {
                let python = python.to_path_buf();
                std::thread::spawn(move || (i, run_reference(&python, &args, limit)))
            })
            .collect();
        for h in handles {
            let (i, run) = h.join().expect("a reference.py run panicked");
            results[i] = Some(run);
        }
    }
    results.into_iter().map(|r| r.expect("every command ran")).collect()
}

/// `["describe", dir, flags...]` as arguments.
pub fn describe_args(dir: &Path, flags: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["describe".into(), dir.as_os_str().to_owned()];
    v.extend(flags.iter().map(OsString::from));
    v
}

// ---------------------------------------------------------------------------------------------
// TAGGED VALUES
// ---------------------------------------------------------------------------------------------

fn json_float(f: f64) -> Json {
    if f.is_nan() {
        json!("nan")
    } else if f.is_infinite() {
        json!(if f > 0.0 { "inf" } else { "-inf" })
    } else {
        serde_json::Number::from_f64(f).map(Json::Number).expect("finite")
    }
}

/// A YAML value as a TAGGED VALUE (README: `{"int": 3}`, `{"map": [[k, v], ...]}`, ...).
pub fn tag(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => json!({ "bool": b }),
        Value::Int(i) => json!({ "int": i }),
        Value::Float(f) => json!({ "float": json_float(*f) }),
        Value::Str(s) => json!({ "str": s }),
        Value::Timestamp(t) => json!({ "timestamp": timestamp_isoformat(t) }),
        Value::Binary(b) => json!({ "binary": b }),
        Value::Seq(items) => json!({ "seq": items.iter().map(tag).collect::<Vec<_>>() }),
        Value::Map(m) => json!({ "map": m.iter().map(|(k, v)| json!([tag(k), tag(v)])).collect::<Vec<_>>() }),
    }
}

/// The README tags a YAML date with Python's `date.isoformat()`; PyYAML only reads dates in the
/// canonical `YYYY-MM-DD` form, which is its own isoformat, so the source text is kept.
fn timestamp_isoformat(text: &str) -> String {
    text.to_owned()
}

/// A TAGGED VALUE back to a YAML value.
pub fn untag(tagged: &Json) -> Value {
    if tagged.is_null() {
        return Value::Null;
    }
    let obj = tagged.as_object().filter(|o| o.len() == 1).unwrap_or_else(|| panic!("invalid tagged value {tagged}"));
    let (kind, v) = obj.iter().next().unwrap();
    match kind.as_str() {
        "bool" => Value::Bool(v.as_bool().expect("bool")),
        "int" => Value::Int(v.as_i64().unwrap_or_else(|| panic!("int out of i64 range: {v}"))),
        "float" => Value::Float(match v {
            Json::String(s) if s == "nan" => f64::NAN,
            Json::String(s) if s == "inf" => f64::INFINITY,
            Json::String(s) if s == "-inf" => f64::NEG_INFINITY,
            other => other.as_f64().unwrap_or_else(|| panic!("invalid float {other}")),
        }),
        "str" => Value::Str(v.as_str().expect("str").to_owned()),
        "timestamp" => Value::Timestamp(v.as_str().expect("timestamp").to_owned()),
        "seq" => Value::Seq(v.as_array().expect("seq").iter().map(untag).collect()),
        "map" => {
            let mut m = Mapping::new();
            for pair in v.as_array().expect("map") {
                let pair =
                    pair.as_array().filter(|p| p.len() == 2).unwrap_or_else(|| panic!("invalid map entry {pair}"));
                m.insert(untag(&pair[0]), untag(&pair[1]));
            }
            Value::Map(m)
        }
        other => panic!("unknown tagged value kind {other:?}"),
    }
}

/// A checkpoint reference as a TAGGED REF.
pub fn tag_ref(r: &Reference) -> Json {
    match r {
        Reference::Int(i) => json!({ "int": i }),
        Reference::Str(s) => json!({ "str": s }),
    }
}

/// A TAGGED REF back to a reference.
pub fn untag_ref(tagged: &Json) -> Reference {
    if let Some(i) = tagged.get("int").and_then(Json::as_i64) {
        return Reference::Int(i);
    }
    if let Some(s) = tagged.get("str").and_then(Json::as_str) {
        return Reference::Str(s.to_owned());
    }
    panic!("invalid tagged reference {tagged}")
}

/// A training time or epoch: int stays int, float stays float (non finite: a string).
pub fn time_json(t: Option<Timestamp>) -> Json {
    match t {
        None => Json::Null,
        Some(Timestamp::Int(i)) => json!(i),
        Some(Timestamp::Float(f)) => json_float(f),
    }
}

/// A JSON training time (from a recipe) as a timestamp: a JSON int is an int, anything else a float.
pub fn json_time(v: &Json) -> Option<Timestamp> {
    match v {
        Json::Null => None,
        Json::Number(n) if n.is_i64() => Some(Timestamp::Int(n.as_i64().unwrap())),
        Json::Number(n) if n.is_f64() => Some(Timestamp::Float(n.as_f64().unwrap())),
        other => panic!("invalid training time {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The description of one of our models
// ---------------------------------------------------------------------------------------------

fn file_name(p: &Path) -> Json {
    json!(p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// How to describe a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct DescribeOptions {
    /// Describe nested initialisation models as they are saved: without checkpoint files
    /// (`file: null`), since a saved initialisation model records its checkpoint paths as `.`.
    pub init_as_saved: bool,
}

/// The README's description of a model, from our [`Model`] (what `reference.py describe` prints
/// for the reference's model).
pub fn describe(model: &Model) -> Json {
    describe_with(model, DescribeOptions::default(), false)
}

/// [`describe`] with options.
pub fn describe_with(model: &Model, options: DescribeOptions, nested: bool) -> Json {
    let cfg = &model.producer.configuration;
    let md5 =
        plums_model::md5_file(cfg).unwrap_or_else(|e| panic!("cannot hash the configuration {}: {e}", cfg.display()));
    let t = model.training.record();
    let checkpoints: Vec<Json> = model
        .checkpoint_collection
        .iter()
        .map(|(r, c)| {
            let file = if nested && options.init_as_saved {
                Json::Null
            } else {
                c.path.as_deref().map(file_name).unwrap_or(Json::Null)
            };
            json!({ "reference": tag_ref(r), "epoch": c.epoch, "hash": c.hash.to_string(), "file": file })
        })
        .collect();
    let initialisation = match model.initialisation() {
        None => Json::Null,
        Some(Initialisation::Model(init)) => json!({ "pmf": {
            "checkpoint": init.checkpoint().map(tag_ref).unwrap_or(Json::Null),
            "model": describe_with(init, options, true),
        }}),
        Some(Initialisation::File(ck)) => json!({ "file": {
            "name": match &ck.name { Reference::Str(s) => json!(s), Reference::Int(i) => json!(i) },
            "hash": ck.hash.to_string(),
            "file": ck.path.as_deref().map(file_name).unwrap_or(Json::Null),
        }}),
    };
    json!({
        "producer": {
            "name": model.producer.name,
            "version_format": model.producer.version.format(),
            "version": model.producer.version.to_string(),
        },
        "name": model.name,
        "id": model.id,
        "configuration": { "file": file_name(cfg), "md5": md5.to_string() },
        "build_parameters": tag(&model.build_parameters),
        "training": {
            "status": t.status.as_str(),
            "start_epoch": t.start_epoch,
            "start_time": time_json(t.start_time),
            "latest_epoch": t.latest_epoch,
            "latest_time": time_json(t.latest_time),
            "end_epoch": t.end_epoch,
            "end_time": time_json(t.end_time),
        },
        "checkpoints": checkpoints,
        "latest": model.checkpoint_collection.latest().map(tag_ref).unwrap_or(Json::Null),
        "initialisation": initialisation,
    })
}

// ---------------------------------------------------------------------------------------------
// Comparing descriptions
// ---------------------------------------------------------------------------------------------

/// Make floats comparable: both sides go through the same JSON text -> f64 parse (Python writes
/// the shortest round-trip form, as serde_json does), so parser rounding cannot differ.
fn reparse(v: &Json) -> Json {
    serde_json::from_str(&serde_json::to_string(v).expect("serialise")).expect("reparse")
}

/// Sort the entries of every tagged mapping (`{"map": [[k, v], ...]}`), recursively: Python
/// dicts are equal whatever their order, and `safe_dump` sorts keys that are comparable.
fn sort_maps(v: &mut Json) {
    match v {
        Json::Array(items) => items.iter_mut().for_each(sort_maps),
        Json::Object(obj) => {
            let is_tagged_map = obj.len() == 1 && obj.get("map").is_some_and(Json::is_array);
            obj.values_mut().for_each(sort_maps);
            if is_tagged_map {
                if let Some(Json::Array(entries)) = obj.get_mut("map") {
                    entries.sort_by_cached_key(|e| serde_json::to_string(e).unwrap_or_default());
                }
            }
        }
        _ => {}
    }
}

/// Sort every `checkpoints` list of a description (nested initialisation models included) by
/// reference: for comparing a model with one whose checkpoints were written in another order.
fn sort_checkpoints(v: &mut Json) {
    if let Some(Json::Array(ck)) = v.get_mut("checkpoints") {
        ck.sort_by_cached_key(|c| serde_json::to_string(&c["reference"]).unwrap_or_default());
    }
    if let Some(init) = v.pointer_mut("/initialisation/pmf/model") {
        sort_checkpoints(init);
    }
}

/// How two descriptions are compared.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Checkpoint lists compared as sets keyed by reference.
    pub checkpoints_any_order: bool,
}

/// Normalise a description for comparison.
pub fn normalise(v: &Json, how: Compare) -> Json {
    let mut v = reparse(v);
    sort_maps(&mut v);
    if how.checkpoints_any_order {
        sort_checkpoints(&mut v);
    }
    v
}

/// Every difference between two JSON values, as `path: left != right` lines.
pub fn diff(a: &Json, b: &Json, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => diff(va, vb, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}: only on the left ({va})")),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!("{at}.{k}: only on the right ({vb})"));
                }
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{at}: length {} != {}: {a} != {b}", x.len(), y.len()));
                return;
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(va, vb, &format!("{at}[{i}]"), out);
            }
        }
        (Json::Number(x), Json::Number(y)) => {
            // An int and a float of the same value differ (an int time must stay an int).
            let same = (x.is_f64() == y.is_f64()) && x == y;
            if !same {
                out.push(format!("{at}: {a} != {b}"));
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} != {b}")),
    }
}

/// Every difference between two descriptions, after normalisation.
pub fn compare(left: &Json, right: &Json, how: Compare) -> Vec<String> {
    let mut out = Vec::new();
    diff(&normalise(left, how), &normalise(right, how), "$", &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Files and trees
// ---------------------------------------------------------------------------------------------

/// Copy the tree `src` into `dst`: folders, and files as plain copies (`.pmf.lock` included).
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Names in `dir` (sorted).
pub fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    out.sort();
    out
}

/// What is in a folder: relative path -> file contents (`None` for folders, the target for links).
pub fn snapshot(root: &Path, skip: &dyn Fn(&Path) -> bool) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip(&rel) {
                continue;
            }
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &path, skip, out);
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, Some(format!("-> {}", target.display()).into_bytes()));
            } else if ft.is_file() {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            } else {
                out.insert(rel, Some(b"<special file>".to_vec()));
            }
        }
    }
    walk(root, root, skip, &mut out);
    out
}

/// Create a FIFO.
pub fn mkfifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o644), 0)
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Open every FIFO for writing without blocking, and close it: a reader blocked in `open` or
/// `read` on one of them wakes up (and reads nothing).
pub fn unblock_fifos(fifos: &[PathBuf]) {
    for f in fifos {
        if let Ok(mut w) =
            fs::OpenOptions::new().write(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32).open(f)
        {
            let _ = w.write_all(b"");
        }
    }
}

/// Run `f` on another thread; if it takes longer than `limit`, wake anything blocked on `fifos`
/// and fail the test instead of hanging.
pub fn guarded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    fifos: Vec<PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            unblock_fifos(&fifos);
            panic!("{what} did not finish within {limit:?}: it blocked (opened a FIFO?) or looped");
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked (see above)"),
    }
}

// ---------------------------------------------------------------------------------------------
// inotify
// ---------------------------------------------------------------------------------------------

/// A non-blocking inotify instance watching `paths` (files or folders) for `events`.
pub fn inotify_watch<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>, events: inotify::WatchFlags) -> OwnedFd {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
    for p in paths {
        inotify::add_watch(&fd, p.as_ref(), events)
            .unwrap_or_else(|e| panic!("inotify watch {}: {e}", p.as_ref().display()));
    }
    fd
}

/// The events queued on `fd` since the last call, as `"name": EVENTS` lines (the name is empty
/// for an event on a watched path itself); reading them empties the queue.
pub fn inotify_events(fd: &OwnedFd) -> Vec<String> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Ok(event) = reader.next() {
        let name = event.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push(format!("{name:?}: {:?}", event.events()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// strace
// ---------------------------------------------------------------------------------------------

/// The `strace` options (before the traced command) that make every `renameat2` of the command
/// and its children fail with EINVAL, as on file systems without `RENAME_EXCHANGE` (NFS, some
/// FUSE file systems), and print nothing.
pub const STRACE_RENAMEAT2_EINVAL: &[&str] =
    &["-f", "-qq", "-o", "/dev/null", "--seccomp-bpf", "-e", "trace=renameat2", "-e", "inject=renameat2:error=EINVAL"];

/// Why `strace` cannot run a command with [`STRACE_RENAMEAT2_EINVAL`] here (not installed, too old
/// for `--seccomp-bpf` or `inject`, ptrace forbidden), or `None` when it can.
pub fn strace_injection_unavailable() -> Option<String> {
    match Command::new("strace").args(STRACE_RENAMEAT2_EINVAL).arg("true").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("strace exited with {}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("cannot run strace: {e}")),
    }
}
