//! The account as the risk layer sees it: equity in the connection's currency, the risk
//! context of a decision, marks and the equity series, and the circuit breaker fed from them.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use std::sync::Mutex;

use super::{BALANCES_MAX_AGE_MS, CANDLES, TradingError, TradingService, day_start, lock_store};
use crate::app::bus::Event;
use crate::config::Settings;
use crate::domain::decision::DecisionInput;
use crate::domain::market::candle::Interval;
use crate::domain::money::{Price, Quote};
use crate::domain::risk::{
    BookMeasures, BreakerInputs, BreakerReason, BreakerState, BreakerTransition, Check,
    MarketSnapshot, OpenPosition, RiskContext, RiskManagementService, RiskVerdict, StopExits,
    TradeIntent, daily_loss_pct, describe_trip, drawdown_pct,
};
use crate::domain::symbol::Symbol;
use crate::domain::trading::PositionService;
use crate::services::exchange::{Exchange, balance_of};
use crate::services::notification::AlertKind;
use crate::store::positions::{self, PositionRow};
use crate::store::risk::{self as risk_store, GLOBAL_SCOPE};
use crate::store::{Store, StoreError, book_risk, decisions as recorder, equity as equity_store};

/// The currency a connection's equity is measured in: the quote asset (as the exchange's
/// filters name it) of the first of `trading.symbols`. One currency per connection, whatever
/// symbol is being decided or which position happens to be open, so start-of-day, peak and
/// drawdown compare like with like. Symbols quoted in another asset are not converted.
pub async fn quote_currency<E: Exchange>(
    exchange: &E,
    settings: &Settings,
) -> Result<String, TradingError> {
    let first = settings.trading.symbols.first().ok_or_else(|| {
        TradingError::Config("trading.symbols is empty: list at least one symbol".into())
    })?;
    let symbol =
        Symbol::new(first).map_err(|e| TradingError::Config(format!("trading.symbols: {e}")))?;
    Ok(exchange.symbol_filters(&symbol).await?.quote_asset)
}

/// Equity in `currency`: that balance (free and locked) plus the open positions at their
/// marks (`marks` first, else the stored mark, else the entry); returns (equity, unrealised
/// PnL). The risk context and the equity series both come from here.
pub fn account_equity(
    balances: &[crate::services::exchange::Balance],
    currency: &str,
    open: &[PositionRow],
    marks: &[(Symbol, Price)],
) -> (Quote, Quote) {
    let mut equity = Quote(balance_of(balances, currency).total());
    let mut unrealised = Quote::ZERO;
    for row in open {
        let p = &row.position;
        let mark = marks
            .iter()
            .find(|(s, _)| s == &p.symbol)
            .map(|(_, m)| *m)
            .or(row.mark_price)
            .unwrap_or(p.entry_price);
        equity += PositionService::market_value(p, mark);
        unrealised += PositionService::unrealized_pnl(p, mark);
    }
    (equity, unrealised)
}

