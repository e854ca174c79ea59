//! Charts a trader can read: every chart has a labelled value axis fitted to its data (with
//! padding and a minimum span, so a 0.25 % dip does not fill the pane like a crash) and a time
//! axis. Lines are drawn in braille through ratatui's `Canvas`; everything that must be told
//! apart without colour (`NO_COLOR`) has its own glyph: equity braille, high-water mark `─`,
//! drawdown `░`, buy-and-hold `•`; SMA `•`, EMA `+`, Bollinger `·`; buys `▲`, sells `▼`; entry
//! `┈`, stop `╍`, target `═`.
//!
//! The market panes (candles, volume, RSI, MACD) share one column per candle, newest at the
//! right against a price axis of `AXIS_WIDTH` columns, so column `i` of every pane is the same
//! candle.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::widgets::Widget;
use ratatui::widgets::canvas::{Canvas, Line as CanvasLine};

use crate::domain::market::{Candle, Interval};
use crate::tui::theme::Theme;

/// Glyphs that tell the series apart without colour.
pub mod glyph {
    pub const SMA: &str = "•";
    pub const EMA: &str = "+";
    pub const BOLLINGER: &str = "·";
    pub const BUY: &str = "▲";
    pub const SELL: &str = "▼";
    pub const ENTRY: &str = "┈";
    pub const STOP: &str = "╍";
    pub const TARGET: &str = "═";
    pub const HIGH_WATER: &str = "─";
    pub const DRAWDOWN: &str = "░";
    pub const BENCHMARK: &str = "•";
    pub const GUIDE: &str = "┄";
}

/// Width of the price axis at the right of every market pane.
pub const AXIS_WIDTH: u16 = 11;

/// How many columns (candles) fit in a market pane `width` wide after the axis.
pub fn plot_columns(width: u16) -> usize {
    width.saturating_sub(AXIS_WIDTH) as usize
}

fn tail<T>(s: &[T], n: usize) -> &[T] {
    &s[s.len().saturating_sub(n)..]
}

fn color_of(style: Style) -> Color {
    style.fg.unwrap_or(Color::Reset)
}

/// A value range mapped onto rows, top row = `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
}

impl Scale {
    /// The range of `values` with `pad` of the span added on each side. The span is at least
    /// `min_span_frac` of the largest magnitude (so small moves stay small) and never zero.
    pub fn fitted(
        values: impl IntoIterator<Item = f64>,
        pad: f64,
        min_span_frac: f64,
    ) -> Option<Scale> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return None;
        }
        let level = lo.abs().max(hi.abs());
        let min_span = (level * min_span_frac).max(level * 1e-6).max(1e-9);
        let span = hi - lo;
        if span < min_span {
            let mid = (hi + lo) / 2.0;
            lo = mid - min_span / 2.0;
            hi = mid + min_span / 2.0;
        }
        let p = (hi - lo) * pad;
        Some(Scale {
            lo: lo - p,
            hi: hi + p,
        })
    }

    /// The row of `v` in `area`, `None` outside the range.
    pub fn row(&self, v: f64, area: Rect) -> Option<u16> {
        if !v.is_finite() || v < self.lo || v > self.hi || area.height == 0 {
            return None;
        }
        Some(self.row_clamped(v, area))
    }

    pub fn row_clamped(&self, v: f64, area: Rect) -> u16 {
        let h = area.height.saturating_sub(1) as f64;
        let frac = if self.hi > self.lo {
            (self.hi - v) / (self.hi - self.lo)
        } else {
            0.5
        };
        area.y + (frac.clamp(0.0, 1.0) * h).round() as u16
    }

    /// The value at the middle of `row`.
    fn value_at(&self, row: u16, area: Rect) -> f64 {
        let h = area.height.saturating_sub(1).max(1) as f64;
        self.hi - (row - area.y) as f64 / h * (self.hi - self.lo)
    }

    /// Decimals that tell ticks `step` apart.
    fn decimals(&self, ticks: u16) -> usize {
        let step = (self.hi - self.lo) / ticks.max(1) as f64;
        if step <= 0.0 || !step.is_finite() {
            return 2;
        }
        (-step.log10()).ceil().clamp(0.0, 8.0) as usize
    }
}

