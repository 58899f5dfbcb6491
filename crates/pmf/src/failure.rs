//! Why a command failed, its exit code, and how it is reported: one line
//! `error: <what is wrong> (<path>)`, details (the offences of an invalid model, the reasons a
//! save refused), and a hint; with `--json`, the same as data ([`JsonFailure`]).
//!
//! Exit codes: 1 for an invalid model or a refused edit (the library refused it: it would make
//! the model invalid, the training state does not allow it, the reference is a duplicate or is
//! not registered), 2 for a command that could not run (bad command line, missing or unreadable
//! path, a destination that is not a model folder, another writer, I/O failure, an invalid
//! location or storage option, an object store that failed or refused, an operation that object
//! storage does not support yet).
//!
//! Library errors are mapped by their variant ([`Failure::from_library`]), never by their
//! message: the variant decides the exit code, the message, the details and the hint, and the
//! error's data (reasons, offences, lock holder, ids) is carried into the JSON form.

use std::io::ErrorKind;
use std::path::Path;

use plums_model::{Category, Error, LockHolder, Reference, SaveProblem, StorageErrorKind};
use serde::Serialize;

use crate::output::errln;
use crate::output::{human_path, offence_line, paint, printable, show_path, JsonOffence, JsonRef, BAD, WARN};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an invalid model, or a refused edit.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: bad command line, or a path that cannot be read or written.
pub const EXIT_USAGE: u8 = 2;

/// The kinds of the failures that `pmf` finds itself (a library error's kind is its
/// [`Error::code`]).
pub mod kind {
    /// A bad command-line value (`--param`, a reference, the build parameters file).
    pub const USAGE: &str = "usage";
    /// `pmf new` into a folder that already holds a model.
    pub const MODEL_EXISTS: &str = "model_exists";
    /// The output could not be written.
    pub const OUTPUT: &str = "output";
}

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What kind of failure: [`Error::code`] for a library error, else one of [`kind`].
    pub kind: &'static str,
    /// What is wrong (the first line of the message).
    pub message: String,
    /// The path involved, if any (boxed, with the error, to keep failures small in `Result`s).
    pub path: Option<Box<Path>>,
    /// Details on the following lines (each printed indented), e.g. offences.
    pub details: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// The library error, when the library refused: its data goes into the JSON form (boxed:
    /// the error is large, and failures travel in `Result`s).
    pub error: Option<Box<Error>>,
}

impl Failure {
    fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Failure { code, kind, message: message.into(), path: None, details: Vec::new(), hint: None, error: None }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(EXIT_USAGE, kind::USAGE, message)
    }

    /// A failure of its own kind with exit code `code`.
    pub fn of_kind(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Failure::new(code, kind, message)
    }

    /// The same failure, about `path` (kept if one is already set).
    pub fn at(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }

    /// The same failure, with a hint (kept if one is already set).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// The same failure, with `hint` instead of its own.
    pub fn replace_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A library error, in the context of the model folder (or file) `context`: the variant
    /// decides the exit code, the message and the hint.
    pub fn from_library(error: Error, context: &Path) -> Self {
        let code = exit_code(&error);
        let (message, details, hint) = describe(&error);
        let path: Box<Path> = match &error {
            // The URL of the object or prefix the store failed on (never a credential).
            Error::Storage { location, .. } => Path::new(location).into(),
            // The refused location, credentials redacted (never the argument as given).
            Error::InvalidLocation { location, .. } => Path::new(location).into(),
            _ => error.path().unwrap_or(context).into(),
        };
        Failure { code, kind: error.code(), message, path: Some(path), details, hint, error: Some(Box::new(error)) }
    }

    /// Print the failure on stderr.
    pub fn report(&self) {
        // Messages quote model data and paths: printed as `printable` text.
        let path = self.path.as_deref().map(|p| format!(" ({})", human_path(p))).unwrap_or_default();
        errln!("{} {}{path}", paint(BAD, "error:"), printable(&self.message));
        // Details are made printable where they are built (offence lines are painted).
        for line in &self.details {
            errln!("  {line}");
        }
        if let Some(hint) = &self.hint {
            errln!("{} {}", paint(WARN, "hint:"), printable(hint));
        }
    }

    /// The failure as data, for `--json`.
    pub fn to_json(&self) -> JsonFailure {
        let e = self.error.as_deref();
        let mut json = JsonFailure {
            kind: self.kind,
            exit_code: self.code,
            message: self.message.clone(),
            path: self.path.as_deref().map(show_path),
            hint: self.hint.clone(),
            reasons: e.map(|e| e.reasons().iter().map(JsonReason::from).collect()).unwrap_or_default(),
            offences: e.map(|e| e.offences().iter().map(JsonOffence::from).collect()).unwrap_or_default(),
            holder: e.and_then(Error::lock_holder).map(JsonHolder::from),
            waited_secs: None,
            reference: e.and_then(Error::reference).cloned(),
            found_id: None,
            saving_id: None,
            leftover: None,
            io_kind: e.and_then(Error::io_kind).map(snake_kind),
            storage_kind: e.and_then(Error::storage_kind).map(StorageErrorKind::as_str),
        };
        match e {
            Some(Error::OtherModel { found_id, saving_id, .. }) => {
                json.found_id = Some(found_id.clone());
                json.saving_id = Some(saving_id.clone());
            }
            Some(Error::Locked { waited, .. }) => json.waited_secs = Some(waited.as_secs_f64()),
            Some(Error::InterruptedSave { leftover, .. }) => json.leftover = Some(show_path(leftover)),
            _ => {}
        }
        json
    }
}

