//! The library's own save and load behaviour (PMF-SPEC section 4 `save` rules, and what we add):
//! destination rules and their error variants, lazy (incremental) saves, initialisations,
//! refusals before anything is written, round trips, concurrent writers, crash-safety leftovers,
//! validation reporting every offence, and hostile metadata paths that must not make us read
//! outside the model root. No Python needed.

mod common;

use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{guarded, inotify_events, inotify_watch, mkfifo, snapshot};
use plums_model::{
    check, validate, Checkpoint, Error, Initialisation, InitialisationMetadata, LoadOptions, Mapping, Md5, Model,
    Offence, OffenceKind, Producer, Reference, SaveOptions, Status, Timestamp, Training, TrainingRecord,
    ValidateOptions, Value, Version,
};
use tempfile::TempDir;

const WATCHDOG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

struct Fx {
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        fx.file("inputs/config.py", b"lr = 0.01\n");
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `inputs`-side file `rel` (relative to the temporary folder).
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    fn model(&self, id: &str) -> Model {
        let mut bp = Mapping::new();
        bp.insert("backbone".into(), "resnet50".into());
        bp.insert("classes".into(), Value::Int(3));
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.path("inputs/config.py"));
        let mut m = Model::new(id, producer.unwrap());
        m.name = Some("detector".into());
        m.build_parameters = Value::Map(bp);
        m
    }

    /// A checkpoint for epoch `epoch`, file `inputs/<epoch>.h5`.
    fn ckpt(&self, reference: impl Into<Reference>, epoch: i64) -> Checkpoint {
        let p = self.file(&format!("inputs/{epoch}.h5"), format!("weights of epoch {epoch}\n").as_bytes());
        Checkpoint::new(reference, Some(&p), Some(epoch), None).unwrap()
    }

    /// A running model trained for `epochs` epochs, one checkpoint per epoch (references 1..).
    fn trained(&self, id: &str, epochs: i64) -> Model {
        let mut m = self.model(id);
        m.register_training_start(0).unwrap();
        for e in 1..=epochs {
            m.register_epoch(Some(e)).unwrap();
            m.add_checkpoint(self.ckpt(e, e)).unwrap();
        }
        m
    }
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino()
}

/// Assert that `err` is an operating-system error of kind `kind` whose message contains every fragment.
fn assert_io(err: &Error, kind: ErrorKind, fragments: &[&str]) {
    assert_err!(err, Error::Io { source, .. } if source.kind() == kind, fragments);
}

fn replace_in(path: &Path, old: &str, new: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(old), "{old:?} not in {}:\n{text}", path.display());
    fs::write(path, text.replacen(old, new, 1)).unwrap();
}

fn offences(root: &Path, strict: bool, checkpoints: bool) -> Vec<Offence> {
    check(root, &ValidateOptions::new().strict(strict).checkpoints(checkpoints))
        .unwrap_or_else(|e| panic!("check {}: {e}", root.display()))
        .offences
}

fn has(offences: &[Offence], kind: OffenceKind, location: &str, fragment: &str) -> bool {
    offences.iter().any(|o| o.kind == kind && o.location == location && o.message.contains(fragment))
}

fn staging_leftovers(dest: &Path) -> Vec<String> {
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!(".{name}.pmf-save-");
    fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix) || n.contains(".pmf-save-"))
        .collect()
}

fn not_lock(rel: &Path) -> bool {
    rel == Path::new(".pmf.lock")
}

// ---------------------------------------------------------------------------------------------
// Destination rules
// ---------------------------------------------------------------------------------------------

#[test]
fn saving_to_a_file_path_is_refused() {
    let fx = Fx::new();
    let dest = fx.file("dest", b"a file, not a folder");
    let err = fx.model("m1").save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(err, Error::DestinationIsFile { path } if *path == dest, &["is a file"]);
    let err = fx.model("m1").save(&dest, &SaveOptions::new().force(true)).unwrap_err();
    assert_err!(err, Error::DestinationIsFile { path } if *path == dest, &["is a file"]);
    assert_eq!(fs::read(&dest).unwrap(), b"a file, not a folder");
}

#[test]
fn a_foreign_file_where_pmf_needs_a_folder_is_never_replaced() {
    // Saving with force into a folder holding a regular file named `data`: the reference fails,
    // and so do we, with the file intact (replacing it would lose someone's data).
    let fx = Fx::new();
    let dest = fx.path("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("data"), b"precious").unwrap();
    let mut m = fx.trained("m1", 1);
    let err = m.save(&dest, &SaveOptions::new().force(true)).unwrap_err();
    assert_err!(
        err,
        Error::Obstructed { path, found: "a file", needed: "a folder" } if *path == dest.canonicalize().unwrap().join("data"),
        kind = ErrorKind::AlreadyExists,
        &["data is a file", "PMF needs a folder there"]
    );
    assert_eq!(fs::read(dest.join("data")).unwrap(), b"precious");
    assert!(staging_leftovers(&dest).is_empty());
}

#[test]
fn saving_into_a_foreign_folder_needs_force_and_keeps_its_files() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let notes = fx.file("dest/notes.txt", b"my notes");
    let deep = fx.file("dest/sub/x.bin", b"\x00\x01");
    let before = (ino(&notes), ino(&deep), fs::metadata(&notes).unwrap().mtime_nsec());

    let err = fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::ForeignFolder { path } if *path == dest,
        kind = ErrorKind::AlreadyExists,
        &["not a PMF model", "force"]
    );
    assert!(
        !dest.join("metadata.yaml").exists() && !dest.join("data").exists(),
        "a refused save wrote into the folder"
    );

    fx.trained("m1", 2).save(&dest, &SaveOptions::new().force(true)).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(fs::read(&notes).unwrap(), b"my notes");
    assert_eq!(fs::read(&deep).unwrap(), b"\x00\x01");
    assert_eq!(
        (ino(&notes), ino(&deep), fs::metadata(&notes).unwrap().mtime_nsec()),
        before,
        "the foreign files were rewritten (inode or mtime changed)"
    );
}

#[test]
fn saving_into_an_empty_folder_needs_no_force() {
    // A documented deviation from the reference (README: "Saving into an existing empty folder
    // needs no force").
    let fx = Fx::new();
    let dest = fx.path("empty");
    fs::create_dir(&dest).unwrap();
    fx.trained("m1", 1).save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
}

