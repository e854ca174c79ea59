//! A backtest's candles and their columns, read straight into the columns: the CSV file
//! streamed with fixed-point parsing, the store's rows without a decimal each. When the columns
//! give every candle back exactly (the usual case) they are all a run keeps: the engine rebuilds
//! the odd candle it needs from its row. Only columns that cannot (prices or volumes with too
//! many digits) are kept beside the decimal candles.

use super::backtest::{BacktestRequest, BacktestRunError, CandleSource, load_candles};
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::services::market_data::csv_columns::read_columns_file;
use crate::store::{Store, StoreError};
use std::borrow::Cow;

/// A run's candles as columns, with the decimal candles beside them only when the columns cannot
/// give them back exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Empty when `columns` hold the candles exactly; else one candle per row.
    decimal: Vec<Candle>,
    pub columns: CandleColumns,
}

impl Series {
    /// The candles a run is handed beside [`columns`](Self::columns) (see
    /// [`History::up_to`](crate::domain::backtest::History::up_to)): none when the columns hold
    /// them exactly.
    pub fn run_candles(&self) -> &[Candle] {
        &self.decimal
    }

    /// Every candle, oldest first: rebuilt from the columns when the series holds none (for the
    /// paths that still walk decimal candles: walk-forward windows).
    pub fn candles(&self) -> Cow<'_, [Candle]> {
        if self.decimal.is_empty() {
            Cow::Owned(
                (0..self.columns.len())
                    .filter_map(|i| self.columns.exact_candle(i))
                    .collect(),
            )
        } else {
            Cow::Borrowed(&self.decimal)
        }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The candles a request asks for, as [`load_candles`] and [`CandleColumns::from_candles`] give
/// them, read straight into the columns (the CSV file streamed, the store's rows without a
/// decimal each). When the columns cannot give the candles back exactly (prices or volumes with
/// too many digits), the candles are read the decimal way and kept beside them.
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
            // The series' side file when fresh (one read), else SQLite (and the file rebuilt).
            crate::store::candles::history_columns(store, &symbol, req.interval, req.from, req.to)?
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
        return Ok(Series {
            decimal: candles,
            columns,
        });
    }
    Ok(Series {
        decimal: Vec::new(),
        columns,
    })
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
    fn by_candles(store: Option<&Store>, req: &BacktestRequest) -> (Vec<Candle>, CandleColumns) {
        let candles = load_candles(store, req).unwrap();
        let columns = CandleColumns::from_candles(&candles);
        (candles, columns)
    }

    /// The series gives the decimal path's candles and columns; it keeps decimal candles only
    /// when the columns cannot give them back exactly.
    fn assert_same(got: &Series, (candles, columns): &(Vec<Candle>, CandleColumns), what: &str) {
        assert_eq!(&got.columns, columns, "{what}");
        assert_eq!(*got.candles(), candles[..], "{what}");
        assert_eq!(got.len(), candles.len(), "{what}");
        let kept = if columns.holds_exact_candles() {
            0
        } else {
            candles.len()
        };
        assert_eq!(got.run_candles().len(), kept, "{what}");
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
                let want = by_candles(None, &req);
                assert_same(&got, &want, &format!("{high} {from:?}..{to:?}"));
                // Digit for digit, not only equal in value: the trades print these.
                for (a, b) in got.candles().iter().zip(&want.0) {
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
            assert!(got.run_candles().is_empty(), "exact columns alone");
            assert_same(&got, &by_candles(Some(&store), &req), "store");
        }
        let empty = request(CandleSource::Store, Some(T0 + 50 * H), None);
        assert!(matches!(
            load_series(Some(&store), &empty),
            Err(BacktestRunError::NoStoredCandles { .. })
        ));
    }
}
