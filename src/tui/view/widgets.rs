//! Formatting helpers and the custom widgets the screens share: a candlestick chart, an aligned
//! indicator pane and a sparkline feeder. Column `i` of every market pane is the same candle.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::Widget;

use crate::domain::Quote;
use crate::domain::market::Candle;

use super::super::theme::Theme;

pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

pub fn fmt_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "--".into())
}

pub fn fmt_quote(q: Quote) -> String {
    format!("{:.2}", q.get())
}

pub fn fmt_quote_signed(q: Quote) -> String {
    if q.get().is_sign_negative() && !q.is_zero() {
        format!("{:.2}", q.get())
    } else {
        format!("+{:.2}", q.get())
    }
}

pub fn fmt_pct(v: f64) -> String {
    format!("{v:+.2}%")
}

/// The top of the scale `sparkline_data` produces.
pub const SPARK_MAX: u64 = 100;

/// Last `n` points of `values` scaled to integers for `Sparkline` (which starts at zero).
pub fn sparkline_data(values: &[f64], n: usize) -> Vec<u64> {
    let start = values.len().saturating_sub(n);
    let tail = &values[start..];
    let (lo, hi) = tail
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return Vec::new();
    }
    let span = hi - lo;
    // Keep a floor so the lowest point is still drawn; a flat series sits at half height.
    // Draw with `Sparkline::max(SPARK_MAX)` so the scale does not stretch a flat line.
    tail.iter()
        .map(|v| {
            if !v.is_finite() {
                0
            } else if span <= f64::EPSILON * hi.abs().max(1.0) {
                SPARK_MAX / 2
            } else if v.is_finite() {
                (1.0 + (v - lo) / span * 99.0).round() as u64
            } else {
                0
            }
        })
        .collect()
}

fn row_of(value: f64, lo: f64, hi: f64, area: Rect) -> u16 {
    let h = area.height.saturating_sub(1) as f64;
    let frac = if hi > lo {
        (hi - value) / (hi - lo)
    } else {
        0.5
    };
    area.y + (frac.clamp(0.0, 1.0) * h).round() as u16
}

/// Candlesticks, one per column (the newest at the right), with line overlays and a price axis.
pub struct CandleChart<'a> {
    pub candles: &'a [Candle],
    /// Series aligned with `candles`, with their style and glyph.
    pub overlays: Vec<(&'a [Option<f64>], Style)>,
    pub theme: Theme,
}

/// Width of the price axis at the right of the candle chart.
pub const AXIS_WIDTH: u16 = 10;

/// How many columns (candles) fit in a plot area `width` wide after the axis.
pub fn plot_columns(width: u16) -> usize {
    width.saturating_sub(AXIS_WIDTH) as usize
}

fn tail<T>(s: &[T], n: usize) -> &[T] {
    &s[s.len().saturating_sub(n)..]
}

impl Widget for CandleChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height < 3 || self.candles.is_empty() {
            return;
        }
        let cols = plot_columns(area.width);
        let candles = tail(self.candles, cols);
        let n = candles.len();
        let overlays: Vec<(&[Option<f64>], Style)> = self
            .overlays
            .iter()
            .map(|(s, st)| {
                // Align the series with the candles by their shared end.
                let aligned = if s.len() >= self.candles.len() {
                    tail(s, n)
                } else {
                    &[][..]
                };
                (aligned, *st)
            })
            .collect();
        let mut lo = f64::MAX;
        let mut hi = f64::MIN;
        for c in candles {
            lo = lo.min(c.low.to_f64());
            hi = hi.max(c.high.to_f64());
        }
        for (s, _) in &overlays {
            for v in s.iter().flatten() {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
        }
        let plot = Rect {
            width: area.width - AXIS_WIDTH,
            ..area
        };
        // Right-align: the newest candle touches the axis.
        let x0 = plot.x + plot.width - n as u16;
        for (i, c) in candles.iter().enumerate() {
            let x = x0 + i as u16;
            let up = c.close >= c.open;
            let (glyph, body_style) = self.theme.candle_body(up);
            let wick_style = if up {
                self.theme.up()
            } else {
                self.theme.down()
            };
            let top = row_of(c.high.to_f64(), lo, hi, plot);
            let bottom = row_of(c.low.to_f64(), lo, hi, plot);
            for y in top..=bottom {
                buf[(x, y)].set_symbol("│").set_style(wick_style);
            }
            let (o, cl) = (c.open.to_f64(), c.close.to_f64());
            let b_top = row_of(o.max(cl), lo, hi, plot);
            let b_bottom = row_of(o.min(cl), lo, hi, plot);
            for y in b_top..=b_bottom {
                buf[(x, y)].set_symbol(glyph).set_style(body_style);
            }
        }
        for (series, style) in &overlays {
            for (i, v) in series.iter().enumerate() {
                if let Some(v) = v {
                    let x = x0 + i as u16;
                    let y = row_of(*v, lo, hi, plot);
                    let cell = &mut buf[(x, y)];
                    if cell.symbol() == " " || cell.symbol() == "│" {
                        cell.set_symbol("•").set_style(*style);
                    }
                }
            }
        }
        let axis_x = plot.x + plot.width + 1;
        let label_w = AXIS_WIDTH - 1;
        let mid = (hi + lo) / 2.0;
        for (value, y) in [
            (hi, plot.y),
            (mid, row_of(mid, lo, hi, plot)),
            (lo, plot.y + plot.height - 1),
        ] {
            buf.set_stringn(
                axis_x,
                y,
                format_axis(value),
                label_w as usize,
                self.theme.muted(),
            );
        }
        if let Some(last) = candles.last() {
            let v = last.close.to_f64();
            let style = if last.close >= last.open {
                self.theme.up()
            } else {
                self.theme.down()
            };
            buf.set_stringn(
                axis_x - 1,
                row_of(v, lo, hi, plot),
                format!("◀{}", format_axis(v)),
                AXIS_WIDTH as usize,
                style,
            );
        }
    }
}

