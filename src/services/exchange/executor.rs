//! `OrderExecutor`: the only way orders reach an exchange. It checks the symbol filters
//! locally, writes the order row (status `PENDING_NEW`, unique client id) before the request
//! goes out, and when the outcome is unknown (timeout, dropped connection, 5xx) finds it with
//! `GET /api/v3/order?origClientOrderId=…` — never by sending again. An order is re-sent only
//! after a 429/418 *rejection* and a query proving the exchange does not have it.

use super::{Exchange, ExchangeError, OcoRequest, OrderList, Placed};
use crate::domain::trading::order::OrderPurpose;
use crate::domain::trading::order::{Order, OrderRequest, OrderStatus, OrderType, TimeInForce};
use crate::store::orders::OrderLinks;
use crate::store::{Store, StoreError, orders};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `[exchange.executor]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Queries made to find the outcome of an order whose response was lost. Default 10.
    pub resolve_attempts: u32,
    /// First pause between those queries, ms (doubles each time, capped at 5 s). Default 200.
    pub resolve_initial_delay_ms: u64,
    /// "Order does not exist" is trusted only after this long since sending: after the request's
    /// recvWindow (plus a margin for the clock offset) the exchange must reject it. Unset (the
    /// default), it is derived from `exchange.binance.recv_window_ms` + 1000; set, it may not be
    /// less than that (a shorter grace calls an order that is merely late "never placed").
    pub not_found_grace_ms: Option<u64>,
    /// Longest 418 ban we wait out before giving up on an order. Default 10 s.
    pub max_ban_wait_ms: u64,
    /// How many 429/418 rejections of one order we sit out before giving up. Default 3.
    pub max_rate_limit_rounds: u32,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            resolve_attempts: 10,
            resolve_initial_delay_ms: 200,
            not_found_grace_ms: None,
            max_ban_wait_ms: 10_000,
            max_rate_limit_rounds: 3,
        }
    }
}

/// What the not-found grace must at least be beyond the recvWindow: the clock offset's error.
pub const RECV_WINDOW_MARGIN_MS: u64 = 1000;

impl ExecutorConfig {
    /// The least grace a `recv_window_ms` allows.
    pub fn min_grace_ms(recv_window_ms: u64) -> u64 {
        recv_window_ms + RECV_WINDOW_MARGIN_MS
    }

    /// The grace in force with requests signed with `recv_window_ms`.
    pub fn grace_ms(&self, recv_window_ms: u64) -> u64 {
        self.not_found_grace_ms
            .unwrap_or_else(|| Self::min_grace_ms(recv_window_ms))
    }

    /// This config with the grace fixed for `recv_window_ms` (what the executor is built with).
    pub fn for_recv_window(mut self, recv_window_ms: u64) -> Self {
        self.not_found_grace_ms = Some(self.grace_ms(recv_window_ms));
        self
    }

    /// Checks that need the recv window: a set grace may not be shorter than it allows.
    pub fn validate_with_recv_window(&self, recv_window_ms: u64) -> Result<(), (String, String)> {
        match self.not_found_grace_ms {
            Some(g) if g < Self::min_grace_ms(recv_window_ms) => Err((
                "exchange.executor.not_found_grace_ms".into(),
                format!(
                    "{g} is shorter than exchange.binance.recv_window_ms ({recv_window_ms}) + \
                     {RECV_WINDOW_MARGIN_MS}: an order that is only late would be called never \
                     placed; remove the key (it follows the recv window) or raise it"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("exchange.executor.{k}");
        if !(1..=100).contains(&self.resolve_attempts) {
            return Err((key("resolve_attempts"), "must be between 1 and 100".into()));
        }
        if !(1..=60_000).contains(&self.resolve_initial_delay_ms) {
            return Err((
                key("resolve_initial_delay_ms"),
                "must be between 1 and 60000".into(),
            ));
        }
        if self.not_found_grace_ms.is_some_and(|g| g > 120_000) {
            return Err((key("not_found_grace_ms"), "must be at most 120000".into()));
        }
        if self.max_rate_limit_rounds > 20 {
            return Err((key("max_rate_limit_rounds"), "must be at most 20".into()));
        }
        Ok(())
    }
}

fn store_err(e: StoreError) -> ExchangeError {
    ExchangeError::Store(e.to_string())
}

pub struct OrderExecutor<E: Exchange> {
    exchange: Arc<E>,
    store: Arc<Mutex<Store>>,
    connection: String,
    config: ExecutorConfig,
    /// When this process sent each order (by client id), so that "not found" is judged against
    /// the grace from the real send time, not the row's (possibly replayed) timestamp.
    sent: Mutex<HashMap<String, Instant>>,
}

enum OcoAttempt {
    Placed(OrderList),
    /// Rejected by rate limiting, nothing placed: wait this long before sending again.
    RateLimited(Duration),
}

enum Attempt {
    Done(Placed),
    /// Rejected by rate limiting: wait this long, check, maybe send again.
    RateLimited(Duration),
}

impl<E: Exchange> OrderExecutor<E> {
    /// `connection` names the account in the `orders` table (e.g. `paper`, `binance-testnet`).
    pub fn new(
        exchange: Arc<E>,
        store: Arc<Mutex<Store>>,
        connection: &str,
        config: ExecutorConfig,
    ) -> Self {
        OrderExecutor {
            exchange,
            store,
            connection: connection.to_string(),
            config,
            sent: Mutex::new(HashMap::new()),
        }
    }

    fn grace(&self) -> Duration {
        // Built for a connection by `for_recv_window`; a bare config falls back to Binance's
        // default recvWindow.
        Duration::from_millis(self.config.grace_ms(5000))
    }

    fn note_sent(&self, client_order_id: &str) -> Instant {
        let now = Instant::now();
        if let Ok(mut sent) = self.sent.lock() {
            // Only orders whose outcome may still be unknown need it; keep the map small.
            if sent.len() > 10_000 {
                sent.clear();
            }
            sent.insert(client_order_id.to_string(), now);
        }
        now
    }

    /// When an unresolved row's request left: this process's record of it, else the row's
    /// age on the wall clock (a row from another process or an earlier run).
    fn sent_at_of(&self, stored: &orders::StoredOrder) -> Instant {
        if let Some(at) = self
            .sent
            .lock()
            .ok()
            .and_then(|s| s.get(&stored.order.client_order_id).copied())
        {
            return at;
        }
        let age_ms = (chrono::Utc::now().timestamp_millis() - stored.order.created_at).max(0);
        let now = Instant::now();
        now.checked_sub(Duration::from_millis(u64::try_from(age_ms).unwrap_or(0)))
            .unwrap_or_else(|| self.conclusive_now())
    }

    pub fn exchange(&self) -> &Arc<E> {
        &self.exchange
    }

    fn with_store<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, ExchangeError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(store.conn()).map_err(store_err)
    }

    /// Refuse an order that breaks the symbol's filters before anything is recorded or sent.
    async fn check_filters(&self, request: &OrderRequest) -> Result<(), ExchangeError> {
        let filters = self.exchange.symbol_filters(&request.symbol).await?;
        let is_market = request.order_type == OrderType::Market;
        filters.check_qty(request.quantity, is_market)?;
        if let Some(stop) = request.stop_price {
            filters.check_price(stop)?;
        }
        let reference = match (request.price, is_market) {
            (Some(p), false) => p,
            _ => self.exchange.ticker_price(&request.symbol).await?,
        };
        filters.check_order(reference, request.quantity, is_market)?;
        Ok(())
    }

    /// Place an order exactly once. On success the local row holds the exchange's state.
    /// `now_ms` stamps the row: the caller's clock (the replayed candle time in the demo).
    pub async fn place(
        &self,
        request: &OrderRequest,
        now_ms: i64,
    ) -> Result<Placed, ExchangeError> {
        self.place_linked(request, &OrderLinks::default(), now_ms)
            .await
    }

    /// `place`, with the order's purpose and position written into its row before sending.
    pub async fn place_linked(
        &self,
        request: &OrderRequest,
        links: &OrderLinks,
        now_ms: i64,
    ) -> Result<Placed, ExchangeError> {
        self.check_filters(request).await?;
        let row_id = self.with_store(|c| {
            orders::insert_pending_linked(c, request, &self.connection, links, now_ms)
        })?;
        let mut rounds = 0;
        loop {
            match self.attempt(request, row_id, now_ms).await {
                Ok(Attempt::Done(placed)) => return Ok(placed),
                Ok(Attempt::RateLimited(wait)) => {
                    rounds += 1;
                    if rounds > self.config.max_rate_limit_rounds {
                        let msg = "gave up after repeated rate limiting; the order was not placed";
                        self.mark(request, OrderStatus::Rejected, msg, now_ms)?;
                        return Err(ExchangeError::RateLimited { retry_after: wait });
                    }
                    tokio::time::sleep(wait).await;
                    // The rejection was definite, but check anyway before sending again.
                    match self
                        .resolve(request, row_id, self.conclusive_now(), now_ms)
                        .await
                    {
                        Ok(placed) => return Ok(placed),
                        Err(ExchangeError::UnknownOrder { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        request: &OrderRequest,
        row_id: i64,
        now_ms: i64,
    ) -> Result<Attempt, ExchangeError> {
        let sent_at = self.note_sent(&request.client_order_id);
        match self.exchange.place_order(request).await {
            Ok(placed) => {
                self.record(&placed.order, row_id, &placed.fills, now_ms)?;
                Ok(Attempt::Done(placed))
            }
            Err(ExchangeError::StatusUnknown { reason }) => {
                tracing::warn!(client_order_id = %request.client_order_id, %reason,
                    "order outcome unknown; resolving by query");
                self.mark(request, OrderStatus::Unknown, &reason, now_ms)?;
                match self.resolve(request, row_id, sent_at, now_ms).await {
                    Ok(placed) => Ok(Attempt::Done(placed)),
                    Err(ExchangeError::UnknownOrder { .. }) => {
                        let msg = format!("never reached the exchange ({reason}); not placed");
                        self.mark(request, OrderStatus::Rejected, &msg, now_ms)?;
                        Err(ExchangeError::OrderRejected(msg))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(ExchangeError::RateLimited { retry_after }) => {
                Ok(Attempt::RateLimited(retry_after))
            }
            Err(ExchangeError::Banned { until }) => {
                let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                if wait.as_millis() > u128::from(self.config.max_ban_wait_ms) {
                    let msg = format!("IP banned until {until}; the order was not placed");
                    self.mark(request, OrderStatus::Rejected, &msg, now_ms)?;
                    return Err(ExchangeError::Banned { until });
                }
                Ok(Attempt::RateLimited(wait + Duration::from_millis(50)))
            }
            Err(e) => {
                // Every other error is a definite answer (or the request never left).
                self.mark(request, OrderStatus::Rejected, &e.to_string(), now_ms)?;
                Err(e)
            }
        }
    }

    /// A send time whose grace period is already over: "not found" is final at once.
    fn conclusive_now(&self) -> Instant {
        let now = Instant::now();
        now.checked_sub(self.grace()).unwrap_or(now)
    }

    fn mark(
        &self,
        request: &OrderRequest,
        status: OrderStatus,
        why: &str,
        now_ms: i64,
    ) -> Result<(), ExchangeError> {
        self.with_store(|c| orders::mark(c, &request.client_order_id, status, Some(why), now_ms))
    }

    fn record(
        &self,
        order: &Order,
        row_id: i64,
        fills: &[crate::domain::trading::order::Fill],
        now_ms: i64,
    ) -> Result<(), ExchangeError> {
        self.with_store(|c| {
            orders::update_from_exchange(c, order, now_ms)?;
            orders::insert_fills(c, row_id, fills)
        })
    }

    /// Query the exchange until it tells us the order's state. `UnknownOrder` only once the
    /// grace period since `sent_at` has passed (before that, the request may still be in flight).
    async fn resolve(
        &self,
        request: &OrderRequest,
        row_id: i64,
        sent_at: Instant,
        now_ms: i64,
    ) -> Result<Placed, ExchangeError> {
        let grace = self.grace();
        let mut delay = Duration::from_millis(self.config.resolve_initial_delay_ms.max(1));
        let mut last_error = None;
        for attempt in 0..self.config.resolve_attempts {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            match self
                .exchange
                .query_order(&request.symbol, &request.client_order_id)
                .await
            {
                Ok(order) => {
                    self.record(&order, row_id, &[], now_ms)?;
                    return Ok(Placed {
                        order,
                        fills: Vec::new(),
                    });
                }
                Err(e @ ExchangeError::UnknownOrder { .. }) => {
                    if sent_at.elapsed() >= grace {
                        return Err(e);
                    }
                    // Not conclusive yet: wait until the request would be outside recvWindow.
                    delay = delay.min(
                        grace
                            .saturating_sub(sent_at.elapsed())
                            .max(Duration::from_millis(1)),
                    );
                    last_error = Some(e);
                }
                Err(ExchangeError::Banned { until }) => {
                    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                    if wait.as_millis() > u128::from(self.config.max_ban_wait_ms) {
                        return Err(ExchangeError::Banned { until });
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(client_order_id = %request.client_order_id, error = %e,
                        "order status query failed; will retry");
                    last_error = Some(e);
                }
            }
        }
        match last_error {
            Some(ExchangeError::UnknownOrder {
                code,
                client_order_id,
            }) if sent_at.elapsed() >= grace => Err(ExchangeError::UnknownOrder {
                code,
                client_order_id,
            }),
            _ => Err(ExchangeError::StatusUnknown {
                reason: format!(
                    "{} status queries without an answer; the order stays UNKNOWN until reconciled",
                    self.config.resolve_attempts
                ),
            }),
        }
    }

    /// Place a one-cancels-the-other list exactly once. Both legs' rows are written
    /// `PENDING_NEW` (with the list's client id) before the request leaves; a lost response is
    /// resolved by querying the legs' client ids, never by sending the list again. `links`
    /// gives the position; the legs get the purposes `take_profit` and `stop_loss`.
    pub async fn place_oco(
        &self,
        request: &OcoRequest,
        links: &OrderLinks,
        now_ms: i64,
    ) -> Result<OrderList, ExchangeError> {
        let legs = oco_legs(request);
        for leg in &legs {
            self.check_filters(leg).await?;
        }
        let mut rows = Vec::new();
        for (leg, purpose) in legs
            .iter()
            .zip([OrderPurpose::TakeProfit, OrderPurpose::StopLoss])
        {
            let leg_links = OrderLinks {
                purpose,
                order_list_id: Some(request.list_client_order_id.clone()),
                ..links.clone()
            };
            rows.push(self.with_store(|c| {
                orders::insert_pending_linked(c, leg, &self.connection, &leg_links, now_ms)
            })?);
        }
        let mut rounds = 0;
        loop {
            match self.attempt_oco(request, &legs, &rows, now_ms).await? {
                OcoAttempt::Placed(list) => return Ok(list),
                OcoAttempt::RateLimited(wait) => {
                    // A 429/418 rejection: the list was not processed. Wait as asked, prove by
                    // query that neither leg exists, then send the same list again.
                    rounds += 1;
                    if rounds > self.config.max_rate_limit_rounds {
                        let msg = "gave up after repeated rate limiting; the list was not placed";
                        for leg in &legs {
                            self.mark(leg, OrderStatus::Rejected, msg, now_ms)?;
                        }
                        return Err(ExchangeError::RateLimited { retry_after: wait });
                    }
                    tokio::time::sleep(wait).await;
                    let mut found = Vec::new();
                    for (leg, row) in legs.iter().zip(&rows) {
                        match self.resolve(leg, *row, self.conclusive_now(), now_ms).await {
                            Ok(placed) => found.push(placed.order),
                            Err(ExchangeError::UnknownOrder { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    if found.len() == legs.len() {
                        return Ok(OrderList {
                            list_client_order_id: request.list_client_order_id.clone(),
                            exchange_list_id: None,
                            symbol: request.symbol.clone(),
                            orders: found,
                        });
                    }
                    if !found.is_empty() {
                        return Err(ExchangeError::StatusUnknown {
                            reason: "only one leg of the order list was found on the exchange"
                                .into(),
                        });
                    }
                }
            }
        }
    }

    /// One send of an OCO list.
    async fn attempt_oco(
        &self,
        request: &OcoRequest,
        legs: &[OrderRequest; 2],
        rows: &[i64],
        now_ms: i64,
    ) -> Result<OcoAttempt, ExchangeError> {
        let sent_at = Instant::now();
        for leg in legs {
            self.note_sent(&leg.client_order_id);
        }
        match self.exchange.place_oco(request).await {
            Ok(list) => {
                for order in &list.orders {
                    self.with_store(|c| orders::update_from_exchange(c, order, now_ms))?;
                }
                Ok(OcoAttempt::Placed(list))
            }
            Err(ExchangeError::StatusUnknown { reason }) => {
                tracing::warn!(list = %request.list_client_order_id, %reason,
                    "order list outcome unknown; resolving its legs by query");
                for leg in legs {
                    self.mark(leg, OrderStatus::Unknown, &reason, now_ms)?;
                }
                let mut found = Vec::new();
                let mut missing = 0;
                for (leg, row) in legs.iter().zip(rows) {
                    match self.resolve(leg, *row, sent_at, now_ms).await {
                        Ok(placed) => found.push(placed.order),
                        Err(ExchangeError::UnknownOrder { .. }) => missing += 1,
                        Err(e) => return Err(e),
                    }
                }
                if missing == legs.len() {
                    let msg = format!("never reached the exchange ({reason}); not placed");
                    for leg in legs {
                        self.mark(leg, OrderStatus::Rejected, &msg, now_ms)?;
                    }
                    return Err(ExchangeError::OrderRejected(msg));
                }
                if missing > 0 {
                    return Err(ExchangeError::StatusUnknown {
                        reason: "only one leg of the order list was found on the exchange".into(),
                    });
                }
                Ok(OcoAttempt::Placed(OrderList {
                    list_client_order_id: request.list_client_order_id.clone(),
                    exchange_list_id: None,
                    symbol: request.symbol.clone(),
                    orders: found,
                }))
            }
            Err(ExchangeError::RateLimited { retry_after }) => {
                Ok(OcoAttempt::RateLimited(retry_after))
            }
            Err(ExchangeError::Banned { until }) => {
                let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                if wait.as_millis() > u128::from(self.config.max_ban_wait_ms) {
                    let msg = format!("IP banned until {until}; the list was not placed");
                    for leg in legs {
                        self.mark(leg, OrderStatus::Rejected, &msg, now_ms)?;
                    }
                    return Err(ExchangeError::Banned { until });
                }
                Ok(OcoAttempt::RateLimited(wait + Duration::from_millis(50)))
            }
            Err(e) => {
                for leg in legs {
                    self.mark(leg, OrderStatus::Rejected, &e.to_string(), now_ms)?;
                }
                Err(e)
            }
        }
    }

    /// After a restart: settle every order of this connection left `PENDING_NEW` / `UNKNOWN`.
    /// Returns the orders whose state is now known; `now_ms` stamps the rows it settles.
    pub async fn reconcile(&self, now_ms: i64) -> Result<Vec<Order>, ExchangeError> {
        self.reconcile_symbol(None, now_ms).await
    }

    /// Settle the rows left `PENDING_NEW` / `UNKNOWN` (of `symbol` only, when given). "Not
    /// found" is final only once the grace has passed since the row's request left; before
    /// that the row stays UNKNOWN (`StatusUnknown`): a late order is not called unsent.
    pub async fn reconcile_symbol(
        &self,
        symbol: Option<&crate::domain::symbol::Symbol>,
        now_ms: i64,
    ) -> Result<Vec<Order>, ExchangeError> {
        let pending = self.with_store(|c| {
            orders::unresolved_in(c, &self.connection, symbol.map(|s| s.as_str()))
        })?;
        let mut settled = Vec::new();
        for stored in pending {
            let o = &stored.order;
            let request = OrderRequest {
                client_order_id: o.client_order_id.clone(),
                symbol: o.symbol.clone(),
                side: o.side,
                order_type: o.order_type,
                quantity: o.quantity,
                price: o.price,
                stop_price: o.stop_price,
                time_in_force: None,
                trailing_delta: None,
            };
            match self
                .resolve(&request, stored.id, self.sent_at_of(&stored), now_ms)
                .await
            {
                Ok(placed) => settled.push(placed.order),
                Err(ExchangeError::UnknownOrder { .. }) => {
                    self.mark(
                        &request,
                        OrderStatus::Rejected,
                        "never reached the exchange; not placed",
                        now_ms,
                    )?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(settled)
    }
}

/// The two legs of an OCO as single orders (for filter checks, rows and status queries).
pub fn oco_legs(request: &OcoRequest) -> [OrderRequest; 2] {
    [
        OrderRequest {
            client_order_id: request.take_profit_client_order_id.clone(),
            symbol: request.symbol.clone(),
            side: request.side,
            order_type: OrderType::LimitMaker,
            quantity: request.quantity,
            price: Some(request.take_profit_price),
            stop_price: None,
            time_in_force: None,
            trailing_delta: None,
        },
        OrderRequest {
            client_order_id: request.stop_client_order_id.clone(),
            symbol: request.symbol.clone(),
            side: request.side,
            order_type: OrderType::StopLossLimit,
            quantity: request.quantity,
            price: Some(request.stop_limit_price),
            stop_price: Some(request.stop_price),
            time_in_force: Some(TimeInForce::Gtc),
            trailing_delta: None,
        },
    ]
}
