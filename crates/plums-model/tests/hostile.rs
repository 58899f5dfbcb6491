//! Hostile models: a model folder downloaded from somewhere else must not make us read, hash,
//! overwrite or delete files outside its root, exhaust memory, hang, or crash the process.
//!
//! Every test builds a model root next to an *outside* folder holding a regular file, a FIFO and
//! the names a save would write (`build_parameters.yaml`, `checkpoints/`, `initialisation/`,
//! `metadata.yaml`, ...). The outside folder is watched with inotify: any open, read, listing,
//! write, creation or deletion there fails the test, and its contents are compared at the end.
//! Operations run under a watchdog: one that blocks (for instance on opening a FIFO) is
//! unblocked by opening the FIFOs for writing, and the test fails instead of hanging.
//!
//! Tests that could crash the process (deep nesting, YAML bombs) run in a child process (this
//! test binary, re-invoked on one test with `PMF_HOSTILE_CHILD` set), which also measures the
//! peak memory of the bombs.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{guarded, inotify_events, inotify_watch, mkfifo, strace_injection_unavailable, STRACE_RENAMEAT2_EINVAL};
use plums_model::{
    parse_yaml, to_yaml, validate, Checkpoint, Error, LoadOptions, Mapping, Md5, Model, OffenceKind, Producer,
    Reference, SaveOptions, ValidateOptions, Value, Version,
};
use rustix::fs::inotify;

/// How long an operation on a small hostile model may take before the watchdog fails the test.
const WATCHDOG: Duration = Duration::from_secs(20);
/// How long refusing a YAML bomb or an oversized file may take (debug build, loaded machine).
const FAST: Duration = Duration::from_secs(5);
const MODEL_ID: &str = "hostile-model";
const CHILD_ENV: &str = "PMF_HOSTILE_CHILD";

// ---------------------------------------------------------------------------------------------
// The outside folder and its watcher
// ---------------------------------------------------------------------------------------------

/// A folder next to the model root that nothing may touch, watched with inotify.
struct Outside {
    path: PathBuf,
    inotify: OwnedFd,
    contents: Vec<(PathBuf, Vec<u8>)>,
}

impl Outside {
    fn new(path: PathBuf, metadata: &[u8]) -> Outside {
        let files: Vec<(&str, &[u8])> = vec![
            ("secret", b"secret: outside the model root\n"),
            ("dir/metadata.yaml", metadata),
            ("dir/config.py", b"outside = True\n"),
            ("dir/build_parameters.yaml", b"outside: true\n"),
            ("dir/checkpoints/1.bin", b"outside checkpoint 1"),
            ("dir/checkpoints/2.bin", b"outside checkpoint 2"),
            ("dir/initialisation/w.bin", b"outside weights"),
            ("dir/initialisation/precious.bin", b"not part of any model"),
            ("dir/data/build_parameters.yaml", b"outside: true\n"),
            ("dir/data/checkpoints/1.bin", b"outside checkpoint 1"),
            ("dir/data/initialisation/w.bin", b"outside weights"),
        ];
        let mut contents = Vec::new();
        for (rel, bytes) in files {
            let p = path.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            contents.push((p, bytes.to_vec()));
        }
        mkfifo(&path.join("fifo"));
        let dirs = [
            "",
            "dir",
            "dir/checkpoints",
            "dir/initialisation",
            "dir/data",
            "dir/data/checkpoints",
            "dir/data/initialisation",
        ];
        let inotify = inotify_watch(dirs.map(|dir| path.join(dir)), inotify::WatchFlags::ALL_EVENTS);
        Outside { path, inotify, contents }
    }

    /// What was done in the folder since the last call.
    fn events(&self) -> Vec<String> {
        inotify_events(&self.inotify)
    }

