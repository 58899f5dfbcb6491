//! Feedback during long operations (hashing, copying) on stderr.
//!
//! The library has no progress hook, so this is a spinner with the elapsed time and, on Linux,
//! the bytes this process has read so far and the rate (from `/proc/self/io`, which counts the
//! reads of every thread, including the library's parallel hashing). It appears only when the
//! operation lasts more than a second and stderr is a terminal; otherwise nothing is written.

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long an operation runs before the spinner appears.
const DELAY: Duration = Duration::from_secs(1);
/// How often the spinner is redrawn.
const TICK: Duration = Duration::from_millis(120);

/// A running long operation; the spinner (if any) disappears when this is dropped.
pub struct Activity {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Activity {
    /// Start showing `message` on stderr if the operation lasts more than a second.
    pub fn start(message: impl Into<String>) -> Activity {
        if !std::io::stderr().is_terminal() {
            return Activity { done: None, thread: None };
        }
        let message = message.into();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pmf-progress".into())
            .spawn(move || {
                if rx.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                let start = Instant::now();
                let first = bytes_read();
                loop {
                    let read = match (first, bytes_read()) {
                        (Some(a), Some(b)) if b > a => {
                            let secs = start.elapsed().as_secs_f64().max(0.001);
                            let n = b - a;
                            format!(
                                " ({} read, {}/s)",
                                crate::output::human_bytes(n),
                                crate::output::human_bytes((n as f64 / secs) as u64)
                            )
                        }
                        _ => String::new(),
                    };
                    bar.set_message(format!("{message}{read}"));
                    bar.tick();
                    match rx.recv_timeout(TICK) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                bar.finish_and_clear();
            })
            .ok();
        Activity { done: Some(tx), thread }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The bytes read by this process so far (`rchar` of `/proc/self/io`), where available.
fn bytes_read() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok())
}

/// Run `f` while showing `message` if it takes long.
pub fn during<T>(message: impl Into<String>, f: impl FnOnce() -> T) -> T {
    let _activity = Activity::start(message);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_operation_shows_nothing_and_returns_its_value() {
        assert_eq!(during("working", || 42), 42);
    }
}
