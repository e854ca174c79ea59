//! Bollinger Bands (TA-Lib `BBANDS` over an SMA): the streaming state machine and the batch
//! kernel, which share their arithmetic and agree bit for bit.
//!
//! The window's sum and sum of squares are not running sums (`sum += x; sum -= leaving`, as
//! TA-Lib writes them): that is two additions per row on one dependency chain, which bounded
//! the loop, and reordering that chain would let its rounding errors accumulate over the whole
//! series. Instead the series is cut into blocks of `period` rows, counted from its first row,
//! and each block keeps its prefix sums (`prefix[r]` = rows `0..=r` of the block, a chain that
//! restarts every block). A window ending at row `r` of a block is the previous block's rows
//! after `r` plus this block's rows up to `r`:
//! `(previous_total - previous_prefix[r]) + prefix[r]` (at the last row of a block the first
//! part is exactly zero and the window is the block). Every window sum is thus a fixed
//! expression of at most `2 * period` roundings of its own values, whatever came before: no
//! error is carried from one window to the next. The kernel computes the prefixes a block at a
//! time (the chains of neighbouring blocks overlap) and then the bands in a loop without any
//! chain, which vectorises (square roots included).

use super::prefetch;
use serde::Serialize;

/// One Bollinger Bands reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandsValue {
    pub upper: f64,
    pub middle: f64,
    pub lower: f64,
}

/// Bollinger Bands over an SMA with the population standard deviation (TA-Lib `BBANDS` with
/// `MA_Type.SMA`): first value at index `period - 1`.
#[derive(Debug, Clone)]
pub struct Bollinger {
    pub(super) period: usize,
    inv_period: f64,
    dev_up: f64,
    dev_down: f64,
    /// The row of the current block the next value takes (`0..period`).
    row: usize,
    /// A whole block (the first window) has been seen.
    full: bool,
    /// The current block's prefix sums of values and of squares, `[..row]` filled.
    prefix: Vec<f64>,
    prefix_squares: Vec<f64>,
    /// The previous block's (all zeros before the first block ends).
    previous: Vec<f64>,
    previous_squares: Vec<f64>,
}

