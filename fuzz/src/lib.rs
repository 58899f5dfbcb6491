//! Shared harness of the plums-model fuzz targets: a sandbox holding a model root and, next to
//! it, an "outside" folder whose every access is watched with inotify, and the decoder that
//! turns fuzzer bytes into a small model tree (files, folders, symbolic links, FIFOs).
//!
//! # Input format of the tree targets
//!
//! ```text
//! <metadata.yaml bytes> ( 0x00 <op> <path bytes> [ 0x01 <payload bytes> ] )*
//! ```
//!
//! The text before the first NUL byte is written as `metadata.yaml`. Each record after it is
//! one operation on a path relative to the model root (`/`-separated; empty, `.` and `..`
//! components are dropped, so the harness itself never writes outside the root):
//!
//! | op (mod 6) | effect                                                                |
//! |-----------:|-----------------------------------------------------------------------|
//! | 2          | write a file with the payload as content                              |
//! | 3          | create a folder (and its parents)                                     |
//! | 4          | symbolic link to the payload (`@OUT` and `@ROOT` expand to the absolute paths of the outside folder and of the root) |
//! | 5          | FIFO                                                                  |
//! | 0          | remove                                                                |
//! | 1          | sparse file of 64 MiB + 1 byte (over the YAML size limit)             |
//!
//! (The constants in [`op`] are 2 to 7, so that no operation byte is the record separator.)
//!
//! `examples/make_seeds.rs` encodes real models saved by the library in this format.
#![deny(missing_docs)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::inotify;

/// Operation codes of the tree format.
pub mod op {
    /// Write a file.
    pub const FILE: u8 = 2;
    /// Create a folder.
    pub const DIR: u8 = 3;
    /// Create a symbolic link.
    pub const LINK: u8 = 4;
    /// Create a FIFO.
    pub const FIFO: u8 = 5;
    /// Remove.
    pub const REMOVE: u8 = 6;
    /// A sparse file over the YAML size limit.
    pub const HUGE: u8 = 7;

    /// The operation of any byte.
    pub fn decode(code: u8) -> u8 {
        match code % 6 {
            0 => REMOVE,
            1 => HUGE,
            n => n,
        }
    }
}

/// A fuzzing sandbox: `<base>/model` (rebuilt for every input) and `<base>/outside` (watched).
pub struct Sandbox {
    /// The folder holding everything.
    pub base: PathBuf,
    /// The model root.
    pub root: PathBuf,
    /// The folder next to the root that no operation may read, write, list or delete.
    pub outside: PathBuf,
    inotify: OwnedFd,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A new sandbox in the temporary folder, with the outside folder populated and watched.
    pub fn new() -> Sandbox {
        // libFuzzer exits without dropping statics: remove the sandboxes of dead processes.
        if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix("plums-fuzz-")).and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let base = std::env::temp_dir().join(format!("plums-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let base = base.canonicalize().unwrap();
        let outside = base.join("outside");
        fs::create_dir_all(outside.join("dir/checkpoints")).unwrap();
        fs::create_dir_all(outside.join("dir/initialisation")).unwrap();
        fs::write(outside.join("secret"), b"secret: outside the model root\n").unwrap();
        fs::write(outside.join("dir/metadata.yaml"), b"format: {version: 1.0.0}\n").unwrap();
        fs::write(outside.join("dir/build_parameters.yaml"), b"outside: true\n").unwrap();
        fs::write(outside.join("dir/config.py"), b"outside = True\n").unwrap();
        fs::write(outside.join("dir/checkpoints/1.h5"), b"outside checkpoint").unwrap();
        fs::write(outside.join("dir/initialisation/w.h5"), b"outside weights").unwrap();
        mkfifo(&outside.join("fifo"));
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
        for dir in ["", "dir", "dir/checkpoints", "dir/initialisation"] {
            inotify::add_watch(&inotify, outside.join(dir), inotify::WatchFlags::ALL_EVENTS).unwrap();
        }
        let sandbox = Sandbox { root: base.join("model"), base, outside, inotify };
        sandbox.assert_outside_untouched("setting up the sandbox");
        sandbox
    }

    /// Every inotify event on the outside folder since the last call (name and event mask).
    pub fn outside_events(&self) -> Vec<String> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut out = Vec::new();
        while let Ok(event) = reader.next() {
            let name = event.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(format!("{name:?} {:?}", event.events()));
        }
        out
    }

    /// Panic if anything read, listed, opened, wrote or deleted in the outside folder.
    pub fn assert_outside_untouched(&self, during: &str) {
        let events = self.outside_events();
        assert!(events.is_empty(), "{during} touched files outside the model root: {events:?}");
    }

