-- A book per strategy (#19): every position belongs to one book, `positions.strategy_id`: the
-- strategy that owns it, or NULL for the DEFAULT BOOK (shown as "default"): trades made without
-- a strategy (`trademind execute` without `--strategy`) and every position that was open before
-- this migration. Earlier versions kept one position per (connection, symbol) whichever strategy
-- bought, so an open position could hold several strategies' entries: it cannot be split
-- honestly, and that single book becomes the default book. Closed positions keep the strategy
-- that opened them (their history). The protection and exit orders of the moved positions follow
-- them; entries keep the strategy that sent them (an entry not yet booked is booked into its own
-- strategy's book).
UPDATE orders SET strategy_id = NULL
    WHERE purpose <> 'entry'
      AND position_id IN (SELECT id FROM positions WHERE status = 'open');
UPDATE positions SET strategy_id = NULL WHERE status = 'open';
-- A book's open position in a symbol is looked up on every step.
CREATE INDEX positions_book ON positions(connection, symbol, status, strategy_id);
-- What the exchange holds of a base asset beyond the sum of every book's open positions
-- ("unmanaged": bought by hand, fee dust, another tool), as reconciliation last measured it;
-- no strategy ever sells it. A shortfall (less held than the books say) is a discrepancy.
CREATE TABLE unmanaged_holdings (
    connection     TEXT NOT NULL,
    asset          TEXT NOT NULL,
    exchange_total TEXT NOT NULL,   -- free + locked on the exchange
    books_total    TEXT NOT NULL,   -- the sum of every book's open positions in the asset
    checked_at     INTEGER NOT NULL,
    PRIMARY KEY (connection, asset)
);
