//! The daemon's WebSocket feeds on a Binance connection (`app::streams`) against the fake
//! Binance REST API, the fake market stream and the fake WebSocket API: the streams of the
//! active strategies' symbols and the signed user-data subscription are opened (and not on the
//! paper exchange), a stop-loss fill pushed as an executionReport is booked once through the
//! trading service with the REST monitor finding nothing left to do, and prices fall back to
//! the REST ticker while the stream is down or stale. Last, the real binary on a testnet
//! connection streams from the testnet endpoints and exits 0 on SIGTERM.
//!
//! Numbers are those of `tests/it/trading.rs`: 10 000 USDT, price 50 000, fee 0.1 %; the BUY
//! with stop 49 000 / target 52 000 buys 0.02 BTC at 50 000, holds 0.01998 after the
//! 0.00002 BTC fee (worth 1 USDT).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received};
use trademind::app::daemon::{Jobs, StoreRecorder};
use trademind::app::decide::EngineOutput;
use trademind::app::scheduler::{Clock, RunRecorder};
use trademind::app::streams::{FeedDeps, LiveFeeds, binance_user_data, specs_for, start_feeds};
use trademind::app::trading::{ExecutionOutcome, TradingDeps, TradingService};
use trademind::config::Settings;
use trademind::domain::decision::DecisionInput;
use trademind::domain::market::Interval;
use trademind::domain::trading::order::{Fill, Order, OrderStatus, OrderType, Side};
use trademind::domain::trading::{PositionFill, PositionService, PositionSide, TradingMode};
use trademind::domain::{Price, Qty, Quote, Symbol};
use trademind::services::exchange::Exchange;
use trademind::services::exchange::any::AnyExchange;
use trademind::services::market_stream::StreamConfig;
use trademind::services::monitoring::components_from_jobs;
use trademind::services::notification::{NotificationConfig, ResendClient};
use trademind::store::{Store, jobs as job_store, orders, positions};
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig};
use trademind::testkit::fake_binance_ws::{FakeBinanceWs, FakeBinanceWsApi};
use trademind::testkit::fake_resend::FakeResend;

use crate::exchange_common::{client_config, client_for, executor_config, fake};
use crate::live_stream::eventually;
use crate::trading::{buy, input};

const RESEND_KEY: &str = "re_test_0123456789";
/// 2025-01-15T00:00:00Z
const NOW: i64 = 1_736_899_200_000;
const CONNECTION: &str = "binance-testnet";
const TICKER: &str = "GET /api/v3/ticker/price";
const MY_TRADES: &str = "GET /api/v3/myTrades";

/// A clock the test moves by hand.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Fake Binance REST, the BTCUSDT 15m market stream and the account's WebSocket API, all
/// accepting the fake's key pair.
async fn fakes() -> (FakeBinance, FakeBinanceWs, FakeBinanceWsApi) {
    let market = FakeBinanceWs::start("BTCUSDT", Interval::M15, 1000)
        .await
        .unwrap();
    let keys = FakeConfig::default();
    let account = FakeBinanceWsApi::start(&keys.api_key, &keys.api_secret)
        .await
        .unwrap();
    (fake().await, market, account)
}

struct Rig {
    binance: FakeBinance,
    market: FakeBinanceWs,
    account: FakeBinanceWsApi,
    resend: FakeResend,
    store: Arc<Mutex<Store>>,
    bus: EventBus,
    clock: Arc<ManualClock>,
    trading: Arc<TradingService<AnyExchange>>,
    config: StreamConfig,
}

