//! The nevers of `src/lib.rs`, held: the pure layers (config, plan, rules) import nothing that
//! touches the system, and nothing below the commands imports them. Checked on the sources, so
//! that a forbidden `use` fails here instead of in review.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layers a file of `layer` uses, by the paths it names (`crate::system`...).
fn uses(layer: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(layer);
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(!files.is_empty(), "no sources in {}", root.display());
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for l in ["system", "backend", "commands", "config", "plan", "rules"] {
            if text.contains(&format!("crate::{l}")) {
                out.push((f.clone(), l.to_string()));
            }
        }
    }
    out
}

#[test]
fn pure_layers_never_reach_the_system() {
    for layer in ["config", "plan", "rules"] {
        for (file, used) in uses(layer) {
            assert!(
                !["system", "backend", "commands"].contains(&used.as_str()),
                "{} (layer {layer}) uses crate::{used}",
                file.display()
            );
        }
    }
    // The edge knows nothing of what it feeds.
    for (file, used) in uses("config") {
        assert!(
            !["plan", "rules"].contains(&used.as_str()),
            "{} uses crate::{used}",
            file.display()
        );
    }
}

#[test]
fn only_main_uses_the_commands() {
    for layer in ["system", "backend", "config", "plan", "rules"] {
        for (file, used) in uses(layer) {
            assert_ne!(used, "commands", "{} uses the commands", file.display());
        }
    }
}

/// The module a source file is (`rules::nft::live`), from its path below `src`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// No two modules use each other, directly or around a circle (a parent's re-exports of its
/// children do not count): each layer reads top to bottom.
#[test]
fn no_module_imports_circle_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: Vec<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (file, module) in files.iter().zip(&modules) {
        let text = std::fs::read_to_string(file).unwrap();
        // What the unit tests use does not count.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let mut deps = Vec::new();
        for (i, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            let mut base: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
            if parts.first() == Some(&"crate") {
                base.clear();
                parts.remove(0);
            }
            while parts.first() == Some(&"super") {
                base.pop();
                parts.remove(0);
            }
            let target = (1..=parts.len()).rev().find_map(|k| {
                let m = base
                    .iter()
                    .chain(&parts[..k])
                    .copied()
                    .collect::<Vec<_>>()
                    .join("::");
                modules.contains(&m).then_some(m)
            });
            if let Some(t) = target {
                let related = t == *module
                    || module.starts_with(&format!("{t}::"))
                    || t.starts_with(&format!("{module}::"));
                if !related && !deps.contains(&t) {
                    deps.push(t);
                }
            }
        }
        edges.insert(module.clone(), deps);
    }
    assert!(edges.len() > 40, "the sources were found");
    fn walk(
        edges: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) {
        let here = path.last().unwrap().clone();
        for d in edges.get(&here).into_iter().flatten() {
            assert!(
                !path.contains(d),
                "an import circle: {} -> {d}",
                path.join(" -> ")
            );
            if !done.contains(d) {
                path.push(d.clone());
                walk(edges, path, done);
                path.pop();
            }
        }
        done.push(here);
    }
    let mut done = Vec::new();
    for m in edges.keys() {
        walk(&edges, &mut vec![m.clone()], &mut done);
    }
}
