//! `diff_at`, `diff`, `DiffSide::read`: what differs between two models saved by the library,
//! for each part of a model (name and id, producer, training record, checkpoints, build
//! parameters, configuration, initialisation); a model and its copy (on disk and in a bucket)
//! are equal; invalid models whose metadata can be read are compared; unreadable ones, missing
//! paths, and metadata linked out of the model are errors, and nothing outside is read. The
//! object-store test needs the S3 test server (`tests/common/s3.rs`): skipped without it unless
//! `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::s3::s3_or_skip;
use common::{copy_tree, workspace_root};
use plums_model::{
    diff, diff_at, parse_yaml, Change, ChangeKind, Checkpoint, DiffSection, DiffSide, Error, LoadOptions, Location,
    Model, ModelDiff, Producer, Reference, SaveOptions, StorageOptions, ValidateOptions, Value, Version,
};

/// Inputs: configurations, checkpoint files and weight files.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("other")).unwrap();
        for (name, content) in [
            ("config.py", "lr = 0.1\n"),
            ("other/config.py", "lr = 0.2\n"),
            ("renamed.py", "lr = 0.1\n"),
            ("1.pt", "weights 1"),
            ("2.pt", "weights 2"),
            ("3.pt", "weights 3"),
            ("other.pt", "other weights"),
            ("imagenet.bin", "imagenet"),
            ("imagenet-2.bin", "imagenet, again"),
        ] {
            fs::write(dir.path().join(name), content).unwrap();
        }
        Inputs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn producer(&self, version: &str, config: &str) -> Producer {
        Producer::new("trainer", Version::pep440(version).unwrap(), self.path(config)).unwrap()
    }

    fn checkpoint(&self, reference: impl Into<Reference>, file: &str, epoch: i64) -> Checkpoint {
        Checkpoint::new(reference.into(), Some(&self.path(file)), Some(epoch), None).unwrap()
    }

    /// The base model at `dst`: running at epoch 2, checkpoints 1 and 2, initialised from
    /// `imagenet.bin`, build parameters with a list of layers.
    fn base(&self, dst: &Path) -> PathBuf {
        let mut model = Model::new("run-1", self.producer("1.0", "config.py"));
        model.name = Some("detector".into());
        model.build_parameters = parse_yaml("layers: [{size: 3}, {size: 4}]\nlr: 0.1\n").unwrap();
        model.register_initialisation(self.path("imagenet.bin"), None, Some("imagenet")).unwrap();
        model.register_training_start(0).unwrap();
        for epoch in 1..=2 {
            model.register_epoch(Some(epoch)).unwrap();
            model.add_checkpoint(self.checkpoint(epoch, &format!("{epoch}.pt"), epoch)).unwrap();
        }
        model.save(dst, &SaveOptions::new()).unwrap();
        dst.to_path_buf()
    }

    /// The model at `from`, loaded, changed by `change`, saved at `dst`.
    fn variant(&self, from: &Path, dst: &Path, change: impl FnOnce(&mut Model)) -> PathBuf {
        let mut model = Model::load(from, &LoadOptions::new()).unwrap();
        change(&mut model);
        model.save(dst, &SaveOptions::new()).unwrap();
        dst.to_path_buf()
    }
}

fn options() -> ValidateOptions {
    ValidateOptions::new()
}

fn compare(a: &Path, b: &Path) -> ModelDiff {
    diff_at(&Location::from(a), &Location::from(b), &options()).unwrap()
}

fn keys(d: &ModelDiff) -> Vec<(&str, ChangeKind)> {
    d.changes.iter().map(|c| (c.key.as_str(), c.kind)).collect()
}

fn change<'a>(d: &'a ModelDiff, key: &str) -> &'a Change {
    d.changes.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("no change {key}: {:?}", keys(d)))
}

fn text(v: &Option<Value>) -> Option<&str> {
    v.as_ref().and_then(Value::as_str)
}

#[test]
fn a_model_and_its_copy_are_equal() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    copy_tree(&a, &t.path("copy"));
    assert!(compare(&a, &t.path("copy")).is_empty());
    // Saved again, loaded: the same records.
    let again = t.variant(&a, &t.path("again"), |_| {});
    assert!(compare(&a, &again).is_empty(), "{:?}", keys(&compare(&a, &again)));
    let detector = workspace_root().join("examples/detector");
    assert!(compare(&detector, &detector).is_empty());
}

