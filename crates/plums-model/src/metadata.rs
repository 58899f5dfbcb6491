//! `metadata.yaml`: its typed form, its schema checks, and its YAML form.
//!
//! [`Metadata::from_value`] checks a parsed document against the closed PMF 1.0.0 schema and
//! the training cross-checks, and reports **every** offence with its key path
//! (`model.training.checkpoints.3.hash`), not only the first one. [`Metadata::to_value`] gives
//! the document to write.

use indexmap::IndexMap;

use crate::digest::Md5;
use crate::error::Offence;
use crate::producer::is_valid_producer_name;
use crate::reference::Reference;
use crate::status::Status;
use crate::training::{check_training, Timestamp, TrainingRecord};
use crate::yaml::{Mapping, Value};

/// The longest file name (one path component) file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The PMF format version this crate reads and writes.
pub const FORMAT_VERSION: &str = "1.0.0";

/// The parsed content of `metadata.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// `format.producer`.
    pub producer: ProducerMetadata,
    /// `model`.
    pub model: ModelMetadata,
}

/// `format.producer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerMetadata {
    /// `format.producer.name`.
    pub name: String,
    /// `format.producer.version.format`.
    pub version_format: String,
    /// `format.producer.version.value`.
    pub version: String,
}

/// `model`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    /// `model.name` (may be null).
    pub name: Option<String>,
    /// `model.id`.
    pub id: String,
    /// `model.configuration`.
    pub configuration: FileEntry,
    /// `model.initialisation`.
    pub initialisation: Option<InitialisationMetadata>,
    /// `model.training`.
    pub training: TrainingMetadata,
}

/// A file recorded with its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The path, relative to the model root.
    pub path: String,
    /// The MD5 checksum of the content.
    pub hash: Md5,
}

/// `model.initialisation` when it is not null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialisationMetadata {
    /// Initialised from a whole PMF model, stored in `data/initialisation/`.
    Pmf {
        /// The initialisation model's name.
        name: Option<String>,
        /// The initialisation model's id.
        id: String,
        /// The reference of the initialisation model's checkpoint that was used.
        checkpoint: Reference,
        /// Where the model is (`data/initialisation`).
        path: String,
    },
    /// Initialised from one weight file, stored in `data/initialisation/`.
    File {
        /// The name that identifies the initial network.
        name: Option<String>,
        /// The file path.
        path: String,
        /// The file checksum.
        hash: Md5,
    },
}

/// `model.training`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingMetadata {
    /// Status, epochs and times.
    pub record: TrainingRecord,
    /// `model.training.latest`.
    pub latest: Option<Reference>,
    /// `model.training.checkpoints`, in document order.
    pub checkpoints: IndexMap<Reference, CheckpointEntry>,
}

/// One entry of `model.training.checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The epoch.
    pub epoch: i64,
    /// The file path, relative to the model root (`.` in initialisation models).
    pub path: String,
    /// The file checksum.
    pub hash: Md5,
}

/// Collects offences while walking a document.
struct Checker {
    offences: Vec<Offence>,
}

