//! The same behavioural tests for every `Exchange`: the Binance client against the fake, and
//! the paper exchange. Written once, generic over the exchange.

use crate::exchange_common::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::Arc;
use trademind::domain::money::{Price, Qty};
use trademind::domain::trading::order::{
    OrderRequest, OrderStatus, OrderType, Side, TrailingDelta,
};
use trademind::services::exchange::binance::BinanceClient;
use trademind::services::exchange::paper::PaperExchange;
use trademind::services::exchange::{Exchange, ExchangeError, OcoRequest, balance_of};
use trademind::store::orders;
use trademind::testkit::fake_binance::FakeBinance;

/// An exchange plus a way to move its market price.
trait Venue {
    type E: Exchange + 'static;
    fn exchange(&self) -> Arc<Self::E>;
    fn move_price(&self, price: Decimal);
}

struct FakeVenue {
    fake: FakeBinance,
    client: Arc<BinanceClient>,
}

impl Venue for FakeVenue {
    type E = BinanceClient;
    fn exchange(&self) -> Arc<BinanceClient> {
        self.client.clone()
    }
    fn move_price(&self, price: Decimal) {
        self.fake.set_price("BTCUSDT", price);
    }
}

struct PaperVenue(Arc<PaperExchange>);

impl Venue for PaperVenue {
    type E = PaperExchange;
    fn exchange(&self) -> Arc<PaperExchange> {
        self.0.clone()
    }
    fn move_price(&self, price: Decimal) {
        self.0.on_price(&btcusdt(), Price(price)).unwrap();
    }
}

async fn fake_venue() -> FakeVenue {
    let fake = fake().await;
    let client = Arc::new(client_for(&fake, client_config(&fake)));
    FakeVenue { fake, client }
}

fn paper_venue() -> PaperVenue {
    PaperVenue(Arc::new(paper()))
}

async fn free(e: &impl Exchange, asset: &str) -> Decimal {
    balance_of(&e.balances().await.unwrap(), asset).free
}

async fn market_buy_fills_at_last_price_with_fee_in_base(v: impl Venue) {
    let ex = v.exchange();
    let (executor, store) = executor(ex.clone(), "test");
    let placed = executor
        .place(&market("b-mkt", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::Filled);
    // 0.01 BTC at 50000 = 500 USDT; fee 0.1 % of 0.01 BTC = 0.00001 BTC
    assert_eq!(placed.order.cumulative_quote.get(), dec!(500));
    assert_eq!(
        placed.fills.iter().map(|f| f.fee.get()).sum::<Decimal>(),
        dec!(0.00001)
    );
    assert_eq!(placed.fills[0].fee_asset, "BTC");
    assert_eq!(free(&*ex, "USDT").await, dec!(9500));
    assert_eq!(free(&*ex, "BTC").await, dec!(1.00999));
    let local = orders::get(store.lock().unwrap().conn(), "b-mkt")
        .unwrap()
        .unwrap();
    assert_eq!(local.order.status, OrderStatus::Filled);
    let trades = ex.my_trades(&btcusdt()).await.unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].quantity, Qty(dec!(0.01)));
}

async fn limit_order_rests_then_fills_when_price_crosses(v: impl Venue) {
    let ex = v.exchange();
    let placed = ex
        .place_order(&limit("b-lim", Side::Buy, dec!(0.01), dec!(49000)))
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::New);
    assert!(placed.fills.is_empty());
    assert_eq!(ex.open_orders(&btcusdt()).await.unwrap().len(), 1);
    // 490 USDT locked for the order
    let usdt = balance_of(&ex.balances().await.unwrap(), "USDT");
    assert_eq!((usdt.free, usdt.locked), (dec!(9510), dec!(490)));
    v.move_price(dec!(49500));
    assert_eq!(
        ex.query_order(&btcusdt(), "b-lim").await.unwrap().status,
        OrderStatus::New
    );
    v.move_price(dec!(48900));
    let order = ex.query_order(&btcusdt(), "b-lim").await.unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.average_fill_price(), Some(Price(dec!(49000))));
    assert_eq!(free(&*ex, "USDT").await, dec!(9510));
    assert_eq!(free(&*ex, "BTC").await, dec!(1.00999));
    assert!(ex.open_orders(&btcusdt()).await.unwrap().is_empty());
}

