//! Backtests: the runs with status and live progress; a run's metrics, equity and drawdown
//! curves and trades; `n` opens the form that starts a new run.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

use super::charts::{DrawdownChart, EquityChart, glyph};
use super::{empty, header_row, num, screen_block};
use crate::app::snapshot::BacktestView;
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::widgets::Cell;

fn progress_bar(fraction: f64, width: usize) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled),
        "░".repeat(width - filled),
        fraction * 100.0
    )
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let selected = app.selected(Screen::Backtests);
    if let Some(cmp) = &app.backtest_comparison {
        super::compare::draw(frame, app, theme, area, cmp);
        return;
    }
    if app.backtest_detail
        && let Some(b) = s.backtests.get(selected)
    {
        draw_detail(frame, app, theme, area, b);
        return;
    }
    let marked = match app.backtest_marked.len() {
        0 => "space mark".to_string(),
        n => format!("{n} marked · c compare"),
    };
    let block = screen_block(
        theme,
        "Backtests",
        &format!("{} runs · Enter open · n new · {marked}", s.backtests.len()),
    );
    if s.backtests.is_empty() {
        empty(
            frame,
            theme,
            area,
            block,
            "no backtests yet: press n to start one (it needs candles: `trademind data fetch BTCUSDT 1h --from 2025-01-01`)",
        );
        return;
    }
    let wide = area.width >= 100;
    let rows = s.backtests.iter().map(|b| {
        let status = match b.progress {
            Some(p) if b.status == "running" => {
                Span::styled(progress_bar(p, if wide { 12 } else { 6 }), theme.accent())
            }
            _ => Span::styled(b.status.clone(), status_style(theme, &b.status)),
        };
        let ret = b.metrics.as_ref().map(|m| m.total_return_pct);
        let mut cells: Vec<Cell> = vec![
            Cell::from(if app.backtest_marked.contains(&b.id) {
                Span::styled(format!("✓#{}", b.id), theme.accent())
            } else {
                Span::raw(format!(" #{}", b.id))
            }),
            Cell::from(b.strategy.clone()),
            Cell::from(b.symbol.clone()),
            Cell::from(b.interval.clone()),
            Cell::from(status),
            num(
                ret.map(fmt::pct_signed).unwrap_or_else(|| "-".into()),
                theme.signed(ret.unwrap_or(0.0)),
            ),
        ];
        if wide {
            cells.push(Cell::from(Span::styled(b.params.clone(), theme.muted())));
        }
        Row::new(cells)
    });
    let mut header = vec![
        ("Run", false),
        ("Strategy", false),
        ("Symbol", false),
        ("Int", false),
        ("Status", false),
        ("Return", true),
    ];
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(if wide { 17 } else { 11 }),
        Constraint::Min(7),
    ];
    if wide {
        header.push(("Parameters", false));
        widths.pop();
        widths.extend([Constraint::Length(9), Constraint::Min(10)]);
    }
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header_row(theme, &header))
            .row_highlight_style(theme.selected())
            .block(block),
        area,
        &mut state,
    );
}

fn status_style(theme: Theme, status: &str) -> ratatui::style::Style {
    match status {
        "completed" => theme.up(),
        "failed" | "cancelled" => theme.down(),
        _ => theme.warn(),
    }
}

