//! `trademind strategy list|add|enable|disable|show|allocate` and `trademind connection add|list|remove`.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Context, UsageError};
use crate::domain::Symbol;
use crate::domain::market::Interval;
use crate::store::StoreError;
use crate::store::strategies::{self, NewStrategy};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, Subcommand)]
pub enum StrategyCommand {
    /// List strategies.
    List,
    /// Add a strategy (disabled until `strategy enable`).
    Add(AddStrategy),
    /// Let the scheduler run a strategy.
    Enable { name: String },
    /// Stop the scheduler from running a strategy.
    Disable { name: String },
    /// Show one strategy.
    Show { name: String },
    /// Set a strategy's capital: `25%` of the account's equity, a fixed `1000` in its quote
    /// currency (moving with the book's PnL), or `none` (the whole account).
    Allocate { name: String, allocation: String },
}

/// `25%`, `1000` or `none` (no allocation: the whole account).
fn parse_allocation(given: &str) -> Result<Option<crate::domain::trading::Allocation>, UsageError> {
    if given.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    given
        .parse()
        .map(Some)
        .map_err(|e: crate::domain::trading::InvalidAllocation| UsageError(e.to_string()))
}

#[derive(Debug, Args)]
pub struct AddStrategy {
    pub name: String,
    /// Symbols to trade (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbol: Vec<String>,
    /// Candle interval the strategy decides on.
    #[arg(long, default_value = "1h")]
    pub interval: String,
    /// Decision engine: rules (no keys needed), llm, or strategy (a built-in backtest strategy,
    /// named by --param strategy=sma-cross|rsi-reversion|macd|rsi-macd with its parameters, e.g.
    /// --param fast=10 --param slow=30 --param stop_pct=2 --param take_pct=4).
    #[arg(long, default_value = "rules", value_parser = ["rules", "llm", "strategy"])]
    pub engine: String,
    /// Parameters as key=value (e.g. --param strategy=sma-cross --param fast=10).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Exchange connection (default: the paper exchange).
    #[arg(long)]
    pub connection: Option<String>,
    /// The strategy's capital: `25%` of the account's equity or a fixed `1000` in the quote
    /// currency; its entries are sized on it and its own loss limits measured against it
    /// (default: the whole account).
    #[arg(long, value_name = "PCT%|AMOUNT")]
    pub allocation: Option<String>,
    /// A challenger model: each cycle it decides on the same input as the strategy's engine;
    /// its decisions are recorded (outcome `shadow`) and filled on a virtual paper book, never
    /// sent to the exchange. Needs a Grok key.
    #[arg(long, value_name = "MODEL")]
    pub challenger_model: Option<String>,
    /// The challenger's prompt template (default: llm.prompt_template); alone, it challenges
    /// the prompt with the same model.
    #[arg(long, value_name = "FILE")]
    pub challenger_prompt: Option<std::path::PathBuf>,
}

