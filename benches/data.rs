//! The data path: a candle CSV into columns (rows/s on one thread, and peak bytes per candle
//! measured in a child process), `data import` into the store (rows/s), and stored candles back
//! into columns. Run: `cargo bench --bench data`; on the anchors' data under
//! `run_anchors.sh --only import -- cargo bench --bench data` each figure is printed with its
//! ratio to pandas (`read_csv_s` for the parse, `in_process_s` for the import).
//!
//! `TRADEMIND_BENCH_CSV` names the 1M-candle file; without it a generated file of the same shape
//! is used (`data=builtin`, no anchor ratio).
//! `TRADEMIND_BENCH_CSV_ONLY=1` prints the `csv_to_columns` figure alone.

// The `trademind` binary's allocator (`trademind::memory`), so the bench measures what that
// binary does (its heap policy changes page faults and peak memory).
#[global_allocator]
static ALLOC: trademind::memory::ColumnAllocator = trademind::memory::ColumnAllocator;

#[allow(dead_code)] // the loaders for the backtest benches
mod common;
use common::thread_cpu;

use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trademind::app::backtest::{
    BacktestRequest, CandleSource, SizingChoice, load_series, read_candles_csv,
};
use trademind::domain::Symbol;
use trademind::domain::backtest::{Costs, FillModel, StrategySpec};
use trademind::domain::market::{CandleColumns, Interval};
use trademind::domain::money::Quote;
use trademind::domain::risk::RiskConfig;
use trademind::services::market_data::csv_columns::read_columns_file;
use trademind::services::market_data::import::{ImportOptions, import_file};
use trademind::store::Store;
use trademind::store::candles::{candles_in_range, columns_in_range, history_columns};

/// `ours / anchor` for a field of this run's `import` line (pandas; it names its size `rows=`,
/// not `n=`), or why there is none. `ours` is in the field's unit (seconds).
fn ratio_to_anchor(ours: f64, anchored: bool, step: &str, n: usize, field: &str) -> String {
    if !anchored {
        return "no anchor ratio (builtin data)".to_string();
    }
    let summary = std::env::var_os("TRADEMIND_BENCH_ANCHORS")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let rows = format!("rows={n}");
    let anchor = summary
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&step) && w.contains(&rows.as_str()))
        .and_then(|w| {
            w.iter().find_map(|x| {
                x.strip_prefix(field)?
                    .strip_prefix('=')?
                    .parse::<f64>()
                    .ok()
            })
        });
    match anchor {
        Some(a) if a > 0.0 => format!("{:.2}x anchor {step} {rows} {field}={a}", ours / a),
        _ => format!("no anchor ratio ({step} {rows} {field} not in $TRADEMIND_BENCH_ANCHORS)"),
    }
}

/// Set in the child that measures one load's peak memory: `columns`, `series` or `candles`.
const CHILD: &str = "TRADEMIND_BENCH_DATA_CHILD";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time of `f` on this thread (wall time where the clock is missing).
fn cpu<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let (c0, w0) = (thread_cpu(), Instant::now());
    let out = f();
    let took = match (c0, thread_cpu()) {
        (Some(a), Some(b)) => b - a,
        _ => w0.elapsed(),
    };
    (took, out)
}

/// A file of the anchors' shape (timestamp,open,high,low,close,volume; 2 and 6 decimals).
fn builtin_csv(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("builtin.csv");
    let mut text = String::with_capacity(n * 60);
    text.push_str("timestamp,open,high,low,close,volume\n");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut close = 3_000_000i64; // cents
    for i in 0..n as i64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let open = close;
        close = (open + (state % 2001) as i64 - 1000).max(100);
        let (hi, lo) = (open.max(close) + 50, open.min(close) - 50);
        let cents = |c: i64| format!("{}.{:02}", c / 100, c % 100);
        text.push_str(&format!(
            "{},{},{},{},{},{}.{:06}\n",
            1_577_836_800_000 + i * 60_000,
            cents(open),
            cents(hi),
            cents(lo),
            cents(close),
            state % 50,
            state % 1_000_000
        ));
    }
    std::fs::write(&path, text).expect("write the builtin CSV");
    path
}

fn request(path: &Path) -> BacktestRequest {
    BacktestRequest {
        strategy: StrategySpec {
            name: "sma-cross".into(),
            params: Default::default(),
        },
        symbol: "BTCUSDT".into(),
        interval: Interval::M1,
        from: None,
        to: None,
        source: CandleSource::Csv(path.to_path_buf()),
        initial_cash: Quote(Decimal::new(100_000, 0)),
        costs: Costs::default(),
        fill: FillModel::Close,
        sizing: SizingChoice::AllIn,
        risk: RiskConfig::default(),
    }
}

/// This process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// In the child: load the file one way, print `candles peak_delta_bytes`.
fn child(kind: &str, path: &Path) {
    let now = chrono::Utc::now().timestamp_millis();
    let before = peak_rss();
    let n = match kind {
        "columns" => read_columns_file(path, Interval::M1, now).unwrap().len(),
        "series" => load_series(None, &request(path)).unwrap().len(),
        _ => {
            let candles = read_candles_csv(path, Interval::M1).unwrap();
            CandleColumns::from_candles(&candles).len()
        }
    };
    println!("{n} {}", peak_rss().saturating_sub(before));
}

/// Peak bytes per candle of one way of loading, measured in a fresh process.
fn peak_per_candle(kind: &str, path: &Path) -> Option<f64> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env(CHILD, kind)
        .env("TRADEMIND_BENCH_DATA_FILE", path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    let bytes: f64 = words.next()?.parse().ok()?;
    Some(bytes / n)
}

