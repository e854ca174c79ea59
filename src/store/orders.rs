//! Orders and their fills (`orders` / `trades` tables). The order row is written with status
//! `PENDING_NEW` before the request leaves, so a crash or a lost response can always be
//! reconciled by client order id.

use super::codec::{dec_from_sql, dec_to_sql, opt_dec_from_sql, parse_col};
use super::{StoreError, StoreResult};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::trading::order::{Fill, Order, OrderPurpose, OrderRequest, OrderStatus};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

/// An order row as stored: the order plus where it was sent and the last error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredOrder {
    pub id: i64,
    pub connection: String,
    pub order: Order,
    pub error: Option<String>,
    pub purpose: OrderPurpose,
    pub position_id: Option<i64>,
    pub order_list_id: Option<String>,
    pub strategy_id: Option<i64>,
    pub decision_id: Option<i64>,
    /// An entry's stop and target, stored before it was sent (see `OrderLinks`).
    pub protect_stop: Option<Price>,
    pub protect_target: Option<Price>,
    /// For an entry: how much of its executed quantity is booked into its position so far (a
    /// limit entry fills in parts, each booked and protected as it is learnt of).
    pub booked_quantity: Qty,
}

impl StoredOrder {
    /// An entry's executed quantity not booked into its position yet.
    pub fn unbooked_quantity(&self) -> Qty {
        if self.purpose != OrderPurpose::Entry {
            return Qty::ZERO;
        }
        (self.order.filled_quantity - self.booked_quantity).max(Qty::ZERO)
    }
}

/// What an order is for, written with the row before the request leaves so a restart knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderLinks {
    /// Entry unless said otherwise.
    pub purpose: OrderPurpose,
    pub position_id: Option<i64>,
    pub order_list_id: Option<String>,
    pub strategy_id: Option<i64>,
    /// For an entry: the stop and target its position is to be protected with, so a fill
    /// learnt of after a crash can still be protected.
    pub protect_stop: Option<Price>,
    pub protect_target: Option<Price>,
}

/// Record an order before it is sent. Fails with `Conflict` if the client id was used before:
/// ids are never reused, because Binance would accept a reused id as a second order once the
/// first is closed.
pub fn insert_pending(
    conn: &Connection,
    request: &OrderRequest,
    connection: &str,
    now: TimestampMs,
) -> StoreResult<i64> {
    insert_pending_linked(conn, request, connection, &OrderLinks::default(), now)
}

/// `insert_pending` with the order's purpose and the position/list/strategy it belongs to.
pub fn insert_pending_linked(
    conn: &Connection,
    request: &OrderRequest,
    connection: &str,
    links: &OrderLinks,
    now: TimestampMs,
) -> StoreResult<i64> {
    let purpose = links.purpose.as_str();
    let result = conn.execute(
        "INSERT INTO orders (client_order_id, connection, symbol, side, order_type, time_in_force,
             status, price, stop_price, quantity, created_at, updated_at,
             purpose, position_id, order_list_id, strategy_id, protect_stop, protect_target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            request.client_order_id,
            connection,
            request.symbol.as_str(),
            request.side.as_str(),
            request.order_type.as_str(),
            request.time_in_force.map(|t| t.as_str()),
            OrderStatus::PendingNew.as_str(),
            request.price.map(|p| dec_to_sql(p.get())),
            request.stop_price.map(|p| dec_to_sql(p.get())),
            dec_to_sql(request.quantity.get()),
            now,
            purpose,
            links.position_id,
            links.order_list_id,
            links.strategy_id,
            links.protect_stop.map(|p| dec_to_sql(p.get())),
            links.protect_target.map(|p| dec_to_sql(p.get())),
        ],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict(format!(
                "an order with client id {} already exists; use a new id",
                request.client_order_id
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Store what the exchange says about the order.
pub fn update_from_exchange(conn: &Connection, order: &Order, now: TimestampMs) -> StoreResult<()> {
    let changed = conn.execute(
        "UPDATE orders SET exchange_order_id = ?2, status = ?3, filled_quantity = ?4,
             cumulative_quote = ?5, average_price = ?6, error = NULL, updated_at = ?7
         WHERE client_order_id = ?1",
        params![
            order.client_order_id,
            order.exchange_order_id,
            order.status.as_str(),
            dec_to_sql(order.filled_quantity.get()),
            dec_to_sql(order.cumulative_quote.get()),
            order.average_fill_price().map(|p| dec_to_sql(p.get())),
            now,
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "order {}",
            order.client_order_id
        )));
    }
    Ok(())
}

/// Set the status (and an explanation) without exchange data, e.g. `UNKNOWN` or `REJECTED`.
pub fn mark(
    conn: &Connection,
    client_order_id: &str,
    status: OrderStatus,
    error: Option<&str>,
    now: TimestampMs,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE orders SET status = ?2, error = ?3, updated_at = ?4 WHERE client_order_id = ?1",
        params![client_order_id, status.as_str(), error, now],
    )?;
    Ok(())
}

