//! The HTML report of a run: one self-contained file (inline SVG charts drawn with plotters, no
//! scripts, fonts or network) with the equity curve, drawdown, price with entries and exits,
//! the metrics table and the trade list. Chart labels are plain HTML, so no font is needed.

use super::BacktestResult;
use super::metrics::Metrics;
use crate::domain::market::candle::TimestampMs;
use plotters::prelude::*;
use std::fmt::Write;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 260;
/// Charts are thinned to about this many points; an SVG with a million points helps no one.
const MAX_POINTS: usize = 2000;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {message}")]
pub struct ReportError {
    chart: &'static str,
    message: String,
}

fn thin<T: Copy>(points: &[T]) -> Vec<T> {
    let stride = points.len().div_ceil(MAX_POINTS).max(1);
    let mut out: Vec<T> = points.iter().step_by(stride).copied().collect();
    if let Some(&last) = points.last()
        && !(points.len() - 1).is_multiple_of(stride)
    {
        out.push(last);
    }
    out
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-9).max(1e-9);
    (lo - pad, hi + pad)
}

/// Markers to draw on the price chart: (time, price, is_entry).
type Marker = (TimestampMs, f64, bool);

fn line_chart(
    chart_name: &'static str,
    series: &[(TimestampMs, f64)],
    color: RGBColor,
    fill_to_zero: bool,
    markers: &[Marker],
) -> Result<String, ReportError> {
    let err = |e: &dyn std::fmt::Display| ReportError {
        chart: chart_name,
        message: e.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let pts = thin(series);
        let (t0, t1) = match (pts.first(), pts.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
            (Some(a), _) => (a.0, a.0 + 1),
            _ => (0, 1),
        };
        let (mut lo, hi) = bounds(pts.iter().map(|p| p.1).chain(markers.iter().map(|m| m.1)));
        if fill_to_zero {
            lo = lo.min(0.0);
        }
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .build_cartesian_2d(t0..t1, lo..hi)
            .map_err(|e| err(&e))?;
        if fill_to_zero {
            chart
                .draw_series(AreaSeries::new(pts.iter().copied(), 0.0, color.mix(0.3)))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(1)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(markers.iter().map(|&(t, p, entry)| {
                let style = if entry { GREEN.filled() } else { RED.filled() };
                Circle::new((t, p), 4, style)
            }))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A timestamp as `YYYY-MM-DD HH:MM` UTC.
pub fn format_time(t: TimestampMs) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.digits$}"))
}

/// Rows of the summary table: (label, value). Shared by the CLI's text summary.
pub fn metric_rows(m: &Metrics) -> Vec<(&'static str, String)> {
    let t = |v: Option<TimestampMs>| v.map_or_else(|| "-".to_string(), format_time);
    vec![
        ("Candles", m.candles.to_string()),
        ("Period", format!("{} .. {}", t(m.start), t(m.end))),
        ("Final equity", format!("{:.2}", m.final_equity)),
        ("Total return", format!("{:.2} %", m.total_return_pct)),
        (
            "Buy and hold",
            format!("{:.2} %", m.buy_and_hold_return_pct),
        ),
        ("CAGR", format!("{} %", opt(m.cagr_pct, 2))),
        ("Sharpe", format!("{:.3}", m.sharpe)),
        ("Sortino", format!("{:.3}", m.sortino)),
        ("Calmar", opt(m.calmar, 3)),
        (
            "Max drawdown",
            format!(
                "{:.4} % ({} .. {})",
                m.max_drawdown_pct,
                t(m.max_drawdown_start),
                t(m.max_drawdown_end)
            ),
        ),
        (
            "Trades",
            format!("{} ({} closed)", m.trades, m.closed_trades),
        ),
        ("Win rate", format!("{:.2} %", m.win_rate_pct)),
        ("Profit factor", opt(m.profit_factor, 3)),
        ("Expectancy", format!("{:.2}", m.expectancy)),
        (
            "Average win / loss",
            format!("{:.2} / {:.2}", m.avg_win, m.avg_loss),
        ),
        (
            "Largest win / loss",
            format!("{:.2} / {:.2}", m.largest_win, m.largest_loss),
        ),
        ("Exposure", format!("{:.2} %", m.exposure_pct)),
        (
            "Average duration",
            format!("{:.1} h", m.avg_trade_duration_hours),
        ),
        ("Fees paid", format!("{:.2}", m.fees_paid)),
    ]
}

/// Render the report. `title` names the run (strategy, symbol, interval, parameters);
/// `closes` are `(open time, close)` per candle.
pub fn render_html(
    title: &str,
    result: &BacktestResult,
    closes: &[(TimestampMs, f64)],
) -> Result<String, ReportError> {
    render_html_with(title, result, closes, None)
}

/// [`render_html`] with an extra section (HTML, e.g. `backtest compare`'s comparison) after
/// the trades.
pub fn render_html_with(
    title: &str,
    result: &BacktestResult,
    closes: &[(TimestampMs, f64)],
    extra_section: Option<&str>,
) -> Result<String, ReportError> {
    let equity: Vec<(TimestampMs, f64)> = result.times.iter().zip(result.equity.iter()).collect();
    let mut peak = f64::NEG_INFINITY;
    let drawdown: Vec<(TimestampMs, f64)> = equity
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            (
                t,
                if peak > 0.0 {
                    -(1.0 - e / peak) * 100.0
                } else {
                    0.0
                },
            )
        })
        .collect();
    let mut markers: Vec<Marker> = Vec::new();
    for tr in &result.trades {
        markers.push((tr.entry_time, tr.entry_price.to_f64(), true));
        if let (Some(t), Some(p)) = (tr.exit_time, tr.exit_price) {
            markers.push((t, p.to_f64(), false));
        }
    }
    let equity_svg = line_chart("equity", &equity, BLUE, false, &[])?;
    let dd_svg = line_chart("drawdown", &drawdown, RED, true, &[])?;
    let price_svg = line_chart("price", closes, BLACK, false, &markers)?;

    let mut h = String::new();
    let m = &result.metrics;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Backtest: {title}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;\
         text-align:right}}th{{background:#f0f0f0}}td:first-child{{text-align:left}}\
         .chart{{margin-bottom:1.5em}}</style></head><body>\n\
         <h1>Backtest: {title}</h1>\n<p>Strategy {strategy}, sizing {sizer}. \
         Axes: time from {start} to {end} (UTC).</p>\n",
        title = esc(title),
        strategy = esc(&result.strategy),
        sizer = esc(&result.sizer),
        start = m.start.map(format_time).unwrap_or_default(),
        end = m.end.map(format_time).unwrap_or_default(),
    );
    let (lo, hi) = bounds(result.equity.iter());
    let _ = write!(
        h,
        "<h2 id=\"equity-curve\">Equity curve</h2><p>from {lo:.2} to {hi:.2}</p>\
         <div class=\"chart\">{equity_svg}</div>\n\
         <h2 id=\"drawdown\">Drawdown</h2><p>deepest {dd:.4} %</p>\
         <div class=\"chart\">{dd_svg}</div>\n\
         <h2 id=\"price\">Price with entries (green) and exits (red)</h2>\
         <div class=\"chart\">{price_svg}</div>\n\
         <h2 id=\"metrics\">Metrics</h2><table>\n",
        dd = m.max_drawdown_pct,
    );
    for (k, v) in metric_rows(m) {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    let _ = write!(
        h,
        "</table>\n<h2 id=\"trades\">Trades</h2><table>\n<tr><th>#</th><th>Entry time</th>\
         <th>Entry price</th><th>Quantity</th><th>Exit time</th><th>Exit price</th>\
         <th>Reason</th><th>Fees</th><th>PnL</th><th>Return %</th></tr>\n"
    );
    for (i, t) in result.trades.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            i + 1,
            format_time(t.entry_time),
            t.entry_price,
            t.qty.get().round_dp(8).normalize(),
            t.exit_time.map_or_else(|| "open".to_string(), format_time),
            t.exit_price.map_or_else(String::new, |p| p.to_string()),
            t.exit_reason
                .map_or_else(String::new, |r| format!("{r:?}").to_lowercase()),
            (t.entry_fee + t.exit_fee).get().round_dp(4),
            t.pnl.get().round_dp(2),
            t.return_pct,
        );
    }
    h.push_str("</table>\n");
    if let Some(section) = extra_section {
        h.push_str(section);
    }
    h.push_str("</body></html>\n");
    Ok(h)
}
