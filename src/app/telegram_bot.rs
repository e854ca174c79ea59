//! The Telegram bot the daemon runs when `[telegram] enabled`: long polling `getUpdates` (no
//! open port), answering only the configured chats. Read commands (/status /positions /trades
//! /decisions /pnl /risk) read the account read model (`store::account`) that `status` prints;
//! commands that change state (/pause /resume /kill /close SYMBOL /protect SYMBOL /backtest …)
//! only ask, with an inline button whose callback data carries its expiry, and act when the
//! button is pressed. /backtest is in `telegram_backtest`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::scheduler::{Clock, OnDemandQueue};
use crate::app::telegram_backtest::{self as backtest, BacktestAsk, BacktestDesk};
use crate::app::trading::TradingService;
use crate::config::Settings;
use crate::domain::symbol::Symbol;
use crate::services::exchange::Exchange;
use crate::services::telegram::{CallbackQuery, Message, TelegramClient, TelegramError, Update};
use crate::store::Store;
use crate::store::account::{self, AccountQuery, AccountView};

const WEEK_MS: i64 = 7 * 24 * 3_600_000;
/// Telegram's limit on a button press's notification text (`answerCallbackQuery.text`).
const NOTE_CHARS: usize = 200;

/// A command as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    Positions,
    Trades,
    Decisions,
    Pnl(PnlPeriod),
    Risk,
    Help,
    /// Changes state: asked for confirmation first.
    Act(Action),
    /// A command the bot does not know, or one used wrongly: the text says how to use it.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PnlPeriod {
    Day,
    Week,
}

/// What a confirmed button press does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Kill,
    Close(Symbol),
    Protect(Symbol),
    /// Queue a backtest (the TUI's `:backtest` path).
    Backtest(BacktestAsk),
}

impl Action {
    fn describe(&self) -> String {
        match self {
            Action::Pause => "pause trading (no new entries until /resume)".into(),
            Action::Resume => "resume trading".into(),
            Action::Kill => "engage the kill switch (trading halts until /resume)".into(),
            Action::Close(s) => format!("close the open {s} position at market"),
            Action::Protect(s) => {
                format!("place the {s} position's protection again from its stored stop and target")
            }
            Action::Backtest(ask) => ask.describe(),
        }
    }
}

const HELP: &str = "Commands: /status /positions /trades /decisions /pnl [day|week] /risk \
/pause /resume /kill /close SYMBOL /protect SYMBOL /backtest STRATEGY [SYMBOL] [INTERVAL]";

/// Parse a message's text; `None` when it is not a command (plain chat is ignored).
pub fn parse_command(text: &str) -> Option<Command> {
    let mut words = text.split_whitespace();
    let head = words.next()?.strip_prefix('/')?;
    // In groups Telegram appends the bot's name: /status@trademind_bot.
    let name = head.split('@').next().unwrap_or(head).to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    let arg = args.first().copied();
    let symbol = |usage: &str| match arg.map(|a| Symbol::new(&a.to_ascii_uppercase())) {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) => Err(Command::Unknown(format!("{e}; usage: {usage}"))),
        None => Err(Command::Unknown(format!("usage: {usage}"))),
    };
    Some(match name.as_str() {
        "status" => Command::Status,
        "positions" => Command::Positions,
        "trades" => Command::Trades,
        "decisions" => Command::Decisions,
        "pnl" => match arg.map(str::to_ascii_lowercase).as_deref() {
            None | Some("day") => Command::Pnl(PnlPeriod::Day),
            Some("week") => Command::Pnl(PnlPeriod::Week),
            Some(_) => Command::Unknown("usage: /pnl [day|week]".into()),
        },
        "risk" => Command::Risk,
        "start" | "help" => Command::Help,
        "pause" => Command::Act(Action::Pause),
        "resume" => Command::Act(Action::Resume),
        "kill" => Command::Act(Action::Kill),
        "close" => match symbol("/close SYMBOL, e.g. /close BTCUSDT") {
            Ok(s) => Command::Act(Action::Close(s)),
            Err(c) => c,
        },
        "protect" => match symbol("/protect SYMBOL") {
            Ok(s) => Command::Act(Action::Protect(s)),
            Err(c) => c,
        },
        "backtest" | "bt" => match backtest::parse(&args) {
            Ok(ask) => Command::Act(Action::Backtest(ask)),
            Err(usage) => Command::Unknown(usage),
        },
        other => Command::Unknown(format!("unknown command /{other}. {HELP}")),
    })
}

