//! `trademind status`: what a running (or stopped) TradeMind is doing, read from the database
//! by any process: whether a daemon is alive, open positions, open orders, the circuit breaker,
//! and each job's last runs.

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;

use super::Context;
use crate::config::Settings;
use crate::format as fmt;
use crate::services::monitoring::{ComponentHealth, components_from_jobs};
use crate::store::account::{self, AccountQuery, AccountView, EquitySource, Protection};
use crate::store::heartbeat::{self, DaemonPresence};
use crate::store::jobs::{JobHealth, job_health};
use crate::store::orders::StoredOrder;

/// What `status --json` prints.
#[derive(Debug, Serialize)]
pub struct Status {
    pub mode: &'static str,
    /// Whether a daemon runs on this data dir (its heartbeat), with its pid and last cycle.
    pub daemon: DaemonPresence,
    /// The account as every face shows it: equity, PnL, trading state, breaker, positions
    /// with their protection, exact counts.
    #[serde(flatten)]
    pub account: AccountView,
    pub open_orders: Vec<StoredOrder>,
    pub jobs: Vec<JobHealth>,
    /// Health per component, from the jobs' last runs.
    pub components: Vec<ComponentHealth>,
}

fn time(ms: i64) -> String {
    crate::format::timestamp(ms)
}

/// The status of `settings.trading.connection` as of `now_ms` (the caller's clock: the
/// command passes the wall clock; tests pass the run's), read from the account read model.
pub fn build(c: &Connection, settings: &Settings, now_ms: i64) -> Result<Status> {
    let jobs = job_health(c)?;
    let connection = settings.trading.connection.clone();
    // The same reading as the TUI header: a testnet connection is TESTNET.
    let mode = crate::store::strategies::connection_mode(c, &connection)?;
    let account = account_view(c, settings, now_ms)?;
    Ok(Status {
        mode: mode.label(),
        daemon: heartbeat::presence(c, now_ms)?,
        account,
        open_orders: crate::store::orders::all(c)?
            .into_iter()
            .filter(|o| o.order.status.is_open())
            .collect(),
        components: components_from_jobs(&jobs),
        jobs,
    })
}

/// The account read model of `settings.trading.connection` as of `now_ms` (`status` and
/// `risk show` read it).
pub fn account_view(c: &Connection, settings: &Settings, now_ms: i64) -> Result<AccountView> {
    let connection = &settings.trading.connection;
    let paper_start = match crate::store::strategies::connection_mode(c, connection)? {
        crate::domain::trading::TradingMode::Paper => {
            settings.trading.paper_starting_balance.parse().ok()
        }
        _ => None,
    };
    Ok(account::load(
        c,
        &AccountQuery {
            connection,
            now_ms,
            day_start_ms: account::utc_day_start(now_ms),
            paper_starting_balance: paper_start,
            unresolved: Vec::new(),
        },
    )?)
}