/// `v` with `decimals` and thousands separators: `48,250.5`.
pub fn fmt_value(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let mut grouped = String::with_capacity(text.len() + 4);
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 && text.chars().any(|c| ('1'..='9').contains(&c)) {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Volume in a few characters: `950`, `12.3K`, `4.1M`.
pub fn fmt_compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Rows that get a value label: top, bottom and evenly between, about one every three rows.
fn tick_rows(area: Rect) -> Vec<u16> {
    if area.height == 0 {
        return Vec::new();
    }
    let last = area.height - 1;
    let n = (area.height / 3).clamp(1, 6);
    let mut rows: Vec<u16> = (0..=n)
        .map(|i| area.y + (last as u32 * i as u32 / n as u32) as u16)
        .collect();
    rows.dedup();
    rows
}

/// Draw value labels for `scale` in `axis` (a column strip beside `plot`), right-aligned when
/// `right_align` (a left axis), with a tick mark at the plot's edge.
fn value_axis(
    buf: &mut Buffer,
    scale: Scale,
    plot: Rect,
    axis: Rect,
    fmt: &dyn Fn(f64) -> String,
    style: Style,
    left: bool,
) {
    for y in tick_rows(plot) {
        let label = fmt(scale.value_at(y, plot));
        let w = axis.width.saturating_sub(1) as usize;
        if left {
            buf.set_stringn(
                axis.x,
                y,
                format!("{label:>w$}┤"),
                axis.width as usize,
                style,
            );
        } else {
            buf.set_stringn(axis.x, y, format!("├{label}"), axis.width as usize, style);
        }
    }
}

/// Time label for `ms` on an axis spanning `span_ms`: the date when the span is days long,
/// the time of day otherwise.
fn time_label(ms: i64, span_ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return "--".into();
    };
    if span_ms >= 3 * 86_400_000 {
        t.format("%b %d").to_string()
    } else if span_ms >= 86_400_000 / 2 {
        t.format("%b %d %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

/// A time axis for `[t0, t1]` across `area` (one row): the ends and, when there is room, the
/// middle, all in UTC.
fn time_axis(buf: &mut Buffer, t0: i64, t1: i64, area: Rect, style: Style) {
    if area.height == 0 || area.width < 6 {
        return;
    }
    let span = t1 - t0;
    let first = time_label(t0, span);
    let last = time_label(t1, span);
    buf.set_stringn(area.x, area.y, &first, area.width as usize, style);
    if last == first {
        return;
    }
    let lw = last.chars().count() as u16;
    if area.width > lw + first.chars().count() as u16 + 2 {
        buf.set_string(area.x + area.width - lw, area.y, &last, style);
    }
    let mid = time_label(t0 + span / 2, span);
    let mw = mid.chars().count() as u16;
    if area.width > 3 * (lw + 3) && mid != first && mid != last {
        buf.set_string(area.x + (area.width - mw) / 2, area.y, &mid, style);
    }
}

/// An equity curve over time with its high-water mark, the drawdown below the mark shaded,
/// and optionally a buy-and-hold benchmark on the same axes.
pub struct EquityChart<'a> {
    /// `(time ms, equity)`, oldest first.
    pub points: &'a [(i64, f64)],
    /// Buy-and-hold equity at the same times (empty for none).
    pub benchmark: &'a [f64],
    pub theme: Theme,
}

impl EquityChart<'_> {
    /// The value axis this chart would draw (for tests and callers that label it).
    pub fn scale(&self) -> Option<Scale> {
        let values = self
            .points
            .iter()
            .map(|(_, v)| *v)
            .chain(self.benchmark.iter().copied());
        // A 1 % minimum span: a 0.25 % dip draws a quarter of the height, not all of it.
        Scale::fitted(values, 0.08, 0.01)
    }
}

impl Widget for EquityChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some(scale) = self.scale() else { return };
        if self.points.len() < 2 || area.width < 16 || area.height < 3 {
            return;
        }
        let decimals = scale.decimals(4).min(2);
        let fmt = |v: f64| fmt_value(v, decimals);
        let label_w = [scale.lo, scale.hi]
            .iter()
            .map(|v| fmt(*v).chars().count())
            .max()
            .unwrap_or(6) as u16
            + 1;
        let axis = Rect::new(area.x, area.y, label_w, area.height - 1);
        let plot = Rect::new(
            area.x + label_w,
            area.y,
            area.width - label_w,
            area.height - 1,
        );
        let time_row = Rect::new(plot.x, area.y + area.height - 1, plot.width, 1);
        let muted = self.theme.muted();
        value_axis(buf, scale, plot, axis, &fmt, muted, true);
        let t0 = self.points[0].0;
        let t1 = self.points[self.points.len() - 1].0.max(t0 + 1);
        time_axis(buf, t0, t1, time_row, muted);

        // Per column: the equity in force at the column's time and the peak so far.
        let mut idx = 0;
        let mut peak = f64::NEG_INFINITY;
        for c in 0..plot.width {
            let t = t0 + ((c as f64 + 0.5) / plot.width as f64 * (t1 - t0) as f64) as i64;
            while idx + 1 < self.points.len() && self.points[idx + 1].0 <= t {
                peak = peak.max(self.points[idx].1);
                idx += 1;
            }
            let equity = self.points[idx].1;
            peak = peak.max(equity);
            let x = plot.x + c;
            let eq_row = scale.row_clamped(equity, plot);
            let peak_row = scale.row_clamped(peak, plot);
            for y in peak_row + 1..eq_row {
                buf[(x, y)]
                    .set_symbol(glyph::DRAWDOWN)
                    .set_style(self.theme.down());
            }
            if peak > equity && peak_row < eq_row {
                buf[(x, peak_row)]
                    .set_symbol(glyph::HIGH_WATER)
                    .set_style(muted);
            }
        }
        let line_color = color_of(self.theme.accent());
        let bench_color = color_of(self.theme.overlay(0));
        let points = self.points;
        let benchmark = self.benchmark;
        Canvas::default()
            .x_bounds([t0 as f64, t1 as f64])
            .y_bounds([scale.lo, scale.hi])
            .marker(Marker::Braille)
            .paint(move |ctx| {
                // The benchmark first, so the strategy's line is drawn over it.
                if benchmark.len() == points.len() {
                    ctx.marker(Marker::Dot);
                    for (p, b) in points.iter().zip(benchmark) {
                        ctx.draw(&ratatui::widgets::canvas::Points {
                            coords: &[(p.0 as f64, *b)],
                            color: bench_color,
                        });
                    }
                    ctx.layer();
                    ctx.marker(Marker::Braille);
                }
                for w in points.windows(2) {
                    ctx.draw(&CanvasLine {
                        x1: w[0].0 as f64,
                        y1: w[0].1,
                        x2: w[1].0 as f64,
                        y2: w[1].1,
                        color: line_color,
                    });
                }
            })
            .render(plot, buf);
    }
}

