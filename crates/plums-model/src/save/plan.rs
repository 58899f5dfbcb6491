//! The tree a save writes, computed from the model alone, wherever it is written: every file
//! (relative path, where its bytes come from, its checksum), the folders of every model in the
//! tree, and the top-level `metadata.yaml` (written last by every writer: it is the commit
//! point). The staging writer of a folder (`super`) and the object-store writer
//! (`remote.rs`) both walk a [`Plan`].

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::{metadata_text, refused, utf8_name};
use crate::checkpoint::{Checkpoint, FileStamp};
use crate::digest::Md5;
use crate::error::Result;
use crate::hash::md5_file_sized;
use crate::location::{Location, ObjectUrl};
use crate::metadata::{CheckpointEntry, InitialisationMetadata, Metadata};
use crate::model::{Initialisation, Model};
use crate::reference::Reference;
use crate::storage::StorageOptions;
use crate::yaml;

/// Where the bytes of a planned file come from.
#[derive(Debug)]
pub(crate) enum Content {
    /// A file of the producer's (`src`; `None` for a checkpoint of a model loaded without its
    /// files, which the destination must already hold) with checksum `hash`, computed from
    /// the bytes the file had when `stamp` was taken (when known).
    File { src: Option<PathBuf>, origin: Option<Origin>, hash: Md5, stamp: Option<FileStamp> },
    /// Bytes computed by the save (`data/build_parameters.yaml`, a nested `metadata.yaml`).
    Bytes(Vec<u8>),
}

/// Where a file of a model loaded from an object store is, when it was not fetched (a
/// non-strict load): a save to another place fetches it from there, verified.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub url: ObjectUrl,
    /// The file's metadata path in that model (`data/checkpoints/3.pt`).
    pub path: String,
}

