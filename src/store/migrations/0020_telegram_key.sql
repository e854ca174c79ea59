-- `keys set telegram`: the bot token is one more kind of key. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with its rows.
CREATE TABLE secret_entries_new (
    kind       TEXT NOT NULL CHECK (kind IN ('binance', 'grok', 'tavily', 'resend', 'telegram')),
    connection TEXT NOT NULL,
    backend    TEXT NOT NULL,   -- os-keyring | memory
    set_at     INTEGER NOT NULL,
    PRIMARY KEY (kind, connection)
);
INSERT INTO secret_entries_new (kind, connection, backend, set_at)
    SELECT kind, connection, backend, set_at FROM secret_entries;
DROP TABLE secret_entries;
ALTER TABLE secret_entries_new RENAME TO secret_entries;
