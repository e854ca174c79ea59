//! Timing helpers shared by the benchmarks.

use std::time::Duration;

/// CPU time this thread has run, to the nanosecond (`CLOCK_THREAD_CPUTIME_ID`), so that a figure
/// taken on a shared, oversubscribed machine is not inflated by time spent waiting for a core.
/// (`/proc/thread-self/schedstat` is only brought up to date at scheduler ticks, every 4 ms
/// here, too coarse for runs of a few milliseconds.)
pub fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Where a bench's data came from, printed with its figures (`data=anchors:PATH` or
/// `data=builtin`): a figure measured on the bench's own series must never be set beside an
/// anchor, which is measured on the shared one.
pub struct BenchData<T> {
    pub data: T,
    pub label: String,
    /// The data is the anchors' series, so their figures apply.
    pub anchored: bool,
}

/// The candles of the anchors' CSV named by `var` (`TRADEMIND_BENCH_CSV`, the 1M file, or
/// `TRADEMIND_BENCH_CSV_100K`), read by the loader behind `backtest --data`; else `builtin()`.
/// Exits with the file and the reason when the variable names a file that does not load: a
/// bench that quietly fell back would print figures on the wrong data.
pub fn anchor_candles(
    var: &str,
    builtin: impl FnOnce() -> Vec<trademind::domain::market::Candle>,
) -> BenchData<Vec<trademind::domain::market::Candle>> {
    let Some(path) = std::env::var_os(var) else {
        return BenchData {
            data: builtin(),
            label: format!("data=builtin ({var} not set)"),
            anchored: false,
        };
    };
    let path = std::path::PathBuf::from(path);
    match trademind::app::backtest::read_candles_csv(&path, trademind::domain::market::Interval::M1)
    {
        Ok(candles) => BenchData {
            data: candles,
            label: format!("data=anchors:{}", path.display()),
            anchored: true,
        },
        Err(e) => {
            eprintln!("{var}={}: {e}", path.display());
            std::process::exit(2);
        }
    }
}

/// A field of this run's anchor summary (`TRADEMIND_BENCH_ANCHORS`, written by
/// `run_anchors.sh ... -- COMMAND`): the line whose first word is `step` and whose `n=` is `n`.
pub fn anchor_field(step: &str, n: usize, field: &str) -> Option<f64> {
    let path = std::env::var_os("TRADEMIND_BENCH_ANCHORS")?;
    let text = std::fs::read_to_string(path).ok()?;
    anchor_field_in(&text, step, n, field)
}

fn anchor_field_in(summary: &str, step: &str, n: usize, field: &str) -> Option<f64> {
    let n_field = format!("n={n}");
    summary
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&step) && words.contains(&n_field.as_str()))?
        .iter()
        .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// `ours / anchor` with the anchor's figure (< 1: TradeMind is faster), or why there is none;
/// `ours` is in the unit of the anchor's field (`_ms`, `_s`). Only a figure on the anchors' own
/// data, from the same run, is set beside an anchor.
pub fn ratio_to_anchor(ours: f64, anchored: bool, step: &str, n: usize, field: &str) -> String {
    if !anchored {
        return "no anchor ratio (builtin data)".to_string();
    }
    match anchor_field(step, n, field) {
        Some(anchor) if anchor > 0.0 => {
            format!("{:.2}x anchor {step} n={n} {field}={anchor}", ours / anchor)
        }
        _ => format!(
            "no anchor ratio ({step} n={n} {field} not in $TRADEMIND_BENCH_ANCHORS; run under run_anchors.sh ... -- COMMAND)"
        ),
    }
}