/// Drawdown from the running peak (percent, 0 or negative) as bars hanging from 0 %, with a
/// percent axis whose depth is at least 1 % so a shallow dip stays shallow.
pub struct DrawdownChart<'a> {
    /// `(time ms, drawdown %)`, oldest first.
    pub points: &'a [(i64, f64)],
    pub theme: Theme,
}

impl DrawdownChart<'_> {
    pub fn scale(&self) -> Scale {
        let deepest = self
            .points
            .iter()
            .map(|(_, d)| *d)
            .filter(|d| d.is_finite())
            .fold(0.0_f64, f64::min);
        Scale {
            lo: deepest.min(-1.0) * 1.1,
            hi: 0.0,
        }
    }
}

impl Widget for DrawdownChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if self.points.len() < 2 || area.width < 16 || area.height < 2 {
            return;
        }
        let scale = self.scale();
        let decimals = if scale.lo > -10.0 { 2 } else { 1 };
        let fmt = |v: f64| format!("{}%", fmt_value(v, decimals));
        let label_w = fmt(scale.lo).chars().count().max(5) as u16 + 1;
        // A short pane keeps its rows for the bars and drops the time axis.
        let time_h = u16::from(area.height >= 4);
        let axis = Rect::new(area.x, area.y, label_w, area.height - time_h);
        let plot = Rect::new(
            area.x + label_w,
            area.y,
            area.width - label_w,
            area.height - time_h,
        );
        let time_row = Rect::new(plot.x, area.y + area.height - time_h, plot.width, time_h);
        let muted = self.theme.muted();
        value_axis(buf, scale, plot, axis, &fmt, muted, true);
        let t0 = self.points[0].0;
        let t1 = self.points[self.points.len() - 1].0.max(t0 + 1);
        time_axis(buf, t0, t1, time_row, muted);
        let mut idx = 0;
        for c in 0..plot.width {
            let t_end = t0 + ((c + 1) as f64 / plot.width as f64 * (t1 - t0) as f64) as i64;
            // The deepest point inside the column, so no dip is lost when points outnumber columns.
            let mut deepest = self.points[idx].1;
            while idx + 1 < self.points.len() && self.points[idx + 1].0 < t_end {
                idx += 1;
                deepest = deepest.min(self.points[idx].1);
            }
            if deepest >= 0.0 || !deepest.is_finite() {
                continue;
            }
            let bottom = scale.row_clamped(deepest, plot);
            for y in plot.y..=bottom {
                buf[(plot.x + c, y)]
                    .set_symbol("█")
                    .set_style(self.theme.down());
            }
        }
    }
}

