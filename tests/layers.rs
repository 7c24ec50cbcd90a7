//! The crate's layers hold: every module uses only modules of lower layers (so there is no
//! import cycle between them), the roles never use each other, and `cli` is only clap types
//! and their mapping. The table is the one in `src/lib.rs` and `docs/ARCHITECTURE.md`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module, lowest first. Modules of one layer may not use each other.
const LAYERS: &[(&str, u8)] = &[
    ("types", 0),
    ("units", 0),
    ("clock", 0),
    ("secret", 0),
    ("logging", 0),
    ("config", 1),
    ("kv", 1),
    ("module", 1),
    ("bundle", 1),
    ("chain", 2),
    ("executor", 2),
    ("protocol", 3),
    ("runtime", 4),
    ("solver", 5),
    ("provider", 5),
    ("mediator", 5),
    ("jobcreator", 5),
    ("jobboard", 5),
    ("app", 6),
    ("cli", 7),
];

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

/// The top-level module a source file belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules `text` names as `crate::NAME`, outside comments.
fn uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
            rest = after;
        }
    }
    found
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen_modules = std::collections::BTreeSet::new();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        seen_modules.insert(module.clone());
        if module == "testing" {
            continue; // test-only fakes of every layer's seams
        }
        let Some(&mine) = layer.get(module.as_str()) else {
            violations.push(format!("{}: module `{module}` has no layer in tests/layers.rs", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        // A role's unit tests may use the shared fakes.
        for used in uses(&text) {
            if used == module || used == "testing" {
                continue;
            }
            match layer.get(used.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => violations.push(format!(
                    "{}: `{module}` (layer {mine}) uses `{used}` (layer {theirs}): only lower layers may be used",
                    file.strip_prefix(&src).unwrap().display()
                )),
                None => violations.push(format!("{}: uses unknown module `{used}`", file.display())),
            }
        }
    }
    for (name, _) in LAYERS {
        assert!(seen_modules.contains(*name), "tests/layers.rs names `{name}`, which is not in src/");
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

#[test]
fn cli_holds_only_clap_types_and_their_mapping() {
    // The command-line layer parses and maps; it never talks to the chain, Docker or the
    // solver itself, so it uses no machine or protocol module and no service directly.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for used in uses(&text) {
            assert!(
                matches!(
                    used.as_str(),
                    "app" | "config" | "logging" | "solver" | "provider" | "mediator" | "jobcreator" | "jobboard"
                ),
                "{}: cli uses `{used}`",
                file.display()
            );
        }
        for forbidden in ["Service::new", "tokio::spawn", "Supervisor::new", "connect("] {
            assert!(!text.contains(forbidden), "{}: cli does `{forbidden}`: that belongs in app", file.display());
        }
    }
}

#[test]
fn the_uses_scanner_reads_paths_not_comments() {
    let text = "use crate::chain::{DealState};\n// crate::app is mentioned\nlet x = crate::units::parse();";
    assert_eq!(uses(text), ["chain", "units"]);
}
