//! Positions & orders: open positions with how far they are from their stop and target, their R
//! multiple, time in trade and what protects them; the selected position in full; the working
//! orders with trigger and limit; closing or cancelling with a confirmation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use rust_decimal::Decimal;

use super::{empty, header_row, num, screen_block};
use crate::app::snapshot::PositionView;
use crate::domain::Price;
use crate::format::{self as fmt, Precision};
use crate::store::account::Protection;
use crate::tui::action::Screen;
use crate::tui::state::{App, PositionsFocus};
use crate::tui::theme::Theme;

/// What a trader reads off an open position, computed from the snapshot's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionFigures {
    /// Unrealised PnL as % of the entry value.
    pub upnl_pct: f64,
    /// Move from the mark to the stop trigger, % of the mark (negative below for a long).
    pub to_stop_pct: Option<f64>,
    pub to_stop: Option<Decimal>,
    pub to_target_pct: Option<f64>,
    pub to_target: Option<Decimal>,
    /// Profit so far in units of the initial risk (entry to the stop it was opened with).
    pub r_multiple: Option<f64>,
    pub in_trade_ms: i64,
}

fn f(d: Decimal) -> f64 {
    crate::domain::money::decimal_to_f64(d)
}

impl PositionFigures {
    pub fn of(p: &PositionView, now_ms: i64) -> PositionFigures {
        let dir = if p.side == "SHORT" {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        let (entry, mark) = (p.entry.get(), p.mark.get());
        let pct_of =
            |base: Decimal, move_: Decimal| (!base.is_zero()).then(|| f(move_) / f(base) * 100.0);
        let to = |level: Option<Price>| level.map(|l| l.get() - mark);
        let to_stop = to(p.stop);
        let to_target = to(p.target);
        let risk = p
            .initial_stop
            .or(p.stop)
            .map(|s| (entry - s.get()).abs())
            .filter(|r| !r.is_zero());
        PositionFigures {
            upnl_pct: pct_of(entry, (mark - entry) * dir).unwrap_or(0.0),
            to_stop_pct: to_stop.and_then(|d| pct_of(mark, d)),
            to_stop,
            to_target_pct: to_target.and_then(|d| pct_of(mark, d)),
            to_target,
            r_multiple: risk.map(|r| f((mark - entry) * dir) / f(r)),
            in_trade_ms: if p.opened_at_ms > 0 {
                now_ms.saturating_sub(p.opened_at_ms)
            } else {
                0
            },
        }
    }
}

/// The protection column: what the exchange holds for this position right now.
pub fn protection_label(p: Protection) -> &'static str {
    match p {
        Protection::BothLegs => "OCO ✓",
        Protection::StopOnly => "stop only",
        Protection::TargetOnly => "NO STOP",
        Protection::Dust => "dust",
        Protection::Unprotected => "UNPROTECTED",
    }
}

fn protection_span(theme: Theme, p: Protection) -> Span<'static> {
    let style = match p {
        Protection::BothLegs => theme.up(),
        Protection::StopOnly => theme.warn(),
        Protection::Dust => theme.muted(),
        Protection::TargetOnly | Protection::Unprotected => theme.down(),
    };
    Span::styled(protection_label(p), style)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(fmt::pct_signed).unwrap_or_else(|| "-".into())
}

