-- Limit entries (#19): an entry order may fill in parts, each part booked into its position and
-- protected as it is learnt of. `booked_quantity` is how much of the order's executed quantity
-- the position holds so far (decimal text); the entries booked before this migration were booked
-- whole.
ALTER TABLE orders ADD COLUMN booked_quantity TEXT;
UPDATE orders SET booked_quantity = filled_quantity
 WHERE purpose = 'entry' AND position_id IS NOT NULL;
