//! Writing candles into the integer layout: a series row per (symbol, interval) with the scales
//! of its prices and volumes, and each number stored as the INTEGER `value * 10^scale`.
//!
//! Exactness comes first. When a batch brings a number with more decimals than its series'
//! scale, the series is rescaled (every stored integer multiplied up, in the same transaction) to
//! the largest scale up to the one needed at which nothing that fitted stops fitting 64 bits.
//! A number that still does not fit (too many decimals, too large, negative beyond 64 bits) is
//! stored as its exact decimal text; readers take either, so nothing is ever rounded.

use super::super::StoreResult;
use super::super::codec::dec_to_sql;
use crate::domain::Symbol;
use crate::domain::market::{Candle, Interval, TimestampMs};
use crate::domain::money::{POW10, decimal_units};
use rusqlite::{Connection, OptionalExtension, Statement, params};
use rust_decimal::Decimal;

/// The largest scale a series takes: 10^18 still fits an i64.
pub const MAX_SCALE: u32 = 18;

/// One number of a candle before it is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CandleNumber {
    /// A non-negative fixed-point number `m / 10^s` (`s` at most 28), as a parser reads it
    /// (trailing zeros allowed: `1.50` is `(150, 2)`).
    Units(u64, u32),
    /// Any other decimal (negative, or a mantissa beyond 64 bits).
    Decimal(Decimal),
}

impl CandleNumber {
    pub fn of(d: Decimal) -> CandleNumber {
        match decimal_units(d) {
            Some((m, s)) => CandleNumber::Units(m, s),
            None => CandleNumber::Decimal(d),
        }
    }

    /// The value as an integer at `scale` (`value * 10^scale`), when that is exact and fits an
    /// i64 other than `i64::MIN` (so `abs` never overflows).
    #[inline]
    pub fn at_scale(self, scale: u32) -> Option<i64> {
        let (m, s, negative) = match self {
            CandleNumber::Units(m, s) => (u128::from(m), s, false),
            CandleNumber::Decimal(d) => (d.mantissa().unsigned_abs(), d.scale(), d.mantissa() < 0),
        };
        let magnitude = if s <= scale {
            m.checked_mul(u128::from(*POW10.get((scale - s) as usize)?))?
        } else {
            let p = u128::from(*POW10.get((s - scale) as usize).unwrap_or(&0));
            if m == 0 {
                0
            } else if p == 0 || !m.is_multiple_of(p) {
                return None;
            } else {
                m / p
            }
        };
        let v = i64::try_from(magnitude).ok()?;
        Some(if negative { -v } else { v })
    }

    /// The fewest decimals the value needs (its normalised scale).
    fn exact_scale(self) -> u32 {
        match self {
            CandleNumber::Units(0, _) => 0,
            CandleNumber::Units(mut m, mut s) => {
                while s > 0 && m.is_multiple_of(10) {
                    m /= 10;
                    s -= 1;
                }
                s
            }
            CandleNumber::Decimal(d) => d.normalize().scale(),
        }
    }

    /// The exact decimal (for the text fallback).
    fn decimal(self) -> Decimal {
        match self {
            CandleNumber::Units(m, s) => Decimal::from_i128_with_scale(i128::from(m), s),
            CandleNumber::Decimal(d) => d,
        }
    }
}

/// A candle as the store takes it: open, high, low, close, volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleRow {
    pub open_time: TimestampMs,
    pub numbers: [CandleNumber; 5],
}

impl CandleRow {
    pub fn of(c: &Candle) -> CandleRow {
        CandleRow {
            open_time: c.open_time,
            numbers: [
                CandleNumber::of(c.open.get()),
                CandleNumber::of(c.high.get()),
                CandleNumber::of(c.low.get()),
                CandleNumber::of(c.close.get()),
                CandleNumber::of(c.volume.get()),
            ],
        }
    }
}

/// A series' row: its id and the scales its integers are at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Series {
    pub id: i64,
    pub price_scale: u32,
    pub volume_scale: u32,
}

