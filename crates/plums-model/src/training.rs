//! Training state: status machine, epochs and times, and the PMF cross-checks between them.
//!
//! [`Training`] is the `model.training` section of the metadata without its checkpoints. Its
//! constructor applies the reference defaults (missing latest values fall back to the end
//! values, then to the start values) and refuses every combination that PMF-SPEC section 2
//! forbids; [`check_training`] lists those offences and is shared with metadata validation.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result, TrainingOffence};
use crate::status::Status;

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Status::Pending),
            "running" => Ok(Status::Running),
            "finished" => Ok(Status::Finished),
            "failed" => Ok(Status::Failed),
            other => Err(Error::InvalidStatus { value: other.to_owned() }),
        }
    }
}

/// A time in seconds since the Unix epoch, kept as the integer or float it was written as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timestamp {
    /// Whole seconds.
    Int(i64),
    /// Fractional seconds (what `time.time()` gives).
    Float(f64),
}

impl Timestamp {
    /// The current time, as a float like Python's `time.time()`.
    pub fn now() -> Self {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        Timestamp::Float(secs)
    }

    /// The value in seconds.
    pub fn as_f64(self) -> f64 {
        match self {
            Timestamp::Int(i) => i as f64,
            Timestamp::Float(f) => f,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timestamp::Int(i) => write!(f, "{i}"),
            Timestamp::Float(x) => write!(f, "{x}"),
        }
    }
}

/// The raw fields of a training section, before defaults and checks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrainingRecord {
    /// The status.
    pub status: Status,
    /// The starting epoch.
    pub start_epoch: Option<i64>,
    /// The starting time.
    pub start_time: Option<Timestamp>,
    /// The latest registered epoch.
    pub latest_epoch: Option<i64>,
    /// The time of the latest registered epoch.
    pub latest_time: Option<Timestamp>,
    /// The ending epoch.
    pub end_epoch: Option<i64>,
    /// The ending time.
    pub end_time: Option<Timestamp>,
}

/// Every PMF-SPEC section 2 cross-check offence of `record`.
///
/// `checkpoints` are the `(reference is latest?, epoch)` facts needed for the two checks that
/// involve checkpoints; pass `latest_missing = true` when `latest` is set, checkpoints are
/// registered, and `latest` is not among them.
pub fn check_training(
    record: &TrainingRecord,
    latest_missing: bool,
    checkpoint_epochs: &[i64],
) -> Vec<TrainingOffence> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let times = Series {
        names: ["start_time", "latest_time", "end_time"],
        values: [
            record.start_time.map(Timestamp::as_f64),
            record.latest_time.map(Timestamp::as_f64),
            record.end_time.map(Timestamp::as_f64),
        ],
    };
    let epochs = Series {
        names: ["start_epoch", "latest_epoch", "end_epoch"],
        values: [
            record.start_epoch.map(|x| x as f64),
            record.latest_epoch.map(|x| x as f64),
            record.end_epoch.map(|x| x as f64),
        ],
    };
    // The same rules for the times and for the epochs, each paired with the other series.
    for (series, other) in [(&times, &epochs), (&epochs, &times)] {
        check_presence(series, &mut out);
        check_start(series, other, record.status, &mut out);
        check_latest(series, other, record.status, &mut out);
        check_end(series, other, record.status, &mut out);
    }
    check_checkpoint_references(record, latest_missing, checkpoint_epochs, &mut out);
    out.into_iter().map(|(field, message)| TrainingOffence { field, message }).collect()
}

