//! Readers never write: `validate`, `check` and `Model::load` change nothing on disk (inotify on
//! the model's parent and every folder below it: no create, rename, delete or write) in every
//! state an interrupted save can leave; the next save repairs each of them (issue 9).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use common::{inotify_events, inotify_watch};
use plums_model::{
    check, validate, Checkpoint, Error, LoadOptions, Model, Producer, SaveOptions, ValidateOptions, Value, Version,
};
use rustix::fs::inotify::WatchFlags;
use tempfile::TempDir;

/// Suffixes of the form the library gives its temporary names.
const SUFFIX_A: &str = "4242-0-0000abcd";
const SUFFIX_B: &str = "4242-1-0000abce";

struct Fx {
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(fx.inputs()).unwrap();
        fs::create_dir_all(fx.parent()).unwrap();
        fs::write(fx.inputs().join("config.py"), b"lr = 0.01\n").unwrap();
        fx
    }

    fn inputs(&self) -> PathBuf {
        self.dir.path().join("inputs")
    }

    /// The folder holding the model (and nothing else): the one watched.
    fn parent(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    fn root(&self) -> PathBuf {
        self.parent().join("model")
    }

    fn sibling(&self, kind: &str, suffix: &str) -> PathBuf {
        self.parent().join(format!(".model.pmf-{kind}-{suffix}"))
    }

    fn checkpoint(&self, epoch: i64) -> Checkpoint {
        let p = self.inputs().join(format!("{epoch}.h5"));
        fs::write(&p, format!("weights of epoch {epoch}\n")).unwrap();
        Checkpoint::new(epoch, Some(&p), Some(epoch), None).unwrap()
    }

    /// A running model with `epochs` checkpoints.
    fn trained(&self, epochs: i64) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.inputs().join("config.py"));
        let mut m = Model::new("id-1", producer.unwrap());
        m.name = Some("detector".into());
        m.build_parameters = Value::from("resnet");
        m.register_training_start(0).unwrap();
        for e in 1..=epochs {
            m.register_epoch(Some(e)).unwrap();
            m.add_checkpoint(self.checkpoint(e)).unwrap();
        }
        m
    }
}

/// Copy the tree `src` to `dst` (plain copies; `.pmf.lock` included).
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Every folder under `dir`, `dir` included.
fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(folders(&entry.path()));
        }
    }
    out
}

/// Names in `dir` (sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    out.sort();
    out
}

/// A leftover state of an interrupted save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A staging folder being built next to the model.
    Staging,
    /// The complete new tree next to the model, the old one not moved aside yet.
    NewBesideModel,
    /// The model moved aside as `.pmf-old-`, the new tree `.pmf-new-`, no model: killed between
    /// the last two renames of a commit without `RENAME_EXCHANGE`.
    NewAndOldNoModel,
    /// Only the complete new tree, no model.
    NewNoModel,
    /// Only the old tree, no model.
    OldNoModel,
    /// The previous tree in the staging folder after an exchange, not removed yet.
    OldInStaging,
    /// Temporary files of interrupted writes inside the model.
    TemporaryFiles,
    /// An append journal naming a complete checkpoint file the metadata does not register.
    AppendJournal,
    /// All the leftovers that can coexist with a model at once.
    Everything,
}

const STATES: [State; 9] = [
    State::Staging,
    State::NewBesideModel,
    State::NewAndOldNoModel,
    State::NewNoModel,
    State::OldNoModel,
    State::OldInStaging,
    State::TemporaryFiles,
    State::AppendJournal,
    State::Everything,
];

impl State {
    fn model_missing(self) -> bool {
        matches!(self, State::NewAndOldNoModel | State::NewNoModel | State::OldNoModel)
    }

    /// Whether the tree in place once repaired is not the one the model object saved.
    fn replaced(self) -> bool {
        matches!(self, State::NewAndOldNoModel | State::NewNoModel | State::OldInStaging)
    }
}

