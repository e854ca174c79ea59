//! The trading one-shots (the seed's REST API as subcommands): `execute SYMBOL`, `positions`,
//! `orders`, `trades`, `close SYMBOL`, `cancel ORDER`, `pause`, `resume`. Reads come straight
//! from the database; anything that touches the exchange goes through `app::trading`.

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use std::sync::{Arc, Mutex};

use super::{Context, UsageError};
use crate::app::bus::EventBus;
use crate::app::decide::DecisionEngine as _;
use crate::app::trading::{ExecutionReport, TradingService};
use crate::app::venue::trading_service;
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;
use crate::format::{self as fmt, Precision};
use crate::services::exchange::any::AnyExchange;
use crate::store::account::Protection;
use crate::store::risk::{ManualStop, is_manually_stopped, resume_trading, stop_trading};
use crate::store::{Store, orders, positions};

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Symbol to decide on and trade, e.g. BTCUSDT.
    pub symbol: String,
    /// Trade for this strategy (its interval, engine and risk limits).
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// Decision engine: llm (needs a Grok key) or rules. Default: the strategy's (rules, llm or
    /// its built-in backtest strategy), else llm when a key is configured.
    #[arg(long, value_parser = ["llm", "rules"])]
    pub engine: Option<String>,
    /// Connection to trade on (default: the strategy's own connection, which is the paper
    /// exchange for a strategy added without one; without --strategy, trading.connection).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
pub struct PositionsArgs {
    /// Closed positions (most recent first) instead of open ones.
    #[arg(long)]
    pub closed: bool,
    /// How many closed positions to list.
    #[arg(long, default_value_t = 50)]
    pub last: usize,
}

#[derive(Debug, Args)]
pub struct OrdersArgs {
    /// Only orders that can still trade.
    #[arg(long)]
    pub open: bool,
    #[arg(long)]
    pub symbol: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub last: usize,
}

