//! The ledger is guarded: an empty or foreign file is refused (never silently made a new
//! ledger), `db check` runs the full integrity check, and the daemon halts trading when its
//! database file is removed or replaced under it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use trademind::app::bus::EventBus;
use trademind::app::daemon::{JobError, Jobs, StrategyJob};
use trademind::app::decide::{AnyEngine, RulesEngine};
use trademind::app::trading::{TradingDeps, TradingService};
use trademind::config::Settings;
use trademind::domain::trading::TradingMode;
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::store::Store;

const T0: i64 = 1_795_514_820_000;

fn trademind(data_dir: &Path) -> assert_cmd::Command {
    crate::hermetic::trademind_at(data_dir)
}

fn stderr_of(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_empty_or_foreign_database_file_is_refused_and_left_untouched() {
    type MakeFile<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, MakeFile, &str); 3] = [
        (
            "empty",
            &|p| std::fs::write(p, b"").unwrap(),
            "is empty (0 bytes)",
        ),
        (
            "not sqlite",
            &|p| std::fs::write(p, b"these are my notes, not a database\n").unwrap(),
            "is not an SQLite database",
        ),
        (
            "another program's sqlite",
            &|p| {
                let c = rusqlite::Connection::open(p).unwrap();
                c.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT);")
                    .unwrap();
            },
            "another program's tables",
        ),
    ];
    for (name, make, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(trademind::store::DB_FILE);
        make(&db);
        let before = std::fs::read(&db).unwrap();
        for args in [&["risk", "show"][..], &["db", "migrate"][..]] {
            let err = stderr_of(trademind(dir.path()).args(args), 1);
            assert!(
                err.contains("is not a TradeMind database"),
                "{name} {args:?}: {err}"
            );
            assert!(err.contains(says), "{name} {args:?}: {err}");
        }
        assert!(
            std::fs::read(&db).unwrap() == before,
            "{name}: the file was changed"
        );
    }
    // A missing file is still created.
    let dir = tempfile::tempdir().unwrap();
    trademind(dir.path())
        .args(["risk", "show"])
        .assert()
        .success();
    assert!(dir.path().join(trademind::store::DB_FILE).exists());
}

#[test]
fn db_check_passes_a_sound_file_and_fails_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(trademind::store::DB_FILE);
    {
        let store = Store::open(&path).unwrap();
        // Enough rows for several b-tree pages.
        for i in 0..2_000 {
            store
                .conn()
                .execute(
                    "INSERT INTO job_runs (job, started_at, finished_at, ok, error)
                     VALUES ('monitor_orders', ?1, ?1, 0, ?2)",
                    rusqlite::params![i, "x".repeat(100)],
                )
                .unwrap();
        }
        store.checkpoint().unwrap();
    }
    let out = trademind(dir.path())
        .args(["db", "check"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("integrity ok"));

    // Random bytes over the middle of the file (past the header and the schema page).
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    assert!(len > 8 * 4096, "{len}");
    let mut x: u32 = 12345;
    for b in &mut bytes[3 * 4096..len - 4096] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 16) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    trademind(dir.path()).args(["db", "check"]).assert().code(1);
    // The daemon's start-up check (quick_check) sees it too.
    let damaged = Store::open_unmigrated(&path).and_then(|s| s.quick_check());
    assert!(damaged.is_err(), "the quick check passed a damaged file");
}

fn jobs_on(store: Arc<Mutex<Store>>) -> Jobs<PaperExchange> {
    let strategy = crate::daemon::swing_strategy(&store, T0);
    let trading = Arc::new(TradingService::new(TradingDeps {
        exchange: Arc::new(PaperExchange::in_memory(&PaperConfig::default())),
        store: store.clone(),
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(Settings::default()),
        bus: EventBus::default(),
        mailer: None,
    }));
    Jobs::new(
        trading,
        vec![StrategyJob {
            strategy,
            engine: AnyEngine::Rules(RulesEngine::default()),
        }],
    )
    .with_ledger_guard(store)
}