#[test]
fn name_id_and_producer() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let b = t.variant(&a, &t.path("b"), |m| {
        m.name = None;
        m.id = "run-2".into();
        m.producer = Producer::new("other_trainer", Version::pep440("1.1").unwrap(), t.path("config.py")).unwrap();
    });
    let d = compare(&a, &b);
    assert_eq!(
        keys(&d),
        [
            ("model.name", ChangeKind::Changed),
            ("model.id", ChangeKind::Changed),
            ("format.producer.name", ChangeKind::Changed),
            ("format.producer.version.value", ChangeKind::Changed),
        ]
    );
    assert_eq!(
        (text(&change(&d, "model.id").before), text(&change(&d, "model.id").after)),
        (Some("run-1"), Some("run-2"))
    );
    assert_eq!(change(&d, "model.name").after, Some(Value::Null));
    assert_eq!(
        d.changes.iter().map(|c| c.section).collect::<Vec<_>>()[..3],
        [DiffSection::Model, DiffSection::Model, DiffSection::Producer]
    );
}

#[test]
fn training_record_and_checkpoints() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let b = t.variant(&a, &t.path("b"), |m| {
        m.register_epoch(Some(3)).unwrap();
        m.add_checkpoint(t.checkpoint(3, "3.pt", 3)).unwrap();
        m.checkpoint_collection.remove(&Reference::Int(1)).unwrap();
        m.checkpoint_collection.remove(&Reference::Int(2)).unwrap();
        // Checkpoint 2 again: another file (another MD5) at another epoch.
        m.add_checkpoint(t.checkpoint(2, "other.pt", 1)).unwrap();
        m.add_checkpoint(t.checkpoint("best", "3.pt", 3)).unwrap();
        m.register_training_end(true).unwrap();
    });
    let d = compare(&a, &b);
    let training: Vec<&str> = d.in_section(DiffSection::Training).map(|c| c.key.as_str()).collect();
    assert_eq!(
        training,
        [
            "model.training.status",
            "model.training.latest_epoch",
            "model.training.latest_time",
            "model.training.end_epoch",
            "model.training.end_time",
            "model.training.latest",
        ]
    );
    assert_eq!(
        (text(&change(&d, "model.training.status").before), text(&change(&d, "model.training.status").after)),
        (Some("running"), Some("finished"))
    );
    assert_eq!(change(&d, "model.training.end_epoch").after, Some(Value::Int(3)));
    assert_eq!(change(&d, "model.training.latest").after, Some(Value::Str("best".into())));
    let checkpoints: Vec<(&str, ChangeKind)> =
        d.in_section(DiffSection::Checkpoints).map(|c| (c.key.as_str(), c.kind)).collect();
    assert_eq!(
        checkpoints,
        [
            ("model.training.checkpoints.1", ChangeKind::Removed),
            ("model.training.checkpoints.2.epoch", ChangeKind::Changed),
            ("model.training.checkpoints.2.path", ChangeKind::Changed),
            ("model.training.checkpoints.2.hash", ChangeKind::Changed),
            ("model.training.checkpoints.3", ChangeKind::Added),
            ("model.training.checkpoints.best", ChangeKind::Added),
        ]
    );
    let added = change(&d, "model.training.checkpoints.3").after.as_ref().and_then(Value::as_map).unwrap();
    assert_eq!(added.get(&Value::from("epoch")), Some(&Value::Int(3)));
    assert_eq!(change(&d, "model.training.checkpoints.1").after, None);
}

#[test]
fn build_parameters_by_key_path() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let b = t.variant(&a, &t.path("b"), |m| {
        m.build_parameters =
            parse_yaml("layers: [{size: 5}, {size: 4}, {size: 6}]\nlr: '0.1'\nnew: {deep: true}\n").unwrap();
    });
    let d = compare(&a, &b);
    assert_eq!(
        keys(&d),
        [
            ("model.build_parameters.layers.0.size", ChangeKind::Changed),
            ("model.build_parameters.layers.2", ChangeKind::Added),
            ("model.build_parameters.lr", ChangeKind::Changed),
            ("model.build_parameters.new", ChangeKind::Added),
        ]
    );
    let size = change(&d, "model.build_parameters.layers.0.size");
    assert_eq!(
        (&size.before, &size.after, size.section),
        (&Some(Value::Int(3)), &Some(Value::Int(5)), DiffSection::BuildParameters)
    );
    assert_eq!(change(&d, "model.build_parameters.lr").before, Some(Value::Float(0.1)), "0.1 and '0.1' differ");
}

