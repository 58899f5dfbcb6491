//! Reading models from object storage, on the real S3 server (SeaweedFS, started by
//! `scripts/test` through `scripts/s3-server`; see `tests/common/s3.rs`): the read guarantees of
//! docs/RELIABILITY.md section 7.
//!
//! Models are saved locally by this library (or by the reference `plums` 0.5.2) and uploaded
//! with boto3, as a user would, independently of the code under test; then `validate_at`,
//! `check_at` and `Model::load_at` must give what the local folder gives: the same metadata, the
//! same model, the same offences (kinds and locations). Confinement (hostile metadata never
//! reaches a key outside the model's prefix), bounded reads (oversized YAML refused unread), the
//! cache (reuse, replaced objects, `PMF_CACHE_DIR`, two processes filling it at once) and the
//! errors (missing prefix, wrong credentials, unreachable endpoint; never a secret) are checked
//! with `StorageOptions::stats` and the cache's contents.
//!
//! Skipped without a server unless `PMF_REQUIRE_S3=1`. Child processes (this test binary run
//! again with `PMF_OS_CHILD` set) play the roles of other processes sharing a cache.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::s3::{s3_or_skip, S3Server, S3Test};
use common::{assert_message, copy_tree, describe, reference_or_skip, run_reference};
use plums_model::{
    check, check_at, fetch, md5_file, validate, validate_at, validate_model_at, Cache, Checkpoint, Error,
    Initialisation, LoadOptions, Location, Md5, Model, Offence, OffenceKind, Producer, Reference, SaveOptions,
    StorageErrorKind, StorageOptions, StorageStats, ValidateOptions, Version, YamlLimits,
};

/// The environment variable that makes [`child_role`] act (a JSON request).
const CHILD: &str = "PMF_OS_CHILD";

/// A checkpoint over boto3's multipart threshold (8 MiB): its ETag is not its MD5.
const BIG: usize = 9 << 20;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Options reaching the test server, with the cache in `cache`.
fn options(server: &S3Server, cache: &Path) -> StorageOptions {
    let mut o = StorageOptions::new();
    for (k, v) in server.storage_options() {
        o.set(&k, &v).unwrap();
    }
    o.cache_dir(cache);
    o
}

fn loc(s3: &S3Test, rel: &str) -> Location {
    Location::parse(&s3.url(rel)).unwrap()
}

/// A model saved locally by this library in `dir/model`: configuration, build parameters, three
/// checkpoints (one of them `BIG`), an initialisation weight file. Returns the model root.
fn saved_model(dir: &Path, big: usize) -> PathBuf {
    let inputs = dir.join("inputs");
    fs::create_dir_all(&inputs).unwrap();
    let cfg = inputs.join("config.py");
    fs::write(&cfg, b"lr = 0.1\nbatch = 8\n").unwrap();
    let producer = Producer::new("trainer", Version::pep440("1.2.3").unwrap(), &cfg).unwrap();
    let mut model = Model::new("3d6acb1f-s3", producer);
    model.name = Some("detector".into());
    model.build_parameters = plums_model::parse_yaml("layers: [64, 128]\nactivation: relu\nnested: {a: 1}\n").unwrap();
    model.register_training_start(0).unwrap();
    let contents: [(i64, Vec<u8>); 3] = [
        (1, b"weights of epoch 1\n".to_vec()),
        (2, (0..big).map(|i| (i * 7 % 251) as u8).collect()),
        (3, vec![3u8; 300 << 10]),
    ];
    for (epoch, bytes) in contents {
        let p = inputs.join(format!("epoch-{epoch}.pt"));
        fs::write(&p, &bytes).unwrap();
        model.register_epoch(Some(epoch)).unwrap();
        model.add_checkpoint(Checkpoint::new(epoch, Some(&p), Some(epoch), None).unwrap()).unwrap();
    }
    let init = inputs.join("imagenet.h5");
    fs::write(&init, b"initial weights\n").unwrap();
    model.set_initialisation(Some(Initialisation::File(Checkpoint::new("imagenet", Some(&init), None, None).unwrap())));
    let root = dir.join("model");
    model.save(&root, &SaveOptions::new()).unwrap();
    root
}

/// Every regular file under `root`, relative path -> bytes (the shared tree snapshot, folders
/// left out).
fn files_of(root: &Path) -> BTreeMap<String, Vec<u8>> {
    common::snapshot(root, &|_| false)
        .into_iter()
        .filter_map(|(rel, content)| content.map(|c| (rel.to_string_lossy().into_owned(), c)))
        .collect()
}

