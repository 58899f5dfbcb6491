//! What differs between two models ([`diff_at`], [`diff`], [`diff_metadata`]): producer and
//! version, training record, checkpoints, configuration, initialisation, name and id, and build
//! parameters, each change at its key path.
//!
//! What is compared, and the key paths: [`ModelDiff`]; how a model is read: [`DiffSide::read`].

use std::path::{Path, PathBuf};

use crate::error::{Error, Offence, Report, Result};
use crate::files::ModelFiles;
use crate::location::Location;
use crate::metadata::Metadata;
use crate::object_files::ObjectFiles;
use crate::paths::{Entry, Root};
use crate::validate::{check, check_remote, ValidateOptions, ValidatedModel};
use crate::yaml::{Limits, Mapping, Value};
use crate::yaml_file::{ReadError, YamlFile};

/// The key under which the build parameters are compared.
const BUILD_PARAMETERS: &str = "model.build_parameters";

/// What part of a model a [`Change`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DiffSection {
    /// `model.name`, `model.id`.
    Model,
    /// `format.producer`: name, version format and value.
    Producer,
    /// `model.training`: status, epochs, times, latest checkpoint.
    Training,
    /// `model.training.checkpoints`.
    Checkpoints,
    /// `model.configuration`: file name and content MD5.
    Configuration,
    /// `model.initialisation`.
    Initialisation,
    /// `data/build_parameters.yaml`, under `model.build_parameters`.
    BuildParameters,
}

impl DiffSection {
    /// Every section, in the order changes are sorted.
    pub const ALL: [DiffSection; 7] = [
        DiffSection::Model,
        DiffSection::Producer,
        DiffSection::Training,
        DiffSection::Checkpoints,
        DiffSection::Configuration,
        DiffSection::Initialisation,
        DiffSection::BuildParameters,
    ];

    /// `model`, `producer`, `training`, `checkpoints`, `configuration`, `initialisation` or
    /// `build_parameters`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffSection::Model => "model",
            DiffSection::Producer => "producer",
            DiffSection::Training => "training",
            DiffSection::Checkpoints => "checkpoints",
            DiffSection::Configuration => "configuration",
            DiffSection::Initialisation => "initialisation",
            DiffSection::BuildParameters => "build_parameters",
        }
    }

    /// The section of the key path `key`.
    fn of(key: &str) -> DiffSection {
        let under = |prefix: &str| key == prefix || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'));
        if under(BUILD_PARAMETERS) {
            DiffSection::BuildParameters
        } else if under("model.training.checkpoints") {
            DiffSection::Checkpoints
        } else if under("model.training") {
            DiffSection::Training
        } else if under("model.configuration") {
            DiffSection::Configuration
        } else if under("model.initialisation") {
            DiffSection::Initialisation
        } else if under("format") {
            DiffSection::Producer
        } else {
            DiffSection::Model
        }
    }
}

/// How a value differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Only the second model has the key.
    Added,
    /// Only the first model has the key.
    Removed,
    /// Both have it, with different values.
    Changed,
}

impl ChangeKind {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One difference between two models.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// What part of the model it is about.
    pub section: DiffSection,
    /// The key path (`model.training.checkpoints.3.hash`, `model.build_parameters.lr`).
    pub key: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The first model's value (`None` when added).
    pub before: Option<Value>,
    /// The second model's value (`None` when removed).
    pub after: Option<Value>,
}

