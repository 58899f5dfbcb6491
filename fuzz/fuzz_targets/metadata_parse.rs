//! bytes -> `parse_yaml` -> `Metadata::from_value`: must never panic, and what is read must be
//! written back so that it reads the same (`to_yaml` then `parse_yaml`), and valid
//! metadata must survive `to_value` -> `from_value` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plums_model::{parse_yaml, to_yaml, Metadata};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = parse_yaml(text) else { return };
    let written = to_yaml(&value);
    // Alias expansion can make the written form much larger than the input: round-trip only
    // documents small enough to stay under the parser's limits.
    if written.len() < 1 << 20 {
        match parse_yaml(&written) {
            Ok(back) => {
                assert!(back == value, "write then read changed the document:\n{text:?}\nwritten as\n{written}")
            }
            Err(e) => panic!("the writer produced YAML the reader refuses ({e}):\n{text:?}\nwritten as\n{written}"),
        }
    }
    if let Ok(metadata) = Metadata::from_value(&value) {
        let again = Metadata::from_value(&metadata.to_value()).expect("to_value of valid metadata must be valid");
        assert_eq!(again, metadata);
    }
});