/// The stop as `trigger → limit` (a stop-limit leg fills no worse than its limit).
fn stop_text(p: &PositionView, prec: &Precision) -> String {
    match (p.stop, p.stop_limit) {
        (Some(t), Some(l)) => format!("{} → {}", fmt::price(t, prec), fmt::price(l, prec)),
        (Some(t), None) => fmt::price(t, prec),
        _ => "-".into(),
    }
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let wide = area.width >= 120;
    let detail_h = if s.positions.is_empty() { 0 } else { 6 };
    let [top, detail, bottom] = Layout::vertical([
        Constraint::Length((s.positions.len() as u16 + 4).max(5)),
        Constraint::Length(detail_h),
        Constraint::Min(4),
    ])
    .areas(area);
    let focus = app.positions_focus;
    let mark = |f: PositionsFocus| if focus == f { "▶" } else { "" };
    let now = app.now_ms();

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
        empty(
            frame,
            theme,
            top,
            block,
            if app.in_demo {
                "no open positions yet: the demo's strategies open them as the replay runs"
            } else {
                "no open positions: a strategy opens them (`trademind strategy list`), or try `trademind demo`"
            },
        );
    } else {
        let cols = columns_for(area.width.saturating_sub(2));
        let rows = s.positions.iter().map(|p| {
            let prec = app.precision(p.symbol.as_str());
            let fig = PositionFigures::of(p, now);
            Row::new(
                cols.iter()
                    .map(|c| c.cell(p, &fig, &prec, theme))
                    .collect::<Vec<_>>(),
            )
        });
        let header: Vec<(&str, bool)> = cols.iter().map(|c| (c.title(), c.right())).collect();
        let widths: Vec<u16> = cols.iter().map(|c| c.width()).collect();
        let mut state = TableState::default();
        if focus == PositionsFocus::Positions {
            state.select(Some(app.selected(Screen::Positions)));
        }
        frame.render_stateful_widget(
            Table::new(rows, widths.into_iter().map(Constraint::Length))
                .header(header_row(theme, &header))
                .row_highlight_style(theme.selected())
                .column_spacing(1)
                .block(block),
            top,
            &mut state,
        );
        let selected = app
            .selected(Screen::Positions)
            .min(s.positions.len().saturating_sub(1));
        if let Some(p) = s.positions.get(selected) {
            draw_detail(frame, app, theme, detail, p);
        }
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
            let prec = app.precision(o.symbol.as_str());
            let side_style = match o.side {
                crate::domain::trading::order::Side::Buy => theme.up(),
                crate::domain::trading::order::Side::Sell => theme.down(),
            };
            let price = |p: Option<Price>| p.map(|p| fmt::price(p, &prec)).unwrap_or("-".into());
            let mut cells: Vec<Cell> = vec![
                Cell::from(o.symbol.as_str().to_string()),
                Cell::from(Span::styled(o.side.as_str(), side_style)),
                Cell::from(fmt::order_type(&o.order_type)),
                num(price(o.stop_price), theme.base()),
                num(price(o.price), theme.base()),
                num(
                    format!("{}/{}", fmt::qty(o.filled, &prec), fmt::qty(o.qty, &prec)),
                    theme.base(),
                ),
                Cell::from(fmt::status(&o.status)),
            ];
            if wide {
                cells.push(Cell::from(Span::styled(
                    o.client_order_id.clone(),
                    theme.muted(),
                )));
                cells.push(Cell::from(fmt::when(o.created_at_ms, now)));
            }
            Row::new(cells)
        });
        let mut header = vec![
            ("Symbol", false),
            ("Side", false),
            ("Type", false),
            ("Trigger", true),
            ("Limit", true),
            ("Filled/qty", true),
            ("Status", false),
        ];
        let mut widths = vec![
            Constraint::Length(8),
            Constraint::Length(4),
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(17),
            Constraint::Min(8),
        ];
        if wide {
            header.extend([("Client id", false), ("Created", false)]);
            widths.pop();
            widths.extend([
                Constraint::Length(17),
                Constraint::Length(18),
                Constraint::Min(12),
            ]);
        }
        let mut state = TableState::default();
        if focus == PositionsFocus::Orders {
            state.select(Some(app.order_selected));
        }
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header_row(theme, &header))
                .row_highlight_style(theme.selected())
                .block(block),
            bottom,
            &mut state,
        );
    }
}

