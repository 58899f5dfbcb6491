//! Behaviour that code written for the reference (`plums` 0.5.2) relies on (issue 9):
//!
//! 1. saving a new model object over a folder holding a model with the same id whose files fail
//!    their checksums is refused ("... is an invalid PMF model with the same model id") unless
//!    `force`, which repairs it; the model object that saved the folder keeps its fast path;
//! 4. a metadata path with a component longer than 255 bytes is a metadata offence ("Invalid
//!    Pathname provided"), for the configuration, a checkpoint, a file initialisation and a PMF
//!    initialisation.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use plums_model::{
    validate, Checkpoint, Error, Initialisation, LoadOptions, Model, OffenceKind, Producer, SaveOptions,
    ValidateOptions, Value, Version,
};
use tempfile::TempDir;

struct Fx {
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(fx.path("inputs")).unwrap();
        fs::write(fx.path("inputs/config.py"), b"lr = 0.01\n").unwrap();
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn trained(&self, id: &str, epochs: i64) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.path("inputs/config.py"));
        let mut m = Model::new(id, producer.unwrap());
        m.build_parameters = Value::from("resnet");
        m.register_training_start(0).unwrap();
        for e in 1..=epochs {
            let p = self.path(&format!("inputs/{e}.h5"));
            fs::write(&p, format!("weights of epoch {e}\n")).unwrap();
            m.register_epoch(Some(e)).unwrap();
            m.add_checkpoint(Checkpoint::new(e, Some(&p), Some(e), None).unwrap()).unwrap();
        }
        m
    }
}

/// Everything under `root` (folders, and files with their content), the lock file left out:
/// saves write their pid in it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    common::snapshot(root, &|rel| rel == Path::new(".pmf.lock"))
}

/// A model saved at `dest` whose checkpoint 1 was then corrupted (same size, other bytes).
fn corrupted(fx: &Fx) -> (PathBuf, Model) {
    let dest = fx.path("model");
    let mut m = fx.trained("id-1", 2);
    m.save(&dest, &SaveOptions::new()).unwrap();
    let file = dest.join("data/checkpoints/1.h5");
    let mut bytes = fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    // Replaced, not written in place: the source file `inputs/1.h5` is hard-linked in.
    fs::remove_file(&file).unwrap();
    fs::write(&file, &bytes).unwrap();
    (dest, m)
}

#[test]
fn a_new_model_object_is_refused_over_a_same_id_model_with_a_corrupted_checkpoint() {
    let fx = Fx::new();
    let (dest, _) = corrupted(&fx);
    let before = snapshot(&dest);
    let err = fx.trained("id-1", 3).save(&dest, &SaveOptions::new()).unwrap_err();
    let Error::InvalidSameModel { path, report } = &err else { panic!("{err:?}") };
    assert_eq!(path, &dest);
    assert_eq!(report.offences.len(), 1, "{report:?}");
    let offence = &report.offences[0];
    assert_eq!(offence.kind, OffenceKind::Tree);
    assert_eq!(offence.location, "data/checkpoints/1.h5");
    assert!(offence.message.contains("checksum mismatch"), "{}", offence.message);
    let message = err.to_string();
    assert!(message.contains("is an invalid PMF model with the same model id"), "{message}");
    assert!(message.contains("data/checkpoints/1.h5"), "{message}");
    assert_eq!(snapshot(&dest), before, "a refused save changed the folder");

    // With force, it is repaired.
    fx.trained("id-1", 3).save(&dest, &SaveOptions::new().force(true)).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    assert_eq!(Model::load(&dest, &LoadOptions::new()).unwrap().checkpoint_collection.len(), 3);
}

#[test]
fn a_loaded_model_saved_elsewhere_is_refused_over_a_corrupted_same_id_model() {
    let fx = Fx::new();
    let (dest, _) = corrupted(&fx);
    let other = fx.path("other");
    fx.trained("id-1", 2).save(&other, &SaveOptions::new()).unwrap();
    let mut loaded = Model::load(&other, &LoadOptions::new()).unwrap();
    let err = loaded.save(&dest, &SaveOptions::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidSameModel { .. }), "{err:?}");
}

#[test]
fn the_model_object_that_saved_the_folder_keeps_its_fast_path_and_repairs_it() {
    let fx = Fx::new();
    let (dest, mut m) = corrupted(&fx);
    // The training loop's next save: the model knows the folder; the corrupted file is copied
    // again from its source.
    m.register_epoch(Some(3)).unwrap();
    let p = fx.path("inputs/3.h5");
    fs::write(&p, b"weights of epoch 3\n").unwrap();
    m.add_checkpoint(Checkpoint::new(3, Some(&p), Some(3), None).unwrap()).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
}