/// A horizontal price level across the candle chart: an open position's entry, stop or target.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceLevel {
    pub price: f64,
    /// One letter on the axis: `E`, `S`, `T`.
    pub tag: &'static str,
    pub glyph: &'static str,
    pub style: Style,
}

/// One of the trader's fills, marked on its candle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeMark {
    pub at_ms: i64,
    pub buy: bool,
}

/// Candlesticks, one per column (the newest at the right), with overlays drawn as their own
/// glyphs, the trader's fills and levels, and a price axis fitted to the candles alone.
pub struct CandleChart<'a> {
    pub candles: &'a [Candle],
    pub interval: Interval,
    /// Series aligned with `candles`: values, glyph, style.
    pub overlays: Vec<(&'a [Option<f64>], &'static str, Style)>,
    pub marks: &'a [TradeMark],
    pub levels: &'a [PriceLevel],
    pub theme: Theme,
}

impl CandleChart<'_> {
    /// The candles drawn in `width` columns and their price scale (highs and lows only: the
    /// overlays may leave the pane, the candles never do).
    pub fn scale(&self, width: u16) -> Option<Scale> {
        let shown = tail(self.candles, plot_columns(width));
        Scale::fitted(
            shown.iter().flat_map(|c| [c.low.to_f64(), c.high.to_f64()]),
            0.04,
            0.002,
        )
    }
}

