//! The control channel: what an interface (the TUI) asks the running system to do — pause,
//! resume, the kill switch, close a position, cancel an order, run a backtest — and the answer
//! it gets back. The interface never touches the exchange itself: it sends a [`ControlOp`]
//! through a [`ControlHandle`] and whoever runs the trading loop (the daemon, the demo, or the
//! plain TUI's own worker) carries it out and replies with a one-line outcome.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::app::backtest::{BacktestRequest, CandleSource, SizingChoice};
use crate::config::Settings;
use crate::domain::Quote;
use crate::domain::backtest::{Costs, StrategySpec};
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;

/// One request from an interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlOp {
    /// Stop opening positions (the kill switch with a reason); protection stays in place.
    Pause {
        reason: String,
    },
    Resume,
    /// The emergency stop: halt now; only a manual resume clears it.
    Kill,
    /// Close one book's position in `symbol` (`book`: a strategy's id, `None` the default
    /// book); several books may hold the symbol.
    ClosePosition {
        symbol: Symbol,
        book: Option<i64>,
    },
    /// Protect one book's position in `symbol` again from its stored stop and target
    /// (`TradingService::protect`, as `trademind protect` does).
    ProtectPosition {
        symbol: Symbol,
        book: Option<i64>,
    },
    CancelOrder {
        symbol: Symbol,
        client_order_id: String,
    },
    Backtest(BacktestJob),
}

impl ControlOp {
    /// How the request is named in messages.
    pub fn describe(&self) -> String {
        match self {
            ControlOp::Pause { .. } => "pause trading".into(),
            ControlOp::Resume => "resume trading".into(),
            ControlOp::Kill => "the kill switch".into(),
            ControlOp::ClosePosition { symbol, .. } => format!("close {symbol}"),
            ControlOp::ProtectPosition { symbol, .. } => format!("protect {symbol}"),
            ControlOp::CancelOrder {
                client_order_id, ..
            } => format!("cancel {client_order_id}"),
            ControlOp::Backtest(job) => {
                format!("backtest {} {} {}", job.strategy, job.symbol, job.interval)
            }
        }
    }
}

/// A backtest asked for from an interface: the strategy and market; costs, fill model and
/// starting cash come from the `[backtest]` settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestJob {
    pub strategy: String,
    pub symbol: Symbol,
    pub interval: Interval,
    pub params: Vec<(String, String)>,
    /// First candle (ms, UTC) and end (exclusive); `None`: every stored candle.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// The answer: a one-line outcome for the status bar, or why it could not be done.
pub type ControlReply = Result<String, String>;

/// A request and where its answer goes.
#[derive(Debug)]
pub struct ControlRequest {
    pub op: ControlOp,
    pub reply: oneshot::Sender<ControlReply>,
}

/// The sending end, cheap to clone. Dropping every handle ends the serving loop.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<ControlRequest>,
}

impl ControlHandle {
    /// A handle and the receiver the serving side reads. `capacity` bounds the requests waiting.
    pub fn channel(capacity: usize) -> (ControlHandle, mpsc::Receiver<ControlRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (ControlHandle { tx }, rx)
    }

    /// Send `op` and wait for its outcome. A full queue or a stopped server is an error, never
    /// a silent drop.
    pub async fn request(&self, op: ControlOp) -> ControlReply {
        let what = op.describe();
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(ControlRequest { op, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    format!("{what}: too many requests waiting; try again in a moment")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    format!("{what}: the trading service is not running")
                }
            })?;
        answer
            .await
            .map_err(|_| format!("{what}: the trading service stopped before answering"))?
    }
}

/// Turn an interface's backtest job into a full request with the configured defaults.
pub fn backtest_request(settings: &Settings, job: &BacktestJob) -> Result<BacktestRequest, String> {
    let mut params = BTreeMap::new();
    for (k, v) in &job.params {
        let value: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("parameter {k}={v}: {v:?} is not a number"))?;
        params.insert(k.clone(), value);
    }
    let defaults = &settings.backtest;
    Ok(BacktestRequest {
        strategy: StrategySpec {
            name: job.strategy.clone(),
            params,
        },
        symbol: job.symbol.to_string(),
        interval: job.interval,
        from: job.from,
        to: job.to,
        source: CandleSource::Store,
        initial_cash: Quote(defaults.initial_cash),
        costs: Costs::from_bps(
            defaults.taker_fee_bps,
            defaults.maker_fee_bps,
            defaults.slippage_bps,
        ),
        fill: defaults.fill,
        sizing: SizingChoice::AllIn,
        risk: settings.risk.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn job(params: &[(&str, &str)]) -> BacktestJob {
        BacktestJob {
            strategy: "sma-cross".into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            interval: Interval::H1,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            from: None,
            to: None,
        }
    }

    #[test]
    fn backtest_job_passes_its_date_range_to_the_request() {
        let mut j = job(&[]);
        (j.from, j.to) = (Some(1_735_689_600_000), Some(1_736_899_200_000));
        let req = backtest_request(&Settings::default(), &j).unwrap();
        assert_eq!(
            (req.from, req.to),
            (Some(1_735_689_600_000), Some(1_736_899_200_000))
        );
    }

    #[test]
    fn backtest_job_takes_costs_and_cash_from_the_backtest_settings() {
        let mut settings = Settings::default();
        settings.backtest.initial_cash = Decimal::new(5_000, 0);
        settings.backtest.taker_fee_bps = Decimal::new(25, 0);
        let req = backtest_request(&settings, &job(&[("fast", "7")])).unwrap();
        assert_eq!(req.initial_cash, Quote(Decimal::new(5_000, 0)));
        // 25 bps = 0.0025
        assert_eq!(req.costs.taker_fee, Decimal::new(25, 4));
        assert_eq!(req.strategy.params.get("fast"), Some(&7.0));
        assert_eq!(req.source, CandleSource::Store);
    }

    #[test]
    fn a_non_numeric_parameter_is_refused_with_its_name() {
        let err = backtest_request(&Settings::default(), &job(&[("fast", "seven")])).unwrap_err();
        assert!(err.contains("fast=seven"), "{err}");
    }

    #[tokio::test]
    async fn a_request_gets_the_servers_answer() {
        let (handle, mut rx) = ControlHandle::channel(4);
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let _ = req.reply.send(Ok(format!("did {}", req.op.describe())));
            }
        });
        assert_eq!(
            handle.request(ControlOp::Resume).await,
            Ok("did resume trading".into())
        );
    }

    #[tokio::test]
    async fn a_stopped_server_is_an_error_not_a_hang() {
        let (handle, rx) = ControlHandle::channel(1);
        drop(rx);
        let err = handle.request(ControlOp::Kill).await.unwrap_err();
        assert!(err.contains("not running"), "{err}");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let (handle, _rx) = ControlHandle::channel(1);
        // Nobody reads: a request already waiting occupies the only slot.
        let (reply, _answer) = oneshot::channel();
        handle
            .tx
            .try_send(ControlRequest {
                op: ControlOp::Resume,
                reply,
            })
            .unwrap();
        let err = handle.request(ControlOp::Kill).await.unwrap_err();
        assert!(err.contains("too many requests"), "{err}");
    }
}
