//! Trading modes (PAPER / TESTNET / LIVE) and the live-trading guard: orders reach Binance
//! production only when the config says `live = true` AND the user typed the confirmation
//! sentence once for that connection. Pure: the caller loads the flag and the recorded
//! confirmation and asks before every order it sends.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What orders of a connection do; the TUI header shows `label()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradingMode {
    /// Simulated fills, no exchange orders. The default.
    #[default]
    Paper,
    /// Binance Spot testnet: real API, play money.
    Testnet,
    /// Binance production: real money.
    Live,
}

impl TradingMode {
    pub fn label(self) -> &'static str {
        match self {
            TradingMode::Paper => "PAPER",
            TradingMode::Testnet => "TESTNET",
            TradingMode::Live => "LIVE",
        }
    }
}

impl fmt::Display for TradingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A recorded typed confirmation (loaded from `live_confirmations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveConfirmation {
    pub connection: String,
    pub confirmed_at_ms: i64,
}

/// Why an order was not sent. Each message says how to proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveTradingRefused {
    #[error(
        "refusing to send an order: connection {connection:?} points at Binance production but live trading is off (`live = false`). Use paper or testnet mode, or set `live = true` in the config and run `trademind live confirm --connection {connection}`"
    )]
    LiveDisabled { connection: String },
    #[error(
        "refusing to send an order: live trading on connection {connection:?} has not been confirmed. Run `trademind live confirm --connection {connection}` and type the confirmation sentence"
    )]
    NotConfirmed { connection: String },
}

/// The sentence a user types to unlock live trading on `connection`.
pub fn confirmation_phrase(connection: &str) -> String {
    format!("I understand that {connection} trades real money")
}

/// Whether what the user typed is the confirmation for `connection` (surrounding whitespace
/// ignored, everything else exact: a confirmation must be typed, not guessed).
pub fn is_confirmation(typed: &str, connection: &str) -> bool {
    typed.trim() == confirmation_phrase(connection)
}

/// The mode a connection's orders run in.
pub fn mode_of(is_paper: bool, is_testnet: bool) -> TradingMode {
    match (is_paper, is_testnet) {
        (true, _) => TradingMode::Paper,
        (false, true) => TradingMode::Testnet,
        (false, false) => TradingMode::Live,
    }
}

/// Ask before sending an order on `connection` in `mode`. Paper and testnet always pass; live
/// needs the config flag and a confirmation recorded for this very connection.
pub fn authorize_order(
    mode: TradingMode,
    connection: &str,
    live_enabled: bool,
    confirmation: Option<&LiveConfirmation>,
) -> Result<(), LiveTradingRefused> {
    match mode {
        TradingMode::Paper | TradingMode::Testnet => Ok(()),
        TradingMode::Live if !live_enabled => Err(LiveTradingRefused::LiveDisabled {
            connection: connection.to_string(),
        }),
        TradingMode::Live => match confirmation {
            Some(c) if c.connection == connection => Ok(()),
            _ => Err(LiveTradingRefused::NotConfirmed {
                connection: connection.to_string(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed(connection: &str) -> LiveConfirmation {
        LiveConfirmation {
            connection: connection.to_string(),
            confirmed_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn paper_is_the_default_mode() {
        assert_eq!(TradingMode::default(), TradingMode::Paper);
        assert_eq!(TradingMode::default().label(), "PAPER");
    }

    #[test]
    fn paper_and_testnet_orders_pass_without_live_flag_or_confirmation() {
        assert_eq!(
            authorize_order(TradingMode::Paper, "p", false, None),
            Ok(())
        );
        assert_eq!(
            authorize_order(TradingMode::Testnet, "t", false, None),
            Ok(())
        );
    }

    #[test]
    fn production_with_live_false_refuses_even_when_confirmed() {
        let c = confirmed("main");
        let err = authorize_order(TradingMode::Live, "main", false, Some(&c)).unwrap_err();
        assert_eq!(
            err,
            LiveTradingRefused::LiveDisabled {
                connection: "main".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("live = false") && text.contains("refusing to send an order"));
    }

    #[test]
    fn production_with_live_true_but_no_confirmation_refuses() {
        let err = authorize_order(TradingMode::Live, "main", true, None).unwrap_err();
        assert!(matches!(err, LiveTradingRefused::NotConfirmed { .. }));
        assert!(
            err.to_string()
                .contains("trademind live confirm --connection main")
        );
    }

    #[test]
    fn confirmation_of_another_connection_does_not_unlock_this_one() {
        let other = confirmed("other");
        assert!(authorize_order(TradingMode::Live, "main", true, Some(&other)).is_err());
    }

    #[test]
    fn production_with_live_true_and_confirmation_is_allowed() {
        let c = confirmed("main");
        assert_eq!(
            authorize_order(TradingMode::Live, "main", true, Some(&c)),
            Ok(())
        );
    }

    #[test]
    fn mode_follows_paper_then_testnet_flags() {
        assert_eq!(mode_of(true, false), TradingMode::Paper);
        assert_eq!(mode_of(true, true), TradingMode::Paper);
        assert_eq!(mode_of(false, true), TradingMode::Testnet);
        assert_eq!(mode_of(false, false), TradingMode::Live);
    }

    #[test]
    fn confirmation_must_be_the_exact_sentence_for_the_connection() {
        let phrase = confirmation_phrase("main");
        assert_eq!(phrase, "I understand that main trades real money");
        assert!(is_confirmation(
            "  I understand that main trades real money\n",
            "main"
        ));
        assert!(!is_confirmation(
            "i understand that main trades real money",
            "main"
        ));
        assert!(!is_confirmation(&confirmation_phrase("other"), "main"));
        assert!(!is_confirmation("yes", "main"));
    }
}