/// Every difference between two models, by section (in [`DiffSection::ALL`] order), then in
/// the first model's document order (keys only the second model has after the others).
///
/// # What is compared
/// What the models record: their metadata (`metadata.yaml`, as [`Metadata::to_value`] writes
/// it) and their build parameters (`data/build_parameters.yaml`, under the key
/// `model.build_parameters`). Both are walked as YAML trees: a key of a mapping present on one
/// side only is [`ChangeKind::Added`] or [`ChangeKind::Removed`] with its whole value (a
/// checkpoint added is one change, `model.training.checkpoints.3`), a value that differs is
/// [`ChangeKind::Changed`] at the deepest key where both sides are mappings (or sequences,
/// compared item by item: `model.build_parameters.layers.0.size`). So a checkpoint is changed
/// when its epoch, path or MD5 differs, the configuration when its file name or content MD5
/// does, the initialisation when its kind (`model.initialisation` from null to a mapping, or
/// `…pmf` removed and `…file` added), id, name, checkpoint, path or weight file MD5 does.
///
/// Contents are compared by the MD5s the metadata records: files are not read or hashed (a
/// file whose content no longer matches its MD5 is what [`crate::check_at`] in strict mode
/// finds). Two locations of one model (a folder and its copy in a bucket) compare equal.
///
/// # Key paths
/// Keys are joined with `.`; a sequence item is its index. A mapping key that is a string is
/// written as it is, unless it would read as another key (it holds a `.`, is empty, or YAML
/// reads it as something else than that string: `'1'`, `'true'`): then it is quoted (`"1"`),
/// so that the int reference `1` and the string reference `'1'` stay apart. A key that is not
/// a string is its YAML text (`1`, `true`, `null`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ModelDiff {
    /// The changes.
    pub changes: Vec<Change>,
}

impl ModelDiff {
    /// Whether the models record the same things.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes there are.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The changes of one section.
    pub fn in_section(&self, section: DiffSection) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.section == section)
    }
}

/// One model to compare: what it records, where it is, and its offences.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiffSide {
    /// Where it is.
    pub location: Location,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its build parameters; `None` when `data/build_parameters.yaml` could not be read (an
    /// invalid model).
    pub build_parameters: Option<Value>,
    /// Every offence of its check (empty: the model is valid).
    pub offences: Vec<Offence>,
}

impl DiffSide {
    /// A side made of what a caller holds (no offence).
    pub fn new(location: Location, metadata: Metadata, build_parameters: Option<Value>) -> Self {
        DiffSide { location, metadata, build_parameters, offences: Vec::new() }
    }

    /// The side of a validated model.
    pub fn from_validated(model: &ValidatedModel) -> Self {
        let location = match Location::parse(&model.root.to_string_lossy()) {
            Ok(remote @ Location::Object(_)) => remote,
            _ => Location::Local(model.root.clone()),
        };
        DiffSide::new(location, model.metadata.clone(), Some(model.build_parameters.clone()))
    }

    /// Whether the model is valid (as checked by [`DiffSide::read`]).
    pub fn is_valid(&self) -> bool {
        self.offences.is_empty()
    }

    /// Check the model at `location` (as [`crate::check_at`] does with `options`) and read
    /// what it records, even if it is invalid.
    ///
    /// The check's offences are kept (a folder, or a prefix with one listing). A valid model gives what
    /// its validation parsed. An invalid one is still compared when its `metadata.yaml` can be
    /// read and has the schema's types (it is read again, confined to the model root as
    /// validation reads it; on an object store, only the listed key): the comparison needs its
    /// records, not its validity. A model whose metadata cannot be read, a location that cannot
    /// be examined, or a store that fails is an error. Read-only.
    ///
    /// An `Err` when the location cannot be examined (the errors of [`crate::check_at`]), or
    /// when its `metadata.yaml` cannot be read or lacks the schema's types (an
    /// [`Error::MetadataValidation`] or [`Error::TreeValidation`] with every offence).
    pub fn read(location: &Location, options: &ValidateOptions) -> Result<DiffSide> {
        let limits = &options.limits;
        let (checked, files) = match location {
            Location::Local(path) => (check(path, options)?, Files::Local(path, options.allow_external_links)),
            Location::Object(url) => {
                let (checked, files) = check_remote(url, options)?;
                (checked, Files::Remote(Box::new(files)))
            }
        };
        let shown = match location {
            Location::Local(path) => path.clone(),
            other => PathBuf::from(other.to_string()),
        };
        if checked.is_valid() {
            let validated = checked.into_result(&shown)?;
            return Ok(DiffSide::new(location.clone(), validated.metadata, Some(validated.build_parameters)));
        }
        let metadata = match checked.metadata.clone() {
            Some(m) => Some(m),
            None => files.read("metadata.yaml", limits)?.and_then(|file| file.metadata(limits).ok()?.0),
        };
        let Some(metadata) = metadata else {
            return Err(Error::from_report(Report { path: shown, offences: checked.offences }));
        };
        let build_parameters =
            files.read("data/build_parameters.yaml", limits)?.and_then(|file| file.value(limits).ok());
        Ok(DiffSide { location: location.clone(), metadata, build_parameters, offences: checked.offences })
    }
}

