//! The live market stream against the scripted fake: kline back-fill across a dropped
//! connection, depth gaps resynced from a REST snapshot until the book equals the fake's,
//! `serverShutdown`, the connection-age and read-timeout reconnects, and a slow bus consumer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received, Subscription};
use trademind::domain::market::{Candle, Interval, OrderBook};
use trademind::domain::money::{Price, Qty};
use trademind::domain::symbol::Symbol;
use trademind::services::market_stream::{
    ClosedCandleSink, MarketStream, RestMarketData, SharedBook, StreamConfig, StreamSpec,
};
use trademind::testkit::fake_binance_ws::FakeBinanceWs;

/// 2023-11-14T22:13:00Z, a minute boundary.
const T0: i64 = 1_699_999_980_000;
const MIN: i64 = 60_000;

#[derive(Clone, Default)]
struct VecSink(Arc<Mutex<Vec<Candle>>>);

impl VecSink {
    fn open_times(&self) -> Vec<i64> {
        self.0.lock().unwrap().iter().map(|c| c.open_time).collect()
    }
}

impl ClosedCandleSink for VecSink {
    async fn store_closed(
        &self,
        _symbol: &Symbol,
        _interval: Interval,
        candles: Vec<Candle>,
    ) -> Result<(), String> {
        self.0.lock().unwrap().extend(candles);
        Ok(())
    }
}

struct Running {
    fake: FakeBinanceWs,
    sink: VecSink,
    book: SharedBook,
    bus: EventBus,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("stream task stops on cancel")
            .unwrap();
    }
}

fn lv(price: i64, qty: i64) -> (Price, Qty) {
    (
        Price::new(Decimal::new(price, 2)),
        Qty::new(Decimal::from(qty)),
    )
}

fn candle(open_time: i64, close: i64) -> Candle {
    Candle {
        open_time,
        open: Price::new(Decimal::from(close - 1)),
        high: Price::new(Decimal::from(close + 1)),
        low: Price::new(Decimal::from(close - 2)),
        close: Price::new(Decimal::from(close)),
        volume: Qty::new(Decimal::new(15, 1)),
    }
}

async fn start(tune: impl FnOnce(&mut StreamConfig)) -> (Running, Subscription) {
    start_with_bus(tune, EventBus::new(100_000)).await
}

async fn start_with_bus(
    tune: impl FnOnce(&mut StreamConfig),
    bus: EventBus,
) -> (Running, Subscription) {
    let fake = FakeBinanceWs::start("BTCUSDT", Interval::M1, 1000)
        .await
        .unwrap();
    let mut config = StreamConfig {
        ws_base_url: fake.ws_base_url(),
        rest_base_url: fake.rest_base_url(),
        reconnect_initial_backoff_ms: 20,
        reconnect_max_backoff_ms: 200,
        read_timeout_secs: 10,
        ..StreamConfig::default()
    };
    tune(&mut config);
    let rest = RestMarketData::new(&config.rest_base_url).unwrap();
    let events = bus.subscribe();
    let book = SharedBook::new(&config);
    let sink = VecSink::default();
    let stream = MarketStream {
        config,
        spec: StreamSpec {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            interval: Interval::M1,
        },
        snapshots: rest.clone(),
        klines: rest,
        candles: sink.clone(),
        bus: bus.clone(),
        book: book.clone(),
    };
    let cancel = CancellationToken::new();
    let run_cancel = cancel.clone();
    let task = tokio::spawn(async move {
        stream.run(run_cancel).await.unwrap();
    });
    fake.wait_for_connections(1).await;
    (
        Running {
            fake,
            sink,
            book,
            bus,
            cancel,
            task,
        },
        events,
    )
}

pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

type Ladders = (u64, Vec<(Price, Qty)>, Vec<(Price, Qty)>);

fn levels(book: &OrderBook) -> Ladders {
    (
        book.last_update_id(),
        book.bids().collect(),
        book.asks().collect(),
    )
}

fn books_match(run: &Running) -> bool {
    let truth = levels(&run.fake.book());
    run.book.read(levels) == Some(truth)
}

