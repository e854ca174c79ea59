//! Positions (`positions`): open and closed, exact decimals, one open row per book and
//! (connection, symbol). A book is a strategy's (`strategy_id`) or the default book (NULL):
//! trades made without a strategy and every position open before books existed (migration
//! 0012). What the exchange holds beyond every book's positions is "unmanaged"
//! (`unmanaged_holdings`, written by reconciliation).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::codec::{dec_from_sql, dec_to_sql, opt_dec_from_sql, parse_col};
use super::{StoreError, StoreResult};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::trading::{Position, PositionSide};

/// How the default book (positions with no strategy) is named on every face.
pub const DEFAULT_BOOK: &str = "default";

/// A book: the owning strategy's id, `None` for the default book.
pub type BookId = Option<i64>;

/// A stored position with its row id and bookkeeping columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PositionRow {
    pub id: i64,
    pub connection: String,
    /// The book it belongs to: the owning strategy, `None` for the default book.
    pub strategy_id: BookId,
    /// The owning strategy's name (`None` for the default book).
    pub strategy: Option<String>,
    pub position: Position,
    pub mark_price: Option<Price>,
    pub unrealized_pnl: Quote,
}

fn side_to_sql(side: PositionSide) -> &'static str {
    match side {
        PositionSide::Long => "LONG",
        PositionSide::Short => "SHORT",
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<PositionRow, StoreError>> {
    let id: i64 = r.get("id")?;
    let connection: String = r.get("connection")?;
    let strategy_id: Option<i64> = r.get("strategy_id")?;
    let strategy: Option<String> = r.get("strategy_name")?;
    let symbol: String = r.get("symbol")?;
    let side: String = r.get("side")?;
    let entry: String = r.get("entry_price")?;
    let qty: String = r.get("quantity")?;
    let stop: Option<String> = r.get("stop_loss")?;
    let target: Option<String> = r.get("take_profit")?;
    let mark: Option<String> = r.get("mark_price")?;
    let upnl: String = r.get("unrealized_pnl")?;
    let rpnl: String = r.get("realized_pnl")?;
    let fees: String = r.get("fees_paid")?;
    let opened_at: i64 = r.get("opened_at")?;
    let closed_at: Option<i64> = r.get("closed_at")?;
    Ok((|| {
        let side = match side.as_str() {
            "LONG" => PositionSide::Long,
            "SHORT" => PositionSide::Short,
            other => {
                return Err(StoreError::Corrupt {
                    column: "positions.side",
                    value: other.into(),
                    reason: "not LONG/SHORT".into(),
                });
            }
        };
        Ok(PositionRow {
            id,
            connection,
            // A strategy_id whose strategy is gone still names a book of its own.
            strategy: strategy.or_else(|| strategy_id.map(|id| format!("#{id}"))),
            strategy_id,
            position: Position {
                symbol: parse_col("positions.symbol", &symbol)?,
                side,
                quantity: Qty(dec_from_sql("positions.quantity", &qty)?),
                entry_price: Price(dec_from_sql("positions.entry_price", &entry)?),
                stop_loss: opt_dec_from_sql("positions.stop_loss", stop)?.map(Price),
                take_profit: opt_dec_from_sql("positions.take_profit", target)?.map(Price),
                realized_pnl: Quote(dec_from_sql("positions.realized_pnl", &rpnl)?),
                fees_paid: Quote(dec_from_sql("positions.fees_paid", &fees)?),
                opened_at,
                closed_at,
            },
            mark_price: opt_dec_from_sql("positions.mark_price", mark)?.map(Price),
            // Rows closed before the write side zeroed it keep their last mark's figure: a
            // closed position has no unrealised PnL whatever the column says.
            unrealized_pnl: if closed_at.is_some() {
                Quote::ZERO
            } else {
                Quote(dec_from_sql("positions.unrealized_pnl", &upnl)?)
            },
        })
    })())
}

impl PositionRow {
    /// The book's name as faces show it: the strategy's, or `default`.
    pub fn book(&self) -> &str {
        self.strategy.as_deref().unwrap_or(DEFAULT_BOOK)
    }
}

const COLUMNS: &str = "id, connection, strategy_id,
    (SELECT name FROM strategies s WHERE s.id = positions.strategy_id) AS strategy_name, symbol, side, entry_price, quantity, stop_loss, take_profit, mark_price, unrealized_pnl, realized_pnl, fees_paid, opened_at, closed_at";

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Result<PositionRow, StoreError>>>,
) -> StoreResult<Vec<PositionRow>> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// Record the dust of an open position (what the exchange will not sell; see
/// `domain::trading::plan::sellable_part`), as the engine judged it when protecting it.
pub fn set_dust(conn: &Connection, id: i64, dust: Qty) -> StoreResult<()> {
    conn.execute(
        "UPDATE positions SET dust = ?1 WHERE id = ?2 AND (dust IS NULL OR dust <> ?1)",
        params![dec_to_sql(dust.get()), id],
    )?;
    Ok(())
}

