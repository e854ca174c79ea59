//! The dependency rule: `src/domain/` is pure. No I/O crate, no async runtime, no clock read.

use std::fs;
use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "rusqlite",
    "ratatui",
    "crossterm",
    "keyring",
    "tungstenite",
    "std::fs",
    "std::net",
    "std::process",
    "std::thread::sleep",
    "SystemTime",
    "Instant::now",
    "Utc::now",
    "Local::now",
    "chrono::Utc",
    "thread_rng",
    "rand::rng",
    "std::env",
    // System calls (madvise, mallopt) are the binary's memory policy: `src/memory.rs`.
    "libc",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/domain") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of code with comments removed, so a doc comment may mention what it must not use.
fn code_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source.lines().enumerate().filter_map(|(i, line)| {
        let code = line.split("//").next().unwrap_or("");
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

pub fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        for (line_no, code) in code_lines(&text) {
            for word in FORBIDDEN {
                let hit = code.match_indices(word).any(|(at, _)| {
                    let before = code[..at].chars().next_back();
                    let after = code[at + word.len()..].chars().next();
                    let ident =
                        |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !ident(before) && !ident(after)
                });
                if hit {
                    found.push(format!("{}:{line_no}: uses `{word}`", file.display()));
                }
            }
        }
    }
    found
}

#[test]
fn domain_uses_no_io_crate_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let found = violations(&root);
    assert!(
        found.is_empty(),
        "the domain must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rule_catches_a_violation() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("ok.rs"),
        "//! mentions tokio in a comment only\nfn f() {}\n",
    )
    .unwrap();
    assert!(violations(dir.path()).is_empty());
    fs::write(
        dir.path().join("bad.rs"),
        "use tokio::time;\nfn now() { let _ = std::time::SystemTime::now(); }\n",
    )
    .unwrap();
    let found = violations(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.contains("bad.rs:1") && f.contains("tokio"))
    );
}

/// The layers the command line sits on: none of them may reach back into `cli/`.
const BELOW_CLI: &[&str] = &["src/app", "src/services", "src/store", "src/tui"];

/// Mentions of `crate::cli` allowed below the command line, as (file, code): none.
const CLI_EXCEPTIONS: &[(&str, &str)] = &[];

/// Lines under `root` that name `crate::cli`, as `path:line`, paths relative to `base`;
/// `allowed` lists (path, code) pairs that are let through.
pub fn cli_dependencies(base: &Path, root: &Path, allowed: &[(&str, &str)]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        let rel = file.strip_prefix(base).unwrap_or(&file).to_string_lossy();
        let rel = rel.replace('\\', "/");
        for (line_no, code) in code_lines(&text) {
            if !code.contains("crate::cli") {
                continue;
            }
            let excused = allowed
                .iter()
                .any(|(path, what)| *path == rel && code.trim().starts_with(what));
            if !excused {
                found.push(format!("{rel}:{line_no}: {}", code.trim()));
            }
        }
    }
    found
}

#[test]
fn app_services_store_and_tui_do_not_depend_on_the_command_line() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found: Vec<String> = BELOW_CLI
        .iter()
        .flat_map(|dir| cli_dependencies(base, &base.join(dir), CLI_EXCEPTIONS))
        .collect();
    assert!(
        found.is_empty(),
        "cli/ depends on app/, never the other way; move what these use out of cli/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cli_rule_catches_a_dependency_and_lets_only_the_listed_exception_through() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("src/app");
    fs::create_dir_all(&app).unwrap();
    fs::write(
        app.join("ok.rs"),
        "//! called by crate::cli::run\nuse crate::cli::Context;\nfn f() {}\n",
    )
    .unwrap();
    fs::write(
        app.join("bad.rs"),
        "fn f() { crate::cli::notify::mailer(); }\nuse crate::cli::Context;\n",
    )
    .unwrap();
    let allowed = [("src/app/ok.rs", "use crate::cli::Context;")];
    let found = cli_dependencies(dir.path(), &app, &allowed);
    assert_eq!(
        found,
        vec![
            "src/app/bad.rs:1: fn f() { crate::cli::notify::mailer(); }".to_string(),
            "src/app/bad.rs:2: use crate::cli::Context;".to_string(),
        ]
    );
}