fn main() {
    if let Ok(kind) = std::env::var(CHILD) {
        let path = PathBuf::from(std::env::var_os("TRADEMIND_BENCH_DATA_FILE").unwrap());
        child(&kind, &path);
        return;
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let (path, anchored, label) = match std::env::var_os("TRADEMIND_BENCH_CSV") {
        Some(p) => {
            let p = PathBuf::from(p);
            let label = format!("data=anchors:{}", p.display());
            (p, true, label)
        }
        None => (
            builtin_csv(tmp.path(), 1_000_000),
            false,
            "data=builtin (TRADEMIND_BENCH_CSV not set)".to_string(),
        ),
    };
    println!("# {label}");
    let now = chrono::Utc::now().timestamp_millis();

    // CSV -> columns, the backtest's loader.
    let mut n = 0;
    let mut times = Vec::new();
    for _ in 0..7 {
        let (t, cols) = cpu(|| read_columns_file(&path, Interval::M1, now).unwrap());
        n = cols.len();
        times.push(t);
    }
    let t = median(times).as_secs_f64();
    let anchor_n = 1_000_000;
    println!(
        "csv_to_columns n={n} median_cpu_s={t:.4} rows_per_s={:.0} holds_exact_candles={} | {}",
        n as f64 / t,
        read_columns_file(&path, Interval::M1, now)
            .unwrap()
            .holds_exact_candles(),
        ratio_to_anchor(t, anchored, "import", anchor_n, "read_csv_s")
    );
    if std::env::var_os("TRADEMIND_BENCH_CSV_ONLY").is_some() {
        return;
    }
    // The whole CLI load: columns, then the candles rebuilt from them.
    let times: Vec<_> = (0..3)
        .map(|_| cpu(|| load_series(None, &request(&path)).unwrap()).0)
        .collect();
    let t = median(times).as_secs_f64();
    println!(
        "csv_to_series n={n} median_cpu_s={t:.4} rows_per_s={:.0} | {}",
        n as f64 / t,
        ratio_to_anchor(t, anchored, "import", anchor_n, "read_csv_s")
    );
    // Before: candles through decimals, then the columns.
    let times: Vec<_> = (0..3)
        .map(|_| {
            cpu(|| {
                let c = read_candles_csv(&path, Interval::M1).unwrap();
                CandleColumns::from_candles(&c)
            })
            .0
        })
        .collect();
    let t = median(times).as_secs_f64();
    println!(
        "csv_via_candles n={n} median_cpu_s={t:.4} rows_per_s={:.0} | {}",
        n as f64 / t,
        ratio_to_anchor(t, anchored, "import", anchor_n, "read_csv_s")
    );
    for kind in ["columns", "series", "candles"] {
        match peak_per_candle(kind, &path) {
            Some(b) => println!("peak_bytes_per_candle load={kind} n={n} bytes={b:.1}"),
            None => println!("peak_bytes_per_candle load={kind}: the child failed"),
        }
    }

    // `data import` into a fresh store, then back into columns.
    let store = Store::open_in(tmp.path()).expect("a fresh store");
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let start = Instant::now();
    let (cpu_t, summary) = cpu(|| {
        import_file(
            store.conn(),
            &path,
            &symbol,
            Interval::M1,
            ImportOptions::default(),
            &mut |_, _| {},
        )
        .unwrap()
    });
    let t = start.elapsed().as_secs_f64();
    // Wall time is the anchor's scope (pandas' in_process_s is wall); SQLite works on this
    // thread, so its CPU time is the import's cost without the other work on a shared machine.
    let cpu_t = cpu_t.as_secs_f64();
    println!(
        "import n={} wall_s={t:.3} rows_per_s={:.0} cpu_s={cpu_t:.3} cpu_rows_per_s={:.0} | {}",
        summary.inserted,
        summary.inserted as f64 / t,
        summary.inserted as f64 / cpu_t,
        ratio_to_anchor(t, anchored, "import", anchor_n, "in_process_s")
    );
    let times: Vec<_> = (0..3)
        .map(|_| {
            cpu(|| columns_in_range(store.conn(), &symbol, Interval::M1, None, None).unwrap()).0
        })
        .collect();
    let t = median(times).as_secs_f64();
    println!(
        "store_to_columns n={n} median_cpu_s={t:.4} rows_per_s={:.0} | {}",
        n as f64 / t,
        ratio_to_anchor(t, anchored, "import", anchor_n, "read_csv_s")
    );
    // The backtest's path (#22): the series' side file, written by the first load after the
    // import (which reads SQLite), then one read per load.
    let (first, from_file) =
        cpu(|| history_columns(&store, &symbol, Interval::M1, None, None).unwrap());
    let times: Vec<_> = (0..5)
        .map(|_| cpu(|| history_columns(&store, &symbol, Interval::M1, None, None).unwrap()).0)
        .collect();
    let t = median(times).as_secs_f64();
    let same = from_file
        == columns_in_range(store.conn(), &symbol, Interval::M1, None, None).unwrap()
        && history_columns(&store, &symbol, Interval::M1, None, None).unwrap() == from_file;
    println!(
        "store_side_to_columns n={n} first_load_cpu_s={:.4} median_cpu_s={t:.4} rows_per_s={:.0} equal_to_sqlite={same} | {}",
        first.as_secs_f64(),
        n as f64 / t,
        ratio_to_anchor(t, anchored, "import", anchor_n, "read_csv_s")
    );
    let times: Vec<_> = (0..3)
        .map(|_| {
            cpu(|| {
                let c = candles_in_range(store.conn(), &symbol, Interval::M1, None, None).unwrap();
                CandleColumns::from_candles(&c)
            })
            .0
        })
        .collect();
    let t = median(times).as_secs_f64();
    println!(
        "store_via_candles n={n} median_cpu_s={t:.4} rows_per_s={:.0}",
        n as f64 / t
    );
}
