//! The append path of save: a save that only adds checkpoints to the model it last saved or
//! loaded, done in place, at a cost that does not grow with the number of checkpoints already
//! saved (issue 5: a training loop saves after every epoch).
//!
//! It applies when the folder is exactly the state this model last saw (the caller checked the
//! digest of `metadata.yaml` under the lock) and nothing the old metadata references changes:
//! same configuration file, same `data/build_parameters.yaml` bytes, same initialisation, every
//! checkpoint either already there with its recorded checksum or new under a name that nothing
//! in `data/checkpoints/` has, and no registered file to remove. Then:
//!
//! 1. each new checkpoint is copied to a temporary file in `data/checkpoints/`, synced, and
//!    renamed to its name without replacing anything (`RENAME_NOREPLACE`);
//! 2. `data/checkpoints/` is synced;
//! 3. `metadata.yaml` is replaced atomically (temporary file, sync, rename); the caller records
//!    the new state in the model, then syncs the model folder.
//!
//! Until step 3 the folder holds the old model, whole, plus complete files that it does not
//! reference (PMF allows extra files); from step 3 on, the new model, whole. That is the same
//! guarantee as the staging exchange of [`super`], which handles every other save. A reader
//! never needs a retry: the files of the metadata it read stay in place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::{metadata_text, SaveOptions};
use crate::checkpoint::{Checkpoint, FileStamp};
use crate::commit::Journal;
use crate::digest::Md5;
use crate::error::Result;
use crate::fsutil::{self, copy_verified, write_atomic, Placement};
use crate::hash::md5_file_sized;
use crate::lock::ModelLock;
use crate::metadata::{CheckpointEntry, InitialisationMetadata, Metadata};
use crate::model::{Initialisation, Model};
use crate::paths;
use crate::state::{KnownFiles, Stamp};
use crate::yaml;

/// What an append save did: the digest of the new `metadata.yaml` and the files it now knows.
pub(super) struct Appended {
    pub digest: Md5,
    pub metadata: Box<Metadata>,
    pub known: KnownFiles,
}

/// A new checkpoint file to copy into `data/checkpoints/`.
struct NewFile<'a> {
    rel: PathBuf,
    src: &'a Path,
    hash: Md5,
    /// What the source looked like when its MD5 was computed, if known.
    stamp: Option<FileStamp>,
}

/// Save `model` over the folder `root` in place when only checkpoints are added (see the
/// module documentation). `Ok(None)`: the save is not an append, nothing was written, and the
/// caller takes the staging path. `old` is the folder's metadata, `known` what this model knows
/// of its files.
pub(super) fn try_append(
    model: &Model,
    root: &Path,
    old: &Metadata,
    known: &KnownFiles,
    options: &SaveOptions,
    lock: &ModelLock,
) -> Result<Option<Appended>> {
    if !options.checkpoints || !paths::is_real_dir(root, Path::new("data/checkpoints")) {
        return Ok(None);
    }
    let mut plan = Plan { root, known, new_known: KnownFiles::default() };
    let Some((cfg_name, cfg_hash, initialisation)) = plan.unchanged_parts(model, Path::new(""), old)? else {
        return Ok(None);
    };
    let Some((entries, copies)) = plan.checkpoints(model, options)? else { return Ok(None) };
    let (text, metadata) = metadata_text(model, cfg_name, cfg_hash, entries, initialisation)?;

    // From here on the folder is written: new files first, the metadata last. (The caller
    // removed the leftovers of interrupted saves, `commit::repair`.)
    // Name each file this save creates, once created, so that the next save removes it if this
    // one is interrupted before its metadata is in place (see `commit::repair`).
    let mut journal = Journal::new(&root.join("data/checkpoints"), lock);
    let mut placed: Vec<PathBuf> = Vec::with_capacity(copies.len());
    let undo = |placed: &[PathBuf], journal: &Journal| {
        for p in placed {
            let _ = fs::remove_file(p);
        }
        journal.remove();
    };
    for copy in &copies {
        let dst = root.join(&copy.rel);
        let created = journal
            .open()
            .and_then(|()| copy_verified(copy.src, &dst, copy.hash, copy.stamp, options.durable, Placement::New));
        if let Err(e) = created {
            undo(&placed, &journal);
            return Err(e);
        }
        journal.add(&copy.rel);
        placed.push(dst);
    }
    let committed = (|| {
        if options.durable && !copies.is_empty() {
            fsutil::sync_dir(&root.join("data/checkpoints"))?;
        }
        write_atomic(&root.join("metadata.yaml"), text.as_bytes(), options.durable)
    })();
    if let Err(e) = committed {
        undo(&placed, &journal);
        return Err(e);
    }
    journal.remove();
    for copy in &copies {
        plan.new_known.record(&copy.rel, copy.hash, &root.join(&copy.rel));
    }
    // The new metadata is in place: the caller records it, then syncs the model folder.
    Ok(Some(Appended { digest: Md5::of_bytes(text.as_bytes()), metadata, known: plan.new_known }))
}

