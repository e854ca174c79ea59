-- Decisions made inside an LLM or rules backtest belong to their run: `backtest compare` sums
-- their cost, and live prompts, budgets and histories leave them out. Deleting the run deletes
-- them.
ALTER TABLE decisions ADD COLUMN backtest_id INTEGER REFERENCES backtests(id) ON DELETE CASCADE;
CREATE INDEX idx_decisions_backtest ON decisions(backtest_id);
