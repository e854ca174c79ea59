//! Closed candles from the stream into the candle repository. SQLite work runs on the blocking
//! pool so the stream task never waits on the disk; inserts are idempotent, so a candle seen both
//! in a REST back-fill and on the stream is stored once.

use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::market::{Candle, Interval};
use crate::domain::symbol::Symbol;
use crate::services::market_stream::stream::ClosedCandleSink;
use crate::store::Store;
use crate::store::candles::insert_candles;

#[derive(Debug, Clone)]
pub struct StoreCandleSink {
    store: Arc<Mutex<Store>>,
}

impl StoreCandleSink {
    pub fn new(store: Arc<Mutex<Store>>) -> Self {
        StoreCandleSink { store }
    }
}

impl ClosedCandleSink for StoreCandleSink {
    async fn store_closed(
        &self,
        symbol: &Symbol,
        interval: Interval,
        candles: Vec<Candle>,
    ) -> Result<(), String> {
        let store = self.store.clone();
        let symbol = symbol.clone();
        tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            insert_candles(store.conn(), &symbol, interval, &candles)
                .map(|_| ())
                .map_err(|e| format!("storing {} {interval} candles: {e}", symbol))
        })
        .await
        .map_err(|e| format!("candle store task failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::{Price, Qty};
    use crate::store::candles::count_candles;
    use rust_decimal::Decimal;

    #[tokio::test]
    async fn closed_candles_are_stored_once_even_when_seen_twice() {
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let sink = StoreCandleSink::new(store.clone());
        let symbol = Symbol::new("BTCUSDT").unwrap();
        let candle = Candle {
            open_time: 60_000,
            open: Price::new(Decimal::ONE),
            high: Price::new(Decimal::TWO),
            low: Price::new(Decimal::ONE),
            close: Price::new(Decimal::TWO),
            volume: Qty::new(Decimal::TEN),
        };
        sink.store_closed(&symbol, Interval::M1, vec![candle.clone()])
            .await
            .unwrap();
        sink.store_closed(&symbol, Interval::M1, vec![candle])
            .await
            .unwrap();
        let count = count_candles(store.lock().unwrap().conn(), &symbol, Interval::M1).unwrap();
        assert_eq!(count, 1);
    }
}
