//! A sweep split into shards (`--shard K/N --out FILE`) run in parallel by the real binary, and
//! `backtest merge`, which must print exactly what the single-machine sweep prints.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("trademind")
}

fn trademind(data_dir: &Path) -> Command {
    crate::hermetic::trademind_at(data_dir)
}

fn binance_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/btcusdt_1h_2025-01_binance.csv")
}

/// The grid: 15 x 4 = 60 combinations, some of them invalid (fast >= slow), so that the skipped
/// runs and their place in the ranking travel through the shard files too.
const SWEEP: [&str; 8] = [
    "--sweep",
    "fast=2..30:2",
    "--sweep",
    "slow=20..50:10",
    "--rank-by",
    "sharpe",
    "--fill",
    "close",
];

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

/// Run the 4 shards as 4 processes at once through `xargs -P 4`, as a batch system would.
fn run_shards_with_xargs(dir: &Path) -> Vec<PathBuf> {
    let script = format!(
        // The replace string must not occur in the (random) temp paths xargs also sees:
        // `-I K` rewrote a `K` in `/tmp/.tmpCk8KyD` and the shard landed elsewhere.
        "printf '0\\n1\\n2\\n3\\n' | xargs -P 4 -I @SHARD@ \"$BIN\" --data-dir \"$DIR\" backtest --data \"$CSV\" {} --threads 1 --shard @SHARD@/4 --out \"$DIR/shard-@SHARD@.jsonl\"",
        SWEEP.join(" ")
    );
    let mut sh = std::process::Command::new("sh");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            sh.env_remove(k);
        }
    }
    let status = sh
        .arg("-c")
        .arg(script)
        .env("BIN", binary())
        .env("DIR", dir)
        .env("CSV", binance_csv())
        .env("XDG_CONFIG_HOME", "/nonexistent-trademind-test")
        .status()
        .expect("sh runs");
    assert!(status.success(), "xargs shards: {status}");
    (0..4)
        .map(|k| dir.join(format!("shard-{k}.jsonl")))
        .collect()
}

#[test]
fn four_shards_through_xargs_merge_to_the_single_sweep_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let single = stdout(
        trademind(dir.path())
            .args(["--json", "backtest", "--no-save", "--data"])
            .arg(binance_csv())
            .args(SWEEP)
            .args(["--threads", "2"]),
    );
    let files = run_shards_with_xargs(dir.path());
    // Shards are interleaved: 60 combinations make 4 files of 15 runs (plus the header).
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert_eq!(text.lines().count(), 16, "{}", f.display());
    }
    // The order the files are given in does not matter.
    let mut shuffled = files.clone();
    shuffled.reverse();
    let merged = stdout(
        trademind(dir.path())
            .args(["--json", "backtest", "merge"])
            .args(&shuffled),
    );
    assert_eq!(merged, single);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&merged).unwrap();
    assert_eq!(runs.len(), 60);
    assert!(
        runs.iter().any(|r| !r["error"].is_null()),
        "the grid has invalid combinations"
    );

    // The human table is the sweep's too.
    let single_text = stdout(
        trademind(dir.path())
            .args(["backtest", "--no-save", "--data"])
            .arg(binance_csv())
            .args(SWEEP),
    );
    let merged_text = stdout(
        trademind(dir.path())
            .args(["backtest", "merge"])
            .args(&files),
    );
    assert_eq!(merged_text, single_text);
}

