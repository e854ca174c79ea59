//! Writes that race: every read-modify-write is one `BEGIN IMMEDIATE` transaction, so concurrent
//! processes and connections wait for each other instead of losing an update or failing with
//! "database is locked".

use std::path::Path;
use std::process::{Command, Stdio};
use trademind::domain::risk::RiskConfig;
use trademind::store::Store;
use trademind::store::risk::load_config;

fn trademind(data_dir: &Path) -> Command {
    let mut cmd = crate::hermetic::hermetic_at(data_dir);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

#[test]
fn concurrent_risk_sets_of_different_keys_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    // Create the database first so the racing processes only race on the config row.
    trademind(dir.path())
        .args(["risk", "set", "max_daily_loss_pct", "1"])
        .status()
        .unwrap();
    let mut lost = Vec::new();
    for round in 0..100u32 {
        let loss = format!("1.{round:02}");
        let heat = format!("2.{round:02}");
        let a = trademind(dir.path())
            .args(["risk", "set", "max_daily_loss_pct", &loss])
            .spawn()
            .unwrap();
        let b = trademind(dir.path())
            .args(["risk", "set", "heat_cap_pct", &heat])
            .spawn()
            .unwrap();
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let store = Store::open(&dir.path().join("trademind.db")).unwrap();
        let (config, _) = load_config(store.conn(), None, &RiskConfig::default()).unwrap();
        let got = (
            config.max_daily_loss_pct.to_string(),
            config.heat_cap_pct.to_string(),
        );
        if got != (loss.clone(), heat.clone()) {
            lost.push((round, got));
        }
    }
    assert!(
        lost.is_empty(),
        "updates lost in {} rounds: {lost:?}",
        lost.len()
    );
}

#[test]
fn equity_snapshots_beside_a_bulk_import_never_meet_database_is_locked() {
    use rust_decimal::Decimal;
    use trademind::domain::Symbol;
    use trademind::domain::market::{Candle, Interval};
    use trademind::domain::money::{Price, Qty, Quote};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trademind.db");
    drop(Store::open(&path).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let importer = {
        let (path, stop, batches) = (path.clone(), stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let store = Store::open(&path).unwrap();
            let symbol = Symbol::new("BTCUSDT").unwrap();
            let p = Price::new(Decimal::new(50_000, 0));
            let mut t = 1_735_689_600_000i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<Candle> = (0..20)
                    .map(|_| {
                        t += 60_000;
                        Candle {
                            open_time: t,
                            open: p,
                            high: p,
                            low: p,
                            close: p,
                            volume: Qty::new(Decimal::ONE),
                        }
                    })
                    .collect();
                trademind::store::candles::insert_candles(
                    store.conn(),
                    &symbol,
                    Interval::M1,
                    &batch,
                )
                .unwrap();
                batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let store = Store::open(&path).unwrap();
    let mut errors = Vec::new();
    // Interleave for real: keep snapshotting until the import has committed many batches.
    let mut k = 0i64;
    while k < 400 || batches.load(std::sync::atomic::Ordering::Relaxed) < 500 {
        k += 1;
        // A new minute each time, so every call inserts a row and judges the peak.
        let at = 1_795_514_400_000 + k * 60_000;
        if let Err(e) = trademind::store::equity::insert(
            store.conn(),
            "paper",
            Quote(Decimal::new(10_000 + k, 0)),
            Quote(Decimal::ZERO),
            at,
        ) {
            errors.push(e.to_string());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    importer.join().unwrap();
    assert!(
        errors.is_empty(),
        "{} failed: {:?}",
        errors.len(),
        errors.first()
    );
}

/// The real daemon (paper connection, `update_prices` and `monitor_orders` every second, each
/// writing an equity snapshot and a job run) beside two `data import` loops writing candles
/// into the same database: the daemon never logs "database is locked" and every one of its
/// runs succeeds.
#[test]
fn a_daemon_beside_two_import_loops_never_meets_database_is_locked() {
    use std::fmt::Write as _;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[scheduler]\nmonitor_orders_seconds = 1\nupdate_prices_seconds = 1\n",
    )
    .unwrap();
    // 60 000 one-minute candles from 2021-01-01: each import is one long write.
    let mut csv = String::from("open_time,open,high,low,close,volume\n");
    let t0 = 1_609_459_200_000i64;
    for i in 0..60_000i64 {
        let p = 30_000 + i % 500;
        writeln!(csv, "{},{p},{p},{p},{p},1.5", t0 + i * 60_000).unwrap();
    }
    let file = dir.path().join("candles.csv");
    std::fs::write(&file, csv).unwrap();
    let command = |args: &[&str]| {
        let mut cmd = trademind(&data);
        cmd.arg("--config").arg(&config).args(args);
        cmd
    };
    // Create the database before the racers start.
    assert!(command(&["db", "migrate"]).status().unwrap().success());
    let daemon = command(&["--daemon"]).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(6);
    let loops: Vec<_> = ["BTCUSDT", "ETHUSDT"]
        .into_iter()
        .map(|symbol| {
            let mut cmd = command(&[
                "data",
                "import",
                file.to_str().unwrap(),
                "--symbol",
                symbol,
                "--interval",
                "1m",
            ]);
            std::thread::spawn(move || {
                let mut imports = 0;
                while Instant::now() < until {
                    let out = cmd.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    imports += 1;
                }
                imports
            })
        })
        .collect();
    let imports: Vec<i32> = loops.into_iter().map(|l| l.join().unwrap()).collect();
    // SAFETY: kill(2) on the child's own pid.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let out = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        imports.iter().all(|n| *n >= 2),
        "imports per loop: {imports:?}"
    );
    assert!(
        !log.contains("database is locked"),
        "the daemon met a locked database beside the imports:\n{log}"
    );
    let store = Store::open(&data.join("trademind.db")).unwrap();
    let (ok, failed): (i64, i64) = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FILTER (WHERE error IS NULL), COUNT(*) FILTER (WHERE error IS NOT NULL)
             FROM job_runs WHERE job IN ('update_prices', 'monitor_orders')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(ok >= 6, "{ok} successful runs in 6 s");
    assert_eq!(failed, 0, "{log}");
}
