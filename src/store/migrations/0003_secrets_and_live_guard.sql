-- Which credentials exist and when they were set, never their values: the OS keyring cannot
-- list its entries, so `keys list` reads this table.
CREATE TABLE secret_entries (
    kind       TEXT NOT NULL CHECK (kind IN ('binance', 'grok', 'tavily', 'resend')),
    connection TEXT NOT NULL,
    backend    TEXT NOT NULL,   -- os-keyring | memory
    set_at     INTEGER NOT NULL,
    PRIMARY KEY (kind, connection)
);

-- The typed confirmation that unlocks live orders on a production connection, recorded once.
CREATE TABLE live_confirmations (
    connection   TEXT PRIMARY KEY,
    phrase       TEXT NOT NULL,   -- what the user typed (a fixed sentence, not a secret)
    confirmed_at INTEGER NOT NULL
);
