//! PyYAML's plain-scalar resolution (YAML 1.1) and its scalar constructors.
//!
//! [`implicit_tag`] answers "which tag does PyYAML's `Resolver` give this plain scalar?" by
//! matching, in PyYAML's order, hand-written equivalents of the regular expressions that
//! `yaml/resolver.py` registers with `add_implicit_resolver` (bool, float, int, merge, null,
//! timestamp, value). The `construct_*` functions then turn the text into a value the way
//! `SafeConstructor` does (`_` removed, sign, `0b`/`0x`/leading-`0` octal, sexagesimal `a:b:c`).
//! They are used both for implicitly resolved plain scalars and for explicitly tagged ones
//! (`!!int "0o17"`), so they accept a little more than the resolver does, as PyYAML's do.

use super::timestamp;

/// The tag PyYAML's resolver gives a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Implicit {
    /// `tag:yaml.org,2002:null`: `~`, `null`, `Null`, `NULL` or the empty scalar.
    Null,
    /// `tag:yaml.org,2002:bool`: `yes`, `No`, `ON`, `false`, ...
    Bool,
    /// `tag:yaml.org,2002:int`: `12`, `0x1F`, `012`, `0b101`, `1_000`, `1:20`, ...
    Int,
    /// `tag:yaml.org,2002:float`: `1.5`, `1.0e+10`, `.inf`, `.NaN`, `1:20.5`, ...
    Float,
    /// `tag:yaml.org,2002:timestamp`: `2001-12-14`, `2001-12-14 21:59:43.10 -5`, ...
    Timestamp,
    /// `tag:yaml.org,2002:merge`: `<<`.
    Merge,
    /// `tag:yaml.org,2002:value`: `=` (no constructor in `safe_load`, except as a mapping key).
    Value,
    /// Anything else: a string.
    Str,
}

/// The tag PyYAML's `Resolver` gives the plain scalar `text`.
///
/// Mirrors `BaseResolver.resolve`: the candidate resolvers are picked by the first character,
/// and Python's `$` also matches before one final `\n` (which a plain scalar never has, but the
/// emitter asks about arbitrary strings).
pub(crate) fn implicit_tag(text: &str) -> Implicit {
    if text.is_empty() {
        return Implicit::Null;
    }
    // Python's `re` `$` matches at the end and just before a final newline.
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        // "\n": no resolver is registered for a leading newline.
        return Implicit::Str;
    }
    if is_bool(body) {
        Implicit::Bool
    } else if is_float(body) {
        Implicit::Float
    } else if is_int(body) {
        Implicit::Int
    } else if body == "<<" {
        Implicit::Merge
    } else if matches!(body, "~" | "null" | "Null" | "NULL") {
        Implicit::Null
    } else if timestamp::is_implicit(body) {
        Implicit::Timestamp
    } else if body == "=" {
        Implicit::Value
    } else {
        Implicit::Str
    }
}

/// `^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`
fn is_bool(s: &str) -> bool {
    matches!(
        s,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// Strips one optional leading `-` or `+`.
fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// `[0-9][0-9_]*`
fn is_dec_head(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b[0].is_ascii_digit() && b[1..].iter().all(|&c| c.is_ascii_digit() || c == b'_')
}

/// `[0-9_]*`
fn is_dec_tail(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || c == b'_')
}

/// `[eE][-+][0-9]+` (the sign is required by PyYAML's float regex).
fn is_exponent(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && matches!(b[0], b'e' | b'E') && matches!(b[1], b'-' | b'+') && b[2..].iter().all(u8::is_ascii_digit)
}

/// `[0-9_]*(?:[eE][-+][0-9]+)?` : a fraction then an optional exponent.
fn is_fraction_and_exponent(s: &str) -> bool {
    match s.find(['e', 'E']) {
        Some(i) => is_dec_tail(&s[..i]) && is_exponent(&s[i..]),
        None => is_dec_tail(s),
    }
}

/// `(?::[0-5]?[0-9])+` : one or more sexagesimal groups, each with its leading `:`.
fn is_sexagesimal_groups(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(':') else {
        return false;
    };
    rest.split(':').all(|g| {
        let b = g.as_bytes();
        match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
            _ => false,
        }
    })
}