impl Rig {
    async fn new() -> Rig {
        let (binance, market, account) = fakes().await;
        let resend = FakeResend::start(RESEND_KEY).await.unwrap();
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let bus = EventBus::new(10_000);
        let mut settings = Settings::default();
        settings.exchange.executor = executor_config();
        settings.notifications = NotificationConfig {
            enabled: true,
            base_url: resend.url(),
            from: "TradeMind <alerts@example.com>".into(),
            to: vec!["me@example.com".into()],
            ..NotificationConfig::default()
        };
        let mailer = ResendClient::new(&resend.url(), RESEND_KEY, Duration::from_secs(5)).unwrap();
        let config = StreamConfig {
            ws_base_url: market.ws_base_url(),
            rest_base_url: market.rest_base_url(),
            ws_api_url: account.url(),
            reconnect_initial_backoff_ms: 20,
            reconnect_max_backoff_ms: 200,
            read_timeout_secs: 10,
            marks_interval_ms: 100,
            ..StreamConfig::default()
        };
        let trading = Arc::new(TradingService::new(TradingDeps {
            exchange: Arc::new(AnyExchange::Binance(Box::new(client_for(
                &binance,
                client_config(&binance),
            )))),
            store: store.clone(),
            connection: CONNECTION.into(),
            mode: TradingMode::Testnet,
            settings: Arc::new(settings),
            bus: bus.clone(),
            mailer: Some(mailer),
        }));
        assert!(trading.reconcile(NOW).await.unwrap().reconciled);
        Rig {
            binance,
            market,
            account,
            resend,
            store,
            bus,
            clock: Arc::new(ManualClock(AtomicI64::new(NOW))),
            trading,
            config,
        }
    }

    /// Start the feeds as the daemon does: streams for the active strategy's symbol, the
    /// user-data stream with the connection's keys; `update_prices` every 10 s.
    fn start(&self, cancel: &CancellationToken) -> LiveFeeds {
        let strategy = crate::daemon::swing_strategy(&self.store, NOW);
        let recorder: Arc<dyn RunRecorder> =
            Arc::new(StoreRecorder::new(self.store.clone(), self.bus.clone()));
        start_feeds(
            FeedDeps {
                trading: self.trading.clone(),
                store: self.store.clone(),
                bus: self.bus.clone(),
                clock: self.clock.clone(),
                recorder,
                config: self.config.clone(),
                specs: specs_for(&[strategy]),
                user_data: binance_user_data(self.trading.exchange(), &self.config),
                update_prices_every: Duration::from_secs(10),
            },
            cancel.clone(),
        )
        .unwrap()
    }

    async fn connected(&self) {
        within(
            "the market stream connects",
            self.market.wait_for_connections(1),
        )
        .await;
        within(
            "the account subscribes",
            self.account.wait_for_subscriptions(1),
        )
        .await;
    }

    fn mails_with(&self, needle: &str) -> usize {
        crate::trading::mails_with(&self.resend, needle)
    }

