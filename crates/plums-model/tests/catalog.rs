//! `list_models`: every model under a folder or a prefix, summarised and checked, in parallel,
//! without reading anything outside the location.
//!
//! Local trees are built from `examples/detector` (whose values are known) and small models
//! saved by the library; hostile trees link out of the location, to folders and to
//! `metadata.yaml` files, and inotify watches show that nothing out there is opened. The
//! object-store test needs the S3 test server (`tests/common/s3.rs`): skipped without it
//! unless `PMF_REQUIRE_S3=1`.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::s3::s3_or_skip;
use common::{copy_tree, guarded, inotify_events, inotify_watch, mkfifo, workspace_root};
use plums_model::{
    for_each_model, list_models, Checkpoint, Error, InitialisationSummary, ListOptions, Location, Model, ModelSummary,
    OffenceKind, Producer, Reference, SaveOptions, Status, StorageErrorKind, StorageOptions, Version,
};
use rustix::fs::inotify::WatchFlags;

/// A copy of `examples/detector` at `dst`.
fn detector(dst: &Path) -> PathBuf {
    copy_tree(&workspace_root().join("examples/detector"), dst);
    dst.to_path_buf()
}

/// A small model saved by the library at `dst` with id `id`: running, two checkpoints of 5 and
/// 7 bytes.
fn small(dst: &Path, id: &str) -> PathBuf {
    let inputs = tempfile::tempdir().unwrap();
    let cfg = inputs.path().join("config.py");
    fs::write(&cfg, b"lr = 0.1\n").unwrap();
    let mut model = Model::new(id, Producer::new("trainer", Version::pep440("2.0.1").unwrap(), &cfg).unwrap());
    model.name = Some(format!("name-{id}"));
    model.register_training_start(0).unwrap();
    for (epoch, bytes) in [(1, &b"12345"[..]), (2, &b"1234567"[..])] {
        let file = inputs.path().join(format!("{epoch}.pt"));
        fs::write(&file, bytes).unwrap();
        model.register_epoch(Some(epoch)).unwrap();
        model.add_checkpoint(Checkpoint::new(epoch, Some(&file), Some(epoch), None).unwrap()).unwrap();
    }
    model.save(dst, &SaveOptions::new()).unwrap();
    dst.to_path_buf()
}

fn list(root: &Path, options: &ListOptions) -> Vec<ModelSummary> {
    list_models(&Location::from(root), options).unwrap()
}

fn paths(rows: &[ModelSummary]) -> Vec<&str> {
    rows.iter().map(|r| r.relative_path.as_str()).collect()
}

fn row<'a>(rows: &'a [ModelSummary], path: &str) -> &'a ModelSummary {
    rows.iter().find(|r| r.relative_path == path).unwrap_or_else(|| panic!("no row {path}: {:?}", paths(rows)))
}

/// A tree of models at several depths, with folders that are not models.
///
/// ```text
/// a/                 model a (running, 2 checkpoints)
/// detector/          examples/detector (with its initialisation model inside)
/// group/b/           model b
/// group/deeper/c/    model c
/// group/notes.txt
/// empty/
/// a-b/               model a-b (sorts after a/ segment by segment)
/// ```
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    small(&root.join("a"), "a");
    small(&root.join("a-b"), "a-b");
    detector(&root.join("detector"));
    small(&root.join("group/b"), "b");
    small(&root.join("group/deeper/c"), "c");
    fs::write(root.join("group/notes.txt"), b"not a model").unwrap();
    fs::create_dir_all(root.join("empty/sub")).unwrap();
    dir
}

