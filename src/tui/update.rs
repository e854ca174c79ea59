//! The pure update: `update(app, action)` changes the state and returns the effects the caller
//! must carry out. No I/O, no clock: everything it needs arrives in the action.

use crate::app::bus::Event;
use crate::app::snapshot::{BreakerChange, ComponentHealth, LogLevel, LogLine, Snapshot};
use crate::domain::Quote;
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;

use super::action::{Action, BacktestRequest, Effect, Screen};
use super::state::{
    App, BacktestForm, ConfirmDialog, MAX_LOG_LINES, Overlay, PositionsFocus, StatusKind,
    StatusLine,
};

const PAGE: usize = 10;

pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    // An action that changes nothing visible must not clear a frame still waiting to be drawn.
    let waiting = app.dirty;
    app.dirty = true;
    let effects = apply(app, action);
    app.dirty |= waiting;
    effects
}

fn apply(app: &mut App, action: Action) -> Vec<Effect> {
    // Background reports apply whatever dialog is open.
    match action {
        Action::SnapshotLoaded(snap) => {
            apply_snapshot(app, *snap);
            return Vec::new();
        }
        Action::LoadFailed(msg) => {
            app.market_loading = None;
            set_status(app, StatusKind::Error, msg);
            return Vec::new();
        }
        Action::Bus { event, at_ms } => return apply_event(app, *event, at_ms),
        Action::Lagged(missed) => {
            set_status(
                app,
                StatusKind::Warning,
                format!("the interface fell behind and skipped {missed} events; reloading"),
            );
            return vec![Effect::Refresh];
        }
        Action::Status(text) => {
            set_status(app, StatusKind::Info, text);
            return Vec::new();
        }
        Action::Warn(text) => {
            set_status(app, StatusKind::Warning, text);
            return Vec::new();
        }
        Action::BookLevels { symbol, book } => {
            let m = &mut app.snapshot.market;
            // Only a change of the shown book is worth a frame.
            if m.symbol != symbol || m.book == book {
                app.dirty = false;
            } else {
                m.book = book;
            }
            return Vec::new();
        }
        Action::Resized => return Vec::new(),
        _ => {}
    }
    match std::mem::take(&mut app.overlay) {
        Overlay::None => on_screen(app, action),
        Overlay::Help => {
            // Any key closes help; navigation keys are not swallowed twice.
            Vec::new()
        }
        Overlay::Confirm(dialog) => match action {
            Action::Confirm => {
                let effect = dialog.effect;
                if effect == Effect::Quit {
                    app.should_quit = true;
                }
                vec![effect]
            }
            Action::Deny | Action::Back => {
                set_status(app, StatusKind::Info, "cancelled".into());
                Vec::new()
            }
            _ => {
                app.overlay = Overlay::Confirm(dialog);
                Vec::new()
            }
        },
        Overlay::Command(mut line) => match action {
            Action::Input(c) => {
                line.push(c);
                app.overlay = Overlay::Command(line);
                Vec::new()
            }
            Action::Backspace => {
                if line.pop().is_some() {
                    app.overlay = Overlay::Command(line);
                }
                Vec::new()
            }
            Action::Submit => {
                let trimmed = line.trim().to_string();
                if !trimmed.is_empty() && app.command_history.last() != Some(&trimmed) {
                    app.command_history.push(trimmed);
                }
                app.history_pos = None;
                run_command(app, &line)
            }
            Action::PrevField => {
                let n = app.command_history.len();
                if n > 0 {
                    let pos = app.history_pos.map_or(n - 1, |p| p.saturating_sub(1));
                    app.history_pos = Some(pos);
                    line = app.command_history[pos].clone();
                }
                app.overlay = Overlay::Command(line);
                Vec::new()
            }
            Action::NextField => {
                match app.history_pos {
                    Some(p) if p + 1 < app.command_history.len() => {
                        app.history_pos = Some(p + 1);
                        line = app.command_history[p + 1].clone();
                    }
                    Some(_) => {
                        app.history_pos = None;
                        line.clear();
                    }
                    None => {}
                }
                app.overlay = Overlay::Command(line);
                Vec::new()
            }
            Action::Complete => {
                let (done, choices) = complete_command(app, &line);
                if choices.len() > 1 {
                    set_status(app, StatusKind::Info, choices.join("  "));
                }
                app.overlay = Overlay::Command(done);
                Vec::new()
            }
            Action::Back => {
                app.history_pos = None;
                Vec::new()
            }
            _ => {
                app.overlay = Overlay::Command(line);
                Vec::new()
            }
        },
        Overlay::BacktestForm(mut form) => match action {
            Action::Input(c) => {
                form.field_mut(form.focus).push(c);
                form.error = None;
                app.overlay = Overlay::BacktestForm(form);
                Vec::new()
            }
            Action::Backspace => {
                form.field_mut(form.focus).pop();
                app.overlay = Overlay::BacktestForm(form);
                Vec::new()
            }
            Action::NextField | Action::Down => {
                form.focus = (form.focus + 1) % BacktestForm::LABELS.len();
                app.overlay = Overlay::BacktestForm(form);
                Vec::new()
            }
            Action::PrevField | Action::Up => {
                form.focus =
                    (form.focus + BacktestForm::LABELS.len() - 1) % BacktestForm::LABELS.len();
                app.overlay = Overlay::BacktestForm(form);
                Vec::new()
            }
            Action::Submit => match parse_form(&form) {
                Ok(req) => start_backtest(app, req),
                Err(e) => {
                    form.error = Some(e);
                    app.overlay = Overlay::BacktestForm(form);
                    Vec::new()
                }
            },
            Action::Back => Vec::new(),
            _ => {
                app.overlay = Overlay::BacktestForm(form);
                Vec::new()
            }
        },
    }
}

/// Ask for another market; the load that brings it answers the `loading…` line.
fn switch_market(app: &mut App, symbol: Symbol, interval: Interval) -> Vec<Effect> {
    app.market_loading = Some((symbol.clone(), interval));
    vec![Effect::SwitchMarket { symbol, interval }]
}

/// What the loaded market shows, in place of `loading…`: how many candles and from where, or
/// the exact command that stores them.
fn market_outcome(snap: &Snapshot) -> (StatusKind, String) {
    let m = &snap.market;
    match (m.candles.len(), m.resampled_from) {
        (0, _) => (StatusKind::Warning, missing_candles_hint(snap)),
        (n, Some(from)) => (
            StatusKind::Info,
            format!(
                "{} {}: {n} candles built from the stored {from} ones",
                m.symbol, m.interval
            ),
        ),
        (n, None) => (
            StatusKind::Info,
            format!("{} {}: {n} candles", m.symbol, m.interval),
        ),
    }
}

/// "No candles" with the command that fetches them, from a date that fills the chart.
pub fn missing_candles_hint(snap: &Snapshot) -> String {
    let m = &snap.market;
    let lookback = m
        .interval
        .millis()
        .saturating_mul(crate::app::snapshot::HISTORY_ROWS as i64);
    let from = chrono::DateTime::from_timestamp_millis(snap.as_of_ms.saturating_sub(lookback))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "2025-01-01".into());
    format!(
        "no {sym} {iv} candles stored; fetch them: trademind data fetch {sym} {iv} --from {from}",
        sym = m.symbol,
        iv = m.interval
    )
}

fn set_status(app: &mut App, kind: StatusKind, text: String) {
    app.status = Some(StatusLine { kind, text });
}

fn confirm(app: &mut App, question: String, effect: Effect) {
    app.overlay = Overlay::Confirm(ConfirmDialog { question, effect });
}

fn row_count(app: &App, screen: Screen) -> usize {
    let s = &app.snapshot;
    match screen {
        Screen::Dashboard => s.positions.len(),
        Screen::Positions => match app.positions_focus {
            PositionsFocus::Positions => s.positions.len(),
            PositionsFocus::Orders => s.open_orders.len(),
        },
        Screen::Trades => app.visible_trades().len(),
        Screen::Decisions => s.decisions.len(),
        Screen::Market => s.market.recent_trades.len(),
        Screen::Backtests => s.backtests.len(),
        Screen::Risk => s.breaker.history.len(),
        Screen::Logs => app.visible_logs().len(),
    }
}

