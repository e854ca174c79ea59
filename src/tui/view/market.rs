//! Market: candlesticks with SMA/EMA/Bollinger overlays, RSI and MACD panes aligned with the
//! candles, the order-book ladder with cumulative depth, and recent trades.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::charts::{CandleChart, PriceLevel, SeriesPane, TimeAxis, TradeMark, VolumeBars, glyph};
use super::screen_block;
use super::widgets::fmt_time;
use crate::app::snapshot::{BookLevel, MarketView};
use crate::domain::Qty;
use crate::domain::trading::order::Side;
use crate::format::{self as fmt, Precision};
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let m = &app.snapshot.market;
    let side_width = if area.width >= 140 { 44 } else { 28 };
    let [chart_area, side] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(side_width)]).areas(area);
    draw_charts(frame, app, theme, chart_area);
    let [book, trades] =
        Layout::vertical([Constraint::Percentage(65), Constraint::Min(4)]).areas(side);
    // Prices at the symbol's tick and quantities at its step, as everywhere else.
    let prec = app.precision(m.symbol.as_str());
    draw_book(frame, m, &prec, theme, book);
    draw_trades(frame, m, &prec, theme, trades);
}

fn draw_charts(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let m = &app.snapshot.market;
    let last = m
        .candles
        .last()
        .map(|c| format!("close {} ", c.close))
        .unwrap_or_default();
    let source = m
        .resampled_from
        .map(|f| format!("(from {f}) "))
        .unwrap_or_default();
    let block = screen_block(
        theme,
        "Market",
        &format!(
            "{} {} {source}{}· s symbol · i interval",
            m.symbol, m.interval, last
        ),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if m.candles.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                crate::tui::update::missing_candles_hint(&app.snapshot),
                theme.muted(),
            ))
            .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    }
    // Indicator panes grow with the terminal: RSI needs rows to tell 30 from 70.
    let (volume_h, pane_h) = match inner.height {
        h if h >= 40 => (5, 10),
        h if h >= 28 => (3, 7),
        // RSI needs four rows for 70 and 30 to land on different ones.
        _ => (1, 5),
    };
    let [legend, candles, time, volume, rsi, macd] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(volume_h),
        Constraint::Length(pane_h),
        Constraint::Length(pane_h),
    ])
    .areas(inner);
    let o = &m.overlays;
    let levels = price_levels(app, theme);
    let marks = trade_marks(app);
    let mut legend_spans = vec![
        Span::styled(format!("{} SMA 20 ", glyph::SMA), theme.overlay(0)),
        Span::styled(format!("{} EMA 50 ", glyph::EMA), theme.overlay(1)),
        Span::styled(format!("{} BB 20/2 ", glyph::BOLLINGER), theme.overlay(2)),
        Span::styled(
            format!("{} buy {} sell ", glyph::BUY, glyph::SELL),
            theme.muted(),
        ),
    ];
    if !levels.is_empty() {
        legend_spans.push(Span::styled(
            format!(
                "{} entry {} stop {} target",
                glyph::ENTRY,
                glyph::STOP,
                glyph::TARGET
            ),
            theme.muted(),
        ));
    }
    frame.render_widget(Line::from(legend_spans), legend);
    frame.render_widget(
        CandleChart {
            candles: &m.candles,
            interval: m.interval,
            overlays: vec![
                (&o.bb_upper, glyph::BOLLINGER, theme.overlay(2)),
                (&o.bb_lower, glyph::BOLLINGER, theme.overlay(2)),
                (&o.sma, glyph::SMA, theme.overlay(0)),
                (&o.ema, glyph::EMA, theme.overlay(1)),
            ],
            marks: &marks,
            levels: &levels,
            theme,
        },
        candles,
    );
    frame.render_widget(
        TimeAxis {
            candles: &m.candles,
            interval: m.interval,
            theme,
        },
        time,
    );
    frame.render_widget(
        VolumeBars {
            candles: &m.candles,
            theme,
        },
        volume,
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
    let b = pane_block("MACD 12 26 9 ⠿ line • signal █ histogram");
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
            guides: &[0.0],
            theme,
        },
        macd_inner,
    );
}

/// The open position's entry, stop and target on the shown symbol.
fn price_levels(app: &App, theme: Theme) -> Vec<PriceLevel> {
    let m = &app.snapshot.market;
    let mut out = Vec::new();
    for p in app
        .snapshot
        .positions
        .iter()
        .filter(|p| p.symbol == m.symbol)
    {
        out.push(PriceLevel {
            price: p.entry.to_f64(),
            tag: "E",
            glyph: glyph::ENTRY,
            style: theme.accent(),
        });
        if let Some(stop) = p.stop {
            out.push(PriceLevel {
                price: stop.to_f64(),
                tag: "S",
                glyph: glyph::STOP,
                style: theme.down(),
            });
        }
        if let Some(target) = p.target {
            out.push(PriceLevel {
                price: target.to_f64(),
                tag: "T",
                glyph: glyph::TARGET,
                style: theme.up(),
            });
        }
    }
    out
}

/// The trader's fills on the shown symbol.
fn trade_marks(app: &App) -> Vec<TradeMark> {
    let m = &app.snapshot.market;
    app.snapshot
        .trades
        .iter()
        .filter(|t| t.symbol == m.symbol)
        .map(|t| TradeMark {
            at_ms: t.at_ms,
            buy: t.side == Side::Buy,
        })
        .collect()
}

fn draw_book(frame: &mut Frame, m: &MarketView, prec: &Precision, theme: Theme, area: Rect) {
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
            Span::styled(format!("{:>price_w$} ", fmt::price(l.price, prec)), style),
            Span::raw(format!("{:>qty_w$} ", fmt::qty(l.qty, prec))),
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
        (Some(a), Some(b)) => format!("spread {}", fmt::price(a.price - b.price, prec)),
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

fn draw_trades(frame: &mut Frame, m: &MarketView, prec: &Precision, theme: Theme, area: Rect) {
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
                Span::styled(format!("{:>10} ", fmt::price(t.price, prec)), style),
                Span::raw(fmt::qty(t.qty, prec)),
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