#[test]
fn every_model_is_one_row_sorted_by_path_with_its_summary() {
    let dir = tree();
    let rows = list(dir.path(), &ListOptions::new());
    assert_eq!(paths(&rows), ["a", "a-b", "detector", "group/b", "group/deeper/c"]);
    assert!(rows.iter().all(|r| r.valid && r.offences.is_empty() && r.error.is_none() && !r.strict), "{rows:#?}");

    let d = row(&rows, "detector");
    assert_eq!(d.location, Location::Local(dir.path().join("detector")));
    assert_eq!((d.name.as_deref(), d.id.as_deref()), (Some("detector"), Some("detector-0001")));
    assert_eq!(
        (d.producer.as_deref(), d.producer_version.as_deref(), d.producer_version_format.as_deref()),
        (Some("faster_rcnn"), Some("0.4.0"), Some("py_pa"))
    );
    assert_eq!(d.status, Some(Status::Finished));
    assert_eq!((d.start_epoch, d.latest_epoch, d.end_epoch), (Some(0), Some(3), Some(3)));
    assert!(d.start_time.is_some() && d.end_time.is_some());
    assert_eq!(d.checkpoint_count, Some(4));
    let on_disk: u64 = fs::read_dir(dir.path().join("detector/data/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(d.checkpoint_bytes, Some(on_disk));
    assert_eq!(d.latest, Some(Reference::from("best")));
    // The initialisation model inside is part of its parent, not a row of its own.
    assert_eq!(
        d.initialisation,
        Some(InitialisationSummary::Model {
            name: Some("backbone".into()),
            id: "backbone-0001".into(),
            checkpoint: Reference::from(2)
        })
    );

    let a = row(&rows, "a");
    assert_eq!((a.name.as_deref(), a.id.as_deref(), a.status), (Some("name-a"), Some("a"), Some(Status::Running)));
    assert_eq!((a.start_epoch, a.latest_epoch, a.end_epoch), (Some(0), Some(2), None));
    assert_eq!(
        (a.checkpoint_count, a.checkpoint_bytes, a.latest.clone()),
        (Some(2), Some(12), Some(Reference::from(2)))
    );
    assert_eq!(a.initialisation, None);
    assert_eq!(row(&rows, "group/deeper/c").location, Location::Local(dir.path().join("group/deeper/c")));
}

#[test]
fn depth_limits_the_folders_searched() {
    let dir = tree();
    let at = |depth: Option<usize>| -> Vec<String> {
        list(dir.path(), &ListOptions::new().depth(depth)).iter().map(|r| r.relative_path.clone()).collect()
    };
    assert!(at(Some(0)).is_empty(), "the location itself is not a model");
    assert_eq!(at(Some(1)), ["a", "a-b", "detector"]);
    assert_eq!(at(Some(2)), ["a", "a-b", "detector", "group/b"]);
    assert_eq!(at(Some(3)), ["a", "a-b", "detector", "group/b", "group/deeper/c"]);
    assert_eq!(at(None), at(Some(3)));
    // A location that is a model is one row, `.`, at any depth.
    for depth in [Some(0), None] {
        let rows = list(&dir.path().join("detector"), &ListOptions::new().depth(depth));
        assert_eq!(paths(&rows), ["."]);
        assert_eq!(rows[0].location, Location::Local(dir.path().join("detector")));
        assert_eq!(rows[0].id.as_deref(), Some("detector-0001"));
    }
}

#[test]
fn invalid_models_are_rows_with_their_offences_and_the_listing_goes_on() {
    let dir = tree();
    let root = dir.path();
    // Broken metadata: not YAML at all. Invalid whatever the mode, nothing known.
    small(&root.join("broken"), "broken");
    fs::write(root.join("broken/metadata.yaml"), b"model: [unclosed\n").unwrap();
    // A checkpoint file missing: invalid, but its metadata is still summarised.
    small(&root.join("missing"), "missing");
    fs::remove_file(root.join("missing/data/checkpoints/1.pt")).unwrap();
    // A checkpoint whose content changed (same size): only strict validation sees it.
    small(&root.join("corrupt"), "corrupt");
    fs::write(root.join("corrupt/data/checkpoints/2.pt"), b"7654321").unwrap();

    let quick = list(root, &ListOptions::new());
    assert_eq!(quick.len(), 8);
    let broken = row(&quick, "broken");
    assert!(!broken.valid && broken.error.is_none());
    assert_eq!(broken.offences.len(), 1, "{:?}", broken.offences);
    assert_eq!(
        (broken.offences[0].kind, broken.offences[0].location.as_str()),
        (OffenceKind::Metadata, "metadata.yaml")
    );
    assert!(broken.offences[0].message.contains("is not valid YAML"), "{}", broken.offences[0]);
    assert_eq!((broken.id.as_ref(), broken.status, broken.checkpoint_count), (None, None, None));

    let missing = row(&quick, "missing");
    assert!(!missing.valid);
    assert_eq!(missing.offences.len(), 1);
    assert_eq!(missing.offences[0].location, "data/checkpoints/1.pt");
    assert!(missing.offences[0].message.contains("is missing"), "{}", missing.offences[0]);
    assert_eq!((missing.id.as_deref(), missing.checkpoint_count), (Some("missing"), Some(2)));
    assert_eq!(missing.checkpoint_bytes, None, "a checkpoint file is missing: no total size");

    assert!(row(&quick, "corrupt").valid, "the quick check does not hash");
    for ok in ["a", "a-b", "detector", "group/b", "group/deeper/c"] {
        assert!(row(&quick, ok).valid, "{ok}");
    }

    let strict = list(root, &ListOptions::new().strict(true));
    let corrupt = row(&strict, "corrupt");
    assert!(!corrupt.valid && corrupt.strict);
    assert_eq!(corrupt.offences.len(), 1);
    assert_eq!(
        (corrupt.offences[0].kind, corrupt.offences[0].location.as_str()),
        (OffenceKind::Tree, "data/checkpoints/2.pt")
    );
    assert!(corrupt.offences[0].message.contains("checkpoint 2 checksum mismatch"), "{}", corrupt.offences[0]);
    assert_eq!((corrupt.id.as_deref(), corrupt.checkpoint_bytes), (Some("corrupt"), Some(12)));
    assert!(row(&strict, "detector").valid, "the example's checksums hold");
    assert_eq!(strict.iter().filter(|r| r.valid).count(), 5);
}

#[test]
fn links_out_of_the_location_are_never_followed_nor_read() {
    let outside = tempfile::tempdir().unwrap();
    let foreign = small(&outside.path().join("foreign"), "foreign");
    // A model whose metadata.yaml is a FIFO: opening it for reading would block.
    let trap = outside.path().join("trap");
    fs::create_dir_all(trap.join("data")).unwrap();
    mkfifo(&trap.join("metadata.yaml"));
    let secret = small(&outside.path().join("secret"), "secret");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    small(&root.join("ok"), "ok");
    symlink(&foreign, root.join("linked-model")).unwrap();
    symlink(outside.path(), root.join("linked-folder")).unwrap();
    symlink(&trap, root.join("linked-trap")).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    symlink(root.join("ok"), root.join("sub/linked-inside")).unwrap();
    // A model folder whose metadata.yaml leads out of it.
    small(&root.join("evil"), "evil");
    fs::remove_file(root.join("evil/metadata.yaml")).unwrap();
    symlink(secret.join("metadata.yaml"), root.join("evil/metadata.yaml")).unwrap();

    let watched = [
        outside.path().to_path_buf(),
        foreign.clone(),
        foreign.join("data"),
        trap.clone(),
        secret.clone(),
        secret.join("metadata.yaml"),
    ];
    let watch = inotify_watch(&watched, WatchFlags::OPEN | WatchFlags::ACCESS);
    let fifos = vec![trap.join("metadata.yaml")];
    let listed = root.clone();
    let rows = guarded("list_models", Duration::from_secs(60), fifos, move || {
        list_models(&Location::from(listed), &ListOptions::new().strict(true)).unwrap()
    });
    assert_eq!(paths(&rows), ["evil", "ok"], "linked folders are skipped, inside or out");
    let evil = row(&rows, "evil");
    assert!(!evil.valid && evil.id.is_none(), "{evil:?}");
    assert_eq!(evil.offences.len(), 1, "{:?}", evil.offences);
    assert_eq!(evil.offences[0].location, "metadata.yaml");
    assert!(evil.offences[0].message.contains("outside the model root: refused"), "{}", evil.offences[0]);
    assert!(row(&rows, "ok").valid);
    let events = inotify_events(&watch);
    assert!(events.is_empty(), "something outside the location was opened or read: {events:?}");
}

#[test]
fn a_model_folder_left_missing_by_an_interrupted_save_is_a_row_and_staging_folders_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    small(&root.join("ok"), "ok");
    // What a save leaves next to a model: a staging tree (not a row), and for `gone`, whose
    // folder is missing between the two renames of a commit, the complete new tree.
    small(&root.join(".ok.pmf-save-123-0-0000abcd"), "ok");
    small(&root.join(".gone.pmf-new-123-1-0000abcd"), "gone");
    let rows = list(root, &ListOptions::new());
    assert_eq!(paths(&rows), ["gone", "ok"]);
    let gone = row(&rows, "gone");
    assert!(!gone.valid && gone.offences.is_empty());
    match &gone.error {
        Some(e @ Error::InterruptedSave { leftover, .. }) => {
            assert!(leftover.ends_with(".gone.pmf-new-123-1-0000abcd"), "{leftover:?}");
            assert_eq!(e.code(), "interrupted_save");
        }
        other => panic!("expected an interrupted save, got {other:?}"),
    }
    // A folder named like a leftover but without a valid suffix is walked like any other.
    small(&root.join(".x.pmf-save-notasuffix/m"), "m");
    assert_eq!(paths(&list(root, &ListOptions::new())), [".x.pmf-save-notasuffix/m", "gone", "ok"]);
}

#[test]
fn the_location_itself_must_be_a_readable_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = list_models(&Location::from(dir.path().join("missing")), &ListOptions::new()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotFound));
    assert!(err.to_string().starts_with("cannot list models: "), "{err}");
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = list_models(&Location::from(file.clone()), &ListOptions::new()).unwrap_err();
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotADirectory), "{err:?}");
    assert_eq!(err.path(), Some(file.as_path()));
    // An empty folder holds no model.
    assert!(list(dir.path(), &ListOptions::new()).is_empty());
    // The location may be a link (the caller named it).
    small(&dir.path().join("real/m"), "m");
    symlink(dir.path().join("real"), dir.path().join("named")).unwrap();
    assert_eq!(paths(&list(&dir.path().join("named"), &ListOptions::new())), ["m"]);
}