    /// Fail if anything opened, read, listed, wrote, created or deleted in the folder, or if a
    /// file there changed.
    fn assert_untouched(&self, during: &str) {
        let events = self.events();
        assert!(events.is_empty(), "{during}: files outside the model root were accessed: {events:?}");
        for (p, bytes) in &self.contents {
            let now = fs::read(p).unwrap_or_else(|e| panic!("{during}: {} outside the root is gone: {e}", p.display()));
            assert!(&now == bytes, "{during}: {} outside the root was overwritten", p.display());
        }
        let meta = fs::symlink_metadata(self.path.join("fifo")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
        self.events(); // our own reads above
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture: a model root, its sources, and the outside folder
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Init {
    None,
    File,
    Pmf,
}

struct Fx {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    src: PathBuf,
    outside: Outside,
    fifos: Vec<PathBuf>,
}

impl Fx {
    /// A fixture whose root holds a valid model saved with `init`.
    fn new(init: Init) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let src = base.join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("config.py"), b"lr = 0.1\n").unwrap();
        fs::write(src.join("1.bin"), b"weights of epoch 1").unwrap();
        fs::write(src.join("2.bin"), b"weights of epoch 2").unwrap();
        fs::write(src.join("w.bin"), b"initial weights").unwrap();
        let root = base.join("model");
        let mut fx =
            Fx { outside: Outside::new(base.join("outside"), b""), _dir: dir, base, root, src, fifos: Vec::new() };
        fx.model(init).save(&fx.root, &SaveOptions::new()).unwrap();
        // The outside folder gets a copy of the real metadata, so a reader that follows a
        // link to it would find something it can parse.
        let metadata = fs::read(fx.root.join("metadata.yaml")).unwrap();
        let outside_path = fx.outside.path.clone();
        fs::remove_dir_all(&outside_path).unwrap();
        fx.outside = Outside::new(outside_path, &metadata);
        fx.fifos.push(fx.outside.path.join("fifo"));
        fx
    }

    /// The model of the fixture (a new object: no memory of any folder).
    fn model(&self, init: Init) -> Model {
        let mut params = Mapping::new();
        params.insert("lr".into(), Value::Float(0.1));
        let producer = Producer::new("hostile_test", Version::pep440("1.0.0").unwrap(), self.src.join("config.py"));
        let mut m = Model::new(MODEL_ID, producer.unwrap());
        m.name = Some("hostile".into());
        m.build_parameters = Value::Map(params);
        m.register_training_start(0).unwrap();
        m.register_epoch(Some(2)).unwrap();
        m.add_checkpoint(Checkpoint::new(1, Some(self.src.join("1.bin")), Some(1), None).unwrap()).unwrap();
        m.add_checkpoint(Checkpoint::new("two", Some(self.src.join("2.bin")), Some(2), None).unwrap()).unwrap();
        match init {
            Init::None => {}
            Init::File => m.register_initialisation(self.src.join("w.bin"), None, Some("imagenet")).unwrap(),
            Init::Pmf => {
                let init_root = self.base.join("init-source");
                if !init_root.exists() {
                    let version = Version::pep440("0.9").unwrap();
                    let producer = Producer::new("hostile_test", version, self.src.join("config.py")).unwrap();
                    let mut i = Model::new("init-model", producer);
                    i.register_training_start(0).unwrap();
                    i.register_epoch(Some(1)).unwrap();
                    i.add_checkpoint(Checkpoint::new(1, Some(self.src.join("w.bin")), Some(1), None).unwrap()).unwrap();
                    i.save(&init_root, &SaveOptions::new()).unwrap();
                }
                m.register_initialisation(&init_root, Some(Reference::Int(1)), None).unwrap();
            }
        }
        m
    }

    fn fifo_in_root(&mut self, rel: &str) {
        let p = self.root.join(rel);
        let _ = fs::remove_file(&p);
        mkfifo(&p);
        self.fifos.push(p);
    }

    fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.root.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
            Ok(_) => fs::remove_file(&p).unwrap(),
            Err(_) => {}
        }
        symlink(target, &p).unwrap();
    }

    /// Validate (strict and not), and load, under the watchdog; all must fail.
    fn refused(&self, what: &str) -> Vec<Error> {
        let mut errors = Vec::new();
        for strict in [true, false] {
            let root = self.root.clone();
            let r = guarded(&format!("{what}: validate(strict={strict})"), WATCHDOG, self.fifos.clone(), move || {
                validate(&root, &ValidateOptions::new().strict(strict))
            });
            errors.push(r.expect_err(&format!("{what}: validate(strict={strict}) accepted the hostile model")));
        }
        let root = self.root.clone();
        let r = guarded(&format!("{what}: Model::load"), WATCHDOG, self.fifos.clone(), move || {
            Model::load(&root, &LoadOptions::new()).map(|_| ())
        });
        errors.push(r.expect_err(&format!("{what}: Model::load accepted the hostile model")));
        self.outside.assert_untouched(&format!("{what}: validating and loading"));
        errors
    }

    /// Save a new model object with the fixture's id over the hostile folder, under the watchdog.
    fn save_over(&self, what: &str, init: Init, force: bool) -> Result<(), Error> {
        let mut model = self.model(init);
        let root = self.root.clone();
        let r = guarded(&format!("{what}: save(force={force})"), WATCHDOG, self.fifos.clone(), move || {
            model.save(&root, &SaveOptions::new().force(force))
        });
        self.outside.assert_untouched(&format!("{what}: save(force={force}) over the hostile model"));
        r
    }

    fn edit_metadata(&self, rel: &str, edit: impl FnOnce(&mut Value)) {
        let p = self.root.join(rel);
        let mut doc = parse_yaml(&fs::read_to_string(&p).unwrap()).unwrap();
        edit(&mut doc);
        fs::write(&p, to_yaml(&doc)).unwrap();
    }

    fn leftover_staging(&self) -> Vec<PathBuf> {
        fs::read_dir(&self.base)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().as_bytes().starts_with(b".model.pmf-save-"))
            .map(|e| e.path())
            .collect()
    }
}

/// The value at `keys` (a key matches a string key, or an int key written the same).
fn at<'a>(doc: &'a mut Value, keys: &[&str]) -> &'a mut Value {
    let mut cur = doc;
    for k in keys {
        let Value::Map(map) = cur else { panic!("no mapping at {k:?}") };
        let key = map
            .keys()
            .find(|key| match key {
                Value::Str(s) => s == k,
                Value::Int(i) => i.to_string() == *k,
                _ => false,
            })
            .cloned()
            .unwrap_or_else(|| panic!("no key {k:?}"));
        cur = map.get_mut(&key).unwrap();
    }
    cur
}

/// Assert that `err` is the validation error of `kind` and has an offence whose location
/// contains `location` and whose message contains every fragment.
#[track_caller]
fn assert_offence(err: &Error, kind: OffenceKind, location: &str, fragments: &[&str]) {
    let report = err.report().unwrap_or_else(|| panic!("expected a validation error, got {err:?}"));
    match (kind, err) {
        (OffenceKind::Tree, Error::TreeValidation(_)) | (OffenceKind::Metadata, Error::MetadataValidation(_)) => {}
        _ => panic!("expected a {kind} validation error, got: {err}"),
    }
    let found = report
        .offences
        .iter()
        .any(|o| o.kind == kind && o.location.contains(location) && fragments.iter().all(|f| o.message.contains(f)));
    assert!(found, "no {kind} offence at {location:?} saying {fragments:?} in:\n{err}");
}

/// Assert that `err` is the refusal to save over a model with the same id whose tree is
/// invalid, unless forced.
#[track_caller]
fn assert_invalid_same_model(err: &Error) {
    assert_err!(
        err,
        Error::InvalidSameModel { report, .. } if !report.offences.is_empty(),
        kind = std::io::ErrorKind::InvalidData,
        &["invalid PMF model with the same model id", "force"]
    );
}

