//! Shadow fills (`shadow_fills`): the virtual paper book of a strategy's challenger engine.
//! Nothing here reaches an exchange; the book is rebuilt from the fills.

use rusqlite::{Connection, params};

use super::StoreResult;
use super::codec::{dec_from_sql, dec_to_sql};
use crate::domain::decision::shadow::{ShadowFill, ShadowSide};
use crate::domain::{Price, Qty, Quote};

/// A fill as read back, with the decision it came from and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShadowFillRow {
    pub id: i64,
    pub strategy_id: i64,
    pub decision_id: i64,
    pub filled_at: i64,
    #[serde(flatten)]
    pub fill: ShadowFill,
}

pub fn insert(
    conn: &Connection,
    strategy_id: i64,
    decision_id: i64,
    fill: &ShadowFill,
    filled_at: i64,
) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO shadow_fills (strategy_id, decision_id, symbol, side, quantity, price, fee,
            filled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            strategy_id,
            decision_id,
            fill.symbol,
            fill.side.as_str(),
            dec_to_sql(fill.quantity.0),
            dec_to_sql(fill.price.0),
            dec_to_sql(fill.fee.0),
            filled_at,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Every shadow fill of a strategy, oldest first.
pub fn fills_of(conn: &Connection, strategy_id: i64) -> StoreResult<Vec<ShadowFillRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, strategy_id, decision_id, symbol, side, quantity, price, fee, filled_at
         FROM shadow_fills WHERE strategy_id = ?1 ORDER BY filled_at, id",
    )?;
    let rows = stmt.query_map([strategy_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, strategy_id, decision_id, symbol, side, qty, price, fee, filled_at) = row?;
        let side = match side.as_str() {
            "BUY" => ShadowSide::Buy,
            "SELL" => ShadowSide::Sell,
            other => {
                return Err(super::StoreError::Corrupt {
                    column: "shadow_fills.side",
                    value: other.to_string(),
                    reason: "expected BUY or SELL".into(),
                });
            }
        };
        out.push(ShadowFillRow {
            id,
            strategy_id,
            decision_id,
            filled_at,
            fill: ShadowFill {
                symbol,
                side,
                quantity: Qty(dec_from_sql("shadow_fills.quantity", &qty)?),
                price: Price(dec_from_sql("shadow_fills.price", &price)?),
                fee: Quote(dec_from_sql("shadow_fills.fee", &fee)?),
            },
        });
    }
    Ok(out)
}