/// Lines of code under `root` that name one of `layers` (e.g. `crate::app`), as `path:line: code`,
/// paths relative to `base`. A name only counts as a whole path segment, so `crate::apple` is
/// not `crate::app`.
pub fn layer_dependencies(base: &Path, root: &Path, layers: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        let rel = file.strip_prefix(base).unwrap_or(&file).to_string_lossy();
        let rel = rel.replace('\\', "/");
        for (line_no, code) in code_lines(&text) {
            let hit = layers.iter().any(|layer| {
                code.match_indices(layer).any(|(at, _)| {
                    let after = code[at + layer.len()..].chars().next();
                    !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            });
            if hit {
                found.push(format!("{rel}:{line_no}: {}", code.trim()));
            }
        }
    }
    found
}

/// Which layer may not name which: adapters and storage sit below the application, and
/// storage below the adapters (issue #17: the bus, job runs and settings lived in `app/`, so
/// `services/` and `store/` reached up into it).
const INWARD_ARROWS: &[(&str, &[&str])] = &[
    ("src/services", &["crate::app"]),
    ("src/store", &["crate::app", "crate::services"]),
];

#[test]
fn services_and_store_do_not_reach_up_into_app_and_store_not_into_services() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found: Vec<String> = INWARD_ARROWS
        .iter()
        .flat_map(|(dir, layers)| layer_dependencies(base, &base.join(dir), layers))
        .collect();
    assert!(
        found.is_empty(),
        "arrows point inward: services/ may not use app/, store/ may not use app/ or \
         services/; move what these use down a layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layer_rule_catches_an_upward_import_but_not_a_comment_or_a_longer_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("src/store");
    fs::create_dir_all(&store).unwrap();
    fs::write(
        store.join("ok.rs"),
        "//! written by crate::app::trading\nuse crate::apple::Pie;\nfn f() {}\n",
    )
    .unwrap();
    fs::write(
        store.join("bad.rs"),
        "use crate::app::bus::Event;\nfn f() { crate::services::exchange::go(); }\n",
    )
    .unwrap();
    let found = layer_dependencies(dir.path(), &store, &["crate::app", "crate::services"]);
    assert_eq!(
        found,
        vec![
            "src/store/bad.rs:1: use crate::app::bus::Event;".to_string(),
            "src/store/bad.rs:2: fn f() { crate::services::exchange::go(); }".to_string(),
        ]
    );
}

/// Lines of `source` (comments and tests aside) that talk SQL.
pub fn sql_lines(source: &str) -> Vec<String> {
    // The tests at the bottom may set a database up by hand; the loader may not.
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    code_lines(code)
        .filter(|(_, line)| {
            ["SELECT", "prepare(", "query_row", "execute(", "INSERT "]
                .iter()
                .any(|needle| line.contains(needle))
        })
        .map(|(n, line)| format!("{n}: {}", line.trim()))
        .collect()
}

#[test]
fn the_snapshot_loader_runs_no_sql_of_its_own() {
    // The faces read the store's read model (`store::account`) and repositories; a face with
    // its own SQL re-derives numbers and gets them wrong (issue #17).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app/snapshot.rs");
    let source = fs::read_to_string(root).expect("read src/app/snapshot.rs");
    assert_eq!(sql_lines(&source), Vec::<String>::new());
    assert_eq!(
        sql_lines("fn f(c: &Connection) { c.query_row(\"SELECT 1\", [], |r| r.get(0)); }\n"),
        vec![
            "1: fn f(c: &Connection) { c.query_row(\"SELECT 1\", [], |r| r.get(0)); }".to_string()
        ]
    );
}