#[derive(Debug, Args)]
pub struct TradesArgs {
    #[arg(long, default_value_t = 50)]
    pub last: usize,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    pub symbol: String,
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
    /// The book whose position to close: a strategy's name, or `default` for positions opened
    /// without a strategy. Needed only when several books hold the symbol.
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProtectArgs {
    pub symbol: String,
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
    /// The book whose position to protect: a strategy's name, or `default` for positions
    /// opened without a strategy. Needed only when several books hold the symbol.
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
}

/// The book `--strategy NAME` names: that strategy's, or the default book for `default` (when
/// no strategy is called that).
fn book_named(
    conn: &rusqlite::Connection,
    name: Option<&str>,
) -> Result<Option<positions::BookId>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match crate::store::strategies::strategy_by_name(conn, name)? {
        Some(s) => Ok(Some(Some(s.id))),
        None if name == positions::DEFAULT_BOOK => Ok(Some(None)),
        None => Err(UsageError(format!(
            "unknown strategy {name:?} (`default` names the default book)"
        ))
        .into()),
    }
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Client order id (see `trademind orders --open`).
    pub client_order_id: String,
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Why (logged and shown with the breaker).
    #[arg(long, default_value = "paused from the command line")]
    pub reason: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn parse_interval(raw: &str) -> Result<Interval> {
    raw.parse()
        .map_err(|e: crate::domain::market::candle::InvalidInterval| {
            UsageError(e.to_string()).into()
        })
}

fn parse_symbol(raw: &str) -> Result<Symbol> {
    Symbol::new(raw).map_err(|e| UsageError(e.to_string()).into())
}

/// The trading service on the chosen connection, reconciled with the exchange first.
async fn service(
    ctx: &Context,
    connection: Option<&str>,
) -> Result<(TradingService<AnyExchange>, Arc<Mutex<Store>>)> {
    let store = Arc::new(Mutex::new(ctx.open_store()?));
    let service = trading_service(
        Arc::new(ctx.settings().clone()),
        store.clone(),
        connection,
        EventBus::new(64),
    )
    .await?;
    let report = service
        .reconcile(now_ms())
        .await
        .context("reconciliation with the exchange")?;
    if !ctx.json {
        for line in &report.resolved {
            println!("reconciled: {line}");
        }
        for line in &report.unresolved {
            println!("UNRESOLVED: {line}");
        }
    }
    Ok((service, store))
}

fn print_report(r: &ExecutionReport) {
    println!(
        "{} {}: {}{}",
        r.action,
        r.symbol,
        r.outcome,
        if r.message.is_empty() {
            String::new()
        } else {
            format!(" — {}", r.message)
        }
    );
    if !r.order_ids.is_empty() {
        println!("  orders: {}", r.order_ids.join(", "));
    }
    if let Some(id) = r.decision_id {
        println!("  recorded as decision #{id}");
    }
}

pub async fn run_execute(args: ExecuteArgs, ctx: &Context) -> Result<()> {
    let symbol = parse_symbol(&args.symbol)?;
    let strategy = match &args.strategy {
        Some(name) => {
            let store = ctx.open_store()?;
            Some(
                crate::store::strategies::strategy_by_name(store.conn(), name)?
                    .ok_or_else(|| UsageError(format!("unknown strategy {name:?}")))?,
            )
        }
        None => None,
    };
    let interval = parse_interval(
        strategy
            .as_ref()
            .map_or(ctx.settings().trading.interval.as_str(), |s| {
                s.interval.as_str()
            }),
    )?;
    let engine_name = args.engine.clone().or_else(|| {
        strategy
            .as_ref()
            .filter(|s| s.decision_engine == "rules")
            .map(|s| s.decision_engine.clone())
    });
    // A strategy trades on its own connection (the paper exchange when it was added without
    // one), never on `trading.connection`.
    let connection = match &strategy {
        Some(s) => Some(crate::app::venue::connection_for_command(
            ctx.open_store()?.conn(),
            s,
            args.connection.as_deref(),
        )?),
        None => args.connection.clone(),
    };
    let (service, store) = service(ctx, connection.as_deref()).await?;
    let runs_strategy = strategy.as_ref().filter(|s| {
        args.engine.is_none() && s.decision_engine == crate::app::strategy_engine::ENGINE_NAME
    });
    let (engine, notice) = match runs_strategy {
        Some(s) => (
            crate::app::decide::AnyEngine::Strategy(
                crate::app::strategy_engine::StrategyEngine::from_parameters(&s.parameters)
                    .map_err(|e| UsageError(format!("strategy {:?}: {e}", s.name)))?,
            ),
            None,
        ),
        None => super::decide::choose_engine(ctx, engine_name.as_deref(), store.clone()).await?,
    };
    let now = now_ms();
    // The decision sees the position of the strategy's own book (the default book without one).
    let book = strategy.as_ref().map(|s| s.id);
    let input = match service_exchange(&service) {
        ExchangeKind::Paper => {
            // The paper exchange has no market of its own: price it from the latest candle.
            let mut input = {
                let db = store
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
                super::decide::stored_input(
                    ctx,
                    &db,
                    &symbol,
                    interval,
                    now,
                    super::decide::Missing::ImportBundled,
                )?
                .0
            };
            service.seed_paper_price(&symbol, input.price)?;
            service.complete_input(&mut input, book)?;
            input
        }
        ExchangeKind::Binance => service.decision_input(&symbol, interval, book, now).await?,
    };
    let out = engine.decide(&input).await;
    let report = service
        .execute_decision(&input, &out, strategy.as_ref().map(|s| s.id), now)
        .await?;
    ctx.emit(
        &json!({ "notice": notice, "engine": out.engine, "report": report }),
        || {
            if let Some(n) = &notice {
                println!("{n}");
            }
            print_report(&report);
        },
    )
}

enum ExchangeKind {
    Paper,
    Binance,
}

fn service_exchange(service: &TradingService<AnyExchange>) -> ExchangeKind {
    match service.exchange().as_ref() {
        AnyExchange::Paper(_) => ExchangeKind::Paper,
        AnyExchange::Binance(_) => ExchangeKind::Binance,
    }
}

/// What `positions --json` prints: open positions as the account read model shows them (with
/// the protection their live orders give them now), or closed position rows.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum PositionsReport {
    Open(Vec<crate::store::account::PositionStatus>),
    Closed(Vec<positions::PositionRow>),
}

