//! YAML 1.1 timestamps the way PyYAML reads them.
//!
//! [`scan`] matches `SafeConstructor.timestamp_regexp` and returns the fields; [`is_implicit`]
//! is the resolver's narrower rule (a bare date needs two-digit month and day, anything longer
//! needs a time); [`check`] raises what Python's `datetime.date`, `datetime.datetime` and
//! `datetime.timezone` would raise (month 13, 30 February, hour 24, offsets of a day or more);
//! [`python_key`] gives the value Python compares timestamps by, to detect duplicate keys.

/// The fields of a timestamp, as `timestamp_regexp` captures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    year: u32,
    month: u32,
    day: u32,
    /// Whether month and day were both written with two digits.
    two_digit_date: bool,
    time: Option<Time>,
}

/// The time of day of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Time {
    hour: u32,
    minute: u32,
    second: u32,
    /// Fraction of a second, truncated to microseconds as PyYAML does.
    micros: u32,
    /// Offset from UTC in minutes (`Z` is 0); `None` for a naive datetime.
    offset_minutes: Option<i32>,
}

/// How Python compares two timestamps: a `date` never equals a `datetime`, a naive datetime
/// never equals an aware one, and aware datetimes are equal when they are the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PythonKey {
    /// `datetime.date`.
    Date(u32, u32, u32),
    /// A naive `datetime.datetime`, field by field.
    Naive(u32, u32, u32, u32, u32, u32, u32),
    /// An aware `datetime.datetime`, as microseconds since 1970-01-01T00:00Z.
    Aware(i64),
}

/// A cursor over ASCII bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` ASCII digits, greedily; their value and count.
    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    v = v * 10 + u32::from(c - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        let n = self.i - start;
        (n >= min).then_some((v, n))
    }

    fn skip_blanks(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
}

/// Matches PyYAML's `timestamp_regexp` (Python `$`: one final `\n` is allowed):
///
/// ```text
/// ^(?P<year>[0-9][0-9][0-9][0-9])-(?P<month>[0-9][0-9]?)-(?P<day>[0-9][0-9]?)
///  (?:(?:[Tt]|[ \t]+)(?P<hour>[0-9][0-9]?):(?P<minute>[0-9][0-9]):(?P<second>[0-9][0-9])
///     (?:\.(?P<fraction>[0-9]*))?
///     (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)(?::(?P<tz_minute>[0-9][0-9]))?))?)?$
/// ```
pub(crate) fn scan(text: &str) -> Option<Parts> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut c = Cursor { b: body.as_bytes(), i: 0 };
    let (year, _) = c.digits(4, 4)?;
    if !c.eat(b'-') {
        return None;
    }
    let (month, mlen) = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let (day, dlen) = c.digits(1, 2)?;
    let two_digit_date = mlen == 2 && dlen == 2;
    if c.at_end() {
        return Some(Parts { year, month, day, two_digit_date, time: None });
    }
    if !(c.eat(b'T') || c.eat(b't') || c.skip_blanks() > 0) {
        return None;
    }
    let (hour, _) = c.digits(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let (minute, _) = c.digits(2, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let (second, _) = c.digits(2, 2)?;
    let mut micros = 0;
    if c.eat(b'.') {
        // `[0-9]*`: keep the first six digits, pad with zeros.
        let mut n = 0;
        while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
            if n < 6 {
                micros = micros * 10 + u32::from(d - b'0');
                n += 1;
            }
            c.i += 1;
        }
        while n < 6 {
            micros *= 10;
            n += 1;
        }
    }
    // `(?:[ \t]*(?P<tz>...))?`: the blanks belong to the optional zone group only.
    let before_zone = c.i;
    c.skip_blanks();
    let mut offset_minutes = None;
    if c.eat(b'Z') {
        offset_minutes = Some(0);
    } else if let Some(sign) = c.peek().filter(|s| matches!(s, b'-' | b'+')) {
        c.i += 1;
        let (h, _) = c.digits(1, 2)?;
        let m = if c.eat(b':') { c.digits(2, 2)?.0 } else { 0 };
        let total = i32::try_from(h * 60 + m).ok()?;
        offset_minutes = Some(if sign == b'-' { -total } else { total });
    } else {
        c.i = before_zone;
    }
    if !c.at_end() {
        return None;
    }
    Some(Parts { year, month, day, two_digit_date, time: Some(Time { hour, minute, second, micros, offset_minutes }) })
}

