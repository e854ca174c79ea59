//! `trademind status`: what a running (or stopped) TradeMind is doing, read from the database
//! by any process: open positions, open orders, the circuit breaker, and each job's last runs.

use anyhow::Result;
use serde::Serialize;

use super::Context;
use crate::domain::risk::CircuitBreaker;
use crate::services::monitoring::{ComponentHealth, components_from_jobs};
use crate::store::jobs::{JobHealth, job_health};
use crate::store::orders::StoredOrder;
use crate::store::positions::{PositionRow, open_positions};

#[derive(Serialize)]
struct Status {
    mode: &'static str,
    connection: String,
    breaker: CircuitBreaker,
    positions: Vec<PositionRow>,
    open_orders: Vec<StoredOrder>,
    jobs: Vec<JobHealth>,
    /// Health per component, from the jobs' last runs.
    components: Vec<ComponentHealth>,
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub fn run(ctx: &Context) -> Result<()> {
    let store = ctx.open_store_for_reading()?;
    let c = store.conn();
    let settings = ctx.settings();
    let jobs = job_health(c)?;
    let status = Status {
        // The same reading as the TUI header: a live testnet connection is TESTNET, not LIVE.
        mode: crate::app::snapshot::trading_mode(
            c,
            settings.trading.live,
            &settings.trading.connection,
        )?
        .label(),
        connection: settings.trading.connection.clone(),
        breaker: crate::store::risk::load_breaker(c, crate::store::risk::GLOBAL_SCOPE)?,
        positions: open_positions(c)?,
        open_orders: crate::store::orders::all(c)?
            .into_iter()
            .filter(|o| o.order.status.is_open())
            .collect(),
        components: components_from_jobs(&jobs),
        jobs,
    };
    ctx.emit(&status, || {
        println!(
            "mode:       {} (connection {})",
            status.mode, status.connection
        );
        let reason = status
            .breaker
            .reason
            .map(|r| format!(" ({})", r.as_str()))
            .unwrap_or_default();
        println!(
            "breaker:    {}{reason} since {}",
            status.breaker.state,
            time(status.breaker.since)
        );
        println!("positions:  {}", status.positions.len());
        for p in &status.positions {
            let pos = &p.position;
            println!(
                "  {:<10} qty {} @ {}  stop {}  target {}  unrealised {}",
                pos.symbol,
                pos.quantity,
                pos.entry_price,
                pos.stop_loss
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                pos.take_profit
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                p.unrealized_pnl
            );
        }
        println!("open orders: {}", status.open_orders.len());
        for o in &status.open_orders {
            let o = &o.order;
            println!(
                "  {} {} {} {} qty {} {}",
                o.client_order_id, o.symbol, o.side, o.order_type, o.quantity, o.status
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
