//! Running backtests for the faces: load candles (store or CSV), build the engine from a request,
//! run it with cancellation and progress, persist the run, and parameter sweeps on all cores.

pub use super::backtest_series::{Series, load_series};
pub use super::backtest_sweep::{
    FULL_METRICS_TOP, SweepRanking, keep_metrics_of_top, rank_key, rank_order, run_sweep_ranked,
};
use super::backtest_sweep::{combination, par_map};
use crate::domain::backtest::walk_forward::{
    candles_in_market, close_at_window_end, refresh_metrics, split_windows, stitch,
};
use crate::domain::backtest::{
    AllIn, BacktestConfig, BacktestError, BacktestResult, BacktestService, BuiltinStrategy, Costs,
    Engine, FillModel, FixedFraction, Metrics, RiskSizer, SharedColumns, Sizer, StrategyError,
    StrategySpec, WalkForwardSpec, WindowReport, build_strategy, build_strategy_shared,
};
use crate::domain::market::candle::{Candle, CandleColumns, Interval, TimestampMs};
use crate::domain::money::Quote;
use crate::domain::risk::{RiskConfig, SizingMode};
use crate::services::market_data::import::{ImportError, read_candles_file};
use crate::store::{Store, StoreError, StoreResult, backtests};
use rust_decimal::Decimal;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// A backtest's `from`/`to` as a person types it: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` (UTC) or
/// epoch milliseconds. The CLI's `--from`/`--to` and the TUI's form read dates through this.
pub fn parse_time(text: &str) -> Result<TimestampMs, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err("expected YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or epoch milliseconds".into())
}

/// How entries are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizingChoice {
    /// All the cash (peer tools' default).
    AllIn,
    /// A fraction of equity, e.g. `fraction=0.25`.
    Fraction(Decimal),
    /// The risk domain's fixed risk per trade (needs a stop: `--param stop_pct=..`).
    Fixed,
    /// Fractional Kelly from the run's own closed trades (needs a stop).
    Kelly,
    /// ATR stop distance; sets the stop itself when the strategy gives none.
    Atr,
}

impl FromStr for SizingChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all-in" => Ok(SizingChoice::AllIn),
            "fixed" => Ok(SizingChoice::Fixed),
            "kelly" => Ok(SizingChoice::Kelly),
            "atr" => Ok(SizingChoice::Atr),
            other => match other.strip_prefix("fraction=") {
                Some(f) => Decimal::from_str(f)
                    .ok()
                    .filter(|f| *f > Decimal::ZERO && *f <= Decimal::ONE)
                    .map(SizingChoice::Fraction)
                    .ok_or_else(|| format!("fraction {f:?} must be in (0, 1]")),
                None => Err(format!(
                    "unknown sizing {other:?}: expected all-in, fraction=F, fixed, kelly or atr"
                )),
            },
        }
    }
}

impl SizingChoice {
    pub fn sizer(self, risk: &RiskConfig) -> Box<dyn Sizer> {
        let with_mode = |mode| {
            Box::new(RiskSizer::new(RiskConfig {
                sizing_mode: mode,
                ..risk.clone()
            })) as Box<dyn Sizer>
        };
        match self {
            SizingChoice::AllIn => Box::new(AllIn),
            SizingChoice::Fraction(f) => Box::new(FixedFraction { fraction: f }),
            SizingChoice::Fixed => with_mode(SizingMode::Fixed),
            SizingChoice::Kelly => with_mode(SizingMode::Kelly),
            SizingChoice::Atr => with_mode(SizingMode::Atr),
        }
    }

    /// Fixed and Kelly size against a stop: without one every entry would be refused.
    pub fn needs_stop(self) -> bool {
        matches!(self, SizingChoice::Fixed | SizingChoice::Kelly)
    }
}

/// Where candles come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandleSource {
    Store,
    Csv(PathBuf),
}

