//! `trademind exchange info SYMBOL | balance | ping`: look at the exchange a connection uses
//! (the paper exchange by default).

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;

use super::{Context, UsageError};
use crate::domain::symbol::Symbol;
use crate::services::exchange::binance::client::{BinanceEnvironment, PingReport};
use crate::services::exchange::binance::{BinanceClient, Credentials};
use crate::services::exchange::paper::PaperExchange;
use crate::services::exchange::{Balance, Exchange};
use crate::store::strategies;

#[derive(Debug, Args)]
pub struct ExchangeArgs {
    /// Connection to use (default: trading.connection; "paper" is the built-in paper exchange).
    #[arg(long, global = true, value_name = "NAME")]
    pub connection: Option<String>,
    #[command(subcommand)]
    pub command: ExchangeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    /// The symbol's trading filters: price tick, quantity step, limits, minimum order value.
    Info { symbol: String },
    /// The account's balances (free and locked).
    Balance,
    /// Round trip time, clock offset and request weight used.
    Ping,
}

pub enum Venue {
    Paper(Box<PaperExchange>),
    Binance(Box<BinanceClient>),
}

/// The connection's Binance key pair: the environment first, then the OS keyring
/// (`trademind keys set binance --connection NAME`).
fn binance_secret_id(connection: &str) -> Result<crate::secrets::SecretId> {
    use crate::secrets::{ConnectionName, SecretId, SecretKind};
    let name = ConnectionName::new(connection).map_err(|e| UsageError(e.to_string()))?;
    Ok(SecretId::new(SecretKind::Binance, name))
}

async fn credentials(ctx: &Context, connection: &str) -> Result<Option<Credentials>> {
    use crate::secrets::{Credential, Secrets};
    let id = binance_secret_id(connection)?;
    let found = match Secrets::from_config(&ctx.settings().secrets).get(&id).await {
        Ok(found) => found,
        // Public endpoints work without a key; signed ones then fail with the fix named.
        Err(e @ crate::secrets::SecretError::KeyringUnavailable { .. }) => {
            tracing::warn!("{e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok(found.and_then(|r| match r.credential {
        Credential::KeyPair {
            api_key,
            api_secret,
        } => Some(Credentials::new(api_key.expose(), api_secret.expose())),
        Credential::ApiKey(_) => None,
    }))
}

fn open_paper(ctx: &Context, account: &str) -> Result<Venue> {
    let settings = ctx.settings();
    let mut config = settings.exchange.paper.clone();
    let start: Decimal = settings
        .trading
        .paper_starting_balance
        .parse()
        .map_err(|_| UsageError("trading.paper_starting_balance is not a number".into()))?;
    config.initial_balances = [("USDT".to_string(), start)].into_iter().collect();
    let store = ctx.open_store()?;
    Ok(Venue::Paper(Box::new(PaperExchange::open(
        store, account, &config,
    )?)))
}

pub async fn open(ctx: &Context, connection: Option<&str>) -> Result<(String, Venue, bool)> {
    let name = connection
        .map(str::to_string)
        .unwrap_or_else(|| ctx.settings().trading.connection.clone());
    if name == "paper" {
        return Ok((name, open_paper(ctx, "paper")?, true));
    }
    let rows = {
        let store = ctx.open_store()?;
        strategies::list_connections(store.conn())?
    };
    let row = rows.into_iter().find(|r| r.name == name).ok_or_else(|| {
        UsageError(format!(
            "no connection named {name:?} (see `trademind connection list`)"
        ))
    })?;
    if row.exchange == "paper" {
        return Ok((name.clone(), open_paper(ctx, &name)?, true));
    }
    let mut config = ctx.settings().exchange.binance.clone();
    config.environment = if row.is_testnet {
        BinanceEnvironment::Testnet
    } else {
        BinanceEnvironment::Production
    };
    let creds = credentials(ctx, &name).await?;
    let has_creds = creds.is_some();
    let client = BinanceClient::new(config, creds)?;
    Ok((name, Venue::Binance(Box::new(client)), has_creds))
}

fn parse_symbol(raw: &str) -> Result<Symbol> {
    Symbol::new(raw).map_err(|e| UsageError(e.to_string()).into())
}

