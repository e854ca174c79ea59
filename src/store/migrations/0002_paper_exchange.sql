-- Paper exchange accounts: the whole simulated exchange state (balances with locks, orders,
-- order lists, fills, last prices) as one JSON document per account, written after every
-- change so paper trading survives a restart. Our own order records stay in `orders`/`trades`.
CREATE TABLE paper_accounts (
    name        TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