    fn position(&self) -> positions::PositionRow {
        let s = self.store.lock().unwrap();
        let id = positions::open_positions(s.conn())
            .unwrap()
            .into_iter()
            .chain(positions::closed_positions(s.conn(), 5).unwrap())
            .next()
            .unwrap()
            .id;
        positions::get(s.conn(), id).unwrap().unwrap()
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

async fn shut_down(feeds: LiveFeeds, cancel: CancellationToken) {
    cancel.cancel();
    within("every feed task stops on cancel", feeds.join()).await;
}

#[tokio::test]
async fn on_binance_the_daemon_feeds_subscribe_to_the_strategy_streams_and_the_account() {
    let rig = Rig::new().await;
    let mut events = rig.bus.subscribe();
    let cancel = CancellationToken::new();
    let feeds = rig.start(&cancel);
    rig.connected().await;
    assert_eq!(
        rig.market.paths(),
        vec![
            "/stream?streams=btcusdt@kline_15m/btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@depth@100ms"
                .to_string()
        ]
    );
    // The market stream's health goes on the bus as a component, like the jobs'.
    within("the market stream is announced healthy", async {
        loop {
            if let Received::Event(Event::HealthChanged {
                component, healthy, ..
            }) = events.recv().await
                && component == "market_stream"
            {
                assert!(healthy);
                return;
            }
        }
    })
    .await;
    // ... and `trademind status` (another process) reads it from job_runs.
    eventually("both streams are recorded healthy", || {
        let s = rig.store.lock().unwrap();
        let components = components_from_jobs(&job_store::job_health(s.conn()).unwrap());
        ["market_stream", "user_data_stream"]
            .iter()
            .all(|name| components.iter().any(|c| c.component == *name && c.healthy))
    })
    .await;

    // A drop is recorded as a failure of the market stream until it is connected again.
    assert!(rig.market.drop_connection());
    eventually("the drop is recorded", || {
        let s = rig.store.lock().unwrap();
        job_store::job_health(s.conn())
            .unwrap()
            .iter()
            .any(|j| j.job == "market_stream:BTCUSDT" && j.last_error.is_some())
    })
    .await;
    within("the drop is announced on the bus", async {
        loop {
            if let Received::Event(Event::HealthChanged {
                component,
                healthy,
                detail,
            }) = events.recv().await
                && component == "market_stream"
            {
                assert!(!healthy && detail.contains("reconnecting"), "{detail}");
                return;
            }
        }
    })
    .await;
    within("the stream reconnects", rig.market.wait_for_connections(2)).await;
    shut_down(feeds, cancel).await;

    // The paper exchange has no streams: the daemon starts none.
    let paper = AnyExchange::Paper(Box::new(crate::exchange_common::paper()));
    assert!(binance_user_data(&paper, &rig.config).is_none());
}

/// BUY 10 % with stop 49 000 and target 52 000, as a validated engine output.
fn buy_decision(input: &DecisionInput) -> EngineOutput {
    use trademind::domain::decision::{ValidationLimits, parse_and_validate};
    let validated = parse_and_validate(
        &buy(0.8).to_string(),
        &input.symbol,
        input.price,
        &ValidationLimits::default(),
    );
    assert!(validated.is_valid(), "{:?}", validated.verdict);
    EngineOutput::new("rules", validated)
}

/// The stop leg's executionReport: FILLED, its last fill `last` at `price` (trade
/// `trade_id`, fee in USDT), `filled` in all for `quote`.
fn stop_fill_report(
    (cid, order_id): (&str, &str),
    trade_id: &str,
    (price, last, filled): (&str, &str, &str),
    (fee, quote): (&str, &str),
) -> String {
    format!(
        r#"{{"e":"executionReport","E":{NOW},"s":"BTCUSDT","c":"{cid}","S":"SELL","o":"STOP_LOSS_LIMIT","f":"GTC","q":"0.01998","p":"48755.00","C":"","x":"TRADE","X":"FILLED","r":"NONE","i":{order_id},"l":"{last}","z":"{filled}","L":"{price}","n":"{fee}","N":"USDT","T":{NOW},"t":{trade_id},"m":false,"Z":"{quote}"}}"#
    )
}

/// Buy with OCO protection, then move the fake's price through the stop (0.01998 BTC sold at
/// 48 900, taker): the stop and target orders and the stop's trade on the exchange.
async fn stopped_out(rig: &Rig) -> (Order, Order, Fill) {
    let input = input();
    let report = rig
        .trading
        .execute_decision(&input, &buy_decision(&input), None, NOW)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    let on_exchange = rig.binance.orders();
    let of_type = |t: OrderType| {
        on_exchange
            .iter()
            .find(|o| o.order_type == t)
            .unwrap()
            .clone()
    };
    let (stop, target) = (
        of_type(OrderType::StopLossLimit),
        of_type(OrderType::LimitMaker),
    );
    rig.binance.set_price("BTCUSDT", dec!(48900));
    let trade = rig
        .trading
        .exchange()
        .my_trades(&Symbol::new("BTCUSDT").unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.side == Side::Sell)
        .expect("the stop filled on the fake");
    assert_eq!(trade.price, Price(dec!(48900)));
    // Fee 0.01998 × 48 900 × 0.001 = 0.977022 USDT; quote 0.01998 × 48 900 = 977.022.
    assert_eq!(trade.fee, Quote(dec!(0.977022)));
    (stop, target, trade)
}

#[tokio::test]
async fn a_stop_fill_from_the_stream_is_booked_once_and_the_monitor_books_nothing_more() {
    let rig = Rig::new().await;
    let cancel = CancellationToken::new();
    let feeds = rig.start(&cancel);
    rig.connected().await;

    let (stop, target, trade) = stopped_out(&rig).await;
    let trades_asked = rig.binance.requests(MY_TRADES);
    let pushed = stop_fill_report(
        (
            &stop.client_order_id,
            stop.exchange_order_id.as_deref().unwrap(),
        ),
        trade.trade_id.as_deref().unwrap(),
        ("48900.00", "0.01998", "0.01998"),
        ("0.977022", "977.022"),
    );
    assert!(rig.account.push_event(&pushed));

    // Booked from the stream alone, well before the 30 s monitor would run.
    eventually("the stream closes the position", || {
        rig.position().position.closed_at.is_some()
    })
    .await;
    // −1 entry fee − 21.978 loss ((48 900 − 50 000) × 0.01998) − 0.977022 exit fee.
    let closed = rig.position().position;
    assert_eq!(closed.realized_pnl, Quote(dec!(-23.955022)));
    assert_eq!(closed.fees_paid, Quote(dec!(1.977022)));
    assert_eq!(
        rig.binance.requests(MY_TRADES),
        trades_asked,
        "fills came from the stream"
    );
    let stop_row = {
        let s = rig.store.lock().unwrap();
        orders::get(s.conn(), &stop.client_order_id)
            .unwrap()
            .unwrap()
    };
    assert_eq!(stop_row.order.status, OrderStatus::Filled);
    let (tp_status, stop_fills, pnl_on_trade) = {
        let s = rig.store.lock().unwrap();
        let tp = orders::get(s.conn(), &target.client_order_id)
            .unwrap()
            .unwrap();
        let trades = orders::trades(s.conn(), 10).unwrap();
        let stop_trade = trades
            .iter()
            .find(|t| t.client_order_id == stop.client_order_id)
            .unwrap()
            .realized_pnl;
        (
            tp.order.status,
            orders::fill_count(s.conn(), stop_row.id).unwrap(),
            stop_trade,
        )
    };
    // The take-profit sibling was settled from the exchange, as the monitor does.
    assert_eq!(tp_status, OrderStatus::Expired);
    assert_eq!(stop_fills, 1);
    assert_eq!(pnl_on_trade, Some(Quote(dec!(-22.955022))));
    eventually("one stop-hit mail", || rig.mails_with("stop hit") == 1).await;

    // The same report again (a replay after a reconnect) and the next monitor pass change
    // nothing and send no second alert.
    let mut events = rig.bus.subscribe();
    assert!(rig.account.push_event(&pushed));
    // Frames are handled in order: once this balance is published, the replay was handed to
    // the booking task, and shutting down drains that queue.
    assert!(rig.account.push_event(
        r#"{"e":"outboundAccountPosition","E":2,"u":2,"B":[{"a":"USDT","f":"1","l":"0"}]}"#
    ));
    within("the balance after the replay", async {
        while !matches!(
            events.recv().await,
            Received::Event(Event::BalanceChanged { .. })
        ) {}
    })
    .await;
    let monitor = rig.trading.monitor_orders(NOW + 30_000).await.unwrap();
    assert!(monitor.closed.is_empty(), "{monitor:?}");
    assert_eq!(monitor.checked, 0, "no protection leg is left open");
    shut_down(feeds, cancel).await;
    {
        let s = rig.store.lock().unwrap();
        assert_eq!(orders::fill_count(s.conn(), stop_row.id).unwrap(), 1);
        assert_eq!(
            positions::closed_positions(s.conn(), 5).unwrap()[0]
                .position
                .realized_pnl,
            Quote(dec!(-23.955022))
        );
    }
    assert_eq!(rig.mails_with("stop hit"), 1, "exactly one stop-hit mail");
}

#[tokio::test]
async fn a_stream_fill_that_cannot_be_booked_leaves_the_leg_to_the_monitor_which_books_it_once() {
    let rig = Rig::new().await;
    let cancel = CancellationToken::new();
    let feeds = rig.start(&cancel);
    rig.connected().await;
    let (stop, _, trade) = stopped_out(&rig).await;
    // The FILLED report arrives but an earlier partial fill was missed (0.01 of 0.01998 seen),
    // so the exchange's trade list is needed, and the exchange answers garbage.
    rig.binance.faults(|f| f.malformed_next = 50);
    assert!(rig.account.push_event(&stop_fill_report(
        (
            &stop.client_order_id,
            stop.exchange_order_id.as_deref().unwrap()
        ),
        trade.trade_id.as_deref().unwrap(),
        ("48900.00", "0.01000", "0.01998"),
        ("0.4890", "977.022"),
    )));
    let stop_row = || {
        let s = rig.store.lock().unwrap();
        orders::get(s.conn(), &stop.client_order_id)
            .unwrap()
            .unwrap()
    };
    eventually("the leg is reopened for the monitor", || {
        stop_row()
            .error
            .is_some_and(|e| e.contains("not booked yet"))
    })
    .await;
    assert!(stop_row().order.status.is_open());
    assert!(rig.position().position.closed_at.is_none());

    rig.binance.faults(|f| f.malformed_next = 0);
    let monitor = rig.trading.monitor_orders(NOW + 30_000).await.unwrap();
    assert_eq!(monitor.closed.len(), 1, "{monitor:?}");
    assert_eq!(monitor.closed[0].realized_pnl, Quote(dec!(-23.955022)));
    assert_eq!(stop_row().order.status, OrderStatus::Filled);
    let again = rig.trading.monitor_orders(NOW + 60_000).await.unwrap();
    assert!(again.closed.is_empty());
    eventually("one stop-hit mail", || rig.mails_with("stop hit") == 1).await;
    shut_down(feeds, cancel).await;
    assert_eq!(rig.mails_with("stop hit"), 1);
}

#[tokio::test]
async fn prices_come_from_the_stream_and_from_rest_while_the_stream_is_down_or_stale() {
    let rig = Rig::new().await;
    // An open long of 0.01 BTC at 50 000.
    {
        let s = rig.store.lock().unwrap();
        let fill = PositionFill {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            price: Price(dec!(50000)),
            quantity: Qty(dec!(0.01)),
            fee: Quote::ZERO,
            time: NOW,
        };
        let p = PositionService::open(&fill, PositionSide::Long).unwrap();
        positions::insert(s.conn(), CONNECTION, None, &p, NOW).unwrap();
    }
    let cancel = CancellationToken::new();
    let feeds = rig.start(&cancel);
    rig.connected().await;
    let jobs = Jobs::new(rig.trading.clone(), vec![]).with_stream_marks(feeds.freshness.clone());
    let mark = || rig.position().mark_price;

    // A trade on the stream marks the position: unrealised (50 500 − 50 000) × 0.01 = 5.
    assert!(rig.market.send_text(
        r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"50500.00","q":"0.1","f":1,"l":1,"T":1736899200000,"m":false,"M":true}}"#
    ));
    eventually("the stream trade marks the position", || {
        mark() == Some(Price(dec!(50500)))
    })
    .await;
    assert_eq!(rig.position().unrealized_pnl, Quote(dec!(5)));
    // While the stream is fresh, update_prices asks the REST ticker nothing.
    rig.binance.set_price("BTCUSDT", dec!(50200));
    let tickers = rig.binance.requests(TICKER);
    jobs.update_prices(rig.clock.now_ms()).await.unwrap();
    assert_eq!(rig.binance.requests(TICKER), tickers);
    assert_eq!(mark(), Some(Price(dec!(50500))));

