//! Whole-screen snapshots of every screen at 80×24, 120×40 and 200×60 from fixture data, plus
//! the overlays. Text only: colour is checked by the theme's own tests.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::tui::action::{Action, Screen};
use crate::tui::fixture;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use crate::tui::update::update;

fn render(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| super::draw(f, app, Theme::new(true)))
        .unwrap();
    terminal.backend().to_string()
}

/// The sizes every screen is drawn and snapshotted at: the minimum, a laptop, a big monitor.
const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

fn app_on(screen: Screen) -> App {
    let mut app = App::new(fixture::snapshot());
    update(&mut app, Action::GoTo(screen));
    app
}

macro_rules! screen_snapshots {
    ($($name:ident => $screen:expr),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                let app = app_on($screen);
                for (w, h) in SIZES {
                    let text = render(&app, w, h);
                    assert!(text.contains($screen.title()), "{} title missing at {w}x{h}", $screen.title());
                    assert!(text.contains("PAPER"), "mode missing at {w}x{h}");
                    insta::assert_snapshot!(format!("{}_{w}x{h}", stringify!($name)), text);
                }
            }
        )+
    };
}

screen_snapshots! {
    dashboard => Screen::Dashboard,
    positions => Screen::Positions,
    trades => Screen::Trades,
    decisions => Screen::Decisions,
    market => Screen::Market,
    backtests => Screen::Backtests,
    risk => Screen::Risk,
    logs => Screen::Logs,
}

#[test]
fn backtest_detail_shows_metrics_curves_and_trades() {
    let mut app = app_on(Screen::Backtests);
    update(&mut app, Action::Down); // the completed run #6
    update(&mut app, Action::Enter);
    for (w, h) in SIZES {
        let text = render(&app, w, h);
        assert!(text.contains("Sharpe") && text.contains("Drawdown"));
        insta::assert_snapshot!(format!("backtest_detail_{w}x{h}"), text);
    }
}

#[test]
fn overlays_render_over_the_screen() {
    let mut app = app_on(Screen::Positions);
    update(&mut app, Action::ShowHelp);
    let help = render(&app, 80, 24);
    assert!(help.contains("close the selected position"));
    insta::assert_snapshot!("help_positions_80x24", help);

    let mut app = app_on(Screen::Positions);
    update(&mut app, Action::ClosePosition);
    let confirm = render(&app, 80, 24);
    assert!(confirm.contains("Close the BTCUSDT position"));
    insta::assert_snapshot!("confirm_close_80x24", confirm);

    let mut app = app_on(Screen::Backtests);
    update(&mut app, Action::NewBacktest);
    let form = render(&app, 80, 24);
    assert!(form.contains("New backtest"));
    insta::assert_snapshot!("backtest_form_80x24", form);

    let mut app = app_on(Screen::Dashboard);
    update(&mut app, Action::OpenCommandLine);
    for c in "backtest sma".chars() {
        update(&mut app, Action::Input(c));
    }
    assert!(render(&app, 80, 24).contains(":backtest sma"));
}

#[test]
fn empty_snapshot_renders_every_screen_with_empty_states() {
    use crate::app::snapshot::Snapshot;
    use crate::domain::market::Interval;
    use crate::domain::symbol::Symbol;
    use crate::domain::trading::TradingMode;
    let snap = Snapshot::empty(
        TradingMode::Live,
        Symbol::new("BTCUSDT").unwrap(),
        Interval::H1,
    );
    for screen in Screen::ALL {
        let mut app = App::new(snap.clone());
        update(&mut app, Action::GoTo(screen));
        for (w, h) in [(80, 24), (20, 6), (1, 1)] {
            // Tiny terminals must not panic; the full one shows the title and LIVE.
            let text = render(&app, w, h);
            if w == 80 {
                assert!(
                    text.contains(screen.title()) && text.contains("LIVE"),
                    "{text}"
                );
            }
            // Below the minimum the screen says so rather than cutting everything.
            if w == 20 {
                assert!(text.contains("too small"), "{text}");
            }
        }
    }
}

