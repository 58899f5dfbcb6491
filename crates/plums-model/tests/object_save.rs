//! Saving models to object storage, on the real S3 server (SeaweedFS, started by `scripts/test`
//! through `scripts/s3-server`; see `tests/common/s3.rs`): the save guarantees of
//! docs/RELIABILITY.md section 8. What the store holds is read back with boto3 (independently
//! of the code under test), and with `Model::load_at`.
//!
//! Skipped without a server unless `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::path::Path;

use common::s3::{s3_or_skip, S3Server, S3Test};
use plums_model::{
    check_at, Checkpoint, Error, LoadOptions, Location, Model, OffenceKind, Producer, SaveOptions, StorageErrorKind,
    StorageOptions, ValidateOptions, Version, LOCK_FILE, SAVE_MARKER,
};

/// Options reaching the test server, with the cache in `cache`.
fn options(server: &S3Server, cache: &Path) -> StorageOptions {
    let mut o = StorageOptions::new();
    for (k, v) in server.storage_options() {
        o.set(&k, &v).unwrap();
    }
    o.cache_dir(cache);
    o
}

/// A producer's working folder: a configuration and checkpoint files written on demand.
struct Trainer {
    dir: tempfile::TempDir,
    storage: StorageOptions,
}

impl Trainer {
    fn new(s3: &S3Test) -> Trainer {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.py"), b"lr = 0.1\n").unwrap();
        let storage = options(&s3.server, &dir.path().join("cache"));
        Trainer { dir, storage }
    }

    fn model(&self, id: &str) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.dir.path().join("config.py"));
        let mut m = Model::new(id, producer.unwrap());
        m.name = Some("detector".into());
        m.register_training_start(0).unwrap();
        m
    }

    /// A checkpoint file for `epoch` with `size` bytes derived from `seed`.
    fn checkpoint(&self, epoch: i64, size: usize, seed: u8) -> Checkpoint {
        let path = self.dir.path().join(format!("ck-{epoch}-{seed}.pt"));
        let bytes: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        fs::write(&path, bytes).unwrap();
        let named = self.dir.path().join(format!("{epoch}.pt"));
        fs::rename(&path, &named).unwrap();
        Checkpoint::new(epoch, Some(&named), Some(epoch), None).unwrap()
    }

    fn save(&self) -> SaveOptions {
        SaveOptions::new().storage(self.storage.clone()).lock_timeout(std::time::Duration::from_secs(5))
    }

    fn load(&self) -> LoadOptions {
        LoadOptions::new().storage(self.storage.clone())
    }
}

/// The keys under the test's prefix, sorted.
fn keys(s3: &S3Test) -> Vec<String> {
    s3.list("").into_iter().map(|(k, _, _)| k).collect()
}

/// A collection's references, epochs and checksums (paths differ: the cache's files).
fn entries(m: &Model) -> Vec<(String, Option<i64>, String)> {
    m.checkpoint_collection.iter().map(|(r, c)| (r.to_string(), c.epoch, c.hash.to_string())).collect()
}

fn at(s3: &S3Test) -> Location {
    Location::parse(&s3.url("")).unwrap()
}

/// An epoch of a training loop: register it, add its checkpoint, save.
fn epoch(t: &Trainer, m: &mut Model, s3: &S3Test, e: i64, size: usize) {
    m.register_epoch(Some(e)).unwrap();
    m.add_checkpoint(t.checkpoint(e, size, e as u8)).unwrap();
    m.save_at(&at(s3), &t.save()).unwrap();
}

#[test]
fn a_training_loop_saves_to_a_bucket_and_loads_back_strictly() {
    let Some(s3) = s3_or_skip("a_training_loop_saves") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("loop-1");
    m.save_at(&at(&s3), &t.save()).unwrap();
    for e in 1..=3 {
        epoch(&t, &mut m, &s3, e, 1000 + e as usize);
    }
    // One more epoch over 16 MiB: a multipart upload.
    epoch(&t, &mut m, &s3, 4, 17 << 20);
    assert_eq!(
        keys(&s3),
        [
            "config.py",
            "data/build_parameters.yaml",
            "data/checkpoints/1.pt",
            "data/checkpoints/2.pt",
            "data/checkpoints/3.pt",
            "data/checkpoints/4.pt",
            "metadata.yaml"
        ],
        "no lock and no marker left"
    );
    let loaded = Model::load_at(&at(&s3), &t.load()).unwrap();
    assert_eq!(entries(&loaded), entries(&m));
    assert_eq!(loaded.training.record(), m.training.record());
    let stored = s3.get("data/checkpoints/4.pt").unwrap();
    assert_eq!(stored, fs::read(t.dir.path().join("4.pt")).unwrap());
}

