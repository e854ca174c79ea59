//! `decisions leaderboard` on seeded data: backtest runs grouped by engine, model and prompt,
//! buy-and-hold once per period, the shadow books of a strategy's champion and challenger, all
//! ranked by return net of LLM cost with block-bootstrap intervals; and `backtest compare
//! --report`, whose HTML carries the comparison's figures.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

use crate::decisions::trademind;
use trademind::domain::backtest::metrics::{MetricsInput, compute};
use trademind::domain::backtest::{BacktestResult, Times};
use trademind::domain::decision::shadow::{ShadowFill, ShadowSide};
use trademind::domain::decision::{DecisionInput, IndicatorSnapshot, RiskSnapshot};
use trademind::domain::market::Interval;
use trademind::domain::{Price, Qty, Quote, Symbol};
use trademind::store::decisions::{NewDecision, insert};
use trademind::store::strategies::{NewStrategy, add_strategy};
use trademind::store::{Store, backtests, shadow};

const HOUR: i64 = 3_600_000;

fn store(dir: &std::path::Path) -> Store {
    Store::open(&dir.join("trademind.db")).unwrap()
}

/// A completed engine run on 10 hourly candles from 1 000 of cash, its equity growing by
/// `step` a candle; buy-and-hold 100 -> 103 (+3 %).
pub(crate) fn seed_run(store: &Store, engine: &str, model: Option<&str>, step: f64) -> i64 {
    let times: Vec<i64> = (0..10).map(|i| i * HOUR).collect();
    let equity: Vec<f64> = (1..=10).map(|i| 1000.0 * (1.0 + step).powi(i)).collect();
    let times = Times::of(&times);
    let metrics = compute(&MetricsInput {
        interval: Interval::H1,
        initial_equity: 1000.0,
        equity: &equity,
        times: &times,
        trades: &[],
        candles_in_market: 10,
        fees_paid: Quote(dec!(0)),
        first_open: 100.0,
        last_close: 103.0,
    });
    let result = BacktestResult {
        strategy: engine.into(),
        sizer: "all-in".into(),
        final_equity: Quote(Decimal::try_from(equity[9]).unwrap()),
        metrics,
        trades: Vec::new(),
        equity: equity.into(),
        times,
        rejections: Vec::new(),
    };
    let label = model.map_or_else(|| engine.to_string(), |m| format!("llm:{m}"));
    let params = json!({
        "request": {"initial_cash": "1000"},
        "engine": engine,
        "model": model,
        "prompt_template_version": model.map(|_| "v1"),
    });
    let c = store.conn();
    let id = backtests::create(c, &label, "BTCUSDT", "1h", &params, 1).unwrap();
    backtests::mark_running(c, id, 1).unwrap();
    backtests::complete(c, id, &result, 2).unwrap();
    id
}

fn input(price: Decimal, now_ms: i64) -> String {
    serde_json::to_string(&DecisionInput {
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::H1,
        now_ms,
        price: Price(price),
        change_24h_pct: 0.0,
        indicators: IndicatorSnapshot::default(),
        higher_indicators: None,
        order_book: None,
        position: None,
        risk: RiskSnapshot::default(),
        recent_decisions: vec![],
        reflections: vec![],
        closed_candles: Vec::new(),
    })
    .unwrap()
}

fn decision(action: &str, pct: u32) -> String {
    json!({
        "action": action, "symbol": "BTCUSDT", "confidence": 0.8, "position_size_pct": pct,
        "stop_loss": null, "take_profit": null, "time_horizon": "swing",
        "reasoning": "seeded", "risk_factors": [], "sources": []
    })
    .to_string()
}

struct Seeded {
    model: &'static str,
    action: &'static str,
    pct: u32,
    outcome: &'static str,
    price: Decimal,
    at: i64,
    cost: Decimal,
    cached: Option<&'static str>,
}

