//! `trademind watch SYMBOL`: live trades, closed candles and the top of the local order book
//! from the market streams of a connection (Binance's, or the one address it is pointed at),
//! until Ctrl-C. Closed candles are stored in the database.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{Context, UsageError};
use crate::app::bus::{Event, EventBus, Received};
use crate::domain::market::{Interval, OrderBookService};
use crate::domain::symbol::Symbol;
use crate::services::market_stream::{
    MarketStream, RestMarketData, SharedBook, StoreCandleSink, StreamSpec,
};

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Symbol to watch, e.g. BTCUSDT.
    pub symbol: String,
    /// Candle interval for the kline stream.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// Levels per side used for the book imbalance.
    #[arg(long, default_value_t = 10)]
    pub depth: usize,
    /// Connection whose market streams to watch (default: trading.connection; "paper" reads
    /// Binance production, a testnet connection the testnet, `exchange.binance.base_url` wins).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

pub async fn run(args: WatchArgs, ctx: &Context) -> Result<()> {
    let symbol = Symbol::new(&args.symbol).map_err(|e| UsageError(e.to_string()))?;
    let interval: Interval = args
        .interval
        .parse()
        .map_err(|e: crate::domain::market::candle::InvalidInterval| UsageError(e.to_string()))?;
    let (_, environment) =
        crate::app::venue::market_environment(ctx.settings(), args.connection.as_deref())?;
    let config = ctx.settings().stream_for(environment);
    // Closed candles go to the candle store like the daemon's, so watching also records.
    let store = std::sync::Arc::new(std::sync::Mutex::new(ctx.open_store()?));
    let rest = RestMarketData::new(&config.rest_base_url).context("building the REST client")?;
    let bus = EventBus::new(4096);
    let mut events = bus.subscribe();
    let book = SharedBook::new(&config);
    let stream = MarketStream {
        config,
        spec: StreamSpec {
            symbol: symbol.clone(),
            interval,
        },
        snapshots: rest.clone(),
        klines: rest,
        candles: StoreCandleSink::new(store),
        bus,
        book: book.clone(),
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(stream.run(cancel.clone()));
    let mut last_book_print = Instant::now() - Duration::from_secs(1);
    loop {
        let received = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            r = events.recv() => r,
        };
        let event = match received {
            Received::Event(e) => e,
            Received::Lagged { missed } => {
                eprintln!("(display fell behind: {missed} events skipped)");
                continue;
            }
            Received::Closed => break,
        };
        if ctx.json {
            if let Ok(line) = serde_json::to_string(&event) {
                println!("{line}");
            }
            continue;
        }
        match event {
            Event::Trade {
                price,
                qty,
                buyer_is_maker,
                ..
            } => {
                let side = if buyer_is_maker { "sell" } else { "buy " };
                println!("trade  {side} {qty} @ {price}");
            }
            Event::CandleClosed { candle, .. } => println!(
                "candle {interval} open {} high {} low {} close {} volume {}",
                candle.open, candle.high, candle.low, candle.close, candle.volume
            ),
            Event::KlinesBackfilled { count, .. } => {
                println!("candle back-filled {count} missed while disconnected")
            }
            Event::BookUpdated { .. } if last_book_print.elapsed() >= Duration::from_secs(1) => {
                last_book_print = Instant::now();
                let line = book.read(|b| {
                    let (bid, bid_qty) = b.best_bid()?;
                    let (ask, ask_qty) = b.best_ask()?;
                    let spread = OrderBookService::spread(b)?;
                    let micro = OrderBookService::microprice(b)?;
                    let imbalance = OrderBookService::imbalance(b, args.depth)?;
                    Some(format!(
                        "book   bid {bid_qty} @ {bid} | ask {ask_qty} @ {ask} | spread {:.2} bps | micro {:.8} | imbalance(top {}) {:+.3}",
                        spread.bps.round_dp(2),
                        micro.get().round_dp(8),
                        args.depth,
                        imbalance.round_dp(3)
                    ))
                });
                if let Some(line) = line.flatten() {
                    println!("{line}");
                }
            }
            Event::BookResyncing { reason, .. } => println!("book   resyncing: {reason}"),
            Event::StreamStatus { state, detail, .. } => println!("stream {state}: {detail}"),
            _ => {}
        }
    }
    cancel.cancel();
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(UsageError(e.to_string()).into()),
        Err(e) => Err(anyhow::anyhow!("market stream task failed: {e}")),
    }
}
