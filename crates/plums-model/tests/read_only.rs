//! Readers never write: `validate`, `check` and `Model::load` change nothing on disk (inotify on
//! the model's parent and every folder below it: no create, rename, delete or write) in every
//! state an interrupted save can leave; the next save repairs each of them (issue 9).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use common::leftovers::{self, Fx, State, STATES, SUFFIX_A};
use common::{inotify_events, inotify_watch, names};
use plums_model::{check, validate, Error, LoadOptions, Model, Producer, SaveOptions, ValidateOptions, Version};
use rustix::fs::inotify::WatchFlags;

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

impl State {
    /// Whether the tree in place once repaired is not the one the model object saved.
    fn replaced(self) -> bool {
        matches!(self, State::NewAndOldNoModel | State::NewNoModel | State::OldInStaging)
    }
}

/// Save a model (2 checkpoints) at the model root and a newer one (3 checkpoints) elsewhere,
/// then arrange the folders as `state` says (the append journal naming `9.h5` only). Returns
/// the model object that saved the root.
fn make_state(fx: &Fx, state: State) -> Model {
    leftovers::make_state(fx, state, b"9.h5\x00")
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