    // Stale: no new trade for more than two update_prices intervals (2 × 10 s).
    rig.clock.0.fetch_add(20_001, Ordering::SeqCst);
    jobs.update_prices(rig.clock.now_ms()).await.unwrap();
    assert_eq!(rig.binance.requests(TICKER), tickers + 1);
    assert_eq!(mark(), Some(Price(dec!(50200))));

    // Fresh again after a new trade; then the stream drops: REST takes over at once.
    assert!(rig.market.send_text(
        r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":2,"s":"BTCUSDT","a":6,"p":"50600.00","q":"0.1","f":2,"l":2,"T":1736899260000,"m":false,"M":true}}"#
    ));
    eventually("the new stream trade marks the position", || {
        mark() == Some(Price(dec!(50600)))
    })
    .await;
    jobs.update_prices(rig.clock.now_ms()).await.unwrap();
    assert_eq!(rig.binance.requests(TICKER), tickers + 1, "fresh again");
    assert!(rig.market.drop_connection());
    eventually("the drop makes the symbol stale", || {
        !feeds
            .freshness
            .is_fresh(&Symbol::new("BTCUSDT").unwrap(), rig.clock.now_ms())
    })
    .await;
    rig.binance.set_price("BTCUSDT", dec!(49800));
    jobs.update_prices(rig.clock.now_ms()).await.unwrap();
    assert_eq!(rig.binance.requests(TICKER), tickers + 2);
    assert_eq!(mark(), Some(Price(dec!(49800))));
    // (49 800 − 50 000) × 0.01 = −2
    assert_eq!(rig.position().unrealized_pnl, Quote(dec!(-2)));
    shut_down(feeds, cancel).await;
}

