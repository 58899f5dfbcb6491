//! Progress feedback is for terminals only: on a pipe, a strict validation that lasts longer
//! than the delay before the bar appears writes nothing to stderr.

mod common;

use std::time::Instant;

use common::{run, s, Scratch};

#[test]
fn a_long_strict_validation_writes_nothing_to_a_piped_stderr() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    // A sparse GiB (no disk written, read back as zeros): hashing it outlasts the 1 s delay on
    // most machines. Its checksum differs from the recorded one, which proves it was hashed.
    let big = std::fs::File::options().write(true).truncate(true).open(m.join("data/checkpoints/e2.pt")).unwrap();
    big.set_len(1 << 30).unwrap();
    drop(big);
    let began = Instant::now();
    let (stdout, stderr) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("checkpoint 2 checksum mismatch"), "{stdout}");
    assert!(stderr.is_empty(), "nothing on a piped stderr (after {:?}): {stderr:?}", began.elapsed());
}