fn cursor(app: &mut App) -> &mut usize {
    if app.screen == Screen::Positions && app.positions_focus == PositionsFocus::Orders {
        &mut app.order_selected
    } else {
        &mut app.selected[app.screen.index()]
    }
}

fn move_cursor(app: &mut App, delta: isize) {
    let n = row_count(app, app.screen);
    let c = cursor(app);
    if n == 0 {
        *c = 0;
        return;
    }
    let next = (*c as isize + delta).clamp(0, n as isize - 1);
    *c = next as usize;
}

fn clamp_cursors(app: &mut App) {
    for screen in Screen::ALL {
        let n = match screen {
            Screen::Positions => app.snapshot.positions.len(),
            other => row_count(app, other),
        };
        let c = &mut app.selected[screen.index()];
        *c = (*c).min(n.saturating_sub(1));
    }
    app.order_selected = app
        .order_selected
        .min(app.snapshot.open_orders.len().saturating_sub(1));
}

fn apply_snapshot(app: &mut App, mut snap: Snapshot) {
    // Log lines come from the bus, not the store: keep them across reloads.
    if snap.logs.is_empty() {
        snap.logs = std::mem::take(&mut app.snapshot.logs);
    }
    // Progress also lives on the bus until the backtest row is finished.
    for b in &mut snap.backtests {
        if b.status == "running"
            && let Some(old) = app.snapshot.backtests.iter().find(|o| o.id == b.id)
        {
            b.progress = old.progress.or(b.progress);
        }
    }
    // The cursor follows the row it was on, not its index: new decisions, runs and orders
    // arrive at the top, and the detail shown must not drift to another row under the reader.
    // At the top with nothing open, the cursor follows the newest decision instead.
    let decision = app
        .snapshot
        .decisions
        .get(app.selected(Screen::Decisions))
        .filter(|_| app.selected(Screen::Decisions) > 0 || app.decision_detail)
        .map(|d| d.id);
    let backtest = app
        .snapshot
        .backtests
        .get(app.selected(Screen::Backtests))
        .map(|b| b.id);
    let position = app
        .snapshot
        .positions
        .get(app.selected(Screen::Positions))
        .map(|p| p.symbol.clone());
    let order = app
        .snapshot
        .open_orders
        .get(app.order_selected)
        .map(|o| o.client_order_id.clone());
    // The market asked for has arrived: say what it holds (a reload of another market, begun
    // before the switch, leaves `loading…` waiting for the right one).
    if let Some((symbol, interval)) = &app.market_loading
        && snap.market.symbol == *symbol
        && snap.market.interval == *interval
    {
        let (kind, text) = market_outcome(&snap);
        set_status(app, kind, text);
        app.market_loading = None;
    }
    // The book and the trades come from the market stream (or the demo's replay), never from
    // the store: a reload keeps them while the same symbol is shown.
    if snap.market.symbol == app.snapshot.market.symbol {
        let shown = &mut app.snapshot.market;
        if snap.market.book.bids.is_empty() && snap.market.book.asks.is_empty() {
            snap.market.book = std::mem::take(&mut shown.book);
        }
        if snap.market.recent_trades.is_empty() {
            snap.market.recent_trades = std::mem::take(&mut shown.recent_trades);
        }
    }
    app.snapshot = snap;
    let s = &app.snapshot;
    if let Some(i) = decision.and_then(|id| s.decisions.iter().position(|d| d.id == id)) {
        app.selected[Screen::Decisions.index()] = i;
    }
    if let Some(i) = backtest.and_then(|id| s.backtests.iter().position(|b| b.id == id)) {
        app.selected[Screen::Backtests.index()] = i;
    }
    if let Some(i) = position.and_then(|sym| s.positions.iter().position(|p| p.symbol == sym)) {
        app.selected[Screen::Positions.index()] = i;
    }
    if let Some(i) = order.and_then(|id| s.open_orders.iter().position(|o| o.client_order_id == id))
    {
        app.order_selected = i;
    }
    clamp_cursors(app);
}

fn cycle<T: Clone + PartialEq>(current: &Option<T>, choices: &[T]) -> Option<T> {
    match current {
        None => choices.first().cloned(),
        Some(c) => {
            let i = choices.iter().position(|x| x == c);
            match i {
                Some(i) if i + 1 < choices.len() => Some(choices[i + 1].clone()),
                _ => None,
            }
        }
    }
}

