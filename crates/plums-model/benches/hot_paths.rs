//! Criterion benches of the library's hot paths (issue 5).
//!
//! ```sh
//! cargo bench -p plums-model --bench hot_paths -- --quick          # all, short
//! cargo bench -p plums-model --bench hot_paths -- md5              # one group
//! cargo test  -p plums-model --benches                               # each bench once (smoke)
//! ```
//!
//! Fixtures are made once per process, in a temporary folder on the same disk as `TMPDIR`, and
//! only for the benches selected by the filter:
//! - `md5/file_64MiB`: [`plums_model::md5_file`] of a 64 MiB file (page cache warm), in MB/s;
//!   `md5/md-5_fallback_64MiB`: the same with the `md-5` crate (the back end without the
//!   `openssl` feature), checked against the library's digest first;
//! - `yaml/parse_10k`, `yaml/emit_10k`: PyYAML-rules parse and emit of a `metadata.yaml` with
//!   10,000 checkpoints; `metadata/from_value_10k`: its schema check and typing;
//! - `load/10k_checkpoints_non_strict`: [`plums_model::Model::load`] of that model (files exist,
//!   checksums not compared);
//! - `save/incremental_100+1x4MiB/{durable,no_fsync}`: one save of a model that holds 100
//!   checkpoints of 4 MiB, adding one new 4 MiB checkpoint;
//! - `validate/strict_4x64MiB`: strict [`plums_model::validate`] of 4 × 64 MiB checkpoints, in MB/s.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use plums_model::{
    md5_file, parse_yaml, to_yaml, validate, Checkpoint, LoadOptions, Metadata, Model, Reference, SaveOptions,
    ValidateOptions,
};

mod support;
use support::{make_model, write_random, Rng};

const MIB: u64 = 1 << 20;

/// The bench scratch folder, made on first use (statics are not dropped: `main` removes it).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("plums-bench-").tempdir().expect("temporary folder")).path()
}

fn big_file() -> &'static Path {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let p = scratch().join("64MiB.bin");
        write_random(&p, 64 * MIB, &mut Rng::new(1)).expect("64 MiB file");
        p
    })
}

/// The 10,000-checkpoint model: its root and its metadata.yaml text.
fn model_10k() -> &'static (PathBuf, String) {
    static M: OnceLock<(PathBuf, String)> = OnceLock::new();
    M.get_or_init(|| {
        let root = scratch().join("model-10k");
        make_model(&root, &scratch().join("work-10k"), 10_000, 16, 2).expect("10k model");
        let text = std::fs::read_to_string(root.join("metadata.yaml")).expect("metadata.yaml");
        (root, text)
    })
}

fn model_strict() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let root = scratch().join("model-4x64MiB");
        make_model(&root, &scratch().join("work-4x64"), 4, 64 * MIB, 3).expect("4x64MiB model");
        root
    })
}

fn bench_md5(c: &mut Criterion) {
    let mut g = c.benchmark_group("md5");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(64 * MIB));
    g.bench_function("file_64MiB", |b| {
        let f = big_file();
        b.iter(|| black_box(md5_file(f).unwrap()))
    });
    // The fallback back end (`md-5` with asm, used without the `openssl` feature), same reads.
    g.bench_function("md-5_fallback_64MiB", |b| {
        use md5::Digest;
        use std::io::Read;
        let f = big_file();
        let digest = || {
            let mut file = std::fs::File::open(f).unwrap();
            let (mut h, mut buf) = (md5::Md5::new(), vec![0u8; 1 << 20]);
            loop {
                match file.read(&mut buf).unwrap() {
                    0 => break,
                    n => h.update(&buf[..n]),
                }
            }
            plums_model::Md5(h.finalize().into())
        };
        assert_eq!(digest(), md5_file(f).unwrap(), "the two back ends differ on the file");
        b.iter(|| black_box(digest()))
    });
    g.finish();
}

fn bench_yaml(c: &mut Criterion) {
    let mut g = c.benchmark_group("yaml");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.bench_function("parse_10k", |b| {
        let text = &model_10k().1;
        b.iter(|| black_box(parse_yaml(text).unwrap()))
    });
    g.bench_function("emit_10k", |b| {
        let doc = parse_yaml(&model_10k().1).unwrap();
        b.iter(|| black_box(to_yaml(&doc)))
    });
    g.finish();

    let mut g = c.benchmark_group("metadata");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.bench_function("from_value_10k", |b| {
        let doc = parse_yaml(&model_10k().1).unwrap();
        b.iter(|| black_box(Metadata::from_value(&doc).unwrap()))
    });
    g.finish();
}

fn bench_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.bench_function("10k_checkpoints_non_strict", |b| {
        let root = &model_10k().0;
        b.iter(|| black_box(Model::load(root, &LoadOptions::new().strict(false)).unwrap()))
    });
    g.finish();
}

/// One save of a 100-checkpoint model adding one new 4 MiB checkpoint. Each measured save is
/// followed by an unmeasured one that unregisters the new checkpoint again, so every measured
/// save starts from 100 checkpoints.
fn bench_save(c: &mut Criterion) {
    let mut g = c.benchmark_group("save");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    for durable in [true, false] {
        let name = if durable { "incremental_100+1x4MiB/durable" } else { "incremental_100+1x4MiB/no_fsync" };
        g.bench_function(name, |b| {
            let tag = if durable { "d" } else { "n" };
            let root = scratch().join(format!("model-100x4MiB-{tag}"));
            let work = scratch().join(format!("work-100-{tag}"));
            let mut model = make_model(&root, &work, 100, 4 * MIB, 4).expect("100x4MiB model");
            let options = SaveOptions::new().durable(durable);
            let new_file = work.join("new_epoch.pt");
            let mut rng = Rng::new(5);
            let mut epoch = 100i64;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    epoch += 1;
                    write_random(&new_file, 4 * MIB, &mut rng).unwrap();
                    let reference = Reference::Str(format!("extra_{epoch}"));
                    model.register_epoch(Some(epoch)).unwrap();
                    model
                        .add_checkpoint(Checkpoint::new(reference.clone(), Some(&new_file), Some(epoch), None).unwrap())
                        .unwrap();
                    let t = Instant::now();
                    model.save(&root, &options).unwrap();
                    total += t.elapsed();
                    model.checkpoint_collection.remove(&reference).unwrap();
                    model.save(&root, &options).unwrap();
                    let _ = std::fs::remove_file(root.join("data/checkpoints/new_epoch.pt"));
                }
                total
            })
        });
    }
    g.finish();
}

fn bench_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(4 * 64 * MIB));
    g.bench_function("strict_4x64MiB", |b| {
        let root = model_strict();
        b.iter(|| black_box(validate(root, &ValidateOptions::new().strict(true)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench_md5, bench_yaml, bench_load, bench_save, bench_validate);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Statics are not dropped: remove the scratch folder by hand.
    let _ = std::fs::remove_dir_all(scratch());
}
