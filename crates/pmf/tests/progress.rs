//! Progress feedback is for terminals only: a bar on a terminal's stderr once an operation has
//! lasted longer than the delay before it appears (1 s), nothing on a pipe nor with `--json`.
//!
//! The terminal is a pseudo-terminal opened here (`posix_openpt`, glibc): `pmf`'s stderr is its
//! slave side, and the test reads what a terminal would show from the master side. Its stdout
//! stays a pipe, so that `--json` output is read apart from the feedback.
//!
//! `pmf cp` to S3 needs the test server (see `common/s3.rs`): it goes through a throttled TCP
//! proxy to it, so that a copy of a few MiB lasts seconds on any machine.

mod common;

use std::ffi::{c_char, c_int, c_ulong, CStr};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::s3::{s3_or_skip, S3Test};
use common::{run, s, Scratch};

#[test]
fn a_long_strict_validation_writes_nothing_to_a_piped_stderr() {
    let t = Scratch::new();
    let m = t.trained_model("m");
    // A sparse GiB (no disk written, read back as zeros): hashing it outlasts the 1 s delay on
    // most machines. Its checksum differs from the recorded one, which proves it was hashed.
    let big = File::options().write(true).truncate(true).open(m.join("data/checkpoints/e2.pt")).unwrap();
    big.set_len(1 << 30).unwrap();
    drop(big);
    let began = Instant::now();
    let (stdout, stderr) = run(&["validate", s(&m)], 1);
    assert!(stdout.contains("checkpoint 2 checksum mismatch"), "{stdout}");
    assert!(stderr.is_empty(), "nothing on a piped stderr (after {:?}): {stderr:?}", began.elapsed());
}

