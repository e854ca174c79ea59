//! Exchanges: the `Exchange` trait, the Binance adapter, the paper exchange, resilience.
