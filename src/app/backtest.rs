//! Running backtests for the faces: load candles (store or CSV), build the engine from a request,
//! run it with cancellation and progress, persist the run, and parameter sweeps on all cores.

use crate::domain::backtest::{
    AllIn, BacktestConfig, BacktestError, BacktestResult, BacktestService, Costs, Engine,
    FillModel, FixedFraction, Metrics, RiskSizer, Sizer, StrategyError, StrategySpec,
    build_strategy,
};
use crate::domain::market::candle::{Candle, CandleColumns, Interval, TimestampMs};
use crate::domain::money::Quote;
use crate::domain::risk::{RiskConfig, SizingMode};
use crate::services::market_data::import::{ImportError, parse_candles};
use crate::store::{Store, StoreError, backtests};
use rust_decimal::Decimal;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;

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
        "no {symbol} {interval} candles in the database for that period: run `trademind market import`/`fetch` first, or pass --data FILE.csv"
    )]
    NoStoredCandles { symbol: String, interval: Interval },
    #[error("cannot render the report: {0}")]
    Report(#[from] crate::domain::backtest::report::ReportError),
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
    let text = std::fs::read_to_string(path).map_err(|source| {
        csv_err(ImportError::Read {
            path: path.to_path_buf(),
            source,
        })
    })?;
    Ok(parse_candles(&text, interval, false)
        .map_err(csv_err)?
        .candles)
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
pub fn build(req: &BacktestRequest) -> Result<(BacktestConfig, Engine), BacktestRunError> {
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
    let engine = Engine::new(
        build_strategy(&req.strategy)?,
        req.sizing.sizer(&req.risk),
        req.initial_cash,
    )
    .with_fee_rate(req.costs.taker_fee);
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
    let (config, engine) = build(req)?;
    Ok(BacktestService::run(
        &config, engine, candles, columns, cancel, progress,
    )?)
}

/// Run and record: a `backtests` row goes pending -> running -> completed / failed / cancelled.
/// Returns the row id and the result (the error when it failed or was cancelled).
pub fn run_and_record(
    store: &Store,
    req: &BacktestRequest,
    candles: &[Candle],
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
    now: &dyn Fn() -> TimestampMs,
) -> Result<(i64, BacktestResult), (Option<i64>, BacktestRunError)> {
    let params = serde_json::to_value(req).unwrap_or_default();
    let conn = store.conn();
    let id = backtests::create(
        conn,
        &req.strategy.name,
        &req.symbol,
        req.interval.as_str(),
        &params,
        now(),
    )
    .map_err(|e| (None, e.into()))?;
    let fail = |e: BacktestRunError| -> (Option<i64>, BacktestRunError) {
        let recorded = match &e {
            BacktestRunError::Backtest(BacktestError::Cancelled { .. }) => {
                backtests::cancel(conn, id, now())
            }
            other => backtests::fail(conn, id, &other.to_string(), now()),
        };
        if let Err(store_err) = recorded {
            tracing::warn!(id, error = %store_err, "could not record the backtest's end");
        }
        (Some(id), e)
    };
    backtests::mark_running(conn, id, now()).map_err(|e| fail(e.into()))?;
    let columns = CandleColumns::from_candles(candles);
    let result = run_on(req, candles, &columns, cancel, progress).map_err(fail)?;
    backtests::complete(conn, id, &result, now()).map_err(|e| fail(e.into()))?;
    Ok((id, result))
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
    pub metrics: Option<Metrics>,
}

/// Run every combination on `threads` worker threads (each takes the next combination from a
/// shared counter), results in grid order.
pub fn run_sweep(
    base: &BacktestRequest,
    grid: &[Vec<(String, f64)>],
    candles: &[Candle],
    columns: &CandleColumns,
    threads: usize,
    cancel: &AtomicBool,
    on_done: &(dyn Fn(usize) + Sync),
) -> Vec<SweepRun> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SweepRun>>> = Mutex::new(vec![None; grid.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= grid.len() || cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut req = base.clone();
                    for (k, v) in &grid[i] {
                        req.strategy.params.insert(k.clone(), *v);
                    }
                    let outcome = run_on(&req, candles, columns, cancel, &mut |_, _| {});
                    let run = match outcome {
                        Ok(r) => SweepRun {
                            params: grid[i].clone(),
                            error: None,
                            metrics: Some(r.metrics),
                        },
                        Err(e) => SweepRun {
                            params: grid[i].clone(),
                            error: Some(e.to_string()),
                            metrics: None,
                        },
                    };
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(run);
                    }
                    on_done(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