#[test]
fn configuration_name_and_content() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let content = t.variant(&a, &t.path("content"), |m| m.producer = t.producer("1.0", "other/config.py"));
    assert_eq!(keys(&compare(&a, &content)), [("model.configuration.hash", ChangeKind::Changed)]);
    let renamed = t.variant(&a, &t.path("renamed"), |m| m.producer = t.producer("1.0", "renamed.py"));
    let d = compare(&a, &renamed);
    assert_eq!(keys(&d), [("model.configuration.path", ChangeKind::Changed)], "same content, another name");
    assert_eq!(text(&d.changes[0].after), Some("renamed.py"));
    assert_eq!(d.changes[0].section, DiffSection::Configuration);
}

#[test]
fn initialisation_kind_id_checkpoint_and_file() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let file = t.variant(&a, &t.path("file"), |m| {
        m.register_initialisation(t.path("imagenet-2.bin"), None, Some("imagenet-v2")).unwrap();
    });
    assert_eq!(
        keys(&compare(&a, &file)),
        [
            ("model.initialisation.file.name", ChangeKind::Changed),
            ("model.initialisation.file.path", ChangeKind::Changed),
            ("model.initialisation.file.hash", ChangeKind::Changed),
        ]
    );
    let detector = workspace_root().join("examples/detector");
    let pmf =
        t.variant(&a, &t.path("pmf"), |m| m.register_initialisation(&detector, Some(Reference::Int(2)), None).unwrap());
    let d = compare(&a, &pmf);
    assert_eq!(
        keys(&d),
        [("model.initialisation.file", ChangeKind::Removed), ("model.initialisation.pmf", ChangeKind::Added)]
    );
    assert!(d.changes.iter().all(|c| c.section == DiffSection::Initialisation));
    let other = t.variant(&pmf, &t.path("pmf-best"), |m| {
        m.register_initialisation(&detector, Some(Reference::Str("best".into())), None).unwrap();
    });
    let d = compare(&pmf, &other);
    assert_eq!(keys(&d), [("model.initialisation.pmf.checkpoint", ChangeKind::Changed)]);
    assert_eq!((&d.changes[0].before, &d.changes[0].after), (&Some(Value::Int(2)), &Some(Value::Str("best".into()))));
    let none = t.variant(&a, &t.path("none"), |m| m.set_initialisation(None));
    let d = compare(&a, &none);
    assert_eq!(keys(&d), [("model.initialisation", ChangeKind::Changed)]);
    assert_eq!(d.changes[0].after, Some(Value::Null));
}

#[test]
fn an_invalid_model_whose_metadata_reads_is_compared() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let b = t.variant(&a, &t.path("b"), |m| m.name = Some("other".into()));
    fs::remove_file(b.join("data/checkpoints/1.pt")).unwrap();
    fs::write(b.join("data/build_parameters.yaml"), "[unclosed").unwrap();
    let side = DiffSide::read(&Location::from(b.as_path()), &options()).unwrap();
    assert!(!side.is_valid());
    let locations: Vec<&str> = side.offences.iter().map(|o| o.location.as_str()).collect();
    assert_eq!(locations, ["data/build_parameters.yaml", "data/checkpoints/1.pt"]);
    assert_eq!(side.build_parameters, None, "unreadable");
    let d = diff(&DiffSide::read(&Location::from(a.as_path()), &options()).unwrap(), &side);
    assert_eq!(keys(&d), [("model.name", ChangeKind::Changed), ("model.build_parameters", ChangeKind::Removed)]);

    // Metadata with a broken value rule (not its types) still reads.
    let c = t.variant(&a, &t.path("c"), |_| {});
    let text = fs::read_to_string(c.join("metadata.yaml")).unwrap();
    fs::write(c.join("metadata.yaml"), text.replace("name: trainer", "name: t")).unwrap();
    let d = compare(&a, &c);
    assert_eq!(keys(&d), [("format.producer.name", ChangeKind::Changed)]);
}