#[test]
fn a_copy_to_s3_shows_a_bar_on_a_terminal_and_nothing_with_json_or_on_a_pipe() {
    let Some(s3) = s3_or_skip("cli_cp_progress") else { return };
    let t = Scratch::new();
    let m = big_model(&t);
    // 1.5 MiB/s: each copy lasts close to 3 s, well past the delay before the bar.
    let proxy = throttled_proxy(&s3, 3 << 19);
    let cache = t.path("cache");
    let env = [("PMF_CACHE_DIR", s(&cache))];

    let url = s3.url("on-terminal");
    let out = on_terminal(&with(&["cp", s(&m), &url], &proxy), &env);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("copied model m-id (2 checkpoints); sent 5 objects"), "{out:?}");
    assert_bar(&out, &format!("copying to {url}"));
    assert!(out.terminal.contains("4.00 MiB"), "the total is the bytes to send: {out:?}");

    let url = s3.url("with-json");
    let out = on_terminal(&with(&["cp", "--json", s(&m), &url], &proxy), &env);
    assert_eq!(out.code, Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["sent"]["objects"], 5, "{json}");
    assert!(out.took > Duration::from_millis(1500), "the copy was too quick to prove anything: {out:?}");
    assert!(out.terminal.is_empty(), "nothing on the terminal with --json: {out:?}");

    let url = s3.url("on-a-pipe");
    let began = Instant::now();
    let (stdout, stderr) = common::pmf()
        .args(with(&["cp", s(&m), &url], &proxy))
        .env("PMF_CACHE_DIR", &cache)
        .output()
        .map(|o| (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .expect("pmf runs");
    let took = began.elapsed();
    assert!(stdout.starts_with("copied model m-id"), "{stdout}\n{stderr}");
    assert!(took > Duration::from_millis(1500), "the copy was too quick to prove anything: {took:?}");
    assert!(stderr.is_empty(), "nothing on a piped stderr (after {took:?}): {stderr:?}");
    // Each copy is whole: the three prefixes validate.
    for rel in ["on-terminal", "with-json", "on-a-pipe"] {
        let url = s3.url(rel);
        let args = with(&["validate", "--quick", &url], &proxy);
        let out = common::pmf().args(&args).env("PMF_CACHE_DIR", &cache).output().expect("pmf runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn a_strict_validation_and_a_copy_from_s3_show_a_bar_on_a_terminal_and_nothing_with_json() {
    let Some(s3) = s3_or_skip("cli_remote_progress") else { return };
    let t = Scratch::new();
    let m = big_model(&t);
    let url = s3.url("m");
    let direct = direct_options(&s3);
    run(&with(&["cp", s(&m), &url], &direct), 0);
    let proxy = throttled_proxy(&s3, 3 << 19);
    // A fresh cache for each run: a file the cache verified is not downloaded again.
    let cache = |name: &str| t.path(name).to_str().expect("UTF-8").to_owned();

    let c1 = cache("cache-1");
    let out = on_terminal(&with(&["validate", &url], &proxy), &[("PMF_CACHE_DIR", &c1)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), format!("valid   {url}"));
    assert_bar(&out, &format!("validating (verifying checksums) {url}"));
    assert!(out.terminal.contains("4.00 MiB"), "the total is the bytes to verify: {out:?}");

    let c2 = cache("cache-2");
    let out = on_terminal(&with(&["validate", "--json", &url], &proxy), &[("PMF_CACHE_DIR", &c2)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\"valid\": true"), "{out:?}");
    assert!(out.took > Duration::from_millis(1500), "the validation was too quick to prove anything: {out:?}");
    assert!(out.terminal.is_empty(), "nothing on the terminal with --json: {out:?}");

    let c3 = cache("cache-3");
    let copy = t.path("copy");
    let out = on_terminal(&with(&["cp", &url, s(&copy)], &proxy), &[("PMF_CACHE_DIR", &c3)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_bar(&out, &format!("verifying {url}"));
    run(&["validate", s(&copy)], 0);
}

// ------------------------------------------------------------ helpers

/// A model with two checkpoints of 2 MiB (pseudo-random bytes: nothing compresses them on the
/// way), at epochs 0 and 1 of a pending training.
fn big_model(t: &Scratch) -> PathBuf {
    let m = t.new_model("m", &[]);
    for (i, name) in ["big-1.pt", "big-2.pt"].into_iter().enumerate() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
        let bytes: Vec<u8> = (0..2 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(t.path(name), bytes).unwrap();
        run(&["checkpoint", "add", s(&m), s(&t.path(name)), "--epoch", &i.to_string()], 0);
    }
    m
}

/// The `--storage-option`s reaching the test server directly.
fn direct_options(s3: &S3Test) -> Vec<String> {
    s3.server
        .storage_options()
        .into_iter()
        .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
        .collect()
}

/// Panics unless `out.terminal` shows the bar of `message`: the message, bytes of a total, the
/// rate and the time left, then the line cleared when the operation ended.
fn assert_bar(out: &OnTerminal, message: &str) {
    let shown = &out.terminal;
    assert!(shown.contains(message), "no {message:?} on the terminal: {out:?}");
    assert!(shown.contains(" ETA "), "no time left on the terminal: {out:?}");
    assert!(shown.contains("/s"), "no rate on the terminal: {out:?}");
    assert!(shown.contains('['), "no bar on the terminal: {out:?}");
    // indicatif clears its line when done (the erase-line sequence): the last thing written.
    let last = shown.trim_end_matches(['\r', '\n']);
    assert!(last.ends_with("\x1b[2K") || last.ends_with("\x1b[K"), "the bar was not cleared: {:?}", tail(shown));
}

fn tail(text: &str) -> &str {
    let start = text.char_indices().rev().nth(200).map_or(0, |(i, _)| i);
    &text[start..]
}

/// What `pmf` printed with its stderr on a terminal.
struct OnTerminal {
    code: Option<i32>,
    stdout: String,
    /// Everything written to the terminal (stderr), escape sequences included.
    terminal: String,
    took: Duration,
}

impl std::fmt::Debug for OnTerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}\n--- terminal (last 200 characters)\n{:?}",
            self.code,
            self.took,
            self.stdout,
            tail(&self.terminal)
        )
    }
}

extern "C" {
    fn posix_openpt(flags: c_int) -> c_int;
    fn grantpt(fd: c_int) -> c_int;
    fn unlockpt(fd: c_int) -> c_int;
    fn ptsname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
}

/// `struct winsize` of `<sys/ioctl.h>`.
#[repr(C)]
struct Winsize {
    rows: u16,
    cols: u16,
    x_pixels: u16,
    y_pixels: u16,
}

/// `TIOCSWINSZ` on Linux (x86, Arm, RISC-V).
const TIOCSWINSZ: c_ulong = 0x5414;

/// A new pseudo-terminal of 200 columns: its master side, and the path of its slave side.
fn open_pty() -> (File, PathBuf) {
    let flags = (rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC).bits() as c_int;
    // SAFETY: plain libc calls on a descriptor this function owns; `name` outlives the call
    // that fills it and is NUL-terminated by it.
    unsafe {
        let fd = posix_openpt(flags);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = File::from_raw_fd(fd);
        assert_eq!(grantpt(fd), 0, "grantpt: {}", std::io::Error::last_os_error());
        assert_eq!(unlockpt(fd), 0, "unlockpt: {}", std::io::Error::last_os_error());
        let mut name = [0 as c_char; 128];
        assert_eq!(ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
        let size = Winsize { rows: 50, cols: 200, x_pixels: 0, y_pixels: 0 };
        assert_eq!(ioctl(fd, TIOCSWINSZ, &size as *const Winsize), 0, "TIOCSWINSZ");
        let slave = PathBuf::from(CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned());
        (master, slave)
    }
}

/// Run `pmf args...` (with the extra environment `env`) with its stderr on a new terminal.
fn on_terminal(args: &[&str], env: &[(&str, &str)]) -> OnTerminal {
    let (mut master, slave_path) = open_pty();
    let slave = File::options().read(true).write(true).open(&slave_path).expect("open the terminal");
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buf = [0u8; 4096];
        // Once every slave descriptor is closed, a read fails (EIO): the end.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        shown
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pmf"));
    for name in ["CLICOLOR_FORCE", "FORCE_COLOR", "NO_COLOR"] {
        cmd.env_remove(name);
    }
    cmd.env("TERM", "xterm-256color").envs(env.iter().copied()).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(slave));
    let began = Instant::now();
    let child = cmd.spawn().expect("pmf runs");
    // The parent's copy of the slave must close too, for the reader to see the end.
    drop(cmd);
    let out = child.wait_with_output().expect("pmf ends");
    let took = began.elapsed();
    let shown = reader.join().expect("reader");
    OnTerminal {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        terminal: String::from_utf8_lossy(&shown).into_owned(),
        took,
    }
}

/// `args` then `--storage-option`s reaching the test server through `proxy`.
fn with<'a>(args: &[&'a str], proxy: &'a [String]) -> Vec<&'a str> {
    args.iter().copied().chain(proxy.iter().map(String::as_str)).collect()
}

