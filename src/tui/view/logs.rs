//! Logs: a health panel (each job's last run, amber when stale), an activity feed of what
//! happened to the account (fills, stop and target hits, refusals with their reason, breaker
//! and operator actions, warnings and alerts), and the recent log lines filtered by minimum
//! level (f). Job heartbeats live in the health panel, not in the log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use super::{empty, screen_block};
use crate::app::snapshot::LogLevel;
use crate::domain::trading::order::Side;
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// One line of the activity feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub at_ms: i64,
    pub kind: &'static str,
    pub text: String,
    /// Good news, bad news or neither: the line's colour.
    pub tone: i8,
}

/// What happened to the account, newest first, at most `limit` lines.
pub fn activity(app: &App, limit: usize) -> Vec<Activity> {
    let s = &app.snapshot;
    let mut out = Vec::new();
    for t in &s.trades {
        let prec = app.precision(t.symbol.as_str());
        let mut text = format!(
            "{} {} {} at {}",
            t.side.as_str(),
            fmt::qty(t.qty, &prec),
            t.symbol.as_str(),
            fmt::price(t.price, &prec)
        );
        if let Some(p) = t.realised_pnl {
            text.push_str(&format!(
                " · realised {}",
                fmt::money_signed(p, &prec.quote)
            ));
        }
        let tone = match t.realised_pnl {
            Some(p) if p.is_positive() => 1,
            Some(p) if !p.is_zero() => -1,
            _ => 0,
        };
        let kind = match t.purpose.as_str() {
            "stop_loss" => "STOP HIT",
            "take_profit" => "TARGET",
            "exit" => "EXIT",
            _ if t.side == Side::Sell && t.realised_pnl.is_some() => "EXIT",
            _ => "FILL",
        };
        out.push(Activity {
            at_ms: t.at_ms,
            kind,
            text,
            tone,
        });
    }
    for d in s.decisions.iter().filter(|d| d.verdict == "refused") {
        out.push(Activity {
            at_ms: d.at_ms,
            kind: "REFUSED",
            text: format!(
                "{} {}: {}",
                d.action,
                d.symbol,
                super::decisions::one_line_reason(d)
            ),
            tone: -1,
        });
    }
    for c in &s.breaker.history {
        out.push(Activity {
            at_ms: c.at_ms,
            kind: "BREAKER",
            text: format!(
                "{} {} · {}",
                c.scope,
                c.state.label(),
                fmt::words(&c.reason)
            ),
            tone: if c.state == crate::domain::risk::BreakerState::Active {
                1
            } else {
                -1
            },
        });
    }
    for l in s.logs.iter().filter(|l| l.level >= LogLevel::Warn) {
        out.push(Activity {
            at_ms: l.at_ms,
            kind: if l.level == LogLevel::Error {
                "ALERT"
            } else {
                "WARN"
            },
            text: format!("{}: {}", l.target, l.message),
            tone: -1,
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
    out.truncate(limit);
    out
}

fn tone_style(theme: Theme, tone: i8) -> Style {
    match tone {
        1 => theme.up(),
        -1 => theme.down(),
        _ => theme.base(),
    }
}

/// Each job: when it last ran, amber when stale, red when failing.
fn health_line(app: &App, theme: Theme) -> Line<'static> {
    let s = &app.snapshot;
    let now = app.now_ms();
    let mut spans = Vec::new();
    if s.health.is_empty() && app.heartbeats.is_empty() {
        spans.push(Span::styled(
            if app.in_demo {
                "nothing has run yet: the demo's replay is starting"
            } else {
                "nothing has run yet: start the engine with `trademind --daemon` (or try `trademind demo`)"
            },
            theme.muted(),
        ));
    }
    for h in &s.health {
        let (dot, style) = match (h.healthy, h.stale) {
            (false, _) => ("✖ ", theme.down()),
            (true, true) => ("● ", theme.warn()),
            (true, false) => ("● ", theme.up()),
        };
        spans.push(Span::styled(dot, style));
        spans.push(Span::raw(h.name.clone()));
        let last = app.heartbeats.get(&h.name).copied();
        let note = match (h.healthy, last) {
            (false, _) => format!(" {}", h.detail),
            (true, Some(at)) => format!(" last run {}", fmt::ago(at, now)),
            (true, None) if h.stale => " stale".to_string(),
            _ => String::new(),
        };
        spans.push(Span::styled(
            note,
            if h.stale { theme.warn() } else { theme.muted() },
        ));
        spans.push(Span::raw("   "));
    }
    for (job, at) in &app.heartbeats {
        if s.health.iter().any(|h| &h.name == job) {
            continue;
        }
        spans.push(Span::styled("● ", theme.up()));
        spans.push(Span::raw(job.clone()));
        spans.push(Span::styled(
            format!(" last run {}", fmt::ago(*at, now)),
            theme.muted(),
        ));
        spans.push(Span::raw("   "));
    }
    Line::from(spans)
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let lines = app.visible_logs();
    let [health, feed, log] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Percentage(45),
        Constraint::Min(4),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(health_line(app, theme))
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(Span::styled(" Health ", theme.title()))),
        health,
    );

    let now = app.now_ms();
    let items = activity(app, 200);
    let feed_block = Block::bordered().title(Span::styled(" Activity ", theme.title()));
    if items.is_empty() {
        empty(
            frame,
            theme,
            feed,
            feed_block,
            "no activity yet: fills, stops, refusals and breaker changes appear here",
        );
    } else {
        let times: Vec<String> = items.iter().map(|a| fmt::when(a.at_ms, now)).collect();
        let time_w = super::width_of(times.iter().map(String::as_str), 4);
        let rows = items.iter().zip(times).map(|(a, time)| {
            Row::new(vec![
                Span::styled(time, theme.muted()),
                Span::styled(a.kind, tone_style(theme, a.tone)),
                Span::raw(a.text.clone()),
            ])
        });
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(time_w),
                    Constraint::Length(9),
                    Constraint::Min(10),
                ],
            )
            .block(feed_block),
            feed,
        );
    }

    let block = screen_block(
        theme,
        "Logs",
        &format!(
            "{} lines ≥ {} · f level",
            lines.len(),
            app.log_min_level.label()
        ),
    );
    if lines.is_empty() {
        empty(frame, theme, log, block, "no log lines at this level yet");
        return;
    }
    let wide = area.width >= 100;
    let times: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| fmt::when(l.at_ms, now))
        .collect();
    let time_w = super::width_of(times.iter().map(String::as_str), 4);
    let rows = lines.iter().rev().zip(times).map(|(l, time)| {
        let mut cells = vec![
            Span::styled(time, theme.muted()),
            Span::styled(l.level.label(), theme.level(l.level)),
        ];
        if wide {
            cells.push(Span::styled(l.target.clone(), theme.muted()));
        }
        cells.push(Span::raw(l.message.clone()));
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(time_w), Constraint::Length(5)];
    let mut header = vec!["Time", "Level"];
    if wide {
        widths.push(Constraint::Length(18));
        header.push("Target");
    }
    header.push("Message");
    widths.push(Constraint::Min(10));
    // Newest first, so the cursor at the top follows new lines as they arrive.
    let mut state = TableState::default().with_selected(Some(app.selected(Screen::Logs)));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.header()))
            .row_highlight_style(theme.muted())
            .block(block),
        log,
        &mut state,
    );
}
