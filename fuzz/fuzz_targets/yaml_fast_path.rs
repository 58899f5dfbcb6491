//! bytes -> the YAML reader's fast path (`yaml/fast.rs`) and its full reader: whenever the fast
//! path gives a value, the full reader must give the same value (mapping order and every
//! scalar's type included); when the fast path hands the text over, nothing is checked (the
//! full reader decides). Needs `--cfg fuzzing`, which cargo-fuzz sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plums_model::__fuzz_yaml_fast_and_full as fast_and_full;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (fast, full) = fast_and_full(text);
    if let Some(fast) = fast {
        match full {
            Ok(full) => assert!(
                full == fast && format!("{full:?}") == format!("{fast:?}"),
                "the fast path and the full reader disagree on {text:?}:\nfast {fast:?}\nfull {full:?}"
            ),
            Err(e) => panic!("the fast path reads {text:?} as {fast:?}; the full reader refuses it: {e}"),
        }
    }
});