fn record(store: &Store, strategy: Option<i64>, backtest: Option<i64>, d: &Seeded) -> i64 {
    insert(
        store.conn(),
        &NewDecision {
            strategy_id: strategy,
            backtest_id: backtest,
            symbol: "BTCUSDT".into(),
            engine: "llm".into(),
            model: Some(d.model.into()),
            action: d.action.into(),
            input_snapshot: input(d.price, d.at),
            decision: Some(decision(d.action, d.pct)),
            validation: d
                .cached
                .map(|c| json!({ "cached_cost_usd": c }).to_string()),
            outcome: d.outcome.into(),
            cost_usd: Some(d.cost),
            decided_at: d.at,
            ..NewDecision::default()
        },
    )
    .unwrap()
}

fn seeded(model: &'static str, action: &'static str, outcome: &'static str) -> Seeded {
    Seeded {
        model,
        action,
        pct: if action == "BUY" { 50 } else { 0 },
        outcome,
        price: dec!(100),
        at: 0,
        cost: dec!(0),
        cached: None,
    }
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[trading]\npaper_starting_balance = \"1000\"\n[exchange.paper]\nfee_rate = \"0\"\n",
    )
    .unwrap();
    path
}

fn cli(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let config = config(dir);
    trademind()
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn usd(v: &Value) -> Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Decimal::MIN)
}

