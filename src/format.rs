//! One way to write numbers, money, percentages, times and labels for every face (the TUI and
//! the CLI's human output), so a figure reads the same wherever it is shown.
//!
//! Pure functions: time is always passed in (`now_ms` on the run's clock), nothing reads the
//! wall clock or the environment. Prices are written at the symbol's tick, quantities at its
//! step, money with thousands separators at its currency's decimals; a value that rounds to
//! zero never shows a minus sign.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::trading::filters::SymbolFilters;
use crate::domain::{Price, Qty, Quote};

/// Decimals shown when a symbol has no tick or step (Binance's "no constraint").
const UNCONSTRAINED_DP: u32 = 8;

/// How one symbol's numbers are written: its price tick, quantity step and assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precision {
    pub tick: Decimal,
    pub step: Decimal,
    pub base: String,
    pub quote: String,
}

impl Precision {
    /// The exchange's own rules for the symbol.
    pub fn from_filters(f: &SymbolFilters) -> Precision {
        Precision {
            tick: f.tick_size,
            step: f.step_size,
            base: f.base_asset.clone(),
            quote: f.quote_asset.clone(),
        }
    }

    /// A fallback for a symbol whose filters are not known: Binance's spot defaults for the
    /// large pairs (tick 0.01, step 0.00001) and the assets read off the name.
    pub fn guess(symbol: &str) -> Precision {
        let (base, quote) = crate::services::exchange::paper::split_symbol(symbol)
            .unwrap_or_else(|| (symbol.to_string(), String::new()));
        Precision {
            tick: Decimal::new(1, 2),
            step: Decimal::new(1, 5),
            base,
            quote,
        }
    }

    /// What the paper exchange trades `symbol` at (its configured tick and step), else a guess.
    pub fn paper_or_guess(
        config: &crate::services::exchange::paper::PaperConfig,
        symbol: &str,
    ) -> Precision {
        config
            .filters_for(symbol)
            .map(|f| Precision::from_filters(&f))
            .unwrap_or_else(|| Precision::guess(symbol))
    }

    /// Decimals a price of this symbol is written with.
    pub fn price_dp(&self) -> u32 {
        dp_of(self.tick)
    }

    /// Decimals a quantity of this symbol is written with.
    pub fn qty_dp(&self) -> u32 {
        dp_of(self.step)
    }
}

/// The precisions of the symbols a face shows; unknown symbols fall back to [`Precision::guess`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Precisions {
    by_symbol: BTreeMap<String, Precision>,
}

impl Precisions {
    pub fn insert(&mut self, symbol: &str, p: Precision) {
        self.by_symbol.insert(symbol.to_string(), p);
    }

    /// The paper exchange's filters for `symbols` (what a paper account trades at).
    pub fn from_paper<'a>(
        config: &crate::services::exchange::paper::PaperConfig,
        symbols: impl IntoIterator<Item = &'a str>,
    ) -> Precisions {
        let mut out = Precisions::default();
        for s in symbols {
            if let Some(f) = config.filters_for(s) {
                out.insert(s, Precision::from_filters(&f));
            }
        }
        out
    }

    pub fn get(&self, symbol: &str) -> Precision {
        self.by_symbol
            .get(symbol)
            .cloned()
            .unwrap_or_else(|| Precision::guess(symbol))
    }

    /// The most decimals any known symbol's price or quantity uses (a check for tests).
    pub fn max_dp(&self) -> u32 {
        self.by_symbol
            .values()
            .flat_map(|p| [p.price_dp(), p.qty_dp()])
            .max()
            .unwrap_or(Precision::guess("").qty_dp())
    }
}

/// Decimals implied by a tick or step (0.01 → 2, 1 → 0, 0.5 → 1).
pub fn dp_of(step: Decimal) -> u32 {
    if step.is_zero() {
        UNCONSTRAINED_DP
    } else {
        step.normalize().scale()
    }
}

/// `value` rounded half away from zero to exactly `dp` decimals, without a minus on zero and
/// with thousands separators.
pub fn decimal(value: Decimal, dp: u32) -> String {
    let mut v = value.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    if v.is_zero() {
        v.set_sign_positive(true);
    }
    v.rescale(dp);
    group(&v.to_string())
}

/// An f64 with exactly `dp` decimals, thousands separators and no `-0`; `-` for NaN/∞.
pub fn number(value: f64, dp: usize) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    let text = format!("{value:.dp$}");
    let text = if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    };
    group(&text)
}

