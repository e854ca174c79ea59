//! BacktestService: replays candles through the same strategy -> risk -> order code as live trading.
