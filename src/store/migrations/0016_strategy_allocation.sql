-- A strategy's capital (#19): JSON of `domain::trading::Allocation` ({"percent": "25"} or
-- {"quote": "1000"}); NULL sizes the strategy's entries on the whole account.
ALTER TABLE strategies ADD COLUMN allocation TEXT;