/// The dust last recorded for a position (zero when never judged).
pub fn dust_of(conn: &Connection, id: i64) -> StoreResult<Qty> {
    let text: Option<String> = conn
        .query_row("SELECT dust FROM positions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    Ok(Qty(
        opt_dec_from_sql("positions.dust", text)?.unwrap_or_default()
    ))
}

/// Insert a newly opened position; returns its id.
pub fn insert(
    conn: &Connection,
    connection: &str,
    strategy_id: Option<i64>,
    p: &Position,
    now_ms: i64,
) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO positions (connection, strategy_id, symbol, side, entry_price, quantity, stop_loss, take_profit, realized_pnl, fees_paid, status, opened_at, closed_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            connection,
            strategy_id,
            p.symbol.as_str(),
            side_to_sql(p.side),
            dec_to_sql(p.entry_price.get()),
            dec_to_sql(p.quantity.get()),
            p.stop_loss.map(|v| dec_to_sql(v.get())),
            p.take_profit.map(|v| dec_to_sql(v.get())),
            dec_to_sql(p.realized_pnl.get()),
            dec_to_sql(p.fees_paid.get()),
            if p.closed_at.is_some() { "closed" } else { "open" },
            p.opened_at,
            p.closed_at,
            now_ms,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Write the position's state back (after a fill, a stop move or a close).
pub fn update(conn: &Connection, id: i64, p: &Position, now_ms: i64) -> StoreResult<()> {
    let n = conn.execute(
        "UPDATE positions SET entry_price = ?1, quantity = ?2, stop_loss = ?3, take_profit = ?4, realized_pnl = ?5, fees_paid = ?6,
            status = ?7, closed_at = ?8, updated_at = ?9,
            -- a closed position has nothing left to mark
            unrealized_pnl = CASE WHEN ?8 IS NULL THEN unrealized_pnl ELSE '0' END
         WHERE id = ?10",
        params![
            dec_to_sql(p.entry_price.get()),
            dec_to_sql(p.quantity.get()),
            p.stop_loss.map(|v| dec_to_sql(v.get())),
            p.take_profit.map(|v| dec_to_sql(v.get())),
            dec_to_sql(p.realized_pnl.get()),
            dec_to_sql(p.fees_paid.get()),
            if p.closed_at.is_some() { "closed" } else { "open" },
            p.closed_at,
            now_ms,
            id,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("position {id}")));
    }
    Ok(())
}

/// Record a new mark price and the unrealised PnL it implies.
pub fn mark(
    conn: &Connection,
    id: i64,
    mark: Price,
    unrealized: Quote,
    now_ms: i64,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE positions SET mark_price = ?1, unrealized_pnl = ?2, updated_at = ?3 WHERE id = ?4",
        params![
            dec_to_sql(mark.get()),
            dec_to_sql(unrealized.get()),
            now_ms,
            id
        ],
    )?;
    Ok(())
}

pub fn open_positions(conn: &Connection) -> StoreResult<Vec<PositionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE status = 'open' ORDER BY opened_at"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    collect(rows)
}