/// Everything needed to start a run.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestRequest {
    pub strategy: StrategySpec,
    pub symbol: String,
    pub interval: Interval,
    pub from: Option<TimestampMs>,
    pub to: Option<TimestampMs>,
    pub source: CandleSource,
    pub initial_cash: Quote,
    pub costs: Costs,
    pub fill: FillModel,
    pub sizing: SizingChoice,
    #[serde(skip)]
    pub risk: RiskConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestRunError {
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        source: Box<ImportError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backtest(#[from] BacktestError),
    #[error("sizing {0} needs a stop-loss: add --param stop_pct=2 (or use --sizing atr)")]
    NeedsStop(&'static str),
    #[error(
        "no {symbol} {interval} candles in the database for that period: download them with `trademind data fetch {symbol} {interval} --from 2025-01-01` (or `trademind data import FILE.csv {symbol} {interval}`), or pass --data FILE.csv"
    )]
    NoStoredCandles { symbol: String, interval: Interval },
    #[error("cannot render the report: {0}")]
    Report(#[from] crate::domain::backtest::report::ReportError),
    #[error(
        "walk-forward {spec}: {candles} candles do not hold one training window followed by a full test window; use shorter windows or more data"
    )]
    NoWindows {
        spec: WalkForwardSpec,
        candles: usize,
    },
    #[error("walk-forward window {window}: no combination of the sweep could run ({why})")]
    NothingRan { window: usize, why: String },
}