fn drain(events: &mut Subscription) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(r) = events.try_recv() {
        if let Received::Event(e) = r {
            out.push(e);
        }
    }
    out
}

#[tokio::test]
async fn subscribes_to_the_four_combined_streams_for_the_symbol() {
    let (run, _events) = start(|_| {}).await;
    assert_eq!(
        run.fake.paths(),
        vec![
            "/stream?streams=btcusdt@kline_1m/btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@depth@100ms"
        ]
    );
    run.stop().await;
}

#[tokio::test]
async fn reconnect_after_a_drop_loses_no_closed_kline() {
    let (run, mut events) = start(|_| {}).await;
    assert!(run.fake.close_kline(candle(T0, 100), true));
    // A forming kline is not stored.
    assert!(run.fake.open_kline(&candle(T0 + MIN, 101)));
    eventually("first closed kline stored", || {
        run.sink.open_times() == [T0]
    })
    .await;

    assert!(run.fake.drop_connection());
    // These two close while the client is away: only REST knows them.
    run.fake.close_kline(candle(T0 + MIN, 101), false);
    run.fake.close_kline(candle(T0 + 2 * MIN, 102), false);
    run.fake.wait_for_connections(2).await;
    run.fake.close_kline(candle(T0 + 3 * MIN, 103), true);

    eventually("all four candles stored in order", || {
        run.sink.open_times() == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    })
    .await;
    let closes: Vec<_> = run.sink.0.lock().unwrap().iter().map(|c| c.close).collect();
    assert_eq!(closes[2], Price::new(Decimal::from(102)));
    let seen = drain(&mut events);
    let closed = seen
        .iter()
        .filter(|e| matches!(e, Event::CandleClosed { .. }))
        .count();
    assert_eq!(closed, 4);
    // Whether they came at reconnect or when the stream showed the hole, both missed candles
    // were back-filled over REST.
    let backfilled: usize = seen
        .iter()
        .map(|e| match e {
            Event::KlinesBackfilled { count, .. } => *count,
            _ => 0,
        })
        .sum();
    // Two closed while away; the third may also have been closed by the time the reconnect
    // back-fill ran, in which case the stream's copy of it is recognised as a duplicate.
    assert!((2..=3).contains(&backfilled), "backfilled {backfilled}");
    run.stop().await;
}

#[tokio::test]
async fn a_depth_gap_triggers_a_resync_and_the_book_then_matches_the_fake() {
    let (run, mut events) = start(|_| {}).await;
    let fake = &run.fake;
    // Book content before the client's first diff comes only from the snapshot.
    fake.depth_update(3, &[lv(10_000, 5), lv(9_990, 2)], &[lv(10_010, 4)], false);
    fake.depth_update(1, &[lv(9_980, 7)], &[lv(10_020, 1)], true);
    eventually("initial sync", || books_match(&run)).await;
    assert_eq!(fake.snapshot_requests(), 1);

    fake.depth_update(2, &[lv(9_990, 0)], &[lv(10_010, 6)], true);
    eventually("live diff applied", || books_match(&run)).await;

    // This event is lost: the next one does not chain.
    fake.depth_update(1, &[lv(9_995, 9)], &[], false);
    fake.depth_update(1, &[lv(9_970, 3)], &[lv(10_010, 0)], true);
    eventually("book rebuilt after the gap", || books_match(&run)).await;
    assert_eq!(fake.snapshot_requests(), 2);
    assert_eq!(run.book.resyncs(), 1);
    // The lost level is in the client's book, learnt from the snapshot.
    assert_eq!(
        run.book.read(|b| b.bid_qty(lv(9_995, 0).0)),
        Some(Some(Qty::new(Decimal::from(9))))
    );
    assert!(
        drain(&mut events)
            .iter()
            .any(|e| matches!(e, Event::BookResyncing { .. }))
    );

    // Out-of-order replay of an old event is ignored; the book keeps tracking the fake.
    let old = fake.book().last_update_id() - 1;
    fake.send_depth_raw(old - 1, old, &[lv(1, 1)]);
    fake.depth_update(1, &[lv(9_960, 1)], &[], true);
    eventually("stale event ignored", || books_match(&run)).await;
    assert_eq!(fake.snapshot_requests(), 2);
    run.stop().await;
}