/// The open position of one book (`book`: a strategy, `None` the default book) in `symbol`.
pub fn open_position(
    conn: &Connection,
    connection: &str,
    symbol: &str,
    book: BookId,
) -> StoreResult<Option<PositionRow>> {
    // `IS` compares NULL with NULL as equal: the default book.
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE status = 'open' AND connection = ?1 AND symbol = ?2
         AND strategy_id IS ?3 ORDER BY opened_at DESC, id DESC LIMIT 1"
    ))?;
    stmt.query_row(params![connection, symbol, book], from_row)
        .optional()?
        .transpose()
}

/// Every book's open position in `symbol` on the connection, oldest first.
pub fn open_in_symbol(
    conn: &Connection,
    connection: &str,
    symbol: &str,
) -> StoreResult<Vec<PositionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE status = 'open' AND connection = ?1 AND symbol = ?2
         ORDER BY opened_at, id"
    ))?;
    let rows = stmt.query_map(params![connection, symbol], from_row)?;
    collect(rows)
}

pub fn closed_positions(conn: &Connection, limit: usize) -> StoreResult<Vec<PositionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE status = 'closed' ORDER BY closed_at DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], from_row)?;
    collect(rows)
}

/// One position by id.
pub fn get(conn: &Connection, id: i64) -> StoreResult<Option<PositionRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM positions WHERE id = ?1"))?;
    stmt.query_row([id], from_row).optional()?.transpose()
}

/// Open positions of one connection, oldest first.
pub fn open_for_connection(conn: &Connection, connection: &str) -> StoreResult<Vec<PositionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE status = 'open' AND connection = ?1 ORDER BY opened_at"
    ))?;
    let rows = stmt.query_map([connection], from_row)?;
    collect(rows)
}

/// Realised PnL (net of fees) of the connection's positions closed at or after `since`.
pub fn realized_since(conn: &Connection, connection: &str, since: i64) -> StoreResult<Quote> {
    let mut stmt = conn.prepare(
        "SELECT realized_pnl FROM positions WHERE connection = ?1 AND status = 'closed' AND closed_at >= ?2",
    )?;
    let rows = stmt.query_map(params![connection, since], |r| r.get::<_, String>(0))?;
    let mut total = Quote::ZERO;
    for r in rows {
        total += Quote(dec_from_sql("positions.realized_pnl", &r?)?);
    }
    Ok(total)
}

/// Realised PnL (net of every fee) of all the connection's positions, open and closed.
pub fn realized_total(conn: &Connection, connection: &str) -> StoreResult<Quote> {
    let mut stmt = conn.prepare("SELECT realized_pnl FROM positions WHERE connection = ?1")?;
    let rows = stmt.query_map([connection], |r| r.get::<_, String>(0))?;
    let mut total = Quote::ZERO;
    for r in rows {
        total += Quote(dec_from_sql("positions.realized_pnl", &r?)?);
    }
    Ok(total)
}

/// How many positions of the connection are closed.
pub fn closed_count(conn: &Connection, connection: &str) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM positions WHERE connection = ?1 AND status = 'closed'",
        [connection],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The latest position (open or closed) of the connection on `symbol`.
pub fn latest_for_symbol(
    conn: &Connection,
    connection: &str,
    symbol: &str,
) -> StoreResult<Option<PositionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE connection = ?1 AND symbol = ?2 ORDER BY id DESC LIMIT 1"
    ))?;
    stmt.query_row(params![connection, symbol], from_row)
        .optional()?
        .transpose()
}

/// Closed positions of the connection as closed trades, oldest first (the breaker's and
/// Kelly's input).
pub fn closed_trades(
    conn: &Connection,
    connection: &str,
) -> StoreResult<Vec<crate::domain::risk::ClosedTrade>> {
    let mut stmt = conn.prepare(
        "SELECT realized_pnl, closed_at FROM positions WHERE connection = ?1 AND status = 'closed'
         ORDER BY closed_at, id",
    )?;
    let rows = stmt.query_map([connection], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (pnl, closed_at) = r?;
        out.push(crate::domain::risk::ClosedTrade {
            pnl: Quote(dec_from_sql("positions.realized_pnl", &pnl)?),
            closed_at,
        });
    }
    Ok(out)
}

