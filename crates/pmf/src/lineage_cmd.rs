//! `pmf lineage LOCATION...`: the models under folders or object-store prefixes (listed by
//! `plums_model::list_models`, as `pmf ls` lists them) as a forest by initialisation
//! (`plums_model::lineage`): each root (a weight file, a parent that is not under the
//! locations, a model trained from scratch) with the models initialised from it indented below,
//! recursively; parents not found, ids shared by several models and cycles are marked and
//! listed. `--json` prints the graph: `{"nodes", "edges", "problems", "errors"}` (docs/CLI.md).
//!
//! Exit code: 0 when the lineage has no problem, 1 when it has one (a missing parent, a
//! duplicate id, a cycle), 2 when a LOCATION cannot be listed or the command line is wrong
//! (2 wins).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use plums_model::{
    lineage, list_models, Lineage, LineageEdge, LineageNode, LineageProblem, ListOptions, Location, ModelSummary,
    NodeKind, Reference,
};
use serde::Serialize;

use crate::cli::LineageArgs;
use crate::failure::{Failure, JsonFailure, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::output::outln;
use crate::output::{human_path, paint, printable, show_path, JsonRef, BAD, BOLD, DIM, WARN};
use crate::{location, progress};

/// How many levels of a tree are indented; deeper levels are shown at that indentation, with
/// their depth.
const MAX_INDENT: usize = 32;

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct JsonNode<'a> {
    key: &'a str,
    kind: &'static str,
    label: &'a str,
    id: Option<&'a str>,
    name: Option<&'a str>,
    path: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    child: &'a str,
    parent: &'a str,
    checkpoint: Option<JsonRef<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum JsonProblem<'a> {
    MissingParent { child: &'a str, id: &'a str },
    DuplicateId { id: &'a str, paths: &'a [String] },
    Cycle { keys: &'a [String] },
}

/// A LOCATION that could not be listed (or a failure before any was).
#[derive(Serialize)]
struct JsonError {
    path: Option<String>,
    error: String,
    failure: JsonFailure,
}

#[derive(Serialize)]
struct JsonLineage<'a> {
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<JsonEdge<'a>>,
    problems: Vec<JsonProblem<'a>>,
    errors: Vec<JsonError>,
}

fn json_error(path: Option<String>, failure: &Failure) -> JsonError {
    JsonError { path, error: failure.message.clone(), failure: failure.to_json() }
}

fn print_json(graph: &Lineage, errors: Vec<JsonError>, code: u8) -> u8 {
    let doc = JsonLineage {
        nodes: graph
            .nodes
            .iter()
            .map(|n| JsonNode {
                key: &n.key,
                kind: n.kind.as_str(),
                label: &n.label,
                id: n.id.as_deref(),
                name: n.name.as_deref(),
                path: n.path.as_deref(),
            })
            .collect(),
        edges: graph
            .edges
            .iter()
            .map(|e| JsonEdge { child: &e.child, parent: &e.parent, checkpoint: e.checkpoint.as_ref().map(JsonRef) })
            .collect(),
        problems: graph
            .problems
            .iter()
            .map(|p| match p {
                LineageProblem::MissingParent { child, id } => JsonProblem::MissingParent { child, id },
                LineageProblem::DuplicateId { id, paths } => JsonProblem::DuplicateId { id, paths },
                LineageProblem::Cycle { keys } => JsonProblem::Cycle { keys },
            })
            .collect(),
        errors,
    };
    crate::failure::print_json(&doc, code)
}

// ---------------------------------------------------------------------------------------------
// The forest
// ---------------------------------------------------------------------------------------------

/// The graph indexed for printing.
struct Forest<'a> {
    graph: &'a Lineage,
    nodes: HashMap<&'a str, &'a LineageNode>,
    /// The edges to each parent's children, in node order of the children.
    children: HashMap<&'a str, Vec<&'a LineageEdge>>,
    duplicated: HashSet<&'a str>,
    on_cycle: HashSet<&'a str>,
}

impl<'a> Forest<'a> {
    fn new(graph: &'a Lineage) -> Self {
        let nodes = graph.nodes.iter().map(|n| (n.key.as_str(), n)).collect();
        let mut children: HashMap<&str, Vec<&LineageEdge>> = HashMap::new();
        for edge in &graph.edges {
            children.entry(edge.parent.as_str()).or_default().push(edge);
        }
        let mut duplicated = HashSet::new();
        let mut on_cycle = HashSet::new();
        for problem in &graph.problems {
            match problem {
                LineageProblem::DuplicateId { paths, .. } => duplicated.extend(paths.iter().map(String::as_str)),
                LineageProblem::Cycle { keys } => on_cycle.extend(keys.iter().map(String::as_str)),
                LineageProblem::MissingParent { .. } => {}
            }
        }
        Forest { graph, nodes, children, duplicated, on_cycle }
    }

