//! Backtest runs in the `backtests` table: created pending, then running, then completed,
//! failed or cancelled; parameters, metrics, equity curve and trades as JSON. Any process may
//! ask a run to stop (`cancel_requested`); the process running it polls the row between chunks.

use super::codec::parse_col;
use super::{StoreError, StoreResult};
use crate::domain::backtest::{BacktestResult, Metrics, RunStatus, TradeRecord, WindowReport};
use crate::domain::backtest::{EquityCurve, Times};
use crate::domain::market::candle::TimestampMs;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// At most this many equity points are stored; longer curves are thinned evenly (the last point
/// is always kept), which is plenty for charts and keeps rows small.
pub const MAX_STORED_EQUITY_POINTS: usize = 5_000;

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestRun {
    pub id: i64,
    pub status: RunStatus,
    pub strategy: String,
    pub symbol: String,
    pub interval: String,
    pub parameters: serde_json::Value,
    pub metrics: Option<Metrics>,
    /// `(open time, equity at close)` pairs.
    pub equity_curve: Vec<(TimestampMs, f64)>,
    pub trades: Vec<TradeRecord>,
    /// A walk-forward run's windows (training span, chosen parameters, out-of-sample result);
    /// empty for a plain run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowReport>,
    pub error: Option<String>,
    pub created_at: TimestampMs,
    pub started_at: Option<TimestampMs>,
    pub finished_at: Option<TimestampMs>,
}

fn json_err(column: &'static str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        column,
        value: String::new(),
        reason: e.to_string(),
    }
}

/// Record a new pending run; returns its id.
pub fn create(
    conn: &Connection,
    strategy: &str,
    symbol: &str,
    interval: &str,
    parameters: &serde_json::Value,
    now: TimestampMs,
) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO backtests (status, strategy, symbol, interval, parameters, created_at)
         VALUES ('pending', ?1, ?2, ?3, ?4, ?5)",
        params![strategy, symbol, interval, parameters.to_string(), now],
    )?;
    Ok(conn.last_insert_rowid())
}

