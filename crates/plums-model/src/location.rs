//! Where a model lives: a local folder ([`Location::Local`]) or a prefix in an object store
//! ([`Location::Object`], `s3://bucket/prefix`).
//!
//! Text with a scheme (`scheme://`) is a URL and never a local path: `s3://b/m` given to a
//! function taking a location is a bucket, and an unknown scheme is an
//! [`Error::InvalidLocation`], not a folder named `s3:` in the current directory; so is a known
//! scheme with a single slash or none (`s3:/bucket/m`, `s3:bucket`: a local folder whose name
//! starts with `s3:` is written `./s3:...`). `file://` URLs are local paths. A URL carries no
//! secret: credentials in it (`s3://key:secret@bucket`, whatever the secret holds, `/` and `@`
//! included) are refused, so that a location can always be shown (errors, logs, `--json`), and
//! the refused text is shown with them blanked.
//!
//! Pure values: no I/O.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a model is: a local folder or a prefix in an object store.
///
/// ```
/// use plums_model::Location;
/// let remote = Location::parse("s3://models/detector/v1")?;
/// let url = remote.as_object().unwrap();
/// assert_eq!((url.scheme(), url.bucket(), url.prefix()), ("s3", "models", "detector/v1"));
/// assert_eq!(remote.to_string(), "s3://models/detector/v1");
/// assert_eq!(Location::parse("runs/detector")?.as_local(), Some(std::path::Path::new("runs/detector")));
/// assert!(Location::parse("ftp://host/m").is_err());
/// # Ok::<(), plums_model::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A folder on a local (or mounted) file system.
    Local(PathBuf),
    /// A prefix in an object store.
    Object(ObjectUrl),
}

/// The object stores a location can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    /// Amazon S3 and S3-compatible stores (SeaweedFS, MinIO, Ceph, Garage, ...): tested.
    S3,
    /// Google Cloud Storage (untested).
    Gs,
    /// Azure Blob Storage (untested).
    Az,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gs => "gs",
            Scheme::Az => "az",
        }
    }
}

/// A model's place in an object store: `scheme://bucket/prefix`.
///
/// The prefix has no leading or trailing `/`, no empty segment and no `.` or `..` segment; an
/// empty prefix is the bucket's root. The model's files are the keys `prefix/<relative path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    scheme: Scheme,
    bucket: String,
    prefix: String,
}

impl ObjectUrl {
    /// `s3`, `gs` or `az`.
    pub fn scheme(&self) -> &str {
        self.scheme.as_str()
    }

    pub(crate) fn kind(&self) -> Scheme {
        self.scheme
    }

