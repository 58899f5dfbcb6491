//! Round-trip tests across the reader and the writer: `parse(to_string(v)) == v` for
//! arbitrary value trees (property tests), and fixed documents whose text we pin.

use proptest::prelude::*;

use super::keys::KeyedMap;
use super::{parse, to_string, Mapping, Value};

/// Characters that stress quoting and resolution.
const ALPHABET: &[char] = &[
    '0', '1', '2', '5', '7', '9', 'e', 'E', 'x', 'b', 'o', 'n', 'y', 'a', 'N', 'O', '.', ':', '-', '+', '_', ' ', ' ',
    '#', '\'', '"', '\\', '\n', '\t', '\r', '~', '<', '=', '!', '&', '*', '[', ']', '{', '}', ',', '?', '|', '>', '%',
    '@', '`', '/', '\u{0}', '\u{1}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{feff}', 'é', '日', '😀',
];

/// Words PyYAML's resolver treats specially, and near misses.
const WORDS: &[&str] = &[
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "nO",
    "on",
    "On",
    "OFF",
    "off",
    "y",
    "n",
    "true",
    "False",
    "null",
    "Null",
    "NULL",
    "~",
    "",
    ".inf",
    "-.Inf",
    "+.INF",
    ".NaN",
    ".nan",
    "<<",
    "=",
    "0x1F",
    "0o17",
    "012",
    "08",
    "0b101",
    "1_000",
    "1:20",
    "190:20:30.15",
    "1e10",
    "1.0e+10",
    "1.0e10",
    "1.5e3",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "1234e678901234567890123456789012",
    "123e4567890123456789012345678901",
    "- x",
    "? x",
    ": x",
    "...",
    "---",
    "a: b",
    "a #b",
    "#x",
    "&x",
    "*x",
    "!x",
    "%x",
    "@x",
    "`x",
    "|",
    ">",
    "-",
    "-1",
    "+1",
    ".5",
    "-.5",
    "1.",
    "0",
    "-0",
    "9223372036854775808",
];

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_owned),
        proptest::collection::vec(proptest::sample::select(ALPHABET), 0..10).prop_map(|cs| cs.into_iter().collect()),
        (
            proptest::sample::select(WORDS),
            proptest::collection::vec(proptest::sample::select(ALPHABET), 0..3),
            proptest::sample::select(WORDS),
        )
            .prop_map(|(a, cs, b)| format!("{a}{}{b}", cs.into_iter().collect::<String>())),
        proptest::collection::vec(proptest::sample::select(&['a', 'b', ' ', '1'][..]), 120..260)
            .prop_map(|cs| cs.into_iter().collect()),
    ]
}

/// A valid timestamp, in the forms PyYAML's resolver recognises.
fn timestamp() -> impl Strategy<Value = String> {
    (
        1u32..=9999,
        1u32..=12,
        1u32..=28,
        proptest::option::of((0u32..24, 0u32..60, 0u32..60, proptest::option::of(0u32..1_000_000))),
        0usize..3,
        0usize..5,
    )
        .prop_map(|(y, mo, d, time, sep, zone)| {
            let mut t = format!("{y:04}-{mo:02}-{d:02}");
            if let Some((h, mi, s, frac)) = time {
                t.push_str(["T", "t", " "][sep]);
                t.push_str(&format!("{h}:{mi:02}:{s:02}"));
                if let Some(f) = frac {
                    t.push_str(&format!(".{f}"));
                }
                t.push_str(["", "Z", " -5", "+05:30", " -23:59"][zone]);
            }
            t
        })
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_map(|f| if f.is_nan() { f64::NAN } else { f }),
        proptest::sample::select(
            &[
                0.0,
                -0.0,
                1.0,
                0.1,
                1e16,
                1e15,
                1e-4,
                1e-5,
                1e300,
                5e-324,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                f64::MAX,
                f64::MIN_POSITIVE,
            ][..]
        ),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        float().prop_map(Value::Float),
        tricky_string().prop_map(Value::Str),
        tricky_string().prop_map(Value::Str),
        timestamp().prop_map(Value::Timestamp),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(Value::Binary),
    ]
}

