-- Backtests can be asked to stop from another process (`backtest cancel ID` sets
-- 'cancel_requested'; the running process polls its row between chunks and ends 'cancelled'),
-- and a walk-forward run keeps its per-window results in `windows` (JSON).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE backtests_v5 (
    id           INTEGER PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'cancel_requested',
                                                 'completed', 'failed', 'cancelled')),
    strategy     TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    interval     TEXT NOT NULL,
    parameters   TEXT NOT NULL DEFAULT '{}',
    metrics      TEXT,
    equity_curve TEXT,
    trades       TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    windows      TEXT
);
INSERT INTO backtests_v5 (id, status, strategy, symbol, interval, parameters, metrics,
                          equity_curve, trades, error, created_at, started_at, finished_at)
    SELECT id, status, strategy, symbol, interval, parameters, metrics, equity_curve, trades,
           error, created_at, started_at, finished_at
    FROM backtests;
DROP TABLE backtests;
ALTER TABLE backtests_v5 RENAME TO backtests;