fn draw_detail(frame: &mut Frame, app: &App, theme: Theme, area: Rect, b: &BacktestView) {
    let prec = app.precision(&b.symbol);
    let now = app.now_ms();
    let block = screen_block(
        theme,
        "Backtests",
        &format!(
            "#{} {} {} {} {} · Esc back",
            b.id, b.strategy, b.symbol, b.interval, b.status
        ),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [top, trades] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Min(3)]).areas(inner);
    let [metrics, charts] =
        Layout::horizontal([Constraint::Length(40), Constraint::Min(10)]).areas(top);
    let mut lines: Vec<Line> = Vec::new();
    if !b.params.is_empty() {
        lines.push(Line::from(Span::styled(b.params.clone(), theme.muted())));
    }
    if let Some(p) = b.progress.filter(|_| b.status == "running") {
        lines.push(Line::from(Span::styled(
            progress_bar(p, 20),
            theme.accent(),
        )));
    }
    if let Some(e) = &b.error {
        lines.push(Line::from(Span::styled(e.clone(), theme.down())));
    }
    // Label and value in columns of their own, the value right-aligned: a key never runs
    // into its value.
    let value_w = (metrics.width as usize).saturating_sub(2 + 15).max(1);
    if let Some(m) = &b.metrics {
        for (k, v) in fmt::backtest_metrics(m, &prec.quote) {
            lines.push(Line::from(vec![
                Span::styled(format!("{k:<15}"), theme.muted()),
                Span::raw(format!("{v:>value_w$}")),
            ]));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::bordered().title(Span::styled(" Metrics ", theme.title()))),
        metrics,
    );
    let [eq, dd] = Layout::vertical([Constraint::Percentage(60), Constraint::Min(3)]).areas(charts);
    // Most important first: a narrow title is cut at its end.
    let mut eq_title = vec![
        Span::styled(" Equity ", theme.title()),
        Span::styled("⠿ strategy ", theme.accent()),
    ];
    let with_times = b.curve_times.len() == b.equity_curve.len();
    if with_times && b.buy_and_hold.len() == b.equity_curve.len() {
        eq_title.push(Span::styled(
            format!("{} buy & hold ", glyph::BENCHMARK),
            theme.overlay(0),
        ));
    }
    eq_title.push(Span::styled(
        format!(
            "{} high-water {} drawdown ",
            glyph::HIGH_WATER,
            glyph::DRAWDOWN
        ),
        theme.muted(),
    ));
    let eq_block = Block::bordered().title(Line::from(eq_title));
    let points: Vec<(i64, f64)> = if with_times {
        b.curve_times
            .iter()
            .copied()
            .zip(b.equity_curve.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    if points.len() < 2 {
        empty(frame, theme, eq, eq_block, "no equity curve yet");
    } else {
        let inner = eq_block.inner(eq);
        frame.render_widget(eq_block, eq);
        frame.render_widget(
            EquityChart {
                points: &points,
                benchmark: &b.buy_and_hold,
                theme,
            },
            inner,
        );
    }
    let max_dd = b.drawdown.iter().copied().fold(0.0, f64::min);
    let dd_block = Block::bordered().title(Span::styled(
        format!(" Drawdown (max {}) ", fmt::pct_signed(max_dd)),
        theme.title(),
    ));
    let dd_points: Vec<(i64, f64)> = if b.curve_times.len() == b.drawdown.len() {
        b.curve_times
            .iter()
            .copied()
            .zip(b.drawdown.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    if dd_points.len() < 2 {
        empty(frame, theme, dd, dd_block, "no drawdown yet");
    } else {
        let inner = dd_block.inner(dd);
        frame.render_widget(dd_block, dd);
        frame.render_widget(
            DrawdownChart {
                points: &dd_points,
                theme,
            },
            inner,
        );
    }
    let rows = b.trades.iter().map(|t| {
        Row::new(vec![
            Cell::from(fmt::when(t.entry_ms, now)),
            Cell::from(fmt::when(t.exit_ms, now)),
            Cell::from(t.side.clone()),
            num(fmt::price(t.entry, &prec), theme.base()),
            num(fmt::price(t.exit, &prec), theme.base()),
            num(fmt::qty(t.qty, &prec), theme.base()),
            num(
                fmt::amount_signed(t.pnl, &prec.quote),
                theme.signed(t.pnl.to_f64()),
            ),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Length(5),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Min(9),
            ],
        )
        .header(header_row(
            theme,
            &[
                ("Entry", false),
                ("Exit", false),
                ("Side", false),
                ("In", true),
                ("Out", true),
                ("Qty", true),
                ("PnL", true),
            ],
        ))
        .block(Block::bordered().title(Span::styled(
            format!(" Trades ({}) ", b.trades.len()),
            theme.title(),
        ))),
        trades,
    );
}