/// Where the files of a model that was checked are.
enum Files<'a> {
    /// A folder, and whether links out of it are accepted.
    Local(&'a Path, bool),
    /// A prefix, as its one listing gave it.
    Remote(Box<ObjectFiles>),
}

impl Files<'_> {
    /// The YAML file `rel` of the model, if it can be read within `limits`: on disk, a regular
    /// file inside the model root (never through a link out of it, never a special file); on
    /// an object store, a listed key (a store that fails is an error).
    fn read(&self, rel: &str, limits: &Limits) -> Result<Option<YamlFile>> {
        match self {
            Files::Local(root, external) => {
                let Ok(root) = Root::new(root, *external) else { return Ok(None) };
                let Ok((real, Entry::File)) = root.resolve(Path::new(rel), rel) else { return Ok(None) };
                Ok(YamlFile::read(&real, limits).ok())
            }
            Files::Remote(files) => {
                if files.object(rel).is_none() {
                    return Ok(None);
                }
                match files.read_yaml(&rel.to_owned(), limits) {
                    Ok(file) => Ok(Some(file)),
                    Err(ReadError::Store(e)) => Err(*e),
                    Err(_) => Ok(None),
                }
            }
        }
    }
}

/// What differs between the models at `a` and `b`, each read by [`DiffSide::read`] with
/// `options` (quick by default: no checksum is verified, none is needed).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let cfg = dir.path().join("config.py");
/// # std::fs::write(&cfg, b"lr = 0.1").unwrap();
/// use plums_model::{diff_at, ChangeKind, Location, Model, Producer, SaveOptions, ValidateOptions, Version};
/// let mut model = Model::new("run-1", Producer::new("trainer", Version::pep440("1.0")?, &cfg)?);
/// model.save(dir.path().join("a"), &SaveOptions::new())?;
/// model.name = Some("detector".into());
/// model.save(dir.path().join("b"), &SaveOptions::new())?;
/// let d = diff_at(&Location::from(dir.path().join("a")), &Location::from(dir.path().join("b")), &ValidateOptions::new())?;
/// assert_eq!(d.changes.len(), 1);
/// assert_eq!((d.changes[0].key.as_str(), d.changes[0].kind), ("model.name", ChangeKind::Changed));
/// # Ok::<(), plums_model::Error>(())
/// ```
pub fn diff_at(a: &Location, b: &Location, options: &ValidateOptions) -> Result<ModelDiff> {
    Ok(diff(&DiffSide::read(a, options)?, &DiffSide::read(b, options)?))
}

/// What differs between two models read by [`DiffSide::read`] (or made with
/// [`DiffSide::new`]).
pub fn diff(a: &DiffSide, b: &DiffSide) -> ModelDiff {
    diff_metadata(&a.metadata, a.build_parameters.as_ref(), &b.metadata, b.build_parameters.as_ref())
}