    /// Remove the model root and leftovers of saves next to it.
    pub fn clear(&self) {
        let _ = fs::remove_dir_all(&self.root);
        if let Ok(entries) = fs::read_dir(&self.base) {
            for e in entries.flatten() {
                if e.file_name().as_bytes().starts_with(b".model.pmf-save-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Rebuild the model root from fuzzer bytes (see the crate documentation).
    pub fn build(&self, data: &[u8]) {
        self.clear();
        fs::create_dir(&self.root).unwrap();
        let mut parts = data.split(|&b| b == 0);
        let metadata = parts.next().unwrap_or_default();
        fs::write(self.root.join("metadata.yaml"), metadata).unwrap();
        for record in parts.take(64) {
            let Some((&code, rest)) = record.split_first() else { continue };
            let (path, payload) = match rest.iter().position(|&b| b == 1) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let Some(rel) = sanitize(path) else { continue };
            self.apply(op::decode(code), &rel, payload);
        }
    }

    fn apply(&self, code: u8, rel: &Path, payload: &[u8]) {
        let target = self.root.join(rel);
        // Never follow a link or a file on the way: the harness must not write outside.
        let mut dir = self.root.clone();
        let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
        for comp in parents {
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return,
                Err(_) => {
                    if code == op::REMOVE || fs::create_dir(&dir).is_err() {
                        return;
                    }
                }
            }
        }
        let existing = fs::symlink_metadata(&target).ok();
        if code == op::DIR && existing.as_ref().is_some_and(|m| m.is_dir()) {
            return;
        }
        if let Some(m) = existing {
            let removed = if m.is_dir() { fs::remove_dir_all(&target) } else { fs::remove_file(&target) };
            if removed.is_err() {
                return;
            }
        }
        match code {
            op::FILE => {
                if let Ok(mut f) = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                {
                    let _ = f.write_all(payload);
                }
            }
            op::DIR => {
                let _ = fs::create_dir(&target);
            }
            op::LINK => {
                let text = payload_text(payload, &self.outside, &self.root);
                let _ = std::os::unix::fs::symlink(OsStr::from_bytes(&text), &target);
            }
            op::FIFO => mkfifo(&target),
            op::HUGE => {
                if let Ok(f) = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                {
                    let _ = f.set_len(64 * 1024 * 1024 + 1);
                }
            }
            _ => {}
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// A relative path with only normal components (at most 8, each at most 64 bytes), or `None`.
pub fn sanitize(bytes: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in bytes.split(|&b| b == b'/') {
        let name = OsStr::from_bytes(part);
        match Path::new(name).components().next() {
            Some(Component::Normal(_)) if part.len() <= 64 => out.push(name),
            _ => {}
        }
    }
    (out.components().count() > 0 && out.components().count() <= 8).then_some(out)
}

fn payload_text(payload: &[u8], outside: &Path, root: &Path) -> Vec<u8> {
    let mut text = payload.to_vec();
    for (key, path) in [(&b"@OUT"[..], outside), (&b"@ROOT"[..], root)] {
        if let Some(i) = text.windows(key.len()).position(|w| w == key) {
            let mut expanded = text[..i].to_vec();
            expanded.extend_from_slice(path.as_os_str().as_bytes());
            expanded.extend_from_slice(&text[i + key.len()..]);
            text = expanded;
        }
    }
    text.truncate(4000);
    if text.is_empty() {
        text.push(b'.');
    }
    text
}

/// Create a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let _ = rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    );
}

/// Encode one record of the tree format.
pub fn record(out: &mut Vec<u8>, code: u8, path: &[u8], payload: Option<&[u8]>) {
    out.push(0);
    out.push(code);
    out.extend_from_slice(path);
    if let Some(p) = payload {
        out.push(1);
        out.extend_from_slice(p);
    }
}

/// One entry of a snapshot: relative path, and what is there (type and content or link target).
pub type SnapshotEntry = (PathBuf, String);

/// Everything under `root` (links not followed, `.pmf.lock` left out), sorted.
pub fn snapshot(root: &Path) -> Vec<SnapshotEntry> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".pmf.lock") {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            let what = if ft.is_symlink() {
                format!("link {:?}", fs::read_link(&path).unwrap_or_default())
            } else if ft.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if ft.is_file() {
                let len = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
                if len > 1 << 20 {
                    format!("file of {len} bytes")
                } else {
                    format!("file {}", plums_model::Md5::of_bytes(&fs::read(&path).unwrap_or_default()))
                }
            } else {
                "special".to_owned()
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}