/// The rows `trademind positions` shows: open ones from `store::account` (as the TUI and
/// `status` show them), or the `last` closed ones.
pub fn positions_report(
    conn: &rusqlite::Connection,
    closed: bool,
    last: usize,
) -> Result<PositionsReport> {
    Ok(if closed {
        PositionsReport::Closed(positions::closed_positions(conn, last)?)
    } else {
        PositionsReport::Open(crate::store::account::open_positions(conn)?)
    })
}

fn opt_price(v: Option<crate::domain::Price>, prec: &Precision) -> String {
    v.map_or("-".into(), |v| fmt::price(v, prec))
}

/// How `symbol`'s prices and quantities are written on this configuration.
fn precision(ctx: &Context, symbol: &str) -> Precision {
    Precision::paper_or_guess(&ctx.settings().exchange.paper, symbol)
}

pub fn run_positions(args: PositionsArgs, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let report = positions_report(store.conn(), args.closed, args.last)?;
    ctx.emit(&report, || match &report {
        PositionsReport::Open(rows) if rows.is_empty() => println!("no open positions"),
        PositionsReport::Closed(rows) if rows.is_empty() => println!("no closed positions"),
        PositionsReport::Open(rows) => {
            // The stop and target shown are the LIVE legs: a cancelled leg protects nothing.
            println!(
                "{:<5} {:<16} {:<12} {:<10} {:>14} {:>14} {:>12} {:>12} {:<12} {:>14} {:>14}",
                "ID",
                "CONNECTION",
                "STRATEGY",
                "SYMBOL",
                "QTY",
                "ENTRY",
                "STOP",
                "TARGET",
                "PROTECTION",
                "UNREALISED",
                "REALISED"
            );
            for s in rows {
                let (r, p) = (&s.row, &s.row.position);
                let prec = precision(ctx, p.symbol.as_str());
                println!(
                    "{:<5} {:<16} {:<12} {:<10} {:>14} {:>14} {:>12} {:>12} {:<12} {:>14} {:>14}",
                    r.id,
                    r.connection,
                    r.book(),
                    p.symbol,
                    fmt::qty(p.quantity, &prec),
                    fmt::price(p.entry_price, &prec),
                    opt_price(s.live_stop, &prec),
                    opt_price(s.live_target, &prec),
                    s.protection.label(),
                    fmt::amount_signed(r.unrealized_pnl, &prec.quote),
                    fmt::amount_signed(p.realized_pnl, &prec.quote)
                );
                if !s.dust.is_zero() && s.protection != Protection::Dust {
                    println!(
                        "      + {} {} dust the exchange will not sell",
                        s.dust, p.symbol
                    );
                }
            }
        }
        PositionsReport::Closed(rows) => {
            println!(
                "{:<5} {:<16} {:<12} {:<10} {:>14} {:>14} {:>12} {:>12} {:>14}",
                "ID",
                "CONNECTION",
                "STRATEGY",
                "SYMBOL",
                "QTY",
                "ENTRY",
                "STOP",
                "TARGET",
                "REALISED"
            );
            for r in rows {
                let p = &r.position;
                let prec = precision(ctx, p.symbol.as_str());
                println!(
                    "{:<5} {:<16} {:<12} {:<10} {:>14} {:>14} {:>12} {:>12} {:>14}",
                    r.id,
                    r.connection,
                    r.book(),
                    p.symbol,
                    fmt::qty(p.quantity, &prec),
                    fmt::price(p.entry_price, &prec),
                    opt_price(p.stop_loss, &prec),
                    opt_price(p.take_profit, &prec),
                    fmt::amount_signed(p.realized_pnl, &prec.quote)
                );
            }
        }
    })
}

