//! Draw functions: the frame (header with the trading mode, tab bar, status line), one module
//! per screen, and the overlays (help, confirmation, command line, backtest form).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Wrap};

use super::action::Screen;
use super::keys;
use super::state::{App, BacktestForm, Overlay, StatusKind};
use super::theme::Theme;

mod backtests;
pub mod charts;
mod compare;
mod dashboard;
mod decisions;
mod logs;
mod market;
mod positions;
mod risk;
mod trades;
pub mod widgets;

use crate::format as fmt;

/// The smallest terminal every screen is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Below this width tab labels are abbreviated.
const WIDE: u16 = 100;

pub fn tab_label(screen: Screen, width: u16) -> String {
    let name = if width >= WIDE {
        screen.long()
    } else {
        screen.short()
    };
    format!(" {} {} ", screen.index() + 1, name)
}

/// Draw the whole interface.
pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        // Below this, columns and the header's state would be cut without a word.
        let text = format!(
            "terminal too small ({}×{}): need {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(text, theme.warn()))).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, theme, header);
    draw_tabs(frame, app, theme, tabs);
    match app.screen {
        Screen::Dashboard => dashboard::draw(frame, app, theme, body),
        Screen::Positions => positions::draw(frame, app, theme, body),
        Screen::Trades => trades::draw(frame, app, theme, body),
        Screen::Decisions => decisions::draw(frame, app, theme, body),
        Screen::Market => market::draw(frame, app, theme, body),
        Screen::Backtests => backtests::draw(frame, app, theme, body),
        Screen::Risk => risk::draw(frame, app, theme, body),
        Screen::Logs => logs::draw(frame, app, theme, body),
    }
    draw_footer(frame, app, theme, footer);
    match &app.overlay {
        Overlay::None | Overlay::Command(_) => {}
        Overlay::Help => draw_help(frame, app, theme, body),
        Overlay::Confirm(d) => draw_confirm(frame, theme, body, &d.question),
        Overlay::BacktestForm(form) => draw_form(frame, theme, body, form),
    }
}

fn draw_header(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let s = &app.snapshot;
    let wide = area.width >= WIDE;
    let mut spans = vec![
        Span::styled(if wide { " TradeMind " } else { " TM " }, theme.header()),
        Span::styled(format!(" {} ", s.mode.label()), theme.mode(s.mode)),
        Span::raw(" equity "),
        Span::styled(fmt::money(s.account.equity, &app.currency), theme.header()),
        Span::raw("  day "),
        Span::styled(
            format!(
                "{} ({})",
                fmt::amount_signed(s.account.daily_pnl, &app.currency),
                fmt::pct_signed(s.account.daily_pnl_pct)
            ),
            theme.signed(s.account.daily_pnl.to_f64()),
        ),
        Span::raw("  "),
        // The trading state, not just the breaker: a pause, the kill switch and a loss rule
        // read differently.
        Span::styled(
            format!(" {} ", s.trading.label()),
            theme.trading(&s.trading),
        ),
    ];
    // Whether a daemon trades while this window is open (its heartbeat, as `status` says it).
    match &s.daemon {
        Some(crate::store::heartbeat::DaemonPresence::Alive { pid, .. }) => {
            spans.push(Span::styled(
                if wide {
                    format!("  daemon alive (pid {pid})")
                } else {
                    "  daemon".to_string()
                },
                theme.ok(true),
            ))
        }
        Some(crate::store::heartbeat::DaemonPresence::NotRunning { .. }) => {
            spans.push(Span::styled(
                if wide {
                    "  no daemon running"
                } else {
                    "  no daemon"
                },
                theme.muted(),
            ))
        }
        None => {}
    }
    if s.as_of_ms > 0 {
        // The run's clock: in the demo that is the replay's simulated day, so the date is
        // shown whenever there is room.
        let short = format!(" {}", fmt::when(s.as_of_ms, s.as_of_ms));
        let mut forms = Vec::new();
        if wide {
            forms.push(format!("  as of {}", fmt::timestamp(s.as_of_ms)));
        }
        forms.extend(without_seconds(&short));
        forms.insert(usize::from(wide), short);
        // Never a cut number: the longest form that fits whole (the date, the time, the time
        // without its seconds), else nothing.
        let used: usize = spans.iter().map(Span::width).sum();
        let room = usize::from(area.width).saturating_sub(used);
        if let Some(time) = forms.into_iter().find(|t| t.chars().count() <= room) {
            spans.push(Span::styled(time, theme.muted()));
        }
    }
    frame.render_widget(Line::from(spans), area);
}