fn unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn on_screen(app: &mut App, action: Action) -> Vec<Effect> {
    // A decision opened full screen: the cursor keys scroll its detail.
    if app.screen == Screen::Decisions && app.decision_detail {
        let by = match action {
            Action::Down => Some(1),
            Action::Up => Some(-1),
            Action::PageDown => Some(PAGE as i32),
            Action::PageUp => Some(-(PAGE as i32)),
            Action::Top => Some(-i32::from(app.detail_scroll)),
            _ => None,
        };
        if let Some(by) = by {
            app.detail_scroll = (i32::from(app.detail_scroll) + by).clamp(0, 2000) as u16;
            return Vec::new();
        }
    }
    match action {
        Action::NextScreen => app.screen = Screen::from_index(app.screen.index() + 1),
        Action::PrevScreen => {
            app.screen = Screen::from_index(app.screen.index() + Screen::ALL.len() - 1)
        }
        Action::GoTo(s) => app.screen = s,
        Action::Up => move_cursor(app, -1),
        Action::Down => move_cursor(app, 1),
        Action::PageUp => move_cursor(app, -(PAGE as isize)),
        Action::PageDown => move_cursor(app, PAGE as isize),
        Action::Top => *cursor(app) = 0,
        Action::Bottom => {
            let n = row_count(app, app.screen);
            *cursor(app) = n.saturating_sub(1);
        }
        Action::Left | Action::Right if app.screen == Screen::Positions => {
            app.positions_focus = match app.positions_focus {
                PositionsFocus::Positions => PositionsFocus::Orders,
                PositionsFocus::Orders => PositionsFocus::Positions,
            }
        }
        Action::Enter if app.screen == Screen::Backtests => {
            app.backtest_detail = !app.snapshot.backtests.is_empty() && !app.backtest_detail;
            app.backtest_comparison = None;
        }
        Action::ToggleMark if app.screen == Screen::Backtests => super::compare::toggle_mark(app),
        Action::CompareBacktests if app.screen == Screen::Backtests => super::compare::open(app),
        Action::Enter if app.screen == Screen::Decisions => {
            app.decision_detail = !app.snapshot.decisions.is_empty() && !app.decision_detail;
            app.detail_scroll = 0;
        }
        Action::Back => {
            app.backtest_detail = false;
            app.backtest_comparison = None;
            app.decision_detail = false;
            app.detail_scroll = 0;
            app.status = None;
        }
        Action::ShowHelp => app.overlay = Overlay::Help,
        Action::OpenCommandLine => app.overlay = Overlay::Command(String::new()),
        Action::TogglePause => {
            if app.snapshot.trading_paused {
                confirm(app, "Resume trading?".into(), Effect::ResumeTrading)
            } else {
                confirm(
                    app,
                    "Pause trading? No new entries until resumed.".into(),
                    Effect::PauseTrading,
                )
            }
        }
        Action::Quit => {
            let n = app.snapshot.orders_in_flight();
            if n > 0 {
                confirm(
                    app,
                    format!("{n} order(s) in flight. Quit anyway? They stay on the exchange."),
                    Effect::Quit,
                )
            } else {
                app.should_quit = true;
                return vec![Effect::Quit];
            }
        }
        Action::ClosePosition if app.screen == Screen::Positions => {
            if let Some(p) = app.snapshot.positions.get(app.selected(Screen::Positions)) {
                let symbol = p.symbol.clone();
                confirm(
                    app,
                    format!("Close the {} position ({} at market)?", symbol, p.qty),
                    Effect::ClosePosition {
                        symbol,
                        book: p.book_id,
                    },
                )
            }
        }
        Action::ProtectPosition if app.screen == Screen::Positions => {
            if let Some(p) = app.snapshot.positions.get(app.selected(Screen::Positions)) {
                let symbol = p.symbol.clone();
                confirm(
                    app,
                    format!(
                        "Protect the {symbol} position ({}, book {}) again from its stored stop \
                         and target?",
                        p.qty, p.book
                    ),
                    Effect::ProtectPosition {
                        symbol,
                        book: p.book_id,
                    },
                )
            }
        }
        Action::CancelOrder
            if app.screen == Screen::Positions && app.positions_focus != PositionsFocus::Orders =>
        {
            set_status(
                app,
                StatusKind::Info,
                "select an order first: l moves to the orders table".into(),
            )
        }
        Action::CancelOrder if app.screen == Screen::Positions => {
            if let Some(o) = app.snapshot.open_orders.get(app.order_selected) {
                let effect = Effect::CancelOrder {
                    symbol: o.symbol.clone(),
                    client_order_id: o.client_order_id.clone(),
                };
                let sibling = if o.in_order_list {
                    " It is one leg of an OCO: the other leg is cancelled too and the position is left UNPROTECTED."
                } else {
                    ""
                };
                confirm(
                    app,
                    format!(
                        "Cancel order {} ({} {})?{sibling}",
                        o.client_order_id, o.side, o.symbol
                    ),
                    effect,
                )
            }
        }
        Action::NewBacktest if app.screen == Screen::Backtests => {
            let s = &app.snapshot;
            app.overlay = Overlay::BacktestForm(BacktestForm {
                // A strategy the backtester knows: the built-ins are what it runs.
                strategy: crate::domain::backtest::strategies::BUILT_IN[0].to_string(),
                symbol: s.market.symbol.as_str().to_string(),
                interval: s.market.interval.as_str().to_string(),
                from: String::new(),
                to: String::new(),
                params: String::new(),
                focus: 0,
                error: None,
            })
        }
        Action::KillSwitch if app.screen == Screen::Risk => confirm(
            app,
            "Engage the kill switch? Trading halts and open orders are cancelled.".into(),
            Effect::EngageKillSwitch,
        ),
        Action::CycleStrategyFilter if app.screen == Screen::Trades => {
            let choices = unique(
                app.snapshot
                    .trades
                    .iter()
                    .map(|t| t.strategy.clone())
                    .collect(),
            );
            app.trades_strategy = cycle(&app.trades_strategy, &choices);
            app.selected[Screen::Trades.index()] = 0;
        }
        Action::CycleSymbolFilter if app.screen == Screen::Trades => {
            let choices = unique(
                app.snapshot
                    .trades
                    .iter()
                    .map(|t| t.symbol.as_str().to_string())
                    .collect(),
            );
            app.trades_symbol = cycle(&app.trades_symbol, &choices);
            app.selected[Screen::Trades.index()] = 0;
        }
        Action::CycleLogLevel if app.screen == Screen::Logs => {
            app.log_min_level = match app.log_min_level {
                LogLevel::Trace => LogLevel::Debug,
                LogLevel::Debug => LogLevel::Info,
                LogLevel::Info => LogLevel::Warn,
                LogLevel::Warn => LogLevel::Error,
                LogLevel::Error => LogLevel::Trace,
            };
            app.selected[Screen::Logs.index()] = 0;
        }
        Action::CycleMarketSymbol if app.screen == Screen::Market => {
            let m = &app.snapshot.market;
            let symbols = &app.snapshot.symbols;
            let next = cycle(&Some(m.symbol.clone()), symbols)
                .or_else(|| symbols.first().cloned())
                .unwrap_or_else(|| m.symbol.clone());
            if next != m.symbol {
                let interval = m.interval;
                return switch_market(app, next, interval);
            }
        }
        Action::CycleMarketInterval if app.screen == Screen::Market => {
            let m = &app.snapshot.market;
            let i = Interval::ALL
                .iter()
                .position(|x| *x == m.interval)
                .unwrap_or(0);
            let next = Interval::ALL[(i + 1) % Interval::ALL.len()];
            let symbol = m.symbol.clone();
            return switch_market(app, symbol, next);
        }
        Action::Refresh => return vec![Effect::Refresh],
        _ => app.dirty = false,
    }
    Vec::new()
}

/// The `:` line's commands, for completion.
const COMMANDS: [&str; 8] = [
    "backtest", "help", "kill", "market", "pause", "quit", "refresh", "resume",
];

