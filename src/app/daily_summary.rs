//! The daily summary (`telegram.daily_summary_hour`): once per UTC day, at or after that hour,
//! the daemon sends the account as `status` and the TUI read it (`store::account`) — equity,
//! the day's PnL, the day's trades, open positions with their protection, the trading and
//! breaker state, its own uptime — through the alert pipeline, so the Telegram chats and every
//! channel whose `events` take `daily_summary` get it. The alert's dedup key names the day
//! (`daily_summary/2026-01-02`): a day's summary that was sent (or deliberately not sent) is
//! never sent again, also by a restarted daemon; one that failed everywhere is tried again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::scheduler::Clock;
use crate::app::trading::{TradingError, TradingService};
use crate::config::Settings;
use crate::format as fmt;
use crate::services::exchange::Exchange;
use crate::services::notification::{Alert, AlertKind, AlertOutcome, already_alerted};
use crate::store::account::{AccountView, EquitySource, Protection};
use crate::store::heartbeat::DaemonPresence;
use crate::store::orders::TradeRow;
use crate::store::{Store, StoreError};

/// How often the daemon looks whether the day's summary is due.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// A daemon that cannot reconcile still sends its summary after this long (that is when the
/// summary matters); before, it waits so the summary does not say "not reconciled" at start.
const RECONCILE_GRACE_MS: i64 = 120_000;
/// At most this many of the day's fills are listed (all are counted).
const LISTED_TRADES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trading(#[from] TradingError),
    #[error("the database lock was poisoned")]
    Poisoned,
}

/// The dedup key of the summary of `now_ms`'s UTC day when it is due (at or after `hour`
/// o'clock UTC), else `None`.
pub fn due_key(now_ms: i64, hour: u8) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(now_ms)?;
    use chrono::Timelike;
    (t.hour() >= u32::from(hour)).then(|| {
        format!(
            "{}/{}",
            AlertKind::DailySummary.as_str(),
            t.format("%Y-%m-%d")
        )
    })
}

/// The summary as an alert, from the account read model, the day's fills and the daemon's
/// presence (its heartbeat). Pure: `now_ms` is the run's clock.
pub fn compose(
    dedup_key: String,
    view: &AccountView,
    trades: &[TradeRow],
    daemon: &DaemonPresence,
    settings: &Settings,
    now_ms: i64,
) -> Alert {
    let time = fmt::timestamp;
    let ccy = settings
        .trading
        .symbols
        .first()
        .map(|s| fmt::Precision::guess(s).quote)
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| "USDT".into());
    let prec = |symbol: &str| fmt::Precision::paper_or_guess(&settings.exchange.paper, symbol);
    let day = fmt::date(now_ms);
    let mut lines = Vec::new();
    let equity = match view.equity_source {
        EquitySource::Snapshot { at_ms } => {
            format!("{} (as of {})", fmt::money(view.equity, &ccy), time(at_ms))
        }
        EquitySource::PaperBalance => format!(
            "{} (paper balance, no snapshot yet)",
            fmt::money(view.equity, &ccy)
        ),
        EquitySource::Unknown => "unknown until the engine has run".into(),
    };
    lines.push(format!("Account {} on {day} (UTC)", view.connection));
    lines.push(format!("equity: {equity}"));
    let realised_today = view.day_pnl - view.unrealised_pnl;
    lines.push(format!(
        "today: {} ({}) = realised {} + unrealised {}",
        fmt::money_signed(view.day_pnl, &ccy),
        fmt::pct_signed(view.day_pnl_pct),
        fmt::money_signed(realised_today, &ccy),
        fmt::money_signed(view.unrealised_pnl, &ccy)
    ));
    lines.push(format!("trades today: {}", trades.len()));
    for t in trades.iter().take(LISTED_TRADES) {
        let f = &t.fill;
        let p = prec(f.symbol.as_str());
        let pnl = t
            .realized_pnl
            .map(|v| format!(" pnl {}", fmt::money_signed(v, &p.quote)))
            .unwrap_or_default();
        lines.push(format!(
            "  {} {} {} {} @ {} ({}){pnl}",
            fmt::when(f.time, now_ms),
            f.side,
            f.symbol,
            fmt::qty(f.quantity, &p),
            fmt::price(f.price, &p),
            fmt::words(&t.purpose.to_string())
        ));
    }
    if trades.len() > LISTED_TRADES {
        lines.push(format!("  … and {} more", trades.len() - LISTED_TRADES));
    }
    let unprotected = view
        .positions
        .iter()
        .filter(|p| p.protection == Protection::Unprotected)
        .count();
    lines.push(if unprotected > 0 {
        format!(
            "open positions: {} ({unprotected} UNPROTECTED)",
            view.positions.len()
        )
    } else {
        format!("open positions: {}", view.positions.len())
    });
    for p in &view.positions {
        let pos = &p.row.position;
        let pr = prec(pos.symbol.as_str());
        let price = |v: Option<crate::domain::Price>| {
            v.map(|v| fmt::price(v, &pr)).unwrap_or_else(|| "-".into())
        };
        lines.push(format!(
            "  {} {} qty {} @ {} mark {} stop {} target {} {} unrealised {}",
            p.row.book(),
            pos.symbol,
            fmt::qty(pos.quantity, &pr),
            fmt::price(pos.entry_price, &pr),
            fmt::price(p.mark, &pr),
            price(p.live_stop),
            price(p.live_target),
            p.protection.label(),
            fmt::money_signed(p.row.unrealized_pnl, &pr.quote)
        ));
    }
    lines.push(format!("trading: {}", view.trading.describe(time)));
    lines.push(format!("breaker: {}", view.describe_breaker(time)));
    lines.push(match daemon {
        DaemonPresence::Alive { pid, since_ms, .. } => format!(
            "daemon: up {} (pid {pid}, since {})",
            fmt::duration(now_ms - since_ms),
            time(*since_ms)
        ),
        other => format!("daemon: {}", other.describe(time)),
    });
    Alert {
        kind: AlertKind::DailySummary,
        dedup_key,
        subject: format!("TradeMind: daily summary {day}"),
        body: lines.join("\n"),
    }
}

