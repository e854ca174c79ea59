-- The running daemon of this data dir, so every face (status, strategy list, the TUI header)
-- can say "daemon alive (pid, since, last cycle)" or "no daemon running". One row: a data dir
-- holds at most one daemon (the flock on daemon.lock sees to that). `beat_at` is refreshed
-- every few seconds while it runs; `stopped_at` is set by a clean stop, and a beat gone stale
-- means it died without one.
CREATE TABLE daemon_heartbeat (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pid           INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    beat_at       INTEGER NOT NULL,
    last_cycle_at INTEGER,
    last_cycle_job TEXT,
    stopped_at    INTEGER
);

-- One row per alert and channel (e-mail, webhook:<name>, telegram): claimed before the send,
-- so an alert is delivered at most once per channel across restarts and processes. A failed
-- delivery may be claimed again; `attempts` counts the claims.
CREATE TABLE alert_deliveries (
    id         INTEGER PRIMARY KEY,
    alert_id   INTEGER NOT NULL REFERENCES alerts(id),
    dedup_key  TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 1,
    remote_id  TEXT,
    error      TEXT,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    UNIQUE (dedup_key, channel)
);