/// PyYAML's float regex:
///
/// ```text
/// [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
/// |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
/// |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
/// |[-+]?\.(?:inf|Inf|INF)
/// |\.(?:nan|NaN|NAN)
/// ```
fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let unsigned = strip_sign(s);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // Second alternative: no sign allowed.
    if let Some(rest) = s.strip_prefix('.') {
        let digits_end = rest.find(['e', 'E']).unwrap_or(rest.len());
        let (digits, exp) = rest.split_at(digits_end);
        return is_dec_head(digits) && (exp.is_empty() || is_exponent(exp));
    }
    let Some(dot) = unsigned.find('.') else {
        return false;
    };
    let (head, tail) = (&unsigned[..dot], &unsigned[dot + 1..]);
    // First alternative.
    if is_dec_head(head) && is_fraction_and_exponent(tail) {
        return true;
    }
    // Third alternative: sexagesimal, no exponent.
    if let Some(colon) = head.find(':') {
        return is_dec_head(&head[..colon]) && is_sexagesimal_groups(&head[colon..]) && is_dec_tail(tail);
    }
    false
}

/// PyYAML's int regex:
///
/// ```text
/// [-+]?0b[0-1_]+
/// |[-+]?0[0-7_]+
/// |[-+]?(?:0|[1-9][0-9_]*)
/// |[-+]?0x[0-9a-fA-F_]+
/// |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
/// ```
fn is_int(s: &str) -> bool {
    let u = strip_sign(s);
    if let Some(bits) = u.strip_prefix("0b") {
        return !bits.is_empty() && bits.bytes().all(|c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = u.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit() || c == b'_');
    }
    if u == "0" {
        return true;
    }
    if let Some(oct) = u.strip_prefix('0') {
        return oct.bytes().all(|c| matches!(c, b'0'..=b'7' | b'_'));
    }
    let head_end = u.find(':').unwrap_or(u.len());
    let (head, groups) = u.split_at(head_end);
    if !is_dec_head(head) || head.starts_with('0') {
        return false;
    }
    groups.is_empty() || is_sexagesimal_groups(groups)
}

/// `SafeConstructor.construct_yaml_bool`: `bool_values[value.lower()]`.
pub(crate) fn construct_bool(text: &str) -> Result<bool, String> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (yes/no, true/false, on/off)")),
    }
}

/// Python's `int(text, base)` for ASCII text: surrounding whitespace, one sign, the base's
/// `0x`/`0o`/`0b` prefix, then at least one digit. Returns `None` when Python would raise.
/// `Some(Err(()))` means the value does not fit in an `i128`.
fn py_int(text: &str, base: u32) -> Option<Result<i128, ()>> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let prefix = match base {
        2 => Some(["0b", "0B"]),
        8 => Some(["0o", "0O"]),
        16 => Some(["0x", "0X"]),
        _ => None,
    };
    let t = match prefix {
        Some(p) => t.strip_prefix(p[0]).or_else(|| t.strip_prefix(p[1])).unwrap_or(t),
        None => t,
    };
    if t.is_empty() {
        return None;
    }
    let mut acc: i128 = 0;
    let mut overflow = false;
    for c in t.chars() {
        let d = c.to_digit(base)?;
        match acc.checked_mul(i128::from(base)).and_then(|a| a.checked_add(i128::from(d))) {
            Some(a) => acc = a,
            None => overflow = true,
        }
    }
    if overflow {
        return Some(Err(()));
    }
    Some(Ok(if negative { -acc } else { acc }))
}