fn join(loc: &str, key: &str) -> String {
    if loc.is_empty() {
        key.to_owned()
    } else {
        format!("{loc}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("{b} (bool)"),
        Value::Int(i) => format!("{i} (int)"),
        Value::Float(f) => format!("{f} (float)"),
        Value::Str(s) => format!("{s:?} (str)"),
        other => format!("a {}", other.type_name()),
    }
}

impl Checker {
    fn err(&mut self, loc: &str, msg: impl Into<String>) {
        self.offences.push(Offence::metadata(loc, msg));
    }

    /// A closed mapping with exactly `keys`: reports a non-mapping, unknown and missing keys.
    fn closed<'a>(&mut self, v: &'a Value, loc: &str, keys: &[&str]) -> Option<&'a Mapping> {
        let Some(map) = v.as_map() else {
            self.err(loc, format!("expected a mapping with keys {}, found {}", keys.join(", "), describe(v)));
            return None;
        };
        for k in map.keys() {
            let known = k.as_str().is_some_and(|k| keys.contains(&k));
            if !known {
                let shown = k.as_str().map(|s| s.to_owned()).unwrap_or_else(|| describe(k));
                self.err(&join(loc, &shown), format!("unknown key {shown:?}: expected only {}", keys.join(", ")));
            }
        }
        for k in keys {
            if !map.contains_key(&Value::from(*k)) {
                self.err(&join(loc, k), format!("missing key {k:?}"));
            }
        }
        Some(map)
    }

    fn string(&mut self, map: &Mapping, loc: &str, key: &str) -> Option<String> {
        let v = map.get(&Value::from(key))?;
        match v {
            Value::Str(s) => Some(s.clone()),
            other => {
                self.err(&join(loc, key), format!("expected a string, found {}", describe(other)));
                None
            }
        }
    }

    /// `Ok(None)` for null, `Err(())` when missing or invalid.
    fn opt_string(&mut self, map: &Mapping, loc: &str, key: &str) -> Result<Option<String>, ()> {
        match map.get(&Value::from(key)) {
            None => Err(()),
            Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(other) => {
                self.err(&join(loc, key), format!("expected a string or null, found {}", describe(other)));
                Err(())
            }
        }
    }

    fn path(&mut self, map: &Mapping, loc: &str, key: &str) -> Option<String> {
        let s = self.string(map, loc, key)?;
        if s.is_empty() {
            self.err(&join(loc, key), "expected a non-empty path, found an empty string");
            return None;
        }
        if s.contains('\0') {
            self.err(&join(loc, key), "expected a path, found a string with a NUL character");
            return None;
        }
        if let Some(long) = s.split('/').find(|c| c.len() > MAX_NAME_BYTES) {
            let start: String = long.chars().take(24).collect();
            self.err(
                &join(loc, key),
                format!(
                    "Invalid Pathname provided: the path component {start:?}... is {} bytes long, over the {MAX_NAME_BYTES}-byte limit of a file name",
                    long.len()
                ),
            );
            return None;
        }
        Some(s)
    }

    fn md5(&mut self, map: &Mapping, loc: &str, key: &str) -> Option<Md5> {
        let v = map.get(&Value::from(key))?;
        match v {
            Value::Str(s) => match s.parse::<Md5>() {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(&join(loc, key), e.to_string());
                    None
                }
            },
            other => {
                self.err(
                    &join(loc, key),
                    format!("expected an MD5 checksum (32 lowercase hexadecimal digits), found {}", describe(other)),
                );
                None
            }
        }
    }

    fn reference(&mut self, v: &Value, loc: &str) -> Option<Reference> {
        let r = Reference::from_value(v);
        if r.is_none() {
            self.err(loc, format!("expected a checkpoint reference (an int or a string), found {}", describe(v)));
        }
        r
    }

    fn opt_int(&mut self, map: &Mapping, loc: &str, key: &str) -> Result<Option<i64>, ()> {
        match map.get(&Value::from(key)) {
            None => Err(()),
            Some(Value::Null) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(other) => {
                self.err(&join(loc, key), format!("expected an int or null, found {}", describe(other)));
                Err(())
            }
        }
    }

    fn opt_time(&mut self, map: &Mapping, loc: &str, key: &str) -> Result<Option<Timestamp>, ()> {
        match map.get(&Value::from(key)) {
            None => Err(()),
            Some(Value::Null) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(Timestamp::Int(*i))),
            Some(Value::Float(f)) if f.is_finite() => Ok(Some(Timestamp::Float(*f))),
            Some(other) => {
                self.err(
                    &join(loc, key),
                    format!("expected a time in seconds (an int or a finite float) or null, found {}", describe(other)),
                );
                Err(())
            }
        }
    }
}

