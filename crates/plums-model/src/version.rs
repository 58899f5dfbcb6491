//! Producer versions: a registry of version formats, with PEP 440 (`py_pa`) built in.
//!
//! A PMF producer records its version as a `(format, value)` pair. [`version`] looks the
//! format up in a process-wide registry and parses the value with it; [`register`] adds a
//! format (or replaces one). The built-in `py_pa` format parses PEP 440 versions with the
//! `pep440_rs` crate: its string form is the normalised one and it orders as PEP 440 says.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, Result};

/// The name of the built-in PEP 440 format.
pub const PY_PA: &str = "py_pa";

/// A parsed version of some format.
pub trait VersionValue: fmt::Debug + Send + Sync + 'static {
    /// The string written to `metadata.yaml` (normalised where the format defines it).
    fn to_version_string(&self) -> String;
    /// The order of two versions of the same format, `None` when they cannot be compared.
    fn compare(&self, other: &dyn VersionValue) -> Option<Ordering>;
    /// `self` as `Any`, so that `compare` can downcast `other`.
    fn as_any(&self) -> &dyn Any;
}

/// A version format that can be registered: it parses version strings.
pub trait VersionFormat: Send + Sync + 'static {
    /// The format identifier written to `metadata.yaml` (`py_pa`).
    fn name(&self) -> &str;
    /// Parse a version string, or say why it is not a version of this format.
    fn parse(&self, value: &str) -> std::result::Result<Arc<dyn VersionValue>, String>;
}

/// A producer version: its format and its parsed value.
///
/// ```
/// use plums_model::version;
/// let a = version("py_pa", "1.0.0rc1").unwrap();
/// let b = version("py_pa", "1.0").unwrap();
/// assert!(a < b);
/// assert_eq!(b.value(), "1.0");
/// assert!(version("semver2000", "1").is_err());
/// ```
#[derive(Clone)]
pub struct Version {
    format: String,
    inner: Arc<dyn VersionValue>,
}

impl Version {
    /// The format identifier.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The version string (normalised where the format defines it).
    pub fn value(&self) -> String {
        self.inner.to_version_string()
    }

    /// The parsed value, for formats registered from outside the crate.
    pub fn inner(&self) -> &Arc<dyn VersionValue> {
        &self.inner
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({}, {})", self.format, self.value())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.format == other.format && self.inner.compare(other.inner.as_ref()) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.format != other.format {
            return None;
        }
        self.inner.compare(other.inner.as_ref())
    }
}

/// A PEP 440 version (the `py_pa` format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440(pub pep440_rs::Version);

impl VersionValue for Pep440 {
    fn to_version_string(&self) -> String {
        self.0.to_string()
    }

    fn compare(&self, other: &dyn VersionValue) -> Option<Ordering> {
        other.as_any().downcast_ref::<Pep440>().map(|o| self.0.cmp(&o.0))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Pep440Format;

impl VersionFormat for Pep440Format {
    fn name(&self) -> &str {
        PY_PA
    }

    fn parse(&self, value: &str) -> std::result::Result<Arc<dyn VersionValue>, String> {
        pep440_rs::Version::from_str(value.trim())
            .map(|v| Arc::new(Pep440(v)) as Arc<dyn VersionValue>)
            .map_err(|e| format!("invalid PEP 440 version {value:?}: {e}"))
    }
}

type Registry = RwLock<HashMap<String, Arc<dyn VersionFormat>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map: HashMap<String, Arc<dyn VersionFormat>> = HashMap::new();
        map.insert(PY_PA.to_owned(), Arc::new(Pep440Format));
        RwLock::new(map)
    })
}

/// Register a version format, replacing any format of the same name.
pub fn register(format: Arc<dyn VersionFormat>) {
    let name = format.name().to_owned();
    let mut map = registry().write().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.insert(name, format);
}

/// The names of the registered formats, sorted.
pub fn registered_formats() -> Vec<String> {
    let map = registry().read().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut names: Vec<String> = map.keys().cloned().collect();
    names.sort();
    names
}

/// Parse `value` as a version of the registered format `format`.
///
/// An unknown format or an invalid value is an [`Error::InvalidArgument`].
pub fn version(format: &str, value: &str) -> Result<Version> {
    let parser = {
        let map = registry().read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(format).cloned()
    };
    let parser = parser.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "invalid version format {format:?}: it is unknown (registered formats: {})",
            registered_formats().join(", ")
        ))
    })?;
    let inner = parser.parse(value).map_err(Error::InvalidArgument)?;
    Ok(Version { format: format.to_owned(), inner })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_normalises_and_orders() {
        assert_eq!(version(PY_PA, "1.0.0-RC1").unwrap().value(), "1.0.0rc1");
        assert_eq!(version(PY_PA, "2!1.0.post1.dev2").unwrap().value(), "2!1.0.post1.dev2");
        assert_eq!(version(PY_PA, "1.0").unwrap(), version(PY_PA, "1.0.0").unwrap());
        assert!(version(PY_PA, "1.0.dev1").unwrap() < version(PY_PA, "1.0a1").unwrap());
        assert!(version(PY_PA, "1.10").unwrap() > version(PY_PA, "1.9").unwrap());
    }

    #[test]
    fn unknown_format_and_bad_value_are_invalid_arguments() {
        let err = version("nope", "1").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("\"nope\"") && m.contains("py_pa")), "{err}");
        let err = version(PY_PA, "not a version").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("invalid PEP 440 version")), "{err}");
    }

    #[derive(Debug)]
    struct Counter(u32);
    impl VersionValue for Counter {
        fn to_version_string(&self) -> String {
            format!("v{}", self.0)
        }
        fn compare(&self, other: &dyn VersionValue) -> Option<Ordering> {
            other.as_any().downcast_ref::<Counter>().map(|o| self.0.cmp(&o.0))
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }
    struct CounterFormat;
    impl VersionFormat for CounterFormat {
        fn name(&self) -> &str {
            "counter"
        }
        fn parse(&self, value: &str) -> std::result::Result<Arc<dyn VersionValue>, String> {
            value
                .trim_start_matches('v')
                .parse()
                .map(|n| Arc::new(Counter(n)) as Arc<dyn VersionValue>)
                .map_err(|_| format!("{value:?} is not vN"))
        }
    }

    #[test]
    fn custom_formats_can_be_registered() {
        register(Arc::new(CounterFormat));
        let a = version("counter", "v2").unwrap();
        let b = version("counter", "10").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "v10");
        assert!(registered_formats().contains(&"counter".to_owned()));
        assert_eq!(a.partial_cmp(&version(PY_PA, "1").unwrap()), None);
    }
}
