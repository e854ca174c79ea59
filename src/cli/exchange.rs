//! `trademind exchange info SYMBOL | balance | ping`: look at the exchange a connection uses
//! (the paper exchange by default).

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Subcommand};

use super::{Context, UsageError};
use crate::app::venue::{self, ConnectedExchange};
use crate::domain::symbol::Symbol;
use crate::services::exchange::any::AnyExchange;
use crate::services::exchange::binance::client::PingReport;
use crate::services::exchange::{Balance, Exchange};

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

/// The exchange of `connection` (else `trading.connection`); `main` maps a usage mistake in a
/// `VenueError` to exit code 2.
pub(super) async fn open(ctx: &Context, connection: Option<&str>) -> Result<ConnectedExchange> {
    Ok(venue::open_exchange(ctx.settings(), &ctx.secrets(), connection).await?)
}

/// The exchange a trading command uses (`--connection`, else `trading.connection`); Binance
/// without a key is refused, since every trading request is signed.
pub(super) async fn open_for_trading(
    ctx: &Context,
    connection: Option<&str>,
) -> Result<ConnectedExchange> {
    Ok(venue::open_for_trading(ctx.settings(), &ctx.secrets(), connection).await?)
}

fn parse_symbol(raw: &str) -> Result<Symbol> {
    Symbol::new(raw).map_err(|e| UsageError(e.to_string()).into())
}

pub async fn run(args: ExchangeArgs, ctx: &Context) -> Result<()> {
    let venue = open(ctx, args.connection.as_deref()).await?;
    let name = venue.connection.clone();
    match args.command {
        ExchangeCommand::Info { symbol } => {
            let symbol = parse_symbol(&symbol)?;
            let filters = venue
                .exchange
                .symbol_filters(&symbol)
                .await
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
            let venue = venue.require_credentials()?;
            let balances: Vec<Balance> = venue
                .exchange
                .balances()
                .await
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
            let report = match &venue.exchange {
                AnyExchange::Paper(_) => PingReport {
                    base_url: "paper (local, no network)".into(),
                    latency_ms: 0,
                    clock_offset_ms: 0,
                    used_weight: 0,
                    weight_limit: 0,
                },
                AnyExchange::Binance(b) => b
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
