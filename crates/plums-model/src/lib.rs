//! # plums-model: the Plums Model Format (PMF) 1.0.0
//!
//! PMF stores a trained machine-learning model as a plain folder:
//!
//! ```text
//! <model root>/
//!   metadata.yaml              producer, version, training state, checkpoints and their MD5s
//!   <configuration file>       the producer's configuration, any content
//!   data/
//!     build_parameters.yaml    what a consumer needs to instantiate the network
//!     checkpoints/<file>...    one file per registered checkpoint
//!     initialisation/          empty, one weight file, or a whole PMF model (recursively)
//! ```
//!
//! Producers (training code) build a [`Model`] and [`Model::save`] it; consumers
//! [`validate()`] a folder or [`Model::load`] it. Validation reports every offence at once,
//! with its kind (tree or metadata) and its location. The YAML layer follows PyYAML's rules, so
//! models move both ways between this crate and the reference Python package `plums` 0.5.2.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let cfg = dir.path().join("config.py");
//! # std::fs::write(&cfg, b"lr = 0.1").unwrap();
//! use plums_model::{validate, Model, Producer, SaveOptions, ValidateOptions, Version};
//!
//! let mut model = Model::new("3d6acb1f", Producer::new("trainer", Version::pep440("1.0.0")?, &cfg)?);
//! model.name = Some("detector".into());
//! model.register_training_start(0)?;
//! let root = dir.path().join("detector");
//! model.save(&root, &SaveOptions::new())?;
//! let metadata = validate(&root, &ValidateOptions::new().strict(true))?;
//! assert_eq!(metadata.model.id, "3d6acb1f");
//! # Ok::<(), plums_model::Error>(())
//! ```
//!
//! # Architecture
//!
//! The modules are private; everything public is re-exported here. Each layer uses only the
//! layers above it, and the module graph has no cycle (`tests/architecture.rs` checks both):
//!
//! 1. `yaml`: PyYAML-compatible YAML values, parsing and emitting;
//! 2. `digest` (the MD5 type), `status` (the training status machine), `reference`, then
//!    `error` (the one error enum, which carries those values), then the components that use
//!    it: `hash` (computing MD5s), `version`, `training`, `checkpoint`, `collection`,
//!    `retention` (which checkpoints a policy keeps, and pruning), `producer`;
//! 3. `metadata`: the schema of `metadata.yaml`;
//! 4. `paths` (the one confinement check: what stays inside a model root; the names PMF
//!    reserves), `yaml_file` (the one reader of a model's YAML files: size limit, BOM, parse,
//!    digest);
//! 5. `fsutil`, `lock`: file-system primitives, the writer lock;
//! 6. `leftovers` (the names of what interrupted saves leave, read-only lookups) and `commit`
//!    (the commit of a save and the repair of interrupted ones, called only by writers holding
//!    the lock);
//! 7. `validate`: the tree and metadata checks, read-only;
//!    `catalog` ([`list_models`]): every model under a folder or a prefix (one walk or one
//!    listing), each checked by `validate` and summarised, in parallel, read-only;
//!    `lineage` ([`lineage()`]): the graph of models by initialisation, computed from the
//!    catalog's summaries (nothing read); `diff` ([`diff()`]): what differs between two
//!    models' metadata and build parameters, read by `validate` (read-only);
//! 8. `state`: what a model knows of the folder it last loaded or saved (passive data);
//! 9. `model`: the model as passive data;
//! 10. `load` (read-only) and `save` (with `save/append.rs`, saves done in place): the model
//!     from a folder, and to a folder under the lock;
//! 11. `background` ([`SaveQueue`]: saves of a snapshot of the model on a worker thread, one at
//!     a time, in call order, errors never lost) and `session` ([`TrainingSession`]: a guard
//!     recording a training's start, epochs and end, saving, and ending on SIGTERM); they only
//!     order calls of the model and of `save`.
//! 12. `gc` ([`gc()`]): removes what interrupted saves left under a folder or a prefix, a
//!     writer beside `save`: models found by `catalog`, each under its writer lock
//!     (`commit::lock_writer`, `object_lock`), the leftovers removed by `commit::repair`, the
//!     unreferenced objects at PMF's paths deleted; no reader reaches it.
//!
//! Readers (`validate`, `load`) never change the file system: they report a model folder
//! missing after an interrupted save ([`Error::InterruptedSave`]) and ignore the other
//! leftovers; the next writer repairs them.
//!
//! Object storage (`s3://bucket/prefix`, [`Location`]) is a second backend beside layers 4 to
//! 6, with the same model, metadata and rules above it: `location` (a path or a URL), `storage`
//! (options, the `object_store` clients, the requests), `cache` (verified downloads),
//! `object_files` (what validation reads of a prefix: one listing), `object_lock` (the writer
//! lock object, with a lease) and `upload` (files streamed and hashed once); `save/remote.rs`
//! saves to a prefix (new objects first, `metadata.yaml` committed last and conditionally, a
//! marker while referenced objects are replaced) over the same plan of the new tree
//! (`save/plan.rs`) as the save to a folder.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod background;
mod cache;
mod catalog;
mod checkpoint;
mod collection;
mod commit;
mod diff;
mod digest;
mod error;
mod files;
mod fsutil;
mod gc;
mod hash;
mod leftovers;
mod lineage;
mod load;
mod location;
mod lock;
mod metadata;
mod model;
mod object_files;
mod object_lock;
mod paths;
mod producer;
mod reference;
mod retention;
mod save;
mod session;
mod state;
mod status;
mod storage;
mod training;
mod upload;
mod validate;
mod version;
mod yaml;
mod yaml_file;

