//! The producer: the package that trained the model, its version and its configuration file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hash::md5_file_sized;
use crate::version::Version;

/// The package that produced a model, with the configuration file it was run with.
///
/// Two producers are equal when their names and versions are equal; producers of the same name
/// are ordered by version. [`Producer::strict_equals`] also compares configuration contents.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// use plums_model::{Producer, Version};
/// let a = Producer::new("trainer", Version::pep440("1.0")?, &cfg)?;
/// let b = Producer::new("trainer", Version::pep440("1.0.0")?, &cfg)?;
/// let c = Producer::new("trainer", Version::pep440("1.1")?, &cfg)?;
/// assert_eq!(a, b);
/// assert!(a < c);
/// assert!(a.strict_equals(&b)?);
/// # Ok::<(), plums_model::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    /// The producer package name.
    pub name: String,
    /// The producer version.
    pub version: Version,
    /// The configuration file the producer was run with.
    pub configuration: PathBuf,
}

impl Producer {
    /// A producer. The configuration must be an existing file ([`Error::Io`] when nothing
    /// can be read there, [`Error::NotAFile`] for a folder or a special file).
    pub fn new(name: impl Into<String>, version: Version, configuration: impl AsRef<Path>) -> Result<Self> {
        let configuration = configuration.as_ref();
        Self::check_configuration(configuration)?;
        Ok(Producer { name: name.into(), version, configuration: configuration.to_path_buf() })
    }

    /// Whether `path` can be a producer's configuration: an existing regular file (the rule of
    /// [`Producer::new`], for callers that keep the producer's other parts themselves).
    pub fn check_configuration(path: &Path) -> Result<()> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Error::NotAFile { path: path.to_path_buf(), what: "configuration" }),
            Err(e) => Err(Error::io(path, "invalid configuration: cannot read the file", e)),
        }
    }

    /// Whether the two producers are equal and their configuration files have the same content.
    pub fn strict_equals(&self, other: &Producer) -> Result<bool> {
        Ok(self == other && Self::same_configuration(&self.configuration, &other.configuration)?)
    }

    /// Whether two configuration files have the same content (size, then MD5).
    pub fn same_configuration(a: &Path, b: &Path) -> Result<bool> {
        let size =
            |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|e| Error::io(p, "cannot read configuration", e));
        if size(a)? != size(b)? {
            return Ok(false);
        }
        Ok(md5_file_sized(a)?.0 == md5_file_sized(b)?.0)
    }
}

impl PartialEq for Producer {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.version == other.version
    }
}

impl PartialOrd for Producer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.name != other.name {
            return None;
        }
        self.version.partial_cmp(&other.version)
    }
}

/// Whether `name` is a valid producer name: `^[a-zA-Z][0-9a-zA-Z_]+$` (two characters at least).
pub fn is_valid_producer_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(text: &str) -> Version {
        Version::pep440(text).unwrap()
    }

    #[test]
    fn producer_names() {
        for ok in ["ab", "faster_rcnn", "A1_", "x_"] {
            assert!(is_valid_producer_name(ok), "{ok}");
        }
        for bad in ["", "a", "1abc", "_ab", "a-b", "a b", "é1", "ab\n"] {
            assert!(!is_valid_producer_name(bad), "{bad}");
        }
    }

    #[test]
    fn configuration_must_be_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Producer::new("ab", pv("1"), dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAFile { what: "configuration", .. }), "{err}");
        assert!(err.to_string().contains("is not a file"), "{err}");
        let err = Producer::new("ab", pv("1"), dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{err}");
    }

    #[test]
    fn strict_equality_compares_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::write(&a, b"x=1").unwrap();
        std::fs::write(&b, b"x=1").unwrap();
        std::fs::write(&c, b"x=2").unwrap();
        let pa = Producer::new("ab", pv("1"), &a).unwrap();
        assert!(pa.strict_equals(&Producer::new("ab", pv("1.0"), &b).unwrap()).unwrap());
        assert!(!pa.strict_equals(&Producer::new("ab", pv("1"), &c).unwrap()).unwrap());
        assert!(!pa.strict_equals(&Producer::new("ac", pv("1"), &b).unwrap()).unwrap());
        assert_eq!(pa.partial_cmp(&Producer::new("ac", pv("2"), &b).unwrap()), None);
    }
}