/// Candles of `symbol`/`interval` from the store's `candles` table, oldest first.
pub fn load_stored_candles(
    store: &Store,
    symbol: &str,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> Result<Vec<Candle>, StoreError> {
    let symbol = crate::domain::Symbol::new(symbol).map_err(|e| StoreError::Corrupt {
        column: "candles.symbol",
        value: symbol.to_string(),
        reason: e.to_string(),
    })?;
    crate::store::candles::candles_in_range(store.conn(), &symbol, interval, from, to)
}

/// Candles from a CSV file (the market-data importer's parser; bad rows are errors here).
pub fn read_candles_csv(
    path: &std::path::Path,
    interval: Interval,
) -> Result<Vec<Candle>, BacktestRunError> {
    let csv_err = |source| BacktestRunError::Csv {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    // Streamed: only the candles are kept, and an endless file is refused at its first
    // over-long line instead of being read into memory whole.
    read_candles_file(path, interval, chrono::Utc::now().timestamp_millis()).map_err(csv_err)
}

/// Load the candles a request asks for.
pub fn load_candles(
    store: Option<&Store>,
    req: &BacktestRequest,
) -> Result<Vec<Candle>, BacktestRunError> {
    let mut candles = match (&req.source, store) {
        (CandleSource::Csv(path), _) => read_candles_csv(path, req.interval)?,
        (CandleSource::Store, Some(store)) => {
            load_stored_candles(store, &req.symbol, req.interval, req.from, req.to)?
        }
        (CandleSource::Store, None) => Vec::new(),
    };
    candles.retain(|c| {
        req.from.is_none_or(|f| c.open_time >= f) && req.to.is_none_or(|t| c.open_time < t)
    });
    if candles.is_empty() && req.source == CandleSource::Store {
        return Err(BacktestRunError::NoStoredCandles {
            symbol: req.symbol.clone(),
            interval: req.interval,
        });
    }
    Ok(candles)
}

/// Build the run's configuration and engine.
pub fn build(
    req: &BacktestRequest,
) -> Result<(BacktestConfig, Engine<BuiltinStrategy>), BacktestRunError> {
    build_with(req, None)
}

/// Build the run's configuration and engine, its strategy reading precomputed indicator
/// columns from `shared` when given (the columns must be of the candles the run will see).
pub fn build_with(
    req: &BacktestRequest,
    shared: Option<&SharedColumns<'_>>,
) -> Result<(BacktestConfig, Engine<BuiltinStrategy>), BacktestRunError> {
    let has_stop = req.strategy.params.contains_key("stop_pct");
    if req.sizing.needs_stop() && !has_stop {
        return Err(BacktestRunError::NeedsStop(match req.sizing {
            SizingChoice::Kelly => "kelly",
            _ => "fixed",
        }));
    }
    let mut config = BacktestConfig::new(req.interval);
    config.initial_cash = req.initial_cash;
    config.costs = req.costs;
    config.fill_model = req.fill;
    let strategy = match shared {
        Some(cols) => build_strategy_shared(&req.strategy, cols)?,
        None => build_strategy(&req.strategy)?,
    };
    let engine = Engine::new(
        Box::new(strategy),
        req.sizing.sizer(&req.risk),
        req.initial_cash,
    )
    .with_fee_rate(req.costs.taker_fee)
    .with_stop_protections(&req.risk, req.interval.millis());
    Ok((config, engine))
}

/// Run `req` over `candles` (not persisted).
pub fn run_on(
    req: &BacktestRequest,
    candles: &[Candle],
    columns: &CandleColumns,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BacktestResult, BacktestRunError> {
    // A single run updates its averages as it goes (reading leaving closes back from the
    // history); the sweep's shared columns pay off only when many runs read them.
    run_shared(req, candles, columns, None, cancel, progress)
}

/// [`run_on`] with the strategy's indicator columns taken from `shared` (computed over
/// `columns.close`).
pub fn run_shared(
    req: &BacktestRequest,
    candles: &[Candle],
    columns: &CandleColumns,
    shared: Option<&SharedColumns<'_>>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BacktestResult, BacktestRunError> {
    let (config, engine) = build_with(req, shared)?;
    Ok(BacktestService::run_builtin(
        &config, engine, candles, columns, 0, cancel, progress,
    )?)
}

/// The metrics [`run_shared`] would give, without keeping the equity curve (what a sweep keeps
/// of each run).
pub fn run_metrics_shared(
    req: &BacktestRequest,
    candles: &[Candle],
    columns: &CandleColumns,
    shared: Option<&SharedColumns<'_>>,
    cancel: &AtomicBool,
) -> Result<Metrics, BacktestRunError> {
    let (config, engine) = build_with(req, shared)?;
    Ok(BacktestService::run_builtin_metrics(
        &config, engine, candles, columns, cancel,
    )?)
}

/// A run's `backtests` row, from pending to its end, and how the run learns it should stop:
/// the caller's flag (Ctrl-C) or a `cancel_requested` row, set by `backtest cancel ID` from any
/// process. [`poll`](Self::poll) reads the row; runs call it between chunks.
pub struct RecordedRun<'a> {
    store: &'a Store,
    pub id: i64,
    caller: &'a AtomicBool,
    stop: AtomicBool,
    /// Set once the row records the run's end; a run dropped without it (a panic unwinding
    /// through the caller) is recorded `failed` by `Drop`, never left `running`.
    ended: AtomicBool,
    now: &'a dyn Fn() -> TimestampMs,
}

impl<'a> RecordedRun<'a> {
    /// Create the row (pending) and mark it running.
    pub fn start(
        store: &'a Store,
        req: &BacktestRequest,
        parameters: &serde_json::Value,
        caller: &'a AtomicBool,
        now: &'a dyn Fn() -> TimestampMs,
    ) -> Result<Self, BacktestRunError> {
        let conn = store.conn();
        let id = backtests::create(
            conn,
            &req.strategy.name,
            &req.symbol,
            req.interval.as_str(),
            parameters,
            now(),
        )?;
        Self::adopt(store, id, caller, now)
    }

    /// Mark the pending row `id` (created when the run was queued, see [`create_pending`])
    /// running.
    pub fn adopt(
        store: &'a Store,
        id: i64,
        caller: &'a AtomicBool,
        now: &'a dyn Fn() -> TimestampMs,
    ) -> Result<Self, BacktestRunError> {
        let conn = store.conn();
        let run = RecordedRun {
            store,
            id,
            caller,
            stop: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            now,
        };
        if let Err(e) = backtests::mark_running(conn, id, now()) {
            return Err(run.failed(e.into()));
        }
        run.poll();
        Ok(run)
    }

    /// Check the caller's flag and the row; `true` (and the stop flag set) when the run
    /// should stop. A row that cannot be read does not stop the run: the read is retried at
    /// the next poll.
    pub fn poll(&self) -> bool {
        let asked = self.caller.load(Ordering::Relaxed)
            || backtests::cancel_requested(self.store.conn(), self.id).unwrap_or(false);
        if asked {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag the engine and sweep workers watch.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    fn record(&self, what: &str, outcome: Result<(), StoreError>) {
        self.ended.store(true, Ordering::Relaxed);
        if let Err(e) = outcome {
            tracing::warn!(id = self.id, error = %e, "could not record the backtest as {what}");
        }
    }

    /// Record the run's end from an error: cancelled (keeping `partial` if any) or failed.
    pub fn failed(&self, e: BacktestRunError) -> BacktestRunError {
        let conn = self.store.conn();
        match &e {
            BacktestRunError::Backtest(BacktestError::Cancelled { partial, .. }) => self.record(
                "cancelled",
                backtests::cancel(
                    conn,
                    self.id,
                    partial.as_deref().map(|r| (r, &[][..])),
                    (self.now)(),
                ),
            ),
            other => self.record(
                "failed",
                backtests::fail(conn, self.id, &other.to_string(), (self.now)()),
            ),
        }
        e
    }

    /// Record a run stopped part way, keeping what it computed.
    pub fn cancelled(&self, partial: &BacktestResult, windows: &[WindowReport]) {
        self.record(
            "cancelled",
            backtests::cancel(
                self.store.conn(),
                self.id,
                Some((partial, windows)),
                (self.now)(),
            ),
        );
    }

    pub fn completed(
        &self,
        result: &BacktestResult,
        windows: &[WindowReport],
    ) -> Result<(), BacktestRunError> {
        backtests::complete_with_windows(self.store.conn(), self.id, result, windows, (self.now)())
            .map_err(|e| self.failed(e.into()))?;
        self.ended.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for RecordedRun<'_> {
    fn drop(&mut self) {
        if self.ended.load(Ordering::Relaxed) {
            return;
        }
        let why = if std::thread::panicking() {
            "the run panicked (a bug: see the log for the panic message)"
        } else {
            "the run stopped without recording its end"
        };
        self.record(
            "failed",
            backtests::fail(self.store.conn(), self.id, why, (self.now)()),
        );
    }
}

/// Whether the process `pid` still exists, where that can be known (Linux `/proc`); elsewhere
/// it is assumed alive, so `backtest cancel` only asks.
pub fn process_alive(pid: u32) -> bool {
    let proc_dir = std::path::Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    proc_dir.join(pid.to_string()).exists()
}

/// Run and record: a `backtests` row goes pending -> running -> completed / failed / cancelled.
/// The row is polled every [`PROGRESS_EVERY`](crate::domain::backtest::engine) candles, so
/// `backtest cancel ID` from another process stops the run; a cancelled run keeps the result of
/// the candles it got through. Returns the row id and the result (the error when it failed or
/// was cancelled).
pub fn run_and_record(
    store: &Store,
    req: &BacktestRequest,
    candles: &[Candle],
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
    now: &dyn Fn() -> TimestampMs,
) -> Result<(i64, BacktestResult), (Option<i64>, BacktestRunError)> {
    run_and_record_as(store, None, req, candles, cancel, progress, now)
}

/// The row a queued run will fill (pending until the worker takes it), so whoever queued it
/// can name the run at once. Its parameters are the ones [`run_and_record`] stores.
pub fn create_pending(store: &Store, req: &BacktestRequest, now: TimestampMs) -> StoreResult<i64> {
    backtests::create(
        store.conn(),
        &req.strategy.name,
        &req.symbol,
        req.interval.as_str(),
        &serde_json::to_value(req).unwrap_or_default(),
        now,
    )
}

/// [`run_and_record`] into the pending row `pending` when one was created at queueing time,
/// else into a new row.
pub fn run_and_record_as(
    store: &Store,
    pending: Option<i64>,
    req: &BacktestRequest,
    candles: &[Candle],
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
    now: &dyn Fn() -> TimestampMs,
) -> Result<(i64, BacktestResult), (Option<i64>, BacktestRunError)> {
    let columns = CandleColumns::from_candles(candles);
    run_and_record_on(
        store, pending, req, candles, &columns, cancel, progress, now,
    )
}

/// [`run_and_record_as`] with the candles' columns already built.
#[allow(clippy::too_many_arguments)]
pub fn run_and_record_on(
    store: &Store,
    pending: Option<i64>,
    req: &BacktestRequest,
    candles: &[Candle],
    columns: &CandleColumns,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
    now: &dyn Fn() -> TimestampMs,
) -> Result<(i64, BacktestResult), (Option<i64>, BacktestRunError)> {
    let run = match pending {
        Some(id) => RecordedRun::adopt(store, id, cancel, now).map_err(|e| (Some(id), e))?,
        None => {
            let params = serde_json::to_value(req).unwrap_or_default();
            RecordedRun::start(store, req, &params, cancel, now).map_err(|e| (None, e))?
        }
    };
    let mut polled = |done: usize, total: usize| {
        progress(done, total);
        run.poll();
    };
    let result = run_on(req, candles, columns, run.stop_flag(), &mut polled)
        .map_err(|e| (Some(run.id), run.failed(e)))?;
    run.completed(&result, &[]).map_err(|e| (Some(run.id), e))?;
    Ok((run.id, result))
}

/// One axis of a sweep: `fast=5..30:5` is 5, 10, .., 30.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    pub key: String,
    pub values: Vec<f64>,
}

impl FromStr for SweepAxis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("sweep {s:?}: expected KEY=FROM..TO:STEP, e.g. fast=5..30:5");
        let (key, range) = s.split_once('=').ok_or_else(bad)?;
        let (span, step) = range.split_once(':').unwrap_or((range, "1"));
        let (from, to) = span.split_once("..").ok_or_else(bad)?;
        let num = |t: &str| t.trim().parse::<f64>().map_err(|_| bad());
        let (from, to, step) = (num(from)?, num(to)?, num(step)?);
        if step.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || to < from
            || (to - from) / step > 100_000.0
        {
            return Err(bad());
        }
        let count = ((to - from) / step + 1e-9).floor() as usize + 1;
        Ok(SweepAxis {
            key: key.trim().to_string(),
            values: (0..count).map(|i| from + step * i as f64).collect(),
        })
    }
}

/// The most parameter combinations a sweep may run. Each axis is capped on its own, but their
/// product is what is built and run: two 100,000-value axes made a grid of 10^10 points that ate
/// memory for minutes before the first run.
pub const MAX_SWEEP_POINTS: usize = 100_000;

/// How many combinations the axes make (saturating, so an absurd product is still "too many").
pub fn sweep_size(axes: &[SweepAxis]) -> usize {
    axes.iter()
        .fold(1usize, |n, axis| n.saturating_mul(axis.values.len()))
}

/// Refuse a grid larger than [`MAX_SWEEP_POINTS`], naming its size, before anything is built.
pub fn check_sweep_size(axes: &[SweepAxis]) -> Result<usize, String> {
    let size = sweep_size(axes);
    if size > MAX_SWEEP_POINTS {
        let shape = axes
            .iter()
            .map(|a| format!("{} ({})", a.key, a.values.len()))
            .collect::<Vec<_>>()
            .join(" x ");
        return Err(format!(
            "the sweep {shape} has {size} combinations; at most {MAX_SWEEP_POINTS} are run: use larger steps or fewer axes"
        ));
    }
    Ok(size)
}

/// The cartesian product of the axes, each as parameter overrides.
pub fn sweep_grid(axes: &[SweepAxis]) -> Vec<Vec<(String, f64)>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.iter()
            .flat_map(|combo| {
                axis.values.iter().map(move |&v| {
                    let mut c = combo.clone();
                    c.push((axis.key.clone(), v));
                    c
                })
            })
            .collect()
    })
}

