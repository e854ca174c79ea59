//! A strategy's book (its virtual sub-account) as its own limits and its own circuit breaker
//! measure it: the book's equity, today's PnL and start of day, and its high-water mark.
//!
//! The book's drawdown counts from the peak of its OWN PnL, not of its equity: with a
//! percentage allocation the book's equity moves with the whole account, so another strategy's
//! loss would otherwise draw this book down too and trip its breaker. The equity at the peak is
//! the book's equity now plus what its own PnL gave back since; for a fixed allocation that is
//! exactly the highest equity the book had.

use rust_decimal::Decimal;

use super::breaker::{BreakerInputs, BreakerReason, CircuitBreaker, ClosedTrade};
use super::config::RiskConfig;
use super::service::{daily_loss_pct, drawdown_pct};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Quote};
use crate::domain::trading::{Allocation, Position, PositionService};

/// What a book's measures are made of.
#[derive(Debug, Clone, Copy)]
pub struct BookInputs<'a> {
    /// The whole account's equity (the base of a percentage allocation).
    pub account_equity: Quote,
    /// `None`: the book trades on the whole account.
    pub allocation: Option<Allocation>,
    /// The book's open positions, each with its mark.
    pub open: &'a [(&'a Position, Price)],
    /// Realised PnL of the book's positions closed today.
    pub realised_closed_today: Quote,
    /// Realised PnL of every position of the book, open and closed (net of every fee).
    pub realised_total: Quote,
    pub day_start_ms: TimestampMs,
    /// The highest PnL (realised + unrealised) the book has been seen at; `None` when never
    /// recorded (then its start, zero).
    pub pnl_peak: Option<Quote>,
}

/// A book's risk measures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookMeasures {
    /// Its allocation of the account's equity (the whole of it without one).
    pub equity: Quote,
    pub unrealised: Quote,
    /// Closed today, plus the entry fees of positions opened today and still open.
    pub realised_today: Quote,
    /// What its open positions are worth at their marks.
    pub held_value: Quote,
    /// Its PnL since it began (realised + unrealised).
    pub pnl: Quote,
    /// The highest PnL it has reached, this one included.
    pub pnl_peak: Quote,
    /// Its equity less today's PnL.
    pub start_of_day_equity: Quote,
    /// Its equity at its own PnL's high-water mark.
    pub peak_equity: Quote,
}

/// The measures of one book.
pub fn measure_book(inputs: &BookInputs<'_>) -> BookMeasures {
    let mut unrealised = Quote::ZERO;
    let mut held_value = Quote::ZERO;
    let mut realised_today = inputs.realised_closed_today;
    for (position, mark) in inputs.open {
        unrealised += PositionService::unrealized_pnl(position, *mark);
        held_value += PositionService::market_value(position, *mark);
        // Entry fees of positions opened today are today's realised PnL too (as the account
        // read model counts them).
        if position.opened_at >= inputs.day_start_ms {
            realised_today += position.realized_pnl;
        }
    }
    let pnl = inputs.realised_total + unrealised;
    let equity = inputs.allocation.map_or(inputs.account_equity, |a| {
        a.equity(inputs.account_equity, pnl)
    });
    let pnl_peak = inputs.pnl_peak.unwrap_or(Quote::ZERO).max(pnl);
    BookMeasures {
        equity,
        unrealised,
        realised_today,
        held_value,
        pnl,
        pnl_peak,
        start_of_day_equity: Quote(equity.get() - realised_today.get() - unrealised.get()),
        peak_equity: Quote(equity.get() + (pnl_peak.get() - pnl.get())),
    }
}

impl BookMeasures {
    /// Today's loss as % of the book's start of day (positive = losing).
    pub fn daily_loss_pct(&self) -> Decimal {
        daily_loss_pct(
            self.realised_today,
            self.unrealised,
            self.start_of_day_equity,
        )
    }

    /// Drawdown from the book's own high-water mark, %.
    pub fn drawdown_pct(&self) -> Decimal {
        drawdown_pct(self.equity, self.peak_equity)
    }

    /// What the book's breaker is fed: the same rules as the account's, on the book's figures.
    pub fn breaker_inputs<'a>(&self, closed_trades: &'a [ClosedTrade]) -> BreakerInputs<'a> {
        BreakerInputs {
            daily_loss_pct: self.daily_loss_pct(),
            drawdown_pct: self.drawdown_pct(),
            closed_trades,
        }
    }
}

