//! Every refusal a caller can meet through the public API, one test per variant of
//! [`plums_model::Error`]: each is triggered for real (never built by hand), and the test checks
//! the exact variant and its data, its `category()` and `code()`, its `io_kind()`, the other
//! accessors (`path()`, `reference()`, `reasons()`, `offences()`, `lock_holder()`), and the key
//! parts of its message (what is wrong, and what would be right).

mod common;

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{guarded, mkfifo};
use plums_model::{
    check, initialisation, initialisation_at, validate, Category, Checkpoint, CheckpointCollection, Error,
    Initialisation, LoadOptions, Location, Md5, Model, Offence, OffenceKind, Producer, Reference, SaveOptions, Status,
    StorageErrorKind, StorageOptions, Timestamp, Training, TrainingRecord, ValidateOptions, Value, Version,
    VersionFormats, LOCK_FILE,
};
use tempfile::TempDir;

const WATCHDOG: Duration = Duration::from_secs(30);
const WRONG_HASH: &str = "0123456789abcdef0123456789abcdef";

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

    /// Write the file `rel` (relative to the temporary folder), creating its folders.
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    fn producer(&self) -> Producer {
        Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.path("inputs/config.py")).unwrap()
    }

    fn model(&self, id: &str) -> Model {
        let mut m = Model::new(id, self.producer());
        m.name = Some("detector".into());
        m.build_parameters = Value::from("resnet50");
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

    /// A saved model `id` with `epochs` checkpoints at `rel`.
    fn saved(&self, rel: &str, id: &str, epochs: i64) -> PathBuf {
        let root = self.path(rel);
        self.trained(id, epochs).save(&root, &SaveOptions::new().durable(false)).unwrap();
        root
    }
}

/// Assert the variant-independent classification of `err`: its code, category and closest
/// `io::ErrorKind` (`None` asserted too: a value error has no kind).
#[track_caller]
fn classified(err: &Error, code: &str, category: Category, kind: Option<ErrorKind>) {
    assert_eq!(err.code(), code, "code of {err:?}");
    assert_eq!(err.category(), category, "category of {err:?}");
    assert_eq!(err.io_kind(), kind, "io_kind of {err:?}");
    if !matches!(err, Error::Io { .. }) {
        assert_eq!(err.raw_os_error(), None, "raw_os_error of {err:?}");
    }
    if !matches!(err, Error::WouldNotValidate { .. }) {
        assert!(err.reasons().is_empty(), "reasons of {err:?}");
    }
    if !matches!(err, Error::Locked { .. }) {
        assert_eq!(err.lock_holder(), None, "lock_holder of {err:?}");
    }
    if !matches!(err, Error::TreeValidation(_) | Error::MetadataValidation(_)) {
        assert_eq!(err.report(), None, "report of {err:?}");
    }
}

/// Assert that the message of `err` contains every fragment.
#[track_caller]
fn says(err: &Error, fragments: &[&str]) {
    common::assert_message(err, fragments);
}

fn offence_triples(offences: &[Offence]) -> Vec<(OffenceKind, String)> {
    offences.iter().map(|o| (o.kind, o.location.clone())).collect()
}

/// A read-only operation on a model folder.
type Reader<'a> = Box<dyn Fn() -> Result<(), Error> + 'a>;

fn replace_in(path: &Path, old: &str, new: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(old), "{old:?} not in {}:\n{text}", path.display());
    fs::write(path, text.replacen(old, new, 1)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Operating-system refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn io_is_the_operating_systems_refusal_with_its_kind_and_errno() {
    // Permissions do not refuse root (tests may run as root): a path below a regular file fails
    // at the OS level for everyone, with ENOTDIR.
    let fx = Fx::new();
    let file = fx.file("plain-file", b"not a folder");
    let below = file.join("model");

    let err = validate(&below, &ValidateOptions::new()).unwrap_err();
    let Error::Io { path, operation, source } = &err else { panic!("expected Error::Io, got {err:?}") };
    assert_eq!(path, &below);
    assert_eq!(operation, "cannot validate model");
    assert_eq!(source.kind(), ErrorKind::NotADirectory);
    classified(&err, "io", Category::Os, Some(ErrorKind::NotADirectory));
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::NOTDIR.raw_os_error()));
    assert_eq!(err.path(), Some(below.as_path()));
    assert_eq!(err.reference(), None);
    assert!(err.offences().is_empty());
    let source = std::error::Error::source(&err).expect("the OS error is the source");
    // Shared, so that the error is `Clone` (a background save's error goes to its handle and to
    // the queue's next save or wait).
    let shared = source.downcast_ref::<std::sync::Arc<std::io::Error>>().expect("the source is the shared OS error");
    assert_eq!(shared.kind(), ErrorKind::NotADirectory);
    says(&err, &["cannot validate model: ", &below.display().to_string(), "Not a directory"]);

    // A save below a regular file: refused when examining the destination, nothing created.
    let err = fx.trained("m1", 1).save(&below, &SaveOptions::new()).unwrap_err();
    let Error::Io { path, operation, source } = &err else { panic!("expected Error::Io, got {err:?}") };
    assert_eq!((path, operation.as_str()), (&below, "cannot examine the save destination"));
    assert_eq!(source.kind(), ErrorKind::NotADirectory);
    classified(&err, "io", Category::Os, Some(ErrorKind::NotADirectory));
    says(&err, &["cannot examine the save destination", "Not a directory"]);
    assert_eq!(fs::read(&file).unwrap(), b"not a folder");

    // A configuration file that does not exist.
    let missing = fx.path("inputs/missing.py");
    let err = Producer::new("trainer", Version::pep440("1").unwrap(), &missing).unwrap_err();
    let Error::Io { path, operation, source } = &err else { panic!("expected Error::Io, got {err:?}") };
    assert_eq!((path, operation.as_str()), (&missing, "invalid configuration: cannot read the file"));
    assert_eq!(source.kind(), ErrorKind::NotFound);
    classified(&err, "io", Category::Os, Some(ErrorKind::NotFound));
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::NOENT.raw_os_error()));
    says(&err, &["invalid configuration: cannot read the file", "missing.py", "No such file or directory"]);
}