/// `… 04:54:30` as `… 04:54`; `None` when the text does not end in a time with seconds.
fn without_seconds(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let n = b.len();
    let is_time = n >= 8
        && b[n - 3] == b':'
        && b[n - 6] == b':'
        && [1, 2, 4, 5, 7, 8]
            .iter()
            .all(|&i| b[n - i].is_ascii_digit());
    is_time.then(|| text[..n - 3].to_string())
}

fn draw_tabs(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let mut spans = Vec::new();
    for (i, s) in Screen::ALL.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("│", theme.muted()));
        }
        let style = if s == app.screen {
            theme.tab_active()
        } else {
            theme.base()
        };
        spans.push(Span::styled(tab_label(s, area.width), style));
    }
    frame.render_widget(Line::from(spans), area);
}

fn draw_footer(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let line = if let Overlay::Command(text) = &app.overlay {
        Line::from(vec![
            Span::styled(":", theme.accent()),
            Span::raw(text.clone()),
            Span::styled("█", theme.accent()),
        ])
    } else if let Some(status) = &app.status {
        let style = match status.kind {
            StatusKind::Info => theme.accent(),
            StatusKind::Warning => theme.warn(),
            StatusKind::Error => theme.down(),
        };
        Line::from(Span::styled(status.text.clone(), style))
    } else {
        let pause = if app.snapshot.trading_paused {
            "resume"
        } else {
            "pause"
        };
        Line::from(Span::styled(
            format!(" ? help  : command  1-8 screens  p {pause}  q quit"),
            theme.muted(),
        ))
    };
    frame.render_widget(line, area);
}

/// A box of at most `w`×`h` in the middle of `area`, cleared.
fn dialog_area(frame: &mut Frame, area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, rect);
    rect
}