/// `SafeConstructor.construct_yaml_int`, restricted to values that fit in an `i64`.
pub(crate) fn construct_int(text: &str) -> Result<i64, String> {
    let not_int = || format!("{text:?} cannot be read as an integer");
    let out_of_range =
        || format!("integer {text} is out of the 64-bit range (-2^63 .. 2^63-1); quote it to keep it as a string");
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, value) = match cleaned.as_bytes().first() {
        Some(b'-') => (-1i128, &cleaned[1..]),
        Some(b'+') => (1, &cleaned[1..]),
        Some(_) => (1, cleaned.as_str()),
        None => return Err(not_int()),
    };
    let magnitude: i128 = if value == "0" {
        0
    } else if let Some(bits) = value.strip_prefix("0b") {
        py_int(bits, 2).ok_or_else(not_int)?.map_err(|()| out_of_range())?
    } else if let Some(hex) = value.strip_prefix("0x") {
        py_int(hex, 16).ok_or_else(not_int)?.map_err(|()| out_of_range())?
    } else if value.starts_with('0') {
        py_int(value, 8).ok_or_else(not_int)?.map_err(|()| out_of_range())?
    } else if value.contains(':') {
        let mut total: i128 = 0;
        let mut base: i128 = 1;
        for part in value.rsplit(':') {
            let digit = py_int(part, 10).ok_or_else(not_int)?.map_err(|()| out_of_range())?;
            total = digit.checked_mul(base).and_then(|d| total.checked_add(d)).ok_or_else(out_of_range)?;
            // The last multiplication may overflow harmlessly once no group is left.
            base = base.checked_mul(60).unwrap_or(i128::MAX);
        }
        total
    } else if value.is_empty() {
        return Err(not_int());
    } else {
        py_int(value, 10).ok_or_else(not_int)?.map_err(|()| out_of_range())?
    };
    let v = sign.checked_mul(magnitude).ok_or_else(out_of_range)?;
    i64::try_from(v).map_err(|_| out_of_range())
}

/// Python's `float(text)` for ASCII text (surrounding whitespace allowed).
fn py_float(text: &str) -> Option<f64> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    // Rust accepts what Python accepts here ("1.", ".5", "1e5", "inf", "nan", "infinity"),
    // but nothing with `_` (already removed) or hex.
    t.parse::<f64>().ok()
}

/// Most sexagesimal groups a float may have: 60^k stays exact in a `u128` via 15^k.
const MAX_SEXAGESIMAL_GROUPS: usize = 32;

/// `SafeConstructor.construct_yaml_float`.
pub(crate) fn construct_float(text: &str) -> Result<f64, String> {
    let not_float = || format!("{text:?} cannot be read as a float");
    let cleaned: String = text.chars().filter(|&c| c != '_').collect::<String>().to_lowercase();
    let (sign, value) = match cleaned.as_bytes().first() {
        Some(b'-') => (-1.0f64, &cleaned[1..]),
        Some(b'+') => (1.0, &cleaned[1..]),
        Some(_) => (1.0, cleaned.as_str()),
        None => return Err(not_float()),
    };
    if value == ".inf" {
        return Ok(sign * f64::INFINITY);
    }
    if value == ".nan" {
        return Ok(f64::NAN);
    }
    if value.contains(':') {
        let parts: Vec<&str> = value.split(':').collect();
        if parts.len() > MAX_SEXAGESIMAL_GROUPS {
            return Err(format!("{text:?} has more than {MAX_SEXAGESIMAL_GROUPS} sexagesimal groups"));
        }
        let mut total = 0.0f64;
        for (k, part) in parts.iter().rev().enumerate() {
            let digit = py_float(part).ok_or_else(not_float)?;
            total += digit * pow60(k);
        }
        return Ok(sign * total);
    }
    if value.is_empty() {
        return Err(not_float());
    }
    py_float(value).map(|f| sign * f).ok_or_else(not_float)
}

