//! The built-in RSI mean-reversion, MACD and seed-rule (RSI + MACD) strategies on hand-made
//! closes, where the candle each one enters and exits on can be worked out on paper. Each candle
//! opens at the previous close, so a next-open fill is at the signal candle's close price one
//! candle later.

use crate::backtest_common::{H, hourly_candles, run_all_in, spec};
use rust_decimal::Decimal;
use trademind::domain::backtest::{ExitReason, FillModel};

/// `(entry candle, exit candle or None if still open, entry price, exit price)` per trade.
type Trip = (i64, Option<i64>, Decimal, Option<Decimal>);

fn trips(name: &str, params: &[(&str, f64)], closes: &[f64], fill: FillModel) -> Vec<Trip> {
    let r = run_all_in(spec(name, params), &hourly_candles(closes), fill);
    for t in r.trades.iter().filter(|t| !t.is_open()) {
        assert_eq!(t.exit_reason, Some(ExitReason::Signal));
    }
    r.trades
        .iter()
        .map(|t| {
            (
                t.entry_time / H,
                t.exit_time.map(|x| x / H),
                t.entry_price.get().normalize(),
                t.exit_price.map(|p| p.get().normalize()),
            )
        })
        .collect()
}

fn d(x: i64) -> Decimal {
    Decimal::from(x)
}

#[test]
fn rsi_reversion_buys_below_oversold_and_sells_above_overbought() {
    // RSI(2), Wilder: the first value (candle 2) averages the first two changes, then
    // avg = (avg * 1 + change) / 2.
    //   candle: 0   1   2    3   4   5     6      7       8       9
    //   close:  10  11  12   11  10  9     10     11      12      13
    //   gain:           1    .5  .25 .125  .5625  .78125  .890625 ..
    //   loss:           0    .5  .75 .875  .4375  .21875  .109375 ..
    //   RSI:            100  50  25  12.5  56.25  78.125  89.06   94.5
    // Candle 2 says sell while flat (ignored); 4 is the first below 30 -> buy; 5 is below 30
    // again while long (ignored); 7 is the first above 70 -> sell; 8 and 9 sell while flat.
    let closes = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 10.0, 11.0, 12.0, 13.0];
    let params = [("period", 2.0), ("oversold", 30.0), ("overbought", 70.0)];
    assert_eq!(
        trips("rsi-reversion", &params, &closes, FillModel::Close),
        vec![(4, Some(7), d(10), Some(d(11)))]
    );
    // Next-open: filled one candle later at that candle's open (= the signal close).
    assert_eq!(
        trips("rsi-reversion", &params, &closes, FillModel::NextOpen),
        vec![(5, Some(8), d(10), Some(d(11)))]
    );
    // A stricter oversold level (RSI 12.5 on candle 5 is the only one below 20) buys later.
    assert_eq!(
        trips(
            "rsi-reversion",
            &[("period", 2.0), ("oversold", 20.0), ("overbought", 70.0)],
            &closes,
            FillModel::Close
        ),
        vec![(5, Some(7), d(9), Some(d(11)))]
    );
}

#[test]
fn macd_enters_when_the_histogram_turns_positive_and_exits_when_it_turns_negative() {
    // MACD(2, 4, 2) over ten closes of 100: every average is exactly 100 and the MACD line,
    // signal and histogram exactly 0, whatever the seeding. From there, with k = 2/(n+1)
    // (fast 2/3, slow 2/5, signal 2/3) and hist = macd - signal:
    //   candle 10, close 110: fast 106.667, slow 104,    macd  2.667, signal  1.778, hist +0.889
    //   candle 11, close  90: fast  95.556, slow  98.4,  macd -2.844, signal -1.304, hist -1.541
    //   candle 12, close  90: fast  91.852, slow  95.04, macd -3.188, signal -2.560, hist -0.628
    //   candle 13, close  90: fast  90.617, slow  93.024, macd -2.407, signal -2.458, hist +0.051
    // So: enter on 10 (0 -> +), exit on 11 (+ -> -), enter again on 13, still open at the end.
    let mut closes = vec![100.0; 10];
    closes.extend([110.0, 90.0, 90.0, 90.0]);
    let params = [("fast", 2.0), ("slow", 4.0), ("signal", 2.0)];
    assert_eq!(
        trips("macd", &params, &closes, FillModel::Close),
        vec![(10, Some(11), d(110), Some(d(90))), (13, None, d(90), None)]
    );
    // The flat warm-up alone (histogram 0 throughout) never trades.
    assert!(trips("macd", &params, &closes[..10], FillModel::Close).is_empty());
}

#[test]
fn seed_rule_needs_low_rsi_with_rising_macd_to_buy_and_high_rsi_with_falling_macd_to_sell() {
    // The seed's rule with RSI(2) and the fixed MACD(12, 26, 9), after forty closes of 100
    // (MACD exactly 0 there; RSI 0, below 30, but the histogram is not above 0: no buy).
    // With k = 2/13, 2/27, 2/10 from the flat start:
    //   candle  close  RSI(2)   hist
    //   40      120    100      +1.276
    //   41      115    66.67    +1.687
    //   42      110    40       +1.531
    //   43      105    22.22    +1.023   RSI < 30 and hist > 0: buy
    //   44      100    11.76    +0.320   (already long)
    //   45       95     6.06    -0.471
    //   46      100    52.31    -0.634
    //   47      108    81.48    -0.204   RSI > 70 and hist < 0: sell
    //   48      118    92.68    +0.704   (flat; hist > 0 so no sell anyway)
    let mut closes = vec![100.0; 40];
    closes.extend([120.0, 115.0, 110.0, 105.0, 100.0, 95.0, 100.0, 108.0, 118.0]);
    let params = [("rsi_period", 2.0)];
    assert_eq!(
        trips("rsi-macd", &params, &closes, FillModel::Close),
        vec![(43, Some(47), d(105), Some(d(108)))]
    );
    // Plain RSI reversion on the same closes already buys on candle 2 (the flat stretch's RSI
    // is 0) and sells on 40 (RSI 100): the MACD condition is what holds the seed rule back.
    assert_eq!(
        trips(
            "rsi-reversion",
            &[("period", 2.0)],
            &closes,
            FillModel::Close
        ),
        vec![
            (2, Some(40), d(100), Some(d(120))),
            (43, Some(47), d(105), Some(d(108)))
        ]
    );
}
