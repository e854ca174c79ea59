-- The highest equity each connection has recorded, kept as snapshots are written, so the
-- breaker's drawdown check reads one row instead of scanning every snapshot (decimals are TEXT
-- and cannot be compared in SQL). Filled for existing snapshots on the next write.
CREATE TABLE equity_peaks (
    connection TEXT PRIMARY KEY,
    equity     TEXT NOT NULL,
    taken_at   INTEGER NOT NULL
);
