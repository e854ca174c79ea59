//! Local order book throughput: decode Binance `depthUpdate` frames (borrowed JSON, exact
//! Decimal levels) and apply them to a 5000-level-per-side book, for 10 million events.
//! Run with `cargo bench --bench orderbook`. Reports events/s and level updates/s for
//! decode+apply, apply alone and decode alone, the book's level counts, and memory (VmRSS,
//! VmHWM from /proc/self/status) before and after, to show memory stays flat.

use std::hint::black_box;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use trademind::domain::market::OrderBook;
use trademind::domain::money::{Price, Qty};
use trademind::services::market_stream::wire::{DepthDiff, decode_depth_update};

const EVENTS: u64 = 10_000_000;
const POOL: usize = 100_000;
const CAP: usize = 5000;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User+system CPU seconds of this process (clock ticks of 1/100 s, Linux's USER_HZ), so the
/// figures mean "per core" even when the machine is shared and wall time includes waiting.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn report(label: &str, events: u64, levels_per_event: f64, wall: f64, cpu: f64) {
    println!(
        "{label}: {events} events, wall {wall:.2} s, cpu {cpu:.2} s; per CPU-second {:.0} events/s = {:.0} level updates/s (wall: {:.0} events/s)",
        events as f64 / cpu,
        events as f64 * levels_per_event / cpu,
        events as f64 / wall
    );
}

fn fmt_level(rng: &mut StdRng, ticks: i64) -> String {
    // Prices with two decimals (tick 0.01) and quantities with eight, as BTCUSDT sends them;
    // one in five updates deletes the level.
    let price = format!("{}.{:02}", ticks / 100, ticks % 100);
    let qty = if rng.random_range(0..5) == 0 {
        "0.00000000".to_string()
    } else {
        format!(
            "{}.{:08}",
            rng.random_range(0..3),
            rng.random_range(0..100_000_000u64)
        )
    };
    format!("[\"{price}\",\"{qty}\"]")
}

/// A pool of realistic frames around a slowly drifting mid. Update ids are rewritten when the
/// pool is replayed, so decode cost is real and the ids still chain.
fn frames(rng: &mut StdRng) -> (Vec<String>, u64) {
    let mut mid: i64 = 3_000_000; // 30000.00 in ticks
    let mut out = Vec::with_capacity(POOL);
    let mut levels = 0u64;
    for i in 0..POOL {
        mid += rng.random_range(-3..=3);
        let nb = rng.random_range(1..=4);
        let na = rng.random_range(1..=4);
        let bids: Vec<String> = (0..nb)
            .map(|_| {
                let off = rng.random_range(0..6000);
                fmt_level(rng, mid - 1 - off)
            })
            .collect();
        let asks: Vec<String> = (0..na)
            .map(|_| {
                let off = rng.random_range(0..6000);
                fmt_level(rng, mid + 1 + off)
            })
            .collect();
        levels += (nb + na) as u64;
        let id = 1_000_000 + i as u64;
        out.push(format!(
            r#"{{"e":"depthUpdate","E":1700000000000,"s":"BTCUSDT","U":{id},"u":{id},"b":[{}],"a":[{}]}}"#,
            bids.join(","),
            asks.join(",")
        ));
    }
    (out, levels)
}

fn snapshot(book: &mut OrderBook) {
    let mid = Decimal::new(3_000_000, 2);
    let tick = Decimal::new(1, 2);
    let bids = (1..=CAP as i64).map(|i| {
        (
            Price::new(mid - tick * Decimal::from(i)),
            Qty::new(Decimal::ONE),
        )
    });
    let asks = (1..=CAP as i64).map(|i| {
        (
            Price::new(mid + tick * Decimal::from(i)),
            Qty::new(Decimal::ONE),
        )
    });
    book.apply_snapshot(0, bids, asks)
        .expect("bench snapshot prices are whole ticks");
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let (pool, pool_levels) = frames(&mut rng);
    let levels_per_event = pool_levels as f64 / POOL as f64;

    let mut book = OrderBook::new(CAP);
    snapshot(&mut book);
    let mut scratch = DepthDiff::default();
    println!(
        "book before: bids {} asks {} (cap {} per side); VmRSS {} kB, VmHWM {} kB",
        book.bid_level_count(),
        book.ask_level_count(),
        book.max_levels_per_side(),
        status_kb("VmRSS:"),
        status_kb("VmHWM:")
    );

    // Decode + apply, the live path.
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let mut rss_at_1m = 0;
    for n in 1..=EVENTS {
        let frame = &pool[(n as usize - 1) % POOL];
        decode_depth_update(frame, &mut scratch).expect("bench frame decodes");
        scratch.first_update_id = n;
        scratch.final_update_id = n;
        book.apply_diff(n, n, scratch.bids.drain(..), scratch.asks.drain(..))
            .expect("ids chain");
        if n == 1_000_000 {
            rss_at_1m = status_kb("VmRSS:");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{levels_per_event:.2} price levels per event");
    report(
        "decode+apply",
        EVENTS,
        levels_per_event,
        secs,
        cpu_secs() - cpu0,
    );
    println!(
        "book after: bids {} asks {} (cap {}); VmRSS after 1M events {} kB, after 10M {} kB; peak VmHWM {} kB",
        book.bid_level_count(),
        book.ask_level_count(),
        book.max_levels_per_side(),
        rss_at_1m,
        status_kb("VmRSS:"),
        status_kb("VmHWM:")
    );

    // Apply alone: pre-decoded pool.
    let decoded: Vec<DepthDiff> = pool
        .iter()
        .map(|f| {
            let mut d = DepthDiff::default();
            decode_depth_update(f, &mut d).expect("bench frame decodes");
            d
        })
        .collect();
    let mut book2 = OrderBook::new(CAP);
    snapshot(&mut book2);
    let cpu0 = cpu_secs();
    let start = Instant::now();
    for n in 1..=EVENTS {
        let d = &decoded[(n as usize - 1) % POOL];
        book2
            .apply_diff(n, n, d.bids.iter().copied(), d.asks.iter().copied())
            .expect("ids chain");
    }
    let secs = start.elapsed().as_secs_f64();
    report(
        "apply only  ",
        EVENTS,
        levels_per_event,
        secs,
        cpu_secs() - cpu0,
    );

    // Decode alone.
    let cpu0 = cpu_secs();
    let start = Instant::now();
    for n in 0..EVENTS as usize {
        decode_depth_update(&pool[n % POOL], &mut scratch).expect("bench frame decodes");
        black_box(&scratch);
    }
    let secs = start.elapsed().as_secs_f64();
    report(
        "decode only ",
        EVENTS,
        levels_per_event,
        secs,
        cpu_secs() - cpu0,
    );
    println!("final VmHWM {} kB", status_kb("VmHWM:"));
}
