//! The MD5 digest type: 16 bytes, written as 32 lowercase hexadecimal digits (PMF's checksum
//! syntax). Computing digests is `hash.rs`'s job.

use std::fmt;
use std::str::FromStr;

/// A 128-bit MD5 digest, written as 32 lowercase hexadecimal digits.
///
/// ```
/// use plums_model::Md5;
/// let d: Md5 = "d41d8cd98f00b204e9800998ecf8427e".parse().unwrap();
/// assert_eq!(d, Md5::of_bytes(b""));
/// assert!("D41D8CD98F00B204E9800998ECF8427E".parse::<Md5>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Md5(pub [u8; 16]);

impl Md5 {
    /// Whether `text` is a valid PMF checksum: exactly 32 lowercase hexadecimal digits.
    pub fn is_valid_hex(text: &str) -> bool {
        text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The first `n` hexadecimal digits, for short displays.
    pub fn prefix(&self, n: usize) -> String {
        let mut s = self.to_string();
        s.truncate(n);
        s
    }
}

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5({self})")
    }
}

/// Why a string is not an MD5 checksum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MD5 checksum {0:?}: expected 32 lowercase hexadecimal digits")]
pub struct InvalidMd5(pub String);

impl FromStr for Md5 {
    type Err = InvalidMd5;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if !Md5::is_valid_hex(s) {
            return Err(InvalidMd5(s.to_owned()));
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            out[i] = (hi << 4) | lo;
        }
        Ok(Md5(out))
    }
}

fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => 0,
    }
}
