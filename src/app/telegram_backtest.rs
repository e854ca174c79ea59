//! `/backtest STRATEGY [SYMBOL] [INTERVAL]` for the Telegram bot. A confirmed request goes
//! through the same path as the TUI's `:backtest` (`control::backtest_request`, the daemon's
//! bounded `run_backtest` queue); its `backtests` row is created pending as it is queued, so the
//! chat is told the run's id at once, and the finished row (the one `backtest show ID` and the
//! Backtests screen read) is told back to the chat with its metrics.

use std::sync::Mutex;

use crate::app::control::{BacktestJob, backtest_request};
use crate::app::daemon::QueuedBacktest;
use crate::app::scheduler::OnDemandQueue;
use crate::config::Settings;
use crate::domain::backtest::RunStatus;
use crate::domain::backtest::strategies::{StrategyError, StrategySpec, build_strategy};
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;
use crate::format as fmt;
use crate::store::Store;
use crate::store::backtests::{self, BacktestRun};

pub const USAGE: &str = "usage: /backtest STRATEGY [SYMBOL] [INTERVAL], e.g. /backtest sma-cross \
BTCUSDT 1h (strategies: sma-cross, rsi-reversion, macd, rsi-macd; candles must be in the \
database: trademind data fetch)";

/// A backtest as asked in the chat; a missing symbol or interval is the configured
/// `trading.symbols[0]` / `trading.interval` (see [`BacktestAsk::resolved`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestAsk {
    pub strategy: String,
    pub symbol: Option<Symbol>,
    pub interval: Option<Interval>,
}

