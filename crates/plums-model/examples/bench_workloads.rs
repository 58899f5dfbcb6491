//! The Rust side of `benches/compare` (issue 5): the workloads run with the library API, each
//! printing one JSON object on stdout with its timings (seconds).
//!
//! ```sh
//! cargo run --release -p plums-model --example bench_workloads -- training --dir /tmp/t --epochs 100 --size-mib 4
//! cargo run --release -p plums-model --example bench_workloads -- make-model --dir /tmp/m --checkpoints 10000 --size 16
//! cargo run --release -p plums-model --example bench_workloads -- load --dir /tmp/m --repeat 10
//! cargo run --release -p plums-model --example bench_workloads -- validate --dir /tmp/m --strict --repeat 5
//! ```
//!
//! - `training`: a training loop. Every epoch writes a fresh checkpoint file of random bytes
//!   to `DIR/work/epoch_<n>.pt` (not timed), registers it (`Checkpoint::new` hashes it: timed
//!   apart as `register_s`), and saves the model to `DIR/model` (timed: `save_s`, one value per
//!   epoch). Saves are durable (fsync) unless `--no-durable`.
//! - `make-model`: a model at `DIR` with `N` checkpoints of `SIZE` random bytes
//!   (`data/checkpoints/ckpt_<i>.bin`), saved without fsync.
//! - `load`: `Model::load(DIR, &LoadOptions::new().strict(strict))` (checkpoint files required),
//!   `--repeat` times in this process.
//! - `validate`: `validate(DIR, &ValidateOptions::new().strict(strict))` (checkpoint files required),
//!   `--repeat` times; with `--strict`
//!   also reports the hashed bytes and the throughput.
//! - `save-scaling`: how one save's cost depends on the number of checkpoints already saved:
//!   for each N of `--counts` (default 10,100,1000), a model with N small checkpoints, then
//!   `--repeat` saves of each model in turn, each adding one new checkpoint of `--size-mib` MiB
//!   (0: 1 KiB); median save time per N, durable or not. The slope is what one checkpoint
//!   already saved adds to every later save.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use plums_model::{validate, Checkpoint, LoadOptions, Model, SaveOptions, ValidateOptions};
use serde_json::json;

#[path = "../benches/support/mod.rs"]
mod support;
use support::{make_model, new_model, write_config, write_random, Rng};

const USAGE: &str = "usage: bench_workloads training --dir DIR [--epochs 100] [--size-mib 4] [--no-durable] [--seed N]
       bench_workloads make-model --dir DIR --checkpoints N --size BYTES [--seed N]
       bench_workloads load --dir DIR [--strict] [--repeat N]
       bench_workloads validate --dir DIR [--strict] [--repeat N]
       bench_workloads save-scaling --dir DIR [--counts 10,100,1000] [--repeat 20] [--size-mib 4] [--no-durable]";