impl Bollinger {
    pub fn new(period: usize, dev_up: f64, dev_down: f64) -> Bollinger {
        let period = period.max(1);
        Bollinger {
            period,
            inv_period: 1.0 / period as f64,
            dev_up,
            dev_down,
            row: 0,
            full: false,
            prefix: vec![0.0; period],
            prefix_squares: vec![0.0; period],
            previous: vec![0.0; period],
            previous_squares: vec![0.0; period],
        }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<BandsValue> {
        let v = self.step(x);
        self.full.then_some(v)
    }

    /// One row: its reading (meaningless until the first block is whole).
    #[inline(always)]
    pub(super) fn step(&mut self, x: f64) -> BandsValue {
        let r = self.row;
        let last = self.period - 1;
        let (sum, squares) = if r == 0 {
            (x, x * x)
        } else {
            prefix_step(self.prefix[r - 1], self.prefix_squares[r - 1], x)
        };
        self.prefix[r] = sum;
        self.prefix_squares[r] = squares;
        let v = self.bands(
            window(self.previous[last], self.previous[r], sum),
            window(
                self.previous_squares[last],
                self.previous_squares[r],
                squares,
            ),
        );
        if r == last {
            std::mem::swap(&mut self.prefix, &mut self.previous);
            std::mem::swap(&mut self.prefix_squares, &mut self.previous_squares);
            self.row = 0;
            self.full = true;
        } else {
            self.row = r + 1;
        }
        v
    }

    /// The bands of a window from its sum and its sum of squares (TA-Lib's operation order,
    /// division by the period as multiplication by its reciprocal).
    #[inline(always)]
    fn bands(&self, sum: f64, sum_squares: f64) -> BandsValue {
        let inv_n = self.inv_period;
        let middle = sum * inv_n;
        let variance = sum_squares * inv_n - middle * middle;
        // TA-Lib's TA_IS_ZERO_OR_NEG: rounding can push a flat window's variance below zero.
        let root = variance.sqrt();
        let deviation = if variance < 1e-8 { 0.0 } else { root };
        let (upper, lower) = if self.dev_up == self.dev_down {
            let width = deviation * self.dev_up;
            (middle + width, middle - width)
        } else {
            (
                middle + deviation * self.dev_up,
                middle - deviation * self.dev_down,
            )
        };
        BandsValue {
            upper,
            middle,
            lower,
        }
    }

    pub fn reset(&mut self) {
        *self = Bollinger::new(self.period, self.dev_up, self.dev_down);
    }
}

/// A block's prefix sums one row on.
#[inline(always)]
fn prefix_step(sum: f64, squares: f64, x: f64) -> (f64, f64) {
    (sum + x, squares + x * x)
}

/// A window's sum: the previous block's rows after `r` (its total less its prefix at `r`) plus
/// the current block's up to `r`.
#[inline(always)]
fn window(previous_total: f64, previous_prefix: f64, prefix: f64) -> f64 {
    (previous_total - previous_prefix) + prefix
}

/// Rows per pass of the kernel, rounded up to a whole number of blocks: the chunk's prefix
/// sums stay in L1.
const CHUNK_ROWS: usize = 1024;

/// How far ahead of the rows being computed the kernel asks for the input and the output
/// columns' cache lines (64 rows: 512 bytes, eight lines of each column).
const PREFETCH_ROWS: usize = 64;

const NAN: f64 = f64::NAN;

/// Bollinger upper, middle and lower bands over a slice (NaN during warm-up).
///
/// A chunk at a time: the blocks' prefix sums (the chains), then the bands block by block, in
/// a loop without a chain that vectorises (square roots included) and writes each row of the
/// three columns once, into their spare capacity.
#[inline(never)]
pub fn bollinger(values: &[f64], period: usize, dev_up: f64, dev_down: f64) -> [Vec<f64>; 3] {
    let s = Bollinger::new(period, dev_up, dev_down);
    let (n, p) = (values.len(), s.period);
    let mut columns: [Vec<f64>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
    if n < p {
        for column in &mut columns {
            column.resize(n, NAN);
        }
        return columns;
    }
    for column in &mut columns {
        column.resize(p - 1, NAN);
    }
    // Prefix sums of a chunk's blocks, after the `p` of the block before the chunk (zeros
    // before the first block): row `i` of the chunk is `sums[p + i]`, the same row of the
    // previous block `sums[i]`.
    let chunk = CHUNK_ROWS.next_multiple_of(p);
    let mut sums = vec![0.0; p + chunk];
    let mut squares = vec![0.0; p + chunk];
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let len = end - start;
        // The chains: one per block, restarting at its first row (`Bollinger::step`).
        let (sums_now, squares_now) = (&mut sums[p..p + len], &mut squares[p..p + len]);
        for ((block, sum_out), square_out) in values[start..end]
            .chunks(p)
            .zip(sums_now.chunks_mut(p))
            .zip(squares_now.chunks_mut(p))
        {
            prefetch::<false>(block.as_ptr().wrapping_add(PREFETCH_ROWS));
            let (mut sum, mut sq) = (block[0], block[0] * block[0]);
            sum_out[0] = sum;
            square_out[0] = sq;
            for ((&x, s), q) in block[1..]
                .iter()
                .zip(&mut sum_out[1..])
                .zip(&mut square_out[1..])
            {
                (sum, sq) = prefix_step(sum, sq, x);
                *s = sum;
                *q = sq;
            }
        }
        // The bands, block by block; the first block's rows before its last have no window.
        let skip = if start == 0 { p - 1 } else { 0 };
        let count = len - skip;
        let [upper, middle, lower] = columns
            .each_mut()
            .map(|c| &mut c.spare_capacity_mut()[..count]);
        let mut written = 0;
        for b in 0..len.div_ceil(p) {
            let (at, rows) = (b * p, p.min(len - b * p));
            let (previous, previous_squares) = (&sums[at..at + p], &squares[at..at + p]);
            let (total, total_squares) = (previous[p - 1], previous_squares[p - 1]);
            let (current, current_squares) = (
                &sums[at + p..at + p + rows],
                &squares[at + p..at + p + rows],
            );
            let from = if b == 0 { skip } else { 0 };
            let out = written..written + rows - from;
            for column in [&*upper, &*middle, &*lower] {
                prefetch::<true>(
                    column
                        .as_ptr()
                        .wrapping_add(out.start + PREFETCH_ROWS)
                        .cast(),
                );
            }
            let sums = previous[from..rows].iter().zip(&current[from..]);
            let squares = previous_squares[from..rows]
                .iter()
                .zip(&current_squares[from..]);
            for (((u, m), l), ((&before, &sum), (&before_sq, &sq))) in upper[out.clone()]
                .iter_mut()
                .zip(&mut middle[out.clone()])
                .zip(&mut lower[out.clone()])
                .zip(sums.zip(squares))
            {
                let v = s.bands(
                    window(total, before, sum),
                    window(total_squares, before_sq, sq),
                );
                u.write(v.upper);
                m.write(v.middle);
                l.write(v.lower);
            }
            written = out.end;
        }
        assert_eq!(written, count, "every row of the chunk written once");
        for column in &mut columns {
            // SAFETY: the loop above wrote rows `0..count` of each column's spare capacity
            // (consecutive ranges `out`, which tile it, as the assertion checks), so those
            // rows are initialised, and `count` is within the spare capacity (`len <= n`).
            unsafe { column.set_len(column.len() + count) };
        }
        // The chunk's last block becomes the previous one (a partial last block is the end).
        if end < n {
            sums.copy_within(chunk..chunk + p, 0);
            squares.copy_within(chunk..chunk + p, 0);
        }
        start = end;
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bands of `window` computed afresh: its mean and population deviation.
    fn direct(window: &[f64]) -> (f64, f64) {
        let n = window.len() as f64;
        let mean = window.iter().sum::<f64>() / n;
        let variance = window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, variance.sqrt())
    }

    #[test]
    fn a_window_carries_no_rounding_from_values_that_left_it_blocks_ago() {
        // A spike far above the rest: a running sum (`sum += x; sum -= leaving`) rounds every
        // later value to the spike's ulp (0.125 at 1e15) and keeps that error after the spike
        // has left, for the rest of the series. Block sums forget it a block later.
        let period = 5;
        let mut values = vec![1e15];
        values.extend((1..200).map(|i| 100.0 + ((i * 37) % 11) as f64 * 0.1));
        let [upper, middle, _] = bollinger(&values, period, 2.0, 2.0);
        let mut streamed = Bollinger::new(period, 2.0, 2.0);
        let streamed: Vec<_> = values.iter().map(|&x| streamed.update(x)).collect();
        for i in 2 * period..values.len() {
            let (mean, deviation) = direct(&values[i + 1 - period..=i]);
            let tolerance = 1e-12 * mean;
            assert!(
                (middle[i] - mean).abs() < tolerance,
                "row {i}: {} vs {mean}",
                middle[i]
            );
            let want_upper = mean + 2.0 * deviation;
            assert!(
                (upper[i] - want_upper).abs() < 1e-9,
                "row {i}: {} vs {want_upper}",
                upper[i]
            );
            let s = streamed[i].expect("a full window");
            assert_eq!(
                (s.upper.to_bits(), s.middle.to_bits()),
                (upper[i].to_bits(), middle[i].to_bits())
            );
        }
    }

    #[test]
    fn the_first_reading_is_at_the_end_of_the_first_window() {
        let values: Vec<f64> = (0..12).map(|i| i as f64).collect();
        let [_, middle, _] = bollinger(&values, 4, 2.0, 2.0);
        assert!(middle[..3].iter().all(|m| m.is_nan()));
        assert_eq!(
            middle[3..].to_vec(),
            (3..12).map(|i| i as f64 - 1.5).collect::<Vec<_>>()
        );
        let mut s = Bollinger::new(4, 2.0, 2.0);
        let first: Vec<_> = values.iter().map(|&x| s.update(x).is_some()).collect();
        assert_eq!(first.iter().position(|&some| some), Some(3));
        assert!(
            bollinger(&values[..3], 4, 2.0, 2.0)
                .iter()
                .all(|c| c.len() == 3 && c.iter().all(|v| v.is_nan()))
        );
    }
}