fn lock(store: &Mutex<Store>) -> Result<std::sync::MutexGuard<'_, Store>, SummaryError> {
    store.lock().map_err(|_| SummaryError::Poisoned)
}

/// Send the summary of `now_ms`'s day if it is due and was not sent yet. `Ok(None)`: not due,
/// or already sent (or recorded as not to be sent).
pub async fn send_if_due<E: Exchange + 'static>(
    trading: &TradingService<E>,
    store: &Mutex<Store>,
    settings: &Settings,
    now_ms: i64,
) -> Result<Option<AlertOutcome>, SummaryError> {
    let Some(hour) = settings.telegram.daily_summary_hour else {
        return Ok(None);
    };
    let Some(key) = due_key(now_ms, hour) else {
        return Ok(None);
    };
    if already_alerted(lock(store)?.conn(), &key)? {
        return Ok(None);
    }
    let view = trading.account_view(now_ms)?;
    let (trades, daemon) = {
        let s = lock(store)?;
        (
            crate::store::orders::trades_since(s.conn(), trading.connection(), view.day_start_ms)?,
            crate::store::heartbeat::presence(s.conn(), now_ms)?,
        )
    };
    let alert = compose(key, &view, &trades, &daemon, settings, now_ms);
    Ok(Some(trading.send_alert(&alert, now_ms).await?))
}

/// Look every [`CHECK_EVERY`] whether the day's summary is due, until `cancel`. Nothing to do
/// when `telegram.daily_summary_hour` is unset.
pub async fn run<E: Exchange + 'static>(
    trading: Arc<TradingService<E>>,
    store: Arc<Mutex<Store>>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let Some(hour) = settings.telegram.daily_summary_hour else {
        return;
    };
    tracing::info!(hour, "daily summary at {hour:02}:00 UTC");
    let started = clock.now_ms();
    let mut told_sent: Option<String> = None;
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = clock.now_ms();
        if !trading.is_reconciled() && now - started < RECONCILE_GRACE_MS {
            continue;
        }
        match send_if_due(&trading, &store, &settings, now).await {
            Ok(Some(outcome)) => {
                tracing::info!(outcome = ?outcome, "daily summary sent");
                told_sent = due_key(now, hour);
            }
            Ok(None) => {
                // Said once a day, so a restarted daemon shows it looked and found it sent.
                let key = due_key(now, hour);
                if key.is_some() && key != told_sent {
                    tracing::info!(key = ?key, "daily summary already sent today");
                    told_sent = key;
                }
            }
            Err(e) => tracing::warn!(error = %e, "daily summary not sent; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_767_355_200_000; // 2026-01-02 12:00:00 UTC

    #[test]
    fn the_summary_is_due_from_its_hour_to_the_end_of_the_utc_day() {
        assert_eq!(
            due_key(NOON, 12).as_deref(),
            Some("daily_summary/2026-01-02")
        );
        assert_eq!(due_key(NOON - 1, 12), None);
        assert_eq!(
            due_key(NOON + 11 * 3_600_000 + 59 * 60_000, 8).as_deref(),
            Some("daily_summary/2026-01-02")
        );
        // The next day starts over, with its own key.
        assert_eq!(due_key(NOON + 12 * 3_600_000, 8), None);
        assert_eq!(
            due_key(NOON + 12 * 3_600_000, 0).as_deref(),
            Some("daily_summary/2026-01-03")
        );
    }
}