#[test]
fn a_save_sends_only_what_the_bucket_lacks() {
    let Some(s3) = s3_or_skip("a_save_sends_only_what") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("incr-1");
    epoch(&t, &mut m, &s3, 1, 5000);
    epoch(&t, &mut m, &s3, 2, 5000);
    let before = t.storage.stats();
    epoch(&t, &mut m, &s3, 3, 7000);
    let after = t.storage.stats();
    // The lock, the new checkpoint, then metadata.yaml (the once-per-store check of
    // conditional writes is done), one listing (every object's ETag: nothing replaced behind
    // the model's back is trusted), and the lock's delete.
    assert_eq!((after.puts - before.puts, after.lists - before.lists), (3, 1), "{before:?} {after:?}");
    assert_eq!(after.deletes - before.deletes, 1);
    assert_eq!(after.gets, before.gets, "the model knows that version of metadata.yaml: nothing downloaded");

    // A new model object loaded from the bucket sends nothing it already holds either.
    let mut loaded = Model::load_at(&at(&s3), &t.load().strict(false)).unwrap();
    loaded.register_epoch(Some(4)).unwrap();
    loaded.add_checkpoint(t.checkpoint(4, 100, 4)).unwrap();
    let before = t.storage.stats();
    loaded.save_at(&at(&s3), &t.save()).unwrap();
    let after = t.storage.stats();
    assert_eq!(after.puts - before.puts, 3, "checkpoint 4, metadata.yaml, the lock");
    Model::load_at(&at(&s3), &t.load()).unwrap();
}

#[test]
fn a_lost_update_is_refused_and_nothing_is_lost() {
    let Some(s3) = s3_or_skip("a_lost_update_is_refused") else { return };
    let t = Trainer::new(&s3);
    let mut a = t.model("two-writers");
    epoch(&t, &mut a, &s3, 1, 100);
    let mut b = Model::load_at(&at(&s3), &t.load()).unwrap();
    epoch(&t, &mut a, &s3, 2, 100);
    b.register_epoch(Some(5)).unwrap();
    b.add_checkpoint(t.checkpoint(5, 100, 5)).unwrap();
    let err = b.save_at(&at(&s3), &t.save()).unwrap_err();
    assert!(matches!(err, Error::ConcurrentChange { .. }), "{err:?}");
    assert!(!keys(&s3).iter().any(|k| k == "data/checkpoints/5.pt"), "the refused save removed what it sent");
    let loaded = Model::load_at(&at(&s3), &t.load()).unwrap();
    assert_eq!(loaded.checkpoint_collection.len(), 2, "a's two epochs are there");
}

#[test]
fn a_save_over_another_model_or_foreign_objects_is_refused() {
    let Some(s3) = s3_or_skip("a_save_over_another_model") else { return };
    let t = Trainer::new(&s3);
    let mut a = t.model("model-a");
    a.save_at(&at(&s3), &t.save()).unwrap();
    let mut b = t.model("model-b");
    let err = b.save_at(&at(&s3), &t.save()).unwrap_err();
    assert!(matches!(&err, Error::OtherModel { found_id, .. } if found_id == "model-a"), "{err:?}");

    let foreign = s3.child("foreign");
    foreign.put("notes.txt", b"mine");
    let err = b.save_at(&at(&foreign), &t.save()).unwrap_err();
    assert!(matches!(err, Error::ForeignFolder { .. }), "{err:?}");
    b.save_at(&at(&foreign), &t.save().force(true)).unwrap();
    assert_eq!(foreign.get("notes.txt").unwrap(), b"mine", "a foreign object is never touched");
    Model::load_at(&at(&foreign), &t.load()).unwrap();
}

#[test]
fn a_replacing_save_marks_the_model_until_it_commits_and_the_next_save_repairs() {
    let Some(s3) = s3_or_skip("a_replacing_save_marks") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("replace-1");
    epoch(&t, &mut m, &s3, 1, 100);
    // A marker left by a writer that stopped while it replaced objects.
    s3.put(SAVE_MARKER, b"a save replacing objects of this model started");
    let check = check_at(&at(&s3), &ValidateOptions::new().storage(t.storage.clone())).unwrap();
    assert_eq!(check.offences.len(), 1, "{:?}", check.offences);
    assert_eq!((check.offences[0].kind, check.offences[0].location.as_str()), (OffenceKind::Tree, SAVE_MARKER));
    assert!(check.offences[0].message.contains("in progress, or was interrupted"), "{}", check.offences[0].message);
    let err = Model::load_at(&at(&s3), &t.load()).unwrap_err();
    assert!(matches!(err, Error::TreeValidation(_)), "{err:?}");
    // The next save rewrites everything and removes the marker.
    m.build_parameters = plums_model::parse_yaml("layers: 3\n").unwrap();
    m.save_at(&at(&s3), &t.save()).unwrap();
    assert!(!keys(&s3).iter().any(|k| k == SAVE_MARKER || k == LOCK_FILE));
    let loaded = Model::load_at(&at(&s3), &t.load()).unwrap();
    assert_eq!(loaded.build_parameters, m.build_parameters);
}

