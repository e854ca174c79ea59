//! `trademind risk show|set|reset-breaker|kill`: the risk limits and the circuit breaker, read
//! from and written to the database so the daemon and the TUI see the same state.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::{Context, UsageError};
use crate::domain::risk::{BreakerTransition, CircuitBreaker, RiskConfig};
use crate::store::StoreError;
use crate::store::risk::{self as repo, BreakerRecord, ConfigSource, GLOBAL_SCOPE};

#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Show the effective risk limits, where they come from, and the circuit breaker.
    Show {
        /// A strategy's limits instead of the default.
        #[arg(long, value_name = "NAME")]
        strategy: Option<String>,
    },
    /// Change one limit (validated; `risk show` lists the keys), e.g. `risk set max_daily_loss_pct 2`.
    Set {
        key: String,
        value: String,
        /// Store it for this strategy only.
        #[arg(long, value_name = "NAME")]
        strategy: Option<String>,
    },
    /// Return a tripped circuit breaker to Active (new entries allowed again): the account's,
    /// or with `--strategy` that strategy's own.
    ResetBreaker {
        /// Reset this strategy's breaker (its book's), not the account's.
        #[arg(long, value_name = "NAME")]
        strategy: Option<String>,
    },
    /// Halt trading now (the kill switch): no new entries until `risk reset-breaker`.
    Kill,
}

#[derive(Serialize)]
struct Shown {
    strategy: Option<String>,
    /// The strategy's capital (`None`: the whole account; always `None` for the default).
    allocation: Option<crate::domain::trading::Allocation>,
    source: ConfigSource,
    config: RiskConfig,
    /// The account's breaker.
    breaker: CircuitBreaker,
    history: Vec<BreakerRecord>,
    /// Each strategy's book: its own breaker, daily loss and drawdown beside its limits (with
    /// `--strategy`, that one only).
    books: Vec<ShownBook>,
    /// Cooldowns and locks after stops in force now, every book of the connection.
    protections: Vec<repo::ActiveStopProtection>,
    as_of_ms: i64,
}

#[derive(Serialize)]
struct ShownBook {
    #[serde(flatten)]
    risk: crate::store::book_risk::BookRisk,
    max_daily_loss_pct: rust_decimal::Decimal,
    max_drawdown_pct: rust_decimal::Decimal,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// An unknown strategy is the user's mistake (exit 2), not a runtime failure.
fn usage_if_not_found(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => UsageError(format!("unknown {what}")).into(),
        other => other.into(),
    }
}

fn print_transition(t: &BreakerTransition) {
    println!(
        "circuit breaker: {} -> {} ({}) at {}",
        t.from,
        t.to,
        t.reason,
        fmt_time(t.at)
    );
}

