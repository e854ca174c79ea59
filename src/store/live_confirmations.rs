//! The typed live-trading confirmation, recorded once per connection (see
//! `domain::trading::mode` for the guard that reads it).

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use crate::domain::trading::LiveConfirmation;

/// Record the confirmation; a second one for the same connection keeps the first date.
pub fn record(conn: &Connection, connection: &str, phrase: &str, at_ms: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO live_confirmations (connection, phrase, confirmed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (connection) DO NOTHING",
        params![connection, phrase, at_ms],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, connection: &str) -> StoreResult<Option<LiveConfirmation>> {
    Ok(conn
        .query_row(
            "SELECT connection, confirmed_at FROM live_confirmations WHERE connection = ?1",
            params![connection],
            |r| {
                Ok(LiveConfirmation {
                    connection: r.get(0)?,
                    confirmed_at_ms: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Withdraw the confirmation; `true` when there was one.
pub fn revoke(conn: &Connection, connection: &str) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM live_confirmations WHERE connection = ?1",
        params![connection],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trading::{TradingMode, authorize_order, mode::confirmation_phrase};
    use crate::store::Store;

    #[test]
    fn recorded_confirmation_unlocks_live_orders_until_revoked() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let before = get(conn, "main").unwrap();
        assert!(authorize_order(TradingMode::Live, "main", true, before.as_ref()).is_err());

        record(conn, "main", &confirmation_phrase("main"), 5_000).unwrap();
        record(conn, "main", &confirmation_phrase("main"), 9_000).unwrap();
        let after = get(conn, "main").unwrap().unwrap();
        assert_eq!(after.confirmed_at_ms, 5_000);
        assert!(authorize_order(TradingMode::Live, "main", true, Some(&after)).is_ok());

        assert!(revoke(conn, "main").unwrap());
        assert!(get(conn, "main").unwrap().is_none());
        assert!(!revoke(conn, "main").unwrap());
    }
}
