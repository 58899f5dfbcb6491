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
//! use plums_model::{Model, validate, yaml::Value};
//!
//! let mut model = Model::new("trainer", "py_pa", "1.0.0", Some("detector".into()), "3d6acb1f", &cfg, Model::empty_build_parameters())?;
//! model.register_training_start(0)?;
//! let root = dir.path().join("detector");
//! model.save(&root, false)?;
//! let metadata = validate(&root, true, true)?;
//! assert_eq!(metadata.model.id, "3d6acb1f");
//! # Ok::<(), plums_model::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod collection;
pub mod error;
mod fsutil;
pub mod hash;
pub mod lock;
pub mod metadata;
pub mod model;
mod paths;
pub mod producer;
pub mod reference;
pub mod save;
pub mod training;
pub mod validate;
pub mod version;
pub mod yaml;

pub use checkpoint::Checkpoint;
pub use collection::CheckpointCollection;
pub use error::{Error, Offence, OffenceKind, Report, Result};
pub use hash::{md5_file, Md5};
pub use metadata::{Metadata, FORMAT_VERSION};
pub use model::{initialisation, Initialisation, Model, SavedState};
pub use producer::Producer;
pub use reference::Reference;
pub use save::SaveOptions;
pub use training::{Status, Timestamp, Training, TrainingRecord};
pub use validate::{check, validate, validate_model, Check, ValidateOptions, ValidatedModel};
pub use version::{register, version, Version, VersionFormat, VersionValue};