// ---------------------------------------------------------------------------------------------
// Paths in the metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn absolute_and_parent_paths_in_every_metadata_path_are_refused() {
    let probe = Fx::new(Init::None);
    let abs_secret = probe.outside.path.join("secret").display().to_string();
    let abs_fifo = probe.outside.path.join("fifo").display().to_string();
    drop(probe);
    // (initialisation, metadata file, key path, fixture-relative value, expected location, expected words)
    type Case = (Init, &'static str, &'static [&'static str], &'static str, &'static str, &'static str);
    let cases: &[Case] = &[
        (
            Init::None,
            "metadata.yaml",
            &["model", "configuration", "path"],
            "ABS_FIFO",
            "model.configuration.path",
            "absolute",
        ),
        (
            Init::None,
            "metadata.yaml",
            &["model", "configuration", "path"],
            "../outside/fifo",
            "model.configuration.path",
            "..",
        ),
        (
            Init::None,
            "metadata.yaml",
            &["model", "configuration", "path"],
            "./../outside/secret",
            "model.configuration.path",
            "..",
        ),
        (
            Init::None,
            "metadata.yaml",
            &["model", "training", "checkpoints", "1", "path"],
            "ABS_SECRET",
            "model.training.checkpoints.1.path",
            "absolute",
        ),
        (
            Init::None,
            "metadata.yaml",
            &["model", "training", "checkpoints", "1", "path"],
            "data/checkpoints/../../../outside/fifo",
            "model.training.checkpoints.1.path",
            "..",
        ),
        (
            Init::None,
            "metadata.yaml",
            &["model", "training", "checkpoints", "two", "path"],
            "../outside/dir/checkpoints/2.bin",
            "model.training.checkpoints.two.path",
            "..",
        ),
        (
            Init::File,
            "metadata.yaml",
            &["model", "initialisation", "file", "path"],
            "ABS_FIFO",
            "model.initialisation.file.path",
            "absolute",
        ),
        (
            Init::File,
            "metadata.yaml",
            &["model", "initialisation", "file", "path"],
            "data/initialisation/../../../outside/secret",
            "model.initialisation.file.path",
            "..",
        ),
        (
            Init::Pmf,
            "metadata.yaml",
            &["model", "initialisation", "pmf", "path"],
            "ABS_SECRET",
            "model.initialisation.pmf.path",
            "absolute",
        ),
        (
            Init::Pmf,
            "metadata.yaml",
            &["model", "initialisation", "pmf", "path"],
            "../outside/dir",
            "model.initialisation.pmf.path",
            "..",
        ),
        // The nested model's own paths are confined too (to the top-level root and to its own).
        (
            Init::Pmf,
            "data/initialisation/metadata.yaml",
            &["model", "configuration", "path"],
            "../../../outside/fifo",
            "model.configuration.path",
            "..",
        ),
        (
            Init::Pmf,
            "data/initialisation/metadata.yaml",
            &["model", "configuration", "path"],
            "ABS_SECRET",
            "model.configuration.path",
            "absolute",
        ),
        (
            Init::Pmf,
            "data/initialisation/metadata.yaml",
            &["model", "configuration", "path"],
            "../config.py",
            "model.configuration.path",
            "..",
        ),
    ];
    for &(init, file, keys, value, location, word) in cases {
        let fx = Fx::new(init);
        let value = value.replace("ABS_SECRET", &abs_secret).replace("ABS_FIFO", &abs_fifo);
        let what = format!("{file}: {} = {value:?}", keys.join("."));
        fx.edit_metadata(file, |doc| *at(doc, keys) = Value::Str(value.clone()));
        for err in fx.refused(&what) {
            assert_offence(&err, OffenceKind::Tree, location, &[word]);
        }
        // Saving over it: refused without force; with force its PMF files are replaced.
        let err = fx.save_over(&what, init, false).unwrap_err();
        assert_invalid_same_model(&err);
        fx.save_over(&what, init, true).unwrap_or_else(|e| panic!("{what}: save(force) failed: {e}"));
        validate(&fx.root, &ValidateOptions::new().strict(true))
            .unwrap_or_else(|e| panic!("{what}: the forced save is invalid: {e}"));
        assert!(fx.leftover_staging().is_empty());
        fx.outside.assert_untouched(&what);
    }
}

#[test]
fn nul_and_empty_paths_are_metadata_offences() {
    for (value, words) in [("", "non-empty path"), ("config.py\0../outside/secret", "NUL")] {
        let fx = Fx::new(Init::None);
        fx.edit_metadata("metadata.yaml", |doc| {
            *at(doc, &["model", "configuration", "path"]) = Value::Str(value.into())
        });
        for err in fx.refused(&format!("configuration path {value:?}")) {
            assert_offence(&err, OffenceKind::Metadata, "model.configuration.path", &[words]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Symbolic links
// ---------------------------------------------------------------------------------------------

/// (initialisation, link in the root, target relative to the fixture base or absolute with
/// OUT standing for the outside folder, expected offence location)
const LINKS_OUT: &[(Init, &str, &str, &str)] = &[
    (Init::None, "data/checkpoints/1.bin", "OUT/dir/checkpoints/1.bin", "data/checkpoints/1.bin"),
    (Init::None, "data/checkpoints/1.bin", "../../../outside/fifo", "data/checkpoints/1.bin"),
    (Init::None, "data/checkpoints", "OUT/dir/checkpoints", "data/checkpoints"),
    (Init::None, "config.py", "OUT/fifo", "config.py"),
    (Init::None, "config.py", "../outside/dir/config.py", "config.py"),
    (Init::None, "metadata.yaml", "OUT/dir/metadata.yaml", "metadata.yaml"),
    (Init::None, "data/build_parameters.yaml", "../../outside/dir/build_parameters.yaml", "data/build_parameters.yaml"),
    (Init::None, "data", "OUT/dir/data", "data"),
    (Init::File, "data/initialisation", "OUT/dir/initialisation", "data/initialisation"),
    (Init::File, "data/initialisation/w.bin", "../../../outside/secret", "data/initialisation/w.bin"),
    (Init::Pmf, "data/initialisation/metadata.yaml", "OUT/dir/metadata.yaml", "data/initialisation"),
    (Init::Pmf, "data/initialisation/config.py", "OUT/fifo", "data/initialisation/config.py"),
];

fn link_target(fx: &Fx, target: &str) -> PathBuf {
    PathBuf::from(target.replace("OUT", &fx.outside.path.display().to_string()))
}

#[test]
fn links_out_of_the_root_are_refused_without_being_followed() {
    for &(init, link, target, location) in LINKS_OUT {
        let fx = Fx::new(init);
        fx.link(link, link_target(&fx, target));
        let what = format!("{link} -> {target}");
        for err in fx.refused(&what) {
            assert_offence(&err, OffenceKind::Tree, location, &[]);
            let text = err.to_string();
            assert!(
                text.contains("outside the model root") || text.contains("holds no metadata.yaml"),
                "{what}: {text}"
            );
        }
    }
}

/// Saving over a model whose links point outside must neither read nor write through them.
#[test]
fn save_with_force_over_links_out_of_the_root_touches_nothing_outside() {
    let failures = save_over_links_out();
    assert!(
        failures.is_empty(),
        "{} of {} cases touched files outside the root:\n{}",
        failures.len(),
        LINKS_OUT.len() - 1,
        failures.join("\n")
    );
}

/// A model that saved the folder itself (so that adding a checkpoint is a save in place,
/// `save/append.rs`) adds one after a link out of the root was planted in the folder: nothing
/// outside is touched, and what the save leaves validates.
#[test]
fn adding_a_checkpoint_in_place_never_follows_links_planted_since_the_last_save() {
    let mut failures = Vec::new();
    // metadata.yaml: replacing it is a concurrent change, refused before anything is read.
    for &(init, link, target, _) in LINKS_OUT.iter().filter(|c| c.1 != "metadata.yaml") {
        let what = format!("{link} -> {target}");
        let fx = Fx::new(init);
        let mut model = fx.model(init);
        model.save(&fx.root, &SaveOptions::new()).unwrap();
        fx.outside.events();
        fx.link(link, link_target(&fx, target));
        fs::write(fx.src.join("3.bin"), b"weights of epoch 3").unwrap();
        model.register_epoch(Some(3)).unwrap();
        model.add_checkpoint(Checkpoint::new(3, Some(fx.src.join("3.bin")), Some(3), None).unwrap()).unwrap();
        let root = fx.root.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let r = guarded(&format!("{what}: save in place"), WATCHDOG, fx.fifos.clone(), move || {
                model.save(&root, &SaveOptions::new())
            });
            fx.outside.assert_untouched(&format!("{what}: adding a checkpoint"));
            match r {
                Ok(()) => {
                    validate(&fx.root, &ValidateOptions::new().strict(true))
                        .unwrap_or_else(|e| panic!("{what}: the save wrote an invalid model: {e}"));
                }
                Err(e) => assert!(
                    matches!(e, Error::Obstructed { found: "a symbolic link", needed: "a folder", .. }),
                    "{what}: {e:?}"
                ),
            }
        }));
        if let Err(panic) = outcome {
            failures.push(panic.downcast_ref::<String>().cloned().unwrap_or_else(|| format!("{what}: panicked")));
        }
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// Save over each hostile folder of [`LINKS_OUT`], without and with force: what went wrong.
fn save_over_links_out() -> Vec<String> {
    let mut failures = Vec::new();
    // metadata.yaml: see save_does_not_read_a_metadata_yaml_that_links_out_of_the_root.
    for &(init, link, target, _) in LINKS_OUT.iter().filter(|c| c.1 != "metadata.yaml") {
        let fx = Fx::new(init);
        fx.link(link, link_target(&fx, target));
        let what = format!("{link} -> {target}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let err = fx.save_over(&what, init, false).expect_err("save without force over an invalid model");
            assert!(matches!(err, Error::InvalidSameModel { .. }), "{what}: {err:?}");
            // With force: either a clean refusal, or a valid model whose links no longer lead out.
            match fx.save_over(&what, init, true) {
                Ok(()) => {
                    validate(&fx.root, &ValidateOptions::new().strict(true))
                        .unwrap_or_else(|e| panic!("{what}: forced save wrote an invalid model: {e}"));
                }
                Err(e) => assert!(
                    matches!(e, Error::Obstructed { found: "a symbolic link", needed: "a folder", .. }),
                    "{what}: {e:?}"
                ),
            }
            assert!(fx.leftover_staging().is_empty(), "{what}: staging folder left behind");
        }));
        if let Err(panic) = outcome {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("{what}: {message}"));
        }
    }
    failures
}