/// One book's figures on the connection, for its own risk limits: its open positions, its
/// realised PnL (closed at or after `since`, and in all), and its closed trades oldest first.
pub struct BookFigures {
    pub open: Vec<PositionRow>,
    pub realised_since: Quote,
    pub realised_total: Quote,
    pub closed_trades: Vec<crate::domain::risk::ClosedTrade>,
}

/// `BookFigures` of `book` on the connection.
pub fn book_figures(
    conn: &Connection,
    connection: &str,
    book: BookId,
    since: i64,
) -> StoreResult<BookFigures> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM positions WHERE connection = ?1 AND strategy_id IS ?2
         ORDER BY closed_at, id"
    ))?;
    let rows = collect(stmt.query_map(params![connection, book], from_row)?)?;
    let mut figures = BookFigures {
        open: Vec::new(),
        realised_since: Quote::ZERO,
        realised_total: Quote::ZERO,
        closed_trades: Vec::new(),
    };
    for row in rows {
        figures.realised_total += row.position.realized_pnl;
        match row.position.closed_at {
            Some(closed_at) => {
                if closed_at >= since {
                    figures.realised_since += row.position.realized_pnl;
                }
                figures
                    .closed_trades
                    .push(crate::domain::risk::ClosedTrade {
                        pnl: row.position.realized_pnl,
                        closed_at,
                    });
            }
            None => figures.open.push(row),
        }
    }
    Ok(figures)
}

/// A base asset the exchange holds beyond the sum of every book's open positions in it: no
/// strategy owns it, so none sells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmanagedHolding {
    pub asset: String,
    /// Free + locked on the exchange.
    pub exchange_total: Qty,
    /// The sum of every book's open positions in the asset.
    pub books_total: Qty,
    pub checked_at: i64,
}

impl UnmanagedHolding {
    /// What belongs to no book.
    pub fn surplus(&self) -> Qty {
        Qty(self.exchange_total.get() - self.books_total.get())
    }
}

/// Replace the connection's unmanaged holdings with what reconciliation just measured.
pub fn replace_unmanaged(
    conn: &Connection,
    connection: &str,
    holdings: &[UnmanagedHolding],
) -> StoreResult<()> {
    super::write_tx::<_, StoreError>(conn, |c| {
        c.execute(
            "DELETE FROM unmanaged_holdings WHERE connection = ?1",
            [connection],
        )?;
        for h in holdings {
            c.execute(
                "INSERT INTO unmanaged_holdings (connection, asset, exchange_total, books_total, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    connection,
                    h.asset,
                    dec_to_sql(h.exchange_total.get()),
                    dec_to_sql(h.books_total.get()),
                    h.checked_at
                ],
            )?;
        }
        Ok(())
    })
}

