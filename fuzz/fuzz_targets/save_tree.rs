//! bytes -> a small model tree (see src/lib.rs) -> save a fixed model over it with
//! `force = true`: must never panic, never touch the watched folder next to the root (no
//! write, no overwrite, no delete through a symbolic link in the tree), leave no staging
//! folder behind, and either produce a folder that validates strictly, or fail and leave the
//! folder exactly as it was.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use plums_model::{validate, Checkpoint, Model, Producer, SaveOptions, ValidateOptions, Version};
use plums_model_fuzz::{snapshot, Sandbox};

static STATE: OnceLock<(Sandbox, Model)> = OnceLock::new();

fn template(sandbox: &Sandbox) -> Model {
    let src = sandbox.base.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("config.py"), b"config = 1\n").unwrap();
    std::fs::write(src.join("1.h5"), b"one").unwrap();
    std::fs::write(src.join("w.h5"), b"init").unwrap();
    let producer = Producer::new("fuzz_producer", Version::pep440("1.0.0").unwrap(), src.join("config.py")).unwrap();
    let mut model = Model::new("fuzz-model", producer);
    model.name = Some("fuzz".into());
    model.register_training_start(0).unwrap();
    model.register_epoch(Some(1)).unwrap();
    model.add_checkpoint(Checkpoint::new(1, Some(src.join("1.h5")), Some(1), None).unwrap()).unwrap();
    model.register_initialisation(src.join("w.h5"), None, Some("init")).unwrap();
    model
}

fuzz_target!(|data: &[u8]| {
    let (sandbox, model) = STATE.get_or_init(|| {
        let sandbox = Sandbox::new();
        let model = template(&sandbox);
        (sandbox, model)
    });
    sandbox.build(data);
    let before = snapshot(&sandbox.root);
    let mut model = model.clone();
    let options = SaveOptions::new().force(true).lock_timeout(Duration::from_secs(1)).durable(false);
    let result = model.save(&sandbox.root, &options);
    sandbox.assert_outside_untouched(&format!("saving with force ({result:?})"));
    let leftovers: Vec<_> = std::fs::read_dir(&sandbox.base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".model.pmf-save-"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "staging folders left behind: {leftovers:?} ({result:?})");
    match result {
        Ok(()) => {
            if let Err(e) = validate(&sandbox.root, &ValidateOptions::new().strict(true)) {
                panic!("save succeeded but the folder does not validate: {e}");
            }
        }
        Err(e) => {
            let after = snapshot(&sandbox.root);
            assert!(before == after, "save failed ({e}) but changed the folder:\nbefore {before:?}\nafter  {after:?}");
        }
    }
});
