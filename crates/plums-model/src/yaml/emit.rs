//! The writer: a [`Value`] as block-style YAML that PyYAML's `safe_load` (and [`super::parse`])
//! read back as the same value.
//!
//! Layout follows `yaml.safe_dump(default_flow_style=False, sort_keys=False)`: mappings
//! indented by two spaces, sequences inside a mapping written at the key's indentation
//! (`key:` then `- item`), `{}`/`[]` for empty collections, keys in insertion order, and keys
//! longer than PyYAML's simple-key limit written as explicit `? key` entries.
//!
//! Scalars:
//! - a string is written plain only when PyYAML's resolver reads that plain text back as a
//!   string ([`resolve::implicit_tag`] is `Str`, so `yes`, `1_000`, `0x1f`, `~`, `2001-01-01`,
//!   `<<`, `=` are quoted) and the text is a conservative plain scalar: printable ASCII, no
//!   leading indicator or space, no trailing space or `:`, no `: ` or ` #`, not starting with
//!   `...`. Everything else is double-quoted with escapes, and every non-ASCII character is
//!   escaped, so the output is pure ASCII;
//! - a float is written as PyYAML's representer does: Python's `repr` (shortest round-trip
//!   digits, exponent from 1e16 and below 1e-4) with `.0` added before an exponent that has no
//!   `.` (`1.0e+20`), and `.inf`, `-.inf`, `.nan`;
//! - a timestamp is its text, plain when it resolves as a timestamp, else `!!timestamp "..."`;
//! - bytes are a `!!binary |` block of base64 lines.

use std::fmt::Write as _;

use super::binary;
use super::resolve::{self, Implicit};
use super::value::{Mapping, Value};

/// PyYAML's emitter writes a key as a simple (implicit) key only below this length.
const SIMPLE_KEY_MAX: usize = 128;

/// Indentation step.
const STEP: usize = 2;

/// Serialises `value` as one YAML document ending with a newline.
pub(crate) fn emit(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Map(m) if !m.is_empty() => write_map(&mut out, m, 0, false),
        Value::Seq(s) if !s.is_empty() => write_seq(&mut out, s, 0, false),
        Value::Binary(b) if !b.is_empty() => write_binary_block(&mut out, b, STEP),
        other => {
            out.push_str(&inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// The one-line form of a scalar or empty collection; `None` for what needs a block.
fn inline(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_owned(),
        Value::Bool(true) => "true".to_owned(),
        Value::Bool(false) => "false".to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_text(*f),
        Value::Str(s) => string_text(s),
        Value::Timestamp(t) => timestamp_text(t),
        Value::Binary(b) if b.is_empty() => "!!binary \"\"".to_owned(),
        Value::Seq(s) if s.is_empty() => "[]".to_owned(),
        Value::Map(m) if m.is_empty() => "{}".to_owned(),
        Value::Binary(_) | Value::Seq(_) | Value::Map(_) => return None,
    })
}

/// `!!binary |` and the base64 lines at `indent`, after the current line's prefix.
fn write_binary_block(out: &mut String, data: &[u8], indent: usize) {
    out.push_str("!!binary |\n");
    for line in binary::encode_lines(data) {
        pad(out, indent);
        out.push_str(&line);
        out.push('\n');
    }
}

/// A node placed after `- `, `? ` or `: ` whose indicator sits at column `indent`: collections
/// start on the same line (compact form) and continue at `indent + 2`.
fn write_compact(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            out.push(' ');
            write_map(out, m, indent + STEP, true);
        }
        Value::Seq(s) if !s.is_empty() => {
            out.push(' ');
            write_seq(out, s, indent + STEP, true);
        }
        Value::Binary(b) if !b.is_empty() => {
            out.push(' ');
            write_binary_block(out, b, indent + STEP);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// The value of a mapping entry, after `key:` or an explicit entry's `:` at column `indent`.
/// `indentless` writes a sequence at the key's own indentation, as PyYAML does.
fn write_entry_value(out: &mut String, v: &Value, indent: usize, indentless: bool) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + STEP, false);
        }
        Value::Seq(s) if !s.is_empty() => {
            out.push('\n');
            write_seq(out, s, if indentless { indent } else { indent + STEP }, false);
        }
        other => write_compact(out, other, indent),
    }
}