/// The real binary on a testnet Binance connection (keys from the environment): it opens the
/// strategy's market stream and the account stream on the `stream.testnet_*` endpoints, records
/// them healthy, and SIGTERM still stops everything with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_binary_on_a_testnet_connection_streams_and_stops_cleanly_on_sigterm() {
    use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};
    let (binance, market, account) = fakes().await;
    let keys = FakeConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(trademind::cli::DB_FILE);
    {
        let store = Arc::new(Mutex::new(Store::open(&db).unwrap()));
        trademind::store::strategies::add_connection(
            store.lock().unwrap().conn(),
            "bn",
            "binance",
            true,
            None,
            NOW,
        )
        .unwrap();
        crate::daemon::swing_strategy(&store, NOW);
    }
    // REST follows base_url; the stream overrides point at the market and account fakes.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[trading]\nconnection = \"bn\"\n[exchange.binance]\nbase_url = \"{}\"\n\
             [stream]\nws_base_url = \"{}\"\nrest_base_url = \"{}\"\n\
             ws_api_url = \"{}\"\nreconnect_initial_backoff_ms = 20\n",
            binance.base_url(),
            market.ws_base_url(),
            market.rest_base_url(),
            account.url()
        ),
    )
    .unwrap();
    let mut child = trademind_command(dir.path())
        .env("TRADEMIND_BINANCE_BN_API_KEY", &keys.api_key)
        .env("TRADEMIND_BINANCE_BN_API_SECRET", &keys.api_secret)
        .arg("--config")
        .arg(&config)
        .arg("--daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let streaming = tokio::time::timeout(Duration::from_secs(20), async {
        market.wait_for_connections(1).await;
        account.wait_for_subscriptions(1).await;
    })
    .await;
    let recorded = tokio::task::spawn_blocking(move || {
        wait_for_rows(
            &db,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'user_data_stream' AND ok = 1",
            Duration::from_secs(20),
        ) && wait_for_rows(
            &db,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'market_stream:BTCUSDT' AND ok = 1",
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    signal(&child, "TERM");
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert!(
        streaming.is_ok(),
        "the daemon never streamed; stderr:\n{stderr}"
    );
    assert!(recorded, "stream health not in job_runs; stderr:\n{stderr}");
    assert_eq!(
        market.paths(),
        vec![
            "/stream?streams=btcusdt@kline_15m/btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@depth@100ms"
                .to_string()
        ]
    );
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("daemon stopped cleanly"),
        "stderr:\n{stderr}"
    );
}
