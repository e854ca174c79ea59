//! Each strategy's own circuit breaker (issue #19: "the breaker applies per strategy and
//! account-wide"): evaluated beside the account's with the same pure `CircuitBreaker::evaluate`
//! on the book's own figures (`store::book_risk::measure`) and the strategy's limits (its
//! `risk set --strategy` override, else the default's), kept under the strategy's name.

use super::{TradingError, TradingService, day_start};
use crate::domain::money::Quote;
use crate::domain::risk::BreakerTransition;
use crate::services::exchange::Exchange;
use crate::store::{StoreError, book_risk, positions, risk as risk_store};

impl<E: Exchange + 'static> TradingService<E> {
    /// Evaluate every strategy's book on this connection (`account_equity`: the whole
    /// account's, the base of a percentage allocation), record each book's PnL high, store the
    /// transitions and announce them with the strategy named.
    pub(super) async fn evaluate_book_breakers(
        &self,
        account_equity: Quote,
        now_ms: i64,
    ) -> Result<Vec<BreakerTransition>, TradingError> {
        let connection = &self.deps.connection;
        let base = &self.deps.settings.risk;
        let mut moved: Vec<(String, BreakerTransition)> = Vec::new();
        {
            let db = self.store()?;
            let c = db.conn();
            for strategy in book_risk::strategies_on(c, connection)? {
                let figures =
                    positions::book_figures(c, connection, Some(strategy.id), day_start(now_ms))?;
                let measures = book_risk::measure(
                    c,
                    connection,
                    strategy.id,
                    account_equity,
                    &figures,
                    day_start(now_ms),
                    book_risk::stored_mark,
                )?;
                book_risk::record_pnl(c, connection, strategy.id, measures.pnl, now_ms)?;
                let config = match risk_store::load_config(c, Some(&strategy.name), base) {
                    Ok((config, _)) => config,
                    Err(StoreError::NotFound(_)) => risk_store::load_config(c, None, base)?.0,
                    Err(e) => return Err(e.into()),
                };
                let inputs = measures.breaker_inputs(&figures.closed_trades);
                let scope = book_risk::book_scope(&strategy.name);
                let transitions = risk_store::update_breaker(c, scope, |_, breaker| {
                    let ts = breaker.evaluate(&inputs, &config, now_ms);
                    Ok((ts.clone(), ts))
                })?;
                moved.extend(transitions.into_iter().map(|t| (strategy.name.clone(), t)));
            }
        }
        for (name, t) in &moved {
            self.announce_breaker(t, None, Some(name), now_ms).await;
        }
        Ok(moved.into_iter().map(|(_, t)| t).collect())
    }
}