struct Plan<'a> {
    root: &'a Path,
    known: &'a KnownFiles,
    new_known: KnownFiles,
}

impl Plan<'_> {
    /// Whether the file at `rel` is the known one with checksum `hash`, unchanged; if so it is
    /// recorded in the new known files.
    fn keep(&mut self, rel: &Path, hash: Md5) -> bool {
        if self.known.hash_of(rel) != Some(hash) {
            return false;
        }
        match self.known.still_has(rel, &self.root.join(rel), hash) {
            Some(stamp) => {
                self.new_known.insert(rel, hash, Some(stamp));
                true
            }
            None => false,
        }
    }

    /// Whether the model at `prefix` has, in the folder, the configuration file, build
    /// parameters and initialisation that a save would write; if so, its configuration name and
    /// checksum and its initialisation entry. `old` is its metadata in the folder.
    #[allow(clippy::type_complexity)]
    fn unchanged_parts(
        &mut self,
        model: &Model,
        prefix: &Path,
        old: &Metadata,
    ) -> Result<Option<(String, Md5, Option<InitialisationMetadata>)>> {
        let cfg = &model.producer.configuration;
        let Some(cfg_name) = cfg.file_name().and_then(|n| n.to_str()) else { return Ok(None) };
        let (cfg_hash, _) = md5_file_sized(cfg)?;
        let old_cfg = &old.model.configuration;
        if old_cfg.path != cfg_name || old_cfg.hash != cfg_hash || !self.keep(&prefix.join(cfg_name), cfg_hash) {
            return Ok(None);
        }
        if !paths::is_real_dir(self.root, &prefix.join("data/initialisation")) {
            return Ok(None);
        }
        let params = prefix.join("data/build_parameters.yaml");
        if !same_bytes(&self.root.join(&params), yaml::to_string(&model.build_parameters).as_bytes()) {
            return Ok(None);
        }
        let initialisation = match model.initialisation() {
            None => None,
            Some(Initialisation::File(ck)) => {
                let Some(entry) = self.init_file(ck, prefix) else { return Ok(None) };
                Some(entry)
            }
            Some(Initialisation::Model(init)) => {
                let Some(entry) = self.init_model(init, prefix)? else { return Ok(None) };
                Some(entry)
            }
        };
        if initialisation != old.model.initialisation {
            return Ok(None);
        }
        Ok(Some((cfg_name.to_owned(), cfg_hash, initialisation)))
    }

    fn init_file(&mut self, ck: &Checkpoint, prefix: &Path) -> Option<InitialisationMetadata> {
        let file = ck.file_name()?.to_str()?;
        let path = format!("data/initialisation/{file}");
        self.keep(&prefix.join(&path), ck.hash).then(|| InitialisationMetadata::File {
            name: Some(ck.name.to_string()),
            path,
            hash: ck.hash,
        })
    }

    /// A PMF initialisation is unchanged when its own parts are and its `metadata.yaml` has the
    /// bytes a save would write.
    fn init_model(&mut self, init: &Model, prefix: &Path) -> Result<Option<InitialisationMetadata>> {
        let Some(checkpoint) = init.checkpoint().cloned() else { return Ok(None) };
        let nested = prefix.join("data/initialisation");
        let metadata_path = self.root.join(&nested).join("metadata.yaml");
        if !paths::is_file_inside(self.root, &format!("{}/metadata.yaml", nested.display())) {
            return Ok(None);
        }
        let Ok((old, _)) = crate::yaml_file::read_metadata(&metadata_path, &yaml::Limits::default()) else {
            return Ok(None);
        };
        let Some((cfg_name, cfg_hash, initialisation)) = self.unchanged_parts(init, &nested, &old)? else {
            return Ok(None);
        };
        let mut entries = IndexMap::with_capacity(init.checkpoint_collection.len());
        for (reference, ck) in init.checkpoint_collection.iter() {
            let Some(epoch) = ck.epoch else { return Ok(None) };
            entries.insert(reference.clone(), CheckpointEntry { epoch, path: ".".to_owned(), hash: ck.hash });
        }
        let (text, _) = metadata_text(init, cfg_name, cfg_hash, entries, initialisation)?;
        if !same_bytes(&metadata_path, text.as_bytes()) {
            return Ok(None);
        }
        Ok(Some(InitialisationMetadata::Pmf {
            name: init.name.clone(),
            id: init.id.clone(),
            checkpoint,
            path: "data/initialisation".to_owned(),
        }))
    }

    /// The checkpoint entries of the new metadata and the files to copy, when every
    /// checkpoint is kept or new and no registered checkpoint file would be left unused.
    #[allow(clippy::type_complexity)]
    fn checkpoints<'m>(
        &mut self,
        model: &'m Model,
        options: &SaveOptions,
    ) -> Result<Option<(IndexMap<crate::Reference, CheckpointEntry>, Vec<NewFile<'m>>)>> {
        let mut entries = IndexMap::with_capacity(model.checkpoint_collection.len());
        let mut copies: Vec<NewFile<'m>> = Vec::new();
        for (reference, ck) in model.checkpoint_collection.iter() {
            let (Some(epoch), Some(src), Some(file)) = (ck.epoch, ck.path.as_deref(), ck.file_name()) else {
                return Ok(None);
            };
            let Some(file) = file.to_str() else { return Ok(None) };
            let path = format!("data/checkpoints/{file}");
            let rel = PathBuf::from(&path);
            let placed_here = self.new_known.hash_of(&rel);
            let ok = if placed_here.is_some() {
                // A second reference to a file of this save: the same content (preflight).
                placed_here == Some(ck.hash)
            } else if self.known.contains(&rel) {
                self.keep(&rel, ck.hash)
            } else {
                match self.new_checkpoint(&rel, src, ck) {
                    Some(NewCheckpoint::InPlace(stamp)) => {
                        self.new_known.insert(&rel, ck.hash, Some(stamp));
                        true
                    }
                    Some(NewCheckpoint::Copy) => {
                        // Reserve the name for a second reference to the same file.
                        self.new_known.insert(&rel, ck.hash, None);
                        copies.push(NewFile { rel: rel.clone(), src, hash: ck.hash, stamp: ck.stamp });
                        true
                    }
                    None => false,
                }
            };
            if !ok {
                return Ok(None);
            }
            entries.insert(reference.clone(), CheckpointEntry { epoch, path, hash: ck.hash });
        }
        // A registered checkpoint file that the model no longer uses is removed by a save: only
        // the staging path can do that without a reader of the old metadata missing it.
        let dropped =
            self.known.paths().any(|rel| rel.starts_with("data/checkpoints") && !self.new_known.contains(rel));
        if dropped && !options.keep_unregistered_files {
            return Ok(None);
        }
        Ok(Some((entries, copies)))
    }

    /// How a checkpoint that the folder does not know yet gets to `rel`: it is already there
    /// (the producer wrote it into the model folder, unchanged since it was hashed), or it is
    /// copied to a name that nothing has. `None`: something else has that name.
    fn new_checkpoint(&self, rel: &Path, src: &Path, ck: &Checkpoint) -> Option<NewCheckpoint> {
        let dst = self.root.join(rel);
        let src_meta = fs::metadata(src).ok()?;
        let trust = ck.stamp == Some(FileStamp::of(&src_meta));
        match fs::symlink_metadata(&dst) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(NewCheckpoint::Copy),
            Ok(m) if trust && m.is_file() && fsutil::same_inode(&src_meta, &m) => {
                Stamp::of(&dst).map(NewCheckpoint::InPlace)
            }
            _ => None,
        }
    }
}

enum NewCheckpoint {
    InPlace(Stamp),
    Copy,
}

/// Whether the regular file at `path` (not a link) holds exactly `bytes`.
fn same_bytes(path: &Path, bytes: &[u8]) -> bool {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => fs::read(path).is_ok_and(|b| b == bytes),
        _ => false,
    }
}
