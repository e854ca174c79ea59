//! The fast path for plain rows: digits read eight at a time from one 64-bit load (SWAR), a
//! row's numbers kept as written (`30000.00` is 3000000 at scale 2: the same real number, so
//! the same correctly rounded f64 as its normalised form), and its checks done on the f64s.
//!
//! It takes a row only when every number has at most [`MAX_FAST_DIGITS`] digits: a mantissa
//! is then below 10^15 < 2^53, so `m as f64` is exact and `m as f64 / 10^s` is the correctly
//! rounded value whatever trailing zeros the row wrote; and two such numbers that differ are
//! more than two ulps apart (both lie on a grid of 10^(e-14) in the decade 10^e of the smaller),
//! so their f64s compare as the numbers do. Any other row is left to the one-pass reader
//! ([`super::quick_row_at`]), which the property tests hold this path to.

use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{EXACT_POW10, MAX_UNITS_DIGITS, POW10};
use crate::services::market_data::import::{MAX_LINE_BYTES, MICROS_THRESHOLD};

/// Digits a number read here may have (whole and fraction together).
pub(super) const MAX_FAST_DIGITS: u32 = 15;

/// Bytes from a row's start that [`row_at`] may load, its tail after the volume aside: the
/// longest row it reads whole is an 18-digit time and five 15-digit numbers with their points
/// and commas (about 110 bytes), and a load reads 8 bytes from a digit run's end.
pub(super) const ROW_WINDOW: usize = 128;

/// `'0'` in every byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The 8 bytes at `bytes[j..]` as a little-endian word (the first byte lowest).
#[inline(always)]
fn load(bytes: &[u8], j: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[j..j + 8]);
    u64::from_le_bytes(word)
}

/// How many of the bytes of `x` (a word xor [`ZEROS`], so a digit byte holds 0..=9), from the
/// lowest, are digits: 0 to 8.
#[inline(always)]
fn digit_count(x: u64) -> u32 {
    not_digits(x).trailing_zeros() / 8
}

/// The top bit of each byte of `x` (a word xor [`ZEROS`]) that is not a digit.
#[inline(always)]
fn not_digits(x: u64) -> u64 {
    // A byte's top bit set when it is 10 or more: its low 7 bits plus 118 carry into bit 7 (and
    // never out of the byte), or its own top bit was set.
    (x | ((x & 0x7f7f_7f7f_7f7f_7f7f) + 0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080
}

/// Whether the bytes flagged in `not_digit` are such that exactly the first `n` (< 8) are digits.
#[inline(always)]
fn digits_end_at(not_digit: u64, n: u32) -> bool {
    let bit = 1u64 << (8 * n + 7);
    not_digit & (bit | (bit - 1)) == bit
}

/// The first `n` (0..=8) digit bytes of `x` moved to the top of the word, the bytes after them
/// dropped: the lower bytes are then leading zeros of the same number.
#[inline(always)]
fn top_digits(x: u64, n: u32) -> u64 {
    x.checked_shl(64 - 8 * n).unwrap_or(0)
}

/// The number the 8 digit bytes of `v` write (the lowest byte the most significant digit).
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    // Pairs, then fours, then all eight, each step one multiply (Lemire, "Faster integer
    // parsing", 2018).
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let low = (v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    (low.wrapping_add(high) >> 32) & 0xffff_ffff
}

/// A run of ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub value: u64,
    pub len: u32,
    /// How many of the run's last digits are zeros (the whole run when it is all zeros).
    pub trailing_zeros: u32,
}

/// The digits from `bytes[j]` on (possibly none), when there are at most `max` (at most
/// [`MAX_UNITS_DIGITS`]). Loads 8 bytes at a time: `bytes` must hold 8 bytes past the run's end.
#[inline(always)]
pub(super) fn digit_run(bytes: &[u8], j: usize, max: u32) -> Option<Run> {
    debug_assert!(max <= MAX_UNITS_DIGITS);
    let x = load(bytes, j) ^ ZEROS;
    let n = digit_count(x);
    if n < 8 {
        let v = top_digits(x, n);
        return (n <= max).then_some(Run {
            value: eight_digits(v),
            len: n,
            trailing_zeros: (v.leading_zeros() / 8).min(n),
        });
    }
    let mut run = Run {
        value: eight_digits(x),
        len: 8,
        trailing_zeros: if x == 0 { 8 } else { x.leading_zeros() / 8 },
    };
    loop {
        let x = load(bytes, j + run.len as usize) ^ ZEROS;
        let n = digit_count(x);
        run.len += n;
        if run.len > max {
            return None;
        }
        let v = top_digits(x, n);
        run.value = run.value * POW10[n as usize] + eight_digits(v);
        run.trailing_zeros = if v == 0 {
            run.trailing_zeros + n
        } else {
            v.leading_zeros() / 8
        };
        if n < 8 {
            return Some(run);
        }
    }
}

/// [`digit_run`] when the run is `*expected` digits long, as the same field of the row before
/// was: checked by a branch the predictor learns, so that where the next field starts does not
/// wait for this one's digits to be counted (which would chain every load of a row to the one
/// before). Otherwise the run counted, and `*expected` set to its length.
#[inline(always)]
pub(super) fn digit_run_expecting(
    bytes: &[u8],
    j: usize,
    max: u32,
    expected: &mut u32,
) -> Option<Run> {
    let e = *expected;
    let x = load(bytes, j) ^ ZEROS;
    if e < 8 {
        if e <= max && digits_end_at(not_digits(x), e) {
            let v = top_digits(x, e);
            return Some(Run {
                value: eight_digits(v),
                len: e,
                trailing_zeros: (v.leading_zeros() / 8).min(e),
            });
        }
    } else if e < 16 && e <= max && not_digits(x) == 0 {
        let y = load(bytes, j + 8) ^ ZEROS;
        let e2 = e - 8;
        if digits_end_at(not_digits(y), e2) {
            let v = top_digits(y, e2);
            let trailing_zeros = if v != 0 {
                v.leading_zeros() / 8
            } else if x != 0 {
                e2 + x.leading_zeros() / 8
            } else {
                e
            };
            return Some(Run {
                value: eight_digits(x) * POW10[e2 as usize] + eight_digits(v),
                len: e,
                trailing_zeros,
            });
        }
    }
    counted_run(bytes, j, max, expected)
}

/// [`digit_run`], its length kept for the next row: off the hot path.
#[cold]
#[inline(never)]
fn counted_run(bytes: &[u8], j: usize, max: u32, expected: &mut u32) -> Option<Run> {
    let run = digit_run(bytes, j, max);
    if let Some(run) = run {
        *expected = run.len;
    }
    run
}

/// The run lengths [`row_at`] expects: the open time's, then each number's whole part and
/// fraction.
pub(super) type Expected = [u32; 11];

/// A number `123` or `123.45` as written: `value / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub value: u64,
    pub scale: u32,
    /// The scale once trailing fraction zeros are dropped (0 for a zero).
    pub normal_scale: u32,
}