/// `number` with a sign on every non-zero value.
pub fn number_signed(value: f64, dp: usize) -> String {
    let text = number(value, dp);
    if text == "-" || text.starts_with('-') || text.chars().all(|c| c == '0' || c == '.') {
        text
    } else {
        format!("+{text}")
    }
}

/// Insert `,` every three digits of the integer part of a plain decimal string.
fn group(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", text),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(text.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

/// A price at the symbol's tick: `51,230.00`.
pub fn price(p: Price, prec: &Precision) -> String {
    decimal(p.get(), prec.price_dp())
}

/// A quantity at the symbol's step: `0.05000`.
pub fn qty(q: Qty, prec: &Precision) -> String {
    decimal(q.get(), prec.qty_dp())
}

/// Decimals a balance in `asset` is written with: cents for dollars and stablecoins, satoshis
/// for everything else (a BTC fee of 0.00000052 is not `0.00000`).
pub fn asset_dp(asset: &str) -> u32 {
    match asset {
        "USD" | "USDT" | "USDC" | "FDUSD" | "BUSD" | "TUSD" | "DAI" | "EUR" => 2,
        _ => 8,
    }
}

/// An amount of `currency` without its name (for a column whose header names it).
pub fn amount(q: Quote, currency: &str) -> String {
    decimal(q.get(), asset_dp(currency))
}

/// A signed amount of `currency` without its name: `+126.40`, `-7.57`, `0.00`.
pub fn amount_signed(q: Quote, currency: &str) -> String {
    let text = amount(q, currency);
    if q.get().is_sign_positive() && !text.chars().all(|c| c == '0' || c == '.' || c == ',') {
        format!("+{text}")
    } else {
        text
    }
}

/// Money with its currency: `10,482.35 USDT`.
pub fn money(q: Quote, currency: &str) -> String {
    with_currency(amount(q, currency), currency)
}

/// Signed money with its currency: `+126.40 USDT`.
pub fn money_signed(q: Quote, currency: &str) -> String {
    with_currency(amount_signed(q, currency), currency)
}

fn with_currency(text: String, currency: &str) -> String {
    if currency.is_empty() {
        text
    } else {
        format!("{text} {currency}")
    }
}

/// A fee in its own asset: four decimals of a stablecoin (fees are fractions of a cent), eight
/// of anything else.
pub fn fee(q: Quote, asset: &str) -> String {
    let dp = if asset_dp(asset) == 2 { 4 } else { 8 };
    decimal(q.get(), dp)
}

/// A dollar cost such as an LLM call's: `$0.0041`.
pub fn usd_cost(q: Quote) -> String {
    format!("${}", decimal(q.get(), 4))
}

/// A percentage with two decimals: `6.00%`.
pub fn pct(value: f64) -> String {
    format!("{}%", number(value, 2))
}

/// A signed percentage with two decimals: `+1.22%`, `-0.40%`, `0.00%`.
pub fn pct_signed(value: f64) -> String {
    format!("{}%", number_signed(value, 2))
}

/// A ratio such as an R multiple: `+1.8R`.
pub fn r_multiple(value: f64) -> String {
    format!("{}R", number_signed(value, 1))
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A moment for a table, 12 characters at most: the time alone when it falls on `now_ms`'s UTC
/// day, else the date too (`14:05:09`, `Jan 02 14:05`), the date alone in another year
/// (`2025-12-30`).
pub fn when(ms: i64, now_ms: i64) -> String {
    let (Some(t), Some(now)) = (utc(ms), utc(now_ms)) else {
        return "-".into();
    };
    if ms <= 0 {
        return "-".into();
    }
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else if t.year() == now.year() {
        t.format("%b %d %H:%M").to_string()
    } else {
        t.format("%Y-%m-%d").to_string()
    }
}

/// A full UTC timestamp: `2026-01-02 12:00:00 UTC`.
pub fn timestamp(ms: i64) -> String {
    utc(ms)
        .filter(|_| ms > 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A UTC date: `2026-01-02`.
pub fn date(ms: i64) -> String {
    utc(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A length of time, two units at most: `45s`, `12m 30s`, `3h 05m`, `2d 04h`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// How long ago `ms` was: `3s ago`; `in 5m 00s` for a moment still to come.
pub fn ago(ms: i64, now_ms: i64) -> String {
    if ms > now_ms {
        format!("in {}", duration(ms - now_ms))
    } else {
        format!("{} ago", duration(now_ms - ms))
    }
}

/// Code words (`nothing_to_do`, `DRY_RUN`, `daily_loss_limit: note`) in plain lower-case
/// words; words without an underscore (symbols, prose) are left as they are.
pub fn words(code: &str) -> String {
    code.split(' ')
        .map(|w| {
            if w.contains('_')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:,.".contains(c))
            {
                w.replace('_', " ").to_lowercase()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A status code in lower-case words (`PARTIALLY_FILLED` → `partially filled`, `NEW` → `new`).
pub fn status(code: &str) -> String {
    code.replace('_', " ").to_lowercase()
}

/// An order type in a trader's words, short enough for a column (`STOP_LOSS_LIMIT` → `stop-limit`).
pub fn order_type(code: &str) -> String {
    match code {
        "MARKET" => "market".into(),
        "LIMIT" => "limit".into(),
        "LIMIT_MAKER" => "limit maker".into(),
        "STOP_LOSS" => "stop".into(),
        "STOP_LOSS_LIMIT" => "stop-limit".into(),
        "TAKE_PROFIT" => "take-profit".into(),
        "TAKE_PROFIT_LIMIT" => "tp-limit".into(),
        other => words(other),
    }
}

/// A backtest's metrics as (label, value) rows for people, in `currency`: percentages signed
/// with two decimals, dates instead of epoch milliseconds, durations in hours and days, and
/// "none" where a ratio has no value (no loss: no profit factor).
pub fn backtest_metrics(
    m: &crate::domain::backtest::Metrics,
    currency: &str,
) -> Vec<(&'static str, String)> {
    let money = |v: f64| {
        let text = number(v, asset_dp(currency) as usize);
        if currency.is_empty() {
            text
        } else {
            format!("{text} {currency}")
        }
    };
    let signed_money = |v: f64| {
        let text = number_signed(v, asset_dp(currency) as usize);
        if currency.is_empty() {
            text
        } else {
            format!("{text} {currency}")
        }
    };
    let opt = |v: Option<f64>, dp: usize| v.map_or_else(|| "none".to_string(), |x| number(x, dp));
    let day = |v: Option<i64>| v.map_or_else(|| "-".to_string(), date);
    vec![
        ("Return", pct_signed(m.total_return_pct)),
        ("Buy and hold", pct_signed(m.buy_and_hold_return_pct)),
        (
            "CAGR",
            m.cagr_pct.map_or_else(|| "none".to_string(), pct_signed),
        ),
        ("Max drawdown", pct_signed(-m.max_drawdown_pct.abs())),
        (
            "Drawdown dates",
            format!(
                "{} → {}",
                day(m.max_drawdown_start),
                day(m.max_drawdown_end)
            ),
        ),
        ("Sharpe", number(m.sharpe, 2)),
        ("Sortino", number(m.sortino, 2)),
        ("Calmar", opt(m.calmar, 2)),
        (
            "Trades",
            format!("{} ({} closed)", m.trades, m.closed_trades),
        ),
        ("Win rate", pct(m.win_rate_pct)),
        ("Profit factor", opt(m.profit_factor, 2)),
        ("Expectancy", signed_money(m.expectancy)),
        ("Average win", money(m.avg_win)),
        ("Average loss", money(m.avg_loss)),
        ("Largest win", money(m.largest_win)),
        ("Largest loss", money(m.largest_loss)),
        ("Exposure", pct(m.exposure_pct)),
        (
            "Average trade",
            duration((m.avg_trade_duration_hours * 3_600_000.0) as i64),
        ),
        ("Fees paid", money(m.fees_paid)),
        ("Initial equity", money(m.initial_equity)),
        ("Final equity", money(m.final_equity)),
        ("Candles", number(m.candles as f64, 0)),
        ("Period", format!("{} → {}", day(m.start), day(m.end))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const NOW: i64 = 1_767_355_200_000; // 2026-01-02 12:00:00 UTC

    fn btc() -> Precision {
        Precision::guess("BTCUSDT")
    }

    #[test]
    fn prices_and_quantities_use_the_symbols_tick_and_step() {
        assert_eq!(price(Price(dec!(51230)), &btc()), "51,230.00");
        assert_eq!(price(Price(dec!(50120.505)), &btc()), "50,120.51");
        assert_eq!(qty(Qty(dec!(0.0052)), &btc()), "0.00520");
        assert_eq!(qty(Qty(dec!(0.00527)), &btc()), "0.00527");
        let coarse = Precision {
            tick: dec!(0.5),
            step: dec!(1),
            ..btc()
        };
        assert_eq!(price(Price(dec!(142.5)), &coarse), "142.5");
        assert_eq!(qty(Qty(dec!(10)), &coarse), "10");
    }

    #[test]
    fn money_has_separators_currency_decimals_and_no_negative_zero() {
        assert_eq!(money(Quote(dec!(10482.35)), "USDT"), "10,482.35 USDT");
        assert_eq!(
            money_signed(Quote(dec!(-7.5656975447)), "USDT"),
            "-7.57 USDT"
        );
        assert_eq!(amount_signed(Quote(dec!(126.4)), "USDT"), "+126.40");
        assert_eq!(amount_signed(Quote(dec!(-0.001)), "USDT"), "0.00");
        assert_eq!(amount_signed(Quote::ZERO, "USDT"), "0.00");
        assert_eq!(amount(Quote(dec!(-1234567.891)), "USDT"), "-1,234,567.89");
        assert_eq!(fee(Quote(dec!(0.4890548)), "USDT"), "0.4891");
        assert_eq!(fee(Quote(dec!(0.00000052)), "BTC"), "0.00000052");
    }

    #[test]
    fn percentages_are_signed_with_fixed_decimals_and_never_minus_zero() {
        assert_eq!(pct_signed(-2.8959591688787034), "-2.90%");
        assert_eq!(pct_signed(1.22), "+1.22%");
        assert_eq!(pct_signed(-0.0004), "0.00%");
        assert_eq!(pct_signed(0.0), "0.00%");
        assert_eq!(number(-0.04, 1), "0.0");
        assert_eq!(number(f64::NAN, 2), "-");
        assert_eq!(r_multiple(1.84), "+1.8R");
    }

    #[test]
    fn times_show_the_date_only_when_not_today_and_never_epoch_ms() {
        assert_eq!(when(NOW - 3_600_000, NOW), "11:00:00");
        assert_eq!(when(NOW - 86_400_000, NOW), "Jan 01 12:00");
        assert_eq!(when(NOW - 40 * 86_400_000, NOW), "2025-11-23");
        assert_eq!(timestamp(NOW), "2026-01-02 12:00:00 UTC");
        assert_eq!(when(0, NOW), "-");
    }

    #[test]
    fn durations_use_two_units_at_most() {
        assert_eq!(duration(3_000), "3s");
        assert_eq!(duration(750_000), "12m 30s");
        assert_eq!(duration(3 * 3_600_000 + 300_000), "3h 05m");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2d 04h");
        assert_eq!(ago(NOW - 3_000, NOW), "3s ago");
    }

    #[test]
    fn backtest_metrics_show_dates_fixed_decimals_and_no_negative_zero() {
        let m = crate::domain::backtest::Metrics {
            initial_equity: 10_000.0,
            final_equity: 9_710.404083,
            total_return_pct: -2.8959591688787034,
            cagr_pct: None,
            sharpe: -0.00001,
            sortino: 0.5,
            calmar: None,
            max_drawdown_pct: 4.2,
            max_drawdown_start: Some(NOW - 86_400_000),
            max_drawdown_end: Some(NOW),
            trades: 3,
            closed_trades: 2,
            win_rate_pct: 50.0,
            profit_factor: Some(-0.0),
            expectancy: -1.5,
            avg_win: 10.0,
            avg_loss: -11.5,
            largest_win: 10.0,
            largest_loss: -11.5,
            exposure_pct: 12.5,
            avg_trade_duration_hours: 20.2,
            fees_paid: 0.4890548,
            buy_and_hold_return_pct: 1.0,
            candles: 1200,
            start: Some(1_736_650_800_000),
            end: Some(NOW),
        };
        let rows = backtest_metrics(&m, "USDT");
        let get = |k: &str| rows.iter().find(|(l, _)| *l == k).unwrap().1.clone();
        assert_eq!(get("Return"), "-2.90%");
        assert_eq!(get("Profit factor"), "0.00");
        assert_eq!(get("Sharpe"), "0.00");
        assert_eq!(get("Average trade"), "20h 12m");
        assert_eq!(get("Fees paid"), "0.49 USDT");
        assert_eq!(get("Period"), "2025-01-12 → 2026-01-02");
        assert_eq!(get("Max drawdown"), "-4.20%");
    }

    #[test]
    fn code_words_read_as_plain_words() {
        assert_eq!(words("nothing_to_do"), "nothing to do");
        assert_eq!(words("DRY_RUN"), "dry run");
        assert_eq!(
            words("daily_loss_limit: BTCUSDT lost 3%"),
            "daily loss limit: BTCUSDT lost 3%"
        );
        assert_eq!(order_type("STOP_LOSS_LIMIT"), "stop-limit");
        assert_eq!(order_type("TAKE_PROFIT_LIMIT"), "tp-limit");
    }
}