/// The risk layer's view of the account for one symbol: the connection's equity
/// (`account_equity`, the traded symbol marked at its ticker price), open positions,
/// today's PnL, start-of-day and peak equity, closed trades, the limits and the breaker.
/// `execute_decision` and `trademind decide` both build their context here.
#[allow(clippy::too_many_arguments)]
pub async fn build_risk_context<E: Exchange>(
    exchange: &E,
    store: &Mutex<Store>,
    settings: &Settings,
    connection: &str,
    symbol: &Symbol,
    strategy: Option<&str>,
    atr: Option<f64>,
    now_ms: i64,
) -> Result<RiskContext, TradingError> {
    let filters = exchange.symbol_filters(symbol).await?;
    let price = exchange.ticker_price(symbol).await?;
    let balances = exchange.balances().await?;
    let currency = quote_currency(exchange, settings).await?;
    let db = lock_store(store)?;
    let c = db.conn();
    let rows = positions::open_for_connection(c, connection)?;
    let mut open: Vec<OpenPosition> = rows
        .iter()
        .map(|row| OpenPosition {
            symbol: row.position.symbol.clone(),
            quantity: row.position.quantity,
            entry: row.position.entry_price,
            stop: row.position.stop_loss,
        })
        .collect();
    // A resting limit entry counts as if filled (heat, exposure): a second decision cannot
    // stack more risk on it while it rests.
    open.extend(super::resting_entry::resting_as_open(c, connection, None)?);
    let (equity, unrealised) =
        account_equity(&balances, &currency, &rows, &[(symbol.clone(), price)]);
    let start_of_day =
        equity_store::start_of_day(c, connection, day_start(now_ms))?.unwrap_or(equity);
    let peak = equity_store::peak(c, connection)?.map_or(equity, |(p, _)| p.max(equity));
    let config = match risk_store::load_config(c, strategy, &settings.risk) {
        Ok((config, _)) => config,
        // A strategy without its own row in the database trades on the default limits.
        Err(StoreError::NotFound(_)) => risk_store::load_config(c, None, &settings.risk)?.0,
        Err(e) => return Err(e.into()),
    };
    Ok(RiskContext {
        equity,
        // What pays for an order is the traded symbol's own quote balance.
        available_balance: Quote(balance_of(&balances, &filters.quote_asset).free),
        open_positions: open,
        realised_pnl_today: positions::realized_since(c, connection, day_start(now_ms))?,
        unrealised_pnl: unrealised,
        start_of_day_equity: start_of_day,
        peak_equity: peak,
        closed_trades: positions::closed_trades(c, connection)?,
        config,
        market: MarketSnapshot {
            stop_limit_offset_pct: settings.trading.stop_limit_offset_pct,
            price,
            atr: atr.and_then(Decimal::from_f64).map(Price),
            filters,
        },
        breaker: risk_store::load_breaker(c, GLOBAL_SCOPE)?.state,
        stop_exits: StopExits::default(),
    })
}

/// One book's stop-loss exits in `symbol` with the decision's clock and candle: what the
/// cooldown and lock after stops judge an entry by (`RiskContext::stop_exits`). The entry path
/// and `trademind decide`'s dry run both take them from here.
pub fn book_stop_exits(
    conn: &rusqlite::Connection,
    connection: &str,
    symbol: &Symbol,
    book: Option<i64>,
    now_ms: i64,
    candle: Interval,
) -> Result<StopExits, StoreError> {
    Ok(StopExits {
        stops: crate::store::orders::stop_exits(conn, connection)?
            .into_iter()
            .filter(|s| s.symbol == symbol.as_str() && s.book == book)
            .map(|s| s.at_ms)
            .collect(),
        now_ms,
        candle_ms: candle.millis(),
    })
}

/// The risk layer's view of one strategy's book (its virtual sub-account), from the account's
/// context and the book's measures (`domain::risk::measure_book`): the book's equity (its
/// allocation of the account's equity, or the whole of it), what it may spend (the account's
/// free balance, at most its equity less what its positions are worth), its own open positions
/// (heat, open count), today's PnL and start of day, its own high-water mark, closed trades
/// and losing streak, and its own circuit breaker `breaker`. Limits and market are the
/// account's.
pub fn book_risk_context(
    account: &RiskContext,
    measures: &BookMeasures,
    figures: positions::BookFigures,
    breaker: BreakerState,
) -> RiskContext {
    let spendable = Quote((measures.equity.get() - measures.held_value.get()).max(Decimal::ZERO));
    RiskContext {
        equity: measures.equity,
        available_balance: Quote(account.available_balance.get().min(spendable.get())),
        open_positions: figures
            .open
            .iter()
            .map(|row| OpenPosition {
                symbol: row.position.symbol.clone(),
                quantity: row.position.quantity,
                entry: row.position.entry_price,
                stop: row.position.stop_loss,
            })
            .collect(),
        realised_pnl_today: measures.realised_today,
        unrealised_pnl: measures.unrealised,
        start_of_day_equity: measures.start_of_day_equity,
        peak_equity: measures.peak_equity,
        closed_trades: figures.closed_trades,
        config: account.config.clone(),
        market: account.market.clone(),
        breaker,
        // The account's context already carries this book's stops: judged once.
        stop_exits: StopExits::default(),
    }
}

