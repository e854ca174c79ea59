//! Risk persistence: `risk_configs` (JSON `RiskConfig` per strategy, NULL strategy = the default)
//! and `circuit_breaker_state` (one history row per transition; the current state of a scope is
//! its latest row), so a restart does not reset a tripped breaker.
//!
//! "Latest" is by insertion order (row id), not by `changed_at`: one run may stamp with a
//! replay's simulated clock and another with the wall clock, and the operator's last action
//! (pause, kill, resume) must win whatever the stamps say.

use super::{StoreError, StoreResult};
use crate::domain::market::candle::TimestampMs;
use crate::domain::risk::{
    BreakerReason, BreakerState, BreakerTransition, CircuitBreaker, RiskConfig,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The breaker scope for the whole account.
pub const GLOBAL_SCOPE: &str = "global";

/// Where an effective config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// The `[risk]` settings (nothing stored yet).
    Settings,
    /// The stored default (`trademind risk set` without `--strategy`).
    StoredDefault,
    /// The strategy's own stored config.
    Strategy,
}

fn strategy_id(conn: &Connection, name: &str) -> StoreResult<i64> {
    super::strategies::strategy_by_name(conn, name)?
        .map(|s| s.id)
        .ok_or_else(|| StoreError::NotFound(format!("strategy {name:?} (create it first)")))
}

fn parse_config(text: &str) -> StoreResult<RiskConfig> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        column: "risk_configs.config",
        value: text.to_string(),
        reason: e.to_string(),
    })
}

fn stored(conn: &Connection, strategy: Option<i64>) -> StoreResult<Option<RiskConfig>> {
    let text: Option<String> = match strategy {
        Some(id) => conn
            .query_row(
                "SELECT config FROM risk_configs WHERE strategy_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?,
        None => conn
            .query_row(
                "SELECT config FROM risk_configs WHERE strategy_id IS NULL",
                [],
                |r| r.get(0),
            )
            .optional()?,
    };
    text.map(|t| parse_config(&t)).transpose()
}

/// The effective config for `strategy` (or the default): the strategy's stored config, else
/// the stored default, else `base` (the `[risk]` settings).
pub fn load_config(
    conn: &Connection,
    strategy: Option<&str>,
    base: &RiskConfig,
) -> StoreResult<(RiskConfig, ConfigSource)> {
    if let Some(name) = strategy {
        let id = strategy_id(conn, name)?;
        if let Some(c) = stored(conn, Some(id))? {
            return Ok((c, ConfigSource::Strategy));
        }
    }
    Ok(match stored(conn, None)? {
        Some(c) => (c, ConfigSource::StoredDefault),
        None => (base.clone(), ConfigSource::Settings),
    })
}

/// A cooldown or lock after stops in force for one book in one symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveStopProtection {
    pub symbol: String,
    /// The book: its strategy, `None` for the default book.
    pub book: Option<i64>,
    /// The strategy's name (`None` for the default book).
    pub strategy: Option<String>,
    pub protection: crate::domain::risk::StopProtection,
}

impl ActiveStopProtection {
    /// The book as the faces name it.
    pub fn book_name(&self) -> &str {
        self.strategy.as_deref().unwrap_or("default")
    }
}

/// Every cooldown and lock after stops in force at `now_ms` on `connection`: each book's
/// stop-loss exits in each symbol judged by `risk::stop_protection` with the book's own limits
/// and candle (the strategy's interval; `default_candle_ms` for the default book), as the
/// entry path judges them.
pub fn active_stop_protections(
    conn: &Connection,
    connection: &str,
    base: &RiskConfig,
    default_candle_ms: i64,
    now_ms: TimestampMs,
) -> StoreResult<Vec<ActiveStopProtection>> {
    // One book in one symbol (the first exit names it) and the times of its stops.
    let mut groups: Vec<(super::orders::StopExitRow, Vec<TimestampMs>)> = Vec::new();
    for e in super::orders::stop_exits(conn, connection)? {
        match groups
            .iter_mut()
            .find(|(g, _)| g.symbol == e.symbol && g.book == e.book)
        {
            Some((_, stops)) => stops.push(e.at_ms),
            None => {
                let at = e.at_ms;
                groups.push((e, vec![at]));
            }
        }
    }
    let strategies = super::strategies::list_strategies(conn)?;
    let mut out = Vec::new();
    for (first, stops) in groups {
        let super::orders::StopExitRow {
            symbol,
            book,
            strategy,
            ..
        } = first;
        let (config, _) = match load_config(conn, strategy.as_deref(), base) {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => load_config(conn, None, base)?,
            Err(e) => return Err(e),
        };
        let candle_ms = strategies
            .iter()
            .find(|s| Some(s.id) == book)
            .and_then(|s| {
                s.interval
                    .parse::<crate::domain::market::candle::Interval>()
                    .ok()
            })
            .map_or(default_candle_ms, |i| i.millis());
        if let Some(protection) =
            crate::domain::risk::stop_protection(&config, &stops, now_ms, candle_ms)
        {
            out.push(ActiveStopProtection {
                symbol,
                book,
                strategy,
                protection,
            });
        }
    }
    Ok(out)
}

