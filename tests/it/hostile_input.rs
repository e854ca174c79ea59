//! The hostile-input corpus: values and files a user (or an attacker handing them a file) can
//! feed the CLI. Each is refused with a clear message and exit 1 or 2, or accepted and handled;
//! none panics (exit 101) or eats memory without bound.

use std::path::Path;
use std::process::Output;

fn trademind(data_dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("trademind").expect("binary built");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.args(["--data-dir", data_dir.to_str().unwrap()]);
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

const REFUSED: &[Refused] = &[Refused {
    name: "a paper balance near Decimal::MAX",
    files: &[(
        "c.toml",
        "[trading]\npaper_starting_balance = \"79228162514264337593543950335\"\n",
    )],
    args: &["--config", "{dir}/c.toml", "config", "check"],
    code: 2,
    says: "paper_starting_balance",
}];

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
