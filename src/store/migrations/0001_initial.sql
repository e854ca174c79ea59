-- TradeMind schema v1. Decimals are TEXT (exact, as rust_decimal prints them); timestamps are
-- INTEGER milliseconds since the Unix epoch, UTC. Secrets never appear in any table.

CREATE TABLE exchange_connections (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    exchange      TEXT NOT NULL CHECK (exchange IN ('binance', 'paper')),
    is_testnet    INTEGER NOT NULL DEFAULT 0 CHECK (is_testnet IN (0, 1)),
    -- name of the OS keyring entry that holds the API key and secret; never the secret itself
    keyring_entry TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE strategies (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    is_active       INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1)),
    status          TEXT NOT NULL DEFAULT 'stopped',
    symbols         TEXT NOT NULL DEFAULT '[]',     -- JSON array of symbols
    interval        TEXT NOT NULL DEFAULT '1h',
    decision_engine TEXT NOT NULL DEFAULT 'rules' CHECK (decision_engine IN ('rules', 'llm')),
    parameters      TEXT NOT NULL DEFAULT '{}',     -- JSON object
    connection_id   INTEGER REFERENCES exchange_connections(id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE risk_configs (
    id          INTEGER PRIMARY KEY,
    strategy_id INTEGER UNIQUE REFERENCES strategies(id) ON DELETE CASCADE, -- NULL = the default
    config      TEXT NOT NULL,   -- JSON of RiskConfig, decimals as strings
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX risk_configs_one_default ON risk_configs((strategy_id IS NULL)) WHERE strategy_id IS NULL;

CREATE TABLE orders (
    id                INTEGER PRIMARY KEY,
    client_order_id   TEXT NOT NULL UNIQUE,
    exchange_order_id TEXT,
    order_list_id     TEXT,
    connection        TEXT NOT NULL DEFAULT 'paper',
    strategy_id       INTEGER REFERENCES strategies(id) ON DELETE SET NULL,
    decision_id       INTEGER REFERENCES decisions(id) ON DELETE SET NULL,
    position_id       INTEGER REFERENCES positions(id) ON DELETE SET NULL,
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type        TEXT NOT NULL,
    time_in_force     TEXT,
    status            TEXT NOT NULL,
    purpose           TEXT NOT NULL DEFAULT 'entry', -- entry | exit | stop_loss | take_profit
    price             TEXT,
    stop_price        TEXT,
    quantity          TEXT NOT NULL,
    filled_quantity   TEXT NOT NULL DEFAULT '0',
    cumulative_quote  TEXT NOT NULL DEFAULT '0',
    average_price     TEXT,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX orders_status ON orders(status);
CREATE INDEX orders_symbol ON orders(symbol, created_at);

CREATE TABLE trades (
    id            INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    exchange_trade_id TEXT,
    symbol        TEXT NOT NULL,
    side          TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price         TEXT NOT NULL,
    quantity      TEXT NOT NULL,
    fee           TEXT NOT NULL DEFAULT '0',
    fee_asset     TEXT NOT NULL DEFAULT '',
    is_maker      INTEGER NOT NULL DEFAULT 0,
    realized_pnl  TEXT,
    executed_at   INTEGER NOT NULL,
    UNIQUE (order_id, exchange_trade_id)
);
CREATE INDEX trades_symbol ON trades(symbol, executed_at);

CREATE TABLE positions (
    id             INTEGER PRIMARY KEY,
    strategy_id    INTEGER REFERENCES strategies(id) ON DELETE SET NULL,
    connection     TEXT NOT NULL DEFAULT 'paper',
    symbol         TEXT NOT NULL,
    side           TEXT NOT NULL DEFAULT 'LONG' CHECK (side IN ('LONG', 'SHORT')),
    entry_price    TEXT NOT NULL,
    quantity       TEXT NOT NULL,
    stop_loss      TEXT,
    take_profit    TEXT,
    mark_price     TEXT,
    unrealized_pnl TEXT NOT NULL DEFAULT '0',
    realized_pnl   TEXT NOT NULL DEFAULT '0',
    fees_paid      TEXT NOT NULL DEFAULT '0',
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at      INTEGER NOT NULL,
    closed_at      INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX positions_open ON positions(status, symbol);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY,
    strategy_id     INTEGER REFERENCES strategies(id) ON DELETE SET NULL,
    symbol          TEXT NOT NULL,
    engine          TEXT NOT NULL,          -- 'rules' | 'llm' | 'cache'
    model           TEXT,
    action          TEXT NOT NULL,          -- BUY | SELL | HOLD | CLOSE
    confidence      REAL,
    input_snapshot  TEXT NOT NULL DEFAULT '{}',
    search_results  TEXT,
    prompt          TEXT,
    raw_response    TEXT,
    decision        TEXT,                   -- parsed TradingDecision (JSON)
    validation      TEXT,                   -- validation verdict (JSON)
    risk_verdict    TEXT,                   -- risk verdict, every check (JSON)
    outcome         TEXT NOT NULL DEFAULT 'recorded', -- executed | refused | invalid | hold | error | dry_run
    order_ids       TEXT NOT NULL DEFAULT '[]',
    latency_ms      INTEGER,
    prompt_tokens   INTEGER,
    completion_tokens INTEGER,
    cost_usd        TEXT,
    error           TEXT,
    decided_at      INTEGER NOT NULL
);
CREATE INDEX decisions_time ON decisions(decided_at);

CREATE TABLE backtests (
    id           INTEGER PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
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
    finished_at  INTEGER
);

CREATE TABLE candles (
    symbol     TEXT NOT NULL,
    interval   TEXT NOT NULL,
    open_time  INTEGER NOT NULL,
    open       TEXT NOT NULL,
    high       TEXT NOT NULL,
    low        TEXT NOT NULL,
    close      TEXT NOT NULL,
    volume     TEXT NOT NULL,
    PRIMARY KEY (symbol, interval, open_time)
) WITHOUT ROWID;

CREATE TABLE llm_cache (
    key        TEXT PRIMARY KEY,    -- hex SHA-256 of (model, prompt)
    model      TEXT NOT NULL,
    response   TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd   TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    dedup_key  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'suppressed', 'failed')),
    idempotency_key TEXT NOT NULL UNIQUE,
    error      TEXT,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER
);
CREATE INDEX alerts_dedup ON alerts(dedup_key, created_at);

CREATE TABLE circuit_breaker_state (
    id          INTEGER PRIMARY KEY,
    scope       TEXT NOT NULL,      -- 'global' or a strategy name
    state       TEXT NOT NULL CHECK (state IN ('active', 'reduce_only', 'halted')),
    reason      TEXT,
    changed_at  INTEGER NOT NULL,
    until       INTEGER             -- cooldown end, if any
);
CREATE INDEX circuit_breaker_scope ON circuit_breaker_state(scope, changed_at);

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    ok          INTEGER,
    error       TEXT
);
CREATE INDEX job_runs_job ON job_runs(job, started_at);