/// The series of `symbol`/`interval`, when it has been written to.
pub(super) fn find_series(
    conn: &Connection,
    symbol: &str,
    interval: &str,
) -> StoreResult<Option<Series>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, price_scale, volume_scale FROM candle_series WHERE symbol = ?1 AND interval = ?2",
    )?;
    let row = stmt
        .query_row(params![symbol, interval], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    row.map(|(id, p, v)| {
        let scale = |column, s: i64| {
            u32::try_from(s)
                .ok()
                .filter(|&s| s <= MAX_SCALE)
                .ok_or_else(|| super::super::StoreError::Corrupt {
                    column,
                    value: s.to_string(),
                    reason: format!("a scale is 0 to {MAX_SCALE}"),
                })
        };
        Ok(Series {
            id,
            price_scale: scale("candle_series.price_scale", p)?,
            volume_scale: scale("candle_series.volume_scale", v)?,
        })
    })
    .transpose()
}

fn series_or_new(conn: &Connection, symbol: &str, interval: &str) -> StoreResult<Series> {
    if let Some(s) = find_series(conn, symbol, interval)? {
        return Ok(s);
    }
    conn.execute(
        "INSERT INTO candle_series (symbol, interval, price_scale, volume_scale) VALUES (?1, ?2, 0, 0)",
        params![symbol, interval],
    )?;
    Ok(Series {
        id: conn.last_insert_rowid(),
        price_scale: 0,
        volume_scale: 0,
    })
}

/// Which of a row's numbers a scale applies to.
#[derive(Debug, Clone, Copy)]
enum Group {
    Prices,
    Volume,
}

impl Group {
    fn columns(self) -> &'static [&'static str] {
        match self {
            Group::Prices => &["open", "high", "low", "close"],
            Group::Volume => &["volume"],
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        match self {
            Group::Prices => 0..4,
            Group::Volume => 4..5,
        }
    }

    fn scale_column(self) -> &'static str {
        match self {
            Group::Prices => "price_scale",
            Group::Volume => "volume_scale",
        }
    }
}

/// A rescale keeps every integer of the series at or below this: numbers can grow about 9,000
/// times before one no longer fits 64 bits and is stored as text. (Without it one tiny volume,
/// 10^-18, would take the series to scale 18, and every later volume above 9.2 would be text.)
const RESCALE_LIMIT: u64 = 1_000_000_000_000_000;

/// The scale `group` should have to store `rows` (at least `current`): the largest up to the
/// scale its numbers need at which every stored integer and every number of `rows` that fits
/// `current` stays at or below [`RESCALE_LIMIT`]. Numbers that cannot be integers at any
/// scale within that are not counted (they are stored as text).
fn wanted_scale(
    conn: &Connection,
    series: i64,
    group: Group,
    current: u32,
    rows: &[CandleRow],
) -> StoreResult<u32> {
    let range = group.range();
    let mut need = current;
    for r in rows {
        for &n in &r.numbers[range.clone()] {
            if let CandleNumber::Units(_, s) = n
                && s <= need
            {
                continue;
            }
            let s = n.exact_scale();
            if s <= MAX_SCALE
                && n.at_scale(s)
                    .is_some_and(|v| v.unsigned_abs() <= RESCALE_LIMIT)
            {
                need = need.max(s);
            }
        }
    }
    if need == current {
        return Ok(current);
    }
    let select = group
        .columns()
        .iter()
        .map(|c| format!("max(CASE WHEN typeof({c}) = 'integer' THEN abs({c}) END)"))
        .collect::<Vec<_>>()
        .join(", ");
    let stored: Vec<Option<i64>> = conn.query_row(
        &format!("SELECT {select} FROM candle_bars WHERE series_id = ?1"),
        [series],
        |r| (0..group.columns().len()).map(|i| r.get(i)).collect(),
    )?;
    let stored_max = stored
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
        .unsigned_abs();
    let fits_up = |t: u32| {
        let factor = POW10[(t - current) as usize];
        let within = |v: u64| v <= RESCALE_LIMIT;
        stored_max.checked_mul(factor).is_some_and(within)
            && rows.iter().all(|r| {
                r.numbers[range.clone()].iter().all(|n| {
                    n.at_scale(current).is_none()
                        || n.at_scale(t).is_some_and(|v| within(v.unsigned_abs()))
                })
            })
    };
    Ok((current + 1..=need)
        .rev()
        .find(|&t| fits_up(t))
        .unwrap_or(current))
}