/// A block mapping at `indent`; with `first_inline` the first entry continues the current line.
fn write_map(out: &mut String, m: &Mapping, indent: usize, first_inline: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        match inline(k).filter(|t| t.len() < SIMPLE_KEY_MAX && !matches!(k, Value::Seq(_) | Value::Map(_))) {
            Some(key) => {
                out.push_str(&key);
                out.push(':');
                write_entry_value(out, v, indent, true);
            }
            None => {
                out.push('?');
                write_entry_value(out, k, indent, false);
                pad(out, indent);
                out.push(':');
                write_entry_value(out, v, indent, false);
            }
        }
    }
}

/// A block sequence at `indent`; with `first_inline` the first item continues the current line.
fn write_seq(out: &mut String, s: &[Value], indent: usize, first_inline: bool) {
    for (i, item) in s.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push('-');
        write_compact(out, item, indent);
    }
}

/// A string as a plain scalar when that is safe, else double-quoted.
pub(crate) fn string_text(s: &str) -> String {
    if resolve::implicit_tag(s) == Implicit::Str && plain_syntax_ok(s) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

/// Whether `s`, written plain on one line in block context, is read back as exactly `s` by
/// PyYAML (YAML 1.1) and by YAML 1.2 parsers. Conservative: anything doubtful is refused.
pub(crate) fn plain_syntax_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    b.iter().all(|c| (0x20..0x7f).contains(c))
        && !b"-?:,[]{}#&*!|>'\"%@` ".contains(&first)
        && last != b' '
        && last != b':'
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with("...")
}

/// A double-quoted YAML scalar; non-printable and non-ASCII characters are escaped.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\0' => o.push_str("\\0"),
            ' '..='~' => o.push(c),
            c => {
                let n = u32::from(c);
                // Writing to a String cannot fail.
                let _ = if n < 0x100 {
                    write!(o, "\\x{n:02X}")
                } else if n < 0x1_0000 {
                    write!(o, "\\u{n:04X}")
                } else {
                    write!(o, "\\U{n:08X}")
                };
            }
        }
    }
    o.push('"');
    o
}

/// A timestamp's text, plain when PyYAML resolves it as a timestamp, else explicitly tagged.
fn timestamp_text(t: &str) -> String {
    if resolve::implicit_tag(t) == Implicit::Timestamp && plain_syntax_ok(t) {
        t.to_owned()
    } else {
        format!("!!timestamp {}", double_quoted(t))
    }
}

/// Python's `repr(f)` for a finite float: shortest round-trip digits, exponent form when the
/// decimal point would sit more than 16 places right or 4 places left of the first digit.
pub(crate) fn python_repr(f: f64) -> String {
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let decpt = exp + 1;
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    if decpt > 16 || decpt <= -4 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', usize::try_from(-decpt).unwrap_or(0)));
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', usize::try_from(decpt - n).unwrap_or(0)));
        out.push_str(".0");
    } else {
        let at = usize::try_from(decpt).unwrap_or(0);
        out.push_str(&digits[..at]);
        out.push('.');
        out.push_str(&digits[at..]);
    }
    out
}