impl Widget for CandleChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height < 3 || self.candles.is_empty() {
            return;
        }
        let Some(scale) = self.scale(area.width) else {
            return;
        };
        let cols = plot_columns(area.width);
        let candles = tail(self.candles, cols);
        let n = candles.len();
        let plot = Rect {
            width: area.width - AXIS_WIDTH,
            ..area
        };
        let axis = Rect::new(plot.x + plot.width, area.y, AXIS_WIDTH, area.height);
        let muted = self.theme.muted();
        let decimals = scale.decimals(area.height / 3).min(8);
        let fmt = |v: f64| fmt_value(v, decimals);
        value_axis(buf, scale, plot, axis, &fmt, muted, false);
        let x0 = plot.x + plot.width - n as u16;
        for level in self.levels {
            let label = format!("{}{}", level.tag, fmt(level.price));
            match scale.row(level.price, plot) {
                Some(y) => {
                    for x in plot.x..plot.x + plot.width {
                        buf[(x, y)].set_symbol(level.glyph).set_style(level.style);
                    }
                    buf.set_stringn(
                        axis.x,
                        y,
                        format!("├{label:<w$}", w = AXIS_WIDTH as usize - 1),
                        AXIS_WIDTH as usize,
                        level.style,
                    );
                }
                // Off the chart: say where, at the edge it lies beyond.
                None => {
                    let (y, arrow) = if level.price > scale.hi {
                        (plot.y, "↑")
                    } else {
                        (plot.y + plot.height - 1, "↓")
                    };
                    buf.set_stringn(
                        axis.x,
                        y,
                        format!("{arrow}{label:<w$}", w = AXIS_WIDTH as usize - 1),
                        AXIS_WIDTH as usize,
                        level.style,
                    );
                }
            }
        }
        for (i, c) in candles.iter().enumerate() {
            let x = x0 + i as u16;
            let up = c.close >= c.open;
            let (body, body_style) = self.theme.candle_body(up);
            let wick_style = if up {
                self.theme.up()
            } else {
                self.theme.down()
            };
            let top = scale.row_clamped(c.high.to_f64(), plot);
            let bottom = scale.row_clamped(c.low.to_f64(), plot);
            for y in top..=bottom {
                buf[(x, y)].set_symbol("│").set_style(wick_style);
            }
            let (o, cl) = (c.open.to_f64(), c.close.to_f64());
            let b_top = scale.row_clamped(o.max(cl), plot);
            let b_bottom = scale.row_clamped(o.min(cl), plot);
            for y in b_top..=b_bottom {
                buf[(x, y)].set_symbol(body).set_style(body_style);
            }
        }
        let first_candle = self.candles.len() - n;
        for (series, g, style) in &self.overlays {
            // Align the series with the candles by their shared end.
            if series.len() != self.candles.len() {
                continue;
            }
            for (i, v) in series[first_candle..].iter().enumerate() {
                let Some(y) = v.and_then(|v| scale.row(v, plot)) else {
                    continue;
                };
                let cell = &mut buf[(x0 + i as u16, y)];
                // Candles stay readable: a line passes behind bodies.
                if matches!(cell.symbol(), " " | "│") || level_glyph(cell.symbol()) {
                    cell.set_symbol(g).set_style(*style);
                }
            }
        }
        let ms = self.interval.millis();
        for m in self.marks {
            let Ok(i) = candles.binary_search_by(|c| {
                if m.at_ms < c.open_time {
                    std::cmp::Ordering::Greater
                } else if m.at_ms >= c.open_time + ms {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Equal
                }
            }) else {
                continue;
            };
            let c = &candles[i];
            let x = x0 + i as u16;
            // Buys under the candle's low, sells over its high, so the candle stays visible.
            let (y, g, style) = if m.buy {
                let low = scale.row_clamped(c.low.to_f64(), plot);
                (
                    (low + 1).min(plot.y + plot.height - 1),
                    glyph::BUY,
                    self.theme.up().add_modifier(ratatui::style::Modifier::BOLD),
                )
            } else {
                let high = scale.row_clamped(c.high.to_f64(), plot);
                (
                    high.saturating_sub(1).max(plot.y),
                    glyph::SELL,
                    self.theme
                        .down()
                        .add_modifier(ratatui::style::Modifier::BOLD),
                )
            };
            buf[(x, y)].set_symbol(g).set_style(style);
        }
        if let Some(last) = candles.last() {
            let v = last.close.to_f64();
            let style = if last.close >= last.open {
                self.theme.up()
            } else {
                self.theme.down()
            };
            buf.set_stringn(
                axis.x,
                scale.row_clamped(v, plot),
                format!("◀{:<w$}", fmt(v), w = AXIS_WIDTH as usize - 1),
                AXIS_WIDTH as usize,
                style.add_modifier(ratatui::style::Modifier::REVERSED),
            );
        }
    }
}

fn level_glyph(s: &str) -> bool {
    matches!(s, glyph::ENTRY | glyph::STOP | glyph::TARGET)
}

/// The time axis under the candle chart: labels at round UTC times (a new day shows its date),
/// each starting at its candle's column.
pub struct TimeAxis<'a> {
    pub candles: &'a [Candle],
    pub interval: Interval,
    pub theme: Theme,
}

/// Label steps in ms, smallest first.
const TIME_STEPS: [i64; 14] = [
    60_000,
    5 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    86_400_000,
    2 * 86_400_000,
    7 * 86_400_000,
    14 * 86_400_000,
    28 * 86_400_000,
];