#[test]
fn saving_over_a_model_with_another_id_is_refused_even_with_force() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.trained("first-id", 2).save(&dest, &SaveOptions::new()).unwrap();
    let before = snapshot(&dest, &not_lock);
    for force in [false, true] {
        let err = fx.trained("second-id", 1).save(&dest, &SaveOptions::new().force(force)).unwrap_err();
        assert_err!(
            err,
            Error::OtherModel { path, found_id, saving_id }
                if *path == dest && found_id == "first-id" && saving_id == "second-id",
            kind = ErrorKind::AlreadyExists,
            &["different PMF model", "\"first-id\"", "\"second-id\""]
        );
    }
    assert_eq!(snapshot(&dest, &not_lock), before, "a refused save changed the model");
    assert!(staging_leftovers(&dest).is_empty());
}

#[test]
fn saving_over_invalid_metadata_is_refused_even_with_force() {
    let fx = Fx::new();
    for (what, text) in [
        ("not YAML", "format: {version: 1.0.0\nmodel: [\n"),
        ("not the schema", "format: 1\nmodel: {id: m1}\n"),
        ("empty", ""),
    ] {
        let dest = fx.path(&format!("dest-{}", what.replace(' ', "-")));
        fx.file(&format!("dest-{}/metadata.yaml", what.replace(' ', "-")), text.as_bytes());
        fx.file(&format!("dest-{}/keep.txt", what.replace(' ', "-")), b"keep");
        for force in [false, true] {
            let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new().force(force)).unwrap_err();
            assert_err!(
                err,
                Error::InvalidDestination { path, .. } if *path == dest.join("metadata.yaml"),
                kind = ErrorKind::InvalidData,
                &["not a valid PMF metadata file"]
            );
        }
        assert_eq!(fs::read_to_string(dest.join("metadata.yaml")).unwrap(), text, "{what}: metadata.yaml was changed");
        assert!(!dest.join("data").exists(), "{what}: a refused save wrote data/");
    }
}

#[test]
fn saving_over_the_same_model_does_not_rewrite_unchanged_files() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let ck1 = dest.join("data/checkpoints/1.h5");
    let ck2 = dest.join("data/checkpoints/2.h5");
    let cfg = dest.join("config.py");
    let inodes = (ino(&ck1), ino(&ck2), ino(&cfg));

    // 1. The same object, one more epoch.
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!((ino(&ck1), ino(&ck2), ino(&cfg)), inodes, "the same model's save rewrote unchanged files");

    // 2. A fresh object with the same id (nothing known of the folder): files are checked, then reused.
    let mut fresh = fx.trained("m1", 4);
    fresh.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!((ino(&ck1), ino(&ck2), ino(&cfg)), inodes, "a save of an equal model rewrote unchanged files");
    assert_eq!(validate(&dest, &ValidateOptions::new().strict(true)).unwrap().model.training.checkpoints.len(), 4);

    // 3. A loaded copy.
    let mut loaded = Model::load(&dest, &LoadOptions::new()).unwrap();
    loaded.register_epoch(Some(5)).unwrap();
    loaded.add_checkpoint(fx.ckpt(5, 5)).unwrap();
    loaded.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!((ino(&ck1), ino(&ck2), ino(&cfg)), inodes, "a loaded model's save rewrote unchanged files");
    assert!(staging_leftovers(&dest).is_empty());
}

#[test]
fn a_changed_file_with_the_same_name_is_rewritten() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap();
    // Same file name, other content: the destination copy must not be reused.
    let mut m = fx.model("m1");
    m.register_training_start(0).unwrap();
    m.register_epoch(Some(2)).unwrap();
    let other = fx.file("other/2.h5", b"retrained weights of epoch 2\n");
    m.add_checkpoint(Checkpoint::new(2, Some(&other), Some(2), None).unwrap()).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(fs::read(dest.join("data/checkpoints/2.h5")).unwrap(), b"retrained weights of epoch 2\n");
}

#[test]
fn a_corrupted_file_in_the_destination_is_not_reused() {
    // A checkpoint file of the saved model is damaged in place (same size: a bit flip) between
    // two saves of the same model object; the next save must not carry the damaged copy over
    // under the old checksum (what save writes must validate, strictly).
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let ck1 = dest.join("data/checkpoints/1.h5");
    let mut bytes = fs::read(&ck1).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&ck1, &bytes).unwrap();
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    let outcome = m.save(&dest, &SaveOptions::new());
    match outcome {
        Ok(()) => {
            let strict = offences(&dest, true, true);
            assert!(strict.is_empty(), "save succeeded but wrote a model that fails strict validation: {strict:?}");
        }
        Err(e) => panic!("save failed instead of replacing the damaged file from its source: {e}"),
    }
}

#[test]
fn a_file_damaged_after_load_is_not_reused_by_the_loaded_model() {
    // A loaded model trusts the folder as it was when loaded, not changes made after: a file
    // damaged in place after the load (same size) is hashed again, and since the damaged file
    // is the checkpoint's own source, the save refuses instead of recording a wrong checksum.
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    // Files changed within a second before a load are not trusted either (coarse file clocks).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut loaded = Model::load(&dest, &LoadOptions::new().strict(false)).unwrap();
    let ck1 = dest.join("data/checkpoints/1.h5");
    let mut bytes = fs::read(&ck1).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&ck1, &bytes).unwrap();
    loaded.build_parameters = Value::from("changed");
    let err = loaded.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(err, Error::ChecksumMismatch { path, .. } if *path == ck1, &["does not have the checksum it was registered with"]);
    assert!(offences(&dest, false, true).is_empty(), "the refused save left the model intact");
}

#[test]
fn a_source_file_changed_after_registration_is_refused() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    fx.file("inputs/2.h5", b"overwritten after the checkpoint was registered, longer\n");
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::ChecksumMismatch { path, .. } if *path == fx.path("inputs/2.h5"),
        &["does not have the checksum it was registered with"]
    );
    assert!(!dest.join("metadata.yaml").exists(), "a failed save left a metadata.yaml");
    assert!(staging_leftovers(&dest).is_empty(), "a failed save left a staging folder");
}

