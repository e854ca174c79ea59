//! The pure update: `update(app, action)` changes the state and returns the effects the caller
//! must carry out. No I/O, no clock: everything it needs arrives in the action.

use crate::app::bus::Event;
use crate::app::snapshot::{
    BreakerChange, BreakerState, ComponentHealth, LogLevel, LogLine, Snapshot,
};
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
    app.dirty = true;
    // Background reports apply whatever dialog is open.
    match action {
        Action::SnapshotLoaded(snap) => {
            apply_snapshot(app, *snap);
            return Vec::new();
        }
        Action::LoadFailed(msg) => {
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
            Action::Submit => run_command(app, &line),
            Action::Back => Vec::new(),
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
                form.focus = (form.focus + BacktestForm::LABELS.len() - 1) % BacktestForm::LABELS.len();
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
    app.snapshot = snap;
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
            app.backtest_detail = !app.snapshot.backtests.is_empty() && !app.backtest_detail
        }
        Action::Back => {
            app.backtest_detail = false;
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
                    Effect::ClosePosition { symbol },
                )
            }
        }
        Action::CancelOrder if app.screen == Screen::Positions => {
            if let Some(o) = app.snapshot.open_orders.get(app.order_selected) {
                let effect = Effect::CancelOrder {
                    symbol: o.symbol.clone(),
                    client_order_id: o.client_order_id.clone(),
                };
                confirm(
                    app,
                    format!("Cancel order {} ({} {})?", o.client_order_id, o.side, o.symbol),
                    effect,
                )
            }
        }
        Action::NewBacktest if app.screen == Screen::Backtests => {
            let s = &app.snapshot;
            app.overlay = Overlay::BacktestForm(BacktestForm {
                strategy: s.strategies.first().cloned().unwrap_or_default(),
                symbol: s.market.symbol.as_str().to_string(),
                interval: s.market.interval.as_str().to_string(),
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
            let choices = unique(app.snapshot.trades.iter().map(|t| t.strategy.clone()).collect());
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
                return vec![Effect::SwitchMarket {
                    symbol: next,
                    interval: m.interval,
                }];
            }
        }
        Action::CycleMarketInterval if app.screen == Screen::Market => {
            let m = &app.snapshot.market;
            let i = Interval::ALL.iter().position(|x| *x == m.interval).unwrap_or(0);
            let next = Interval::ALL[(i + 1) % Interval::ALL.len()];
            return vec![Effect::SwitchMarket {
                symbol: m.symbol.clone(),
                interval: next,
            }];
        }
        Action::Refresh => return vec![Effect::Refresh],
        _ => app.dirty = false,
    }
    Vec::new()
}

fn start_backtest(app: &mut App, req: BacktestRequest) -> Vec<Effect> {
    set_status(
        app,
        StatusKind::Info,
        format!("backtest {} {} {} requested", req.strategy, req.symbol, req.interval),
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

fn parse_form(form: &BacktestForm) -> Result<BacktestRequest, String> {
    let strategy = form.strategy.trim();
    if strategy.is_empty() {
        return Err("strategy is required".into());
    }
    let symbol =
        Symbol::new(form.symbol.trim()).map_err(|e| format!("symbol: {e}"))?;
    let interval = form
        .interval
        .trim()
        .parse::<Interval>()
        .map_err(|e| e.to_string())?;
    let words: Vec<&str> = form.params.split_whitespace().collect();
    Ok(BacktestRequest {
        strategy: strategy.to_string(),
        symbol,
        interval,
        params: parse_params(&words)?,
    })
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
            vec![Effect::SwitchMarket { symbol, interval }]
        }
        "backtest" | "bt" => {
            let Some((&strategy, params)) = rest.split_first() else {
                return fail(
                    app,
                    "usage: :backtest STRATEGY [symbol=BTCUSDT] [interval=1h] [key=value ...]"
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
            format!("unknown command {other:?}; try :backtest, :pause, :resume, :market, :kill, :quit"),
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
            let still_open = status
                .parse::<crate::domain::trading::order::OrderStatus>()
                .map(|s| s.is_open())
                .unwrap_or(true);
            if let Some(i) = snap
                .open_orders
                .iter()
                .position(|o| o.client_order_id == client_order_id)
            {
                if still_open {
                    snap.open_orders[i].status = status;
                } else {
                    snap.open_orders.remove(i);
                }
            }
            clamp_cursors(app);
            return vec![Effect::Refresh];
        }
        Event::PositionChanged { .. } | Event::DecisionRecorded { .. } => {
            return vec![Effect::Refresh];
        }
        Event::BreakerChanged {
            scope,
            state,
            reason,
        } => {
            let parsed = BreakerState::parse(&state).unwrap_or(BreakerState::Halted);
            if scope == "global" {
                snap.breaker.state = parsed;
                snap.breaker.reason = reason.clone();
            }
            snap.breaker.history.insert(
                0,
                BreakerChange {
                    at_ms,
                    scope,
                    state: parsed,
                    reason,
                },
            );
        }
        Event::HealthChanged {
            component,
            healthy,
            detail,
        } => match snap.health.iter_mut().find(|h| h.name == component) {
            Some(h) => {
                h.healthy = healthy;
                h.detail = detail;
            }
            None => snap.health.push(ComponentHealth {
                name: component,
                healthy,
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
            let (level, message) = if ok {
                (LogLevel::Info, format!("job {job} finished"))
            } else {
                (
                    LogLevel::Error,
                    format!("job {job} failed: {}", error.unwrap_or_default()),
                )
            };
            push_log(app, at_ms, level, "jobs".into(), message);
            return vec![Effect::Refresh];
        }
        Event::Log {
            level,
            target,
            message,
        } => push_log(app, at_ms, LogLevel::parse(&level), target, message),
        Event::ShuttingDown => {
            set_status(app, StatusKind::Warning, "the system is shutting down".into())
        }
    }
    Vec::new()
}

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