fn transition(
    conn: &Connection,
    id: i64,
    from: &[RunStatus],
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> StoreResult<()> {
    // Check and move in one immediate transaction: a cancel and the run's own end cannot both
    // pass the check on the same old status.
    super::write_tx(conn, |tx| {
        let current = status(tx, id)?;
        if !from.contains(&current) {
            return Err(StoreError::Conflict(format!(
                "backtest {id} is {current}; it cannot move on from there"
            )));
        }
        tx.execute(sql, args)?;
        Ok(())
    })
}

pub fn status(conn: &Connection, id: i64) -> StoreResult<RunStatus> {
    let text: Option<String> = conn
        .query_row("SELECT status FROM backtests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let text = text.ok_or_else(|| StoreError::NotFound(format!("backtest {id}")))?;
    parse_col("backtests.status", &text)
}

pub fn mark_running(conn: &Connection, id: i64, now: TimestampMs) -> StoreResult<()> {
    transition(
        conn,
        id,
        &[RunStatus::Pending],
        "UPDATE backtests SET status = 'running', started_at = ?2, owner_pid = ?3 WHERE id = ?1",
        &[&id, &now, &std::process::id()],
    )
}

/// The process that marked the run running (`None` for a run recorded before this was kept,
/// or one never started).
pub fn owner_pid(conn: &Connection, id: i64) -> StoreResult<Option<u32>> {
    let pid: Option<Option<i64>> = conn
        .query_row("SELECT owner_pid FROM backtests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let pid = pid.ok_or_else(|| StoreError::NotFound(format!("backtest {id}")))?;
    Ok(pid.and_then(|p| u32::try_from(p).ok()))
}

/// Evenly thinned `(time, equity)` points, the last one always included.
pub fn thin_curve(times: &Times, equity: &EquityCurve, max: usize) -> Vec<(TimestampMs, f64)> {
    let n = equity.len().min(times.len());
    if n == 0 || max == 0 {
        return Vec::new();
    }
    let stride = n.div_ceil(max);
    let mut points: Vec<(TimestampMs, f64)> = (0..n)
        .step_by(stride)
        .filter_map(|i| Some((times.get(i)?, equity.get(i)?)))
        .collect();
    if !(n - 1).is_multiple_of(stride)
        && let (Some(t), Some(e)) = (times.get(n - 1), equity.get(n - 1))
    {
        points.push((t, e));
    }
    points
}

/// A run's results as the JSON the row keeps: metrics, thinned curve, trades, windows.
struct Encoded {
    metrics: String,
    curve: String,
    trades: String,
    windows: Option<String>,
}

fn encode(result: &BacktestResult, windows: &[WindowReport]) -> StoreResult<Encoded> {
    let curve = thin_curve(&result.times, &result.equity, MAX_STORED_EQUITY_POINTS);
    Ok(Encoded {
        metrics: serde_json::to_string(&result.metrics).map_err(|e| json_err("metrics", e))?,
        curve: serde_json::to_string(&curve).map_err(|e| json_err("equity_curve", e))?,
        trades: serde_json::to_string(&result.trades).map_err(|e| json_err("trades", e))?,
        windows: (!windows.is_empty())
            .then(|| serde_json::to_string(windows).map_err(|e| json_err("windows", e)))
            .transpose()?,
    })
}

/// A run finished. A cancel requested too late to be seen still ends `completed`: the result
/// is whole.
pub fn complete(
    conn: &Connection,
    id: i64,
    result: &BacktestResult,
    now: TimestampMs,
) -> StoreResult<()> {
    complete_with_windows(conn, id, result, &[], now)
}

/// A walk-forward run finished: `result` is the stitched out-of-sample run.
pub fn complete_with_windows(
    conn: &Connection,
    id: i64,
    result: &BacktestResult,
    windows: &[WindowReport],
    now: TimestampMs,
) -> StoreResult<()> {
    let e = encode(result, windows)?;
    transition(
        conn,
        id,
        &[RunStatus::Running, RunStatus::CancelRequested],
        "UPDATE backtests SET status = 'completed', metrics = ?2, equity_curve = ?3, trades = ?4,
         windows = ?5, finished_at = ?6 WHERE id = ?1",
        &[&id, &e.metrics, &e.curve, &e.trades, &e.windows, &now],
    )
}

pub fn fail(conn: &Connection, id: i64, error: &str, now: TimestampMs) -> StoreResult<()> {
    transition(
        conn,
        id,
        &[
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::CancelRequested,
        ],
        "UPDATE backtests SET status = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1",
        &[&id, &error, &now],
    )
}

/// Ask a pending or running run to stop. Only sets the row: the process running it sees the
/// request at its next poll and ends the run `cancelled`. Asking twice is harmless.
pub fn request_cancel(conn: &Connection, id: i64) -> StoreResult<()> {
    transition(
        conn,
        id,
        &[
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::CancelRequested,
        ],
        "UPDATE backtests SET status = 'cancel_requested' WHERE id = ?1",
        &[&id],
    )
}

/// Whether someone asked this run to stop (what a running backtest polls between chunks).
pub fn cancel_requested(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(status(conn, id)? == RunStatus::CancelRequested)
}

/// The run stopped early. Whatever it computed before stopping (`partial`) is kept.
pub fn cancel(
    conn: &Connection,
    id: i64,
    partial: Option<(&BacktestResult, &[WindowReport])>,
    now: TimestampMs,
) -> StoreResult<()> {
    let from = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::CancelRequested,
    ];
    match partial {
        None => transition(
            conn,
            id,
            &from,
            "UPDATE backtests SET status = 'cancelled', finished_at = ?2 WHERE id = ?1",
            &[&id, &now],
        ),
        Some((result, windows)) => {
            let e = encode(result, windows)?;
            transition(
                conn,
                id,
                &from,
                "UPDATE backtests SET status = 'cancelled', metrics = ?2, equity_curve = ?3,
                 trades = ?4, windows = ?5, finished_at = ?6 WHERE id = ?1",
                &[&id, &e.metrics, &e.curve, &e.trades, &e.windows, &now],
            )
        }
    }
}

/// Delete a run; `false` when there was none with that id.
pub fn delete(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM backtests WHERE id = ?1", [id])? > 0)
}

const COLUMNS: &str = "id, status, strategy, symbol, interval, parameters, metrics, equity_curve,
    trades, error, created_at, started_at, finished_at, windows";

fn from_row(r: &rusqlite::Row<'_>, full: bool) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        status: r.get(1)?,
        strategy: r.get(2)?,
        symbol: r.get(3)?,
        interval: r.get(4)?,
        parameters: r.get(5)?,
        metrics: r.get(6)?,
        equity_curve: if full { r.get(7)? } else { None },
        trades: if full { r.get(8)? } else { None },
        error: r.get(9)?,
        created_at: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        windows: if full { r.get(13)? } else { None },
    })
}