#[test]
fn same_id_with_an_invalid_tree_needs_force_and_force_replaces_pmf_files_only() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap();
    fs::remove_file(dest.join("data/checkpoints/1.h5")).unwrap();
    let extra = fx.file("dest/extra.txt", b"extra");
    let kept = fx.file("dest/data/extra/keep.bin", b"keep");
    let foreign_ckpt = fx.file("dest/data/checkpoints/notes.txt", b"mine");
    let before = snapshot(&dest, &not_lock);
    let inodes = (ino(&extra), ino(&kept), ino(&foreign_ckpt));

    let err = fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::InvalidSameModel { path, report }
            if *path == dest && report.offences.iter().any(|o| o.location == "data/checkpoints/1.h5"),
        kind = ErrorKind::InvalidData,
        &["invalid PMF model with the same model id", "force"]
    );
    assert_eq!(snapshot(&dest, &not_lock), before, "a refused save changed the folder");

    fx.trained("m1", 2).save(&dest, &SaveOptions::new().force(true)).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(fs::read(dest.join("data/checkpoints/1.h5")).unwrap(), b"weights of epoch 1\n");
    assert_eq!(fs::read(&extra).unwrap(), b"extra");
    assert_eq!(fs::read(&kept).unwrap(), b"keep");
    assert_eq!(fs::read(&foreign_ckpt).unwrap(), b"mine");
    assert_eq!((ino(&extra), ino(&kept), ino(&foreign_ckpt)), inodes, "non-PMF files were rewritten");
    assert!(staging_leftovers(&dest).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Initialisations
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pmf_initialisation_is_saved_recursively_without_checkpoint_files() {
    let fx = Fx::new();
    // The initialisation model: two checkpoints and its own file initialisation.
    let init_src = fx.path("init_model");
    let mut init = fx.trained("init-id", 2);
    init.add_checkpoint({
        let p = fx.file("inputs/best.h5", b"best weights\n");
        Checkpoint::new("best", Some(&p), Some(2), None).unwrap()
    })
    .unwrap();
    let base = fx.file("inputs/imagenet.npz", b"imagenet weights\n");
    init.register_initialisation(&base, None, Some("imagenet")).unwrap();
    init.register_training_end(true).unwrap();
    init.save(&init_src, &SaveOptions::new()).unwrap();

    let mut m = fx.trained("top-id", 1);
    m.register_initialisation(&init_src, Some("best".into()), None).unwrap();
    let dest = fx.path("dest");
    m.save(&dest, &SaveOptions::new()).unwrap();
    let top = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    match &top.model.initialisation {
        Some(InitialisationMetadata::Pmf { name, id, checkpoint, path }) => {
            assert_eq!(
                (name.as_deref(), id.as_str(), checkpoint, path.as_str()),
                (Some("detector"), "init-id", &Reference::from("best"), "data/initialisation")
            );
        }
        other => panic!("expected a PMF initialisation, got {other:?}"),
    }
    let nested_root = dest.join("data/initialisation");
    let nested = validate(&nested_root, &ValidateOptions::new().strict(true).checkpoints(false)).unwrap();
    assert_eq!(nested.model.id, "init-id");
    let refs: Vec<String> = nested.model.training.checkpoints.keys().map(|r| r.quoted()).collect();
    assert_eq!(refs, ["1", "2", "\"best\""]);
    for (r, entry) in &nested.model.training.checkpoints {
        assert_eq!(entry.path, ".", "checkpoint {r} of the initialisation model has a path");
    }
    let ckdir = nested_root.join("data/checkpoints");
    let files: Vec<_> = fs::read_dir(&ckdir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(files.is_empty(), "checkpoint files were saved with the initialisation model: {files:?}");
    // Its own file initialisation is there, copied.
    assert_eq!(fs::read(nested_root.join("data/initialisation/imagenet.npz")).unwrap(), b"imagenet weights\n");
    assert_eq!(fs::read(nested_root.join("config.py")).unwrap(), b"lr = 0.01\n");

    // Loading gives the initialisation model back, with its checkpoint reference, no files.
    let loaded = Model::load(&dest, &LoadOptions::new()).unwrap();
    let Some(Initialisation::Model(init_loaded)) = loaded.initialisation() else {
        panic!("no PMF initialisation after load")
    };
    assert_eq!(init_loaded.id, "init-id");
    assert_eq!(init_loaded.checkpoint(), Some(&Reference::from("best")));
    assert_eq!(init_loaded.checkpoint_collection, init.checkpoint_collection);
    assert!(init_loaded.checkpoint_collection.values().all(|c| c.path.is_none()));
    assert!(
        matches!(init_loaded.initialisation(), Some(Initialisation::File(c)) if c.name == Reference::from("imagenet"))
    );

    // Saving the loaded model again (its initialisation has no checkpoint files) works.
    let again = fx.path("again");
    let mut loaded = loaded;
    loaded.save(&again, &SaveOptions::new()).unwrap();
    validate(&again, &ValidateOptions::new().strict(true)).unwrap();
}

#[test]
fn a_file_initialisation_is_copied() {
    let fx = Fx::new();
    let w = fx.file("inputs/pretrained weights.h5", b"pretrained\n");
    let mut m = fx.trained("m1", 1);
    m.register_initialisation(&w, None, Some("imagenet")).unwrap();
    let dest = fx.path("dest");
    m.save(&dest, &SaveOptions::new()).unwrap();
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    match &md.model.initialisation {
        Some(InitialisationMetadata::File { name, path, hash }) => {
            assert_eq!(name.as_deref(), Some("imagenet"));
            assert_eq!(path, "data/initialisation/pretrained weights.h5");
            assert_eq!(*hash, Md5::of_bytes(b"pretrained\n"));
        }
        other => panic!("expected a file initialisation, got {other:?}"),
    }
    assert_eq!(fs::read(dest.join("data/initialisation/pretrained weights.h5")).unwrap(), b"pretrained\n");
    assert_eq!(fs::read(&w).unwrap(), b"pretrained\n", "the source was changed");
}

// ---------------------------------------------------------------------------------------------
// Refusals before anything is written
// ---------------------------------------------------------------------------------------------

#[test]
fn two_checkpoints_whose_different_files_share_a_name_are_refused() {
    let fx = Fx::new();
    let a = fx.file("inputs/a/weights.h5", b"run a\n");
    let b = fx.file("inputs/b/weights.h5", b"run b\n");
    let mut m = fx.model("m1");
    m.register_training_start(0).unwrap();
    m.register_epoch(Some(2)).unwrap();
    m.add_checkpoint(Checkpoint::new("first", Some(&a), Some(1), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new(2, Some(&b), Some(2), None).unwrap()).unwrap();
    let dest = fx.path("dest");
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "checkpoints.2",
        &["\"first\"", " 2 ", "weights.h5"]
    );
    assert!(!dest.exists(), "the destination was created by a refused save");

    // Two references to one file (same content) are fine: one file is written.
    let mut ok = fx.model("m2");
    ok.register_training_start(0).unwrap();
    ok.register_epoch(Some(1)).unwrap();
    ok.add_checkpoint(Checkpoint::new(1, Some(&a), Some(1), None).unwrap()).unwrap();
    ok.add_checkpoint(Checkpoint::new("best", Some(&a), Some(1), None).unwrap()).unwrap();
    ok.save(&dest, &SaveOptions::new()).unwrap();
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    let paths: Vec<&str> = md.model.training.checkpoints.values().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["data/checkpoints/weights.h5", "data/checkpoints/weights.h5"]);
}

#[test]
fn a_configuration_named_like_a_pmf_file_is_refused() {
    let fx = Fx::new();
    for name in ["metadata.yaml", "data"] {
        let cfg = fx.file(&format!("cfg-{name}/{name}"), b"format: nope\n");
        let mut m = Model::new("m1", Producer::new("trainer", Version::pep440("1.0.0").unwrap(), &cfg).unwrap());
        let dest = fx.path(&format!("dest-{name}"));
        let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
        assert_err!(
            err,
            Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "producer.configuration",
            &[&format!("{name:?}"), "reserves"]
        );
        assert!(!dest.exists(), "{name}: the destination was created by a refused save");
    }
}

#[test]
fn a_one_letter_producer_name_is_refused_before_anything_is_written() {
    let fx = Fx::new();
    let mut m =
        Model::new("m1", Producer::new("a", Version::pep440("1.0.0").unwrap(), fx.path("inputs/config.py")).unwrap());
    let parent = fx.path("not/yet");
    let dest = parent.join("model");
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "producer.name",
        &["producer name \"a\""]
    );
    assert!(!fx.path("not").exists(), "a refused save created folders");
    // Also over an existing model: refused, nothing changed.
    let existing = fx.path("existing");
    fx.model("m1").save(&existing, &SaveOptions::new()).unwrap();
    let before = snapshot(&existing, &not_lock);
    let err = m.save(&existing, &SaveOptions::new().force(true)).unwrap_err();
    assert_err!(
        err,
        Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "producer.name",
        &["producer name"]
    );
    assert_eq!(snapshot(&existing, &not_lock), before);
}

