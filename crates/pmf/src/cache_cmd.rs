//! `pmf cache info|prune`: report and trim the local cache of files downloaded from object
//! storage (`plums_model::Cache`, at `PMF_CACHE_DIR` or the user's cache folder).

use std::path::Path;

use plums_model::{Cache, CacheInfo, PruneOptions};
use serde::Serialize;

use crate::cli::{CacheCommand, CacheInfoArgs, CachePruneArgs};
use crate::failure::{Failure, JsonFailure, EXIT_OK};
use crate::output::outln;
use crate::output::{human_bytes, paint, show_path, DIM, KEY};

/// `pmf cache info --json`, and the `cache` of `pmf cache prune --json`.
#[derive(Serialize)]
struct JsonInfo {
    /// The cache folder.
    root: String,
    /// Verified files.
    entries: u64,
    /// Their size in bytes.
    bytes: u64,
    /// Downloads in progress or left by killed processes.
    temporaries: u64,
    /// Their size in bytes.
    temporary_bytes: u64,
}

impl From<&CacheInfo> for JsonInfo {
    fn from(i: &CacheInfo) -> Self {
        JsonInfo {
            root: show_path(&i.root),
            entries: i.entries,
            bytes: i.bytes,
            temporaries: i.temporaries,
            temporary_bytes: i.temporary_bytes,
        }
    }
}

/// `pmf cache prune --json`.
#[derive(Serialize)]
struct JsonPrune {
    removed_entries: u64,
    freed_bytes: u64,
    cache: JsonInfo,
}

/// `--json` on failure.
#[derive(Serialize)]
struct JsonError {
    error: String,
    failure: JsonFailure,
}

/// Run `pmf cache ...`; returns the exit code.
pub fn run(command: &CacheCommand) -> u8 {
    match command {
        CacheCommand::Info(args) => info(args),
        CacheCommand::Prune(args) => prune(args),
    }
}

fn open() -> Result<Cache, Failure> {
    Cache::open_default().map_err(|e| Failure::from_library(e, Path::new("PMF_CACHE_DIR")))
}

fn info(args: &CacheInfoArgs) -> u8 {
    let outcome = open().and_then(|cache| cache.info().map_err(|e| Failure::from_library(e, cache.root())));
    match outcome {
        Ok(info) if args.json => print_json(&JsonInfo::from(&info)),
        Ok(info) => {
            print_info(&info);
            EXIT_OK
        }
        Err(failure) => fail(args.json, failure),
    }
}

fn prune(args: &CachePruneArgs) -> u8 {
    let mut options = PruneOptions::new();
    if let Some(bytes) = args.max_size {
        options = options.max_bytes(bytes);
    }
    if let Some(age) = args.older_than {
        options = options.older_than(age);
    }
    let outcome = open().and_then(|cache| {
        let report = cache.prune(&options).map_err(|e| Failure::from_library(e, cache.root()))?;
        let info = cache.info().map_err(|e| Failure::from_library(e, cache.root()))?;
        Ok((report, info))
    });
    match outcome {
        Ok((report, info)) if args.json => print_json(&JsonPrune {
            removed_entries: report.entries,
            freed_bytes: report.bytes,
            cache: JsonInfo::from(&info),
        }),
        Ok((report, info)) => {
            let n = report.entries;
            outln!(
                "removed {n} cached file{}, freed {} {}",
                if n == 1 { "" } else { "s" },
                human_bytes(report.bytes),
                paint(DIM, format!("({})", show_path(&info.root)))
            );
            print_info(&info);
            EXIT_OK
        }
        Err(failure) => fail(args.json, failure),
    }
}

fn print_info(info: &CacheInfo) {
    let label = |name: &str| paint(KEY, format!("{name:<12}"));
    outln!("{} {}", label("cache"), show_path(&info.root));
    outln!("{} {} ({})", label("files"), info.entries, human_bytes(info.bytes));
    if info.temporaries > 0 {
        outln!(
            "{} {} ({}) {}",
            label("temporary"),
            info.temporaries,
            human_bytes(info.temporary_bytes),
            paint(DIM, "downloads in progress, or left by killed processes")
        );
    }
}

fn print_json<T: Serialize>(value: &T) -> u8 {
    crate::failure::print_json(value, EXIT_OK)
}

fn fail(json: bool, failure: Failure) -> u8 {
    if json {
        let code = failure.code;
        let doc = JsonError { error: failure.message.clone(), failure: failure.to_json() };
        return match print_json(&doc) {
            EXIT_OK => code,
            other => other,
        };
    }
    failure.report();
    failure.code
}
