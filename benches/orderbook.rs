//! Local order book throughput: decode Binance `depthUpdate` frames (single-pass scanner, exact
//! decimal levels) and apply them to a 5000-level-per-side book keyed by integer price ticks,
//! for 10 million events.
//! Run with `cargo bench --bench orderbook`. Reports events/s and level updates/s for
//! decode+apply, apply alone and decode alone, the book's level counts, and memory before and
//! after, to show it stays flat: VmRSS/VmHWM from /proc/self/status, and from a counting
//! allocator the bytes live on the heap and the number of allocations made per event.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use trademind::domain::market::OrderBook;
use trademind::domain::money::{Price, Qty};
use trademind::services::market_stream::wire::{DepthDiff, decode_depth_update};

/// The system allocator, counting calls and live bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> (u64, u64) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        ALLOCATIONS.load(Ordering::Relaxed),
    )
}

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
    let (live_before, allocations_before) = heap();
    let mut live_at_1m = 0;
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
            live_at_1m = heap().0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (live_after, allocations_after) = heap();
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
    let allocations = allocations_after - allocations_before;
    println!(
        "heap live: before {live_before} B, after 1M events {live_at_1m} B, after 10M {live_after} B; {allocations} allocations in {EVENTS} events ({:.3} per event)",
        allocations as f64 / EVENTS as f64
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