// ---------------------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------------------

fn rich_model(fx: &Fx, id: &str) -> Model {
    let mut bp = Mapping::new();
    bp.insert("yes".into(), "No".into());
    bp.insert(Value::Int(1), "int key".into());
    bp.insert(
        "floats".into(),
        Value::Seq(vec![Value::Float(1.5), Value::Float(-0.0), Value::Float(1e20), Value::Float(f64::INFINITY)]),
    );
    bp.insert(
        "strings".into(),
        Value::Seq(
            ["1e10", "0x1F", "~", "", "2020-01-01", "multi\nline", "日本"].iter().map(|s| Value::from(*s)).collect(),
        ),
    );
    bp.insert("date".into(), Value::Timestamp("2020-01-01".into()));
    bp.insert(
        "nested".into(),
        Value::Map(Mapping::from_iter([(Value::Null, Value::Bool(true)), ("b".into(), Value::Seq(vec![]))])),
    );
    let version = Version::pep440("v2!1.0-post1.DEV2").unwrap();
    let mut m = Model::new(id, Producer::new("Producer_9", version, fx.path("inputs/config.py")).unwrap());
    m.name = Some("yes".into());
    m.build_parameters = Value::Map(bp);
    m.training = Training::new(TrainingRecord {
        status: Status::Finished,
        start_epoch: Some(0),
        start_time: Some(Timestamp::Int(1_552_464_823)),
        latest_epoch: Some(3),
        latest_time: Some(Timestamp::Float(1_552_481_973.357_268)),
        end_epoch: Some(3),
        end_time: Some(Timestamp::Float(1_552_481_973.357_268)),
    })
    .unwrap();
    m.add_checkpoint(fx.ckpt(1, 1)).unwrap();
    m.add_checkpoint({
        let p = fx.file("inputs/str_one.h5", b"string one\n");
        Checkpoint::new("1", Some(&p), Some(2), None).unwrap()
    })
    .unwrap();
    m.add_checkpoint(fx.ckpt("yes", 3)).unwrap();
    m.checkpoint_collection.set_latest(&Reference::from("1")).unwrap();
    let w = fx.file("inputs/w.h5", b"init\n");
    m.register_initialisation(&w, None, Some("on")).unwrap();
    m
}

#[test]
fn save_then_load_gives_the_same_model() {
    let fx = Fx::new();
    let mut m = rich_model(&fx, "1e10");
    let dest = fx.path("dest");
    m.save(&dest, &SaveOptions::new()).unwrap();
    let l = Model::load(&dest, &LoadOptions::new()).unwrap();
    assert_eq!(l.name, m.name);
    assert_eq!(l.id, m.id);
    assert_eq!(l.build_parameters, m.build_parameters);
    assert_eq!(
        common::tag(&l.build_parameters),
        common::tag(&m.build_parameters),
        "build parameters order or types changed"
    );
    assert_eq!(l.producer, m.producer);
    assert_eq!(l.producer.version.to_string(), "2!1.0.post1.dev2");
    assert!(l.producer.strict_equals(&m.producer).unwrap());
    assert_eq!(l.producer.configuration, dest.join("config.py"));
    assert_eq!(l.training, m.training);
    assert_eq!(l.checkpoint_collection, m.checkpoint_collection);
    assert_eq!(l.checkpoint_collection.keys().collect::<Vec<_>>(), m.checkpoint_collection.keys().collect::<Vec<_>>());
    assert_eq!(l.checkpoint_collection.latest(), Some(&Reference::from("1")));
    for (r, c) in l.checkpoint_collection.iter() {
        let p = c.path.as_deref().unwrap_or_else(|| panic!("checkpoint {r} has no path"));
        assert!(p.starts_with(dest.join("data/checkpoints")), "{}", p.display());
        assert_eq!(c.name, *r);
    }
    match (l.initialisation(), m.initialisation()) {
        (Some(Initialisation::File(a)), Some(Initialisation::File(b))) => {
            assert_eq!((&a.name, a.hash), (&b.name, b.hash));
            assert_eq!(a.path.as_deref(), Some(dest.join("data/initialisation/w.h5").as_path()));
        }
        other => panic!("initialisation differs: {other:?}"),
    }
    assert_eq!(l.path(), Some(dest.as_path()));
    assert_eq!(common::describe(&l), common::describe(&m));
}

// ---------------------------------------------------------------------------------------------
// Saves that only add checkpoints (done in place: save/append.rs)
// ---------------------------------------------------------------------------------------------

/// The model folder's inode: unchanged by a save done in place, new after a staging exchange.
fn folder_ino(dest: &Path) -> u64 {
    ino(dest)
}

/// A model initialised from a PMF model (itself initialised from a file), with int and string
/// references: the richest case the in-place path must recognise as unchanged.
fn model_with_pmf_init(fx: &Fx) -> Model {
    let w = fx.file("inputs/imagenet.h5", b"imagenet weights\n");
    let mut parent = fx.trained("parent-id", 2);
    parent.register_initialisation(&w, None, Some("imagenet")).unwrap();
    parent.save(fx.path("parent"), &SaveOptions::new()).unwrap();
    let mut m = fx.model("child-id");
    m.register_initialisation(fx.path("parent"), Some(Reference::Int(2)), None).unwrap();
    m.register_training_start(0).unwrap();
    m
}

