//! Deterministic fixture data for the interface's snapshot tests and the render benchmark
//! (test support: compiled for tests and with the `fake-servers` feature only).

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::app::snapshot::*;
use crate::domain::market::{Candle, Interval};
use crate::domain::risk::BreakerState;
use crate::domain::symbol::Symbol;
use crate::domain::trading::TradingMode;
use crate::domain::trading::order::Side;
use crate::domain::{Price, Qty, Quote};
use crate::store::account::{Counts, Protection, TradingState};

/// 2026-01-02 12:00:00 UTC.
pub const NOW_MS: i64 = 1_767_355_200_000;

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap_or_else(|_| unreachable!("fixture symbols are valid"))
}

fn price(f: f64) -> Price {
    Price(Decimal::from_f64_retain(f).unwrap_or_default().round_dp(2))
}

/// `n` hourly candles ending at `NOW_MS`, a deterministic wave around 50 000.
pub fn candles(n: usize) -> Vec<Candle> {
    let mut out = Vec::with_capacity(n);
    let mut close = 50_000.0;
    for i in 0..n {
        let t = i as f64;
        let open = close;
        close = 50_000.0 + 1500.0 * (t / 17.0).sin() + 600.0 * (t / 5.0).cos() + 10.0 * t;
        let high = open.max(close) + 80.0 + 40.0 * (t / 3.0).sin().abs();
        let low = open.min(close) - 80.0 - 40.0 * (t / 4.0).cos().abs();
        out.push(Candle {
            open_time: NOW_MS - (n - i) as i64 * Interval::H1.millis(),
            open: price(open),
            high: price(high),
            low: price(low),
            close: price(close),
            volume: Qty(Decimal::from(10 + (i % 7) as i64)),
        });
    }
    out
}

/// An order book `levels` deep each side around the last close, ticks of 0.5.
pub fn book(mid: Decimal, levels: usize) -> BookView {
    let level = |i: usize, sign: Decimal| BookLevel {
        price: Price(mid + sign * (dec!(0.5) * Decimal::from(i as i64 + 1))),
        qty: Qty(dec!(0.05) * Decimal::from(((i * 7) % 11 + 1) as i64)),
    };
    BookView {
        bids: (0..levels).map(|i| level(i, dec!(-1))).collect(),
        asks: (0..levels).map(|i| level(i, dec!(1))).collect(),
    }
}

/// The market view the benchmark renders: `candles` candles and `levels` book levels a side.
pub fn market(n_candles: usize, levels: usize) -> MarketView {
    let c = candles(n_candles);
    let last = c.last().map(|c| c.close.get()).unwrap_or(dec!(50000));
    MarketView {
        symbol: sym("BTCUSDT"),
        interval: Interval::H1,
        overlays: crate::app::snapshot::overlays(&c),
        candles: c,
        resampled_from: None,
        book: book(last, levels),
        recent_trades: (0..30)
            .map(|i| MarketTrade {
                at_ms: NOW_MS - i as i64 * 7_000,
                price: Price(last + Decimal::from((i % 5) as i64 - 2) / dec!(2)),
                qty: Qty(dec!(0.001) * Decimal::from((i * 13 % 40 + 1) as i64)),
                buyer_is_maker: i % 3 == 0,
            })
            .collect(),
    }
}

/// A finished run's metrics as the backtester stores them: unrounded f64s and epoch times.
pub fn metrics() -> crate::domain::backtest::Metrics {
    crate::domain::backtest::Metrics {
        initial_equity: 10_000.0,
        final_equity: 11_420.123_456,
        total_return_pct: 14.201_234_56,
        cagr_pct: Some(61.024_8),
        sharpe: 1.312_345,
        sortino: 1.9,
        calmar: Some(2.1),
        max_drawdown_pct: 6.803_21,
        max_drawdown_start: Some(NOW_MS - 90 * 3_600_000),
        max_drawdown_end: Some(NOW_MS - 70 * 3_600_000),
        trades: 25,
        closed_trades: 24,
        win_rate_pct: 48.0,
        profit_factor: Some(-0.0),
        expectancy: 5.916_67,
        avg_win: 41.2,
        avg_loss: -24.555_5,
        largest_win: 130.0,
        largest_loss: -61.8,
        exposure_pct: 38.2,
        avg_trade_duration_hours: 20.2,
        fees_paid: 31.458_9,
        buy_and_hold_return_pct: -2.895_959_168_878_703_4,
        candles: 120,
        start: Some(NOW_MS - 120 * 3_600_000),
        end: Some(NOW_MS),
    }
}