/// What differs between two models' metadata and build parameters (`None`: unknown, as if
/// the key `model.build_parameters` were absent).
///
/// ```
/// use plums_model::{diff_metadata, parse_yaml, ChangeKind, DiffSection, Metadata, Value};
/// let text = std::fs::read_to_string("../../examples/detector/metadata.yaml").unwrap();
/// let a = Metadata::from_value(&parse_yaml(&text).unwrap()).unwrap();
/// let mut b = a.clone();
/// b.model.training.checkpoints.shift_remove(&plums_model::Reference::from("best"));
/// let params = parse_yaml("layers: [{size: 3}]").unwrap();
/// let other = parse_yaml("layers: [{size: 4}]").unwrap();
/// let d = diff_metadata(&a, Some(&params), &b, Some(&other));
/// let keys: Vec<_> = d.changes.iter().map(|c| (c.section, c.key.as_str(), c.kind)).collect();
/// assert_eq!(keys, [
///     (DiffSection::Checkpoints, "model.training.checkpoints.best", ChangeKind::Removed),
///     (DiffSection::BuildParameters, "model.build_parameters.layers.0.size", ChangeKind::Changed),
/// ]);
/// assert_eq!(d.changes[1].after, Some(Value::Int(4)));
/// ```
pub fn diff_metadata(a: &Metadata, a_build: Option<&Value>, b: &Metadata, b_build: Option<&Value>) -> ModelDiff {
    let mut changes = Vec::new();
    walk(String::new(), Some(&a.to_value()), Some(&b.to_value()), &mut changes);
    walk(BUILD_PARAMETERS.to_owned(), a_build, b_build, &mut changes);
    // Stable: the walk's order within each section.
    changes.sort_by_key(|c| c.section);
    ModelDiff { changes }
}

/// `key` joined with the next segment `segment`.
fn join(key: &str, segment: &str) -> String {
    if key.is_empty() {
        segment.to_owned()
    } else {
        format!("{key}.{segment}")
    }
}

/// Whether the string key `s` is shown unquoted in a key path: YAML reads `s` alone back as the
/// string `s` (a plain scalar that resolves to a string), and it has no `.`.
///
/// Reading a document that is exactly `s` takes one scalar node (a tag, an anchor, quotes, a
/// comment, a document marker or a collection would make the text differ from the value), so the
/// reader runs with limits of one node and `s.len()` bytes: a hostile key (an alias bomb) fails
/// at its second node instead of costing up to the default limits for every key of a diff.
fn plain_key(s: &str) -> bool {
    let one_scalar = crate::yaml::Limits { max_bytes: s.len(), max_depth: 1, max_nodes: 1 };
    !s.is_empty()
        && !s.contains('.')
        && matches!(crate::yaml::parse_with_limits(s, &one_scalar), Ok(Value::Str(ref read)) if read == s)
}

/// A mapping key as a key path segment (see the module documentation).
fn segment(key: &Value) -> String {
    match key {
        Value::Str(s) => {
            if plain_key(s) {
                s.clone()
            } else {
                format!("{s:?}")
            }
        }
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        other => crate::yaml::to_string(other).trim_end().to_owned(),
    }
}