/// The number at `bytes[j..]` (at least one digit before the point, one after it if there is
/// one, at most [`MAX_FAST_DIGITS`] in all) and the index after it.
#[inline(always)]
pub(super) fn number_at(
    bytes: &[u8],
    j: usize,
    expected: &mut [u32; 2],
) -> Option<(Written, usize)> {
    let [expected_whole, expected_frac] = expected;
    let whole = digit_run_expecting(bytes, j, MAX_FAST_DIGITS, expected_whole)?;
    let k = j + whole.len as usize;
    if whole.len == 0 {
        return None;
    }
    if bytes[k] != b'.' {
        return Some((
            Written {
                value: whole.value,
                scale: 0,
                normal_scale: 0,
            },
            k,
        ));
    }
    let frac = digit_run_expecting(bytes, k + 1, MAX_FAST_DIGITS - whole.len, expected_frac)?;
    if frac.len == 0 {
        return None;
    }
    let number = Written {
        value: whole.value * POW10[frac.len as usize] + frac.value,
        scale: frac.len,
        normal_scale: frac.len - frac.trailing_zeros,
    };
    Some((number, k + 1 + frac.len as usize))
}

/// A plain row read by [`row_at`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FastRow {
    pub open_time: TimestampMs,
    /// Open, high, low, close, volume as written.
    pub numbers: [Written; 5],
    /// Their f64s.
    pub values: [f64; 5],
    /// The bytes the line takes with its `\n`.
    pub used: usize,
}

/// The plain row at the start of `bytes` (which holds at least [`ROW_WINDOW`] bytes) when its
/// numbers are short enough for this path and it is a valid candle as the one-pass reader
/// checks it; `None` otherwise (that reader then decides).
/// `expected` holds the run lengths of the row before, and is kept up to date.
#[inline(always)]
pub(super) fn row_at(bytes: &[u8], expected: &mut Expected) -> Option<FastRow> {
    let [time_len, lengths @ ..] = expected;
    let time = digit_run_expecting(bytes, 0, MAX_UNITS_DIGITS, time_len)?;
    if time.len == 0 {
        return None;
    }
    let open_time = if time.value >= MICROS_THRESHOLD as u64 {
        time.value / 1000
    } else {
        time.value
    } as TimestampMs;
    let mut i = time.len as usize;
    let mut numbers = [Written {
        value: 0,
        scale: 0,
        normal_scale: 0,
    }; 5];
    for (number, expected) in numbers.iter_mut().zip(lengths.as_chunks_mut::<2>().0) {
        if bytes[i] != b',' {
            return None;
        }
        let (n, after) = number_at(bytes, i + 1, expected)?;
        *number = n;
        i = after;
    }
    let end = match bytes[i] {
        b'\n' => i,
        b'\r' if bytes[i + 1] == b'\n' => i + 1,
        // More columns (Binance's 12), not read: ASCII up to the line end.
        b',' => {
            let end = i + bytes[i..].iter().position(|&b| b == b'\n')?;
            if end > MAX_LINE_BYTES || !bytes[i..end].is_ascii() {
                return None;
            }
            end
        }
        _ => return None,
    };
    let values = numbers.map(|n| n.value as f64 / EXACT_POW10[n.scale as usize]);
    let [open, high, low, close, _volume] = values;
    let fits = (low > 0.0)
        & (high >= low)
        & (open >= low)
        & (open <= high)
        & (close >= low)
        & (close <= high);
    fits.then_some(FastRow {
        open_time,
        numbers,
        values,
        used: end + 1,
    })
}

#[cfg(test)]
mod tests;