/// The same where the file system cannot exchange folders (`renameat2(RENAME_EXCHANGE)` made to
/// fail with EINVAL by `strace`, as on NFS): save then moves files into place one by one, and
/// removes old initialisation files itself. Skipped without strace.
#[test]
fn save_with_force_without_rename_exchange_touches_nothing_outside() {
    if let Some(why) = strace_injection_unavailable() {
        println!("SKIPPED: strace with --seccomp-bpf and inject is not available ({why})");
        return;
    }
    run_child_with("no_exchange_child", Some(("strace", STRACE_RENAMEAT2_EINVAL)));
}

#[test]
fn no_exchange_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let failures = save_over_links_out();
    assert!(
        failures.is_empty(),
        "without RENAME_EXCHANGE, {} of {} cases touched files outside the root:\n{}",
        failures.len(),
        LINKS_OUT.len() - 1,
        failures.join("\n")
    );
    println!("CHILD DONE");
}

/// Before saving over a folder, save reads its metadata.yaml (to compare ids): a metadata.yaml
/// that links out of the root must not be followed (it would read any file the process can,
/// and quote parts of it in the error message).
#[test]
fn save_does_not_read_a_metadata_yaml_that_links_out_of_the_root() {
    let fx = Fx::new(Init::None);
    fx.link("metadata.yaml", fx.outside.path.join("secret"));
    for force in [false, true] {
        let mut model = fx.model(Init::None);
        let root = fx.root.clone();
        let err = guarded("save over metadata.yaml -> outside", WATCHDOG, fx.fifos.clone(), move || {
            model.save(&root, &SaveOptions::new().force(force))
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidDestination { .. }), "{err:?}");
        assert!(!err.to_string().contains("\"secret\""), "the error quotes the file outside the root: {err}");
        fx.outside.assert_untouched(&format!("save(force={force}) over a metadata.yaml that links outside"));
    }
}

/// A folder that is not a PMF model, holding a `data` link out of it: saving into it with force
/// must not write through the link.
#[test]
fn save_with_force_into_a_foreign_folder_does_not_write_through_its_links() {
    let fx = Fx::new(Init::File);
    let foreign = fx.base.join("foreign");
    fs::create_dir(&foreign).unwrap();
    symlink(fx.outside.path.join("dir"), foreign.join("data")).unwrap();
    let mut model = fx.model(Init::File);
    let target = foreign.clone();
    let err = guarded("save(force=false) into a foreign folder", WATCHDOG, fx.fifos.clone(), move || {
        model.save(&target, &SaveOptions::new())
    })
    .unwrap_err();
    assert_err!(err, Error::ForeignFolder { path } if *path == foreign, &["not a PMF model", "force"]);
    let mut model = fx.model(Init::File);
    let target = foreign.clone();
    let r = guarded("save(force=true) into a foreign folder", WATCHDOG, fx.fifos.clone(), move || {
        model.save(&target, &SaveOptions::new().force(true))
    });
    fx.outside.assert_untouched(&format!("save(force=true) into a foreign folder whose data/ links outside ({r:?})"));
}

#[test]
fn symlink_loops_are_refused_and_extra_loops_are_harmless() {
    let fx = Fx::new(Init::None);
    fx.link("config.py", "config.py");
    for err in fx.refused("config.py -> itself") {
        assert_offence(&err, OffenceKind::Tree, "config.py", &["loop"]);
    }
    let fx = Fx::new(Init::None);
    fx.link("data/checkpoints/1.bin", "b");
    fx.link("data/checkpoints/b", "1.bin");
    for err in fx.refused("1.bin -> b -> 1.bin") {
        assert_offence(&err, OffenceKind::Tree, "data/checkpoints/1.bin", &["loop"]);
    }
    fx.save_over("checkpoint link loop", Init::None, true).unwrap();
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();

    // An extra link to an ancestor folder is kept, never followed, and does not hang the walk.
    let fx = Fx::new(Init::None);
    fs::create_dir(fx.root.join("extra")).unwrap();
    fx.link("extra/up", "..");
    fx.link("extra/self", ".");
    let root = fx.root.clone();
    guarded("validate with folder loops", WATCHDOG, vec![], move || {
        validate(&root, &ValidateOptions::new().strict(true))
    })
    .unwrap();
    let mut m = Model::load(&fx.root, &LoadOptions::new()).unwrap();
    m.register_epoch(Some(3)).unwrap();
    m.save(&fx.root, &SaveOptions::new()).unwrap();
    assert_eq!(fs::read_link(fx.root.join("extra/up")).unwrap(), Path::new(".."));
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
    fx.outside.assert_untouched("folder loops");
}

