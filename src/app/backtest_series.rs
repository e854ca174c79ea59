//! A backtest's candles and their columns, read straight into the columns: the CSV file
//! streamed with fixed-point parsing, the store's rows without a decimal each. The candles the
//! engine still reads by row are rebuilt exactly from the columns.

use super::backtest::{BacktestRequest, BacktestRunError, CandleSource, load_candles};
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::services::market_data::csv_columns::read_columns_file;
use crate::store::{Store, StoreError};

/// A run's candles and their columns, built together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub candles: Vec<Candle>,
    pub columns: CandleColumns,
}

/// The candles a request asks for and their columns, as [`load_candles`] and
/// [`CandleColumns::from_candles`] give them, read straight into the columns (the CSV file
/// streamed, the store's rows without a decimal each); the candles are then rebuilt exactly
/// from the columns. When the columns cannot give them back exactly (prices or volumes with
/// too many digits), the candles are read the decimal way.
pub fn load_series(
    store: Option<&Store>,
    req: &BacktestRequest,
) -> Result<Series, BacktestRunError> {
    let columns = match (&req.source, store) {
        (CandleSource::Csv(path), _) => {
            let columns =
                read_columns_file(path, req.interval, chrono::Utc::now().timestamp_millis())
                    .map_err(|source| BacktestRunError::Csv {
                        path: path.to_path_buf(),
                        source: Box::new(source),
                    })?;
            // Ascending open times: the request's window is one range of rows.
            let lo = req
                .from
                .map_or(0, |f| columns.open_time.partition_point(|&t| t < f));
            let hi = req.to.map_or(columns.len(), |t| {
                columns.open_time.partition_point(|&x| x < t)
            });
            match (lo, hi) {
                (0, hi) if hi == columns.len() => columns,
                (lo, hi) if hi <= lo => CandleColumns::from_candles(&[]),
                (lo, hi) => columns.slice(lo..hi),
            }
        }
        (CandleSource::Store, Some(store)) => {
            let symbol =
                crate::domain::Symbol::new(&req.symbol).map_err(|e| StoreError::Corrupt {
                    column: "candles.symbol",
                    value: req.symbol.clone(),
                    reason: e.to_string(),
                })?;
            crate::store::candles::columns_in_range(
                store.conn(),
                &symbol,
                req.interval,
                req.from,
                req.to,
            )?
        }
        (CandleSource::Store, None) => CandleColumns::default(),
    };
    if columns.is_empty() && req.source == CandleSource::Store {
        return Err(BacktestRunError::NoStoredCandles {
            symbol: req.symbol.clone(),
            interval: req.interval,
        });
    }
    if !columns.holds_exact_candles() && !columns.is_empty() {
        let candles = load_candles(store, req)?;
        let columns = CandleColumns::from_candles(&candles);
        return Ok(Series { candles, columns });
    }
    let candles = (0..columns.len())
        .filter_map(|i| columns.exact_candle(i))
        .collect();
    Ok(Series { candles, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::backtest::SizingChoice;
    use crate::domain::backtest::{Costs, FillModel, StrategySpec};
    use crate::domain::market::Interval;
    use crate::domain::money::Quote;
    use crate::domain::risk::RiskConfig;
    use rust_decimal::Decimal;
    use std::io::Write;

    const T0: i64 = 1_735_689_600_000;
    const H: i64 = 3_600_000;

    fn request(source: CandleSource, from: Option<i64>, to: Option<i64>) -> BacktestRequest {
        BacktestRequest {
            strategy: StrategySpec {
                name: "sma-cross".into(),
                params: Default::default(),
            },
            symbol: "BTCUSDT".into(),
            interval: Interval::H1,
            from,
            to,
            source,
            initial_cash: Quote(Decimal::new(100_000, 0)),
            costs: Costs::default(),
            fill: FillModel::Close,
            sizing: SizingChoice::AllIn,
            risk: RiskConfig::default(),
        }
    }

    /// What the backtest read before: the candles, then their columns.
    fn by_candles(store: Option<&Store>, req: &BacktestRequest) -> Series {
        let candles = load_candles(store, req).unwrap();
        let columns = CandleColumns::from_candles(&candles);
        Series { candles, columns }
    }

    fn csv(rows: &[String]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "open_time,open,high,low,close,volume").unwrap();
        for r in rows {
            writeln!(f, "{r}").unwrap();
        }
        f
    }

    fn rows(high_of_third: &str) -> Vec<String> {
        (0..6i64)
            .map(|i| {
                let high = if i == 2 { high_of_third } else { "120.50" };
                format!("{},100.{i}0,{high},99.5,101.25,{i}.000100", T0 + i * H)
            })
            .collect()
    }

    #[test]
    fn a_series_from_a_file_is_the_candles_and_columns_of_the_decimal_path() {
        for high in ["120.50", "123456789012345678901.5"] {
            let f = csv(&rows(high));
            let source = CandleSource::Csv(f.path().to_path_buf());
            for (from, to) in [
                (None, None),
                (Some(T0 + H), Some(T0 + 4 * H)),
                (Some(T0 + 9 * H), None),
            ] {
                let req = request(source.clone(), from, to);
                let got = load_series(None, &req).unwrap();
                assert_eq!(got, by_candles(None, &req), "{high} {from:?}..{to:?}");
                // Digit for digit, not only equal in value: the trades print these.
                for (a, b) in got.candles.iter().zip(&by_candles(None, &req).candles) {
                    assert_eq!(a.open.get().to_string(), b.open.get().to_string());
                    assert_eq!(a.volume.get().to_string(), b.volume.get().to_string());
                }
            }
        }
    }

    #[test]
    fn a_series_from_the_store_is_the_candles_and_columns_of_the_decimal_path() {
        let store = Store::open_in_memory().unwrap();
        let f = csv(&rows("120.50"));
        let parsed = crate::services::market_data::import::read_candles_file(
            f.path(),
            Interval::H1,
            T0 + 100 * H,
        )
        .unwrap();
        let symbol = crate::domain::Symbol::new("BTCUSDT").unwrap();
        crate::store::candles::insert_candles(store.conn(), &symbol, Interval::H1, &parsed)
            .unwrap();
        for (from, to) in [(None, None), (Some(T0 + H), Some(T0 + 4 * H))] {
            let req = request(CandleSource::Store, from, to);
            let got = load_series(Some(&store), &req).unwrap();
            assert!(got.columns.holds_exact_candles());
            assert_eq!(got, by_candles(Some(&store), &req));
        }
        let empty = request(CandleSource::Store, Some(T0 + 50 * H), None);
        assert!(matches!(
            load_series(Some(&store), &empty),
            Err(BacktestRunError::NoStoredCandles { .. })
        ));
    }
}