#[tokio::test]
async fn server_shutdown_causes_a_clean_reconnect_and_a_fresh_book() {
    let (run, mut events) = start(|_| {}).await;
    run.fake.depth_update(1, &[lv(100, 1)], &[lv(200, 1)], true);
    eventually("synced", || books_match(&run)).await;

    assert!(run.fake.server_shutdown());
    run.fake.wait_for_connections(2).await;
    eventually("reconnecting status published", || {
        drain(&mut events).iter().any(|e| {
            matches!(e, Event::StreamStatus { state, detail, .. }
                if *state == trademind::bus::StreamState::Reconnecting && detail.contains("shutdown"))
        })
    })
    .await;
    // The new connection starts a new sync from a new snapshot.
    run.fake.depth_update(1, &[lv(150, 2)], &[], true);
    eventually("synced on the new connection", || books_match(&run)).await;
    assert_eq!(run.fake.snapshot_requests(), 2);
    run.stop().await;
}

#[tokio::test]
async fn an_old_connection_is_replaced_before_the_age_limit() {
    let (run, _events) = start(|c| c.max_connection_age_secs = 1).await;
    tokio::time::timeout(Duration::from_secs(5), run.fake.wait_for_connections(2))
        .await
        .expect("reconnected after max_connection_age_secs");
    run.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_presumed_dead_after_the_read_timeout() {
    let (run, mut events) = start(|c| c.read_timeout_secs = 1).await;
    tokio::time::timeout(Duration::from_secs(5), run.fake.wait_for_connections(2))
        .await
        .expect("reconnected after the read timeout");
    assert!(drain(&mut events).iter().any(|e| {
        matches!(e, Event::StreamStatus { detail, .. } if detail.contains("no frame"))
    }));
    run.stop().await;
}

#[tokio::test]
async fn a_slow_bus_consumer_neither_stalls_the_stream_nor_the_book() {
    let (run, _events) = start_with_bus(|_| {}, EventBus::new(64)).await;
    run.fake.depth_update(1, &[lv(9_000, 1)], &[], true);
    eventually("synced", || books_match(&run)).await;
    let mut slow = run.bus.subscribe();
    for i in 0..5_000i64 {
        run.fake.depth_update(
            1,
            &[lv(10_000 - i % 300, i % 4)],
            &[lv(10_100 + i % 300, 1)],
            true,
        );
    }
    eventually("book caught up", || books_match(&run)).await;
    // The subscriber that never read was told it lagged instead of blocking the publisher.
    assert!(matches!(slow.recv().await, Received::Lagged { .. }));
    run.stop().await;
}

#[tokio::test]
async fn the_fake_rejects_what_binance_rejects() {
    let fake = FakeBinanceWs::start("BTCUSDT", Interval::M1, 1)
        .await
        .unwrap();
    let bad = format!("{}/ws/nonsense", fake.ws_base_url());
    assert!(
        tokio_tungstenite::connect_async(bad.as_str())
            .await
            .is_err()
    );
    let http = reqwest::Client::new();
    let too_deep = http
        .get(format!(
            "{}/api/v3/depth?symbol=BTCUSDT&limit=6000",
            fake.rest_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(too_deep.status(), 400);
    let no_symbol = http
        .get(format!(
            "{}/api/v3/klines?interval=1m",
            fake.rest_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(no_symbol.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_trades_candles_and_the_top_of_book_from_the_configured_stream() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let fake = FakeBinanceWs::start("BTCUSDT", Interval::M1, 500)
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("trademind"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("XDG_CONFIG_HOME", "/nonexistent-trademind-test")
        .env("TRADEMIND_STREAM__WS_BASE_URL", fake.ws_base_url())
        .env("TRADEMIND_STREAM__REST_BASE_URL", fake.rest_base_url())
        .args(["--data-dir", data_dir.path().to_str().unwrap()])
        .args(["watch", "btcusdt", "--depth", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), fake.wait_for_connections(1))
        .await
        .expect("watch connected to the configured stream");
    fake.depth_update(1, &[lv(10_000, 2), lv(9_990, 6)], &[lv(10_010, 2)], true);
    fake.send_text(r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":9,"p":"100.05","q":"0.25","f":1,"l":1,"T":1,"m":false,"M":true}}"#);
    fake.close_kline(candle(T0, 100), true);

    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
        let has = |p: &str| seen.iter().any(|l| l.starts_with(p));
        if has("book") && has("trade") && has("candle") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("trade  buy  0.25 @ 100.05"), "{text}");
    assert!(
        text.contains("candle 1m open 99 high 101 low 98 close 100"),
        "{text}"
    );
    // bid 100.00×2, ask 100.10×2: spread 0.10 / 100.05 = 9.995002 bps → 10.00; imbalance top 2 = (8-2)/10.
    assert!(
        text.contains("book   bid 2 @ 100 | ask 2 @ 100.1 | spread 10.00 bps"),
        "{text}"
    );
    assert!(text.contains("imbalance(top 2) +0.600"), "{text}");
    // The closed candle was recorded in the database.
    let store = trademind::store::Store::open(&data_dir.path().join("trademind.db")).unwrap();
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let stored =
        trademind::store::candles::load_candles(store.conn(), &symbol, Interval::M1).unwrap();
    assert_eq!(stored, vec![candle(T0, 100)]);
}

#[tokio::test]
async fn run_market_streams_stores_candles_keeps_marks_and_the_book_and_stops_on_cancel() {
    use trademind::services::market_stream::{
        ExecutionSink, UserDataSettings, start_market_streams,
    };
    use trademind::store::Store;
    use trademind::store::candles::count_candles;
    use trademind::testkit::fake_binance_ws::FakeBinanceWsApi;

    let fake = FakeBinanceWs::start("BTCUSDT", Interval::M1, 1000)
        .await
        .unwrap();
    let account = FakeBinanceWsApi::start("key", "secret").await.unwrap();
    let config = StreamConfig {
        ws_base_url: fake.ws_base_url(),
        rest_base_url: fake.rest_base_url(),
        ws_api_url: account.url(),
        reconnect_initial_backoff_ms: 20,
        reconnect_max_backoff_ms: 200,
        read_timeout_secs: 10,
        ..StreamConfig::default()
    };
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let cancel = CancellationToken::new();
    let streams = start_market_streams(
        &config,
        &[StreamSpec {
            symbol: symbol.clone(),
            interval: Interval::M1,
        }],
        store.clone(),
        EventBus::new(10_000),
        Some((
            UserDataSettings::new(&config, "key".into(), "secret".into()),
            ExecutionSink::Store(store.clone()),
        )),
        cancel.clone(),
    )
    .unwrap();
    fake.wait_for_connections(1).await;
    account.wait_for_subscriptions(1).await;

    assert!(fake.send_text(
        r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"30000.50","q":"0.1","f":1,"l":1,"T":1700000000000,"m":false,"M":true}}"#
    ));
    assert!(fake.depth_update(1, &[lv(2999900, 3)], &[lv(3000100, 2)], true));
    assert!(fake.close_kline(candle(T0, 100), true));
    let marks = streams.marks.clone();
    eventually("the trade sets the mark", || {
        marks.get(&symbol) == Some((Price::new(Decimal::new(3_000_050, 2)), 1_700_000_000_000))
    })
    .await;
    let book = streams.books[&symbol].clone();
    eventually("the book synced from the snapshot and the diff", || {
        book.read(|b| b.best_bid()).flatten() == Some(lv(2999900, 3))
    })
    .await;
    eventually("the closed candle is in the store", || {
        count_candles(store.lock().unwrap().conn(), &symbol, Interval::M1).unwrap() == 1
    })
    .await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), streams.join())
        .await
        .expect("every stream task stops on cancel")
        .unwrap();
}