/// A confirmation button's callback data: `ok:<nonce>:<expires at, unix s>` (or `no:` to
/// cancel). The expiry travels in the data so a press is judged by it even if the message
/// lingers; the nonce names the action asked, kept in memory, so data cannot be forged into
/// another action.
fn callback_data(confirm: bool, nonce: u64, expires_ms: i64) -> String {
    let verb = if confirm { "ok" } else { "no" };
    format!("{verb}:{nonce:x}:{}", expires_ms.div_euclid(1000))
}

/// (confirm?, nonce, expires at in ms) from callback data.
fn parse_callback_data(data: &str) -> Option<(bool, u64, i64)> {
    let mut parts = data.split(':');
    let confirm = match parts.next()? {
        "ok" => true,
        "no" => false,
        _ => return None,
    };
    let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
    let expires_s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((confirm, nonce, expires_s.saturating_mul(1000)))
}

/// A button press's outcome as its notification: Telegram takes 0-200 characters.
fn notification(outcome: &str) -> String {
    if outcome.chars().count() <= NOTE_CHARS {
        return outcome.to_string();
    }
    let mut cut: String = outcome.chars().take(NOTE_CHARS - 1).collect();
    cut.push('…');
    cut
}

struct Pending {
    action: Action,
    chat_id: i64,
    expires_ms: i64,
}

/// The bot: what it reads and acts on, and the confirmations it is waiting for.
pub struct TelegramBot<E: Exchange> {
    client: TelegramClient,
    settings: Arc<Settings>,
    trading: Arc<TradingService<E>>,
    store: Arc<Mutex<Store>>,
    clock: Arc<dyn Clock>,
    pending: Mutex<HashMap<u64, Pending>>,
    /// The daemon's backtest queue, when it runs one.
    backtests: Option<BacktestDesk>,
}