/// The arguments after `/backtest`: a known strategy, then a symbol and an interval in either
/// order. `Err` is the usage text to reply with.
pub fn parse(args: &[&str]) -> Result<BacktestAsk, String> {
    let Some((&strategy, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    let strategy = strategy.to_ascii_lowercase();
    let spec = StrategySpec {
        name: strategy.clone(),
        params: Default::default(),
    };
    if let Err(e @ StrategyError::Unknown(_)) = build_strategy(&spec) {
        return Err(format!("{e}; {USAGE}"));
    }
    if rest.len() > 2 {
        return Err(USAGE.into());
    }
    let mut ask = BacktestAsk {
        strategy,
        symbol: None,
        interval: None,
    };
    for arg in rest {
        if ask.interval.is_none()
            && let Ok(interval) = arg.parse::<Interval>()
        {
            ask.interval = Some(interval);
            continue;
        }
        if ask.symbol.is_some() {
            return Err(format!(
                "{arg:?} is not an interval (1m, 5m, 15m, 1h, 4h, 1d); {USAGE}"
            ));
        }
        ask.symbol =
            Some(Symbol::new(&arg.to_ascii_uppercase()).map_err(|e| format!("{e}; {USAGE}"))?);
    }
    Ok(ask)
}

impl BacktestAsk {
    /// The ask with the configured symbol and interval where it named none.
    pub fn resolved(self, settings: &Settings) -> Result<BacktestAsk, String> {
        let symbol = match self.symbol {
            Some(s) => s,
            None => {
                let first = settings
                    .trading
                    .symbols
                    .first()
                    .ok_or_else(|| format!("no symbol configured; {USAGE}"))?;
                Symbol::new(first).map_err(|e| format!("trading.symbols: {e}"))?
            }
        };
        let interval = match self.interval {
            Some(i) => i,
            None => settings
                .trading
                .interval
                .parse()
                .map_err(|e| format!("trading.interval: {e}"))?,
        };
        Ok(BacktestAsk {
            strategy: self.strategy,
            symbol: Some(symbol),
            interval: Some(interval),
        })
    }

    pub fn describe(&self) -> String {
        let show = |v: Option<String>| v.unwrap_or_else(|| "(default)".into());
        format!(
            "queue a backtest of {} on {} {}",
            self.strategy,
            show(self.symbol.as_ref().map(ToString::to_string)),
            show(self.interval.map(|i| i.to_string()))
        )
    }
}

/// The finished run as a message: its metrics as `backtest show` writes them, or why it did
/// not complete.
pub fn report(run: &BacktestRun) -> String {
    let head = format!(
        "Backtest #{} {} {} {}",
        run.id, run.strategy, run.symbol, run.interval
    );
    match (run.status, &run.metrics) {
        (RunStatus::Completed, Some(m)) => {
            let currency = fmt::Precision::guess(&run.symbol).quote;
            let rows = fmt::backtest_metrics(m, &currency);
            let get = |label: &str| {
                rows.iter()
                    .find(|(l, _)| *l == label)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| "-".into())
            };
            format!(
                "{head} completed\nreturn {}\nmax drawdown {}\ntrades {}\nwin rate {}\nSharpe {}",
                get("Return"),
                get("Max drawdown"),
                get("Trades"),
                get("Win rate"),
                get("Sharpe")
            )
        }
        (status, _) => format!(
            "{head} {status}{}",
            run.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

/// The bot's side of the backtest queue: what it queued, for which chat, until it ends.
pub struct BacktestDesk {
    queue: OnDemandQueue<QueuedBacktest>,
    watched: Mutex<Vec<(i64, i64)>>,
}

impl BacktestDesk {
    pub fn new(queue: OnDemandQueue<QueuedBacktest>) -> Self {
        BacktestDesk {
            queue,
            watched: Mutex::new(Vec::new()),
        }
    }

    /// Queue `ask` (resolved) for `chat_id`: its row is created pending, then the request
    /// joins the queue. Returns the run's id; a full queue removes the row again.
    pub fn queue(
        &self,
        store: &Mutex<Store>,
        settings: &Settings,
        ask: &BacktestAsk,
        chat_id: i64,
        now_ms: i64,
    ) -> Result<i64, String> {
        let (Some(symbol), Some(interval)) = (ask.symbol.clone(), ask.interval) else {
            return Err(USAGE.into());
        };
        let job = BacktestJob {
            strategy: ask.strategy.clone(),
            symbol,
            interval,
            params: Vec::new(),
            // The default range, as `:backtest` without from=/to=.
            from: None,
            to: None,
        };
        let request = backtest_request(settings, &job)?;
        let store = store.lock().map_err(|_| "database lock poisoned")?;
        let id = crate::app::backtest::create_pending(&store, &request, now_ms)
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.queue.submit(QueuedBacktest {
            request,
            run_id: Some(id),
        }) {
            let _ = backtests::delete(store.conn(), id);
            return Err(e.to_string());
        }
        if let Ok(mut watched) = self.watched.lock() {
            watched.push((id, chat_id));
        }
        Ok(id)
    }

    /// At shutdown: the runs still waiting in the queue will not run; their rows say
    /// cancelled instead of staying pending for ever.
    pub fn abandon(&self, store: &Mutex<Store>, now_ms: i64) {
        let (Ok(watched), Ok(store)) = (self.watched.lock(), store.lock()) else {
            return;
        };
        for &(id, _) in watched.iter() {
            if matches!(backtests::status(store.conn(), id), Ok(RunStatus::Pending))
                && let Err(e) = backtests::cancel(store.conn(), id, None, now_ms)
            {
                tracing::warn!(id, error = %e, "a queued backtest stays pending");
            }
        }
    }

    /// The runs this desk queued that have ended since the last call, each with its chat and
    /// the message to send; they are no longer watched.
    pub fn finished(&self, store: &Mutex<Store>) -> Vec<(i64, String)> {
        let Ok(mut watched) = self.watched.lock() else {
            return Vec::new();
        };
        if watched.is_empty() {
            return Vec::new();
        }
        let Ok(store) = store.lock() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        watched.retain(|&(id, chat_id)| match backtests::get(store.conn(), id) {
            Ok(Some(run))
                if matches!(
                    run.status,
                    RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
                ) =>
            {
                done.push((chat_id, report(&run)));
                false
            }
            Ok(Some(_)) => true,
            Ok(None) => {
                done.push((chat_id, format!("Backtest #{id} was deleted")));
                false
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "cannot read a queued backtest");
                true
            }
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtest_arguments_are_a_known_strategy_then_symbol_and_interval_in_any_order() {
        let btc = Symbol::new("BTCUSDT").unwrap();
        assert_eq!(
            parse(&["sma-cross", "btcusdt", "1h"]),
            Ok(BacktestAsk {
                strategy: "sma-cross".into(),
                symbol: Some(btc.clone()),
                interval: Some(Interval::H1),
            })
        );
        assert_eq!(
            parse(&["MACD", "4h"]).unwrap(),
            BacktestAsk {
                strategy: "macd".into(),
                symbol: None,
                interval: Some(Interval::H4),
            }
        );
        assert!(parse(&[]).unwrap_err().starts_with("usage: /backtest"));
        let unknown = parse(&["moon", "BTCUSDT"]).unwrap_err();
        assert!(unknown.contains("unknown strategy"), "{unknown}");
        assert!(unknown.contains("usage: /backtest"), "{unknown}");
        assert!(parse(&["macd", "BTCUSDT", "ETHUSDT"]).is_err());
        assert!(parse(&["macd", "BTCUSDT", "1h", "extra"]).is_err());
    }
}
