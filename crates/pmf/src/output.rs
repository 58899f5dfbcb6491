//! Rendering shared by the commands: styles (colours only on a terminal, via anstream), offence
//! lines, JSON helpers (offences, references, YAML values), and human forms of sizes and times.

use std::io::Write;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use plums_model::{Offence, Reference, Timestamp, Value};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Green bold: `valid`.
pub const GOOD: Style = AnsiColor::Green.on_default().bold();
/// Red bold: `invalid`, `error:`.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// Yellow bold: `warning:`, `hint:`.
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
/// Bold: titles.
pub const BOLD: Style = Style::new().bold();
/// Dimmed: secondary information.
pub const DIM: Style = Style::new().dimmed();
/// Cyan: field names.
pub const KEY: Style = AnsiColor::Cyan.on_default();

/// Print a line on stdout (colours stripped unless wanted). When stdout is closed early
/// (`pmf show | head -1`) the process ends quietly with exit code 2 instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(false, format_args!($($arg)*))
    };
}

/// Print a line on stderr (colours stripped unless wanted); write errors are ignored.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_line(true, format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};

/// Write one line on stdout or stderr through anstream (see [`outln!`] and [`errln!`]).
pub fn write_line(to_stderr: bool, args: std::fmt::Arguments<'_>) {
    if to_stderr {
        let mut err = anstream::stderr();
        let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
        return;
    }
    let mut out = anstream::stdout();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(crate::failure::EXIT_USAGE));
        }
        let _ = writeln!(anstream::stderr(), "error: cannot write to stdout: {e}");
        std::process::exit(i32::from(crate::failure::EXIT_USAGE));
    }
}

/// `text` wrapped in `style` (anstream strips the codes when colours are off).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// A path as shown to people and in JSON.
pub fn show_path(path: &Path) -> String {
    path.display().to_string()
}

/// `text` safe to print on a terminal: control characters (C0 including `\n`, `\r`, `\t`
/// and ESC, DEL, C1) and the bidirectional overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) become escapes such as `\n` or `\u{1b}`, so a model name, id, path or key
/// cannot move the cursor, set colours or the window title, or forge a line or a row. For text
/// shown to people (tables, trees, messages); JSON carries the text itself (serde escapes it).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`show_path`] for people: [`printable`].
pub fn human_path(path: &Path) -> String {
    printable(&path.display().to_string()).into_owned()
}

/// One offence as an indented human line: kind, location, message.
pub fn offence_line(offence: &Offence, indent: &str) -> String {
    let location = if offence.location.is_empty() { "." } else { offence.location.as_str() };
    format!(
        "{indent}{} {}: {}",
        paint(WARN, format!("{:<9}", offence.kind.as_str())),
        paint(BOLD, printable(location)),
        printable(&offence.message)
    )
}

/// An offence in JSON: `{"kind": "tree"|"metadata", "location": "...", "message": "..."}`.
#[derive(Debug, Serialize)]
pub struct JsonOffence {
    /// `tree` or `metadata`.
    pub kind: &'static str,
    /// Relative file path or dotted metadata key.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl From<&Offence> for JsonOffence {
    fn from(o: &Offence) -> Self {
        JsonOffence { kind: o.kind.as_str(), location: o.location.clone(), message: o.message.clone() }
    }
}

/// A checkpoint reference in JSON: a number for an int reference, a string for a string one.
pub struct JsonRef<'a>(pub &'a Reference);

impl Serialize for JsonRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Reference::Int(i) => s.serialize_i64(*i),
            Reference::Str(t) => s.serialize_str(t),
        }
    }
}

/// A time as written in the metadata: an int stays an int, a float a float.
pub struct JsonTime(pub Timestamp);

impl Serialize for JsonTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Timestamp::Int(i) => s.serialize_i64(i),
            Timestamp::Float(f) => s.serialize_f64(f),
        }
    }
}

/// A YAML value in JSON, mapping order kept. Keys that are not strings become their YAML text
/// (`1`, `true`, `null`); timestamps become their text; `!!binary` becomes base64; non-finite
/// floats become the strings `.inf`, `-.inf`, `.nan`.
pub struct JsonYaml<'a>(pub &'a Value);