/// Parse `key=value` pairs; numbers and booleans become JSON numbers and booleans.
pub fn parse_params(pairs: &[String]) -> Result<serde_json::Value, UsageError> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--param {pair:?}: expected KEY=VALUE")))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(UsageError(format!("--param {pair:?}: the key is empty")));
        }
        let value = serde_json::from_str::<serde_json::Value>(v.trim())
            .ok()
            .filter(|j| j.is_number() || j.is_boolean())
            .unwrap_or_else(|| serde_json::Value::String(v.trim().to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(serde_json::Value::Object(map))
}

fn not_found(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => UsageError(format!("no such {what}")).into(),
        StoreError::Conflict(msg) => UsageError(msg).into(),
        other => other.into(),
    }
}

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub fn run(cmd: StrategyCommand, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let c = store.conn();
    match cmd {
        StrategyCommand::List => {
            let rows = strategies::list_strategies(c)?;
            // Each book's capital, as `strategy allocate` set it ("account": the whole account).
            let mut allocations = Vec::with_capacity(rows.len());
            for s in &rows {
                allocations.push(strategies::allocation_of(c, s.id)?);
            }
            // The daemon's heartbeat, not the job history: runs recorded by the TUI or by a
            // daemon killed a minute ago do not make strategies run.
            let daemon =
                crate::store::heartbeat::presence(c, chrono::Utc::now().timestamp_millis())?;
            ctx.emit(&rows, || {
                if daemon.is_alive() {
                    println!("{}", daemon.describe(fmt_ms));
                } else {
                    println!(
                        "{}: enabled strategies trade only while `trademind --daemon` runs",
                        daemon.describe(fmt_ms)
                    );
                }
                if rows.is_empty() {
                    println!(
                        "no strategies (add one: trademind strategy add NAME --symbol BTCUSDT)"
                    );
                }
                for (s, allocation) in rows.iter().zip(&allocations) {
                    println!(
                        "{:<20} {:<8} {:<4} {:<8} {:<10} {}",
                        s.name,
                        if s.is_active { "enabled" } else { "disabled" },
                        s.interval,
                        s.decision_engine,
                        allocation.map_or("account".to_string(), |a| a.to_string()),
                        s.symbols.join(",")
                    );
                }
            })
        }
        StrategyCommand::Add(a) => {
            let mut symbols = Vec::new();
            for s in &a.symbol {
                symbols.push(
                    Symbol::new(s)
                        .map_err(|e| UsageError(e.to_string()))?
                        .to_string(),
                );
            }
            let interval: Interval = a.interval.parse().map_err(
                |e: crate::domain::market::candle::InvalidInterval| UsageError(e.to_string()),
            )?;
            let connection_id = match &a.connection {
                None => None,
                Some(name) => Some(
                    strategies::list_connections(c)?
                        .into_iter()
                        .find(|x| &x.name == name)
                        .ok_or_else(|| {
                            UsageError(format!(
                                "no connection named {name:?} (see `trademind connection list`)"
                            ))
                        })?
                        .id,
                ),
            };
            let mut parameters = parse_params(&a.params)?;
            if a.challenger_model.is_some() || a.challenger_prompt.is_some() {
                if let Some(path) = &a.challenger_prompt {
                    // A template the daemon could not read is refused now, not at its start.
                    std::fs::metadata(path).map_err(|e| {
                        UsageError(format!("--challenger-prompt {}: {e}", path.display()))
                    })?;
                }
                crate::app::shadow::Challenger {
                    model: a.challenger_model.clone(),
                    prompt: a.challenger_prompt.clone(),
                }
                .store_in(&mut parameters);
            }
            crate::domain::backtest::strategies::check_exits(&parameters).map_err(UsageError)?;
            if a.engine == crate::app::strategy_engine::ENGINE_NAME {
                // A strategy the daemon could not build is refused now, not at its first run.
                crate::app::strategy_engine::spec_from_parameters(&parameters)
                    .map_err(|e| UsageError(format!("--engine strategy: {e}")))?;
            }
            let new = NewStrategy {
                name: a.name.clone(),
                symbols,
                interval: interval.to_string(),
                decision_engine: a.engine.clone(),
                parameters,
                connection_id,
            };
            let allocation = match &a.allocation {
                Some(given) => parse_allocation(given)?,
                None => None,
            };
            let id = strategies::add_strategy(c, &new, now_ms()).map_err(not_found)?;
            if allocation.is_some() {
                strategies::set_allocation(c, &a.name, allocation, now_ms())?;
            }
            ctx.emit(&serde_json::json!({"id": id, "name": a.name}), || {
                println!(
                    "added strategy {:?} (disabled; `trademind strategy enable {}` to run it)",
                    a.name, a.name
                )
            })
        }
        StrategyCommand::Enable { name } => {
            strategies::set_active(c, &name, true, now_ms()).map_err(not_found)?;
            ctx.emit(&serde_json::json!({"name": name, "enabled": true}), || {
                println!("strategy {name:?} enabled")
            })
        }
        StrategyCommand::Disable { name } => {
            strategies::set_active(c, &name, false, now_ms()).map_err(not_found)?;
            ctx.emit(&serde_json::json!({"name": name, "enabled": false}), || {
                println!("strategy {name:?} disabled")
            })
        }
        StrategyCommand::Show { name } => {
            let row = strategies::strategy_by_name(c, &name)?
                .ok_or_else(|| UsageError(format!("no strategy named {name:?}")))?;
            ctx.emit(&row, || {
                println!("name:       {}", row.name);
                println!("enabled:    {} ({})", row.is_active, row.status);
                println!("symbols:    {}", row.symbols.join(", "));
                println!("interval:   {}", row.interval);
                println!("engine:     {}", row.decision_engine);
                println!("parameters: {}", row.parameters);
                if let Ok(a) = strategies::allocation_of(c, row.id) {
                    println!(
                        "allocation: {}",
                        a.map_or("the whole account".to_string(), |a| a.to_string())
                    );
                }
            })
        }
        StrategyCommand::Allocate { name, allocation } => {
            let allocation = parse_allocation(&allocation)?;
            strategies::set_allocation(c, &name, allocation, now_ms()).map_err(not_found)?;
            ctx.emit(
                &serde_json::json!({"name": name, "allocation": allocation}),
                || match allocation {
                    Some(a) => println!("strategy {name:?} trades on {a} of the account"),
                    None => println!("strategy {name:?} trades on the whole account"),
                },
            )
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Add an exchange connection; its credentials go in the keyring (`trademind keys set binance --connection NAME`).
    Add {
        name: String,
        /// binance or paper.
        #[arg(long, default_value = "binance", value_parser = ["binance", "paper"])]
        exchange: String,
        /// Use Binance's spot testnet (the default while exchange.binance.environment is
        /// "testnet", as it is out of the box).
        #[arg(long, conflicts_with = "production")]
        testnet: bool,
        /// Use Binance production: real money (the default only when
        /// exchange.binance.environment is "production").
        #[arg(long)]
        production: bool,
        /// The connection's own address: its REST API, market streams and WebSocket API all
        /// derived from it, ahead of exchange.binance.base_url (https://, or http://127.0.0.1
        /// for `fake-binance`).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// List connections (never their secrets).
    List,
    /// Remove a connection (its keyring entry stays until `keys delete`).
    Remove { name: String },
}

pub fn run_connection(cmd: ConnectionCommand, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let c = store.conn();
    match cmd {
        ConnectionCommand::Add {
            name,
            exchange,
            testnet,
            production,
            base_url,
        } => {
            if name.trim().is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(UsageError(format!(
                    "connection name {name:?}: use letters, digits, - and _"
                ))
                .into());
            }
            // Without a flag a Binance connection follows exchange.binance.environment (testnet
            // out of the box): `connection add NAME` used to make a production connection.
            let testnet = exchange == "binance"
                && (testnet
                    || (!production
                        && ctx.settings().exchange.binance.environment
                            == crate::services::exchange::binance::client::BinanceEnvironment::Testnet));
            let environment = match (exchange.as_str(), testnet) {
                ("paper", _) => "paper",
                (_, true) => "testnet",
                (_, false) => "production",
            };
            let base_url = base_url
                .map(|url| valid_base_url(&exchange, url))
                .transpose()?;
            let entry = (exchange == "binance").then(|| format!("binance:{name}"));
            let id = strategies::add_connection_with(
                c,
                strategies::NewConnection {
                    name: &name,
                    exchange: &exchange,
                    is_testnet: testnet,
                    keyring_entry: entry.as_deref(),
                    base_url: base_url.as_deref(),
                },
                now_ms(),
            )
            .map_err(not_found)?;
            ctx.emit(&serde_json::json!({"id": id, "name": name, "exchange": exchange, "environment": environment, "keyring_entry": entry, "base_url": base_url}), || {
                match &base_url {
                    Some(url) => println!("added connection {name:?} ({exchange}, {environment}, at {url})"),
                    None => println!("added connection {name:?} ({exchange}, {environment})"),
                }
                if environment == "production" {
                    println!("this connection trades real money once trading.live = true and `trademind live confirm` are given");
                }
                if let Some(e) = &entry {
                    println!("store its API key and secret with: trademind keys set binance --connection {name}   (keyring entry {e})");
                }
            })
        }
        ConnectionCommand::List => {
            let rows = strategies::list_connections(c)?;
            let environment =
                |r: &strategies::ConnectionRow| match (r.exchange.as_str(), r.is_testnet) {
                    ("paper", _) => "paper",
                    (_, true) => "testnet",
                    (_, false) => "production",
                };
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("environment".into(), environment(r).into());
                    }
                    v
                })
                .collect();
            ctx.emit(&json, || {
                if rows.is_empty() {
                    println!("no connections: trading uses the built-in paper exchange");
                }
                for r in &rows {
                    println!(
                        "{:<16} {:<8} {:<10} keyring: {}{}",
                        r.name,
                        r.exchange,
                        environment(r),
                        r.keyring_entry.as_deref().unwrap_or("-"),
                        r.base_url
                            .as_deref()
                            .map(|u| format!("  at {u}"))
                            .unwrap_or_default()
                    );
                }
            })
        }
        ConnectionCommand::Remove { name } => {
            strategies::remove_connection(c, &name).map_err(not_found)?;
            ctx.emit(&serde_json::json!({"removed": name}), || {
                println!("removed connection {name:?}")
            })
        }
    }
}

