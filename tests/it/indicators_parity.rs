//! TA-Lib parity: every cell of `tests/fixtures/golden_talib.csv` (TA-Lib 0.8.2 on 744 real
//! Binance candles, see `../shared/data/PARITY.md`) is reproduced to 1e-9 relative by both the
//! batch and the streaming faces, warm-up rows included; every empty cell is "no value" in ours.
//! Plus property tests that batch and streaming agree bit for bit on random series: the batch
//! face is a fused loop over columns, the streaming one a state machine per candle, and both
//! call the same step functions in the same order, so equality is exact, not approximate.

use proptest::prelude::*;
use trademind::domain::market::indicators::{
    IndicatorParams, IndicatorSet, Indicators, Ohlcv, calculate_indicators,
};
use trademind::domain::market::{CandleColumns, TimestampMs};

const GOLDEN: &str = include_str!("../fixtures/golden_talib.csv");

/// Golden column name -> our batch column.
const COLUMNS: &[&str] = &[
    "sma20",
    "ema20",
    "rsi14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr14",
    "adx14",
    "stoch_k",
    "stoch_d",
    "obv",
];

fn column<'a>(ind: &'a Indicators, name: &str) -> &'a [f64] {
    match name {
        "sma20" => &ind.sma,
        "ema20" => &ind.ema,
        "rsi14" => &ind.rsi,
        "macd" => &ind.macd,
        "macd_signal" => &ind.macd_signal,
        "macd_hist" => &ind.macd_histogram,
        "bb_upper" => &ind.bb_upper,
        "bb_middle" => &ind.bb_middle,
        "bb_lower" => &ind.bb_lower,
        "atr14" => &ind.atr,
        "adx14" => &ind.adx,
        "stoch_k" => &ind.stoch_k,
        "stoch_d" => &ind.stoch_d,
        "obv" => &ind.obv,
        other => panic!("unknown golden column {other}"),
    }
}

struct Golden {
    candles: CandleColumns,
    /// Per golden column: one cell per row, `None` when empty.
    expected: Vec<(String, Vec<Option<f64>>)>,
}

fn golden() -> Golden {
    let mut lines = GOLDEN.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut candles = CandleColumns::default();
    let mut expected: Vec<(String, Vec<Option<f64>>)> = COLUMNS
        .iter()
        .map(|c| (c.to_string(), Vec::new()))
        .collect();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let num = |name: &str| cells[at(name)].parse::<f64>().unwrap();
        candles
            .open_time
            .push(cells[at("timestamp_ms")].parse::<TimestampMs>().unwrap());
        candles.open.push(num("open"));
        candles.high.push(num("high"));
        candles.low.push(num("low"));
        candles.close.push(num("close"));
        candles.volume.push(num("volume"));
        for (name, cells_out) in &mut expected {
            let cell = cells[at(name)];
            cells_out.push((!cell.is_empty()).then(|| cell.parse().unwrap()));
        }
    }
    Golden { candles, expected }
}

fn close_enough(ours: f64, theirs: f64) -> bool {
    if ours == theirs {
        return true;
    }
    (ours - theirs).abs() <= 1e-9 * ours.abs().max(theirs.abs())
}

/// Every mismatch of `ours` against the golden file, as readable lines.
fn mismatches(ours: &Indicators, golden: &Golden) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, cells) in &golden.expected {
        let col = column(ours, name);
        assert_eq!(col.len(), cells.len(), "{name}: row count");
        for (row, (&mine, want)) in col.iter().zip(cells).enumerate() {
            match want {
                None if !mine.is_nan() => {
                    bad.push(format!("{name} row {row}: expected no value, got {mine}"))
                }
                Some(w) if !close_enough(mine, *w) => bad.push(format!(
                    "{name} row {row}: expected {w}, got {mine} (rel {:e})",
                    ((mine - w) / w).abs()
                )),
                _ => {}
            }
        }
    }
    bad
}