/// Store fills of an order; a fill already stored (same trade id) is ignored.
pub fn insert_fills(conn: &Connection, order_row_id: i64, fills: &[Fill]) -> StoreResult<()> {
    for f in fills {
        insert_fill(conn, order_row_id, f)?;
    }
    Ok(())
}

/// Store one fill; `false` if this order already has a fill with the same trade id, so a
/// replayed execution report is recognised and not counted twice.
pub fn insert_fill(conn: &Connection, order_row_id: i64, f: &Fill) -> StoreResult<bool> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO trades (order_id, exchange_trade_id, symbol, side, price, quantity,
             fee, fee_asset, is_maker, executed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            order_row_id,
            f.trade_id,
            f.symbol.as_str(),
            f.side.as_str(),
            dec_to_sql(f.price.get()),
            dec_to_sql(f.quantity.get()),
            dec_to_sql(f.fee.get()),
            f.fee_asset,
            f.is_maker,
            f.time,
        ],
    )?;
    Ok(inserted == 1)
}

/// The strategy an order was placed for, if any.
pub fn strategy_of(conn: &Connection, order_row_id: i64) -> StoreResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT strategy_id FROM orders WHERE id = ?1",
            [order_row_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

const COLUMNS: &str = "id, connection, client_order_id, exchange_order_id, symbol, side, order_type,
    status, price, stop_price, quantity, filled_quantity, cumulative_quote, created_at, updated_at, error,
    purpose, position_id, order_list_id, strategy_id, decision_id, protect_stop, protect_target,
    booked_quantity";

fn row_to_stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredOrder, StoreError>> {
    let text = |i: usize| row.get::<_, String>(i);
    let id: i64 = row.get(0)?;
    let connection = text(1)?;
    let cid = text(2)?;
    let exchange_order_id: Option<String> = row.get(3)?;
    let (symbol, side, order_type, status) = (text(4)?, text(5)?, text(6)?, text(7)?);
    let price: Option<String> = row.get(8)?;
    let stop: Option<String> = row.get(9)?;
    let (qty, filled, cumq) = (text(10)?, text(11)?, text(12)?);
    let (created_at, updated_at): (i64, i64) = (row.get(13)?, row.get(14)?);
    let error: Option<String> = row.get(15)?;
    let purpose: String = row.get(16)?;
    let position_id: Option<i64> = row.get(17)?;
    let order_list_id: Option<String> = row.get(18)?;
    let strategy_id: Option<i64> = row.get(19)?;
    let decision_id: Option<i64> = row.get(20)?;
    let protect_stop: Option<String> = row.get(21)?;
    let protect_target: Option<String> = row.get(22)?;
    let booked: Option<String> = row.get(23)?;
    Ok((|| {
        Ok(StoredOrder {
            // Not recorded: an entry linked to its position was booked whole (before parts).
            booked_quantity: Qty(match opt_dec_from_sql("booked_quantity", booked)? {
                Some(q) => q,
                None if position_id.is_some() => dec_from_sql("filled_quantity", &filled)?,
                None => Decimal::ZERO,
            }),
            protect_stop: opt_dec_from_sql("protect_stop", protect_stop)?.map(Price),
            protect_target: opt_dec_from_sql("protect_target", protect_target)?.map(Price),
            id,
            connection,
            error,
            purpose: parse_col("purpose", &purpose)?,
            position_id,
            order_list_id,
            strategy_id,
            decision_id,
            order: Order {
                client_order_id: cid,
                exchange_order_id,
                symbol: parse_col("symbol", &symbol)?,
                side: parse_col("side", &side)?,
                order_type: parse_col("order_type", &order_type)?,
                status: parse_col("status", &status)?,
                price: opt_dec_from_sql("price", price)?.map(Price),
                stop_price: opt_dec_from_sql("stop_price", stop)?.map(Price),
                quantity: Qty(dec_from_sql("quantity", &qty)?),
                filled_quantity: Qty(dec_from_sql("filled_quantity", &filled)?),
                cumulative_quote: Quote(dec_from_sql("cumulative_quote", &cumq)?),
                created_at,
                updated_at,
            },
        })
    })())
}

pub fn get(conn: &Connection, client_order_id: &str) -> StoreResult<Option<StoredOrder>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM orders WHERE client_order_id = ?1"),
            [client_order_id],
            row_to_stored,
        )
        .optional()?;
    row.transpose()
}