impl Metadata {
    /// Check a parsed `metadata.yaml` document; on success its typed form, otherwise every offence.
    ///
    /// ```
    /// use plums_model::{parse_yaml, Metadata};
    /// let doc = parse_yaml("format: {version: 1.0.0}\nmodel: 3\n").unwrap();
    /// let offences = Metadata::from_value(&doc).unwrap_err();
    /// let locations: Vec<_> = offences.iter().map(|o| o.location.as_str()).collect();
    /// assert!(locations.contains(&"format.producer"));
    /// assert!(locations.contains(&"model"));
    /// ```
    pub fn from_value(doc: &Value) -> Result<Metadata, Vec<Offence>> {
        match Self::from_value_lenient(doc) {
            (Some(m), offences) if offences.is_empty() => Ok(m),
            (_, offences) => Err(offences),
        }
    }

    /// Like [`Metadata::from_value`], but also returns the typed metadata when every field has
    /// the right type and only value rules are broken (training cross-checks, producer name,
    /// format version...), so that the tree checks can still run on it.
    pub fn from_value_lenient(doc: &Value) -> (Option<Metadata>, Vec<Offence>) {
        let mut c = Checker { offences: Vec::new() };
        let result = parse_metadata(&mut c, doc);
        if result.is_none() && c.offences.is_empty() {
            c.err("", "invalid metadata");
        }
        (result, c.offences)
    }

    /// The document to write as `metadata.yaml`.
    pub fn to_value(&self) -> Value {
        let mut version = Mapping::new();
        version.insert("format".into(), self.producer.version_format.clone().into());
        version.insert("value".into(), self.producer.version.clone().into());
        let mut producer = Mapping::new();
        producer.insert("name".into(), self.producer.name.clone().into());
        producer.insert("version".into(), version.into());
        let mut format = Mapping::new();
        format.insert("version".into(), FORMAT_VERSION.into());
        format.insert("producer".into(), producer.into());

        let m = &self.model;
        let mut model = Mapping::new();
        model.insert("name".into(), opt_str(&m.name));
        model.insert("id".into(), m.id.clone().into());
        model.insert("configuration".into(), file_entry(&m.configuration.path, &m.configuration.hash));
        let init = match &m.initialisation {
            None => Value::Null,
            Some(InitialisationMetadata::Pmf { name, id, checkpoint, path }) => {
                let mut inner = Mapping::new();
                inner.insert("name".into(), opt_str(name));
                inner.insert("id".into(), id.clone().into());
                inner.insert("checkpoint".into(), checkpoint.to_value());
                inner.insert("path".into(), path.clone().into());
                let mut outer = Mapping::new();
                outer.insert("pmf".into(), inner.into());
                outer.into()
            }
            Some(InitialisationMetadata::File { name, path, hash }) => {
                let mut inner = Mapping::new();
                inner.insert("name".into(), opt_str(name));
                inner.insert("path".into(), path.clone().into());
                inner.insert("hash".into(), hash.to_string().into());
                let mut outer = Mapping::new();
                outer.insert("file".into(), inner.into());
                outer.into()
            }
        };
        model.insert("initialisation".into(), init);

        let t = &m.training;
        let r = &t.record;
        let mut training = Mapping::new();
        training.insert("status".into(), r.status.as_str().into());
        training.insert("start_epoch".into(), opt_int(r.start_epoch));
        training.insert("start_time".into(), opt_time(r.start_time));
        training.insert("latest_epoch".into(), opt_int(r.latest_epoch));
        training.insert("latest_time".into(), opt_time(r.latest_time));
        training.insert("end_epoch".into(), opt_int(r.end_epoch));
        training.insert("end_time".into(), opt_time(r.end_time));
        training.insert("latest".into(), t.latest.as_ref().map(Reference::to_value).unwrap_or(Value::Null));
        let mut checkpoints = Mapping::with_capacity(t.checkpoints.len());
        for (reference, entry) in &t.checkpoints {
            let mut e = Mapping::new();
            e.insert("epoch".into(), Value::Int(entry.epoch));
            e.insert("path".into(), entry.path.clone().into());
            e.insert("hash".into(), entry.hash.to_string().into());
            checkpoints.insert(reference.to_value(), e.into());
        }
        training.insert("checkpoints".into(), checkpoints.into());
        model.insert("training".into(), training.into());

        let mut root = Mapping::new();
        root.insert("format".into(), format.into());
        root.insert("model".into(), model.into());
        root.into()
    }
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_ref().map(|s| Value::Str(s.clone())).unwrap_or(Value::Null)
}