/// The cache's entries: the `entry` record's key line -> the file's bytes. Panics on an entry
/// that is not complete (a record without its one file, a file of the wrong size).
fn cache_entries(cache: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let objects = cache.join("objects");
    let Ok(dirs) = fs::read_dir(&objects) else { return out };
    for dir in dirs {
        let dir = dir.unwrap().path();
        let record =
            fs::read_to_string(dir.join("entry")).unwrap_or_else(|e| panic!("{}: no record: {e}", dir.display()));
        let field = |name: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("{name} not in the record {record:?}"))
                .to_owned()
        };
        let files: Vec<PathBuf> = fs::read_dir(dir.join("file")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{}: one file per entry: {files:?}", dir.display());
        let bytes = fs::read(&files[0]).unwrap();
        assert_eq!(bytes.len().to_string(), field("size"), "{}: a partial file", files[0].display());
        assert_eq!(Md5::of_bytes(&bytes).to_string(), field("md5"), "{}: not its recorded MD5", files[0].display());
        assert!(out.insert(field("key"), bytes).is_none(), "two entries for one key in {}", cache.display());
    }
    out
}

/// Temporary downloads left in the cache.
fn temporaries(cache: &Path) -> Vec<PathBuf> {
    fs::read_dir(cache.join("tmp")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

/// (kind, location) of every offence, sorted, and the messages by location.
fn shape(offences: &[Offence]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = offences
        .iter()
        .map(|o| {
            let kind = match o.kind {
                OffenceKind::Tree => "tree",
                OffenceKind::Metadata => "metadata",
                _ => "other",
            };
            (kind.to_owned(), o.location.clone(), o.message.clone())
        })
        .collect();
    out.sort();
    out
}

fn delta(after: StorageStats, before: StorageStats) -> (u64, u64, u64) {
    (after.lists - before.lists, after.gets - before.gets, after.bytes - before.bytes)
}

/// Assert that no secret of `server` (nor `extra`) is in the error's Display or Debug.
#[track_caller]
fn no_secret(err: &Error, server: &S3Server, extra: &[&str]) {
    let shown = format!("{err} | {err:?}");
    for secret in [server.secret_access_key.as_str()].iter().chain(extra) {
        assert!(!shown.contains(secret), "a secret in the error: {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// A valid model: validate and load as locally
// ---------------------------------------------------------------------------------------------

#[test]
fn a_model_uploaded_with_boto3_validates_and_loads_as_locally() {
    let Some(s3) = s3_or_skip("os_valid_model") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), BIG);
    s3.upload_dir(&root, "model");
    let url = loc(&s3, "model");
    let local_files = files_of(&root);
    let total: u64 = local_files.values().map(|b| b.len() as u64).sum();
    let yaml_bytes = (local_files["metadata.yaml"].len() + local_files["data/build_parameters.yaml"].len()) as u64;

    // validate_at, not strict: one listing, the two YAML files.
    let cache = dir.path().join("cache");
    let o = options(&s3.server, &cache);
    let local = validate(&root, &ValidateOptions::new()).unwrap();
    let remote = validate_at(&url, &ValidateOptions::new().storage(o.clone())).unwrap();
    assert_eq!(remote, local);
    assert_eq!(delta(o.stats(), StorageStats::default()), (1, 2, yaml_bytes), "not strict: list + 2 YAML GETs");
    assert!(cache_entries(&cache).is_empty(), "a non-strict validation caches nothing");

    // Strict: everything with a checksum is downloaded once, verified, cached.
    let before = o.stats();
    let strict = ValidateOptions::new().strict(true).storage(o.clone());
    assert_eq!(validate_at(&url, &strict).unwrap(), validate(&root, &ValidateOptions::new().strict(true)).unwrap());
    let first = delta(o.stats(), before);
    assert_eq!(first, (1, 7, total), "strict: list + 2 YAML + configuration + 3 checkpoints + initialisation");
    eprintln!("figure: strict validation, empty cache: lists, gets, bytes = {first:?} (files total {total} B)");
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 5, "{:?}", entries.keys());
    for (key, bytes) in &entries {
        let rel = key.strip_prefix(&format!("{}/", s3.key("model"))).expect("a key of the model");
        assert_eq!(bytes, &local_files[rel], "{key}");
    }
    assert!(temporaries(&cache).is_empty());

    // Again: only the YAML files.
    let before = o.stats();
    validate_at(&url, &strict).unwrap();
    let second = delta(o.stats(), before);
    assert_eq!(second, (1, 2, yaml_bytes), "a second strict validation downloads no checkpoint again");
    eprintln!("figure: strict validation, warm cache: lists, gets, bytes = {second:?}");

    // validate_model_at: the root is the URL.
    let v = validate_model_at(&url, &strict).unwrap();
    assert_eq!(v.root, PathBuf::from(s3.url("model")));
    assert!(v.checkpoints_checked);

    // Model::load_at strict: every field as the local load; files are cache files with the bytes.
    let fresh = dir.path().join("cache-load");
    let lo = options(&s3.server, &fresh);
    let remote = Model::load_at(&url, &LoadOptions::new().storage(lo.clone())).unwrap();
    let local = Model::load(&root, &LoadOptions::new()).unwrap();
    assert_eq!(describe(&remote), describe(&local));
    assert_eq!(remote.id, local.id);
    assert_eq!(remote.name, local.name);
    assert_eq!(remote.build_parameters, local.build_parameters);
    assert_eq!(remote.training.record(), local.training.record());
    assert_eq!(remote.producer.name, local.producer.name);
    assert_eq!(remote.producer.version.to_string(), local.producer.version.to_string());
    assert_eq!(remote.path(), None);
    assert_eq!(remote.location(), Some(url.clone()));
    assert_eq!(remote.checkpoint_collection.len(), 3);
    let same_file = |remote: &Path, local: &Path| {
        assert!(remote.starts_with(&fresh), "{} is not in the cache {}", remote.display(), fresh.display());
        assert_eq!(remote.file_name(), local.file_name());
        assert_eq!(fs::read(remote).unwrap(), fs::read(local).unwrap(), "{}", remote.display());
    };
    same_file(&remote.producer.configuration, &local.producer.configuration);
    for ((rr, rc), (lr, lc)) in remote.checkpoint_collection.iter().zip(local.checkpoint_collection.iter()) {
        assert_eq!((rr, rc.epoch, rc.hash), (lr, lc.epoch, lc.hash));
        same_file(rc.path.as_deref().expect("a strict load has checkpoint files"), lc.path.as_deref().unwrap());
    }
    match (remote.initialisation(), local.initialisation()) {
        (Some(Initialisation::File(r)), Some(Initialisation::File(l))) => {
            assert_eq!((&r.name, r.hash), (&l.name, l.hash));
            same_file(r.path.as_deref().expect("verified initialisation file"), l.path.as_deref().unwrap());
        }
        other => panic!("initialisation: {other:?}"),
    }
    let loaded = lo.stats();
    assert_eq!((loaded.lists, loaded.gets, loaded.bytes), (1, 7, total));

    // Not strict: no checkpoint downloaded; fetch_checkpoint fetches one, verified.
    let lazy_cache = dir.path().join("cache-lazy");
    let zo = options(&s3.server, &lazy_cache);
    let mut lazy = Model::load_at(&url, &LoadOptions::new().strict(false).storage(zo.clone())).unwrap();
    let cfg_bytes = local_files["config.py"].len() as u64;
    assert_eq!(delta(zo.stats(), StorageStats::default()), (1, 3, yaml_bytes + cfg_bytes), "list, YAML, configuration");
    assert_eq!(fs::read(&lazy.producer.configuration).unwrap(), local_files["config.py"]);
    assert!(lazy.checkpoint_collection.values().all(|c| c.path.is_none()), "nothing large downloaded");
    let big = Reference::Int(2);
    let before = zo.stats();
    let path = lazy.fetch_checkpoint(&big, &zo).unwrap();
    assert!(path.starts_with(&lazy_cache));
    assert_eq!(fs::read(&path).unwrap(), local_files["data/checkpoints/epoch-2.pt"]);
    assert_eq!(lazy.checkpoint_collection.get(&big).unwrap().path.as_deref(), Some(path.as_path()));
    assert_eq!(delta(zo.stats(), before), (0, 1, BIG as u64));
    let before = zo.stats();
    assert_eq!(lazy.fetch_checkpoint(&big, &zo).unwrap(), path, "fetched again from the cache");
    assert_eq!(delta(zo.stats(), before), (0, 0, 0), "a cached checkpoint: no download (one HEAD)");
    let err = lazy.fetch_checkpoint(&Reference::Int(9), &zo).unwrap_err();
    assert!(matches!(err, Error::MissingReference(_)), "{err:?}");

    // fetch() of one file: the right bytes; a wrong MD5 is a ChecksumMismatch, nothing kept.
    let h = md5_file(root.join("config.py")).unwrap();
    let got = fetch(&url, "config.py", h, &zo).unwrap();
    assert_eq!(fs::read(&got).unwrap(), local_files["config.py"]);
    let wrong: Md5 = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let entries_before = cache_entries(&lazy_cache).len();
    let err = fetch(&url, "data/checkpoints/epoch-1.pt", wrong, &zo).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert_eq!(cache_entries(&lazy_cache).len(), entries_before, "a mismatch is not kept");
    assert!(temporaries(&lazy_cache).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Tree offences: the same as on disk
// ---------------------------------------------------------------------------------------------

#[test]
fn tree_offences_are_the_same_as_on_disk() {
    let Some(s3) = s3_or_skip("os_tree_offences") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 16);
    type Break = fn(&Path);
    let cases: [(&str, Break, bool); 5] = [
        ("missing_checkpoint", |m| fs::remove_file(m.join("data/checkpoints/epoch-1.pt")).unwrap(), false),
        ("missing_configuration", |m| fs::remove_file(m.join("config.py")).unwrap(), false),
        ("corrupted_checkpoint", |m| fs::write(m.join("data/checkpoints/epoch-3.pt"), b"corrupted").unwrap(), true),
        (
            "folder_in_checkpoints",
            |m| {
                fs::create_dir_all(m.join("data/checkpoints/extra/deeper")).unwrap();
                fs::write(m.join("data/checkpoints/extra/deeper/x.pt"), b"x").unwrap();
            },
            false,
        ),
        ("missing_build_parameters", |m| fs::remove_file(m.join("data/build_parameters.yaml")).unwrap(), false),
    ];
    let cache = dir.path().join("cache");
    let o = options(&s3.server, &cache);
    for (name, breaks, strict_only) in cases {
        let case = dir.path().join(name);
        copy_tree(&root, &case);
        breaks(&case);
        s3.upload_dir(&case, name);
        for strict in [false, true] {
            let local = check(&case, &ValidateOptions::new().strict(strict)).unwrap();
            let remote = check_at(&loc(&s3, name), &ValidateOptions::new().strict(strict).storage(o.clone())).unwrap();
            assert_eq!(shape(&remote.offences), shape(&local.offences), "{name}, strict={strict}");
            assert_eq!(local.is_valid(), strict_only && !strict, "{name}, strict={strict}: {:?}", local.offences);
            if !local.is_valid() {
                let err = validate_at(&loc(&s3, name), &ValidateOptions::new().strict(strict).storage(o.clone()))
                    .unwrap_err();
                if local.offences.iter().any(|o| o.kind == OffenceKind::Tree) {
                    assert!(matches!(err, Error::TreeValidation(_)), "{name}: {err:?}");
                }
                for o in &local.offences {
                    assert!(err.to_string().contains(&o.location), "{name}: {} not in {err}", o.location);
                }
                let lerr =
                    Model::load_at(&loc(&s3, name), &LoadOptions::new().strict(strict).storage(o.clone())).unwrap_err();
                assert_eq!(lerr.code(), err.code(), "{name}: load_at and validate_at disagree");
            }
        }
        eprintln!("{name}: {:?}", shape(&check(&case, &ValidateOptions::new().strict(true)).unwrap().offences));
    }
    // The corrupted checkpoint is never kept in the cache.
    let entries = cache_entries(&cache);
    assert!(entries.keys().all(|k| !k.ends_with("corrupted_checkpoint/data/checkpoints/epoch-3.pt")), "{entries:?}");
    assert!(temporaries(&cache).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Confinement
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_metadata_never_reaches_outside_the_prefix() {
    let Some(s3) = s3_or_skip("os_hostile") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 10);
    let metadata = fs::read_to_string(root.join("metadata.yaml")).unwrap();
    // Secrets next to the model's prefix, with a distinctive size: any download of one shows in
    // the byte count; their MD5 is what the hostile metadata records, so a reader that followed
    // the path would "verify" them.
    let secret = vec![0x5Au8; 777_777];
    let secret_md5 = Md5::of_bytes(&secret).to_string();
    for rel in ["secret.pt", "model-secret/data/checkpoints/secret.pt", "modelx", "model-secret.pt"] {
        s3.put(rel, &secret);
    }
    let key_of_secret = s3.key("secret.pt");
    let ck1 = "path: data/checkpoints/epoch-1.pt";
    let cfg = "path: config.py";
    assert!(metadata.contains(ck1) && metadata.contains(cfg), "{metadata}");
    let ck1_md5 = md5_file(root.join("data/checkpoints/epoch-1.pt")).unwrap().to_string();
    let cfg_md5 = md5_file(root.join("config.py")).unwrap().to_string();
    let hostile_paths = [
        "../secret.pt".to_owned(),
        "data/checkpoints/../../../secret.pt".to_owned(),
        format!("/{key_of_secret}"),
        format!("/{}/{key_of_secret}", s3.server.bucket),
        "../model-secret/data/checkpoints/secret.pt".to_owned(),
        "../model-secret.pt".to_owned(),
        "./../secret.pt".to_owned(),
        "data/checkpoints/..\\..\\..\\secret.pt".to_owned(),
        "data//checkpoints/../../../secret.pt".to_owned(),
        "config.py".to_owned(), // inside the prefix, outside data/checkpoints
    ];
    let cache = dir.path().join("cache");
    let o = options(&s3.server, &cache);
    let mut n = 0;
    for (field, original, original_md5) in [("checkpoint", ck1, &ck1_md5), ("configuration", cfg, &cfg_md5)] {
        for hostile in &hostile_paths {
            if field == "configuration" && hostile == "config.py" {
                continue; // its own path: not hostile
            }
            n += 1;
            let text = metadata
                .replacen(original, &format!("path: '{hostile}'"), 1)
                .replace(original_md5.as_str(), &secret_md5);
            // The same tree on disk, with the secret next to it, for the offences to compare.
            let case = dir.path().join(format!("case-{n}"));
            let model = case.join("model");
            copy_tree(&root, &model);
            fs::write(model.join("metadata.yaml"), &text).unwrap();
            fs::write(case.join("secret.pt"), &secret).unwrap();
            let rel = format!("case-{n}/model");
            s3.upload_dir(&model, &rel);
            let url = loc(&s3, &rel);
            for strict in [false, true] {
                let before = o.stats();
                let local = check(&model, &ValidateOptions::new().strict(strict)).unwrap();
                let remote = check_at(&url, &ValidateOptions::new().strict(strict).storage(o.clone())).unwrap();
                let what = format!("{field} path {hostile:?}, strict={strict}");
                assert!(!local.is_valid(), "{what}: the local validation accepts it");
                assert_eq!(shape(&remote.offences), shape(&local.offences), "{what}");
                let err = Model::load_at(&url, &LoadOptions::new().strict(strict).storage(o.clone())).unwrap_err();
                assert!(matches!(err, Error::TreeValidation(_) | Error::MetadataValidation(_)), "{what}: {err:?}");
                let (_, _, bytes) = delta(o.stats(), before);
                assert!(bytes < 4 * (text.len() as u64 + 2_000_000), "{what}: {bytes} bytes");
                assert_ne!(bytes % 777_777, 0, "{what}: {bytes} bytes: a secret-sized download?");
            }
            // fetch() refuses the path before any request.
            let before = o.stats();
            let result = fetch(&url, hostile, secret_md5.parse().unwrap(), &o);
            if hostile.split('/').any(|s| s == "..") || hostile.starts_with('/') {
                let err = result.unwrap_err();
                assert!(matches!(err, Error::InvalidLocation { .. }), "{hostile}: {err:?}");
                assert_eq!(o.stats().gets, before.gets, "{hostile}: no download");
            } else if hostile.contains('\\') {
                // Not a separator in a key: a key inside the prefix, which does not exist.
                let err = result.unwrap_err();
                let inside = matches!(&err, Error::Storage { location, .. } if location.starts_with(&url.to_string()));
                assert!(inside, "{err:?}");
                assert_eq!(o.stats().gets, before.gets, "{hostile}: no download");
            } else {
                // Inside the prefix: the configuration, whose MD5 is not the secret's.
                assert!(matches!(result, Err(Error::ChecksumMismatch { .. })), "{result:?}");
                assert!(o.stats().gets <= before.gets + 1);
            }
        }
    }
    let entries = cache_entries(&cache);
    for (key, bytes) in &entries {
        assert!(key.starts_with(&format!("{}/case-", s3.prefix)) && key.contains("/model/"), "outside: {key}");
        assert_ne!(bytes, &secret, "{key}: a secret was downloaded");
    }
    assert!(temporaries(&cache).is_empty());
}

#[test]
fn oversized_yaml_files_are_refused_before_download() {
    let Some(s3) = s3_or_skip("os_oversized") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 10);
    s3.upload_dir(&root, "model");
    let limits = YamlLimits { max_bytes: 1 << 20, ..YamlLimits::default() };
    let o = options(&s3.server, &dir.path().join("cache"));
    let opts = ValidateOptions::new().strict(true).limits(limits).storage(o.clone());
    let url = loc(&s3, "model");
    validate_at(&url, &opts).unwrap();

    let mut big = fs::read(root.join("metadata.yaml")).unwrap();
    big.extend(std::iter::repeat_n(b'#', 2 << 20));
    big.push(b'\n');
    s3.put("model/metadata.yaml", &big);
    let local_copy = dir.path().join("local");
    copy_tree(&root, &local_copy);
    fs::write(local_copy.join("metadata.yaml"), &big).unwrap();
    let before = o.stats();
    let local = check(&local_copy, &ValidateOptions::new().limits(limits)).unwrap();
    let remote = check_at(&url, &opts).unwrap();
    assert_eq!(shape(&remote.offences), shape(&local.offences));
    assert!(remote.offences.iter().any(|o| o.location == "metadata.yaml" && o.message.contains("over the")));
    let (lists, gets, bytes) = delta(o.stats(), before);
    assert_eq!((lists, gets), (1, 1), "only data/build_parameters.yaml is downloaded");
    assert!(bytes < 4096, "{bytes} bytes downloaded");
    let err = validate_at(&url, &opts).unwrap_err();
    assert!(err.to_string().contains("metadata.yaml"), "{err}");

    // The same for data/build_parameters.yaml.
    s3.put("model/metadata.yaml", &fs::read(root.join("metadata.yaml")).unwrap());
    s3.put("model/data/build_parameters.yaml", &big[..(1 << 20) + 1]);
    let before = o.stats();
    let remote = check_at(&url, &opts).unwrap();
    assert!(
        remote.offences.iter().any(|o| o.location == "data/build_parameters.yaml" && o.message.contains("over the")),
        "{:?}",
        remote.offences
    );
    let (_, gets, bytes) = delta(o.stats(), before);
    assert!(bytes < (1 << 20), "{gets} GETs, {bytes} bytes: the oversized file was downloaded");
}

// ---------------------------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------------------------

#[test]
fn a_replaced_object_is_downloaded_again_and_reported() {
    let Some(s3) = s3_or_skip("os_cache_replaced") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 16);
    s3.upload_dir(&root, "model");
    let url = loc(&s3, "model");
    let cache = dir.path().join("cache");
    let o = options(&s3.server, &cache);
    let strict = ValidateOptions::new().strict(true).storage(o.clone());
    validate_at(&url, &strict).unwrap();
    let original = fs::read(root.join("data/checkpoints/epoch-1.pt")).unwrap();

    let etag = s3.put("model/data/checkpoints/epoch-1.pt", b"other weights of epoch 1\n");
    assert_eq!(etag, format!("\"{}\"", Md5::of_bytes(b"other weights of epoch 1\n")));
    let before = o.stats();
    let err = validate_at(&url, &strict).unwrap_err();
    assert!(matches!(err, Error::TreeValidation(_)), "{err:?}");
    assert!(err.to_string().contains("data/checkpoints/epoch-1.pt"), "{err}");
    assert!(err.to_string().contains("checkpoint 1 checksum mismatch"), "{err}");
    assert_eq!(delta(o.stats(), before).1, 3, "the two YAML files and the replaced checkpoint");
    // Reported every time (a mismatch is not cached as verified).
    let before = o.stats();
    assert!(validate_at(&url, &strict).is_err());
    assert_eq!(delta(o.stats(), before).1, 3);
    // Not strict: the replaced content is not looked at.
    validate_at(&url, &ValidateOptions::new().storage(o.clone())).unwrap();

    // The original content back: its ETag is the one the cache verified, nothing downloaded.
    s3.put("model/data/checkpoints/epoch-1.pt", &original);
    let before = o.stats();
    validate_at(&url, &strict).unwrap();
    assert_eq!(delta(o.stats(), before).1, 2);
    let entries = cache_entries(&cache);
    assert_eq!(entries[&s3.key("model/data/checkpoints/epoch-1.pt")], original);
    assert!(temporaries(&cache).is_empty());
}

/// A child process's work, chosen by `PMF_OS_CHILD` (a JSON request); nothing otherwise.
#[test]
fn child_role() {
    let Ok(request) = std::env::var(CHILD) else { return };
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    let url = Location::parse(request["url"].as_str().unwrap()).unwrap();
    let mut o = StorageOptions::new();
    if let Some(cache) = request["cache_dir"].as_str() {
        o.cache_dir(cache);
    }
    // Configured from the AWS_* environment only (no explicit endpoint or credentials).
    let start = request["start_at"].as_f64().unwrap_or(0.0);
    while now() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    let metadata = validate_at(&url, &ValidateOptions::new().strict(true).storage(o.clone())).unwrap();
    let s = o.stats();
    println!("CHILD-RESULT id={} lists={} gets={} bytes={}", metadata.model.id, s.lists, s.gets, s.bytes);
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Run this test binary's [`child_role`] with `request`, the server in `AWS_*` variables and
/// `env` on top.
fn spawn_child(server: &S3Server, request: serde_json::Value, env: &[(&str, &Path)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD, request.to_string())
        .envs(server.aws_env())
        .env_remove("PMF_CACHE_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn child_result(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("CHILD-RESULT"),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.contains("CHILD-RESULT")).unwrap();
    line[line.find("CHILD-RESULT").unwrap()..].to_owned()
}

#[test]
fn pmf_cache_dir_and_the_cache_dir_option_are_respected() {
    let Some(s3) = s3_or_skip("os_cache_dir") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 12);
    s3.upload_dir(&root, "model");
    let from_env = dir.path().join("from-env");
    let explicit = dir.path().join("explicit");
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    // PMF_CACHE_DIR, no option: there (and the AWS_* environment reaches the server).
    let r = child_result(spawn_child(
        &s3.server,
        serde_json::json!({"url": s3.url("model")}),
        &[("PMF_CACHE_DIR", &from_env), ("HOME", &home)],
    ));
    assert!(r.contains("id=3d6acb1f-s3 lists=1 gets=7"), "{r}");
    assert_eq!(cache_entries(&from_env).len(), 5);
    assert!(!home.join(".cache").exists(), "PMF_CACHE_DIR wins over the user's cache folder");
    // The option wins over PMF_CACHE_DIR.
    let r = child_result(spawn_child(
        &s3.server,
        serde_json::json!({"url": s3.url("model"), "cache_dir": explicit}),
        &[("PMF_CACHE_DIR", &from_env), ("HOME", &home)],
    ));
    assert!(r.contains("gets=7"), "{r}");
    assert_eq!(cache_entries(&explicit).len(), 5);
    // And the PMF_CACHE_DIR cache is reused by the next process.
    let r = child_result(spawn_child(
        &s3.server,
        serde_json::json!({"url": s3.url("model")}),
        &[("PMF_CACHE_DIR", &from_env), ("HOME", &home)],
    ));
    assert!(r.contains("gets=2"), "the next process reuses the cache: {r}");
    // Neither: $HOME/.cache/plums-model.
    let r = child_result(spawn_child(
        &s3.server,
        serde_json::json!({"url": s3.url("model")}),
        &[("HOME", &home), ("XDG_CACHE_HOME", Path::new(""))],
    ));
    assert!(r.contains("gets=7"), "{r}");
    assert_eq!(cache_entries(&home.join(".cache/plums-model")).len(), 5);
    assert_eq!(Cache::new(&from_env).info().unwrap().entries, 5);
}

#[test]
fn processes_validating_into_one_empty_cache_at_once() {
    let Some(s3) = s3_or_skip("os_cache_concurrent") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 24 << 20);
    s3.upload_dir(&root, "model");
    let local_files = files_of(&root);
    for round in 0..3 {
        let cache = dir.path().join(format!("shared-{round}"));
        let start_at = now() + 1.5;
        let request = serde_json::json!({"url": s3.url("model"), "cache_dir": cache, "start_at": start_at});
        let children: Vec<_> = (0..3).map(|_| spawn_child(&s3.server, request.clone(), &[])).collect();
        let results: Vec<String> = children.into_iter().map(child_result).collect();
        eprintln!("round {round}: {results:?}");
        let entries = cache_entries(&cache);
        let keys: BTreeSet<String> = entries.keys().cloned().collect();
        let expected: BTreeSet<String> =
            ["config.py", "data/checkpoints/epoch-1.pt", "data/checkpoints/epoch-2.pt", "data/checkpoints/epoch-3.pt"]
                .iter()
                .chain(&["data/initialisation/imagenet.h5"])
                .map(|r| s3.key(&format!("model/{r}")))
                .collect();
        assert_eq!(keys, expected, "one entry per object");
        for (key, bytes) in &entries {
            let rel = key.strip_prefix(&format!("{}/", s3.key("model"))).unwrap();
            assert_eq!(bytes, &local_files[rel], "{key}");
        }
        assert!(temporaries(&cache).is_empty(), "leftovers: {:?}", temporaries(&cache));
    }
}

// ---------------------------------------------------------------------------------------------
// Interoperability: a model saved by the reference, uploaded with boto3
// ---------------------------------------------------------------------------------------------

#[test]
fn models_saved_by_the_reference_load_strictly_from_s3() {
    let Some(s3) = s3_or_skip("os_reference") else { return };
    let Some(python) = reference_or_skip("os_reference") else { return };
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let run = run_reference(&python, &["corpus".into(), corpus.clone().into_os_string()], Duration::from_secs(120));
    let cases: Vec<String> =
        run.json()["cases"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert!(cases.len() >= 20, "{cases:?}");
    // Only the saved models (not the inputs), one boto3 run.
    let upload = dir.path().join("upload");
    for case in &cases {
        copy_tree(&corpus.join(case).join("model"), &upload.join(case));
    }
    s3.upload_dir(&upload, "corpus");
    let cache = dir.path().join("cache");
    let o = options(&s3.server, &cache);
    let mut problems = Vec::new();
    for case in &cases {
        let local_root = corpus.join(case).join("model");
        let url = loc(&s3, &format!("corpus/{case}"));
        let local = match Model::load(&local_root, &LoadOptions::new()) {
            Ok(m) => m,
            Err(e) => panic!("{case}: the local load refuses the reference model: {e}"),
        };
        match Model::load_at(&url, &LoadOptions::new().storage(o.clone())) {
            Ok(remote) => {
                if describe(&remote) != describe(&local) {
                    problems.push(format!("{case}: {} vs {}", describe(&remote), describe(&local)));
                }
            }
            Err(e) => problems.push(format!("{case}: Model::load_at refuses it: {e}")),
        }
        match validate_at(&url, &ValidateOptions::new().strict(true).storage(o.clone())) {
            Ok(m) => assert_eq!(m, validate(&local_root, &ValidateOptions::new().strict(true)).unwrap(), "{case}"),
            Err(e) => problems.push(format!("{case}: validate_at refuses it: {e}")),
        }
    }
    assert!(problems.is_empty(), "{} of {} reference models:\n{}", problems.len(), cases.len(), problems.join("\n"));
    eprintln!("{} reference models loaded strictly from S3; requests: {:?}", cases.len(), o.stats());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_prefix_is_not_found() {
    let Some(s3) = s3_or_skip("os_missing_prefix") else { return };
    let dir = tempfile::tempdir().unwrap();
    let o = options(&s3.server, &dir.path().join("cache"));
    s3.put("other/metadata.yaml", b"x");
    for rel in ["nothing", "othe"] {
        let url = loc(&s3, rel);
        for err in [
            validate_at(&url, &ValidateOptions::new().storage(o.clone())).unwrap_err(),
            check_at(&url, &ValidateOptions::new().strict(true).storage(o.clone())).unwrap_err(),
            Model::load_at(&url, &LoadOptions::new().storage(o.clone())).unwrap_err(),
        ] {
            assert_err!(
                err,
                Error::Storage { kind: StorageErrorKind::NotFound, .. },
                kind = std::io::ErrorKind::NotFound,
                &[&s3.url(rel), "not_found", "no object under this prefix"]
            );
            assert_eq!(err.code(), "storage");
            no_secret(&err, &s3.server, &[]);
        }
    }
    // A bucket that does not exist: an Error::Storage naming it, no secret (its kind: see
    // `a_missing_bucket_is_not_found`).
    let url = Location::parse(&format!("s3://pmf-no-such-bucket-{}/m", std::process::id())).unwrap();
    let err = validate_at(&url, &ValidateOptions::new().storage(o.clone())).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert_message(&err, &[&url.to_string(), "NoSuchBucket"]);
    no_secret(&err, &s3.server, &[]);
    // A missing object fetched directly.
    let err = fetch(&loc(&s3, "other"), "config.py", Md5::of_bytes(b""), &o).unwrap_err();
    assert!(matches!(err, Error::Storage { kind: StorageErrorKind::NotFound, .. }), "{err:?}");
}

/// Validate the model `rel` of `s3` with `key` and `secret` instead of the right credentials.
fn with_credentials(s3: &S3Test, cache: &Path, rel: &str, key: &str, secret: &str) -> (Error, StorageOptions) {
    let mut o = options(&s3.server, cache);
    o.set("access_key_id", key).unwrap().set("secret_access_key", secret).unwrap();
    o.set("retry_max", "1").unwrap();
    let err = validate_at(&loc(s3, rel), &ValidateOptions::new().strict(true).storage(o.clone())).unwrap_err();
    (err, o)
}

const WRONG_SECRET: &str = "pmf-wrong-secret-0123456789";
const UNKNOWN_KEY: &str = "PMFUNKNOWNKEY0000000";

#[test]
fn wrong_credentials_are_refused_without_the_secret() {
    let Some(s3) = s3_or_skip("os_wrong_credentials") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 10);
    s3.upload_dir(&root, "model");
    for (key, secret) in
        [(s3.server.access_key_id.as_str(), WRONG_SECRET), (UNKNOWN_KEY, s3.server.secret_access_key.as_str())]
    {
        let started = Instant::now();
        let (err, o) = with_credentials(&s3, &dir.path().join("cache"), "model", key, secret);
        eprintln!("wrong credentials ({:?}): {err}", started.elapsed());
        assert!(matches!(err, Error::Storage { .. }), "{err:?}");
        assert_message(&err, &[&s3.url("model"), "cannot list", "403"]);
        assert!(started.elapsed() < Duration::from_secs(10), "a 403 is not retried for long");
        no_secret(&err, &s3.server, &[WRONG_SECRET]);
        assert!(!format!("{o:?}").contains(secret), "{o:?}");
    }
}

#[test]
fn wrong_credentials_are_a_permission_error() {
    let Some(s3) = s3_or_skip("os_wrong_credentials_kind") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = saved_model(dir.path(), 1 << 10);
    s3.upload_dir(&root, "model");
    for (key, secret) in
        [(s3.server.access_key_id.as_str(), WRONG_SECRET), (UNKNOWN_KEY, s3.server.secret_access_key.as_str())]
    {
        let (err, _) = with_credentials(&s3, &dir.path().join("cache"), "model", key, secret);
        assert_err!(
            err,
            Error::Storage { kind: StorageErrorKind::PermissionDenied, .. },
            kind = std::io::ErrorKind::PermissionDenied,
            &[&s3.url("model"), "permission_denied"]
        );
    }
}

#[test]
fn a_missing_bucket_is_not_found() {
    let Some(s3) = s3_or_skip("os_missing_bucket") else { return };
    let dir = tempfile::tempdir().unwrap();
    let o = options(&s3.server, &dir.path().join("cache"));
    let url = Location::parse(&format!("s3://pmf-no-such-bucket-{}/m", std::process::id())).unwrap();
    let err = validate_at(&url, &ValidateOptions::new().storage(o)).unwrap_err();
    assert_err!(
        err,
        Error::Storage { kind: StorageErrorKind::NotFound, .. },
        kind = std::io::ErrorKind::NotFound,
        &["not_found"]
    );
}

#[test]
fn an_unreachable_endpoint_fails_clearly_within_the_timeout() {
    let Some(s3) = s3_or_skip("os_unreachable") else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut o = options(&s3.server, &dir.path().join("cache"));
    let endpoint = format!("http://127.0.0.1:{port}");
    o.set("endpoint", &endpoint).unwrap();
    o.set("timeout", "2").unwrap().set("connect_timeout", "1").unwrap();
    o.set("retry_max", "2").unwrap().set("retry_timeout", "5").unwrap();
    let started = Instant::now();
    let err = validate_at(&loc(&s3, "model"), &ValidateOptions::new().storage(o)).unwrap_err();
    let took = started.elapsed();
    eprintln!("figure: unreachable endpoint: {took:?}: {err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(matches!(err, Error::Storage { kind: StorageErrorKind::Other, .. }), "{err:?}");
    assert_message(&err, &[&s3.url("model"), "cannot list"]);
    no_secret(&err, &s3.server, &[]);
}

#[test]
fn a_refused_connection_is_not_a_timeout() {
    let Some(s3) = s3_or_skip("os_refused_kind") else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut o = options(&s3.server, &dir.path().join("cache"));
    o.set("endpoint", &format!("http://127.0.0.1:{port}")).unwrap();
    o.set("retry_max", "1").unwrap().set("retry_timeout", "5").unwrap();
    let err = validate_at(&loc(&s3, "model"), &ValidateOptions::new().storage(o)).unwrap_err();
    assert_message(&err, &["Connection refused"]);
    assert!(matches!(err, Error::Storage { kind: StorageErrorKind::Other, .. }), "{err:?}");
}
