//! Risk: the limits in force with their units and where each comes from; how much of each
//! limit is used (daily loss, drawdown, loss streak, open positions, heat, exposure per symbol)
//! and the distance to the next breaker trip; pause, kill switch and breaker as three states
//! with their countdowns, each strategy's own breaker beside them; the breaker's history.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use super::{header_row, screen_block};
use crate::app::snapshot::Snapshot;
use crate::format as fmt;
use crate::store::account::TradingState;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// A limit's name for people and the unit its value is in.
pub fn limit_label(key: &str) -> (String, &'static str) {
    match known_limit(key) {
        Some((name, unit)) => (name.to_string(), unit),
        None => (capitalise(&fmt::words(key)), ""),
    }
}

/// The name and unit of a limit this screen knows.
fn known_limit(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "risk_per_trade_pct" => ("Risk per trade", "% equity"),
        "max_position_pct" => ("Max position", "% equity"),
        "max_daily_loss_pct" => ("Daily loss limit", "% of day"),
        "max_drawdown_pct" => ("Max drawdown", "% of peak"),
        "max_open_positions" => ("Open positions", "max"),
        "max_symbol_exposure_pct" => ("Exposure/symbol", "% equity"),
        "min_confidence" => ("Min confidence", ""),
        "min_reward_risk" => ("Min reward:risk", "×"),
        "heat_cap_pct" => ("Heat cap", "% equity"),
        "kelly_fraction" => ("Kelly fraction", "×"),
        "kelly_min_trades" => ("Kelly min trades", "trades"),
        "kelly_lookback" => ("Kelly lookback", "trades"),
        "kelly_cap_pct" => ("Kelly cap", "% equity"),
        "atr_multiplier" => ("ATR stop", "× ATR"),
        "consecutive_losses_limit" => ("Loss streak limit", "losses"),
        "cooldown_minutes" => ("Cooldown", "min"),
        "cooldown_candles_after_stop" => ("Stop cooldown", "candles"),
        "stop_lock_count" => ("Lock after", "stops"),
        "stop_lock_window_candles" => ("Lock window", "candles"),
        "stop_lock_candles" => ("Lock for", "candles"),
        "fee_rate" => ("Fee reserve", "×"),
        "slippage_pct" => ("Slippage", "% of price"),
        "min_stop_distance_pct" => ("Min stop distance", "% of entry"),
        "min_stop_atr_multiple" => ("Min stop distance", "× ATR"),
        "sizing_mode" => ("Sizing", ""),
        "daily_loss_action" => ("Daily loss action", ""),
        "daily_loss_recovery" => ("Daily loss reset", ""),
        "consecutive_losses_action" => ("Streak action", ""),
        "consecutive_losses_recovery" => ("Streak reset", ""),
        "drawdown_action" => ("Drawdown action", ""),
        "drawdown_recovery" => ("Drawdown reset", ""),
        "kill_action" => ("Kill action", ""),
        _ => return None,
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// One utilisation bar: how much of a limit is used.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub name: String,
    pub used: f64,
    pub limit: f64,
    /// `used` and `limit` as people read them (`1.20% / 3.00%`, `2 / 3 losses`).
    pub text: String,
    /// A breaker rule: reaching it trips the breaker.
    pub trips_breaker: bool,
}

