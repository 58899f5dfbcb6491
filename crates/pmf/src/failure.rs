//! Why a command failed, its exit code, and how it is reported: one line
//! `error: <what is wrong> (<path>)`, the offences of an invalid model, and a hint.
//!
//! Exit codes: 1 for an invalid model or a refused edit (the library refused it: it would make
//! the model invalid, or the training state does not allow it), 2 for a command that could not
//! run (bad command line, missing or unreadable path, I/O failure).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use plums_model::{Error, Offence, Reference};

use crate::output::errln;
use crate::output::{offence_line, paint, show_path, BAD, WARN};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an invalid model, or a refused edit.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: bad command line, or a path that cannot be read or written.
pub const EXIT_USAGE: u8 = 2;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What is wrong (the first line of the message).
    pub message: String,
    /// The path involved, if any.
    pub path: Option<PathBuf>,
    /// Details on the following lines (each printed indented), e.g. offences.
    pub details: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// A usage or I/O error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { code: EXIT_USAGE, message: message.into(), path: None, details: Vec::new(), hint: None }
    }

    /// A refused edit (exit 1).
    pub fn refused(message: impl Into<String>) -> Self {
        Failure { code: EXIT_INVALID, message: message.into(), path: None, details: Vec::new(), hint: None }
    }

    /// The same failure, about `path` (kept if one is already set).
    pub fn at(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// The same failure, with a hint (kept if one is already set).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// A library error, in the context of the model folder (or file) `context`.
    pub fn from_library(error: Error, context: &Path) -> Self {
        match error {
            Error::Io { path, message, source, kind } => {
                let message = match source {
                    Some(e) => format!("{message}: {e}"),
                    None => message,
                };
                let hint = match kind {
                    ErrorKind::NotFound => Some("check the path".to_owned()),
                    ErrorKind::PermissionDenied => Some("check the permissions of the path".to_owned()),
                    ErrorKind::WouldBlock => {
                        Some("another process is writing the model: retry when it is done".to_owned())
                    }
                    _ if message.contains("changed since") => {
                        Some("another writer changed the model meanwhile: run the command again".to_owned())
                    }
                    _ => None,
                };
                Failure { code: EXIT_USAGE, message, path: Some(path), details: Vec::new(), hint }
            }
            Error::InvalidArgument(message) => {
                let mut lines = message.lines().map(str::to_owned);
                let first = lines.next().unwrap_or_default();
                let details: Vec<String> = lines.map(|l| l.trim_start().to_owned()).collect();
                let first = if details.is_empty() { first } else { first.trim_end_matches(':').to_owned() };
                Failure { code: EXIT_INVALID, message: first, path: Some(context.to_path_buf()), details, hint: None }
            }
            Error::DuplicateReference(r) => {
                Failure::refused(format!("checkpoint reference {} is already registered", r.quoted())).at(context).hint(
                    "choose another reference with --ref, or remove the checkpoint first with `pmf checkpoint rm`",
                )
            }
            Error::MissingReference(r) => {
                Failure::refused(format!("checkpoint reference {} is not registered", r.quoted())).at(context)
            }
            Error::TreeValidation(report) | Error::MetadataValidation(report) => {
                Failure::invalid_model(&report.path, &report.offences)
            }
        }
    }

    /// An invalid model: every offence listed.
    pub fn invalid_model(path: &Path, offences: &[Offence]) -> Self {
        let n = offences.len();
        Failure {
            code: EXIT_INVALID,
            message: format!("not a valid PMF model, {n} offence{}", if n == 1 { "" } else { "s" }),
            path: Some(path.to_path_buf()),
            details: offences.iter().map(|o| offence_line(o, "")).collect(),
            hint: Some(format!("`pmf validate {}` lists the offences", show_path(path))),
        }
    }

    /// Print the failure on stderr.
    pub fn report(&self) {
        let path = self.path.as_deref().map(|p| format!(" ({})", show_path(p))).unwrap_or_default();
        errln!("{} {}{path}", paint(BAD, "error:"), self.message);
        for line in &self.details {
            errln!("  {line}");
        }
        if let Some(hint) = &self.hint {
            errln!("{} {hint}", paint(WARN, "hint:"));
        }
    }
}

/// Parse a checkpoint reference: all ASCII digits is an int reference unless `as_str`.
pub fn parse_reference(text: &str, as_str: bool) -> Result<Reference, Failure> {
    if text.is_empty() {
        return Err(Failure::usage("a checkpoint reference cannot be empty"));
    }
    if as_str || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Reference::Str(text.to_owned()));
    }
    text.parse::<i64>().map(Reference::Int).map_err(|_| {
        Failure::usage(format!("checkpoint reference {text} is too large for an int reference"))
            .hint("add --ref-str to make it a string reference")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_reference("12", false).ok(), Some(Reference::Int(12)));
        assert_eq!(parse_reference("12", true).ok(), Some(Reference::Str("12".into())));
        assert_eq!(parse_reference("best", false).ok(), Some(Reference::Str("best".into())));
        assert_eq!(parse_reference("-1", false).ok(), Some(Reference::Str("-1".into())));
        assert_eq!(parse_reference("99999999999999999999", false).map_err(|f| f.code).err(), Some(EXIT_USAGE));
        assert!(parse_reference("", false).is_err());
    }

    #[test]
    fn library_errors_map_to_exit_codes() {
        let io = Error::os("/x", ErrorKind::NotFound, "cannot validate model");
        let f = Failure::from_library(io, Path::new("/y"));
        assert_eq!((f.code, f.path.as_deref()), (EXIT_USAGE, Some(Path::new("/x"))));
        let f = Failure::from_library(Error::InvalidArgument("cannot save:\n  - a\n  - b".into()), Path::new("/m"));
        assert_eq!((f.code, f.message.as_str(), f.details.len()), (EXIT_INVALID, "cannot save", 2));
        let f = Failure::from_library(Error::DuplicateReference(Reference::Int(3)), Path::new("/m"));
        assert_eq!(f.code, EXIT_INVALID);
        assert!(f.message.contains("3 is already registered"));
    }
}
