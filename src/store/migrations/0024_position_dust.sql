-- Dust (#19): the part of an open position the exchange will not sell (under one lot step after
-- a fee taken in the base asset, or under minQty / the minimum notional), as the engine last
-- judged it with the symbol's filters when it protected the position. Decimal text; NULL until
-- judged. The faces show it as dust, never as an unprotected position.
ALTER TABLE positions ADD COLUMN dust TEXT;