#[test]
fn the_leaderboard_ranks_backtests_and_shadow_books_by_return_net_of_cost_with_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    // Two runs of grok-a with prompt v1: +1 % and +2 % a candle; the first cost $20 of 1 000
    // ($12 spent, $5 spent + $3 cached) = 2 points; a free rules run at +0.5 % a candle.
    let slow = seed_run(&db, "llm", Some("grok-a"), 0.01);
    seed_run(&db, "llm", Some("grok-a"), 0.02);
    seed_run(&db, "rules", None, 0.005);
    for (cost, cached) in [(dec!(12), None), (dec!(5), Some("3"))] {
        let d = Seeded {
            cost,
            cached,
            ..seeded("grok-a", "HOLD", "hold")
        };
        record(&db, None, Some(slow), &d);
    }
    // A plain strategy run is no engine's: left out.
    backtests::create(
        db.conn(),
        "sma-cross",
        "BTCUSDT",
        "1h",
        &json!({"initial_cash": "1000"}),
        1,
    )
    .unwrap();

    // Strategy "duel": champion grok-a, challenger grok-b, 1 000 of virtual cash, no fee.
    let strategy = add_strategy(
        db.conn(),
        &NewStrategy {
            name: "duel".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "llm".into(),
            parameters: json!({"challenger": {"model": "grok-b"}}),
            connection_id: None,
        },
        0,
    )
    .unwrap();
    // An invalid champion BUY at 50 before everything: replayed, it would buy at half price.
    record(
        &db,
        Some(strategy),
        None,
        &Seeded {
            price: dec!(50),
            at: HOUR / 2,
            ..seeded("grok-a", "BUY", "invalid")
        },
    );
    // Champion: BUY half at 100, HOLD at 110, SELL at 120: +10 % on 500 = +10 %, $0.30.
    // Challenger: BUY 8 at 100 (its recorded fill), HOLD, SELL at 120: +160 = +16 %, $0.60.
    for (i, (action, price, champion_outcome)) in [
        ("BUY", dec!(100), "executed"),
        ("HOLD", dec!(110), "hold"),
        ("SELL", dec!(120), "executed"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = (i as i64 + 1) * HOUR;
        record(
            &db,
            Some(strategy),
            None,
            &Seeded {
                price,
                at,
                cost: dec!(0.1),
                ..seeded("grok-a", action, champion_outcome)
            },
        );
        let (cost, cached) = if i == 1 {
            (dec!(0.1), Some("0.1"))
        } else {
            (dec!(0.2), None)
        };
        let shadow_id = record(
            &db,
            Some(strategy),
            None,
            &Seeded {
                price,
                at,
                cost,
                cached,
                ..seeded("grok-b", action, "shadow")
            },
        );
        let side = match action {
            "BUY" => ShadowSide::Buy,
            "SELL" => ShadowSide::Sell,
            _ => continue,
        };
        let fill = ShadowFill {
            symbol: "BTCUSDT".into(),
            side,
            quantity: Qty(dec!(8)),
            price: Price(price),
            fee: Quote(dec!(0)),
        };
        shadow::insert(db.conn(), strategy, shadow_id, &fill, at).unwrap();
    }

    let v: Value =
        serde_json::from_slice(&cli(dir.path(), &["--json", "decisions", "leaderboard"])).unwrap();
    let rows = v["backtests"].as_array().unwrap();
    let engines: Vec<&str> = rows.iter().map(|r| r["engine"].as_str().unwrap()).collect();
    assert_eq!(engines, ["llm", "rules", "buy-and-hold"], "{v:#}");
    let llm = &rows[0];
    assert_eq!(llm["model"], "grok-a");
    assert_eq!(llm["prompt"], "v1");
    assert_eq!(llm["count"], 2);
    assert_eq!(usd(&llm["cost_usd"]), dec!(20));
    // (10.4622 % + 21.8994 %) / 2 gross; less 2 points on the first run only.
    let (r1, r2) = (1.01f64.powi(10) - 1.0, 1.02f64.powi(10) - 1.0);
    let gross = (r1 + r2) / 2.0 * 100.0;
    let net = ((r1 - 0.02) + r2) / 2.0 * 100.0;
    assert!(close(f(&llm["return_pct"]), gross), "{llm}");
    assert!(close(f(&llm["return_net_of_cost_pct"]), net), "{llm}");
    // Every candle earns the same: each resample is the run itself, so the interval is the point.
    for k in ["estimate", "low", "high"] {
        assert!(close(f(&llm["interval_pct"][k]), net), "{k}: {llm}");
    }
    assert_eq!(llm["trades"], 0);
    let rules = &rows[1];
    assert_eq!(rules["model"], Value::Null);
    assert!(close(
        f(&rules["return_net_of_cost_pct"]),
        (1.005f64.powi(10) - 1.0) * 100.0
    ));
    assert_eq!(usd(&rules["cost_usd"]), dec!(0));
    let hold = &rows[2];
    assert_eq!(hold["count"], 1, "three runs, one period");
    assert!(close(f(&hold["return_pct"]), 3.0), "{hold}");
    assert_eq!(hold["interval_pct"], Value::Null);

    let books = v["shadow"].as_array().unwrap();
    assert_eq!(books.len(), 2, "{v:#}");
    let (challenger, champion) = (&books[0], &books[1]);
    assert_eq!(challenger["kind"], "challenger");
    assert_eq!(challenger["model"], "grok-b");
    assert_eq!(challenger["strategy"], "duel");
    assert_eq!(challenger["count"], 3);
    assert_eq!(challenger["trades"], 2);
    assert_eq!(usd(&challenger["cost_usd"]), dec!(0.6));
    assert!(close(f(&challenger["return_pct"]), 16.0), "{challenger}");
    assert!(close(f(&challenger["return_net_of_cost_pct"]), 15.94));
    let ci = &challenger["interval_pct"];
    assert!(close(f(&ci["estimate"]), 15.94), "{ci}");
    // Each resample compounds three of the returns 0, +8 % and +7.41 %: at worst 0, at best
    // 1.08³ - 1, less the 0.06 points of cost.
    assert!(f(&ci["low"]) >= -0.06 - 1e-9 && f(&ci["low"]) <= f(&ci["high"]));
    assert!(f(&ci["high"]) <= (1.08f64.powi(3) - 1.0) * 100.0 - 0.06 + 1e-9);
    assert_eq!(champion["kind"], "champion");
    assert_eq!(champion["model"], "grok-a");
    assert_eq!(champion["count"], 3, "the invalid decision is no cycle");
    assert_eq!(champion["trades"], 2);
    assert_eq!(usd(&champion["cost_usd"]), dec!(0.3));
    assert!(close(f(&champion["return_pct"]), 10.0), "{champion}");
    assert!(close(f(&champion["return_net_of_cost_pct"]), 9.97));

    let text = String::from_utf8(cli(dir.path(), &["decisions", "leaderboard"])).unwrap();
    assert!(text.contains("duel:chall"), "{text}");
    assert!(text.contains("buy-and-hold"), "{text}");
    assert!(text.contains(&format!("{net:.2}")), "{text}");
    assert!(text.contains("2000 resamples, seed 42"), "{text}");
}