/// Orders of a connection whose outcome is not known yet (`PENDING_NEW` / `UNKNOWN`).
pub fn unresolved(conn: &Connection, connection: &str) -> StoreResult<Vec<StoredOrder>> {
    unresolved_in(conn, connection, None)
}

/// `unresolved`, of one symbol when `symbol` is given.
pub fn unresolved_in(
    conn: &Connection,
    connection: &str,
    symbol: Option<&str>,
) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE connection = ?1 AND status IN ('PENDING_NEW', 'UNKNOWN')
         AND (?2 IS NULL OR symbol = ?2) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![connection, symbol], row_to_stored)?;
    collect(rows)
}

/// The symbols of a connection with trading work outstanding: orders whose outcome is
/// unknown, entries filled but not booked, open protection legs, open positions.
pub fn symbols_with_work(conn: &Connection, connection: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT symbol FROM orders WHERE connection = ?1 AND (
             status IN ('PENDING_NEW', 'UNKNOWN', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL')
             OR (purpose = 'entry' AND status IN ('FILLED', 'CANCELED', 'EXPIRED')
                 AND (position_id IS NULL OR (booked_quantity IS NOT NULL
                      AND booked_quantity != filled_quantity))
                 AND filled_quantity NOT IN ('0', '0.0')))
         UNION SELECT symbol FROM positions WHERE connection = ?1 AND closed_at IS NULL
         ORDER BY symbol",
    )?;
    let rows = stmt.query_map([connection], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every order row, oldest first.
pub fn all(conn: &Connection) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM orders ORDER BY id"))?;
    let rows = stmt.query_map([], row_to_stored)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Result<StoredOrder, StoreError>>>,
) -> StoreResult<Vec<StoredOrder>> {
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

/// Open protection legs (stop-loss / take-profit) of a connection, oldest first.
pub fn open_protection(conn: &Connection, connection: &str) -> StoreResult<Vec<StoredOrder>> {
    open_protection_in(conn, connection, None)
}

/// `open_protection`, of one symbol when `symbol` is given.
pub fn open_protection_in(
    conn: &Connection,
    connection: &str,
    symbol: Option<&str>,
) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE connection = ?1 AND purpose IN ('stop_loss', 'take_profit')
         AND status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL')
         AND (?2 IS NULL OR symbol = ?2) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![connection, symbol], row_to_stored)?;
    collect(rows)
}

/// A stop-loss exit: a filled stop-loss leg of a book's position, and when it was booked (on
/// the clock of the run that booked it). The cooldown and lock after stops read these.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StopExitRow {
    pub symbol: String,
    /// The position's book: its strategy, `None` for the default book.
    pub book: Option<i64>,
    /// The book's strategy name (`None` for the default book).
    pub strategy: Option<String>,
    pub at_ms: i64,
}

