//! Paper exchange accounts (`paper_accounts`): the simulated exchange state as JSON.

use super::StoreResult;
use crate::domain::market::candle::TimestampMs;
use rusqlite::{Connection, OptionalExtension, params};

pub fn load(conn: &Connection, account: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT state FROM paper_accounts WHERE name = ?1",
            [account],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn save(conn: &Connection, account: &str, state: &str, now: TimestampMs) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO paper_accounts (name, state, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![account, state, now],
    )?;
    Ok(())
}
