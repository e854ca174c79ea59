//! The charts' own tests (scales, glyphs) and whole-screen checks of the chart panes at 80×24
//! and 200×60, in colour and under `NO_COLOR`.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use super::*;
use crate::tui::fixture;

fn rows(buf: &Buffer) -> Vec<String> {
    let a = buf.area;
    (a.y..a.y + a.height)
        .map(|y| (a.x..a.x + a.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect()
}

fn render(w: impl Widget, width: u16, height: u16) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
    w.render(buf.area, &mut buf);
    buf
}

fn is_braille(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
}

#[test]
fn a_quarter_percent_dip_fills_at_most_a_third_of_the_equity_chart() {
    let h = 3_600_000;
    let points = [
        (0, 10_000.0),
        (h, 10_000.0),
        (2 * h, 9_975.0),
        (3 * h, 10_000.0),
    ];
    let chart = EquityChart {
        points: &points,
        benchmark: &[],
        theme: Theme::new(false),
    };
    let scale = chart.scale().unwrap();
    assert!(scale.hi - scale.lo >= 100.0, "{scale:?}");
    let buf = render(chart, 60, 13);
    let text = rows(&buf);
    let shaded = text.iter().filter(|r| r.contains(glyph::DRAWDOWN)).count();
    assert!(shaded >= 1, "the dip is drawn:\n{}", text.join("\n"));
    assert!(
        shaded <= 4,
        "a 0.25 % dip is no crash:\n{}",
        text.join("\n")
    );
    // Value labels on the left axis, time labels under the plot.
    assert!(text.iter().any(|r| r.contains("10,0") && r.contains('┤')));
    assert!(text.iter().any(|r| r.contains("9,9") && r.contains('┤')));
    assert!(text[12].contains("00:00") && text[12].contains("03:00"));
}

#[test]
fn equity_chart_spans_its_area_with_the_high_water_mark_above_the_shading() {
    let points: Vec<(i64, f64)> = (0..8)
        .map(|i| {
            (
                i * 60_000,
                [100.0, 110.0, 120.0, 100.0, 95.0, 130.0, 125.0, 140.0][i as usize],
            )
        })
        .collect();
    let buf = render(
        EquityChart {
            points: &points,
            benchmark: &[],
            theme: Theme::new(false),
        },
        80,
        12,
    );
    let text = rows(&buf);
    // The line reaches both ends of the plot (not 8 bars at the left).
    let plot_rows = &text[..11];
    let first_col = plot_rows
        .iter()
        .filter_map(|r| r.chars().position(|c| is_braille(&c.to_string())))
        .min()
        .unwrap();
    let last_col = plot_rows
        .iter()
        .filter_map(|r| {
            r.chars()
                .enumerate()
                .filter(|(_, c)| is_braille(&c.to_string()))
                .map(|(i, _)| i)
                .max()
        })
        .max()
        .unwrap();
    assert!(first_col <= 10 && last_col >= 78, "{}", text.join("\n"));
    assert!(text.iter().any(|r| r.contains(glyph::HIGH_WATER)));
    assert!(text.iter().any(|r| r.contains(glyph::DRAWDOWN)));
}

#[test]
fn a_shallow_drawdown_stays_shallow_and_is_labelled_in_percent() {
    let points: Vec<(i64, f64)> = (0..50)
        .map(|i| (i * 60_000, if (20..30).contains(&i) { -0.25 } else { 0.0 }))
        .collect();
    let chart = DrawdownChart {
        points: &points,
        theme: Theme::new(false),
    };
    assert!(chart.scale().lo <= -1.0);
    let text = rows(&render(chart, 60, 12));
    let bar_rows = text.iter().filter(|r| r.contains('█')).count();
    assert!((1..=3).contains(&bar_rows), "{}", text.join("\n"));
    assert!(text.iter().any(|r| r.contains("0.00%┤")));
    assert!(text.iter().any(|r| r.contains("-1.10%┤")));
}

#[test]
fn candle_price_axis_fits_the_candles_not_the_bollinger_bands() {
    let candles = fixture::candles(60);
    let far: Vec<Option<f64>> = candles
        .iter()
        .map(|c| Some(c.high.to_f64() * 1.2))
        .collect();
    let chart = CandleChart {
        candles: &candles,
        interval: Interval::H1,
        overlays: vec![(&far, glyph::BOLLINGER, Style::new())],
        marks: &[],
        levels: &[],
        theme: Theme::new(false),
    };
    let scale = chart.scale(80).unwrap();
    let high = candles.iter().map(|c| c.high.to_f64()).fold(0.0, f64::max);
    let low = candles
        .iter()
        .map(|c| c.low.to_f64())
        .fold(f64::MAX, f64::min);
    let span = high - low;
    assert!(scale.hi <= high + 0.05 * span && scale.lo >= low - 0.05 * span);
    assert!(scale.hi >= high && scale.lo <= low);
}

#[test]
fn entries_exits_stops_and_targets_are_drawn_on_the_candles() {
    let candles = fixture::candles(40);
    let c = &candles[30];
    let mid = (c.high.to_f64() + c.low.to_f64()) / 2.0;
    let theme = Theme::new(false);
    let levels = [
        PriceLevel {
            price: mid,
            tag: "S",
            glyph: glyph::STOP,
            style: Style::new(),
        },
        PriceLevel {
            price: 1e9,
            tag: "T",
            glyph: glyph::TARGET,
            style: Style::new(),
        },
    ];
    let marks = [
        TradeMark {
            at_ms: candles[10].open_time + 60_000,
            buy: true,
        },
        TradeMark {
            at_ms: candles[20].open_time,
            buy: false,
        },
    ];
    let text = rows(&render(
        CandleChart {
            candles: &candles,
            interval: Interval::H1,
            overlays: vec![],
            marks: &marks,
            levels: &levels,
            theme,
        },
        60,
        20,
    ));
    let all = text.join("\n");
    assert!(
        all.contains(glyph::BUY) && all.contains(glyph::SELL),
        "{all}"
    );
    assert!(all.contains(&format!("{0}{0}{0}", glyph::STOP)), "{all}");
    assert!(all.contains("├S"), "{all}");
    // A target off the chart is named at the edge it lies beyond.
    assert!(text[0].contains("↑T"), "{all}");
}

#[test]
fn time_axis_labels_round_utc_hours_and_new_days() {
    let candles = fixture::candles(60);
    let text = rows(&render(
        TimeAxis {
            candles: &candles,
            interval: Interval::H1,
            theme: Theme::new(false),
        },
        71,
        1,
    ));
    // 60 hourly candles ending 2026-01-02 12:00: midnight is "Jan 02", others are hours.
    assert!(text[0].contains("╵Jan 02"), "{}", text[0]);
    assert!(text[0].contains(":00"), "{}", text[0]);
    assert!(text[0].contains("UTC"));
}

#[test]
fn fmt_value_groups_thousands_and_keeps_the_sign() {
    assert_eq!(fmt_value(48_250.5, 1), "48,250.5");
    assert_eq!(fmt_value(-1_234_567.0, 0), "-1,234,567");
    assert_eq!(fmt_value(999.0, 2), "999.00");
    assert_eq!(fmt_value(-0.001, 2), "0.00");
}

/// Whole screens through `view::draw`, as a trader sees them.
mod screens {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::tui::action::{Action, Screen};
    use crate::tui::fixture;
    use crate::tui::state::App;
    use crate::tui::theme::Theme;
    use crate::tui::update::update;

    const SIZES: [(u16, u16); 2] = [(80, 24), (200, 60)];

    fn screen(app: &App, w: u16, h: u16, color: bool) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|f| crate::tui::view::draw(f, app, Theme::new(color)))
            .unwrap();
        let buf = terminal.backend().buffer();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect())
            .collect()
    }

    fn app_on(screen: Screen) -> App {
        let mut app = App::new(fixture::snapshot());
        update(&mut app, Action::GoTo(screen));
        app
    }

    fn braille(s: &str) -> usize {
        s.chars()
            .filter(|c| ('\u{2801}'..='\u{28ff}').contains(c))
            .count()
    }

    /// Rows `from..to` of `text`, columns `c0..c1`.
    fn region(
        text: &[String],
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Vec<String> {
        text[rows]
            .iter()
            .map(|r| r.chars().skip(cols.start).take(cols.len()).collect())
            .collect()
    }

    #[test]
    fn dashboard_equity_has_a_value_axis_and_spans_its_pane() {
        let app = app_on(Screen::Dashboard);
        for (w, h) in SIZES {
            let text = screen(&app, w, h, true);
            // The equity pane: right of the 36-column account box, under the tabs.
            let pane = region(&text, 3..if h >= 36 { 14 } else { 9 }, 37..w as usize - 1);
            let joined = pane.join("\n");
            assert!(
                pane.iter()
                    .filter(|r| r.contains(',') && r.contains('┤'))
                    .count()
                    >= 2,
                "value labels at {w}x{h}:\n{joined}"
            );
            // The curve reaches the right third of the pane.
            let right: usize = pane
                .iter()
                .map(|r| {
                    braille(
                        &r.chars()
                            .skip(r.chars().count() * 2 / 3)
                            .collect::<String>(),
                    )
                })
                .sum();
            assert!(right > 0, "curve spans the pane at {w}x{h}:\n{joined}");
        }
    }

    #[test]
    fn dashboard_equity_draws_a_quarter_percent_dip_as_a_dip() {
        let mut app = app_on(Screen::Dashboard);
        let h = 3_600_000;
        let t0 = fixture::NOW_MS - 10 * h;
        app.snapshot.account.equity_curve = (0..10)
            .map(|i| (t0 + i * h, if i == 5 { 9_975.0 } else { 10_000.0 }))
            .collect();
        let text = screen(&app, 200, 60, false);
        let pane = region(&text, 3..14, 37..199);
        let shaded = pane.iter().filter(|r| r.contains('░')).count();
        // 10 plot rows: the dip takes at most a third of them.
        assert!((1..=3).contains(&shaded), "{}", pane.join("\n"));
    }

    #[test]
    fn a_fresh_account_shows_no_curve_rather_than_a_dot_under_three_equal_times() {
        let mut app = app_on(Screen::Dashboard);
        let now = fixture::NOW_MS;
        app.snapshot.account.equity_curve = vec![(now, 10_000.0), (now, 10_000.0)];
        let text = screen(&app, 80, 24, false).join("\n");
        assert!(text.contains("no closed trades yet"), "{text}");
    }

    #[test]
    fn backtest_detail_has_axes_and_buy_and_hold() {
        let mut app = app_on(Screen::Backtests);
        update(&mut app, Action::Down); // the completed run #6
        update(&mut app, Action::Enter);
        for (w, h) in SIZES {
            let text = screen(&app, w, h, false).join("\n");
            assert!(text.contains("buy & hold"), "{w}x{h}:\n{text}");
            assert!(text.contains("%┤"), "drawdown axis at {w}x{h}:\n{text}");
            assert!(
                text.lines().any(|r| r.contains(',') && r.contains('┤')),
                "{w}x{h}:\n{text}"
            );
            assert!(
                text.contains("Dec ") || text.contains("Jan "),
                "time axis {w}x{h}:\n{text}"
            );
        }
    }

    #[test]
    fn market_candles_have_a_time_axis_volume_and_a_price_axis_fitted_to_them() {
        let mut app = app_on(Screen::Market);
        // No position: its levels would label the axis edges.
        app.snapshot.positions.clear();
        // Bands far outside the candles must not stretch the axis.
        let m = &mut app.snapshot.market;
        m.overlays.bb_upper = m
            .candles
            .iter()
            .map(|c| Some(c.high.to_f64() * 1.1))
            .collect();
        let candles = m.candles.clone();
        for (w, h) in SIZES {
            // The candles shown: the chart's inner width (less the book and the borders) less
            // the price axis.
            let side = if w >= 140 { 44 } else { 28 };
            let shown = (w - side - 2 - super::AXIS_WIDTH) as usize;
            let high = candles[candles.len() - shown..]
                .iter()
                .map(|c| c.high.to_f64())
                .fold(0.0, f64::max);
            let text = screen(&app, w, h, true);
            let joined = text.join("\n");
            assert!(
                joined.contains("UTC") && joined.contains("╵"),
                "{w}x{h}:\n{joined}"
            );
            assert!(joined.contains("vol"), "{w}x{h}:\n{joined}");
            // The axis ticks (`├` and a number) of the candle pane: rows 4 to the time axis.
            let time_row = text.iter().position(|r| r.contains('╵')).unwrap();
            let top: f64 = text[4..time_row]
                .iter()
                .filter_map(|r| r.split_once('├').map(|(_, t)| t.to_string()))
                .filter_map(|t| {
                    t.chars()
                        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                        .filter(|c| *c != ',')
                        .collect::<String>()
                        .parse::<f64>()
                        .ok()
                })
                .fold(0.0, f64::max);
            assert!(
                top > high * 0.97 && top < high * 1.02,
                "top {top} vs high {high} at {w}x{h}:\n{joined}"
            );
        }
    }

    #[test]
    fn market_overlays_are_told_apart_without_colour() {
        let app = app_on(Screen::Market);
        for (w, h) in SIZES {
            let text = screen(&app, w, h, false);
            // Below the legend: the chart body.
            let body = text[4..].join("\n");
            for g in ["•", "+", "·"] {
                assert!(
                    body.matches(g).count() >= 3,
                    "{g} missing at {w}x{h}:\n{body}"
                );
            }
            assert!(
                text[3].contains("• SMA") && text[3].contains("+ EMA") && text[3].contains("· BB")
            );
        }
    }

    #[test]
    fn market_rsi_has_guides_and_rows_and_macd_has_bars_around_zero() {
        let app = app_on(Screen::Market);
        for (w, h) in SIZES {
            let text = screen(&app, w, h, false);
            let joined = text.join("\n");
            let rsi = text.iter().position(|r| r.contains("RSI 14")).unwrap();
            let macd = text
                .iter()
                .position(|r| r.contains("MACD 12 26 9"))
                .unwrap();
            let rsi_rows = macd - rsi - 1;
            assert!(
                rsi_rows >= if h >= 60 { 8 } else { 4 },
                "{w}x{h}:\n{joined}"
            );
            // Two guide rows (30 and 70), labelled unless the current value sits on one.
            let guides = text[rsi..macd].iter().filter(|r| r.contains('┄')).count();
            assert!(guides >= 2, "{w}x{h}:\n{joined}");
            assert!(
                text[rsi..macd]
                    .iter()
                    .any(|r| r.contains("├70") || r.contains("├30")),
                "{w}x{h}:\n{joined}"
            );
            let zero = macd + text[macd..].iter().position(|r| r.contains("├0")).unwrap();
            // Full rows away from zero, or a half block on the zero row when a bar is small.
            let above =
                text[macd + 1..zero].iter().any(|r| r.contains('█')) || text[zero].contains('▄');
            let below = text[zero + 1..h as usize - 2]
                .iter()
                .any(|r| r.contains('█'))
                || text[zero].contains('▀');
            assert!(
                above && below,
                "MACD bars on both sides of 0 at {w}x{h}:\n{joined}"
            );
        }
    }

    #[test]
    fn market_marks_the_traders_fills_stop_and_target() {
        let app = app_on(Screen::Market);
        let text = screen(&app, 200, 60, false).join("\n");
        assert!(text.contains('▲') && text.contains('▼'), "{text}");
        assert!(text.contains("╍╍╍") && text.contains("S49,100"), "{text}");
        assert!(text.contains("T53,000"), "{text}");
    }

    #[test]
    fn market_screen_no_color_snapshots() {
        let app = app_on(Screen::Market);
        for (w, h) in SIZES {
            insta::assert_snapshot!(
                format!("market_no_color_{w}x{h}"),
                screen(&app, w, h, false).join("\n")
            );
        }
    }

    #[test]
    fn chart_screens_snapshots_at_200x60() {
        for screen_name in [Screen::Dashboard, Screen::Market] {
            let app = app_on(screen_name);
            insta::assert_snapshot!(
                format!("{}_200x60", screen_name.short().to_lowercase()),
                screen(&app, 200, 60, true).join("\n")
            );
        }
        let mut app = app_on(Screen::Backtests);
        update(&mut app, Action::Down);
        update(&mut app, Action::Enter);
        insta::assert_snapshot!(
            "backtest_detail_200x60",
            screen(&app, 200, 60, true).join("\n")
        );
    }
}