async fn filters_and_balance_are_enforced_with_typed_errors(v: impl Venue) {
    let ex = v.exchange();
    let err = ex
        .place_order(&limit("b-f1", Side::Buy, dec!(0.000015), dec!(49000)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExchangeError::FilterFailure { ref filter, .. } if filter == "LOT_SIZE"),
        "{err:?}"
    );
    let err = ex
        .place_order(&limit("b-f2", Side::Buy, dec!(0.01), dec!(49000.005)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExchangeError::FilterFailure { ref filter, .. } if filter == "PRICE_FILTER"),
        "{err:?}"
    );
    let err = ex
        .place_order(&limit("b-f3", Side::Buy, dec!(0.0001), dec!(49000)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExchangeError::FilterFailure { ref filter, .. } if filter == "NOTIONAL"),
        "{err:?}"
    );
    // 1 BTC at 50000 needs 50000 USDT; the account has 10000
    let err = ex
        .place_order(&market("b-f4", Side::Buy, dec!(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExchangeError::InsufficientBalance(_)),
        "{err:?}"
    );
    assert!(ex.open_orders(&btcusdt()).await.unwrap().is_empty());
}

async fn oco_take_profit_fill_expires_the_stop(v: impl Venue) {
    let ex = v.exchange();
    let list = ex
        .place_oco(&OcoRequest {
            list_client_order_id: "b-oco".into(),
            symbol: btcusdt(),
            side: Side::Sell,
            quantity: Qty(dec!(0.5)),
            take_profit_client_order_id: "b-oco-tp".into(),
            take_profit_price: Price(dec!(52000)),
            stop_client_order_id: "b-oco-sl".into(),
            stop_price: Price(dec!(48000)),
            stop_limit_price: Price(dec!(47900)),
        })
        .await
        .unwrap();
    assert_eq!(list.orders.len(), 2);
    assert_eq!(ex.open_orders(&btcusdt()).await.unwrap().len(), 2);
    assert_eq!(
        balance_of(&ex.balances().await.unwrap(), "BTC").locked,
        dec!(0.5)
    );
    v.move_price(dec!(52100));
    assert_eq!(
        ex.query_order(&btcusdt(), "b-oco-tp").await.unwrap().status,
        OrderStatus::Filled
    );
    assert_eq!(
        ex.query_order(&btcusdt(), "b-oco-sl").await.unwrap().status,
        OrderStatus::Expired
    );
    // 0.5 BTC at 52000 = 26000 USDT, fee 26 USDT
    assert_eq!(free(&*ex, "USDT").await, dec!(35974));
    let btc = balance_of(&ex.balances().await.unwrap(), "BTC");
    assert_eq!((btc.free, btc.locked), (dec!(0.5), dec!(0)));
}

async fn oco_with_prices_on_the_wrong_side_is_rejected(v: impl Venue) {
    let ex = v.exchange();
    let err = ex
        .place_oco(&OcoRequest {
            list_client_order_id: "b-bad".into(),
            symbol: btcusdt(),
            side: Side::Sell,
            quantity: Qty(dec!(0.5)),
            take_profit_client_order_id: "b-bad-tp".into(),
            take_profit_price: Price(dec!(49000)),
            stop_client_order_id: "b-bad-sl".into(),
            stop_price: Price(dec!(48000)),
            stop_limit_price: Price(dec!(47900)),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ExchangeError::OrderRejected(_)), "{err:?}");
}

async fn cancel_releases_the_lock_and_unknown_ids_are_typed(v: impl Venue) {
    let ex = v.exchange();
    ex.place_order(&limit("b-c", Side::Buy, dec!(0.01), dec!(49000)))
        .await
        .unwrap();
    let canceled = ex.cancel_order(&btcusdt(), "b-c").await.unwrap();
    assert_eq!(canceled.status, OrderStatus::Canceled);
    assert_eq!(free(&*ex, "USDT").await, dec!(10000));
    assert!(matches!(
        ex.cancel_order(&btcusdt(), "b-c").await,
        Err(ExchangeError::UnknownOrder { code: -2011, .. })
    ));
    assert!(matches!(
        ex.query_order(&btcusdt(), "b-none").await,
        Err(ExchangeError::UnknownOrder { code: -2013, .. })
    ));
}

async fn stop_limit_triggers_when_price_falls_to_the_stop(v: impl Venue) {
    let ex = v.exchange();
    let mut r = limit("b-stop", Side::Sell, dec!(0.1), dec!(47900));
    r.order_type = trademind::domain::trading::order::OrderType::StopLossLimit;
    r.stop_price = Some(Price(dec!(48000)));
    ex.place_order(&r).await.unwrap();
    v.move_price(dec!(48500));
    assert_eq!(
        ex.query_order(&btcusdt(), "b-stop").await.unwrap().status,
        OrderStatus::New
    );
    v.move_price(dec!(48000));
    let order = ex.query_order(&btcusdt(), "b-stop").await.unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    // triggered at 48000, filled as taker at the current price: 0.1 * 48000 = 4800
    assert_eq!(order.cumulative_quote.get(), dec!(4800));
}

/// Binance's MAX_NUM_ALGO_ORDERS (5 on BTCUSDT): five stop-limits rest, a sixth and an OCO (its
/// stop leg is a sixth) are refused by that filter; a LIMIT sell is no algo order and rests;
/// once one stop is cancelled a stop fits again. A scale-out protects a position with two stops,
/// so this is what the exchange says to a third scaled-out position in one symbol.
async fn a_sixth_stop_order_on_a_symbol_is_refused_by_max_num_algo_orders(v: impl Venue) {
    let ex = v.exchange();
    let stop = |cid: &str| {
        let mut r = limit(cid, Side::Sell, dec!(0.01), dec!(47900));
        r.order_type = OrderType::StopLossLimit;
        r.stop_price = Some(Price(dec!(48000)));
        r
    };
    for i in 0..5 {
        ex.place_order(&stop(&format!("b-algo-{i}"))).await.unwrap();
    }
    let refused = |e: ExchangeError| {
        assert!(
            matches!(&e, ExchangeError::FilterFailure { filter, .. } if filter == "MAX_NUM_ALGO_ORDERS"),
            "{e:?}"
        );
    };
    refused(ex.place_order(&stop("b-algo-6")).await.unwrap_err());
    refused(
        ex.place_oco(&OcoRequest {
            list_client_order_id: "b-algo-oco".into(),
            symbol: btcusdt(),
            side: Side::Sell,
            quantity: Qty(dec!(0.01)),
            take_profit_client_order_id: "b-algo-tp".into(),
            take_profit_price: Price(dec!(52000)),
            stop_client_order_id: "b-algo-sl".into(),
            stop_price: Price(dec!(48000)),
            stop_limit_price: Price(dec!(47900)),
        })
        .await
        .unwrap_err(),
    );
    ex.place_order(&limit("b-algo-limit", Side::Sell, dec!(0.01), dec!(53000)))
        .await
        .unwrap();
    ex.cancel_order(&btcusdt(), "b-algo-0").await.unwrap();
    ex.place_order(&stop("b-algo-7")).await.unwrap();
    assert_eq!(ex.open_orders(&btcusdt()).await.unwrap().len(), 6);
}

fn trailing_stop(cid: &str, qty: Decimal, limit_price: Decimal, bips: u32) -> OrderRequest {
    let mut r = limit(cid, Side::Sell, qty, limit_price);
    r.order_type = OrderType::StopLossLimit;
    r.trailing_delta = Some(TrailingDelta(bips));
    r
}

/// Scenario E of Binance's Trailing Stop FAQ on our prices: a STOP_LOSS_LIMIT SELL with
/// `trailingDelta` 200 (2 %) and no stop price tracks from the price at placement (50,000),
/// follows the high up to 52,000 and triggers at 52,000 × 0.98 = 50,960, not before.
async fn trailing_stop_follows_the_high_and_triggers_at_the_delta(v: impl Venue) {
    let ex = v.exchange();
    let placed = ex
        .place_order(&trailing_stop("b-trail", dec!(0.1), dec!(45000), 200))
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::New);
    assert_eq!(placed.order.stop_price, None);
    // 49,100 is 1.8 % under the 50,000 it started from: not yet.
    v.move_price(dec!(49100));
    v.move_price(dec!(52000));
    // 50,961 is 1.998 % under the new high of 52,000: not yet.
    v.move_price(dec!(50961));
    assert_eq!(
        ex.query_order(&btcusdt(), "b-trail").await.unwrap().status,
        OrderStatus::New
    );
    v.move_price(dec!(50960));
    let order = ex.query_order(&btcusdt(), "b-trail").await.unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    // Triggered at 50,960 (over the 45,000 limit): sold there as taker, 0.1 × 50,960.
    assert_eq!(order.cumulative_quote.get(), dec!(5096));
    // 5096 less the 0.1 % fee
    assert_eq!(
        free(&*ex, "USDT").await,
        dec!(10000) + dec!(5096) - dec!(5.096)
    );
}