/// Every number in `text`: (its characters, digits before the point, digits after it).
fn numbers(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<(String, usize, usize)>| {
        let t = cur.trim_end_matches(['.', ',']).to_string();
        if t.chars().any(|c| c.is_ascii_digit()) {
            let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
            let int_digits = int.chars().filter(char::is_ascii_digit).count();
            out.push((t.clone(), int_digits, frac.len()));
        }
        cur.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ((c == '.' || c == ',') && !cur.is_empty()) {
            cur.push(c);
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Every screen and detail view of the fixture, at every size.
fn every_view() -> Vec<(String, String)> {
    let mut views = Vec::new();
    for screen in Screen::ALL {
        for (w, h) in SIZES {
            views.push((format!("{screen:?} {w}x{h}"), render(&app_on(screen), w, h)));
        }
    }
    let mut detail = app_on(Screen::Backtests);
    update(&mut detail, Action::Down);
    update(&mut detail, Action::Enter);
    for (w, h) in SIZES {
        views.push((format!("backtest detail {w}x{h}"), render(&detail, w, h)));
    }
    views
}

#[test]
fn no_screen_shows_an_epoch_timestamp_or_more_decimals_than_tick_or_step() {
    // The fixture stores fees, PnL and metrics unrounded and times as epoch ms, as the engine
    // does; every face must write them at the symbol's tick/step (or a fee's own precision,
    // which for USDT is 4 < the step's 5) and times as dates.
    let app = App::new(fixture::snapshot());
    let max_dp = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|s| {
            let p = app.precision(s);
            p.price_dp().max(p.qty_dp())
        })
        .max()
        .unwrap() as usize;
    for (name, text) in every_view() {
        for (n, int_digits, decimals) in numbers(&text) {
            assert!(
                int_digits < 10,
                "{name}: {n} looks like an epoch timestamp\n{text}"
            );
            assert!(
                decimals <= max_dp,
                "{name}: {n} has {decimals} decimals, more than the tick/step's {max_dp}\n{text}"
            );
        }
        assert!(!text.contains("-0.0"), "{name}: negative zero\n{text}");
        if let Some(cut) = cut_number(&text) {
            panic!("{name}: a number cut at its left ({cut}) reads as another number\n{text}");
        }
        for raw in [
            "nothing_to_do",
            "total_return_pct",
            "STOP_LOSS_L",
            "PARTIALLY_FILLED",
        ] {
            assert!(!text.contains(raw), "{name}: raw code word {raw}\n{text}");
        }
    }
}

/// A number whose leading digits a too-narrow column cut off: `,050.00` after a non-digit.
fn cut_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    (1..chars.len().saturating_sub(3)).find_map(|i| {
        (chars[i] == ','
            && !chars[i - 1].is_ascii_digit()
            && chars[i + 1..i + 4].iter().all(char::is_ascii_digit))
        .then(|| chars[i..(i + 7).min(chars.len())].iter().collect())
    })
}

#[test]
fn the_cut_number_check_finds_a_price_cut_at_its_left() {
    assert_eq!(
        cut_number("│BTCUSD trend ,120.50 x"),
        Some(",120.50".into())
    );
    assert_eq!(cut_number("50,120.50, then 3"), None);
}

#[test]
fn the_number_scanner_finds_epochs_and_long_decimals() {
    // The check above must be able to fail: these are the issue's own examples.
    let found = numbers("end 173665080000 fee 0.4890548 at 51,230.00.");
    assert_eq!(
        found,
        vec![
            ("173665080000".into(), 12, 0),
            ("0.4890548".into(), 1, 7),
            ("51,230.00".into(), 5, 2)
        ]
    );
}

#[test]
fn positions_show_distances_r_multiple_time_in_trade_and_protection() {
    let app = app_on(Screen::Positions);
    let text = render(&app, 200, 60);
    // BTC long 50,120.50 → mark 51,230.00 with the stop at 49,100.00: 1R = 1,020.50, so
    // +1,109.50 is +1.1R; the stop is 2,130.00 (-4.16 %) below the mark.
    assert!(text.contains("+1.1R"), "{text}");
    assert!(text.contains("-4.16%"), "{text}");
    assert!(
        text.contains("49,100.00 → 49,050.00"),
        "trigger and limit\n{text}"
    );
    assert!(text.contains("trigger 49,100.00 limit 49,050.00"), "{text}");
    assert!(
        text.contains("OCO ✓") && text.contains("stop only"),
        "{text}"
    );
    assert!(text.contains("1h 30m"), "time in trade\n{text}");
    assert!(
        text.contains("stop-limit") && !text.contains("STOP_LOSS_L"),
        "{text}"
    );
    // At 80 columns the essentials stay: % to stop, R and protection.
    let narrow = render(&app, 80, 24);
    assert!(
        narrow.contains("+1.1R") && narrow.contains("OCO ✓"),
        "{narrow}"
    );
}

#[test]
fn an_unprotected_position_says_so() {
    let mut snap = fixture::snapshot();
    snap.positions[0].protection = crate::store::account::Protection::Unprotected;
    snap.positions[0].stop = None;
    snap.positions[0].stop_limit = None;
    let mut app = App::new(snap);
    update(&mut app, Action::GoTo(Screen::Positions));
    assert!(render(&app, 80, 24).contains("UNPROTECTED"));
    // Red with colour on.
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal
        .draw(|f| super::draw(f, &app, Theme::new(true)))
        .unwrap();
    let buf = terminal.backend().buffer().clone();
    let red = (0..buf.area.height).any(|y| {
        let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        row.find("UNPROTECTED").is_some_and(|i| {
            let x = row[..i].chars().count() as u16;
            buf[(x, y)].fg == ratatui::style::Color::Red
        })
    });
    assert!(red, "UNPROTECTED must be red");
}

#[test]
fn a_terminal_below_80x24_says_it_is_too_small() {
    let app = app_on(Screen::Dashboard);
    let text = render(&app, 60, 20);
    assert!(text.contains("terminal too small"), "{text}");
    assert!(text.contains("80×24"), "{text}");
}

#[test]
fn the_decision_list_gives_a_reason_and_the_detail_every_check_and_the_sizing() {
    let mut app = app_on(Screen::Decisions);
    // The refused decision's binding check in plain words, in the list.
    for (w, h) in [(80, 24), (200, 60)] {
        let text = render(&app, w, h);
        assert!(
            text.contains("breaker: halted: 3 losses in a row"),
            "{text}"
        );
    }
    update(&mut app, Action::Enter);
    let detail = render(&app, 120, 40);
    for expected in [
        "✓ portfolio heat",
        "✓ min notional",
        "0.05000 BTC × 51,230.00 = 2,561.50 USDT",
        "a stop-out loses 106.50 USDT",
        "reward:risk 0.83:1",
        "tm-entry-btc-42",
        "2026-01-02 · ETF inflows",
        "Prompt",
        "Raw reply",
    ] {
        assert!(detail.contains(expected), "{expected} missing\n{detail}");
    }
    // The hold says what it is in words, not `nothing_to_do`.
    update(&mut app, Action::Back);
    assert!(!render(&app, 80, 24).contains("nothing_to_do"));
    // Esc went back to the list; a refused one opens with its failed check.
    update(&mut app, Action::Down);
    update(&mut app, Action::Enter);
    let refused = render(&app, 80, 24);
    assert!(
        refused.contains("✗ breaker") && refused.contains("Refused because"),
        "{refused}"
    );
}

#[test]
fn risk_shows_limits_with_units_and_source_usage_and_the_three_states() {
    let app = app_on(Screen::Risk);
    let text = render(&app, 200, 60);
    for expected in [
        "Daily loss limit",
        "% of day",
        "database",
        "config",
        "default",
        "Loss streak",
        "1 / 3 losses",
        "Drawdown",
        "1.57% / 15.00%",
        "Pause",
        "Kill switch",
        "Breaker",
        "Next trip",
    ] {
        assert!(text.contains(expected), "{expected} missing\n{text}");
    }
    assert!(!text.contains("max_daily_loss_pct"), "raw key\n{text}");
    // At 80 columns the three states and the bars are still there.
    let narrow = render(&app, 80, 24);
    assert!(
        narrow.contains("Kill switch") && narrow.contains("Heat"),
        "{narrow}"
    );
}

#[test]
fn the_risk_screen_shows_each_strategys_own_breaker_beside_the_accounts() {
    let mut app = app_on(Screen::Risk);
    let text = render(&app, 120, 40);
    assert!(text.contains("Strategy breakers"), "{text}");
    let row = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.contains(&format!("│{name} ")) && l.contains("/15%"))
            .unwrap_or_else(|| panic!("no {name} row\n{text}"))
            .to_string()
    };
    // fast's own breaker halted it on its daily loss, until midnight; trend trades on.
    let fast = row(&text, "fast");
    assert!(fast.contains("HALTED") && fast.contains("4.1/3%"), "{fast}");
    // Beside the row where the Recovers column fits, else on the line under it.
    let under = text
        .lines()
        .skip_while(|l| !l.contains(fast.as_str()))
        .nth(1)
        .unwrap_or_default();
    assert!(
        fast.contains("in 3h 00m") || under.contains("recovers in 3h 00m"),
        "{fast}\n{under}"
    );
    let trend = row(&text, "trend");
    assert!(
        trend.contains("ACTIVE") && trend.contains("1.1/15%"),
        "{trend}"
    );
    // The account's own breaker is still the Breaker line.
    assert!(text.contains("Breaker     ACTIVE"), "{text}");
    app.snapshot.books.clear();
    assert!(!render(&app, 120, 40).contains("Strategy breakers"));
}

