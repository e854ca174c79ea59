//! Dashboard: equity and its curve, daily PnL, balance, heat against its cap, the breaker, open
//! positions, the last decisions and component health.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, LineGauge, Paragraph, Row, Table};

use super::charts::{EquityChart, glyph};
use super::{empty, header_row, num, screen_block};
use crate::format as fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::widgets::Cell;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let [top, middle, bottom] = Layout::vertical([
        // A taller terminal gives the equity chart more rows to resolve a move.
        Constraint::Length(if area.height >= 36 { 12 } else { 7 }),
        Constraint::Min(4),
        Constraint::Length(3),
    ])
    .areas(area);
    let [account, curve] =
        Layout::horizontal([Constraint::Length(36), Constraint::Min(10)]).areas(top);

    let block = screen_block(theme, "Dashboard", "");
    let inner = block.inner(account);
    frame.render_widget(block, account);
    let a = &s.account;
    let ccy = app.currency.as_str();
    let now = app.now_ms();
    let rows = Layout::vertical([Constraint::Length(1); 5]).split(inner);
    let label = |t: &str| Span::styled(format!("{t:<11}"), theme.muted());
    frame.render_widget(
        Line::from(vec![
            label("Equity"),
            Span::styled(fmt::money(a.equity, ccy), theme.header()),
        ]),
        rows[0],
    );
    frame.render_widget(
        Line::from(vec![
            label("Daily PnL"),
            Span::styled(
                format!(
                    "{} {}",
                    fmt::amount_signed(a.daily_pnl, ccy),
                    fmt::pct_signed(a.daily_pnl_pct)
                ),
                theme.signed(a.daily_pnl.to_f64()),
            ),
        ]),
        rows[1],
    );
    frame.render_widget(
        Line::from(vec![
            label("Available"),
            Span::raw(fmt::money(a.available_balance, ccy)),
        ]),
        rows[2],
    );
    let ratio = if a.heat_cap_pct > 0.0 {
        (a.heat_pct / a.heat_cap_pct).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let heat_style = if ratio >= 1.0 {
        theme.down()
    } else if ratio >= 0.8 {
        theme.warn()
    } else {
        theme.up()
    };
    frame.render_widget(
        LineGauge::default()
            .ratio(ratio)
            .label(Line::from(vec![
                label("Heat"),
                Span::raw(format!(
                    "{} of {} ",
                    fmt::pct(a.heat_pct),
                    fmt::pct(a.heat_cap_pct)
                )),
            ]))
            .filled_style(heat_style)
            .unfilled_style(theme.muted()),
        rows[3],
    );
    let mut breaker = vec![
        label("Breaker"),
        Span::styled(s.breaker.state.label(), theme.breaker(s.breaker.state)),
    ];
    if !s.breaker.reason.is_empty() {
        breaker.push(Span::styled(
            format!(" {}", fmt::words(&s.breaker.reason)),
            theme.muted(),
        ));
    }
    frame.render_widget(Line::from(breaker), rows[4]);

    let curve_block = Block::bordered().title(Line::from(vec![
        Span::styled(" Equity ", theme.title()),
        Span::styled(
            format!(
                "{} high-water {} drawdown ",
                glyph::HIGH_WATER,
                glyph::DRAWDOWN
            ),
            theme.muted(),
        ),
    ]));
    // A curve needs time to run over: a fresh account's start and now can share a stamp.
    let spans_time = match (a.equity_curve.first(), a.equity_curve.last()) {
        (Some(first), Some(last)) => first.0 < last.0,
        _ => false,
    };
    if !spans_time {
        empty(frame, theme, curve, curve_block, "no closed trades yet");
    } else {
        let inner = curve_block.inner(curve);
        frame.render_widget(curve_block, curve);
        frame.render_widget(
            EquityChart {
                points: &a.equity_curve,
                benchmark: &[],
                theme,
            },
            inner,
        );
    }

    let wide = area.width >= 100;
    let [positions, decisions] = Layout::horizontal([
        Constraint::Percentage(if wide { 55 } else { 50 }),
        Constraint::Min(10),
    ])
    .areas(middle);
    let pos_block = Block::bordered().title(Span::styled(
        format!(" Open positions ({}) ", s.positions.len()),
        theme.title(),
    ));
    if s.positions.is_empty() {
        empty(
            frame,
            theme,
            positions,
            pos_block,
            if app.in_demo {
                "no open positions yet · the demo's strategies open them as the replay runs"
            } else {
                "no open positions · new here? `trademind demo` shows the whole loop"
            },
        );
    } else {
        let rows = s.positions.iter().map(|p| {
            let prec = app.precision(p.symbol.as_str());
            let mut cells: Vec<Cell> = vec![
                Cell::from(p.symbol.as_str().to_string()),
                num(fmt::qty(p.qty, &prec), theme.base()),
                num(fmt::price(p.mark, &prec), theme.base()),
                num(
                    fmt::amount_signed(p.unrealised_pnl, &prec.quote),
                    theme.signed(p.unrealised_pnl.to_f64()),
                ),
            ];
            if wide {
                cells.insert(2, num(fmt::price(p.entry, &prec), theme.base()));
                cells.push(num(fmt::pct(p.heat_pct), theme.base()));
            }
            Row::new(cells)
        });
        let (header, widths) = if wide {
            (
                vec![
                    ("Symbol", false),
                    ("Qty", true),
                    ("Entry", true),
                    ("Mark", true),
                    ("uPnL", true),
                    ("Heat", true),
                ],
                vec![
                    Constraint::Length(10),
                    Constraint::Length(10),
                    Constraint::Length(11),
                    Constraint::Length(11),
                    Constraint::Length(10),
                    Constraint::Length(7),
                ],
            )
        } else {
            (
                vec![
                    ("Symbol", false),
                    ("Qty", true),
                    ("Mark", true),
                    ("uPnL", true),
                ],
                vec![
                    Constraint::Length(8),
                    Constraint::Length(7),
                    Constraint::Length(10),
                    Constraint::Length(8),
                ],
            )
        };
        frame.render_widget(
            Table::new(rows, widths)
                .header(header_row(theme, &header))
                .block(pos_block),
            positions,
        );
    }

    let dec_block = Block::bordered().title(Span::styled(" Last decisions ", theme.title()));
    if s.decisions.is_empty() {
        empty(
            frame,
            theme,
            decisions,
            dec_block,
            "no decisions yet: add a strategy (`trademind strategy add`), then run `trademind --daemon`",
        );
    } else {
        let times: Vec<String> = s
            .decisions
            .iter()
            .map(|d| fmt::when(d.at_ms, now))
            .collect();
        let time_w = super::width_of(times.iter().map(String::as_str), 4);
        let rows = s.decisions.iter().zip(&times).map(|(d, time)| {
            let conf = match d.confidence {
                Some(c) => num(format!("{:.0}%", c * 100.0), confidence_style(theme, d, c)),
                None => num("-".into(), theme.muted()),
            };
            let mut cells: Vec<Cell> = vec![
                Cell::from(time.clone()),
                Cell::from(d.symbol.clone()),
                Cell::from(Span::styled(
                    d.action.clone(),
                    action_style(theme, &d.action),
                )),
                conf,
                Cell::from(fmt::words(&d.verdict)),
            ];
            if wide {
                cells.push(Cell::from(Span::styled(d.engine.clone(), theme.muted())));
            } else {
                // No room for the confidence beside a dated time: the verdict matters more.
                cells.remove(3);
            }
            Row::new(cells)
        });
        let mut widths = vec![
            Constraint::Length(time_w),
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Min(6),
        ];
        if wide {
            widths.push(Constraint::Length(6));
        } else {
            widths.remove(3);
        }
        frame.render_widget(Table::new(rows, widths).block(dec_block), decisions);
    }

    let mut health = Vec::new();
    if s.health.is_empty() {
        health.push(Span::styled("no component has reported yet", theme.muted()));
    }
    for h in &s.health {
        // A job silent for a few intervals is grey: its last word is no longer news.
        let dot = match (h.healthy, h.stale) {
            (false, _) => Span::styled("✖ ", theme.ok(false)),
            (true, true) => Span::styled("○ ", theme.muted()),
            (true, false) => Span::styled("● ", theme.ok(true)),
        };
        health.push(dot);
        health.push(Span::raw(h.name.clone()));
        if !h.healthy || wide {
            health.push(Span::styled(format!(" {}", h.detail), theme.muted()));
        }
        health.push(Span::raw("   "));
    }
    frame.render_widget(
        Paragraph::new(Line::from(health))
            .block(Block::bordered().title(Span::styled(" Health ", theme.title()))),
        bottom,
    );
}

/// Confidence colour-coded for a trade; a HOLD's confidence is neither good nor bad news.
pub(super) fn confidence_style(
    theme: Theme,
    d: &crate::app::snapshot::DecisionView,
    c: f64,
) -> ratatui::style::Style {
    if d.action == "HOLD" {
        theme.muted()
    } else {
        theme.confidence(c)
    }
}

pub(super) fn action_style(theme: Theme, action: &str) -> ratatui::style::Style {
    match action {
        "BUY" => theme.up(),
        "SELL" | "CLOSE" => theme.down(),
        _ => theme.muted(),
    }
}