// ---------------------------------------------------------------------------------------------
// Special files
// ---------------------------------------------------------------------------------------------

#[test]
fn fifos_in_the_tree_are_offences_and_never_opened() {
    for (init, rel, location, words) in [
        (Init::None, "data/checkpoints/1.bin", "data/checkpoints/1.bin", "FIFO"),
        (Init::None, "config.py", "config.py", "FIFO"),
        (Init::None, "metadata.yaml", "metadata.yaml", "FIFO"),
        (Init::None, "data/build_parameters.yaml", "data/build_parameters.yaml", "FIFO"),
        (Init::None, "extra-fifo", "extra-fifo", "special files are not allowed"),
        (Init::File, "data/initialisation/w.bin", "data/initialisation/w.bin", "FIFO"),
        (Init::Pmf, "data/initialisation/metadata.yaml", "data/initialisation/metadata.yaml", "FIFO"),
    ] {
        let mut fx = Fx::new(init);
        fx.fifo_in_root(rel);
        let what = format!("FIFO at {rel}");
        for err in fx.refused(&what) {
            assert_offence(&err, OffenceKind::Tree, location, &[words]);
        }
        // A link inside the root to the FIFO is refused as well, without opening it.
        if rel == "extra-fifo" {
            fx.link("config.py", "extra-fifo");
            for err in fx.refused("config.py -> FIFO in the root") {
                assert_offence(&err, OffenceKind::Tree, "config.py", &["not a file"]);
            }
        }
        // Saving over a folder that holds a FIFO: refused without force. With force, a FIFO
        // where PMF owns the path (data/initialisation/) is replaced; anywhere else it is a
        // clear error, since save carries every other file over. A FIFO as metadata.yaml is not
        // a metadata file save can read: refused with force too.
        let unreadable = |e: &Error| {
            matches!(e, Error::InvalidDestination { path, reason }
                if *path == fx.root.join("metadata.yaml") && reason.contains("not a regular file"))
        };
        let err = fx.save_over(&what, init, false).expect_err(&format!("{what}: save without force"));
        if rel == "metadata.yaml" {
            assert!(unreadable(&err), "{what}: {err:?}");
        } else {
            assert!(matches!(err, Error::InvalidSameModel { .. }), "{what}: {err:?}");
        }
        match fx.save_over(&what, init, true) {
            Ok(()) => {
                assert!(rel.starts_with("data/initialisation/"), "{what}: save(force) carried a FIFO over");
                validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
            }
            Err(e) => {
                let text = e.to_string();
                if rel == "metadata.yaml" {
                    assert!(unreadable(&e), "{what}: {e:?}");
                } else {
                    assert!(matches!(e, Error::Obstructed { needed: "no special file", .. }), "{what}: {e:?}");
                }
                assert!(text.contains("special file") || text.contains("not a regular file"), "{what}: {text}");
                let meta = fs::symlink_metadata(fx.root.join(rel)).unwrap();
                assert!(
                    std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
                    "{what}: a failed save replaced the FIFO"
                );
            }
        }
        assert!(fx.leftover_staging().is_empty(), "{what}: staging folder left behind");
    }
}

// ---------------------------------------------------------------------------------------------
// Size, nesting and YAML bombs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_100_mb_yaml_file_is_refused_without_being_read() {
    for rel in ["metadata.yaml", "data/build_parameters.yaml"] {
        let fx = Fx::new(Init::None);
        let f = fs::OpenOptions::new().write(true).truncate(true).open(fx.root.join(rel)).unwrap();
        f.set_len(100_000_000).unwrap();
        drop(f);
        // Reads of the file (IN_ACCESS, IN_OPEN).
        let watch = inotify_watch([fx.root.join(rel)], inotify::WatchFlags::ACCESS | inotify::WatchFlags::OPEN);
        let start = Instant::now();
        for err in fx.refused(&format!("100 MB {rel}")) {
            assert_offence(&err, OffenceKind::Metadata, rel, &["100000000 bytes", "limit"]);
        }
        if rel == "metadata.yaml" {
            let err = fx.save_over("100 MB metadata.yaml", Init::None, true).unwrap_err();
            assert_err!(err, Error::InvalidDestination { .. }, &["not a valid PMF metadata file", "size"]);
        }
        assert!(start.elapsed() < FAST, "refusing a 100 MB {rel} took {:?}", start.elapsed());
        assert_eq!(inotify_events(&watch).len(), 0, "the 100 MB {rel} was opened or read");
    }
}

fn billion_laughs_seq() -> String {
    let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    doc
}

fn billion_laughs_map() -> String {
    let mut doc = String::from(
        "m0: &m0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol, k9: lol}\n",
    );
    for i in 1..10 {
        let entries: Vec<String> = (0..10).map(|j| format!("k{j}: *m{}", i - 1)).collect();
        doc.push_str(&format!("m{i}: &m{i} {{{}}}\n", entries.join(", ")));
    }
    doc
}

fn merge_bomb() -> String {
    let mut doc = String::from(
        "m0: &m0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol, k9: lol}\n",
    );
    for i in 1..10 {
        let entries: Vec<String> = (0..10).map(|j| format!("x{j}: {{<<: *m{}}}", i - 1)).collect();
        doc.push_str(&format!("m{i}: &m{i} {{{}}}\n", entries.join(", ")));
    }
    doc
}

/// A long anchored string repeated by aliases: few nodes, much text.
fn text_bomb() -> String {
    let long = "x".repeat(8 << 20);
    let refs = vec!["*s"; 64].join(", ");
    format!("s: &s {long}\nl: [{refs}]\n")
}

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Re-run one test of this binary in a child process with `PMF_HOSTILE_CHILD` set; returns its
/// standard output. A crash (stack overflow, abort) of the child fails the calling test, and so
/// does a child that runs longer than a minute (it is killed).
fn run_child(test: &str) -> String {
    run_child_with(test, None)
}

/// [`run_child`], optionally under a wrapper command: its program and the arguments before ours
/// (`strace ...`).
fn run_child_with(test: &str, wrapper: Option<(&str, &[&str])>) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    let mut proc = cmd
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdout_pipe, mut stderr_pipe) = (proc.stdout.take().unwrap(), proc.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stdout_pipe, &mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = proc.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = proc.kill();
            let _ = proc.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap().unwrap()).into_owned();
    print!("{stdout}");
    let status = status.unwrap_or_else(|| panic!("child {test} did not finish within a minute:\n{stdout}\n{stderr}"));
    assert!(status.success(), "child {test} failed ({status:?}):\n{stdout}\n{stderr}");
    assert!(stdout.contains("CHILD DONE"), "child {test} did not run:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn yaml_bombs_fail_fast_with_bounded_memory() {
    let out = run_child("yaml_bombs_child");
    let peak: u64 = out
        .lines()
        .filter_map(|l| l.split("peak RSS ").nth(1))
        .filter_map(|v| v.trim_end_matches(" MiB").parse().ok())
        .max()
        .unwrap();
    assert!(peak < 1024, "a YAML bomb made the process grow to {peak} MiB");
}

