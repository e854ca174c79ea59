-- A breaker per strategy (#19): the highest PnL (realised + unrealised, net of fees, decimal
-- text) each strategy's book has been seen at on a connection, so its drawdown counts from its
-- own high-water mark across restarts. The breaker state itself is kept in
-- circuit_breaker_state under the strategy's name as its scope.
CREATE TABLE book_pnl_peaks (
    connection  TEXT    NOT NULL,
    strategy_id INTEGER NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    pnl         TEXT    NOT NULL,
    taken_at    INTEGER NOT NULL,
    PRIMARY KEY (connection, strategy_id)
);
