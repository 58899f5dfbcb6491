//! The progress observer of strict validation ([`plums_model::Progress`]): started once with the
//! exact sum of the sizes of the files to hash, then advanced chunk by chunk up to that sum.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use plums_model::{
    check, validate, Checkpoint, Initialisation, LoadOptions, Model, Producer, Progress, SaveOptions, ValidateOptions,
    Version,
};

/// What an observer was told.
#[derive(Default)]
struct Recorder {
    starts: Mutex<Vec<u64>>,
    advances: AtomicU64,
    done: AtomicU64,
}

impl Progress for Recorder {
    fn start(&self, total_bytes: u64) {
        self.starts.lock().unwrap().push(total_bytes);
        self.done.store(0, Ordering::SeqCst);
    }

    fn advance(&self, bytes: u64) {
        self.advances.fetch_add(1, Ordering::SeqCst);
        self.done.fetch_add(bytes, Ordering::SeqCst);
    }
}

impl Recorder {
    fn starts(&self) -> Vec<u64> {
        self.starts.lock().unwrap().clone()
    }
}

fn write(path: &Path, len: usize) {
    std::fs::write(path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
}

/// A model with a configuration, two checkpoints (one over 2 MiB) and an initialisation weight
/// file; returns its root and the sum of the sizes of those four files.
fn model(dir: &Path) -> (std::path::PathBuf, u64) {
    let sizes = [("config.py", 13usize), ("1.pt", (2 << 20) + 17), ("2.pt", 4096), ("init.pt", 100_000)];
    for (name, len) in sizes {
        write(&dir.join(name), len);
    }
    let producer = Producer::new("trainer", Version::pep440("1.0").unwrap(), dir.join("config.py")).unwrap();
    let mut model = Model::new("id-1", producer);
    model.register_training_start(0).unwrap();
    model.register_epoch(Some(1)).unwrap();
    model.add_checkpoint(Checkpoint::new(1, Some(&dir.join("1.pt")), Some(1), None).unwrap()).unwrap();
    model.add_checkpoint(Checkpoint::new(2, Some(&dir.join("2.pt")), Some(1), None).unwrap()).unwrap();
    model.set_initialisation(Some(Initialisation::File(
        Checkpoint::new("init", Some(&dir.join("init.pt")), None, None).unwrap(),
    )));
    let root = dir.join("model");
    model.save(&root, &SaveOptions::new()).unwrap();
    (root, sizes.iter().map(|(_, len)| *len as u64).sum())
}

#[test]
fn strict_validation_starts_with_the_total_and_advances_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (root, total) = model(dir.path());
    let recorder = Arc::new(Recorder::default());
    let options = ValidateOptions::new().strict(true).progress(recorder.clone());
    validate(&root, &options).unwrap();
    assert_eq!(recorder.starts(), vec![total], "one start, with the sum of the four files' sizes");
    assert_eq!(recorder.done.load(Ordering::SeqCst), total);
    // Four files, the largest in three 1 MiB chunks (the others in one each).
    assert_eq!(recorder.advances.load(Ordering::SeqCst), 6);

    // A load validates the same way, through LoadOptions::validation.
    let recorder = Arc::new(Recorder::default());
    Model::load(&root, &LoadOptions::new().validation(ValidateOptions::new().strict(true).progress(recorder.clone())))
        .unwrap();
    assert_eq!((recorder.starts(), recorder.done.load(Ordering::SeqCst)), (vec![total], total));
}

#[test]
fn a_corrupt_file_is_still_counted_and_quick_validation_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (root, total) = model(dir.path());
    // Same size, other content: a mismatch, hashed all the same.
    let file = root.join("data/checkpoints/2.pt");
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let recorder = Arc::new(Recorder::default());
    let checked = check(&root, &ValidateOptions::new().strict(true).progress(recorder.clone())).unwrap();
    assert_eq!(checked.offences.len(), 1, "{:?}", checked.offences);
    assert_eq!((recorder.starts(), recorder.done.load(Ordering::SeqCst)), (vec![total], total));

    let recorder = Arc::new(Recorder::default());
    check(&root, &ValidateOptions::new().progress(recorder.clone())).unwrap();
    assert!(recorder.starts().is_empty(), "nothing to hash, no start");
    assert_eq!(recorder.advances.load(Ordering::SeqCst), 0);
}

#[test]
fn options_with_an_observer_still_print_and_clone() {
    let options = ValidateOptions::new().progress(Arc::new(Recorder::default()));
    assert!(format!("{options:?}").contains("progress: Some"), "{options:?}");
    assert!(options.clone().progress.is_some());
    assert!(format!("{:?}", ValidateOptions::new()).contains("progress: None"));
}
