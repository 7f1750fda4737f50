//! The house's shape (docs/architecture.md): no import circle between the
//! top-level modules of `src/` (the domain imports none of them), and the
//! database dialects decide nothing. Read from the source, as a reviewer
//! would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`api` for
/// `src/api/jobs.rs`, `app` for `src/app.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a file mentions.
fn mentions(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(i, _)| {
            text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if ["bin", "lib", "main"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(mentions(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_itself_through_another() {
    let graph = graph();
    assert!(graph.contains_key("api") && graph.contains_key("ui"));
    for module in graph.keys() {
        if let Some(circle) = circle_from(&graph, module) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
    assert_eq!(
        graph["domain"].iter().collect::<Vec<_>>(),
        vec!["domain"; 0],
        "the domain imports no other module"
    );
}

#[test]
fn the_database_dialects_call_no_rule_and_restate_none_in_sql() {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    for name in ["postgres.rs", "sqlite.rs", "portable.rs"] {
        let text = std::fs::read_to_string(store.join(name)).unwrap();
        for rule in [
            "lifecycle::",
            "misfire::",
            "lease::",
            "retry::after_attempt",
            "event::for_",
            "string_to_array",
            ".wants(",
        ] {
            assert!(
                !text.contains(rule),
                "src/store/{name} mentions {rule}: a decision belongs in src/domain, taken in store/writes.rs"
            );
        }
    }
}

#[test]
fn the_dashboard_acts_through_the_operations_only() {
    let actions =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui/actions.rs"))
            .unwrap();
    assert!(
        !actions.contains(".store"),
        "src/ui/actions.rs reaches the store; call crate::ops"
    );
}