pub async fn run(args: ExchangeArgs, ctx: &Context) -> Result<()> {
    let (name, venue, has_credentials) = open(ctx, args.connection.as_deref()).await?;
    match args.command {
        ExchangeCommand::Info { symbol } => {
            let symbol = parse_symbol(&symbol)?;
            let filters = match &venue {
                Venue::Paper(p) => p.symbol_filters(&symbol).await,
                Venue::Binance(b) => b.symbol_filters(&symbol).await,
            }
            .with_context(|| format!("exchange info for {symbol} on {name}"))?;
            let value =
                serde_json::json!({ "connection": name, "symbol": symbol, "filters": filters });
            ctx.emit(&value, || {
                println!(
                    "{symbol} on {name}: {} / {}",
                    filters.base_asset, filters.quote_asset
                );
                println!("  price tick      {}", filters.tick_size.normalize());
                println!(
                    "  price range     {} .. {}",
                    filters.min_price.normalize(),
                    filters.max_price.normalize()
                );
                println!("  quantity step   {}", filters.step_size.normalize());
                println!(
                    "  quantity range  {} .. {}",
                    filters.min_qty.normalize(),
                    filters.max_qty.normalize()
                );
                if let Some(step) = filters.market_step_size {
                    println!("  market step     {}", step.normalize());
                }
                println!(
                    "  min order value {} {}",
                    filters.min_notional.normalize(),
                    filters.quote_asset
                );
                if let Some(max) = filters.max_notional {
                    println!(
                        "  max order value {} {}",
                        max.normalize(),
                        filters.quote_asset
                    );
                }
            })
        }
        ExchangeCommand::Balance => {
            let balances: Vec<Balance> = match &venue {
                Venue::Paper(p) => p.balances().await,
                Venue::Binance(b) => {
                    if !has_credentials {
                        let vars = binance_secret_id(&name)?.env_vars();
                        return Err(UsageError(format!(
                            "connection {name:?} needs an API key: `trademind keys set binance --connection {name}` (or set {} and {})",
                            vars.api_key,
                            vars.api_secret.unwrap_or_default()
                        ))
                        .into());
                    }
                    b.balances().await
                }
            }
            .with_context(|| format!("balances on {name}"))?;
            ctx.emit(&balances, || {
                if balances.is_empty() {
                    println!("{name}: no balances");
                }
                println!("{:<8} {:>20} {:>20}", "ASSET", "FREE", "LOCKED");
                for b in &balances {
                    println!(
                        "{:<8} {:>20} {:>20}",
                        b.asset,
                        b.free.normalize(),
                        b.locked.normalize()
                    );
                }
            })
        }
        ExchangeCommand::Ping => {
            let report = match &venue {
                Venue::Paper(_) => PingReport {
                    base_url: "paper (local, no network)".into(),
                    latency_ms: 0,
                    clock_offset_ms: 0,
                    used_weight: 0,
                    weight_limit: 0,
                },
                Venue::Binance(b) => b
                    .ping()
                    .await
                    .map_err(|e| anyhow!(e))
                    .with_context(|| format!("ping {}", b.base_url()))?,
            };
            let value = serde_json::json!({ "connection": name, "ping": report });
            ctx.emit(&value, || {
                println!(
                    "{name} ({}): ok, latency {} ms, clock offset {} ms, weight used {}/{} per window",
                    report.base_url,
                    report.latency_ms,
                    report.clock_offset_ms,
                    report.used_weight,
                    report.weight_limit
                );
            })
        }
    }
}

/// The exchange a trading command uses (`--connection`, else `trading.connection`): its name,
/// the venue, and the trading mode the live guard checks. Binance without a key is refused
/// here, since every trading command needs signed requests.
pub async fn open_for_trading(
    ctx: &Context,
    connection: Option<&str>,
) -> Result<(
    String,
    crate::services::exchange::any::AnyExchange,
    crate::domain::trading::TradingMode,
)> {
    use crate::domain::trading::TradingMode;
    use crate::services::exchange::any::AnyExchange;
    let (name, venue, has_credentials) = open(ctx, connection).await?;
    Ok(match venue {
        Venue::Paper(p) => (name, AnyExchange::Paper(p), TradingMode::Paper),
        Venue::Binance(b) => {
            if !has_credentials {
                return Err(UsageError(format!(
                    "connection {name:?} needs an API key: `trademind keys set binance --connection {name}`"
                ))
                .into());
            }
            let is_testnet = {
                let store = ctx.open_store()?;
                strategies::list_connections(store.conn())?
                    .into_iter()
                    .any(|r| r.name == name && r.is_testnet)
            };
            let mode = crate::domain::trading::mode::mode_of(false, is_testnet);
            debug_assert!(mode != TradingMode::Paper);
            (name, AnyExchange::Binance(b), mode)
        }
    })
}
