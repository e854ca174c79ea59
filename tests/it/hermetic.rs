//! The `trademind` binary as every command-line test runs it: hermetic (no `TRADEMIND_*`
//! variable from the environment, no user config) and, usually, on a data dir of its own.

use std::path::Path;
use std::process::Command;

/// `trademind` with no `TRADEMIND_*` variable from the environment and no user config.
pub(crate) fn hermetic() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("trademind"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd
}

/// [`hermetic`] on `data_dir`.
pub(crate) fn hermetic_at(data_dir: &Path) -> Command {
    let mut cmd = hermetic();
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

/// [`hermetic_at`] as an `assert_cmd` command.
pub(crate) fn trademind_at(data_dir: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(hermetic_at(data_dir))
}
