//! Keys and mouse to actions, per screen and per dialog, and the binding list the help overlay
//! shows (kept next to the mapping so the two cannot drift apart unnoticed: a test checks it).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::action::{Action, Screen};
use super::state::{App, Overlay};

/// One line of the help overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub keys: &'static str,
    pub what: &'static str,
}

const fn b(keys: &'static str, what: &'static str) -> Binding {
    Binding { keys, what }
}

pub const GLOBAL: &[Binding] = &[
    b("1-8", "go to screen"),
    b("Tab / S-Tab", "next / previous screen"),
    b("j k / ↓ ↑", "move down / up"),
    b("g G / Home End", "first / last row"),
    b("PgDn PgUp", "page down / up"),
    b("?", "this help"),
    b(":", "command line: backtest pause resume market kill quit"),
    b("p", "pause / resume trading (asks first)"),
    b("r", "reload from the database"),
    b("q", "quit (asks while orders are in flight)"),
];

const POSITIONS: &[Binding] = &[
    b("h l / ← →", "switch positions / orders"),
    b("c", "close the selected position (asks first)"),
    b("P", "protect the selected position again (asks first)"),
    b("x", "cancel the selected order (asks first)"),
];
const TRADES: &[Binding] = &[
    b("f", "cycle strategy filter"),
    b("s", "cycle symbol filter"),
];
const DECISIONS: &[Binding] = &[
    b("j k", "select a decision; details beside or below"),
    b(
        "Enter",
        "open the decision full screen (j k PgUp PgDn scroll)",
    ),
    b("Esc", "back to the list"),
];
const MARKET: &[Binding] = &[b("s", "next symbol"), b("i", "next interval")];
const BACKTESTS: &[Binding] = &[
    b("Enter", "open / close the selected run"),
    b("n", "new backtest form"),
    b("space", "mark / unmark the run for a comparison"),
    b("c", "compare the marked runs side by side"),
    b("Esc", "back to the list"),
];
const RISK: &[Binding] = &[b("K", "kill switch: halt trading (asks first)")];
const LOGS: &[Binding] = &[b("f", "cycle minimum level")];

pub fn screen_bindings(screen: Screen) -> &'static [Binding] {
    match screen {
        Screen::Dashboard => &[],
        Screen::Positions => POSITIONS,
        Screen::Trades => TRADES,
        Screen::Decisions => DECISIONS,
        Screen::Market => MARKET,
        Screen::Backtests => BACKTESTS,
        Screen::Risk => RISK,
        Screen::Logs => LOGS,
    }
}

/// What a key means right now, or `None` when it means nothing here.
pub fn map_key(app: &App, key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match &app.overlay {
        Overlay::Help => return Some(Action::Back),
        Overlay::Confirm(_) => {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Confirm),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Some(Action::Deny),
                _ => None,
            };
        }
        Overlay::Command(_) => {
            // Tab completes; ↑/↓ walk the history of commands run.
            return match key.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::Submit),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Tab => Some(Action::Complete),
                KeyCode::Up => Some(Action::PrevField),
                KeyCode::Down => Some(Action::NextField),
                KeyCode::Char(c) if !ctrl => Some(Action::Input(c)),
                _ => None,
            };
        }
        Overlay::BacktestForm(_) => {
            return match key.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::Submit),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Tab | KeyCode::Down => Some(Action::NextField),
                KeyCode::BackTab | KeyCode::Up => Some(Action::PrevField),
                KeyCode::Char(c) if !ctrl => Some(Action::Input(c)),
                _ => None,
            };
        }
        Overlay::None => {}
    }
    let global = match key.code {
        KeyCode::Char(c @ '1'..='8') => Some(Action::GoTo(Screen::from_index(
            (c as usize) - ('1' as usize),
        ))),
        KeyCode::Tab => Some(Action::NextScreen),
        KeyCode::BackTab => Some(Action::PrevScreen),
        KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
        KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
        KeyCode::Char('h') | KeyCode::Left => Some(Action::Left),
        KeyCode::Char('l') | KeyCode::Right => Some(Action::Right),
        KeyCode::Char('g') | KeyCode::Home => Some(Action::Top),
        KeyCode::Char('G') | KeyCode::End => Some(Action::Bottom),
        KeyCode::PageDown => Some(Action::PageDown),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::Enter => Some(Action::Enter),
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Char('?') => Some(Action::ShowHelp),
        KeyCode::Char(':') => Some(Action::OpenCommandLine),
        KeyCode::Char('p') => Some(Action::TogglePause),
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('r') => Some(Action::Refresh),
        _ => None,
    };
    if global.is_some() {
        return global;
    }
    match (app.screen, key.code) {
        (Screen::Positions, KeyCode::Char('c')) => Some(Action::ClosePosition),
        (Screen::Positions, KeyCode::Char('P')) => Some(Action::ProtectPosition),
        (Screen::Positions, KeyCode::Char('x')) => Some(Action::CancelOrder),
        (Screen::Trades, KeyCode::Char('f')) => Some(Action::CycleStrategyFilter),
        (Screen::Trades, KeyCode::Char('s')) => Some(Action::CycleSymbolFilter),
        (Screen::Market, KeyCode::Char('s')) => Some(Action::CycleMarketSymbol),
        (Screen::Market, KeyCode::Char('i')) => Some(Action::CycleMarketInterval),
        (Screen::Backtests, KeyCode::Char('n')) => Some(Action::NewBacktest),
        (Screen::Backtests, KeyCode::Char(' ')) => Some(Action::ToggleMark),
        (Screen::Backtests, KeyCode::Char('c')) => Some(Action::CompareBacktests),
        (Screen::Risk, KeyCode::Char('K')) => Some(Action::KillSwitch),
        (Screen::Logs, KeyCode::Char('f')) => Some(Action::CycleLogLevel),
        _ => None,
    }
}

/// Width of each tab label in the tab bar, as `view::tabs` lays them out, for mouse clicks.
pub fn tab_at(width: u16, column: u16) -> Option<Screen> {
    let mut x = 0u16;
    for s in Screen::ALL {
        let w = super::view::tab_label(s, width).chars().count() as u16;
        if column >= x && column < x + w {
            return Some(s);
        }
        x += w + 1;
    }
    None
}

/// Wheel scrolls the list; a click on the tab bar (row 1) switches screens.
pub fn map_mouse(app: &App, mouse: MouseEvent, width: u16) -> Option<Action> {
    if app.overlay != Overlay::None {
        return None;
    }
    match mouse.kind {
        MouseEventKind::ScrollDown => Some(Action::Down),
        MouseEventKind::ScrollUp => Some(Action::Up),
        MouseEventKind::Down(_) if mouse.row == 1 => tab_at(width, mouse.column).map(Action::GoTo),
        _ => None,
    }
}
