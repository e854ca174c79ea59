//! Metadata of stored credentials (kind, connection, backend, when set), never their values:
//! the OS keyring cannot enumerate its entries, so `keys list` reads this table.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, StoreResult};
use crate::secrets::{Backend, SecretId, SecretKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretEntry {
    pub kind: SecretKind,
    pub connection: String,
    pub backend: Backend,
    /// ms since the Unix epoch, UTC.
    pub set_at: i64,
}

/// Record (or refresh) that `id` was stored in `backend` at `set_at`.
pub fn record(conn: &Connection, id: &SecretId, backend: Backend, set_at: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO secret_entries (kind, connection, backend, set_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, connection) DO UPDATE SET backend = excluded.backend, set_at = excluded.set_at",
        params![id.kind.as_str(), id.connection.as_str(), backend.as_str(), set_at],
    )?;
    Ok(())
}

/// `true` when there was a row to remove.
pub fn remove(conn: &Connection, id: &SecretId) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM secret_entries WHERE kind = ?1 AND connection = ?2",
        params![id.kind.as_str(), id.connection.as_str()],
    )?;
    Ok(n > 0)
}

pub fn get(conn: &Connection, id: &SecretId) -> StoreResult<Option<SecretEntry>> {
    conn.query_row(
        "SELECT kind, connection, backend, set_at FROM secret_entries WHERE kind = ?1 AND connection = ?2",
        params![id.kind.as_str(), id.connection.as_str()],
        raw_row,
    )
    .optional()?
    .map(parse)
    .transpose()
}

/// Every recorded entry, by kind then connection.
pub fn list(conn: &Connection) -> StoreResult<Vec<SecretEntry>> {
    let mut stmt = conn.prepare(
        "SELECT kind, connection, backend, set_at FROM secret_entries ORDER BY kind, connection",
    )?;
    let rows = stmt
        .query_map([], raw_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(parse).collect()
}

type RawRow = (String, String, String, i64);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn parse((kind, connection, backend, set_at): RawRow) -> StoreResult<SecretEntry> {
    let kind = kind.parse().map_err(|e| StoreError::Corrupt {
        column: "secret_entries.kind",
        value: kind.clone(),
        reason: format!("{e}"),
    })?;
    let backend = backend.parse().map_err(|e| StoreError::Corrupt {
        column: "secret_entries.backend",
        value: backend.clone(),
        reason: format!("{e}"),
    })?;
    Ok(SecretEntry {
        kind,
        connection,
        backend,
        set_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::ConnectionName;
    use crate::store::Store;

    #[test]
    fn record_list_refresh_and_remove() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let grok = SecretId::default_for(SecretKind::Grok);
        let binance = SecretId::new(SecretKind::Binance, ConnectionName::new("main").unwrap());
        record(conn, &grok, Backend::OsKeyring, 1_000).unwrap();
        record(conn, &binance, Backend::OsKeyring, 2_000).unwrap();
        record(conn, &grok, Backend::Memory, 3_000).unwrap();

        let all = list(conn).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, SecretKind::Binance);
        assert_eq!(all[0].connection, "main");
        assert_eq!(all[1].set_at, 3_000);
        assert_eq!(all[1].backend, Backend::Memory);
        assert_eq!(get(conn, &grok).unwrap().unwrap().set_at, 3_000);

        assert!(remove(conn, &grok).unwrap());
        assert!(!remove(conn, &grok).unwrap());
        assert!(get(conn, &grok).unwrap().is_none());
        assert_eq!(list(conn).unwrap().len(), 1);
    }

    #[test]
    fn table_has_no_column_that_could_hold_a_value() {
        let store = Store::open_in_memory().unwrap();
        let mut stmt = store
            .conn()
            .prepare("SELECT name FROM pragma_table_info('secret_entries') ORDER BY cid")
            .unwrap();
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cols, ["kind", "connection", "backend", "set_at"]);
    }
}
