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
//! The modules are private; everything public is re-exported here. Dependencies run one way:
//!
//! - `yaml`: PyYAML-compatible YAML values, parsing and emitting;
//! - `hash`, `reference`, `version`, `training`, `checkpoint`, `collection`, `producer`:
//!   the model's components and their rules;
//! - `metadata`: the schema of `metadata.yaml`;
//! - `paths`, `fsutil`: confinement to the model root, and file-system primitives;
//! - `validate`: the tree and metadata checks, read-only;
//! - `model`: the model as passive data;
//! - `load` (read-only) and `save`, `lock` (writers, under the model's lock).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod checkpoint;
mod collection;
mod error;
mod fsutil;
mod hash;
mod load;
mod lock;
mod metadata;
mod model;
mod paths;
mod producer;
mod reference;
mod save;
mod training;
mod validate;
mod version;
mod yaml;

pub use checkpoint::Checkpoint;
pub use collection::{CheckpointCollection, CollectionItem};
pub use error::{Category, Error, LockHolder, Offence, OffenceKind, Report, Result, SaveProblem, TrainingOffence};
pub use hash::{md5_file, InvalidMd5, Md5};
pub use load::{initialisation, LoadOptions};
pub use lock::LOCK_FILE;
pub use metadata::{
    CheckpointEntry, FileEntry, InitialisationMetadata, Metadata, ModelMetadata, ProducerMetadata, TrainingMetadata,
    FORMAT_VERSION,
};
pub use model::{Initialisation, Model, SavedState};
pub use producer::{is_valid_producer_name, Producer};
pub use reference::Reference;
pub use save::SaveOptions;
pub use training::{check_training, Status, Timestamp, Training, TrainingRecord};
pub use validate::{check, validate, validate_model, Check, ValidateOptions, ValidatedModel};
pub use version::{Version, VersionFormat, VersionFormats, VersionValue, PY_PA};
pub use yaml::{parse as parse_yaml, parse_with_limits as parse_yaml_with_limits, to_string as to_yaml};
pub use yaml::{Limits as YamlLimits, Mapping, Value, YamlError};
