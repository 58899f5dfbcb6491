//! Checkpoint references: the keys of the checkpoint mapping.
//!
//! A reference is an integer or a string, and the two never compare equal: `1` and `"1"`
//! name different checkpoints, as they do for Python dictionaries.

use std::fmt;

use crate::yaml::Value;

/// A checkpoint reference (`int` or `str` in the reference implementation).
///
/// ```
/// use plums_model::Reference;
/// assert_ne!(Reference::from(1), Reference::from("1"));
/// assert_eq!(Reference::from(12).to_string(), "12");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// An integer reference, written unquoted (`12:`).
    Int(i64),
    /// A string reference, written so that YAML reads it back as a string (`'12':`).
    Str(String),
}

impl Reference {
    /// The YAML value of this reference.
    pub fn to_value(&self) -> Value {
        match self {
            Reference::Int(i) => Value::Int(*i),
            Reference::Str(s) => Value::Str(s.clone()),
        }
    }

    /// The reference a YAML value denotes, if it is an int or a string.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(Reference::Int(*i)),
            Value::Str(s) => Some(Reference::Str(s.clone())),
            _ => None,
        }
    }

    /// Like `Display`, but strings are quoted so that `1` and `'1'` read differently in messages.
    pub fn quoted(&self) -> String {
        match self {
            Reference::Int(i) => i.to_string(),
            Reference::Str(s) => format!("{s:?}"),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Int(i) => write!(f, "{i}"),
            Reference::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Reference {
    fn from(i: i64) -> Self {
        Reference::Int(i)
    }
}

impl From<i32> for Reference {
    fn from(i: i32) -> Self {
        Reference::Int(i64::from(i))
    }
}

impl From<&str> for Reference {
    fn from(s: &str) -> Self {
        Reference::Str(s.to_owned())
    }
}

impl From<String> for Reference {
    fn from(s: String) -> Self {
        Reference::Str(s)
    }
}