/// Builds a mapping, dropping keys a Python dict would find equal to an earlier one.
fn mapping(pairs: Vec<(Value, Value)>) -> Value {
    let mut m = KeyedMap::default();
    for (k, v) in pairs {
        if m.find(&k).is_none() {
            m.insert_new(k, v);
        }
    }
    Value::Map(m.into_mapping())
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Seq),
            proptest::collection::vec((scalar(), inner), 0..6).prop_map(mapping),
        ]
    })
}

/// Mapping equality that also checks the key order.
fn same_order(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|((ka, va), (kb, vb))| ka == kb && same_order(va, vb))
        }
        (Value::Seq(x), Value::Seq(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_order(p, q)),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(v in tree()) {
        let text = to_string(&v);
        prop_assert!(text.is_ascii(), "{}", text);
        prop_assert!(text.ends_with('\n'));
        let back = parse(&text);
        prop_assert!(back.is_ok(), "{:?}\n{}\n{:?}", v, text, back);
        let back = back.unwrap_or(Value::Null);
        prop_assert!(same_order(&back, &v), "{:?}\n{}\n{:?}", v, text, back);
        // Writing is deterministic and stable.
        prop_assert_eq!(to_string(&back), text);
    }

    #[test]
    fn strings_as_keys_and_values(s in tricky_string()) {
        let mut m = Mapping::new();
        m.insert(Value::Str(s.clone()), Value::Str(s.clone()));
        m.insert(Value::from("list"), Value::Seq(vec![Value::Str(s.clone())]));
        let v = Value::Map(m);
        let text = to_string(&v);
        prop_assert_eq!(parse(&text), Ok(v), "{}", text);
        prop_assert_eq!(parse(&to_string(&Value::Str(s.clone()))), Ok(Value::Str(s)));
    }
}

#[test]
fn keyword_strings_stay_strings() {
    for w in WORDS {
        let v = Value::Str((*w).to_owned());
        assert_eq!(parse(&to_string(&v)), Ok(v), "{w:?}");
    }
}

#[test]
fn pinned_document() {
    let text = "\
name: demo
version: \"1.0\"
enabled: yes
ratio: 1e10
count: 0x1F
when: 2001-12-14
tags:
- \"no\"
- on
nested:
  empty: {}
  list: []
";
    let v = parse(text).unwrap();
    let m = v.as_map().unwrap();
    assert_eq!(m.get(&Value::from("version")), Some(&Value::from("1.0")));
    assert_eq!(m.get(&Value::from("enabled")), Some(&Value::Bool(true)));
    assert_eq!(m.get(&Value::from("ratio")), Some(&Value::from("1e10")));
    assert_eq!(m.get(&Value::from("count")), Some(&Value::Int(31)));
    assert_eq!(m.get(&Value::from("tags")), Some(&Value::Seq(vec![Value::from("no"), Value::Bool(true)])));
    let written = to_string(&v);
    assert_eq!(
        written,
        "\
name: demo
version: \"1.0\"
enabled: true
ratio: 1e10
count: 31
when: 2001-12-14
tags:
- \"no\"
- true
nested:
  empty: {}
  list: []
"
    );
}

// ------------------------------------------------------------------------------------------
// The fast path (`fast.rs`) against the full reader
// ------------------------------------------------------------------------------------------

/// The fast path's value, when it gives one, is the full reader's (key order included).
fn fast_agrees(text: &str) -> Result<bool, TestCaseError> {
    let limits = super::Limits::default();
    let Some(fast) = super::fast::parse_simple(text, &limits) else { return Ok(false) };
    let full = super::parse::parse_full(text, &limits);
    prop_assert!(
        matches!(&full, Ok(v) if same_order(v, &fast) && format!("{v:?}") == format!("{fast:?}")),
        "{:?}: fast {:?}, full {:?}",
        text,
        fast,
        full
    );
    Ok(true)
}

/// Keys and values of a generated document: mostly simple words (which the fast path reads),
/// resolver words and near misses, and strings of the tricky alphabet.
fn soup_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(
            &["a", "b", "c", "name", "data/x.pt", "1", "2", "0", "1.5", "-3", "a b", "x-y", "~", "null", "yes", "0x1F", "1_000", "2001-12-14", ".inf", "+1"][..]
        )
        .prop_map(str::to_owned),
        1 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => proptest::collection::vec(proptest::sample::select(ALPHABET), 0..4).prop_map(|cs| cs.into_iter().collect()),
    ]
}

