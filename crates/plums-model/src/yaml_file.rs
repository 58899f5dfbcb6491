//! The one reader of a model's YAML files (`metadata.yaml`, `data/build_parameters.yaml`):
//! size limit first (a file over it is never opened), then the bytes and their digest, then the
//! text (a UTF-8 byte-order mark is dropped, as PyYAML does) and its YAML value, then for
//! `metadata.yaml` the schema.
//!
//! Confinement is the caller's: the path must be one `paths` resolved inside the model root.
//! Read-only.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::Path;

use crate::digest::Md5;
use crate::error::Offence;
use crate::metadata::Metadata;
use crate::yaml::{self, Limits, Value, YamlError};

/// Why a YAML file of a model cannot be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// It cannot be examined or read (a tree offence).
    Unreadable(std::io::Error),
    /// It is not a regular file (a tree offence).
    NotAFile,
    /// It is larger than the limit: refused before it is opened (a metadata offence).
    TooLarge { size: u64, limit: usize },
    /// Its bytes are not UTF-8 text (a metadata offence).
    NotUtf8(std::str::Utf8Error),
    /// Its text is not a YAML document within the limits (a metadata offence).
    Yaml(YamlError),
    /// The object store holding it failed (not an offence: the check fails with this error).
    Store(Box<crate::error::Error>),
}

impl ReadError {
    /// The offence at `location` (the file's path in the model).
    pub(crate) fn offence(&self, location: &str) -> Offence {
        match self {
            ReadError::Unreadable(e) => Offence::tree(location, format!("cannot be read: {e}")),
            ReadError::NotAFile => Offence::tree(location, "is not a file: expected a YAML file"),
            ReadError::TooLarge { size, limit } => {
                Offence::metadata(location, format!("is {size} bytes, over the {limit}-byte limit for a YAML file"))
            }
            ReadError::NotUtf8(e) => Offence::metadata(location, format!("is not UTF-8 text ({e})")),
            ReadError::Yaml(e) => Offence::metadata(location, format!("is not valid YAML: {e}")),
            ReadError::Store(e) => Offence::tree(location, format!("cannot be read: {e}")),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Unreadable(e) => write!(f, "cannot be read: {e}"),
            ReadError::NotAFile => f.write_str("not a regular file"),
            ReadError::TooLarge { size, limit } => write!(f, "its size, {size} bytes, is over the {limit}-byte limit"),
            ReadError::NotUtf8(e) => write!(f, "not UTF-8: {e}"),
            ReadError::Yaml(e) => write!(f, "{e}"),
            ReadError::Store(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// The bytes of a YAML file of a model, read within the size limit.
pub(crate) struct YamlFile {
    bytes: Vec<u8>,
    /// The MD5 of the bytes (for `metadata.yaml`: identifies the saved state of the folder).
    pub digest: Md5,
}

impl YamlFile {
    /// Read the regular file at `path` (links followed: the caller confined it), refusing it
    /// unopened when it is larger than `limits.max_bytes`.
    pub(crate) fn read(path: &Path, limits: &Limits) -> Result<YamlFile, ReadError> {
        let limit = limits.max_bytes;
        let meta = fs::metadata(path).map_err(ReadError::Unreadable)?;
        if !meta.is_file() {
            return Err(ReadError::NotAFile);
        }
        if meta.len() > limit as u64 {
            return Err(ReadError::TooLarge { size: meta.len(), limit });
        }
        let file = open_regular(path).map_err(ReadError::Unreadable)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // Bounded even if the file grew since it was examined.
        file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(ReadError::Unreadable)?;
        if bytes.len() > limit {
            return Err(ReadError::TooLarge { size: bytes.len() as u64, limit });
        }
        let digest = Md5::of_bytes(&bytes);
        Ok(YamlFile { bytes, digest })
    }

    /// The bytes of a YAML file read elsewhere (an object store), within `limits.max_bytes`.
    pub(crate) fn from_bytes(bytes: Vec<u8>, limits: &Limits) -> Result<YamlFile, ReadError> {
        if bytes.len() > limits.max_bytes {
            return Err(ReadError::TooLarge { size: bytes.len() as u64, limit: limits.max_bytes });
        }
        let digest = Md5::of_bytes(&bytes);
        Ok(YamlFile { bytes, digest })
    }

    /// The YAML value of the text (without a leading byte-order mark).
    pub(crate) fn value(&self, limits: &Limits) -> Result<Value, ReadError> {
        let bytes = self.bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&self.bytes);
        let text = std::str::from_utf8(bytes).map_err(ReadError::NotUtf8)?;
        yaml::parse_with_limits(text, limits).map_err(ReadError::Yaml)
    }

    /// The metadata in the text, and every schema offence (located by key path in the
    /// document; an empty location is the document itself).
    pub(crate) fn metadata(&self, limits: &Limits) -> Result<(Option<Metadata>, Vec<Offence>), ReadError> {
        Ok(Metadata::from_value_lenient(&self.value(limits)?))
    }
}

/// Open `path` for reading without blocking (a FIFO swapped in after the check is not waited on).
fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The checked metadata of the `metadata.yaml` at `path` and the digest of its bytes, or why
/// there is none (one line).
pub(crate) fn read_metadata(path: &Path, limits: &Limits) -> Result<(Metadata, Md5), String> {
    let file = YamlFile::read(path, limits).map_err(|e| e.to_string())?;
    let digest = file.digest;
    parse_checked(&file, limits).map(|m| (m, digest))
}

/// The metadata of `file` when it has no offence, or the offences on one line.
pub(crate) fn parse_checked(file: &YamlFile, limits: &Limits) -> Result<Metadata, String> {
    match file.metadata(limits).map_err(|e| e.to_string())? {
        (Some(m), offences) if offences.is_empty() => Ok(m),
        (_, offences) => Err(offences.iter().map(|o| o.to_string()).collect::<Vec<_>>().join("; ")),
    }
}