/// Whether PyYAML's resolver tags the plain scalar `text` as a timestamp.
pub(crate) fn is_implicit(text: &str) -> bool {
    scan(text).is_some_and(|p| p.time.is_some() || p.two_digit_date)
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Raises what Python's `datetime` constructors raise for these fields.
pub(crate) fn check(p: &Parts) -> Result<(), String> {
    if p.year < 1 {
        return Err(format!("year {} is out of range", p.year));
    }
    if !(1..=12).contains(&p.month) {
        return Err("month must be in 1..12".to_owned());
    }
    if p.day < 1 || p.day > days_in_month(p.year, p.month) {
        return Err("day is out of range for month".to_owned());
    }
    if let Some(t) = &p.time {
        if t.hour > 23 {
            return Err("hour must be in 0..23".to_owned());
        }
        if t.minute > 59 {
            return Err("minute must be in 0..59".to_owned());
        }
        if t.second > 59 {
            return Err("second must be in 0..59".to_owned());
        }
        if let Some(off) = t.offset_minutes {
            if off.abs() >= 24 * 60 {
                return Err("the UTC offset must be strictly between -24 and 24 hours".to_owned());
            }
        }
    }
    Ok(())
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The value Python compares this (checked) timestamp by.
pub(crate) fn python_key(p: &Parts) -> PythonKey {
    match &p.time {
        None => PythonKey::Date(p.year, p.month, p.day),
        Some(t) => match t.offset_minutes {
            None => PythonKey::Naive(p.year, p.month, p.day, t.hour, t.minute, t.second, t.micros),
            Some(off) => {
                let days = days_from_civil(p.year, p.month, p.day);
                let secs = days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
                    - i64::from(off) * 60;
                PythonKey::Aware(secs * 1_000_000 + i64::from(t.micros))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Parts {
        let p = scan(s).unwrap_or_else(|| panic!("{s:?} should scan"));
        check(&p).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        p
    }

    #[test]
    fn implicit_forms() {
        for s in [
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14T21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-14 21:59:43.10",
            "2001-12-14 21:59:43",
            "2001-12-14\t21:59:43Z",
            "2001-12-15 2:59:43.10",
            "2001-1-1 2:59:43",
            "2001-12-14 21:59:43.1234567 +05:30",
            "2002-12-14  21:59:43.10   Z",
            "2001-12-14 21:59:43.",
        ] {
            assert!(is_implicit(s), "{s:?}");
            ok(s);
        }
        for s in [
            "2001-1-1",
            "2001-12-1",
            "01-12-14",
            "2001-12-14 ",
            "2001-12-14T",
            "2001-12-14 21:59",
            "2001-12-14 21:59:4",
            "2001-12-14 21:59:43 X",
            "2001-12-14 21:59:43 ",
            "2001-12-14 21:59:43.5\t",
            "2001-12-14 21:59:43-5:3",
            "2001/12/14",
            "2001-12-14x",
            "20011-12-14",
            "2001-123-14",
        ] {
            assert!(!is_implicit(s), "{s:?}");
        }
    }

    #[test]
    fn explicit_allows_short_dates() {
        let p = ok("2001-1-1");
        assert_eq!(python_key(&p), PythonKey::Date(2001, 1, 1));
    }

    #[test]
    fn python_range_errors() {
        for s in [
            "0000-01-01",
            "2001-13-01",
            "2001-00-10",
            "2001-02-29",
            "1900-02-29",
            "2001-04-31",
            "2001-12-14 25:00:00",
            "2001-12-14 24:00:00",
            "2001-12-14 21:60:00",
            "2001-12-14 21:59:60",
            "2001-12-14 21:59:43.10 -24",
            "2001-12-14 21:59:43.10 +23:99",
        ] {
            let p = scan(s).unwrap_or_else(|| panic!("{s:?} should scan"));
            assert!(check(&p).is_err(), "{s:?}");
        }
        ok("2000-02-29");
        ok("2004-02-29");
        ok("2001-12-14 21:59:43.10 -23:59");
    }

    #[test]
    fn keys_compare_as_python() {
        let a = python_key(&ok("2001-12-14t21:59:43.10-05:00"));
        let b = python_key(&ok("2001-12-15 02:59:43.1 Z"));
        let c = python_key(&ok("2001-12-15 02:59:43.1"));
        assert_eq!(a, b);
        assert_ne!(b, c);
        assert_ne!(python_key(&ok("2001-12-14")), python_key(&ok("2001-12-14 00:00:00")));
        assert_eq!(python_key(&ok("2001-12-14")), python_key(&ok("2001-12-14")));
        assert_eq!(python_key(&ok("1970-01-01 00:00:00Z")), PythonKey::Aware(0));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
