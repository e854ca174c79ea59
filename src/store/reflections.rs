//! Reflections on closed positions (#20): written once per position when it closes, read back
//! as a strategy's last few for its later prompts.

use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use serde::Serialize;

use super::StoreResult;
use super::codec::{dec_to_sql, opt_dec_from_sql};
use super::positions::BookId;
use crate::domain::decision::PastReflection;
use crate::domain::market::TimestampMs;

/// A reflection to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReflection {
    pub position_id: i64,
    pub strategy_id: BookId,
    pub symbol: String,
    pub created_at: TimestampMs,
    pub thesis: String,
    pub outcome: String,
    pub reflection: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<Decimal>,
}

/// A stored reflection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredReflection {
    pub id: i64,
    pub position_id: i64,
    pub strategy_id: BookId,
    pub symbol: String,
    pub created_at: TimestampMs,
    pub thesis: String,
    pub outcome: String,
    pub reflection: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<Decimal>,
}

impl StoredReflection {
    pub fn past(&self) -> PastReflection {
        PastReflection {
            created_at: self.created_at,
            symbol: self.symbol.clone(),
            reflection: self.reflection.clone(),
        }
    }
}

pub fn insert(conn: &Connection, r: &NewReflection) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO reflections (position_id, strategy_id, symbol, created_at, thesis, outcome,
             reflection, prompt_tokens, completion_tokens, cost_usd)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.position_id,
            r.strategy_id,
            r.symbol,
            r.created_at,
            r.thesis,
            r.outcome,
            r.reflection,
            r.prompt_tokens,
            r.completion_tokens,
            r.cost_usd.map(dec_to_sql),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The last `limit` reflections of `book` made at or before `at_ms`, newest first. (A paid
/// call whose reply held no reflection is stored with empty text, for its cost; it is not one.)
pub fn recent(
    conn: &Connection,
    book: BookId,
    at_ms: TimestampMs,
    limit: usize,
) -> StoreResult<Vec<StoredReflection>> {
    let mut stmt = conn.prepare(
        "SELECT id, position_id, strategy_id, symbol, created_at, thesis, outcome, reflection,
                prompt_tokens, completion_tokens, cost_usd
         FROM reflections WHERE strategy_id IS ?1 AND created_at <= ?2 AND reflection <> ''
         ORDER BY created_at DESC, id DESC LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![book, at_ms, limit], |r| {
        Ok((
            StoredReflection {
                id: r.get(0)?,
                position_id: r.get(1)?,
                strategy_id: r.get(2)?,
                symbol: r.get(3)?,
                created_at: r.get(4)?,
                thesis: r.get(5)?,
                outcome: r.get(6)?,
                reflection: r.get(7)?,
                prompt_tokens: r.get(8)?,
                completion_tokens: r.get(9)?,
                cost_usd: None,
            },
            r.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut reflection, cost) = row?;
        reflection.cost_usd = opt_dec_from_sql("reflections.cost_usd", cost)?;
        out.push(reflection);
    }
    Ok(out)
}

/// Positions of `book` on `connection` closed at or after `since_ms` that have no reflection
/// yet, oldest close first.
pub fn unreflected_closes(
    conn: &Connection,
    connection: &str,
    book: BookId,
    since_ms: TimestampMs,
) -> StoreResult<Vec<i64>> {
    let mut stmt = conn.prepare(
        "SELECT p.id FROM positions p
         WHERE p.connection = ?1 AND p.strategy_id IS ?2 AND p.status = 'closed'
           AND p.closed_at >= ?3
           AND NOT EXISTS (SELECT 1 FROM reflections r WHERE r.position_id = p.id)
         ORDER BY p.closed_at, p.id",
    )?;
    let ids = stmt.query_map(params![connection, book, since_ms], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}