/// Record the differences between `a` and `b` at `key`.
fn walk(key: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    let change =
        |kind, key: String| Change { section: DiffSection::of(&key), key, kind, before: a.cloned(), after: b.cloned() };
    match (a, b) {
        (None, None) => {}
        (Some(_), None) => out.push(change(ChangeKind::Removed, key)),
        (None, Some(_)) => out.push(change(ChangeKind::Added, key)),
        (Some(x), Some(y)) if x == y => {}
        (Some(Value::Map(x)), Some(Value::Map(y))) => walk_maps(&key, x, y, out),
        (Some(Value::Seq(x)), Some(Value::Seq(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(join(&key, &i.to_string()), x.get(i), y.get(i), out);
            }
        }
        (Some(_), Some(_)) => out.push(change(ChangeKind::Changed, key)),
    }
}

fn walk_maps(key: &str, x: &Mapping, y: &Mapping, out: &mut Vec<Change>) {
    for (k, v) in x {
        walk(join(key, &segment(k)), Some(v), y.get(k), out);
    }
    for (k, v) in y {
        if !x.contains_key(k) {
            walk(join(key, &segment(k)), None, Some(v), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;
    use crate::yaml::parse;

    fn detector() -> Metadata {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/detector/metadata.yaml");
        Metadata::from_value(&parse(&std::fs::read_to_string(path).unwrap()).unwrap()).unwrap()
    }

    fn keys(d: &ModelDiff) -> Vec<(&str, ChangeKind)> {
        d.changes.iter().map(|c| (c.key.as_str(), c.kind)).collect()
    }

    #[test]
    fn a_model_equals_itself() {
        let m = detector();
        let params = parse("a: .nan\nb: [1, {c: 2}]").unwrap();
        assert!(diff_metadata(&m, Some(&params), &m, Some(&params)).is_empty(), "NaN equals itself here");
        assert!(diff_metadata(&m, None, &m, None).is_empty());
    }

    #[test]
    fn sections_follow_the_metadata_and_are_sorted() {
        let a = detector();
        let mut b = a.clone();
        b.producer.version = "0.5.0".into();
        b.model.id = "other".into();
        b.model.training.record.end_epoch = None;
        b.model.configuration.path = "other.py".into();
        let entry = b.model.training.checkpoints.get_mut(&Reference::Int(2)).unwrap();
        entry.epoch = 1;
        b.model.training.checkpoints.insert(Reference::Str("2".into()), a.model.training.checkpoints[0].clone());
        if let Some(crate::metadata::InitialisationMetadata::Pmf { checkpoint, .. }) = &mut b.model.initialisation {
            *checkpoint = Reference::Str("best".into());
        }
        let d = diff_metadata(&a, Some(&Value::Null), &b, Some(&parse("x: 1").unwrap()));
        let sections: Vec<&str> = d.changes.iter().map(|c| c.section.as_str()).collect();
        assert_eq!(
            sections,
            [
                "model",
                "producer",
                "training",
                "checkpoints",
                "checkpoints",
                "configuration",
                "initialisation",
                "build_parameters"
            ]
        );
        assert_eq!(
            keys(&d),
            [
                ("model.id", ChangeKind::Changed),
                ("format.producer.version.value", ChangeKind::Changed),
                ("model.training.end_epoch", ChangeKind::Changed),
                ("model.training.checkpoints.2.epoch", ChangeKind::Changed),
                ("model.training.checkpoints.\"2\"", ChangeKind::Added),
                ("model.configuration.path", ChangeKind::Changed),
                ("model.initialisation.pmf.checkpoint", ChangeKind::Changed),
                ("model.build_parameters", ChangeKind::Changed),
            ]
        );
        let end = &d.changes[2];
        assert_eq!((&end.before, &end.after), (&Some(Value::Int(3)), &Some(Value::Null)));
        assert_eq!(d.in_section(DiffSection::Checkpoints).count(), 2);
    }

    #[test]
    fn build_parameters_are_walked_by_key_path() {
        let m = detector();
        let a = parse("layers: [{size: 3}, {size: 4}]\nlr: 0.1\nold: x\n1: int key\n'a.b': dotted\n").unwrap();
        let b = parse("layers: [{size: 3}, {size: 5}, {size: 6}]\nlr: '0.1'\nnew: {deep: [1]}\n1: int key\n'1': str key\n'a.b': dotted!\n").unwrap();
        let d = diff_metadata(&m, Some(&a), &m, Some(&b));
        assert_eq!(
            keys(&d),
            [
                ("model.build_parameters.layers.1.size", ChangeKind::Changed),
                ("model.build_parameters.layers.2", ChangeKind::Added),
                ("model.build_parameters.lr", ChangeKind::Changed),
                ("model.build_parameters.old", ChangeKind::Removed),
                ("model.build_parameters.\"a.b\"", ChangeKind::Changed),
                ("model.build_parameters.new", ChangeKind::Added),
                ("model.build_parameters.\"1\"", ChangeKind::Added),
            ]
        );
        assert_eq!(d.changes[2].before, Some(Value::Float(0.1)));
        assert_eq!(d.changes[2].after, Some(Value::Str("0.1".into())));
        let unknown = diff_metadata(&m, Some(&a), &m, None);
        assert_eq!(keys(&unknown), [("model.build_parameters", ChangeKind::Removed)]);
    }

    /// The decision before the reader was bounded: the full reader with the default limits.
    fn plain_key_unbounded(s: &str) -> bool {
        !s.is_empty() && !s.contains('.') && matches!(parse(s), Ok(Value::Str(ref read)) if read == s)
    }

    #[test]
    fn bounded_plain_key_decides_as_the_full_reader() {
        // Every string of up to 3 characters over an alphabet of YAML's syntax characters.
        let alphabet: Vec<char> = "a1 -?:,[]{}#&*!|>'\"%@`~.=<\n\t\\x".chars().collect();
        let mut texts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..3 {
            let next: Vec<String> = last.iter().flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}"))).collect();
            texts.extend(next.iter().cloned());
            last = next;
        }
        texts.extend(
            [
                "best",
                "yes",
                "No",
                "1_000",
                "0x1f",
                "1e10",
                "1.5",
                ".inf",
                "2020-01-01",
                "<<",
                "=",
                "~",
                "null",
                "a: b",
                "a:b",
                "---",
                "--- x",
                "...",
                "%YAML 1.1",
                "&a [*a]",
                "é",
                "modèle",
                "a\u{2028}b",
                "a\u{85}b",
                "a\rb",
                "\u{feff}x",
                "x\u{7}",
            ]
            .map(String::from),
        );
        for text in &texts {
            assert_eq!(plain_key(text), plain_key_unbounded(text), "{text:?}");
        }
    }

    #[test]
    fn a_hostile_key_is_decided_without_building_it() {
        // 9^8 nodes once expanded: far over the default limit of 10^6, refused at the second node.
        let mut bomb = String::from("[&a0 [x,x,x,x,x,x,x,x,x]");
        for i in 1..=8 {
            bomb.push_str(&format!(", &a{i} [{}]", vec![format!("*a{}", i - 1); 9].join(",")));
        }
        bomb.push(']');
        assert_eq!(segment(&Value::from(bomb.as_str())), format!("{bomb:?}"));
        // What bounds the cost: the key is read as one scalar at most (one node, depth 1), which
        // the first collection already exceeds (the default limits would build 10^6 nodes).
        let one_scalar = crate::yaml::Limits { max_bytes: bomb.len(), max_depth: 1, max_nodes: 1 };
        let refused = crate::yaml::parse_with_limits(&bomb, &one_scalar).unwrap_err();
        assert_eq!((refused.line, refused.column), (1, 2), "refused at the first nested collection: {refused}");
    }

    #[test]
    fn segments_keep_references_apart() {
        assert_eq!(segment(&Value::Int(1)), "1");
        assert_eq!(segment(&Value::from("1")), "\"1\"");
        assert_eq!(segment(&Value::from("best")), "best");
        assert_eq!(segment(&Value::from("true")), "\"true\"");
        assert_eq!(segment(&Value::from("")), "\"\"");
        assert_eq!(segment(&Value::from("a: b")), "\"a: b\"");
        assert_eq!(segment(&Value::Null), "null");
        for key in ["learning rate", "-x", "a,b", "x[1]", "a*b", "a&b", "modèle", "a:b", "a#b", "?x", "---x"] {
            assert_eq!(segment(&Value::from(key)), key, "{key:?}");
        }
        for key in ["'x'", "&a x", "*a", "!!str x", "x #c", "- x", "[x]", "{x: 1}", " x", "x ", "x\ny", "--- x", "a.b"]
        {
            assert_eq!(segment(&Value::from(key)), format!("{key:?}"), "{key:?}");
        }
        assert_eq!(DiffSection::of("model.training"), DiffSection::Training);
        assert_eq!(DiffSection::of("model.trainingx"), DiffSection::Model);
        assert_eq!(DiffSection::of("model.build_parameters"), DiffSection::BuildParameters);
        assert_eq!(DiffSection::of("format.version"), DiffSection::Producer);
    }
}