#[test]
fn not_a_file_names_the_path_and_what_it_should_have_been() {
    let fx = Fx::new();
    // A folder as the configuration.
    let folder = fx.path("inputs");
    let err = Producer::new("trainer", Version::pep440("1").unwrap(), &folder).unwrap_err();
    assert!(matches!(&err, Error::NotAFile { path, what: "configuration" } if *path == folder), "{err:?}");
    classified(&err, "not_a_file", Category::Os, Some(ErrorKind::IsADirectory));
    assert_eq!(err.path(), Some(folder.as_path()));
    says(&err, &["invalid configuration: ", &folder.display().to_string(), " is not a file"]);

    // A FIFO as a checkpoint file: never opened, refused as a special file.
    let fifo = fx.path("inputs/pipe.h5");
    mkfifo(&fifo);
    let f = fifo.clone();
    let err = guarded("Checkpoint::new on a FIFO", WATCHDOG, vec![fifo.clone()], move || {
        Checkpoint::new(3, Some(&f), Some(3), None).unwrap_err()
    });
    assert!(matches!(&err, Error::NotAFile { path, what: "checkpoint" } if *path == fifo), "{err:?}");
    classified(&err, "not_a_file", Category::Os, Some(ErrorKind::InvalidInput));
    assert_eq!(err.path(), Some(fifo.as_path()));
    says(&err, &["invalid checkpoint: ", "pipe.h5 is not a file"]);
}

#[test]
fn obstructed_names_what_stands_where_a_save_needs_something_else() {
    // A regular file named `data` where PMF needs a folder (a forced save into a foreign folder).
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.file("dest/data", b"precious");
    let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new().force(true)).unwrap_err();
    let expected = dest.canonicalize().unwrap().join("data");
    assert!(
        matches!(&err, Error::Obstructed { path, found: "a file", needed: "a folder" } if *path == expected),
        "{err:?}"
    );
    classified(&err, "obstructed", Category::Os, Some(ErrorKind::AlreadyExists));
    assert_eq!(err.path(), Some(expected.as_path()));
    says(
        &err,
        &[
            &format!("{} is a file, but PMF needs a folder there", expected.display()),
            "move it away and save again",
            "nothing was changed",
        ],
    );
    assert_eq!(fs::read(dest.join("data")).unwrap(), b"precious");
    assert!(!dest.join("metadata.yaml").exists(), "a refused save wrote metadata.yaml");

    // A FIFO in the folder being saved over.
    let dest = fx.path("dest-fifo");
    fx.file("dest-fifo/notes.txt", b"notes");
    let fifo = dest.join("pipe");
    mkfifo(&fifo);
    let mut model = fx.trained("m1", 1);
    let d = dest.clone();
    let err = guarded("a save over a folder with a FIFO", WATCHDOG, vec![fifo.clone()], move || {
        model.save(&d, &SaveOptions::new().force(true)).unwrap_err()
    });
    let expected = dest.canonicalize().unwrap().join("pipe");
    assert!(
        matches!(&err, Error::Obstructed { path, found: "a special file (FIFO, socket or device)", needed: "no special file" }
            if *path == expected),
        "{err:?}"
    );
    classified(&err, "obstructed", Category::Os, Some(ErrorKind::AlreadyExists));
    says(&err, &["pipe is a special file", "PMF needs no special file there", "nothing was changed"]);
    assert!(!dest.join("metadata.yaml").exists(), "a refused save wrote metadata.yaml");
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_status_quotes_the_text_and_lists_the_four_statuses() {
    let err = "paused".parse::<Status>().unwrap_err();
    assert!(matches!(&err, Error::InvalidStatus { value } if value == "paused"), "{err:?}");
    classified(&err, "invalid_status", Category::Value, None);
    assert_eq!(err.path(), None);
    says(&err, &["invalid training status \"paused\"", "expected pending, running, finished or failed"]);
    // The spelling is exact: no case folding.
    let err = "Running".parse::<Status>().unwrap_err();
    assert!(matches!(&err, Error::InvalidStatus { value } if value == "Running"), "{err:?}");
}

#[test]
fn invalid_training_lists_every_broken_rule() {
    // An end without a start (latest defaults to the end values).
    let record = TrainingRecord {
        status: Status::Finished,
        end_epoch: Some(1),
        end_time: Some(Timestamp::Int(5)),
        ..Default::default()
    };
    let err = Training::new(record).unwrap_err();
    let Error::InvalidTraining { offences } = &err else { panic!("expected InvalidTraining, got {err:?}") };
    let fields: Vec<&str> = offences.iter().map(|o| o.field).collect();
    assert_eq!(fields, ["end_time", "latest_time", "end_epoch", "latest_epoch"]);
    assert!(offences[0].message.contains("end_time is set but start_time is not"), "{offences:?}");
    assert!(offences[3].message.contains("set start_epoch too"), "{offences:?}");
    classified(&err, "invalid_training", Category::Value, None);
    // offences() gives them as metadata offences located under `training.`.
    let as_offences = err.offences();
    assert_eq!(
        offence_triples(&as_offences),
        ["end_time", "latest_time", "end_epoch", "latest_epoch"]
            .map(|f| (OffenceKind::Metadata, format!("training.{f}")))
            .to_vec()
    );
    assert_eq!(as_offences[0].message, offences[0].message);
    says(
        &err,
        &[
            "invalid training parameters: end_time is set but start_time is not: a training cannot end before it starts; ",
            "latest_epoch is set but start_epoch is not: set start_epoch too",
        ],
    );

    // A pending training with a start, and a latest epoch before the start.
    let record = TrainingRecord {
        status: Status::Pending,
        start_epoch: Some(3),
        start_time: Some(Timestamp::Int(10)),
        latest_epoch: Some(1),
        latest_time: Some(Timestamp::Int(11)),
        ..Default::default()
    };
    let err = Training::new(record).unwrap_err();
    let Error::InvalidTraining { offences } = &err else { panic!("expected InvalidTraining, got {err:?}") };
    let fields: Vec<&str> = offences.iter().map(|o| o.field).collect();
    assert_eq!(fields, ["start_time", "latest_time", "latest_epoch", "start_epoch", "latest_epoch"], "{offences:?}");
    says(&err, &["latest_epoch (1) is before start_epoch (3): expected start_epoch <= latest_epoch", "pending"]);
}

