//! Trades: fills with realised PnL and fees, filterable by strategy (f) and symbol (s).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Row, Table, TableState};

use super::widgets::{fmt_datetime, fmt_quote, fmt_quote_signed};
use super::{empty, screen_block};
use crate::domain::Quote;
use crate::domain::trading::order::Side;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let trades = app.visible_trades();
    let realised: Quote = trades.iter().filter_map(|t| t.realised_pnl).sum();
    let fees: Quote = trades.iter().map(|t| t.fee).sum();
    let note = format!(
        "{} shown · strategy {} · symbol {} · PnL {} · fees {}",
        trades.len(),
        app.trades_strategy.as_deref().unwrap_or("all"),
        app.trades_symbol.as_deref().unwrap_or("all"),
        fmt_quote_signed(realised),
        fmt_quote(fees),
    );
    let block = screen_block(theme, "Trades", &note);
    if trades.is_empty() {
        empty(
            frame,
            theme,
            area,
            block,
            "no trades match (f strategy, s symbol)",
        );
        return;
    }
    let wide = area.width >= 100;
    let rows = trades.iter().map(|t| {
        let pnl = match t.realised_pnl {
            Some(p) => Span::styled(fmt_quote_signed(p), theme.signed(p.to_f64())),
            None => Span::styled("-", theme.muted()),
        };
        let side = match t.side {
            Side::Buy => Span::styled("BUY", theme.up()),
            Side::Sell => Span::styled("SELL", theme.down()),
        };
        let mut cells = vec![
            Span::raw(fmt_datetime(t.at_ms)),
            Span::raw(t.symbol.as_str().to_string()),
            side,
            Span::raw(t.price.to_string()),
            Span::raw(t.qty.to_string()),
            Span::raw(format!("{}", t.fee)),
            pnl,
        ];
        if wide {
            cells.insert(6, Span::styled(t.fee_asset.clone(), theme.muted()));
        }
        cells.push(Span::raw(t.strategy.clone()));
        Row::new(cells)
    });
    let mut header = vec![
        "Time", "Symbol", "Side", "Price", "Qty", "Fee", "PnL", "Strategy",
    ];
    let mut widths = vec![
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Min(6),
    ];
    if wide {
        header.insert(6, "Asset");
        widths = vec![
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(11),
            Constraint::Min(10),
        ];
    }
    let mut state = TableState::default().with_selected(Some(app.selected(Screen::Trades)));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.header()))
            .row_highlight_style(theme.selected())
            .block(block),
        area,
        &mut state,
    );
}
