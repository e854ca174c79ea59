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
