-- A revision per candle series (#22): the side file of a series' columns (`history/` in the data
-- dir, a derived cache) is used only while it carries the series' current revision. The Rust write
-- paths bump it once per write transaction that adds rows; the triggers below bump it for writes
-- made with SQL: the `candles` view's INSERT, and any UPDATE or DELETE of stored bars (no Rust path
-- deletes bars, and only a rescale updates them, so the import's INSERT path carries no per-row
-- trigger). A revision is a random token, not a count: a database put back to an earlier copy and
-- written again would count to a number a side file written in between already carries.
ALTER TABLE candle_series ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER candles_insert;
CREATE TRIGGER candles_insert INSTEAD OF INSERT ON candles
BEGIN
    INSERT OR IGNORE INTO candle_series (symbol, interval, price_scale, volume_scale)
    VALUES (NEW.symbol, NEW.interval, 0, 0);
    INSERT INTO candle_bars (series_id, open_time, open, high, low, close, volume)
    VALUES ((SELECT id FROM candle_series WHERE symbol = NEW.symbol AND interval = NEW.interval),
            NEW.open_time, NEW.open, NEW.high, NEW.low, NEW.close, NEW.volume);
    UPDATE candle_series SET revision = random()
    WHERE symbol = NEW.symbol AND interval = NEW.interval;
END;

CREATE TRIGGER candle_bars_update_revision AFTER UPDATE ON candle_bars
BEGIN
    UPDATE candle_series SET revision = random() WHERE id IN (OLD.series_id, NEW.series_id);
END;

CREATE TRIGGER candle_bars_delete_revision AFTER DELETE ON candle_bars
BEGIN
    UPDATE candle_series SET revision = random() WHERE id = OLD.series_id;
END;
