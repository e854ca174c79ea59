//! Writes that race: every read-modify-write is one `BEGIN IMMEDIATE` transaction, so concurrent
//! processes and connections wait for each other instead of losing an update or failing with
//! "database is locked".

use std::path::Path;
use std::process::{Command, Stdio};
use trademind::domain::risk::RiskConfig;
use trademind::store::Store;
use trademind::store::risk::load_config;

fn trademind(data_dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("trademind"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.args(["--data-dir", data_dir.to_str().unwrap()]);
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