/// Every stop-loss exit on `connection`, oldest first.
pub fn stop_exits(conn: &Connection, connection: &str) -> StoreResult<Vec<StopExitRow>> {
    let mut stmt = conn.prepare(
        // One stop-out per position, at its last stop fill: a scale-out's part and rest are
        // two stop orders, and one stop hit fills both.
        "SELECT o.symbol, p.strategy_id, s.name, MAX(o.updated_at) AS at FROM orders o
         JOIN positions p ON p.id = o.position_id
         LEFT JOIN strategies s ON s.id = p.strategy_id
         WHERE o.connection = ?1 AND o.purpose = 'stop_loss' AND o.status = 'FILLED'
         GROUP BY o.position_id
         ORDER BY at, o.position_id",
    )?;
    let rows = stmt.query_map([connection], |r| {
        Ok(StopExitRow {
            symbol: r.get(0)?,
            book: r.get(1)?,
            strategy: r.get(2)?,
            at_ms: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many fills (`trades` rows) are stored, exactly.
pub fn trade_count(conn: &Connection) -> StoreResult<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM trades", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// How many orders can still trade, exactly.
pub fn open_count(conn: &Connection) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE status IN ('PENDING_NEW', 'UNKNOWN', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL')",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every order of a position, oldest first.
pub fn of_position(conn: &Connection, position_id: i64) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE position_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([position_id], row_to_stored)?;
    collect(rows)
}

/// Entry orders of a connection that filled but were never booked into a position (a crash
/// between the fill and the bookkeeping, or a fault while fetching its trades).
pub fn unbooked_entries(conn: &Connection, connection: &str) -> StoreResult<Vec<StoredOrder>> {
    unbooked_entries_in(conn, connection, None)
}

/// `unbooked_entries`, of one symbol when `symbol` is given.
pub fn unbooked_entries_in(
    conn: &Connection,
    connection: &str,
    symbol: Option<&str>,
) -> StoreResult<Vec<StoredOrder>> {
    // Every entry with an execution (a limit entry may be cancelled or expire after a partial
    // fill): those whose executed quantity is not all booked yet.
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE connection = ?1 AND purpose = 'entry'
         AND status IN ('FILLED', 'PARTIALLY_FILLED', 'CANCELED', 'EXPIRED', 'PENDING_CANCEL')
         AND (position_id IS NULL OR (booked_quantity IS NOT NULL AND booked_quantity != filled_quantity))
         AND (?2 IS NULL OR symbol = ?2) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![connection, symbol], row_to_stored)?;
    Ok(collect(rows)?
        .into_iter()
        .filter(|o| o.unbooked_quantity().is_positive())
        .collect())
}

/// Record that `quantity` of entry `client_order_id`'s executed quantity is now booked.
pub fn set_booked(conn: &Connection, client_order_id: &str, quantity: Qty) -> StoreResult<()> {
    conn.execute(
        "UPDATE orders SET booked_quantity = ?2 WHERE client_order_id = ?1",
        params![client_order_id, dec_to_sql(quantity.get())],
    )?;
    Ok(())
}

/// A connection's open entry orders (a limit entry resting on the book, whole or in part),
/// oldest first; of one symbol when `symbol` is given.
pub fn resting_entries(
    conn: &Connection,
    connection: &str,
    symbol: Option<&str>,
) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE connection = ?1 AND purpose = 'entry'
         AND status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL')
         AND (?2 IS NULL OR symbol = ?2) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![connection, symbol], row_to_stored)?;
    collect(rows)
}

/// Orders for the CLI: newest first, optionally only open ones and one symbol.
pub fn list(
    conn: &Connection,
    open_only: bool,
    symbol: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<StoredOrder>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM orders WHERE (?1 = 0 OR status IN ('PENDING_NEW', 'UNKNOWN', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL'))
         AND (?2 IS NULL OR symbol = ?2) ORDER BY id DESC LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![open_only, symbol, limit], row_to_stored)?;
    collect(rows)
}

/// Attach the order to a position (and its decision) once they exist.
pub fn link(
    conn: &Connection,
    client_order_id: &str,
    position_id: Option<i64>,
    decision_id: Option<i64>,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE orders SET position_id = COALESCE(?2, position_id), decision_id = COALESCE(?3, decision_id)
         WHERE client_order_id = ?1",
        params![client_order_id, position_id, decision_id],
    )?;
    Ok(())
}

/// A stored fill with the realised PnL it booked, for `trademind trades`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TradeRow {
    pub client_order_id: String,
    pub purpose: OrderPurpose,
    pub fill: Fill,
    pub realized_pnl: Option<Quote>,
    /// The name of the strategy that placed the order (for the TUI's trade list).
    #[serde(skip)]
    pub strategy: Option<String>,
}

/// Fills, newest first.
pub fn trades(conn: &Connection, limit: usize) -> StoreResult<Vec<TradeRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query_trades(
        conn,
        "ORDER BY t.executed_at DESC, t.id DESC LIMIT ?1",
        [limit],
    )
}

