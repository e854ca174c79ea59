//! Throughput of `RiskManagementService::validate` (an entry with three open positions and 50
//! closed trades in Kelly mode, the heaviest path) and of the breaker evaluation.
//! Run: `cargo bench --bench risk`.

use rust_decimal_macros::dec;
use std::hint::black_box;
use std::time::Instant;
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::risk::{
    BreakerInputs, BreakerState, CircuitBreaker, ClosedTrade, IntentKind, MarketSnapshot,
    OpenPosition, RiskConfig, RiskContext, RiskManagementService, SizingMode, TradeIntent,
};
use trademind::domain::symbol::Symbol;
use trademind::domain::trading::filters::SymbolFilters;
use trademind::domain::trading::order::Side;

fn main() {
    let symbol = |s: &str| Symbol::new(s).expect("valid symbol");
    let trades: Vec<ClosedTrade> = (0..50)
        .map(|i| ClosedTrade {
            pnl: Quote(if i % 3 == 0 { dec!(-20) } else { dec!(30) }),
            closed_at: i,
        })
        .collect();
    let mut filters = SymbolFilters::permissive("BTC", "USDT");
    filters.step_size = dec!(0.00001);
    filters.min_notional = dec!(5);
    let ctx = RiskContext {
        equity: Quote(dec!(25000)),
        available_balance: Quote(dec!(18000)),
        open_positions: ["ETHUSDT", "SOLUSDT", "BNBUSDT"]
            .iter()
            .map(|s| OpenPosition {
                symbol: symbol(s),
                quantity: Qty(dec!(3.5)),
                entry: Price(dec!(210.5)),
                stop: Some(Price(dec!(201.25))),
            })
            .collect(),
        realised_pnl_today: Quote(dec!(-120)),
        unrealised_pnl: Quote(dec!(35.5)),
        start_of_day_equity: Quote(dec!(25100)),
        peak_equity: Quote(dec!(26000)),
        closed_trades: trades.clone(),
        config: RiskConfig {
            sizing_mode: SizingMode::Kelly,
            max_open_positions: 5,
            ..RiskConfig::default()
        },
        market: MarketSnapshot {
            stop_limit_offset_pct: rust_decimal::Decimal::ZERO,
            price: Price(dec!(93576.01)),
            atr: Some(Price(dec!(850.2))),
            filters,
        },
        breaker: BreakerState::Active,
        stop_exits: Default::default(),
    };
    let intent = TradeIntent {
        symbol: symbol("BTCUSDT"),
        side: Side::Buy,
        kind: IntentKind::Entry,
        confidence: dec!(0.74),
        size_pct: None,
        entry: Price(dec!(93576.01)),
        stop_loss: Some(Price(dec!(91700))),
        take_profit: Some(Price(dec!(97500))),
        quantity: None,
        strategy: None,
    };
    assert!(RiskManagementService::validate(&intent, &ctx).is_approved());

    let n = 100_000u32;
    let start = Instant::now();
    for _ in 0..n {
        black_box(RiskManagementService::validate(
            black_box(&intent),
            black_box(&ctx),
        ));
    }
    let per = start.elapsed() / n;
    println!("validate (entry, kelly, 3 positions, 50 trades): {per:?} per call");

    let config = RiskConfig::default();
    let inputs = BreakerInputs {
        daily_loss_pct: dec!(1.2),
        drawdown_pct: dec!(3.8),
        closed_trades: &trades,
    };
    let start = Instant::now();
    for i in 0..n {
        let mut b = CircuitBreaker::default();
        black_box(b.evaluate(black_box(&inputs), &config, i64::from(i)));
    }
    let per = start.elapsed() / n;
    println!("breaker evaluate (50 trades): {per:?} per call");
}