struct Args {
    command: String,
    dir: Option<PathBuf>,
    epochs: u64,
    size_mib: u64,
    durable: bool,
    seed: u64,
    checkpoints: u64,
    size: u64,
    strict: bool,
    repeat: usize,
    counts: Vec<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command")?;
    let mut a = Args {
        command,
        dir: None,
        epochs: 100,
        size_mib: 4,
        durable: true,
        seed: 42,
        checkpoints: 0,
        size: 0,
        strict: false,
        repeat: 1,
        counts: vec![10, 100, 1000],
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
        match flag.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(value("--dir")?)),
            "--epochs" => a.epochs = num(value("--epochs")?)?,
            "--size-mib" => a.size_mib = num(value("--size-mib")?)?,
            "--no-durable" => a.durable = false,
            "--seed" => a.seed = num(value("--seed")?)?,
            "--checkpoints" => a.checkpoints = num(value("--checkpoints")?)?,
            "--size" => a.size = num(value("--size")?)?,
            "--strict" => a.strict = true,
            "--repeat" => a.repeat = num(value("--repeat")?)?.max(1) as usize,
            "--counts" => {
                a.counts = value("--counts")?.split(',').map(|c| num(c.trim().to_owned())).collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = args.dir.clone() else {
        eprintln!("error: --dir is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let result = match args.command.as_str() {
        "training" => training(&dir, &args),
        "make-model" => make(&dir, &args),
        "load" => load(&dir, &args),
        "validate" => validate_cmd(&dir, &args),
        "save-scaling" => save_scaling(&dir, &args),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn training(dir: &Path, a: &Args) -> Result<serde_json::Value, String> {
    let work = dir.join("work");
    let dest = dir.join("model");
    let cfg = write_config(&work).map_err(|e| e.to_string())?;
    let mut model = new_model(&cfg, "bench-training").map_err(|e| e.to_string())?;
    let options = SaveOptions::new().durable(a.durable);
    let mut rng = Rng::new(a.seed);
    let (mut save_s, mut register_s, mut write_s) = (Vec::new(), Vec::new(), Vec::new());
    let loop_start = Instant::now();
    for epoch in 1..=a.epochs as i64 {
        let file = work.join(format!("epoch_{epoch}.pt"));
        let t = Instant::now();
        write_random(&file, a.size_mib << 20, &mut rng).map_err(|e| format!("{}: {e}", file.display()))?;
        write_s.push(secs(t));
        let t = Instant::now();
        let ck = Checkpoint::new(epoch, Some(&file), Some(epoch), None).map_err(|e| e.to_string())?;
        model.register_epoch(Some(epoch)).map_err(|e| e.to_string())?;
        model.add_checkpoint(ck).map_err(|e| e.to_string())?;
        register_s.push(secs(t));
        let t = Instant::now();
        model.save(&dest, &options).map_err(|e| format!("save of epoch {epoch}: {e}"))?;
        save_s.push(secs(t));
    }
    let loop_s = secs(loop_start);
    Ok(json!({
        "workload": "training",
        "impl": "rust",
        "durable": a.durable,
        "epochs": a.epochs,
        "size_mib": a.size_mib,
        "loop_s": loop_s,
        "total_save_s": save_s.iter().sum::<f64>(),
        "total_register_s": register_s.iter().sum::<f64>(),
        "total_write_s": write_s.iter().sum::<f64>(),
        "save_s": save_s,
    }))
}

fn make(dir: &Path, a: &Args) -> Result<serde_json::Value, String> {
    if a.checkpoints == 0 {
        return Err("make-model needs --checkpoints N (N > 0)".into());
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let work = dir.with_file_name(format!(".{name}.bench-work"));
    let t = Instant::now();
    make_model(dir, &work, a.checkpoints, a.size, a.seed).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(json!({"workload": "make-model", "dir": dir, "checkpoints": a.checkpoints, "size": a.size, "seconds": secs(t)}))
}

fn load(dir: &Path, a: &Args) -> Result<serde_json::Value, String> {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..a.repeat {
        let t = Instant::now();
        let model = Model::load(dir, &LoadOptions::new().strict(a.strict)).map_err(|e| e.to_string())?;
        times.push(secs(t));
        count = model.checkpoint_collection.len();
    }
    Ok(json!({"workload": "load", "impl": "rust", "strict": a.strict, "checkpoints": count, "seconds": times}))
}

fn validate_cmd(dir: &Path, a: &Args) -> Result<serde_json::Value, String> {
    let mut times = Vec::new();
    let mut bytes = 0u64;
    for _ in 0..a.repeat {
        let t = Instant::now();
        let metadata = validate(dir, &ValidateOptions::new().strict(a.strict)).map_err(|e| e.to_string())?;
        times.push(secs(t));
        if a.strict {
            bytes = std::fs::metadata(dir.join(&metadata.model.configuration.path)).map(|m| m.len()).unwrap_or(0);
            for entry in metadata.model.training.checkpoints.values() {
                bytes += std::fs::metadata(dir.join(&entry.path)).map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(json!({
        "workload": "validate",
        "impl": "rust",
        "strict": a.strict,
        "bytes": bytes,
        "seconds": times,
        "median_mb_s": if a.strict { bytes as f64 / 1e6 / median } else { 0.0 },
    }))
}

fn save_scaling(dir: &Path, a: &Args) -> Result<serde_json::Value, String> {
    let options = SaveOptions::new().durable(a.durable);
    let size = if a.size_mib == 0 { 1024 } else { a.size_mib << 20 };
    // All models first, then the saves interleaved (one per model in turn), so that a change of
    // load on the shared machine affects every N alike.
    let mut models = Vec::new();
    for &n in &a.counts {
        let root = dir.join(format!("model-{n}"));
        let work = dir.join(format!("work-{n}"));
        let model = make_model(&root, &work, n, 16, a.seed).map_err(|e| e.to_string())?;
        models.push((n, root, work, model, Vec::new()));
    }
    let mut rng = Rng::new(a.seed);
    for k in 1..=a.repeat as i64 {
        for (n, root, work, model, times) in models.iter_mut() {
            let epoch = *n as i64 + k;
            let file = work.join(format!("new_{epoch}.pt"));
            write_random(&file, size, &mut rng).map_err(|e| e.to_string())?;
            model.register_epoch(Some(epoch)).map_err(|e| e.to_string())?;
            let ck = Checkpoint::new(epoch, Some(&file), Some(epoch), None).map_err(|e| e.to_string())?;
            model.add_checkpoint(ck).map_err(|e| e.to_string())?;
            let t = Instant::now();
            model.save(&*root, &options).map_err(|e| e.to_string())?;
            times.push(secs(t));
        }
    }
    let mut rows = Vec::new();
    for (n, root, work, _, times) in models {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        rows.push(json!({"checkpoints": n, "median_s": sorted[sorted.len() / 2], "min_s": sorted[0], "max_s": sorted[sorted.len() - 1], "seconds": times}));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(
        json!({"workload": "save-scaling", "impl": "rust", "durable": a.durable, "new_checkpoint_bytes": size, "rows": rows}),
    )
}