#[test]
fn yaml_bombs_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let bombs: Vec<(&str, String, &str)> = vec![
        ("billion laughs (sequences)", billion_laughs_seq(), "nodes"),
        ("billion laughs (mappings)", billion_laughs_map(), "nodes"),
        ("merge-key bomb", merge_bomb(), "nodes"),
        ("8 MiB string x 64 aliases", text_bomb(), "bytes of scalar text"),
    ];
    for (name, doc, words) in &bombs {
        for rel in ["metadata.yaml", "data/build_parameters.yaml"] {
            let fx = Fx::new(Init::None);
            fs::write(fx.root.join(rel), doc).unwrap();
            let start = Instant::now();
            let err = validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap_err();
            let took = start.elapsed();
            assert_offence(&err, OffenceKind::Metadata, rel, &["not valid YAML", words]);
            if rel == "metadata.yaml" {
                let err = Model::load(&fx.root, &LoadOptions::new()).unwrap_err();
                assert_offence(&err, OffenceKind::Metadata, rel, &[words]);
                let start = Instant::now();
                let err = fx.model(Init::None).save(&fx.root, &SaveOptions::new().force(true)).unwrap_err();
                assert_err!(err, Error::InvalidDestination { .. }, &["not a valid PMF metadata file", words]);
                assert!(start.elapsed() < FAST, "{name}: save refused it in {:?}", start.elapsed());
            }
            println!(
                "bomb {name} in {rel}: refused in {} ms, peak RSS {} MiB",
                took.as_millis(),
                peak_rss_kib() / 1024
            );
            assert!(took < FAST, "{name} in {rel}: refused in {took:?}");
        }
    }
    println!("CHILD DONE");
}

#[test]
fn deep_nesting_is_refused_without_crashing() {
    run_child("deep_nesting_child");
}

