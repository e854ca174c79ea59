//! `backtest --engine llm|rules` against the fake xAI and Tavily: every candle decided and
//! costed, a second run free and identical, point-in-time news, and `decisions replay`.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

use crate::decisions::{MODEL, TAVILY_KEY, XAI_KEY, import_bundled, trademind};
use trademind::testkit::fake_tavily::{FakeNews, FakeTavily};
use trademind::testkit::fake_xai::{FakeXai, Script};

/// 2025-01-05T00:00:00Z: the planted "future" headline's date.
const JAN_5: i64 = 1_736_035_200_000;

fn decision(action: &str, confidence: f64) -> Value {
    let opens = action == "BUY";
    json!({
        "action": action, "symbol": "BTCUSDT", "confidence": confidence,
        "position_size_pct": if opens { 5 } else { 0 },
        "stop_loss": if opens { json!({"kind": "percent", "value": 2}) } else { Value::Null },
        "take_profit": if opens { json!({"kind": "percent", "value": 4}) } else { Value::Null },
        "time_horizon": "swing", "reasoning": format!("{action} on the candle"),
        "risk_factors": [], "sources": []
    })
}

/// 200 replies: a BUY every 10 candles, a CLOSE 5 candles later, HOLD in between.
pub(crate) fn scripts() -> Vec<Script> {
    (0..200)
        .map(|i| match i % 10 {
            0 => Script::Decision(decision("BUY", 0.8)),
            5 => Script::Decision(decision("CLOSE", 0.7)),
            _ => Script::Decision(decision("HOLD", 0.5)),
        })
        .collect()
}

fn news() -> Vec<FakeNews> {
    vec![
        FakeNews {
            title: "Old news from New Year's Eve".into(),
            url: "https://news.example/old".into(),
            content: "dated before every candle".into(),
            published_date: Some("Tue, 31 Dec 2024 12:00:00 GMT".into()),
        },
        FakeNews {
            title: "Planted headline of January 5".into(),
            url: "https://news.example/jan5".into(),
            content: "dated after the first four days of candles".into(),
            published_date: Some("2025-01-05T00:00:00Z".into()),
        },
        FakeNews {
            title: "Undated rumour".into(),
            url: "https://news.example/undated".into(),
            content: "no date at all".into(),
            published_date: None,
        },
    ]
}

pub(crate) struct Fakes {
    _rt: tokio::runtime::Runtime,
    pub(crate) xai: FakeXai,
    tavily: FakeTavily,
}

pub(crate) fn fakes() -> Fakes {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (xai, tavily) = rt.block_on(async {
        (
            FakeXai::start(XAI_KEY, &[MODEL]).await.unwrap(),
            FakeTavily::start(TAVILY_KEY).await.unwrap(),
        )
    });
    Fakes {
        _rt: rt,
        xai,
        tavily,
    }
}

/// The fakes, a priced model, and the bundled candles imported.
pub(crate) fn setup(f: &Fakes, dir: &std::path::Path) -> std::path::PathBuf {
    import_bundled(dir.to_str().unwrap());
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[llm]\nbase_url = \"{}\"\nmodel = \"{MODEL}\"\ntimeout_secs = 10\n\
             [llm.prices.{MODEL}]\ninput_per_million_usd = 1.25\noutput_per_million_usd = 2.5\n\
             [llm.tavily]\nbase_url = \"{}\"\n",
            f.xai.base_url(),
            f.tavily.base_url()
        ),
    )
    .unwrap();
    path
}

pub(crate) fn run(
    dir: &std::path::Path,
    config: &std::path::Path,
    args: &[&str],
) -> assert_cmd::assert::Assert {
    trademind()
        .env("TRADEMIND_GROK_API_KEY", XAI_KEY)
        .env("TRADEMIND_TAVILY_API_KEY", TAVILY_KEY)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .args(args)
        .assert()
}

/// 200 hourly candles: 2025-01-01 00:00 .. 2025-01-09 07:00.
const PERIOD: [&str; 4] = ["--from", "2025-01-01", "--to", "2025-01-09T08:00"];

fn backtest(dir: &std::path::Path, config: &std::path::Path, max_cost: &str) -> Value {
    let out = run(
        dir,
        config,
        &[
            &[
                "--json",
                "backtest",
                "--engine",
                "llm",
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ][..],
            &PERIOD[..],
            &["--sizing", "fraction=0.5", "--max-cost", max_cost][..],
        ]
        .concat(),
    )
    .success()
    .get_output()
    .stdout
    .clone();
    serde_json::from_slice(&out).unwrap()
}

fn usd(v: &Value) -> Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Decimal::MIN)
}

fn db(dir: &std::path::Path) -> trademind::store::Store {
    trademind::store::Store::open(&dir.join("trademind.db")).unwrap()
}

