-- Who stopped or resumed trading and why, beside the breaker's reason: a pause from the TUI,
-- the kill switch from the CLI and a loss rule are told apart on every face. Rows written
-- before this have NULLs and still load. The current state of a scope is its row with the
-- highest id (the latest action), whatever clock stamped `changed_at`.
ALTER TABLE circuit_breaker_state ADD COLUMN actor TEXT;
ALTER TABLE circuit_breaker_state ADD COLUMN note TEXT;
CREATE INDEX circuit_breaker_scope_id ON circuit_breaker_state(scope, id);
