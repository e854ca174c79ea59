//! The side file's format (version 2), all numbers little-endian:
//!
//! | bytes    | field |
//! |----------|-------|
//! | 0..8     | magic `TMSIDE\x1a\n` |
//! | 8..12    | format version (u32, 2) |
//! | 12..16   | header length (u32, 128) |
//! | 16..24   | series id (i64) |
//! | 24..32   | the series' revision the rows are of (i64) |
//! | 32..40   | rows `n` (u64) |
//! | 40..56   | first and last open time (i64 each; 0 when `n` is 0) |
//! | 56..64   | price and volume scales of the integers below (u32 each) |
//! | 64..88   | symbol, zero-padded ASCII |
//! | 88..92   | interval, zero-padded ASCII |
//! | 92..100  | the series' prefix revision the rows are a prefix of (i64; version 2, zero in 1) |
//! | 100..112 | zero |
//! | 112..116 | CRC-32 of the payload |
//! | 116..124 | zero |
//! | 124..128 | CRC-32 of bytes 0..124 |
//!
//! The payload, column after column, `n` values each: open time (i64); open, high, low, close
//! and volume (f64, the bits `columns_in_range` gives); the largest of the row's four stored
//! price integers and its stored volume integer (i64); the fewest decimals the row's prices and
//! its volume need (u8, [`TEXT_ROW`] for a row holding a number kept as text). The last four
//! columns give a range's exact view without touching a decimal.
//!
//! A version 1 file (no prefix revision) is stale, never an error: it is rebuilt.

use crate::domain::market::CandleColumns;
use crate::domain::market::TimestampMs;
use crate::domain::market::candle::{ColumnsBuilder, UnitsSummary};
use std::io::{Read, Write};
use zerocopy::IntoBytes;

const MAGIC: [u8; 8] = *b"TMSIDE\x1a\n";
const VERSION: u32 = 2;
pub(super) const HEADER_LEN: usize = 128;
/// Bytes a row takes in the payload.
pub(super) const ROW_BYTES: u64 = 8 * 8 + 2;
/// The "decimals needed" of a row holding a number stored as text (read through decimals).
pub(super) const TEXT_ROW: u8 = u8::MAX;

/// A series' rows as the side file holds them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SideFile {
    pub series_id: i64,
    pub revision: i64,
    /// The series' prefix revision (migration 0030) when the rows were read: while it is still
    /// the series' one, the rows are a prefix of the stored ones and the file can be extended.
    pub prefix_revision: i64,
    pub symbol: String,
    pub interval: String,
    pub price_scale: u32,
    pub volume_scale: u32,
    pub open_time: Vec<TimestampMs>,
    /// Open, high, low, close, volume.
    pub values: [Vec<f64>; 5],
    /// The largest of each row's four stored price integers (0 for a text row).
    pub price_units: Vec<i64>,
    /// Each row's stored volume integer (0 for a text row).
    pub volume_units: Vec<i64>,
    /// The fewest decimals each row's non-zero prices need, or [`TEXT_ROW`].
    pub price_need: Vec<u8>,
    /// The fewest decimals each row's volume needs, or [`TEXT_ROW`].
    pub volume_need: Vec<u8>,
}

/// Why a side file was not used.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unusable {
    #[error("no side file yet")]
    Missing,
    #[error("cannot read the side file: {0}")]
    Unreadable(std::io::Error),
    #[error(
        "the side file is truncated or has trailing bytes ({found} bytes, {expected} expected)"
    )]
    WrongLength { found: u64, expected: u64 },
    #[error("the side file is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("the side file is stale: {0}")]
    Stale(String),
}

impl From<std::io::Error> for Unusable {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Unusable::Missing
        } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Unusable::Corrupt("it ends inside its payload")
        } else {
            Unusable::Unreadable(e)
        }
    }
}

fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    out[..b.len().min(N)].copy_from_slice(&b[..b.len().min(N)]);
    out
}

