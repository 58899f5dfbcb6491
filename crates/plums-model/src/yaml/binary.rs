//! `!!binary`: base64 as PyYAML writes it (`base64.encodebytes`: lines of 76 characters) and
//! reads it (`base64.decodebytes`: the lenient CPython decoder, which skips characters outside
//! the alphabet, stops at the padding and rejects a truncated final group).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Characters per line of `base64.encodebytes`.
const LINE: usize = 76;

/// The value of a base64 alphabet character.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64.encodebytes(data)`: standard alphabet, padded, a `\n` after every 76 characters and
/// at the end (nothing at all for empty data).
pub(crate) fn encode_lines(data: &[u8]) -> Vec<String> {
    let mut text = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                text.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text.as_bytes().chunks(LINE).map(|l| String::from_utf8_lossy(l).into_owned()).collect()
}

/// `base64.decodebytes(text.encode('ascii'))`, with PyYAML's error messages.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.is_ascii() {
        return Err("failed to convert base64 data into ascii: the !!binary text has non-ASCII characters".to_owned());
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut quad_pos = 0u8;
    let mut left: u8 = 0;
    let mut pads = 0u8;
    for c in text.bytes() {
        if c == b'=' {
            // CPython: `quad_pos >= 2 && quad_pos + ++pads >= 4` (pads only counts from there).
            if quad_pos >= 2 {
                pads = pads.saturating_add(1);
            }
            if quad_pos >= 2 && quad_pos + pads >= 4 {
                // A complete pad sequence: the rest of the input is ignored.
                return Ok(out);
            }
            continue;
        }
        let Some(v) = sextet(c) else {
            // Whitespace, line breaks and any other character are skipped.
            continue;
        };
        pads = 0;
        match quad_pos {
            0 => {
                quad_pos = 1;
                left = v;
            }
            1 => {
                quad_pos = 2;
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                quad_pos = 3;
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                quad_pos = 0;
                out.push((left << 6) | v);
                left = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(format!(
            "failed to decode base64 data: Invalid base64-encoded string: number of data characters ({}) cannot be 1 more than a multiple of 4",
            out.len() / 3 * 4 + 1
        )),
        _ => Err("failed to decode base64 data: Incorrect padding".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for n in 0..200usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let lines = encode_lines(&data);
            assert!(lines.iter().all(|l| l.len() <= LINE));
            assert_eq!(decode(&lines.join("\n")).unwrap(), data, "{n}");
        }
        assert!(encode_lines(b"").is_empty());
        assert_eq!(encode_lines(b"ABC"), vec!["QUJD".to_owned()]);
        assert_eq!(encode_lines(b"A"), vec!["QQ==".to_owned()]);
    }

    #[test]
    fn lenient_like_cpython() {
        assert_eq!(decode("QUJD=").unwrap(), b"ABC");
        assert_eq!(decode("QU=JD").unwrap(), b"ABC");
        assert_eq!(decode(" Q U\nJ D \n").unwrap(), b"ABC");
        assert_eq!(decode("QQ==garbage").unwrap(), b"A");
        assert_eq!(decode("Q!Q==").unwrap(), b"A");
        assert_eq!(decode("").unwrap(), b"");
        assert!(decode("QUJ").unwrap_err().contains("Incorrect padding"));
        assert!(decode("Q").unwrap_err().contains("number of data characters (1)"));
        assert!(decode("QUJDQ").unwrap_err().contains("number of data characters (5)"));
        assert!(decode("QUJé").is_err());
    }
}