    /// The bucket (or Azure container).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The model's prefix in the bucket, without leading or trailing `/` (empty: the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store this URL is in, `scheme://bucket` (what cache entries are keyed by).
    pub fn store_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.bucket)
    }

    /// The key of `rel` (a relative path already confined by `paths::relative_inside`).
    pub(crate) fn key(&self, rel: &str) -> String {
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    /// The URL of the prefix `rel` under this one (a nested model).
    pub(crate) fn join(&self, rel: &str) -> ObjectUrl {
        ObjectUrl { scheme: self.scheme, bucket: self.bucket.clone(), prefix: self.key(rel) }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl Location {
    /// The location `text` names: a URL when it starts with `scheme://` (`s3://`, `gs://`,
    /// `az://`, `file://`), a local path otherwise.
    ///
    /// Refused, as an [`Error::InvalidLocation`]: an unknown scheme, a known scheme without
    /// `//` (`s3:/bucket`), a URL without a bucket, credentials in the URL (`user:secret@`: any
    /// `@` after `://`, except in the path of a `file:///` URL), a query (`?`) or fragment
    /// (`#`), an empty, `.` or `..` segment in an object prefix, a `file://` URL naming another
    /// host or no absolute path, and a bad percent escape in a `file://` path. The error's
    /// location is the text with anything that could be credentials blanked (`<redacted>`).
    pub fn parse(text: &str) -> Result<Location> {
        let invalid = |reason: &str| Error::InvalidLocation { location: redacted(text), reason: reason.to_owned() };
        let Some((scheme, rest)) = split_scheme(text) else {
            return match known_scheme_without_slashes(text) {
                Some(given) => Err(invalid(&format!(
                    "{given:?} is not followed by \"//\": expected {} (a local path starting with {given:?} is written ./{given}...)",
                    expected_form(&given[..given.len() - 1].to_ascii_lowercase()),
                ))),
                None => Ok(Location::Local(PathBuf::from(text))),
            };
        };
        let scheme = scheme.to_ascii_lowercase();
        // First: a secret may hold any character (`/`, `?`, `#`, `@`), so nothing of the URL is
        // examined (nor quoted in a reason) before credentials are ruled out.
        if credentials_end(&scheme, rest).is_some() {
            return Err(invalid(
                "credentials cannot be given in the URL (the text before an '@' is taken for user:secret): use the storage options or the AWS_* environment variables",
            ));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(invalid("a location URL cannot have a query (?) or a fragment (#)"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let kind = match scheme.as_str() {
            "file" => return parse_file(authority, path).map(Location::Local).map_err(|r| invalid(&r)),
            "s3" => Scheme::S3,
            "gs" => Scheme::Gs,
            "az" => Scheme::Az,
            _ => {
                return Err(invalid(&format!(
                    "unknown scheme {scheme:?}: expected a local path, file://, s3://, gs:// or az://"
                )))
            }
        };
        if authority.is_empty() {
            return Err(invalid(&format!("no bucket: expected {scheme}://<bucket>/<prefix>")));
        }
        if !authority.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(invalid(&format!(
                "{authority:?} is not a bucket name (letters, digits, '.', '-' and '_'); an endpoint is a storage option, not part of the URL"
            )));
        }
        let prefix = path.strip_prefix('/').unwrap_or(path);
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                match segment {
                    "" => return Err(invalid("the prefix has an empty segment (//)")),
                    "." | ".." => {
                        return Err(invalid(&format!("the prefix has a {segment:?} segment: keys are not paths")))
                    }
                    _ => {}
                }
            }
        }
        Ok(Location::Object(ObjectUrl { scheme: kind, bucket: authority.to_owned(), prefix: prefix.to_owned() }))
    }

    /// The local folder, for a local location.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object(_) => None,
        }
    }

    /// The object-store URL, for a remote location.
    pub fn as_object(&self) -> Option<&ObjectUrl> {
        match self {
            Location::Object(u) => Some(u),
            Location::Local(_) => None,
        }
    }

    /// Whether this is a local folder.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Object(u) => write!(f, "{u}"),
        }
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Local(p.clone())
    }
}

impl From<ObjectUrl> for Location {
    fn from(u: ObjectUrl) -> Self {
        Location::Object(u)
    }
}

/// The schemes [`Location::parse`] knows, lower case.
const KNOWN_SCHEMES: [&str; 4] = ["s3", "gs", "az", "file"];

/// How a URL of the known scheme `scheme` (lower case) is written.
fn expected_form(scheme: &str) -> String {
    if scheme == "file" {
        "file:///<absolute path>".to_owned()
    } else {
        format!("{scheme}://<bucket>/<prefix>")
    }
}

/// `scheme:` as given (`s3:`, `S3:`, `file:`) when `text` starts with a known scheme and a colon
/// but not `://` (`s3:/bucket/m`, `s3:bucket`, `s3:`): a mistyped URL, not a local path.
fn known_scheme_without_slashes(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once(':')?;
    (KNOWN_SCHEMES.iter().any(|k| scheme.eq_ignore_ascii_case(k)) && !rest.starts_with("//"))
        .then(|| &text[..scheme.len() + 1])
}

/// Where credentials (`user:secret@`) would end in `rest`, the text after `scheme://` (or after
/// `scheme:` for a known scheme without `//`): when there is an `@` and the text up to the first
/// `/` (a bucket or host, which never holds `@` or `:`) holds an `@` or a `:`, at the last `@`,
/// so that a secret holding `/`, `@` or anything else is covered whole. `None` otherwise: an
/// `@` in an object prefix (`s3://bucket/m@v2`) is part of a key, `host:port` without an `@` is
/// a bad bucket name (said as such), and a `file` URL without an authority
/// (`file:///tmp/a@b`) names a path.
fn credentials_end(scheme: &str, rest: &str) -> Option<usize> {
    if scheme.eq_ignore_ascii_case("file") && rest.starts_with('/') {
        return None;
    }
    let unslashed = rest.trim_start_matches('/');
    let authority = &unslashed[..unslashed.find('/').unwrap_or(unslashed.len())];
    let at = rest.rfind('@')?;
    (authority.contains('@') || authority.contains(':')).then_some(at)
}