pub fn run(ctx: &Context) -> Result<()> {
    let store = ctx.open_store_for_reading()?;
    let status = build(
        store.conn(),
        ctx.settings(),
        chrono::Utc::now().timestamp_millis(),
    )?;
    ctx.emit(&status, || {
        let a = &status.account;
        println!("mode:       {} (connection {})", status.mode, a.connection);
        println!("process:    {}", status.daemon.describe(time));
        println!("trading:    {}", a.trading.describe(time));
        println!("breaker:    {}", a.describe_breaker(time));
        for b in &a.books {
            println!(
                "  {:<10} {} · daily loss {} % · drawdown {} %",
                b.strategy,
                b.describe_breaker(time),
                b.daily_loss_pct
                    .max(rust_decimal::Decimal::ZERO)
                    .round_dp(2)
                    .normalize(),
                b.drawdown_pct.round_dp(2).normalize()
            );
        }
        let source = match a.equity_source {
            EquitySource::Snapshot { at_ms } => format!("as of {}", time(at_ms)),
            EquitySource::PaperBalance => "paper balance, no snapshot yet".into(),
            EquitySource::Unknown => "unknown until the engine has run".into(),
        };
        let ccy = ctx
            .settings()
            .trading
            .symbols
            .first()
            .map(|s| fmt::Precision::guess(s).quote)
            .unwrap_or_else(|| "USDT".into());
        println!("equity:     {} ({source})", fmt::money(a.equity, &ccy));
        println!(
            "pnl:        realised {}  unrealised {}  today {} ({})",
            fmt::money_signed(a.realised_pnl, &ccy),
            fmt::money_signed(a.unrealised_pnl, &ccy),
            fmt::money_signed(a.day_pnl, &ccy),
            fmt::pct_signed(a.day_pnl_pct)
        );
        println!(
            "counts:     {} decisions, {} trades, {} closed positions",
            a.counts.decisions, a.counts.trades, a.counts.closed_positions
        );
        println!("positions:  {}", a.positions.len());
        for p in &a.positions {
            let pos = &p.row.position;
            let prec =
                fmt::Precision::paper_or_guess(&ctx.settings().exchange.paper, pos.symbol.as_str());
            let price = |v: Option<crate::domain::Price>| {
                v.map(|v| fmt::price(v, &prec))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "  {:<10} {:<10} qty {} @ {}  stop {}  target {}  {}  unrealised {}",
                p.row.book(),
                pos.symbol,
                fmt::qty(pos.quantity, &prec),
                fmt::price(pos.entry_price, &prec),
                price(p.live_stop),
                price(p.live_target),
                p.protection.label(),
                fmt::money_signed(p.row.unrealized_pnl, &prec.quote)
            );
            if !p.dust.is_zero() && p.protection != Protection::Dust {
                println!(
                    "             + {} {} dust the exchange will not sell (not protected, not needed)",
                    p.dust, pos.symbol
                );
            }
        }
        for h in &a.unmanaged {
            // A measurement of the last reconciliation: the books have moved since, the surplus
            // (what no book holds) has not unless someone traded by hand.
            println!(
                "unmanaged:  {} {} beyond what the books held (at the reconciliation of {}; never sold by a strategy)",
                h.surplus(),
                h.asset,
                fmt::timestamp(h.checked_at)
            );
        }
        println!("open orders: {}", status.open_orders.len());
        for o in &status.open_orders {
            let o = &o.order;
            let prec =
                fmt::Precision::paper_or_guess(&ctx.settings().exchange.paper, o.symbol.as_str());
            println!(
                "  {} {} {} {} qty {} {}",
                o.client_order_id,
                o.symbol,
                o.side,
                fmt::order_type(o.order_type.as_str()),
                fmt::qty(o.quantity, &prec),
                fmt::status(o.status.as_str())
            );
        }
        println!("health:");
        if status.components.is_empty() {
            println!("  nothing has run yet (is `trademind --daemon` running?)");
        }
        for h in &status.components {
            println!(
                "  {:<10} {}  {}",
                h.component,
                if h.healthy { "ok  " } else { "FAIL" },
                if h.healthy {
                    h.last_success
                        .map(|t| format!("last ok {}", time(t)))
                        .unwrap_or_default()
                } else {
                    h.detail.clone()
                }
            );
        }
        println!("jobs:");
        if status.jobs.is_empty() {
            println!("  no job has run yet");
        }
        for j in &status.jobs {
            println!(
                "  {:<20} runs {:<5} last {}  last ok {}{}",
                j.job,
                j.runs,
                j.last_run.map(time).unwrap_or_else(|| "-".into()),
                j.last_success.map(time).unwrap_or_else(|| "-".into()),
                j.last_error
                    .as_ref()
                    .map(|(at, e)| format!("  last error {} at {}", e, time(*at)))
                    .unwrap_or_default()
            );
        }
    })
}