#[test]
fn status_change_names_both_statuses() {
    let fx = Fx::new();
    let mut m = fx.model("m1");
    let err = m.register_training_end(true).unwrap_err();
    assert!(matches!(err, Error::StatusChange { from: Status::Pending, to: Status::Finished }), "{err:?}");
    classified(&err, "status_change", Category::Value, None);
    says(&err, &["invalid training status change: a pending training cannot become finished"]);
    assert_eq!(m.training.status(), Status::Pending, "a refused change changed the status");

    m.register_training_start(0).unwrap();
    m.register_training_end(true).unwrap();
    let err = m.register_training_start(5).unwrap_err();
    assert!(matches!(err, Error::StatusChange { from: Status::Finished, to: Status::Running }), "{err:?}");
    says(&err, &["a finished training cannot become running"]);
    assert_eq!(m.training.start_epoch(), Some(0), "a refused start changed the start epoch");

    let mut t = Training::default();
    t.interrupt().unwrap();
    let err = t.set_status(Status::Pending).unwrap_err();
    assert!(matches!(err, Error::StatusChange { from: Status::Failed, to: Status::Pending }), "{err:?}");
    says(&err, &["a failed training cannot become pending"]);
}

#[test]
fn training_not_running_names_the_status_and_says_to_start() {
    let fx = Fx::new();
    let mut m = fx.model("m1");
    let err = m.register_epoch(Some(1)).unwrap_err();
    assert!(matches!(err, Error::TrainingNotRunning { status: Status::Pending }), "{err:?}");
    classified(&err, "training_not_running", Category::Value, None);
    says(&err, &["cannot register an epoch: the training is pending, expected running (call start first)"]);

    m.register_training_start(0).unwrap();
    m.register_epoch(None).unwrap();
    m.register_training_end(false).unwrap();
    let err = m.register_epoch(None).unwrap_err();
    assert!(matches!(err, Error::TrainingNotRunning { status: Status::Failed }), "{err:?}");
    says(&err, &["the training is failed, expected running"]);
    assert_eq!(m.training.latest_epoch(), Some(1));
}

#[test]
fn epoch_overflow_names_the_latest_epoch() {
    let fx = Fx::new();
    let mut m = fx.model("m1");
    m.register_training_start(i64::MAX).unwrap();
    let err = m.register_epoch(None).unwrap_err();
    assert!(matches!(err, Error::EpochOverflow { latest: i64::MAX }), "{err:?}");
    classified(&err, "epoch_overflow", Category::Value, None);
    says(&err, &["cannot register the next epoch: epoch 9223372036854775807 is the largest PMF can record"]);
    assert_eq!(m.training.latest_epoch(), Some(i64::MAX), "a refused epoch changed the training");
    assert!(m.training.is_running());
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and collections
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_checksum_quotes_the_subject_and_the_text() {
    for bad in [
        "ABC",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcde",
        "g123456789abcdef0123456789abcdef",
    ] {
        let err = Checkpoint::new("best", None::<&Path>, Some(1), Some(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidChecksum { subject, value } if subject == "checkpoint \"best\"" && value == bad),
            "{bad}: {err:?}"
        );
        classified(&err, "invalid_checksum", Category::Value, None);
        says(
            &err,
            &[
                &format!("invalid checkpoint \"best\" checksum {bad:?}"),
                "expected 32 lowercase hexadecimal digits (an MD5)",
            ],
        );
    }
    // An integer reference is not quoted; a given file does not excuse a bad checksum.
    let fx = Fx::new();
    let w = fx.file("inputs/3.h5", b"weights");
    let err = Checkpoint::new(3, Some(&w), Some(3), Some("nope")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidChecksum { subject, value } if subject == "checkpoint 3" && value == "nope"),
        "{err:?}"
    );
    says(&err, &["invalid checkpoint 3 checksum \"nope\""]);
}

#[test]
fn checksum_mismatch_is_found_while_saving_and_saves_nothing() {
    let fx = Fx::new();
    let w = fx.file("inputs/1.h5", b"the real weights\n");
    let mut m = fx.model("m1");
    m.register_training_start(0).unwrap();
    m.register_epoch(Some(1)).unwrap();
    m.add_checkpoint(Checkpoint::new(1, Some(&w), Some(1), Some(WRONG_HASH)).unwrap()).unwrap();
    let dest = fx.path("dest");
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    let expected: Md5 = WRONG_HASH.parse().unwrap();
    let actual = Md5::of_bytes(b"the real weights\n");
    assert!(
        matches!(&err, Error::ChecksumMismatch { path, expected: e, found } if *path == w && *e == expected && *found == actual),
        "{err:?}"
    );
    classified(&err, "checksum_mismatch", Category::Value, None);
    assert_eq!(err.path(), Some(w.as_path()));
    says(
        &err,
        &[
            &format!("{} does not have the checksum it was registered with", w.display()),
            &format!("expected {WRONG_HASH}, its content has {actual}"),
            "nothing was saved: register it again",
        ],
    );
    assert!(!dest.join("metadata.yaml").exists(), "a refused save wrote metadata.yaml");
    let leftovers: Vec<_> = fs::read_dir(fx.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".pmf-"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "a refused save left {leftovers:?}");
}

#[test]
fn checkpoint_without_source_names_the_reference() {
    let err = Checkpoint::new("best", None::<&Path>, Some(1), None).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointWithoutSource { reference } if *reference == Reference::from("best")),
        "{err:?}"
    );
    classified(&err, "checkpoint_without_source", Category::Value, None);
    assert_eq!(err.reference(), Some(&Reference::from("best")));
    assert_eq!(err.path(), None);
    says(&err, &["invalid checkpoint \"best\": give a path to its file or its MD5 hash (neither was given)"]);

    let err = Checkpoint::new(7, None::<&Path>, None, None).unwrap_err();
    assert_eq!(err.reference(), Some(&Reference::Int(7)));
    says(&err, &["invalid checkpoint 7: give a path"]);
}