impl Serialize for JsonYaml<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_nan() => s.serialize_str(".nan"),
            Value::Float(f) if f.is_infinite() => s.serialize_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) | Value::Timestamp(t) => s.serialize_str(t),
            Value::Binary(b) => s.serialize_str(&base64(b)),
            Value::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonYaml(item))?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(&key_text(k), &JsonYaml(v))?;
                }
                map.end()
            }
        }
    }
}

/// The text of a mapping key: the string itself, or the YAML form of another scalar.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::Str(s) | Value::Timestamp(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        other => plums_model::to_yaml(other).trim_end().to_owned(),
    }
}

/// Standard base64 (RFC 4648, with padding): `!!binary` values in JSON, CSP hashes.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PMF time as a jiff timestamp, when it is in jiff's range.
pub fn to_jiff(t: Timestamp) -> Option<jiff::Timestamp> {
    let secs = t.as_f64();
    if !secs.is_finite() {
        return None;
    }
    let duration = jiff::SignedDuration::try_from_secs_f64(secs).ok()?;
    jiff::Timestamp::from_duration(duration).ok()
}

/// A time for people: `2019-03-13 08:13:43 UTC`, or the raw seconds when out of range.
pub fn human_time(t: Timestamp) -> String {
    match to_jiff(t) {
        Some(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{t} (seconds since 1970)"),
    }
}

/// A time in RFC 3339 form (UTC, `Z`), to the microsecond (what `time.time()` resolves), for JSON.
pub fn rfc3339(t: Timestamp) -> Option<String> {
    to_jiff(t).map(|ts| ts.round(jiff::Unit::Microsecond).unwrap_or(ts).to_string())
}

/// A duration in seconds for people: `2d 3h`, `4h 5m`, `6m 7s`, `8s`, `0.25s`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return format!("{secs}s");
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let secs = secs.abs();
    if secs < 10.0 {
        let text = format!("{secs:.2}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        return format!("{sign}{text}s");
    }
    let total = secs.round() as u64;
    let (d, h, m, s) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    format!("{sign}{text}")
}

/// A byte count for people: `512 B`, `1.50 KiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_could_drive_a_terminal() {
        assert_eq!(printable("resnet-50 é ✓"), "resnet-50 é ✓");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable("a\rb\nc\td"), "a\\rb\\nc\\td");
        assert_eq!(printable("\u{1b}]0;PWNED\u{7}\u{1b}[31m"), "\\u{1b}]0;PWNED\\u{7}\\u{1b}[31m");
        assert_eq!(printable("x\u{7f}\u{9b}y"), "x\\u{7f}\\u{9b}y");
        assert_eq!(printable("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(printable("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn json_time_keeps_int_and_float() {
        assert_eq!(serde_json::to_string(&JsonTime(Timestamp::Int(3))).ok().as_deref(), Some("3"));
        assert_eq!(serde_json::to_string(&JsonTime(Timestamp::Float(1.5))).ok().as_deref(), Some("1.5"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(human_time(Timestamp::Int(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(human_time(Timestamp::Float(1552464823.166782)), "2019-03-13 08:13:43 UTC");
        assert_eq!(rfc3339(Timestamp::Int(1552464823)).as_deref(), Some("2019-03-13T08:13:43Z"));
        assert_eq!(rfc3339(Timestamp::Float(1795881502.0594983)).as_deref(), Some("2026-11-28T15:58:22.059498Z"));
        assert!(human_time(Timestamp::Float(1e300)).contains("seconds since 1970"));
        assert_eq!(human_duration(0.25), "0.25s");
        assert_eq!(human_duration(3.0), "3s");
        assert_eq!(human_duration(367.0), "6m 7s");
        assert_eq!(human_duration(4.0 * 3600.0 + 300.0), "4h 5m");
        assert_eq!(human_duration(2.0 * 86400.0 + 3.0 * 3600.0), "2d 3h");
    }

    #[test]
    fn yaml_values_become_json_in_order() {
        let doc = plums_model::parse_yaml("b: 1\na: [yes, 0.5, .inf, ~]\n1: x\n").expect("yaml");
        let json = serde_json::to_string(&JsonYaml(&doc)).expect("json");
        assert_eq!(json, r#"{"b":1,"a":[true,0.5,".inf",null],"1":"x"}"#);
    }
}