/// A metric to rank sweep runs by (higher is better, except drawdown).
pub fn rank_value(metric: &str, m: &Metrics) -> Option<f64> {
    Some(match metric {
        "total_return" | "return" => m.total_return_pct,
        "sharpe" => m.sharpe,
        "sortino" => m.sortino,
        "calmar" => m.calmar.unwrap_or(f64::NEG_INFINITY),
        "profit_factor" => m.profit_factor.unwrap_or(f64::INFINITY),
        "win_rate" => m.win_rate_pct,
        "max_drawdown" => -m.max_drawdown_pct,
        _ => return None,
    })
}

pub const RANK_METRICS: &str =
    "total_return, sharpe, sortino, calmar, profit_factor, win_rate, max_drawdown";

/// One sweep result.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRun {
    pub params: Vec<(String, f64)>,
    /// Why this combination did not run (e.g. fast >= slow), if it did not.
    pub error: Option<String>,
    /// The value of the metric the sweep ranks by (see [`rank_value`]); `None` when the run did
    /// not run or the sweep ranks by nothing ([`run_sweep`]).
    pub score: Option<f64>,
    /// Full metrics: of every run ([`run_sweep`], `--all-metrics`), else of the best few.
    pub metrics: Option<Metrics>,
}

/// Run every combination on `threads` worker threads (each takes the next combination from a
/// shared counter), results in grid order, each with its full metrics. Indicator columns are
/// computed once per distinct period and shared by all the runs. (A ranked sweep that needs
/// full metrics only for its best runs: [`run_sweep_ranked`].)
pub fn run_sweep(
    base: &BacktestRequest,
    grid: &[Vec<(String, f64)>],
    candles: &[Candle],
    columns: &CandleColumns,
    threads: usize,
    cancel: &AtomicBool,
    on_done: &(dyn Fn(usize) + Sync),
) -> Vec<SweepRun> {
    use std::sync::atomic::AtomicUsize;
    let done = AtomicUsize::new(0);
    let shared = SharedColumns::new(&columns.close);
    par_map(grid.len(), threads, cancel, &|i| {
        let req = combination(base, &grid[i]);
        let outcome = run_metrics_shared(&req, candles, columns, Some(&shared), cancel);
        let run = match outcome {
            Ok(metrics) => SweepRun {
                params: grid[i].clone(),
                error: None,
                score: None,
                metrics: Some(metrics),
            },
            Err(e) => SweepRun {
                params: grid[i].clone(),
                error: Some(e.to_string()),
                score: None,
                metrics: None,
            },
        };
        on_done(done.fetch_add(1, Ordering::Relaxed) + 1);
        run
    })
}

