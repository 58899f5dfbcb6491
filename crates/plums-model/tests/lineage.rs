//! `lineage`: the graph of models by initialisation over what `list_models` finds, on real
//! trees saved by the library: chains from weight files, a parent outside the location, ids
//! shared by two models, a cycle made by two saves, unreadable models, and the model inside
//! another's `data/initialisation/` (part of it, not a node).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{copy_tree, workspace_root};
use plums_model::{
    lineage, list_models, Checkpoint, Lineage, LineageEdge, LineageProblem, ListOptions, Location, Model, NodeKind,
    Producer, Reference, SaveOptions, Version,
};

/// Inputs of the models of one test: a configuration, checkpoint files, weight files.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.py"), b"lr = 0.1\n").unwrap();
        fs::write(dir.path().join("imagenet.bin"), b"imagenet weights").unwrap();
        fs::write(dir.path().join("coco.bin"), b"coco weights").unwrap();
        for epoch in 1..=2 {
            fs::write(dir.path().join(format!("{epoch}.pt")), format!("weights {epoch}")).unwrap();
        }
        Inputs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A model with id `id`, checkpoints 1 and 2, initialised by `init` (if any), saved at `dst`.
    fn save(&self, dst: &Path, id: &str, init: impl FnOnce(&mut Model)) -> PathBuf {
        let producer = Producer::new("trainer", Version::pep440("1.0").unwrap(), self.path("config.py")).unwrap();
        let mut model = Model::new(id, producer);
        model.name = Some(format!("{id}-name"));
        init(&mut model);
        model.register_training_start(0).unwrap();
        for epoch in 1..=2 {
            model.register_epoch(Some(epoch)).unwrap();
            let file = self.path(&format!("{epoch}.pt"));
            model.add_checkpoint(Checkpoint::new(epoch, Some(&file), Some(epoch), None).unwrap()).unwrap();
        }
        model.save(dst, &SaveOptions::new()).unwrap();
        dst.to_path_buf()
    }

    /// `save`, initialised from the weight file `file` of the inputs.
    fn init_file(&self, dst: &Path, id: &str, file: &str) -> PathBuf {
        let weights = self.path(file);
        self.save(dst, id, |m| m.register_initialisation(&weights, None, Some("weights")).unwrap())
    }

    /// `save`, initialised from checkpoint `checkpoint` of the model at `parent`.
    fn init_model(&self, dst: &Path, id: &str, parent: &Path, checkpoint: i64) -> PathBuf {
        self.save(dst, id, |m| m.register_initialisation(parent, Some(Reference::Int(checkpoint)), None).unwrap())
    }
}

fn graph(root: &Path) -> Lineage {
    lineage(&list_models(&Location::from(root), &ListOptions::new()).unwrap())
}

fn keys(l: &Lineage) -> Vec<&str> {
    l.nodes.iter().map(|n| n.key.as_str()).collect()
}

fn edge(child: &str, parent: &str, checkpoint: Option<i64>) -> LineageEdge {
    LineageEdge { child: child.to_owned(), parent: parent.to_owned(), checkpoint: checkpoint.map(Reference::Int) }
}

#[test]
fn chains_from_weight_files_with_their_checkpoints() {
    let t = Inputs::new();
    let root = t.path("models");
    let backbone = t.init_file(&root.join("zoo/backbone"), "backbone-1", "imagenet.bin");
    t.init_model(&root.join("zoo/detector"), "detector-1", &backbone, 2);
    let detector = root.join("zoo/detector");
    t.init_model(&root.join("zoo/tracker"), "tracker-1", &detector, 1);
    t.init_model(&root.join("seg"), "seg-1", &backbone, 1);
    t.init_file(&root.join("other"), "other-1", "imagenet.bin");
    t.init_file(&root.join("coco"), "coco-1", "coco.bin");
    t.save(&root.join("scratch"), "scratch-1", |_| {});

    let l = graph(&root);
    assert_eq!(
        keys(&l),
        [
            "coco",
            "other",
            "scratch",
            "seg",
            "zoo/backbone",
            "zoo/detector",
            "zoo/tracker",
            "weight:coco.bin",
            "weight:imagenet.bin"
        ]
    );
    assert_eq!(
        l.edges,
        [
            edge("coco", "weight:coco.bin", None),
            edge("other", "weight:imagenet.bin", None),
            edge("seg", "zoo/backbone", Some(1)),
            edge("zoo/backbone", "weight:imagenet.bin", None),
            edge("zoo/detector", "zoo/backbone", Some(2)),
            edge("zoo/tracker", "zoo/detector", Some(1)),
        ]
    );
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let roots: Vec<&str> = l.roots().iter().map(|n| n.key.as_str()).collect();
    assert_eq!(roots, ["scratch", "weight:coco.bin", "weight:imagenet.bin"]);
    let children: Vec<&str> = l.children_of("zoo/backbone").iter().map(|n| n.key.as_str()).collect();
    assert_eq!(children, ["seg", "zoo/detector"]);

    let detector = l.node("zoo/detector").unwrap();
    assert_eq!(detector.kind, NodeKind::Model);
    assert_eq!((detector.label.as_str(), detector.id.as_deref()), ("detector-1-name", Some("detector-1")));
    assert_eq!(detector.path.as_deref(), root.join("zoo/detector").to_str());
    let weights = l.node("weight:imagenet.bin").unwrap();
    assert_eq!((weights.kind, weights.label.as_str()), (NodeKind::WeightFile, "imagenet.bin"));
    assert_eq!(
        (weights.name.as_deref(), weights.path.as_deref()),
        (Some("weights"), Some("data/initialisation/imagenet.bin"))
    );
}

