//! MD5 checksums: the [`Md5`] digest type, hashing files (alone or while copying them), and
//! the [`Progress`] observer of long hashing runs (strict validation).
//!
//! Every checksum in the crate goes through this module's one `Hasher`, so the implementation
//! can be swapped in one place. With the default `openssl` feature it is OpenSSL's MD5 (the
//! fastest measured here: docs/PERFORMANCE.md); without that feature, or when OpenSSL refuses
//! MD5 (a FIPS-mode system), the `md-5` crate with its assembly back end. Files are read in
//! 1 MiB chunks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use md5::Digest;

use crate::digest::Md5;
use crate::error::{Error, Result};

/// Size of one read when hashing or copying.
pub(crate) const CHUNK: usize = 1 << 20;

impl Md5 {
    /// The digest of a byte string.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::for_size(bytes.len() as u64);
        match hasher.update(bytes).and_then(|()| hasher.finish()) {
            Ok(digest) => digest,
            // OpenSSL failed on an in-memory buffer: compute the same digest with `md-5`.
            Err(_) => Md5(md5::Md5::digest(bytes).into()),
        }
    }
}

/// Open a regular file for reading, refusing anything else (a FIFO would block forever).
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "cannot read file", e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile { path: path.to_path_buf(), what: "file to read" });
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| Error::io(path, "cannot open file", e))
}

/// An observer of the bytes a long operation hashes: strict validation of a local folder, and
/// the downloads (hashed while they stream) of a strict validation or load of a remote model.
/// Set it with [`crate::ValidateOptions::progress`].
///
/// [`Progress::start`] comes first, with the sum of the sizes of the files to hash (from the
/// walk of the folder or the listing of the prefix; not at all when there is nothing to hash,
/// as in a validation that is not strict), then [`Progress::advance`] once per chunk
/// hashed (1 MiB from disk; what the store sends for a download; a whole file at once when the
/// cache already holds it verified), from several threads at once. When every file reads as
/// listed the advances add up to the total; a file that shrank, grew or could not be read makes
/// them fall short or go over. `start` comes again if the folder is read again (it was replaced
/// by a save meanwhile): each call begins a new count. Both must be cheap (an atomic add): they
/// run on the hashing threads. Without an observer nothing is counted.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use plums_model::{Progress, ValidateOptions};
///
/// #[derive(Default)]
/// struct Bytes { total: AtomicU64, done: AtomicU64 }
/// impl Progress for Bytes {
///     fn start(&self, total_bytes: u64) {
///         self.done.store(0, Ordering::Relaxed);
///         self.total.store(total_bytes, Ordering::Relaxed);
///     }
///     fn advance(&self, bytes: u64) {
///         self.done.fetch_add(bytes, Ordering::Relaxed);
///     }
/// }
/// let bytes = Arc::new(Bytes::default());
/// let options = ValidateOptions::new().strict(true).progress(bytes.clone());
/// assert!(options.progress.is_some());
/// ```
pub trait Progress: Send + Sync {
    /// Hashing begins: `total_bytes` is the sum of the sizes of the files to hash.
    fn start(&self, total_bytes: u64);
    /// `bytes` more bytes were hashed.
    fn advance(&self, bytes: u64);
}

/// The MD5 checksum and size of a file's content.
pub fn md5_file(path: impl AsRef<Path>) -> Result<Md5> {
    Ok(md5_file_sized(path.as_ref())?.0)
}

/// The MD5 checksum of a file and the number of bytes hashed.
pub(crate) fn md5_file_sized(path: &Path) -> Result<(Md5, u64)> {
    hash_file(path, None, None)
}

/// [`md5_file_sized`], telling `progress` of every chunk hashed.
pub(crate) fn md5_file_observed(path: &Path, progress: Option<&dyn Progress>) -> Result<(Md5, u64)> {
    hash_file(path, None, progress)
}

/// Copy `src` into the already-open `dst`, hashing the bytes in the same pass.
///
/// Returns the checksum and the number of bytes copied. `dst` is not synced.
pub(crate) fn copy_hashing(src: &Path, dst: &mut File, dst_path: &Path) -> Result<(Md5, u64)> {
    hash_file(src, Some((dst, dst_path)), None)
}

/// Read `path` once in [`CHUNK`]-sized reads, hashing every byte, writing it to `copy` and
/// telling `progress` of each chunk.
fn hash_file(path: &Path, mut copy: Option<(&mut File, &Path)>, progress: Option<&dyn Progress>) -> Result<(Md5, u64)> {
    let mut file = open_regular(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut hasher = Hasher::for_size(size);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, "cannot read file", e)),
        };
        hasher.update(&buf[..n]).map_err(|e| Error::io(path, "cannot compute MD5", e))?;
        if let Some((dst, dst_path)) = copy.as_mut() {
            dst.write_all(&buf[..n]).map_err(|e| Error::io(dst_path, "cannot write file", e))?;
        }
        total += n as u64;
        if let Some(p) = progress {
            p.advance(n as u64);
        }
    }
    Ok((hasher.finish().map_err(|e| Error::io(path, "cannot compute MD5", e))?, total))
}

/// An MD5 computed over bytes that arrive in pieces (a download), with the fastest
/// implementation for about `size` bytes.
pub(crate) struct StreamHasher(Hasher);