#[test]
fn a_save_that_only_adds_checkpoints_is_done_in_place_and_writes_what_a_full_save_writes() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = model_with_pmf_init(&fx);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let root = folder_ino(&dest);
    let nested_cfg = ino(&dest.join("data/initialisation/config.py"));
    for epoch in 1..=6 {
        m.register_epoch(None).unwrap();
        let reference = if epoch % 2 == 0 { Reference::Int(epoch) } else { Reference::from(format!("e{epoch}")) };
        m.add_checkpoint(fx.ckpt(reference, epoch)).unwrap();
        m.save(&dest, &SaveOptions::new()).unwrap_or_else(|e| panic!("epoch {epoch}: {e}"));
        assert_eq!(folder_ino(&dest), root, "epoch {epoch}: the folder was replaced, not appended to");
        let strict = offences(&dest, true, true);
        assert!(strict.is_empty(), "epoch {epoch}: {strict:?}");
    }
    // Metadata-only changes (training status, name) are done in place too.
    m.register_training_end(true).unwrap();
    m.name = Some("renamed".into());
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert_eq!(folder_ino(&dest), root);
    assert_eq!(ino(&dest.join("data/initialisation/config.py")), nested_cfg, "the initialisation was rewritten");
    assert!(staging_leftovers(&dest).is_empty());

    let full = fx.path("full");
    m.save(&full, &SaveOptions::new()).unwrap();
    assert_eq!(snapshot(&dest, &not_lock), snapshot(&full, &not_lock), "in place and full saves differ");
    // And it loads as the full save does.
    let (a, b) = (Model::load(&dest, &LoadOptions::new()).unwrap(), Model::load(&full, &LoadOptions::new()).unwrap());
    assert_eq!(common::describe(&a), common::describe(&b));
    assert_eq!(a.checkpoint_collection.len(), 6);
}

#[test]
fn a_save_that_changes_more_than_checkpoints_replaces_the_folder_whole() {
    // Each of these changes a file the old metadata references (or removes one): a reader of
    // the old metadata must still find the old files, so the save goes through a staging tree.
    type Change = fn(&Fx, &mut Model);
    let changes: [(&str, Change); 5] = [
        ("build parameters", |_, m| m.build_parameters = Value::from("other")),
        ("configuration content", |fx, m| {
            let cfg = fx.file("inputs/config2/config.py", b"lr = 0.5\n");
            m.producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), &cfg).unwrap();
        }),
        ("removed checkpoint", |_, m| {
            m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
        }),
        ("replaced checkpoint content", |fx, m| {
            let other = fx.file("other/2.h5", b"retrained\n");
            m.checkpoint_collection.insert(2, &Checkpoint::new(2, Some(&other), Some(2), None).unwrap()).unwrap();
        }),
        ("new initialisation", |fx, m| {
            let w = fx.file("inputs/w.h5", b"w\n");
            m.register_initialisation(&w, None, Some("w")).unwrap();
        }),
    ];
    for (what, change) in changes {
        let fx = Fx::new();
        let dest = fx.path("dest");
        let mut m = fx.trained("m1", 2);
        m.save(&dest, &SaveOptions::new()).unwrap();
        let root = folder_ino(&dest);
        change(&fx, &mut m);
        m.save(&dest, &SaveOptions::new()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_ne!(folder_ino(&dest), root, "{what}: saved in place");
        let strict = offences(&dest, true, true);
        assert!(strict.is_empty(), "{what}: {strict:?}");
        let full = fx.path("full");
        m.save(&full, &SaveOptions::new()).unwrap();
        assert_eq!(snapshot(&dest, &not_lock), snapshot(&full, &not_lock), "{what}: differs from a full save");
    }
}

#[test]
fn keeping_unregistered_files_lets_a_removal_be_done_in_place() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 3);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let root = folder_ino(&dest);
    m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
    m.save(&dest, &SaveOptions::new().keep_unregistered_files(true)).unwrap();
    assert_eq!(folder_ino(&dest), root);
    assert!(dest.join("data/checkpoints/1.h5").is_file(), "the unregistered file was kept");
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(
        md.model.training.checkpoints.keys().cloned().collect::<Vec<_>>(),
        [Reference::Int(2), Reference::Int(3)]
    );
}

#[test]
fn a_new_checkpoint_never_replaces_a_file_of_the_same_name_in_place() {
    // A file that the metadata does not register sits where the new checkpoint's file goes: the
    // in-place path does not touch it (it would be a replacement), the staging path decides.
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    fs::write(dest.join("data/checkpoints/3.h5"), b"left by hand\n").unwrap();
    let root = folder_ino(&dest);
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert_ne!(folder_ino(&dest), root, "the in-place path wrote over a file it did not create");
    assert_eq!(fs::read(dest.join("data/checkpoints/3.h5")).unwrap(), b"weights of epoch 3\n");
    assert!(offences(&dest, true, true).is_empty());
}

#[test]
fn a_checkpoint_file_deleted_behind_the_models_back_is_not_registered_in_place() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    fs::remove_file(dest.join("data/checkpoints/1.h5")).unwrap();
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    // Its source still exists: the staging path copies it again; what save leaves validates.
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert!(offences(&dest, true, true).is_empty());
    assert_eq!(fs::read(dest.join("data/checkpoints/1.h5")).unwrap(), b"weights of epoch 1\n");
}

#[test]
fn a_failed_save_in_place_leaves_the_folder_as_it_was() {
    // Two checkpoints added at once; the second one's source changed after it was registered,
    // so its copy fails: the first file, already in place, is removed again, and nothing else
    // (journal, temporary file, metadata) is left changed.
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let before = snapshot(&dest, &not_lock);
    m.register_epoch(Some(4)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    let four = fx.ckpt(4, 4);
    fs::write(fx.path("inputs/4.h5"), b"changed after registration\n").unwrap();
    m.add_checkpoint(four).unwrap();
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(
        err,
        Error::ChecksumMismatch { path, .. } if *path == fx.path("inputs/4.h5"),
        &["4.h5", "does not have the checksum it was registered with"]
    );
    assert_eq!(snapshot(&dest, &not_lock), before, "the failed save changed the folder");
    assert!(offences(&dest, true, true).is_empty());
}

#[test]
fn leftovers_of_an_interrupted_append_are_removed_by_the_next_save() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let ckpts = dest.join("data/checkpoints");
    // What a save killed while adding checkpoint 9 leaves: its temporary copy, then (killed
    // after the rename) the file and the journal naming it; a journal naming a registered file
    // or a path must not remove anything else.
    fs::write(ckpts.join(".9.h5.pmf-tmp-123-0-0000abcd"), b"half a copy").unwrap();
    fs::write(ckpts.join("9.h5"), b"complete, never registered").unwrap();
    fs::write(ckpts.join(".pmf-append-123-1-0000abce"), b"9.h5\x001.h5\x00../../config.py\x00").unwrap();
    fs::write(ckpts.join("notes.txt"), b"the user's").unwrap();
    assert!(offences(&dest, true, true).is_empty(), "leftovers are ignored by validation");
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    let mut names: Vec<String> =
        fs::read_dir(&ckpts).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["1.h5", "2.h5", "3.h5", "notes.txt"]);
    assert!(dest.join("config.py").is_file());
    assert!(offences(&dest, true, true).is_empty());
}