#[test]
fn checkpoint_without_epoch_names_the_reference() {
    let fx = Fx::new();
    let w = fx.file("inputs/e.h5", b"weights");
    let mut m = fx.model("m1");
    let err = m.add_checkpoint(Checkpoint::new("e", Some(&w), None, None).unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointWithoutEpoch { reference } if *reference == Reference::from("e")),
        "{err:?}"
    );
    classified(&err, "checkpoint_without_epoch", Category::Value, None);
    assert_eq!(err.reference(), Some(&Reference::from("e")));
    says(&err, &["checkpoint \"e\" has no epoch: a checkpoint needs an epoch to join a collection"]);
    assert!(m.checkpoint_collection.is_empty());

    // Inserting under another reference names that reference.
    let mut c = CheckpointCollection::new();
    let err = c.insert(4, &Checkpoint::new("e", Some(&w), None, None).unwrap()).unwrap_err();
    assert!(matches!(&err, Error::CheckpointWithoutEpoch { reference } if *reference == Reference::Int(4)), "{err:?}");
    says(&err, &["checkpoint 4 has no epoch"]);
    assert!(c.is_empty());
}

#[test]
fn duplicate_reference_is_a_key_error_naming_the_reference() {
    let fx = Fx::new();
    let mut m = fx.trained("m1", 1);
    let err = m.add_checkpoint(fx.ckpt(1, 2)).unwrap_err();
    assert!(matches!(&err, Error::DuplicateReference(r) if *r == Reference::Int(1)), "{err:?}");
    classified(&err, "duplicate_reference", Category::Key, None);
    assert_eq!(err.reference(), Some(&Reference::Int(1)));
    says(&err, &["checkpoint reference 1 is already registered in the collection"]);
    assert_eq!(m.checkpoint_collection.len(), 1);
    assert_eq!(m.checkpoint_collection.get(&1.into()).unwrap().epoch, Some(1), "the refused add replaced it");

    // A string reference is quoted, so that "1" and 1 read differently.
    m.add_checkpoint(Checkpoint::new("1", None::<&Path>, Some(1), Some(WRONG_HASH)).unwrap()).unwrap();
    let err = m.add_checkpoint(Checkpoint::new("1", None::<&Path>, Some(1), Some(WRONG_HASH)).unwrap()).unwrap_err();
    assert!(matches!(&err, Error::DuplicateReference(r) if *r == Reference::from("1")), "{err:?}");
    says(&err, &["checkpoint reference \"1\" is already registered"]);
}

#[test]
fn missing_reference_is_a_key_error_naming_the_reference() {
    let fx = Fx::new();
    let mut m = fx.trained("m1", 2);
    let err = m.checkpoint_collection.remove(&Reference::from("nope")).unwrap_err();
    assert!(matches!(&err, Error::MissingReference(r) if *r == Reference::from("nope")), "{err:?}");
    classified(&err, "missing_reference", Category::Key, None);
    assert_eq!(err.reference(), Some(&Reference::from("nope")));
    says(&err, &["checkpoint reference \"nope\" is not registered in the collection"]);

    let err = m.checkpoint_collection.set_latest(&Reference::Int(9)).unwrap_err();
    assert!(matches!(&err, Error::MissingReference(r) if *r == Reference::Int(9)), "{err:?}");
    says(&err, &["checkpoint reference 9 is not registered"]);
    assert_eq!(m.checkpoint_collection.latest(), Some(&Reference::Int(2)), "a refused set_latest moved latest");
    assert_eq!(m.checkpoint_collection.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_version_format_lists_the_registered_formats() {
    let err = Version::parse("semver", "1.0.0").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownVersionFormat { format, known } if format == "semver" && known == &["py_pa"]),
        "{err:?}"
    );
    classified(&err, "unknown_version_format", Category::Value, None);
    says(&err, &["invalid version format \"semver\": it is unknown (registered formats: py_pa)"]);

    let mut formats = VersionFormats::new();
    formats.register_unparsed("calendar");
    let err = formats.parse("semver", "1").unwrap_err();
    assert!(matches!(&err, Error::UnknownVersionFormat { known, .. } if known == &["calendar", "py_pa"]), "{err:?}");
    says(&err, &["(registered formats: calendar, py_pa)"]);

    // Loading a model whose producer version has a format the load options do not know.
    let fx = Fx::new();
    let root = fx.path("model");
    let mut m = fx.trained("m1", 1);
    m.producer.version = formats.parse("calendar", "2024.01").unwrap();
    m.save(&root, &SaveOptions::new()).unwrap();
    let err = Model::load(&root, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownVersionFormat { format, known } if format == "calendar" && known == &["py_pa"]),
        "{err:?}"
    );
    classified(&err, "unknown_version_format", Category::Value, None);
    let loaded = Model::load(&root, &LoadOptions::new().formats(formats)).unwrap();
    assert_eq!(loaded.producer.version.to_string(), "2024.01");
}

#[test]
fn invalid_version_names_the_format_the_text_and_why() {
    let err = Version::pep440("not a version").unwrap_err();
    let Error::InvalidVersion { format, value, reason } = &err else { panic!("expected InvalidVersion, got {err:?}") };
    assert_eq!((format.as_str(), value.as_str()), ("py_pa", "not a version"));
    assert!(!reason.is_empty());
    classified(&err, "invalid_version", Category::Value, None);
    says(&err, &[&format!("invalid py_pa version \"not a version\": {reason}")]);
}

// ---------------------------------------------------------------------------------------------
// Initialisations
// ---------------------------------------------------------------------------------------------

#[test]
fn initialisation_not_found_keeps_the_reference_wording() {
    let fx = Fx::new();
    let missing = fx.path("nowhere");
    let err = initialisation(&missing, None, Some("w"), &LoadOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::InitialisationNotFound { path } if *path == missing), "{err:?}");
    classified(&err, "initialisation_not_found", Category::Os, Some(ErrorKind::NotFound));
    assert_eq!(err.path(), Some(missing.as_path()));
    says(&err, &[&format!("Invalid path provided: {} does not exists.", missing.display())]);

    let mut m = fx.model("m1");
    let err = m.register_initialisation(&missing, None, None).unwrap_err();
    assert!(matches!(&err, Error::InitialisationNotFound { path } if *path == missing), "{err:?}");
    assert!(m.initialisation().is_none());
}