/// The connection's unmanaged holdings as reconciliation last measured them, by asset.
pub fn unmanaged(conn: &Connection, connection: &str) -> StoreResult<Vec<UnmanagedHolding>> {
    let mut stmt = conn.prepare(
        "SELECT asset, exchange_total, books_total, checked_at FROM unmanaged_holdings
         WHERE connection = ?1 ORDER BY asset",
    )?;
    let rows = stmt.query_map([connection], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (asset, exchange_total, books_total, checked_at) = row?;
        out.push(UnmanagedHolding {
            asset,
            exchange_total: Qty(dec_from_sql(
                "unmanaged_holdings.exchange_total",
                &exchange_total,
            )?),
            books_total: Qty(dec_from_sql(
                "unmanaged_holdings.books_total",
                &books_total,
            )?),
            checked_at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Symbol;
    use crate::store::Store;
    use rust_decimal_macros::dec;

    fn position() -> Position {
        Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty(dec!(0.123456789012345678)),
            entry_price: Price(dec!(93576.123456789012345678)),
            stop_loss: Some(Price(dec!(91000.01))),
            take_profit: None,
            realized_pnl: Quote(dec!(-0.000000000000000001)),
            fees_paid: Quote(dec!(0.000000000000000001)),
            opened_at: 1_735_689_600_000,
            closed_at: None,
        }
    }

    #[test]
    fn closed_positions_show_no_unrealised_pnl() {
        // Symptom 8: `positions --closed` kept the last mark's unrealised PnL (qty 0, -22.44).
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let mut p = position();
        let id = insert(c, "paper", None, &p, 1).unwrap();
        mark(c, id, Price(dec!(93400)), Quote(dec!(-22.44)), 2).unwrap();
        p.quantity = Qty::ZERO;
        p.closed_at = Some(3);
        update(c, id, &p, 3).unwrap();
        assert_eq!(
            closed_positions(c, 10).unwrap()[0].unrealized_pnl,
            Quote::ZERO
        );
        let stored: String = c
            .query_row(
                "SELECT unrealized_pnl FROM positions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, "0");
        // A row closed by an older build, its column still stale, reads as zero too.
        c.execute(
            "UPDATE positions SET unrealized_pnl = '-22.44' WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert_eq!(get(c, id).unwrap().unwrap().unrealized_pnl, Quote::ZERO);
    }

    #[test]
    fn positions_round_trip_exactly_and_close() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let mut p = position();
        let id = insert(c, "paper", None, &p, 1).unwrap();
        let open = open_position(c, "paper", "BTCUSDT", None).unwrap().unwrap();
        assert_eq!(open.position, p);
        mark(c, id, Price(dec!(94000)), Quote(dec!(52.29)), 2).unwrap();
        assert_eq!(
            open_positions(c).unwrap()[0].mark_price,
            Some(Price(dec!(94000)))
        );
        p.quantity = Qty::ZERO;
        p.closed_at = Some(3);
        update(c, id, &p, 3).unwrap();
        assert!(open_positions(c).unwrap().is_empty());
        assert_eq!(
            closed_positions(c, 10).unwrap()[0].position.closed_at,
            Some(3)
        );
        assert!(matches!(
            update(c, 999, &p, 4),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn each_book_has_its_own_open_position_in_a_symbol() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        c.execute_batch(
            "INSERT INTO strategies (id, name, created_at, updated_at) VALUES (1, 'fast', 0, 0);",
        )
        .unwrap();
        let p = position();
        let default = insert(c, "paper", None, &p, 1).unwrap();
        let fast = insert(c, "paper", Some(1), &p, 2).unwrap();
        let of_fast = open_position(c, "paper", "BTCUSDT", Some(1))
            .unwrap()
            .unwrap();
        assert_eq!((of_fast.id, of_fast.book()), (fast, "fast"));
        let of_default = open_position(c, "paper", "BTCUSDT", None).unwrap().unwrap();
        assert_eq!((of_default.id, of_default.book()), (default, DEFAULT_BOOK));
        assert!(
            open_position(c, "paper", "BTCUSDT", Some(2))
                .unwrap()
                .is_none()
        );
        let all: Vec<i64> = open_in_symbol(c, "paper", "BTCUSDT")
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(all, vec![default, fast]);
    }

    #[test]
    fn unmanaged_holdings_are_replaced_by_each_measurement() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let h = UnmanagedHolding {
            asset: "BTC".into(),
            exchange_total: Qty(dec!(0.5)),
            books_total: Qty(dec!(0.12)),
            checked_at: 7,
        };
        replace_unmanaged(c, "paper", std::slice::from_ref(&h)).unwrap();
        assert_eq!(unmanaged(c, "paper").unwrap(), vec![h.clone()]);
        assert_eq!(h.surplus(), Qty(dec!(0.38)));
        replace_unmanaged(c, "paper", &[]).unwrap();
        assert!(unmanaged(c, "paper").unwrap().is_empty());
    }
}
