//! Lineage: which model was initialised from which, among the models a listing found
//! ([`lineage()`] over the [`ModelSummary`]s of [`crate::list_models`]).
//!
//! The rules are those of [`lineage()`]. Pure computation on the summaries: nothing is read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{InitialisationSummary, ModelSummary};
use crate::reference::Reference;

/// The lineage graph of a set of models (see [`lineage()`] for its rules).
///
/// ```
/// use plums_model::{lineage, Lineage};
/// let empty: Lineage = lineage(&[]);
/// assert!(empty.nodes.is_empty() && empty.edges.is_empty() && empty.problems.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Lineage {
    /// Every node: the models, then the weight files and the missing models they name.
    pub nodes: Vec<LineageNode>,
    /// Every edge, from a child to one of its parents.
    pub edges: Vec<LineageEdge>,
    /// What is wrong with the lineage: parents not found, ids shared, cycles.
    pub problems: Vec<LineageProblem>,
}

/// One node of a [`Lineage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageNode {
    /// The node's unique key: a model's [`ModelSummary::relative_path`] (when several
    /// summaries share one, listed from several locations, their locations' text instead),
    /// `weight:<file name>` for a weight file, `missing:<id>` for a missing model. A key
    /// already taken gets `#2`, `#3`, ... appended.
    pub key: String,
    /// What the node is.
    pub kind: NodeKind,
    /// A short name for people: a model's name, else its id, else its key; a weight file's
    /// file name; a missing model's id.
    pub label: String,
    /// The model's id (`None` when its metadata could not be read), or the id a missing
    /// model is referred to by; `None` for a weight file.
    pub id: Option<String>,
    /// `model.name`; for a missing model or a weight file, the name its (first) child records
    /// for it.
    pub name: Option<String>,
    /// Where it is: a model's location ([`ModelSummary::location`] as text: a path or a URL);
    /// a weight file's path in its (first) child (`data/initialisation/imagenet.bin`); `None`
    /// for a missing model.
    pub path: Option<String>,
}

/// What a [`LineageNode`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NodeKind {
    /// A model among the summaries.
    Model,
    /// A weight file some model was initialised from.
    WeightFile,
    /// A PMF model some model was initialised from, whose id no summary has.
    MissingModel,
}

impl NodeKind {
    /// `model`, `weight_file` or `missing_model`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Model => "model",
            NodeKind::WeightFile => "weight_file",
            NodeKind::MissingModel => "missing_model",
        }
    }
}

/// One edge of a [`Lineage`]: `child` was initialised from `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageEdge {
    /// The key of the model that was initialised.
    pub child: String,
    /// The key of what it was initialised from.
    pub parent: String,
    /// The parent's checkpoint that was used (a PMF initialisation); `None` for a weight file.
    pub checkpoint: Option<Reference>,
}

/// Something wrong with a [`Lineage`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineageProblem {
    /// The model `child` (a key) was initialised from the PMF model `id`, and no model listed
    /// has that id (its edge leads to the node `missing:<id>`).
    MissingParent {
        /// The child's key.
        child: String,
        /// The id it was initialised from.
        id: String,
    },
    /// Several models have the id `id`: a child initialised from it points to each of them.
    DuplicateId {
        /// The shared id.
        id: String,
        /// The keys of the models that have it, in node order.
        paths: Vec<String>,
    },
    /// These models are their own ancestors: a strongly connected group of the graph (or one
    /// model initialised from its own id), keys in node order.
    Cycle {
        /// The keys of the models on the cycle.
        keys: Vec<String>,
    },
}

impl Lineage {
    /// The node with this key.
    pub fn node(&self, key: &str) -> Option<&LineageNode> {
        self.nodes.iter().find(|n| n.key == key)
    }

    /// The nodes without a parent (models trained from scratch or unreadable, weight files,
    /// missing models), in node order. The models on a cycle have parents: a cycle that no
    /// root leads to has no root.
    pub fn roots(&self) -> Vec<&LineageNode> {
        let children: BTreeSet<&str> = self.edges.iter().map(|e| e.child.as_str()).collect();
        self.nodes.iter().filter(|n| !children.contains(n.key.as_str())).collect()
    }

    /// What the node `key` was initialised from (several when its parent's id is shared), in
    /// edge order; empty for a root or an unknown key. Scans the edges: to walk the whole
    /// graph, index [`Lineage::edges`] once instead.
    pub fn parents_of(&self, key: &str) -> Vec<&LineageNode> {
        self.edges.iter().filter(|e| e.child == key).filter_map(|e| self.node(&e.parent)).collect()
    }