/// One line: `K: V`, `K:`, `- V`, `-` or anything, at an indentation of 0 to 4 spaces.
fn soup_line() -> impl Strategy<Value = String> {
    (0usize..4, 0usize..6, soup_scalar(), soup_scalar()).prop_map(|(indent, form, k, v)| {
        let pad = " ".repeat([0, 2, 4, 1][indent]);
        match form {
            0 | 1 => format!("{pad}{k}: {v}"),
            2 => format!("{pad}{k}:"),
            3 => format!("{pad}- {v}"),
            4 => format!("{pad}-"),
            _ => format!("{pad}{k}{v}"),
        }
    })
}

/// A block document's shape: mappings, sequences of scalars, scalars.
#[derive(Debug, Clone)]
enum Shape {
    Scalar(String),
    Map(Vec<(String, Shape)>),
    Seq(Vec<String>),
}

fn shape() -> impl Strategy<Value = Shape> {
    soup_scalar().prop_map(Shape::Scalar).prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec((soup_scalar(), inner), 0..5).prop_map(Shape::Map),
            proptest::collection::vec(soup_scalar(), 0..4).prop_map(Shape::Seq),
        ]
    })
}

/// The lines of `shape` as the value of a key at `indent` (a mapping's entries at `indent + step`,
/// a sequence's at `indent` when `indentless`, else deeper).
fn render(shape: &Shape, indent: usize, step: usize, indentless: bool, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match shape {
        Shape::Scalar(_) => {}
        Shape::Map(entries) => {
            for (k, v) in entries {
                match v {
                    Shape::Scalar(s) => out.push(format!("{pad}{k}: {s}")),
                    _ => {
                        out.push(format!("{pad}{k}:"));
                        let inner = if matches!(v, Shape::Seq(_)) && indentless { indent } else { indent + step };
                        render(v, inner, step, indentless, out);
                    }
                }
            }
        }
        Shape::Seq(items) => out.extend(items.iter().map(|item| format!("{pad}- {item}"))),
    }
}

/// A rendered document, sometimes with one line inserted, removed or re-indented.
fn block_document() -> impl Strategy<Value = String> {
    let entries = proptest::collection::vec((soup_scalar(), shape()), 1..6).prop_map(Shape::Map);
    (entries, 1usize..5, any::<bool>(), 0usize..8, any::<usize>(), soup_line(), any::<bool>()).prop_map(
        |(doc, step, indentless, mutation, at, line, newline)| {
            let mut lines = Vec::new();
            render(&doc, 0, step, indentless, &mut lines);
            if !lines.is_empty() {
                let i = at % lines.len();
                match mutation {
                    0 => lines.insert(i, line),
                    1 => {
                        lines.remove(i);
                    }
                    2 => lines[i].insert(0, ' '),
                    3 => lines[i] = lines[i].trim_start().to_owned(),
                    _ => {}
                }
            }
            let mut text = lines.join("\n");
            if newline {
                text.push('\n');
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn fast_path_agrees_on_block_documents(text in block_document()) {
        fast_agrees(&text)?;
    }

    #[test]
    fn fast_path_agrees_on_line_soup(lines in proptest::collection::vec(soup_line(), 1..12), newline in any::<bool>()) {
        let mut text = lines.join("\n");
        if newline {
            text.push('\n');
        }
        fast_agrees(&text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn fast_path_agrees_on_written_documents(v in tree()) {
        let mut m = Mapping::new();
        m.insert(Value::from("doc"), v);
        fast_agrees(&to_string(&Value::Map(m)))?;
    }
}

/// The generated documents reach the fast path often enough to test it.
#[test]
fn fast_path_is_exercised() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut block, mut written) = (0, 0);
    for _ in 0..2000 {
        block += usize::from(fast_agrees(&block_document().new_tree(&mut runner).unwrap().current()).unwrap());
        let mut m = Mapping::new();
        m.insert(Value::from("doc"), tree().new_tree(&mut runner).unwrap().current());
        written += usize::from(fast_agrees(&to_string(&Value::Map(m))).unwrap());
    }
    assert!(block > 150 && written > 100, "fast path taken for {block} block and {written} written documents of 2000");
}