    /// Where a node is, for people: a model's location, else its key ([`printable`]).
    fn place(&self, key: &str) -> String {
        let place = match self.nodes.get(key) {
            Some(n) if n.kind == NodeKind::Model => n.path.as_deref().unwrap_or(key),
            _ => key,
        };
        printable(place).into_owned()
    }

    /// The text of a node (without the tree's guides), and its marks (duplicate id, cycle,
    /// missing), shown after the checkpoint its child line names.
    fn describe(&self, node: &LineageNode) -> (String, String) {
        // Every text from the models is shown through `printable` (a name or id holding ESC or
        // CR must not drive the terminal); `{:?}` escapes controls but not bidi overrides.
        let quoted_name = |name: &Option<String>| {
            name.as_ref().map(|n| format!(" ({})", printable(&format!("{n:?}")))).unwrap_or_default()
        };
        let label = printable(&node.label);
        match node.kind {
            NodeKind::Model => {
                let path = printable(node.path.as_deref().unwrap_or(&node.key));
                let text = match &node.id {
                    None => format!("{} ({path}, metadata not readable)", paint(BOLD, &label)),
                    Some(id) if *id == node.label => format!("{} ({path})", paint(BOLD, printable(id))),
                    Some(id) => format!("{} (id {}, {path})", paint(BOLD, &label), printable(id)),
                };
                let mut marks = String::new();
                if self.duplicated.contains(node.key.as_str()) {
                    marks.push_str(&format!(" {}", paint(WARN, "[duplicate id]")));
                }
                if self.on_cycle.contains(node.key.as_str()) {
                    marks.push_str(&format!(" {}", paint(BAD, "[cycle]")));
                }
                (text, marks)
            }
            NodeKind::WeightFile => {
                (format!("weight file {}{}", paint(BOLD, &label), quoted_name(&node.name)), String::new())
            }
            NodeKind::MissingModel => (
                format!(
                    "model {}{}",
                    paint(BOLD, printable(node.id.as_deref().unwrap_or(&node.label))),
                    quoted_name(&node.name)
                ),
                format!(" {}", paint(WARN, "[missing: no model listed has this id]")),
            ),
            _ => (label.into_owned(), String::new()),
        }
    }