#[test]
fn a_temporary_leftover_is_never_carried_into_a_new_tree() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    fs::write(dest.join(".metadata.yaml.pmf-tmp-77-0-0000abcd"), b"half").unwrap();
    m.build_parameters = Value::from("changed"); // a staging save
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert!(!dest.join(".metadata.yaml.pmf-tmp-77-0-0000abcd").exists());
}

// ---------------------------------------------------------------------------------------------
// Concurrent writers, repeated saves, leftovers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_concurrent_change_is_detected() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap();
    let mut a = Model::load(&dest, &LoadOptions::new()).unwrap();
    let mut b = Model::load(&dest, &LoadOptions::new()).unwrap();
    a.register_epoch(Some(3)).unwrap();
    a.add_checkpoint(fx.ckpt("from a", 3)).unwrap();
    a.save(&dest, &SaveOptions::new()).unwrap();
    let after_a = fs::read(dest.join("metadata.yaml")).unwrap();

    b.register_epoch(Some(4)).unwrap();
    b.add_checkpoint(fx.ckpt("from b", 4)).unwrap();
    for force in [false, true] {
        let err = b.save(&dest, &SaveOptions::new().force(force)).unwrap_err();
        assert_err!(
            err,
            Error::ConcurrentChange { path } if *path == dest,
            kind = ErrorKind::AlreadyExists,
            &["changed since this model was loaded", "overwrite_concurrent_changes"]
        );
        assert_eq!(fs::read(dest.join("metadata.yaml")).unwrap(), after_a, "the refused save changed metadata.yaml");
    }
    b.save(&dest, &SaveOptions::new().overwrite_concurrent_changes(true)).unwrap();
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    let refs: Vec<String> = md.model.training.checkpoints.keys().map(|r| r.to_string()).collect();
    assert_eq!(refs, ["1", "2", "from b"]);
    // And now `a` is the stale one.
    let err = a.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_err!(err, Error::ConcurrentChange { path } if *path == dest, kind = ErrorKind::AlreadyExists, &[]);
}

#[test]
fn saving_every_epoch_keeps_the_model_strictly_valid() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.model("m1");
    m.register_training_start(0).unwrap();
    let mut first_inode = None;
    for epoch in 1..=20 {
        m.register_epoch(None).unwrap();
        assert_eq!(m.training.latest_epoch(), Some(epoch));
        m.add_checkpoint(fx.ckpt(epoch, epoch)).unwrap();
        m.save(&dest, &SaveOptions::new()).unwrap_or_else(|e| panic!("epoch {epoch}: {e}"));
        let md = validate(&dest, &ValidateOptions::new().strict(true))
            .unwrap_or_else(|e| panic!("epoch {epoch}: the saved model is invalid: {e}"));
        assert_eq!(md.model.training.latest, Some(Reference::Int(epoch)));
        assert_eq!(md.model.training.checkpoints.len() as i64, epoch);
        assert_eq!(md.model.training.record.latest_epoch, Some(epoch));
        let ino1 = ino(&dest.join("data/checkpoints/1.h5"));
        assert_eq!(*first_inode.get_or_insert(ino1), ino1, "epoch {epoch}: checkpoint 1 was rewritten");
        assert!(staging_leftovers(&dest).is_empty(), "epoch {epoch}: staging folder left");
    }
    m.register_training_end(true).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(md.model.training.record.status, Status::Finished);
    assert_eq!(md.model.training.record.end_epoch, Some(20));
}

#[test]
fn an_incremental_save_writes_what_a_full_save_writes() {
    let fx = Fx::new();
    let inc = fx.path("incremental");
    let mut m = fx.model("m1");
    m.register_training_start(0).unwrap();
    for epoch in 1..=5 {
        m.register_epoch(None).unwrap();
        m.add_checkpoint(fx.ckpt(epoch, epoch)).unwrap();
        m.save(&inc, &SaveOptions::new()).unwrap();
    }
    let w = fx.file("inputs/w.h5", b"init\n");
    m.register_initialisation(&w, None, Some("imagenet")).unwrap();
    m.save(&inc, &SaveOptions::new()).unwrap();
    m.register_training_end(true).unwrap();
    m.save(&inc, &SaveOptions::new()).unwrap();

    let full = fx.path("full");
    m.save(&full, &SaveOptions::new()).unwrap();
    let (a, b) = (snapshot(&inc, &not_lock), snapshot(&full, &not_lock));
    let names = |s: &std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>| {
        s.keys().map(|p| p.display().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "the incremental and the full save hold different files");
    for (p, content) in &a {
        assert_eq!(content, &b[p], "{} differs between the incremental and the full save", p.display());
    }
}

#[test]
fn an_incremental_save_after_removing_or_replacing_checkpoints_writes_what_a_full_save_writes() {
    // Files of checkpoints that are no longer registered, and a renamed configuration, are
    // PMF-owned files of the previous save: a full save into a fresh folder does not have them.
    // (The reference, plums 0.5.2, leaves them behind too; files the previous metadata did not
    // register, like data/checkpoints/notes.txt in another test, must stay.)
    let fx = Fx::new();
    let inc = fx.path("incremental");
    let mut m = fx.trained("m1", 3);
    m.save(&inc, &SaveOptions::new()).unwrap();
    m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
    let other = fx.file("inputs/retrained_2.h5", b"retrained 2\n");
    m.checkpoint_collection.insert(2, &Checkpoint::new("x", Some(&other), Some(2), None).unwrap()).unwrap();
    let cfg = fx.file("inputs/settings.cfg", b"lr = 0.02\n");
    m.producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), &cfg).unwrap();
    m.save(&inc, &SaveOptions::new()).unwrap();
    validate(&inc, &ValidateOptions::new().strict(true)).unwrap();

    let full = fx.path("full");
    m.save(&full, &SaveOptions::new()).unwrap();
    let (a, b) = (snapshot(&inc, &not_lock), snapshot(&full, &not_lock));
    let only_inc: Vec<_> = a.keys().filter(|p| !b.contains_key(*p)).map(|p| p.display().to_string()).collect();
    let only_full: Vec<_> = b.keys().filter(|p| !a.contains_key(*p)).map(|p| p.display().to_string()).collect();
    assert!(
        only_inc.is_empty() && only_full.is_empty(),
        "files only in the incremental save: {only_inc:?}; only in the full save: {only_full:?}"
    );
    assert_eq!(a, b);
}

