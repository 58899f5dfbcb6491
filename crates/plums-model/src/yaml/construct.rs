//! Mappings the way PyYAML's `SafeConstructor` builds them: merge keys (`flatten_mapping`),
//! `!!omap` and `!!pairs`, and the short form of a key used in error messages.

use saphyr_parser::Marker;

use super::keys::KeyedMap;
use super::value::{Mapping, Value};
use super::YamlError;

/// A short, readable form of a key for error messages.
pub(crate) fn describe(v: &Value) -> String {
    let s = match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Timestamp(t) => t.clone(),
        Value::Binary(b) => format!("!!binary ({} bytes)", b.len()),
        Value::Seq(_) => "a sequence".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Checks one entry of `!!omap`/`!!pairs`: a mapping with exactly one item.
pub(crate) fn check_pair(item: &Value, what: &str, at: Marker) -> Result<(), YamlError> {
    match item {
        Value::Map(m) if m.len() == 1 => Ok(()),
        Value::Map(m) => Err(YamlError::at(
            format!("while constructing {what}: expected a single mapping item, but found {} items", m.len()),
            at,
        )),
        other => Err(YamlError::at(
            format!("while constructing {what}: expected a mapping of length 1, but found {}", other.type_name()),
            at,
        )),
    }
}

/// `!!omap` as an ordered [`Mapping`]; a repeated key is an error, as in any mapping.
pub(crate) fn finish_omap(items: Vec<Value>, at: Marker) -> Result<Mapping, YamlError> {
    let mut out = KeyedMap::default();
    for item in items {
        check_pair(&item, "an ordered map", at)?;
        if let Value::Map(m) = item {
            for (k, v) in m {
                if out.find(&k).is_some() {
                    return Err(YamlError::at(
                        format!("duplicate key {} in an ordered map (!!omap)", describe(&k)),
                        at,
                    ));
                }
                out.insert_new(k, v);
            }
        }
    }
    Ok(out.into_mapping())
}

/// Applies the merge keys of a mapping as PyYAML's `flatten_mapping` does: merged entries first,
/// in order, then the mapping's own entries, which win.
///
/// When two merged mappings give the same key different values and the mapping does not set
/// that key itself, the result is an error: PyYAML 6.0.4 keeps the first or the last depending
/// on string interning (earlier versions kept the first), so no answer would be reliable.
pub(crate) fn finish_map(explicit: KeyedMap, merges: Vec<(Value, Marker)>) -> Result<Mapping, YamlError> {
    if merges.is_empty() {
        return Ok(explicit.into_mapping());
    }
    let mut out = KeyedMap::default();
    for (merged, at) in merges {
        let sources = match merged {
            Value::Map(m) => vec![m],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Map(m) => Ok(m),
                    other => Err(YamlError::at(
                        format!("expected a mapping for merging, but found {}", other.type_name()),
                        at,
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => {
                return Err(YamlError::at(
                    format!("expected a mapping or list of mappings for merging, but found {}", other.type_name()),
                    at,
                ))
            }
        };
        for source in sources {
            for (k, v) in source {
                match out.find(&k) {
                    Some(i) => {
                        let same = out.value_at(i) == Some(&v);
                        if !same && explicit.find(&k).is_none() {
                            return Err(YamlError::at(
                                format!(
                                    "merge key `<<`: the merged mappings give key {} different values; PyYAML versions disagree on which wins, so set it explicitly in this mapping",
                                    describe(&k)
                                ),
                                at,
                            ));
                        }
                    }
                    None => {
                        out.insert_new(k, v);
                    }
                }
            }
        }
    }
    for (k, v) in explicit.into_mapping() {
        match out.find(&k) {
            Some(i) => out.set_value(i, v),
            None => {
                out.insert_new(k, v);
            }
        }
    }
    Ok(out.into_mapping())
}
