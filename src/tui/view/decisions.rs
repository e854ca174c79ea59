//! Decisions: the log with a one-line reason per decision (the binding check in plain words),
//! and the selected decision's detail: every risk check with its numbers, the size
//! calculation, entry/stop/target and reward:risk, the orders placed and, for an LLM decision,
//! the news it read, its prompt and the model's raw reply. Enter opens the detail full screen.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::dashboard::{action_style, confidence_style};
use super::{empty, header_row, num, screen_block};
use crate::app::snapshot::DecisionView;
use crate::format::{self as fmt, Precision};
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// Why the decision ended as it did, in one line: the failed check that bound a refusal, what
/// was done for an executed one, the engine's own words for a hold.
pub fn one_line_reason(d: &DecisionView) -> String {
    let first_line = |t: &str| t.lines().next().unwrap_or("").trim().to_string();
    let failed = d
        .risk_checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", fmt::words(&c.name), c.detail));
    let reason = match d.verdict.as_str() {
        "refused" => failed
            .or_else(|| d.refusal_reasons.first().cloned())
            .unwrap_or_else(|| d.execution.clone()),
        "executed" | "dry_run" if !d.execution.is_empty() => d.execution.clone(),
        "invalid" | "error" => d
            .reasoning
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_default(),
        _ => {
            let r = first_line(&d.reasoning);
            if r.is_empty() { d.execution.clone() } else { r }
        }
    };
    fmt::words(&reason)
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let block = screen_block(
        theme,
        "Decisions",
        &format!(
            "{} recorded · Enter open",
            s.counts.decisions.max(s.decisions.len() as u64)
        ),
    );
    if s.decisions.is_empty() {
        empty(
            frame,
            theme,
            area,
            block,
            if app.in_demo {
                "no decisions yet: the demo's strategies decide as the replay runs"
            } else {
                "no decisions recorded yet: add a strategy (`trademind strategy add`) and run `trademind --daemon`, or try `trademind demo`"
            },
        );
        return;
    }
    let selected = app.selected(Screen::Decisions);
    if app.decision_detail
        && let Some(d) = s.decisions.get(selected)
    {
        draw_detail(frame, app, theme, area, d);
        return;
    }
    let wide = area.width >= 120;
    // The strategy column only where it does not squeeze the reason.
    let very_wide = area.width >= 160;
    let [list, detail] = if wide {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Min(30)]).areas(area)
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
        let conf = match d.confidence {
            Some(c) => num(format!("{:.0}%", c * 100.0), confidence_style(theme, d, c)),
            None => num("-".into(), theme.muted()),
        };
        let mut cells: Vec<Cell> = vec![
            Cell::from(time),
            Cell::from(d.symbol.clone()),
            Cell::from(Span::styled(
                d.action.clone(),
                action_style(theme, &d.action),
            )),
            conf,
            Cell::from(Span::styled(
                fmt::words(&d.verdict),
                verdict_style(theme, &d.verdict),
            )),
            Cell::from(Span::styled(one_line_reason(d), theme.muted())),
        ];
        if very_wide {
            cells.insert(1, Cell::from(d.strategy.clone()));
        }
        Row::new(cells)
    });
    let mut header = vec![
        ("Time", false),
        ("Symbol", false),
        ("Act", false),
        ("Conf", true),
        ("Verdict", false),
        ("Reason", false),
    ];
    let mut widths = vec![
        Constraint::Length(time_w),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    if very_wide {
        header.insert(1, ("Strategy", false));
        widths.insert(1, Constraint::Length(12));
    }
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header_row(theme, &header))
            .row_highlight_style(theme.selected())
            .block(block),
        list,
        &mut state,
    );
    if let Some(d) = s.decisions.get(selected) {
        frame.render_widget(
            Paragraph::new(detail_lines(app, theme, d))
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(Span::styled(
                    format!(" Decision #{} · Enter full screen ", d.id),
                    theme.title(),
                ))),
            detail,
        );
    }
}

/// The selected decision over the whole screen, scrolled with j/k and PgUp/PgDn.
fn draw_detail(frame: &mut Frame, app: &App, theme: Theme, area: Rect, d: &DecisionView) {
    frame.render_widget(
        Paragraph::new(detail_lines(app, theme, d))
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0))
            .block(screen_block(
                theme,
                &format!("Decision #{}", d.id),
                "j k PgUp PgDn scroll · Esc back",
            )),
        area,
    );
}

fn verdict_style(theme: Theme, verdict: &str) -> ratatui::style::Style {
    match verdict {
        "executed" => theme.up(),
        "refused" | "invalid" | "error" => theme.down(),
        _ => theme.muted(),
    }
}

