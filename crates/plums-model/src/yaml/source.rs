//! The input text as PyYAML's reader sees it, beside the event parser: the characters it
//! refuses, and the names of anchors and aliases (which the event parser reports only as
//! numbers) so that PyYAML's rules on them can be applied.

use saphyr_parser::Marker;

use super::YamlError;

/// Maps the parser's character positions to byte offsets, moving forward.
pub(crate) struct Offsets<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    bytes: usize,
}

impl<'a> Offsets<'a> {
    /// Starts at the beginning of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Offsets { text, ascii: text.is_ascii(), chars: 0, bytes: 0 }
    }

    /// The text from the character at `index` on.
    pub(crate) fn at_char(&mut self, index: usize) -> &'a str {
        if self.ascii {
            return self.text.get(index..).unwrap_or("");
        }
        if index < self.chars {
            self.chars = 0;
            self.bytes = 0;
        }
        let rest = self.text.get(self.bytes..).unwrap_or("");
        let skip = index - self.chars;
        let delta = rest.char_indices().nth(skip).map_or(rest.len(), |(b, _)| b);
        self.chars = index;
        self.bytes += delta;
        self.text.get(self.bytes..).unwrap_or("")
    }
}

/// The name of the anchor (`&name`) or alias (`*name`) a node starting at `rest` carries.
/// The node may start with a tag, which comes before the anchor.
pub(crate) fn anchor_name(rest: &str, sigil: char) -> Option<&str> {
    let mut s = rest;
    if s.starts_with('!') {
        let end = s.find(|c: char| c.is_whitespace()).unwrap_or(s.len());
        s = s[end..].trim_start();
    }
    let s = s.strip_prefix(sigil)?;
    let end = s.find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}')).unwrap_or(s.len());
    Some(&s[..end])
}

/// PyYAML's anchor and alias names: ASCII letters, digits, `-` and `_`.
pub(crate) fn check_anchor_name(name: &str, what: &str, at: Marker) -> Result<(), YamlError> {
    if !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        Ok(())
    } else {
        Err(YamlError::at(format!("{what} name {name:?}: PyYAML accepts only ASCII letters, digits, '-' and '_'"), at))
    }
}

/// What PyYAML's reader accepts (`Reader.NON_PRINTABLE` is its complement).
fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

/// Rejects the characters PyYAML's reader rejects ("special characters are not allowed"), and
/// raw NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR, which PyYAML reads as line breaks (YAML 1.1)
/// and the event parser (YAML 1.2) as ordinary characters.
pub(crate) fn check_printable(text: &str) -> Result<(), YamlError> {
    let fast = text.bytes().all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'));
    if fast {
        return Ok(());
    }
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        let problem = if !is_printable(c) {
            Some("is not allowed (PyYAML rejects non-printable characters)")
        } else if matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
            Some(
                "is a line break for PyYAML (YAML 1.1) but not for YAML 1.2, so the document is ambiguous: \
                 write it escaped (\\N, \\L, \\P) inside a double-quoted string",
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(YamlError {
                message: format!("special character U+{:04X} {problem}", u32::from(c)),
                line,
                column,
            });
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}