/// The start, latest and end values of one series (times or epochs) and their field names.
struct Series {
    names: [&'static str; 3],
    values: [Option<f64>; 3],
}

type Found = Vec<(&'static str, String)>;

/// A later value needs the earlier ones: no end or latest without a start, no end without a latest.
fn check_presence(series: &Series, out: &mut Found) {
    let [s, l, end] = series.names;
    let [sv, lv, ev] = series.values;
    if sv.is_none() && ev.is_some() {
        out.push((end, format!("{end} is set but {s} is not: a training cannot end before it starts")));
    }
    if sv.is_none() && lv.is_some() {
        out.push((l, format!("{l} is set but {s} is not: set {s} too")));
    }
    if lv.is_none() && ev.is_some() {
        out.push((end, format!("{end} is set but {l} is not: set {l} too")));
    }
}

/// A start comes before the latest value, with its counterpart in the other series, and only
/// once the training left pending.
fn check_start(series: &Series, other: &Series, status: Status, out: &mut Found) {
    let [s, l, _] = series.names;
    let [sv, lv, _] = series.values;
    let Some(sv) = sv else { return };
    if let Some(lv) = lv {
        if sv > lv {
            out.push((l, format!("{l} ({}) is before {s} ({}): expected {s} <= {l}", fmt_num(lv), fmt_num(sv))));
        }
    }
    if other.values[0].is_none() {
        out.push((other.names[0], format!("{s} is set but {} is not: set both or neither", other.names[0])));
    }
    if status == Status::Pending {
        out.push((s, format!("{s} is set but the status is pending: expected running, finished or failed")));
    }
}

/// The latest value comes before the end, with its counterpart, and only once the training left
/// pending.
fn check_latest(series: &Series, other: &Series, status: Status, out: &mut Found) {
    let [_, l, end] = series.names;
    let [_, lv, ev] = series.values;
    let Some(lv) = lv else { return };
    if let Some(ev) = ev {
        if lv > ev {
            out.push((end, format!("{end} ({}) is before {l} ({}): expected {l} <= {end}", fmt_num(ev), fmt_num(lv))));
        }
    }
    if other.values[1].is_none() {
        out.push((other.names[1], format!("{l} is set but {} is not: set both or neither", other.names[1])));
    }
    if status == Status::Pending {
        out.push((l, format!("{l} is set but the status is pending: expected running, finished or failed")));
    }
}

/// An end comes with its counterpart, and only for a finished or failed training.
fn check_end(series: &Series, other: &Series, status: Status, out: &mut Found) {
    let end = series.names[2];
    if series.values[2].is_none() {
        return;
    }
    if other.values[2].is_none() {
        out.push((other.names[2], format!("{end} is set but {} is not: set both or neither", other.names[2])));
    }
    if matches!(status, Status::Pending | Status::Running) {
        out.push((end, format!("{end} is set but the status is {status}: expected finished or failed")));
    }
}

/// `latest` names a registered checkpoint, and no checkpoint is after the latest epoch.
fn check_checkpoint_references(
    record: &TrainingRecord,
    latest_missing: bool,
    checkpoint_epochs: &[i64],
    out: &mut Found,
) {
    if latest_missing {
        out.push((
            "latest",
            "latest is not among the registered checkpoints: expected one of their references or null".to_owned(),
        ));
    }
    if let Some(le) = record.latest_epoch {
        if let Some(max) = checkpoint_epochs.iter().copied().filter(|&ep| ep > le).max() {
            out.push(("checkpoints", format!("a checkpoint has epoch {max}, after latest_epoch {le}: expected every checkpoint epoch <= latest_epoch")));
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A model's training state.
///
/// ```
/// use plums_model::{Training, TrainingRecord, Status};
/// let mut t = Training::default();
/// t.start(0).unwrap();
/// t.register_epoch(None).unwrap();
/// t.register_epoch(Some(5)).unwrap();
/// t.end().unwrap();
/// assert_eq!(t.status(), Status::Finished);
/// assert_eq!(t.end_epoch(), Some(5));
/// // An end time without a start time is refused:
/// let bad = TrainingRecord { status: Status::Finished, end_epoch: Some(1), end_time: Some(plums_model::Timestamp::Int(5)), ..Default::default() };
/// assert!(Training::new(bad).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Training {
    record: TrainingRecord,
}

impl Training {
    /// A training from its fields: missing latest values default to the end values, then to
    /// the start values; any PMF cross-check offence is an [`Error::InvalidTraining`] listing all.
    pub fn new(mut record: TrainingRecord) -> Result<Self> {
        if record.latest_epoch.is_none() {
            record.latest_epoch = record.end_epoch.or(record.start_epoch);
        }
        if record.latest_time.is_none() {
            record.latest_time = record.end_time.or(record.start_time);
        }
        let offences = check_training(&record, false, &[]);
        if !offences.is_empty() {
            return Err(Error::InvalidTraining { offences });
        }
        Ok(Training { record })
    }

    /// A training from metadata fields, as they are (no defaults; the caller checked them).
    pub(crate) fn from_record_unchecked(record: TrainingRecord) -> Self {
        Training { record }
    }

    /// All fields.
    pub fn record(&self) -> &TrainingRecord {
        &self.record
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.record.status
    }

    /// Change the status, if the status machine allows it (see [`Status::can_become`]).
    pub fn set_status(&mut self, next: Status) -> Result<()> {
        if !self.record.status.can_become(next) {
            return Err(Error::StatusChange { from: self.record.status, to: next });
        }
        self.record.status = next;
        Ok(())
    }

    /// The starting epoch.
    pub fn start_epoch(&self) -> Option<i64> {
        self.record.start_epoch
    }
    /// The starting time.
    pub fn start_time(&self) -> Option<Timestamp> {
        self.record.start_time
    }
    /// The latest epoch.
    pub fn latest_epoch(&self) -> Option<i64> {
        self.record.latest_epoch
    }
    /// The latest epoch's time.
    pub fn latest_time(&self) -> Option<Timestamp> {
        self.record.latest_time
    }
    /// The ending epoch.
    pub fn end_epoch(&self) -> Option<i64> {
        self.record.end_epoch
    }
    /// The ending time.
    pub fn end_time(&self) -> Option<Timestamp> {
        self.record.end_time
    }
    /// Whether the status is running.
    pub fn is_running(&self) -> bool {
        self.record.status == Status::Running
    }
    /// Whether the status is pending.
    pub fn is_pending(&self) -> bool {
        self.record.status == Status::Pending
    }
    /// Whether the status is finished.
    pub fn is_finished(&self) -> bool {
        self.record.status == Status::Finished
    }
    /// Whether the status is failed.
    pub fn is_failed(&self) -> bool {
        self.record.status == Status::Failed
    }

    /// Start the training at `epoch`, now: status running, start and latest set.
    pub fn start(&mut self, epoch: i64) -> Result<()> {
        self.set_status(Status::Running)?;
        let now = Timestamp::now();
        self.record.start_epoch = Some(epoch);
        self.record.start_time = Some(now);
        self.record.latest_epoch = Some(epoch);
        self.record.latest_time = Some(now);
        Ok(())
    }

    /// Register `epoch` (or latest + 1) as the latest epoch, now.
    ///
    /// The latest epoch becomes `max(latest, epoch)`. Unlike the reference (which crashes with a
    /// `TypeError`), registering an epoch on a training that is not running is a clear error.
    pub fn register_epoch(&mut self, epoch: Option<i64>) -> Result<()> {
        let Some(latest) = self.record.latest_epoch.filter(|_| self.is_running()) else {
            return Err(Error::TrainingNotRunning { status: self.record.status });
        };
        let next = match epoch {
            Some(e) => latest.max(e),
            None => latest.checked_add(1).ok_or(Error::EpochOverflow { latest })?,
        };
        self.record.latest_epoch = Some(next);
        self.record.latest_time = Some(Timestamp::now());
        Ok(())
    }

    /// End the training normally: status finished, end set to latest.
    pub fn end(&mut self) -> Result<()> {
        self.set_status(Status::Finished)?;
        self.record.end_epoch = self.record.latest_epoch;
        self.record.end_time = self.record.latest_time;
        Ok(())
    }

    /// End the training abnormally: status failed, end set to latest.
    pub fn interrupt(&mut self) -> Result<()> {
        self.set_status(Status::Failed)?;
        self.record.end_epoch = self.record.latest_epoch;
        self.record.end_time = self.record.latest_time;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Timestamp::Int as T;

    fn rec(
        status: Status,
        s: (Option<i64>, Option<i64>),
        l: (Option<i64>, Option<i64>),
        e: (Option<i64>, Option<i64>),
    ) -> TrainingRecord {
        TrainingRecord {
            status,
            start_epoch: s.0,
            start_time: s.1.map(T),
            latest_epoch: l.0,
            latest_time: l.1.map(T),
            end_epoch: e.0,
            end_time: e.1.map(T),
        }
    }

    #[test]
    fn valid_records_have_no_offence() {
        assert!(check_training(&TrainingRecord::default(), false, &[]).is_empty());
        let r = rec(Status::Finished, (Some(0), Some(10)), (Some(5), Some(20)), (Some(5), Some(20)));
        assert!(check_training(&r, false, &[1, 5]).is_empty());
        let r = rec(Status::Running, (Some(0), Some(10)), (Some(5), Some(20)), (None, None));
        assert!(check_training(&r, false, &[]).is_empty());
    }

    #[test]
    fn each_rule_is_reported_with_its_field() {
        let cases: Vec<(TrainingRecord, &str, &str)> = vec![
            (
                rec(Status::Failed, (Some(0), None), (Some(0), Some(1)), (Some(0), Some(1))),
                "end_time",
                "start_time is not",
            ),
            (
                rec(Status::Running, (Some(0), Some(5)), (Some(1), Some(4)), (None, None)),
                "latest_time",
                "is before start_time",
            ),
            (
                rec(Status::Pending, (Some(0), Some(5)), (Some(0), Some(5)), (None, None)),
                "start_time",
                "status is pending",
            ),
            (
                rec(Status::Running, (Some(0), Some(5)), (Some(1), Some(6)), (Some(1), Some(6))),
                "end_time",
                "expected finished or failed",
            ),
            (
                rec(Status::Finished, (Some(0), Some(5)), (Some(1), Some(9)), (Some(1), Some(7))),
                "end_time",
                "is before latest_time",
            ),
            (
                rec(Status::Running, (Some(3), Some(5)), (Some(1), Some(6)), (None, None)),
                "latest_epoch",
                "is before start_epoch",
            ),
            (
                rec(Status::Running, (None, Some(5)), (None, Some(6)), (None, None)),
                "start_epoch",
                "set both or neither",
            ),
        ];
        for (r, field, text) in cases {
            let offences = check_training(&r, false, &[]);
            assert!(offences.iter().any(|o| o.field == field && o.message.contains(text)), "{r:?}: {offences:?}");
        }
    }

    #[test]
    fn all_offences_are_reported_at_once() {
        let r = rec(Status::Pending, (None, None), (Some(3), Some(3)), (Some(2), Some(2)));
        let offences = check_training(&r, true, &[9]);
        assert!(offences.len() >= 6, "{offences:?}");
        assert!(offences.iter().any(|o| o.field == "latest"));
        assert!(offences.iter().any(|o| o.field == "checkpoints" && o.message.contains("epoch 9")));
    }

    #[test]
    fn defaults_fill_latest_from_end_then_start() {
        let t = Training::new(rec(Status::Finished, (Some(0), Some(1)), (None, None), (Some(4), Some(9)))).unwrap();
        assert_eq!((t.latest_epoch(), t.latest_time()), (Some(4), Some(T(9))));
        let t = Training::new(rec(Status::Running, (Some(2), Some(1)), (None, None), (None, None))).unwrap();
        assert_eq!((t.latest_epoch(), t.latest_time()), (Some(2), Some(T(1))));
    }

    #[test]
    fn status_machine() {
        use Status::*;
        let all = [Pending, Running, Finished, Failed];
        let allowed = [
            (Pending, Pending),
            (Pending, Running),
            (Pending, Failed),
            (Running, Running),
            (Running, Finished),
            (Running, Failed),
            (Failed, Failed),
        ];
        for a in all {
            for b in all {
                assert_eq!(a.can_become(b), allowed.contains(&(a, b)), "{a} -> {b}");
            }
        }
        let mut t = Training::default();
        let err = t.end().unwrap_err();
        assert!(err.to_string().contains("a pending training cannot become finished"), "{err}");
    }

    #[test]
    fn register_epoch_before_start_is_a_clear_error() {
        let mut t = Training::default();
        let err = t.register_epoch(None).unwrap_err();
        assert!(matches!(err, Error::TrainingNotRunning { status: Status::Pending }), "{err}");
        assert!(err.to_string().contains("call start first"), "{err}");
        t.start(3).unwrap();
        t.register_epoch(Some(1)).unwrap();
        assert_eq!(t.latest_epoch(), Some(3));
        t.register_epoch(None).unwrap();
        assert_eq!(t.latest_epoch(), Some(4));
        t.interrupt().unwrap();
        assert_eq!((t.status(), t.end_epoch()), (Status::Failed, Some(4)));
    }
}