/// The selected position in full: stop trigger and limit, target, both distances in price and
/// percent, R, time in trade and protection.
fn draw_detail(frame: &mut Frame, app: &App, theme: Theme, area: Rect, p: &PositionView) {
    let prec = app.precision(p.symbol.as_str());
    let fig = PositionFigures::of(p, app.now_ms());
    let label = |t: &'static str| Span::styled(t, theme.muted());
    let dist = |d: Option<Decimal>, pct: Option<f64>| match (d, pct) {
        (Some(d), Some(pct)) => format!(
            "{} ({})",
            fmt::decimal(d, prec.price_dp()),
            fmt::pct_signed(pct)
        ),
        _ => "-".into(),
    };
    let stop = match (p.stop, p.stop_limit) {
        (Some(t), Some(l)) => format!(
            "trigger {} limit {}",
            fmt::price(t, &prec),
            fmt::price(l, &prec)
        ),
        (Some(t), None) => format!("trigger {} (market)", fmt::price(t, &prec)),
        _ => "none".into(),
    };
    let lines = vec![
        Line::from(vec![
            label("Stop   "),
            Span::raw(stop),
            label("  away "),
            Span::raw(dist(fig.to_stop, fig.to_stop_pct)),
        ]),
        Line::from(vec![
            label("Target "),
            Span::raw(
                p.target
                    .map(|t| fmt::price(t, &prec))
                    .unwrap_or("none".into()),
            ),
            label("  away "),
            Span::raw(dist(fig.to_target, fig.to_target_pct)),
        ]),
        Line::from(vec![
            label("uPnL   "),
            Span::styled(
                format!(
                    "{} ({})",
                    fmt::money_signed(p.unrealised_pnl, &prec.quote),
                    fmt::pct_signed(fig.upnl_pct)
                ),
                theme.signed(p.unrealised_pnl.to_f64()),
            ),
            label("  R "),
            Span::raw(fig.r_multiple.map(fmt::r_multiple).unwrap_or("-".into())),
            label("  in trade "),
            Span::raw(fmt::duration(fig.in_trade_ms)),
        ]),
        Line::from(vec![
            label("Guard  "),
            protection_span(theme, p.protection),
            label("  heat "),
            Span::raw(fmt::pct(p.heat_pct)),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(Span::styled(
                format!(" {} {} ", p.side, p.symbol.as_str()),
                theme.title(),
            ))),
        area,
    );
}

/// A column of the positions table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Symbol,
    Book,
    Side,
    Qty,
    Entry,
    Mark,
    UpnlPct,
    Upnl,
    StopLimit,
    Stop,
    ToStop,
    Target,
    ToTarget,
    R,
    Protection,
    InTrade,
    Heat,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Symbol => "Symbol",
            Col::Book => "Book",
            Col::Side => "Side",
            Col::Qty => "Qty",
            Col::Entry => "Entry",
            Col::Mark => "Mark",
            Col::UpnlPct => "uPnL %",
            Col::Upnl => "uPnL",
            Col::StopLimit => "Stop → limit",
            Col::Stop => "Stop",
            Col::ToStop => "to stop",
            Col::Target => "Target",
            Col::ToTarget => "to tgt",
            Col::R => "R",
            Col::Protection => "Protection",
            Col::InTrade => "In trade",
            Col::Heat => "Heat",
        }
    }

    fn right(self) -> bool {
        !matches!(self, Col::Symbol | Col::Book | Col::Side | Col::Protection)
    }

    fn width(self) -> u16 {
        match self {
            Col::Symbol => 9,
            Col::Book => 9,
            Col::Side => 5,
            Col::Qty => 9,
            Col::Entry | Col::Mark | Col::Stop | Col::Target => 10,
            Col::UpnlPct | Col::ToStop | Col::ToTarget | Col::Heat => 7,
            Col::Upnl => 9,
            Col::StopLimit => 21,
            Col::R => 6,
            Col::Protection => 11,
            Col::InTrade => 8,
        }
    }

    fn cell(
        self,
        p: &PositionView,
        fig: &PositionFigures,
        prec: &Precision,
        theme: Theme,
    ) -> Cell<'static> {
        match self {
            Col::Symbol => Cell::from(p.symbol.as_str().to_string()),
            Col::Book => Cell::from(p.book.clone()),
            Col::Side => Cell::from(p.side.clone()),
            Col::Qty => num(fmt::qty(p.qty, prec), theme.base()),
            Col::Entry => num(fmt::price(p.entry, prec), theme.base()),
            Col::Mark => num(fmt::price(p.mark, prec), theme.base()),
            Col::UpnlPct => num(fmt::pct_signed(fig.upnl_pct), theme.signed(fig.upnl_pct)),
            Col::Upnl => num(
                fmt::amount_signed(p.unrealised_pnl, &prec.quote),
                theme.signed(p.unrealised_pnl.to_f64()),
            ),
            Col::StopLimit => num(stop_text(p, prec), theme.base()),
            Col::Stop => num(
                p.stop.map(|t| fmt::price(t, prec)).unwrap_or("-".into()),
                theme.base(),
            ),
            Col::ToStop => num(opt_pct(fig.to_stop_pct), theme.base()),
            Col::Target => num(
                p.target.map(|t| fmt::price(t, prec)).unwrap_or("-".into()),
                theme.base(),
            ),
            Col::ToTarget => num(opt_pct(fig.to_target_pct), theme.base()),
            Col::R => num(
                fig.r_multiple.map(fmt::r_multiple).unwrap_or("-".into()),
                theme.signed(fig.r_multiple.unwrap_or(0.0)),
            ),
            Col::Protection => Cell::from(protection_span(theme, p.protection)),
            Col::InTrade => num(fmt::duration(fig.in_trade_ms), theme.base()),
            Col::Heat => num(fmt::pct(p.heat_pct), theme.base()),
        }
    }
}

/// The widest set of columns that fits `inner` cells (with one space between columns), so a
/// number is never cut: a right-aligned price cut at its left reads as another price.
fn columns_for(inner: u16) -> Vec<Col> {
    use Col::*;
    let tiers: [&[Col]; 3] = [
        &[
            Symbol, Book, Side, Qty, Entry, Mark, UpnlPct, Upnl, StopLimit, ToStop, Target,
            ToTarget, R, Protection, InTrade, Heat,
        ],
        &[
            Symbol, Book, Qty, Entry, Mark, UpnlPct, Stop, ToStop, Target, ToTarget, R, Protection,
        ],
        &[Symbol, Qty, Entry, Mark, UpnlPct, ToStop, R, Protection],
    ];
    let fits = |cols: &[Col]| {
        let total: u16 = cols.iter().map(|c| c.width()).sum::<u16>() + cols.len() as u16 - 1;
        total <= inner
    };
    tiers.iter().find(|t| fits(t)).unwrap_or(&tiers[2]).to_vec()
}

#[cfg(test)]
mod column_tests {
    use super::*;

    #[test]
    fn every_tier_fits_the_width_it_is_chosen_for() {
        for inner in [78u16, 118, 158, 198] {
            let cols = columns_for(inner);
            let total: u16 = cols.iter().map(|c| c.width()).sum::<u16>() + cols.len() as u16 - 1;
            assert!(total <= inner, "{inner}: {cols:?} need {total}");
        }
        assert!(
            columns_for(118).contains(&Col::Book),
            "120 columns show the book"
        );
        assert!(columns_for(198).contains(&Col::InTrade));
    }
}
