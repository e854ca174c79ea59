//! The README stays true: its command table lists every subcommand `--help` lists (and nothing
//! else), in one table, and every example marked ```` ```sh runnable ```` runs and succeeds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

fn trademind() -> Command {
    crate::hermetic::hermetic()
}

/// The subcommand names a `--help` page lists under "Commands:" (without `help`).
fn commands_of(args: &[&str]) -> Vec<String> {
    let out = trademind().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let Some(start) = text.find("Commands:") else {
        return Vec::new();
    };
    text[start + "Commands:".len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect()
}

/// Every `command` and `command sub` the "## Commands" table names. Fails when a row of the
/// table appears after the table has ended (a table split in two by a paragraph).
/// `subs` holds each command's subcommands: in `backtest list` / `cancel ID`, `cancel` is the
/// backtest's, not the top-level `cancel`.
fn table_commands(
    readme: &str,
    top_level: &BTreeSet<String>,
    subs: &std::collections::BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let section = readme
        .split("\n## Commands\n")
        .nth(1)
        .expect("a ## Commands section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section.lines().skip_while(|l| !l.starts_with('|'));
    let rows: Vec<&str> = lines.by_ref().take_while(|l| l.starts_with('|')).collect();
    let stray: Vec<&str> = lines.filter(|l| l.starts_with("| `")).collect();
    assert!(
        stray.is_empty(),
        "rows after the command table ended (split by a paragraph?): {stray:?}"
    );
    let mut named = BTreeSet::new();
    for row in rows.iter().skip(2) {
        let first_cell = row
            .trim_start_matches('|')
            .split(" | ")
            .next()
            .unwrap_or("");
        let mut top = None::<String>;
        for (i, code) in first_cell.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let words: Vec<&str> = code.split_whitespace().collect();
            let Some(first) = words.first() else { continue };
            let first = first.trim_matches(|c| c == '[' || c == ']').to_string();
            let is_sub_of_top = top
                .as_ref()
                .and_then(|t| subs.get(t))
                .is_some_and(|s| s.contains(&first));
            if top.is_none() || (top_level.contains(&first) && !is_sub_of_top) {
                named.insert(first.clone());
                if let Some(sub) = words.get(1) {
                    let sub = sub.trim_matches(|c| c == '[' || c == ']');
                    // `--engine` is a flag, not a subcommand.
                    if !sub.starts_with('-')
                        && sub.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    {
                        named.insert(format!("{first} {sub}"));
                    }
                }
                top = Some(first);
            } else if let Some(t) = &top {
                named.insert(format!("{t} {first}"));
            }
        }
    }
    named
}

#[test]
fn the_readme_command_table_lists_every_subcommand_of_help_and_only_those() {
    let top: BTreeSet<String> = commands_of(&[]).into_iter().collect();
    assert!(
        top.contains("connection") && top.contains("strategy"),
        "{top:?}"
    );
    let mut wanted = top.clone();
    let mut subs = std::collections::BTreeMap::new();
    for t in &top {
        let of_t = commands_of(&[t]);
        for sub in &of_t {
            wanted.insert(format!("{t} {sub}"));
        }
        if !of_t.is_empty() {
            subs.insert(t.clone(), of_t);
        }
    }
    let named = table_commands(&readme(), &top, &subs);
    let missing: Vec<_> = wanted.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "missing from the README table: {missing:?}"
    );
    // A name `--help` does not know is stale: a top-level word, or a second word under a
    // command that has subcommands (under a leaf command it is an argument: `watch BTCUSDT`).
    let unknown: Vec<_> = named
        .iter()
        .filter(|n| !wanted.contains(*n))
        .filter(|n| match n.split_once(' ') {
            None => true,
            Some((t, _)) => subs.contains_key(t),
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "the README table names unknown commands: {unknown:?}"
    );
}

/// The ```sh runnable blocks of the README, with line continuations joined.
fn runnable_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh runnable") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_readme_example_marked_runnable_runs() {
    let blocks = runnable_blocks(&readme());
    assert!(blocks.len() >= 2, "only {} runnable blocks", blocks.len());
    let bin = assert_cmd::cargo::cargo_bin("trademind");
    let bin_dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for block in blocks {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        for (k, _) in std::env::vars() {
            if k.starts_with("TRADEMIND_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args(["-e", "-c", &block])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README example failed ({}):\n{block}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