/// `(scheme, rest)` when `text` starts with `scheme://`, scheme `[A-Za-z][A-Za-z0-9+.-]*`.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let end = text.find("://")?;
    let scheme = &text[..end];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
        .then(|| (scheme, &text[end + 3..]))
}

/// The text to show of a refused location: everything between `://` (or the `:` of a known
/// scheme without `//`) and the last `@` after it (credentials, see [`credentials_end`]) is
/// replaced, so that an error never carries a secret, whatever characters the secret holds.
fn redacted(text: &str) -> String {
    let split = split_scheme(text)
        .or_else(|| known_scheme_without_slashes(text).map(|given| (&given[..given.len() - 1], &text[given.len()..])));
    let Some((scheme, rest)) = split else { return text.to_owned() };
    match credentials_end(scheme, rest) {
        Some(at) => {
            let start = text.len() - rest.len();
            format!("{}<redacted>{}", &text[..start], &rest[at..])
        }
        None => text.to_owned(),
    }
}

/// The local path of a `file://` URL: `file:///abs` or `file://localhost/abs`, percent-decoded.
fn parse_file(authority: &str, path: &str) -> std::result::Result<PathBuf, String> {
    if !authority.is_empty() && !authority.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "a file:// URL names a local path: the host {authority:?} is not this machine (file:///<absolute path>)"
        ));
    }
    if path.is_empty() {
        return Err("a file:// URL needs an absolute path: file:///<absolute path>".to_owned());
    }
    let bytes = percent_decode(path)?;
    if bytes.contains(&0) {
        return Err("the path contains a NUL byte (%00)".to_owned());
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

fn percent_decode(text: &str) -> std::result::Result<Vec<u8>, String> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return Err(format!("bad percent escape at byte {i}: expected %<two hex digits>")),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> ObjectUrl {
        match Location::parse(text).unwrap() {
            Location::Object(u) => u,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str, fragment: &str) {
        match Location::parse(text) {
            Err(e @ Error::InvalidLocation { .. }) => {
                assert_eq!(e.category(), crate::error::Category::Value);
                assert_eq!(e.code(), "invalid_location");
                assert!(e.to_string().contains(fragment), "{text}: {fragment:?} not in {e}");
                assert!(!e.to_string().contains("hunter2"), "a secret in {e}");
            }
            other => panic!("{text}: expected InvalidLocation, got {other:?}"),
        }
    }

    #[test]
    fn paths_without_a_scheme_are_local() {
        for text in ["m", "./m", "/abs/m", "dir/s3://x", "1s3://x", "", "C:\\m", "runs/a:b", "a:b", "./s3:/bucket/m"] {
            assert_eq!(Location::parse(text).unwrap(), Location::Local(PathBuf::from(text)), "{text}");
        }
        assert_eq!(Location::from(Path::new("a")), Location::Local("a".into()));
        assert_eq!(Location::from(PathBuf::from("a")), Location::Local("a".into()));
        assert_eq!(Location::from(&PathBuf::from("a")).as_local(), Some(Path::new("a")));
        assert_eq!(Location::parse("runs/m").unwrap().to_string(), "runs/m");
        for text in ["ftp:/host/m", "s3a:/bucket/m", "runs/s3:/m", "runs/a@b", "s3x:y"] {
            assert_eq!(Location::parse(text).unwrap(), Location::Local(PathBuf::from(text)), "{text}");
        }
    }

    #[test]
    fn a_known_scheme_without_slashes_is_refused() {
        for (text, expected) in [
            ("s3:/bucket/m", "\"s3:\" is not followed by \"//\": expected s3://<bucket>/<prefix>"),
            ("s3:bucket", "expected s3://<bucket>/<prefix>"),
            ("s3:", "expected s3://<bucket>/<prefix>"),
            ("s3:/", "expected s3://<bucket>/<prefix>"),
            ("S3:/bucket/m", "\"S3:\" is not followed by \"//\": expected s3://<bucket>/<prefix>"),
            ("gs:/bucket/m", "expected gs://<bucket>/<prefix>"),
            ("az:/container/m", "expected az://<bucket>/<prefix>"),
            ("file:/tmp/m", "expected file:///<absolute path>"),
            ("FILE:tmp/m", "expected file:///<absolute path>"),
            ("s3:/bucket/m", "written ./s3:..."),
        ] {
            refused(text, expected);
        }
        let err = Location::parse("s3:/bucket/m").unwrap_err();
        assert!(matches!(&err, Error::InvalidLocation { location, .. } if location == "s3:/bucket/m"), "{err:?}");
    }

    #[test]
    fn object_urls() {
        let u = object("s3://bucket/a/b/model");
        assert_eq!((u.scheme(), u.bucket(), u.prefix()), ("s3", "bucket", "a/b/model"));
        assert_eq!(u.to_string(), "s3://bucket/a/b/model");
        assert_eq!(u.store_url(), "s3://bucket");
        assert_eq!(u.key("data/checkpoints/1.pt"), "a/b/model/data/checkpoints/1.pt");
        assert_eq!(u.join("data/initialisation").prefix(), "a/b/model/data/initialisation");
        assert_eq!(object("s3://bucket/m/").prefix(), "m", "one trailing slash is dropped");
        let root = object("s3://bucket");
        assert_eq!((root.prefix(), root.key("metadata.yaml")), ("", "metadata.yaml".to_owned()));
        assert_eq!(object("s3://bucket/").prefix(), "");
        assert_eq!(object("S3://bucket/m").scheme(), "s3", "schemes are case-insensitive");
        assert_eq!(object("gs://b/m").scheme(), "gs");
        assert_eq!(object("az://container/m").scheme(), "az");
        assert!(Location::parse("s3://b/m").unwrap().as_local().is_none());
    }

    #[test]
    fn file_urls_are_local_paths() {
        assert_eq!(Location::parse("file:///tmp/m").unwrap(), Location::Local("/tmp/m".into()));
        assert_eq!(Location::parse("file://localhost/tmp/m").unwrap(), Location::Local("/tmp/m".into()));
        assert_eq!(Location::parse("FILE://LOCALHOST/tmp/m").unwrap(), Location::Local("/tmp/m".into()));
        assert_eq!(Location::parse("file:///tmp/a%20b/%C3%A9").unwrap(), Location::Local("/tmp/a b/é".into()));
        assert_eq!(
            Location::parse("file:///tmp/%FF").unwrap(),
            Location::Local(PathBuf::from(OsString::from_vec(b"/tmp/\xff".to_vec())))
        );
        refused("file://otherhost/tmp/m", "is not this machine");
        refused("file://", "needs an absolute path");
        refused("file:///tmp/%zz", "bad percent escape");
        refused("file:///tmp/%4", "bad percent escape");
        refused("file:///tmp/a%00b", "NUL");
        refused("file:///tmp/m?x=1", "query");
    }

    #[test]
    fn refused_urls() {
        refused("ftp://host/m", "unknown scheme \"ftp\"");
        refused("http://host/m", "unknown scheme \"http\"");
        refused("s3a://bucket/m", "unknown scheme");
        refused("s3://", "no bucket");
        refused("s3:///m", "no bucket");
        refused("gs:///m", "no bucket");
        refused("s3://AKIA:hunter2@bucket/m", "credentials cannot be given in the URL");
        refused("s3://user@bucket/m", "credentials");
        refused("s3://bucket/m?versionId=3", "query");
        refused("s3://bucket/m#frag", "fragment");
        refused("s3://bucket//m", "empty segment");
        refused("s3://bucket/a//m", "empty segment");
        refused("s3://bucket/m//", "empty segment");
        refused("s3://bucket/./m", "\".\" segment");
        refused("s3://bucket/a/../m", "\"..\" segment");
        refused("s3://bucket/..", "\"..\" segment");
        refused("s3://localhost:9000/bucket/m", "not a bucket name");
    }

    #[test]
    fn refused_credentials_are_not_shown() {
        let err = Location::parse("s3://AKIA:hunter2@bucket/m").unwrap_err();
        assert!(err.to_string().contains("s3://<redacted>@bucket/m"), "{err}");
    }

    /// `text` is refused for its credentials, and no part of `secrets` is in the error, shown or
    /// debugged, nor in its location field; the location shown is `shown`.
    fn credentials_hidden(text: &str, secrets: &[&str], shown: &str) {
        let err = Location::parse(text).unwrap_err();
        let (display, debug) = (format!("{err}"), format!("{err:?}"));
        let Error::InvalidLocation { location, reason } = &err else { panic!("{text}: {err:?}") };
        assert_eq!(location, shown, "{text}");
        assert!(reason.contains("credentials cannot be given in the URL"), "{text}: {reason}");
        for secret in secrets {
            for out in [&display, &debug, location, reason] {
                assert!(!out.contains(secret), "{text}: {secret:?} in {out}");
            }
        }
        assert_eq!(redacted(text), shown, "{text}");
    }

    #[test]
    fn credentials_are_refused_and_hidden_whatever_the_secret_holds() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        // An AWS secret key with `/`: the text before the first `/` ends inside the secret.
        credentials_hidden(
            "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bucket/p",
            &[key, "wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY"],
            "s3://<redacted>@bucket/p",
        );
        credentials_hidden(
            "s3://AKIAIOSFODNN7EXAMPLE:plainsecret@bucket/p",
            &[key, "plainsecret"],
            "s3://<redacted>@bucket/p",
        );
        credentials_hidden("s3://AKIAIOSFODNN7EXAMPLE@bucket", &[key], "s3://<redacted>@bucket");
        // `@` in the secret, several `@`: everything up to the last one is blanked.
        credentials_hidden("s3://AKIA:pa@ss@bucket/p", &["AKIA", "pa@ss", "pa", "ss@"], "s3://<redacted>@bucket/p");
        credentials_hidden("gs://u@s:x@y/z@w@bucket/a/b", &["u@s", "x@y", "z@w", "/z"], "gs://<redacted>@bucket/a/b");
        // Characters that other rules look at (`?`, `#`, `//`, `..`, `:`) inside the secret.
        credentials_hidden(
            "s3://AKIA:se?cr#et//../x:y@bucket/p",
            &["AKIA", "se?cr", "et//", "x:y"],
            "s3://<redacted>@bucket/p",
        );
        credentials_hidden("s3://AKIA:wJal/rXUt@", &["AKIA", "wJal", "rXUt"], "s3://<redacted>@");
        // Whatever the scheme: unknown, file:// with a host, a known one without `//`.
        credentials_hidden("https://usr1:pa/ss@host/m", &["usr1", "pa/ss"], "https://<redacted>@host/m");
        credentials_hidden("file://usr1:pa/ss@host/m", &["usr1", "pa/ss"], "file://<redacted>@host/m");
        let err = Location::parse("s3:/AKIA:wJal/rXUt@bucket/p").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidLocation { location, .. } if location == "s3:<redacted>@bucket/p"),
            "{err:?}"
        );
        for secret in ["AKIA", "wJal", "rXUt"] {
            assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
        }
    }

    #[test]
    fn an_at_sign_in_a_file_path_is_not_a_credential() {
        assert_eq!(Location::parse("file:///tmp/a@b").unwrap(), Location::Local("/tmp/a@b".into()));
        assert_eq!(redacted("file:///tmp/a@b%zz"), "file:///tmp/a@b%zz");
        refused("file:///tmp/a@b%zz", "file:///tmp/a@b%zz");
        // In an object prefix an `@` is part of the key (a bucket never holds `@` or `:`).
        let at = Location::parse("s3://bucket/m@v2").unwrap();
        assert_eq!(at.to_string(), "s3://bucket/m@v2");
        assert_eq!(redacted("s3://bucket/m@v2"), "s3://bucket/m@v2");
    }
}