#[test]
fn changing_the_initialisation_replaces_data_initialisation() {
    let fx = Fx::new();
    let init_src = fx.path("init_model");
    fx.trained("init-id", 2).save(&init_src, &SaveOptions::new()).unwrap();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 1);
    m.register_initialisation(&init_src, Some(2.into()), None).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert!(dest.join("data/initialisation/metadata.yaml").is_file());
    // PMF initialisation -> file initialisation -> none: data/initialisation follows.
    let w = fx.file("inputs/w.h5", b"init\n");
    m.register_initialisation(&w, None, Some("imagenet")).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    let names = |dir: &Path| {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&dest.join("data/initialisation")), ["w.h5"]);
    m.set_initialisation(None);
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert!(names(&dest.join("data/initialisation")).is_empty());
    // ... and back to a PMF initialisation.
    m.register_initialisation(&init_src, Some(1.into()), None).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    let md = validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert!(
        matches!(md.model.initialisation, Some(InitialisationMetadata::Pmf { ref checkpoint, .. }) if *checkpoint == Reference::Int(1))
    );
}

#[test]
fn no_staging_folder_remains_after_saves_that_succeed_or_fail() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert!(staging_leftovers(&dest).is_empty());
    // A save that fails while building the new tree (a source file vanished).
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    fs::remove_file(fx.path("inputs/3.h5")).unwrap();
    let before = snapshot(&dest, &not_lock);
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    assert_io(&err, ErrorKind::NotFound, &["3.h5"]);
    assert!(staging_leftovers(&dest).is_empty(), "a failed save left {:?}", staging_leftovers(&dest));
    assert_eq!(snapshot(&dest, &not_lock), before, "a failed save changed the model");
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    // A stale staging folder left by an interrupted save is removed by the next save.
    let stale = fx.path(".dest.pmf-save-12345-0-0000abcd");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("metadata.yaml"), b"half written").unwrap();
    fx.file("inputs/3.h5", b"weights of epoch 3\n");
    m.save(&dest, &SaveOptions::new()).unwrap();
    assert!(staging_leftovers(&dest).is_empty(), "left: {:?}", staging_leftovers(&dest));
}

// ---------------------------------------------------------------------------------------------
// Validation reports everything
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_reports_every_offence_at_once() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 3);
    m.register_initialisation(fx.file("inputs/w.h5", b"init\n"), None, Some("imagenet")).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    fs::remove_file(dest.join("data/checkpoints/2.h5")).unwrap();
    fs::write(dest.join("config.py"), b"lr = 0.5\n").unwrap();
    fs::write(dest.join("data/initialisation/w.h5"), b"changed\n").unwrap();
    fs::write(dest.join("data/build_parameters.yaml"), b"a: [1, 2\n").unwrap();
    mkfifo(&dest.join("data/a_fifo"));

    let d = dest.clone();
    let found = guarded("check", WATCHDOG, vec![dest.join("data/a_fifo")], move || offences(&d, true, true));
    let expect = [
        (OffenceKind::Tree, "data/checkpoints/2.h5", "missing"),
        (OffenceKind::Tree, "config.py", "checksum"),
        (OffenceKind::Tree, "data/initialisation/w.h5", "checksum"),
        (OffenceKind::Metadata, "data/build_parameters.yaml", "YAML"),
        (OffenceKind::Tree, "data/a_fifo", "FIFO"),
    ];
    for (kind, loc, frag) in expect {
        assert!(has(&found, kind, loc, frag), "no {kind} offence at {loc} ({frag}) in {found:#?}");
    }
    assert_eq!(found.len(), expect.len(), "unexpected extra offences: {found:#?}");
    // The error of validate carries the same report; a metadata offence makes it a metadata error.
    let d = dest.clone();
    let err = guarded("validate", WATCHDOG, vec![dest.join("data/a_fifo")], move || {
        validate(&d, &ValidateOptions::new().strict(true)).unwrap_err()
    });
    assert!(matches!(err, Error::MetadataValidation(_)), "{err:?}");
    assert_eq!(err.report().unwrap().offences.len(), expect.len());
    // Non-strict: no checksum offences.
    let d = dest.clone();
    let lax = guarded("check", WATCHDOG, vec![dest.join("data/a_fifo")], move || offences(&d, false, true));
    assert_eq!(lax.len(), 3, "{lax:#?}");
}