pub use background::{Drained, SaveHandle, SaveQueue};
pub use cache::{Cache, CacheInfo, PruneOptions, PruneReport};
pub use catalog::{for_each_model, list_models, InitialisationSummary, ListOptions, ModelSummary};
pub use checkpoint::Checkpoint;
pub use collection::{CheckpointCollection, CollectionItem};
pub use diff::{diff, diff_at, diff_metadata, Change, ChangeKind, DiffSection, DiffSide, ModelDiff};
pub use digest::{InvalidMd5, Md5};
pub use error::{
    Category, Error, LockHolder, Offence, OffenceKind, Report, Result, SaveProblem, StorageErrorKind, TrainingOffence,
};
pub use gc::{gc, GcCompleted, GcItem, GcKind, GcOptions, GcReport, GcSkip, SkipKind, GC_LOCK_TIMEOUT};
pub use hash::{md5_file, Progress};
pub use lineage::{lineage, Lineage, LineageEdge, LineageNode, LineageProblem, NodeKind};
pub use load::{fetch, initialisation, initialisation_at, LoadOptions};
pub use location::{Location, ObjectUrl};
pub use metadata::{
    CheckpointEntry, FileEntry, InitialisationMetadata, Metadata, ModelMetadata, ProducerMetadata, TrainingMetadata,
    FORMAT_VERSION,
};
pub use model::{Initialisation, Model};
pub use paths::{LOCK_FILE, SAVE_MARKER};
pub use producer::{is_valid_producer_name, Producer};
pub use reference::Reference;
pub use retention::{KeepReason, MetricMode, Retention, Selection};
pub use save::SaveOptions;
pub use session::{SessionOptions, TrainingSession};
pub use state::SavedState;
pub use status::Status;
pub use storage::{StorageOptions, StorageStats};
pub use training::{check_training, Timestamp, Training, TrainingRecord};
pub use validate::{
    check, check_at, validate, validate_at, validate_model, validate_model_at, Check, ValidateOptions, ValidatedModel,
};
pub use version::{Version, VersionFormat, VersionFormats, VersionValue, PY_PA};
#[cfg(fuzzing)]
#[doc(hidden)]
pub use yaml::fast_and_full as __fuzz_yaml_fast_and_full;
pub use yaml::{parse as parse_yaml, parse_with_limits as parse_yaml_with_limits, to_string as to_yaml};
pub use yaml::{Limits as YamlLimits, Mapping, Value, YamlError};