struct RawRow {
    id: i64,
    status: String,
    strategy: String,
    symbol: String,
    interval: String,
    parameters: String,
    metrics: Option<String>,
    equity_curve: Option<String>,
    trades: Option<String>,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    windows: Option<String>,
}

impl RawRow {
    fn decode(self) -> StoreResult<BacktestRun> {
        fn json<T: serde::de::DeserializeOwned>(
            column: &'static str,
            text: Option<String>,
        ) -> StoreResult<Option<T>> {
            text.map(|t| serde_json::from_str(&t).map_err(|e| json_err(column, e)))
                .transpose()
        }
        Ok(BacktestRun {
            id: self.id,
            status: parse_col("backtests.status", &self.status)?,
            strategy: self.strategy,
            symbol: self.symbol,
            interval: self.interval,
            parameters: serde_json::from_str(&self.parameters)
                .map_err(|e| json_err("backtests.parameters", e))?,
            metrics: json("backtests.metrics", self.metrics)?,
            equity_curve: json("backtests.equity_curve", self.equity_curve)?.unwrap_or_default(),
            trades: json("backtests.trades", self.trades)?.unwrap_or_default(),
            windows: json("backtests.windows", self.windows)?.unwrap_or_default(),
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

/// A run with its curve and trades.
pub fn get(conn: &Connection, id: i64) -> StoreResult<Option<BacktestRun>> {
    let raw = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM backtests WHERE id = ?1"),
            [id],
            |r| from_row(r, true),
        )
        .optional()?;
    raw.map(RawRow::decode).transpose()
}

/// The newest runs first, without curves and trades.
pub fn list(conn: &Connection, limit: usize) -> StoreResult<Vec<BacktestRun>> {
    newest(conn, limit, false)
}

/// The newest runs first, each with its curve and trades (the TUI shows them).
pub fn list_full(conn: &Connection, limit: usize) -> StoreResult<Vec<BacktestRun>> {
    newest(conn, limit, true)
}

fn newest(conn: &Connection, limit: usize, full: bool) -> StoreResult<Vec<BacktestRun>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM backtests ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            from_row(r, full)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(RawRow::decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn run_moves_pending_running_completed_and_refuses_going_back() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let id = create(
            c,
            "sma-cross",
            "BTCUSDT",
            "1h",
            &serde_json::json!({"fast": 10}),
            1,
        )
        .unwrap();
        assert_eq!(status(c, id).unwrap(), RunStatus::Pending);
        mark_running(c, id, 2).unwrap();
        cancel(c, id, None, 3).unwrap();
        assert_eq!(status(c, id).unwrap(), RunStatus::Cancelled);
        assert!(matches!(
            mark_running(c, id, 4),
            Err(StoreError::Conflict(_))
        ));
        let run = get(c, id).unwrap().unwrap();
        assert_eq!(run.parameters["fast"], 10);
        assert_eq!(run.finished_at, Some(3));
        assert_eq!(list(c, 10).unwrap().len(), 1);
        assert!(delete(c, id).unwrap());
        assert!(!delete(c, id).unwrap());
        assert!(get(c, id).unwrap().is_none());
        assert!(matches!(status(c, id), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn thinning_keeps_first_and_last_points() {
        let times = Times::of(&(0..10).collect::<Vec<i64>>());
        let eq = EquityCurve::from((0..10).map(f64::from).collect::<Vec<f64>>());
        let p = thin_curve(&times, &eq, 4);
        // stride 3: 0, 3, 6, 9
        assert_eq!(p, vec![(0, 0.0), (3, 3.0), (6, 6.0), (9, 9.0)]);
        let p = thin_curve(&times, &eq, 3);
        // stride 4: 0, 4, 8, then the last 9
        assert_eq!(p.last(), Some(&(9, 9.0)));
        assert_eq!(p.len(), 4);
    }
}