/// A connection's own address, as `exchange.binance.base_url` accepts one: https://, or
/// http://127.0.0.1 for the fake Binance; only for a Binance connection.
fn valid_base_url(exchange: &str, url: String) -> Result<String, UsageError> {
    if exchange != "binance" {
        return Err(UsageError(
            "--base-url is for a Binance connection (the paper exchange has no address)".into(),
        ));
    }
    let url = url.trim().trim_end_matches('/').to_string();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://127.0.0.1"))
        .unwrap_or_default();
    if host.is_empty() && !url.starts_with("http://127.0.0.1") {
        return Err(UsageError(format!(
            "--base-url {url:?}: must be https://HOST (or http://127.0.0.1:PORT for fake-binance)"
        )));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(UsageError(format!(
            "--base-url {url:?}: an address only, without a query"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_address_is_https_or_the_local_fake() {
        assert_eq!(
            valid_base_url("binance", "http://127.0.0.1:9400/".into()).unwrap(),
            "http://127.0.0.1:9400"
        );
        assert!(valid_base_url("binance", "https://proxy.example".into()).is_ok());
        for bad in [
            "http://example.com",
            "ftp://x",
            "https://",
            "https://x?a=1",
            "",
        ] {
            assert!(valid_base_url("binance", bad.into()).is_err(), "{bad}");
        }
        assert!(valid_base_url("paper", "https://proxy.example".into()).is_err());
    }

    #[test]
    fn params_parse_numbers_booleans_and_strings() {
        let v = parse_params(&[
            "fast=10".into(),
            "rule=seed".into(),
            "trail=true".into(),
            "k=1.5".into(),
        ])
        .unwrap();
        assert_eq!(v["fast"], 10);
        assert_eq!(v["rule"], "seed");
        assert_eq!(v["trail"], true);
        assert_eq!(v["k"], 1.5);
        assert!(parse_params(&["novalue".into()]).is_err());
        assert!(parse_params(&["=1".into()]).is_err());
    }
}