/// With a stop price, a trailing STOP_LOSS SELL only starts tracking once the price falls to
/// it; the rise before that is ignored (Scenario B).
async fn trailing_stop_with_a_stop_price_tracks_only_once_the_stop_is_met(v: impl Venue) {
    let ex = v.exchange();
    let mut r = trailing_stop("b-trail-sp", dec!(0.1), dec!(40000), 500);
    r.stop_price = Some(Price(dec!(49000)));
    ex.place_order(&r).await.unwrap();
    // Up 10 % and back 5 %: not tracking yet, nothing happens.
    v.move_price(dec!(55000));
    v.move_price(dec!(52250));
    // Tracking starts at 49,000 (its high), so 46,550 (49,000 × 0.95) triggers it.
    v.move_price(dec!(49000));
    v.move_price(dec!(46551));
    assert_eq!(
        ex.query_order(&btcusdt(), "b-trail-sp")
            .await
            .unwrap()
            .status,
        OrderStatus::New
    );
    v.move_price(dec!(46550));
    let order = ex.query_order(&btcusdt(), "b-trail-sp").await.unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.cumulative_quote.get(), dec!(4655));
}

/// The TRAILING_DELTA filter (10..=2000 BIPS) and the order types that take a trailing delta
/// are enforced as Binance does; nothing is left on the book.
async fn trailing_deltas_binance_refuses_are_refused(v: impl Venue) {
    let ex = v.exchange();
    for (cid, bips) in [("b-td-9", 9), ("b-td-2001", 2001), ("b-td-0", 0)] {
        let err = ex
            .place_order(&trailing_stop(cid, dec!(0.1), dec!(45000), bips))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ExchangeError::FilterFailure { ref filter, .. } if filter == "TRAILING_DELTA"),
            "{bips}: {err:?}"
        );
    }
    // The edges of the range are accepted.
    for (cid, bips) in [("b-td-10", 10), ("b-td-2000", 2000)] {
        ex.place_order(&trailing_stop(cid, dec!(0.01), dec!(45000), bips))
            .await
            .unwrap();
        ex.cancel_order(&btcusdt(), cid).await.unwrap();
    }
    // A LIMIT order takes no trailing delta.
    let mut plain = limit("b-td-lim", Side::Sell, dec!(0.1), dec!(55000));
    plain.trailing_delta = Some(TrailingDelta(100));
    let err = ex.place_order(&plain).await.unwrap_err();
    assert!(
        matches!(err, ExchangeError::Api { code: -1106, .. }),
        "{err:?}"
    );
    // A stop order needs a stop price or a trailing delta.
    let mut bare = trailing_stop("b-td-none", dec!(0.1), dec!(45000), 100);
    bare.trailing_delta = None;
    let err = ex.place_order(&bare).await.unwrap_err();
    assert!(
        matches!(err, ExchangeError::Api { code: -1102, .. }),
        "{err:?}"
    );
    assert!(ex.open_orders(&btcusdt()).await.unwrap().is_empty());
}

