//! Market: candlesticks with SMA/EMA/Bollinger overlays, RSI and MACD panes aligned with the
//! candles, the order-book ladder with cumulative depth, and recent trades.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::screen_block;
use super::widgets::{CandleChart, SeriesPane, fmt_time};
use crate::app::snapshot::{BookLevel, MarketView};
use crate::domain::Qty;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let m = &app.snapshot.market;
    let side_width = if area.width >= 140 { 44 } else { 28 };
    let [chart_area, side] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(side_width)]).areas(area);
    draw_charts(frame, m, theme, chart_area);
    let [book, trades] =
        Layout::vertical([Constraint::Percentage(65), Constraint::Min(4)]).areas(side);
    draw_book(frame, m, theme, book);
    draw_trades(frame, m, theme, trades);
}

fn draw_charts(frame: &mut Frame, m: &MarketView, theme: Theme, area: Rect) {
    let last = m
        .candles
        .last()
        .map(|c| format!("close {} ", c.close))
        .unwrap_or_default();
    let block = screen_block(
        theme,
        "Market",
        &format!(
            "{} {} {}· s symbol · i interval",
            m.symbol, m.interval, last
        ),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if m.candles.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!("no {} {} candles stored yet", m.symbol, m.interval),
                theme.muted(),
            )),
            inner,
        );
        return;
    }
    let pane = if inner.height >= 30 { 8 } else { 4 };
    let [legend, candles, rsi, macd] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(pane),
        Constraint::Length(pane),
    ])
    .areas(inner);
    let o = &m.overlays;
    frame.render_widget(
        Line::from(vec![
            Span::styled("• SMA ", theme.overlay(0)),
            Span::styled("• EMA ", theme.overlay(1)),
            Span::styled("• Bollinger", theme.overlay(2)),
        ]),
        legend,
    );
    frame.render_widget(
        CandleChart {
            candles: &m.candles,
            overlays: vec![
                (&o.bb_upper, theme.overlay(2)),
                (&o.bb_lower, theme.overlay(2)),
                (&o.sma, theme.overlay(0)),
                (&o.ema, theme.overlay(1)),
            ],
            theme,
        },
        candles,
    );
    let pane_block = |title: &'static str| {
        Block::new()
            .borders(Borders::TOP)
            .border_style(theme.muted())
            .title(Span::styled(title, theme.accent()))
    };
    let b = pane_block("RSI 14");
    let rsi_inner = b.inner(rsi);
    frame.render_widget(b, rsi);
    frame.render_widget(
        SeriesPane {
            total: m.candles.len(),
            lines: vec![(&o.rsi, theme.overlay(3))],
            histogram: None,
            range: Some((0.0, 100.0)),
            guides: &[30.0, 70.0],
            theme,
        },
        rsi_inner,
    );
    let b = pane_block("MACD 12 26 9");
    let macd_inner = b.inner(macd);
    frame.render_widget(b, macd);
    frame.render_widget(
        SeriesPane {
            total: m.candles.len(),
            lines: vec![
                (&o.macd, theme.overlay(3)),
                (&o.macd_signal, theme.overlay(0)),
            ],
            histogram: Some(&o.macd_hist),
            range: None,
            guides: &[],
            theme,
        },
        macd_inner,
    );
}

fn draw_book(frame: &mut Frame, m: &MarketView, theme: Theme, area: Rect) {
    let block = Block::bordered().title(Span::styled(" Order book ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 3 || (m.book.bids.is_empty() && m.book.asks.is_empty()) {
        frame.render_widget(Span::styled("no order book", theme.muted()), inner);
        return;
    }
    // Half the rows for asks (best at the bottom), one for the spread, the rest for bids.
    let per_side = ((inner.height - 1) / 2) as usize;
    let asks: Vec<&BookLevel> = m.book.asks.iter().take(per_side).collect();
    let bids: Vec<&BookLevel> = m.book.bids.iter().take(per_side).collect();
    let cumulative = |levels: &[&BookLevel]| -> Vec<f64> {
        let mut sum = Qty::ZERO;
        levels
            .iter()
            .map(|l| {
                sum += l.qty;
                sum.to_f64()
            })
            .collect()
    };
    let ask_cum = cumulative(&asks);
    let bid_cum = cumulative(&bids);
    let max = ask_cum
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(bid_cum.last().copied().unwrap_or(0.0))
        .max(f64::EPSILON);
    let price_w = 10usize;
    let qty_w = 8usize;
    let bar_w = (inner.width as usize).saturating_sub(price_w + qty_w + 2);
    let line = |l: &BookLevel, cum: f64, style: ratatui::style::Style| {
        let bar = ((cum / max) * bar_w as f64).round() as usize;
        Line::from(vec![
            Span::styled(format!("{:>price_w$} ", l.price.to_string()), style),
            Span::raw(format!("{:>qty_w$} ", l.qty.to_string())),
            Span::styled("▇".repeat(bar.min(bar_w)), style),
        ])
    };
    let mut lines: Vec<Line> = Vec::with_capacity(inner.height as usize);
    for _ in asks.len()..per_side {
        lines.push(Line::from(""));
    }
    for (l, c) in asks.iter().zip(&ask_cum).rev() {
        lines.push(line(l, *c, theme.down()));
    }
    let spread = match (m.book.asks.first(), m.book.bids.first()) {
        (Some(a), Some(b)) => format!("spread {}", a.price - b.price),
        _ => "spread -".into(),
    };
    lines.push(Line::from(Span::styled(
        format!("{spread:^w$}", w = inner.width as usize),
        theme.muted(),
    )));
    for (l, c) in bids.iter().zip(&bid_cum) {
        lines.push(line(l, *c, theme.up()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_trades(frame: &mut Frame, m: &MarketView, theme: Theme, area: Rect) {
    let block = Block::bordered().title(Span::styled(" Recent trades ", theme.title()));
    let inner = block.inner(area);
    let lines: Vec<Line> = m
        .recent_trades
        .iter()
        .take(inner.height as usize)
        .map(|t| {
            let style = if t.buyer_is_maker {
                theme.down()
            } else {
                theme.up()
            };
            Line::from(vec![
                Span::styled(format!("{} ", fmt_time(t.at_ms)), theme.muted()),
                Span::styled(format!("{:>10} ", t.price.to_string()), style),
                Span::raw(t.qty.to_string()),
            ])
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no trades yet", theme.muted())).block(block),
            area,
        );
    } else {
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}
