//! Logs: the recent lines from the bus, filtered by minimum level (f).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Row, Table, TableState};

use super::{empty, screen_block};
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let lines = app.visible_logs();
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
        empty(frame, theme, area, block, "no log lines at this level yet");
        return;
    }
    let wide = area.width >= 100;
    let times: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| fmt::when(l.at_ms, app.now_ms()))
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
        area,
        &mut state,
    );
}