/// A busy paper account: two positions, two working orders, trades over two strategies,
/// decisions from both engines, three backtests, a breaker history, health and logs.
pub fn snapshot() -> Snapshot {
    let btc = sym("BTCUSDT");
    let eth = sym("ETHUSDT");
    let curve: Vec<(i64, f64)> = (0..60)
        .map(|i| {
            let t = i as f64;
            (
                NOW_MS - (60 - i) * 3_600_000,
                10_000.0 + 8.0 * t + 60.0 * (t / 6.0).sin(),
            )
        })
        .collect();
    let bt_curve: Vec<f64> = (0..120)
        .map(|i| 10_000.0 + 12.0 * i as f64 - 300.0 * ((i as f64) / 15.0).sin().max(0.0))
        .collect();
    let mut snap = Snapshot {
        mode: TradingMode::Paper,
        as_of_ms: NOW_MS,
        trading_paused: false,
        trading: TradingState::Active,
        daemon: None,
        counts: Counts {
            decisions: 616,
            trades: 12,
            open_orders: 2,
            closed_positions: 6,
        },
        account: AccountPanel {
            equity: Quote(dec!(10482.35)),
            equity_curve: curve,
            daily_pnl: Quote(dec!(126.40)),
            daily_pnl_pct: 1.22,
            available_balance: Quote(dec!(4210.10)),
            heat_pct: 0.0,
            heat_cap_pct: 6.0,
        },
        breaker: BreakerView {
            state: BreakerState::Active,
            reason: String::new(),
            until: None,
            history: vec![
                BreakerChange {
                    at_ms: NOW_MS - 1_200_000,
                    scope: "fast".into(),
                    state: BreakerState::Halted,
                    reason: "daily_loss_limit".into(),
                },
                BreakerChange {
                    at_ms: NOW_MS - 3_600_000,
                    scope: "global".into(),
                    state: BreakerState::Active,
                    reason: "cooldown over".into(),
                },
                BreakerChange {
                    at_ms: NOW_MS - 7_200_000,
                    scope: "global".into(),
                    state: BreakerState::Halted,
                    reason: "3 losses in a row".into(),
                },
            ],
        },
        // `fast` lost 4.1 % of its book today: its own breaker halted it until midnight;
        // `trend` and the account trade on.
        books: vec![
            crate::app::snapshot::BookBreakerView {
                risk: crate::store::book_risk::BookRisk {
                    strategy_id: 1,
                    strategy: "fast".into(),
                    allocation: Some(crate::domain::trading::Allocation::Quote(Quote(dec!(1000)))),
                    equity: Quote(dec!(959)),
                    day_pnl: Quote(dec!(-41)),
                    daily_loss_pct: dec!(4.1),
                    drawdown_pct: dec!(4.1),
                    peak_equity: Quote(dec!(1000)),
                    breaker: crate::domain::risk::CircuitBreaker {
                        state: BreakerState::Halted,
                        reason: Some(crate::domain::risk::BreakerReason::DailyLossLimit),
                        since: NOW_MS - 1_200_000,
                        until: Some(NOW_MS + 3 * 3_600_000),
                    },
                    breaker_ever_moved: true,
                },
                max_daily_loss_pct: dec!(3),
                max_drawdown_pct: dec!(15),
            },
            crate::app::snapshot::BookBreakerView {
                risk: crate::store::book_risk::BookRisk {
                    strategy_id: 2,
                    strategy: "trend".into(),
                    allocation: None,
                    equity: Quote(dec!(10482.35)),
                    day_pnl: Quote(dec!(167.40)),
                    daily_loss_pct: dec!(-1.62),
                    drawdown_pct: dec!(1.1),
                    peak_equity: Quote(dec!(10599)),
                    breaker: crate::domain::risk::CircuitBreaker::default(),
                    breaker_ever_moved: false,
                },
                max_daily_loss_pct: dec!(3),
                max_drawdown_pct: dec!(15),
            },
        ],
        positions: vec![
            PositionView {
                book: "trend".into(),
                book_id: Some(2),
                symbol: btc.clone(),
                side: "LONG".into(),
                entry: Price(dec!(50120.5)),
                mark: Price(dec!(51230)),
                qty: Qty(dec!(0.05)),
                stop: Some(Price(dec!(49100))),
                stop_limit: Some(Price(dec!(49050))),
                initial_stop: Some(Price(dec!(49100))),
                opened_at_ms: NOW_MS - 5_400_000,
                target: Some(Price(dec!(53000))),
                protection: Protection::BothLegs,
                // As the engine stores it: unrounded.
                unrealised_pnl: Quote(dec!(55.4812345)),
                heat_pct: 0.0,
            },
            PositionView {
                book: "default".into(),
                book_id: None,
                symbol: eth.clone(),
                side: "LONG".into(),
                entry: Price(dec!(3010)),
                mark: Price(dec!(2984.2)),
                qty: Qty(dec!(0.8)),
                stop: Some(Price(dec!(2930))),
                stop_limit: None,
                initial_stop: Some(Price(dec!(2930))),
                opened_at_ms: NOW_MS - 2 * 86_400_000 - 3 * 3_600_000,
                target: None,
                protection: Protection::StopOnly,
                unrealised_pnl: Quote(dec!(-20.64)),
                heat_pct: 0.0,
            },
        ],
        open_orders: vec![
            OrderView {
                client_order_id: "tm-sl-btc-01".into(),
                symbol: btc.clone(),
                side: Side::Sell,
                order_type: "STOP_LOSS_LIMIT".into(),
                status: "NEW".into(),
                price: Some(Price(dec!(49050))),
                stop_price: Some(Price(dec!(49100))),
                qty: Qty(dec!(0.05)),
                filled: Qty::ZERO,
                created_at_ms: NOW_MS - 5_400_000,
                in_order_list: true,
            },
            OrderView {
                client_order_id: "tm-entry-sol-02".into(),
                symbol: sym("SOLUSDT"),
                side: Side::Buy,
                order_type: "LIMIT".into(),
                status: "PARTIALLY_FILLED".into(),
                price: Some(Price(dec!(142.5))),
                stop_price: None,
                qty: Qty(dec!(10)),
                filled: Qty(dec!(4)),
                created_at_ms: NOW_MS - 600_000,
                in_order_list: false,
            },
        ],
        trades: (0..12)
            .map(|i| TradeView {
                at_ms: NOW_MS - i as i64 * 2_700_000,
                symbol: if i % 3 == 0 { eth.clone() } else { btc.clone() },
                side: if i % 2 == 0 { Side::Sell } else { Side::Buy },
                price: if i % 3 == 0 {
                    Price(dec!(3000) + Decimal::from(i))
                } else {
                    Price(dec!(50000) + Decimal::from(i * 25))
                },
                qty: if i % 3 == 0 { Qty(dec!(0.5)) } else { Qty(dec!(0.02)) },
                // Fees and PnL as the exchange and the engine store them: unrounded.
                fee: Quote(dec!(0.4890548) + Decimal::from(i) / dec!(100)),
                fee_asset: "USDT".into(),
                realised_pnl: (i % 2 == 0)
                    .then(|| Quote(Decimal::from((i as i64 % 5) * 12 - 20) + dec!(0.4343024553))),
                strategy: if i % 4 == 0 { "llm-news".into() } else { "sma-cross".into() },
                purpose: match i % 4 {
                    0 => "stop_loss".into(),
                    2 => "take_profit".into(),
                    _ => "entry".into(),
                },
            })
            .collect(),
        decisions: vec![
            DecisionView {
                id: 42,
                at_ms: NOW_MS - 300_000,
                strategy: "llm-news".into(),
                symbol: "BTCUSDT".into(),
                action: "BUY".into(),
                confidence: Some(0.82),
                verdict: "executed".into(),
                engine: "llm".into(),
                model: Some("grok-4".into()),
                reasoning: "Breakout above the 20-period high on rising volume; ETF inflow news supports continuation.".into(),
                risk_checks: vec![
                    RiskCheckView { name: "portfolio_heat".into(), passed: true, detail: "4.1% + 0.9% <= 6%".into() },
                    RiskCheckView { name: "daily_loss".into(), passed: true, detail: "-0.4% > -3%".into() },
                    RiskCheckView { name: "min_notional".into(), passed: true, detail: "2561 >= 10".into() },
                ],
                refusal_reasons: vec![],
                execution: "bought 0.05 BTCUSDT at 51230".into(),
                sizing: Some(SizingView {
                    quantity: Qty(dec!(0.05)),
                    entry: Price(dec!(51230)),
                    stop: Some(Price(dec!(49100))),
                    target: Some(Price(dec!(53000))),
                    notional: Quote(dec!(2561.5)),
                    risk_amount: Quote(dec!(106.5)),
                }),
                order_ids: vec!["tm-entry-btc-42".into(), "tm-oco-btc-42".into()],
                sources: vec![
                    "2026-01-02 · ETF inflows hit a record · https://news.example/etf-inflows".into(),
                    "2026-01-01 · BTC breaks out · https://news.example/btc-breakout".into(),
                ],
                prompt: Some("You are a trading assistant.\nBTCUSDT last price 51230.00; RSI 61.2.".into()),
                raw_reply: Some("{\"action\":\"BUY\",\"confidence\":0.82}".into()),
                prompt_tokens: Some(1830),
                completion_tokens: Some(212),
                cost_usd: Some(Quote(dec!(0.0041))),
                latency_ms: Some(1840),
            },
            DecisionView {
                id: 41,
                at_ms: NOW_MS - 3_900_000,
                strategy: "sma-cross".into(),
                symbol: "ETHUSDT".into(),
                action: "SELL".into(),
                confidence: Some(0.55),
                verdict: "refused".into(),
                engine: "rules".into(),
                model: None,
                reasoning: "SMA 10 crossed below SMA 30.".into(),
                risk_checks: vec![
                    RiskCheckView { name: "breaker".into(), passed: false, detail: "halted: 3 losses in a row".into() },
                ],
                refusal_reasons: vec!["the circuit breaker is halted".into()],
                execution: "refused by risk".into(),
                sizing: None,
                order_ids: vec![],
                sources: vec![],
                prompt: None,
                raw_reply: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost_usd: None,
                latency_ms: Some(3),
            },
            DecisionView {
                id: 40,
                at_ms: NOW_MS - 7_500_000,
                strategy: "llm-news".into(),
                symbol: "SOLUSDT".into(),
                action: "HOLD".into(),
                confidence: Some(0.31),
                verdict: "hold".into(),
                engine: "llm".into(),
                model: Some("grok-4".into()),
                reasoning: "Mixed signals.".into(),
                risk_checks: vec![],
                refusal_reasons: vec![],
                execution: "nothing_to_do".into(),
                sizing: None,
                order_ids: vec![],
                sources: vec![],
                prompt: None,
                raw_reply: None,
                prompt_tokens: Some(1500),
                completion_tokens: Some(90),
                cost_usd: Some(Quote(dec!(0.0030))),
                latency_ms: Some(1210),
            },
        ],
        market: market(200, 20),
        backtests: vec![
            BacktestView {
                id: 7,
                status: "running".into(),
                strategy: "rsi-revert".into(),
                symbol: "ETHUSDT".into(),
                interval: "15m".into(),
                params: "period=14 low=30 high=70".into(),
                metrics: None,
                equity_curve: vec![],
                curve_times: vec![],
                buy_and_hold: vec![],
                drawdown: vec![],
                trades: vec![],
                progress: Some(0.45),
                error: None,
                initial_cash: 10_000.0,
                llm_cost_usd: Decimal::ZERO,
            },
            BacktestView {
                id: 6,
                status: "completed".into(),
                strategy: "sma-cross".into(),
                symbol: "BTCUSDT".into(),
                interval: "1h".into(),
                params: "fast=10 slow=30".into(),
                metrics: Some(metrics()),
                drawdown: drawdown(&bt_curve),
                curve_times: (0..120)
                    .map(|i| NOW_MS - (120 - i) * Interval::H1.millis())
                    .collect(),
                // The asset's own path: up 10 % with a dip in the middle.
                buy_and_hold: (0..120)
                    .map(|i| {
                        let t = i as f64;
                        10_000.0 + 8.5 * t - 250.0 * (t / 20.0).sin().max(0.0)
                    })
                    .collect(),
                equity_curve: bt_curve,
                trades: (0..4)
                    .map(|i| BacktestTradeView {
                        entry_ms: NOW_MS - (40 - i * 8) * 3_600_000,
                        exit_ms: NOW_MS - (36 - i * 8) * 3_600_000,
                        side: "LONG".into(),
                        entry: Price(dec!(48000) + Decimal::from(i * 300)),
                        exit: Price(dec!(48200) + Decimal::from(i * 250)),
                        qty: Qty(dec!(0.1)),
                        pnl: Quote(Decimal::from(20 - i * 5)),
                    })
                    .collect(),
                progress: None,
                error: None,
                initial_cash: 10_000.0,
                llm_cost_usd: Decimal::ZERO,
            },
            BacktestView {
                id: 5,
                status: "failed".into(),
                strategy: "sma-cross".into(),
                symbol: "DOGEUSDT".into(),
                interval: "1m".into(),
                params: "fast=5 slow=8".into(),
                metrics: None,
                equity_curve: vec![],
                curve_times: vec![],
                buy_and_hold: vec![],
                drawdown: vec![],
                trades: vec![],
                progress: None,
                error: Some("no candles stored for DOGEUSDT 1m".into()),
                initial_cash: 10_000.0,
                llm_cost_usd: Decimal::ZERO,
            },
        ],
        risk_config: risk_config(),
        risk_limits: Vec::new(),
        peak_equity: Some(Quote(dec!(10650))),
        loss_streak: 1,
        // `trend` was stopped out of ETHUSDT half an hour ago: a 3-candle (1h) cooldown.
        stop_protections: vec![crate::store::risk::ActiveStopProtection {
            symbol: "ETHUSDT".into(),
            book: Some(2),
            strategy: Some("trend".into()),
            protection: crate::domain::risk::StopProtection::Cooldown {
                stop_at: NOW_MS - 1_800_000,
                elapsed: 0,
                candles: 3,
                until: NOW_MS - 1_800_000 + 3 * 3_600_000,
            },
        }],
        health: vec![
            ComponentHealth { name: "database".into(), healthy: true, stale: false, detail: "ok".into() },
            ComponentHealth { name: "binance-ws".into(), healthy: true, stale: false, detail: "12 ms".into() },
            ComponentHealth { name: "llm".into(), healthy: false, stale: false, detail: "rate limited, retry in 20 s".into() },
        ],
        logs: [
            (LogLevel::Info, "scheduler", "decision cycle started for 3 symbols"),
            (LogLevel::Debug, "exchange", "GET /api/v3/depth 200 in 41 ms"),
            (LogLevel::Warn, "llm", "rate limited by the provider; backing off 20 s"),
            (LogLevel::Info, "risk", "BUY BTCUSDT approved: 3 checks passed"),
            (LogLevel::Error, "exchange", "order tm-x-03 rejected: insufficient balance"),
            (LogLevel::Info, "execution", "filled 0.05 BTCUSDT at 50120.5"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (level, target, message))| LogLine {
            at_ms: NOW_MS - (6 - i as i64) * 60_000,
            level,
            target: target.into(),
            message: message.into(),
        })
        .collect(),
        symbols: vec![btc, eth, sym("SOLUSDT")],
        strategies: vec!["sma-cross".into(), "rsi-revert".into(), "llm-news".into()],
    };
    apply_heat(&mut snap);
    // The file sets a 2 % daily loss limit; `risk set` stored a 5-position cap over it.
    let mut configured = config_rows(&crate::domain::risk::RiskConfig::default());
    set_row(&mut configured, "max_daily_loss_pct", "2");
    snap.risk_limits = risk_limits(&snap.risk_config, true, &configured);
    snap
}

fn set_row(rows: &mut [(String, String)], key: &str, value: &str) {
    if let Some(row) = rows.iter_mut().find(|(k, _)| k == key) {
        row.1 = value.into();
    }
}

/// The limits in force: the defaults, a 2 % daily loss limit from the file and 5 open
/// positions stored in the database.
fn risk_config() -> Vec<(String, String)> {
    let mut rows = config_rows(&crate::domain::risk::RiskConfig::default());
    set_row(&mut rows, "max_daily_loss_pct", "2");
    set_row(&mut rows, "max_open_positions", "5");
    rows
}
