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
