-- Shadow decisions (#20): a strategy's challenger engine decides on the same input as its
-- primary; the decision is recorded with outcome 'shadow' and filled here, on the strategy's
-- virtual paper book, never sent to an exchange. Deleting the decision deletes its fill.
CREATE TABLE shadow_fills (
    id          INTEGER PRIMARY KEY,
    strategy_id INTEGER NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    decision_id INTEGER NOT NULL REFERENCES decisions(id) ON DELETE CASCADE,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity    TEXT NOT NULL,
    price       TEXT NOT NULL,
    fee         TEXT NOT NULL,
    filled_at   INTEGER NOT NULL
);
CREATE INDEX idx_shadow_fills_strategy ON shadow_fills(strategy_id, filled_at);