    /// Print the tree below `root` into `out`; every node printed is added to `printed`.
    fn print_tree(&self, root: &'a str, extra: &str, printed: &mut HashSet<&'a str>, out: &mut String) {
        struct Item<'b> {
            key: &'b str,
            checkpoint: Option<&'b Reference>,
            /// The guides of the ancestors (`│   ` or `    `), and this item's own (`├── `).
            prefix: String,
            depth: usize,
            last: bool,
        }
        let mut trail: Vec<&str> = Vec::new();
        let mut stack = vec![Item { key: root, checkpoint: None, prefix: String::new(), depth: 0, last: true }];
        while let Some(item) = stack.pop() {
            trail.truncate(item.depth);
            let Some(node) = self.nodes.get(item.key) else { continue };
            let mut line = item.prefix.clone();
            if item.depth > 0 {
                line.push_str(if item.last { "└── " } else { "├── " });
            }
            let (text, marks) = self.describe(node);
            line.push_str(&text);
            if let Some(checkpoint) = item.checkpoint {
                line.push_str(&format!(", from checkpoint {}", printable(&checkpoint.quoted())));
            }
            line.push_str(&marks);
            if item.depth > MAX_INDENT {
                line.push_str(&paint(DIM, format!(" (depth {})", item.depth)));
            }
            if item.depth == 0 {
                line.push_str(extra);
            }
            let kids = self.children.get(item.key).map(Vec::as_slice).unwrap_or_default();
            if trail.contains(&item.key) {
                line.push_str(&paint(DIM, " (cycle: initialised from its descendant, shown above)"));
                push_line(out, line);
                continue;
            }
            if !printed.insert(item.key) {
                if !kids.is_empty() {
                    line.push_str(&paint(DIM, " (see above)"));
                }
                push_line(out, line);
                continue;
            }
            push_line(out, line);
            trail.push(item.key);
            let mut prefix = item.prefix.clone();
            if item.depth > 0 && item.depth <= MAX_INDENT {
                prefix.push_str(if item.last { "    " } else { "│   " });
            }
            for (i, edge) in kids.iter().enumerate().rev() {
                stack.push(Item {
                    key: &edge.child,
                    checkpoint: edge.checkpoint.as_ref(),
                    prefix: prefix.clone(),
                    depth: item.depth + 1,
                    last: i + 1 == kids.len(),
                });
            }
        }
    }

    /// The whole forest: every root's tree, then the cycles no root leads to, then anything
    /// left (nothing, unless the graph was changed by hand).
    fn print(&self, out: &mut String) {
        let mut printed: HashSet<&str> = HashSet::new();
        for root in self.graph.roots() {
            self.print_tree(&root.key, "", &mut printed, out);
        }
        let mut starts: Vec<&str> = Vec::new();
        for problem in &self.graph.problems {
            if let LineageProblem::Cycle { keys } = problem {
                starts.extend(keys.first().map(String::as_str));
            }
        }
        starts.extend(self.graph.nodes.iter().map(|n| n.key.as_str()));
        for key in starts {
            if !printed.contains(key) {
                let note = paint(DIM, " (on a cycle: no root above it)");
                self.print_tree(key, &note, &mut printed, out);
            }
        }
    }

    /// One line per problem.
    fn problem_line(&self, problem: &LineageProblem) -> String {
        match problem {
            LineageProblem::MissingParent { child, id } => format!(
                "{} {} was initialised from model {}, which no model listed has",
                paint(WARN, "missing parent:"),
                self.place(child),
                printable(&format!("{id:?}"))
            ),
            LineageProblem::DuplicateId { id, paths } => format!(
                "{} {} is the id of {} models: {}",
                paint(WARN, "duplicate id:"),
                printable(&format!("{id:?}")),
                paths.len(),
                paths.iter().map(|p| self.place(p)).collect::<Vec<_>>().join(", ")
            ),
            LineageProblem::Cycle { keys } if keys.len() == 1 => format!(
                "{} {} was initialised from a model with its own id",
                paint(BAD, "cycle:"),
                self.place(&keys[0])
            ),
            LineageProblem::Cycle { keys } => format!(
                "{} {} are initialised from one another",
                paint(BAD, "cycle:"),
                keys.iter().map(|k| self.place(k)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Add `line` and a newline to `out`.
fn push_line(out: &mut String, line: String) {
    out.push_str(&line);
    out.push('\n');
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn print_human(graph: &Lineage) {
    let forest = Forest::new(graph);
    // One write for the whole forest (thousands of lines).
    let mut out = String::new();
    forest.print(&mut out);
    if !graph.problems.is_empty() {
        let n = graph.problems.len();
        out.push_str(&paint(BOLD, format!("{n} problem{}:", plural(n))));
        out.push('\n');
        for problem in &graph.problems {
            out.push_str("  ");
            out.push_str(&forest.problem_line(problem));
            out.push('\n');
        }
    }
    let count = |kind: NodeKind| graph.nodes.iter().filter(|n| n.kind == kind).count();
    let (models, weights, missing) =
        (count(NodeKind::Model), count(NodeKind::WeightFile), count(NodeKind::MissingModel));
    let mut summary = format!("{models} model{}", plural(models));
    summary.push_str(&format!(", {weights} weight file{}", plural(weights)));
    if missing > 0 {
        summary.push_str(&format!(", {missing} missing parent model{}", plural(missing)));
    }
    out.push_str(&paint(DIM, summary));
    outln!("{out}");
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// What makes two listed models the same one: a local model's canonical folder (when it can
/// be resolved), an object-store model's location as listed.
fn identity(location: &Location) -> String {
    match location {
        Location::Local(path) => match std::fs::canonicalize(path) {
            Ok(real) => format!("local:{}", real.display()),
            Err(_) => format!("local:{}", path.display()),
        },
        other => format!("object:{other}"),
    }
}

/// Run `pmf lineage`; returns the exit code.
pub fn run(args: &LineageArgs) -> u8 {
    let storage = match location::storage_options(&args.storage) {
        Ok(s) => s,
        Err(failure) => {
            if args.json {
                return print_json(&lineage(&[]), vec![json_error(None, &failure)], failure.code);
            }
            failure.report();
            return failure.code;
        }
    };
    let options = ListOptions::new().depth(args.depth).storage(storage);
    let mut code = EXIT_OK;
    let mut models: Vec<ModelSummary> = Vec::new();
    let mut failed: Vec<(String, Failure)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for raw in &args.paths {
        let path = Path::new(raw);
        let listed = location::model_location(raw).and_then(|at| {
            progress::during(format!("listing models under {}", human_path(path)), || list_models(&at, &options))
                .map_err(|e| Failure::from_library(e, path))
        });
        match listed {
            // A model reached through two LOCATIONs is one node: the same folder whatever path
            // leads to it (`m` and `./m`, a symlink), the same object-store prefix.
            Ok(found) => models.extend(found.into_iter().filter(|m| seen.insert(identity(&m.location)))),
            Err(failure) => {
                code = code.max(failure.code).max(EXIT_USAGE);
                failed.push((show_path(path), failure));
            }
        }
    }
    let graph = lineage(&models);
    if !graph.problems.is_empty() {
        code = code.max(EXIT_INVALID);
    }
    if args.json {
        let errors = failed.iter().map(|(path, f)| json_error(Some(path.clone()), f)).collect();
        return print_json(&graph, errors, code);
    }
    if graph.nodes.is_empty() && failed.is_empty() {
        crate::output::errln!("{}", paint(DIM, "no PMF model found (a model is a folder holding metadata.yaml)"));
    } else {
        print_human(&graph);
    }
    for (_, failure) in &failed {
        failure.report();
    }
    code
}