/// Start a TCP proxy on 127.0.0.1 to the test server that forwards `rate` bytes per second in
/// all (requests and answers, every connection together); the `--storage-option`s that go
/// through it. It runs until the test process ends.
fn throttled_proxy(s3: &S3Test, rate: u64) -> Vec<String> {
    let upstream: SocketAddr = s3
        .server
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the test server's endpoint is http://IP:PORT");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let local = listener.local_addr().expect("proxy address");
    let budget = Arc::new(Budget { free_at: Mutex::new(Instant::now()), rate });
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(upstream) else { continue };
            let (client2, server2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => continue,
            };
            let budget = budget.clone();
            let budget2 = budget.clone();
            std::thread::spawn(move || pipe(client, server, &budget));
            std::thread::spawn(move || pipe(server2, client2, &budget2));
        }
    });
    s3.server
        .storage_options()
        .into_iter()
        .map(|(k, v)| if k == "endpoint" { (k, format!("http://{local}")) } else { (k, v) })
        .flat_map(|(k, v)| ["--storage-option".to_owned(), format!("{k}={v}")])
        .collect()
}

/// The rate of a proxy: when the bytes sent so far by all its connections will have been sent
/// (never before now: an idle proxy saves no credit for a burst).
struct Budget {
    free_at: Mutex<Instant>,
    rate: u64,
}

impl Budget {
    /// Wait until `n` more bytes may be sent.
    fn spend(&self, n: usize) {
        let due = {
            let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
            *free_at = (*free_at).max(Instant::now()) + Duration::from_secs_f64(n as f64 / self.rate as f64);
            *free_at
        };
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Copy `from` to `to` at `budget`'s rate until either ends, then end both ways.
fn pipe(mut from: TcpStream, mut to: TcpStream, budget: &Budget) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        budget.spend(n);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