#[test]
fn an_llm_backtest_of_200_candles_records_200_costed_decisions_and_a_second_run_is_free_and_identical()
 {
    let f = fakes();
    f.tavily.set_results(news());
    f.xai.push(scripts());
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());

    // Over the cap before it starts: refused with the estimate, nothing asked.
    let refused = run(
        dir.path(),
        &config,
        &[
            &[
                "backtest",
                "--engine",
                "llm",
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ][..],
            &PERIOD[..],
            &["--max-cost", "0.01"][..],
        ]
        .concat(),
    )
    .code(2)
    .get_output()
    .stderr
    .clone();
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.contains("more than --max-cost $0.01"), "{refused}");
    assert_eq!(f.xai.inference_calls(), 0);

    let first = backtest(dir.path(), &config, "5");
    assert_eq!(first["llm"]["decisions"], 200, "{first}");
    assert_eq!(first["llm"]["llm_calls"], 200);
    assert_eq!(first["llm"]["cache_hits"], 0);
    // 200 x $0.0037756 as the fake reports it.
    assert_eq!(usd(&first["llm"]["cost_usd"]), dec!(0.75512));
    assert_eq!(f.xai.inference_calls(), 200);
    assert_eq!(f.tavily.requests().len(), 200);
    assert!(first["metrics"]["trades"].as_u64().unwrap() > 0, "{first}");
    let id = first["id"].as_i64().unwrap();
    let (decisions, costed): (i64, i64) = db(dir.path())
        .conn()
        .query_row(
            "SELECT COUNT(*), COUNT(cost_usd) FROM decisions WHERE backtest_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((decisions, costed), (200, 200));
    // The run's decisions are listed by run, and kept out of the live decision log.
    let listed = |extra: &[&str]| -> Value {
        let out = run(
            dir.path(),
            &config,
            &[&["--json", "decisions"][..], extra].concat(),
        )
        .success()
        .get_output()
        .stdout
        .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let id_text = id.to_string();
    let of_run = listed(&["--backtest", &id_text, "--last", "500"]);
    assert_eq!(of_run["decisions"].as_array().unwrap().len(), 200);
    assert_eq!(listed(&[])["decisions"], json!([]));

    let second = backtest(dir.path(), &config, "5");
    assert_eq!(
        f.xai.inference_calls(),
        200,
        "the second run asked the model"
    );
    assert_eq!(
        f.tavily.requests().len(),
        200,
        "the second run searched news"
    );
    assert_eq!(second["llm"]["cache_hits"], 200);
    assert_eq!(usd(&second["llm"]["cost_usd"]), dec!(0));
    assert_eq!(usd(&second["llm"]["cached_cost_usd"]), dec!(0.75512));
    assert_eq!(second["metrics"], first["metrics"]);
    assert_eq!(second["trades"], first["trades"]);
    assert_eq!(second["final_equity"], first["final_equity"]);
}

#[test]
fn news_dated_after_a_candle_never_reaches_its_prompt_and_undated_news_is_dropped_and_counted() {
    let f = fakes();
    f.tavily.set_results(news());
    f.xai.push(scripts());
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    let first = backtest(dir.path(), &config, "5");
    let id = first["id"].as_i64().unwrap();
    let store = db(dir.path());
    let mut stmt = store
        .conn()
        .prepare("SELECT decided_at, prompt, search_results FROM decisions WHERE backtest_id = ?1")
        .unwrap();
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 200);
    let (mut before, mut after) = (0, 0);
    for (at, prompt, search) in &rows {
        assert!(prompt.contains("Old news from New Year's Eve"));
        assert!(
            !prompt.contains("Undated rumour"),
            "an undated item reached a prompt"
        );
        let search: Value = serde_json::from_str(search).unwrap();
        assert_eq!(search["dropped_undated"], 1);
        if *at < JAN_5 {
            before += 1;
            assert!(
                !prompt.contains("Planted headline"),
                "news of January 5 reached the prompt of a candle closing at {at}"
            );
            assert_eq!(search["dropped_after_decision"], 1);
        } else {
            after += 1;
            assert!(prompt.contains("Planted headline"));
        }
    }
    assert!(before > 0 && after > 0);
    // Every search was dated: it ends on the candle's day, never "back from today".
    for request in f.tavily.requests() {
        assert!(request.get("time_range").is_none(), "{request}");
        let end = request["end_date"].as_str().unwrap();
        assert!(end.as_bytes() <= b"2025-01-09".as_slice(), "{end}");
    }
}

#[test]
fn a_rules_backtest_runs_the_rules_engine_on_every_candle_without_any_llm_call() {
    let f = fakes();
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    let out = run(
        dir.path(),
        &config,
        &[
            &[
                "--json",
                "backtest",
                "--engine",
                "rules",
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ][..],
            &PERIOD[..],
        ]
        .concat(),
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["strategy"], "rules");
    assert_eq!(v["llm"]["decisions"], 200);
    assert_eq!(v["llm"]["llm_calls"], 0);
    assert_eq!(f.xai.inference_calls(), 0);
    assert_eq!(f.tavily.requests().len(), 0);
}

