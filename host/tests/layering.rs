//! The layering `docs/architecture.md` states, checked on the sources:
//! cli → daemon → server/admin → tenancy → runtime → capabilities →
//! storage, with telemetry and names as leaves; and no import circle
//! between modules (bindgen's `with:` resource names aside).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rank of each top-level module: imports may only go to a higher rank
/// (or the same module); leaves take the highest.
const LAYERS: &[(&str, u8)] = &[
    ("cli", 0),
    ("daemon", 1),
    ("server", 2),
    ("admin", 2),
    ("tenancy", 3),
    ("runtime", 4),
    ("capabilities", 5),
    ("storage", 6),
    ("telemetry", 7),
    ("names", 7),
    ("guest_build", 7),
];

/// Module path (`tenancy::loader`) → source, test modules and comments cut.
fn modules() -> BTreeMap<String, (bool, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let is_dir_module = matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        );
        if is_dir_module {
            parts.pop();
        }
        if parts
            .last()
            .is_some_and(|p| p.ends_with("_tests") || p == "tests")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        modules.insert(parts.join("::"), (is_dir_module, code));
    }
    modules
}

/// The longest module prefix of `path` that exists.
fn resolve(path: &[&str], modules: &BTreeMap<String, (bool, String)>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// Module → the modules it names (`crate::a::b`, `super::x`), children
/// naming their ancestors left out (a parent module hosts shared items).
fn edges(modules: &BTreeMap<String, (bool, String)>) -> BTreeMap<String, BTreeSet<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut edges = BTreeMap::new();
    for (name, (_, code)) in modules {
        let here: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
        let mut out = BTreeSet::new();
        // `super` of `a::b` is `a`, whether `b` is `a/b.rs` or `a/b/mod.rs`.
        let parent = here[..here.len().saturating_sub(1)].to_vec();
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
            for (at, _) in code.match_indices(prefix) {
                if at > 0
                    && code[..at]
                        .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                {
                    continue;
                }
                let rest: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|&c| ident(c))
                    .collect();
                let mut base = base.clone();
                let mut rest = rest.as_str();
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
                let mut path = base;
                path.extend(rest.split("::").filter(|s| !s.is_empty()));
                if let Some(target) = resolve(&path, modules)
                    && target != *name
                    && !name.starts_with(&format!("{target}::"))
                {
                    out.insert(target);
                }
            }
        }
        edges.insert(name.clone(), out);
    }
    edges
}

#[test]
fn imports_run_down_the_layers() {
    let modules = modules();
    let rank: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, targets) in edges(&modules) {
        let a = from.split("::").next().unwrap_or("");
        for to in targets {
            let b = to.split("::").next().unwrap_or("");
            if let (Some(ra), Some(rb)) = (rank.get(a), rank.get(b))
                && a != b
                && rb < ra
            {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
    assert!(
        modules.contains_key("tenancy::loader"),
        "the walk found the sources"
    );
}

#[test]
fn no_module_circles_but_bindgens() {
    let mut graph = edges(&modules());
    // `bindgen!`'s `with:` names the host types of resources (KV stores,
    // pending fetches) in the capability modules that use the bindings:
    // generated naming, not a dependency of the bindings on capabilities.
    graph.remove("capabilities::bindings");
    // Every pair of modules that reach each other.
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let mut circles = BTreeSet::new();
    for m in graph.keys() {
        if reach(m).contains(m) {
            circles.insert(m.clone());
        }
    }
    assert_eq!(circles, BTreeSet::new(), "modules on an import circle");
}
