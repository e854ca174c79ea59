-- A strategy can be traded by a built-in backtest strategy (decision_engine 'strategy', its name
-- and parameters in `parameters`, e.g. {"strategy": "sma-cross", "fast": 10, "slow": 30}).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt. Other tables
-- reference strategies(id): the migration runs with foreign keys off (Store::migrate), keeps
-- every id, and is followed by a foreign-key check.
CREATE TABLE strategies_v6 (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    is_active       INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1)),
    status          TEXT NOT NULL DEFAULT 'stopped',
    symbols         TEXT NOT NULL DEFAULT '[]',     -- JSON array of symbols
    interval        TEXT NOT NULL DEFAULT '1h',
    decision_engine TEXT NOT NULL DEFAULT 'rules'
                    CHECK (decision_engine IN ('rules', 'llm', 'strategy')),
    parameters      TEXT NOT NULL DEFAULT '{}',     -- JSON object
    connection_id   INTEGER REFERENCES exchange_connections(id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
INSERT INTO strategies_v6 (id, name, is_active, status, symbols, interval, decision_engine,
                           parameters, connection_id, created_at, updated_at)
    SELECT id, name, is_active, status, symbols, interval, decision_engine, parameters,
           connection_id, created_at, updated_at
    FROM strategies;
DROP TABLE strategies;
ALTER TABLE strategies_v6 RENAME TO strategies;