/// The streaming face, collected into the same columns.
fn streaming(candles: &CandleColumns, params: &IndicatorParams) -> Indicators {
    let mut set = IndicatorSet::new(params);
    let rows: Vec<_> = (0..candles.len())
        .map(|i| set.update(&Ohlcv::from_columns(candles, i)))
        .collect();
    let col = |f: &dyn Fn(&trademind::domain::market::IndicatorValues) -> Option<f64>| {
        rows.iter()
            .map(|r| f(r).unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    };
    Indicators {
        open_time: rows.iter().map(|r| r.open_time).collect(),
        close: rows.iter().map(|r| r.close).collect(),
        sma: col(&|r| r.sma),
        ema: col(&|r| r.ema),
        wma: col(&|r| r.wma),
        rsi: col(&|r| r.rsi),
        macd: col(&|r| r.macd.map(|m| m.macd)),
        macd_signal: col(&|r| r.macd.map(|m| m.signal)),
        macd_histogram: col(&|r| r.macd.map(|m| m.histogram)),
        bb_upper: col(&|r| r.bollinger.map(|b| b.upper)),
        bb_middle: col(&|r| r.bollinger.map(|b| b.middle)),
        bb_lower: col(&|r| r.bollinger.map(|b| b.lower)),
        atr: col(&|r| r.atr),
        adx: col(&|r| r.adx),
        plus_di: col(&|r| r.plus_di),
        minus_di: col(&|r| r.minus_di),
        stoch_k: col(&|r| r.stochastic.map(|s| s.k)),
        stoch_d: col(&|r| r.stochastic.map(|s| s.d)),
        obv: col(&|r| r.obv),
        vwap: col(&|r| r.vwap),
        signal: rows.iter().map(|r| r.signal).collect(),
    }
}

#[test]
fn batch_matches_talib_on_every_golden_cell() {
    let golden = golden();
    assert_eq!(golden.candles.len(), 744);
    let ours = calculate_indicators(&golden.candles, &IndicatorParams::default());
    let bad = mismatches(&ours, &golden);
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn streaming_matches_talib_on_every_golden_cell() {
    let golden = golden();
    let ours = streaming(&golden.candles, &IndicatorParams::default());
    let bad = mismatches(&ours, &golden);
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn first_values_appear_where_talib_puts_them() {
    let golden = golden();
    let ours = calculate_indicators(&golden.candles, &IndicatorParams::default());
    let first = |col: &[f64]| col.iter().position(|v| !v.is_nan()).unwrap();
    assert_eq!(first(&ours.sma), 19);
    assert_eq!(first(&ours.ema), 19);
    assert_eq!(first(&ours.bb_upper), 19);
    assert_eq!(first(&ours.wma), 19);
    assert_eq!(first(&ours.rsi), 14);
    assert_eq!(first(&ours.atr), 14);
    assert_eq!(first(&ours.plus_di), 14);
    assert_eq!(first(&ours.adx), 27);
    assert_eq!(first(&ours.macd), 33);
    assert_eq!(first(&ours.stoch_k), 17);
    assert_eq!(first(&ours.obv), 0);
    assert_eq!(first(&ours.vwap), 0);
}

#[test]
fn the_comparison_would_catch_a_wrong_seed() {
    // A textbook EMA seeded with the first close differs from TA-Lib's during the warm-up:
    // the check above must see that.
    let golden = golden();
    let mut ours = calculate_indicators(&golden.candles, &IndicatorParams::default());
    let close = &golden.candles.close;
    let k = 2.0 / 21.0;
    let mut e = close[0];
    for (i, &c) in close.iter().enumerate().skip(1) {
        e = (c - e) * k + e;
        if i >= 19 {
            ours.ema[i] = e;
        }
    }
    assert!(
        mismatches(&ours, &golden)
            .iter()
            .any(|m| m.starts_with("ema20 row 19"))
    );
}

fn columns_strategy() -> impl Strategy<Value = CandleColumns> {
    series_strategy(0..300)
}

/// Random candles, about one in five a repeat of the one before (flat closes, zero ranges and
/// zero volume exercise the "no change" and "divide by ~0" paths of RSI, ADX, OBV, STOCH).
fn series_strategy(len: std::ops::Range<usize>) -> impl Strategy<Value = CandleColumns> {
    prop::collection::vec(
        (
            1.0f64..1000.0,
            0.0f64..0.05,
            0.0f64..1.0,
            0.0f64..1.0,
            0.0f64..50.0,
            0u8..5,
        ),
        len,
    )
    .prop_map(|rows| {
        let mut cols = CandleColumns::default();
        for (i, (mid, spread, at_close, at_open, volume, repeat)) in rows.into_iter().enumerate() {
            let low = mid * (1.0 - spread);
            let high = mid * (1.0 + spread);
            cols.open_time.push(i as TimestampMs * 60_000);
            if repeat == 0 && i > 0 {
                let close = cols.close[i - 1];
                cols.open.push(close);
                cols.high.push(close);
                cols.low.push(close);
                cols.close.push(close);
                cols.volume.push(0.0);
                continue;
            }
            cols.open.push(low + (high - low) * at_open);
            cols.high.push(high);
            cols.low.push(low);
            cols.close.push(low + (high - low) * at_close);
            cols.volume.push(volume);
        }
        cols
    })
}

fn params_strategy() -> impl Strategy<Value = IndicatorParams> {
    (
        1usize..30,
        2usize..20,
        2usize..15,
        16usize..40,
        1usize..12,
        1usize..20,
        1usize..5,
        1usize..5,
        prop::option::of(60_000i64..3_600_000),
    )
        .prop_map(
            |(ma, rsi, fast, slow, signal, fast_k, slow_k, slow_d, session)| IndicatorParams {
                sma_period: ma,
                ema_period: ma + 1,
                wma_period: ma + 2,
                rsi_period: rsi,
                macd_fast: fast,
                macd_slow: slow,
                macd_signal: signal,
                bb_period: ma + 1,
                atr_period: rsi,
                adx_period: rsi + 1,
                stoch_fast_k: fast_k,
                stoch_slow_k: slow_k,
                stoch_slow_d: slow_d,
                vwap_session_ms: session,
                ..IndicatorParams::default()
            },
        )
}

/// Bitwise equality that treats NaN as equal to NaN.
fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The first column where batch and streaming differ, with the row.
fn batch_streaming_difference(cols: &CandleColumns, params: &IndicatorParams) -> Option<String> {
    let batch = calculate_indicators(cols, params);
    let stream = streaming(cols, params);
    if batch.open_time != stream.open_time || !same_bits(&batch.close, &stream.close) {
        return Some("open_time/close".into());
    }
    if batch.signal != stream.signal {
        return Some("signal".into());
    }
    for (name, a, b) in [
        ("sma", &batch.sma, &stream.sma),
        ("ema", &batch.ema, &stream.ema),
        ("wma", &batch.wma, &stream.wma),
        ("rsi", &batch.rsi, &stream.rsi),
        ("macd", &batch.macd, &stream.macd),
        ("macd_signal", &batch.macd_signal, &stream.macd_signal),
        ("macd_hist", &batch.macd_histogram, &stream.macd_histogram),
        ("bb_upper", &batch.bb_upper, &stream.bb_upper),
        ("bb_middle", &batch.bb_middle, &stream.bb_middle),
        ("bb_lower", &batch.bb_lower, &stream.bb_lower),
        ("atr", &batch.atr, &stream.atr),
        ("adx", &batch.adx, &stream.adx),
        ("plus_di", &batch.plus_di, &stream.plus_di),
        ("minus_di", &batch.minus_di, &stream.minus_di),
        ("stoch_k", &batch.stoch_k, &stream.stoch_k),
        ("stoch_d", &batch.stoch_d, &stream.stoch_d),
        ("obv", &batch.obv, &stream.obv),
        ("vwap", &batch.vwap, &stream.vwap),
    ] {
        if let Some(row) = (0..a.len().max(b.len()))
            .find(|&i| a.get(i).map(|v| v.to_bits()) != b.get(i).map(|v| v.to_bits()))
        {
            return Some(format!(
                "{name} row {row}: batch {:?}, streaming {:?}",
                a.get(row),
                b.get(row)
            ));
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Long series cross the batch loop's chunk boundaries (1024 rows), and wide stochastic
    /// windows (over 64) take the monotonic-queue path instead of doubling.
    #[test]
    fn batch_equals_streaming_across_chunks_and_wide_windows(
        cols in series_strategy(900..2600),
        params in params_strategy(),
        fast_k in prop_oneof![1usize..20, 60usize..140],
    ) {
        let params = IndicatorParams { stoch_fast_k: fast_k, ..params };
        let diff = batch_streaming_difference(&cols, &params);
        prop_assert!(diff.is_none(), "{:?}", diff);
    }
}

proptest! {
    #[test]
    fn batch_equals_streaming_on_random_series(
        cols in columns_strategy(),
        params in params_strategy(),
    ) {
        let diff = batch_streaming_difference(&cols, &params);
        prop_assert!(diff.is_none(), "{:?}", diff);
    }

    #[test]
    fn single_indicator_batch_functions_equal_the_full_set(
        cols in columns_strategy(),
        params in params_strategy(),
    ) {
        use trademind::domain::market::indicators as ind;
        let set = calculate_indicators(&cols, &params);
        prop_assert!(same_bits(&ind::sma(&cols.close, params.sma_period), &set.sma));
        prop_assert!(same_bits(&ind::ema(&cols.close, params.ema_period), &set.ema));
        prop_assert!(same_bits(&ind::wma(&cols.close, params.wma_period), &set.wma));
        prop_assert!(same_bits(&ind::rsi(&cols.close, params.rsi_period), &set.rsi));
        let [m, s, h] = ind::macd(&cols.close, params.macd_fast, params.macd_slow, params.macd_signal);
        prop_assert!(same_bits(&m, &set.macd) && same_bits(&s, &set.macd_signal) && same_bits(&h, &set.macd_histogram));
        prop_assert!(same_bits(&ind::atr(&cols, params.atr_period), &set.atr));
        let [a, p, n] = ind::adx(&cols, params.adx_period);
        prop_assert!(same_bits(&a, &set.adx) && same_bits(&p, &set.plus_di) && same_bits(&n, &set.minus_di));
        let [k, d] = ind::stochastic(&cols, params.stoch_fast_k, params.stoch_slow_k, params.stoch_slow_d);
        prop_assert!(same_bits(&k, &set.stoch_k) && same_bits(&d, &set.stoch_d));
        prop_assert!(same_bits(&ind::obv(&cols), &set.obv));
    }

    #[test]
    fn stochastic_window_extremes_match_a_naive_scan(cols in columns_strategy(), n in 1usize..20) {
        use trademind::domain::market::indicators as ind;
        let [k, _] = ind::stochastic(&cols, n, 1, 1);
        for (i, &ki) in k.iter().enumerate() {
            if i + 1 < n {
                prop_assert!(ki.is_nan());
                continue;
            }
            let from = i + 1 - n;
            let hh = cols.high[from..=i].iter().cloned().fold(f64::MIN, f64::max);
            let ll = cols.low[from..=i].iter().cloned().fold(f64::MAX, f64::min);
            let range = hh - ll;
            let want = if range != 0.0 { (cols.close[i] - ll) * 100.0 / range } else { 0.0 };
            prop_assert_eq!(ki.to_bits(), want.to_bits());
        }
    }
}
