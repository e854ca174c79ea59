//! Whole-screen snapshots of every screen at 80×24 and 160×48 from fixture data, plus the
//! overlays. Text only: colour is checked by the theme's own tests.

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
                for (w, h) in [(80, 24), (160, 48)] {
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
    for (w, h) in [(80, 24), (160, 48)] {
        let text = render(&app, w, h);
        assert!(text.contains("sharpe") && text.contains("Drawdown"));
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
        }
    }
}