fn opt_int(i: Option<i64>) -> Value {
    i.map(Value::Int).unwrap_or(Value::Null)
}

fn opt_time(t: Option<Timestamp>) -> Value {
    match t {
        None => Value::Null,
        Some(Timestamp::Int(i)) => Value::Int(i),
        Some(Timestamp::Float(f)) => Value::Float(f),
    }
}

fn file_entry(path: &str, hash: &Md5) -> Value {
    let mut m = Mapping::new();
    m.insert("path".into(), path.into());
    m.insert("hash".into(), hash.to_string().into());
    m.into()
}

fn parse_metadata(c: &mut Checker, doc: &Value) -> Option<Metadata> {
    let root = c.closed(doc, "", &["format", "model"])?;
    let producer = root.get(&Value::from("format")).and_then(|f| parse_format(c, f));
    let model = root.get(&Value::from("model")).and_then(|m| parse_model(c, m));
    Some(Metadata { producer: producer?, model: model? })
}

fn parse_format(c: &mut Checker, v: &Value) -> Option<ProducerMetadata> {
    let map = c.closed(v, "format", &["version", "producer"])?;
    if let Some(version) = map.get(&Value::from("version")) {
        if version.as_str() != Some(FORMAT_VERSION) {
            c.err(
                "format.version",
                format!("unsupported format version {}: expected \"{FORMAT_VERSION}\"", describe(version)),
            );
        }
    }
    let producer = map.get(&Value::from("producer"))?;
    let pmap = c.closed(producer, "format.producer", &["name", "version"])?;
    let name = c.string(pmap, "format.producer", "name");
    if let Some(n) = &name {
        if !is_valid_producer_name(n) {
            c.err("format.producer.name", format!("invalid producer name {n:?}: expected a letter then at least one letter, digit or \"_\" (^[a-zA-Z][0-9a-zA-Z_]+$)"));
        }
    }
    let vmap =
        pmap.get(&Value::from("version")).and_then(|v| c.closed(v, "format.producer.version", &["format", "value"]));
    let (fmt, value) = match vmap {
        Some(vm) => {
            (c.string(vm, "format.producer.version", "format"), c.string(vm, "format.producer.version", "value"))
        }
        None => (None, None),
    };
    if let (Some(f), Some(v)) = (&fmt, &value) {
        // The built-in format's rules are the crate's own; other formats are the producer's
        // business (the reference accepts any string here), checked when a model is loaded.
        if f == crate::version::PY_PA {
            if let Err(e) = crate::version::Version::pep440(v) {
                c.err("format.producer.version.value", e.to_string());
            }
        }
    }
    Some(ProducerMetadata { name: name?, version_format: fmt?, version: value? })
}

fn parse_model(c: &mut Checker, v: &Value) -> Option<ModelMetadata> {
    let map = c.closed(v, "model", &["name", "id", "configuration", "initialisation", "training"])?;
    let name = c.opt_string(map, "model", "name");
    let id = c.string(map, "model", "id");
    let configuration = map.get(&Value::from("configuration")).and_then(|cv| {
        let cm = c.closed(cv, "model.configuration", &["path", "hash"])?;
        let path = c.path(cm, "model.configuration", "path");
        let hash = c.md5(cm, "model.configuration", "hash");
        Some(FileEntry { path: path?, hash: hash? })
    });
    let initialisation = map.get(&Value::from("initialisation")).and_then(|iv| parse_initialisation(c, iv));
    let training = map.get(&Value::from("training")).and_then(|tv| parse_training(c, tv));
    Some(ModelMetadata {
        name: name.ok()?,
        id: id?,
        configuration: configuration?,
        initialisation: initialisation?,
        training: training?,
    })
}

