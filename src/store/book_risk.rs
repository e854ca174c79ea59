//! Each strategy's book as its own limits and circuit breaker see it (`BookRisk`, part of the
//! account read model): its equity, today's loss and its drawdown from its own high-water mark
//! (`domain::risk::measure_book` over the rows the engine writes), and its breaker, kept in
//! `circuit_breaker_state` under the strategy's name (`book_scope`). The book's PnL peak
//! (`book_pnl_peaks`) is what the drawdown counts from.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::codec::{dec_from_sql, dec_to_sql};
use super::positions::{self, BookFigures};
use super::{StoreResult, risk, strategies};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Quote};
use crate::domain::risk::{BookInputs, BookMeasures, CircuitBreaker, measure_book};
use crate::domain::trading::{Allocation, Position};

/// The breaker scope of strategy `name`'s book: its name (`risk::GLOBAL_SCOPE` is the
/// account's, a name no strategy may take).
pub fn book_scope(name: &str) -> &str {
    name
}

/// The highest PnL recorded for the book of `strategy_id` on `connection`.
pub fn pnl_peak(
    conn: &Connection,
    connection: &str,
    strategy_id: i64,
) -> StoreResult<Option<Quote>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT pnl FROM book_pnl_peaks WHERE connection = ?1 AND strategy_id = ?2",
            params![connection, strategy_id],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| dec_from_sql("book_pnl_peaks.pnl", &t).map(Quote))
        .transpose()
}

/// Keep `pnl` as the book's peak if it is a new high (or the first one seen).
pub fn record_pnl(
    conn: &Connection,
    connection: &str,
    strategy_id: i64,
    pnl: Quote,
    at_ms: TimestampMs,
) -> StoreResult<()> {
    super::write_tx(conn, |tx| {
        if pnl_peak(tx, connection, strategy_id)?.is_some_and(|p| p >= pnl) {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO book_pnl_peaks (connection, strategy_id, pnl, taken_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connection, strategy_id) DO UPDATE SET pnl = excluded.pnl,
                                                                taken_at = excluded.taken_at",
            params![connection, strategy_id, dec_to_sql(pnl.get()), at_ms],
        )?;
        Ok(())
    })
}

/// The measures of one book from its rows: open positions at `mark_of` (the stored mark, else
/// the entry, unless the caller knows better), today's and all realised PnL, the stored peak.
pub fn measure(
    conn: &Connection,
    connection: &str,
    strategy_id: i64,
    account_equity: Quote,
    figures: &BookFigures,
    day_start_ms: TimestampMs,
    mark_of: impl Fn(&positions::PositionRow) -> Price,
) -> StoreResult<BookMeasures> {
    let marked: Vec<(&Position, Price)> = figures
        .open
        .iter()
        .map(|row| (&row.position, mark_of(row)))
        .collect();
    Ok(measure_book(&BookInputs {
        account_equity,
        allocation: strategies::allocation_of(conn, strategy_id)?,
        open: &marked,
        realised_closed_today: figures.realised_since,
        realised_total: figures.realised_total,
        day_start_ms,
        pnl_peak: pnl_peak(conn, connection, strategy_id)?,
    }))
}

/// The stored mark of a position, else its entry.
pub fn stored_mark(row: &positions::PositionRow) -> Price {
    row.mark_price.unwrap_or(row.position.entry_price)
}

/// One strategy's book as the faces show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookRisk {
    pub strategy_id: i64,
    pub strategy: String,
    /// Its capital (`None`: the whole account).
    pub allocation: Option<Allocation>,
    pub equity: Quote,
    /// Today's PnL (realised + unrealised, net of fees).
    pub day_pnl: Quote,
    /// Today's loss as % of the book's start of day (positive = losing).
    pub daily_loss_pct: rust_decimal::Decimal,
    /// Drawdown from the book's own high-water mark, %.
    pub drawdown_pct: rust_decimal::Decimal,
    pub peak_equity: Quote,
    /// The book's breaker as last persisted.
    pub breaker: CircuitBreaker,
    /// Whether the book's breaker ever moved.
    pub breaker_ever_moved: bool,
}

impl BookRisk {
    /// "HALTED (daily_loss_limit) since …" or "never tripped".
    pub fn describe_breaker(&self, time: impl Fn(TimestampMs) -> String) -> String {
        super::account::describe_breaker(&self.breaker, self.breaker_ever_moved, time)
    }
}

/// Every strategy trading on `connection` (a strategy without a connection trades on the paper
/// exchange, `paper`), by name.
pub fn strategies_on(
    conn: &Connection,
    connection: &str,
) -> StoreResult<Vec<strategies::StrategyRow>> {
    let connections = strategies::list_connections(conn)?;
    Ok(strategies::list_strategies(conn)?
        .into_iter()
        .filter(|s| match s.connection_id {
            None => connection == "paper",
            Some(id) => connections
                .iter()
                .any(|c| c.id == id && c.name == connection),
        })
        .collect())
}

/// Each strategy's book on `connection`, its positions at their stored marks, the account's
/// equity `account_equity` under any percentage allocation.
pub fn load(
    conn: &Connection,
    connection: &str,
    account_equity: Quote,
    day_start_ms: TimestampMs,
) -> StoreResult<Vec<BookRisk>> {
    let mut out = Vec::new();
    for s in strategies_on(conn, connection)? {
        let figures = positions::book_figures(conn, connection, Some(s.id), day_start_ms)?;
        let m = measure(
            conn,
            connection,
            s.id,
            account_equity,
            &figures,
            day_start_ms,
            stored_mark,
        )?;
        let scope = book_scope(&s.name);
        out.push(BookRisk {
            strategy_id: s.id,
            allocation: strategies::allocation_of(conn, s.id)?,
            equity: m.equity,
            day_pnl: m.realised_today + m.unrealised,
            daily_loss_pct: m.daily_loss_pct(),
            drawdown_pct: m.drawdown_pct(),
            peak_equity: m.peak_equity,
            breaker: risk::load_breaker(conn, scope)?,
            breaker_ever_moved: risk::ever_moved(conn, scope)?,
            strategy: s.name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rust_decimal_macros::dec;

    #[test]
    fn the_peak_only_rises_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let store = Store::open(&path).unwrap();
            let c = store.conn();
            c.execute(
                "INSERT INTO strategies (name, created_at, updated_at) VALUES ('fast', 0, 0)",
                [],
            )
            .unwrap();
            assert_eq!(pnl_peak(c, "paper", 1).unwrap(), None);
            record_pnl(c, "paper", 1, Quote(dec!(-5)), 1).unwrap();
            record_pnl(c, "paper", 1, Quote(dec!(120)), 2).unwrap();
            record_pnl(c, "paper", 1, Quote(dec!(80)), 3).unwrap();
            // another connection's book of the same strategy is apart
            record_pnl(c, "binance", 1, Quote(dec!(7)), 3).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            pnl_peak(store.conn(), "paper", 1).unwrap(),
            Some(Quote(dec!(120)))
        );
        assert_eq!(
            pnl_peak(store.conn(), "binance", 1).unwrap(),
            Some(Quote(dec!(7)))
        );
    }
}
