-- A prefix revision per candle series: a side file whose rows are still a prefix of the series is
-- extended with the rows after its last open time instead of being rebuilt whole. Like `revision`
-- (0029) it is a random token, but it changes on every write EXCEPT a pure append (rows all after
-- the series' last open time as it stood before the write): the rows a file already holds are
-- then still the stored ones. A write into an empty series changes it too, so a file of an
-- earlier series (its id reused) is never taken for a prefix. The Rust write path sets it once
-- per transaction; the triggers below set it for writes made with SQL.
ALTER TABLE candle_series ADD COLUMN prefix_revision INTEGER NOT NULL DEFAULT 0;

-- No side file written before this migration can match.
UPDATE candle_series SET prefix_revision = random();

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
    -- An insert in the middle (a stored bar is later), or the series' first bar.
    UPDATE candle_series SET prefix_revision = random()
    WHERE symbol = NEW.symbol AND interval = NEW.interval
      AND (EXISTS (SELECT 1 FROM candle_bars b
                   WHERE b.series_id = candle_series.id AND b.open_time > NEW.open_time)
           OR NOT EXISTS (SELECT 1 FROM candle_bars b
                          WHERE b.series_id = candle_series.id AND b.open_time < NEW.open_time));
END;

DROP TRIGGER candle_bars_update_revision;
CREATE TRIGGER candle_bars_update_revision AFTER UPDATE ON candle_bars
BEGIN
    UPDATE candle_series SET revision = random(), prefix_revision = random()
    WHERE id IN (OLD.series_id, NEW.series_id);
END;

DROP TRIGGER candle_bars_delete_revision;
CREATE TRIGGER candle_bars_delete_revision AFTER DELETE ON candle_bars
BEGIN
    UPDATE candle_series SET revision = random(), prefix_revision = random()
    WHERE id = OLD.series_id;
END;