impl<E: Exchange + 'static> TelegramBot<E> {
    pub fn new(
        client: TelegramClient,
        settings: Arc<Settings>,
        trading: Arc<TradingService<E>>,
        store: Arc<Mutex<Store>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        TelegramBot {
            client,
            settings,
            trading,
            store,
            clock,
            pending: Mutex::new(HashMap::new()),
            backtests: None,
        }
    }

    /// /backtest queues on `queue` (the daemon's `run_backtest` worker).
    pub fn with_backtests(
        mut self,
        queue: OnDemandQueue<crate::app::daemon::QueuedBacktest>,
    ) -> Self {
        self.backtests = Some(BacktestDesk::new(queue));
        self
    }

    fn allowed(&self, chat_id: i64) -> bool {
        self.settings.telegram.chat_ids.contains(&chat_id)
    }

    /// Poll and answer until `cancel`. Each update is confirmed (the next offset) once
    /// handled, so a restart does not answer it again.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        tracing::info!(
            chats = self.settings.telegram.chat_ids.len(),
            "Telegram bot listening"
        );
        let reporter = tokio::spawn(self.clone().report_backtests(cancel.clone()));
        self.poll(cancel).await;
        let _ = reporter.await;
    }

    /// Tell each chat how the backtests it queued ended, until `cancel`.
    async fn report_backtests(self: Arc<Self>, cancel: CancellationToken) {
        let Some(desk) = &self.backtests else { return };
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    desk.abandon(&self.store, self.clock.now_ms());
                    return;
                }
                _ = every.tick() => {}
            }
            for (chat_id, text) in desk.finished(&self.store) {
                self.say(chat_id, &text).await;
            }
        }
    }

    async fn poll(&self, cancel: CancellationToken) {
        let timeout = self.settings.telegram.poll_timeout_seconds;
        let mut offset: Option<i64> = None;
        loop {
            let polled = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.client.get_updates(offset, timeout) => r,
            };
            let pause = match polled {
                Ok(updates) => {
                    for update in updates {
                        offset = Some(update.update_id + 1);
                        self.handle(update).await;
                    }
                    continue;
                }
                Err(e @ TelegramError::Unauthorized) => {
                    tracing::error!(error = %e, "Telegram bot stopped polling for a minute");
                    Duration::from_secs(60)
                }
                Err(TelegramError::RateLimited { retry_after_secs }) => {
                    Duration::from_secs(retry_after_secs)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Telegram getUpdates failed; retrying");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Answer one update (a message or a button press) from an allowed chat; log and ignore
    /// anyone else's.
    pub async fn handle(&self, update: Update) {
        if let Some(message) = update.message {
            if !self.allowed(message.chat.id) {
                tracing::warn!(
                    chat_id = message.chat.id,
                    "Telegram message from a chat not in telegram.chat_ids ignored"
                );
                return;
            }
            self.on_message(message).await;
        } else if let Some(query) = update.callback_query {
            let chat = query.message.as_ref().map(|m| m.chat.id);
            match chat {
                Some(chat_id) if self.allowed(chat_id) => self.on_press(query, chat_id).await,
                _ => tracing::warn!(
                    user_id = query.from.id,
                    chat_id = ?chat,
                    "Telegram button press from a chat not in telegram.chat_ids ignored"
                ),
            }
        }
    }

    async fn say(&self, chat_id: i64, text: &str) {
        if let Err(e) = self.client.send_message(chat_id, text, &[]).await {
            tracing::warn!(chat_id, error = %e, "Telegram answer not sent");
        }
    }

    async fn on_message(&self, message: Message) {
        let chat_id = message.chat.id;
        let Some(command) = message.text.as_deref().and_then(parse_command) else {
            return;
        };
        tracing::info!(chat_id, ?command, "Telegram command");
        let now = self.clock.now_ms();
        let text = match command {
            Command::Act(Action::Backtest(ask)) => match ask.resolved(&self.settings) {
                Ok(ask) if self.backtests.is_some() => {
                    return self.ask(chat_id, Action::Backtest(ask), now).await;
                }
                Ok(_) => "backtests cannot be queued here (the daemon runs no backtest queue)"
                    .to_string(),
                Err(e) => e,
            },
            Command::Act(action) => return self.ask(chat_id, action, now).await,
            Command::Help => HELP.to_string(),
            Command::Unknown(text) => text,
            read => self
                .read(&read, now)
                .unwrap_or_else(|e| format!("cannot read the account: {e}")),
        };
        self.say(chat_id, &text).await;
    }

    /// Ask for confirmation of `action` with two buttons.
    async fn ask(&self, chat_id: i64, action: Action, now_ms: i64) {
        let expires_ms = now_ms + (self.settings.telegram.confirm_seconds as i64) * 1000;
        let nonce = rand::random::<u64>();
        let buttons = [
            (
                "Confirm".to_string(),
                callback_data(true, nonce, expires_ms),
            ),
            (
                "Cancel".to_string(),
                callback_data(false, nonce, expires_ms),
            ),
        ];
        let text = format!(
            "{}? Press Confirm within {} s.",
            action.describe(),
            self.settings.telegram.confirm_seconds
        );
        if let Ok(mut pending) = self.pending.lock() {
            // Expired questions are forgotten as new ones come.
            pending.retain(|_, p| p.expires_ms > now_ms);
            pending.insert(
                nonce,
                Pending {
                    action,
                    chat_id,
                    expires_ms,
                },
            );
        }
        if let Err(e) = self.client.send_message(chat_id, &text, &buttons).await {
            tracing::warn!(chat_id, error = %e, "Telegram confirmation not sent");
        }
    }

    async fn on_press(&self, query: CallbackQuery, chat_id: i64) {
        let now = self.clock.now_ms();
        let message_id = query.message.as_ref().map(|m| m.message_id);
        let parsed = query.data.as_deref().and_then(parse_callback_data);
        let outcome = match parsed {
            None => "unknown button".to_string(),
            Some((confirm, nonce, expires_ms)) => {
                // Taken out whatever happens next: a button acts at most once.
                let pending = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&nonce))
                    .filter(|p| p.chat_id == chat_id);
                match pending {
                    None => "this question is no longer open (answered, or asked before a \
                             restart); send the command again"
                        .to_string(),
                    Some(_) if now > expires_ms => {
                        "expired: nothing was done; send the command again".to_string()
                    }
                    Some(_) if !confirm => "cancelled: nothing was done".to_string(),
                    Some(p) => self.act(&p.action, chat_id, now).await,
                }
            }
        };
        // The notification holds 200 characters; the edited message below says it all.
        let note = notification(&outcome);
        if let Err(e) = self
            .client
            .answer_callback_query(&query.id, Some(&note))
            .await
        {
            tracing::warn!(error = %e, "Telegram button press not answered");
        }
        if let Some(message_id) = message_id
            && let Err(e) = self
                .client
                .edit_message_text(chat_id, message_id, &outcome)
                .await
        {
            tracing::warn!(error = %e, "Telegram confirmation message not updated");
        }
    }

    async fn act(&self, action: &Action, chat_id: i64, now_ms: i64) -> String {
        let reason = format!("Telegram chat {chat_id}");
        tracing::warn!(chat_id, ?action, "confirmed Telegram command");
        let result = match action {
            Action::Pause => self
                .trading
                .pause(&reason, now_ms)
                .map(|_| "trading paused".into()),
            Action::Resume => self
                .trading
                .resume(now_ms)
                .map(|_| "trading resumed".into()),
            Action::Kill => self
                .trading
                .kill(&reason, now_ms)
                .map(|_| "kill switch engaged: trading halted".into()),
            Action::Close(symbol) => self
                .trading
                .close_position(symbol, None, now_ms)
                .await
                .map(|r| format!("{symbol} closed: {}", r.message)),
            Action::Protect(symbol) => self
                .trading
                .protect(symbol, None, now_ms)
                .await
                .map(|r| format!("{symbol}: {}", r.message)),
            Action::Backtest(ask) => return self.queue_backtest(ask, chat_id, now_ms),
        };
        result.unwrap_or_else(|e: crate::app::trading::TradingError| format!("refused: {e}"))
    }

    /// Queue a confirmed /backtest; the answer names the run.
    fn queue_backtest(&self, ask: &BacktestAsk, chat_id: i64, now_ms: i64) -> String {
        let queued = match &self.backtests {
            Some(desk) => desk.queue(&self.store, &self.settings, ask, chat_id, now_ms),
            None => Err("the daemon runs no backtest queue".into()),
        };
        match queued {
            Ok(id) => format!(
                "backtest #{id} queued: {} {} {}; its metrics follow when it finishes",
                ask.strategy,
                ask.symbol
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                ask.interval.map(|i| i.to_string()).unwrap_or_default()
            ),
            Err(e) => format!("refused: {e}"),
        }
    }

    fn account(&self, day_start_ms: i64, now_ms: i64) -> Result<(AccountView, String), String> {
        let store = self.store.lock().map_err(|_| "database lock poisoned")?;
        let c = store.conn();
        // As `status` reads it: the paper account's starting cash until a snapshot exists.
        let paper_starting_balance = match self.trading.mode() {
            crate::domain::trading::TradingMode::Paper => {
                self.settings.trading.paper_starting_balance.parse().ok()
            }
            _ => None,
        };
        let view = account::load(
            c,
            &AccountQuery {
                connection: self.trading.connection(),
                now_ms,
                day_start_ms,
                paper_starting_balance,
                unresolved: self.trading.unresolved(),
            },
        )
        .map_err(|e| e.to_string())?;
        let daemon = crate::store::heartbeat::presence(c, now_ms)
            .map(|p| p.describe(crate::format::timestamp))
            .map_err(|e| e.to_string())?;
        Ok((view, daemon))
    }

    /// The text of a read command, from the account read model.
    fn read(&self, command: &Command, now_ms: i64) -> Result<String, String> {
        let day_start = account::utc_day_start(now_ms);
        let week = matches!(command, Command::Pnl(PnlPeriod::Week));
        let (a, daemon) = self.account(if week { now_ms - WEEK_MS } else { day_start }, now_ms)?;
        let time = crate::format::timestamp;
        Ok(match command {
            Command::Status => {
                let breaker = a.describe_breaker(time);
                format!(
                    "{}\nprocess: {daemon}\ntrading: {}\nbreaker: {breaker}\npositions: {}",
                    a.summary(),
                    a.trading.describe(time),
                    a.positions.len()
                )
            }
            Command::Positions => {
                if a.positions.is_empty() {
                    return Ok("no open position".into());
                }
                a.positions
                    .iter()
                    .map(|p| {
                        let pos = &p.row.position;
                        let price = |v: Option<crate::domain::Price>| {
                            v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
                        };
                        format!(
                            "{} {} qty {} @ {} mark {} stop {} target {} {} unrealised {}",
                            p.row.book(),
                            pos.symbol,
                            pos.quantity,
                            pos.entry_price,
                            p.mark,
                            price(p.live_stop),
                            price(p.live_target),
                            p.protection.label(),
                            p.row.unrealized_pnl
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Command::Trades => {
                let store = self.store.lock().map_err(|_| "database lock poisoned")?;
                let closed = crate::store::positions::closed_positions(store.conn(), 10)
                    .map_err(|e| e.to_string())?;
                if closed.is_empty() {
                    return Ok(format!("no closed trade ({} fills)", a.counts.trades));
                }
                closed
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} closed {} pnl {}",
                            r.book(),
                            r.position.symbol,
                            r.position.closed_at.map(time).unwrap_or_default(),
                            r.position.realized_pnl
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Command::Decisions => {
                let store = self.store.lock().map_err(|_| "database lock poisoned")?;
                let recent =
                    crate::store::decisions::recent(store.conn(), 5).map_err(|e| e.to_string())?;
                if recent.is_empty() {
                    return Ok("no decision yet".into());
                }
                recent
                    .iter()
                    .map(|d| {
                        let f = &d.fields;
                        format!(
                            "{} {} {} ({}) → {}",
                            time(f.decided_at),
                            f.symbol,
                            f.action,
                            f.engine,
                            f.outcome
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Command::Pnl(period) => {
                let label = match period {
                    PnlPeriod::Day => "today",
                    PnlPeriod::Week => "last 7 days",
                };
                format!(
                    "PnL {label}: {} ({:.2}%)\nrealised (all time) {} · unrealised {}",
                    a.day_pnl, a.day_pnl_pct, a.realised_pnl, a.unrealised_pnl
                )
            }
            Command::Risk => {
                let unprotected = a
                    .positions
                    .iter()
                    .filter(|p| p.protection == account::Protection::Unprotected)
                    .count();
                format!(
                    "trading: {}\nbreaker: {}{}\nopen positions: {} ({} unprotected)\ntoday: {}",
                    a.trading.describe(time),
                    a.breaker.state,
                    a.breaker
                        .reason
                        .map(|r| format!(" ({})", r.as_str()))
                        .unwrap_or_default(),
                    a.positions.len(),
                    unprotected,
                    a.day_pnl
                )
            }
            _ => HELP.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_arguments_and_the_bot_name_suffix() {
        assert_eq!(
            parse_command("/status@trademind_bot"),
            Some(Command::Status)
        );
        assert_eq!(
            parse_command("/pnl week"),
            Some(Command::Pnl(PnlPeriod::Week))
        );
        assert_eq!(parse_command("/pnl"), Some(Command::Pnl(PnlPeriod::Day)));
        assert_eq!(
            parse_command("/close btcusdt"),
            Some(Command::Act(Action::Close(Symbol::new("BTCUSDT").unwrap())))
        );
        assert!(matches!(parse_command("/close"), Some(Command::Unknown(_))));
        // /protect changes state, so it is confirmed like /close.
        assert_eq!(
            parse_command("/protect ethusdt"),
            Some(Command::Act(Action::Protect(
                Symbol::new("ETHUSDT").unwrap()
            )))
        );
        assert!(matches!(
            parse_command("/pnl year"),
            Some(Command::Unknown(_))
        ));
        assert_eq!(parse_command("hello"), None);
    }

    #[test]
    fn a_press_notification_is_cut_to_telegrams_200_characters() {
        assert_eq!(notification("trading paused"), "trading paused");
        let long = "é".repeat(300);
        let note = notification(&long);
        assert_eq!(note.chars().count(), 200);
        assert!(note.ends_with('…'));
    }

    #[test]
    fn callback_data_carries_its_expiry_and_fits_telegrams_64_bytes() {
        let data = callback_data(true, u64::MAX, 1_765_000_000_000);
        assert!(data.len() <= 64, "{data}");
        assert_eq!(
            parse_callback_data(&data),
            Some((true, u64::MAX, 1_765_000_000_000))
        );
        assert_eq!(
            parse_callback_data(&callback_data(false, 7, 5_000)),
            Some((false, 7, 5_000))
        );
        assert_eq!(parse_callback_data("ok:zz:1"), None);
        assert_eq!(parse_callback_data("rm:1:1"), None);
    }
}