#[test]
fn a_changed_configuration_is_replaced_and_no_marker_stays() {
    let Some(s3) = s3_or_skip("a_changed_configuration") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("cfg-1");
    epoch(&t, &mut m, &s3, 1, 100);
    fs::write(t.dir.path().join("config.py"), b"lr = 0.2\n").unwrap();
    m.save_at(&at(&s3), &t.save()).unwrap();
    assert_eq!(s3.get("config.py").unwrap(), b"lr = 0.2\n");
    assert!(!keys(&s3).iter().any(|k| k == SAVE_MARKER));
    Model::load_at(&at(&s3), &t.load()).unwrap();
}

#[test]
fn a_removed_checkpoint_loses_its_object_and_a_wrong_file_is_never_stored() {
    let Some(s3) = s3_or_skip("a_removed_checkpoint") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("rm-1");
    epoch(&t, &mut m, &s3, 1, 100);
    epoch(&t, &mut m, &s3, 2, 100);
    m.checkpoint_collection.remove(&plums_model::Reference::Int(1)).unwrap();
    m.save_at(&at(&s3), &t.save()).unwrap();
    assert!(!keys(&s3).iter().any(|k| k == "data/checkpoints/1.pt"), "{:?}", keys(&s3));
    // A checkpoint whose file changed after it was registered.
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(t.checkpoint(3, 100, 3)).unwrap();
    fs::write(t.dir.path().join("3.pt"), b"overwritten by the trainer").unwrap();
    let err = m.save_at(&at(&s3), &t.save()).unwrap_err();
    assert!(matches!(&err, Error::ChecksumMismatch { path, .. } if path.ends_with("3.pt")), "{err:?}");
    assert!(!keys(&s3).iter().any(|k| k == "data/checkpoints/3.pt" || k == LOCK_FILE), "{:?}", keys(&s3));
    Model::load_at(&at(&s3), &t.load()).unwrap();
}

#[test]
fn a_store_error_names_the_url_and_the_kind() {
    let Some(s3) = s3_or_skip("a_store_error_names") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("err-1");
    let mut wrong = t.storage.clone();
    wrong.set("secret_access_key", "not-the-secret-at-all").unwrap();
    let err = m.save_at(&at(&s3), &t.save().storage(wrong)).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::PermissionDenied), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("not-the-secret-at-all"));
}

/// The lock object this process would write (see `object_lock.rs`): what a save leaves when
/// the delete of its lock failed (the store went away after the commit).
fn own_lock_text() -> String {
    let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
    let stat = read("/proc/self/stat");
    let start = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(19)).unwrap_or("").to_owned();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let pidns = fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy().into_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!(
        "pid {} on {host} since unix time {now}\nexpires {}\nboot {}\npidns {pidns}\nstart {start}\n",
        std::process::id(),
        now + 60,
        read("/proc/sys/kernel/random/boot_id")
    )
}

#[test]
fn a_lock_left_by_this_process_does_not_block_its_next_save() {
    let Some(s3) = s3_or_skip("a_lock_left_by_this_process") else { return };
    let t = Trainer::new(&s3);
    let mut m = t.model("own-lock");
    epoch(&t, &mut m, &s3, 1, 100);
    s3.put(LOCK_FILE, own_lock_text().as_bytes());
    let started = std::time::Instant::now();
    epoch(&t, &mut m, &s3, 2, 100);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "no wait for a lease: {:?}", started.elapsed());
    assert!(!keys(&s3).iter().any(|k| k == LOCK_FILE));
    // Another process's live lock is still respected: the same pid on another machine, its
    // lease running.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    s3.put(LOCK_FILE, own_lock_text().replace(&format!(" on {host} "), " on elsewhere ").as_bytes());
    m.register_epoch(Some(3)).unwrap();
    let err = m.save_at(&at(&s3), &t.save().lock_timeout(std::time::Duration::from_millis(300))).unwrap_err();
    assert!(matches!(&err, Error::Locked { holder, .. } if holder.host.as_deref() == Some("elsewhere")), "{err:?}");
}