pub fn run_orders(args: OrdersArgs, ctx: &Context) -> Result<()> {
    let symbol = args.symbol.as_deref().map(parse_symbol).transpose()?;
    let store = ctx.open_store()?;
    let rows = orders::list(
        store.conn(),
        args.open,
        symbol.as_ref().map(|s| s.as_str()),
        args.last,
    )?;
    ctx.emit(&rows, || {
        if rows.is_empty() {
            println!("no orders");
            return;
        }
        for r in &rows {
            let o = &r.order;
            let prec = precision(ctx, o.symbol.as_str());
            println!(
                "{:<36} {:<10} {:<4} {:<15} {:<16} {:<11} qty {} filled {}{}{}",
                o.client_order_id,
                o.symbol,
                o.side,
                o.order_type,
                fmt::status(o.status.as_str()),
                r.purpose,
                fmt::qty(o.quantity, &prec),
                fmt::qty(o.filled_quantity, &prec),
                o.price.map_or(String::new(), |p| format!(
                    " limit {}",
                    fmt::price(p, &prec)
                )),
                o.stop_price.map_or(String::new(), |p| format!(
                    " trigger {}",
                    fmt::price(p, &prec)
                )),
            );
        }
    })
}

pub fn run_trades(args: TradesArgs, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let rows = orders::trades(store.conn(), args.last)?;
    ctx.emit(&rows, || {
        if rows.is_empty() {
            println!("no trades");
            return;
        }
        for t in &rows {
            let f = &t.fill;
            let prec = precision(ctx, f.symbol.as_str());
            let at = fmt::timestamp(f.time);
            println!(
                "{at}  {:<10} {:<4} {} at {}  fee {} {}  {:<11}{}",
                f.symbol,
                f.side,
                fmt::qty(f.quantity, &prec),
                fmt::price(f.price, &prec),
                fmt::fee(f.fee, &f.fee_asset),
                f.fee_asset,
                t.purpose,
                t.realized_pnl.map_or(String::new(), |p| format!(
                    "  realised {}",
                    fmt::money_signed(p, &prec.quote)
                ))
            );
        }
    })
}

pub async fn run_close(args: CloseArgs, ctx: &Context) -> Result<()> {
    let symbol = parse_symbol(&args.symbol)?;
    let (service, _) = service(ctx, args.connection.as_deref()).await?;
    if let AnyExchange::Paper(_) = service.exchange().as_ref() {
        seed_paper_from_candles(ctx, &service, &symbol)?;
    }
    let (book, before) = {
        let store = ctx.open_store()?;
        let book = book_named(store.conn(), args.strategy.as_deref())?;
        let before = match book {
            Some(b) => {
                positions::open_position(store.conn(), service.connection(), symbol.as_str(), b)?
            }
            None => {
                let mut open =
                    positions::open_in_symbol(store.conn(), service.connection(), symbol.as_str())?;
                if open.len() == 1 { open.pop() } else { None }
            }
        };
        (book, before)
    };
    let report = service.close_position(&symbol, book, now_ms()).await?;
    // The position's own realised PnL (net of the entry's fees too), as `positions` shows it:
    // the report's figure covers only the exit's fills.
    let after = match &before {
        Some(row) => positions::get(ctx.open_store()?.conn(), row.id)?,
        None => None,
    };
    let value = json!({ "report": report, "position": after });
    ctx.emit(&value, || {
        print_report(&report);
        if let Some(row) = &after {
            let p = &row.position;
            println!(
                "  position #{} {}: realised {} (net of {} fees){}",
                row.id,
                if p.closed_at.is_some() {
                    "closed"
                } else {
                    "still open"
                },
                p.realized_pnl,
                p.fees_paid,
                if p.closed_at.is_some() {
                    String::new()
                } else {
                    format!(", {} left", p.quantity)
                }
            );
        }
    })
}

pub async fn run_protect(args: ProtectArgs, ctx: &Context) -> Result<()> {
    let symbol = parse_symbol(&args.symbol)?;
    let book = {
        let store = ctx.open_store()?;
        book_named(store.conn(), args.strategy.as_deref())?
    };
    let (service, _) = service(ctx, args.connection.as_deref()).await?;
    let report = service.protect(&symbol, book, now_ms()).await?;
    ctx.emit(&json!({ "report": report }), || print_report(&report))
}