fn post_only_buy(cid: &str, qty: Decimal, price: Decimal) -> OrderRequest {
    OrderRequest {
        order_type: OrderType::LimitMaker,
        // Binance's LIMIT_MAKER takes a quantity and a price, no time in force.
        time_in_force: None,
        ..limit(cid, Side::Buy, qty, price)
    }
}

/// A post-only (`LIMIT_MAKER`) entry: at or over the price (50,000) it would trade as a taker,
/// so it is refused with -2010 "Order would immediately match and take." and nothing rests;
/// under the price it rests, and fills at its own price as the maker once the price comes
/// down through it.
async fn post_only_buy_rests_under_the_price_and_is_refused_when_it_would_take(v: impl Venue) {
    let ex = v.exchange();
    for (cid, price) in [("b-pm-at", dec!(50000)), ("b-pm-over", dec!(50100))] {
        let err = ex
            .place_order(&post_only_buy(cid, dec!(0.01), price))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ExchangeError::OrderRejected(ref m)
                if m == "Order would immediately match and take."),
            "{err:?}"
        );
    }
    assert!(ex.open_orders(&btcusdt()).await.unwrap().is_empty());
    assert_eq!(free(&*ex, "USDT").await, dec!(10000));
    let placed = ex
        .place_order(&post_only_buy("b-pm", dec!(0.01), dec!(49000)))
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::New);
    assert!(placed.fills.is_empty());
    v.move_price(dec!(48500));
    let order = ex.query_order(&btcusdt(), "b-pm").await.unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.average_fill_price(), Some(Price(dec!(49000))));
    let trades = ex.my_trades(&btcusdt()).await.unwrap();
    assert_eq!(trades.len(), 1);
    assert!(trades[0].is_maker, "{trades:?}");
}