#[tokio::test]
async fn the_daemon_halts_trading_when_its_database_file_is_removed_or_replaced() {
    for replace in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(trademind::store::DB_FILE);
        let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
        let jobs = jobs_on(store.clone());
        jobs.monitor_orders(T0).await.unwrap();
        assert!(!jobs.trading.is_paused().unwrap());

        if replace {
            let other = dir.path().join("other.db");
            drop(Store::open(&other).unwrap());
            std::fs::rename(&other, &path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        let want = if replace {
            "was replaced"
        } else {
            "was removed"
        };
        // The job's error says what kind of failure it is (issue #17: it was a bare string),
        // and reads as before.
        for err in [
            jobs.monitor_orders(T0 + 1).await.unwrap_err(),
            jobs.autonomous_trading(0, T0 + 2).await.unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(&err, JobError::LedgerLost { what } if what.contains(want)),
                "{err:?}"
            );
            assert!(
                text.contains(want)
                    && text.ends_with(": trading halted; stop the daemon and restore the database"),
                "{text}"
            );
        }
        assert!(
            jobs.trading.is_paused().unwrap(),
            "the kill switch is engaged"
        );
    }
}

/// `status` on a data dir this user can read but not write (here: root's directory, read by
/// `nobody`) reads the database read-only instead of failing to create the dir.
#[test]
fn status_works_on_a_data_dir_that_cannot_be_written() {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = Path::new("/usr/bin/setpriv");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !setpriv.exists() {
        println!("SKIPPED: needs root and setpriv to run the binary as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    open(dir.path(), 0o755).unwrap();
    let data = dir.path().join("data");
    trademind(&data).args(["risk", "kill"]).assert().success();
    // Readable by everyone, writable by root only.
    open(&data, 0o755).unwrap();
    open(&data.join(trademind::store::DB_FILE), 0o644).unwrap();
    let bin = dir.path().join("trademind");
    std::fs::copy(assert_cmd::cargo::cargo_bin("trademind"), &bin).unwrap();
    open(&bin, 0o755).unwrap();
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", "/nonexistent-trademind-test")
        .args(["--json", "--data-dir", data.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["breaker"]["state"], "halted", "{v}");
}

/// SQLite's locks are POSIX advisory locks: they belong to the process, and closing ANY
/// descriptor of the database file drops them all. The daemon opens stores again and again
/// while its long-lived connections stay open; the foreign-file check used to open and close
/// the file with `std::fs`, which dropped those connections' locks. Any program that then
/// closed the ledger properly (`sqlite3`, the TUI dropping a store) took itself for the last
/// connection, checkpointed and deleted the WAL the daemon went on writing into: `status`
/// showed a stale ledger ("no daemon running", a position missing), and every later write of
/// the daemon went to a deleted file, lost on restart. Seen on a daemon against fake-binance.
#[test]
fn opening_the_store_again_keeps_the_locks_of_the_process_s_other_connections() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(trademind::store::DB_FILE);
    let daemon = Store::open(&db).unwrap();
    daemon
        .conn()
        .execute(
            "INSERT INTO equity_snapshots (connection, equity, unrealized_pnl, taken_at) \
             VALUES ('paper', '10000', '0', ?1)",
            [T0],
        )
        .unwrap();
    let inode = std::fs::metadata(&db).unwrap().ino();
    // The kernel's table of file locks: "1: POSIX ADVISORY READ <pid> <maj:min:inode> ..".
    let posix_locks_held = || {
        let me = std::process::id().to_string();
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1) == Some(&"POSIX")
                    && f.get(4) == Some(&me.as_str())
                    && f.get(5)
                        .and_then(|id| id.rsplit(':').next())
                        .is_some_and(|ino| ino == inode.to_string())
            })
            .count()
    };
    assert!(
        posix_locks_held() > 0,
        "an open WAL connection holds a shared lock on the database file"
    );
    // A job of the same process opens the store and is done with it.
    drop(Store::open(&db).unwrap());
    assert!(
        posix_locks_held() > 0,
        "reopening the store dropped the locks of the connection still open"
    );
    // And the ledger stays whole for a program beside it: the daemon's write is read.
    let other = trademind(dir.path())
        .args(["--json", "status"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!other.stdout.is_empty());
    drop(daemon);
}
