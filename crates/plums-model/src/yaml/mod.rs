//! YAML with PyYAML's rules, both ways.
//!
//! The reference implementation reads and writes `metadata.yaml` with PyYAML (`safe_load`,
//! `safe_dump`), which follows YAML 1.1. This module owns that compatibility:
//! [`parse`] resolves plain scalars exactly as PyYAML's resolver does (`1e10` is a string,
//! `yes` is a boolean, `0x1f` an integer, `2020-01-01` a timestamp), and [`to_string`] quotes
//! every string that PyYAML would otherwise read back as something else.
//!
//! Parsing is bounded: see [`Limits`].

mod binary;
mod construct;
mod emit;
mod fast;
mod keys;
mod parse;
mod resolve;
mod source;
#[cfg(test)]
mod tests;
mod timestamp;
mod value;

pub use value::{Mapping, Value};

/// Bounds on what one document may cost to parse.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of collections.
    pub max_depth: usize,
    /// Most nodes the resolved document may hold, counting every alias expansion (and the copy
    /// of each anchored node kept for its aliases).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 64 * 1024 * 1024, max_depth: 128, max_nodes: 1_000_000 }
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct YamlError {
    /// What is wrong, and what would be right.
    pub message: String,
    /// 1-based line of the offending node (0 when unknown).
    pub line: usize,
    /// 1-based column of the offending node (0 when unknown).
    pub column: usize,
}

/// Parse one YAML document with PyYAML `safe_load` semantics and the default [`Limits`].
pub fn parse(text: &str) -> Result<Value, YamlError> {
    parse_with_limits(text, &Limits::default())
}

/// Parse one YAML document with PyYAML `safe_load` semantics.
pub fn parse_with_limits(text: &str, limits: &Limits) -> Result<Value, YamlError> {
    parse::parse_document(text, limits)
}

/// The fast path's value of `text` (`None`: it hands the text over) and the full reader's
/// result, with the default [`Limits`]: for the fuzz target `yaml_fast_path`, which checks that
/// the fast path never gives another value than the full reader. Only in builds with
/// `--cfg fuzzing` (cargo-fuzz sets it); not part of the API.
#[cfg(fuzzing)]
pub fn fast_and_full(text: &str) -> (Option<Value>, Result<Value, YamlError>) {
    let limits = Limits::default();
    (fast::parse_simple(text, &limits), parse::parse_full(text, &limits))
}

/// Serialise a value as a block-style YAML document that PyYAML reads back to the same value.
pub fn to_string(value: &Value) -> String {
    emit::emit(value)
}