/// `Some(None)` for a valid null initialisation, `None` when invalid.
fn parse_initialisation(c: &mut Checker, v: &Value) -> Option<Option<InitialisationMetadata>> {
    const LOC: &str = "model.initialisation";
    if v.is_null() {
        return Some(None);
    }
    let Some(map) = v.as_map() else {
        c.err(LOC, format!("expected null, {{pmf: ...}} or {{file: ...}}, found {}", describe(v)));
        return None;
    };
    let keys: Vec<Option<&str>> = map.keys().map(Value::as_str).collect();
    match keys.as_slice() {
        [Some("pmf")] => {
            let loc = "model.initialisation.pmf";
            let inner = c.closed(&map[0], loc, &["name", "id", "checkpoint", "path"])?;
            let name = c.opt_string(inner, loc, "name");
            let id = c.string(inner, loc, "id");
            let checkpoint =
                inner.get(&Value::from("checkpoint")).and_then(|r| c.reference(r, &join(loc, "checkpoint")));
            let path = c.path(inner, loc, "path");
            Some(Some(InitialisationMetadata::Pmf { name: name.ok()?, id: id?, checkpoint: checkpoint?, path: path? }))
        }
        [Some("file")] => {
            let loc = "model.initialisation.file";
            let inner = c.closed(&map[0], loc, &["name", "path", "hash"])?;
            let name = c.opt_string(inner, loc, "name");
            let path = c.path(inner, loc, "path");
            let hash = c.md5(inner, loc, "hash");
            Some(Some(InitialisationMetadata::File { name: name.ok()?, path: path?, hash: hash? }))
        }
        _ => {
            c.err(LOC, "expected exactly one key, \"pmf\" or \"file\" (or null for no initialisation)");
            None
        }
    }
}

fn parse_training(c: &mut Checker, v: &Value) -> Option<TrainingMetadata> {
    const LOC: &str = "model.training";
    let keys = [
        "status",
        "start_epoch",
        "start_time",
        "latest_epoch",
        "latest_time",
        "end_epoch",
        "end_time",
        "latest",
        "checkpoints",
    ];
    let map = c.closed(v, LOC, &keys)?;
    let status = match map.get(&Value::from("status")) {
        Some(Value::Str(s)) => match s.parse::<Status>() {
            Ok(st) => Some(st),
            Err(_) => {
                c.err(
                    &join(LOC, "status"),
                    format!("invalid status {s:?}: expected pending, running, finished or failed"),
                );
                None
            }
        },
        Some(other) => {
            c.err(
                &join(LOC, "status"),
                format!("expected pending, running, finished or failed, found {}", describe(other)),
            );
            None
        }
        None => None,
    };
    let start_epoch = c.opt_int(map, LOC, "start_epoch");
    let start_time = c.opt_time(map, LOC, "start_time");
    let latest_epoch = c.opt_int(map, LOC, "latest_epoch");
    let latest_time = c.opt_time(map, LOC, "latest_time");
    let end_epoch = c.opt_int(map, LOC, "end_epoch");
    let end_time = c.opt_time(map, LOC, "end_time");
    let latest = match map.get(&Value::from("latest")) {
        None => Err(()),
        Some(Value::Null) => Ok(None),
        Some(r) => c.reference(r, &join(LOC, "latest")).map(Some).ok_or(()),
    };
    let checkpoints = map.get(&Value::from("checkpoints")).and_then(|cv| parse_checkpoints(c, cv));

    let record = TrainingRecord {
        status: status?,
        start_epoch: start_epoch.ok()?,
        start_time: start_time.ok()?,
        latest_epoch: latest_epoch.ok()?,
        latest_time: latest_time.ok()?,
        end_epoch: end_epoch.ok()?,
        end_time: end_time.ok()?,
    };
    let latest = latest.ok()?;
    let checkpoints = checkpoints?;
    let latest_missing = latest.as_ref().is_some_and(|l| !checkpoints.is_empty() && !checkpoints.contains_key(l));
    let epochs: Vec<i64> = checkpoints.values().map(|e| e.epoch).collect();
    for offence in check_training(&record, latest_missing, &epochs) {
        c.err(&join(LOC, offence.field), offence.message);
    }
    Some(TrainingMetadata { record, latest, checkpoints })
}