/// A failure in JSON: `{"kind", "exit_code", "message", "path", "hint", "reasons", "offences",
/// ...}` (shape in docs/CLI.md). `reasons` and `offences` are always present (maybe empty);
/// the other optional keys only when they apply.
#[derive(Debug, Serialize)]
pub struct JsonFailure {
    /// The stable kind: [`Error::code`], or one of [`kind`].
    pub kind: &'static str,
    /// The exit code of the command.
    pub exit_code: u8,
    /// What is wrong (the `error:` line).
    pub message: String,
    /// The path involved, or null.
    pub path: Option<String>,
    /// What to do about it, or null.
    pub hint: Option<String>,
    /// Why a save refused the model (`would_not_validate`).
    pub reasons: Vec<JsonReason>,
    /// The offences of an invalid model, or of an invalid training record.
    pub offences: Vec<JsonOffence>,
    /// Who holds the model's lock (`locked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<JsonHolder>,
    /// How long the command waited for the lock, in seconds (`locked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_secs: Option<f64>,
    /// The checkpoint reference the failure is about.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "json_ref")]
    pub reference: Option<Reference>,
    /// The id of the model found at the destination (`other_model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_id: Option<String>,
    /// The id of the model being saved (`other_model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saving_id: Option<String>,
    /// Where the complete tree of an interrupted save lies (`interrupted_save`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leftover: Option<String>,
    /// The closest I/O error kind, in snake case (`not_found`, `permission_denied`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_kind: Option<String>,
    /// What an object store reported (`storage`): `not_found`, `permission_denied`,
    /// `precondition_failed`, `timeout`, `configuration` or `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_kind: Option<&'static str>,
}

fn json_ref<S: serde::Serializer>(r: &Option<Reference>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => JsonRef(r).serialize(s),
        None => s.serialize_none(),
    }
}

/// One reason a save refused the model: `{"location": "producer.name", "message": "..."}`.
#[derive(Debug, Serialize)]
pub struct JsonReason {
    /// The key path of the model the reason is about.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl From<&SaveProblem> for JsonReason {
    fn from(p: &SaveProblem) -> Self {
        JsonReason { location: p.location.clone(), message: p.message.clone() }
    }
}

/// The holder of a model's lock: `{"pid": 42, "host": "node-7", "since": 1700000000}`
/// (each null when the lock file does not say).
#[derive(Debug, Serialize)]
pub struct JsonHolder {
    /// The holder's process id.
    pub pid: Option<u32>,
    /// The holder's host name.
    pub host: Option<String>,
    /// When it took the lock, in seconds since 1970.
    pub since: Option<u64>,
}

impl From<&LockHolder> for JsonHolder {
    fn from(h: &LockHolder) -> Self {
        JsonHolder { pid: h.pid, host: h.host.clone(), since: h.since }
    }
}