#[test]
fn unreadable_metadata_and_missing_paths_are_errors() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let broken = t.variant(&a, &t.path("broken"), |_| {});
    fs::write(broken.join("metadata.yaml"), "model: [unclosed\n").unwrap();
    let err = diff_at(&Location::from(a.as_path()), &Location::from(broken.as_path()), &options()).unwrap_err();
    assert!(matches!(err, Error::MetadataValidation(_)), "{err:?}");
    assert!(err.offences().iter().any(|o| o.location == "metadata.yaml"), "{err:?}");

    let types = t.variant(&a, &t.path("types"), |_| {});
    let text = fs::read_to_string(types.join("metadata.yaml")).unwrap();
    fs::write(types.join("metadata.yaml"), text.replace("id: run-1", "id: [run-1]")).unwrap();
    let err = DiffSide::read(&Location::from(types.as_path()), &options()).unwrap_err();
    assert!(err.offences().iter().any(|o| o.location == "model.id"), "{err:?}");

    let err = DiffSide::read(&Location::from(t.path("nothing").as_path()), &options()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let err = DiffSide::read(&Location::from(t.path("1.pt").as_path()), &options()).unwrap_err();
    assert!(err.offences().iter().any(|o| o.message.contains("not a folder")), "{err:?}");
}

#[test]
fn metadata_linked_out_of_the_model_is_never_read() {
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    let outside = t.base(&t.path("outside"));
    let linked = t.variant(&a, &t.path("linked"), |_| {});
    fs::remove_file(linked.join("metadata.yaml")).unwrap();
    symlink(outside.join("metadata.yaml"), linked.join("metadata.yaml")).unwrap();
    let err = DiffSide::read(&Location::from(linked.as_path()), &options()).unwrap_err();
    assert!(err.offences().iter().any(|o| o.location == "metadata.yaml"), "{err:?}");
    let linked_params = t.variant(&a, &t.path("linked-params"), |_| {});
    fs::remove_file(linked_params.join("data/build_parameters.yaml")).unwrap();
    fs::write(t.path("params.yaml"), "secret: 1\n").unwrap();
    symlink(t.path("params.yaml"), linked_params.join("data/build_parameters.yaml")).unwrap();
    let side = DiffSide::read(&Location::from(linked_params.as_path()), &options()).unwrap();
    assert_eq!(side.build_parameters, None, "a link out of the model is not followed");
}

#[test]
fn a_folder_and_its_copy_in_a_bucket_are_equal() {
    let Some(s3) = s3_or_skip("diff_local_and_s3") else { return };
    let t = Inputs::new();
    let a = t.base(&t.path("a"));
    s3.upload_dir(&a, "a");
    let b = t.variant(&a, &t.path("b"), |m| m.name = Some("renamed".into()));
    s3.upload_dir(&b, "b");
    let mut storage = StorageOptions::new();
    for (k, v) in s3.server.storage_options() {
        storage.set(&k, &v).unwrap();
    }
    storage.cache_dir(t.path("cache"));
    let options = ValidateOptions::new().storage(storage);
    let remote = |rel: &str| Location::parse(&s3.url(rel)).unwrap();
    let local = Location::from(a.as_path());
    assert!(diff_at(&local, &remote("a"), &options).unwrap().is_empty());
    let d = diff_at(&remote("a"), &remote("b"), &options).unwrap();
    assert_eq!(keys(&d), [("model.name", ChangeKind::Changed)]);
    // An invalid remote model is compared; a missing prefix is an error.
    s3.delete("b/data/checkpoints/1.pt");
    let side = DiffSide::read(&remote("b"), &options).unwrap();
    assert_eq!(side.offences.iter().map(|o| o.location.as_str()).collect::<Vec<_>>(), ["data/checkpoints/1.pt"]);
    assert_eq!(side.build_parameters, parse_yaml("layers: [{size: 3}, {size: 4}]\nlr: 0.1\n").ok());
    let err = DiffSide::read(&remote("nothing"), &options).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
}