#[test]
fn many_models_in_parallel_through_the_callback_and_a_pool_of_our_own() {
    let dir = tempfile::tempdir().unwrap();
    let template = small(&dir.path().join("template"), "template");
    for i in 0..60 {
        copy_tree(&template, &dir.path().join(format!("runs/{}/m{i}", i % 7)));
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let threads = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let n = for_each_model(&Location::from(dir.path().join("runs")), &ListOptions::new().threads(3), |summary| {
        threads.lock().unwrap().insert(std::thread::current().name().unwrap_or("").to_owned());
        seen.lock().unwrap().push(summary.relative_path);
    })
    .unwrap();
    assert_eq!(n, 60);
    assert_eq!(seen.lock().unwrap().len(), 60);
    let names = threads.into_inner().unwrap();
    assert!(names.iter().all(|t| t.starts_with("pmf-ls-")), "{names:?}");
    assert!(names.len() <= 3, "{names:?}");
    let rows = list(&dir.path().join("runs"), &ListOptions::new());
    let mut sorted = paths(&rows).into_iter().map(str::to_owned).collect::<Vec<_>>();
    sorted.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    assert_eq!(paths(&rows), sorted.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r.valid));
}

#[test]
fn the_catalog_only_uses_read_only_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let text = fs::read_to_string(src.join("catalog.rs")).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    // Each of these is a reader (`validate`, `yaml_file`, `leftovers`' lookups) or passive data;
    // `tests/architecture.rs` checks that the readers reach no writer.
    let read_only = [
        "error",
        "files",
        "leftovers",
        "location",
        "metadata",
        "object_files",
        "paths",
        "reference",
        "status",
        "storage",
        "training",
        "validate",
        "yaml",
        "yaml_file",
    ];
    let mut used = Vec::new();
    for piece in code.split("crate::").skip(1) {
        let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if modules.contains(&name) {
            assert!(read_only.contains(&name.as_str()), "catalog.rs uses crate::{name}, not a read-only module");
            used.push(name);
        }
    }
    assert!(used.contains(&"validate".to_owned()), "the sources were not found: {used:?}");
}

