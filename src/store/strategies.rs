//! Strategies (`strategies`) and exchange connections (`exchange_connections`). A connection row
//! names the keyring entry that holds its credentials — never the credentials themselves.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};

/// A configured strategy: what it trades, how often, and which engine decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRow {
    pub id: i64,
    pub name: String,
    pub is_active: bool,
    pub status: String,
    pub symbols: Vec<String>,
    pub interval: String,
    /// "rules", "llm" or "strategy" (a built-in backtest strategy named in `parameters`).
    pub decision_engine: String,
    /// Free-form parameters (rule name, periods, …) as JSON; for the `strategy` engine
    /// `{"strategy": "sma-cross", "fast": 10, …}`.
    pub parameters: serde_json::Value,
    pub connection_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What `strategy add` supplies.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStrategy {
    pub name: String,
    pub symbols: Vec<String>,
    pub interval: String,
    pub decision_engine: String,
    pub parameters: serde_json::Value,
    pub connection_id: Option<i64>,
}

fn strategy_from_row(r: &Row<'_>) -> rusqlite::Result<Result<StrategyRow, StoreError>> {
    let symbols: String = r.get("symbols")?;
    let parameters: String = r.get("parameters")?;
    let row = (
        r.get::<_, i64>("id")?,
        r.get::<_, String>("name")?,
        r.get::<_, bool>("is_active")?,
        r.get::<_, String>("status")?,
        r.get::<_, String>("interval")?,
        r.get::<_, String>("decision_engine")?,
        r.get::<_, Option<i64>>("connection_id")?,
        r.get::<_, i64>("created_at")?,
        r.get::<_, i64>("updated_at")?,
    );
    Ok((|| {
        Ok(StrategyRow {
            id: row.0,
            name: row.1,
            is_active: row.2,
            status: row.3,
            interval: row.4,
            decision_engine: row.5,
            connection_id: row.6,
            created_at: row.7,
            updated_at: row.8,
            symbols: serde_json::from_str(&symbols).map_err(|e| StoreError::Corrupt {
                column: "strategies.symbols",
                value: symbols.clone(),
                reason: e.to_string(),
            })?,
            parameters: serde_json::from_str(&parameters).map_err(|e| StoreError::Corrupt {
                column: "strategies.parameters",
                value: parameters.clone(),
                reason: e.to_string(),
            })?,
        })
    })())
}

