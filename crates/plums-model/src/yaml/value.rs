//! The YAML value tree: what a PyYAML `safe_load` produces, as Rust data.

use std::hash::{Hash, Hasher};

use indexmap::IndexMap;

/// A mapping that keeps the order of its keys as written in the document.
pub type Mapping = IndexMap<Value, Value>;

/// One YAML node, resolved with PyYAML's YAML 1.1 rules.
///
/// The variants mirror the Python objects `yaml.safe_load` builds: `None`, `bool`, `int`,
/// `float`, `str`, `list`, `dict` and, for `!!timestamp` scalars such as `2020-01-01`,
/// `datetime.date`/`datetime.datetime` (kept here as their source text), and `!!binary` (bytes).
///
/// Floats compare and hash by their bit pattern so that a `Value` can be a mapping key;
/// `NaN` therefore equals itself here.
///
/// ```
/// use plums_model::Value;
/// let v = Value::from("yes");
/// assert_eq!(v.as_str(), Some("yes"));
/// ```
#[derive(Debug, Clone)]
pub enum Value {
    /// `null`, `~`, `Null`, `NULL` or an empty plain scalar.
    Null,
    /// `true`/`false`, `yes`/`no`, `on`/`off` in any of their PyYAML case forms.
    Bool(bool),
    /// An integer that fits in 64 bits (decimal, `0x`, `0o`/`0` octal, `0b`, `_` and `:` forms).
    Int(i64),
    /// A float (PyYAML forms only: a `.` is required, `.inf`, `.nan`, sexagesimal).
    Float(f64),
    /// A string.
    Str(String),
    /// A `!!timestamp` scalar, kept as the exact text PyYAML would read as a date or datetime.
    Timestamp(String),
    /// A `!!binary` scalar, decoded.
    Binary(Vec<u8>),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping, in document order.
    Map(Mapping),
}

impl Value {
    /// The string, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The mapping, if this is a `Map`.
    pub fn as_map(&self) -> Option<&Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The Python type name of this value, for error messages (`str`, `int`, `dict`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Timestamp(_) => "timestamp",
            Value::Binary(_) => "binary",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Binary(a), Binary(b)) => a == b,
            (Seq(a), Seq(b)) => a == b,
            // Mappings are equal as Python dicts are: same pairs, any order.
            (Map(a), Map(b)) => a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v)),
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => f.to_bits().hash(state),
            Value::Str(s) | Value::Timestamp(s) => s.hash(state),
            Value::Binary(b) => b.hash(state),
            Value::Seq(s) => s.hash(state),
            // Order-independent, to agree with `PartialEq`.
            Value::Map(m) => m.len().hash(state),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Mapping> for Value {
    fn from(m: Mapping) -> Self {
        Value::Map(m)
    }
}

impl From<Vec<Value>> for Value {
    fn from(s: Vec<Value>) -> Self {
        Value::Seq(s)
    }
}