/// The fake answers a crossing LIMIT_MAKER on the wire as Binance does: HTTP 400, code -2010,
/// the matching engine's message.
#[tokio::test]
async fn the_fake_binance_refuses_a_limit_maker_that_would_take_with_2010() {
    let fake = fake().await;
    let (status, body) = raw_post(
        &fake,
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=0.01&price=50000",
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(-2010)),
        "{body}"
    );
    assert_eq!(body["msg"], "Order would immediately match and take.");
    assert!(fake.orders().is_empty());
    let (status, body) = raw_post(
        &fake,
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=0.01&price=49000",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "NEW");
}

/// A signed POST straight to the fake, for parameters our client never sends.
async fn raw_post(fake: &FakeBinance, path: &str, query: &str) -> (u16, serde_json::Value) {
    let creds = fake.credentials();
    let payload = format!(
        "{query}&timestamp={}",
        chrono::Utc::now().timestamp_millis()
    );
    let signature = creds.sign(&payload);
    let response = reqwest::Client::new()
        .post(format!(
            "{}{path}?{payload}&signature={signature}",
            fake.base_url()
        ))
        .header("X-MBX-APIKEY", creds.api_key())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `trailingDelta` is a LONG on the wire: letters are -1100, a number too large for any filter
/// is a TRAILING_DELTA filter failure (not wrapped round into range), and an OCO stop leg with
/// a trailing delta is refused by this fake rather than placed as a stop that would not trail.
#[tokio::test]
async fn the_fake_binance_reads_trailing_delta_as_binance_does() {
    let fake = fake().await;
    let order =
        "symbol=BTCUSDT&side=SELL&type=STOP_LOSS_LIMIT&timeInForce=GTC&quantity=0.1&price=45000";
    let (status, body) = raw_post(
        &fake,
        "/api/v3/order",
        &format!("{order}&trailingDelta=abc"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(-1100)),
        "{body}"
    );
    let (status, body) = raw_post(
        &fake,
        "/api/v3/order",
        &format!("{order}&trailingDelta=4294967306"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(-1013)),
        "{body}"
    );
    assert_eq!(body["msg"], "Filter failure: TRAILING_DELTA");
    let (status, body) = raw_post(
        &fake,
        "/api/v3/order",
        &format!("{order}&trailingDelta=250"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let oco = "symbol=BTCUSDT&side=SELL&quantity=0.1&aboveType=LIMIT_MAKER&abovePrice=55000\
               &belowType=STOP_LOSS_LIMIT&belowPrice=45000&belowStopPrice=46000\
               &belowTimeInForce=GTC&belowTrailingDelta=250";
    let (status, body) = raw_post(&fake, "/api/v3/orderList/oco", oco).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(-1116)),
        "{body}"
    );
    assert_eq!(
        fake.orders().len(),
        1,
        "only the accepted trailing stop rests"
    );
}

macro_rules! for_both {
    ($($name:ident),+ $(,)?) => {
        mod on_fake_binance {
            use super::*;
            $(#[tokio::test] async fn $name() { super::$name(fake_venue().await).await; })+
        }
        mod on_paper {
            use super::*;
            $(#[tokio::test] async fn $name() { super::$name(paper_venue()).await; })+
        }
    };
}

for_both!(
    market_buy_fills_at_last_price_with_fee_in_base,
    limit_order_rests_then_fills_when_price_crosses,
    filters_and_balance_are_enforced_with_typed_errors,
    oco_take_profit_fill_expires_the_stop,
    oco_with_prices_on_the_wrong_side_is_rejected,
    cancel_releases_the_lock_and_unknown_ids_are_typed,
    stop_limit_triggers_when_price_falls_to_the_stop,
    trailing_stop_follows_the_high_and_triggers_at_the_delta,
    trailing_stop_with_a_stop_price_tracks_only_once_the_stop_is_met,
    trailing_deltas_binance_refuses_are_refused,
    post_only_buy_rests_under_the_price_and_is_refused_when_it_would_take,
    a_sixth_stop_order_on_a_symbol_is_refused_by_max_num_algo_orders,
);
