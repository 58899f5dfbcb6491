//! Build parameters from the command line: `--params FILE` (a YAML mapping) then each
//! `--param KEY=VALUE`.
//!
//! Rules (documented in `pmf new --help` and docs/CLI.md):
//! - the text is split at the first `=`; KEY is a string, VALUE is parsed as a YAML document
//!   with the library's parser (PyYAML rules): `0.1` is a float, `10` an int, `yes` a
//!   boolean, `resnet` a string, `[1, 2]` a list, an empty VALUE is null, `'yes'` a string;
//! - a dotted KEY (`backbone.depth=50`) builds nested mappings; every segment must be
//!   non-empty; a key cannot both hold a value and nested keys;
//! - a key given twice on the command line is an error; a key from `--params FILE` is
//!   replaced by `--param`.

use std::collections::HashSet;
use std::path::Path;

use plums_model::{parse_yaml, Mapping, Value};

use crate::failure::Failure;

/// The build parameters: the mapping in `file` (if any), then every `KEY=VALUE` applied in order.
pub fn build(file: Option<&Path>, params: &[String]) -> Result<Value, Failure> {
    let mut root = match file {
        None => Mapping::new(),
        Some(path) => read_file(path)?,
    };
    let mut given: HashSet<String> = HashSet::new();
    for param in params {
        let Some((key, text)) = param.split_once('=') else {
            return Err(Failure::usage(format!("invalid --param {param:?}: expected KEY=VALUE"))
                .hint("for example --param lr=0.1"));
        };
        if !given.insert(key.to_owned()) {
            return Err(Failure::usage(format!("invalid --param {param:?}: the key {key:?} is given twice")));
        }
        let segments: Vec<&str> = key.split('.').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(Failure::usage(format!(
                "invalid --param {param:?}: the key has an empty part (expected KEY or A.B.C)"
            )));
        }
        let value = parse_yaml(text).map_err(|e| {
            Failure::usage(format!("invalid --param {param:?}: the value is not valid YAML: {e}"))
                .hint("quote the value to make it a string: --param \"name='text'\"")
        })?;
        insert(&mut root, &segments, value).map_err(|m| Failure::usage(format!("invalid --param {param:?}: {m}")))?;
    }
    Ok(Value::Map(root))
}

fn read_file(path: &Path) -> Result<Mapping, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read the build parameters file: {e}")).at(path))?;
    match parse_yaml(&text) {
        Ok(Value::Map(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(other) => {
            Err(Failure::usage(format!("the build parameters file holds a {}, expected a mapping", other.type_name()))
                .at(path))
        }
        Err(e) => Err(Failure::usage(format!("the build parameters file is not valid YAML: {e}")).at(path)),
    }
}

fn insert(map: &mut Mapping, segments: &[&str], value: Value) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    let key = Value::from(*first);
    if rest.is_empty() {
        if matches!(map.get(&key), Some(Value::Map(_))) && !matches!(value, Value::Map(_)) {
            return Err(format!("{first:?} already holds nested keys"));
        }
        map.insert(key, value);
        return Ok(());
    }
    let slot = map.entry(key).or_insert_with(|| Value::Map(Mapping::new()));
    match slot {
        Value::Map(inner) => insert(inner, rest, value),
        other => Err(format!("{first:?} already holds a {} value, it cannot hold nested keys", other.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Value {
        parse_yaml(text).expect("valid yaml")
    }

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_follow_pyyaml_rules() {
        let v = build(
            None,
            &args(&[
                "lr=0.1",
                "epochs=10",
                "pretrained=yes",
                "name=resnet",
                "quoted='yes'",
                "empty=",
                "sizes=[1, 2]",
                "eq=a=b",
                "sci=1e10",
            ]),
        )
        .expect("params");
        assert_eq!(v, map("lr: 0.1\nepochs: 10\npretrained: true\nname: resnet\nquoted: 'yes'\nempty: null\nsizes: [1, 2]\neq: a=b\nsci: '1e10'\n"));
    }

    #[test]
    fn dotted_keys_nest() {
        let v = build(None, &args(&["backbone.depth=50", "backbone.name=resnet", "lr=1"])).expect("params");
        assert_eq!(v, map("backbone: {depth: 50, name: resnet}\nlr: 1\n"));
    }

    #[test]
    fn bad_params_are_usage_errors() {
        for bad in [&["noequals"][..], &["a=1", "a=2"], &["a=1", "a.b=2"], &["a..b=1"], &["=1"], &["a=[1"]] {
            let err = build(None, &args(bad)).expect_err("must fail");
            assert_eq!(err.code, crate::failure::EXIT_USAGE, "{bad:?}");
        }
        let err = build(None, &args(&["a.b=1", "a=2"])).expect_err("must fail");
        assert!(err.message.contains("nested keys"), "{}", err.message);
    }

    #[test]
    fn a_file_is_read_then_replaced_by_params() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, "lr: 0.5\nlayers: {a: 1}\n").expect("write");
        let v = build(Some(&f), &args(&["lr=0.1", "layers.b=2"])).expect("params");
        assert_eq!(v, map("lr: 0.1\nlayers: {a: 1, b: 2}\n"));
        std::fs::write(&f, "- 1\n").expect("write");
        assert!(build(Some(&f), &[]).is_err());
    }
}