/// The best run of a sweep by `rank_by` (ties go to the earlier combination in grid order): by
/// its score when it has one, else by its metrics.
pub fn best_run<'r>(runs: &'r [SweepRun], rank_by: &str) -> Option<(&'r SweepRun, f64)> {
    runs.iter()
        .filter_map(|r| {
            let score = r
                .score
                .or_else(|| rank_value(rank_by, r.metrics.as_ref()?))?;
            Some((r, score))
        })
        .fold(None, |best, (r, score)| match best {
            Some((_, s)) if score <= s => best,
            _ => Some((r, score)),
        })
}

/// A walk-forward run: per window, the parameters chosen in sample and the out-of-sample result;
/// and the test windows stitched into one run.
#[derive(Debug, Clone, Serialize)]
pub struct WalkForwardRun {
    pub windows: Vec<WindowReport>,
    /// The stitched out-of-sample run: equity carried from window to window.
    pub result: BacktestResult,
    /// How many windows the data holds; fewer ran when the run was cancelled.
    pub planned_windows: usize,
    pub cancelled: bool,
}

/// Walk forward: on each training window run the `grid` sweep and pick the best combination by
/// `rank_by`; run it on the following test window (its indicators warmed up on the training
/// candles, which all precede the test); carry the equity into the next window. Only
/// out-of-sample results are reported. `poll(windows_done, windows_total)` is called between
/// windows and between chunks of each test run; it may set `stop`, which ends the run early with
/// the windows done so far (`cancelled`).
#[allow(clippy::too_many_arguments)]
pub fn run_walk_forward(
    base: &BacktestRequest,
    grid: &[Vec<(String, f64)>],
    rank_by: &str,
    spec: &WalkForwardSpec,
    candles: &[Candle],
    columns: &CandleColumns,
    threads: usize,
    stop: &AtomicBool,
    poll: &mut dyn FnMut(usize, usize),
) -> Result<WalkForwardRun, BacktestRunError> {
    let splits = split_windows(&columns.open_time, base.interval, spec);
    let total = splits.len();
    if total == 0 {
        return Err(BacktestRunError::NoWindows {
            spec: *spec,
            candles: candles.len(),
        });
    }
    let mut carry = base.initial_cash;
    let mut windows = Vec::with_capacity(total);
    let mut results = Vec::with_capacity(total);
    let mut cancelled = false;
    let first_open = candles[splits[0].test.start].open;
    let mut last_close = first_open;
    for (k, w) in splits.iter().enumerate() {
        poll(k, total);
        if stop.load(Ordering::Relaxed) {
            cancelled = true;
            break;
        }
        // In sample: the training candles only.
        let train_columns = columns.slice(w.train.clone());
        // Only the scores are needed to choose: no run's full metrics.
        let ranking = SweepRanking {
            rank_by,
            full_metrics_top: Some(0),
        };
        let runs = run_sweep_ranked(
            base,
            grid,
            ranking,
            &candles[w.train.clone()],
            &train_columns,
            threads,
            stop,
            &|_| {},
        );
        if stop.load(Ordering::Relaxed) {
            cancelled = true;
            break;
        }
        let Some((best, score)) = best_run(&runs, rank_by) else {
            return Err(BacktestRunError::NothingRan {
                window: k + 1,
                why: runs
                    .iter()
                    .find_map(|r| r.error.clone())
                    .unwrap_or_else(|| "no metrics".into()),
            });
        };
        let mut req = base.clone();
        for (key, v) in &best.params {
            req.strategy.params.insert(key.clone(), *v);
        }
        req.initial_cash = carry;
        // Out of sample: shown the training candles as warm-up, trading only the test span.
        let span = w.train.start..w.test.end;
        let (config, engine) = build(&req)?;
        let outcome = BacktestService::run_builtin(
            &config,
            engine,
            &candles[span.clone()],
            &columns.slice(span),
            w.test.start - w.train.start,
            stop,
            &mut |_, _| poll(k, total),
        );
        let (mut result, partial) = match outcome {
            Ok(r) => (r, false),
            Err(BacktestError::Cancelled {
                partial: Some(p), ..
            }) => (*p, true),
            Err(BacktestError::Cancelled { partial: None, .. }) => {
                cancelled = true;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let tested = &candles[w.test.start..w.test.start + result.equity.len()];
        let (Some(first), Some(last)) = (tested.first(), tested.last()) else {
            break;
        };
        close_at_window_end(&mut result, last, req.costs.taker_fee);
        let in_market = candles_in_market(&result.metrics);
        refresh_metrics(
            &mut result,
            base.interval,
            carry,
            in_market,
            first.open,
            last.close,
        );
        windows.push(WindowReport {
            window: k + 1,
            train_first: columns.open_time[w.train.start],
            train_last: columns.open_time[w.train.end - 1],
            train_candles: w.train.len(),
            test_first: first.open_time,
            test_last: last.open_time,
            test_candles: tested.len(),
            params: best.params.clone(),
            in_sample_score: score,
            start_equity: carry,
            end_equity: result.final_equity,
            metrics: result.metrics.clone(),
        });
        carry = result.final_equity;
        last_close = last.close;
        results.push(result);
        if partial {
            cancelled = true;
            break;
        }
    }
    let Some(result) = stitch(
        &results,
        base.interval,
        base.initial_cash,
        first_open,
        last_close,
    ) else {
        return Err(BacktestError::Cancelled {
            done: 0,
            total: candles.len(),
            partial: None,
        }
        .into());
    };
    Ok(WalkForwardRun {
        windows,
        result,
        planned_windows: total,
        cancelled,
    })
}

/// [`run_walk_forward`], recorded as ONE `backtests` row: the stitched out-of-sample metrics,
/// curve and trades in the usual columns, the windows in `windows`. The row is polled between
/// windows and chunks, so `backtest cancel ID` stops it; a cancelled run keeps its finished
/// windows.
#[allow(clippy::too_many_arguments)]
pub fn run_walk_forward_and_record(
    store: &Store,
    base: &BacktestRequest,
    axes: &[SweepAxis],
    rank_by: &str,
    spec: &WalkForwardSpec,
    candles: &[Candle],
    threads: usize,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
    now: &dyn Fn() -> TimestampMs,
) -> Result<(i64, WalkForwardRun), (Option<i64>, BacktestRunError)> {
    let mut params = serde_json::to_value(base).unwrap_or_default();
    if let Some(map) = params.as_object_mut() {
        map.insert("walk_forward".into(), spec.to_string().into());
        map.insert("rank_by".into(), rank_by.into());
        let sweep: serde_json::Map<String, serde_json::Value> = axes
            .iter()
            .map(|a| (a.key.clone(), a.values.clone().into()))
            .collect();
        map.insert("sweep".into(), sweep.into());
    }
    let run = RecordedRun::start(store, base, &params, cancel, now).map_err(|e| (None, e))?;
    let columns = CandleColumns::from_candles(candles);
    let grid = sweep_grid(axes);
    let mut polled = |done: usize, total: usize| {
        progress(done, total);
        run.poll();
    };
    let wf = run_walk_forward(
        base,
        &grid,
        rank_by,
        spec,
        candles,
        &columns,
        threads,
        run.stop_flag(),
        &mut polled,
    )
    .map_err(|e| (Some(run.id), run.failed(e)))?;
    if wf.cancelled {
        run.cancelled(&wf.result, &wf.windows);
    } else {
        run.completed(&wf.result, &wf.windows)
            .map_err(|e| (Some(run.id), e))?;
    }
    Ok((run.id, wf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stored_candles_names_the_command_that_gets_them() {
        // Issue 18: the message named `trademind market import/fetch`, which does not exist.
        let text = BacktestRunError::NoStoredCandles {
            symbol: "BTCUSDT".into(),
            interval: Interval::H1,
        }
        .to_string();
        assert!(
            text.contains("trademind data fetch BTCUSDT 1h --from"),
            "{text}"
        );
        assert!(!text.contains("market import"), "{text}");
    }

    #[test]
    fn sweep_axes_parse_and_multiply() {
        let a: SweepAxis = "fast=5..30:5".parse().unwrap();
        assert_eq!(a.values, vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        let b: SweepAxis = "slow=20..100:10".parse().unwrap();
        assert_eq!(b.values.len(), 9);
        let grid = sweep_grid(&[a, b]);
        assert_eq!(grid.len(), 54);
        assert_eq!(
            grid[1],
            vec![("fast".to_string(), 5.0), ("slow".to_string(), 30.0)]
        );
        assert!("fast=5..1:1".parse::<SweepAxis>().is_err());
        assert!("fast".parse::<SweepAxis>().is_err());
        assert!("fast=1..2:0".parse::<SweepAxis>().is_err());
    }

    #[test]
    fn sizing_choices_parse() {
        assert_eq!("all-in".parse(), Ok(SizingChoice::AllIn));
        assert_eq!("atr".parse(), Ok(SizingChoice::Atr));
        assert_eq!(
            "fraction=0.5".parse(),
            Ok(SizingChoice::Fraction(Decimal::new(5, 1)))
        );
        assert!("fraction=2".parse::<SizingChoice>().is_err());
        assert!("yolo".parse::<SizingChoice>().is_err());
    }
}