/// `verdict` with a tripped breaker's refusal said the way an operator reads it: whose breaker
/// (`account` or `strategy NAME`), its state and the rule that tripped it. `book_prefix` is how
/// `combine_verdicts` prefixed the book's reasons.
pub fn name_breaker_refusals(
    verdict: RiskVerdict,
    account_line: &str,
    book: Option<(&str, &str)>,
) -> RiskVerdict {
    let RiskVerdict::Refused { reasons, checks } = verdict else {
        return verdict;
    };
    const CHECK: &str = "breaker_active:";
    let reasons = reasons
        .into_iter()
        .map(|r| {
            if let Some((name, line)) = book
                && r.strip_prefix(&format!("strategy {name}'s book: "))
                    .is_some_and(|rest| rest.starts_with(CHECK))
            {
                return format!("strategy {name}: {line}");
            }
            if r.starts_with(CHECK) {
                return format!("account: {account_line}");
            }
            r
        })
        .collect();
    RiskVerdict::Refused { reasons, checks }
}

/// One verdict from the account's and a strategy's book's: refused when either refuses (the
/// book's reasons say whose), else the smaller approved quantity. The book's checks are kept
/// beside the account's, named `book.<check>`.
pub fn combine_verdicts(account: RiskVerdict, book: RiskVerdict, strategy: &str) -> RiskVerdict {
    let (book_approved, book_reasons, book_checks) = match book {
        RiskVerdict::Refused { reasons, checks } => (None, reasons, checks),
        approved @ RiskVerdict::Approved { .. } => {
            let checks = approved.checks().to_vec();
            (Some(approved), Vec::new(), checks)
        }
    };
    let book_checks: Vec<Check> = book_checks
        .into_iter()
        .map(|mut c| {
            c.name = std::borrow::Cow::Owned(format!("book.{}", c.name));
            c
        })
        .collect();
    let book_reasons: Vec<String> = book_reasons
        .into_iter()
        .map(|r| format!("strategy {strategy}'s book: {r}"))
        .collect();
    match (account, book_approved) {
        (
            RiskVerdict::Refused {
                mut reasons,
                mut checks,
            },
            _,
        ) => {
            reasons.extend(book_reasons);
            checks.extend(book_checks);
            RiskVerdict::Refused { reasons, checks }
        }
        (RiskVerdict::Approved { checks, .. }, None) => {
            let mut all = checks;
            all.extend(book_checks);
            RiskVerdict::Refused {
                reasons: book_reasons,
                checks: all,
            }
        }
        (account @ RiskVerdict::Approved { .. }, Some(book)) => {
            let smaller_is_book = match (&account, &book) {
                (
                    RiskVerdict::Approved { quantity: a, .. },
                    RiskVerdict::Approved { quantity: b, .. },
                ) => b <= a,
                _ => true,
            };
            let mut all = account.checks().to_vec();
            all.extend(book_checks);
            let mut chosen = if smaller_is_book { book } else { account };
            if let RiskVerdict::Approved { checks, .. } = &mut chosen {
                *checks = all;
            }
            chosen
        }
    }
}

