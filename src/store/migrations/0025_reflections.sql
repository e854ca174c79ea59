-- Reflections (#20): when a position opened on a decision's thesis closes, one short LLM call
-- judges the outcome against the thesis; the strategy's last few reflections go into its later
-- prompts. The cost is the call's, counted in the day's LLM spend like a decision's.
CREATE TABLE reflections (
    id                INTEGER PRIMARY KEY,
    position_id       INTEGER NOT NULL UNIQUE REFERENCES positions(id) ON DELETE CASCADE,
    strategy_id       INTEGER REFERENCES strategies(id) ON DELETE CASCADE,
    symbol            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    thesis            TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    reflection        TEXT NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          TEXT
);
CREATE INDEX idx_reflections_strategy ON reflections(strategy_id, created_at);