pub fn add_strategy(conn: &Connection, s: &NewStrategy, now_ms: i64) -> StoreResult<i64> {
    // A strategy's breaker is kept under its name; the account's is under this one.
    if s.name == super::risk::GLOBAL_SCOPE {
        return Err(StoreError::Conflict(format!(
            "{:?} names the account's circuit breaker; choose another strategy name",
            s.name
        )));
    }
    let symbols =
        serde_json::to_string(&s.symbols).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let result = conn.execute(
        "INSERT INTO strategies (name, is_active, status, symbols, interval, decision_engine, parameters, connection_id, created_at, updated_at)
         VALUES (?1, 0, 'stopped', ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![s.name, symbols, s.interval, s.decision_engine, s.parameters.to_string(), s.connection_id, now_ms],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict(format!(
                "a strategy named {:?} already exists",
                s.name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn list_strategies(conn: &Connection) -> StoreResult<Vec<StrategyRow>> {
    let mut stmt = conn.prepare("SELECT * FROM strategies ORDER BY name")?;
    let rows = stmt.query_map([], strategy_from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

pub fn strategy_by_name(conn: &Connection, name: &str) -> StoreResult<Option<StrategyRow>> {
    let mut stmt = conn.prepare("SELECT * FROM strategies WHERE name = ?1")?;
    stmt.query_row([name], strategy_from_row)
        .optional()?
        .transpose()
}

/// Enable or disable a strategy; `NotFound` when it does not exist.
pub fn set_active(conn: &Connection, name: &str, active: bool, now_ms: i64) -> StoreResult<()> {
    let status = if active { "running" } else { "stopped" };
    let n = conn.execute(
        "UPDATE strategies SET is_active = ?1, status = ?2, updated_at = ?3 WHERE name = ?4",
        params![active, status, now_ms, name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("strategy {name:?}")));
    }
    Ok(())
}

/// Set (or with `None` clear) the capital allocation of strategy `name`.
pub fn set_allocation(
    conn: &Connection,
    name: &str,
    allocation: Option<crate::domain::trading::Allocation>,
    now_ms: i64,
) -> StoreResult<()> {
    let json = allocation
        .map(|a| serde_json::to_string(&a))
        .transpose()
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let n = conn.execute(
        "UPDATE strategies SET allocation = ?1, updated_at = ?2 WHERE name = ?3",
        params![json, now_ms, name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("strategy {name:?}")));
    }
    Ok(())
}

/// The capital allocation of the strategy with id `id` (`None`: the whole account).
pub fn allocation_of(
    conn: &Connection,
    id: i64,
) -> StoreResult<Option<crate::domain::trading::Allocation>> {
    let json: Option<Option<String>> = conn
        .query_row(
            "SELECT allocation FROM strategies WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match json.flatten() {
        None => Ok(None),
        Some(j) => serde_json::from_str(&j)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                column: "strategies.allocation",
                value: j.clone(),
                reason: e.to_string(),
            }),
    }
}

/// An exchange connection. `keyring_entry` names the OS keyring entry; no secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRow {
    pub id: i64,
    pub name: String,
    pub exchange: String,
    pub is_testnet: bool,
    pub keyring_entry: Option<String>,
    pub created_at: i64,
    /// The connection's own address (REST, streams and WebSocket API derived from it), ahead
    /// of `exchange.binance.base_url`; `None`: that setting, else the environment's hosts.
    pub base_url: Option<String>,
}

/// A new connection row.
#[derive(Debug, Clone, Copy)]
pub struct NewConnection<'a> {
    pub name: &'a str,
    pub exchange: &'a str,
    pub is_testnet: bool,
    pub keyring_entry: Option<&'a str>,
    pub base_url: Option<&'a str>,
}

/// Add a connection without an address of its own.
pub fn add_connection(
    conn: &Connection,
    name: &str,
    exchange: &str,
    is_testnet: bool,
    keyring_entry: Option<&str>,
    now_ms: i64,
) -> StoreResult<i64> {
    let new = NewConnection {
        name,
        exchange,
        is_testnet,
        keyring_entry,
        base_url: None,
    };
    add_connection_with(conn, new, now_ms)
}

pub fn add_connection_with(
    conn: &Connection,
    new: NewConnection<'_>,
    now_ms: i64,
) -> StoreResult<i64> {
    let NewConnection {
        name,
        exchange,
        is_testnet,
        keyring_entry,
        base_url,
    } = new;
    let result = conn.execute(
        "INSERT INTO exchange_connections (name, exchange, is_testnet, keyring_entry, base_url, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![name, exchange, is_testnet, keyring_entry, base_url, now_ms],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let why = msg.unwrap_or_default();
            if why.contains("UNIQUE") {
                Err(StoreError::Conflict(format!(
                    "a connection named {name:?} already exists"
                )))
            } else {
                Err(StoreError::Conflict(format!(
                    "exchange must be \"binance\" or \"paper\", got {exchange:?}"
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub fn list_connections(conn: &Connection) -> StoreResult<Vec<ConnectionRow>> {
    let mut stmt = conn.prepare("SELECT id, name, exchange, is_testnet, keyring_entry, created_at, base_url FROM exchange_connections ORDER BY name")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ConnectionRow {
                id: r.get(0)?,
                name: r.get(1)?,
                exchange: r.get(2)?,
                is_testnet: r.get(3)?,
                keyring_entry: r.get(4)?,
                created_at: r.get(5)?,
                base_url: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The trading mode of connection `name` as the venue opens it: the built-in `paper` name or
/// a paper row is PAPER; a Binance row is TESTNET or LIVE by its `is_testnet` flag (whatever
/// `trading.live` says: a testnet connection trades on the testnet). Unknown names: PAPER.
pub fn connection_mode(
    conn: &Connection,
    name: &str,
) -> StoreResult<crate::domain::trading::TradingMode> {
    let row = list_connections(conn)?.into_iter().find(|r| r.name == name);
    Ok(match row {
        Some(r) if r.exchange != "paper" => {
            crate::domain::trading::mode::mode_of(false, r.is_testnet)
        }
        _ => crate::domain::trading::TradingMode::Paper,
    })
}

pub fn remove_connection(conn: &Connection, name: &str) -> StoreResult<()> {
    let n = conn.execute("DELETE FROM exchange_connections WHERE name = ?1", [name])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("connection {name:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn strategies_round_trip_and_toggle() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let s = NewStrategy {
            name: "btc-rules".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "rules".into(),
            parameters: serde_json::json!({"rule": "seed"}),
            connection_id: None,
        };
        add_strategy(c, &s, 1).unwrap();
        assert!(matches!(
            add_strategy(c, &s, 2),
            Err(StoreError::Conflict(_))
        ));
        set_active(c, "btc-rules", true, 3).unwrap();
        let row = strategy_by_name(c, "btc-rules").unwrap().unwrap();
        assert!(row.is_active);
        assert_eq!(row.status, "running");
        assert_eq!(row.parameters["rule"], "seed");
        assert!(matches!(
            set_active(c, "nope", true, 4),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(list_strategies(c).unwrap().len(), 1);
    }

    #[test]
    fn connections_hold_a_keyring_name_not_a_secret() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let new = |name, exchange, is_testnet, keyring_entry, base_url| NewConnection {
            name,
            exchange,
            is_testnet,
            keyring_entry,
            base_url,
        };
        add_connection_with(
            c,
            new("main", "binance", true, Some("binance:main"), None),
            1,
        )
        .unwrap();
        assert!(matches!(
            add_connection_with(c, new("main", "binance", false, None, None), 2),
            Err(StoreError::Conflict(_))
        ));
        assert!(
            matches!(add_connection_with(c, new("x", "kraken", false, None, None), 2), Err(StoreError::Conflict(m)) if m.contains("binance"))
        );
        let local = new(
            "local",
            "binance",
            true,
            None,
            Some("http://127.0.0.1:9400"),
        );
        add_connection_with(c, local, 3).unwrap();
        let rows = list_connections(c).unwrap();
        assert_eq!(rows[0].base_url.as_deref(), Some("http://127.0.0.1:9400"));
        assert_eq!(rows[1].keyring_entry.as_deref(), Some("binance:main"));
        assert_eq!(rows[1].base_url, None);
        remove_connection(c, "main").unwrap();
        assert!(matches!(
            remove_connection(c, "main"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn a_strategys_allocation_round_trips_and_clears() {
        use crate::domain::trading::Allocation;
        let store = crate::store::Store::open_in_memory().unwrap();
        let c = store.conn();
        c.execute_batch(
            "INSERT INTO strategies (id, name, created_at, updated_at) VALUES (3, 'fast', 0, 0);",
        )
        .unwrap();
        assert_eq!(allocation_of(c, 3).unwrap(), None);
        let a: Allocation = "12.5%".parse().unwrap();
        set_allocation(c, "fast", Some(a), 1).unwrap();
        assert_eq!(allocation_of(c, 3).unwrap(), Some(a));
        set_allocation(c, "fast", None, 2).unwrap();
        assert_eq!(allocation_of(c, 3).unwrap(), None);
        assert!(matches!(
            set_allocation(c, "nope", None, 3),
            Err(StoreError::NotFound(_))
        ));
    }
}
