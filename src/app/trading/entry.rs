//! A decision carried out: the autonomous-trading cycle, `execute_decision` (decision → risk →
//! `Plan` under the symbol's trading lock) and the market entry, whose fill the settle step
//! books and protects.

use super::settle::{Protection, entry_outcome};
use super::{CycleReport, ExecutionOutcome, ExecutionReport, TradingError, TradingService};
use crate::app::decide::{DecisionEngine, EngineOutput, record};
use crate::domain::backtest::engine::LimitEntry;
use crate::domain::decision::{Action, DecisionInput};
use crate::domain::market::candle::Interval;
use crate::domain::money::{Price, Qty};
use crate::domain::symbol::Symbol;
use crate::domain::trading::SymbolFilters;
use crate::domain::trading::order::OrderPurpose;
use crate::domain::trading::order::{OrderRequest, OrderType, Side, TimeInForce};
use crate::domain::trading::plan::{Plan, intent_for, plan};
use crate::services::exchange::Exchange;
use crate::services::notification::AlertKind;
use crate::store::orders::{self, OrderLinks};
use crate::store::strategies::StrategyRow;
use crate::store::{decisions as recorder, positions};

/// How an entry is sent: at market, or as a limit buy (a strategy's `entry_limit_bps`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum EntryOrder {
    Market,
    Limit { price: Price, entry: LimitEntry },
}

/// The stop and target an entry's position is to be protected with.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Levels {
    pub stop: Option<Price>,
    pub target: Option<Price>,
}

/// A strategy's `max_entries` parameter: how many entries one position may take (default 1).
pub fn max_entries(parameters: &serde_json::Value) -> u64 {
    parameters
        .get("max_entries")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
        .max(1)
}