/// Price the paper exchange from the latest stored candle (it has no market of its own).
fn seed_paper_from_candles(
    ctx: &Context,
    service: &TradingService<AnyExchange>,
    symbol: &Symbol,
) -> Result<()> {
    let interval: Interval =
        ctx.settings().trading.interval.parse().map_err(
            |e: crate::domain::market::candle::InvalidInterval| UsageError(e.to_string()),
        )?;
    let store = ctx.open_store()?;
    let (candles, _) = super::decide::candles(
        &store,
        symbol,
        interval,
        super::decide::Missing::ImportBundled,
        now_ms(),
    )?;
    if let Some(last) = candles.last() {
        service.seed_paper_price(symbol, last.close)?;
    }
    Ok(())
}

pub async fn run_cancel(args: CancelArgs, ctx: &Context) -> Result<()> {
    let (service, _) = service(ctx, args.connection.as_deref()).await?;
    let order = service
        .cancel_order(&args.client_order_id, now_ms())
        .await?;
    ctx.emit(&order, || {
        println!(
            "order {} ({} {}) is now {}",
            order.client_order_id, order.side, order.symbol, order.status
        )
    })
}

/// `trademind reconcile`: what every trading command does first, on its own, with the report.
pub async fn run_reconcile(args: ReconcileArgs, ctx: &Context) -> Result<()> {
    let (service, _) = service(ctx, args.connection.as_deref()).await?;
    let unresolved = service.unresolved();
    // What the exchange holds beyond every book's positions, as this reconciliation measured it.
    let (unmanaged, dust) = {
        let store = ctx.open_store()?;
        let dust: Vec<_> = crate::store::account::open_positions(store.conn())?
            .into_iter()
            .filter(|p| {
                p.row.connection == service.connection() && p.protection == Protection::Dust
            })
            .collect();
        (
            positions::unmanaged(store.conn(), service.connection())?,
            dust,
        )
    };
    ctx.emit(
        &json!({
            "reconciled": unresolved.is_empty(),
            "unresolved": unresolved,
            "unmanaged": unmanaged,
            "dust": dust,
        }),
        || {
            if unresolved.is_empty() {
                println!("reconciled with the exchange: nothing left to resolve");
            }
            for d in &dust {
                println!(
                    "dust: {} {} (book {}) the exchange will not sell; it needs no protection",
                    d.row.position.quantity,
                    d.row.position.symbol,
                    d.row.book()
                );
            }
            for h in &unmanaged {
                println!(
                    "unmanaged: {} {} held beyond the books' {} (no strategy sells it)",
                    h.surplus(),
                    h.asset,
                    h.books_total
                );
            }
        },
    )?;
    if unresolved.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} discrepancy(ies) left; trading stays paused until they are resolved",
            unresolved.len()
        ))
    }
}

pub fn run_pause(args: PauseArgs, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let (config, _) = crate::store::risk::load_config(store.conn(), None, &ctx.settings().risk)?;
    let t = stop_trading(
        store.conn(),
        &config,
        // The operator's pause, as the TUI's `p`: kept apart from the kill switch
        // (`risk kill`) so the header and `status` say which one stopped trading.
        ManualStop::Pause,
        "cli",
        &args.reason,
        now_ms(),
    )?;
    tracing::warn!(reason = %args.reason, "trading paused from the command line");
    let value = json!({ "paused": true, "reason": args.reason, "transition": t });
    ctx.emit(&value, || {
        println!(
            "trading paused ({}): no new entries until `trademind resume`; the breaker is {}",
            args.reason, t.to
        )
    })
}

pub fn run_resume(ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let t = resume_trading(store.conn(), "cli", now_ms())?;
    let paused = is_manually_stopped(store.conn())?;
    let value = json!({ "paused": paused, "transition": t });
    ctx.emit(&value, || match &t {
        Some(t) => println!("trading resumed: the breaker is {} again", t.to),
        None => println!("trading was not paused"),
    })
}
