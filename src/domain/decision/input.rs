//! The snapshot an engine decides on. It is recorded verbatim in the flight recorder, so a
//! decision can always be explained from what the engine saw.

use serde::{Deserialize, Serialize};

use crate::domain::market::{
    Candle, CandleColumns, IndicatorParams, Interval, TimestampMs, calculate_indicators,
};
use crate::domain::{Price, Qty, Quote};
use rust_decimal::Decimal;

/// Indicator values on one interval (None until enough candles exist).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSnapshot {
    pub interval: Option<Interval>,
    pub rsi: Option<f64>,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_hist: Option<f64>,
    pub sma_20: Option<f64>,
    pub ema_50: Option<f64>,
    pub atr: Option<f64>,
}

/// Order-book analytics, when a book is available.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderBookSummary {
    pub spread_bps: f64,
    /// (bid depth - ask depth) / (bid depth + ask depth) near the mid, -1 ..= 1.
    pub imbalance: f64,
    pub bid_depth: Qty,
    pub ask_depth: Qty,
}

/// The open position on the symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionSnapshot {
    /// Positive long, negative short.
    pub quantity: Qty,
    pub entry_price: Price,
    pub unrealized_pnl: Quote,
    /// Why it was opened, as its entry decision said (`None`: opened by hand, by a rule
    /// strategy, or before decisions were linked to orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thesis: Option<Thesis>,
}

/// The entry decision's case for a position, carried into every later prompt about it so the
/// engine judges the position against why it opened it, not afresh each candle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thesis {
    /// When the entry decision was made. (Not its row id: an LLM backtest's cache key is built
    /// from the input, and a re-run records new rows.)
    pub decided_at: TimestampMs,
    pub reasoning: String,
    /// What proves it wrong: the entry's stop-loss and the risks it named.
    pub invalidation: String,
}

impl Thesis {
    /// The thesis of an entry decision made at `decided_at`.
    pub fn of_entry(decided_at: TimestampMs, decision: &super::TradingDecision) -> Thesis {
        use super::LevelKind;
        let mut parts = Vec::new();
        if let Some(stop) = &decision.stop_loss {
            parts.push(match stop.kind {
                LevelKind::Price => format!("the price reaches the stop-loss at {}", stop.value),
                LevelKind::Percent => {
                    format!(
                        "the price moves {} % against the entry (stop-loss)",
                        stop.value
                    )
                }
            });
        }
        if !decision.risk_factors.is_empty() {
            parts.push(format!(
                "the named risks play out: {}",
                decision.risk_factors.join("; ")
            ));
        }
        Thesis {
            decided_at,
            reasoning: decision.reasoning.clone(),
            invalidation: if parts.is_empty() {
                "no stop-loss or risk was named".to_string()
            } else {
                parts.join("; or ")
            },
        }
    }
}

/// The risk layer's state as the engine should know it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskSnapshot {
    /// Portfolio heat, percent of equity at risk.
    pub heat_pct: f64,
    pub daily_pnl: Quote,
    /// Circuit-breaker state, e.g. "active", "halted".
    pub breaker: String,
    /// Largest position the risk layer allows, percent of equity.
    pub max_position_pct: f64,
}

/// One earlier decision and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastDecision {
    pub decided_at: TimestampMs,
    pub action: String,
    pub outcome: String,
}

/// Everything an engine may look at to decide on `symbol` at `now_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    pub symbol: crate::domain::Symbol,
    pub interval: Interval,
    /// The decision time: wall clock live, simulated time in a backtest.
    pub now_ms: TimestampMs,
    pub price: Price,
    pub change_24h_pct: f64,
    pub indicators: IndicatorSnapshot,
    pub higher_indicators: Option<IndicatorSnapshot>,
    pub order_book: Option<OrderBookSummary>,
    pub position: Option<PositionSnapshot>,
    pub risk: RiskSnapshot,
    pub recent_decisions: Vec<PastDecision>,
    /// The strategy's last reflections on closed positions, newest first (`llm.reflections`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reflections: Vec<super::PastReflection>,
    /// The closed candles the snapshot was computed from, oldest first: a strategy engine
    /// replays them. Not recorded: the indicators above summarise them for the reader.
    #[serde(skip)]
    pub closed_candles: Vec<Candle>,
}

/// Fold candles into the next interval up (`interval.higher()`); the last group may be partial.
pub fn aggregate_candles(candles: &[Candle], higher: Interval) -> Vec<Candle> {
    let step = higher.millis();
    let mut out: Vec<Candle> = Vec::new();
    for c in candles {
        let bucket = c.open_time.div_euclid(step) * step;
        match out.last_mut() {
            Some(last) if last.open_time == bucket => {
                last.high = last.high.max(c.high);
                last.low = last.low.min(c.low);
                last.close = c.close;
                // Volumes come from imported files: saturate rather than panic on an absurd
                // one (the sum only feeds volume-weighted indicators, in f64).
                last.volume = Qty::new(
                    last.volume
                        .get()
                        .checked_add(c.volume.get())
                        .unwrap_or(Decimal::MAX),
                );
            }
            _ => out.push(Candle {
                open_time: bucket,
                ..c.clone()
            }),
        }
    }
    out
}