impl StreamHasher {
    pub(crate) fn new(size: u64) -> Self {
        StreamHasher(Hasher::for_size(size))
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.update(data)
    }

    pub(crate) fn finish(self) -> io::Result<Md5> {
        self.0.finish()
    }
}

/// An MD5 computation in progress: OpenSSL's when the `openssl` feature is on and OpenSSL
/// offers MD5, else the `md-5` crate's. Both give the same digests (tested below).
enum Hasher {
    #[cfg(feature = "openssl")]
    OpenSsl(openssl::hash::Hasher),
    Rust(md5::Md5),
}

/// Below this size `md-5` is as fast as OpenSSL, and a process that hashes nothing bigger
/// (metadata digests, `pmf validate --quick`) never pays for OpenSSL's initialisation (it reads
/// the system's `openssl.cnf`, about 2 ms).
#[cfg(feature = "openssl")]
const OPENSSL_FROM: u64 = 1 << 20;

impl Hasher {
    /// The fastest hasher for about `size` bytes.
    fn for_size(size: u64) -> Hasher {
        #[cfg(feature = "openssl")]
        if size >= OPENSSL_FROM {
            if let Ok(h) = openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5()) {
                return Hasher::OpenSsl(h);
            }
        }
        #[cfg(not(feature = "openssl"))]
        let _ = size;
        Hasher::Rust(md5::Md5::new())
    }

    /// The `md-5` implementation, whatever the features (to compare the two in tests).
    #[cfg(test)]
    fn rust() -> Hasher {
        Hasher::Rust(md5::Md5::new())
    }

    fn update(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            #[cfg(feature = "openssl")]
            Hasher::OpenSsl(h) => h.update(data).map_err(io::Error::other),
            Hasher::Rust(h) => {
                h.update(data);
                Ok(())
            }
        }
    }

    fn finish(self) -> io::Result<Md5> {
        match self {
            #[cfg(feature = "openssl")]
            Hasher::OpenSsl(mut h) => {
                let digest = h.finish().map_err(io::Error::other)?;
                let bytes = <[u8; 16]>::try_from(&digest[..])
                    .map_err(|_| io::Error::other(format!("OpenSSL gave a {}-byte MD5 digest", digest.len())))?;
                Ok(Md5(bytes))
            }
            Hasher::Rust(h) => Ok(Md5(h.finalize().into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_back_end_gives_the_reference_digests() {
        // RFC 1321, appendix A.5, plus lengths around the 64-byte block and the 1 MiB chunk.
        let rfc = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (text, hex) in rfc {
            assert_eq!(Md5::of_bytes(text.as_bytes()).to_string(), hex, "{text:?}");
        }
        let data: Vec<u8> = (0..(CHUNK + 1000) as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 127, 128, 4095, CHUNK - 1, CHUNK, CHUNK + 1000] {
            let (mut a, mut b) = (Hasher::for_size(u64::MAX), Hasher::rust());
            // Several updates of uneven sizes, as a file read gives them.
            for part in data[..len].chunks(1 + len / 3) {
                a.update(part).unwrap();
                b.update(part).unwrap();
            }
            assert_eq!(a.finish().unwrap(), b.finish().unwrap(), "length {len}");
        }
    }

    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_is_used_when_it_offers_md5() {
        assert!(matches!(Hasher::for_size(OPENSSL_FROM), Hasher::OpenSsl(_)));
        assert!(matches!(Hasher::for_size(OPENSSL_FROM - 1), Hasher::Rust(_)));
    }

    #[test]
    fn parses_and_prints_lowercase_hex() {
        let text = "9e107d9d372bb6826bd81d3542a419d6";
        let d: Md5 = text.parse().unwrap();
        assert_eq!(d.to_string(), text);
        assert_eq!(d, Md5::of_bytes(b"The quick brown fox jumps over the lazy dog"));
        assert_eq!(d.prefix(8), "9e107d9d");
    }

    #[test]
    fn rejects_non_md5_text() {
        for bad in [
            "",
            "abc",
            "9E107D9D372BB6826BD81D3542A419D6",
            "9e107d9d372bb6826bd81d3542a419d",
            "9e107d9d372bb6826bd81d3542a419d6a",
            "ge107d9d372bb6826bd81d3542a419d6",
        ] {
            let err = bad.parse::<Md5>().unwrap_err();
            assert!(err.to_string().contains("expected 32 lowercase hexadecimal digits"), "{bad}");
        }
    }

    #[test]
    fn hashes_files_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        std::fs::write(&src, vec![7u8; 3 * CHUNK + 5]).unwrap();
        let (d, n) = md5_file_sized(&src).unwrap();
        assert_eq!(n, 3 * CHUNK as u64 + 5);
        assert_eq!(d, Md5::of_bytes(&vec![7u8; 3 * CHUNK + 5]));
        let dst_path = dir.path().join("b");
        let mut dst = File::create(&dst_path).unwrap();
        let (d2, n2) = copy_hashing(&src, &mut dst, &dst_path).unwrap();
        assert_eq!((d2, n2), (d, n));
        assert_eq!(std::fs::read(&dst_path).unwrap(), std::fs::read(&src).unwrap());
    }

    #[test]
    fn refuses_directories_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = md5_file(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAFile { .. }), "{err}");
        let err = md5_file(dir.path().join("nope")).unwrap_err();
        assert!(matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound), "{err}");
    }
}
