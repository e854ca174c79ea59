//! The `[tui]` configuration section: frame rate cap, how often the store is re-read, mouse.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuiConfig {
    /// Most frames drawn per second (only changed frames are drawn), 1-60. Default 30.
    pub max_fps: u32,
    /// Seconds between re-reads of the database when no event asked for one, 1-3600. Default 5.
    pub reload_seconds: u64,
    /// Mouse wheel scrolling and clicks on the tab bar. Default true.
    pub mouse: bool,
}

impl Default for TuiConfig {
    fn default() -> Self {
        TuiConfig {
            max_fps: 30,
            reload_seconds: 5,
            mouse: true,
        }
    }
}

impl TuiConfig {
    /// Range checks; the error is (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=60).contains(&self.max_fps) {
            return Err(("tui.max_fps".into(), "must be between 1 and 60".into()));
        }
        if !(1..=3600).contains(&self.reload_seconds) {
            return Err((
                "tui.reload_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        Ok(())
    }

    pub fn frame_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1000 / u64::from(self.max_fps.clamp(1, 60)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_cap_frames_at_30_per_second() {
        let c = TuiConfig::default();
        assert_eq!(c.validate(), Ok(()));
        // 1000 / 30 = 33 ms
        assert_eq!(c.frame_interval(), std::time::Duration::from_millis(33));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let c = TuiConfig {
            max_fps: 0,
            ..TuiConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "tui.max_fps");
        let c = TuiConfig {
            reload_seconds: 0,
            ..TuiConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "tui.reload_seconds");
    }
}
