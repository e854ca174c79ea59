//! Risk: the configuration in force, heat per position against the cap, the breaker's state and
//! history, and the kill switch.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

use super::screen_block;
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Min(20)]).areas(area);

    let block = screen_block(theme, "Risk", "config in force");
    let rows: Vec<Row> = if s.risk_config.is_empty() {
        vec![Row::new(vec![Span::styled(
            "no risk configuration stored: built-in defaults apply",
            theme.muted(),
        )])]
    } else {
        s.risk_config
            .iter()
            .map(|(k, v)| {
                Row::new(vec![
                    Span::styled(k.clone(), theme.muted()),
                    Span::raw(v.clone()),
                ])
            })
            .collect()
    };
    let widths = if s.risk_config.is_empty() {
        vec![Constraint::Min(10)]
    } else {
        let key_w = s
            .risk_config
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        vec![Constraint::Length(key_w as u16), Constraint::Min(6)]
    };
    frame.render_widget(Table::new(rows, widths).block(block), left);

    let heat_rows = s.positions.len().max(1) as u16 + 4;
    let [state, history] = Layout::vertical([
        Constraint::Length(heat_rows.min(right.height / 2)),
        Constraint::Min(3),
    ])
    .areas(right);
    let a = &s.account;
    let mut lines = vec![
        Line::from(vec![
            Span::raw("Breaker "),
            Span::styled(s.breaker.state.label(), theme.breaker(s.breaker.state)),
            Span::styled(format!(" {}", fmt::words(&s.breaker.reason)), theme.muted()),
        ]),
        Line::from(vec![
            Span::raw(format!(
                "Heat {} of cap {}  ",
                fmt::pct(a.heat_pct),
                fmt::pct(a.heat_cap_pct)
            )),
            Span::styled("K kill switch", theme.warn()),
        ]),
    ];
    let bar_w = (state.width as usize).saturating_sub(23).max(4);
    for p in &s.positions {
        let frac = if a.heat_cap_pct > 0.0 {
            (p.heat_pct / a.heat_cap_pct).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let n = (frac * bar_w as f64).round() as usize;
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<9}{:>7} ",
                p.symbol.as_str(),
                fmt::pct(p.heat_pct)
            )),
            Span::styled(
                "■".repeat(n),
                if frac >= 0.5 {
                    theme.warn()
                } else {
                    theme.up()
                },
            ),
            Span::styled("·".repeat(bar_w - n), theme.muted()),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(" Heat & breaker ", theme.title()))),
        state,
    );
    let times: Vec<String> = s
        .breaker
        .history
        .iter()
        .map(|c| fmt::when(c.at_ms, s.as_of_ms))
        .collect();
    let time_w = super::width_of(times.iter().map(String::as_str), 4);
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
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Min(6),
            ],
        )
        .row_highlight_style(theme.selected())
        .block(Block::bordered().title(Span::styled(" Breaker history ", theme.title()))),
        history,
        &mut table_state,
    );
}
