//! The ratatui interface: actions (messages), a pure update, and draw functions per screen.
//! The terminal is always restored, including when a panic unwinds.

use anyhow::{Result, bail};
use crossterm::event::{Event as TermEvent, EventStream, KeyCode, KeyEventKind};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use std::io::IsTerminal;

use crate::cli::Context;

/// Open the interface and run until the user quits.
pub async fn run(ctx: &Context) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "the terminal interface needs a terminal; use `trademind --daemon` or a subcommand (see --help)"
        );
    }
    let mode = if ctx.settings().trading.live {
        "LIVE"
    } else {
        "PAPER"
    };
    // ratatui::init installs a panic hook that restores the terminal before the panic prints.
    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, mode).await;
    ratatui::restore();
    result
}

async fn event_loop(terminal: &mut DefaultTerminal, mode: &str) -> Result<()> {
    let mut events = EventStream::new();
    loop {
        terminal.draw(|frame| {
            let [header, body] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(frame.area());
            frame.render_widget(
                Line::from(vec![" TradeMind ".bold(), format!(" {mode} ").reversed()]),
                header,
            );
            frame.render_widget(
                Paragraph::new(
                    "The cockpit screens arrive with the TUI issue.\n\nPress q to quit.",
                )
                .style(Style::default())
                .block(Block::bordered().title("Dashboard")),
                body,
            );
        })?;
        match events.next().await {
            Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => {
                if matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                    return Ok(());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
    }
}