/// Multiply every stored integer of `group` up from `from` to `to`.
fn rescale(conn: &Connection, series: i64, group: Group, from: u32, to: u32) -> StoreResult<()> {
    let set = group
        .columns()
        .iter()
        .map(|c| format!("{c} = CASE WHEN typeof({c}) = 'integer' THEN {c} * ?2 ELSE {c} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let factor = i64::try_from(POW10[(to - from) as usize]).unwrap_or(i64::MAX);
    conn.execute(
        &format!("UPDATE candle_bars SET {set} WHERE series_id = ?1"),
        params![series, factor],
    )?;
    conn.execute(
        &format!(
            "UPDATE candle_series SET {} = ?2 WHERE id = ?1",
            group.scale_column()
        ),
        params![series, to],
    )?;
    Ok(())
}

/// Rows bound per multi-row INSERT (7 parameters each, far under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 64;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO candle_bars (series_id, open_time, open, high, low, close, volume) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?)");
    }
    sql
}

/// Bind `row` as the parameters from `first` (1-based) on.
#[inline]
fn bind_row(
    stmt: &mut Statement<'_>,
    first: usize,
    series: &Series,
    row: &CandleRow,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(first, series.id)?;
    stmt.raw_bind_parameter(first + 1, row.open_time)?;
    for (k, n) in row.numbers.iter().enumerate() {
        let scale = if k < 4 {
            series.price_scale
        } else {
            series.volume_scale
        };
        match n.at_scale(scale) {
            Some(v) => stmt.raw_bind_parameter(first + 2 + k, v)?,
            None => stmt.raw_bind_parameter(first + 2 + k, dec_to_sql(n.decimal()))?,
        }
    }
    Ok(())
}

/// Store `rows` of `symbol`/`interval` within the caller's transaction; those whose open time is
/// already stored are left as they are. Returns how many were new.
pub(super) fn write_rows(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    rows: &[CandleRow],
) -> StoreResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut series = series_or_new(conn, symbol.as_str(), interval.as_str())?;
    for group in [Group::Prices, Group::Volume] {
        let current = match group {
            Group::Prices => series.price_scale,
            Group::Volume => series.volume_scale,
        };
        let wanted = wanted_scale(conn, series.id, group, current, rows)?;
        if wanted > current {
            rescale(conn, series.id, group, current, wanted)?;
            match group {
                Group::Prices => series.price_scale = wanted,
                Group::Volume => series.volume_scale = wanted,
            }
        }
    }
    let mut inserted = 0;
    let mut blocks = rows.chunks_exact(ROWS_PER_STATEMENT);
    {
        let mut stmt = conn.prepare_cached(&insert_sql(ROWS_PER_STATEMENT))?;
        for block in blocks.by_ref() {
            for (i, row) in block.iter().enumerate() {
                bind_row(&mut stmt, 1 + 7 * i, &series, row)?;
            }
            inserted += stmt.raw_execute()?;
        }
    }
    let mut stmt = conn.prepare_cached(&insert_sql(1))?;
    for row in blocks.remainder() {
        bind_row(&mut stmt, 1, &series, row)?;
        inserted += stmt.raw_execute()?;
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_number_is_an_integer_at_a_scale_only_when_exact_and_within_64_bits() {
        assert_eq!(CandleNumber::Units(150, 2).at_scale(2), Some(150));
        assert_eq!(CandleNumber::Units(150, 2).at_scale(1), Some(15));
        assert_eq!(CandleNumber::Units(151, 2).at_scale(1), None);
        assert_eq!(CandleNumber::Units(15, 1).at_scale(8), Some(150_000_000));
        assert_eq!(CandleNumber::Units(0, 25).at_scale(0), Some(0));
        assert_eq!(CandleNumber::Units(u64::MAX, 0).at_scale(0), None);
        assert_eq!(
            CandleNumber::Units(i64::MAX as u64, 0).at_scale(0),
            Some(i64::MAX)
        );
        assert_eq!(CandleNumber::Units(1, 0).at_scale(19), None);
        assert_eq!(CandleNumber::of(dec!(-2.5)).at_scale(2), Some(-250));
        assert_eq!(
            CandleNumber::of(dec!(79228162514264337593543950335)).at_scale(0),
            None
        );
        assert_eq!(CandleNumber::of(dec!(1.0000)).exact_scale(), 0);
        assert_eq!(CandleNumber::Units(12_300, 4).exact_scale(), 2);
    }
}