fn draw_help(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let mut lines = vec![Line::from(Span::styled(
        format!("{} keys", app.screen.title()),
        theme.title(),
    ))];
    for b in keys::screen_bindings(app.screen) {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", b.keys), theme.accent()),
            Span::raw(b.what),
        ]));
    }
    lines.push(Line::from(Span::styled("Everywhere", theme.title())));
    for b in keys::GLOBAL {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", b.keys), theme.accent()),
            Span::raw(b.what),
        ]));
    }
    let h = lines.len() as u16 + 2;
    let rect = dialog_area(frame, area, 76, h);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" Help — any key closes ")
                .border_style(theme.accent()),
        ),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame, theme: Theme, area: Rect, question: &str) {
    let rect = dialog_area(frame, area, 60, 6);
    let text = vec![
        Line::from(question.to_string()),
        Line::from(""),
        Line::from(vec![
            Span::styled("[y]", theme.up()),
            Span::raw(" yes   "),
            Span::styled("[n]", theme.down()),
            Span::raw(" no"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" Confirm ")
                .border_style(theme.warn()),
        ),
        rect,
    );
}

/// The built-in strategies the backtester runs, their parameters with defaults and ranges.
/// Periods are whole candles (1–100000), levels 0–100, stop_pct/take_pct percentages in (0, 100).
pub const STRATEGY_PARAMS: [(&str, &str); 4] = [
    ("sma-cross", "fast=10 slow=30 (candles, fast < slow)"),
    (
        "rsi-reversion",
        "period=14 oversold=30 overbought=70 (0–100)",
    ),
    ("macd", "fast=12 slow=26 signal=9 (candles)"),
    (
        "rsi-macd",
        "rsi_period=14 oversold=30 overbought=70 (0–100)",
    ),
];

fn draw_form(frame: &mut Frame, theme: Theme, area: Rect, form: &BacktestForm) {
    let rect = dialog_area(frame, area, 76, 18);
    let mut lines = Vec::new();
    for (i, label) in BacktestForm::LABELS.iter().enumerate() {
        let focused = i == form.focus;
        let value = form.field(i);
        lines.push(Line::from(vec![
            Span::styled(
                format!("{}{:<11}", if focused { "▶ " } else { "  " }, label),
                if focused {
                    theme.accent()
                } else {
                    theme.base()
                },
            ),
            Span::styled(
                format!("{value}{}", if focused { "█" } else { "" }),
                if focused {
                    theme.header()
                } else {
                    theme.base()
                },
            ),
            Span::styled(
                if value.is_empty() {
                    BacktestForm::placeholder(i)
                } else {
                    ""
                },
                theme.muted(),
            ),
        ]));
    }
    lines.push(Line::from(Span::styled(
        "  Strategies (key=value, defaults shown; each also takes stop_pct, take_pct):",
        theme.muted(),
    )));
    for (name, params) in STRATEGY_PARAMS {
        let chosen = form.strategy.trim() == name;
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {}{name:<14}", if chosen { "● " } else { "  " }),
                if chosen { theme.accent() } else { theme.base() },
            ),
            Span::styled(params, theme.muted()),
        ]));
    }
    if let Some(e) = &form.error {
        // The whole error, wrapped: a cut message cannot be acted on.
        lines.push(Line::from(Span::styled(format!("  {e}"), theme.down())));
    }
    lines.push(Line::from(Span::styled(
        "  Tab/↓ next field · Enter start · Esc cancel",
        theme.muted(),
    )));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(" New backtest ")
                .border_style(theme.accent()),
        ),
        rect,
    );
}

/// A bordered block titled with the screen name and an optional note.
pub(super) fn screen_block(theme: Theme, title: &str, note: &str) -> Block<'static> {
    let mut spans = vec![Span::styled(format!(" {title} "), theme.title())];
    if !note.is_empty() {
        spans.push(Span::styled(format!("{note} "), theme.muted()));
    }
    Block::bordered().title(Line::from(spans))
}

/// The width of the widest of `texts` (at least `min`): a column of times is as wide as its
/// longest entry, so "today" columns stay narrow and dated ones are not cut.
pub(super) fn width_of<'a>(texts: impl IntoIterator<Item = &'a str>, min: u16) -> u16 {
    texts
        .into_iter()
        .map(|t| t.chars().count() as u16)
        .max()
        .unwrap_or(0)
        .max(min)
}

/// A number in a table: right-aligned so its digits line up.
pub(super) fn num(text: String, style: Style) -> Cell<'static> {
    Cell::from(Line::from(Span::styled(text, style)).right_aligned())
}

/// A header row whose numeric columns (`true`) are right-aligned over their numbers.
pub(super) fn header_row(
    theme: Theme,
    columns: &[(&'static str, bool)],
) -> ratatui::widgets::Row<'static> {
    ratatui::widgets::Row::new(columns.iter().map(|(name, numeric)| {
        let line = Line::from(*name);
        Cell::from(if *numeric { line.right_aligned() } else { line })
    }))
    .style(theme.header())
}

/// `header_row` with names made at draw time (a comparison's run ids).
pub(super) fn header_row_owned(
    theme: Theme,
    columns: &[(String, bool)],
) -> ratatui::widgets::Row<'static> {
    ratatui::widgets::Row::new(columns.iter().map(|(name, numeric)| {
        let line = Line::from(name.clone());
        Cell::from(if *numeric { line.right_aligned() } else { line })
    }))
    .style(theme.header())
}

/// An empty-state message, centred in a block.
pub(super) fn empty(frame: &mut Frame, theme: Theme, area: Rect, block: Block, text: &str) {
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(text.to_string(), theme.muted())))
            .wrap(Wrap { trim: true })
            .block(block)
            .style(Style::new()),
        area,
    );
}

#[cfg(test)]
mod tests;