/// Complete the word being typed on the `:` line: a command, then a strategy after `backtest`
/// or a symbol after `market`. Returns the new line and every candidate for the word.
fn complete_command(app: &App, line: &str) -> (String, Vec<String>) {
    let (head, word) = match line.rfind(' ') {
        Some(i) => (&line[..=i], &line[i + 1..]),
        None => ("", line),
    };
    let first = line.split_whitespace().next().unwrap_or("");
    let pool: Vec<String> = if head.is_empty() {
        COMMANDS.iter().map(|c| c.to_string()).collect()
    } else if first == "backtest" && head.trim() == "backtest" {
        crate::domain::backtest::strategies::BUILT_IN
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else if first == "market" && head.trim() == "market" {
        app.snapshot
            .symbols
            .iter()
            .map(|s| s.as_str().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let choices: Vec<String> = pool
        .into_iter()
        .filter(|c| c.starts_with(&word.to_ascii_lowercase()) || c.starts_with(word))
        .collect();
    let done = match choices.as_slice() {
        [] => line.to_string(),
        [one] => format!("{head}{one} "),
        many => {
            // The longest prefix every candidate shares.
            let mut prefix = many[0].clone();
            for c in &many[1..] {
                while !c.starts_with(&prefix) {
                    prefix.pop();
                }
            }
            format!(
                "{head}{}",
                if prefix.len() > word.len() {
                    &prefix
                } else {
                    word
                }
            )
        }
    };
    (done, choices)
}

/// Check a backtest request the way the backtester will, before it is queued: an unknown
/// strategy, an unknown parameter or one out of its range is said at once, whole.
pub fn validate_backtest(req: &BacktestRequest) -> Result<(), String> {
    use crate::domain::backtest::strategies::{StrategySpec, build_strategy};
    let mut params = std::collections::BTreeMap::new();
    for (k, v) in &req.params {
        let value: f64 = v
            .parse()
            .map_err(|_| format!("parameter {k}={v} is not a number"))?;
        params.insert(k.clone(), value);
    }
    build_strategy(&StrategySpec {
        name: req.strategy.clone(),
        params,
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn start_backtest(app: &mut App, req: BacktestRequest) -> Vec<Effect> {
    if let Err(e) = validate_backtest(&req) {
        set_status(app, StatusKind::Error, format!("backtest not started: {e}"));
        return Vec::new();
    }
    set_status(
        app,
        StatusKind::Info,
        format!(
            "backtest {} {} {} requested",
            req.strategy, req.symbol, req.interval
        ),
    );
    app.screen = Screen::Backtests;
    vec![Effect::StartBacktest(req)]
}

fn parse_params(words: &[&str]) -> Result<Vec<(String, String)>, String> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("parameter {w:?} is not key=value")),
        })
        .collect()
}

/// A backtest's date range as typed (empty: unbounded), read as the CLI's `--from`/`--to`
/// are; `from` must come before `to`.
fn date_range(from: &str, to: &str) -> Result<(Option<i64>, Option<i64>), String> {
    let read = |name: &str, text: &str| -> Result<Option<i64>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        crate::app::backtest::parse_time(text)
            .map(Some)
            .map_err(|e| format!("{name} {text:?}: {e}"))
    };
    let (from_ms, to_ms) = (read("from", from)?, read("to", to)?);
    if let (Some(f), Some(t)) = (from_ms, to_ms)
        && f >= t
    {
        return Err(format!(
            "from {} is not before to {}: the range would hold no candles",
            crate::format::timestamp(f),
            crate::format::timestamp(t)
        ));
    }
    Ok((from_ms, to_ms))
}

fn parse_form(form: &BacktestForm) -> Result<BacktestRequest, String> {
    let strategy = form.strategy.trim();
    if strategy.is_empty() {
        return Err("strategy is required".into());
    }
    let symbol = Symbol::new(form.symbol.trim()).map_err(|e| format!("symbol: {e}"))?;
    let interval = form
        .interval
        .trim()
        .parse::<Interval>()
        .map_err(|e| e.to_string())?;
    let words: Vec<&str> = form.params.split_whitespace().collect();
    let (from, to) = date_range(&form.from, &form.to)?;
    let req = BacktestRequest {
        strategy: strategy.to_string(),
        symbol,
        interval,
        params: parse_params(&words)?,
        from,
        to,
    };
    // The form stays open with the backtester's own words rather than queueing a run that
    // would fail out of sight.
    validate_backtest(&req)?;
    Ok(req)
}

/// `:backtest STRATEGY [symbol=S] [interval=I] [key=value ...]`, `:pause`, `:resume`, `:quit`,
/// `:market SYMBOL [INTERVAL]`, `:kill`, `:help`, `:refresh`, or a screen number.
fn run_command(app: &mut App, line: &str) -> Vec<Effect> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, rest)) = words.split_first() else {
        return Vec::new();
    };
    let fail = |app: &mut App, msg: String| {
        set_status(app, StatusKind::Error, msg);
        Vec::new()
    };
    match cmd {
        "q" | "quit" => on_screen(app, Action::Quit),
        "q!" | "quit!" => {
            app.should_quit = true;
            vec![Effect::Quit]
        }
        "pause" if !app.snapshot.trading_paused => on_screen(app, Action::TogglePause),
        "resume" if app.snapshot.trading_paused => on_screen(app, Action::TogglePause),
        "pause" => fail(app, "trading is already paused".into()),
        "resume" => fail(app, "trading is not paused".into()),
        "kill" => {
            app.screen = Screen::Risk;
            on_screen(app, Action::KillSwitch)
        }
        "help" => {
            app.overlay = Overlay::Help;
            Vec::new()
        }
        "refresh" => vec![Effect::Refresh],
        "market" => {
            let Some(sym) = rest.first() else {
                return fail(app, "usage: :market SYMBOL [INTERVAL]".into());
            };
            let symbol = match Symbol::new(&sym.to_ascii_uppercase()) {
                Ok(s) => s,
                Err(e) => return fail(app, format!("{e}")),
            };
            let interval = match rest.get(1).map(|i| i.parse::<Interval>()) {
                None => app.snapshot.market.interval,
                Some(Ok(i)) => i,
                Some(Err(e)) => return fail(app, e.to_string()),
            };
            app.screen = Screen::Market;
            switch_market(app, symbol, interval)
        }
        "backtest" | "bt" => {
            let Some((&strategy, params)) = rest.split_first() else {
                return fail(
                    app,
                    "usage: :backtest STRATEGY [symbol=BTCUSDT] [interval=1h] [from=YYYY-MM-DD] [to=YYYY-MM-DD] [key=value ...]"
                        .into(),
                );
            };
            let mut pairs = match parse_params(params) {
                Ok(p) => p,
                Err(e) => return fail(app, e),
            };
            let mut take = |key: &str| {
                pairs
                    .iter()
                    .position(|(k, _)| k == key)
                    .map(|i| pairs.remove(i).1)
            };
            let symbol_text = take("symbol");
            let interval_text = take("interval");
            let (from_text, to_text) = (take("from"), take("to"));
            let (from, to) = match date_range(
                from_text.as_deref().unwrap_or(""),
                to_text.as_deref().unwrap_or(""),
            ) {
                Ok(range) => range,
                Err(e) => return fail(app, e),
            };
            let symbol = match symbol_text {
                None => app.snapshot.market.symbol.clone(),
                Some(s) => match Symbol::new(&s.to_ascii_uppercase()) {
                    Ok(s) => s,
                    Err(e) => return fail(app, format!("{e}")),
                },
            };
            let interval = match interval_text.map(|i| i.parse::<Interval>()) {
                None => app.snapshot.market.interval,
                Some(Ok(i)) => i,
                Some(Err(e)) => return fail(app, e.to_string()),
            };
            start_backtest(
                app,
                BacktestRequest {
                    strategy: strategy.to_string(),
                    symbol,
                    interval,
                    params: pairs,
                    from,
                    to,
                },
            )
        }
        n if n.len() == 1 && ('1'..='8').contains(&n.chars().next().unwrap_or('0')) => {
            let i = n.parse::<usize>().unwrap_or(1);
            app.screen = Screen::from_index(i - 1);
            Vec::new()
        }
        other => fail(
            app,
            format!(
                "unknown command {other:?}; try :backtest, :pause, :resume, :market, :kill, :quit"
            ),
        ),
    }
}

fn apply_event(app: &mut App, event: Event, at_ms: i64) -> Vec<Effect> {
    let snap = &mut app.snapshot;
    match event {
        Event::CandleClosed {
            symbol,
            interval,
            candle,
        } => {
            let m = &mut snap.market;
            if m.symbol == symbol && m.interval == interval {
                match m.candles.last() {
                    Some(last) if last.open_time == candle.open_time => {
                        if let Some(l) = m.candles.last_mut() {
                            *l = candle;
                        }
                    }
                    Some(last) if last.open_time > candle.open_time => {}
                    _ => m.candles.push(candle),
                }
                // Indicator overlays are recomputed with the next load.
                return vec![Effect::Refresh];
            }
            app.dirty = false;
        }
        Event::PriceUpdated { symbol, price, .. } => {
            let mut changed = false;
            for p in snap.positions.iter_mut().filter(|p| p.symbol == symbol) {
                p.mark = price;
                let diff = price.get() - p.entry.get();
                let signed = if p.side.eq_ignore_ascii_case("SHORT") {
                    -diff
                } else {
                    diff
                };
                p.unrealised_pnl = Quote(signed * p.qty.get());
                changed = true;
            }
            app.dirty = changed;
        }
        Event::OrderUpdated {
            client_order_id,
            status,
            ..
        } => {
            let still_open = status.is_open();
            if let Some(i) = snap
                .open_orders
                .iter()
                .position(|o| o.client_order_id == client_order_id)
            {
                if still_open {
                    snap.open_orders[i].status = status.to_string();
                } else {
                    snap.open_orders.remove(i);
                }
            }
            clamp_cursors(app);
            return vec![Effect::Refresh];
        }
        // Equity reaches the TUI through the snapshot refresh that position changes trigger.
        Event::EquityUpdated { .. } => {}
        Event::PositionChanged { .. } | Event::DecisionRecorded { .. } => {
            return vec![Effect::Refresh];
        }
        Event::BreakerChanged {
            scope,
            state,
            reason,
        } => {
            if scope == "global" {
                snap.breaker.state = state;
                snap.breaker.reason = reason.clone();
            }
            snap.breaker.history.insert(
                0,
                BreakerChange {
                    at_ms,
                    scope,
                    state,
                    reason,
                },
            );
            // The trading state (paused, killed, halted) and `p`'s offer come from the store.
            return vec![Effect::Refresh];
        }
        Event::HealthChanged {
            component,
            healthy,
            detail,
        } => match snap.health.iter_mut().find(|h| h.name == component) {
            Some(h) => {
                h.healthy = healthy;
                h.stale = false;
                h.detail = detail;
            }
            None => snap.health.push(ComponentHealth {
                name: component,
                healthy,
                stale: false,
                detail,
            }),
        },
        Event::BacktestProgress { id, fraction } => {
            match snap.backtests.iter_mut().find(|b| b.id == id) {
                Some(b) => {
                    b.progress = Some(fraction.clamp(0.0, 1.0));
                    b.status = "running".into();
                }
                None => return vec![Effect::Refresh],
            }
        }
        Event::JobFinished { job, ok, error } => {
            // A success is a heartbeat: the health panel says when each job last ran, so the
            // log keeps what a reader needs (a job running three times a second buried it).
            if ok {
                app.heartbeats.insert(job, at_ms);
            } else {
                push_log(
                    app,
                    at_ms,
                    LogLevel::Error,
                    "jobs".into(),
                    format!("job {job} failed: {}", error.unwrap_or_default()),
                );
            }
            return vec![Effect::Refresh];
        }
        Event::Log {
            level,
            target,
            message,
        } => push_log(app, at_ms, LogLevel::parse(&level), target, message),
        Event::ShuttingDown => set_status(
            app,
            StatusKind::Warning,
            "the system is shutting down".into(),
        ),
        Event::LlmBudgetExhausted {
            spent_usd,
            budget_usd,
            fallback,
        } => push_log(
            app,
            at_ms,
            LogLevel::Warn,
            "llm".into(),
            format!("LLM budget spent ({spent_usd} of {budget_usd} USD): deciding with {fallback}"),
        ),
        Event::PromptInjectionDetected {
            symbol,
            source,
            pattern,
        } => push_log(
            app,
            at_ms,
            LogLevel::Warn,
            "llm".into(),
            format!("{symbol}: instruction-like text in {source} ignored ({pattern})"),
        ),
        Event::Trade {
            symbol,
            price,
            qty,
            time_ms,
            buyer_is_maker,
        } => {
            let m = &mut snap.market;
            if m.symbol != symbol {
                app.dirty = false;
                return Vec::new();
            }
            m.recent_trades.insert(
                0,
                crate::app::snapshot::MarketTrade {
                    at_ms: time_ms,
                    price,
                    qty,
                    buyer_is_maker,
                },
            );
            m.recent_trades.truncate(MAX_MARKET_TRADES);
        }
        Event::StreamStatus {
            symbol,
            state,
            detail,
        } => {
            let name = format!("stream {symbol}");
            let healthy = state == crate::bus::StreamState::Connected;
            match snap.health.iter_mut().find(|h| h.name == name) {
                Some(h) => {
                    h.healthy = healthy;
                    h.stale = false;
                    h.detail = detail;
                }
                None => snap.health.push(ComponentHealth {
                    name,
                    healthy,
                    stale: false,
                    detail,
                }),
            }
        }
        Event::OrderFilled { .. }
        | Event::BalanceChanged { .. }
        | Event::KlinesBackfilled { .. } => {
            return vec![Effect::Refresh];
        }
        // The top of book and depth are drawn from the next load; nothing to redraw now.
        Event::BookTicker { .. } | Event::BookUpdated { .. } | Event::BookResyncing { .. } => {
            app.dirty = false;
        }
    }
    Vec::new()
}

