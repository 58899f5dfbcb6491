//! Mapping keys as a Python `dict` sees them.
//!
//! PyYAML builds `dict`s, where `1`, `1.0` and `True` are the same key, and two timestamps
//! written differently can be the same instant. [`KeyedMap`] keeps our [`Mapping`] (where those
//! are distinct [`Value`]s) and finds, for a new key, the existing key Python would consider
//! equal, so duplicates are caught as PyYAML would collapse them.

use std::collections::HashMap;

use super::timestamp;
use super::value::{Mapping, Value};

/// What Python compares a number or timestamp key by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Canon {
    /// An integral number: `True`, `1`, `1.0` and `-0.0`/`0` all land here.
    Int(i128),
    /// Any other float, by bits (every NaN is one key: PyYAML reuses one NaN object).
    Float(u64),
    /// A timestamp.
    Time(timestamp::PythonKey),
}

/// Largest magnitude for which an integral `f64` is converted to `i128` exactly.
const I128_SAFE: f64 = 1.0e38;

fn canon(v: &Value) -> Option<Canon> {
    match v {
        Value::Bool(b) => Some(Canon::Int(i128::from(*b))),
        Value::Int(i) => Some(Canon::Int(i128::from(*i))),
        Value::Float(f) if f.is_nan() => Some(Canon::Float(f64::NAN.to_bits())),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < I128_SAFE => {
            // Integral and well inside i128: the conversion is exact.
            Some(Canon::Int(*f as i128))
        }
        Value::Float(f) => Some(Canon::Float(f.to_bits())),
        Value::Timestamp(t) => timestamp::scan(t).map(|p| Canon::Time(timestamp::python_key(&p))),
        _ => None,
    }
}

/// A mapping under construction that knows which keys Python would find equal.
#[derive(Debug, Default)]
pub(crate) struct KeyedMap {
    map: Mapping,
    canon: HashMap<Canon, usize>,
}

impl KeyedMap {
    /// The index of the key Python would consider equal to `key`, if any.
    pub(crate) fn find(&self, key: &Value) -> Option<usize> {
        self.map.get_index_of(key).or_else(|| canon(key).and_then(|c| self.canon.get(&c).copied()))
    }

    /// Appends a key that [`KeyedMap::find`] did not find; returns its index.
    pub(crate) fn insert_new(&mut self, key: Value, value: Value) -> usize {
        let c = canon(&key);
        let (index, _) = self.map.insert_full(key, value);
        if let Some(c) = c {
            self.canon.insert(c, index);
        }
        index
    }

    /// Appends `key` with a null value (to be set with [`KeyedMap::set_value`]) if no key
    /// Python would consider equal is there yet, and returns its index; `None` if one is. Like
    /// [`KeyedMap::find`] then [`KeyedMap::insert_new`], hashing the key once.
    pub(crate) fn reserve_new(&mut self, key: Value) -> Option<usize> {
        let c = canon(&key);
        if c.is_some_and(|c| self.canon.contains_key(&c)) {
            return None;
        }
        match self.map.entry(key) {
            indexmap::map::Entry::Occupied(_) => None,
            indexmap::map::Entry::Vacant(slot) => {
                let index = slot.index();
                slot.insert(Value::Null);
                if let Some(c) = c {
                    self.canon.insert(c, index);
                }
                Some(index)
            }
        }
    }

    /// The value at `index`.
    pub(crate) fn value_at(&self, index: usize) -> Option<&Value> {
        self.map.get_index(index).map(|(_, v)| v)
    }

    /// Replaces the value at `index`, keeping the key that was there first (as a dict does).
    pub(crate) fn set_value(&mut self, index: usize, value: Value) {
        if let Some((_, v)) = self.map.get_index_mut(index) {
            *v = value;
        }
    }

    /// The finished mapping, in insertion order.
    pub(crate) fn into_mapping(self) -> Mapping {
        self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_equal_keys() {
        let mut m = KeyedMap::default();
        m.insert_new(Value::Int(1), Value::Null);
        assert_eq!(m.find(&Value::Bool(true)), Some(0));
        assert_eq!(m.find(&Value::Float(1.0)), Some(0));
        assert_eq!(m.find(&Value::Float(1.5)), None);
        assert_eq!(m.find(&Value::Str("1".into())), None);
        m.insert_new(Value::Float(-0.0), Value::Null);
        assert_eq!(m.find(&Value::Bool(false)), Some(1));
        assert_eq!(m.find(&Value::Int(0)), Some(1));
        m.insert_new(Value::Float(f64::NAN), Value::Null);
        assert_eq!(m.find(&Value::Float(-f64::NAN)), Some(2));
        m.insert_new(Value::Timestamp("2001-12-14t21:59:43.10-05:00".into()), Value::Null);
        assert_eq!(m.find(&Value::Timestamp("2001-12-15 02:59:43.1Z".into())), Some(3));
        assert_eq!(m.find(&Value::Timestamp("2001-12-15 02:59:43.1".into())), None);
        m.insert_new(Value::Float(1e300), Value::Null);
        assert_eq!(m.find(&Value::Float(1e300)), Some(4));
        assert_eq!(m.find(&Value::Int(i64::MAX)), None);
        assert_eq!(m.reserve_new(Value::Bool(true)), None, "1 is there");
        assert_eq!(m.reserve_new(Value::Float(1e300)), None);
        m.set_value(0, Value::Bool(true));
        assert_eq!(m.value_at(0), Some(&Value::Bool(true)));
        assert_eq!(m.reserve_new(Value::Str("new".into())), Some(5));
        m.set_value(5, Value::Int(7));
        assert_eq!(m.value_at(5), Some(&Value::Int(7)));
        assert_eq!(m.into_mapping().len(), 6);
    }
}