fn snapshot(candles: &[Candle], interval: Interval) -> IndicatorSnapshot {
    let ind = calculate_indicators(
        &CandleColumns::from_candles(candles),
        &IndicatorParams::default(),
    );
    let last = |v: &[f64]| v.last().copied().filter(|x| x.is_finite());
    IndicatorSnapshot {
        interval: Some(interval),
        rsi: last(&ind.rsi),
        macd: last(&ind.macd),
        macd_signal: last(&ind.macd_signal),
        macd_hist: last(&ind.macd_histogram),
        sma_20: last(&ind.sma),
        ema_50: last(&ind.ema),
        atr: last(&ind.atr),
    }
}

impl DecisionInput {
    /// The market part of a snapshot from closed candles (oldest first): last close, 24 h change,
    /// indicators on `interval` and on the next interval up. Position, risk and history are
    /// filled by the caller. `None` without candles.
    pub fn from_candles(
        symbol: crate::domain::Symbol,
        interval: Interval,
        candles: &[Candle],
        now_ms: TimestampMs,
    ) -> Option<DecisionInput> {
        let last = candles.last()?;
        let day_ago = last.open_time - 86_400_000;
        let base = candles
            .iter()
            .rev()
            .find(|c| c.open_time <= day_ago)
            .unwrap_or(&candles[0]);
        let change_24h_pct = if base.close.is_positive() {
            ((last.close.get() - base.close.get()) / base.close.get()
                * rust_decimal::Decimal::ONE_HUNDRED)
                .to_string()
                .parse::<f64>()
                .unwrap_or(0.0)
        } else {
            0.0
        };
        let higher_indicators = interval
            .higher()
            .map(|h| snapshot(&aggregate_candles(candles, h), h));
        Some(DecisionInput {
            symbol,
            interval,
            now_ms,
            price: last.close,
            change_24h_pct,
            indicators: snapshot(candles, interval),
            higher_indicators,
            order_book: None,
            position: None,
            risk: RiskSnapshot::default(),
            recent_decisions: Vec::new(),
            reflections: Vec::new(),
            closed_candles: candles.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Price, Qty, Symbol};
    use rust_decimal::Decimal;

    fn candle(hour: i64, close: i64) -> Candle {
        let p = Price::new(Decimal::from(close));
        Candle {
            open_time: hour * 3_600_000,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: Qty::new(Decimal::ONE),
        }
    }

    #[test]
    fn aggregating_huge_imported_volumes_saturates_instead_of_panicking() {
        let mut c: Vec<Candle> = (0..4).map(|h| candle(h, 100 + h)).collect();
        for k in &mut c {
            k.volume = Qty::new(Decimal::MAX);
        }
        let agg = aggregate_candles(&c, Interval::H4);
        assert_eq!(agg.len(), 1);
        assert_eq!(agg[0].volume.get(), Decimal::MAX);
    }

    #[test]
    fn four_hourly_aggregation_keeps_high_low_last_close_and_sums_volume() {
        let c: Vec<Candle> = (0..6).map(|h| candle(h, 100 + h)).collect();
        let agg = aggregate_candles(&c, Interval::H4);
        assert_eq!(agg.len(), 2);
        assert_eq!(agg[0].close.get(), Decimal::from(103));
        assert_eq!(agg[0].low.get(), Decimal::from(100));
        assert_eq!(agg[0].volume.get(), Decimal::from(4));
        assert_eq!(agg[1].open_time, 4 * 3_600_000);
    }

    #[test]
    fn snapshot_reports_last_close_and_the_24h_change() {
        // 30 hourly closes 100..129: the candle 24 h before the last (hour 5) closed at 105.
        let c: Vec<Candle> = (0..30).map(|h| candle(h, 100 + h)).collect();
        let input =
            DecisionInput::from_candles(Symbol::new("BTCUSDT").unwrap(), Interval::H1, &c, 0)
                .unwrap();
        assert_eq!(input.price.get(), Decimal::from(129));
        // (129 - 105) / 105 * 100 = 22.857142…
        assert!((input.change_24h_pct - 22.857142857).abs() < 1e-6);
        // Monotonic rise: RSI is 100 once it has enough candles.
        assert_eq!(input.indicators.rsi, Some(100.0));
        assert_eq!(
            input.higher_indicators.unwrap().interval,
            Interval::H1.higher()
        );
    }

    #[test]
    fn a_thesis_names_the_stop_and_risks_as_its_invalidation_or_says_none_was_named() {
        use crate::domain::decision::{Level, LevelKind, TradingDecision};
        let mut d = TradingDecision::hold("BTCUSDT", "range breakout");
        d.stop_loss = Some(Level {
            kind: LevelKind::Percent,
            value: 1.5,
        });
        d.risk_factors = vec!["CPI print".into(), "thin book".into()];
        let t = Thesis::of_entry(7, &d);
        assert_eq!((t.decided_at, t.reasoning.as_str()), (7, "range breakout"));
        assert_eq!(
            t.invalidation,
            "the price moves 1.5 % against the entry (stop-loss); or the named risks play out: CPI print; thin book"
        );
        let bare = Thesis::of_entry(7, &TradingDecision::hold("BTCUSDT", "r"));
        assert_eq!(bare.invalidation, "no stop-loss or risk was named");
    }
}