/// `NotFound` → `not_found`.
fn snake_kind(kind: ErrorKind) -> String {
    let mut out = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The exit code of a library error: 1 when the library refused the model or the edit (the
/// model is or would be invalid, the training state forbids the change, a reference is a
/// duplicate or unknown), 2 when the command could not run (I/O, a path that is missing or
/// not what is needed, another writer, a bad location or storage option, an object store that
/// failed or refused, an operation object storage does not support yet).
fn exit_code(error: &Error) -> u8 {
    use Error::*;
    match error {
        Io { .. }
        | NotAFile { .. }
        | Obstructed { .. }
        | InitialisationNotFound { .. }
        | InitialisationPath { .. }
        | InitialisationNeedsName { .. }
        | InitialisationNeedsCheckpoint { .. }
        | DestinationIsFile { .. }
        | ForeignFolder { .. }
        | OtherModel { .. }
        | ConcurrentChange { .. }
        | Locked { .. }
        | InterruptedSave { .. }
        | InvalidLocation { .. }
        | InvalidStorageOption { .. }
        | InvalidRetention { .. }
        | Storage { .. } => EXIT_USAGE,
        InvalidStatus { .. }
        | InvalidTraining { .. }
        | StatusChange { .. }
        | TrainingNotRunning { .. }
        | EpochOverflow { .. }
        | InvalidChecksum { .. }
        | ChecksumMismatch { .. }
        | CheckpointWithoutSource { .. }
        | CheckpointWithoutEpoch { .. }
        | DuplicateReference(_)
        | MissingReference(_)
        | UnknownVersionFormat { .. }
        | InvalidVersion { .. }
        | InitialisationCheckpointMissing { .. }
        | InvalidDestination { .. }
        | InvalidSameModel { .. }
        | WouldNotValidate { .. }
        | TreeValidation(_)
        | MetadataValidation(_) => EXIT_INVALID,
        // A variant added later: the file system refused (2), or the library refused (1).
        other if other.category() == Category::Os => EXIT_USAGE,
        _ => EXIT_INVALID,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn invalid_model_message(n: usize) -> String {
    format!("not a valid PMF model, {n} offence{}", plural(n))
}

fn validate_hint(path: &Path) -> String {
    format!("`pmf validate {}` lists the offences", show_path(path))
}

fn references(refs: &[Reference]) -> String {
    refs.iter().map(Reference::quoted).collect::<Vec<_>>().join(", ")
}

/// The message, details and hint of a library error, from its variant and data.
fn describe(error: &Error) -> (String, Vec<String>, Option<String>) {
    use Error::*;
    let none = Vec::new;
    match error {
        Io { operation, source, .. } => {
            let hint = match source.kind() {
                ErrorKind::NotFound => Some("check the path".to_owned()),
                ErrorKind::PermissionDenied => Some("check the permissions of the path".to_owned()),
                _ => None,
            };
            (format!("{operation}: {source}"), none(), hint)
        }
        NotAFile { what, .. } => {
            (format!("invalid {what}: not a regular file"), none(), Some(format!("give the path of the {what} file")))
        }
        Obstructed { found, needed, .. } => (
            format!("{found} stands where PMF needs {needed}; nothing was changed"),
            none(),
            Some("move it away and run the command again".to_owned()),
        ),
        InvalidTraining { offences } => (
            "invalid training record".to_owned(),
            offences.iter().map(|o| printable(&format!("training.{}: {}", o.field, o.message)).into_owned()).collect(),
            None,
        ),
        InitialisationNotFound { .. } => {
            ("the initialisation path does not exist".to_owned(), none(), Some("check the path".to_owned()))
        }
        InitialisationPath { .. } => (
            "the initialisation path is neither a weight file nor a PMF model folder (with metadata.yaml)".to_owned(),
            none(),
            Some("give a weight file with --init-file, or a PMF model folder with --init-model".to_owned()),
        ),
        InitialisationCheckpointMissing { reference, available, .. } => {
            let hint = if available.is_empty() {
                "the initialisation model has no checkpoint".to_owned()
            } else {
                format!("its checkpoints: {}", references(available))
            };
            (format!("the initialisation model has no checkpoint {}", reference.quoted()), none(), Some(hint))
        }
        ChecksumMismatch { expected, found, .. } => (
            "the file does not have the checksum it was registered with; nothing was saved".to_owned(),
            vec![format!("registered md5 {expected}, the file's md5 is {found}")],
            Some("the file changed since it was registered: restore it, or remove its checkpoint".to_owned()),
        ),
        DuplicateReference(r) => (
            format!("checkpoint reference {} is already registered", r.quoted()),
            none(),
            Some(
                "choose another reference with --ref, or remove the checkpoint first with `pmf checkpoint rm`"
                    .to_owned(),
            ),
        ),
        MissingReference(r) => (format!("checkpoint reference {} is not registered", r.quoted()), none(), None),
        UnknownVersionFormat { format, known } => (
            format!("invalid version format {format:?}: it is unknown"),
            none(),
            Some(format!("the known version formats are: {}", known.join(", "))),
        ),
        DestinationIsFile { .. } => (
            "the destination is a file, expected a folder to save the model in".to_owned(),
            none(),
            Some("choose a missing or empty folder".to_owned()),
        ),
        ForeignFolder { .. } => (
            "the folder (or prefix) exists and is not a PMF model (no metadata.yaml)".to_owned(),
            none(),
            Some("choose a missing or empty folder, or move its files away".to_owned()),
        ),
        OtherModel { found_id, saving_id, .. } => (
            format!("the destination holds another PMF model (id {found_id:?}), not model {saving_id:?}; refusing to overwrite it"),
            none(),
            Some(format!(
                "another program replaced the model (it now holds model {found_id:?}): check the folder before editing it"
            )),
        ),
        InvalidDestination { reason, .. } => {
            (format!("not a valid PMF metadata file ({reason}); refusing to save over it"), none(), None)
        }
        InvalidSameModel { path, report } => (
            format!(
                "the folder holds an invalid PMF model with the same id ({} offence{}); refusing to save over it",
                report.offences.len(),
                plural(report.offences.len())
            ),
            report.offences.iter().map(|o| offence_line(o, "")).collect(),
            Some(format!("repair it first; {}", validate_hint(path))),
        ),
        ConcurrentChange { .. } => (
            "another writer saved the model while this command ran; nothing was saved".to_owned(),
            none(),
            Some("run the command again: it applies the change to the model as it is now".to_owned()),
        ),
        Locked { holder, waited, .. } => (
            format!("the model is being written by {} (lock .pmf.lock)", holder_text(holder)),
            none(),
            Some(format!("gave up after {:.1}s: retry when it is done, or wait longer with --lock-timeout", waited.as_secs_f64())),
        ),
        InterruptedSave { path, leftover } => (
            "the model folder is missing: a save was interrupted while replacing it".to_owned(),
            vec![format!("its complete new tree is at {}", human_path(leftover))],
            Some(format!(
                "the next save by the program that writes the model puts it back in place; with no writer running, `mv {} {}` does the same",
                show_path(leftover),
                show_path(path)
            )),
        ),
        WouldNotValidate { reasons } => (
            format!("cannot save: the model would not be valid ({} reason{})", reasons.len(), plural(reasons.len())),
            reasons.iter().map(|r| printable(&format!("{}: {}", r.location, r.message)).into_owned()).collect(),
            None,
        ),
        TreeValidation(report) | MetadataValidation(report) => (
            invalid_model_message(report.offences.len()),
            report.offences.iter().map(|o| offence_line(o, "")).collect(),
            Some(validate_hint(&report.path)),
        ),
        InvalidLocation { location, reason } => (
            format!("invalid location {location:?}: {reason}"),
            none(),
            Some("a model location is a local path, file:///absolute/path, or s3://bucket/prefix".to_owned()),
        ),
        InvalidStorageOption { key, reason } => (
            format!("invalid --storage-option {key:?}: {reason}"),
            none(),
            Some("give --storage-option KEY=VALUE with an object_store key (endpoint, access_key_id, secret_access_key, region, allow_http, session_token, ...) or timeout, connect_timeout, retry_max, retry_timeout".to_owned()),
        ),
        Storage { operation, kind, message, .. } => {
            (format!("{operation}: {}: {message}", storage_kind_text(*kind)), none(), Some(storage_hint(*kind)))
        }
        // The policy of `pmf checkpoint prune`: its fields are options there.
        InvalidRetention { field, reason } => {
            let option = match *field {
                "last" => "--keep-last",
                "every" => "--keep-every",
                "keep" => "--keep",
                other => other,
            };
            let message = if *field == "rules" {
                "invalid retention policy: no rule given".to_owned()
            } else {
                format!("invalid retention policy: {option}: {reason}")
            };
            (message, none(), Some("give at least one of --keep-last N, --keep-every K (each at least 1) or --keep REF".to_owned()))
        }
        // The others say it all in one line, with their data (status, epoch, checksum text).
        other => (other.to_string(), none(), None),
    }
}

/// What an object store's failure kind means, for people.
fn storage_kind_text(kind: StorageErrorKind) -> &'static str {
    match kind {
        StorageErrorKind::NotFound => "not found",
        StorageErrorKind::PermissionDenied => "permission denied",
        StorageErrorKind::PreconditionFailed => "the object changed while it was read",
        StorageErrorKind::Timeout => "timed out",
        StorageErrorKind::Configuration => "cannot configure the store",
        StorageErrorKind::NoConditionalWrites => "the store does not support conditional writes",
        _ => "the store failed",
    }
}

/// What to do about an object store's failure.
fn storage_hint(kind: StorageErrorKind) -> String {
    match kind {
        StorageErrorKind::NotFound => "check the URL (bucket and prefix, without a trailing file name): no model is stored there".to_owned(),
        StorageErrorKind::PermissionDenied => "check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --storage-option access_key_id=... --storage-option secret_access_key=... (options win over the environment)".to_owned(),
        StorageErrorKind::PreconditionFailed => "another program changed the model while it was read: run the command again".to_owned(),
        StorageErrorKind::Timeout => "check the endpoint (AWS_ENDPOINT_URL or --storage-option endpoint=URL), or allow more time with --storage-option timeout=SECONDS and retry_timeout=SECONDS".to_owned(),
        StorageErrorKind::Configuration => "check the storage options and AWS_* variables (region, endpoint; allow_http=true for an http:// endpoint)".to_owned(),
        StorageErrorKind::NoConditionalWrites => "this store would let two writers overwrite each other's saves; use a store with conditional writes (S3, SeaweedFS, MinIO), or accept that the last writer wins with --storage-option conditional_writes=false".to_owned(),
        _ => "check that the endpoint is reachable (AWS_ENDPOINT_URL or --storage-option endpoint=URL) and run the command again".to_owned(),
    }
}

/// Who holds a lock, for people: `pid 42 on node-7 since 2024-11-28 15:59:39 UTC`.
fn holder_text(holder: &LockHolder) -> String {
    let who = match (holder.pid, &holder.host) {
        (Some(pid), Some(host)) => format!("pid {pid} on {host}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "another process".to_owned(),
    };
    match holder.since.and_then(|s| i64::try_from(s).ok()) {
        Some(since) => format!("{who} since {}", crate::output::human_time(plums_model::Timestamp::Int(since))),
        None => who,
    }
}

/// Parse a checkpoint reference: all ASCII digits is an int reference unless `as_str`.
pub fn parse_reference(text: &str, as_str: bool) -> Result<Reference, Failure> {
    if text.is_empty() {
        return Err(Failure::usage("a checkpoint reference cannot be empty"));
    }
    if as_str || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Reference::Str(text.to_owned()));
    }
    text.parse::<i64>().map(Reference::Int).map_err(|_| {
        Failure::usage(format!("checkpoint reference {text} is too large for an int reference"))
            .hint("add --ref-str to make it a string reference")
    })
}

/// Print `document` as pretty JSON on stdout and return `code`; an `output` failure (exit 2)
/// when it cannot be written.
pub fn print_json(document: &impl serde::Serialize, code: u8) -> u8 {
    match serde_json::to_string_pretty(document) {
        Ok(text) => {
            crate::output::outln!("{text}");
            code
        }
        Err(e) => {
            Failure::of_kind(EXIT_USAGE, kind::OUTPUT, format!("cannot write JSON: {e}")).report();
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn references() {
        assert_eq!(parse_reference("12", false).ok(), Some(Reference::Int(12)));
        assert_eq!(parse_reference("12", true).ok(), Some(Reference::Str("12".into())));
        assert_eq!(parse_reference("best", false).ok(), Some(Reference::Str("best".into())));
        assert_eq!(parse_reference("-1", false).ok(), Some(Reference::Str("-1".into())));
        assert_eq!(parse_reference("99999999999999999999", false).map_err(|f| f.code).err(), Some(EXIT_USAGE));
        assert!(parse_reference("", false).is_err());
    }

    #[test]
    fn library_errors_map_to_exit_codes_kinds_and_data() {
        let io = Error::Io {
            path: "/x".into(),
            operation: "cannot validate model".into(),
            source: std::io::Error::from(ErrorKind::NotFound).into(),
        };
        let f = Failure::from_library(io, Path::new("/y"));
        assert_eq!((f.code, f.kind, f.path.as_deref()), (EXIT_USAGE, "io", Some(Path::new("/x"))));
        assert_eq!(f.hint.as_deref(), Some("check the path"));
        assert_eq!(f.to_json().io_kind.as_deref(), Some("not_found"));

        let reasons = vec![SaveProblem::new("producer.name", "too short"), SaveProblem::new("training.end", "x")];
        let f = Failure::from_library(Error::WouldNotValidate { reasons }, Path::new("/m"));
        assert_eq!((f.code, f.kind, f.details.len()), (EXIT_INVALID, "would_not_validate", 2));
        assert_eq!(f.details[0], "producer.name: too short");
        assert_eq!(f.to_json().reasons[1].location, "training.end");

        let f = Failure::from_library(Error::DuplicateReference(Reference::Int(3)), Path::new("/m"));
        assert_eq!((f.code, f.message.as_str()), (EXIT_INVALID, "checkpoint reference 3 is already registered"));

        let holder = LockHolder { pid: Some(7), host: Some("h".into()), since: None };
        let locked = Error::Locked { path: "/m".into(), holder, waited: Duration::from_millis(500) };
        let f = Failure::from_library(locked, Path::new("/m"));
        assert_eq!((f.code, f.kind), (EXIT_USAGE, "locked"));
        assert!(f.message.contains("pid 7 on h"), "{}", f.message);
        let json = f.to_json();
        assert_eq!(json.holder.as_ref().and_then(|h| h.pid), Some(7));
        assert_eq!(json.waited_secs, Some(0.5));

        let f = Failure::from_library(Error::ConcurrentChange { path: "/m".into() }, Path::new("/m"));
        assert_eq!((f.code, f.kind), (EXIT_USAGE, "concurrent_change"));
        assert!(f.hint.is_some_and(|h| h.starts_with("run the command again")));
    }

    #[test]
    fn storage_errors_are_usage_failures_with_their_kind_and_hint() {
        let storage = |kind| Error::Storage {
            location: "s3://b/m/metadata.yaml".into(),
            operation: "cannot download".into(),
            kind,
            message: "x".into(),
        };
        for (kind, name, hint) in [
            (StorageErrorKind::NotFound, "not_found", "check the URL"),
            (StorageErrorKind::PermissionDenied, "permission_denied", "check the credentials"),
            (StorageErrorKind::Timeout, "timeout", "check the endpoint"),
            (StorageErrorKind::PreconditionFailed, "precondition_failed", "another program"),
        ] {
            let f = Failure::from_library(storage(kind), Path::new("/ctx"));
            assert_eq!((f.code, f.kind), (EXIT_USAGE, "storage"));
            assert_eq!(f.path.as_deref(), Some(Path::new("s3://b/m/metadata.yaml")));
            assert!(f.hint.as_deref().is_some_and(|h| h.starts_with(hint)), "{kind:?}: {:?}", f.hint);
            assert_eq!(f.to_json().storage_kind, Some(name));
        }
        let f = Failure::from_library(
            Error::InvalidLocation { location: "foo://x".into(), reason: "unknown scheme".into() },
            Path::new("foo://x"),
        );
        assert_eq!((f.code, f.kind), (EXIT_USAGE, "invalid_location"));
        assert_eq!(f.to_json().storage_kind, None);
        let f =
            Failure::from_library(Error::InvalidStorageOption { key: "k".into(), reason: "r".into() }, Path::new(""));
        assert_eq!((f.code, f.kind), (EXIT_USAGE, "invalid_storage_option"));
        let f = Failure::from_library(
            Error::InvalidRetention { field: "last", reason: "must be at least 1".into() },
            Path::new("m"),
        );
        assert_eq!((f.code, f.kind), (EXIT_USAGE, "invalid_retention"));
        assert_eq!(f.message, "invalid retention policy: --keep-last: must be at least 1");
        assert!(f.hint.as_deref().is_some_and(|h| h.starts_with("give at least one of --keep-last")), "{:?}", f.hint);
    }

    #[test]
    fn io_kinds_are_snake_case() {
        assert_eq!(snake_kind(ErrorKind::NotFound), "not_found");
        assert_eq!(snake_kind(ErrorKind::PermissionDenied), "permission_denied");
        assert_eq!(snake_kind(ErrorKind::Other), "other");
    }
}