/// The stored default config (`trademind risk set` without `--strategy`), if any.
pub fn stored_default(conn: &Connection) -> StoreResult<Option<RiskConfig>> {
    stored(conn, None)
}

/// Store `config` for `strategy` (or as the default), replacing what was there.
pub fn save_config(
    conn: &Connection,
    strategy: Option<&str>,
    config: &RiskConfig,
    now: TimestampMs,
) -> StoreResult<()> {
    let json = serde_json::to_string(config).map_err(|e| StoreError::Conflict(e.to_string()))?;
    match strategy {
        Some(name) => {
            let id = strategy_id(conn, name)?;
            conn.execute(
                "INSERT INTO risk_configs (strategy_id, config, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(strategy_id) DO UPDATE SET config = excluded.config,
                                                        updated_at = excluded.updated_at",
                params![id, json, now],
            )?;
        }
        None => {
            // The default row is unique through a partial expression index, which ON CONFLICT
            // cannot name: update, then insert if there was nothing to update.
            let updated = conn.execute(
                "UPDATE risk_configs SET config = ?1, updated_at = ?2 WHERE strategy_id IS NULL",
                params![json, now],
            )?;
            if updated == 0 {
                conn.execute(
                    "INSERT INTO risk_configs (strategy_id, config, updated_at) VALUES (NULL, ?1, ?2)",
                    params![json, now],
                )?;
            }
        }
    }
    Ok(())
}

/// Change the stored config of `strategy` (or the default) in one immediate transaction: read
/// the effective config, apply `change`, store the result. Two concurrent updates of different
/// keys both land, because the second one reads after the first one committed.
///
/// The outer error is the store's; the inner one is `change`'s (nothing is stored then).
pub fn update_config<E>(
    conn: &Connection,
    strategy: Option<&str>,
    base: &RiskConfig,
    now: TimestampMs,
    change: impl FnOnce(RiskConfig) -> Result<RiskConfig, E>,
) -> StoreResult<Result<RiskConfig, E>> {
    super::write_tx(conn, |tx| {
        let (current, _) = load_config(tx, strategy, base)?;
        match change(current) {
            Ok(updated) => {
                save_config(tx, strategy, &updated, now)?;
                Ok(Ok(updated))
            }
            Err(e) => Ok(Err(e)),
        }
    })
}

/// Apply `step` to the breaker of `scope` as last persisted and append the transitions it
/// returns, in one immediate transaction (so two processes cannot both act on a stale state).
pub fn update_breaker<T>(
    conn: &Connection,
    scope: &str,
    step: impl FnOnce(&Connection, &mut CircuitBreaker) -> StoreResult<(T, Vec<BreakerTransition>)>,
) -> StoreResult<T> {
    super::write_tx(conn, |tx| {
        let mut breaker = load_breaker(tx, scope)?;
        let (value, transitions) = step(tx, &mut breaker)?;
        for t in &transitions {
            record_transition(tx, scope, t)?;
        }
        Ok(value)
    })
}

/// One row of the breaker history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerRecord {
    pub scope: String,
    pub state: BreakerState,
    pub reason: Option<BreakerReason>,
    pub changed_at: TimestampMs,
    pub until: Option<TimestampMs>,
    /// Who moved it by hand (`cli`, `tui`, …); `None` for the engine's own rules and old rows.
    pub actor: Option<String>,
    /// The operator's reason, as typed.
    pub note: Option<String>,
}

/// Append a transition to the history of `scope`.
pub fn record_transition(
    conn: &Connection,
    scope: &str,
    transition: &BreakerTransition,
) -> StoreResult<()> {
    record_manual(conn, scope, transition, None, None)
}

/// Append a transition with who made it and why (an operator's pause, kill or resume).
pub fn record_manual(
    conn: &Connection,
    scope: &str,
    transition: &BreakerTransition,
    actor: Option<&str>,
    note: Option<&str>,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO circuit_breaker_state (scope, state, reason, changed_at, until, actor, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            scope,
            transition.to.as_str(),
            transition.reason.as_str(),
            transition.at,
            transition.until,
            actor,
            note
        ],
    )?;
    Ok(())
}

