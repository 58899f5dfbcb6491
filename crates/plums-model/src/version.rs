//! Producer versions: a registry of version formats, with PEP 440 (`py_pa`) built in.
//!
//! A PMF producer records its version as a `(format, value)` pair. A [`VersionFormats`] value
//! (there is no process-wide registry) parses it with the named format; more formats can be
//! added to it. The built-in `py_pa` format parses PEP 440 versions with the `pep440_rs` crate:
//! its string form is the normalised one, it orders and hashes as PEP 440 says.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

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
    /// Feed what identifies the value to a hasher, consistently with `compare`: values that
    /// compare equal feed the same. By default the version string.
    fn hash_key(&self, state: &mut dyn std::hash::Hasher) {
        state.write(self.to_version_string().as_bytes());
    }
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
/// use plums_model::Version;
/// let a = Version::pep440("1.0.0rc1").unwrap();
/// let b = Version::parse("py_pa", "1.0").unwrap();
/// assert!(a < b);
/// assert_eq!(b.value(), "1.0");
/// assert!(Version::parse("semver2000", "1").is_err());
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
struct Pep440(pep440_rs::Version);

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

    fn hash_key(&self, mut state: &mut dyn std::hash::Hasher) {
        std::hash::Hash::hash(&self.0, &mut state);
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

/// A format whose rules live outside the crate (for example in a language binding's own
/// classes): any string is a version, kept as it is; two versions are equal when their strings
/// are, and are not ordered otherwise.
struct Unparsed(String);

#[derive(Debug)]
struct UnparsedValue(String);

impl VersionValue for UnparsedValue {
    fn to_version_string(&self) -> String {
        self.0.clone()
    }

    fn compare(&self, other: &dyn VersionValue) -> Option<Ordering> {
        other.as_any().downcast_ref::<UnparsedValue>().and_then(|o| (o.0 == self.0).then_some(Ordering::Equal))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl VersionFormat for Unparsed {
    fn name(&self) -> &str {
        &self.0
    }

    fn parse(&self, value: &str) -> std::result::Result<Arc<dyn VersionValue>, String> {
        Ok(Arc::new(UnparsedValue(value.to_owned())))
    }
}

/// A set of version formats, by name: what [`crate::Model::load`] parses producer versions
/// with ([`crate::LoadOptions::formats`]). [`VersionFormats::default`] has the built-in
/// formats (`py_pa`); there is no process-wide registry.
#[derive(Clone)]
pub struct VersionFormats {
    formats: HashMap<String, Arc<dyn VersionFormat>>,
}

impl Default for VersionFormats {
    fn default() -> Self {
        let mut formats: HashMap<String, Arc<dyn VersionFormat>> = HashMap::new();
        formats.insert(PY_PA.to_owned(), Arc::new(Pep440Format));
        VersionFormats { formats }
    }
}

impl fmt::Debug for VersionFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl VersionFormats {
    /// The built-in formats.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a format, replacing any format of the same name.
    pub fn register(&mut self, format: Arc<dyn VersionFormat>) -> &mut Self {
        self.formats.insert(format.name().to_owned(), format);
        self
    }

    /// Add a format whose rules live elsewhere (a binding's own version classes): every string
    /// is a version of it, kept as given, equal only to the same string, never ordered.
    pub fn register_unparsed(&mut self, name: impl Into<String>) -> &mut Self {
        self.register(Arc::new(Unparsed(name.into())))
    }

    /// The names of the formats, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.formats.keys().cloned().collect();
        names.sort();
        names
    }

    /// Parse `value` as a version of the format `format`.
    ///
    /// An unknown format is an [`Error::UnknownVersionFormat`], a value the format refuses an
    /// [`Error::InvalidVersion`].
    pub fn parse(&self, format: &str, value: &str) -> Result<Version> {
        let parser = self
            .formats
            .get(format)
            .ok_or_else(|| Error::UnknownVersionFormat { format: format.to_owned(), known: self.names() })?;
        let inner = parser.parse(value).map_err(|reason| Error::InvalidVersion {
            format: format.to_owned(),
            value: value.to_owned(),
            reason,
        })?;
        Ok(Version { format: format.to_owned(), inner })
    }
}

impl Version {
    /// Parse `value` as a version of the built-in format `format` (`py_pa`); see
    /// [`VersionFormats::parse`] for other formats.
    pub fn parse(format: &str, value: &str) -> Result<Version> {
        VersionFormats::default().parse(format, value)
    }

    /// A PEP 440 version (format `py_pa`).
    pub fn pep440(value: &str) -> Result<Version> {
        Self::parse(PY_PA, value)
    }
}

impl std::hash::Hash for Version {
    /// Consistent with equality: equal versions (`1.0` and `1.0.0` in PEP 440) hash alike.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.format.hash(state);
        self.inner.hash_key(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    fn v(text: &str) -> Version {
        Version::pep440(text).unwrap()
    }

    #[test]
    fn pep440_normalises_orders_and_hashes() {
        assert_eq!(v("1.0.0-RC1").value(), "1.0.0rc1");
        assert_eq!(v("2!1.0.post1.dev2").value(), "2!1.0.post1.dev2");
        assert_eq!(v("1.0"), v("1.0.0"));
        assert!(v("1.0.dev1") < v("1.0a1"));
        assert!(v("1.10") > v("1.9"));
        let s = RandomState::new();
        assert_eq!(s.hash_one(v("1.0")), s.hash_one(v("1.0.0")));
        assert_ne!(s.hash_one(v("1.0")), s.hash_one(v("1.0.1")));
    }

    #[test]
    fn unknown_format_and_bad_value_are_typed() {
        let err = Version::parse("nope", "1").unwrap_err();
        assert!(
            matches!(err, Error::UnknownVersionFormat { ref format, ref known } if format == "nope" && known == &["py_pa"]),
            "{err}"
        );
        assert!(err.to_string().contains("\"nope\""), "{err}");
        let err = Version::parse(PY_PA, "not a version").unwrap_err();
        assert!(matches!(err, Error::InvalidVersion { ref value, .. } if value == "not a version"), "{err}");
        assert!(err.to_string().starts_with("invalid py_pa version \"not a version\""), "{err}");
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
    fn formats_are_values_not_global_state() {
        let mut formats = VersionFormats::new();
        formats.register(Arc::new(CounterFormat)).register_unparsed("calendar");
        let a = formats.parse("counter", "v2").unwrap();
        let b = formats.parse("counter", "10").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "v10");
        assert_eq!(formats.names(), ["calendar", "counter", "py_pa"]);
        assert_eq!(a.partial_cmp(&v("1")), None);
        // Another set of formats (the default one) does not know it.
        assert!(matches!(Version::parse("counter", "v2"), Err(Error::UnknownVersionFormat { .. })));
        let (x, y) = (formats.parse("calendar", "2024.01").unwrap(), formats.parse("calendar", "2024.01").unwrap());
        assert_eq!(x, y);
        assert_eq!(x.partial_cmp(&formats.parse("calendar", "2025").unwrap()), None);
    }
}
