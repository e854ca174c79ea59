//! Decisions: the log (confidence colour-coded, verdict, engine) and the selected decision's
//! reasoning, risk checks one by one, sources, tokens, cost and latency.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use super::dashboard::{action_style, confidence_style};
use super::{empty, screen_block};
use crate::app::snapshot::DecisionView;
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let block = screen_block(
        theme,
        "Decisions",
        &format!("{} recorded", s.decisions.len()),
    );
    if s.decisions.is_empty() {
        empty(frame, theme, area, block, "no decisions recorded yet");
        return;
    }
    let wide = area.width >= 120;
    let [list, detail] = if wide {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Min(30)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(6)]).areas(area)
    };
    let times: Vec<String> = s
        .decisions
        .iter()
        .map(|d| fmt::when(d.at_ms, s.as_of_ms))
        .collect();
    let time_w = super::width_of(times.iter().map(String::as_str), 4);
    let rows = s.decisions.iter().zip(times).map(|(d, time)| {
        let conf = d
            .confidence
            .map(|c| {
                Span::styled(
                    format!("{:>3.0}%", c * 100.0),
                    confidence_style(theme, d, c),
                )
            })
            .unwrap_or_else(|| Span::styled("   -", theme.muted()));
        Row::new(vec![
            Span::raw(time),
            Span::raw(d.strategy.clone()),
            Span::raw(d.symbol.clone()),
            Span::styled(d.action.clone(), action_style(theme, &d.action)),
            conf,
            Span::styled(fmt::words(&d.verdict), verdict_style(theme, &d.verdict)),
            Span::styled(d.engine.clone(), theme.accent()),
        ])
    });
    let widths = [
        Constraint::Length(time_w),
        Constraint::Length(if wide { 14 } else { 10 }),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Min(5),
    ];
    let selected = app.selected(Screen::Decisions);
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(
                Row::new(vec![
                    "Time", "Strategy", "Symbol", "Act", "Conf", "Verdict", "Engine",
                ])
                .style(theme.header()),
            )
            .row_highlight_style(theme.selected())
            .block(block),
        list,
        &mut state,
    );
    if let Some(d) = s.decisions.get(selected) {
        frame.render_widget(
            Paragraph::new(detail_lines(theme, d))
                .wrap(Wrap { trim: false })
                .block(
                    Block::bordered()
                        .title(Span::styled(format!(" Decision #{} ", d.id), theme.title())),
                ),
            detail,
        );
    }
}

fn verdict_style(theme: Theme, verdict: &str) -> ratatui::style::Style {
    match verdict {
        "executed" => theme.up(),
        "refused" | "invalid" | "error" => theme.down(),
        _ => theme.muted(),
    }
}

fn detail_lines(theme: Theme, d: &DecisionView) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let engine = match &d.model {
        Some(m) => format!("{} ({m})", d.engine),
        None => d.engine.clone(),
    };
    lines.push(Line::from(vec![
        Span::styled(d.action.clone(), action_style(theme, &d.action)),
        Span::raw(format!(" {} · {} · ", d.symbol, engine)),
        Span::styled(fmt::words(&d.verdict), verdict_style(theme, &d.verdict)),
    ]));
    let mut costs = Vec::new();
    if let (Some(p), Some(c)) = (d.prompt_tokens, d.completion_tokens) {
        costs.push(format!("tokens {p}+{c}"));
    }
    if let Some(c) = d.cost_usd {
        costs.push(format!("cost {}", fmt::usd_cost(c)));
    }
    if let Some(l) = d.latency_ms {
        costs.push(format!("latency {l} ms"));
    }
    if !costs.is_empty() {
        lines.push(Line::from(Span::styled(costs.join(" · "), theme.muted())));
    }
    lines.push(Line::from(Span::styled("Reasoning", theme.title())));
    if d.reasoning.is_empty() {
        lines.push(Line::from(Span::styled("(none given)", theme.muted())));
    } else {
        for l in d.reasoning.lines() {
            lines.push(Line::from(l.to_string()));
        }
    }
    lines.push(Line::from(Span::styled("Risk checks", theme.title())));
    if d.risk_checks.is_empty() {
        let why = if d.execution.is_empty() {
            "(not evaluated)".to_string()
        } else {
            format!("(not evaluated: {})", d.execution)
        };
        lines.push(Line::from(Span::styled(why, theme.muted())));
    }
    for c in &d.risk_checks {
        lines.push(Line::from(vec![
            Span::styled(if c.passed { "✓ " } else { "✗ " }, theme.ok(c.passed)),
            Span::raw(format!("{:<16} ", c.name)),
            Span::styled(c.detail.clone(), theme.muted()),
        ]));
    }
    if !d.refusal_reasons.is_empty() {
        lines.push(Line::from(Span::styled("Refused because", theme.title())));
        for r in &d.refusal_reasons {
            lines.push(Line::from(Span::styled(format!("• {r}"), theme.down())));
        }
    }
    if !d.risk_checks.is_empty() && !d.execution.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("Execution ", theme.title()),
            Span::raw(d.execution.clone()),
        ]));
    }
    if !d.sources.is_empty() {
        lines.push(Line::from(Span::styled("Sources", theme.title())));
        for src in &d.sources {
            lines.push(Line::from(format!("• {src}")));
        }
    }
    lines
}