fn detail_lines(app: &App, theme: Theme, d: &DecisionView) -> Vec<Line<'static>> {
    let prec: Precision = app.precision(&d.symbol);
    let mut lines = Vec::new();
    let engine = match &d.model {
        Some(m) => format!("{} ({m})", d.engine),
        None => d.engine.clone(),
    };
    lines.push(Line::from(vec![
        Span::styled(d.action.clone(), action_style(theme, &d.action)),
        Span::raw(format!(" {} · {} · ", d.symbol, engine)),
        Span::styled(fmt::words(&d.verdict), verdict_style(theme, &d.verdict)),
        Span::styled(
            format!(
                " · {} · {}",
                if d.strategy.is_empty() {
                    "no strategy"
                } else {
                    &d.strategy
                },
                fmt::timestamp(d.at_ms)
            ),
            theme.muted(),
        ),
    ]));
    let mut costs = Vec::new();
    if let Some(c) = d.confidence {
        costs.push(format!("confidence {:.0}%", c * 100.0));
    }
    if let (Some(p), Some(c)) = (d.prompt_tokens, d.completion_tokens) {
        costs.push(format!(
            "tokens {}+{}",
            fmt::number(p.into(), 0),
            fmt::number(c.into(), 0)
        ));
    }
    if let Some(c) = d.cost_usd {
        costs.push(format!("cost {}", fmt::usd_cost(c)));
    }
    if let Some(l) = d.latency_ms {
        costs.push(format!("latency {} ms", fmt::number(l as f64, 0)));
    }
    if !costs.is_empty() {
        lines.push(Line::from(Span::styled(costs.join(" · "), theme.muted())));
    }
    lines.push(Line::from(vec![
        Span::styled("Why ", theme.title()),
        Span::raw(one_line_reason(d)),
    ]));
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
            format!("(not evaluated: {})", fmt::words(&d.execution))
        };
        lines.push(Line::from(Span::styled(why, theme.muted())));
    }
    let name_w = d
        .risk_checks
        .iter()
        .map(|c| fmt::words(&c.name).chars().count())
        .max()
        .unwrap_or(0);
    for c in &d.risk_checks {
        lines.push(Line::from(vec![
            Span::styled(if c.passed { "✓ " } else { "✗ " }, theme.ok(c.passed)),
            Span::raw(format!("{:<name_w$}  ", fmt::words(&c.name))),
            Span::styled(c.detail.clone(), theme.muted()),
        ]));
    }
    if !d.refusal_reasons.is_empty() {
        lines.push(Line::from(Span::styled("Refused because", theme.title())));
        for r in &d.refusal_reasons {
            lines.push(Line::from(Span::styled(format!("• {r}"), theme.down())));
        }
    }
    if let Some(z) = &d.sizing {
        lines.push(Line::from(Span::styled("Size", theme.title())));
        lines.push(Line::from(format!(
            "{} {} × {} = {}; a stop-out loses {}",
            fmt::qty(z.quantity, &prec),
            prec.base,
            fmt::price(z.entry, &prec),
            fmt::money(z.notional, &prec.quote),
            fmt::money(z.risk_amount, &prec.quote),
        )));
        let level = |p: Option<crate::domain::Price>| {
            p.map(|p| fmt::price(p, &prec))
                .unwrap_or_else(|| "none".into())
        };
        lines.push(Line::from(format!(
            "entry {} · stop {} · target {} · reward:risk {}",
            fmt::price(z.entry, &prec),
            level(z.stop),
            level(z.target),
            z.reward_to_risk()
                .map(|r| format!("{}:1", fmt::number(r, 2)))
                .unwrap_or_else(|| "-".into()),
        )));
    }
    if !d.risk_checks.is_empty() && !d.execution.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("Execution ", theme.title()),
            Span::raw(d.execution.clone()),
        ]));
    }
    if !d.order_ids.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("Orders ", theme.title()),
            Span::raw(d.order_ids.join(", ")),
        ]));
    }
    if !d.sources.is_empty() {
        lines.push(Line::from(Span::styled("News", theme.title())));
        for src in &d.sources {
            lines.push(Line::from(format!("• {src}")));
        }
    }
    if let Some(p) = &d.prompt {
        lines.push(Line::from(Span::styled("Prompt", theme.title())));
        for l in p.lines() {
            lines.push(Line::from(Span::styled(l.to_string(), theme.muted())));
        }
    }
    if let Some(r) = &d.raw_reply {
        lines.push(Line::from(Span::styled("Raw reply", theme.title())));
        for l in r.lines() {
            lines.push(Line::from(l.to_string()));
        }
    }
    lines
}