impl<E: Exchange + 'static> TradingService<E> {
    /// The autonomous_trading job body for one strategy and each of its symbols.
    pub async fn run_cycle<D: DecisionEngine + Sync>(
        &self,
        strategy: &StrategyRow,
        engine: &D,
        now_ms: i64,
    ) -> Result<CycleReport, TradingError> {
        let mut report = CycleReport {
            strategy: strategy.name.clone(),
            skipped: None,
            executions: Vec::new(),
            errors: Vec::new(),
        };
        if self.is_paused()? {
            report.skipped = Some("trading is paused (kill switch)".into());
        } else if !self.is_reconciled() {
            report.skipped = Some(format!(
                "not reconciled with the exchange: {}",
                self.unresolved().join("; ")
            ));
        }
        if let Some(why) = &report.skipped {
            tracing::info!(strategy = %strategy.name, reason = %why, "autonomous trading skipped");
            return Ok(report);
        }
        let interval: Interval = strategy.interval.parse().map_err(
            |e: crate::domain::market::candle::InvalidInterval| TradingError::Strategy {
                name: strategy.name.clone(),
                detail: e.to_string(),
            },
        )?;
        for raw in &strategy.symbols {
            let symbol = match Symbol::new(raw) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push((raw.clone(), e.to_string()));
                    continue;
                }
            };
            match self
                .cycle_symbol(strategy, engine, &symbol, interval, now_ms)
                .await
            {
                Ok(r) => report.executions.push(r),
                Err(e) => {
                    tracing::warn!(strategy = %strategy.name, %symbol, error = %e, "trading cycle failed");
                    report.errors.push((symbol.to_string(), e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// One symbol of a strategy's cycle: decide on its closed candles, then execute.
    async fn cycle_symbol<D: DecisionEngine + Sync>(
        &self,
        strategy: &StrategyRow,
        engine: &D,
        symbol: &Symbol,
        interval: Interval,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let input = self
            .decision_input(symbol, interval, Some(strategy.id), now_ms)
            .await?;
        let out = engine.decide(&input).await;
        self.execute_decision(&input, &out, Some(strategy.id), now_ms)
            .await
    }

    /// Why no decision may trade now (the kill switch, or reconciliation not done), if so.
    fn trading_blocked(&self) -> Result<Option<String>, TradingError> {
        Ok(if self.is_paused()? {
            Some("trading is paused (kill switch); `trademind resume` lifts it".to_string())
        } else if !self.is_reconciled() {
            Some(format!(
                "not reconciled with the exchange: {}",
                self.unresolved().join("; ")
            ))
        } else {
            None
        })
    }

    /// Record `report` with `outcome` and `message` and return it.
    fn finish(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        mut report: ExecutionReport,
        outcome: ExecutionOutcome,
        message: String,
    ) -> Result<ExecutionReport, TradingError> {
        report.outcome = outcome;
        report.message = message;
        self.record_decision(input, out, strategy_id, &mut report)?;
        Ok(report)
    }

    /// decision → risk → plan → orders; every decision recorded with its outcome. Runs under
    /// the symbol's trading lock: whatever an earlier step left (a fill not booked, a position
    /// not protected, an order whose answer was lost) is settled first, and the risk caps are
    /// checked against the state after it, so concurrent steps cannot each see room and all buy.
    pub async fn execute_decision(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let decision = &out.validated.decision;
        let report = ExecutionReport::new(&input.symbol, decision.action.to_string());
        if out.error.is_some() || !out.validated.is_valid() || decision.action == Action::Hold {
            let outcome = match out.dry_run_outcome() {
                "error" => ExecutionOutcome::Error,
                "invalid" => ExecutionOutcome::Invalid,
                _ => ExecutionOutcome::Hold,
            };
            let message = "nothing to execute".to_string();
            return self.finish(input, out, strategy_id, report, outcome, message);
        }
        // Before anything else that could reach the exchange: a strategy trades only on its own
        // connection, whichever path (daemon, CLI, interface, demo) handed its decision here.
        if let Err(e) = self.check_strategy_connection(strategy_id) {
            let message = e.to_string();
            let outcome = ExecutionOutcome::Blocked;
            self.finish(input, out, strategy_id, report, outcome, message)?;
            return Err(e);
        }
        if let Some(why) = self.trading_blocked()? {
            return self.finish(
                input,
                out,
                strategy_id,
                report,
                ExecutionOutcome::Paused,
                why,
            );
        }
        // The live guard comes before any exchange traffic for this decision.
        if let Err(e) = self.guard() {
            let message = e.to_string();
            self.finish(
                input,
                out,
                strategy_id,
                report,
                ExecutionOutcome::Blocked,
                message,
            )?;
            return Err(e);
        }
        let _step = self.lock_symbol(&input.symbol).await?;
        let settled = self.settle_symbol(&input.symbol, now_ms).await;
        let unsettled = match &settled {
            Err(e) => Some(e.to_string()),
            Ok(_) => self.unsettled(&input.symbol)?,
        };
        if let Some(detail) = unsettled {
            tracing::warn!(symbol = %input.symbol, %detail, "entry blocked until the symbol is settled");
            let e = TradingError::Unsettled {
                symbol: input.symbol.clone(),
                detail,
            };
            self.finish(
                input,
                out,
                strategy_id,
                report,
                ExecutionOutcome::Blocked,
                e.to_string(),
            )?;
            return Err(e);
        }
        self.decide_and_act(input, out, strategy_id, report, now_ms)
            .await
    }

    /// `Err` when the strategy `strategy_id` is not on this service's connection (a strategy
    /// without a connection is on the paper exchange).
    fn check_strategy_connection(&self, strategy_id: Option<i64>) -> Result<(), TradingError> {
        let Some(id) = strategy_id else {
            return Ok(());
        };
        let db = self.store()?;
        let Some(strategy) = crate::store::strategies::list_strategies(db.conn())?
            .into_iter()
            .find(|s| s.id == id)
        else {
            return Ok(());
        };
        let own = crate::app::venue::strategy_connection(db.conn(), &strategy).map_err(|e| {
            TradingError::Strategy {
                name: strategy.name.clone(),
                detail: e.to_string(),
            }
        })?;
        if own == self.deps.connection {
            return Ok(());
        }
        Err(TradingError::NotTheStrategysConnection {
            strategy: strategy.name,
            own,
            service: self.deps.connection.clone(),
        })
    }

    /// Why strategy `strategy_id` may not add to the open position `row`, if so: a strategy
    /// enters once per position (no pyramiding) unless its parameters set `max_entries` above
    /// 1; each add is then sized by its own risk and the protection replaced once for all.
    fn no_more_entries(
        &self,
        strategy_id: i64,
        row: &positions::PositionRow,
    ) -> Result<Option<String>, TradingError> {
        let db = self.store()?;
        let Some(strategy) = crate::store::strategies::list_strategies(db.conn())?
            .into_iter()
            .find(|s| s.id == strategy_id)
        else {
            return Ok(None);
        };
        let max_entries = max_entries(&strategy.parameters);
        // Filled entries of this position: every partial or whole fill of an entry order.
        let entries: i64 = db
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM orders WHERE position_id = ?1 AND purpose = 'entry' \
                 AND status IN ('FILLED', 'PARTIALLY_FILLED')",
                [row.id],
                |r| r.get(0),
            )
            .map_err(crate::store::StoreError::from)?;
        let entries = u64::try_from(entries).unwrap_or(0).max(1);
        Ok((entries >= max_entries).then(|| {
            format!(
                "{} already holds {} {} ({entries} of max_entries {max_entries}): no pyramiding",
                strategy.name, row.position.quantity, row.position.symbol
            )
        }))
    }

    /// The name of the strategy with id `strategy_id` (its risk limits are looked up by name).
    fn strategy_name(&self, strategy_id: Option<i64>) -> Result<Option<String>, TradingError> {
        let Some(id) = strategy_id else {
            return Ok(None);
        };
        let db = self.store()?;
        Ok(crate::store::strategies::list_strategies(db.conn())?
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.name))
    }

    /// The part of `execute_decision` under the lock once the symbol is settled.
    async fn decide_and_act(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        mut report: ExecutionReport,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let decision = &out.validated.decision;
        let strategy_name = self.strategy_name(strategy_id)?;
        // A sell or close stops the strategy's resting entry from buying more: it is cancelled
        // first, and a part that filled meanwhile is booked, so the close sells it too.
        if matches!(decision.action, Action::Sell | Action::Close)
            && let Some(resting) = self.resting_entry_of(&input.symbol, strategy_id)?
        {
            let after = self.cancel_entry(&resting, now_ms).await?;
            tracing::info!(client_order_id = %after.client_order_id, symbol = %input.symbol,
                filled = %after.filled_quantity, "resting entry cancelled by a {} decision",
                decision.action);
            self.settle_symbol(&input.symbol, now_ms).await?;
        }
        let position = {
            let db = self.store()?;
            // The strategy's own book: another strategy's position in the symbol is not its.
            positions::open_position(
                db.conn(),
                &self.deps.connection,
                input.symbol.as_str(),
                strategy_id,
            )?
        };
        let mut context = super::build_risk_context(
            self.deps.exchange.as_ref(),
            &self.deps.store,
            &self.deps.settings,
            &self.deps.connection,
            &input.symbol,
            strategy_name.as_deref(),
            input.indicators.atr,
            now_ms,
        )
        .await?;
        // This book's stop-loss exits in the symbol: the cooldown and lock after stops.
        context.stop_exits = {
            let db = self.store()?;
            super::account::book_stop_exits(
                db.conn(),
                &self.deps.connection,
                &input.symbol,
                strategy_id,
                now_ms,
                input.interval,
            )?
        };
        if decision.action == Action::Buy
            && let (Some(id), Some(row)) = (strategy_id, position.as_ref())
            && let Some(why) = self.no_more_entries(id, row)?
        {
            let outcome = ExecutionOutcome::NothingToDo;
            return self.finish(input, out, strategy_id, report, outcome, why);
        }
        // A resting entry is an entry: no second one stacks on it while it rests.
        if decision.action == Action::Buy
            && let Some(resting) = self.resting_entry_of(&input.symbol, strategy_id)?
        {
            let why = format!(
                "entry {} (limit buy {} {} at {}) rests on the book: no second entry while it \
                 does",
                resting.order.client_order_id,
                resting.order.quantity,
                input.symbol,
                resting.order.price.map_or("?".into(), |p| p.to_string())
            );
            let outcome = ExecutionOutcome::NothingToDo;
            return self.finish(input, out, strategy_id, report, outcome, why);
        }
        // A limit entry is sized at its limit: the price it buys at if it buys (as the backtest
        // sizes it), `entry_limit_bps` under the price the decision was made at.
        let limit = match decision.action {
            Action::Buy => self.limit_entry(strategy_id)?.map(|entry| {
                let price =
                    super::resting_entry::limit_price(input.price, entry, &context.market.filters);
                (price, entry)
            }),
            _ => None,
        };
        let Some(intent) = intent_for(
            decision,
            input,
            limit.map_or(context.market.price, |(price, _)| price),
            position.as_ref().map(|r| &r.position),
            strategy_name,
        ) else {
            let message = format!(
                "{} with no open long in {}: short selling is not traded",
                decision.action, input.symbol
            );
            let outcome = ExecutionOutcome::NothingToDo;
            return self.finish(input, out, strategy_id, report, outcome, message);
        };
        // The account's limits and, for a strategy, its own book's (allocation, daily loss, heat).
        let verdict = self.validate_in_book(&intent, &context, strategy_id, now_ms)?;
        report.risk_verdict = Some(verdict.clone());
        let result = match plan(&intent, &verdict, position.as_ref().map(|r| &r.position)) {
            Plan::Nothing { outcome, message } => {
                return self.finish(input, out, strategy_id, report, outcome, message);
            }
            Plan::Enter {
                quantity,
                stop,
                target,
            } => {
                let filters = &context.market.filters;
                let order = match limit {
                    Some((price, entry)) => EntryOrder::Limit { price, entry },
                    None => EntryOrder::Market,
                };
                self.enter(
                    &input.symbol,
                    quantity,
                    order,
                    Levels { stop, target },
                    filters,
                    strategy_id,
                    &mut report,
                    now_ms,
                )
                .await
            }
            Plan::Close => match position {
                Some(row) => {
                    report.position_id = Some(row.id);
                    self.close_row(row, &mut report, now_ms).await.map(|_| ())
                }
                None => Ok(()),
            },
        };
        if let Err(e) = &result {
            report.outcome = ExecutionOutcome::Error;
            report.message = e.to_string();
        }
        self.record_decision(input, out, strategy_id, &mut report)?;
        result.map(|()| report)
    }

    /// An entry (at market, or a limit buy that may rest) carrying the stop and target its
    /// position is to be protected with; then the settle step books its fill and protects the
    /// position. A limit entry that does not fill at once rests; the monitor follows it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn enter(
        &self,
        symbol: &Symbol,
        quantity: Qty,
        order: EntryOrder,
        levels: Levels,
        filters: &SymbolFilters,
        strategy_id: Option<i64>,
        report: &mut ExecutionReport,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let Levels { stop, target } = levels;
        let request = match order {
            EntryOrder::Market => OrderRequest {
                client_order_id: self.next_cid("e", now_ms),
                symbol: symbol.clone(),
                side: Side::Buy,
                order_type: OrderType::Market,
                quantity: filters.round_market_qty_down(quantity),
                price: None,
                stop_price: None,
                time_in_force: None,
                trailing_delta: None,
            },
            EntryOrder::Limit { price, entry } => OrderRequest {
                client_order_id: self.next_cid("e", now_ms),
                symbol: symbol.clone(),
                side: Side::Buy,
                order_type: if entry.post_only {
                    OrderType::LimitMaker
                } else {
                    OrderType::Limit
                },
                quantity: filters.round_qty_down(quantity),
                price: Some(price),
                stop_price: None,
                // LIMIT_MAKER takes no timeInForce (it is always GTC).
                time_in_force: (!entry.post_only).then_some(TimeInForce::Gtc),
                trailing_delta: None,
            },
        };
        self.guard()?;
        report.order_ids.push(request.client_order_id.clone());
        let links = OrderLinks {
            purpose: OrderPurpose::Entry,
            strategy_id,
            protect_stop: stop,
            protect_target: target,
            ..OrderLinks::default()
        };
        let placed = match self.executor.place_linked(&request, &links, now_ms).await {
            Ok(placed) => placed,
            // A post-only entry that would take is refused by the exchange: nothing is bought,
            // and it is not sent again at market (it would pay the taker's price it refused).
            Err(why @ crate::services::exchange::ExchangeError::OrderRejected(_))
                if request.order_type == OrderType::LimitMaker =>
            {
                report.outcome = ExecutionOutcome::NotFilled;
                report.message = format!(
                    "post-only limit buy {} {symbol} at {} refused: {why}; nothing bought",
                    request.quantity,
                    request.price.map_or("?".into(), |p| p.to_string())
                );
                tracing::info!(client_order_id = %request.client_order_id, %symbol,
                    reason = %why, "post-only entry refused: it would take");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(client_order_id = %request.client_order_id, %symbol, side = "BUY",
            order_type = request.order_type.as_str(), quantity = %request.quantity,
            price = ?request.price, status = %placed.order.status,
            ?stop, ?target, "entry order sent");
        self.publish_order(&placed.order);
        let settled =
            self.settle_symbol(symbol, now_ms)
                .await
                .map_err(|e| TradingError::Unsettled {
                    symbol: symbol.clone(),
                    detail: format!(
                        "entry {} was sent but could not be booked ({e}); the next step on \
                     {symbol} (or `trademind reconcile`) books and protects it",
                        request.client_order_id
                    ),
                })?;
        let booked = settled
            .booked
            .iter()
            .find(|b| b.client_order_id == request.client_order_id);
        if let Some(b) = booked {
            report.position_id = Some(b.position_id);
        }
        if let Some(b) = booked
            && let Protection::Placed { ids, .. } = settled.protection_of(b.position_id)
        {
            report.order_ids.extend(ids.iter().cloned());
        }
        let (mut outcome, mut message) = entry_outcome(&settled, &request.client_order_id, symbol);
        if let (EntryOrder::Limit { entry, .. }, Some(price)) = (order, request.price) {
            let rests = {
                let db = self.store()?;
                crate::store::orders::get(db.conn(), &request.client_order_id)?
                    .is_some_and(|o| o.order.status.is_open())
            };
            if rests {
                let rest = format!(
                    "limit buy {} {symbol} at {price} rests (cancelled after {} candle(s) \
                     unless filled)",
                    request.quantity, entry.timeout_candles
                );
                message = if outcome == ExecutionOutcome::NotFilled {
                    outcome = ExecutionOutcome::Resting;
                    rest
                } else {
                    format!("{message}; its unfilled part rests: {rest}")
                };
            }
        }
        report.outcome = outcome;
        if outcome == ExecutionOutcome::Executed {
            message = format!(
                "{message} (stop {}, target {})",
                stop.map_or("-".into(), |p| p.to_string()),
                target.map_or("-".into(), |p| p.to_string()),
            );
        }
        report.message = message;
        // A failed protection was alerted by the settle step; nothing filled, nothing to say.
        if let (ExecutionOutcome::Executed, Some(b)) = (outcome, booked) {
            let price = b.price.map_or("?".into(), |p| p.to_string());
            self.alert(
                AlertKind::TradeExecuted,
                format!("trade_executed/{}", request.client_order_id),
                format!("TradeMind: bought {} {symbol} at {price}", b.bought),
                report.message.clone(),
                now_ms,
            )
            .await;
        }
        Ok(())
    }

    /// Record the decision with its outcome, verdict and orders; link the orders to it.
    fn record_decision(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        report: &mut ExecutionReport,
    ) -> Result<(), TradingError> {
        let verdict =
            recorder::DecisionRecord::of_execution(report.risk_verdict.clone(), &report.message)
                .map(|r| serde_json::to_value(r).unwrap_or_default());
        let db = self.store()?;
        let id = record(
            &db,
            input,
            out,
            strategy_id,
            report.outcome.as_str(),
            verdict,
            Some(&self.deps.bus),
        )?;
        if !report.order_ids.is_empty() {
            recorder::set_order_ids(db.conn(), id, &report.order_ids)?;
            for cid in &report.order_ids {
                orders::link(db.conn(), cid, None, Some(id))?;
            }
        }
        report.decision_id = Some(id);
        // One line per decision that did something or was stopped, with the reason (a risk
        // refusal, a pause, a block); a hold is the common case and stays at debug.
        if report.outcome == ExecutionOutcome::Hold {
            tracing::debug!(symbol = %input.symbol, decision_id = id, "decision: hold");
        } else {
            tracing::info!(symbol = %input.symbol, action = %report.action,
                outcome = report.outcome.as_str(), decision_id = id, reason = %report.message,
                "decision {}", report.outcome.as_str());
        }
        Ok(())
    }
}
