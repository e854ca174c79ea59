-- Candles as integers (#22): a series table names each (symbol, interval) once with the decimal
-- scales of its prices and volumes, and the bars are keyed (series, open time) holding each number
-- as an INTEGER `value * 10^scale`. A number that does not fit its series' scale in 64 bits is kept
-- as its exact decimal TEXT instead (the columns have no type affinity, so a value stays what was
-- written). The rows of the old text table are copied over by the Rust hook of this migration (the
-- same conversion every write uses), which then drops it.
ALTER TABLE candles RENAME TO candles_text_0027;

CREATE TABLE candle_series (
    id            INTEGER PRIMARY KEY,
    symbol        TEXT NOT NULL,
    interval      TEXT NOT NULL,
    -- open, high, low and close are INTEGER price * 10^price_scale (or exact TEXT)
    price_scale   INTEGER NOT NULL CHECK (price_scale BETWEEN 0 AND 18),
    -- volume is INTEGER volume * 10^volume_scale (or exact TEXT)
    volume_scale  INTEGER NOT NULL CHECK (volume_scale BETWEEN 0 AND 18),
    UNIQUE (symbol, interval)
);

CREATE TABLE candle_bars (
    series_id  INTEGER NOT NULL REFERENCES candle_series (id),
    open_time  INTEGER NOT NULL,
    open, high, low, close, volume,
    PRIMARY KEY (series_id, open_time)
) WITHOUT ROWID;

-- The old shape, read-only and as text, for anyone's own SQL (`SELECT close FROM candles ...`):
-- each integer written back as its normalised decimal text.
CREATE VIEW candles AS
SELECT symbol, interval, open_time,
    CASE WHEN typeof(open) = 'integer' THEN
        (CASE WHEN open < 0 THEN '-' ELSE '' END) || substr(o, 1, length(o) - ps)
        || CASE WHEN rtrim(substr(o, length(o) - ps + 1), '0') = '' THEN ''
           ELSE '.' || rtrim(substr(o, length(o) - ps + 1), '0') END
    ELSE open END AS open,
    CASE WHEN typeof(high) = 'integer' THEN
        (CASE WHEN high < 0 THEN '-' ELSE '' END) || substr(h, 1, length(h) - ps)
        || CASE WHEN rtrim(substr(h, length(h) - ps + 1), '0') = '' THEN ''
           ELSE '.' || rtrim(substr(h, length(h) - ps + 1), '0') END
    ELSE high END AS high,
    CASE WHEN typeof(low) = 'integer' THEN
        (CASE WHEN low < 0 THEN '-' ELSE '' END) || substr(l, 1, length(l) - ps)
        || CASE WHEN rtrim(substr(l, length(l) - ps + 1), '0') = '' THEN ''
           ELSE '.' || rtrim(substr(l, length(l) - ps + 1), '0') END
    ELSE low END AS low,
    CASE WHEN typeof(close) = 'integer' THEN
        (CASE WHEN close < 0 THEN '-' ELSE '' END) || substr(c, 1, length(c) - ps)
        || CASE WHEN rtrim(substr(c, length(c) - ps + 1), '0') = '' THEN ''
           ELSE '.' || rtrim(substr(c, length(c) - ps + 1), '0') END
    ELSE close END AS close,
    CASE WHEN typeof(volume) = 'integer' THEN
        (CASE WHEN volume < 0 THEN '-' ELSE '' END) || substr(v, 1, length(v) - vs)
        || CASE WHEN rtrim(substr(v, length(v) - vs + 1), '0') = '' THEN ''
           ELSE '.' || rtrim(substr(v, length(v) - vs + 1), '0') END
    ELSE volume END AS volume
FROM (
    SELECT s.symbol, s.interval, b.open_time, b.open, b.high, b.low, b.close, b.volume,
        s.price_scale AS ps, s.volume_scale AS vs,
        printf('%0*d', s.price_scale + 1, abs(b.open)) AS o,
        printf('%0*d', s.price_scale + 1, abs(b.high)) AS h,
        printf('%0*d', s.price_scale + 1, abs(b.low)) AS l,
        printf('%0*d', s.price_scale + 1, abs(b.close)) AS c,
        printf('%0*d', s.volume_scale + 1, abs(b.volume)) AS v
    FROM candle_series s JOIN candle_bars b ON b.series_id = s.id
);

-- A row written into the old shape is kept as the text it was given (readers take either).
CREATE TRIGGER candles_insert INSTEAD OF INSERT ON candles
BEGIN
    INSERT OR IGNORE INTO candle_series (symbol, interval, price_scale, volume_scale)
    VALUES (NEW.symbol, NEW.interval, 0, 0);
    INSERT INTO candle_bars (series_id, open_time, open, high, low, close, volume)
    VALUES ((SELECT id FROM candle_series WHERE symbol = NEW.symbol AND interval = NEW.interval),
            NEW.open_time, NEW.open, NEW.high, NEW.low, NEW.close, NEW.volume);
END;