fn parse_checkpoints(c: &mut Checker, v: &Value) -> Option<IndexMap<Reference, CheckpointEntry>> {
    const LOC: &str = "model.training.checkpoints";
    let Some(map) = v.as_map() else {
        c.err(
            LOC,
            format!(
                "expected a mapping of checkpoint reference to {{epoch, path, hash}} (maybe {{}}), found {}",
                describe(v)
            ),
        );
        return None;
    };
    let mut out = IndexMap::with_capacity(map.len());
    let mut ok = true;
    for (key, entry) in map {
        let key_text = match key {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => describe(other),
        };
        let loc = join(LOC, &key_text);
        let reference = c.reference(key, &loc);
        let parsed = c.closed(entry, &loc, &["epoch", "path", "hash"]).and_then(|em| {
            let epoch = match em.get(&Value::from("epoch")) {
                Some(Value::Int(i)) => Some(*i),
                Some(other) => {
                    c.err(&join(&loc, "epoch"), format!("expected an int, found {}", describe(other)));
                    None
                }
                None => None,
            };
            let path = c.path(em, &loc, "path");
            let hash = c.md5(em, &loc, "hash");
            Some(CheckpointEntry { epoch: epoch?, path: path?, hash: hash? })
        });
        match (reference, parsed) {
            (Some(r), Some(e)) => {
                out.insert(r, e);
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut checkpoints = IndexMap::new();
        checkpoints.insert(
            Reference::Int(1),
            CheckpointEntry { epoch: 1, path: "data/checkpoints/1.h5".into(), hash: Md5::of_bytes(b"1") },
        );
        checkpoints.insert(
            Reference::from("1"),
            CheckpointEntry { epoch: 2, path: "data/checkpoints/s1.h5".into(), hash: Md5::of_bytes(b"2") },
        );
        Metadata {
            producer: ProducerMetadata {
                name: "faster_rcnn".into(),
                version_format: "py_pa".into(),
                version: "0.4.0".into(),
            },
            model: ModelMetadata {
                name: Some("yes".into()),
                id: "1e10".into(),
                configuration: FileEntry { path: "config.py".into(), hash: Md5::of_bytes(b"c") },
                initialisation: Some(InitialisationMetadata::File {
                    name: Some("imagenet".into()),
                    path: "data/initialisation/w.h5".into(),
                    hash: Md5::of_bytes(b"w"),
                }),
                training: TrainingMetadata {
                    record: TrainingRecord {
                        status: Status::Running,
                        start_epoch: Some(0),
                        start_time: Some(Timestamp::Float(1552464823.166782)),
                        latest_epoch: Some(2),
                        latest_time: Some(Timestamp::Int(1552481973)),
                        end_epoch: None,
                        end_time: None,
                    },
                    latest: Some(Reference::from("1")),
                    checkpoints,
                },
            },
        }
    }

    #[test]
    fn round_trips_through_value() {
        let m = sample();
        assert_eq!(Metadata::from_value(&m.to_value()).unwrap(), m);
    }

    fn set(doc: &mut Value, path: &[&str], new: Option<Value>) {
        let mut cur = doc;
        for (i, k) in path.iter().enumerate() {
            let Value::Map(map) = cur else { panic!("not a map at {k}") };
            if i + 1 == path.len() {
                match new {
                    Some(v) => {
                        map.insert(Value::from(*k), v);
                    }
                    None => {
                        map.shift_remove(&Value::from(*k));
                    }
                }
                return;
            }
            cur = map.get_mut(&Value::from(*k)).unwrap();
        }
    }

    fn offences_of(doc: &Value) -> Vec<Offence> {
        Metadata::from_value(doc).unwrap_err()
    }

    #[test]
    fn every_offence_is_reported_with_its_location() {
        let mut doc = sample().to_value();
        set(&mut doc, &["format", "version"], Some("1.0.1".into()));
        set(&mut doc, &["format", "producer", "name"], Some("a".into()));
        set(&mut doc, &["model", "id"], Some(Value::Int(3)));
        set(&mut doc, &["model", "configuration", "hash"], Some("ABC".into()));
        set(&mut doc, &["model", "training", "status"], Some("done".into()));
        set(&mut doc, &["model", "training", "extra"], Some(Value::Null));
        set(&mut doc, &["model", "name"], None);
        let offences = offences_of(&doc);
        let locs: Vec<&str> = offences.iter().map(|o| o.location.as_str()).collect();
        for expected in [
            "format.version",
            "format.producer.name",
            "model.id",
            "model.configuration.hash",
            "model.training.status",
            "model.training.extra",
            "model.name",
        ] {
            assert!(locs.contains(&expected), "{expected} not in {locs:?}");
        }
        assert!(offences.iter().all(|o| o.kind == crate::error::OffenceKind::Metadata));
        let status = offences.iter().find(|o| o.location == "model.training.status").unwrap();
        assert!(status.message.contains("expected pending, running, finished or failed"), "{}", status.message);
    }

    #[test]
    fn cross_checks_and_checkpoint_entries() {
        let mut doc = sample().to_value();
        set(&mut doc, &["model", "training", "latest"], Some(Value::Int(7)));
        set(&mut doc, &["model", "training", "latest_epoch"], Some(Value::Int(1)));
        set(&mut doc, &["model", "training", "checkpoints", "1", "epoch"], Some("two".into()));
        let offences = offences_of(&doc);
        let locs: Vec<&str> = offences.iter().map(|o| o.location.as_str()).collect();
        assert!(locs.contains(&"model.training.checkpoints.1.epoch"), "{locs:?}");
        // With a broken checkpoint entry the cross-checks cannot all run; fix it and see them.
        set(&mut doc, &["model", "training", "checkpoints", "1", "epoch"], Some(Value::Int(2)));
        let offences = offences_of(&doc);
        let locs: Vec<&str> = offences.iter().map(|o| o.location.as_str()).collect();
        assert!(locs.contains(&"model.training.latest"), "{locs:?}");
        assert!(locs.contains(&"model.training.checkpoints"), "{locs:?}");
    }

    #[test]
    fn initialisation_forms() {
        let mut doc = sample().to_value();
        let mut both = Mapping::new();
        both.insert("pmf".into(), Mapping::new().into());
        both.insert("file".into(), Mapping::new().into());
        set(&mut doc, &["model", "initialisation"], Some(both.into()));
        let o = offences_of(&doc);
        assert!(
            o.iter().any(|o| o.location == "model.initialisation" && o.message.contains("exactly one key")),
            "{o:?}"
        );
        let mut pmf = Mapping::new();
        let mut inner = Mapping::new();
        inner.insert("name".into(), Value::Null);
        inner.insert("id".into(), "x".into());
        inner.insert("checkpoint".into(), Value::Float(1.5));
        inner.insert("path".into(), "".into());
        pmf.insert("pmf".into(), inner.into());
        set(&mut doc, &["model", "initialisation"], Some(pmf.into()));
        let o = offences_of(&doc);
        let locs: Vec<&str> = o.iter().map(|o| o.location.as_str()).collect();
        assert!(
            locs.contains(&"model.initialisation.pmf.checkpoint") && locs.contains(&"model.initialisation.pmf.path"),
            "{locs:?}"
        );
    }

    #[test]
    fn versions_are_checked_against_the_builtin_format_only() {
        let mut doc = sample().to_value();
        set(&mut doc, &["format", "producer", "version", "value"], Some("not a version".into()));
        let o = offences_of(&doc);
        assert!(
            o.iter().any(|o| o.location == "format.producer.version.value"
                && o.message.starts_with("invalid py_pa version \"not a version\"")),
            "{o:?}"
        );
        // Another format's rules are its producer's: the reference's validation accepts any
        // string, and so do we (Model::load refuses a format it does not know).
        set(&mut doc, &["format", "producer", "version", "format"], Some("zzz".into()));
        assert!(Metadata::from_value(&doc).is_ok());
    }
}