#[test]
fn models_under_a_prefix_from_one_listing() {
    let Some(s3) = s3_or_skip("catalog_prefix") else { return };
    let dir = tempfile::tempdir().unwrap();
    detector(&dir.path().join("detector"));
    small(&dir.path().join("group/a"), "a");
    small(&dir.path().join("group/broken"), "broken");
    fs::remove_file(dir.path().join("group/broken/data/checkpoints/2.pt")).unwrap();
    fs::write(dir.path().join("notes.txt"), b"not a model").unwrap();
    s3.upload_dir(dir.path(), "models");

    let mut storage = StorageOptions::new();
    for (k, v) in s3.server.storage_options() {
        storage.set(&k, &v).unwrap();
    }
    storage.cache_dir(dir.path().join("cache"));
    let location = Location::parse(&s3.url("models")).unwrap();
    let rows = list_models(&location, &ListOptions::new().storage(storage.clone())).unwrap();
    assert_eq!(paths(&rows), ["detector", "group/a", "group/broken"]);
    let stats = storage.stats();
    assert_eq!(stats.lists, 1, "one listing for every model: {stats:?}");
    // metadata.yaml and the build parameters of each model (and of the detector's
    // initialisation model), nothing else.
    assert_eq!(stats.gets, 2 * 3 + 2 + 1, "{stats:?}");

    let d = row(&rows, "detector");
    assert!(d.valid, "{:?}", d.offences);
    assert_eq!(d.location.to_string(), s3.url("models/detector"));
    assert_eq!(
        (d.id.as_deref(), d.checkpoint_count, d.latest.clone()),
        (Some("detector-0001"), Some(4), Some(Reference::from("best")))
    );
    let on_disk: u64 = fs::read_dir(dir.path().join("detector/data/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(d.checkpoint_bytes, Some(on_disk), "sizes from the listing");
    assert!(matches!(&d.initialisation, Some(InitialisationSummary::Model { id, .. }) if id == "backbone-0001"));
    let a = row(&rows, "group/a");
    assert!(a.valid && a.checkpoint_bytes == Some(12), "{a:?}");
    let broken = row(&rows, "group/broken");
    assert!(!broken.valid && broken.error.is_none());
    assert_eq!(broken.offences.len(), 1, "{:?}", broken.offences);
    assert_eq!(broken.offences[0].location, "data/checkpoints/2.pt");
    assert_eq!(broken.id.as_deref(), Some("broken"), "the metadata is summarised");

    // Depth counts prefix segments; a prefix that is a model is one row.
    let shallow = list_models(&location, &ListOptions::new().depth(1).storage(storage.clone())).unwrap();
    assert_eq!(paths(&shallow), ["detector"]);
    let one =
        list_models(&Location::parse(&s3.url("models/group/a")).unwrap(), &ListOptions::new().storage(storage.clone()))
            .unwrap();
    assert_eq!(paths(&one), ["."]);
    // Strict: the files are downloaded and verified.
    let strict = list_models(&location, &ListOptions::new().strict(true).storage(storage.clone())).unwrap();
    assert_eq!(strict.iter().map(|r| r.valid).collect::<Vec<_>>(), [true, true, false]);
    // Nothing there: no model. A bucket that does not exist: the listing's error.
    assert!(list_models(&Location::parse(&s3.url("nothing")).unwrap(), &ListOptions::new().storage(storage.clone()))
        .unwrap()
        .is_empty());
    let missing = Location::parse("s3://no-such-bucket-pmf-ls/x").unwrap();
    let err = list_models(&missing, &ListOptions::new().storage(storage)).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::NotFound), "{err:?}");
}
