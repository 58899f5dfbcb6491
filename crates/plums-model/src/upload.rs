//! Uploads of local files to an object store, each file read once: hashed while it is sent,
//! in one request up to [`MULTIPART_THRESHOLD`], as a multipart upload above it (a few parts in
//! flight: memory does not grow with the file's size). A file whose content does not have the
//! expected MD5 never becomes an object: the single request is not sent, the multipart upload
//! is aborted before it is completed.
//!
//! Used by writers only (saves to object storage).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

use object_store::{ObjectStoreExt, WriteMultipart};

use crate::digest::Md5;
use crate::error::{Error, Result};
use crate::hash::{open_regular, Progress, StreamHasher};
use crate::storage::{block_on, Remote, WriteMode};

/// Files up to this size are sent in one request; bigger ones as multipart uploads.
pub(crate) const MULTIPART_THRESHOLD: u64 = 16 << 20;

/// The size of a part of a multipart upload (S3 takes at most 10,000 parts: files over
/// 80 GiB get bigger parts).
const PART_SIZE: usize = 8 << 20;

/// Parts uploaded at once: peak memory of one upload is about `(IN_FLIGHT + 1) × PART_SIZE`.
const IN_FLIGHT: usize = 4;

/// What an upload left in the store.
#[derive(Debug, Clone)]
pub(crate) struct Uploaded {
    /// The object's ETag.
    pub etag: Option<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// Upload the local file `src` as the object `rel` of `remote`, verifying that its content
/// has the MD5 `expected` while it is read (an [`Error::ChecksumMismatch`] naming `src`, and
/// no object written, if not).
pub(crate) fn upload_file(
    remote: &Remote,
    rel: &str,
    src: &Path,
    expected: Md5,
    progress: Option<&dyn Progress>,
) -> Result<Uploaded> {
    let mut file = open_regular(src)?;
    let size = file.metadata().map_err(|e| Error::io(src, "cannot read file", e))?.len();
    let mismatch = |found: Md5| Error::ChecksumMismatch { path: src.to_path_buf(), expected, found };
    if size <= MULTIPART_THRESHOLD {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).map_err(|e| Error::io(src, "cannot read file", e))?;
        let found = Md5::of_bytes(&bytes);
        if found != expected {
            return Err(mismatch(found));
        }
        let size = bytes.len() as u64;
        let etag = remote.put(rel, bytes, WriteMode::Overwrite)?;
        if let Some(p) = progress {
            p.advance(size);
        }
        return Ok(Uploaded { etag, size });
    }
    let part = PART_SIZE.max(usize::try_from(size / 9_000).unwrap_or(usize::MAX));
    let path = remote.path(rel)?;
    let store = remote.client().clone();
    let counters = remote.counters().clone();
    let outcome = block_on(async move {
        let upload = store.put_multipart(&path).await.map_err(Failed::Store)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let mut hasher = StreamHasher::new(size);
        let mut buf = vec![0u8; part];
        let mut sent = 0u64;
        loop {
            if let Err(e) = writer.wait_for_capacity(IN_FLIGHT).await {
                return Err(Failed::Store(e));
            }
            // A blocking read on the caller's thread (this future runs in `block_on`, not on a
            // worker of the runtime): the parts already handed over keep uploading meanwhile.
            let n = match read_full(&mut file, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Failed::Read(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = hasher.update(&buf[..n]) {
                let _ = writer.abort().await;
                return Err(Failed::Read(e));
            }
            writer.write(&buf[..n]);
            sent += n as u64;
            counters.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(p) = progress {
                p.advance(n as u64);
            }
        }
        let found = match hasher.finish() {
            Ok(found) => found,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(Failed::Read(e));
            }
        };
        if found != expected {
            let _ = writer.abort().await;
            return Err(Failed::Mismatch(found));
        }
        let done = writer.finish().await.map_err(Failed::Store)?;
        Ok((done.e_tag, sent))
    });
    match outcome {
        Ok((etag, size)) => {
            remote.count_put();
            Ok(Uploaded { etag, size })
        }
        Err(Failed::Store(e)) => Err(remote.error(rel, "cannot upload", e)),
        Err(Failed::Read(e)) => Err(Error::io(src, "cannot read file", e)),
        Err(Failed::Mismatch(found)) => Err(mismatch(found)),
    }
}

enum Failed {
    Store(object_store::Error),
    Read(std::io::Error),
    Mismatch(Md5),
}

/// Read until `buf` is full or the file ends; the number of bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