pub fn run(cmd: RiskCommand, ctx: &Context) -> Result<()> {
    let base = &ctx.settings().risk;
    match cmd {
        RiskCommand::Show { strategy } => {
            let store = ctx.open_store()?;
            let (config, source) = repo::load_config(store.conn(), strategy.as_deref(), base)
                .map_err(usage_if_not_found)?;
            let allocation = match strategy.as_deref() {
                Some(name) => match crate::store::strategies::strategy_by_name(store.conn(), name)?
                {
                    Some(row) => crate::store::strategies::allocation_of(store.conn(), row.id)?,
                    None => None,
                },
                None => None,
            };
            let now = now_ms();
            let trading = &ctx.settings().trading;
            let candle_ms = trading
                .interval
                .parse::<crate::domain::market::Interval>()
                .map_or(3_600_000, |i| i.millis());
            let protections = repo::active_stop_protections(
                store.conn(),
                &trading.connection,
                base,
                candle_ms,
                now,
            )?;
            let account = super::status::account_view(store.conn(), ctx.settings(), now)?;
            let mut books = Vec::new();
            for risk in account.books {
                if strategy.as_deref().is_some_and(|s| s != risk.strategy) {
                    continue;
                }
                let (limits, _) = repo::load_config(store.conn(), Some(&risk.strategy), base)?;
                books.push(ShownBook {
                    risk,
                    max_daily_loss_pct: limits.max_daily_loss_pct,
                    max_drawdown_pct: limits.max_drawdown_pct,
                });
            }
            let shown = Shown {
                strategy,
                allocation,
                source,
                books,
                breaker: repo::load_breaker(store.conn(), GLOBAL_SCOPE)?,
                history: repo::breaker_history(store.conn(), GLOBAL_SCOPE, 5)?,
                config,
                protections,
                as_of_ms: now,
            };
            ctx.emit(&shown, || {
                let who = shown.strategy.as_deref().unwrap_or("default");
                let from = match shown.source {
                    ConfigSource::Settings => "the [risk] settings",
                    ConfigSource::StoredDefault => "the stored default",
                    ConfigSource::Strategy => "the strategy's stored limits",
                };
                println!("risk limits ({who}, from {from}):");
                if shown.strategy.is_some() {
                    // The limits' percentages are of this capital, not of the account.
                    println!(
                        "  {:<28} {}",
                        "allocation",
                        shown
                            .allocation
                            .map_or("the whole account".to_string(), |a| a.to_string())
                    );
                }
                for (k, v) in shown.config.entries() {
                    println!("  {k:<28} {v}");
                }
                let b = &shown.breaker;
                print!("circuit breaker (account): {}", b.state);
                if let Some(r) = b.reason {
                    print!(" ({r}) since {}", fmt_time(b.since));
                }
                if let Some(u) = b.until {
                    print!(", until {}", fmt_time(u));
                }
                println!();
                for r in &shown.history {
                    let reason = r.reason.map(|r| r.to_string()).unwrap_or_default();
                    println!("  {}  {:<12} {reason}", fmt_time(r.changed_at), r.state);
                }
                if !shown.books.is_empty() {
                    println!("strategy breakers (each book's own; either one stops its entries):");
                }
                for book in &shown.books {
                    let r = &book.risk;
                    let pct = |d: rust_decimal::Decimal| d.round_dp(2).normalize();
                    let mut line = format!(
                        "  {:<12} {:<12} daily loss {} % / {} %  drawdown {} % / {} %",
                        r.strategy,
                        r.breaker.state.as_str(),
                        pct(r.daily_loss_pct),
                        pct(book.max_daily_loss_pct),
                        pct(r.drawdown_pct),
                        pct(book.max_drawdown_pct),
                    );
                    if let Some(reason) = r.breaker.reason.filter(|_| r.breaker_ever_moved) {
                        line.push_str(&format!("  ({reason}) since {}", fmt_time(r.breaker.since)));
                    }
                    if let Some(u) = r.breaker.until {
                        line.push_str(&format!(", until {}", fmt_time(u)));
                    }
                    println!("{line}");
                }
                if shown.protections.is_empty() {
                    println!("cooldowns and locks after stops: none in force");
                } else {
                    println!("cooldowns and locks after stops:");
                }
                for p in &shown.protections {
                    println!(
                        "  {:<12} {:<10} {} left  {}",
                        p.book_name(),
                        p.symbol,
                        crate::format::duration(p.protection.until() - shown.as_of_ms),
                        p.protection.describe()
                    );
                }
            })
        }
        RiskCommand::Set {
            key,
            value,
            strategy,
        } => {
            let store = ctx.open_store()?;
            // Read, change and store in one immediate transaction: a concurrent `risk set` of
            // another key waits for this one instead of overwriting it with a stale copy.
            let updated = repo::update_config(
                store.conn(),
                strategy.as_deref(),
                base,
                now_ms(),
                |current| current.with_value(&key, &value),
            )
            .map_err(usage_if_not_found)?
            .map_err(|e| UsageError(e.to_string()))?;
            let who = strategy.as_deref().unwrap_or("default");
            let shown = updated
                .entries()
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
                .unwrap_or(value);
            ctx.emit(&updated, || println!("risk.{key} = {shown} ({who})"))
        }
        RiskCommand::ResetBreaker { strategy } => {
            let store = ctx.open_store()?;
            let scope = match strategy.as_deref() {
                Some(name) => {
                    crate::store::strategies::strategy_by_name(store.conn(), name)?
                        .ok_or_else(|| UsageError(format!("unknown strategy {name:?}")))?;
                    crate::store::book_risk::book_scope(name)
                }
                None => GLOBAL_SCOPE,
            };
            let transition = repo::update_breaker(store.conn(), scope, |_, breaker| {
                let t = breaker.reset(now_ms());
                Ok((t.clone(), t.into_iter().collect()))
            })?;
            let whose = strategy.map_or_else(|| "account".to_string(), |s| format!("strategy {s}"));
            ctx.emit(&transition, || match &transition {
                Some(t) => {
                    print!("{whose}: ");
                    print_transition(t);
                }
                None => println!("{whose}: circuit breaker already active"),
            })
        }
        RiskCommand::Kill => {
            let store = ctx.open_store()?;
            let (config, _) = repo::load_config(store.conn(), None, base)?;
            let t = repo::stop_trading(
                store.conn(),
                &config,
                repo::ManualStop::Kill,
                "cli",
                "kill switch from the command line",
                now_ms(),
            )?;
            ctx.emit(&t, || {
                print_transition(&t);
                println!(
                    "no new entries until `trademind risk reset-breaker`; closes still go through"
                );
            })
        }
    }
}
