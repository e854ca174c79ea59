//! Trades: fills with realised PnL and fees, filterable by strategy (f) and symbol (s).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Row, Table, TableState};

use super::{empty, header_row, num, screen_block};
use crate::domain::Quote;
use crate::domain::trading::order::Side;
use crate::format as fmt;
use crate::tui::action::Screen;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::widgets::Cell;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let trades = app.visible_trades();
    let realised: Quote = trades.iter().filter_map(|t| t.realised_pnl).sum();
    // Only fees paid in the account's currency add up with it.
    let fees: Quote = trades
        .iter()
        .filter(|t| t.fee_asset == app.currency)
        .map(|t| t.fee)
        .sum();
    let note = format!(
        "{} shown · strategy {} · symbol {} · PnL {} · fees {}",
        trades.len(),
        app.trades_strategy.as_deref().unwrap_or("all"),
        app.trades_symbol.as_deref().unwrap_or("all"),
        fmt::money_signed(realised, &app.currency),
        fmt::money(fees, &app.currency),
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
    let now = app.now_ms();
    let times: Vec<String> = trades.iter().map(|t| fmt::when(t.at_ms, now)).collect();
    let time_w = super::width_of(times.iter().map(String::as_str), 4);
    let rows = trades.iter().zip(&times).map(|(t, time)| {
        let prec = app.precision(t.symbol.as_str());
        let pnl = match t.realised_pnl {
            Some(p) => num(fmt::amount_signed(p, &prec.quote), theme.signed(p.to_f64())),
            None => num("-".into(), theme.muted()),
        };
        let side = match t.side {
            Side::Buy => Span::styled("BUY", theme.up()),
            Side::Sell => Span::styled("SELL", theme.down()),
        };
        // The fee in its own asset, which is always named: a BTC fee is not USDT.
        let fee = format!("{} {}", fmt::fee(t.fee, &t.fee_asset), t.fee_asset);
        let mut cells: Vec<Cell> = vec![
            Cell::from(time.clone()),
            Cell::from(t.symbol.as_str().to_string()),
            Cell::from(side),
            num(fmt::price(t.price, &prec), theme.base()),
            num(fmt::qty(t.qty, &prec), theme.base()),
            num(fee, theme.base()),
            pnl,
        ];
        cells.push(Cell::from(t.strategy.clone()));
        Row::new(cells)
    });
    let header = [
        ("Time", false),
        ("Symbol", false),
        ("Side", false),
        ("Price", true),
        ("Qty", true),
        ("Fee", true),
        ("PnL", true),
        ("Strategy", false),
    ];
    let widths = if wide {
        vec![
            Constraint::Length(time_w),
            Constraint::Length(10),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(18),
            Constraint::Length(11),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(time_w),
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(11),
            Constraint::Length(7),
            Constraint::Min(4),
        ]
    };
    let mut state = TableState::default().with_selected(Some(app.selected(Screen::Trades)));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header_row(theme, &header))
            .row_highlight_style(theme.selected())
            .block(block),
        area,
        &mut state,
    );
}