/// Save a model (2 checkpoints) at the model root and a newer one (3 checkpoints) elsewhere,
/// then arrange the folders as `state` says. Returns the model object that saved the root.
fn make_state(fx: &Fx, state: State) -> Model {
    let mut old = fx.trained(2);
    old.save(fx.root(), &SaveOptions::new().durable(false)).unwrap();
    let newer = fx.dir.path().join("newer");
    fx.trained(3).save(&newer, &SaveOptions::new().durable(false)).unwrap();
    let root = fx.root();
    let staging = |what: &Path| {
        let s = fx.sibling("save", SUFFIX_A);
        copy_tree(what, &s);
        // A staging folder is incomplete while it is built.
        let _ = fs::remove_file(s.join("metadata.yaml"));
    };
    let temporary_files = || {
        fs::write(root.join(format!(".metadata.yaml.pmf-tmp-{SUFFIX_A}")), b"half").unwrap();
        fs::write(root.join(format!("data/checkpoints/.3.h5.pmf-tmp-{SUFFIX_B}")), b"half a copy").unwrap();
    };
    let journal = || {
        fs::write(root.join("data/checkpoints/9.h5"), b"complete, never registered").unwrap();
        fs::write(root.join(format!("data/checkpoints/.pmf-append-{SUFFIX_A}")), b"9.h5\x00").unwrap();
    };
    match state {
        State::Staging => staging(&newer),
        State::NewBesideModel => fs::rename(&newer, fx.sibling("new", SUFFIX_A)).unwrap(),
        State::NewAndOldNoModel => {
            fs::rename(&newer, fx.sibling("new", SUFFIX_A)).unwrap();
            fs::rename(&root, fx.sibling("old", SUFFIX_A)).unwrap();
        }
        State::NewNoModel => {
            fs::rename(&newer, fx.sibling("new", SUFFIX_A)).unwrap();
            fs::remove_dir_all(&root).unwrap();
        }
        State::OldNoModel => fs::rename(&root, fx.sibling("old", SUFFIX_A)).unwrap(),
        State::OldInStaging => {
            let s = fx.sibling("save", SUFFIX_B);
            copy_tree(&root, &s);
            fs::remove_dir_all(&root).unwrap();
            fs::rename(&newer, &root).unwrap();
        }
        State::TemporaryFiles => temporary_files(),
        State::AppendJournal => journal(),
        State::Everything => {
            staging(&newer);
            fs::rename(&newer, fx.sibling("new", SUFFIX_B)).unwrap();
            temporary_files();
            journal();
        }
    }
    let _ = fs::remove_dir_all(fx.dir.path().join("newer"));
    old
}

const CHANGES: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::CLOSE_WRITE);

/// Run every reader on the model root in `state` and return what each gave.
fn read_everything(fx: &Fx) -> Vec<(String, Result<(), Error>)> {
    let root = fx.root();
    let mut out = Vec::new();
    for strict in [false, true] {
        for checkpoints in [false, true] {
            let options = ValidateOptions::new().strict(strict).checkpoints(checkpoints);
            out.push((
                format!("validate strict={strict} checkpoints={checkpoints}"),
                validate(&root, &options).map(drop),
            ));
            let checked =
                check(&root, &options).and_then(|c| if c.is_valid() { Ok(()) } else { c.into_result(&root).map(drop) });
            out.push((format!("check strict={strict} checkpoints={checkpoints}"), checked));
            let load = LoadOptions::new().strict(strict).checkpoints(checkpoints);
            out.push((format!("load strict={strict} checkpoints={checkpoints}"), Model::load(&root, &load).map(drop)));
        }
    }
    out
}

#[test]
fn readers_change_nothing_in_any_leftover_state_of_an_interrupted_save() {
    for state in STATES {
        let fx = Fx::new();
        make_state(&fx, state);
        let before = names(&fx.parent());
        let watched = folders(&fx.parent());
        let fd = inotify_watch(&watched, CHANGES);
        let results = read_everything(&fx);
        let events = inotify_events(&fd);
        assert!(events.is_empty(), "{state:?}: readers changed the file system: {events:?}");
        assert_eq!(names(&fx.parent()), before, "{state:?}");
        // The watch sees changes (the assertion above is not vacuous).
        fs::write(fx.parent().join("probe"), b"").unwrap();
        fs::remove_file(fx.parent().join("probe")).unwrap();
        assert!(inotify_events(&fd).len() >= 2, "{state:?}: the watch saw nothing");
        for (what, result) in results {
            if state.model_missing() {
                let err = result.expect_err(&what);
                let Error::InterruptedSave { path, leftover } = &err else { panic!("{state:?} {what}: {err:?}") };
                assert_eq!(path, &fx.root(), "{state:?} {what}");
                let expected = if state == State::OldNoModel { "old" } else { "new" };
                assert_eq!(leftover, &fx.sibling(expected, SUFFIX_A), "{state:?} {what}");
                let message = err.to_string();
                assert!(message.contains("a save was interrupted") && message.contains("next save"), "{message}");
            } else {
                // The leftovers are extra files: the model is valid.
                result.unwrap_or_else(|e| panic!("{state:?} {what}: {e}"));
            }
        }
    }
}

