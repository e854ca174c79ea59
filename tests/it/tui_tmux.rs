//! End to end: the real binary in a real terminal (tmux), every tab switched with keys and read
//! back with `capture-pane`. Skips, saying why, when tmux is not installed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    pub fn send(&self, key: &str) {
        self.cmd(&["send-keys", "-t", "e2e", key]);
    }

    /// Type `text` as literal characters (`-l`: no word of it is read as a key name).
    pub fn type_text(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "e2e", "-l", text]);
    }

    /// Start `trademind --data-dir DIR ARGS` with a clean environment in a detached 120x40
    /// session on a private tmux server; the shell then prints the exit status.
    pub fn launch(name: &str, dir: &Path, args: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("trademind-{name}-{}", std::process::id()),
        };
        let command = format!(
            "env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm-256color XDG_CONFIG_HOME=/nonexistent-trademind \
             XDG_DATA_HOME={home} TRADEMIND_SECRETS__BACKEND=environment {bin} --data-dir {home} {args}; \
             echo TRADEMIND-EXITED-$?; sleep 60",
            home = dir.display(),
            bin = assert_cmd::cargo::cargo_bin("trademind").display(),
        );
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            "120",
            "-y",
            "40",
            &command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    /// Wait for the process to end; asserts status 0 and returns the last screen.
    pub fn expect_exit_zero(&self) -> String {
        let (ok, screen) = self.wait_for(|s| s.contains("TRADEMIND-EXITED-"));
        assert!(ok, "the interface did not exit:\n{screen}");
        assert!(
            screen.contains("TRADEMIND-EXITED-0"),
            "non-zero exit:\n{screen}"
        );
        screen
    }

    /// Poll the pane until `pred` holds; returns the last capture either way.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return (true, screen);
            }
            if Instant::now() > deadline {
                return (false, screen);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only the private server this test started (its own socket).
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Whether tmux can run here. CI sets `TRADEMIND_REQUIRE_TMUX=1` (`.ci/run` installs tmux), so
/// there a missing tmux fails the test instead of skipping it.
pub fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found && std::env::var_os("TRADEMIND_REQUIRE_TMUX").is_some() {
        panic!("tmux is required (TRADEMIND_REQUIRE_TMUX is set) but cannot be run");
    }
    found
}

fn seed(dir: &Path) {
    let store = trademind::store::Store::open(&dir.join(trademind::cli::DB_FILE)).unwrap();
    store
        .conn()
        .execute_batch(
            "INSERT INTO positions (symbol, entry_price, quantity, stop_loss, mark_price, unrealized_pnl,
                status, opened_at, updated_at)
             VALUES ('BTCUSDT', '50000', '0.1', '49000', '50500', '50', 'open', 0, 0);",
        )
        .unwrap();
}