#[test]
fn validate_reports_tree_offences_alongside_training_offences() {
    // The metadata parses; only a training cross-check fails. The tree offences (a missing
    // checkpoint file, a configuration checksum mismatch) must be reported in the same run.
    let fx = Fx::new();
    let dest = fx.path("dest");
    let mut m = fx.trained("m1", 3);
    m.register_training_end(true).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    replace_in(&dest.join("metadata.yaml"), "status: finished", "status: running");
    fs::remove_file(dest.join("data/checkpoints/2.h5")).unwrap();
    fs::write(dest.join("config.py"), b"lr = 0.5\n").unwrap();
    let found = offences(&dest, true, true);
    let expect = [
        (OffenceKind::Metadata, "model.training.end_time", "running"),
        (OffenceKind::Metadata, "model.training.end_epoch", "running"),
        (OffenceKind::Tree, "data/checkpoints/2.h5", "missing"),
        (OffenceKind::Tree, "config.py", "checksum"),
    ];
    let missing: Vec<_> = expect.iter().filter(|(k, l, f)| !has(&found, *k, l, f)).collect();
    assert!(missing.is_empty(), "offences not reported: {missing:?}\nreported: {found:#?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile metadata paths
// ---------------------------------------------------------------------------------------------

/// A folder next to the model root that nothing may open, watched with inotify.
struct Outside {
    path: PathBuf,
    inotify: OwnedFd,
}

impl Outside {
    fn new(path: PathBuf) -> Outside {
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("secret.h5"), b"secret").unwrap();
        mkfifo(&path.join("pipe"));
        let fd = inotify_watch([&path], rustix::fs::inotify::WatchFlags::ALL_EVENTS);
        Outside { path, inotify: fd }
    }

    fn fifos(&self) -> Vec<PathBuf> {
        vec![self.path.join("pipe")]
    }

    /// What was done in the folder since the last call.
    fn events(&self) -> Vec<String> {
        inotify_events(&self.inotify)
    }
}

#[test]
fn hostile_metadata_paths_are_offences_and_nothing_outside_is_opened() {
    let fx = Fx::new();
    let outside = Outside::new(fx.path("outside"));
    let out = outside.path.display().to_string();
    let base = fx.path("base");
    let mut m = fx.trained("m1", 3);
    m.register_initialisation(fx.file("inputs/w.h5", b"init\n"), None, Some("imagenet")).unwrap();
    m.save(&base, &SaveOptions::new()).unwrap();
    let md = base.join("metadata.yaml");

    type Setup = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Setup, OffenceKind, &str, &str)> = vec![
        (
            "absolute configuration path (a FIFO outside)",
            Box::new({
                let out = out.clone();
                move |root: &Path| {
                    replace_in(&root.join("metadata.yaml"), "path: config.py", &format!("path: {out}/pipe"))
                }
            }),
            OffenceKind::Tree,
            "model.configuration.path",
            "absolute",
        ),
        (
            "configuration path /etc/passwd",
            Box::new(|root: &Path| replace_in(&root.join("metadata.yaml"), "path: config.py", "path: /etc/passwd")),
            OffenceKind::Tree,
            "model.configuration.path",
            "absolute",
        ),
        (
            "configuration path ../outside/pipe",
            Box::new(|root: &Path| replace_in(&root.join("metadata.yaml"), "path: config.py", "path: ../outside/pipe")),
            OffenceKind::Tree,
            "model.configuration.path",
            "..",
        ),
        (
            "checkpoint path ../x",
            Box::new(|root: &Path| {
                replace_in(&root.join("metadata.yaml"), "path: data/checkpoints/1.h5", "path: ../x")
            }),
            OffenceKind::Tree,
            "model.training.checkpoints.1.path",
            "..",
        ),
        (
            "checkpoint path outside data/checkpoints (a link to a FIFO outside)",
            Box::new(|root: &Path| {
                fs::create_dir_all(root.join("data/other")).unwrap();
                symlink("../../../outside/pipe", root.join("data/other/1.h5")).unwrap();
                replace_in(&root.join("metadata.yaml"), "path: data/checkpoints/1.h5", "path: data/other/1.h5");
            }),
            OffenceKind::Tree,
            "model.training.checkpoints.1.path",
            "data/checkpoints",
        ),
        (
            "absolute checkpoint path to a file outside",
            Box::new({
                let out = out.clone();
                move |root: &Path| {
                    replace_in(
                        &root.join("metadata.yaml"),
                        "path: data/checkpoints/1.h5",
                        &format!("path: {out}/secret.h5"),
                    )
                }
            }),
            OffenceKind::Tree,
            "model.training.checkpoints.1.path",
            "absolute",
        ),
        (
            "symbolic link in data/checkpoints to a FIFO outside",
            Box::new(|root: &Path| {
                fs::remove_file(root.join("data/checkpoints/2.h5")).unwrap();
                symlink("../../../outside/pipe", root.join("data/checkpoints/2.h5")).unwrap();
            }),
            OffenceKind::Tree,
            "data/checkpoints/2.h5",
            "outside the model root",
        ),
        (
            "symbolic link in data/checkpoints to a file outside (absolute target)",
            Box::new({
                let out = out.clone();
                move |root: &Path| {
                    fs::remove_file(root.join("data/checkpoints/3.h5")).unwrap();
                    symlink(format!("{out}/secret.h5"), root.join("data/checkpoints/3.h5")).unwrap();
                }
            }),
            OffenceKind::Tree,
            "data/checkpoints/3.h5",
            "outside the model root",
        ),
        (
            "initialisation file path ../outside/secret.h5",
            Box::new(|root: &Path| {
                replace_in(&root.join("metadata.yaml"), "path: data/initialisation/w.h5", "path: ../outside/secret.h5")
            }),
            OffenceKind::Tree,
            "model.initialisation.file.path",
            "..",
        ),
        (
            "initialisation file that is a link to a FIFO outside",
            Box::new(|root: &Path| {
                fs::remove_file(root.join("data/initialisation/w.h5")).unwrap();
                symlink("../../../outside/pipe", root.join("data/initialisation/w.h5")).unwrap();
            }),
            OffenceKind::Tree,
            "data/initialisation/w.h5",
            "outside the model root",
        ),
        (
            "configuration that is a link to a file outside",
            Box::new(|root: &Path| {
                fs::remove_file(root.join("config.py")).unwrap();
                symlink("../outside/secret.h5", root.join("config.py")).unwrap();
            }),
            OffenceKind::Tree,
            "config.py",
            "outside the model root",
        ),
    ];
    assert!(fs::read_to_string(&md).unwrap().contains("path: config.py"));
    let _ = outside.events(); // setup noise

    let mut failures = Vec::new();
    for (i, (what, setup, kind, location, fragment)) in cases.iter().enumerate() {
        let root = fx.path(&format!("case{i}"));
        // Copy the base model without following anything (it holds regular files only).
        for (rel, content) in snapshot(&base, &not_lock) {
            let p = root.join(&rel);
            match content {
                None => fs::create_dir_all(&p).unwrap(),
                Some(bytes) => {
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    fs::write(&p, bytes).unwrap();
                }
            }
        }
        setup(&root);
        let _ = outside.events();
        for (strict, checkpoints) in [(true, true), (false, true)] {
            let r = root.clone();
            let found = guarded(what, WATCHDOG, outside.fifos(), move || offences(&r, strict, checkpoints));
            if !has(&found, *kind, location, fragment) {
                failures.push(format!(
                    "{what} (strict={strict}): no {kind} offence at {location} mentioning {fragment:?}: {found:?}"
                ));
            }
            let r = root.clone();
            let loaded = guarded(what, WATCHDOG, outside.fifos(), move || {
                Model::load(&r, &LoadOptions::new().strict(strict).checkpoints(checkpoints))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            if loaded.is_ok() {
                failures.push(format!("{what} (strict={strict}): Model::load accepts it"));
            }
        }
        // Saving a model with the same id over it, without force, is refused and reads nothing outside.
        let r = root.clone();
        let mut fresh = fx.trained("m1", 3);
        fresh.register_initialisation(fx.path("inputs/w.h5"), None, Some("imagenet")).unwrap();
        let saved = guarded(what, WATCHDOG, outside.fifos(), move || {
            fresh.save(&r, &SaveOptions::new()).map_err(|e| (e.code(), format!("{e:?}")))
        });
        if !matches!(&saved, Err((code, _)) if *code == "invalid_same_model") {
            failures
                .push(format!("{what}: save without force over it: expected Error::InvalidSameModel, got {saved:?}"));
        }
        let events = outside.events();
        if !events.is_empty() {
            failures.push(format!("{what}: files outside the model root were accessed: {events:?}"));
        }
    }
    assert_eq!(fs::read(outside.path.join("secret.h5")).unwrap(), b"secret");
    assert!(failures.is_empty(), "{} failure(s):\n  {}", failures.len(), failures.join("\n  "));
}