impl Widget for TimeAxis<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height == 0 || self.candles.is_empty() {
            return;
        }
        let plot_w = area.width - AXIS_WIDTH;
        let candles = tail(self.candles, plot_w as usize);
        let x0 = area.x + plot_w - candles.len() as u16;
        let ms = self.interval.millis();
        // At least 9 columns between labels ("Dec 03" + room).
        let step = TIME_STEPS
            .into_iter()
            .find(|s| *s >= ms && s / ms >= 9)
            .unwrap_or(28 * 86_400_000);
        let daily = ms >= 86_400_000;
        let mut next_free = area.x;
        for (i, c) in candles.iter().enumerate() {
            if c.open_time.rem_euclid(step) != 0 {
                continue;
            }
            let x = x0 + i as u16;
            if x < next_free {
                continue;
            }
            let Some(t) = chrono::DateTime::from_timestamp_millis(c.open_time) else {
                continue;
            };
            let label = if daily || c.open_time.rem_euclid(86_400_000) == 0 {
                t.format("╵%b %d").to_string()
            } else {
                t.format("╵%H:%M").to_string()
            };
            let w = label.chars().count() as u16;
            if x + w > area.x + plot_w {
                break;
            }
            buf.set_string(x, area.y, &label, self.theme.muted());
            next_free = x + w + 1;
        }
        buf.set_stringn(
            area.x + plot_w,
            area.y,
            " UTC",
            AXIS_WIDTH as usize,
            self.theme.muted(),
        );
    }
}

/// Volume bars aligned with the candles (eighth blocks), labelled with the largest volume.
pub struct VolumeBars<'a> {
    pub candles: &'a [Candle],
    pub theme: Theme,
}

const EIGHTHS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

impl Widget for VolumeBars<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height == 0 || self.candles.is_empty() {
            return;
        }
        let plot_w = area.width - AXIS_WIDTH;
        let candles = tail(self.candles, plot_w as usize);
        let x0 = area.x + plot_w - candles.len() as u16;
        let max = candles
            .iter()
            .map(|c| c.volume.to_f64())
            .fold(0.0_f64, f64::max);
        if max <= 0.0 {
            return;
        }
        let units = area.height as f64 * 8.0;
        for (i, c) in candles.iter().enumerate() {
            let style = if c.close >= c.open {
                self.theme.up()
            } else {
                self.theme.down()
            };
            let mut left = (c.volume.to_f64() / max * units).round() as usize;
            // Any volume at all shows as at least a sliver.
            if left == 0 && c.volume.to_f64() > 0.0 {
                left = 1;
            }
            for r in (0..area.height).rev() {
                let part = left.min(8);
                left -= part;
                if part == 0 {
                    break;
                }
                buf[(x0 + i as u16, area.y + r)]
                    .set_symbol(EIGHTHS[part])
                    .set_style(style);
            }
        }
        let ax = area.x + plot_w;
        let muted = self.theme.muted();
        let max_label = fmt_compact(max);
        if area.height > 1 {
            buf.set_stringn(
                ax,
                area.y,
                format!("├{max_label}"),
                AXIS_WIDTH as usize,
                muted,
            );
            buf.set_stringn(
                ax,
                area.y + area.height - 1,
                "├vol",
                AXIS_WIDTH as usize,
                muted,
            );
        } else {
            buf.set_stringn(
                ax,
                area.y,
                format!("├vol {max_label}"),
                AXIS_WIDTH as usize,
                muted,
            );
        }
    }
}

/// An indicator pane aligned with a `CandleChart` of the same width: braille lines, an
/// optional histogram of bars around zero, and horizontal guides (RSI 30/70, MACD 0).
pub struct SeriesPane<'a> {
    pub total: usize,
    /// Values and colour of each line; the first is drawn in braille, later ones as `•`.
    pub lines: Vec<(&'a [Option<f64>], Style)>,
    pub histogram: Option<&'a [Option<f64>]>,
    pub range: Option<(f64, f64)>,
    pub guides: &'a [f64],
    pub theme: Theme,
}