#[test]
fn every_tab_shows_its_title_in_a_real_terminal_and_q_quits() {
    if !tmux_available() {
        println!("SKIPPED: tmux is not installed, so the end-to-end TUI test cannot run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let tmux = Tmux::launch("e2e", dir.path(), "");

    let (ok, screen) = tmux.wait_for(|s| s.contains("Dashboard") && s.contains("BTCUSDT"));
    assert!(
        ok,
        "dashboard with the seeded position never appeared:\n{screen}"
    );
    assert!(screen.contains("PAPER"), "mode badge missing:\n{screen}");

    let titles = [
        ("1", "Dashboard"),
        ("2", "Positions & orders"),
        ("3", "Trades"),
        ("4", "Decisions"),
        ("5", "Market"),
        ("6", "Backtests"),
        ("7", "Risk"),
        ("8", "Logs"),
    ];
    for (key, title) in titles {
        tmux.send(key);
        // Each screen's own block title starts with "┌ <title>".
        let marker = format!("┌ {title}");
        let (ok, screen) = tmux.wait_for(|s| s.contains(&marker));
        assert!(ok, "key {key} did not show {title}:\n{screen}");
        let lower = screen.to_lowercase();
        assert!(
            !lower.contains("error") && !lower.contains("panicked"),
            "{title} shows an error:\n{screen}"
        );
    }
    // Tab wraps from Logs to the Dashboard.
    tmux.send("Tab");
    let (ok, screen) = tmux.wait_for(|s| s.contains("┌ Dashboard"));
    assert!(ok, "Tab did not wrap to the dashboard:\n{screen}");

    // No orders in flight: q quits at once, with status 0, and the terminal is handed back
    // (the shell's echo lands on a restored, non-alternate screen).
    tmux.send("q");
    let screen = tmux.expect_exit_zero();
    assert!(
        !screen.contains("┌ Dashboard"),
        "the alternate screen was not left:\n{screen}"
    );
}

/// Issue #18's walk of the cockpit, on the real binary running the demo: every screen, a decision
/// opened down to its risk checks, a pause and a resume with `p`, a backtest from the form and one
/// from `:backtest`, and the decision's own fill in the Logs activity feed.
#[test]
fn cockpit_walk_opens_a_decision_pauses_resumes_runs_two_backtests_and_finds_the_fill() {
    if !tmux_available() {
        println!("SKIPPED: tmux is not installed, so the end-to-end cockpit walk cannot run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The same replay as the demo test: 212 candles, the last BUY at 20:00 on 13 January.
    let tmux = Tmux::launch("cockpit", dir.path(), "demo --speed 1000000 --candles 212");
    tmux.send("6");
    let (ok, screen) = tmux.wait_for(|s| s.contains("Backtests 1 runs") && s.contains("completed"));
    assert!(ok, "the demo's own backtest never completed:\n{screen}");

    // Every screen, by its number.
    for (key, title) in [
        ("1", "┌ Dashboard"),
        ("2", "┌ Positions & orders"),
        ("3", "┌ Trades"),
        ("4", "┌ Decisions"),
        ("5", "┌ Market"),
        ("6", "┌ Backtests"),
        ("7", "┌ Risk"),
        ("8", "┌ Logs"),
    ] {
        tmux.send(key);
        let (ok, screen) = tmux.wait_for(|s| s.contains(title));
        assert!(ok, "key {key} did not show {title}:\n{screen}");
        assert!(!screen.contains("panicked"), "{title}:\n{screen}");
    }

    // Decisions, newest first: four HOLDs, then the BUY. Open it full screen: its risk checks
    // are listed one by one with their numbers, and its size line names the fill price.
    tmux.send("4");
    let (ok, screen) = tmux.wait_for(|s| s.contains("┌ Decisions 212 recorded"));
    assert!(ok, "the decisions list did not appear:\n{screen}");
    for _ in 0..4 {
        tmux.send("j");
    }
    tmux.send("Enter");
    let (ok, screen) = tmux.wait_for(|s| {
        s.contains("┌ Decision #208")
            && s.contains("Esc back")
            && s.contains("Risk checks")
            && s.contains("✓ max drawdown")
            && s.contains("✓ symbol exposure")
            && s.contains("92358.34")
    });
    assert!(
        ok,
        "the BUY decision did not open with its risk checks:\n{screen}"
    );
    tmux.send("Escape");
    let (ok, screen) = tmux.wait_for(|s| s.contains("┌ Decisions 212 recorded"));
    assert!(ok, "Esc did not go back to the list:\n{screen}");

    // Pause and resume with p: the header reads PAUSED, then ACTIVE again.
    let header = |s: &str| s.lines().next().unwrap_or_default().to_string();
    assert!(header(&screen).contains("ACTIVE"), "{screen}");
    tmux.send("p");
    let (ok, screen) = tmux.wait_for(|s| s.contains("[y] yes"));
    assert!(ok, "p did not ask first:\n{screen}");
    tmux.send("y");
    let (ok, screen) = tmux.wait_for(|s| header(s).contains("PAUSED"));
    assert!(ok, "the header never read PAUSED:\n{screen}");
    tmux.send("p");
    let (ok, screen) = tmux.wait_for(|s| s.contains("Resume trading?"));
    assert!(ok, "p did not offer to resume:\n{screen}");
    tmux.send("y");
    let (ok, screen) =
        tmux.wait_for(|s| header(s).contains("ACTIVE") && !header(s).contains("PAUSED"));
    assert!(ok, "the header never read ACTIVE again:\n{screen}");

    // A backtest from the form (its defaults: sma-cross on BTCUSDT 1h) ...
    tmux.send("6");
    tmux.send("n");
    let (ok, screen) = tmux.wait_for(|s| s.contains("New backtest") && s.contains("sma-cross"));
    assert!(ok, "n did not open the backtest form:\n{screen}");
    tmux.send("Enter");
    let (ok, screen) = tmux.wait_for(|s| {
        s.contains("Backtests 2 runs")
            && s.lines()
                .any(|l| l.contains("#2") && l.contains("sma-cross") && l.contains("completed"))
    });
    assert!(ok, "the form's backtest did not complete:\n{screen}");
    // ... and one from the command line.
    tmux.type_text(":backtest macd");
    tmux.send("Enter");
    let (ok, screen) = tmux.wait_for(|s| {
        s.contains("Backtests 3 runs")
            && s.lines()
                .any(|l| l.contains("#3") && l.contains("macd") && l.contains("completed"))
    });
    assert!(ok, ":backtest macd did not complete:\n{screen}");

    // The opened decision's fill is in the Logs activity feed, at its price.
    tmux.send("8");
    let (ok, screen) = tmux.wait_for(|s| {
        s.contains("┌ Activity")
            && s.lines()
                .any(|l| l.contains("FILL") && l.contains("BUY") && l.contains("92,358.34"))
    });
    assert!(ok, "the BUY's fill is not in the activity feed:\n{screen}");

    tmux.send("q");
    let (ok, screen) = tmux.wait_for(|s| s.contains("Quit anyway?"));
    assert!(ok, "q did not ask about the resting orders:\n{screen}");
    tmux.send("y");
    tmux.expect_exit_zero();
}