/// After a save: the model validates strictly and holds what was saved, and nothing of an
/// interrupted save is left, next to it or inside it.
fn assert_repaired(fx: &Fx, state: State, epochs: usize) {
    let root = fx.root();
    let loaded = Model::load(&root, &LoadOptions::new()).unwrap_or_else(|e| panic!("{state:?}: {e}"));
    assert_eq!(loaded.checkpoint_collection.len(), epochs, "{state:?}");
    assert_eq!(names(&fx.parent()), ["model"], "{state:?}: leftovers next to the model");
    let at_root: Vec<String> = names(&root).into_iter().filter(|n| n.contains(".pmf-tmp-")).collect();
    assert!(at_root.is_empty(), "{state:?}: {at_root:?}");
    let expected: Vec<String> = (1..=epochs).map(|e| format!("{e}.h5")).collect();
    assert_eq!(names(&root.join("data/checkpoints")), expected, "{state:?}");
}

#[test]
fn the_next_save_of_the_model_object_repairs_every_leftover_state() {
    for state in STATES {
        let fx = Fx::new();
        let mut model = make_state(&fx, state);
        // A training loop's next save: one more checkpoint.
        model.register_epoch(Some(3)).unwrap();
        model.add_checkpoint(fx.checkpoint(3)).unwrap();
        let saved = model.save(fx.root(), &SaveOptions::new());
        if state.replaced() {
            // The tree in place is another writer's (newer) one: this model's save would lose
            // its update.
            let err = saved.expect_err("a save over another writer's state");
            assert!(matches!(err, Error::ConcurrentChange { .. }), "{state:?}: {err:?}");
            model.save(fx.root(), &SaveOptions::new().overwrite_concurrent_changes(true)).unwrap();
        } else {
            saved.unwrap_or_else(|e| panic!("{state:?}: {e}"));
        }
        assert_repaired(&fx, state, 3);
    }
}

#[test]
fn a_save_of_a_new_model_object_repairs_every_leftover_state() {
    for state in STATES {
        let fx = Fx::new();
        make_state(&fx, state);
        let mut model = fx.trained(4);
        model.save(fx.root(), &SaveOptions::new()).unwrap_or_else(|e| panic!("{state:?}: {e}"));
        assert_repaired(&fx, state, 4);
    }
}

#[test]
fn writers_racing_to_repair_an_interrupted_commit_are_serialised() {
    for state in [State::NewAndOldNoModel, State::NewNoModel, State::OldNoModel] {
        let fx = Arc::new(Fx::new());
        make_state(&fx, state);
        let barrier = Arc::new(Barrier::new(4));
        let models: Vec<Model> = (0..4).map(|i| fx.trained(2 + i)).collect();
        let writers: Vec<_> = models
            .into_iter()
            .map(|mut model| {
                let (fx, barrier) = (fx.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    model.save(fx.root(), &SaveOptions::new().durable(false))
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap_or_else(|e| panic!("{state:?}: {e}"));
        }
        let loaded = Model::load(fx.root(), &LoadOptions::new()).unwrap();
        let n = loaded.checkpoint_collection.len();
        assert!((2..=5).contains(&n), "{state:?}: {n}");
        assert_eq!(names(&fx.parent()), ["model"], "{state:?}");
    }
}

#[test]
fn a_refused_save_leaves_an_interrupted_commit_as_it_is() {
    for state in [State::NewAndOldNoModel, State::NewNoModel, State::OldNoModel] {
        let fx = Fx::new();
        make_state(&fx, state);
        let before = names(&fx.parent());
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), fx.inputs().join("config.py"));
        let mut other = Model::new("another-id", producer.unwrap());
        let fd = inotify_watch(folders(&fx.parent()), CHANGES);
        let err = other.save(fx.root(), &SaveOptions::new()).unwrap_err();
        let Error::OtherModel { found_id, saving_id, .. } = &err else { panic!("{state:?}: {err:?}") };
        assert_eq!((found_id.as_str(), saving_id.as_str()), ("id-1", "another-id"));
        assert_eq!(inotify_events(&fd), Vec::<String>::new(), "{state:?}: the refused save changed something");
        assert_eq!(names(&fx.parent()), before, "{state:?}");
    }
}
