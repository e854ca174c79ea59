//! One theme for every screen: green up, red down, one accent. With colour off (`NO_COLOR`) the
//! same roles fall back to bold / reversed / plain so nothing depends on colour alone.

use ratatui::style::{Color, Modifier, Style};

use crate::app::snapshot::LogLevel;
use crate::domain::risk::BreakerState;
use crate::domain::trading::TradingMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// `color` is false when `NO_COLOR` is set; the caller decides, draw code never reads env.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    pub fn has_color(self) -> bool {
        self.color
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn base(self) -> Style {
        Style::new()
    }

    pub fn up(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn down(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// Green when positive, red when negative, plain at zero.
    pub fn signed(self, value: f64) -> Style {
        if value > 0.0 {
            self.up()
        } else if value < 0.0 {
            self.down()
        } else {
            self.base()
        }
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }

    pub fn muted(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    pub fn warn(self) -> Style {
        if self.color {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    pub fn title(self) -> Style {
        self.accent().add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn tab_active(self) -> Style {
        self.accent()
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }

    pub fn mode(self, mode: TradingMode) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        match (self.color, mode) {
            (false, _) => s,
            (true, TradingMode::Paper) => s.fg(Color::Cyan),
            (true, TradingMode::Testnet) => s.fg(Color::Yellow),
            (true, TradingMode::Live) => s.fg(Color::Red),
        }
    }

    pub fn trading(self, state: &crate::store::account::TradingState) -> Style {
        use crate::store::account::TradingState as T;
        match state {
            T::Active => self.up(),
            T::Paused { .. } | T::ReduceOnly { .. } | T::NotReconciled { .. } => {
                self.warn().reversed()
            }
            T::Killed { .. } | T::Halted { .. } => {
                self.down().add_modifier(Modifier::BOLD).reversed()
            }
        }
    }

    pub fn breaker(self, state: BreakerState) -> Style {
        match state {
            BreakerState::Active => self.up(),
            BreakerState::ReduceOnly => self.warn(),
            BreakerState::Halted => self.down().add_modifier(Modifier::BOLD),
        }
    }

    pub fn level(self, level: LogLevel) -> Style {
        match level {
            LogLevel::Error => self.down(),
            LogLevel::Warn => self.warn(),
            LogLevel::Info => self.base(),
            LogLevel::Debug | LogLevel::Trace => self.muted(),
        }
    }

    /// Confidence: high green, middling yellow, low red.
    pub fn confidence(self, c: f64) -> Style {
        if c >= 0.7 {
            self.up()
        } else if c >= 0.5 {
            self.warn()
        } else {
            self.down()
        }
    }

    pub fn ok(self, passed: bool) -> Style {
        if passed { self.up() } else { self.down() }
    }

    /// Glyph and style of a candle body; without colour, up bodies are hollow-looking.
    pub fn candle_body(self, up: bool) -> (&'static str, Style) {
        match (self.color, up) {
            (true, true) => ("█", self.up()),
            (true, false) => ("█", self.down()),
            (false, true) => ("░", Style::new()),
            (false, false) => ("█", Style::new()),
        }
    }

    pub fn overlay(self, which: usize) -> Style {
        let colors = [Color::Yellow, Color::Magenta, Color::Blue, Color::Cyan];
        self.fg(colors[which % colors.len()])
    }
}
