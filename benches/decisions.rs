//! Decision hot paths: validating a model reply, the strategy engine's replay of a snapshot's
//! candles, building a prompt with news, and a backtest
//! replay answered from the LLM cache (the fake xAI server fills the cache on the first pass; the
//! timed second pass must make no call). Run with `cargo bench --bench decisions`.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rust_decimal_macros::dec;
use serde_json::json;
use trademind::app::decide::{DecisionEngine, LlmEngine, RulesEngine, RunMode};
use trademind::app::demo::BUNDLED_BTCUSDT_1H;
use trademind::app::strategy_engine::StrategyEngine;
use trademind::domain::decision::{
    DecisionInput, IndicatorSnapshot, RiskSnapshot, ValidationLimits, parse_and_validate,
};
use trademind::domain::market::Interval;
use trademind::domain::{Price, Symbol};
use trademind::services::llm::prompt::DEFAULT_TEMPLATE;
use trademind::services::llm::{ApiKey, LlmClient, LlmConfig, NewsItem, PromptParts, build_prompt};
use trademind::services::market_data::import::parse_candles;
use trademind::store::Store;
use trademind::testkit::fake_xai::{FakeXai, Script};

fn input(now_ms: i64) -> DecisionInput {
    DecisionInput {
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::H1,
        now_ms,
        price: Price::new(dec!(100000)),
        change_24h_pct: 1.0,
        indicators: IndicatorSnapshot {
            rsi: Some(50.0),
            macd_hist: Some(1.0),
            ..Default::default()
        },
        higher_indicators: None,
        order_book: None,
        position: None,
        risk: RiskSnapshot::default(),
        recent_decisions: vec![],
        reflections: vec![],
        closed_candles: Vec::new(),
    }
}

fn time<F: FnMut()>(label: &str, iterations: usize, mut f: F) {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed().as_secs_f64() / iterations as f64;
    println!("{label:<48} {:>10.2} µs/op  ({iterations} ops)", per * 1e6);
}

fn main() {
    let reply = json!({
        "action": "BUY", "symbol": "BTCUSDT", "confidence": 0.72, "position_size_pct": 5,
        "stop_loss": {"kind": "percent", "value": 2}, "take_profit": {"kind": "price", "value": 105000},
        "time_horizon": "swing", "reasoning": "ETF inflows and a MACD cross",
        "risk_factors": ["macro data"], "sources": ["https://news.example/etf"]
    })
    .to_string();
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let limits = ValidationLimits::default();
    time("parse_and_validate (valid BUY)", 100_000, || {
        black_box(parse_and_validate(
            black_box(&reply),
            &symbol,
            Price::new(dec!(100000)),
            &limits,
        ));
    });

    // The strategy engine replays the snapshot's candles through a fresh strategy each cycle
    // (500 closed candles: what the trading service fetches).
    let candles = parse_candles(BUNDLED_BTCUSDT_1H, Interval::H1, false)
        .unwrap()
        .candles;
    let last_500 = &candles[candles.len() - 500..];
    let snapshot_500 =
        DecisionInput::from_candles(symbol.clone(), Interval::H1, last_500, 0).unwrap();
    let strategy = StrategyEngine::from_parameters(&json!({
        "strategy": "sma-cross", "fast": 10, "slow": 30, "stop_pct": 2, "take_pct": 4
    }))
    .unwrap();
    time(
        "strategy engine decide (sma-cross, 500 candles)",
        2_000,
        || {
            black_box(strategy.decide_now(black_box(&snapshot_500)));
        },
    );

    let news: Vec<NewsItem> = (0..5)
        .map(|i| NewsItem {
            title: format!("Headline {i}"),
            url: format!("https://news.example/{i}"),
            published_date: Some("2025-01-14T09:00:00Z".into()),
            snippet: "Spot ETFs took in $1bn on Tuesday. ".repeat(15),
        })
        .collect();
    let snapshot = input(1_736_899_200_000);
    time("build_prompt (5 news items)", 20_000, || {
        black_box(build_prompt(
            DEFAULT_TEMPLATE,
            &snapshot,
            &PromptParts {
                news: &news,
                max_position_pct: 10.0,
            },
        ));
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fake = FakeXai::start("xai-bench", &["grok-bench"]).await.unwrap();
        fake.push([Script::Content(reply.clone())]);
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let config = LlmConfig {
            base_url: fake.base_url(),
            model: "grok-bench".into(),
            ..LlmConfig::default()
        };
        let engine = || {
            LlmEngine::new(
                LlmClient::new(config.clone(), ApiKey::new("xai-bench")).unwrap(),
                None,
                store.clone(),
                DEFAULT_TEMPLATE.to_string(),
                RulesEngine::default(),
            )
            .with_mode(RunMode::Backtest)
        };
        const STEPS: i64 = 1_000;
        let first = engine();
        let start = Instant::now();
        for step in 0..STEPS {
            black_box(
                first
                    .decide(&input(1_736_899_200_000 + step * 3_600_000))
                    .await,
            );
        }
        let cold = start.elapsed();
        let calls = fake.inference_calls();
        let replay = engine();
        let start = Instant::now();
        for step in 0..STEPS {
            black_box(
                replay
                    .decide(&input(1_736_899_200_000 + step * 3_600_000))
                    .await,
            );
        }
        let warm = start.elapsed();
        assert_eq!(fake.inference_calls(), calls, "the replay called the LLM");
        println!(
            "LLM replay, {STEPS} hourly decisions: first pass (fake server, localhost) {:.1} ms, \
             replay from cache {:.1} ms ({:.1} µs/decision), LLM calls on replay: 0",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e6 / STEPS as f64
        );
    });
}
