//! `trademind backtest` from the store reads the series' side file (#22): written on the first
//! run after an import, the same run from it as from SQLite and from the CSV, and a damaged file
//! is no error.

use super::backtest_cli::{binance_csv, trademind};
use std::path::{Path, PathBuf};

/// A run's metrics, final equity and trades (`--data FILE` when given, else the store).
fn run(dir: &Path, data: Option<&Path>) -> serde_json::Value {
    let mut cmd = trademind(dir);
    cmd.args(["--json", "backtest", "--no-save", "--strategy", "sma-cross"])
        .args([
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
            "--fill",
            "next-open",
        ]);
    if let Some(data) = data {
        cmd.arg("--data").arg(data);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    serde_json::json!([v["metrics"], v["final_equity"], v["trades"]])
}

fn side_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("history"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_backtest_from_the_store_writes_and_then_reads_the_side_file() {
    let dir = tempfile::tempdir().unwrap();
    trademind(dir.path())
        .args(["data", "import"])
        .arg(binance_csv())
        .args(["--symbol", "BTCUSDT", "--interval", "1h"])
        .assert()
        .success();
    assert!(
        side_files(dir.path()).is_empty(),
        "written lazily, not by the import"
    );
    let from_csv = run(dir.path(), Some(&binance_csv()));
    let first = run(dir.path(), None);
    assert_eq!(first, from_csv);
    let files = side_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let written = std::fs::read(&files[0]).unwrap();
    assert_eq!(run(dir.path(), None), from_csv, "from the side file");
    // Damaged: the run reads SQLite, and the file is written again.
    std::fs::write(&files[0], &written[..written.len() / 2]).unwrap();
    assert_eq!(run(dir.path(), None), from_csv, "from a truncated file");
    assert_eq!(std::fs::read(&files[0]).unwrap(), written);
}