/// Recent market trades kept for the Market screen.
const MAX_MARKET_TRADES: usize = 200;

fn push_log(app: &mut App, at_ms: i64, level: LogLevel, target: String, message: String) {
    let logs = &mut app.snapshot.logs;
    logs.push(LogLine {
        at_ms,
        level,
        target,
        message,
    });
    if logs.len() > MAX_LOG_LINES {
        let excess = logs.len() - MAX_LOG_LINES;
        logs.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::risk::BreakerState;
    use crate::domain::trading::TradingMode;
    use crate::tui::fixture;
    use crate::tui::keys::map_key;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn app() -> App {
        App::new(fixture::snapshot())
    }

    /// Feed keys through the real key map, collecting every effect.
    fn press(app: &mut App, keys: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        for c in keys.chars() {
            let code = match c {
                '\n' => KeyCode::Enter,
                '\t' => KeyCode::Tab,
                '\u{1b}' => KeyCode::Esc,
                '\u{8}' => KeyCode::Backspace,
                c => KeyCode::Char(c),
            };
            if let Some(a) = map_key(app, KeyEvent::new(code, KeyModifiers::NONE)) {
                effects.extend(update(app, a));
            }
        }
        effects
    }

    #[test]
    fn pause_asks_first_and_yes_pauses() {
        let mut app = app();
        assert!(press(&mut app, "p").is_empty());
        assert!(matches!(app.overlay, Overlay::Confirm(_)));
        assert_eq!(press(&mut app, "y"), vec![Effect::PauseTrading]);
        assert_eq!(app.overlay, Overlay::None);
    }

    /// A snapshot loaded from a store the way the running interface loads it.
    fn loaded(store: &crate::store::Store) -> Snapshot {
        use crate::app::snapshot::{LoadRequest, load};
        let btc = crate::domain::Symbol::new("BTCUSDT").unwrap();
        let req = LoadRequest {
            mode: TradingMode::Paper,
            now_ms: 1_767_355_200_000,
            symbol: btc.clone(),
            interval: crate::domain::market::Interval::H1,
            connection: "paper".into(),
            paper_starting_balance: Some(crate::domain::Quote(rust_decimal::Decimal::from(10_000))),
            symbols: vec![btc],
            default_risk_config: Vec::new(),
            stale_after_ms: 3_600_000,
        };
        load(store.conn(), &req).unwrap()
    }

    #[test]
    fn pause_from_the_tui_is_loaded_so_p_offers_resume_and_resume_is_accepted() {
        // Symptom 2: after `p`, `y` the loaded snapshot still said "not paused": `p` offered
        // "Pause trading?" again and `:resume` answered "trading is not paused".
        use crate::store::risk::{ManualStop, stop_trading};
        let store = crate::store::Store::open_in_memory().unwrap();
        let config = crate::domain::risk::RiskConfig::default();
        stop_trading(store.conn(), &config, ManualStop::Pause, "tui", "lunch", 5).unwrap();
        let mut app = app();
        update(&mut app, Action::SnapshotLoaded(Box::new(loaded(&store))));
        assert!(app.snapshot.trading_paused);
        assert_eq!(app.snapshot.trading.label(), "PAUSED");
        press(&mut app, "p");
        assert_eq!(press(&mut app, "y"), vec![Effect::ResumeTrading]);
        press(&mut app, ":resume\n");
        assert!(
            matches!(app.overlay, Overlay::Confirm(_)),
            "{:?}",
            app.status
        );
    }

    #[test]
    fn the_command_line_completes_and_remembers() {
        let mut app = app();
        press(&mut app, ":ba\t");
        assert_eq!(app.overlay, Overlay::Command("backtest ".into()));
        press(&mut app, "rsi-m\t");
        assert_eq!(app.overlay, Overlay::Command("backtest rsi-macd ".into()));
        press(&mut app, "\u{1b}");
        // Two commands run, then ↑ brings back the last, ↑ again the one before, ↓ forward.
        press(&mut app, ":refresh\n");
        press(&mut app, ":8\n");
        press(&mut app, ":");
        let up = |app: &mut App| update(app, Action::PrevField);
        let down = |app: &mut App| update(app, Action::NextField);
        up(&mut app);
        assert_eq!(app.overlay, Overlay::Command("8".into()));
        up(&mut app);
        assert_eq!(app.overlay, Overlay::Command("refresh".into()));
        down(&mut app);
        assert_eq!(app.overlay, Overlay::Command("8".into()));
        down(&mut app);
        assert_eq!(app.overlay, Overlay::Command(String::new()));
        // The arrow keys reach the history on the `:` line.
        let key = |code| map_key(&app, KeyEvent::new(code, KeyModifiers::NONE));
        assert_eq!(key(KeyCode::Up), Some(Action::PrevField));
        assert_eq!(key(KeyCode::Tab), Some(Action::Complete));
    }

    #[test]
    fn job_heartbeats_go_to_the_health_panel_not_the_log() {
        let mut app = App::new(crate::tui::fixture::snapshot());
        let logs_before = app.snapshot.logs.len();
        for i in 0..3 {
            update(
                &mut app,
                Action::Bus {
                    event: Box::new(Event::JobFinished {
                        job: "monitor_orders".into(),
                        ok: true,
                        error: None,
                    }),
                    at_ms: 1_000 + i,
                },
            );
        }
        assert_eq!(
            app.snapshot.logs.len(),
            logs_before,
            "heartbeats flooded the log"
        );
        assert_eq!(app.heartbeats.get("monitor_orders"), Some(&1_002));
        update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::JobFinished {
                    job: "monitor_orders".into(),
                    ok: false,
                    error: Some("timeout".into()),
                }),
                at_ms: 2_000,
            },
        );
        assert_eq!(
            app.snapshot.logs.len(),
            logs_before + 1,
            "a failure is logged"
        );
    }

    #[test]
    fn the_decision_cursor_at_the_top_follows_the_newest_decision() {
        let mut app = App::new(crate::tui::fixture::snapshot());
        update(&mut app, Action::GoTo(Screen::Decisions));
        let mut newer = crate::tui::fixture::snapshot();
        let mut fresh = newer.decisions[0].clone();
        fresh.id = 43;
        newer.decisions.insert(0, fresh);
        update(&mut app, Action::SnapshotLoaded(Box::new(newer)));
        assert_eq!(
            app.snapshot.decisions[app.selected(Screen::Decisions)].id,
            43
        );
    }

    #[test]
    fn the_decision_cursor_stays_on_its_decision_when_new_rows_arrive() {
        let mut app = App::new(crate::tui::fixture::snapshot());
        update(&mut app, Action::GoTo(Screen::Decisions));
        update(&mut app, Action::Down); // #41
        assert_eq!(
            app.snapshot.decisions[app.selected(Screen::Decisions)].id,
            41
        );
        let mut newer = crate::tui::fixture::snapshot();
        let mut fresh = newer.decisions[0].clone();
        fresh.id = 43;
        newer.decisions.insert(0, fresh.clone());
        fresh.id = 44;
        newer.decisions.insert(0, fresh);
        update(&mut app, Action::SnapshotLoaded(Box::new(newer)));
        assert_eq!(
            app.snapshot.decisions[app.selected(Screen::Decisions)].id,
            41,
            "the detail must keep showing the decision the reader chose"
        );
    }

    #[test]
    fn pause_and_kill_read_differently_in_the_header_state() {
        use crate::store::risk::{ManualStop, resume_trading, stop_trading};
        let store = crate::store::Store::open_in_memory().unwrap();
        let config = crate::domain::risk::RiskConfig::default();
        stop_trading(store.conn(), &config, ManualStop::Pause, "tui", "", 5).unwrap();
        let paused = loaded(&store).trading;
        resume_trading(store.conn(), "tui", 6).unwrap();
        stop_trading(store.conn(), &config, ManualStop::Kill, "tui", "", 7).unwrap();
        let killed = loaded(&store);
        assert_eq!(paused.label(), "PAUSED");
        assert_eq!(killed.trading.label(), "KILLED");
        assert!(
            killed.trading_paused,
            "the kill switch is lifted by resume too"
        );
    }

    #[test]
    fn pause_answered_no_does_nothing() {
        let mut app = app();
        press(&mut app, "p");
        assert!(press(&mut app, "n").is_empty());
        assert_eq!(app.overlay, Overlay::None);
        // Unrelated keys while the question is open neither answer nor dismiss it.
        press(&mut app, "p");
        assert!(press(&mut app, "jq").is_empty());
        assert!(matches!(app.overlay, Overlay::Confirm(_)));
    }

    #[test]
    fn p_offers_resume_when_trading_is_paused() {
        let mut app = app();
        app.snapshot.trading_paused = true;
        press(&mut app, "p");
        assert_eq!(press(&mut app, "y"), vec![Effect::ResumeTrading]);
    }

    #[test]
    fn closing_the_selected_position_asks_then_names_its_symbol() {
        let mut app = app();
        press(&mut app, "2j");
        assert_eq!(app.screen, Screen::Positions);
        assert!(press(&mut app, "c").is_empty());
        let effects = press(&mut app, "y");
        assert_eq!(
            effects,
            vec![Effect::ClosePosition {
                symbol: Symbol::new("ETHUSDT").unwrap(),
                book: None,
            }]
        );
    }

    #[test]
    fn closing_a_symbol_two_books_hold_sends_the_selected_rows_book() {
        let mut app = app();
        // A second book, "swing" (strategy 7), also holds BTCUSDT, listed after trend's.
        let mut swing = app.snapshot.positions[0].clone();
        swing.book = "swing".into();
        swing.book_id = Some(7);
        app.snapshot.positions.push(swing);
        let symbol = Symbol::new("BTCUSDT").unwrap();
        press(&mut app, "2");
        assert!(press(&mut app, "c").is_empty());
        assert_eq!(
            press(&mut app, "y"),
            vec![Effect::ClosePosition {
                symbol: symbol.clone(),
                book: Some(2),
            }],
            "the first row is trend's"
        );
        // The third row: swing's position in the same symbol.
        press(&mut app, "jj");
        assert!(press(&mut app, "c").is_empty());
        assert_eq!(
            press(&mut app, "y"),
            vec![Effect::ClosePosition {
                symbol,
                book: Some(7),
            }]
        );
    }

    #[test]
    fn p_protects_the_selected_rows_position_after_a_yes() {
        let mut app = app();
        press(&mut app, "2");
        assert!(press(&mut app, "P").is_empty());
        match &app.overlay {
            Overlay::Confirm(c) => assert!(
                c.question.contains("Protect the BTCUSDT position")
                    && c.question.contains("book trend"),
                "{}",
                c.question
            ),
            other => panic!("no confirmation: {other:?}"),
        }
        assert!(press(&mut app, "n").is_empty(), "no is no");
        press(&mut app, "j");
        press(&mut app, "P");
        assert_eq!(
            press(&mut app, "y"),
            vec![Effect::ProtectPosition {
                symbol: Symbol::new("ETHUSDT").unwrap(),
                book: None,
            }]
        );
        // Elsewhere P means nothing.
        press(&mut app, "3");
        assert!(press(&mut app, "P").is_empty());
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn cancelling_an_order_needs_the_orders_table_and_a_yes() {
        let mut app = app();
        press(&mut app, "2");
        // With the positions table focused, x means nothing.
        assert!(press(&mut app, "x").is_empty());
        assert_eq!(app.overlay, Overlay::None);
        press(&mut app, "lj");
        press(&mut app, "x");
        assert_eq!(
            press(&mut app, "y"),
            vec![Effect::CancelOrder {
                symbol: Symbol::new("SOLUSDT").unwrap(),
                client_order_id: "tm-entry-sol-02".into()
            }]
        );
    }

    #[test]
    fn backtest_form_starts_a_run_with_the_typed_fields() {
        let mut app = app();
        press(&mut app, "6n");
        let Overlay::BacktestForm(form) = &app.overlay else {
            panic!("form not open");
        };
        // Prefilled from the snapshot: first strategy, the market's symbol and interval.
        assert_eq!(
            (
                form.strategy.as_str(),
                form.symbol.as_str(),
                form.interval.as_str()
            ),
            ("sma-cross", "BTCUSDT", "1h")
        );
        // Replace the interval with 4h and type parameters ('\u{8}' is backspace).
        // The date range in From and To, as the CLI's --from/--to take it.
        let effects = press(
            &mut app,
            "\t\t\u{8}\u{8}4h\t2025-01-01\t2025-01-15T12:00\tfast=10 slow=30\n",
        );
        assert_eq!(
            effects,
            vec![Effect::StartBacktest(BacktestRequest {
                strategy: "sma-cross".into(),
                symbol: Symbol::new("BTCUSDT").unwrap(),
                interval: Interval::H4,
                params: vec![("fast".into(), "10".into()), ("slow".into(), "30".into())],
                from: Some(1_735_689_600_000),
                to: Some(1_736_942_400_000),
            })]
        );
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn an_unknown_strategy_is_refused_at_once_not_queued() {
        let mut app = app();
        let effects = press(&mut app, ":backtest nosuch\n");
        assert!(effects.is_empty(), "{effects:?}");
        let status = app
            .status
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_default();
        assert!(
            status.contains("unknown strategy \"nosuch\"") && status.contains("sma-cross"),
            "{status}"
        );
        // An out-of-range parameter is refused whole in the form, which stays open.
        press(&mut app, "6n");
        press(&mut app, "\t\t\t\t\tfast=40 slow=30\n");
        let Overlay::BacktestForm(form) = &app.overlay else {
            panic!("the form closed: {:?}", app.overlay);
        };
        assert!(
            form.error
                .as_deref()
                .unwrap_or("")
                .contains("must be shorter than slow"),
            "{form:?}"
        );
    }

    #[test]
    fn backtest_form_refuses_bad_input_and_stays_open() {
        let mut app = app();
        press(&mut app, "6n");
        assert!(press(&mut app, "\t\t\u{8}\u{8}7x\n").is_empty());
        let Overlay::BacktestForm(form) = &app.overlay else {
            panic!("form closed on bad input");
        };
        assert!(
            form.error
                .as_deref()
                .unwrap_or("")
                .contains("invalid interval")
        );
        // Esc abandons the form without an effect.
        assert!(press(&mut app, "\u{1b}").is_empty());
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn command_line_starts_a_backtest_with_defaults_from_the_market() {
        let mut app = app();
        let effects = press(&mut app, ":backtest sma-cross fast=10 slow=30\n");
        assert_eq!(
            effects,
            vec![Effect::StartBacktest(BacktestRequest {
                strategy: "sma-cross".into(),
                symbol: Symbol::new("BTCUSDT").unwrap(),
                interval: Interval::H1,
                params: vec![("fast".into(), "10".into()), ("slow".into(), "30".into())],
                from: None,
                to: None,
            })]
        );
        assert_eq!(app.screen, Screen::Backtests);
        // A date range as the CLI's --from/--to take it.
        let effects = press(
            &mut app,
            ":backtest sma-cross from=2025-01-01 to=2025-01-02\n",
        );
        let Some(Effect::StartBacktest(req)) = effects.first() else {
            panic!("no backtest: {effects:?}");
        };
        assert_eq!(
            (req.from, req.to),
            (Some(1_735_689_600_000), Some(1_735_776_000_000))
        );
        assert!(req.params.is_empty(), "{:?}", req.params);
    }

    #[test]
    fn a_backtest_date_range_is_checked_before_queueing_and_its_error_kept_whole() {
        let mut app = app();
        press(&mut app, "6n");
        // To before from: refused in the form, which stays open with both dates named.
        assert!(press(&mut app, "\t\t\t2025-01-15\t2025-01-01\n").is_empty());
        let Overlay::BacktestForm(form) = &app.overlay else {
            panic!("the form closed: {:?}", app.overlay);
        };
        let error = form.error.clone().unwrap_or_default();
        assert!(
            error.contains("from 2025-01-15") && error.contains("not before to 2025-01-01"),
            "{error}"
        );
        // A date that is not one says which field and what it takes.
        // Round the six fields back to To, clear it and type a date the wrong way round.
        press(
            &mut app,
            "\t\t\t\t\t\t\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}15/01/2025\n",
        );
        let Overlay::BacktestForm(form) = &app.overlay else {
            panic!("the form closed: {:?}", app.overlay);
        };
        let error = form.error.clone().unwrap_or_default();
        assert!(
            error.contains("to \"15/01/2025\"") && error.contains("YYYY-MM-DD"),
            "{error}"
        );
        // The command line refuses the same range before anything is queued.
        press(&mut app, "\u{1b}");
        let effects = press(
            &mut app,
            ":backtest sma-cross from=2025-01-15 to=2025-01-01\n",
        );
        assert!(effects.is_empty(), "{effects:?}");
        assert!(app.status.unwrap().text.contains("not before"));
    }

    #[test]
    fn command_line_pause_resume_quit_and_errors() {
        let mut app = app();
        press(&mut app, ":pause\n");
        assert_eq!(press(&mut app, "y"), vec![Effect::PauseTrading]);
        press(&mut app, ":resume\n");
        assert_eq!(app.status.as_ref().unwrap().text, "trading is not paused");
        press(&mut app, ":frobnicate\n");
        assert_eq!(app.status.as_ref().unwrap().kind, StatusKind::Error);
        press(&mut app, ":backtest x fast\n");
        assert!(app.status.as_ref().unwrap().text.contains("not key=value"));
        // Two orders are in flight, so :quit asks.
        assert!(press(&mut app, ":quit\n").is_empty());
        assert_eq!(press(&mut app, "y"), vec![Effect::Quit]);
        assert!(app.should_quit);
    }

    #[test]
    fn quit_with_orders_in_flight_asks_and_without_quits_at_once() {
        let mut app = app();
        assert!(press(&mut app, "q").is_empty());
        assert!(!app.should_quit);
        let Overlay::Confirm(d) = &app.overlay else {
            panic!("no confirmation");
        };
        assert!(d.question.contains("2 order(s) in flight"));
        assert!(press(&mut app, "n").is_empty());
        assert!(!app.should_quit);

        app.snapshot.open_orders.clear();
        assert_eq!(press(&mut app, "q"), vec![Effect::Quit]);
        assert!(app.should_quit);
    }

    #[test]
    fn number_keys_tab_and_backtab_switch_screens() {
        let mut app = app();
        press(&mut app, "5");
        assert_eq!(app.screen, Screen::Market);
        press(&mut app, "\t\t\t\t");
        assert_eq!(app.screen, Screen::Dashboard, "Tab wraps after Logs");
        let a = map_key(&app, KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)).unwrap();
        update(&mut app, a);
        assert_eq!(app.screen, Screen::Logs);
    }

    #[test]
    fn cursor_stays_inside_the_list_with_vim_keys() {
        let mut app = app();
        press(&mut app, "3G");
        assert_eq!(app.selected(Screen::Trades), 11);
        press(&mut app, "jjj");
        assert_eq!(app.selected(Screen::Trades), 11);
        press(&mut app, "gk");
        assert_eq!(app.selected(Screen::Trades), 0);
    }

    #[test]
    fn trade_filters_cycle_through_strategies_and_back_to_all() {
        let mut app = app();
        press(&mut app, "3f");
        assert_eq!(app.trades_strategy.as_deref(), Some("llm-news"));
        // trades 0, 4, 8 are llm-news
        assert_eq!(app.visible_trades().len(), 3);
        press(&mut app, "s");
        assert_eq!(app.trades_symbol.as_deref(), Some("BTCUSDT"));
        // of 0, 4, 8 only 0 is ETH
        assert_eq!(app.visible_trades().len(), 2);
        press(&mut app, "ff");
        assert_eq!(app.trades_strategy, None);
    }

    #[test]
    fn help_lists_the_screen_bindings_and_any_key_closes_it() {
        let mut app = app();
        press(&mut app, "?");
        assert_eq!(app.overlay, Overlay::Help);
        assert!(
            press(&mut app, "q").is_empty(),
            "q closes help, it does not quit"
        );
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.should_quit);
    }

    #[test]
    fn every_single_key_listed_in_help_does_something_on_its_screen() {
        for screen in Screen::ALL {
            for b in crate::tui::keys::screen_bindings(screen) {
                for key in b.keys.split([' ', '/']).filter(|k| k.len() == 1) {
                    let mut app = app();
                    app.screen = screen;
                    let c = key.chars().next().unwrap();
                    let code = KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
                    assert!(map_key(&app, code).is_some(), "{key:?} on {screen:?}");
                }
            }
        }
    }

    #[test]
    fn bus_events_update_prices_breaker_progress_and_logs() {
        let mut app = app();
        let btc = Symbol::new("BTCUSDT").unwrap();
        update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::PriceUpdated {
                    symbol: btc,
                    price: crate::domain::Price(rust_decimal_macros::dec!(52000)),
                    time_ms: 0,
                }),
                at_ms: 1,
            },
        );
        // (52000 - 50120.5) * 0.05 = 93.975
        assert_eq!(
            app.snapshot.positions[0].unrealised_pnl,
            Quote(rust_decimal_macros::dec!(93.975))
        );
        update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::BreakerChanged {
                    scope: "global".into(),
                    state: BreakerState::Halted,
                    reason: "daily loss".into(),
                }),
                at_ms: 2,
            },
        );
        assert_eq!(app.snapshot.breaker.state, BreakerState::Halted);
        assert_eq!(app.snapshot.breaker.history[0].at_ms, 2);
        update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::BacktestProgress {
                    id: 7,
                    fraction: 0.9,
                }),
                at_ms: 3,
            },
        );
        assert_eq!(app.snapshot.backtests[0].progress, Some(0.9));
        let effects = update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::OrderUpdated {
                    client_order_id: "tm-sl-btc-01".into(),
                    symbol: Symbol::new("BTCUSDT").unwrap(),
                    status: crate::domain::trading::order::OrderStatus::Canceled,
                }),
                at_ms: 4,
            },
        );
        assert_eq!(app.snapshot.open_orders.len(), 1);
        assert_eq!(effects, vec![Effect::Refresh]);
        let before = app.snapshot.logs.len();
        update(
            &mut app,
            Action::Bus {
                event: Box::new(Event::Log {
                    level: "warn".into(),
                    target: "t".into(),
                    message: "m".into(),
                }),
                at_ms: 5,
            },
        );
        assert_eq!(app.snapshot.logs.len(), before + 1);
        assert_eq!(app.snapshot.logs.last().unwrap().level, LogLevel::Warn);
    }

    #[test]
    fn a_reload_keeps_bus_logs_and_clamps_cursors() {
        let mut app = app();
        press(&mut app, "3G");
        let logs = app.snapshot.logs.len();
        let mut fresh = fixture::snapshot();
        fresh.logs.clear();
        fresh.trades.truncate(2);
        fresh.mode = TradingMode::Live;
        update(&mut app, Action::SnapshotLoaded(Box::new(fresh)));
        assert_eq!(app.snapshot.logs.len(), logs);
        assert_eq!(app.selected(Screen::Trades), 1);
        assert_eq!(app.snapshot.mode, TradingMode::Live);
    }

    #[test]
    fn loading_clears_when_the_asked_market_arrives_and_an_empty_one_names_the_fetch_command() {
        let mut app = app();
        update(&mut app, Action::OpenCommandLine);
        for c in "market ETHUSDT 15m".chars() {
            update(&mut app, Action::Input(c));
        }
        update(&mut app, Action::Submit);
        // What the runner shows while it loads.
        update(&mut app, Action::Status("loading ETHUSDT 15m…".into()));
        // A reload of the old market, begun before the switch, does not answer it.
        update(
            &mut app,
            Action::SnapshotLoaded(Box::new(fixture::snapshot())),
        );
        assert!(app.status.as_ref().unwrap().text.contains("loading"));
        let mut eth = fixture::snapshot();
        eth.market.symbol = Symbol::new("ETHUSDT").unwrap();
        eth.market.interval = Interval::M15;
        eth.market.candles.clear();
        update(&mut app, Action::SnapshotLoaded(Box::new(eth)));
        let status = app.status.clone().unwrap();
        assert!(!status.text.contains("loading"), "{}", status.text);
        assert_eq!(status.kind, StatusKind::Warning);
        assert!(
            status
                .text
                .contains("trademind data fetch ETHUSDT 15m --from 2025-12-28"),
            "{}",
            status.text
        );
        // A built market says where its candles come from.
        update(&mut app, Action::GoTo(Screen::Market));
        press(&mut app, "i");
        update(&mut app, Action::Status("loading ETHUSDT 30m…".into()));
        let mut built = fixture::snapshot();
        built.market.symbol = Symbol::new("ETHUSDT").unwrap();
        built.market.interval = Interval::M30;
        built.market.resampled_from = Some(Interval::M15);
        update(&mut app, Action::SnapshotLoaded(Box::new(built)));
        assert_eq!(
            app.status.unwrap().text,
            "ETHUSDT 30m: 200 candles built from the stored 15m ones"
        );
    }

    #[test]
    fn a_failed_load_answers_loading_with_its_error() {
        let mut app = app();
        update(&mut app, Action::GoTo(Screen::Market));
        press(&mut app, "i");
        update(&mut app, Action::Status("loading BTCUSDT 2h…".into()));
        update(
            &mut app,
            Action::LoadFailed("cannot read the trading database".into()),
        );
        assert_eq!(app.market_loading, None);
        assert!(app.status.unwrap().text.contains("cannot read"));
    }

    #[test]
    fn the_streamed_book_replaces_the_ladder_of_the_shown_symbol_only() {
        let mut app = app();
        app.dirty = false;
        let book = fixture::book(rust_decimal_macros::dec!(3000), 5);
        update(
            &mut app,
            Action::BookLevels {
                symbol: Symbol::new("ETHUSDT").unwrap(),
                book: book.clone(),
            },
        );
        assert!(!app.dirty, "another symbol's book draws nothing");
        assert_ne!(app.snapshot.market.book, book);
        update(
            &mut app,
            Action::BookLevels {
                symbol: Symbol::new("BTCUSDT").unwrap(),
                book: book.clone(),
            },
        );
        assert!(app.dirty);
        assert_eq!(app.snapshot.market.book, book);
        app.dirty = false;
        update(
            &mut app,
            Action::BookLevels {
                symbol: Symbol::new("BTCUSDT").unwrap(),
                book,
            },
        );
        assert!(!app.dirty, "an unchanged book draws nothing");
    }

    #[test]
    fn a_reload_keeps_the_streamed_book_and_trades_of_the_shown_symbol() {
        // The store holds neither: a reload every few seconds used to blank both panes.
        let mut app = app();
        let streamed = app.snapshot.market.clone();
        assert!(!streamed.book.asks.is_empty() && !streamed.recent_trades.is_empty());
        let mut reloaded = fixture::snapshot();
        reloaded.market.book = Default::default();
        reloaded.market.recent_trades.clear();
        update(&mut app, Action::SnapshotLoaded(Box::new(reloaded.clone())));
        assert_eq!(app.snapshot.market.book, streamed.book);
        assert_eq!(app.snapshot.market.recent_trades, streamed.recent_trades);
        // Another symbol's load starts from its own (empty) panes.
        reloaded.market.symbol = Symbol::new("ETHUSDT").unwrap();
        update(&mut app, Action::SnapshotLoaded(Box::new(reloaded)));
        assert!(app.snapshot.market.book.asks.is_empty());
        assert!(app.snapshot.market.recent_trades.is_empty());
    }

    #[test]
    fn space_marks_runs_and_c_compares_them_the_first_marked_as_the_baseline() {
        let mut app = app();
        // The fixture's runs: #7 running, #6 completed, #5 failed.
        press(&mut app, "6c");
        assert!(app.backtest_comparison.is_none());
        assert!(
            app.status
                .as_ref()
                .unwrap()
                .text
                .contains("mark two or more")
        );
        press(&mut app, "j ");
        assert_eq!(app.backtest_marked, vec![6]);
        press(&mut app, "k c");
        assert!(
            app.backtest_comparison.is_none(),
            "a running run has no results"
        );
        assert!(
            app.status.as_ref().unwrap().text.contains("#7 is running"),
            "{:?}",
            app.status
        );
        // Space again unmarks; a second completed run on the same candles compares.
        press(&mut app, " ");
        assert_eq!(app.backtest_marked, vec![6]);
        let mut other = app.snapshot.backtests[1].clone();
        other.id = 9;
        for (i, e) in other.equity_curve.iter_mut().enumerate() {
            *e -= (i % 5) as f64 * 2.0;
        }
        app.snapshot.backtests.push(other);
        press(&mut app, "G c");
        let cmp = app.backtest_comparison.clone().expect("comparison open");
        let ids: Vec<i64> = cmp.runs.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![6, 9]);
        assert_eq!(cmp.differences.len(), 1);
        assert_eq!(cmp.differences[0].against, 6);
        press(&mut app, "\u{1b}");
        assert!(app.backtest_comparison.is_none());
    }

    #[test]
    fn market_keys_ask_for_another_symbol_or_interval() {
        let mut app = app();
        assert_eq!(
            press(&mut app, "5s"),
            vec![Effect::SwitchMarket {
                symbol: Symbol::new("ETHUSDT").unwrap(),
                interval: Interval::H1
            }]
        );
        assert_eq!(
            press(&mut app, "i"),
            vec![Effect::SwitchMarket {
                symbol: Symbol::new("BTCUSDT").unwrap(),
                interval: Interval::H2
            }]
        );
    }

    #[test]
    fn only_visible_changes_mark_the_frame_dirty_and_none_clears_a_pending_one() {
        let mut app = app();
        app.dirty = false;
        let quiet = Action::Bus {
            event: Box::new(Event::PriceUpdated {
                symbol: Symbol::new("DOGEUSDT").unwrap(),
                price: crate::domain::Price(rust_decimal_macros::dec!(1)),
                time_ms: 0,
            }),
            at_ms: 0,
        };
        update(&mut app, quiet.clone());
        assert!(
            !app.dirty,
            "a price for a symbol we do not hold changes nothing"
        );
        press(&mut app, "2");
        assert!(app.dirty);
        update(&mut app, quiet);
        assert!(app.dirty, "the screen switch must still be drawn");
    }

    #[test]
    fn kill_switch_asks_first() {
        let mut app = app();
        press(&mut app, "7K");
        assert_eq!(press(&mut app, "y"), vec![Effect::EngageKillSwitch]);
    }
}