/// The fills of `connection`'s orders executed at or after `since_ms`, oldest first (a day's
/// trades for the daily summary).
pub fn trades_since(
    conn: &Connection,
    connection: &str,
    since_ms: TimestampMs,
) -> StoreResult<Vec<TradeRow>> {
    query_trades(
        conn,
        "WHERE o.connection = ?1 AND t.executed_at >= ?2 ORDER BY t.executed_at, t.id",
        params![connection, since_ms],
    )
}

/// The fills stored for one order, in the order they were recorded.
pub fn fills_of_order(conn: &Connection, order_row_id: i64) -> StoreResult<Vec<Fill>> {
    Ok(
        query_trades(conn, "WHERE t.order_id = ?1 ORDER BY t.id", [order_row_id])?
            .into_iter()
            .map(|t| t.fill)
            .collect(),
    )
}

fn query_trades(
    conn: &Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<TradeRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT o.client_order_id, o.purpose, t.exchange_trade_id, t.symbol, t.side, t.price, t.quantity,
                t.fee, t.fee_asset, t.is_maker, t.executed_at, t.realized_pnl, s.name
         FROM trades t JOIN orders o ON o.id = t.order_id
         LEFT JOIN strategies s ON s.id = o.strategy_id {tail}"
    ))?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, bool>(9)?,
            r.get::<_, i64>(10)?,
            r.get::<_, Option<String>>(11)?,
            r.get::<_, Option<String>>(12)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            cid,
            purpose,
            trade_id,
            symbol,
            side,
            price,
            qty,
            fee,
            fee_asset,
            is_maker,
            time,
            pnl,
            strategy,
        ) = row?;
        out.push(TradeRow {
            fill: Fill {
                client_order_id: cid.clone(),
                trade_id,
                symbol: parse_col("trades.symbol", &symbol)?,
                side: parse_col("trades.side", &side)?,
                price: Price(dec_from_sql("trades.price", &price)?),
                quantity: Qty(dec_from_sql("trades.quantity", &qty)?),
                fee: Quote(dec_from_sql("trades.fee", &fee)?),
                fee_asset,
                is_maker,
                time,
            },
            client_order_id: cid,
            purpose: parse_col("orders.purpose", &purpose)?,
            realized_pnl: opt_dec_from_sql("trades.realized_pnl", pnl)?.map(Quote),
            strategy,
        });
    }
    Ok(out)
}

/// Book the realised PnL of a closing order on its fills (the last fill carries it).
pub fn set_realized_pnl(conn: &Connection, order_row_id: i64, pnl: Quote) -> StoreResult<()> {
    conn.execute(
        "UPDATE trades SET realized_pnl = ?2 WHERE id = (SELECT MAX(id) FROM trades WHERE order_id = ?1)",
        params![order_row_id, dec_to_sql(pnl.get())],
    )?;
    Ok(())
}