#[test]
fn initialisation_path_is_neither_a_weight_file_nor_a_model() {
    let fx = Fx::new();
    let folder = fx.path("just-a-folder");
    fx.file("just-a-folder/notes.txt", b"no metadata.yaml here");
    let err = initialisation(&folder, Some(1.into()), Some("w"), &LoadOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::InitialisationPath { path } if *path == folder), "{err:?}");
    classified(&err, "initialisation_path", Category::Os, Some(ErrorKind::InvalidInput));
    assert_eq!(err.path(), Some(folder.as_path()));
    says(
        &err,
        &[&format!(
            "Invalid path provided: {} must either be a PMF model or a weight file (a folder with metadata.yaml, or a file).",
            folder.display()
        )],
    );

    // A FIFO is neither (and is never opened).
    let fifo = fx.path("pipe");
    mkfifo(&fifo);
    let f = fifo.clone();
    let err = guarded("initialisation on a FIFO", WATCHDOG, vec![fifo.clone()], move || {
        initialisation(&f, None, Some("w"), &LoadOptions::new()).unwrap_err()
    });
    assert!(matches!(&err, Error::InitialisationPath { path } if *path == fifo), "{err:?}");
}

#[test]
fn initialisation_needs_name_for_a_weight_file() {
    let fx = Fx::new();
    let w = fx.file("inputs/init.pt", b"initial weights");
    let err = initialisation(&w, None, None, &LoadOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::InitialisationNeedsName { path } if *path == w), "{err:?}");
    classified(&err, "initialisation_needs_name", Category::Value, None);
    assert_eq!(err.path(), Some(w.as_path()));
    says(
        &err,
        &[&format!(
            "Invalid arguments provided: {} points to a file but name is None (a weight file needs a name to identify it).",
            w.display()
        )],
    );
    // A checkpoint reference does not stand for a name.
    let err = fx.model("m1").register_initialisation(&w, Some(1.into()), None).unwrap_err();
    assert!(matches!(&err, Error::InitialisationNeedsName { path } if *path == w), "{err:?}");
}

#[test]
fn initialisation_needs_checkpoint_for_a_model() {
    let fx = Fx::new();
    let init = fx.saved("init", "init-id", 2);
    let err = initialisation(&init, None, Some("w"), &LoadOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::InitialisationNeedsCheckpoint { path } if *path == init), "{err:?}");
    classified(&err, "initialisation_needs_checkpoint", Category::Value, None);
    assert_eq!(err.path(), Some(init.as_path()));
    says(
        &err,
        &[&format!(
            "Invalid arguments provided: {} points to a PMF model but no checkpoint reference was given.",
            init.display()
        )],
    );
}

#[test]
fn initialisation_checkpoint_missing_lists_the_available_references() {
    let fx = Fx::new();
    let init = fx.saved("init", "init-id", 2);
    let err = initialisation(&init, Some("best".into()), None, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::InitialisationCheckpointMissing { path, reference, available }
            if *path == init && *reference == Reference::from("best") && available == &[Reference::Int(1), Reference::Int(2)]),
        "{err:?}"
    );
    classified(&err, "initialisation_checkpoint_missing", Category::Value, None);
    assert_eq!(err.path(), Some(init.as_path()));
    assert_eq!(err.reference(), Some(&Reference::from("best")));
    says(
        &err,
        &[&format!(
            "Invalid arguments provided: {} points to a PMF model which does not contains \"best\" as a checkpoint (it has: 1, 2).",
            init.display()
        )],
    );

    // Through the model, with an integer reference; the model keeps no initialisation.
    let mut m = fx.model("m1");
    let err = m.register_initialisation(&init, Some(3.into()), None).unwrap_err();
    assert!(
        matches!(&err, Error::InitialisationCheckpointMissing { reference, .. } if *reference == Reference::Int(3)),
        "{err:?}"
    );
    says(&err, &["does not contains 3 as a checkpoint (it has: 1, 2)"]);
    assert!(m.initialisation().is_none());
    // The registered reference works.
    m.register_initialisation(&init, Some(2.into()), None).unwrap();
    assert!(matches!(m.initialisation(), Some(Initialisation::Model(i)) if i.checkpoint() == Some(&Reference::Int(2))));

    // A model without checkpoints has none to offer.
    let empty = fx.path("empty-init");
    fx.model("empty-id").save(&empty, &SaveOptions::new()).unwrap();
    let err = initialisation(&empty, Some(1.into()), None, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::InitialisationCheckpointMissing { available, .. } if available.is_empty()),
        "{err:?}"
    );
    says(&err, &["(it has: none)"]);
}

// ---------------------------------------------------------------------------------------------
// Save destinations
// ---------------------------------------------------------------------------------------------

#[test]
fn destination_is_file_is_a_value_error_even_with_force() {
    let fx = Fx::new();
    let dest = fx.file("dest", b"a file");
    for force in [false, true] {
        let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new().force(force)).unwrap_err();
        assert!(matches!(&err, Error::DestinationIsFile { path } if *path == dest), "force={force}: {err:?}");
        classified(&err, "destination_is_file", Category::Value, None);
        assert_eq!(err.path(), Some(dest.as_path()));
        says(&err, &[&format!("invalid path: {} is a file, expected a folder to save the model in", dest.display())]);
    }
    assert_eq!(fs::read(&dest).unwrap(), b"a file");
}