/// PyYAML's `represent_float`.
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_owned()
    } else if f == f64::INFINITY {
        ".inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-.inf".to_owned()
    } else {
        let r = python_repr(f);
        if !r.contains('.') && r.contains('e') {
            r.replacen('e', ".0e", 1)
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.5, "-2.5"),
            (1e-07, "1e-07"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (100.0, "100.0"),
            (1234.5678, "1234.5678"),
        ];
        for &(f, r) in cases {
            assert_eq!(python_repr(f), r, "{f:e}");
        }
        assert_eq!(float_text(1e20), "1.0e+20");
        assert_eq!(float_text(1e-07), "1.0e-07");
        assert_eq!(float_text(1.5e-07), "1.5e-07");
        assert_eq!(float_text(f64::INFINITY), ".inf");
        assert_eq!(float_text(f64::NEG_INFINITY), "-.inf");
        assert_eq!(float_text(f64::NAN), ".nan");
        for f in [1e20, 1e-07, 1e300, 0.1, -0.0, 1e16, 5e-324, 1.0] {
            let t = float_text(f);
            assert_eq!(resolve::implicit_tag(&t), Implicit::Float, "{t}");
            assert_eq!(resolve::construct_float(&t).unwrap().to_bits(), f.to_bits(), "{t}");
        }
    }

    #[test]
    fn quoting() {
        for s in [
            "yes",
            "No",
            "on",
            "OFF",
            "true",
            "1_000",
            "1:20",
            "2001-01-01",
            "~",
            "null",
            "NULL",
            "=",
            "<<",
            "0x1f",
            "012",
            ".inf",
            "-.Inf",
            ".NaN",
            "1.5",
            "",
            " x",
            "x ",
            "a: b",
            "#x",
            "- x",
            "-x",
            "[x]",
            "{x}",
            "!x",
            "&x",
            "*x",
            "%x",
            "@x",
            "`x",
            "|",
            ">",
            "\"",
            "'",
            "?x",
            ":x",
            "x:",
            "a #b",
            "é",
            "日本",
            "a\nb",
            "a\tb",
            "...",
            "...x",
            ",x",
            "0",
            "-1",
            "+1",
            "1.0e+10",
            "190:20:30.15",
            "2001-12-14 21:59:43.10 -5",
        ] {
            let t = string_text(s);
            assert!(t.starts_with('"') && t.ends_with('"'), "{s:?} -> {t}");
            assert!(t.is_ascii());
        }
        for s in [
            "x",
            "y",
            "n",
            "nO",
            "1e10",
            "1.5e3",
            "0o17",
            "08",
            "1.0e10",
            "a b",
            "a:b",
            "a#b",
            "x'",
            "x\"",
            "\\",
            "a,b",
            "a[0]",
            "hello world",
            "1234e678901234567890123456789012",
            "123e4567890123456789012345678901",
            "+.5",
            "._5",
            "2001-1-1",
            "~x",
            "=x",
            "<x",
            "a-b",
            ".x",
            "..",
            "1 2",
        ] {
            assert_eq!(string_text(s), s, "{s:?}");
        }
        assert_eq!(double_quoted("a\"b\\c\n\t\r\0\u{1}é日\u{1F600}"), r#""a\"b\\c\n\t\r\0\x01\xE9\u65E5\U0001F600""#);
    }

    #[test]
    fn layout() {
        let mut inner = Mapping::new();
        inner.insert(Value::from("b"), Value::Int(1));
        inner.insert(Value::from("c"), Value::Seq(vec![Value::from("x"), Value::Seq(vec![])]));
        let mut m = Mapping::new();
        m.insert(Value::from("z"), Value::Map(inner.clone()));
        m.insert(Value::from("a"), Value::Seq(vec![Value::Map(inner), Value::Seq(vec![Value::Int(1), Value::Int(2)])]));
        m.insert(Value::from("yes"), Value::Map(Mapping::new()));
        m.insert(Value::Int(1), Value::Null);
        m.insert(Value::from("1"), Value::Float(1e20));
        let expected = "\
z:
  b: 1
  c:
  - x
  - []
a:
- b: 1
  c:
  - x
  - []
- - 1
  - 2
\"yes\": {}
1: null
\"1\": 1.0e+20
";
        assert_eq!(emit(&Value::Map(m)), expected);
        assert_eq!(emit(&Value::from("abc")), "abc\n");
        assert_eq!(emit(&Value::Seq(vec![])), "[]\n");
        assert_eq!(emit(&Value::Map(Mapping::new())), "{}\n");
        assert_eq!(emit(&Value::Null), "null\n");
        assert_eq!(emit(&Value::Binary(b"ABC".to_vec())), "!!binary |\n  QUJD\n");
        assert_eq!(emit(&Value::Binary(vec![])), "!!binary \"\"\n");
        assert_eq!(emit(&Value::Timestamp("2001-12-14".into())), "2001-12-14\n");
        assert_eq!(emit(&Value::Timestamp("2001-1-1".into())), "!!timestamp \"2001-1-1\"\n");
    }

    #[test]
    fn long_and_binary_keys_are_explicit() {
        let long = "k".repeat(200);
        let mut m = Mapping::new();
        m.insert(Value::from(long.as_str()), Value::Int(1));
        m.insert(Value::Binary(b"ABC".to_vec()), Value::Seq(vec![Value::Int(2)]));
        let text = emit(&Value::Map(m));
        assert_eq!(text, format!("? {long}\n: 1\n? !!binary |\n  QUJD\n:\n  - 2\n"));
    }
}