impl Usage {
    pub fn ratio(&self) -> f64 {
        if self.limit > 0.0 {
            (self.used / self.limit).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

fn limit_value(s: &Snapshot, key: &str) -> Option<f64> {
    s.risk_config
        .iter()
        .find(|(k, _)| k == key || k.ends_with(&format!(".{key}")))
        .and_then(|(_, v)| v.trim_matches('"').parse::<f64>().ok())
}

/// How much of each limit the account uses now.
pub fn usages(s: &Snapshot) -> Vec<Usage> {
    let mut out = Vec::new();
    let pct = |name: &str, used: f64, limit: f64, trips: bool| Usage {
        name: name.into(),
        used,
        limit,
        text: format!("{} / {}", fmt::pct(used), fmt::pct(limit)),
        trips_breaker: trips,
    };
    if let Some(limit) = limit_value(s, "max_daily_loss_pct") {
        out.push(pct(
            "Daily loss",
            (-s.account.daily_pnl_pct).max(0.0),
            limit,
            true,
        ));
    }
    if let Some(limit) = limit_value(s, "max_drawdown_pct") {
        let equity = s.account.equity.to_f64();
        let dd = match s.peak_equity.map(|p| p.to_f64()) {
            Some(peak) if peak > 0.0 => ((peak - equity) / peak * 100.0).max(0.0),
            _ => 0.0,
        };
        out.push(pct("Drawdown", dd, limit, true));
    }
    if let Some(limit) = limit_value(s, "consecutive_losses_limit").filter(|l| *l > 0.0) {
        out.push(Usage {
            name: "Loss streak".into(),
            used: f64::from(s.loss_streak),
            limit,
            text: format!("{} / {} losses", s.loss_streak, limit),
            trips_breaker: true,
        });
    }
    if let Some(limit) = limit_value(s, "max_open_positions") {
        out.push(Usage {
            name: "Open positions".into(),
            used: s.positions.len() as f64,
            limit,
            text: format!("{} / {}", s.positions.len(), limit),
            trips_breaker: false,
        });
    }
    out.push(pct(
        "Heat",
        s.account.heat_pct,
        s.account.heat_cap_pct,
        false,
    ));
    if let Some(limit) = limit_value(s, "max_symbol_exposure_pct") {
        let equity = s.account.equity.to_f64();
        for p in &s.positions {
            let exposure = if equity > 0.0 {
                p.mark.to_f64() * p.qty.to_f64() / equity * 100.0
            } else {
                0.0
            };
            out.push(pct(p.symbol.as_str(), exposure, limit, false));
        }
    }
    out
}

/// The breaker rule closest to tripping, and how far away it is.
pub fn next_trip(s: &Snapshot, currency: &str) -> Option<String> {
    let u = usages(s)
        .into_iter()
        .filter(|u| u.trips_breaker && u.limit > 0.0)
        .max_by(|a, b| a.ratio().total_cmp(&b.ratio()))?;
    let left = (u.limit - u.used).max(0.0);
    Some(if u.name == "Loss streak" {
        format!("{}: {} more loss(es)", u.name, left.round())
    } else {
        let money = s.account.equity.to_f64() * left / 100.0;
        format!(
            "{}: {} ({} {currency}) away",
            u.name,
            fmt::pct(left),
            fmt::number(money, 2)
        )
    })
}

fn bar(ratio: f64, width: usize, theme: Theme) -> Vec<Span<'static>> {
    let n = (ratio * width as f64).round() as usize;
    let style = if ratio >= 1.0 {
        theme.down()
    } else if ratio >= 0.75 {
        theme.warn()
    } else {
        theme.up()
    };
    vec![
        Span::styled("■".repeat(n), style),
        Span::styled("·".repeat(width.saturating_sub(n)), theme.muted()),
    ]
}

/// Pause, kill switch and breaker, each with since when and, where one is due, a countdown.
fn state_lines(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let s = &app.snapshot;
    let now = app.now_ms();
    let label = |t: &'static str| Span::styled(format!("{t:<12}"), theme.muted());
    let who = |by: &Option<String>, why: &Option<String>| {
        let mut t = String::new();
        if let Some(b) = by {
            t.push_str(&format!(" by {b}"));
        }
        if let Some(w) = why.as_deref().filter(|w| !w.is_empty()) {
            t.push_str(&format!(" ({w})"));
        }
        t
    };
    let (pause, kill) = match &s.trading {
        TradingState::Paused { by, why, since } => (
            Span::styled(
                format!("PAUSED{} {}", who(by, why), fmt::ago(*since, now)),
                theme.warn(),
            ),
            Span::styled("off", theme.muted()),
        ),
        TradingState::Killed { by, why, since } => (
            Span::styled("off", theme.muted()),
            Span::styled(
                format!("ENGAGED{} {}", who(by, why), fmt::ago(*since, now)),
                theme.down(),
            ),
        ),
        _ => (
            Span::styled("off · p pauses", theme.muted()),
            Span::styled("off · K engages", theme.muted()),
        ),
    };
    let mut breaker = vec![Span::styled(
        s.breaker.state.label(),
        theme.breaker(s.breaker.state),
    )];
    // The countdown first: it is what a reader of a tripped breaker wants to know.
    if let Some(until) = s.breaker.until.filter(|u| *u > now) {
        breaker.push(Span::raw(format!(" · recovers {}", fmt::ago(until, now))));
    } else if s.breaker.state != crate::domain::risk::BreakerState::Active {
        breaker.push(Span::raw(" · recovers by hand (`trademind resume`)"));
    }
    if !s.breaker.reason.is_empty() {
        breaker.push(Span::styled(
            format!(" · {}", fmt::words(&s.breaker.reason)),
            theme.muted(),
        ));
    }
    let mut lines = vec![
        Line::from([vec![label("Pause")], vec![pause]].concat()),
        Line::from([vec![label("Kill switch")], vec![kill]].concat()),
        Line::from([vec![label("Breaker")], breaker].concat()),
    ];

    if let Some(t) = next_trip(s, &app.currency) {
        lines.push(Line::from(vec![label("Next trip"), Span::raw(t)]));
    }
    // Cooldowns and locks after stops, each with the time left.
    for p in &s.stop_protections {
        use crate::domain::risk::StopProtection;
        let (kind, short) = match p.protection {
            StopProtection::Cooldown {
                elapsed, candles, ..
            } => (
                "Cooldown",
                format!("{elapsed} of {candles} candles after a stop"),
            ),
            StopProtection::Lock { stops, window, .. } => {
                ("Locked", format!("{stops} stops within {window} candles"))
            }
        };
        lines.push(Line::from(vec![
            label(kind),
            Span::styled(
                format!(
                    "{} {} · {} left",
                    p.book_name(),
                    p.symbol,
                    fmt::duration(p.protection.until() - now)
                ),
                theme.warn(),
            ),
            Span::styled(format!(" · {short}"), theme.muted()),
        ]));
    }
    lines
}

/// One row per strategy: its own breaker (which stops that strategy's entries only), today's
/// loss and its drawdown from its own high against its limits, and when it recovers.
/// One strategy's breaker, as its cells.
struct BookLine {
    name: String,
    state: crate::domain::risk::BreakerState,
    day_loss: String,
    drawdown: String,
    /// When and why a tripped breaker recovers; empty while it is active.
    recovers: String,
}

fn book_lines(s: &Snapshot, now: i64) -> Vec<BookLine> {
    let f = |d: rust_decimal::Decimal| crate::domain::Quote(d).to_f64();
    s.books
        .iter()
        .map(|b| {
            let r = &b.risk;
            // "4.1/3%": short enough for 80 columns.
            let used = |x: rust_decimal::Decimal, limit: rust_decimal::Decimal| {
                format!("{}/{}%", fmt::number(f(x), 1), limit.normalize())
            };
            let state = r.breaker.state;
            let recovers = if state == crate::domain::risk::BreakerState::Active {
                String::new()
            } else {
                let when = match r.breaker.until.filter(|u| *u > now) {
                    Some(until) => fmt::ago(until, now),
                    None => "by hand".into(),
                };
                let why = r
                    .breaker
                    .reason
                    .map(|w| format!(" · {}", fmt::words(w.as_str())))
                    .unwrap_or_default();
                format!("{when}{why}")
            };
            BookLine {
                name: r.strategy.clone(),
                state,
                day_loss: used(
                    r.daily_loss_pct.max(rust_decimal::Decimal::ZERO),
                    b.max_daily_loss_pct,
                ),
                drawdown: used(r.drawdown_pct, b.max_drawdown_pct),
                recovers,
            }
        })
        .collect()
}

/// The strategy breakers' lines at a width (borders excluded): a header, then a row a strategy
/// with a Recovers column where it fits. Where it would be cut (80 columns), each tripped
/// breaker's recovery goes under its row instead, on two lines if it needs them.
fn book_text(books: &[BookLine], width: u16, theme: Theme) -> Vec<Line<'static>> {
    if books.is_empty() {
        return Vec::new();
    }
    let inner = width.saturating_sub(2) as usize;
    let widest = |texts: &mut dyn Iterator<Item = usize>| texts.max().unwrap_or(0);
    let name_w = widest(&mut books.iter().map(|b| b.name.chars().count())).clamp(4, 14);
    let state_w = widest(&mut books.iter().map(|b| b.state.label().len())).max(7);
    let recovers_w =
        widest(&mut books.iter().map(|b| b.recovers.chars().count())).max("Recovers".len());
    let day_w = widest(&mut books.iter().map(|b| b.day_loss.chars().count())).max(8);
    let drawdown_w = widest(&mut books.iter().map(|b| b.drawdown.chars().count())).max(8);
    let widths = [name_w, state_w, day_w, drawdown_w];
    let wide = inner >= widths.iter().sum::<usize>() + widths.len() + recovers_w;
    let cell = |text: &str, w: usize| {
        let text: String = text.chars().take(w).collect();
        format!("{text:<w$} ")
    };
    let mut header: String = ["Name", "Breaker", "Day loss", "Drawdown"]
        .iter()
        .zip(widths)
        .map(|(n, w)| cell(n, w))
        .collect();
    if wide {
        header.push_str("Recovers");
    }
    let mut lines = vec![Line::from(Span::styled(header, theme.header()))];
    for b in books {
        let mut row = vec![
            Span::raw(cell(&b.name, name_w)),
            Span::styled(cell(b.state.label(), state_w), theme.breaker(b.state)),
            Span::raw(cell(&b.day_loss, widths[2])),
            Span::raw(cell(&b.drawdown, widths[3])),
        ];
        if wide {
            row.push(Span::styled(b.recovers.clone(), theme.muted()));
        }
        lines.push(Line::from(row));
        if wide || b.recovers.is_empty() {
            continue;
        }
        let under = format!("recovers {}", b.recovers);
        match under.split_once(" · ") {
            Some((when, why)) if under.chars().count() > inner => {
                lines.push(Line::from(Span::styled(when.to_string(), theme.muted())));
                lines.push(Line::from(Span::styled(format!("  {why}"), theme.muted())));
            }
            _ => lines.push(Line::from(Span::styled(under, theme.muted()))),
        }
    }
    lines
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Min(20)]).areas(area);

    let block = screen_block(theme, "Risk", "limits in force");
    let rows: Vec<Row> = if s.risk_limits.is_empty() {
        s.risk_config
            .iter()
            .map(|(k, v)| {
                let (name, unit) = limit_label(k);
                Row::new(vec![
                    Cell::from(name),
                    Cell::from(format!("{} {unit}", fmt::words(v))),
                    Cell::from(""),
                ])
            })
            .collect()
    } else {
        s.risk_limits
            .iter()
            .map(|r| {
                let (name, unit) = limit_label(&r.key);
                Row::new(vec![
                    Cell::from(Span::styled(name, theme.muted())),
                    Cell::from(format!("{} {unit}", fmt::words(&r.value))),
                    Cell::from(Span::styled(
                        r.source.label(),
                        match r.source {
                            crate::app::snapshot::LimitSource::Default => theme.muted(),
                            _ => theme.accent(),
                        },
                    )),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(17),
                Constraint::Min(8),
                Constraint::Length(8),
            ],
        )
        .header(header_row(
            theme,
            &[("Limit", false), ("Value", false), ("Source", false)],
        ))
        .block(block),
        left,
    );

    let state_lines = state_lines(app, theme);
    let usages = usages(s);
    let books = book_text(&book_lines(s, app.now_ms()), right.width, theme);
    // The panels above the history take the lines they need in turn; the history keeps three.
    let mut left_over = right.height.saturating_sub(3);
    let mut take = |wanted: usize| {
        let got = (wanted as u16).min(left_over);
        left_over -= got;
        got
    };
    let heights = [
        // One spare line: a long breaker line wraps rather than being cut.
        take(state_lines.len() + 3),
        take(if books.is_empty() { 0 } else { books.len() + 2 }),
        take(usages.len() + 2),
    ];
    let [state, strategies, usage, history] = Layout::vertical([
        Constraint::Length(heights[0]),
        Constraint::Length(heights[1]),
        Constraint::Length(heights[2]),
        Constraint::Min(3),
    ])
    .areas(right);
    if !books.is_empty() {
        let block = Block::bordered().title(Span::styled(" Strategy breakers ", theme.title()));
        frame.render_widget(Paragraph::new(books).block(block), strategies);
    }
    frame.render_widget(
        Paragraph::new(state_lines)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(
                Block::bordered().title(Span::styled(" Pause · kill · breaker ", theme.title())),
            ),
        state,
    );
    let text_w = usages
        .iter()
        .map(|u| u.text.chars().count())
        .max()
        .unwrap_or(0);
    let bar_w = (usage.width as usize)
        .saturating_sub(2 + 15 + text_w + 2)
        .max(3);
    let lines: Vec<Line> = usages
        .iter()
        .map(|u| {
            let mut spans = vec![
                Span::styled(format!("{:<15}", u.name), Style::new()),
                Span::raw(format!("{:>text_w$} ", u.text)),
            ];
            spans.extend(bar(u.ratio(), bar_w, theme));
            Line::from(spans)
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(" Used of each limit ", theme.title()))),
        usage,
    );

    let times: Vec<String> = s
        .breaker
        .history
        .iter()
        .map(|c| fmt::when(c.at_ms, s.as_of_ms))
        .collect();
    let time_w = super::width_of(times.iter().map(String::as_str), 4);
    // "global" or a strategy's name.
    let scope_w = super::width_of(s.breaker.history.iter().map(|c| c.scope.as_str()), 6).min(12);
    let rows = s.breaker.history.iter().zip(times).map(|(c, time)| {
        Row::new(vec![
            Span::raw(time),
            Span::raw(c.scope.clone()),
            Span::styled(c.state.label(), theme.breaker(c.state)),
            Span::styled(fmt::words(&c.reason), theme.muted()),
        ])
    });
    let mut table_state = TableState::default().with_selected(Some(app.selected(Screen::Risk)));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Length(time_w),
                Constraint::Length(scope_w),
                Constraint::Length(11),
                Constraint::Min(6),
            ],
        )
        .row_highlight_style(theme.selected())
        .block(Block::bordered().title(Span::styled(" Breaker history ", theme.title()))),
        history,
        &mut table_state,
    );
}

#[cfg(test)]
mod label_tests {
    #[test]
    fn every_risk_limit_has_a_name_and_unit_of_its_own() {
        // A key added to RiskConfig without a label showed as its snake_case words, unitless.
        for key in crate::domain::risk::RiskConfig::keys() {
            assert!(super::known_limit(&key).is_some(), "{key} has no label");
        }
    }
}
