-- The process running a backtest, so `backtest cancel` can end a run whose process is gone
-- (killed, or crashed before it could record the end) instead of waiting for a poll that never
-- comes. NULL for runs recorded before this column existed.
ALTER TABLE backtests ADD COLUMN owner_pid INTEGER;
