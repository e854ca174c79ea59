-- The stop and target an entry is to be protected with, written with the entry's row before the
-- order leaves: whichever path later learns that the entry filled (its reply, a query, the
-- monitor, the user-data stream, start-up reconciliation after a crash) can book and protect it.
ALTER TABLE orders ADD COLUMN protect_stop TEXT;
ALTER TABLE orders ADD COLUMN protect_target TEXT;