#[test]
fn deep_nesting_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let docs = [
        ("10,000 [", "[".repeat(10_000)),
        ("10,000 {", "{".repeat(10_000)),
        ("10,000 [ closed", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
        ("10,000 nested flow mappings", format!("{}x{}", "{a: ".repeat(10_000), "}".repeat(10_000))),
        ("10,000 block sequences", format!("{}x\n", "- ".repeat(10_000))),
        ("2,000 indented mappings", (0..2_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>()),
    ];
    for (name, doc) in &docs {
        let start = Instant::now();
        let err = parse_yaml(doc).expect_err(name);
        assert!(start.elapsed() < FAST, "{name}: {:?}", start.elapsed());
        println!("{name}: {err}");
        for rel in ["metadata.yaml", "data/build_parameters.yaml"] {
            let fx = Fx::new(Init::None);
            fs::write(fx.root.join(rel), doc).unwrap();
            let err = validate(&fx.root, &ValidateOptions::new()).unwrap_err();
            assert_offence(&err, OffenceKind::Metadata, rel, &["not valid YAML"]);
        }
    }
    // A chain of PMF initialisation models nested as deep as paths allow (about 196 levels
    // under /tmp), validated, loaded and saved on a thread with the default stack of a Rust
    // thread (2 MiB; PMF_STACK=<bytes> to try others). Measured: a release build needs between
    // 512 KiB and 1 MiB for it, a debug build between 1 and 2 MiB.
    std::thread::Builder::new()
        .stack_size(std::env::var("PMF_STACK").ok().and_then(|v| v.parse().ok()).unwrap_or(2 << 20))
        .spawn(|| {
            let depth = nested_chain_depth();
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("m");
            write_chain(&root, depth);
            let start = Instant::now();
            validate(&root, &ValidateOptions::new().strict(true)).unwrap();
            let mut m = Model::load(&root, &LoadOptions::new()).unwrap();
            m.register_training_start(0).unwrap();
            m.save(&root, &SaveOptions::new()).unwrap();
            validate(&root, &ValidateOptions::new().strict(true)).unwrap();
            let copy = dir.path().join("copy");
            m.save(&copy, &SaveOptions::new()).unwrap();
            validate(&copy, &ValidateOptions::new().strict(true)).unwrap();
            println!(
                "{depth} nested initialisation models: validated, loaded and saved twice in {:?}",
                start.elapsed()
            );
        })
        .unwrap()
        .join()
        .unwrap();
    println!("CHILD DONE");
}

/// How many `data/initialisation` levels fit under the temporary folder within PATH_MAX.
fn nested_chain_depth() -> usize {
    // Room for the staging folder name of a save next to the model, too.
    let prefix =
        std::env::temp_dir().join(".tmpXXXXXX/.copy.pmf-save-1234567-123-12345678/metadata.yaml").as_os_str().len();
    (4000 - prefix) / "data/initialisation/".len()
}

/// A model whose initialisation is a model whose initialisation is ... `depth` levels.
fn write_chain(root: &Path, depth: usize) {
    let config = b"chain = 1\n";
    let hash = Md5::of_bytes(config);
    for level in (0..=depth).rev() {
        let mut dir = root.to_path_buf();
        for _ in 0..level {
            dir.push("data/initialisation");
        }
        fs::create_dir_all(dir.join("data/initialisation")).unwrap();
        fs::create_dir_all(dir.join("data/checkpoints")).unwrap();
        fs::write(dir.join("config.py"), config).unwrap();
        fs::write(dir.join("data/build_parameters.yaml"), "{}\n").unwrap();
        let init = if level == depth {
            "null".to_owned()
        } else {
            format!("\n    pmf:\n      name: null\n      id: chain-{}\n      checkpoint: 1\n      path: data/initialisation", level + 1)
        };
        // The top-level model has no checkpoint (its files would be checked); every nested one
        // registers checkpoint 1, the one its parent was initialised from.
        let (latest, checkpoints) = if level == 0 {
            ("null".to_owned(), "{}".to_owned())
        } else {
            ("1".to_owned(), format!("\n      1:\n        epoch: 1\n        path: .\n        hash: {hash}"))
        };
        let text = format!(
            "format:\n  version: 1.0.0\n  producer:\n    name: chain\n    version:\n      format: py_pa\n      value: 1.0.0\n\
             model:\n  name: null\n  id: chain-{level}\n  configuration:\n    path: config.py\n    hash: {hash}\n  initialisation: {init}\n\
             \x20 training:\n    status: pending\n    start_epoch: null\n    start_time: null\n    latest_epoch: null\n    latest_time: null\n\
             \x20   end_epoch: null\n    end_time: null\n    latest: {latest}\n    checkpoints: {checkpoints}\n"
        );
        fs::write(dir.join("metadata.yaml"), text).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Names and contents that are not UTF-8
// ---------------------------------------------------------------------------------------------

#[test]
fn non_utf8_file_names_are_accepted_and_carried_over_by_save() {
    let fx = Fx::new(Init::File);
    let extras: [(&[u8], &[u8]); 4] = [
        (b"\xff\xfe-extra.bin", b"root extra"),
        (b"data/\xe9t\xe9.txt", b"latin-1 name"),
        (b"data/checkpoints/\xfe.bin", b"unregistered file in checkpoints"),
        (b"\xc3\x28-dir/inner", b"in a folder with an invalid name"),
    ];
    for (name, content) in extras {
        let p = fx.root.join(OsStr::from_bytes(name));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
    let mut m = Model::load(&fx.root, &LoadOptions::new()).unwrap();
    fs::write(fx.src.join("3.bin"), b"weights of epoch 3").unwrap();
    m.register_epoch(Some(3)).unwrap();
    m.add_checkpoint(Checkpoint::new(3, Some(fx.src.join("3.bin")), Some(3), None).unwrap()).unwrap();
    m.save(&fx.root, &SaveOptions::new()).unwrap();
    fx.model(Init::File).save(&fx.root, &SaveOptions::new().force(true)).unwrap();
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
    for (name, content) in extras {
        let p = fx.root.join(OsStr::from_bytes(name));
        assert_eq!(fs::read(&p).unwrap(), content, "{} was not carried over", p.display());
    }
    fx.outside.assert_untouched("non-UTF-8 names");
}

#[test]
fn a_model_folder_with_a_non_utf8_name_can_be_saved_loaded_and_saved_again() {
    let fx = Fx::new(Init::None);
    let root = fx.base.join(OsStr::from_bytes(b"model-\xff"));
    let mut m = fx.model(Init::None);
    m.save(&root, &SaveOptions::new()).unwrap();
    let mut loaded = Model::load(&root, &LoadOptions::new()).unwrap();
    loaded.register_epoch(Some(5)).unwrap();
    loaded.save(&root, &SaveOptions::new()).unwrap();
    // m is stale: the folder changed since.
    let err = m.save(&root, &SaveOptions::new().force(true)).unwrap_err();
    assert!(matches!(&err, Error::ConcurrentChange { path } if *path == root), "{err:?}");
    validate(&root, &ValidateOptions::new().strict(true)).unwrap();
    let staging: Vec<_> = fs::read_dir(&fx.base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().as_bytes().contains(&b'.'))
        .filter(|e| e.file_name().as_bytes().windows(10).any(|w| w == b".pmf-save-"))
        .collect();
    assert!(
        staging.is_empty(),
        "staging folders left: {:?}",
        staging.iter().map(|e| e.file_name()).collect::<Vec<_>>()
    );
}

#[test]
fn non_utf8_yaml_contents_are_metadata_offences() {
    for rel in ["metadata.yaml", "data/build_parameters.yaml"] {
        let fx = Fx::new(Init::None);
        let mut bytes = fs::read(fx.root.join(rel)).unwrap();
        bytes.extend_from_slice(b"# caf\xe9 in latin-1\n");
        fs::write(fx.root.join(rel), bytes).unwrap();
        for err in fx.refused(&format!("latin-1 {rel}")) {
            assert_offence(&err, OffenceKind::Metadata, rel, &["not UTF-8"]);
        }
    }
    let fx = Fx::new(Init::None);
    let mut bytes = fs::read(fx.root.join("metadata.yaml")).unwrap();
    bytes.extend_from_slice(b"\xff");
    fs::write(fx.root.join("metadata.yaml"), bytes).unwrap();
    let err = fx.save_over("latin-1 metadata.yaml", Init::None, true).unwrap_err();
    assert_err!(err, Error::InvalidDestination { .. }, &["not a valid PMF metadata file", "UTF-8"]);
}

// ---------------------------------------------------------------------------------------------
// Scalars and keys
// ---------------------------------------------------------------------------------------------

/// Replace the first line of metadata.yaml that starts (after spaces) with `key:`.
fn replace_line(fx: &Fx, rel: &str, key: &str, new_value: &str) {
    let p = fx.root.join(rel);
    let text = fs::read_to_string(&p).unwrap();
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(&format!("{key}:")) {
                done = true;
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}{key}: {new_value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(done, "no {key}: line in {text}");
    fs::write(&p, lines.join("\n") + "\n").unwrap();
}

#[test]
fn integers_beyond_64_bits_are_refused() {
    for (key, value) in [
        ("epoch", "1180591620717411303424"), // 2**70
        ("start_epoch", "-1180591620717411303424"),
        ("latest_epoch", "0x400000000000000000"),
        ("start_time", "1180591620717411303424"),
        ("latest", "1180591620717411303424"),
        ("start_epoch", "9223372036854775808"), // 2**63
    ] {
        let fx = Fx::new(Init::None);
        replace_line(&fx, "metadata.yaml", key, value);
        for err in fx.refused(&format!("{key}: {value}")) {
            assert_offence(&err, OffenceKind::Metadata, "metadata.yaml", &["out of the 64-bit range"]);
        }
    }
    // The largest 64-bit values are fine where the schema allows them.
    let fx = Fx::new(Init::None);
    replace_line(&fx, "metadata.yaml", "latest_epoch", "9223372036854775807");
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
}

#[test]
fn duplicate_mapping_keys_are_refused() {
    let fx = Fx::new(Init::None);
    let text = fs::read_to_string(fx.root.join("metadata.yaml")).unwrap();
    let cases = [
        ("metadata.yaml", format!("{text}model: {{}}\n"), "duplicate key \"model\""),
        ("metadata.yaml", text.replacen("      two:", "      1:", 1), "duplicate key 1"),
        ("metadata.yaml", text.replacen("      two:", "      0x1:", 1), "duplicate key"),
        ("metadata.yaml", text.replacen("  id: ", "  name: again\n  id: ", 1), "duplicate key \"name\""),
        ("data/build_parameters.yaml", "lr: 0.1\nlr: 0.2\n".to_owned(), "duplicate key \"lr\""),
        ("data/build_parameters.yaml", "1: a\n1.0: b\n".to_owned(), "duplicate key"),
        ("data/build_parameters.yaml", "true: a\nyes: b\n".to_owned(), "duplicate key"),
    ];
    for (rel, doc, words) in cases {
        let fx = Fx::new(Init::None);
        assert_ne!(fs::read_to_string(fx.root.join(rel)).unwrap(), doc);
        fs::write(fx.root.join(rel), &doc).unwrap();
        for err in fx.refused(&format!("{rel}: {words}")) {
            assert_offence(&err, OffenceKind::Metadata, rel, &[words]);
        }
    }
    // 1 and '1' are different references, not duplicates.
    let fx = Fx::new(Init::None);
    let text = fs::read_to_string(fx.root.join("metadata.yaml")).unwrap();
    fs::write(
        fx.root.join("metadata.yaml"),
        text.replacen("      two:", "      '1':", 1).replace("latest: two", "latest: '1'"),
    )
    .unwrap();
    let m = validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
    assert!(m.model.training.checkpoints.contains_key(&Reference::from("1")));
    assert!(m.model.training.checkpoints.contains_key(&Reference::Int(1)));
}

// ---------------------------------------------------------------------------------------------
// Reserved names
// ---------------------------------------------------------------------------------------------

#[test]
fn a_configuration_named_like_a_pmf_file_is_refused() {
    for name in ["metadata.yaml", "data"] {
        let fx = Fx::new(Init::None);
        fx.edit_metadata("metadata.yaml", |doc| {
            *at(doc, &["model", "configuration", "path"]) = Value::Str(name.into())
        });
        for err in fx.refused(&format!("configuration path {name}")) {
            assert_offence(&err, OffenceKind::Tree, "model.configuration.path", &["reserves"]);
        }
    }
    for name in ["metadata.yaml", "data", ".pmf.lock"] {
        let fx = Fx::new(Init::None);
        let cfg_dir = fx.base.join("cfg");
        fs::create_dir_all(&cfg_dir).unwrap();
        fs::write(cfg_dir.join(name), b"format: {version: 1.0.0}\n").unwrap();
        let mut m = fx.model(Init::None);
        m.producer.configuration = cfg_dir.join(name);
        let target = fx.base.join("new-model");
        let err = m.save(&target, &SaveOptions::new()).unwrap_err();
        assert_err!(
            err,
            Error::WouldNotValidate { reasons }
                if reasons.len() == 1 && reasons[0].location == "producer.configuration",
            &["reserves", name]
        );
        assert!(!target.exists(), "{name}: the refused save created the folder");
        let before = fs::read(fx.root.join("metadata.yaml")).unwrap();
        let err = m.save(&fx.root, &SaveOptions::new().force(true)).unwrap_err();
        assert!(
            matches!(&err, Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "producer.configuration"),
            "{name}: {err:?}"
        );
        assert_eq!(
            fs::read(fx.root.join("metadata.yaml")).unwrap(),
            before,
            "{name}: the refused save changed the model"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The staging folder: the one place outside the root that save writes, and only its own
// ---------------------------------------------------------------------------------------------

/// A model named `m` must not remove the staging folder of a model named `m.pmf-save-1` in the
/// same parent folder (whose staging folders are `.m.pmf-save-1.pmf-save-<suffix>`).
#[test]
fn saving_a_model_never_removes_the_staging_folder_of_another_model() {
    let fx = Fx::new(Init::None);
    let other = ".model.pmf-save-1.pmf-save-999999-0-0000abcd";
    let other_staging = fx.base.join(other);
    fs::create_dir(&other_staging).unwrap();
    fs::write(other_staging.join("metadata.yaml"), b"being written by another process").unwrap();
    fx.model(Init::None).save(&fx.root, &SaveOptions::new().force(true)).unwrap();
    assert!(
        other_staging.join("metadata.yaml").exists(),
        "saving `model` removed {other}, a staging folder of the model `model.pmf-save-1`"
    );
}

/// Two models whose names are not UTF-8 and differ only there must not clean each other's
/// staging folders while both are being saved.
#[test]
fn concurrent_saves_of_two_models_with_non_utf8_names_do_not_interfere() {
    let fx = Fx::new(Init::None);
    let big = fx.src.join("big.bin");
    fs::write(&big, vec![7u8; 4 << 20]).unwrap();
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for name in [&b"m-\xff"[..], &b"m-\xfe"[..]] {
            let root = fx.base.join(OsStr::from_bytes(name));
            let (fx, big, errors) = (&fx, &big, &errors);
            s.spawn(move || {
                for i in 0..15 {
                    let mut m = fx.model(Init::None);
                    m.register_epoch(Some(3)).unwrap();
                    m.add_checkpoint(Checkpoint::new(3, Some(big), Some(3), None).unwrap()).unwrap();
                    let options = SaveOptions::new().force(true).durable(false);
                    if let Err(e) = m.save(&root, &options) {
                        errors.lock().unwrap().push(format!("{} save {i}: {e}", root.display()));
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    for name in [&b"m-\xff"[..], &b"m-\xfe"[..]] {
        validate(fx.base.join(OsStr::from_bytes(name)), &ValidateOptions::new().strict(true)).unwrap();
    }
    assert!(errors.is_empty(), "{} of 30 saves failed:\n{}", errors.len(), errors.join("\n"));
}

/// A hostile folder cannot make save read or write outside its root through the lock file.
#[test]
fn a_lock_file_that_links_out_of_the_root_is_not_followed() {
    let fx = Fx::new(Init::None);
    fx.link(".pmf.lock", fx.outside.path.join("secret"));
    let r = fx.save_over("lock file -> outside", Init::None, true);
    // The lock file is opened with O_NOFOLLOW: such a folder cannot be saved over (clear error).
    let err = r.unwrap_err();
    assert_err!(
        err,
        Error::Io { path, source, .. }
            if *path == fx.root.join(".pmf.lock") && source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()),
        &["cannot open the model lock file"]
    );
    validate(&fx.root, &ValidateOptions::new().strict(true)).unwrap();
}

/// What a refused save leaves: nothing changed, nothing next to the root.
#[test]
fn a_refused_save_changes_nothing() {
    let fx = Fx::new(Init::None);
    let before = fs::read(fx.root.join("metadata.yaml")).unwrap();
    let mut other = fx.model(Init::None);
    other.id = "another-id".into();
    let err = other.save(&fx.root, &SaveOptions::new().force(true)).unwrap_err();
    assert_err!(
        err,
        Error::OtherModel { found_id, saving_id, .. } if found_id == MODEL_ID && saving_id == "another-id",
        &["different PMF model"]
    );
    let mut invalid = fx.model(Init::None);
    invalid.producer.name = "x".into();
    let err = invalid.save(&fx.root, &SaveOptions::new().force(true)).unwrap_err();
    assert_err!(
        err,
        Error::WouldNotValidate { reasons } if reasons.len() == 1 && reasons[0].location == "producer.name",
        &["producer name"]
    );
    assert_eq!(fs::read(fx.root.join("metadata.yaml")).unwrap(), before);
    assert!(fx.leftover_staging().is_empty());
}
