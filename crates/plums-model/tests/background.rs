//! Background saves ([`SaveQueue`], [`SaveHandle`], [`Drained`]): what each save writes (the
//! model as it was at its call), in which order, what a file rewritten before its copy does,
//! how errors reach the caller (never lost), the timed waits, the refusal at the call, and
//! retention in a background loop (on disk and on the S3 test server).
//!
//! Saves are held back deterministically by holding the model folder's writer lock (an
//! exclusive `flock` on its lock file, as another writer does): a queued save waits for it,
//! so nothing here depends on how fast a save runs. Generous deadlines only guard against
//! hangs.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rng::content;
use common::s3::s3_or_skip;
use plums_model::{
    md5_file, validate, validate_at, Checkpoint, Error, Location, Md5, Metadata, Model, Producer, Reference, Retention,
    SaveOptions, SaveQueue, Status, StorageOptions, ValidateOptions, Value, Version, LOCK_FILE,
};
use rustix::fs::inotify;

/// Far longer than anything here takes: only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// A producer's working folder: a configuration, checkpoint files, model folders.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.py"), b"lr = 0.1\n").unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        Bench { dir }
    }

    /// A model with a running training started at epoch 0.
    fn model(&self, id: &str) -> Model {
        let producer =
            Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.dir.path().join("config.py")).unwrap();
        let mut m = Model::new(id, producer);
        m.name = Some("detector".into());
        m.register_training_start(0).unwrap();
        m
    }

    /// The working file `name` (where the trainer writes its checkpoints).
    fn work(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    /// The checkpoint of `epoch`: its file `work/<epoch>.pt` written with `size` bytes of seed
    /// `seed`.
    fn checkpoint(&self, epoch: i64, size: usize, seed: u64) -> Checkpoint {
        let path = self.work(&format!("{epoch}.pt"));
        fs::write(&path, content(seed, size)).unwrap();
        Checkpoint::new(epoch, Some(&path), Some(epoch), None).unwrap()
    }

    /// A model folder (not created).
    fn root(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn local(root: &Path) -> Location {
    Location::Local(root.to_path_buf())
}

/// An epoch of a training loop: register `epoch`, add its checkpoint (`size` bytes).
fn epoch(b: &Bench, m: &mut Model, epoch: i64, size: usize) {
    m.register_epoch(Some(epoch)).unwrap();
    m.add_checkpoint(b.checkpoint(epoch, size, epoch as u64)).unwrap();
}

fn strict() -> ValidateOptions {
    ValidateOptions::new().strict(true)
}

/// The metadata of the folder `root`, validated strictly (every checksum verified).
fn read(root: &Path) -> Metadata {
    validate(root, &strict()).unwrap_or_else(|e| panic!("{} does not validate strictly: {e}", root.display()))
}

/// The registered checkpoints of `md`: reference, epoch, MD5.
fn entries(md: &Metadata) -> Vec<(Reference, i64, Md5)> {
    md.model.training.checkpoints.iter().map(|(r, e)| (r.clone(), e.epoch, e.hash)).collect()
}

/// The checkpoints of `m`: reference, epoch, MD5.
fn model_entries(m: &Model) -> Vec<(Reference, i64, Md5)> {
    m.checkpoint_collection.iter().map(|(r, c)| (r.clone(), c.epoch.unwrap(), c.hash)).collect()
}

fn latest_epoch(md: &Metadata) -> Option<i64> {
    md.model.training.record.latest_epoch
}

/// The names in `root/data/checkpoints`.
fn checkpoint_files(root: &Path) -> BTreeSet<String> {
    fs::read_dir(root.join("data/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn params(v: i64) -> Value {
    plums_model::parse_yaml(&format!("v: {v}\nlayers: [{v}, {}]\n", v * 2)).unwrap()
}

/// Hold the writer lock of the model folder `root` (which must exist) as another writer
/// does, until the returned file is dropped: saves to `root` wait meanwhile.
fn hold_lock(root: &Path) -> fs::File {
    let mut file =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(root.join(LOCK_FILE)).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    file.set_len(0).unwrap();
    writeln!(file, "pid {} on test-host since unix time 0", std::process::id()).unwrap();
    file
}

/// Wait until `what` holds (checked every 2 ms), failing the test after [`DEADLINE`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An inotify watch of the lock file of `root`: told when a save opens it (a queued save
/// started and waits for the lock).
struct LockWatch(std::os::fd::OwnedFd);

impl LockWatch {
    fn new(root: &Path) -> LockWatch {
        LockWatch(common::inotify_watch([root.join(LOCK_FILE)], inotify::WatchFlags::OPEN))
    }

    /// Wait until the lock file was opened since the last call.
    fn opened(&self, what: &str) {
        wait_until(what, || !common::inotify_events(&self.0).is_empty());
    }
}

/// A model folder `name` with the model `m` saved there synchronously (`m` knows it).
fn saved(b: &Bench, m: &mut Model, name: &str) -> PathBuf {
    let root = b.root(name);
    m.save(&root, &SaveOptions::new()).unwrap();
    root
}

// ---------------------------------------------------------------------------------------------
// 1. A training loop
// ---------------------------------------------------------------------------------------------

/// A loop of epochs, each queueing a background save, then `wait`: the folder validates
/// strictly with every checkpoint of every epoch; every handle says Ok; the model took the
/// saved state back, so its next synchronous save is accepted (a copy of the model that did
/// not take it is refused as a lost update: the check is real).
#[test]
fn a_loop_of_background_saves_keeps_every_checkpoint_and_the_model_adopts_the_saved_state() {
    let b = Bench::new();
    let mut m = b.model("loop-1");
    let root = saved(&b, &mut m, "model");
    let stale = m.clone();
    let saves = SaveQueue::new();
    let mut handles = Vec::new();
    for e in 1..=8 {
        epoch(&b, &mut m, e, 4096 + e as usize);
        handles.push(saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap());
    }
    saves.wait(&mut m).unwrap();
    assert_eq!(saves.pending(), 0);
    assert!(saves.is_idle());
    for (i, h) in handles.iter().enumerate() {
        assert!(h.is_finished(), "save {i} is not finished after wait");
        h.wait().unwrap_or_else(|e| panic!("save {i}: {e}"));
        assert_eq!(h.location(), &local(&root));
    }
    let md = read(&root);
    assert_eq!(latest_epoch(&md), Some(8));
    assert_eq!(md.model.training.record.status, Status::Running);
    assert_eq!(entries(&md), model_entries(&m));
    assert_eq!(entries(&md).len(), 8);
    for e in 1..=8i64 {
        let stored = md5_file(root.join(format!("data/checkpoints/{e}.pt"))).unwrap();
        assert_eq!(stored, Md5::of_bytes(&content(e as u64, 4096 + e as usize)), "checkpoint {e}");
    }
    assert_eq!(md.model.training.latest, Some(Reference::Int(8)));

    // The model knows the folder as the last save left it: its next save is accepted.
    epoch(&b, &mut m, 9, 100);
    m.save(&root, &SaveOptions::new()).unwrap();
    assert_eq!(latest_epoch(&read(&root)), Some(9));
    // A copy that still knows the folder as it was before the background saves is refused.
    let mut stale = stale;
    let err = stale.save(&root, &SaveOptions::new()).unwrap_err();
    assert_err!(err, Error::ConcurrentChange { path } if path == &root, &["changed since this model was loaded from or saved to it", "another writer saved it"]);
}

// ---------------------------------------------------------------------------------------------
// 2. What a save writes: the model at its call
// ---------------------------------------------------------------------------------------------

/// The model changes at once after each call (another epoch, another checkpoint, other build
/// parameters, another name) while the first save (a 64 MiB checkpoint, durable) still runs
/// and the second waits behind it: each save wrote the model as it was at its call.
#[test]
fn each_save_writes_the_model_as_it_was_at_its_call() {
    let b = Bench::new();
    let mut m = b.model("snap-1");
    let (a, bb) = (b.root("a"), b.root("b"));
    m.build_parameters = params(1);
    epoch(&b, &mut m, 1, 64 << 20);
    let saves = SaveQueue::new();
    let h1 = saves.save(&mut m, &local(&a), &SaveOptions::new()).unwrap();
    // Changed before the first save is done (and, whatever the timing, after its call).
    m.build_parameters = params(2);
    m.name = Some("second".into());
    epoch(&b, &mut m, 2, 1000);
    let h2 = saves.save(&mut m, &local(&bb), &SaveOptions::new()).unwrap();
    m.build_parameters = params(3);
    m.name = Some("third".into());
    epoch(&b, &mut m, 3, 1000);
    let in_memory = model_entries(&m);

    h1.wait().unwrap();
    let md = read(&a);
    assert_eq!(latest_epoch(&md), Some(1));
    assert_eq!(md.model.name.as_deref(), Some("detector"));
    assert_eq!(entries(&md), in_memory[..1].to_vec());
    assert_eq!(validate_params(&a), params(1));
    h2.wait().unwrap();
    let md = read(&bb);
    assert_eq!(latest_epoch(&md), Some(2));
    assert_eq!(md.model.name.as_deref(), Some("second"));
    assert_eq!(entries(&md), in_memory[..2].to_vec());
    assert_eq!(validate_params(&bb), params(2));
    // The first destination did not change after its save (the second wrote elsewhere).
    assert_eq!(latest_epoch(&read(&a)), Some(1));

    // The model takes back the state of the last save (b): its next save there is accepted
    // and writes what it holds now.
    saves.wait(&mut m).unwrap();
    m.save(&bb, &SaveOptions::new()).unwrap();
    let md = read(&bb);
    assert_eq!((latest_epoch(&md), md.model.name.as_deref()), (Some(3), Some("third")));
    assert_eq!(entries(&md), in_memory);
    assert_eq!(validate_params(&bb), params(3));
}

fn validate_params(root: &Path) -> Value {
    plums_model::validate_model(root, &strict()).unwrap().build_parameters
}

/// The same with one destination and the save held back: three saves queued, each after a
/// change of the model, write in turn exactly the model of their call (read back after each
/// handle's wait by a reader that is itself held at the lock: it reads between saves).
#[test]
fn saves_queued_behind_a_held_save_each_write_the_model_of_their_call() {
    let b = Bench::new();
    let mut m = b.model("snap-2");
    let root = saved(&b, &mut m, "model");
    // Declared before the lock: a failing test releases the lock before the queue waits.
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    let watch = LockWatch::new(&root);
    let mut expected = Vec::new();
    let mut handles = Vec::new();
    for e in 1..=3 {
        m.build_parameters = params(e);
        epoch(&b, &mut m, e, 2000);
        handles.push(saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap());
        expected.push((e, model_entries(&m), params(e)));
        if e == 1 {
            watch.opened("the first save waits for the lock");
        }
    }
    // The model goes on meanwhile; no save writes that.
    m.build_parameters = params(4);
    epoch(&b, &mut m, 4, 2000);
    assert!(!handles[0].is_finished());
    assert_eq!(latest_epoch(&read(&root)), Some(0), "nothing was saved while the lock is held");
    drop(lock);
    let mut seen = Vec::new();
    for (h, (e, entries_then, params_then)) in handles.iter().zip(&expected) {
        h.wait().unwrap();
        // Later saves may have run already: the folder holds this state or a later one.
        let v = plums_model::validate_model(&root, &strict()).unwrap();
        let now = latest_epoch(&v.metadata).unwrap();
        assert!(now >= *e, "after save {e}'s wait the folder holds epoch {now}");
        let (_, entries_now, params_now) = &expected[now as usize - 1];
        assert_eq!(&entries(&v.metadata), entries_now, "the folder holds the model of call {now}");
        assert_eq!(&v.build_parameters, params_now, "the folder holds the model of call {now}");
        if now == *e {
            assert_eq!(entries_now, entries_then);
            assert_eq!(params_now, params_then);
        }
        seen.push(now);
    }
    saves.wait(&mut m).unwrap();
    let md = read(&root);
    assert_eq!(latest_epoch(&md), Some(3));
    assert_eq!(entries(&md), expected[2].1);
    assert_eq!(validate_params(&root), params(3));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "the folder went back in time: {seen:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Order
// ---------------------------------------------------------------------------------------------

/// Five saves to one folder, queued while the first waits for the lock: `pending()` counts
/// the one running and the four queued; once the lock is released they run one at a time,
/// in call order (a reader polling the folder never sees it go back; each save commits its
/// own `metadata.yaml`, five in all), and the folder ends with the last call's model.
#[test]
fn saves_to_one_location_run_one_at_a_time_in_call_order() {
    let b = Bench::new();
    let mut m = b.model("order-1");
    let root = saved(&b, &mut m, "model");
    // Declared before the lock: a failing test releases the lock before the queue waits.
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    let watch = LockWatch::new(&root);
    assert_eq!(saves.pending(), 0);
    assert!(saves.is_idle());
    let mut handles = Vec::new();
    for e in 1..=5 {
        epoch(&b, &mut m, e, 3000);
        handles.push(saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap());
        if e == 1 {
            // The worker took the first save and waits for the lock.
            watch.opened("the first save waits for the lock");
        }
        assert_eq!(saves.pending(), e as usize, "pending() after {e} calls: one save running, {} queued", e - 1);
    }
    assert!(!saves.is_idle());
    assert!(handles.iter().all(|h| !h.is_finished()));

    // Every commit of metadata.yaml into the folder, and a reader polling the latest epoch.
    let commits = common::inotify_watch([&root], inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CREATE);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<i64> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(md) = validate(&root, &ValidateOptions::new()) {
                    let e = latest_epoch(&md).unwrap();
                    if seen.last() != Some(&e) {
                        seen.push(e);
                    }
                }
            }
            seen
        })
    };
    drop(lock);
    saves.wait(&mut m).unwrap();
    stop.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert_eq!(saves.pending(), 0);
    for (i, h) in handles.iter().enumerate() {
        h.wait().unwrap_or_else(|e| panic!("save {}: {e}", i + 1));
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "a reader saw the folder go back: {seen:?}");
    let md = read(&root);
    assert_eq!(latest_epoch(&md), Some(5));
    assert_eq!(entries(&md), model_entries(&m));
    let metadata_commits =
        common::inotify_events(&commits).iter().filter(|e| e.starts_with("\"metadata.yaml\"")).count();
    assert_eq!(metadata_commits, 5, "one metadata.yaml committed per save (each only adds a checkpoint: in place)");
}

// ---------------------------------------------------------------------------------------------
// 4. A checkpoint file rewritten before its copy
// ---------------------------------------------------------------------------------------------

/// Every file under `dir` (recursively) whose content is `bytes`.
fn files_with(dir: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        if fs::symlink_metadata(&entry).map(|m| m.is_file() && m.len() == bytes.len() as u64).unwrap_or(false)
            && fs::read(&entry).unwrap() == bytes
        {
            out.push(entry);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// How a test rewrites a registered checkpoint file.
#[derive(Debug, Clone, Copy)]
enum Rewrite {
    /// Other bytes, another size.
    OtherSize,
    /// Other bytes, the same size (a later modification time).
    SameSize,
    /// Other bytes, the same size, and the old modification time put back (`cp -p`, `rsync -t`,
    /// `tar x`, or a rewrite within one tick of a coarse clock).
    SameSizeAndTime,
    /// A new file renamed over it: the same size and modification time, another inode.
    RenamedSameSizeAndTime,
}

/// Rewrite `path` (registered with its current content) as `how` says; the new bytes.
fn rewrite(path: &Path, how: Rewrite) -> Vec<u8> {
    let old = fs::metadata(path).unwrap();
    let mut bytes = fs::read(path).unwrap();
    for byte in bytes.iter_mut().step_by(997) {
        *byte = !*byte;
    }
    if let Rewrite::OtherSize = how {
        bytes.extend_from_slice(b"more");
    }
    match how {
        Rewrite::OtherSize | Rewrite::SameSize | Rewrite::SameSizeAndTime => fs::write(path, &bytes).unwrap(),
        Rewrite::RenamedSameSizeAndTime => {
            let tmp = path.with_extension("new");
            fs::write(&tmp, &bytes).unwrap();
            fs::File::options().write(true).open(&tmp).unwrap().set_modified(old.modified().unwrap()).unwrap();
            fs::rename(&tmp, path).unwrap();
        }
    }
    let file = fs::File::options().write(true).open(path).unwrap();
    match how {
        Rewrite::SameSizeAndTime => file.set_modified(old.modified().unwrap()).unwrap(),
        Rewrite::SameSize if fs::metadata(path).unwrap().modified().unwrap() == old.modified().unwrap() => {
            // A coarse clock gave the rewrite the old time: make it later, as any later rewrite.
            file.set_modified(old.modified().unwrap() + Duration::from_secs(1)).unwrap()
        }
        _ => {}
    }
    let new = fs::metadata(path).unwrap();
    assert_eq!(new.len() == old.len(), !matches!(how, Rewrite::OtherSize));
    assert_eq!(
        new.modified().unwrap() == old.modified().unwrap(),
        matches!(how, Rewrite::SameSizeAndTime | Rewrite::RenamedSameSizeAndTime)
    );
    assert_eq!(new.ino() == old.ino(), !matches!(how, Rewrite::RenamedSameSizeAndTime));
    bytes
}

/// The checkpoint of epoch 2 is registered (its MD5 computed), its save queued and held at
/// the lock, then its file rewritten: the save fails with `ChecksumMismatch` naming the file,
/// the folder keeps the model of epoch 1 (strictly valid), and nothing of the new bytes is
/// stored anywhere in or next to it. Registered again, the new content saves.
fn a_rewritten_checkpoint_fails_its_background_save(how: Rewrite) {
    let b = Bench::new();
    let mut m = b.model("rewrite-1");
    epoch(&b, &mut m, 1, 5000);
    let root = saved(&b, &mut m, "model");
    let before = entries(&read(&root));
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    epoch(&b, &mut m, 2, 300_000);
    let registered = m.checkpoint_collection.get(&Reference::Int(2)).unwrap().hash;
    let h = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap();
    let file = b.work("2.pt");
    let new_bytes = rewrite(&file, how);
    drop(lock);

    let err = match h.wait() {
        Err(e) => e,
        Ok(()) => panic!(
            "{how:?}: the save succeeded with the rewritten file; the folder now: {:?}; the new bytes are in {:?}",
            validate(&root, &strict()).map(|md| entries(&md)),
            files_with(b.dir.path(), &new_bytes),
        ),
    };
    assert_err!(
        err,
        Error::ChecksumMismatch { path, expected, found }
            if path == &file && *expected == registered && *found == Md5::of_bytes(&new_bytes),
        &["2.pt", "does not have the checksum it was registered with", "nothing was saved"]
    );
    assert_eq!(h.wait().unwrap_err().code(), "checksum_mismatch", "asked again");
    // The error was taken by the handle: the queue does not give it again.
    saves.wait(&mut m).unwrap();
    let md = read(&root);
    assert_eq!((latest_epoch(&md), entries(&md)), (Some(1), before.clone()), "{how:?}: the previous model stays");
    assert!(!root.join("data/checkpoints/2.pt").exists());
    assert_eq!(files_with(b.dir.path(), &new_bytes), vec![file.clone()], "{how:?}: the new bytes are stored nowhere");

    // Registered again, with its new content: saved (the queue goes on after a failure).
    m.checkpoint_collection.remove(&Reference::Int(2)).unwrap();
    m.add_checkpoint(Checkpoint::new(2, Some(&file), Some(2), None).unwrap()).unwrap();
    saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap().wait().unwrap();
    saves.wait(&mut m).unwrap();
    let md = read(&root);
    assert_eq!(latest_epoch(&md), Some(2));
    assert_eq!(md.model.training.checkpoints[&Reference::Int(2)].hash, Md5::of_bytes(&new_bytes));
}

#[test]
fn a_checkpoint_rewritten_with_another_size_fails_its_background_save() {
    a_rewritten_checkpoint_fails_its_background_save(Rewrite::OtherSize);
}

#[test]
fn a_checkpoint_rewritten_with_the_same_size_fails_its_background_save() {
    a_rewritten_checkpoint_fails_its_background_save(Rewrite::SameSize);
}

/// The module documentation promises that a rewritten file is never stored with other bytes
/// than the registered ones; a rewrite that keeps the size and the modification time (which
/// `cp -p`, `rsync -t`, `tar x` or a coarse clock give) must not make the save trust it.
#[test]
fn a_checkpoint_rewritten_with_the_same_size_and_time_fails_its_background_save() {
    a_rewritten_checkpoint_fails_its_background_save(Rewrite::SameSizeAndTime);
}

/// The same with the new file renamed over the registered one (another inode).
#[test]
fn a_checkpoint_replaced_by_a_file_of_the_same_size_and_time_fails_its_background_save() {
    a_rewritten_checkpoint_fails_its_background_save(Rewrite::RenamedSameSizeAndTime);
}

/// The configuration file is part of the model (the metadata records its MD5): rewritten after
/// the call (a trainer writing the next state's configuration while the save waits), the
/// queued save writes it as it was at the call, or refuses (`ChecksumMismatch` naming it and
/// the previous model kept); never the later content under the state of the call.
#[test]
fn a_configuration_rewritten_after_the_call_is_saved_as_it_was_at_the_call() {
    let b = Bench::new();
    let mut m = b.model("config-1");
    let root = saved(&b, &mut m, "model");
    let config = b.dir.path().join("config.py");
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    epoch(&b, &mut m, 1, 1000);
    let h = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap();
    fs::write(&config, b"lr = 0.2 # the configuration of the next state\n").unwrap();
    drop(lock);
    let outcome = h.wait();
    let md = read(&root);
    let stored = fs::read(root.join(&md.model.configuration.path)).unwrap();
    match outcome {
        Ok(()) => {
            assert_eq!(latest_epoch(&md), Some(1));
            assert_eq!(
                String::from_utf8_lossy(&stored),
                "lr = 0.1\n",
                "the save of epoch 1 stored the configuration written after its call"
            );
        }
        Err(e) => {
            assert_err!(e, Error::ChecksumMismatch { path, .. } if path == &config, &["config.py"]);
            assert_eq!((latest_epoch(&md), stored.as_slice()), (Some(0), &b"lr = 0.1\n"[..]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Errors are never lost
// ---------------------------------------------------------------------------------------------

/// Options whose save gives up at once on a held lock (`Error::Locked`).
fn impatient() -> SaveOptions {
    SaveOptions::new().lock_timeout(Duration::from_millis(20))
}

/// Queue a save of `m` to `root` (whose lock the caller holds) that fails with `Locked`, drop
/// its handle, and wait until the queue is idle (its error then waits for someone).
fn failing_save(saves: &SaveQueue, m: &mut Model, root: &Path) {
    let handle = saves.save(m, &local(root), &impatient()).unwrap();
    drop(handle);
    wait_until("the failing save ends", || saves.is_idle());
}

fn assert_locked(err: &Error, root: &Path) {
    assert_err!(err, Error::Locked { path, .. } if path == root, &["is being written by", "gave up after"]);
}

/// A save that failed and whose handle was dropped: the next `save` call returns its error
/// and queues nothing (nor prunes the model); the call after that queues again.
#[test]
fn an_error_of_a_dropped_handle_is_returned_by_the_next_save_which_queues_nothing() {
    let b = Bench::new();
    let mut m = b.model("errors-1");
    epoch(&b, &mut m, 1, 100);
    let root = saved(&b, &mut m, "model");
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    epoch(&b, &mut m, 2, 100);
    failing_save(&saves, &mut m, &root);
    drop(lock);

    epoch(&b, &mut m, 3, 100);
    let pruning = SaveOptions::new().retention(Retention::new().last(1));
    let err = saves.save(&mut m, &local(&root), &pruning).unwrap_err();
    assert_locked(&err, &root);
    assert_eq!(saves.pending(), 0, "nothing queued");
    assert!(saves.is_idle());
    assert_eq!(m.checkpoint_collection.len(), 3, "the refused call did not prune the model either");
    assert_eq!(latest_epoch(&read(&root)), Some(1), "nothing saved");
    // The error was given once: the next call queues, and saves.
    let h = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap();
    h.wait().unwrap();
    saves.wait(&mut m).unwrap();
    assert_eq!(entries(&read(&root)), model_entries(&m));
    assert_eq!(latest_epoch(&read(&root)), Some(3));
}

/// With no next save, `wait` returns the error nobody took (once); a handle asked after the
/// queue gave its error still returns it, every time; a handle asked first takes it from the
/// queue.
#[test]
fn an_error_nobody_took_is_returned_by_wait_and_a_handle_gives_it_every_time() {
    let b = Bench::new();
    let mut m = b.model("errors-2");
    let root = saved(&b, &mut m, "model");
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    epoch(&b, &mut m, 1, 100);
    let h = saves.save(&mut m, &local(&root), &impatient()).unwrap();
    wait_until("the failing save ends", || saves.is_idle());
    assert!(h.is_finished());
    assert_locked(&saves.wait(&mut m).unwrap_err(), &root);
    saves.wait(&mut m).unwrap();
    // The handle still gives it, each time.
    assert_locked(&h.wait().unwrap_err(), &root);
    assert_locked(&h.wait().unwrap_err(), &root);
    assert!(h.wait_timeout(Duration::ZERO));

    // A handle that took the error first: the queue has none to give.
    let h = saves.save(&mut m, &local(&root), &impatient()).unwrap();
    assert_locked(&h.wait().unwrap_err(), &root);
    wait_until("the queue is idle", || saves.is_idle());
    assert!(saves.take_error().is_none());
    saves.wait(&mut m).unwrap();
    let drained = saves.drain();
    assert!(drained.error.is_none() && drained.saved_to.is_none());
    drop(lock);
    assert_eq!(latest_epoch(&read(&root)), Some(0));
}

/// Two failed saves nobody asked (both queued before the first fails: each registers a
/// checkpoint whose file is rewritten before its copy, the first held at the lock): their
/// errors are returned oldest first, one per call, by `save`, `wait`, `take_error` and
/// `drain` alike.
#[test]
fn two_errors_are_returned_oldest_first_one_per_call() {
    let b = Bench::new();
    for round in 0..4 {
        let mut m = b.model("errors-3");
        let first = saved(&b, &mut m, &format!("first-{round}"));
        let second = b.root(&format!("second-{round}"));
        let saves = SaveQueue::new();
        let lock = hold_lock(&first);
        let (fa, fb) = (b.work(&format!("a-{round}.pt")), b.work(&format!("b-{round}.pt")));
        fs::write(&fa, content(1, 1000)).unwrap();
        fs::write(&fb, content(2, 1000)).unwrap();
        m.register_epoch(Some(1)).unwrap();
        m.add_checkpoint(Checkpoint::new(1, Some(&fa), Some(1), None).unwrap()).unwrap();
        drop(saves.save(&mut m, &local(&first), &SaveOptions::new()).unwrap());
        rewrite(&fa, Rewrite::OtherSize);
        m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
        m.register_epoch(Some(2)).unwrap();
        m.add_checkpoint(Checkpoint::new(2, Some(&fb), Some(2), None).unwrap()).unwrap();
        drop(saves.save(&mut m, &local(&second), &SaveOptions::new()).unwrap());
        rewrite(&fb, Rewrite::OtherSize);
        drop(lock);
        wait_until("both saves end", || saves.is_idle());
        let (e1, e2) = match round {
            0 => (saves.wait(&mut m).unwrap_err(), saves.wait(&mut m).unwrap_err()),
            1 => (
                saves.save(&mut m, &local(&first), &SaveOptions::new()).unwrap_err(),
                saves.save(&mut m, &local(&first), &SaveOptions::new()).unwrap_err(),
            ),
            2 => (saves.take_error().unwrap(), saves.take_error().unwrap()),
            _ => (saves.drain().error.unwrap(), saves.drain().error.unwrap()),
        };
        assert_err!(e1, Error::ChecksumMismatch { path, .. } if path == &fa, &["a-"]);
        assert_err!(e2, Error::ChecksumMismatch { path, .. } if path == &fb, &["b-"]);
        assert!(saves.take_error().is_none(), "round {round}: a third error");
        saves.wait(&mut m).unwrap();
        assert_eq!(saves.pending(), 0);
        assert_eq!(latest_epoch(&read(&first)), Some(0));
        assert!(!second.join("metadata.yaml").exists());
    }
}

/// A failed save's error is taken by a caller polling the queue (`take_error`, as the next
/// `save` does) at any instant of the save's end, many times over: each error is returned
/// exactly once, never lost in between (the handles are dropped: only the queue can give it).
#[test]
fn an_error_taken_while_its_save_ends_is_never_lost() {
    let b = Bench::new();
    let mut m = b.model("errors-4");
    let root = saved(&b, &mut m, "model");
    let _lock = hold_lock(&root);
    let saves = SaveQueue::new();
    let options = SaveOptions::new().lock_timeout(Duration::ZERO);
    let mut lost = Vec::new();
    let mut taken_while_running = 0;
    for i in 0..1000 {
        drop(saves.save(&mut m, &local(&root), &options).unwrap());
        let mut got = 0;
        loop {
            let idle = saves.is_idle();
            if let Some(e) = saves.take_error() {
                assert_locked(&e, &root);
                got += 1;
                taken_while_running += usize::from(!idle);
            }
            if idle {
                break;
            }
        }
        if got != 1 {
            lost.push((i, got));
        }
    }
    println!("errors taken while their save was still ending: {taken_while_running} of 1000");
    assert!(lost.is_empty(), "(iteration, errors returned) where not exactly one: {lost:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Timed waits
// ---------------------------------------------------------------------------------------------

/// A save held at the lock: not finished, `wait_timeout` false at 0 s and after a while,
/// `drain_timeout` `None`; released: finished, `wait_timeout` true, `drain_timeout` gives the
/// saved state and where it saved (once: a second drain has none).
#[test]
fn wait_timeout_is_finished_and_drain_timeout_follow_a_slow_save() {
    let b = Bench::new();
    let mut m = b.model("timed-1");
    let root = saved(&b, &mut m, "model");
    let saves = SaveQueue::new();
    let lock = hold_lock(&root);
    epoch(&b, &mut m, 1, 1000);
    let h = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap();
    assert!(!h.is_finished());
    assert!(!h.wait_timeout(Duration::ZERO));
    assert!(!h.wait_timeout(Duration::from_millis(100)));
    assert!(saves.drain_timeout(Duration::ZERO).is_none());
    assert!(saves.drain_timeout(Duration::from_millis(100)).is_none());
    assert!(!h.is_finished() && !saves.is_idle() && saves.pending() == 1);
    assert!(format!("{h:?}").contains("finished: false"), "{h:?}");
    drop(lock);
    assert!(h.wait_timeout(DEADLINE));
    assert!(h.is_finished());
    let drained = saves.drain_timeout(DEADLINE).expect("the queue drained");
    assert!(drained.error.is_none());
    assert_eq!(drained.saved_to, Some(local(&root)));
    let state = drained.state.expect("a save ran").expect("it left a saved state");
    assert!(saves.drain_timeout(Duration::ZERO).is_some_and(|d| d.state.is_none() && d.saved_to.is_none()));
    h.wait().unwrap();
    // The state handed over by drain makes the model's next save accepted.
    m.set_saved_state(Some(state));
    epoch(&b, &mut m, 2, 1000);
    m.save(&root, &SaveOptions::new()).unwrap();
    assert_eq!(latest_epoch(&read(&root)), Some(2));
}

/// A genuinely slow save (a 64 MiB checkpoint, durable): `wait_timeout` answers whether it
/// finished within the time given, `is_finished` agrees, and it finishes.
#[test]
fn wait_timeout_of_a_large_save() {
    let b = Bench::new();
    let mut m = b.model("timed-2");
    let root = saved(&b, &mut m, "model");
    epoch(&b, &mut m, 1, 64 << 20);
    let saves = SaveQueue::new();
    let h = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap();
    if h.wait_timeout(Duration::ZERO) {
        assert!(h.is_finished());
    }
    assert!(h.wait_timeout(DEADLINE));
    assert!(h.is_finished());
    h.wait().unwrap();
    saves.wait(&mut m).unwrap();
    assert_eq!(entries(&read(&root)), model_entries(&m));
}

// ---------------------------------------------------------------------------------------------
// 7. Refused at the call
// ---------------------------------------------------------------------------------------------

/// A model that would not validate (two checkpoints with files of one name and different
/// contents) is refused by the call, `WouldNotValidate` with the reason: nothing queued.
#[test]
fn a_model_that_would_not_validate_is_refused_at_the_call() {
    let b = Bench::new();
    let mut m = b.model("refused-1");
    let root = saved(&b, &mut m, "model");
    m.register_epoch(Some(2)).unwrap();
    let other = b.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("1.pt"), b"other weights").unwrap();
    fs::write(b.work("1.pt"), b"weights").unwrap();
    m.add_checkpoint(Checkpoint::new(1, Some(b.work("1.pt")), Some(1), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new(2, Some(other.join("1.pt")), Some(2), None).unwrap()).unwrap();
    let saves = SaveQueue::new();
    let err = saves.save(&mut m, &local(&root), &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "checkpoints.2",
        &["cannot save: the model would not be valid", "both have files named", "with different contents"]
    );
    assert_eq!(saves.pending(), 0);
    assert!(saves.is_idle());
    assert!(saves.take_error().is_none(), "the refusal was the call's answer, not a queued error");
    saves.wait(&mut m).unwrap();
    assert_eq!(latest_epoch(&read(&root)), Some(0));
    // A policy that cannot be used is refused at the call too.
    let err = saves.save(&mut m, &local(&root), &SaveOptions::new().retention(Retention::new())).unwrap_err();
    assert_err!(err, Error::InvalidRetention { field: "rules", .. }, &["invalid retention policy"]);
    assert_eq!(saves.pending(), 0);
}

// ---------------------------------------------------------------------------------------------
// 8. Retention
// ---------------------------------------------------------------------------------------------

/// Twenty epochs, each saved in the background with `last(3)`: the model never holds more
/// than 3 checkpoints after a call, and in the end the folder holds exactly 18, 19, 20 (files
/// and metadata), as the model does; strictly valid.
#[test]
fn retention_in_a_background_loop_keeps_the_last_three_checkpoints() {
    let b = Bench::new();
    let mut m = b.model("retention-1");
    let root = b.root("model");
    let options = SaveOptions::new().retention(Retention::new().last(3));
    let saves = SaveQueue::new();
    for e in 1..=20 {
        epoch(&b, &mut m, e, 2000 + e as usize);
        let _ = saves.save(&mut m, &local(&root), &options).unwrap();
        assert!(m.checkpoint_collection.len() <= 3, "epoch {e}: {} checkpoints", m.checkpoint_collection.len());
    }
    saves.wait(&mut m).unwrap();
    let refs: Vec<Reference> = [18, 19, 20].map(Reference::Int).to_vec();
    assert_eq!(m.checkpoint_collection.keys().cloned().collect::<Vec<_>>(), refs);
    assert_eq!(m.checkpoint_collection.latest(), Some(&Reference::Int(20)));
    assert_eq!(checkpoint_files(&root), ["18.pt", "19.pt", "20.pt"].map(String::from).into());
    let md = read(&root);
    assert_eq!(entries(&md), model_entries(&m));
    assert_eq!(md.model.training.latest, Some(Reference::Int(20)));
    for e in 18..=20i64 {
        assert_eq!(
            md.model.training.checkpoints[&Reference::Int(e)].hash,
            Md5::of_bytes(&content(e as u64, 2000 + e as usize))
        );
    }
}

/// The same against the S3 test server: ten epochs with `last(2)` to `s3://...`; strictly
/// valid, exactly two checkpoint objects (listed with boto3).
#[test]
fn retention_in_a_background_loop_to_s3_keeps_the_last_two_checkpoints() {
    let Some(s3) = s3_or_skip("background_retention_s3") else { return };
    let b = Bench::new();
    let mut storage = StorageOptions::new();
    for (k, v) in s3.server.storage_options() {
        storage.set(&k, &v).unwrap();
    }
    storage.cache_dir(b.dir.path().join("cache"));
    let at = Location::parse(&s3.url("")).unwrap();
    let options = SaveOptions::new()
        .storage(storage.clone())
        .lock_timeout(Duration::from_secs(30))
        .retention(Retention::new().last(2));
    let mut m = b.model("retention-s3");
    let saves = SaveQueue::new();
    let mut handles = Vec::new();
    for e in 1..=10 {
        epoch(&b, &mut m, e, 3000 + e as usize);
        handles.push(saves.save(&mut m, &at, &options).unwrap());
    }
    saves.wait(&mut m).unwrap();
    for (i, h) in handles.iter().enumerate() {
        h.wait().unwrap_or_else(|e| panic!("save {}: {e}", i + 1));
    }
    let md = validate_at(&at, &ValidateOptions::new().strict(true).storage(storage)).unwrap();
    assert_eq!(latest_epoch(&md), Some(10));
    assert_eq!(entries(&md), model_entries(&m));
    assert_eq!(md.model.training.checkpoints.keys().cloned().collect::<Vec<_>>(), [9, 10].map(Reference::Int).to_vec());
    let objects: Vec<String> = s3.list("data/checkpoints").into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(objects, ["data/checkpoints/10.pt", "data/checkpoints/9.pt"]);
    let stored = s3.get("data/checkpoints/10.pt").unwrap();
    assert_eq!(Md5::of_bytes(&stored), Md5::of_bytes(&content(10, 3010)));
}

// ---------------------------------------------------------------------------------------------
// 9. Two locations in one queue
// ---------------------------------------------------------------------------------------------