/// Number of fills stored for an order.
pub fn fill_count(conn: &Connection, order_row_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM trades WHERE order_id = ?1",
        [order_row_id],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::symbol::Symbol;
    use crate::domain::trading::order::{OrderType, Side};
    use crate::store::Store;
    use rust_decimal_macros::dec;

    fn request(cid: &str) -> OrderRequest {
        OrderRequest {
            client_order_id: cid.into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: Qty(dec!(0.5)),
            price: Some(Price(dec!(100.25))),
            stop_price: None,
            time_in_force: None,
            trailing_delta: None,
        }
    }

    #[test]
    fn an_order_purpose_round_trips_as_its_text_and_an_unknown_one_is_corrupt() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        for (i, purpose) in [
            OrderPurpose::Entry,
            OrderPurpose::Exit,
            OrderPurpose::StopLoss,
            OrderPurpose::TakeProfit,
        ]
        .into_iter()
        .enumerate()
        {
            let cid = format!("p{i}");
            let links = OrderLinks {
                purpose,
                ..OrderLinks::default()
            };
            insert_pending_linked(c, &request(&cid), "paper", &links, 10).unwrap();
            let text: String = c
                .query_row(
                    "SELECT purpose FROM orders WHERE client_order_id = ?1",
                    [&cid],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(text, purpose.as_str(), "stored as the same TEXT as before");
            assert_eq!(get(c, &cid).unwrap().unwrap().purpose, purpose);
        }
        c.execute(
            "UPDATE orders SET purpose = 'hedge' WHERE client_order_id = 'p0'",
            [],
        )
        .unwrap();
        match get(c, "p0") {
            Err(StoreError::Corrupt { column, value, .. }) => {
                assert_eq!((column, value.as_str()), ("purpose", "hedge"));
            }
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    #[test]
    fn a_position_stopped_out_through_two_stop_orders_is_one_stop_exit() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        c.execute(
            "INSERT INTO positions (connection, symbol, entry_price, quantity, status, opened_at, updated_at)
             VALUES ('paper', 'BTCUSDT', '100', '0', 'closed', 1, 1)",
            [],
        )
        .unwrap();
        let position = c.last_insert_rowid();
        let links = OrderLinks {
            purpose: OrderPurpose::StopLoss,
            position_id: Some(position),
            ..OrderLinks::default()
        };
        // The part's OCO stop leg and the rest's stop, filled by one stop hit.
        for (cid, at) in [("part", 50), ("rest", 51)] {
            insert_pending_linked(c, &request(cid), "paper", &links, 10).unwrap();
            c.execute(
                "UPDATE orders SET status = 'FILLED', updated_at = ?2 WHERE client_order_id = ?1",
                rusqlite::params![cid, at],
            )
            .unwrap();
        }
        let exits = stop_exits(c, "paper").unwrap();
        assert_eq!(exits.len(), 1, "{exits:?}");
        assert_eq!(exits[0].at_ms, 51);
    }

    #[test]
    fn pending_row_round_trips_and_ids_are_never_reused() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        insert_pending(c, &request("a"), "paper", 10).unwrap();
        assert!(matches!(
            insert_pending(c, &request("a"), "paper", 11),
            Err(StoreError::Conflict(_))
        ));
        let got = get(c, "a").unwrap().unwrap();
        assert_eq!(got.order.status, OrderStatus::PendingNew);
        assert_eq!(got.order.price, Some(Price(dec!(100.25))));
        assert_eq!(unresolved(c, "paper").unwrap().len(), 1);
        let mut order = got.order.clone();
        order.status = OrderStatus::Filled;
        order.filled_quantity = Qty(dec!(0.5));
        order.cumulative_quote = Quote(dec!(50.125));
        update_from_exchange(c, &order, 12).unwrap();
        let got = get(c, "a").unwrap().unwrap();
        assert_eq!(got.order.status, OrderStatus::Filled);
        assert_eq!(got.order.cumulative_quote, Quote(dec!(50.125)));
        assert!(unresolved(c, "paper").unwrap().is_empty());
    }
}