fn unpadded(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[end..].iter().all(|&c| c == 0).then_some(())?;
    std::str::from_utf8(&b[..end]).ok().map(str::to_string)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// The payload's columns as bytes, in file order (little-endian on a little-endian machine;
/// [`SideFile::write`] swaps on others).
macro_rules! sections {
    ($f:expr, $as:ident $(, $m:tt)?) => {{
        let [o, h, l, c, v] = &$($m)? $f.values;
        [
            $f.open_time.$as(),
            o.$as(),
            h.$as(),
            l.$as(),
            c.$as(),
            v.$as(),
            $f.price_units.$as(),
            $f.volume_units.$as(),
            $f.price_need.$as(),
            $f.volume_need.$as(),
        ]
    }};
}

impl SideFile {
    pub fn rows(&self) -> usize {
        self.open_time.len()
    }

    fn header(&self, payload_crc: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.series_id.to_le_bytes());
        h[24..32].copy_from_slice(&self.revision.to_le_bytes());
        h[32..40].copy_from_slice(&(self.rows() as u64).to_le_bytes());
        let first = self.open_time.first().copied().unwrap_or(0);
        let last = self.open_time.last().copied().unwrap_or(0);
        h[40..48].copy_from_slice(&first.to_le_bytes());
        h[48..56].copy_from_slice(&last.to_le_bytes());
        h[56..60].copy_from_slice(&self.price_scale.to_le_bytes());
        h[60..64].copy_from_slice(&self.volume_scale.to_le_bytes());
        h[64..88].copy_from_slice(&padded::<24>(&self.symbol));
        h[88..92].copy_from_slice(&padded::<4>(&self.interval));
        h[92..100].copy_from_slice(&self.prefix_revision.to_le_bytes());
        h[112..116].copy_from_slice(&payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..124]);
        h[124..128].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Write the whole file to `out`.
    pub fn write(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.swap_on_big_endian();
        let mut crc = crc32fast::Hasher::new();
        for s in sections!(self, as_bytes) {
            crc.update(s);
        }
        let written = out.write_all(&self.header(crc.finalize())).and_then(|()| {
            sections!(self, as_bytes)
                .into_iter()
                .try_for_each(|s| out.write_all(s))
        });
        self.swap_on_big_endian(); // back to native
        written
    }

    /// Swap every number between native and little-endian order (nothing on little-endian
    /// machines, where the compiler drops the loops).
    fn swap_on_big_endian(&mut self) {
        if cfg!(target_endian = "little") {
            return;
        }
        for t in self
            .open_time
            .iter_mut()
            .chain(&mut self.price_units)
            .chain(&mut self.volume_units)
        {
            *t = t.swap_bytes();
        }
        for v in self.values.iter_mut().flatten() {
            *v = f64::from_bits(v.to_bits().swap_bytes());
        }
    }

    /// Read a whole file of `len` bytes: header, then the payload straight into the columns.
    /// The checksums, the length and the header's facts are checked; the caller checks that the
    /// file is the series' current one.
    pub fn read(input: &mut impl Read, len: u64) -> Result<SideFile, Unusable> {
        if len < HEADER_LEN as u64 {
            return Err(Unusable::WrongLength {
                found: len,
                expected: HEADER_LEN as u64,
            });
        }
        let mut h = [0u8; HEADER_LEN];
        input.read_exact(&mut h)?;
        if h[0..8] != MAGIC {
            return Err(Unusable::Corrupt("not a side file (magic)"));
        }
        if le_u32(&h, 124) != crc32fast::hash(&h[..124]) {
            return Err(Unusable::Corrupt("header checksum"));
        }
        if le_u32(&h, 8) != VERSION || le_u32(&h, 12) as usize != HEADER_LEN {
            return Err(Unusable::Stale(format!(
                "format version {} (this build writes {VERSION})",
                le_u32(&h, 8)
            )));
        }
        let rows = le_i64(&h, 32) as u64;
        let expected = rows
            .checked_mul(ROW_BYTES)
            .and_then(|p| p.checked_add(HEADER_LEN as u64))
            .ok_or(Unusable::Corrupt("row count"))?;
        if len != expected {
            return Err(Unusable::WrongLength {
                found: len,
                expected,
            });
        }
        let n = usize::try_from(rows).map_err(|_| Unusable::Corrupt("row count"))?;
        let (price_scale, volume_scale) = (le_u32(&h, 56), le_u32(&h, 60));
        if price_scale > super::super::MAX_SCALE || volume_scale > super::super::MAX_SCALE {
            return Err(Unusable::Corrupt("scale"));
        }
        let (symbol, interval) = unpadded(&h[64..88])
            .zip(unpadded(&h[88..92]))
            .ok_or(Unusable::Corrupt("symbol or interval"))?;
        let mut f = SideFile {
            series_id: le_i64(&h, 16),
            revision: le_i64(&h, 24),
            prefix_revision: le_i64(&h, 92),
            symbol,
            interval,
            price_scale,
            volume_scale,
            open_time: vec![0; n],
            values: std::array::from_fn(|_| vec![0.0; n]),
            price_units: vec![0; n],
            volume_units: vec![0; n],
            price_need: vec![0; n],
            volume_need: vec![0; n],
        };
        let mut crc = crc32fast::Hasher::new();
        for s in sections!(f, as_mut_bytes, mut) {
            input.read_exact(s)?;
            crc.update(s);
        }
        if crc.finalize() != le_u32(&h, 112) {
            return Err(Unusable::Corrupt("payload checksum"));
        }
        f.swap_on_big_endian();
        let ends = (f.open_time.first(), f.open_time.last());
        if n > 0 && ends != (Some(&le_i64(&h, 40)), Some(&le_i64(&h, 48))) {
            return Err(Unusable::Corrupt("first or last open time"));
        }
        Ok(f)
    }

    /// Put `tail`'s rows after this file's rows (the caller checks they are later).
    pub fn append(&mut self, tail: SideFile) {
        // Exactly the room the tail needs: a doubling column (a million rows growing to two
        // million of capacity) would add a quarter to the memory a backtest peaks at.
        fn grow<T>(column: &mut Vec<T>, tail: Vec<T>) {
            column.reserve_exact(tail.len());
            column.extend(tail);
        }
        grow(&mut self.open_time, tail.open_time);
        for (mine, theirs) in self.values.iter_mut().zip(tail.values) {
            grow(mine, theirs);
        }
        grow(&mut self.price_units, tail.price_units);
        grow(&mut self.volume_units, tail.volume_units);
        grow(&mut self.price_need, tail.price_need);
        grow(&mut self.volume_need, tail.volume_need);
    }

    /// The rows with `from <= open_time < to` as the columns `columns_in_range` gives for them
    /// (the same bits, the same exact view), or `None` when one of them holds a number kept as
    /// text (its exact view needs the decimals: read those rows from SQLite).
    pub fn into_range(
        self,
        from: Option<TimestampMs>,
        to: Option<TimestampMs>,
    ) -> Option<CandleColumns> {
        let n = self.rows();
        let lo = from.map_or(0, |f| self.open_time.partition_point(|&t| t < f));
        let hi = to
            .map_or(n, |t| self.open_time.partition_point(|&x| x < t))
            .max(lo);
        let need = |v: &[u8]| v[lo..hi].iter().copied().fold(0u8, u8::max);
        let (price_need, volume_need) = (need(&self.price_need), need(&self.volume_need));
        if price_need == TEXT_ROW || volume_need == TEXT_ROW {
            return None;
        }
        let largest = |v: &[i64]| v[lo..hi].iter().copied().fold(0i64, i64::max);
        let prices = UnitsSummary {
            largest: super::super::normalised(largest(&self.price_units) as u64, self.price_scale),
            scale: u32::from(price_need),
        };
        let volumes = UnitsSummary {
            largest: super::super::normalised(
                largest(&self.volume_units) as u64,
                self.volume_scale,
            ),
            scale: u32::from(volume_need),
        };
        let cut = |mut v: Vec<f64>| {
            v.truncate(hi);
            v.drain(..lo);
            v
        };
        let mut open_time = self.open_time;
        open_time.truncate(hi);
        open_time.drain(..lo);
        Some(ColumnsBuilder::from_columns(
            open_time,
            self.values.map(cut),
            prices,
            volumes,
        ))
    }
}

/// The fewest decimals an integer stored at `scale` needs (0 for 0).
#[inline]
pub(super) fn decimals_needed(units: i64, scale: u32) -> u8 {
    if units == 0 {
        return 0;
    }
    super::super::normalised(units as u64, scale).1 as u8
}