/// "circuit breaker HALTED (daily loss 4 % ≥ 3 %)": a tripped breaker as a refusal names it,
/// with the rule that tripped it measured now (`daily_loss_pct`, `drawdown_pct`).
pub fn describe_trip(
    breaker: &CircuitBreaker,
    daily_loss_pct: Decimal,
    drawdown_pct: Decimal,
    config: &RiskConfig,
) -> String {
    let pct = |d: Decimal| d.round_dp(2).normalize();
    let why = match breaker.reason {
        Some(BreakerReason::DailyLossLimit) => format!(
            "daily loss {} % ≥ {} %",
            pct(daily_loss_pct),
            pct(config.max_daily_loss_pct)
        ),
        Some(BreakerReason::DrawdownLimit) => format!(
            "drawdown {} % ≥ {} %",
            pct(drawdown_pct),
            pct(config.max_drawdown_pct)
        ),
        Some(r) => r.as_str().replace('_', " "),
        None => "no reason recorded".into(),
    };
    format!("circuit breaker {} ({why})", breaker.state.label())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Symbol;
    use crate::domain::money::Qty;
    use crate::domain::risk::BreakerState;
    use crate::domain::trading::PositionSide;
    use rust_decimal_macros::dec;

    const DAY: TimestampMs = 1_736_899_200_000;

    fn long(qty: Decimal, entry: Decimal, opened_at: TimestampMs) -> Position {
        Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty(qty),
            entry_price: Price(entry),
            stop_loss: None,
            take_profit: None,
            realized_pnl: Quote::ZERO,
            fees_paid: Quote::ZERO,
            opened_at,
            closed_at: None,
        }
    }

    fn inputs<'a>(open: &'a [(&'a Position, Price)]) -> BookInputs<'a> {
        BookInputs {
            account_equity: Quote(dec!(10000)),
            allocation: Some(Allocation::Quote(Quote(dec!(1000)))),
            open,
            realised_closed_today: Quote::ZERO,
            realised_total: Quote::ZERO,
            day_start_ms: DAY,
            pnl_peak: None,
        }
    }

    #[test]
    fn drawdown_counts_from_the_books_own_high_water_mark() {
        // Book of 1 000: it made +200 (peak PnL 200, equity 1 200), then gave back 150 in an
        // open position: equity 1 050, drawdown 150 / 1 200 = 12.5 %.
        let p = long(dec!(1), dec!(500), DAY - 1);
        let open = [(&p, Price(dec!(350)))];
        let m = measure_book(&BookInputs {
            realised_total: Quote(dec!(200)),
            pnl_peak: Some(Quote(dec!(200))),
            ..inputs(&open)
        });
        assert_eq!(m.equity, Quote(dec!(1050)));
        assert_eq!(m.peak_equity, Quote(dec!(1200)));
        assert_eq!(m.drawdown_pct(), dec!(12.5));
        // Without the stored peak the same book is only 150 / 1 000 under its start.
        let fresh = measure_book(&BookInputs {
            realised_total: Quote(dec!(200)),
            ..inputs(&open)
        });
        assert_eq!(fresh.drawdown_pct(), Decimal::ZERO);
    }

    #[test]
    fn another_books_loss_does_not_draw_a_percentage_book_down() {
        // 50 % of the account: the account fell from 10 000 to 8 000 (another strategy lost);
        // this book's own PnL never fell, so its drawdown is nil though its equity is 4 000.
        let m = measure_book(&BookInputs {
            account_equity: Quote(dec!(8000)),
            allocation: Some(Allocation::Percent(dec!(50))),
            realised_total: Quote(dec!(30)),
            pnl_peak: Some(Quote(dec!(30))),
            ..inputs(&[])
        });
        assert_eq!(m.equity, Quote(dec!(4000)));
        assert_eq!(m.drawdown_pct(), Decimal::ZERO);
    }

    #[test]
    fn daily_loss_is_todays_pnl_over_the_books_start_of_day() {
        // Closed today for -40, an open position 10 under water opened yesterday: the day
        // started at 1 000 and lost 50: 5 %.
        let p = long(dec!(1), dec!(100), DAY - 1);
        let open = [(&p, Price(dec!(90)))];
        let m = measure_book(&BookInputs {
            realised_closed_today: Quote(dec!(-40)),
            realised_total: Quote(dec!(-40)),
            ..inputs(&open)
        });
        assert_eq!(m.equity, Quote(dec!(950)));
        assert_eq!(m.start_of_day_equity, Quote(dec!(1000)));
        assert_eq!(m.daily_loss_pct(), dec!(5));
        let b = CircuitBreaker {
            state: BreakerState::Halted,
            reason: Some(BreakerReason::DailyLossLimit),
            since: DAY,
            until: None,
        };
        assert_eq!(
            describe_trip(
                &b,
                m.daily_loss_pct(),
                m.drawdown_pct(),
                &RiskConfig::default()
            ),
            "circuit breaker HALTED (daily loss 5 % ≥ 3 %)"
        );
    }
}