impl<'a> SeriesPane<'a> {
    fn aligned(&self, s: &'a [Option<f64>], n: usize) -> &'a [Option<f64>] {
        if s.len() == self.total {
            tail(s, n)
        } else {
            &[]
        }
    }

    /// The value scale the pane draws with `n` candles shown.
    pub fn scale(&self, n: usize) -> Option<Scale> {
        if let Some((lo, hi)) = self.range {
            return Some(Scale { lo, hi });
        }
        let hist = self.histogram.map(|h| self.aligned(h, n)).unwrap_or(&[]);
        let values = self
            .lines
            .iter()
            .flat_map(|(s, _)| self.aligned(s, n).iter())
            .chain(hist.iter())
            .flatten()
            .copied()
            .chain(self.guides.iter().copied());
        let s = Scale::fitted(values, 0.05, 0.0)?;
        // Bars grow from zero, so zero is always on the axis.
        Some(Scale {
            lo: s.lo.min(0.0),
            hi: s.hi.max(0.0),
        })
    }
}

impl Widget for SeriesPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height == 0 || self.total == 0 {
            return;
        }
        let n = self.total.min(plot_columns(area.width));
        let Some(scale) = self.scale(n) else { return };
        let plot = Rect {
            width: area.width - AXIS_WIDTH,
            ..area
        };
        let ax = plot.x + plot.width;
        let x0 = plot.x + plot.width - n as u16;
        let muted = self.theme.muted();
        let decimals = scale.decimals(2).min(4);
        let mut guide_labels: Vec<(u16, String)> = Vec::new();
        for g in self.guides {
            if let Some(y) = scale.row(*g, plot) {
                for x in plot.x..plot.x + plot.width {
                    buf[(x, y)].set_symbol(glyph::GUIDE).set_style(muted);
                }
                let label = fmt_value(*g, if g.fract() == 0.0 { 0 } else { decimals });
                buf.set_stringn(ax, y, format!("├{label}"), AXIS_WIDTH as usize, muted);
                guide_labels.push((y, label));
            }
        }
        if let Some(h) = self.histogram {
            let hist = self.aligned(h, n);
            let zero = scale.row_clamped(0.0, plot);
            for (i, v) in hist.iter().enumerate() {
                let Some(v) = v.filter(|v| v.is_finite() && *v != 0.0) else {
                    continue;
                };
                let x = x0 + i as u16;
                let y = scale.row_clamped(v, plot);
                let style = self.theme.signed(v);
                if y == zero {
                    // Too small for a row: a half block on the side it leans.
                    buf[(x, zero)]
                        .set_symbol(if v > 0.0 { "▄" } else { "▀" })
                        .set_style(style);
                    continue;
                }
                for yy in y.min(zero)..=y.max(zero) {
                    buf[(x, yy)].set_symbol("█").set_style(style);
                }
            }
        }
        // Braille lines at the candles' columns: canvas x = column + 0.5.
        let lines: Vec<(&[Option<f64>], Color)> = self
            .lines
            .iter()
            .map(|(s, st)| (self.aligned(s, n), color_of(*st)))
            .collect();
        let offset = (x0 - plot.x) as f64;
        Canvas::default()
            .x_bounds([0.0, plot.width as f64])
            .y_bounds([scale.lo, scale.hi])
            .marker(Marker::Braille)
            .paint(|ctx| {
                for (k, (series, color)) in lines.iter().enumerate() {
                    if k > 0 {
                        ctx.layer();
                        ctx.marker(Marker::Dot);
                    }
                    let mut prev: Option<(f64, f64)> = None;
                    for (i, v) in series.iter().enumerate() {
                        let x = offset + i as f64 + 0.5;
                        match (prev, v) {
                            (Some((px, py)), Some(v)) if k == 0 => ctx.draw(&CanvasLine {
                                x1: px,
                                y1: py,
                                x2: x,
                                y2: *v,
                                color: *color,
                            }),
                            (_, Some(v)) => ctx.draw(&ratatui::widgets::canvas::Points {
                                coords: &[(x, *v)],
                                color: *color,
                            }),
                            _ => {}
                        }
                        prev = v.map(|v| (x, v));
                    }
                }
            })
            .render(plot, buf);
        if let Some((first, style)) = self.lines.first()
            && let Some(Some(v)) = self.aligned(first, n).last()
        {
            let y = scale.row_clamped(*v, plot);
            let value = fmt_value(*v, decimals);
            // On a guide's row both are named: the guide must not vanish under the value.
            let text = match guide_labels.iter().find(|(gy, _)| *gy == y) {
                Some((_, g)) => format!("├{g} ◀{value}"),
                None => format!("◀{value}"),
            };
            buf.set_stringn(
                ax,
                y,
                text,
                AXIS_WIDTH as usize,
                style.add_modifier(ratatui::style::Modifier::REVERSED),
            );
        }
    }
}

#[cfg(test)]
mod tests;
