//! Backtests side by side: one column per marked run, the detail's metrics in the detail's
//! formatting, then the LLM cost, the return net of it, and each run against the first with
//! the 95 % intervals `backtest compare` prints.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};

use super::{header_row_owned, num, screen_block};
use crate::app::backtest_compare::{ComparedPair, Comparison};
use crate::domain::Quote;
use crate::domain::decision::edge::Interval95;
use crate::format as fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;

const LABEL_W: u16 = 16;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme, area: Rect, cmp: &Comparison) {
    let ids: Vec<String> = cmp.runs.iter().map(|r| format!("#{}", r.id)).collect();
    let block = screen_block(
        theme,
        "Backtests",
        &format!("comparing {} against {} · Esc back", ids.join(" "), ids[0]),
    );
    // Each run's metrics as the detail writes them, looked up in the snapshot shown.
    let columns: Vec<Vec<(&'static str, String)>> = cmp
        .runs
        .iter()
        .map(|r| {
            let run = app.snapshot.backtests.iter().find(|b| b.id == r.id);
            let currency = run.map_or_else(String::new, |b| app.precision(&b.symbol).quote);
            run.and_then(|b| b.metrics.as_ref())
                .map(|m| fmt::backtest_metrics(m, &currency))
                .unwrap_or_default()
        })
        .collect();
    let labels: Vec<&'static str> = columns
        .iter()
        .max_by_key(|c| c.len())
        .map(|c| c.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let plain = |text: String| num(text, theme.base());
    let row = |label: &'static str, cells: Vec<Cell<'static>>| {
        Row::new(std::iter::once(Cell::from(Span::styled(label, theme.muted()))).chain(cells))
    };
    let mut rows: Vec<Row> = vec![
        row(
            "Strategy",
            cmp.runs.iter().map(|r| plain(r.strategy.clone())).collect(),
        ),
        row(
            "Market",
            cmp.runs
                .iter()
                .map(|r| plain(format!("{} {}", r.symbol, r.interval)))
                .collect(),
        ),
    ];
    let mut extra: Vec<Row> = vec![
        row(
            "LLM cost",
            cmp.runs
                .iter()
                .map(|r| plain(fmt::usd_cost(Quote(r.llm_cost_usd))))
                .collect(),
        ),
        row(
            "Net of cost",
            cmp.runs
                .iter()
                .map(|r| {
                    num(
                        fmt::pct_signed(r.return_net_of_cost_pct),
                        theme.signed(r.return_net_of_cost_pct),
                    )
                })
                .collect(),
        ),
        row(
            "Cost per trade",
            cmp.runs
                .iter()
                .map(|r| {
                    plain(
                        r.cost_per_trade_usd
                            .map_or_else(|| "-".into(), |c| fmt::usd_cost(Quote(c))),
                    )
                })
                .collect(),
        ),
    ];
    // Each later run against the first: the bootstrap's estimate and interval.
    if !cmp.differences.is_empty() {
        let interval = |d: &Interval95, unit: &str| {
            format!(
                "{}{unit} [{} … {}]",
                fmt::number_signed(d.estimate, 2),
                fmt::number_signed(d.low, 2),
                fmt::number_signed(d.high, 2)
            )
        };
        let against = |text: &dyn Fn(&ComparedPair) -> String| -> Vec<Cell<'static>> {
            cmp.runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    plain(match cmp.differences.iter().find(|p| p.run == r.id) {
                        Some(p) => text(p),
                        None if i == 0 => "baseline".into(),
                        None => "-".into(),
                    })
                })
                .collect()
        };
        extra.push(row(
            "Δ net return",
            against(&|p| interval(&p.return_net_diff_pct, " pts")),
        ));
        extra.push(row("Δ Sharpe", against(&|p| interval(&p.sharpe_diff, ""))));
    }
    // The detail's rows, with what only a comparison has right after the return: a short
    // terminal shows those first.
    let mut extra = Some(extra);
    for (i, label) in labels.iter().enumerate() {
        let mut cells = vec![Cell::from(Span::styled(*label, theme.muted()))];
        for column in &columns {
            let value = column.get(i).map_or_else(|| "-".into(), |(_, v)| v.clone());
            cells.push(plain(value));
        }
        rows.push(Row::new(cells));
        if i == 0 {
            rows.extend(extra.take().unwrap_or_default());
        }
    }
    rows.extend(extra.take().unwrap_or_default());
    let n = cmp.runs.len().max(1) as u16;
    let inner_w = area.width.saturating_sub(2 + LABEL_W);
    // Narrow columns side by side read better than two far apart on a wide terminal.
    let col_w = (inner_w / n).clamp(8, 30);
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(LABEL_W))
        .chain((0..n).map(|_| Constraint::Length(col_w.saturating_sub(1))))
        .collect();
    let header: Vec<(String, bool)> = std::iter::once((String::new(), false))
        .chain(cmp.runs.iter().map(|r| (format!("#{}", r.id), true)))
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(header_row_owned(theme, &header))
            .block(block),
        area,
    );
}
