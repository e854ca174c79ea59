//! The demo's Market screen: the replay feeds an order book and trades derived from its candles
//! through the path a live market stream takes (trades as `Event::Trade` on the bus, the book
//! through `tui::poll_shown_book`), so the ladder and the recent-trades pane are filled.

use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received};
use trademind::app::decide::{AnyEngine, rules_engine};
use trademind::app::demo::{Demo, DemoOptions};
use trademind::app::scheduler::Clock;
use trademind::app::snapshot::{self, LoadRequest, Snapshot};
use trademind::cli::demo::demo_settings;
use trademind::config::Settings;
use trademind::domain::market::Interval;
use trademind::domain::symbol::Symbol;
use trademind::domain::trading::TradingMode;
use trademind::tui::action::{Action, Screen};
use trademind::tui::state::App;
use trademind::tui::theme::Theme;
use trademind::tui::update::update;

fn render(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| trademind::tui::view::draw(f, app, Theme::new(false)))
        .unwrap();
    terminal.backend().to_string()
}

#[tokio::test]
async fn the_demo_market_screen_shows_the_replays_book_and_trades() {
    let dir = tempfile::tempdir().unwrap();
    let settings = demo_settings(&Settings::default());
    let bus = EventBus::default();
    // The interface subscribes before the replay starts, as `trademind demo` does.
    let mut events = bus.subscribe();
    let demo = Demo::prepare(
        Arc::new(settings.clone()),
        &dir.path().join("demo.db"),
        bus,
        AnyEngine::Rules(rules_engine(&settings)),
    )
    .unwrap();
    demo.run(
        DemoOptions {
            speed: None,
            candles: Some(3),
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let now_ms = demo.clock.now_ms();

    let symbol = Symbol::new("BTCUSDT").unwrap();
    let mut app = App::new(Snapshot::empty(
        TradingMode::Paper,
        symbol.clone(),
        Interval::H1,
    ));
    update(&mut app, Action::GoTo(Screen::Market));
    let mut trades = 0;
    while let Some(received) = events.try_recv() {
        match received {
            Received::Event(event) => {
                trades += usize::from(matches!(event, Event::Trade { .. }));
                update(
                    &mut app,
                    Action::Bus {
                        event: Box::new(event),
                        at_ms: now_ms,
                    },
                );
            }
            Received::Lagged { missed } => panic!("the test fell {missed} events behind"),
            Received::Closed => break,
        }
    }
    // Four prints a replayed candle: open, both extremes, close.
    assert_eq!(trades, 12, "the replay published no trades on the bus");
    // A reload from the store (as the interface does every few seconds) keeps them.
    let loaded = {
        let store = demo.store.lock().unwrap();
        snapshot::load(
            store.conn(),
            &LoadRequest {
                mode: TradingMode::Paper,
                now_ms,
                symbol: symbol.clone(),
                interval: Interval::H1,
                connection: "paper".into(),
                paper_starting_balance: None,
                symbols: vec![symbol.clone()],
                default_risk_config: snapshot::config_rows(&settings.risk),
                stale_after_ms: 3 * 3_600_000,
            },
        )
        .unwrap()
    };
    update(&mut app, Action::SnapshotLoaded(Box::new(loaded)));
    trademind::tui::poll_shown_book(&mut app, &demo.book);

    let m = &app.snapshot.market;
    assert_eq!(m.recent_trades.len(), 12);
    let last = m.candles.last().expect("the replayed candles are loaded");
    // The newest print is the last candle's close; the book straddles it a tick away.
    assert_eq!(m.recent_trades[0].price, last.close);
    let tick = rust_decimal::Decimal::new(1, 2);
    assert_eq!(m.book.bids[0].price.get(), last.close.get() - tick);
    assert_eq!(m.book.asks[0].price.get(), last.close.get() + tick);

    let text = render(&app, 120, 40);
    assert!(!text.contains("no order book"), "{text}");
    assert!(!text.contains("no trades yet"), "{text}");
    assert!(text.contains("spread 0.02"), "{text}");
    insta::assert_snapshot!("demo_market_120x40", text);
}