#[test]
fn foreign_folder_needs_force() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    fx.file("dest/notes.txt", b"mine");
    let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::ForeignFolder { path } if *path == dest), "{err:?}");
    classified(&err, "foreign_folder", Category::Os, Some(ErrorKind::AlreadyExists));
    assert_eq!(err.path(), Some(dest.as_path()));
    says(
        &err,
        &[
            &format!("invalid path: {} exists and is not a PMF model (no metadata.yaml)", dest.display()),
            "save with force to write into it (its files are kept)",
        ],
    );
    assert!(!dest.join("metadata.yaml").exists() && !dest.join("data").exists());
    // What the message says works.
    fx.trained("m1", 1).save(&dest, &SaveOptions::new().force(true)).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(fs::read(dest.join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn other_model_names_both_ids_and_force_does_not_help() {
    let fx = Fx::new();
    let dest = fx.saved("dest", "first-id", 1);
    let before = fs::read(dest.join("metadata.yaml")).unwrap();
    for force in [false, true] {
        let err = fx.trained("second-id", 1).save(&dest, &SaveOptions::new().force(force)).unwrap_err();
        assert!(
            matches!(&err, Error::OtherModel { path, found_id, saving_id }
                if *path == dest && found_id == "first-id" && saving_id == "second-id"),
            "force={force}: {err:?}"
        );
        classified(&err, "other_model", Category::Os, Some(ErrorKind::AlreadyExists));
        assert_eq!(err.path(), Some(dest.as_path()));
        says(
            &err,
            &[
                &format!("invalid path: {} holds a different PMF model", dest.display()),
                "(id \"first-id\", saving id \"second-id\"); refusing to overwrite it",
            ],
        );
    }
    assert_eq!(fs::read(dest.join("metadata.yaml")).unwrap(), before);
}

#[test]
fn invalid_destination_is_refused_even_with_force() {
    let fx = Fx::new();
    let dest = fx.path("dest");
    let md = fx.file("dest/metadata.yaml", b"format: {version: 1.0.0\nmodel: [\n");
    for force in [false, true] {
        let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new().force(force)).unwrap_err();
        let Error::InvalidDestination { path, reason } = &err else {
            panic!("expected InvalidDestination, got {err:?}")
        };
        assert_eq!(path, &md);
        assert!(!reason.is_empty());
        classified(&err, "invalid_destination", Category::Os, Some(ErrorKind::InvalidData));
        assert_eq!(err.path(), Some(md.as_path()));
        says(
            &err,
            &[
                &format!("invalid path: {} is not a valid PMF metadata file ({reason})", md.display()),
                "refusing to save over it",
            ],
        );
    }
    // YAML that is not PMF metadata.
    fs::write(&md, b"format: 1\nmodel: {id: m1}\n").unwrap();
    let err = fx.trained("m1", 1).save(&dest, &SaveOptions::new()).unwrap_err();
    assert!(matches!(&err, Error::InvalidDestination { path, .. } if *path == md), "{err:?}");
    assert_eq!(fs::read(&md).unwrap(), b"format: 1\nmodel: {id: m1}\n");
    assert!(!dest.join("data").exists());
}

#[test]
fn invalid_same_model_reports_the_offences_and_force_repairs_it() {
    let fx = Fx::new();
    let dest = fx.saved("dest", "m1", 2);
    let ck1 = dest.join("data/checkpoints/1.h5");
    fs::write(&ck1, b"corrupted weights\n").unwrap();

    let err = fx.trained("m1", 2).save(&dest, &SaveOptions::new()).unwrap_err();
    let Error::InvalidSameModel { path, report } = &err else { panic!("expected InvalidSameModel, got {err:?}") };
    assert_eq!(path, &dest);
    assert_eq!(report.path, dest.canonicalize().unwrap());
    assert_eq!(offence_triples(&report.offences), [(OffenceKind::Tree, "data/checkpoints/1.h5".to_owned())]);
    classified(&err, "invalid_same_model", Category::Os, Some(ErrorKind::InvalidData));
    assert_eq!(err.path(), Some(dest.as_path()));
    assert_eq!(err.offences(), report.offences);
    let offence = &report.offences[0];
    says(
        &err,
        &[
            &format!("invalid path: {} is an invalid PMF model with the same model id", dest.display()),
            "save with force to replace its PMF files (1 offence)",
            &format!("\n  {offence}"),
        ],
    );
    assert!(offence.to_string().starts_with("[tree] data/checkpoints/1.h5: "), "{offence}");
    assert_eq!(fs::read(&ck1).unwrap(), b"corrupted weights\n", "a refused save changed the file");

    // force repairs it: the checkpoint file is written again from its source.
    fx.trained("m1", 2).save(&dest, &SaveOptions::new().force(true)).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true).checkpoints(true)).unwrap();
    assert_eq!(fs::read(&ck1).unwrap(), b"weights of epoch 1\n");
}

#[test]
fn concurrent_change_refuses_a_stale_model_object() {
    let fx = Fx::new();
    let root = fx.saved("model", "m1", 1);
    let mut first = Model::load(&root, &LoadOptions::new()).unwrap();
    let mut second = Model::load(&root, &LoadOptions::new()).unwrap();
    first.register_epoch(Some(2)).unwrap();
    first.add_checkpoint(fx.ckpt(2, 2)).unwrap();
    second.register_epoch(Some(3)).unwrap();
    second.add_checkpoint(fx.ckpt(3, 3)).unwrap();
    first.save(&root, &SaveOptions::new()).unwrap();

    for options in [SaveOptions::new(), SaveOptions::new().force(true)] {
        let err = second.save(&root, &options).unwrap_err();
        assert!(matches!(&err, Error::ConcurrentChange { path } if *path == root), "{err:?}");
        classified(&err, "concurrent_change", Category::Os, Some(ErrorKind::AlreadyExists));
        assert_eq!(err.path(), Some(root.as_path()));
        says(
            &err,
            &[
                &format!(
                    "{} changed since this model was loaded from or saved to it (another writer saved it)",
                    root.display()
                ),
                "reload it and apply your changes again",
                "or save with overwrite_concurrent_changes",
            ],
        );
    }
    let keys: Vec<Reference> =
        Model::load(&root, &LoadOptions::new()).unwrap().checkpoint_collection.keys().cloned().collect();
    assert_eq!(keys, [Reference::Int(1), Reference::Int(2)], "the refused save changed the model");
}