fn format_axis(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

/// An indicator pane aligned with a `CandleChart` of the same width: line series as dots, an
/// optional zero-centred histogram, and horizontal guides (e.g. RSI 30/70).
pub struct SeriesPane<'a> {
    pub total: usize,
    pub lines: Vec<(&'a [Option<f64>], Style)>,
    pub histogram: Option<&'a [Option<f64>]>,
    pub range: Option<(f64, f64)>,
    pub guides: &'a [f64],
    pub theme: Theme,
}

impl<'a> Widget for SeriesPane<'a> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= AXIS_WIDTH || area.height == 0 || self.total == 0 {
            return;
        }
        let cols = plot_columns(area.width);
        let n = self.total.min(cols);
        let plot = Rect {
            width: area.width - AXIS_WIDTH,
            ..area
        };
        let x0 = plot.x + plot.width - n as u16;
        let total = self.total;
        let aligned = |s: &'a [Option<f64>]| -> &'a [Option<f64>] {
            if s.len() >= total { tail(s, n) } else { &[] }
        };
        let lines: Vec<_> = self.lines.iter().map(|(s, st)| (aligned(s), *st)).collect();
        let hist = self.histogram.map(aligned).unwrap_or(&[]);
        let (lo, hi) = self.range.unwrap_or_else(|| {
            let mut lo = f64::MAX;
            let mut hi = f64::MIN;
            for v in lines
                .iter()
                .flat_map(|(s, _)| s.iter())
                .chain(hist.iter())
                .flatten()
            {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
            if hist.iter().flatten().next().is_some() {
                lo = lo.min(0.0);
                hi = hi.max(0.0);
            }
            (lo, hi)
        });
        if lo > hi {
            return;
        }
        for g in self.guides {
            let y = row_of(*g, lo, hi, plot);
            for x in plot.x..plot.x + plot.width {
                buf[(x, y)].set_symbol("┄").set_style(self.theme.muted());
            }
            buf.set_stringn(
                plot.x + plot.width + 1,
                y,
                format!("{g:.0}"),
                (AXIS_WIDTH - 1) as usize,
                self.theme.muted(),
            );
        }
        if !hist.is_empty() {
            let zero = row_of(0.0, lo, hi, plot);
            for (i, v) in hist.iter().enumerate() {
                if let Some(v) = v {
                    let x = x0 + i as u16;
                    let y = row_of(*v, lo, hi, plot);
                    let style = self.theme.signed(*v);
                    for yy in y.min(zero)..=y.max(zero) {
                        buf[(x, yy)].set_symbol("▒").set_style(style);
                    }
                }
            }
        }
        for (series, style) in &lines {
            for (i, v) in series.iter().enumerate() {
                if let Some(v) = v {
                    buf[(x0 + i as u16, row_of(*v, lo, hi, plot))]
                        .set_symbol("•")
                        .set_style(*style);
                }
            }
        }
        if let Some((first, _)) = lines.first()
            && let Some(Some(v)) = first.last()
        {
            buf.set_stringn(
                plot.x + plot.width + 1,
                row_of(*v, lo, hi, plot),
                format!("{v:.2}"),
                (AXIS_WIDTH - 1) as usize,
                self.theme.accent(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_data_scales_the_tail_between_one_and_a_hundred() {
        // last 3 of [5, 10, 20, 15]: lo 10, hi 20 -> 1, 100, 1 + 0.5 * 99 = 50.5 -> 51
        assert_eq!(
            sparkline_data(&[5.0, 10.0, 20.0, 15.0], 3),
            vec![1, 100, 51]
        );
        assert!(sparkline_data(&[], 3).is_empty());
        assert_eq!(sparkline_data(&[7.0, 7.0], 5), vec![50, 50]);
    }

    #[test]
    fn signed_quote_shows_plus_for_gains_and_minus_for_losses() {
        use rust_decimal_macros::dec;
        assert_eq!(fmt_quote_signed(Quote(dec!(12.3))), "+12.30");
        assert_eq!(fmt_quote_signed(Quote(dec!(-3))), "-3.00");
        assert_eq!(fmt_quote_signed(Quote::ZERO), "+0.00");
    }
}