#[test]
fn a_parent_outside_the_location_is_missing() {
    let t = Inputs::new();
    let outside = t.init_file(&t.path("elsewhere/backbone"), "backbone-1", "imagenet.bin");
    let root = t.path("models");
    t.init_model(&root.join("a"), "a-1", &outside, 2);
    t.init_model(&root.join("b"), "b-1", &outside, 1);
    let l = graph(&root);
    assert_eq!(keys(&l), ["a", "b", "missing:backbone-1"]);
    let missing = l.node("missing:backbone-1").unwrap();
    assert_eq!(
        (missing.kind, missing.id.as_deref(), missing.path.as_deref()),
        (NodeKind::MissingModel, Some("backbone-1"), None)
    );
    assert_eq!(missing.name.as_deref(), Some("backbone-1-name"), "the name the child records");
    assert_eq!(l.edges, [edge("a", "missing:backbone-1", Some(2)), edge("b", "missing:backbone-1", Some(1))]);
    assert_eq!(
        l.problems,
        [
            LineageProblem::MissingParent { child: "a".into(), id: "backbone-1".into() },
            LineageProblem::MissingParent { child: "b".into(), id: "backbone-1".into() },
        ]
    );
}

#[test]
fn the_model_inside_a_model_is_part_of_it_not_a_node() {
    let t = Inputs::new();
    let root = t.path("models");
    copy_tree(&workspace_root().join("examples/detector"), &root.join("detector"));
    let l = graph(&root);
    assert_eq!(keys(&l), ["detector", "missing:backbone-0001"], "data/initialisation/ is no row");
    assert_eq!(l.edges, [edge("detector", "missing:backbone-0001", Some(2))]);
    assert_eq!(l.node("missing:backbone-0001").unwrap().name.as_deref(), Some("backbone"));
}

#[test]
fn two_models_with_one_id_are_a_problem_and_both_are_parents() {
    let t = Inputs::new();
    let root = t.path("models");
    let original = t.init_file(&root.join("dup/original"), "shared", "imagenet.bin");
    t.save(&root.join("dup/copy"), "shared", |_| {});
    t.init_model(&root.join("child"), "child-1", &original, 2);
    let l = graph(&root);
    assert_eq!(l.edges[..2], [edge("child", "dup/copy", Some(2)), edge("child", "dup/original", Some(2))]);
    assert_eq!(
        l.problems,
        [LineageProblem::DuplicateId { id: "shared".into(), paths: vec!["dup/copy".into(), "dup/original".into()] }]
    );
}

#[test]
fn a_cycle_made_by_two_saves_is_reported_and_ends() {
    let t = Inputs::new();
    let root = t.path("models");
    let b = t.save(&root.join("b"), "b-id", |_| {});
    let a = t.init_model(&root.join("a"), "a-id", &b, 1);
    // b saved again, now initialised from a (which holds the first b): a <- b <- a.
    let b_again = t.init_model(&t.path("b-again"), "b-id", &a, 2);
    fs::remove_dir_all(&b).unwrap();
    fs::rename(b_again, &b).unwrap();
    t.init_model(&root.join("c"), "c-id", &a, 2);

    let l = graph(&root);
    assert_eq!(l.edges, [edge("a", "b", Some(1)), edge("b", "a", Some(2)), edge("c", "a", Some(2))]);
    assert_eq!(l.problems, [LineageProblem::Cycle { keys: vec!["a".into(), "b".into()] }]);
    assert!(l.roots().is_empty(), "a and b have parents, c is below them");
}

#[test]
fn unreadable_models_are_nodes_without_edges() {
    let t = Inputs::new();
    let root = t.path("models");
    t.init_file(&root.join("broken"), "broken-1", "imagenet.bin");
    fs::write(root.join("broken/metadata.yaml"), "model: [unclosed\n").unwrap();
    let l = graph(&root);
    assert_eq!(keys(&l), ["broken"]);
    let broken = l.node("broken").unwrap();
    assert_eq!((broken.label.as_str(), broken.id.as_deref(), broken.name.as_deref()), ("broken", None, None));
    assert!(l.edges.is_empty() && l.problems.is_empty());
}

#[test]
fn two_locations_keep_their_models_apart() {
    let t = Inputs::new();
    let one = t.init_file(&t.path("one"), "one-1", "imagenet.bin");
    let two = t.init_model(&t.path("two"), "two-1", &one, 2);
    let mut models = list_models(&Location::from(two.as_path()), &ListOptions::new()).unwrap();
    models.extend(list_models(&Location::from(one.as_path()), &ListOptions::new()).unwrap());
    let l = lineage(&models);
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());
    assert_eq!(keys(&l), [one, two, "weight:imagenet.bin"], "both are `.`: keyed by their locations");
    assert_eq!(l.edges, [edge(one, "weight:imagenet.bin", None), edge(two, one, Some(2))]);
}