#[test]
fn a_new_model_object_saves_over_a_valid_same_id_model() {
    let fx = Fx::new();
    let dest = fx.path("model");
    fx.trained("id-1", 2).save(&dest, &SaveOptions::new()).unwrap();
    fx.trained("id-1", 3).save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Incompatibility 4: path components over 255 bytes
// ---------------------------------------------------------------------------------------------

/// Replace `from` (exactly once) by `to` in the `metadata.yaml` of `root`.
fn edit_metadata(root: &Path, from: &str, to: &str) {
    let path = root.join("metadata.yaml");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} in\n{text}");
    fs::write(&path, text.replace(from, to)).unwrap();
}

/// The model at `root` is refused with one metadata offence at `location`, "Invalid Pathname".
fn assert_long_name_refused(root: &Path, location: &str) {
    for strict in [false, true] {
        let err = validate(root, &ValidateOptions::new().strict(strict)).unwrap_err();
        let Error::MetadataValidation(report) = &err else { panic!("{location}: {err:?}") };
        let offence = report
            .offences
            .iter()
            .find(|o| o.location == location)
            .unwrap_or_else(|| panic!("no offence at {location}: {report:?}"));
        assert_eq!(offence.kind, OffenceKind::Metadata, "{offence:?}");
        assert!(offence.message.contains("Invalid Pathname provided"), "{}", offence.message);
        assert!(offence.message.contains("256 bytes") && offence.message.contains("255-byte"), "{}", offence.message);
        assert!(err.to_string().contains("Invalid Pathname provided"), "{err}");
        assert!(Model::load(root, &LoadOptions::new().strict(strict)).is_err());
    }
}

fn long_name() -> String {
    "n".repeat(256)
}

#[test]
fn a_configuration_path_component_over_255_bytes_is_a_metadata_offence() {
    let fx = Fx::new();
    let dest = fx.path("model");
    fx.trained("id-1", 1).save(&dest, &SaveOptions::new()).unwrap();
    edit_metadata(&dest, "path: config.py", &format!("path: {}", long_name()));
    assert_long_name_refused(&dest, "model.configuration.path");
}

#[test]
fn a_checkpoint_path_component_over_255_bytes_is_a_metadata_offence() {
    let fx = Fx::new();
    let dest = fx.path("model");
    fx.trained("id-1", 1).save(&dest, &SaveOptions::new()).unwrap();
    edit_metadata(&dest, "path: data/checkpoints/1.h5", &format!("path: data/checkpoints/{}", long_name()));
    assert_long_name_refused(&dest, "model.training.checkpoints.1.path");
}

#[test]
fn a_file_initialisation_path_component_over_255_bytes_is_a_metadata_offence() {
    let fx = Fx::new();
    let dest = fx.path("model");
    let mut m = fx.trained("id-1", 1);
    let w = fx.path("inputs/w.bin");
    fs::write(&w, b"initial weights").unwrap();
    m.set_initialisation(Some(Initialisation::File(Checkpoint::new("imagenet", Some(&w), None, None).unwrap())));
    m.save(&dest, &SaveOptions::new()).unwrap();
    edit_metadata(&dest, "path: data/initialisation/w.bin", &format!("path: data/initialisation/{}", long_name()));
    assert_long_name_refused(&dest, "model.initialisation.file.path");
}

#[test]
fn a_pmf_initialisation_path_component_over_255_bytes_is_a_metadata_offence() {
    let fx = Fx::new();
    let init = fx.path("init");
    fx.trained("init-1", 1).save(&init, &SaveOptions::new()).unwrap();
    let dest = fx.path("model");
    let mut m = fx.trained("id-1", 1);
    m.register_initialisation(&init, Some(1.into()), None).unwrap();
    m.save(&dest, &SaveOptions::new()).unwrap();
    validate(&dest, &ValidateOptions::new().strict(true)).unwrap();
    edit_metadata(&dest, "path: data/initialisation\n", &format!("path: data/{}\n", long_name()));
    assert_long_name_refused(&dest, "model.initialisation.pmf.path");
}

#[test]
fn a_component_of_255_bytes_is_accepted_in_the_metadata() {
    let fx = Fx::new();
    let dest = fx.path("model");
    fx.trained("id-1", 1).save(&dest, &SaveOptions::new()).unwrap();
    let name = "n".repeat(255);
    edit_metadata(&dest, "path: data/checkpoints/1.h5", &format!("path: data/checkpoints/{name}"));
    // Only a tree offence: the file is missing.
    let err = validate(&dest, &ValidateOptions::new()).unwrap_err();
    let Error::TreeValidation(report) = &err else { panic!("{err:?}") };
    assert!(report.offences.iter().all(|o| o.kind == OffenceKind::Tree), "{report:?}");
}
