//! The hostile-input corpus: values and files a user (or an attacker handing them a file) can
//! feed the CLI. Each is refused with a clear message and exit 1 or 2, or accepted and handled;
//! none panics (exit 101) or eats memory without bound.

use std::path::Path;
use std::process::Output;

fn trademind(data_dir: &Path) -> assert_cmd::Command {
    let mut cmd = crate::hermetic::trademind_at(data_dir);
    // A runaway read would be killed here rather than take the machine down.
    cmd.timeout(std::time::Duration::from_secs(60));
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One refused input: the arguments after `--data-dir`, the files to write first, the exit code
/// and a fragment of the message.
struct Refused {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    says: &'static str,
}

const HEADERLESS_BAD_FIRST: &str =
    "17356x9600000,100,101,99,100.5,1\n1735693200000,100,101,99,100.5,1\n";
const YEAR_9999_MS: &str = "open_time,open,high,low,close,volume\n1735689600000,100,101,99,100.5,1\n253402300799000,100,101,99,100.5,1\n";
const YEAR_2100_MS: &str = "1735689600000,100,101,99,100.5,1\n4102444800000,100,101,99,100.5,1\n";
const CDD_YEAR_9999: &str = "date,symbol,open,high,low,close,volume_btc,volume\n9999-12-31 11-PM,BTCUSD,1,1,1,1,1,1\n2019-10-17 03-AM,BTCUSD,1,1,1,1,1,1\n";
const CDD_YEAR_MINUS_200: &str = "date,symbol,open,high,low,close,volume_btc,volume\n2019-10-17 03-AM,BTCUSD,1,1,1,1,1,1\n-200-01-01 01-AM,BTCUSD,1,1,1,1,1,1\n";

const IMPORT: &[&str] = &[
    "data",
    "import",
    "{dir}/in.csv",
    "--symbol",
    "BTCUSDT",
    "--interval",
    "1h",
];

const REFUSED: &[Refused] = &[
    Refused {
        name: "a paper balance near Decimal::MAX",
        files: &[(
            "c.toml",
            "[trading]\npaper_starting_balance = \"79228162514264337593543950335\"\n",
        )],
        args: &["--config", "{dir}/c.toml", "config", "check"],
        code: 2,
        says: "paper_starting_balance",
    },
    Refused {
        name: "a backtest starting cash near Decimal::MAX in the config",
        files: &[(
            "c.toml",
            "[backtest]\ninitial_cash = \"79228162514264337593543950335\"\n",
        )],
        args: &["--config", "{dir}/c.toml", "config", "check"],
        code: 2,
        says: "c.toml:2:1: backtest.initial_cash",
    },
    Refused {
        name: "backtest --initial-cash near Decimal::MAX",
        files: &[],
        args: &[
            "backtest",
            "--initial-cash",
            "79228162514264337593543950335",
        ],
        code: 2,
        says: "initial cash: 79228162514264337593543950335 is too large",
    },
    Refused {
        name: "a 1e5 x 1e5 sweep",
        files: &[],
        args: &[
            "backtest",
            "--sweep",
            "fast=1..100000:1",
            "--sweep",
            "slow=1..100000:1",
        ],
        code: 2,
        says: "10000000000 combinations",
    },
    Refused {
        name: "backtest --data /dev/zero",
        files: &[],
        args: &["backtest", "--data", "/dev/zero"],
        code: 1,
        says: "line 1 is longer than 4096 bytes",
    },
    Refused {
        name: "data import /dev/zero",
        files: &[],
        args: &[
            "data",
            "import",
            "/dev/zero",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
        ],
        code: 1,
        says: "line 1 is longer than 4096 bytes",
    },
    Refused {
        name: "a malformed first row of a headerless file",
        files: &[("in.csv", HEADERLESS_BAD_FIRST)],
        args: IMPORT,
        code: 1,
        says: "line 1: open time \"17356x9600000\" is not an integer",
    },
    Refused {
        name: "an open time in 9999 (in ms, so taken for µs: 1978)",
        files: &[("in.csv", YEAR_9999_MS)],
        args: IMPORT,
        code: 1,
        says: "line 3: open time 1978-01-11 21:31 is before 2009-01-03",
    },
    Refused {
        name: "an open time in 2100",
        files: &[("in.csv", YEAR_2100_MS)],
        args: IMPORT,
        code: 1,
        says: "line 2: open time 2100-01-01 00:00 is more than a day in the future",
    },
    Refused {
        name: "a CryptoDataDownload date in 9999",
        files: &[("in.csv", CDD_YEAR_9999)],
        args: IMPORT,
        code: 1,
        says: "line 2: open time 9999-12-31 23:00 is more than a day in the future",
    },
    Refused {
        name: "a CryptoDataDownload date in the year -200",
        files: &[("in.csv", CDD_YEAR_MINUS_200)],
        args: IMPORT,
        code: 1,
        says: "line 3:",
    },
    Refused {
        name: "backtest --data with a date in 2100",
        files: &[("in.csv", YEAR_2100_MS)],
        args: &["backtest", "--data", "{dir}/in.csv"],
        code: 1,
        says: "line 2: open time 2100-01-01 00:00 is more than a day in the future",
    },
];

#[test]
fn hostile_inputs_are_refused_with_a_clear_message_never_a_panic() {
    let mut failures = Vec::new();
    for case in REFUSED {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        for (name, body) in case.files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", d)).collect();
        let out = trademind(dir.path()).args(&args).output().unwrap();
        let all = text(&out);
        if out.status.code() != Some(case.code) || !all.contains(case.says) {
            failures.push(format!(
                "{}: wanted exit {} saying {:?}; got {all}",
                case.name, case.code, case.says
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Every case ran in a child of this test process: the largest of them stayed small
    // (`/dev/zero`, the 1e5 x 1e5 sweep and the far dates included).
    let peak_mib = children_max_rss_kib() / 1024;
    assert!(peak_mib < 500, "a hostile input peaked at {peak_mib} MiB");
}

#[test]
fn a_huge_imported_volume_is_decided_on_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("huge.csv");
    let t0 = 1_735_689_600_000i64;
    let rows: String = (0..300)
        .map(|i| {
            let volume = if i % 50 == 7 {
                "79228162514264337593543950335"
            } else {
                "1.5"
            };
            format!("{},100,101,99,100.5,{volume}\n", t0 + i * 3_600_000)
        })
        .collect();
    std::fs::write(&csv, rows).unwrap();
    trademind(dir.path())
        .args(["data", "import", csv.to_str().unwrap()])
        .args(["--symbol", "BTCUSDT", "--interval", "1h"])
        .assert()
        .success();
    let out = trademind(dir.path())
        .args(["decide", "BTCUSDT", "--engine", "rules", "--interval", "1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_byte_order_mark_does_not_cost_the_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bom.csv");
    std::fs::write(
        &csv,
        "\u{feff}1735689600000,100,101,99,100.5,1\r\n1735693200000,100,101,99,100.5,1\r\n",
    )
    .unwrap();
    let out = trademind(dir.path())
        .args(["--json", "data", "import", csv.to_str().unwrap()])
        .args(["--symbol", "BTCUSDT", "--interval", "1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inserted"], 2, "{v}");
    assert_eq!(v["first_open_time"], 1_735_689_600_000i64, "{v}");
}

#[test]
fn an_import_stopped_part_way_says_exactly_what_was_stored() {
    use trademind::domain::Symbol;
    use trademind::domain::market::Interval;
    use trademind::services::market_data::import::{ImportOptions, import_file};
    use trademind::store::Store;
    use trademind::store::candles::count_candles;

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let t0 = 1_735_689_600_000i64;
    let mut rows: String = (0..6_000)
        .map(|i| format!("{},100,101,99,100.5,1\n", t0 + i * 3_600_000))
        .collect();
    rows.push_str("1757289600000,100,101,99,100.5,-1\n");
    std::fs::write(&csv, rows).unwrap();
    let store = Store::open_in_memory().unwrap();
    let btc = Symbol::new("BTCUSDT").unwrap();
    let err = import_file(
        store.conn(),
        &csv,
        &btc,
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    let stored = count_candles(store.conn(), &btc, Interval::H1).unwrap();
    assert!(err.starts_with("line 6001: volume -1 is negative"), "{err}");
    assert!(
        err.contains(&format!(
            "the candles from 2025-01-01 00:00 to {} were stored ({stored} new, 0 already there)",
            chrono::DateTime::from_timestamp_millis(t0 + (stored as i64 - 1) * 3_600_000)
                .unwrap()
                .format("%Y-%m-%d %H:%M")
        )),
        "{stored} stored: {err}"
    );
}

/// The largest resident size of any child this test process has waited for, in KiB.
fn children_max_rss_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn indicators_last_n_keeps_n_rows_not_the_whole_series_in_memory() {
    use rust_decimal::Decimal;
    use trademind::domain::Symbol;
    use trademind::domain::market::{Candle, Interval};
    use trademind::domain::money::{Price, Qty};
    use trademind::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("trademind.db")).unwrap();
    let btc = Symbol::new("BTCUSDT").unwrap();
    let t0 = 1_609_459_200_000i64;
    // 400k one-minute candles: loading them all (rows, decimals, columns, every indicator
    // column) took well over 150 MB; the last 5 rows take nothing next to the process itself.
    for part in 0..8i64 {
        let batch: Vec<Candle> = (0..50_000i64)
            .map(|i| {
                let k = part * 50_000 + i;
                let p = Price::new(Decimal::new(10_000 + k % 97, 2));
                Candle {
                    open_time: t0 + k * 60_000,
                    open: p,
                    high: p,
                    low: p,
                    close: p,
                    volume: Qty::new(Decimal::new(15, 1)),
                }
            })
            .collect();
        trademind::store::candles::insert_candles(store.conn(), &btc, Interval::M1, &batch)
            .unwrap();
    }
    drop(store);
    let out = trademind(dir.path())
        .args(["--json", "indicators", "BTCUSDT", "1m", "--last", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(5));
    assert_eq!(rows[4]["open_time"], t0 + 399_999 * 60_000);
    let rss_mib = children_max_rss_kib() / 1024;
    assert!(rss_mib < 80, "indicators --last 5 peaked at {rss_mib} MiB");
}

#[test]
fn llm_rules_and_tavily_config_errors_name_the_file_and_line() {
    // (file body, the key's line, the key named)
    let cases = [
        ("[llm]\nbase_url = \"ftp://x\"\n", 2, "llm.base_url"),
        ("[llm]\nmodel = \" \"\n", 2, "llm.model"),
        ("[llm]\n\ntemperature = 3.0\n", 3, "llm.temperature"),
        ("[llm]\ntimeout_secs = 0\n", 2, "llm.timeout_secs"),
        (
            "[llm]\nmax_position_pct = 150.0\n",
            2,
            "llm.max_position_pct",
        ),
        (
            "[llm.tavily]\ntime_range = \"decade\"\n",
            2,
            "llm.tavily.time_range",
        ),
        (
            "[llm.tavily]\nmax_results = 50\n",
            2,
            "llm.tavily.max_results",
        ),
        (
            "[rules]\nposition_size_pct = 0.0\n",
            2,
            "rules.position_size_pct",
        ),
        ("[rules]\nstop_loss_pct = 120.0\n", 2, "rules.stop_loss_pct"),
        ("[rules]\noversold = 80.0\n", 2, "rules.oversold"),
    ];
    let mut failures = Vec::new();
    for (body, line, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, body).unwrap();
        let out = trademind(dir.path())
            .args(["--config", cfg.to_str().unwrap(), "config", "check"])
            .output()
            .unwrap();
        let all = text(&out);
        let at = format!("c.toml:{line}:");
        if out.status.code() != Some(2)
            || !all.contains(&at)
            || !all.contains(key)
            || all.contains("default:")
        {
            failures.push(format!("{key}: wanted exit 2 at {at}; got {all}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