#[test]
fn locked_names_the_holder_and_how_long_it_waited() {
    let fx = Fx::new();
    let root = fx.saved("model", "m1", 1);
    let mut lock =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(root.join(LOCK_FILE)).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    lock.set_len(0).unwrap();
    lock.write_all(b"pid 4242 on testhost since unix time 7\n").unwrap();

    let timeout = Duration::from_millis(200);
    let mut m = Model::load(&root, &LoadOptions::new()).unwrap();
    m.build_parameters = Value::from("changed");
    let start = Instant::now();
    let err = m.save(&root, &SaveOptions::new().lock_timeout(timeout)).unwrap_err();
    let elapsed = start.elapsed();
    let Error::Locked { path, holder, waited } = &err else { panic!("expected Locked, got {err:?}") };
    assert_eq!(path, &root);
    assert_eq!((holder.pid, holder.host.as_deref(), holder.since), (Some(4242), Some("testhost"), Some(7)));
    assert_eq!(*waited, timeout);
    assert!(elapsed >= timeout, "gave up after {elapsed:?}, before its time-out");
    assert!(elapsed < Duration::from_secs(10), "waited {elapsed:?}");
    classified(&err, "locked", Category::Os, Some(ErrorKind::WouldBlock));
    assert_eq!(err.path(), Some(root.as_path()));
    assert_eq!(err.lock_holder(), Some(holder));
    says(
        &err,
        &[
            &format!("{} is being written by pid 4242 on testhost since unix time 7 (lock .pmf.lock)", root.display()),
            "gave up after 0.2s",
            "retry when it is done",
        ],
    );
    // The holder's record is untouched, and the save works once the lock is released.
    assert_eq!(fs::read(root.join(LOCK_FILE)).unwrap(), b"pid 4242 on testhost since unix time 7\n");
    drop(lock);
    m.save(&root, &SaveOptions::new().lock_timeout(timeout)).unwrap();
}

#[test]
fn interrupted_save_names_the_missing_folder_and_the_leftover() {
    let fx = Fx::new();
    let root = fx.saved("models/model", "m1", 2);
    // Killed between the two renames of a commit without RENAME_EXCHANGE: the old tree moved
    // aside (the suffix has the form the library gives its temporary names), no model folder.
    let leftover = fx.path("models/.model.pmf-old-4242-0-0000abcd");
    fs::rename(&root, &leftover).unwrap();

    let readers: [(&str, Reader); 3] = [
        ("validate", Box::new(|| validate(&root, &ValidateOptions::new()).map(drop))),
        ("check", Box::new(|| check(&root, &ValidateOptions::new()).map(drop))),
        ("load", Box::new(|| Model::load(&root, &LoadOptions::new()).map(drop))),
    ];
    for (what, read) in readers {
        let err = read().unwrap_err();
        assert!(
            matches!(&err, Error::InterruptedSave { path, leftover: l } if *path == root && *l == leftover),
            "{what}: {err:?}"
        );
        classified(&err, "interrupted_save", Category::Os, Some(ErrorKind::NotFound));
        assert_eq!(err.path(), Some(root.as_path()));
        says(
            &err,
            &[
                &format!("{} is missing: a save was interrupted while replacing it", root.display()),
                &format!("its complete new tree is at {}", leftover.display()),
                "the next save of this model puts it in place",
            ],
        );
    }
    assert!(leftover.is_dir() && !root.exists(), "a reader moved the leftover");
    // What the message says: the next save puts it in place.
    fx.trained("m1", 2).save(&root, &SaveOptions::new()).unwrap();
    validate(&root, &ValidateOptions::new().strict(true)).unwrap();
    assert!(!leftover.exists());
}

