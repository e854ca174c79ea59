-- A connection may carry its own address (a fake exchange, a proxy): REST, market streams and
-- the WebSocket API are all derived from it, ahead of exchange.binance.base_url.
ALTER TABLE exchange_connections ADD COLUMN base_url TEXT;
