//! Fixtures shared by the criterion benches (`benches/hot_paths.rs`) and the workload program
//! of `benches/compare` (`examples/bench_workloads.rs`, which includes this file with
//! `#[path]`): random file contents, and PMF models with many or large checkpoints.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use plums_model::{Checkpoint, Error, Model, Producer, Result, SaveOptions, Version};

/// SplitMix64: fast, deterministic pseudo-random bytes (fresh content per seed, incompressible
/// enough that no file system shortcut applies).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Write `size` pseudo-random bytes to `path` (not synced: a training loop does not sync its
/// own checkpoint file either).
pub fn write_random(path: &Path, size: u64, rng: &mut Rng) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; (1 << 20).min(size.max(1) as usize)];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A configuration file in `dir`.
pub fn write_config(dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let cfg = dir.join("config.py");
    fs::write(&cfg, b"# bench configuration\nlr = 0.1\nbatch_size = 32\n")?;
    Ok(cfg)
}

/// A new model (training started at epoch 0) with configuration `cfg`.
pub fn new_model(cfg: &Path, id: &str) -> Result<Model> {
    let mut model = Model::new(id, Producer::new("bench_trainer", Version::pep440("1.0.0")?, cfg)?);
    model.name = Some("bench".into());
    model.register_training_start(0)?;
    Ok(model)
}

/// Options for fixture saves: not durable (fixtures are set-up, not measured).
pub fn fast_save() -> SaveOptions {
    SaveOptions::new().durable(false).force(true)
}

/// Create the PMF model `root` with `count` checkpoints of `size` random bytes each, named
/// `ckpt_<i>.bin`, epochs 1..=count. The checkpoint files are written straight into
/// `root/data/checkpoints/` (no second copy of large files), the configuration in `work`.
/// Returns the saved model.
pub fn make_model(root: &Path, work: &Path, count: u64, size: u64, seed: u64) -> Result<Model> {
    let io = |p: &Path, e: io::Error| Error::Io {
        path: p.to_path_buf(),
        operation: "cannot write bench fixture".into(),
        source: e.into(),
    };
    let cfg = write_config(work).map_err(|e| io(work, e))?;
    let ckdir = root.join("data/checkpoints");
    fs::create_dir_all(&ckdir).map_err(|e| io(&ckdir, e))?;
    let mut model = new_model(&cfg, "bench-model")?;
    let mut rng = Rng::new(seed);
    for i in 1..=count as i64 {
        let file = ckdir.join(format!("ckpt_{i}.bin"));
        write_random(&file, size, &mut rng).map_err(|e| io(&file, e))?;
        model.register_epoch(Some(i))?;
        model.add_checkpoint(Checkpoint::new(i, Some(&file), Some(i), None)?)?;
    }
    model.save(root, &fast_save())?;
    Ok(model)
}