#[test]
fn would_not_validate_gives_every_reason_with_its_location() {
    let fx = Fx::new();
    let cfg = fx.file("inputs/metadata.yaml", b"lr = 0.1\n");
    let mut m = Model::new("m1", Producer::new("a", Version::pep440("1.0").unwrap(), &cfg).unwrap());
    m.register_training_start(0).unwrap();
    m.register_epoch(Some(3)).unwrap();
    let a = fx.file("inputs/a/w.h5", b"weights a");
    let b = fx.file("inputs/b/w.h5", b"weights b");
    m.add_checkpoint(Checkpoint::new(1, Some(&a), Some(1), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new("best", Some(&b), Some(2), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new(3, None::<&Path>, Some(3), Some(WRONG_HASH)).unwrap()).unwrap();
    let dest = fx.path("dest");

    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    let Error::WouldNotValidate { reasons } = &err else { panic!("expected WouldNotValidate, got {err:?}") };
    let locations: Vec<&str> = reasons.iter().map(|r| r.location.as_str()).collect();
    assert_eq!(
        locations,
        ["producer.name", "producer.configuration", "checkpoints.best", "checkpoints.3"],
        "{reasons:#?}"
    );
    assert!(
        reasons[0]
            .message
            .contains("producer name \"a\" is invalid: expected a letter then at least one letter, digit or \"_\""),
        "{reasons:#?}"
    );
    assert!(reasons[1].message.contains("named \"metadata.yaml\", a name PMF reserves: rename it"), "{reasons:#?}");
    assert!(
        reasons[2]
            .message
            .contains("checkpoints 1 and \"best\" both have files named \"w.h5\" with different contents")
            && reasons[2].message.contains("rename one"),
        "{reasons:#?}"
    );
    assert!(reasons[3].message.contains("the checkpoint has no file to save"), "{reasons:#?}");
    classified(&err, "would_not_validate", Category::Value, None);
    assert_eq!(err.reasons(), reasons.as_slice());
    assert_eq!(err.path(), None);
    let mut fragments = vec!["cannot save: the model would not be valid (4 reasons)".to_owned()];
    fragments.extend(reasons.iter().map(|r| format!("\n  - {r}")));
    says(&err, &fragments.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!dest.exists(), "a refused save created the destination");

    // The initialisation model's reasons are located under `initialisation.model.`.
    let init_root = fx.saved("init", "init-id", 1);
    let mut init = Model::load(&init_root, &LoadOptions::new()).unwrap();
    init.producer.name = "b".into();
    init.set_checkpoint(Some(Reference::Int(9)));
    let mut m = fx.trained("m2", 1);
    m.set_initialisation(Some(Initialisation::Model(Box::new(init))));
    let err = m.save(&dest, &SaveOptions::new()).unwrap_err();
    let locations: Vec<&str> = err.reasons().iter().map(|r| r.location.as_str()).collect();
    assert_eq!(locations, ["initialisation", "initialisation.model.producer.name"], "{:#?}", err.reasons());
    says(&err, &["(2 reasons)", "the initialisation model has no checkpoint 9"]);
    assert!(!dest.exists(), "a refused save created the destination");
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[test]
fn tree_validation_reports_every_tree_offence() {
    let fx = Fx::new();
    let root = fx.saved("model", "m1", 2);
    fs::remove_file(root.join("data/checkpoints/1.h5")).unwrap();
    fs::write(root.join("config.py"), b"changed configuration\n").unwrap();

    let err = validate(&root, &ValidateOptions::new().strict(true)).unwrap_err();
    let Error::TreeValidation(report) = &err else { panic!("expected TreeValidation, got {err:?}") };
    assert_eq!(report.path, root);
    let found = offence_triples(&report.offences);
    assert_eq!(
        found,
        [(OffenceKind::Tree, "data/checkpoints/1.h5".to_owned()), (OffenceKind::Tree, "config.py".to_owned())],
        "{:#?}",
        report.offences
    );
    classified(&err, "tree_validation", Category::Validation, None);
    assert_eq!(err.path(), Some(root.as_path()));
    assert_eq!(err.report(), Some(report));
    assert_eq!(err.offences(), report.offences);
    let mut fragments = vec![format!("{} is not a valid PMF model (2 offences)", root.display())];
    fragments.extend(report.offences.iter().map(|o| format!("\n  {o}")));
    says(&err, &fragments.iter().map(String::as_str).collect::<Vec<_>>());
    for o in &report.offences {
        assert!(o.to_string().starts_with(&format!("[tree] {}: ", o.location)), "{o}");
    }
}

#[test]
fn metadata_validation_reports_every_offence_of_both_kinds() {
    // Value rules broken (the metadata still has every field of the right type): the tree
    // checks run too, and the report has offences of both kinds.
    let fx = Fx::new();
    let root = fx.saved("model", "m1", 2);
    let md = root.join("metadata.yaml");
    replace_in(&md, "name: trainer", "name: x");
    replace_in(&md, "latest_epoch: 2", "latest_epoch: 1");
    fs::remove_file(root.join("data/checkpoints/2.h5")).unwrap();

    let err = validate(&root, &ValidateOptions::new()).unwrap_err();
    let Error::MetadataValidation(report) = &err else { panic!("expected MetadataValidation, got {err:?}") };
    assert_eq!(report.path, root);
    assert_eq!(
        offence_triples(&report.offences),
        [
            (OffenceKind::Metadata, "format.producer.name".to_owned()),
            (OffenceKind::Metadata, "model.training.checkpoints".to_owned()),
            (OffenceKind::Tree, "data/checkpoints/2.h5".to_owned()),
        ],
        "{:#?}",
        report.offences
    );
    classified(&err, "metadata_validation", Category::Validation, None);
    assert_eq!(err.path(), Some(root.as_path()));
    assert_eq!(err.report(), Some(report));
    assert_eq!(err.offences(), report.offences);
    let mut fragments = vec![format!("{} is not a valid PMF model (3 offences)", root.display())];
    fragments.extend(report.offences.iter().map(|o| format!("\n  {o}")));
    says(&err, &fragments.iter().map(String::as_str).collect::<Vec<_>>());
    says(&err, &["[metadata] format.producer.name: invalid producer name \"x\"", "[tree] data/checkpoints/2.h5: "]);

    // A status that is not one of the four.
    fs::write(root.join("data/checkpoints/2.h5"), b"weights of epoch 2\n").unwrap();
    replace_in(&md, "status: running", "status: paused");
    let err = Model::load(&root, &LoadOptions::new()).unwrap_err();
    let Error::MetadataValidation(report) = &err else { panic!("expected MetadataValidation, got {err:?}") };
    assert_eq!(report.path, root);
    // The status cannot be typed: the training cross-checks do not run (latest_epoch 1 is no
    // longer reported), only the two metadata offences.
    assert_eq!(
        offence_triples(&report.offences),
        [
            (OffenceKind::Metadata, "format.producer.name".to_owned()),
            (OffenceKind::Metadata, "model.training.status".to_owned()),
        ],
        "{:#?}",
        report.offences
    );
    classified(&err, "metadata_validation", Category::Validation, None);
    says(&err, &["(2 offences)", "[metadata] model.training.status: invalid status \"paused\": expected pending, running, finished or failed"]);
}

#[test]
fn saving_or_initialising_from_an_unreachable_store_is_a_storage_error_naming_the_url() {
    let fx = Fx::new();
    // A closed port on this machine: the request fails at once, without retries.
    let mut storage = StorageOptions::new();
    for (k, v) in [("endpoint", "http://127.0.0.1:1"), ("retry_max", "0"), ("connect_timeout", "2")] {
        storage.set(k, v).unwrap();
    }
    storage.set("access_key_id", "id").unwrap().set("secret_access_key", "not-shown-anywhere").unwrap();
    let url = Location::parse("s3://bucket/models/m1").unwrap();
    let mut m = fx.trained("m1", 1);
    let err = m.save_at(&url, &SaveOptions::new().storage(storage.clone())).unwrap_err();
    assert!(
        matches!(&err, Error::Storage { location, .. } if location.starts_with("s3://bucket/models/m1")),
        "{err:?}"
    );
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Other), "{err:?}");
    classified(&err, "storage", Category::Os, Some(ErrorKind::Other));
    assert!(!format!("{err} {err:?}").contains("not-shown-anywhere"), "{err}");
    let err = initialisation_at(&url, Some(1.into()), None, &LoadOptions::new().storage(storage)).unwrap_err();
    assert!(matches!(&err, Error::Storage { .. }), "{err:?}");
    // A local location saves as `save` does.
    let dest = fx.dir.path().join("local");
    m.save_at(&Location::from(dest.as_path()), &SaveOptions::new()).unwrap();
    assert_eq!(validate(&dest, &ValidateOptions::new().strict(true)).unwrap().model.id, "m1");
}