#[test]
fn decisions_replay_answers_from_the_cache_for_free_and_live_asks_again_and_shows_the_change() {
    let f = fakes();
    f.tavily.set_results(news());
    f.xai.push([Script::Decision(decision("BUY", 0.8))]);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    let d = dir.path();
    let decided = run(
        d,
        &config,
        &["--json", "decide", "BTCUSDT", "--engine", "llm"],
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let decided: Value = serde_json::from_slice(&decided).unwrap();
    let id = decided["id"].to_string();
    let news_searches = f.tavily.requests().len();
    assert_eq!(f.xai.inference_calls(), 1);

    let cached = run(d, &config, &["--json", "decisions", "replay", &id])
        .success()
        .get_output()
        .stdout
        .clone();
    let cached: Value = serde_json::from_slice(&cached).unwrap();
    assert_eq!(f.xai.inference_calls(), 1, "a cache replay asked the model");
    assert_eq!(
        f.tavily.requests().len(),
        news_searches,
        "a replay searched news"
    );
    assert_eq!(cached["changes"], json!([]), "{cached}");
    assert_eq!(cached["prompt_changed"], false, "{cached}");
    assert_eq!(cached["llm_calls"], 0);

    f.xai.push([Script::Decision(decision("HOLD", 0.5))]);
    let live = run(
        d,
        &config,
        &["--json", "decisions", "replay", &id, "--live"],
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let live: Value = serde_json::from_slice(&live).unwrap();
    assert_eq!(f.xai.inference_calls(), 2);
    assert_eq!(
        f.tavily.requests().len(),
        news_searches,
        "a replay searched news"
    );
    let action = live["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "action")
        .cloned()
        .unwrap_or_default();
    assert_eq!(action["recorded"], "BUY", "{live}");
    assert_eq!(action["replayed"], "HOLD", "{live}");
}

#[test]
fn a_run_wholly_before_the_models_knowledge_cutoff_is_split_and_warned_about() {
    let f = fakes();
    f.xai.push(scripts());
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[llm.tavily]",
        &format!("[llm.knowledge_cutoff]\n{MODEL} = \"2025-03-31\"\n[llm.tavily]"),
    );
    std::fs::write(&config, text).unwrap();
    let assert = run(
        dir.path(),
        &config,
        &[
            &[
                "--json",
                "backtest",
                "--engine",
                "llm",
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ][..],
            &PERIOD[..],
            &["--max-cost", "5"][..],
        ]
        .concat(),
    )
    .success();
    let out = assert.get_output();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let split = &v["knowledge_cutoff"];
    assert_eq!(split["knowledge_cutoff"], "2025-03-31");
    assert_eq!(split["whole_run_before_cutoff"], true);
    assert_eq!(split["before"]["candles"], 200);
    assert!(split["after"].is_null());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lies before"), "{stderr}");
}

#[test]
fn backtest_compare_prints_the_llm_edge_over_rules_net_of_cost_with_its_interval() {
    let f = fakes();
    f.xai.push(scripts());
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    let llm = backtest(dir.path(), &config, "5");
    let rules = run(
        dir.path(),
        &config,
        &[
            &[
                "--json",
                "backtest",
                "--engine",
                "rules",
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ][..],
            &PERIOD[..],
            &["--sizing", "fraction=0.5"][..],
        ]
        .concat(),
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let rules: Value = serde_json::from_slice(&rules).unwrap();
    let (a, b) = (rules["id"].to_string(), llm["id"].to_string());
    let out = run(
        dir.path(),
        &config,
        &["--json", "backtest", "compare", &a, &b],
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let llm_row = &v["runs"][1];
    assert_eq!(usd(&llm_row["llm_cost_usd"]), dec!(0.75512));
    assert_eq!(usd(&v["runs"][0]["llm_cost_usd"]), dec!(0));
    // 100 000 starting cash (backtest.initial_cash): $0.75512 is 0.00075512 points of return.
    let gross = llm_row["total_return_pct"].as_f64().unwrap();
    let net = llm_row["return_net_of_cost_pct"].as_f64().unwrap();
    assert!((gross - net - 0.000_755_12).abs() < 1e-9, "{gross} {net}");
    let diff = &v["differences"][0];
    assert_eq!(diff["common_candles"], 200);
    let (lo, est, hi) = (
        diff["return_net_diff_pct"]["low"].as_f64().unwrap(),
        diff["return_net_diff_pct"]["estimate"].as_f64().unwrap(),
        diff["return_net_diff_pct"]["high"].as_f64().unwrap(),
    );
    assert!(lo <= hi, "{diff}");
    let rules_ret = v["runs"][0]["total_return_pct"].as_f64().unwrap();
    assert!(
        (est - (net - rules_ret)).abs() < 1e-6,
        "{est} vs {net} - {rules_ret}"
    );
    let text = run(dir.path(), &config, &["backtest", "compare", &a, &b])
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("return net of cost"), "{text}");
    assert!(text.contains("95 % CI"), "{text}");
    assert!(text.contains("buy-and-hold"), "{text}");
}