#[test]
fn merge_refuses_a_missing_shard_a_repeated_one_and_another_sweeps_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = run_shards_with_xargs(dir.path());
    let fails = |args: &[&Path]| {
        let out = trademind(dir.path())
            .args(["backtest", "merge"])
            .args(args)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        String::from_utf8(out).unwrap()
    };
    let missing = fails(&[&files[0], &files[1], &files[3]]);
    assert!(missing.contains("2/4 missing"), "{missing}");
    let twice = fails(&[&files[0], &files[1], &files[2], &files[3], &files[1]]);
    assert!(twice.contains("given twice"), "{twice}");

    // A shard of another sweep (other fees) cannot be mixed in.
    let other = dir.path().join("other-1.jsonl");
    trademind(dir.path())
        .args(["backtest", "--data"])
        .arg(binance_csv())
        .args(SWEEP)
        .args(["--fee-bps", "20", "--shard", "1/4", "--out"])
        .arg(&other)
        .assert()
        .success();
    let mixed = fails(&[&files[0], &other, &files[2], &files[3]]);
    assert!(mixed.contains("different sweeps"), "{mixed}");

    // A truncated shard (a combination lost) is refused, not ranked without it.
    let text = std::fs::read_to_string(&files[3]).unwrap();
    let cut: Vec<&str> = text.lines().take(10).collect();
    std::fs::write(&files[3], cut.join("\n") + "\n").unwrap();
    let truncated = fails(&[&files[0], &files[1], &files[2], &files[3]]);
    assert!(truncated.contains("is in no shard file"), "{truncated}");
}

#[test]
fn shard_without_a_sweep_or_with_k_outside_n_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.jsonl");
    for args in [
        vec!["--shard", "0/2", "--out", out.to_str().unwrap()],
        vec![
            "--sweep",
            "fast=5..10:5",
            "--shard",
            "2/2",
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["--sweep", "fast=5..10:5", "--shard", "0/2"],
    ] {
        trademind(dir.path())
            .args(["backtest", "--data"])
            .arg(binance_csv())
            .args(&args)
            .assert()
            .code(2);
    }
    assert!(!out.exists());
}

/// A sweep reports every run's score and the full metrics of its best 20 only (`--all-metrics`:
/// every run's, as before); ranked by return, most runs keep only their last equity point. The
/// merge of its shards reduces them to the same.
#[test]
fn sweep_keeps_full_metrics_for_its_best_20_unless_all_metrics_and_merges_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = [
        "--sweep",
        "fast=2..30:2",
        "--sweep",
        "slow=20..50:10",
        "--rank-by",
        "total_return",
        "--fill",
        "close",
    ];
    let json = |extra: &[&str]| -> Vec<serde_json::Value> {
        let out = stdout(
            trademind(dir.path())
                .args(["--json", "backtest", "--no-save", "--data"])
                .arg(binance_csv())
                .args(sweep)
                .args(extra),
        );
        serde_json::from_str(&out).unwrap()
    };
    let ranked = json(&[]);
    let all = json(&["--all-metrics"]);
    assert_eq!(ranked.len(), 60);
    assert_eq!(all.len(), 60);
    let with_metrics =
        |runs: &[serde_json::Value]| runs.iter().filter(|r| !r["metrics"].is_null()).count();
    assert_eq!(with_metrics(&ranked), 20);
    let ran = all.iter().filter(|r| r["error"].is_null()).count();
    assert!(ran > 20, "{ran} combinations ran");
    assert_eq!(with_metrics(&all), ran);
    // Same order, same scores; the best 20 have the metrics of the full sweep.
    for (k, (a, b)) in ranked.iter().zip(&all).enumerate() {
        assert_eq!(a["params"], b["params"], "rank {k}");
        assert_eq!(a["score"], b["score"], "rank {k}");
        if k < 20 {
            assert_eq!(a["metrics"], b["metrics"], "rank {k}");
            assert_eq!(a["score"], b["metrics"]["total_return_pct"], "rank {k}");
        }
    }

    // Shards of the ranked sweep merge to its output.
    let files: Vec<PathBuf> = (0..3)
        .map(|k| {
            let out = dir.path().join(format!("ranked-{k}.jsonl"));
            trademind(dir.path())
                .args(["backtest", "--data"])
                .arg(binance_csv())
                .args(sweep)
                .args(["--threads", "1", "--shard", &format!("{k}/3"), "--out"])
                .arg(&out)
                .assert()
                .success();
            out
        })
        .collect();
    let merged: Vec<serde_json::Value> = serde_json::from_str(&stdout(
        trademind(dir.path())
            .args(["--json", "backtest", "merge"])
            .args(&files),
    ))
    .unwrap();
    assert_eq!(merged, ranked);
}