/// How an operator stops trading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualStop {
    /// `trademind pause`, `p` in the TUI: no new entries until resumed.
    Pause,
    /// The kill switch (`risk kill`, `K` in the TUI).
    Kill,
}

/// Stop trading on the global scope (pause or kill switch), stamped `now` by the caller's
/// clock. Takes effect whatever the previous rows' stamps: the latest row wins.
pub fn stop_trading(
    conn: &Connection,
    config: &RiskConfig,
    stop: ManualStop,
    actor: &str,
    note: &str,
    now: TimestampMs,
) -> StoreResult<BreakerTransition> {
    super::write_tx(conn, |tx| {
        let mut breaker = load_breaker(tx, GLOBAL_SCOPE)?;
        let t = match stop {
            ManualStop::Pause => breaker.pause(config, now),
            ManualStop::Kill => breaker.kill(config, now),
        };
        record_manual(tx, GLOBAL_SCOPE, &t, Some(actor), Some(note))?;
        Ok(t)
    })
}

/// Reset the global breaker to Active (after a pause, the kill switch or a loss rule);
/// `None` when it already was.
pub fn resume_trading(
    conn: &Connection,
    actor: &str,
    now: TimestampMs,
) -> StoreResult<Option<BreakerTransition>> {
    super::write_tx(conn, |tx| {
        let mut breaker = load_breaker(tx, GLOBAL_SCOPE)?;
        let t = breaker.reset(now);
        if let Some(t) = &t {
            record_manual(tx, GLOBAL_SCOPE, t, Some(actor), None)?;
        }
        Ok(t)
    })
}

/// Whether an operator stopped trading (pause or kill switch; a breaker tripped by a loss rule
/// is not a stop: it still lets closes through and recovers by itself).
pub fn is_manually_stopped(conn: &Connection) -> StoreResult<bool> {
    Ok(load_breaker(conn, GLOBAL_SCOPE)?.is_manually_stopped())
}

/// A history row as read: scope, state, reason, changed_at, until, actor, note.
type RawRecord = (
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_record(raw: RawRecord) -> StoreResult<BreakerRecord> {
    let (scope, state, reason, changed_at, until, actor, note) = raw;
    Ok(BreakerRecord {
        actor,
        note,
        state: super::codec::parse_col("circuit_breaker_state.state", &state)?,
        reason: reason
            .map(|r| super::codec::parse_col("circuit_breaker_state.reason", &r))
            .transpose()?,
        scope,
        changed_at,
        until,
    })
}

const RECORD_COLUMNS: &str = "scope, state, reason, changed_at, until, actor, note";

/// Transitions of `scope`, latest first (by insertion), at most `limit`.
pub fn breaker_history(
    conn: &Connection,
    scope: &str,
    limit: usize,
) -> StoreResult<Vec<BreakerRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM circuit_breaker_state
         WHERE scope = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![scope, limit], record_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_record).collect()
}

/// Transitions of every scope, latest first, at most `limit` (the TUI's breaker history).
pub fn all_history(conn: &Connection, limit: usize) -> StoreResult<Vec<BreakerRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM circuit_breaker_state ORDER BY id DESC LIMIT ?1"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map([limit], record_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_record).collect()
}

