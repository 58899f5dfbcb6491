//! The training status and its state machine.

use std::fmt;

/// The training status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// Not started yet.
    #[default]
    Pending,
    /// Started, not ended.
    Running,
    /// Ended normally.
    Finished,
    /// Ended abnormally.
    Failed,
}

impl Status {
    /// The metadata spelling: `pending`, `running`, `finished` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Failed => "failed",
        }
    }

    /// Whether a training in status `self` may move to `next`.
    ///
    /// pending -> pending|running|failed; running -> running|finished|failed;
    /// failed -> failed; finished -> nothing.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Pending | Running | Failed) | (Running, Running | Finished | Failed) | (Failed, Failed)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