    /// The models initialised from the node `key`, in edge order; empty for a leaf or an
    /// unknown key. Scans the edges, as [`Lineage::parents_of`].
    pub fn children_of(&self, key: &str) -> Vec<&LineageNode> {
        self.edges.iter().filter(|e| e.parent == key).filter_map(|e| self.node(&e.child)).collect()
    }

    /// Whether there is no problem.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `base`, or `base#2`, `base#3`, ... the first one not in `used` (then taken).
fn unique(base: String, used: &mut BTreeSet<String>) -> String {
    let mut key = base.clone();
    let mut n = 2;
    while used.contains(&key) {
        key = format!("{base}#{n}");
        n += 1;
    }
    used.insert(key.clone());
    key
}

/// The file name of a weight file's path (its last non-empty `/`-separated segment).
fn file_name(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

/// The lineage graph of `models`.
///
/// The lineage is a graph whose edges go from a child (a model) to what it was initialised
/// from, its parent:
///
/// - a model initialised from a PMF model (`model.initialisation.pmf`) points to every model
///   among the summaries whose `model.id` is that id, with the checkpoint reference the child
///   used; the parent is matched by id only (the copy of the parent inside the child's
///   `data/initialisation/` is part of the child, not a node);
/// - when no summary has that id, the parent is a [`NodeKind::MissingModel`] node
///   (`missing:<id>`, one per distinct id) and a [`LineageProblem::MissingParent`] is reported;
/// - when two models or more have one id, a [`LineageProblem::DuplicateId`] is reported (for
///   every shared id, whether a child refers to it or not), and a child initialised from that
///   id points to **each** of them: the graph shows every candidate, the problem says that the
///   parent is ambiguous;
/// - a model initialised from a weight file points to a [`NodeKind::WeightFile`] node, one per
///   distinct file name (`weight:imagenet.bin`): the listing does not know the files' contents,
///   so two models whose weight files have one name share the node;
/// - models that are, through their parents, their own ancestors (A initialised from B's id,
///   B from A's; or a model initialised from its own id) form a cycle: each strongly connected
///   group of models is one [`LineageProblem::Cycle`]. The search is iterative and visits each
///   edge once: a cycle never loops, and a long chain never exhausts the stack.
///
/// A model whose metadata could not be read (its summary has no id) is a node without edges.
///
/// # Order
/// The result does not depend on the order of the summaries: nodes are sorted by kind (models,
/// then weight files, then missing models), then by key (a model's key segment by segment, as
/// [`crate::list_models`] sorts paths); edges by child, then parent, in node order; problems by
/// kind (missing parents, duplicate ids, cycles), then by their text.
///
/// Pure computation on the summaries: nothing is read.
///
/// ```no_run
/// use plums_model::{lineage, list_models, ListOptions, Location, NodeKind};
/// let models = list_models(&Location::parse("runs/")?, &ListOptions::new())?;
/// let graph = lineage(&models);
/// for edge in &graph.edges {
///     println!("{} <- {}", edge.child, edge.parent);
/// }
/// for root in graph.roots() {
///     if root.kind == NodeKind::WeightFile {
///         println!("trained from {}", root.label);
///     }
/// }
/// # Ok::<(), plums_model::Error>(())
/// ```
pub fn lineage(models: &[ModelSummary]) -> Lineage {
    // The models in a fixed order, whatever the input's.
    let mut order: Vec<&ModelSummary> = models.iter().collect();
    order.sort_by_cached_key(|m| (m.relative_path.split('/').collect::<Vec<_>>(), m.location.to_string()));
    let mut shared: HashMap<&str, usize> = HashMap::new();
    for m in &order {
        *shared.entry(m.relative_path.as_str()).or_default() += 1;
    }
    let mut used = BTreeSet::new();
    let mut nodes: Vec<LineageNode> = order
        .iter()
        .map(|m| {
            let base =
                if shared[m.relative_path.as_str()] > 1 { m.location.to_string() } else { m.relative_path.clone() };
            LineageNode {
                key: unique(base, &mut used),
                kind: NodeKind::Model,
                label: m.name.clone().or_else(|| m.id.clone()).unwrap_or_else(|| m.relative_path.clone()),
                id: m.id.clone(),
                name: m.name.clone(),
                path: Some(m.location.to_string()),
            }
        })
        .collect();
    let n_models = nodes.len();

    // Models by id, in node order.
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in order.iter().enumerate() {
        if let Some(id) = &m.id {
            by_id.entry(id.as_str()).or_default().push(i);
        }
    }
    let mut problems: Vec<LineageProblem> = by_id
        .iter()
        .filter(|(_, found)| found.len() > 1)
        .map(|(id, found)| LineageProblem::DuplicateId {
            id: (*id).to_owned(),
            paths: found.iter().map(|&i| nodes[i].key.clone()).collect(),
        })
        .collect();

    // Edges (by node index), and the nodes that models name.
    let mut edges: Vec<(usize, usize, Option<Reference>)> = Vec::new();
    let mut weights: BTreeMap<String, usize> = BTreeMap::new();
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    let mut extra: Vec<LineageNode> = Vec::new();
    for (child, m) in order.iter().enumerate() {
        match &m.initialisation {
            Some(InitialisationSummary::Model { name, id, checkpoint }) => match by_id.get(id.as_str()) {
                Some(parents) => edges.extend(parents.iter().map(|&p| (child, p, Some(checkpoint.clone())))),
                None => {
                    let at = *missing.entry(id.clone()).or_insert_with(|| {
                        extra.push(LineageNode {
                            key: String::new(),
                            kind: NodeKind::MissingModel,
                            label: id.clone(),
                            id: Some(id.clone()),
                            name: name.clone(),
                            path: None,
                        });
                        extra.len() - 1
                    });
                    edges.push((child, n_models + at, Some(checkpoint.clone())));
                    problems.push(LineageProblem::MissingParent { child: nodes[child].key.clone(), id: id.clone() });
                }
            },
            Some(InitialisationSummary::WeightFile { name, path }) => {
                let file = file_name(path).to_owned();
                let at = *weights.entry(file.clone()).or_insert_with(|| {
                    extra.push(LineageNode {
                        key: String::new(),
                        kind: NodeKind::WeightFile,
                        label: file,
                        id: None,
                        name: name.clone(),
                        path: Some(path.clone()),
                    });
                    extra.len() - 1
                });
                edges.push((child, n_models + at, None));
            }
            // From scratch, unknown metadata, or a kind added later.
            _ => {}
        }
    }

    // The named nodes' keys and places: weight files, then missing models, each by key.
    let mut named: Vec<(usize, LineageNode)> = extra.into_iter().enumerate().collect();
    for (_, node) in &mut named {
        let base = match node.kind {
            NodeKind::WeightFile => format!("weight:{}", node.label),
            _ => format!("missing:{}", node.label),
        };
        node.key = unique(base, &mut used);
    }
    named.sort_by(|(_, a), (_, b)| a.kind.cmp(&b.kind).then_with(|| a.key.cmp(&b.key)));
    let mut place = vec![0; named.len()];
    for (new, (old, node)) in named.into_iter().enumerate() {
        place[old] = n_models + new;
        nodes.push(node);
    }
    let index = |i: usize| if i < n_models { i } else { place[i - n_models] };
    let mut edges: Vec<(usize, usize, Option<Reference>)> =
        edges.into_iter().map(|(c, p, r)| (index(c), index(p), r)).collect();
    edges.sort_by_key(|e| (e.0, e.1));

    for group in cycles(n_models, &edges) {
        problems.push(LineageProblem::Cycle { keys: group.into_iter().map(|i| nodes[i].key.clone()).collect() });
    }
    problems.sort();
    let edges = edges
        .into_iter()
        .map(|(c, p, checkpoint)| LineageEdge { child: nodes[c].key.clone(), parent: nodes[p].key.clone(), checkpoint })
        .collect();
    Lineage { nodes, edges, problems }
}

/// The groups of models that are their own ancestors, each sorted, in the order of their
/// first model: the strongly connected components of more than one node, and the nodes with an
/// edge to themselves. Tarjan's algorithm, iterative (`edges` sorted by child; only the first
/// `n` nodes, the models, can be children).
fn cycles(n: usize, edges: &[(usize, usize, Option<Reference>)]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    // The parents of each model, from the sorted edges.
    let mut first = vec![0usize; n + 1];
    for &(c, _, _) in edges {
        first[c + 1] += 1;
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    let parents: Vec<usize> = edges.iter().map(|&(_, p, _)| p).collect();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut next = 0usize;
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // (node, position of its next edge to follow)
        let mut calls: Vec<(usize, usize)> = vec![(start, first[start])];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(top) = calls.last_mut() {
            let v = top.0;
            if top.1 < first[v + 1] {
                let w = parents[top.1];
                top.1 += 1;
                if w >= n {
                    // A weight file or a missing model: no parent, on no cycle.
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, first[w]));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut group = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                let looped = group.len() == 1 && parents[first[v]..first[v + 1]].contains(&v);
                if group.len() > 1 || looped {
                    group.sort_unstable();
                    groups.push(group);
                }
            }
        }
    }
    groups.sort();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::Location;

    /// A summary at `path` with id `id` (none: unreadable metadata) and an initialisation.
    fn model(path: &str, id: Option<&str>, init: Option<InitialisationSummary>) -> ModelSummary {
        let location = Location::Local(std::path::PathBuf::from("/models").join(path));
        ModelSummary {
            name: id.map(|i| format!("name-{i}")),
            id: id.map(str::to_owned),
            initialisation: init,
            valid: true,
            ..ModelSummary::empty(path.to_owned(), location, false)
        }
    }

    fn from(id: &str, checkpoint: i64) -> Option<InitialisationSummary> {
        Some(InitialisationSummary::Model { name: None, id: id.to_owned(), checkpoint: Reference::Int(checkpoint) })
    }

    fn file(path: &str) -> Option<InitialisationSummary> {
        Some(InitialisationSummary::WeightFile { name: Some("net".to_owned()), path: path.to_owned() })
    }

    fn keys(nodes: &[&LineageNode]) -> Vec<String> {
        nodes.iter().map(|n| n.key.clone()).collect()
    }

    fn edges(l: &Lineage) -> Vec<(String, String)> {
        l.edges.iter().map(|e| (e.child.clone(), e.parent.clone())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn a_chain_from_a_weight_file() {
        let models = [
            model("detector", Some("d"), from("b", 2)),
            model("backbone", Some("b"), file("data/initialisation/imagenet.bin")),
        ];
        let l = lineage(&models);
        assert_eq!(
            l.nodes.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(),
            ["backbone", "detector", "weight:imagenet.bin"]
        );
        assert_eq!(edges(&l), pairs(&[("backbone", "weight:imagenet.bin"), ("detector", "backbone")]));
        assert_eq!(l.edges[1].checkpoint, Some(Reference::Int(2)));
        assert_eq!(l.edges[0].checkpoint, None);
        assert!(l.is_sound(), "{:?}", l.problems);
        assert_eq!(keys(&l.roots()), ["weight:imagenet.bin"]);
        assert_eq!(keys(&l.parents_of("detector")), ["backbone"]);
        assert_eq!(keys(&l.children_of("backbone")), ["detector"]);
        let weight = l.node("weight:imagenet.bin").unwrap();
        assert_eq!(
            (weight.kind, weight.label.as_str(), weight.name.as_deref()),
            (NodeKind::WeightFile, "imagenet.bin", Some("net"))
        );
        assert_eq!(weight.path.as_deref(), Some("data/initialisation/imagenet.bin"));
        let detector = l.node("detector").unwrap();
        assert_eq!((detector.label.as_str(), detector.path.as_deref()), ("name-d", Some("/models/detector")));
    }

    #[test]
    fn the_input_order_does_not_matter() {
        let mut models = vec![
            model("c", Some("c"), from("a", 1)),
            model("a/b", Some("ab"), from("missing", 3)),
            model("a", Some("a"), file("data/initialisation/w.bin")),
            model("a-b", Some("a"), from("c", 1)),
            model("x", Some("x"), file("data/initialisation/w.bin")),
        ];
        let l = lineage(&models);
        models.reverse();
        assert_eq!(lineage(&models), l);
        let order: Vec<&str> = l.nodes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(order, ["a", "a/b", "a-b", "c", "x", "weight:w.bin", "missing:missing"], "a/b before a-b");
    }

    #[test]
    fn a_missing_parent_is_a_node_and_a_problem() {
        let models = [model("x", Some("x"), from("gone", 1)), model("y", Some("y"), from("gone", 2))];
        let l = lineage(&models);
        let node = l.node("missing:gone").unwrap();
        assert_eq!((node.kind, node.id.as_deref(), node.path.as_deref()), (NodeKind::MissingModel, Some("gone"), None));
        assert_eq!(edges(&l), pairs(&[("x", "missing:gone"), ("y", "missing:gone")]));
        assert_eq!(
            l.problems,
            [
                LineageProblem::MissingParent { child: "x".into(), id: "gone".into() },
                LineageProblem::MissingParent { child: "y".into(), id: "gone".into() },
            ]
        );
        assert_eq!(keys(&l.roots()), ["missing:gone"]);
    }

    #[test]
    fn duplicate_ids_are_a_problem_and_a_child_points_to_each() {
        let models = [
            model("one", Some("dup"), None),
            model("two", Some("dup"), None),
            model("child", Some("c"), from("dup", 4)),
            model("lonely/a", Some("z"), None),
            model("lonely/b", Some("z"), None),
        ];
        let l = lineage(&models);
        assert_eq!(edges(&l), pairs(&[("child", "one"), ("child", "two")]));
        assert_eq!(
            l.problems,
            [
                LineageProblem::DuplicateId { id: "dup".into(), paths: vec!["one".into(), "two".into()] },
                LineageProblem::DuplicateId { id: "z".into(), paths: vec!["lonely/a".into(), "lonely/b".into()] },
            ]
        );
        assert_eq!(keys(&l.parents_of("child")), ["one", "two"]);
    }

    #[test]
    fn cycles_are_found_and_never_loop() {
        let models = [
            model("a", Some("a"), from("b", 1)),
            model("b", Some("b"), from("a", 1)),
            model("self", Some("s"), from("s", 1)),
            model("below", Some("below"), from("a", 1)),
            model("tri/1", Some("t1"), from("t2", 1)),
            model("tri/2", Some("t2"), from("t3", 1)),
            model("tri/3", Some("t3"), from("t1", 1)),
        ];
        let l = lineage(&models);
        assert_eq!(
            l.problems,
            [
                LineageProblem::Cycle { keys: vec!["a".into(), "b".into()] },
                LineageProblem::Cycle { keys: vec!["self".into()] },
                LineageProblem::Cycle { keys: vec!["tri/1".into(), "tri/2".into(), "tri/3".into()] },
            ]
        );
        assert!(l.roots().is_empty(), "every model here has a parent");
        assert_eq!(keys(&l.children_of("a")), ["b", "below"]);
    }

    #[test]
    fn a_long_chain_is_no_cycle_and_needs_no_deep_stack() {
        let n = 50_000;
        let mut models: Vec<ModelSummary> =
            (1..n).map(|i| model(&format!("m{i}"), Some(&format!("{i}")), from(&format!("{}", i - 1), 1))).collect();
        models.push(model("m0", Some("0"), None));
        let l =
            std::thread::Builder::new().stack_size(256 * 1024).spawn(move || lineage(&models)).unwrap().join().unwrap();
        assert!(l.is_sound(), "{:?}", &l.problems[..l.problems.len().min(3)]);
        assert_eq!(l.edges.len(), n - 1);
        assert_eq!(keys(&l.roots()), ["m0"]);
    }

    #[test]
    fn unreadable_models_weight_files_and_colliding_keys() {
        let models = [
            model("broken", None, None),
            model("a", Some("a"), file("data/initialisation/w.bin")),
            model("b", Some("b"), file("data/initialisation/w.bin")),
            model("c", Some("c"), file("other/w.bin/")),
            model("weight:w.bin", Some("odd"), from("gone", 1)),
            model("missing:gone", Some("odder"), None),
        ];
        let l = lineage(&models);
        let broken = l.node("broken").unwrap();
        assert_eq!((broken.label.as_str(), broken.id.as_deref()), ("broken", None));
        // One weight node per file name, whatever the folder; keys stay unique.
        assert_eq!(l.node("weight:w.bin").unwrap().kind, NodeKind::Model);
        let weight = l.node("weight:w.bin#2").unwrap();
        assert_eq!(weight.kind, NodeKind::WeightFile);
        assert_eq!(keys(&l.children_of("weight:w.bin#2")), ["a", "b", "c"]);
        assert_eq!(l.node("missing:gone#2").unwrap().kind, NodeKind::MissingModel);
        assert_eq!(keys(&l.parents_of("weight:w.bin")), ["missing:gone#2"]);
    }

    #[test]
    fn summaries_of_several_locations_keep_distinct_keys() {
        let mut a = model(".", Some("a"), None);
        a.location = Location::Local("/one".into());
        let mut b = model(".", Some("b"), from("a", 1));
        b.location = Location::Local("/two".into());
        let l = lineage(&[b, a]);
        assert_eq!(l.nodes.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(), ["/one", "/two"]);
        assert_eq!(edges(&l), pairs(&[("/two", "/one")]));
    }
}
