//! Feedback during long operations (hashing, downloading, copying) on stderr.
//!
//! Where the library reports the bytes it hashes ([`plums_model::Progress`], set on
//! `ValidateOptions` by `pmf validate`), a [`Meter`] counts them and the feedback is a bar: the
//! bytes done of the total, the rate and the time left. Elsewhere (no total known: reading and
//! saving in `pmf show` and the writing commands) it is a spinner with the elapsed time and, on
//! Linux, the bytes this process has read so far and the rate (from `/proc/self/io`, which
//! counts the reads of every thread, including the library's parallel hashing). Either appears
//! only when the operation lasts more than a second and stderr is a terminal (and, for the bar,
//! `--json` was not given); otherwise nothing is written.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long an operation runs before the feedback appears.
const DELAY: Duration = Duration::from_secs(1);
/// How often the feedback is redrawn.
const TICK: Duration = Duration::from_millis(120);
/// The bar, once the library has said how many bytes it will hash.
const BAR: &str = "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

/// Whether feedback may be shown: stderr is a terminal and the output is not `--json`.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// The bytes the library hashes, as it reports them (from its hashing threads: atomics only),
/// for the bar of an [`Activity`].
#[derive(Debug, Default)]
pub struct Meter {
    /// How many times hashing started (each start begins a new count).
    starts: AtomicU64,
    total: AtomicU64,
    done: AtomicU64,
}

impl Meter {
    /// (starts so far, total of the last start, bytes done since it).
    fn read(&self) -> (u64, u64, u64) {
        let starts = self.starts.load(Ordering::Acquire);
        (starts, self.total.load(Ordering::Relaxed), self.done.load(Ordering::Relaxed))
    }
}

impl plums_model::Progress for Meter {
    fn start(&self, total_bytes: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total_bytes, Ordering::Relaxed);
        self.starts.fetch_add(1, Ordering::Release);
    }

    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A running long operation; the feedback (if any) disappears when this is dropped.
pub struct Activity {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Activity {
    /// Show `message` with a spinner on stderr if the operation lasts more than a second.
    pub fn start(message: impl Into<String>) -> Activity {
        Self::spawn(message.into(), None)
    }

    /// Show `message` with a bar fed by `meter` (a spinner until the library starts it) if the
    /// operation lasts more than a second; nothing when `meter` is `None`.
    pub fn measuring(message: impl Into<String>, meter: Option<&Arc<Meter>>) -> Activity {
        match meter {
            Some(m) => Self::spawn(message.into(), Some(m.clone())),
            None => Activity { done: None, thread: None },
        }
    }

    fn spawn(message: String, meter: Option<Arc<Meter>>) -> Activity {
        if !std::io::stderr().is_terminal() {
            return Activity { done: None, thread: None };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pmf-progress".into())
            .spawn(move || draw(&message, meter.as_deref(), &rx))
            .ok();
        Activity { done: Some(tx), thread }
    }
}

/// Update the feedback every [`TICK`] until `rx` says the operation ended: hidden for the
/// first [`DELAY`], so that a short operation shows nothing, while the bar's rate estimate
/// already follows the bytes.
fn draw(message: &str, meter: Option<&Meter>, rx: &mpsc::Receiver<()>) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    let began = Instant::now();
    let first_read = bytes_read();
    // The starts that happened before this operation (the meter serves a whole command).
    let mut seen = meter.map_or(0, |m| m.read().0);
    let mut measured = false;
    let mut visible = false;
    loop {
        match meter.map(Meter::read) {
            Some((starts, total, done)) if starts != seen => {
                seen = starts;
                if !measured {
                    measured = true;
                    bar.set_style(ProgressStyle::with_template(BAR).unwrap_or_else(|_| ProgressStyle::default_bar()));
                }
                bar.set_length(total);
                bar.set_position(done);
                bar.reset_eta();
            }
            Some((_, _, done)) if measured => bar.set_position(done),
            _ => {}
        }
        if !visible && began.elapsed() >= DELAY {
            visible = true;
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        if visible && !measured {
            bar.set_message(format!("{message}{}", read_since(first_read, began)));
        }
        bar.tick();
        match rx.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    bar.finish_and_clear();
}

impl Drop for Activity {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ` (N read, R/s)`: what this process read since `first` at `began`, where known.
fn read_since(first: Option<u64>, began: Instant) -> String {
    match (first, bytes_read()) {
        (Some(a), Some(b)) if b > a => {
            let secs = began.elapsed().as_secs_f64().max(0.001);
            let n = b - a;
            format!(
                " ({} read, {}/s)",
                crate::output::human_bytes(n),
                crate::output::human_bytes((n as f64 / secs) as u64)
            )
        }
        _ => String::new(),
    }
}

/// The bytes read by this process so far (`rchar` of `/proc/self/io`), where available.
fn bytes_read() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok())
}

/// Run `f` while showing `message` with a spinner if it takes long.
pub fn during<T>(message: impl Into<String>, f: impl FnOnce() -> T) -> T {
    let _activity = Activity::start(message);
    f()
}

/// Run `f` while showing `message` with the bar `meter` feeds if it takes long (nothing when
/// `meter` is `None`).
pub fn measuring<T>(message: impl Into<String>, meter: Option<&Arc<Meter>>, f: impl FnOnce() -> T) -> T {
    let _activity = Activity::measuring(message, meter);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plums_model::Progress;

    #[test]
    fn a_short_operation_shows_nothing_and_returns_its_value() {
        assert_eq!(during("working", || 42), 42);
        let meter = Arc::new(Meter::default());
        assert_eq!(measuring("working", Some(&meter), || 7), 7);
        assert_eq!(measuring("working", None, || 8), 8);
    }

    #[test]
    fn the_meter_counts_each_start_afresh() {
        let meter = Meter::default();
        assert_eq!(meter.read(), (0, 0, 0));
        meter.start(10);
        meter.advance(4);
        meter.advance(6);
        assert_eq!(meter.read(), (1, 10, 10));
        meter.start(3);
        meter.advance(1);
        assert_eq!(meter.read(), (2, 3, 1));
    }

    #[test]
    fn json_output_never_wants_feedback() {
        assert!(!wanted(true));
    }

    #[test]
    fn the_bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR).is_ok());
    }
}