impl Content {
    /// The local file of this content: its source, else its origin's file fetched into the
    /// cache (verified against its MD5); `None` for bytes or a file with neither.
    pub(crate) fn local_file(&self, storage: &StorageOptions) -> Result<Option<PathBuf>> {
        match self {
            Content::File { src: Some(src), .. } => Ok(Some(src.clone())),
            Content::File { src: None, origin: Some(o), hash, .. } => {
                crate::load::fetch(&Location::Object(o.url.clone()), &o.path, *hash, storage).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The size of the content, as far as known without reading it (a file not fetched yet
    /// counts 0).
    pub(crate) fn size(&self) -> u64 {
        match self {
            Content::File { src: Some(src), .. } => std::fs::metadata(src).map(|m| m.len()).unwrap_or(0),
            Content::File { .. } => 0,
            Content::Bytes(bytes) => bytes.len() as u64,
        }
    }

    /// The MD5 of the content.
    pub(crate) fn hash(&self) -> Md5 {
        match self {
            Content::File { hash, .. } => *hash,
            Content::Bytes(bytes) => Md5::of_bytes(bytes),
        }
    }
}

/// One file of the new tree.
#[derive(Debug)]
pub(crate) struct Planned {
    /// Its path relative to the model root.
    pub rel: PathBuf,
    pub content: Content,
    /// What it is, for messages (`checkpoint 3`, `the configuration file`).
    pub what: String,
}

/// The new tree of a model.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The models of the tree: where (`""`, `data/initialisation`, ...) and whether their
    /// checkpoint files are saved.
    pub models: Vec<(PathBuf, bool)>,
    /// Every file but the top-level `metadata.yaml`, parents before the files they hold.
    pub files: Vec<Planned>,
    /// The top-level `metadata.yaml`.
    pub metadata_text: String,
    /// What it says.
    pub metadata: Box<Metadata>,
}

impl Plan {
    /// The new tree of `model` (its checkpoint files included when `checkpoints`). Reads the
    /// configuration files (to compute their checksums); nothing else.
    ///
    /// A loop over the chain of initialisation models, not a recursion: chains as deep as
    /// paths allow are planned with a small stack.
    pub(crate) fn of(model: &Model, checkpoints: bool) -> Result<Plan> {
        let mut planner = Planner::default();
        let mut next = Some((model, PathBuf::new(), checkpoints));
        let mut top = None;
        while let Some((m, prefix, checkpoints)) = next.take() {
            planner.models.push((prefix.clone(), checkpoints));
            let (cfg_name, cfg_hash) = planner.add_files(m, &prefix)?;
            let entries = planner.add_checkpoints(m, &prefix, checkpoints)?;
            let initialisation = match m.initialisation() {
                None => None,
                Some(Initialisation::File(ck)) => Some(planner.add_init_file(m, ck, &prefix)?),
                Some(Initialisation::Model(init)) => {
                    let checkpoint = init.checkpoint().cloned().ok_or_else(|| {
                        refused("initialisation", "the initialisation model has no checkpoint reference")
                    })?;
                    next = Some((init.as_ref(), prefix.join("data/initialisation"), false));
                    Some(InitialisationMetadata::Pmf {
                        name: init.name.clone(),
                        id: init.id.clone(),
                        checkpoint,
                        path: "data/initialisation".to_owned(),
                    })
                }
            };
            let (text, metadata) = metadata_text(m, cfg_name, cfg_hash, entries, initialisation)?;
            if top.is_none() {
                top = Some((text, metadata));
            } else {
                planner.push(
                    prefix.join("metadata.yaml"),
                    Content::Bytes(text.into_bytes()),
                    "the initialisation model's metadata",
                );
            }
        }
        let (metadata_text, metadata) = top.expect("the loop plans the model itself first");
        Ok(Plan { models: planner.models, files: planner.files, metadata_text, metadata })
    }
}

/// A plan being built, model by model.
#[derive(Default)]
struct Planner {
    models: Vec<(PathBuf, bool)>,
    files: Vec<Planned>,
}

impl Planner {
    fn push(&mut self, rel: PathBuf, content: Content, what: impl Into<String>) {
        // Two references to one file (same name, same content: checked by the preflight).
        if self.files.iter().any(|f| f.rel == rel) {
            return;
        }
        self.files.push(Planned { rel, content, what: what.into() });
    }

    /// Plan the configuration file and the build parameters of `model` at `prefix`; the
    /// configuration's name and checksum.
    fn add_files(&mut self, model: &Model, prefix: &Path) -> Result<(String, Md5)> {
        let cfg = &model.producer.configuration;
        let cfg_name = utf8_name(cfg, "producer.configuration")?;
        // A snapshot queued for a background save carries the MD5 the file had at the call: the
        // copy is verified against it.
        let cfg_hash = match model.configuration_md5 {
            Some(hash) => hash,
            None => md5_file_sized(cfg)?.0,
        };
        self.push(
            prefix.join(&cfg_name),
            Content::File { src: Some(cfg.clone()), origin: None, hash: cfg_hash, stamp: None },
            "the configuration file",
        );
        self.push(
            prefix.join("data/build_parameters.yaml"),
            Content::Bytes(yaml::to_string(&model.build_parameters).into_bytes()),
            "the build parameters",
        );
        Ok((cfg_name, cfg_hash))
    }

    /// Plan the checkpoint files of `model` at `prefix` (when `checkpoints`, else their
    /// metadata paths are `.`); their metadata entries.
    fn add_checkpoints(
        &mut self,
        model: &Model,
        prefix: &Path,
        checkpoints: bool,
    ) -> Result<IndexMap<Reference, CheckpointEntry>> {
        let mut entries = IndexMap::with_capacity(model.checkpoint_collection.len());
        for (reference, ck) in model.checkpoint_collection.iter() {
            let location = format!("checkpoints.{reference}");
            let epoch = ck.epoch.ok_or_else(|| refused(&location, "the checkpoint has no epoch"))?;
            let path = if checkpoints {
                let origin = checkpoint_origin(model, reference, ck);
                let named = ck.path.clone().or_else(|| origin.as_ref().map(|o| PathBuf::from(&o.path)));
                let file = named.as_deref().map(|p| utf8_name(p, &location)).transpose()?;
                let file =
                    file.ok_or_else(|| refused(&location, "the checkpoint has no file to save (path is None)"))?;
                self.push(
                    prefix.join("data/checkpoints").join(&file),
                    Content::File { src: ck.path.clone(), origin, hash: ck.hash, stamp: ck.stamp },
                    format!("checkpoint {}", reference.quoted()),
                );
                format!("data/checkpoints/{file}")
            } else {
                ".".to_owned()
            };
            entries.insert(reference.clone(), CheckpointEntry { epoch, path, hash: ck.hash });
        }
        Ok(entries)
    }

    fn add_init_file(&mut self, model: &Model, ck: &Checkpoint, prefix: &Path) -> Result<InitialisationMetadata> {
        let origin = init_file_origin(model, ck);
        let named = ck.path.clone().or_else(|| origin.as_ref().map(|o| PathBuf::from(&o.path)));
        let named = named.ok_or_else(|| refused("initialisation", "the initialisation file has no path"))?;
        let file = utf8_name(&named, "initialisation")?;
        self.push(
            prefix.join("data/initialisation").join(&file),
            Content::File { src: ck.path.clone(), origin, hash: ck.hash, stamp: ck.stamp },
            "the initialisation file",
        );
        Ok(InitialisationMetadata::File {
            name: Some(ck.name.to_string()),
            path: format!("data/initialisation/{file}"),
            hash: ck.hash,
        })
    }
}

/// Where the file of checkpoint `reference` of a model loaded from an object store is, when
/// it was not fetched (same checksum as loaded).
pub(crate) fn checkpoint_origin(model: &Model, reference: &Reference, ck: &Checkpoint) -> Option<Origin> {
    let (url, metadata) = remote_source(model).filter(|_| ck.path.is_none())?;
    let entry = metadata.model.training.checkpoints.get(reference).filter(|e| e.hash == ck.hash)?;
    Some(Origin { url: url.clone(), path: entry.path.clone() })
}

/// The object-store model a model was loaded from (or last saved to, as its saved state says:
/// language bindings restore that state, not the origin), and its metadata then.
fn remote_source(model: &Model) -> Option<(&ObjectUrl, &Metadata)> {
    match (&model.remote, &model.object_sync) {
        (Some(r), _) => Some((&r.url, &r.metadata)),
        (None, Some(s)) => Some((&s.url, &s.metadata)),
        (None, None) => None,
    }
}

/// Where the initialisation file of a model loaded from an object store is, when it was not
/// fetched (same checksum as loaded).
pub(crate) fn init_file_origin(model: &Model, ck: &Checkpoint) -> Option<Origin> {
    let (url, metadata) = remote_source(model).filter(|_| ck.path.is_none())?;
    match &metadata.model.initialisation {
        Some(InitialisationMetadata::File { path, hash, .. }) if *hash == ck.hash => {
            Some(Origin { url: url.clone(), path: path.clone() })
        }
        _ => None,
    }
}
