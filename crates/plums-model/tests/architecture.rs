//! The core's module graph has no cycle, and readers and the passive model do not depend on the
//! writers: read from the sources (`crate::<module>` paths outside `#[cfg(test)]` modules).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` and the modules it names through `crate::<name>`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "rs") && stem != "lib" {
            files.push((stem, path));
        }
    }
    for entry in std::fs::read_dir(src.join("save")).unwrap() {
        files.push(("save".to_owned(), entry.unwrap().path()));
    }
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).chain(["yaml".to_owned()]).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for piece in code.split("crate::").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if modules.contains(&name) && &name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for d in graph.get(&m).into_iter().flatten() {
            if d == to {
                return true;
            }
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 15, "the sources were not found: {graph:?}");
    let cyclic: Vec<&String> = graph.keys().filter(|m| reaches(&graph, m, m)).collect();
    assert!(cyclic.is_empty(), "modules on a cycle: {cyclic:?}\n{graph:#?}");
}

#[test]
fn readers_and_the_model_do_not_depend_on_writers() {
    let graph = module_graph();
    for reader in ["validate", "load", "model", "state", "metadata", "yaml_file", "catalog", "lineage", "diff"] {
        for writer in ["save", "lock"] {
            assert!(!reaches(&graph, reader, writer), "{reader} depends on {writer}: {graph:#?}");
        }
    }
    // Readers may ask `commit` whether a save was interrupted, but nothing that `commit` uses
    // may be a reader of models, and the model itself knows nothing of committing.
    assert!(!reaches(&graph, "model", "commit"), "{graph:#?}");
    assert!(!reaches(&graph, "commit", "validate"), "{graph:#?}");
}
