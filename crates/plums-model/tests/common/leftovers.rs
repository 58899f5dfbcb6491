//! The leftover states an interrupted save can leave, built by name on disk (shared by
//! `read_only.rs`, where readers must change nothing in them, and `gc.rs`, which removes them).

use std::fs;
use std::path::{Path, PathBuf};

use plums_model::{Checkpoint, Model, Producer, SaveOptions, Value, Version};
use tempfile::TempDir;

use super::copy_tree;

/// Suffixes of the form the library gives its temporary names.
pub const SUFFIX_A: &str = "4242-0-0000abcd";
pub const SUFFIX_B: &str = "4242-1-0000abce";

/// A scratch folder with `inputs/` (a configuration and checkpoint files) and `models/` (the
/// folder holding the model `models/model`, and nothing else).
pub struct Fx {
    pub dir: TempDir,
}

impl Fx {
    pub fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(fx.inputs()).unwrap();
        fs::create_dir_all(fx.parent()).unwrap();
        fs::write(fx.inputs().join("config.py"), b"lr = 0.01\n").unwrap();
        fx
    }

    pub fn inputs(&self) -> PathBuf {
        self.dir.path().join("inputs")
    }

    /// The folder holding the model (and nothing else): the one `read_only.rs` watches, the
    /// location `gc.rs` gives gc.
    pub fn parent(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    pub fn root(&self) -> PathBuf {
        self.parent().join("model")
    }

    /// The leftover folder `.model.pmf-<kind>-<suffix>` next to the model.
    pub fn sibling(&self, kind: &str, suffix: &str) -> PathBuf {
        self.parent().join(format!(".model.pmf-{kind}-{suffix}"))
    }

    /// The checkpoint of `epoch`, its file `inputs/<epoch>.h5` written.
    pub fn checkpoint(&self, epoch: i64) -> Checkpoint {
        let p = self.inputs().join(format!("{epoch}.h5"));
        fs::write(&p, format!("weights of epoch {epoch}\n")).unwrap();
        Checkpoint::new(epoch, Some(&p), Some(epoch), None).unwrap()
    }

    /// A running model `id` (producer `trainer` 1.0.0, name `detector`) with no checkpoint.
    pub fn model(&self, id: &str) -> Model {
        let producer = Producer::new("trainer", Version::pep440("1.0.0").unwrap(), self.inputs().join("config.py"));
        let mut m = Model::new(id, producer.unwrap());
        m.name = Some("detector".into());
        m.build_parameters = Value::from("resnet");
        m.register_training_start(0).unwrap();
        m
    }

    /// A running model with `epochs` checkpoints.
    pub fn trained(&self, epochs: i64) -> Model {
        let mut m = self.model("id-1");
        for e in 1..=epochs {
            m.register_epoch(Some(e)).unwrap();
            m.add_checkpoint(self.checkpoint(e)).unwrap();
        }
        m
    }
}

/// A leftover state of an interrupted save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
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

pub const STATES: [State; 9] = [
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
    /// Whether the model folder is missing (an interrupted commit).
    pub fn model_missing(self) -> bool {
        matches!(self, State::NewAndOldNoModel | State::NewNoModel | State::OldNoModel)
    }
}

/// Save a model (2 checkpoints) at the model root and a newer one (3 checkpoints) elsewhere,
/// then arrange the folders as `state` says. The append journal (of [`State::AppendJournal`]
/// and [`State::Everything`]) holds `journal` (NUL-terminated names; `9.h5`, written as a
/// complete unregistered checkpoint file, among them). Returns the model object that saved the
/// root.
pub fn make_state(fx: &Fx, state: State, journal: &[u8]) -> Model {
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
        fs::write(root.join(format!("data/checkpoints/.pmf-append-{SUFFIX_A}")), journal).unwrap();
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
    let _ = fs::remove_dir_all(&newer);
    old
}