/// Whether the breaker of `scope` has ever moved (a fresh database says "never tripped").
pub fn ever_moved(conn: &Connection, scope: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM circuit_breaker_state WHERE scope = ?1 LIMIT 1",
            [scope],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The breaker of `scope` as last persisted; Active when it never moved.
pub fn load_breaker(conn: &Connection, scope: &str) -> StoreResult<CircuitBreaker> {
    Ok(match breaker_history(conn, scope, 1)?.into_iter().next() {
        Some(r) => CircuitBreaker {
            state: r.state,
            reason: r.reason,
            since: r.changed_at,
            until: r.until,
        },
        None => CircuitBreaker::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rust_decimal_macros::dec;

    const T0: TimestampMs = 1_795_514_400_000;

    fn add_strategy(conn: &Connection, name: &str) {
        conn.execute(
            "INSERT INTO strategies (name, created_at, updated_at) VALUES (?1, 0, 0)",
            [name],
        )
        .unwrap();
    }

    #[test]
    fn config_falls_back_from_strategy_to_stored_default_to_settings() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        add_strategy(conn, "trend");
        let base = RiskConfig::default();
        assert_eq!(
            load_config(conn, None, &base).unwrap(),
            (base.clone(), ConfigSource::Settings)
        );
        let default = base.with_value("max_daily_loss_pct", "2").unwrap();
        save_config(conn, None, &default, T0).unwrap();
        // saving twice keeps one default row
        save_config(conn, None, &default, T0 + 1).unwrap();
        assert_eq!(
            load_config(conn, Some("trend"), &base).unwrap(),
            (default.clone(), ConfigSource::StoredDefault)
        );
        let trend = default.with_value("heat_cap_pct", "4").unwrap();
        save_config(conn, Some("trend"), &trend, T0).unwrap();
        let (c, src) = load_config(conn, Some("trend"), &base).unwrap();
        assert_eq!((c.heat_cap_pct, c.max_daily_loss_pct), (dec!(4), dec!(2)));
        assert_eq!(src, ConfigSource::Strategy);
        assert_eq!(load_config(conn, None, &base).unwrap().0, default);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM risk_configs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        assert!(matches!(
            load_config(conn, Some("nope"), &base),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn kill_stamped_earlier_than_a_resume_still_halts_trading() {
        // Symptom 3: the demo stamped the kill with the replay's time (January 2025), earlier
        // than a wall-clock resume from the CLI; the resume "won" and a BUY went through.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let config = RiskConfig::default();
        let (wall, replay) = (T0, 1_736_899_200_000);
        let mut b = load_breaker(c, GLOBAL_SCOPE).unwrap();
        record_transition(c, GLOBAL_SCOPE, &b.kill(&config, wall)).unwrap();
        let mut b = load_breaker(c, GLOBAL_SCOPE).unwrap();
        record_transition(c, GLOBAL_SCOPE, &b.reset(wall + 1).unwrap()).unwrap();
        let mut b = load_breaker(c, GLOBAL_SCOPE).unwrap();
        assert!(b.is_active());
        record_transition(c, GLOBAL_SCOPE, &b.kill(&config, replay)).unwrap();
        let b = load_breaker(c, GLOBAL_SCOPE).unwrap();
        assert_eq!(b.state, BreakerState::Halted);
        assert_eq!(b.reason, Some(BreakerReason::ManualKill));
        assert_eq!(b.since, replay);
    }

    #[test]
    fn breaker_state_and_history_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let config = RiskConfig::default();
        {
            let store = Store::open(&path).unwrap();
            let mut b = load_breaker(store.conn(), GLOBAL_SCOPE).unwrap();
            assert!(b.is_active());
            let t = b.kill(&config, T0);
            record_transition(store.conn(), GLOBAL_SCOPE, &t).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let mut b = load_breaker(store.conn(), GLOBAL_SCOPE).unwrap();
        assert_eq!(b.state, BreakerState::Halted);
        assert_eq!(b.reason, Some(BreakerReason::ManualKill));
        assert_eq!(b.since, T0);
        // another scope is untouched
        assert!(load_breaker(store.conn(), "trend").unwrap().is_active());
        let t = b.reset(T0 + 5).unwrap();
        record_transition(store.conn(), GLOBAL_SCOPE, &t).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(
            load_breaker(store.conn(), GLOBAL_SCOPE)
                .unwrap()
                .is_active()
        );
        let history = breaker_history(store.conn(), GLOBAL_SCOPE, 10).unwrap();
        let states: Vec<_> = history.iter().map(|r| (r.state, r.reason)).collect();
        assert_eq!(
            states,
            vec![
                (BreakerState::Active, Some(BreakerReason::ManualReset)),
                (BreakerState::Halted, Some(BreakerReason::ManualKill)),
            ]
        );
    }

    #[test]
    fn a_cooldown_deadline_survives_a_restart_and_still_recovers() {
        use crate::domain::Quote;
        use crate::domain::risk::{BreakerInputs, ClosedTrade};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let config = RiskConfig::default();
        let losses: Vec<ClosedTrade> = (1..=3)
            .map(|k| ClosedTrade {
                pnl: Quote(dec!(-10)),
                closed_at: T0 - k,
            })
            .collect();
        let inputs = BreakerInputs {
            daily_loss_pct: dec!(0.3),
            drawdown_pct: dec!(0.3),
            closed_trades: &losses,
        };
        {
            let store = Store::open(&path).unwrap();
            let mut b = load_breaker(store.conn(), GLOBAL_SCOPE).unwrap();
            for t in b.evaluate(&inputs, &config, T0) {
                record_transition(store.conn(), GLOBAL_SCOPE, &t).unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let mut b = load_breaker(store.conn(), GLOBAL_SCOPE).unwrap();
        assert_eq!(b.state, BreakerState::ReduceOnly);
        assert_eq!(b.until, Some(T0 + 3_600_000));
        // same losses after the restart: no new trip, and the cooldown still ends on time
        assert!(b.evaluate(&inputs, &config, T0 + 3_599_999).is_empty());
        let ts = b.evaluate(&inputs, &config, T0 + 3_600_000);
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert_eq!(ts[0].to, BreakerState::Active);
    }
}
