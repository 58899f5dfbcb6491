//! A fast path for the documents PMF writers produce: block mappings and block sequences of
//! simple plain scalars, one entry per line, as PyYAML's `safe_dump` (and [`super::to_string`])
//! write a `metadata.yaml` or a small `build_parameters.yaml`.
//!
//! [`parse_simple`] reads such a document without the event parser, line by line, and returns
//! `None` at the first thing it does not handle, or that might be read differently or be an
//! error: then the caller parses the whole document with the full reader (`parse.rs`), which
//! gives the value or the positioned error. So this path never changes a result, it only skips
//! work; what it accepts is deliberately narrow:
//!
//! - the text is ASCII, printable characters (`' '`..=`'~'`) and `\n` only: no tab, no `\r`,
//!   no control character, no byte-order mark; no blank line;
//! - every line is `KEY: VALUE`, `KEY:` (the value is on the next lines, or null), or `- VALUE`;
//!   the document is a mapping starting at column 0, nested mappings are indented deeper than
//!   their key, a sequence is either indented deeper or at the key's own column (the
//!   "indentless" form PyYAML writes), and its items are scalars;
//! - a key or a value is a plain scalar made of letters, digits, `_`, `.`, `/`, `+`, `-`,
//!   `~` and inner single spaces, which starts with neither a space nor `- `, nor `---`, nor
//!   `...`, and no longer than 512 bytes: no quote, no `:`, no `#`, no flow indicator, no tag,
//!   anchor or alias, no `<<` or `=`;
//! - no key repeats in its mapping (as Python's dict compares them), nesting stays below
//!   [`Limits::max_depth`] and the node count below half of [`Limits::max_nodes`].
//!
//! Each scalar is resolved by the same function the full reader applies to a plain scalar
//! (PyYAML's implicit resolvers: `12` an int, `1.5` a float, `yes` a bool, `~` null,
//! `2001-12-14` a timestamp), and mappings are built with the same [`KeyedMap`], so the value is
//! the one the full reader builds; `tests.rs` checks that on generated documents.

use super::keys::KeyedMap;
use super::parse::plain_scalar;
use super::value::Value;
use super::Limits;

/// Deepest nesting this path handles (the full reader handles the rest, within the limits).
const MAX_DEPTH: usize = 32;

/// Longest key or value this path handles (YAML limits an implicit key to 1024 characters).
const MAX_SCALAR: usize = 512;

/// The value of `text` if it is a document of the simple form above; `None` otherwise (parse
/// it with the full reader).
pub(crate) fn parse_simple(text: &str, limits: &Limits) -> Option<Value> {
    if text.len() > limits.max_bytes {
        return None;
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return None;
    }
    // Every byte is then checked: indentation is spaces, the structure `: `, `:` and `- `, and
    // every other byte belongs to a key or a value, which `is_simple_plain` checks.
    let mut lines = Vec::with_capacity(body.len() / 16);
    for line in body.split('\n') {
        let content = line.trim_start_matches(' ');
        if content.is_empty() {
            return None;
        }
        lines.push((line.len() - content.len(), content));
    }
    if lines[0].0 != 0 {
        return None;
    }
    let mut reader = Reader { lines, pos: 0, nodes: 0, limits };
    let value = reader.mapping(0, 1)?;
    (reader.pos == reader.lines.len()).then_some(value)
}

struct Reader<'a> {
    /// Each line's indentation and what follows it.
    lines: Vec<(usize, &'a str)>,
    /// The next line to read.
    pos: usize,
    /// Nodes built so far (as the full reader counts them: every scalar, keys included, and
    /// every collection).
    nodes: usize,
    limits: &'a Limits,
}

impl Reader<'_> {
    fn node(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes <= self.limits.max_nodes / 2).then_some(())
    }

    fn open(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH || depth >= self.limits.max_depth {
            return None;
        }
        self.node()
    }

    fn scalar(&mut self, text: &str, as_key: bool) -> Option<Value> {
        self.node()?;
        if !is_simple_plain(text) {
            return None;
        }
        plain_scalar(text, as_key)
    }

    /// The mapping whose keys are at column `indent`, starting at the current line.
    fn mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.open(depth)?;
        let mut map = KeyedMap::default();
        while let Some(&(at, line)) = self.lines.get(self.pos) {
            if at < indent {
                break;
            }
            if at > indent {
                return None;
            }
            let colon = line.bytes().position(|b| b == b':')?;
            let (key_text, rest) = (&line[..colon], &line[colon + 1..]);
            let key = self.scalar(key_text, true)?;
            let slot = map.reserve_new(key)?;
            self.pos += 1;
            let value = if rest.is_empty() {
                match self.lines.get(self.pos) {
                    Some(&(next, item)) if next >= indent && is_item(item) => self.sequence(next, depth + 1)?,
                    Some(&(next, _)) if next > indent => self.mapping(next, depth + 1)?,
                    // Nothing after the colon: null (an empty plain scalar).
                    _ => {
                        self.node()?;
                        Value::Null
                    }
                }
            } else {
                self.scalar(rest.strip_prefix(' ')?, false)?
            };
            map.set_value(slot, value);
        }
        Some(Value::Map(map.into_mapping()))
    }

    /// The sequence whose `- ` are at column `indent`, starting at the current line.
    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.open(depth)?;
        let mut items = Vec::new();
        while let Some(&(at, line)) = self.lines.get(self.pos) {
            if at < indent || (at == indent && !is_item(line)) {
                break;
            }
            if at > indent {
                return None;
            }
            let item = self.scalar(line.strip_prefix("- ")?, false)?;
            items.push(item);
            self.pos += 1;
        }
        Some(Value::Seq(items))
    }
}

