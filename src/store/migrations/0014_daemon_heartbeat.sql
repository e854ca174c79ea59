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