#[test]
fn an_empty_leaderboard_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let text = String::from_utf8(cli(dir.path(), &["decisions", "leaderboard"])).unwrap();
    assert!(text.contains("nothing to rank yet"), "{text}");
    assert!(text.contains("--challenger-model"), "{text}");
    let v: Value =
        serde_json::from_slice(&cli(dir.path(), &["--json", "decisions", "leaderboard"])).unwrap();
    assert_eq!(v["backtests"], json!([]));
    assert_eq!(v["shadow"], json!([]));
}

/// The text of the element carrying `data-field="FIELD"` inside the row tagged `row`.
fn html_field(html: &str, row: &str, field: &str) -> String {
    let start = html
        .find(row)
        .unwrap_or_else(|| panic!("no {row} in the report"));
    let rest = &html[start..];
    let rest = &rest[..rest.find("</tr>").unwrap()];
    let marker = format!("data-field=\"{field}\">");
    let at = rest
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in {rest}"))
        + marker.len();
    rest[at..at + rest[at..].find('<').unwrap()].to_string()
}

#[test]
fn backtest_compare_writes_the_comparison_into_the_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let rules = seed_run(&db, "rules", None, 0.005);
    let llm = seed_run(&db, "llm", Some("grok-a"), 0.01);
    let d = Seeded {
        cost: dec!(20),
        ..seeded("grok-a", "HOLD", "hold")
    };
    record(&db, None, Some(llm), &d);
    let report = dir.path().join("compare.html");
    let (a, b) = (rules.to_string(), llm.to_string());
    let args = [
        "--json",
        "backtest",
        "compare",
        &a,
        &b,
        "--report",
        report.to_str().unwrap(),
    ];
    let v: Value = serde_json::from_slice(&cli(dir.path(), &args)).unwrap();
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<h2 id=\"comparison\">"), "{html}");
    assert!(
        html.contains("<h2 id=\"equity-curve\">"),
        "the run's own report is there too"
    );

    // The LLM's run: +1 % a candle, $20 of cost on 1 000 = 2 points.
    let row = format!("<tr data-run=\"{llm}\">");
    let net = (1.01f64.powi(10) - 1.0) * 100.0 - 2.0;
    assert_eq!(html_field(&html, &row, "llm_cost_usd"), "20");
    assert_eq!(
        html_field(&html, &row, "total_return_pct"),
        format!("{:.2}", (1.01f64.powi(10) - 1.0) * 100.0)
    );
    assert_eq!(
        html_field(&html, &row, "return_net_of_cost_pct"),
        format!("{net:.2}")
    );
    let base = format!("<tr data-run=\"{rules}\">");
    assert_eq!(html_field(&html, &base, "llm_cost_usd"), "0");
    assert_eq!(
        html_field(
            &html,
            "<tr data-run=\"buy-and-hold\">",
            "buy_and_hold_return_pct"
        ),
        "3.00"
    );
    // The difference over the 9 returns both stored curves hold: constant per candle, so its
    // interval is the point, (1.01⁹ - 1.005⁹) less the 2 points of cost.
    let diff = ((1.01f64.powi(9) - 1.005f64.powi(9)) - 0.02) * 100.0;
    let pair = format!("<tr data-run=\"{llm}\" data-against=\"{rules}\">");
    for k in ["estimate", "low", "high"] {
        let shown = html_field(&html, &pair, &format!("return_net_diff_pct.{k}"));
        assert_eq!(shown, format!("{diff:+.2}"), "{k}");
        let json = f(&v["differences"][0]["return_net_diff_pct"][k]);
        assert_eq!(
            shown,
            format!("{json:+.2}"),
            "{k}: the report shows the JSON's figure"
        );
    }
    assert_eq!(html_field(&html, &pair, "common_candles"), "10");
    assert_eq!(
        html_field(&html, &pair, "sharpe_diff.estimate"),
        format!("{:+.3}", f(&v["differences"][0]["sharpe_diff"]["estimate"]))
    );
}
