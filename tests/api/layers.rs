//! The layers point one way: main → cli → app → http | worker → domains → messaging → channels →
//! foundations. Read from the source itself, so a new `use` of a layer above fails here, naming it.

use std::{collections::BTreeSet, path::Path};

/// A module's layer: it may use its own and lower ones only.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "types" | "config" | "db" | "error" | "telemetry" | "audit" | "auth" | "jobs" => 0,
        "channels" => 1,
        "messaging" => 2,
        "domains" => 3,
        "http" | "worker" => 4,
        "app" => 5,
        "cli" | "seed" => 6,
        _ => return None,
    })
}

/// The top-level modules a source file names through `crate::` (or `$crate::` in a macro),
/// including every name in a `use crate::{a::…, b, …}` group.
fn crate_references(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if rest.starts_with('{') {
            let (mut depth, mut name, mut at_item_start) = (0, String::new(), true);
            for c in rest.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => {
                        if !name.is_empty() {
                            found.insert(std::mem::take(&mut name));
                        }
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 1 => at_item_start = true,
                    c if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if depth == 1 && at_item_start && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        at_item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

fn sources(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap();
        let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
        let Some(own) = layer(module) else { continue };
        let source = std::fs::read_to_string(file).unwrap();
        for used in crate_references(&source) {
            if let Some(theirs) = layer(&used)
                && theirs > own
            {
                upward.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(
        files.len() > 40,
        "the source tree was read: {} files",
        files.len()
    );
    assert!(
        upward.is_empty(),
        "imports of a layer above:\n{}",
        upward.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(module) = line.strip_prefix("pub mod ") {
            let module = module.trim_end_matches(';');
            assert!(
                layer(module).is_some(),
                "crate::{module} has no layer in this test"
            );
        }
    }
}

#[test]
fn references_are_read_from_paths_and_use_groups() {
    let found = crate_references(
        "use crate::{app::AppState, error::{AppError, FieldErrors}, types};\n$crate::http::x();",
    );
    let expected: BTreeSet<String> = ["app", "error", "types", "http"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, expected);
}