#[test]
fn at_80_columns_a_tripped_strategy_breaker_says_in_full_when_it_recovers() {
    let app = app_on(Screen::Risk);
    for (w, h) in [(80, 24), (120, 40)] {
        let text = render(&app, w, h);
        assert!(
            text.contains("in 3h 00m · daily loss"),
            "{w}x{h}: the recovery is cut\n{text}"
        );
    }
    // At 80 columns it goes under fast's row, not beside it.
    let text = render(&app, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    let fast = lines
        .iter()
        .position(|l| l.contains("│fast ") && l.contains("HALTED"))
        .unwrap_or_else(|| panic!("no fast row\n{text}"));
    assert!(
        lines[fast + 1].contains("recovers in 3h 00m"),
        "{}",
        lines[fast + 1]
    );
}

#[test]
fn the_risk_screen_lists_cooldowns_after_stops_with_the_time_left() {
    let mut app = app_on(Screen::Risk);
    let text = render(&app, 200, 60);
    let line = text
        .lines()
        .find(|l| l.contains("Cooldown") && l.contains("ETHUSDT"))
        .unwrap_or_else(|| panic!("no cooldown line\n{text}"));
    // Stopped 30 min ago, 3 one-hour candles: 2h 30m left.
    assert!(line.contains("trend ETHUSDT · 2h 30m left"), "{line}");
    assert!(line.contains("0 of 3 candles after a stop"), "{line}");
    assert!(
        text.contains("Stop cooldown"),
        "the limit is listed\n{text}"
    );
    app.snapshot.stop_protections.clear();
    let none = render(&app, 200, 60);
    assert!(!none.contains("left ·"), "{none}");
}

#[test]
fn p_pauses_and_resumes_from_the_risk_screen_and_the_state_shows_a_countdown() {
    use crate::tui::action::Effect;
    let mut app = app_on(Screen::Risk);
    update(&mut app, Action::TogglePause);
    assert_eq!(
        update(&mut app, Action::Confirm),
        vec![Effect::PauseTrading]
    );
    let mut paused = fixture::snapshot();
    paused.trading = crate::store::account::TradingState::Paused {
        by: Some("tui".into()),
        why: None,
        since: fixture::NOW_MS - 200_000,
    };
    paused.trading_paused = true;
    paused.breaker.state = crate::domain::risk::BreakerState::Halted;
    paused.breaker.reason = "consecutive_losses".into();
    paused.breaker.until = Some(fixture::NOW_MS + 2_820_000);
    update(&mut app, Action::SnapshotLoaded(Box::new(paused)));
    let text = render(&app, 200, 60);
    assert!(text.contains("PAUSED by tui 3m 20s ago"), "{text}");
    assert!(text.contains("recovers in 47m 00s"), "{text}");
    assert!(text.contains("consecutive losses"), "{text}");
    update(&mut app, Action::TogglePause);
    assert_eq!(
        update(&mut app, Action::Confirm),
        vec![Effect::ResumeTrading]
    );
}

#[test]
fn the_backtest_form_lists_the_strategies_and_shows_its_error_whole() {
    let mut app = app_on(Screen::Backtests);
    update(&mut app, Action::NewBacktest);
    if let crate::tui::state::Overlay::BacktestForm(form) = &mut app.overlay {
        form.error = Some(
            "strategy sma-cross has no parameter \"fsat\"; it takes: fast, slow, stop_pct, take_pct (see the list above)"
                .into(),
        );
    }
    let text = render(&app, 80, 24);
    for name in [
        "sma-cross",
        "rsi-reversion",
        "macd",
        "rsi-macd",
        "oversold=30",
    ] {
        assert!(text.contains(name), "{name} missing\n{text}");
    }
    // Wrapped, so its end is on screen too.
    assert!(text.contains("list above)"), "{text}");
    assert!(text.contains("fsat"), "{text}");
}

#[test]
fn empty_screens_name_the_next_command() {
    use crate::app::snapshot::Snapshot;
    use crate::domain::market::Interval;
    use crate::domain::symbol::Symbol;
    use crate::domain::trading::TradingMode;
    let snap = Snapshot::empty(
        TradingMode::Paper,
        Symbol::new("BTCUSDT").unwrap(),
        Interval::H1,
    );
    let on = |screen| {
        let mut app = App::new(snap.clone());
        update(&mut app, Action::GoTo(screen));
        render(&app, 200, 60)
    };
    assert!(on(Screen::Dashboard).contains("`trademind demo`"));
    assert!(on(Screen::Decisions).contains("`trademind strategy add`"));
    assert!(on(Screen::Backtests).contains("`trademind data fetch BTCUSDT 1h"));
    assert!(on(Screen::Positions).contains("`trademind demo`"));
}

#[test]
fn inside_the_demo_the_empty_screens_do_not_point_to_the_demo() {
    use crate::app::snapshot::Snapshot;
    use crate::domain::market::Interval;
    use crate::domain::symbol::Symbol;
    use crate::domain::trading::TradingMode;
    let snap = Snapshot::empty(
        TradingMode::Paper,
        Symbol::new("BTCUSDT").unwrap(),
        Interval::H1,
    );
    for screen in [
        Screen::Dashboard,
        Screen::Positions,
        Screen::Decisions,
        Screen::Logs,
    ] {
        let mut app = App::new(snap.clone());
        app.in_demo = true;
        update(&mut app, Action::GoTo(screen));
        for (w, h) in [(80, 24), (200, 60)] {
            let text = render(&app, w, h);
            assert!(
                !text.contains("trademind demo"),
                "{screen:?} {w}x{h}\n{text}"
            );
            assert!(text.contains("the demo's"), "{screen:?} {w}x{h}\n{text}");
        }
    }
}

#[test]
fn the_activity_feed_lists_fills_stop_hits_refusals_breaker_changes_and_alerts() {
    let mut app = app_on(Screen::Logs);
    app.heartbeats
        .insert("monitor_orders".into(), fixture::NOW_MS - 3_000);
    let text = render(&app, 200, 60);
    for expected in [
        "Activity",
        "STOP HIT",
        "TARGET",
        "SELL 0.50000 ETHUSDT at 3,000.00",
        "REFUSED",
        "SELL ETHUSDT: breaker: halted: 3 losses in a row",
        "BREAKER",
        "ALERT",
        "insufficient balance",
        "monitor_orders last run 3s ago",
    ] {
        assert!(text.contains(expected), "{expected} missing\n{text}");
    }
}

#[test]
fn empty_state_snapshots_of_every_screen() {
    // A fresh database: what a new trader sees first, at every size.
    use crate::app::snapshot::Snapshot;
    use crate::domain::market::Interval;
    use crate::domain::symbol::Symbol;
    use crate::domain::trading::TradingMode;
    let snap = Snapshot::empty(
        TradingMode::Paper,
        Symbol::new("BTCUSDT").unwrap(),
        Interval::H1,
    );
    for screen in Screen::ALL {
        let mut app = App::new(snap.clone());
        update(&mut app, Action::GoTo(screen));
        for (w, h) in SIZES {
            let name = format!("empty_{}_{w}x{h}", screen.long().to_lowercase());
            insta::assert_snapshot!(name, render(&app, w, h));
        }
    }
}

/// The fixture's runs plus #8, an LLM engine's run on #6's candles that cost $25 of calls.
fn app_with_two_comparable_runs() -> App {
    let mut app = app_on(Screen::Backtests);
    let mut llm = app.snapshot.backtests[1].clone();
    llm.id = 8;
    llm.strategy = "llm:grok".into();
    llm.params = "model=grok".into();
    llm.llm_cost_usd = rust_decimal::Decimal::new(25, 0);
    if let Some(m) = &mut llm.metrics {
        m.total_return_pct = 9.5;
        m.sharpe = 0.91;
        m.trades = 10;
    }
    llm.equity_curve = llm
        .equity_curve
        .iter()
        .enumerate()
        .map(|(i, e)| e - (i % 7) as f64 * 3.0)
        .collect();
    app.snapshot.backtests.insert(0, llm);
    app
}

#[test]
fn marked_runs_open_side_by_side_with_the_return_net_of_llm_cost() {
    let mut app = app_with_two_comparable_runs();
    // Rows: #8, #7, #6, #5. Mark #6 first (the baseline), then #8; c opens the comparison.
    for action in [
        Action::Down,
        Action::Down,
        Action::ToggleMark,
        Action::Top,
        Action::ToggleMark,
    ] {
        update(&mut app, action);
    }
    let list = render(&app, 120, 40);
    assert!(list.contains("2 marked · c compare"), "{list}");
    assert!(list.contains("✓#6") && list.contains("✓#8"), "{list}");
    update(&mut app, Action::CompareBacktests);
    for (w, h) in SIZES {
        let text = render(&app, w, h);
        for expected in [
            "comparing #6 #8 against #6",
            "sma-cross",
            "llm:grok",
            "Sharpe",
            // The detail's own formatting of #6's return, and #8's net of $25 on $10,000.
            "+14.20%",
            "+9.25%",
            "$25.0000",
            "$2.5000",
            "Δ net return",
            "baseline",
        ] {
            assert!(
                text.contains(expected),
                "{expected} missing at {w}x{h}\n{text}"
            );
        }
        insta::assert_snapshot!(format!("backtest_compare_{w}x{h}"), text);
    }
    // Esc goes back to the list, the marks kept.
    update(&mut app, Action::Back);
    assert!(render(&app, 120, 40).contains("2 marked"));
}

#[test]
fn the_header_at_80_columns_never_cuts_its_time() {
    // Seen at 80×24 on a fresh data dir: "… ACTIVE   no daemon 04:54:3".
    let mut app = app_on(Screen::Dashboard);
    app.snapshot.daemon = Some(crate::store::heartbeat::DaemonPresence::NotRunning {
        last_seen_ms: None,
        stopped_cleanly: false,
    });
    for w in [80u16, 84, 88, 120] {
        let text = render(&app, w, 24);
        let header = text.lines().next().unwrap().trim_matches('"').trim_end();
        let last = header.split_whitespace().last().unwrap();
        let whole = !last.contains(':') || last.len() == 5 || last.len() == 8;
        assert!(whole, "{w} columns: the header ends {last:?}: {header}");
        if w >= 120 {
            assert!(last.contains(':'), "{w} columns: no time: {header}");
        }
    }
    assert_eq!(
        super::without_seconds(" 04:54:30").as_deref(),
        Some(" 04:54")
    );
    assert_eq!(super::without_seconds(" Jan 05"), None);
}
