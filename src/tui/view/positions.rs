//! Positions & orders: open positions with their risk, the working orders, and closing or
//! cancelling with a confirmation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Row, Table, TableState};

use super::widgets::{fmt_datetime, fmt_quote_signed};
use super::{empty, screen_block};
use crate::store::account::Protection;
use crate::tui::action::Screen;
use crate::tui::state::{App, PositionsFocus};
use crate::tui::theme::Theme;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let wide = area.width >= 100;
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(4)]).areas(area);
    let focus = app.positions_focus;
    let mark = |f: PositionsFocus| if focus == f { "▶" } else { "" };

    let block = screen_block(
        theme,
        "Positions & orders",
        &format!(
            "{}{} open · c close · h/l switch",
            mark(PositionsFocus::Positions),
            s.positions.len()
        ),
    );
    if s.positions.is_empty() {
        empty(frame, theme, top, block, "no open positions");
    } else {
        let rows = s.positions.iter().map(|p| {
            let mut cells = vec![
                Span::raw(p.symbol.as_str().to_string()),
                Span::raw(p.entry.to_string()),
                Span::raw(p.mark.to_string()),
                Span::raw(p.qty.to_string()),
                // A cancelled leg no longer protects: say so instead of showing its price.
                match p.protection {
                    Protection::Unprotected | Protection::TargetOnly => {
                        Span::styled("UNPROT.", theme.down())
                    }
                    _ => Span::raw(opt(p.stop)),
                },
                Span::raw(opt(p.target)),
                Span::styled(
                    fmt_quote_signed(p.unrealised_pnl),
                    theme.signed(p.unrealised_pnl.to_f64()),
                ),
                Span::raw(format!("{:.2}%", p.heat_pct)),
            ];
            if wide {
                cells.insert(1, Span::raw(p.side.clone()));
                cells.insert(1, Span::raw(p.book.clone()));
            }
            Row::new(cells)
        });
        let mut header = vec![
            "Symbol", "Entry", "Mark", "Qty", "Stop", "Target", "uPnL", "Heat",
        ];
        let mut widths = vec![
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(6),
        ];
        if wide {
            // Each strategy's book holds its own position: which one is this?
            header.insert(1, "Side");
            widths.insert(1, Constraint::Length(6));
            header.insert(1, "Book");
            widths.insert(1, Constraint::Length(10));
            for w in widths.iter_mut() {
                if let Constraint::Length(n) = w {
                    *n += 4;
                }
            }
        }
        let mut state = TableState::default();
        if focus == PositionsFocus::Positions {
            state.select(Some(app.selected(Screen::Positions)));
        }
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(Row::new(header).style(theme.header()))
                .row_highlight_style(theme.selected())
                .column_spacing(1)
                .block(block),
            top,
            &mut state,
        );
    }

    let block = screen_block(
        theme,
        "Open orders",
        &format!(
            "{}{} working · x cancel",
            mark(PositionsFocus::Orders),
            s.open_orders.len()
        ),
    );
    if s.open_orders.is_empty() {
        empty(frame, theme, bottom, block, "no open orders");
    } else {
        let rows = s.open_orders.iter().map(|o| {
            let side_style = match o.side {
                crate::domain::trading::order::Side::Buy => theme.up(),
                crate::domain::trading::order::Side::Sell => theme.down(),
            };
            let mut cells = vec![
                Span::raw(o.symbol.as_str().to_string()),
                Span::styled(o.side.as_str(), side_style),
                Span::raw(o.order_type.clone()),
                Span::raw(opt(o.price)),
                Span::raw(format!("{}/{}", o.filled, o.qty)),
                Span::raw(o.status.clone()),
            ];
            if wide {
                cells.push(Span::styled(o.client_order_id.clone(), theme.muted()));
                cells.push(Span::raw(fmt_datetime(o.created_at_ms)));
            }
            Row::new(cells)
        });
        let mut header = vec!["Symbol", "Side", "Type", "Price", "Filled", "Status"];
        let mut widths = vec![
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Min(8),
        ];
        if wide {
            header.extend(["Client id", "Created"]);
            widths.pop();
            widths.extend([
                Constraint::Length(16),
                Constraint::Length(22),
                Constraint::Length(11),
            ]);
        }
        let mut state = TableState::default();
        if focus == PositionsFocus::Orders {
            state.select(Some(app.order_selected));
        }
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(Row::new(header).style(theme.header()))
                .row_highlight_style(theme.selected())
                .block(block),
            bottom,
            &mut state,
        );
    }
}