/// Whether a line (after its indentation) is a sequence entry.
fn is_item(line: &str) -> bool {
    line == "-" || line.starts_with("- ")
}

/// Whether `text` is a plain scalar of the narrow form this path reads (see the module).
fn is_simple_plain(text: &str) -> bool {
    let b = text.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else { return false };
    b.len() <= MAX_SCALAR
        && first != b' '
        && last != b' '
        && !(first == b'-' && b.get(1).is_none_or(|&c| c == b' '))
        && !text.starts_with("---")
        && !text.starts_with("...")
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'+' | b'-' | b'~' | b' '))
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_full;
    use super::super::Limits;
    use super::*;

    /// What the fast path gives, checked against the full reader: the same value (key order
    /// included) whenever it gives one.
    fn fast(text: &str) -> Option<Value> {
        let limits = Limits::default();
        let got = parse_simple(text, &limits)?;
        let full = parse_full(text, &limits);
        assert!(
            matches!(&full, Ok(v) if *v == got && format!("{v:?}") == format!("{got:?}")),
            "{text:?}: fast {got:?}, full {full:?}"
        );
        Some(got)
    }

    #[test]
    fn reads_what_pmf_writers_write() {
        for path in ["../../examples/detector/metadata.yaml", "../../examples/detector/data/build_parameters.yaml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(fast(&text).is_some(), "{}", path.display());
        }
        let text = "\
format:
  producer:
    name: bench_trainer
    version:
      format: py_pa
      value: 1.0.0
  version: 1.0.0
model:
  configuration:
    hash: bb436e1ac609a9be55848968f505bb94
    path: cfg.py
  id: id-1
  initialisation: null
  name: run-1
  training:
    checkpoints:
      1:
        epoch: 1
        hash: a714c527b90e7d5df0ad858ecc82b000
        path: data/checkpoints/e1.pt
    end_epoch: null
    latest: 1
    latest_time: 1796139221.3959236
    start_epoch: 0
    status: running
layers:
- 1
- 2
nested:
  list:
    - yes
    - ~
  after: -1.5
last:
";
        let v = fast(text).expect("the fast path reads it");
        let m = v.as_map().unwrap();
        assert_eq!(m.get(&Value::from("layers")), Some(&Value::Seq(vec![Value::Int(1), Value::Int(2)])));
        assert_eq!(m.get(&Value::from("last")), Some(&Value::Null));
        let nested = m.get(&Value::from("nested")).and_then(Value::as_map).unwrap();
        assert_eq!(nested.get(&Value::from("list")), Some(&Value::Seq(vec![Value::Bool(true), Value::Null])));
        assert_eq!(nested.get(&Value::from("after")), Some(&Value::Float(-1.5)));
    }

    #[test]
    fn leaves_everything_else_to_the_full_reader() {
        for text in [
            "",
            "\n",
            "12\n",
            "- a\n",
            " a: 1\n",
            "a: 1\n\nb: 2\n",
            "a: 1\r\nb: 2\r\n",
            "a:\t1\n",
            "\u{feff}a: 1\n",
            "a: \u{e9}\n",
            "a: 'x'\n",
            "a: \"x\"\n",
            "a: x # c\n",
            "# c\na: 1\n",
            "a: 1:20\n",
            "a: 2001-12-14 21:59:43\n",
            "a: [1]\n",
            "a: {}\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  x\n",
            "a: >\n  x\n",
            "<<: 1\n",
            "a: =\n",
            "a: <<\n",
            "a:b\n",
            "a :1\n",
            "a : 1\n",
            "a:  1\n",
            "a: 1 \n",
            "a: 1\na: 2\n",
            "1: a\n1.0: b\n",
            "true: a\n1: b\n",
            "a: b\n  c\n",
            "a:\n  b: 1\n c: 2\n",
            "a:\n  - 1\n  b: 2\n",
            "a:\n- 1\n  - 2\n",
            "a:\n  -\n",
            "a:\n- - 1\n",
            "a:\n- b: 1\n",
            "- a: 1\n",
            "---\na: 1\n",
            "a: 1\n...\n",
            "a: ---\n",
            "a: - b\n",
            "a: -\n",
            "? a\n: 1\n",
            "%YAML 1.1\n--- a\n",
            "a: 9223372036854775808\n",
        ] {
            assert_eq!(fast(text), None, "{text:?}");
        }
        let long = format!("{}: 1\n", "k".repeat(MAX_SCALAR + 1));
        assert_eq!(fast(&long), None);
    }

    #[test]
    fn limits_send_documents_to_the_full_reader() {
        let text = "a:\n  b:\n    c: 1\n";
        let limits = Limits { max_depth: 3, ..Limits::default() };
        assert_eq!(parse_simple(text, &limits), None, "at the depth limit");
        assert!(parse_simple(text, &Limits { max_depth: 4, ..Limits::default() }).is_some());
        assert_eq!(parse_simple(text, &Limits { max_nodes: 10, ..Limits::default() }), None);
        assert!(parse_simple(text, &Limits { max_nodes: 14, ..Limits::default() }).is_some());
        assert_eq!(parse_simple(text, &Limits { max_bytes: text.len() - 1, ..Limits::default() }), None);
        let deep: String = (0..40).map(|i| format!("{}k:\n", "  ".repeat(i))).collect();
        assert_eq!(parse_simple(&deep, &Limits::default()), None, "deeper than {MAX_DEPTH}");
    }
}