/// `60^k` rounded once to the nearest `f64`, as Python's `float * int` does.
fn pow60(k: usize) -> f64 {
    // 60^k = 15^k * 4^k; 15^k is exact in a u128 for k <= 32 and 4^k is a power of two.
    let mut fifteen: u128 = 1;
    for _ in 0..k {
        fifteen = fifteen.saturating_mul(15);
    }
    let exp = i32::try_from(2 * k).unwrap_or(i32::MAX);
    (fifteen as f64) * 2f64.powi(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Implicit {
        implicit_tag(s)
    }

    #[test]
    fn bools() {
        for s in [
            "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
            "off", "Off", "OFF",
        ] {
            assert_eq!(tag(s), Implicit::Bool, "{s}");
        }
        for s in ["nO", "yES", "y", "n", "Y", "N", "tRUE", "oN", "0ff", "yes ", "True!"] {
            assert_eq!(tag(s), Implicit::Str, "{s}");
        }
        assert_eq!(construct_bool("YeS"), Ok(true));
        assert_eq!(construct_bool("off"), Ok(false));
        assert!(construct_bool("maybe").is_err());
    }

    #[test]
    fn nulls() {
        for s in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(tag(s), Implicit::Null, "{s:?}");
        }
        for s in ["nULL", "nul", "None", "~~", " ", "\n"] {
            assert_eq!(tag(s), Implicit::Str, "{s:?}");
        }
    }

    #[test]
    fn ints() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("12", 12),
            ("-12", -12),
            ("+12", 12),
            ("1_000", 1000),
            ("1_", 1),
            ("0x1F", 31),
            ("0x1f", 31),
            ("-0x_1f", -31),
            ("0b101", 5),
            ("-0b1_01", -5),
            ("012", 10),
            ("0_", 0),
            ("00", 0),
            ("-0_7", -7),
            ("1:20", 80),
            ("190:20:30", 685_230),
            ("-1:0:0", -3600),
            ("1_0:5", 605),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("0x7fffffffffffffff", i64::MAX),
            ("-0x8000000000000000", i64::MIN),
        ];
        for &(s, v) in cases {
            assert_eq!(tag(s), Implicit::Int, "{s}");
            assert_eq!(construct_int(s), Ok(v), "{s}");
        }
        for s in [
            "0o17", "08", "09", "0b", "0x", "0b2", "0xg", "1e10", "1:60", "0:30", "1:", "1::2", "1:2:", "_1", "1 000",
            "++1", "-", "+", "1-2", "0X1F", "0B1", "١٢",
        ] {
            assert_ne!(tag(s), Implicit::Int, "{s}");
        }
        assert_eq!(tag("0o17"), Implicit::Str);
        assert_eq!(tag("08"), Implicit::Str);
    }

    #[test]
    fn int_range() {
        for s in [
            "9223372036854775808",
            "-9223372036854775809",
            "0x8000000000000000",
            "0b1_0000000000000000000000000000000000000000000000000000000000000000",
            "123456789012345678901234567890123456789012345678901234567890",
            "1:0:0:0:0:0:0:0:0:0:0:0",
        ] {
            assert_eq!(tag(s), Implicit::Int, "{s}");
            let e = construct_int(s).unwrap_err();
            assert!(e.contains("out of the 64-bit range"), "{s}: {e}");
        }
        // PyYAML raises on these (int('', 2)).
        assert!(construct_int("0b_").is_err());
        assert!(construct_int("0x_").is_err());
    }

    #[test]
    fn explicit_int_forms() {
        // `!!int` runs the constructor without the resolver: `int("0o17", 8)` is 15.
        assert_eq!(construct_int("0o17"), Ok(15));
        assert_eq!(construct_int(" 12 "), Ok(12));
        assert_eq!(construct_int("--5"), Ok(5));
        assert!(construct_int("").is_err());
        assert!(construct_int("abc").is_err());
        assert!(construct_int("1:").is_err());
    }

    #[test]
    fn floats() {
        let cases: &[(&str, f64)] = &[
            ("1.0", 1.0),
            ("1.", 1.0),
            ("3.", 3.0),
            ("-1.5", -1.5),
            ("+1.5", 1.5),
            ("0.1", 0.1),
            ("1.0e+10", 1.0e10),
            ("1.0E-10", 1.0e-10),
            ("1.e+5", 1.0e5),
            ("1__.__e+5", 1.0e5),
            ("1_000.5", 1000.5),
            (".5", 0.5),
            (".5e+3", 500.0),
            ("1.5_e+3", 1500.0),
            ("1:20.5", 80.5),
            ("0:30.", 30.0),
            ("-1:30.0", -90.0),
            ("190:20:30.15", 685_230.15),
            ("1.0e+99999", f64::INFINITY),
            ("-0.0", -0.0),
            ("1e-07", 1e-07),
        ];
        for &(s, v) in cases {
            if s == "1e-07" {
                // Python's repr; PyYAML reads it as a string.
                assert_eq!(tag(s), Implicit::Str);
                continue;
            }
            assert_eq!(tag(s), Implicit::Float, "{s}");
            let got = construct_float(s).unwrap();
            assert_eq!(got.to_bits(), v.to_bits(), "{s}: {got}");
        }
        for (s, v) in [(".inf", f64::INFINITY), ("+.Inf", f64::INFINITY), ("-.INF", f64::NEG_INFINITY)] {
            assert_eq!(tag(s), Implicit::Float, "{s}");
            assert_eq!(construct_float(s), Ok(v));
        }
        for s in [".nan", ".NaN", ".NAN"] {
            assert_eq!(tag(s), Implicit::Float, "{s}");
            assert!(construct_float(s).unwrap().is_nan());
        }
        for s in [
            "1e10",
            "1.0e10",
            "1.5e3",
            "1E+10",
            "1.0e+",
            "1.0e",
            "-.5",
            "+.5",
            "._5",
            ".",
            "-.",
            "..5",
            ".nAn",
            "-.nan",
            "+.nan",
            ".iNf",
            "inf",
            "nan",
            "-inf",
            "1.0.0",
            "1:60.5",
            "1:2",
            "1.5 ",
            " 1.5",
            "1,5",
            "0x1.8",
            "1.5f",
            "1234e678901234567890123456789012",
            "123e4567890123456789012345678901",
            "_1.5",
            "e+5",
            "1.0e+1_0",
        ] {
            assert_ne!(tag(s), Implicit::Float, "{s}");
        }
    }

    #[test]
    fn explicit_float_forms() {
        assert_eq!(construct_float("1e10"), Ok(1e10));
        assert_eq!(construct_float("1"), Ok(1.0));
        assert_eq!(construct_float("1_0"), Ok(10.0));
        assert_eq!(construct_float("-inf"), Ok(f64::NEG_INFINITY));
        assert!(construct_float("abc").is_err());
        assert!(construct_float("").is_err());
        assert!(construct_float("1:").is_err());
    }

    #[test]
    fn sexagesimal_float_matches_python_arithmetic() {
        // Python: 30.15 + 20.0*60 + 190.0*3600, in that order.
        let expected = 30.15f64 + 20.0 * 60.0 + 190.0 * 3600.0;
        assert_eq!(construct_float("190:20:30.15").unwrap().to_bits(), expected.to_bits());
        assert_eq!(pow60(0), 1.0);
        assert_eq!(pow60(3), 216_000.0);
    }

    #[test]
    fn others() {
        assert_eq!(tag("<<"), Implicit::Merge);
        assert_eq!(tag("="), Implicit::Value);
        assert_eq!(tag("2001-12-14"), Implicit::Timestamp);
        assert_eq!(tag("2001-12-14t21:59:43.10-05:00"), Implicit::Timestamp);
        assert_eq!(tag("2001-12-14 21:59:43.10 -5"), Implicit::Timestamp);
        assert_eq!(tag("2001-1-1"), Implicit::Str);
        for s in ["<<<", "< <", "==", "=x", "a", "1 2", "- x", "é", "日本", "1e10"] {
            assert_eq!(tag(s), Implicit::Str, "{s}");
        }
        // Python's `$` matches before a final newline.
        assert_eq!(tag("yes\n"), Implicit::Bool);
        assert_eq!(tag("\n"), Implicit::Str);
    }
}
