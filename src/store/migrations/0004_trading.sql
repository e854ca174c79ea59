-- Equity of each trading connection over time (quote balance + open positions at their marks),
-- written by the price updates: the start-of-day equity and the peak the risk layer and the
-- circuit breaker measure daily loss and drawdown against.
CREATE TABLE equity_snapshots (
    id             INTEGER PRIMARY KEY,
    connection     TEXT NOT NULL,
    equity         TEXT NOT NULL,
    unrealized_pnl TEXT NOT NULL,
    taken_at       INTEGER NOT NULL
);
CREATE INDEX equity_snapshots_time ON equity_snapshots(connection, taken_at);
-- Protection legs are looked up by purpose on every monitoring pass.
CREATE INDEX orders_purpose ON orders(connection, purpose, status);