impl<E: Exchange + 'static> TradingService<E> {
    /// The decision input for a symbol from the exchange's CLOSED candles, with the open
    /// position, the risk state and the last decisions filled in.
    pub async fn decision_input(
        &self,
        symbol: &Symbol,
        interval: Interval,
        book: positions::BookId,
        now_ms: i64,
    ) -> Result<DecisionInput, TradingError> {
        let mut candles = self
            .deps
            .exchange
            .klines(symbol, interval, None, CANDLES)
            .await?;
        candles.retain(|c| c.close_time(interval) <= now_ms);
        let mut input = DecisionInput::from_candles(symbol.clone(), interval, &candles, now_ms)
            .ok_or_else(|| TradingError::NoMarketData {
                symbol: symbol.clone(),
                detail: format!("the exchange returned no closed {interval} candles"),
            })?;
        self.complete_input(&mut input, book)?;
        Ok(input)
    }

    /// Fill a snapshot's position, risk and history parts from the database. The position is
    /// `book`'s own (a strategy's, `None` the default book): a strategy decides on what it
    /// holds, not on another strategy's position in the symbol.
    pub fn complete_input(
        &self,
        input: &mut DecisionInput,
        book: positions::BookId,
    ) -> Result<(), TradingError> {
        let settings = &self.deps.settings;
        let unresolved = self.unresolved();
        let db = self.store()?;
        let c = db.conn();
        // The same account read model the faces show (`decide` builds its prompt from it too).
        let view = crate::store::account::load(
            c,
            &crate::store::account::AccountQuery {
                connection: &self.deps.connection,
                now_ms: input.now_ms,
                day_start_ms: day_start(input.now_ms),
                // Before the first equity snapshot a paper account's equity is its cash + PnL,
                // as the TUI and `status` show it; without it the prompt's heat read 0.
                paper_starting_balance: self.paper_starting_balance(),
                unresolved,
            },
        )?;
        crate::app::decide::apply_account(input, &view);
        input.position = match positions::open_position(
            c,
            &self.deps.connection,
            input.symbol.as_str(),
            book,
        )? {
            Some(row) => Some(crate::domain::decision::PositionSnapshot {
                quantity: row.position.quantity,
                entry_price: row.position.entry_price,
                unrealized_pnl: PositionService::unrealized_pnl(&row.position, input.price),
                thesis: crate::store::account::position_thesis(c, row.id)?,
            }),
            None => None,
        };
        input.risk.max_position_pct = settings.llm.max_position_pct;
        input.recent_decisions = recorder::past_decisions(
            c,
            input.symbol.as_str(),
            input.now_ms,
            settings.llm.recent_decisions,
        )?;
        // A strategy's own lessons from its closed positions (none for the default book).
        input.reflections = match book {
            Some(_) if settings.llm.reflections > 0 => {
                crate::store::reflections::recent(c, book, input.now_ms, settings.llm.reflections)?
                    .iter()
                    .map(crate::store::reflections::StoredReflection::past)
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(())
    }

    /// The risk verdict on `intent`: the account's, and for a strategy its own book's too
    /// (`book_risk_context`, sized on its allocation, judged by its own breaker); both must
    /// approve. A tripped breaker's refusal names whose it is.
    pub(super) fn validate_in_book(
        &self,
        intent: &TradeIntent,
        account: &RiskContext,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<RiskVerdict, TradingError> {
        let verdict = RiskManagementService::validate(intent, account);
        let account_line = {
            let db = self.store()?;
            let breaker = risk_store::load_breaker(db.conn(), GLOBAL_SCOPE)?;
            describe_trip(
                &breaker,
                daily_loss_pct(
                    account.realised_pnl_today,
                    account.unrealised_pnl,
                    account.start_of_day_equity,
                ),
                drawdown_pct(account.equity, account.peak_equity),
                &account.config,
            )
        };
        let Some(id) = strategy_id else {
            return Ok(name_breaker_refusals(verdict, &account_line, None));
        };
        let (measures, figures, name, breaker) = {
            let db = self.store()?;
            let c = db.conn();
            let name = crate::store::strategies::list_strategies(c)?
                .into_iter()
                .find(|s| s.id == id)
                .map_or_else(|| format!("#{id}"), |s| s.name);
            let figures =
                positions::book_figures(c, &self.deps.connection, Some(id), day_start(now_ms))?;
            // The traded symbol at the decision's price, the others at their stored marks.
            let measures = book_risk::measure(
                c,
                &self.deps.connection,
                id,
                account.equity,
                &figures,
                day_start(now_ms),
                |row| {
                    if row.position.symbol == intent.symbol {
                        account.market.price
                    } else {
                        book_risk::stored_mark(row)
                    }
                },
            )?;
            let breaker = risk_store::load_breaker(c, book_risk::book_scope(&name))?;
            (measures, figures, name, breaker)
        };
        let resting = {
            let db = self.store()?;
            super::resting_entry::resting_as_open(db.conn(), &self.deps.connection, Some(Some(id)))?
        };
        let mut book = book_risk_context(account, &measures, figures, breaker.state);
        book.open_positions.extend(resting);
        let book_verdict = RiskManagementService::validate(intent, &book);
        let book_line = describe_trip(
            &breaker,
            measures.daily_loss_pct(),
            measures.drawdown_pct(),
            &book.config,
        );
        Ok(name_breaker_refusals(
            combine_verdicts(verdict, book_verdict, &name),
            &account_line,
            Some((&name, &book_line)),
        ))
    }

    /// Equity now (`account_equity` in the connection's `quote_currency`). Returns (equity,
    /// unrealised PnL).
    /// `balances_max_age_ms`: reuse balances fetched that recently (marks from the WebSocket
    /// arrive far more often than the account endpoint's request weight allows).
    pub(super) async fn equity(
        &self,
        marks: &[(Symbol, Price)],
        now_ms: i64,
        balances_max_age_ms: i64,
    ) -> Result<(Quote, Quote), TradingError> {
        let rows = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        let cached = self
            .balances
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|(at, _)| now_ms - *at < balances_max_age_ms && *at <= now_ms)
            .map(|(_, b)| b);
        let balances = match cached {
            Some(b) => b,
            None => {
                let fresh = self.deps.exchange.balances().await?;
                if let Ok(mut c) = self.balances.lock() {
                    *c = Some((now_ms, fresh.clone()));
                }
                fresh
            }
        };
        let currency = quote_currency(self.deps.exchange.as_ref(), &self.deps.settings).await?;
        Ok(account_equity(&balances, &currency, &rows, marks))
    }

    /// Feed the circuit breaker today's loss, the drawdown and the closed trades; transitions
    /// are stored and announced.
    pub(super) async fn evaluate_breaker(
        &self,
        now_ms: i64,
    ) -> Result<Vec<BreakerTransition>, TradingError> {
        let (equity, unrealised) = self.equity(&[], now_ms, 0).await?;
        let transitions = {
            let db = self.store()?;
            let c = db.conn();
            let (config, _) = risk_store::load_config(c, None, &self.deps.settings.risk)?;
            let start = equity_store::start_of_day(c, &self.deps.connection, day_start(now_ms))?
                .unwrap_or(equity);
            let peak = equity_store::peak(c, &self.deps.connection)?
                .map_or(equity, |(p, _)| p.max(equity));
            let realised = positions::realized_since(c, &self.deps.connection, day_start(now_ms))?;
            let trades = positions::closed_trades(c, &self.deps.connection)?;
            let inputs = BreakerInputs {
                daily_loss_pct: daily_loss_pct(realised, unrealised, start),
                drawdown_pct: drawdown_pct(equity, peak),
                closed_trades: &trades,
            };
            let mut breaker = risk_store::load_breaker(c, GLOBAL_SCOPE)?;
            let transitions = breaker.evaluate(&inputs, &config, now_ms);
            for t in &transitions {
                risk_store::record_transition(c, GLOBAL_SCOPE, t)?;
            }
            transitions
        };
        for t in &transitions {
            self.announce_breaker(t, None, None, now_ms).await;
        }
        let mut all = transitions;
        all.extend(self.evaluate_book_breakers(equity, now_ms).await?);
        Ok(all)
    }

    /// Publish and alert one breaker transition: the account's (`strategy` `None`) or a
    /// strategy's book's, named in the event's scope, the alert's subject and its key.
    pub(super) async fn announce_breaker(
        &self,
        t: &BreakerTransition,
        note: Option<&str>,
        strategy: Option<&str>,
        now_ms: i64,
    ) {
        let reason = match note {
            Some(n) => format!("{}: {n}", t.reason),
            None => t.reason.to_string(),
        };
        self.publish(Event::BreakerChanged {
            scope: strategy.map_or(GLOBAL_SCOPE, book_risk::book_scope).into(),
            state: t.to,
            reason: reason.clone(),
        });
        let kind = if t.reason == BreakerReason::DailyLossLimit {
            AlertKind::DailyLossLimit
        } else {
            AlertKind::BreakerChanged
        };
        let whose = strategy.map_or_else(String::new, |s| format!("strategy {s}: "));
        let subject = if t.to == crate::domain::risk::BreakerState::Active {
            format!("TradeMind: {whose}circuit breaker reset ({reason})")
        } else {
            format!(
                "TradeMind: {whose}circuit breaker tripped to {} ({reason})",
                t.to
            )
        };
        let key = match strategy {
            Some(s) => format!("breaker/strategy/{s}/{}/{}", t.to, t.reason),
            None => format!("breaker/{}/{}", t.to, t.reason),
        };
        self.alert(
            kind,
            key,
            subject.clone(),
            format!("{subject} at {} ms; was {}", t.at, t.from),
            now_ms,
        )
        .await;
    }

    /// update_prices: marks from `exchange.ticker_price` for every open position.
    pub async fn update_prices(&self, now_ms: i64) -> Result<(), TradingError> {
        self.update_prices_except(|_| false, now_ms).await
    }

    /// `update_prices` for the open positions whose symbol is not `fresh` (marked by the
    /// market stream recently); nothing is asked of the exchange when all are.
    pub async fn update_prices_except(
        &self,
        fresh: impl Fn(&Symbol) -> bool,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let open = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        let any_open = !open.is_empty();
        let rows: Vec<PositionRow> = open
            .into_iter()
            .filter(|r| !fresh(&r.position.symbol))
            .collect();
        if any_open && rows.is_empty() {
            // The stream marks every position (and records the equity with them).
            return Ok(());
        }
        let mut marks = Vec::new();
        for r in rows {
            let price = self.deps.exchange.ticker_price(&r.position.symbol).await?;
            marks.push((r.position.symbol, price));
        }
        self.apply_marks(&marks, now_ms).await
    }

    /// Marks supplied by the caller (e.g. the WebSocket): unrealised PnL per position and the
    /// equity are stored and published.
    pub async fn apply_marks(
        &self,
        marks: &[(Symbol, Price)],
        now_ms: i64,
    ) -> Result<(), TradingError> {
        {
            let db = self.store()?;
            for (symbol, price) in marks {
                for row in
                    positions::open_in_symbol(db.conn(), &self.deps.connection, symbol.as_str())?
                {
                    let u = PositionService::unrealized_pnl(&row.position, *price);
                    positions::mark(db.conn(), row.id, *price, u, now_ms)?;
                }
            }
        }
        for (symbol, price) in marks {
            self.publish(Event::PriceUpdated {
                symbol: symbol.clone(),
                price: *price,
                time_ms: now_ms,
            });
        }
        let (equity, unrealised) = self.equity(marks, now_ms, BALANCES_MAX_AGE_MS).await?;
        {
            let db = self.store()?;
            equity_store::insert(db.conn(), &self.deps.connection, equity, unrealised, now_ms)?;
        }
        self.publish(Event::EquityUpdated {
            connection: self.deps.connection.clone(),
            equity,
            unrealized_pnl: unrealised,
        });
        Ok(())
    }
}

#[cfg(test)]
mod book_tests {
    use super::*;
    use crate::domain::money::Qty;
    use rust_decimal_macros::dec;

    fn check(name: &'static str, passed: bool) -> Check {
        Check {
            name: std::borrow::Cow::Borrowed(name),
            passed,
            detail: String::new(),
        }
    }

    fn approved(qty: Decimal) -> RiskVerdict {
        RiskVerdict::Approved {
            quantity: Qty(qty),
            entry: Price(dec!(50000)),
            stop: Some(Price(dec!(45000))),
            take_profit: None,
            notional: Quote(qty * dec!(50000)),
            risk_amount: Quote(qty * dec!(5000)),
            checks: vec![check("max_daily_loss", true)],
        }
    }

    fn refused(reason: &str) -> RiskVerdict {
        RiskVerdict::Refused {
            reasons: vec![reason.to_string()],
            checks: vec![check("max_daily_loss", false)],
        }
    }

    #[test]
    fn both_approving_gives_the_smaller_quantity_with_both_sets_of_checks() {
        let v = combine_verdicts(approved(dec!(0.02)), approved(dec!(0.002)), "fast");
        let RiskVerdict::Approved {
            quantity, checks, ..
        } = v
        else {
            panic!("refused: {v:?}");
        };
        assert_eq!(quantity, Qty(dec!(0.002)));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_ref()).collect();
        assert_eq!(names, vec!["max_daily_loss", "book.max_daily_loss"]);
        let v = combine_verdicts(approved(dec!(0.001)), approved(dec!(0.002)), "fast");
        assert!(
            matches!(v, RiskVerdict::Approved { quantity, .. } if quantity == Qty(dec!(0.001)))
        );
    }

    #[test]
    fn either_refusing_refuses_and_the_books_reasons_name_the_strategy() {
        let v = combine_verdicts(approved(dec!(0.02)), refused("daily loss 4 %"), "fast");
        assert!(matches!(&v, RiskVerdict::Refused { reasons, .. }
            if reasons == &vec!["strategy fast's book: daily loss 4 %".to_string()]));
        let v = combine_verdicts(refused("heat"), approved(dec!(0.002)), "fast");
        assert!(matches!(&v, RiskVerdict::Refused { reasons, checks }
            if reasons == &vec!["heat".to_string()] && checks.len() == 2));
    }
}
