//! bytes -> a small model tree (metadata.yaml, files, folders, symbolic links, FIFOs; see the
//! harness documentation in src/lib.rs) -> `plums_model::check` strict and non-strict, with and
//! without checkpoints, then `Model::load`: must never panic, never hang (a FIFO outside the
//! root would block an open; run with `-timeout=10`), and never open, read, list, write or
//! delete anything in the watched folder next to the root.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use plums_model::{check, LoadOptions, Model, ValidateOptions};
use plums_model_fuzz::Sandbox;

static SANDBOX: OnceLock<Sandbox> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let sandbox = SANDBOX.get_or_init(Sandbox::new);
    sandbox.build(data);
    for (strict, checkpoints) in [(false, true), (true, true), (true, false)] {
        let options = ValidateOptions::new().strict(strict).checkpoints(checkpoints);
        if let Ok(result) = check(&sandbox.root, &options) {
            // A model is valid exactly when no offence is reported.
            assert_eq!(result.is_valid(), result.offences.is_empty());
        }
    }
    if let Ok(model) = Model::load(&sandbox.root, &LoadOptions::new()) {
        assert!(model.path().is_some());
    }
    sandbox.assert_outside_untouched("validating");
});
