use super::*;
use crate::services::market_data::import::read_candles_file;
use proptest::prelude::*;
use std::io::Write;

/// 2026-12-05: the files' open times are checked against a clock, here a fixed one.
const NOW: TimestampMs = 1_796_428_800_000;
const T0: TimestampMs = 1_735_689_600_000;
const H: TimestampMs = 3_600_000;

fn file_with(text: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text).unwrap();
    f.flush().unwrap();
    f
}

/// The columns the candles of the importer's reader give, or its error as text.
fn by_candles(path: &Path) -> Result<CandleColumns, String> {
    read_candles_file(path, Interval::H1, NOW)
        .map(|c| CandleColumns::from_candles(&c))
        .map_err(|e| e.to_string())
}

fn by_columns(path: &Path) -> Result<CandleColumns, String> {
    read_columns_file(path, Interval::H1, NOW).map_err(|e| e.to_string())
}

/// Both readers agree on `text`: the same columns (values and exact view) or the same error.
fn assert_same(text: &[u8]) -> Result<CandleColumns, String> {
    let f = file_with(text);
    let want = by_candles(f.path());
    let got = by_columns(f.path());
    assert_eq!(got, want, "on {:?}", String::from_utf8_lossy(text));
    got
}

#[test]
fn plain_binance_layouts_give_the_columns_of_their_candles() {
    let twelve = format!(
        "{T0},93576.00,94509.42,93489.03,94401.14,755.99010,1735693199999,71100000.1,100,300.1,28000000.2,0\n\
         {},94401.13,94408.72,93578.77,93607.74,586.53456,1735696799999,55000000.3,90,200.2,19000000.4,0\n",
        T0 + H
    );
    let cols = assert_same(twelve.as_bytes()).unwrap();
    assert_eq!(cols.len(), 2);
    assert_eq!(cols.exact_open(0).unwrap().get().to_string(), "93576");
    assert_eq!(
        cols.exact_candle(1).unwrap().volume.get().to_string(),
        "586.53456"
    );
    let micros = format!(
        "\u{feff}open_time,open,high,low,close,volume\r\n{}000,1,2,0.5,1.5,3\r\n\r\n{}000,1.5,2,1,1,0\r\n",
        T0,
        T0 + H
    );
    let cols = assert_same(micros.as_bytes()).unwrap();
    assert_eq!(cols.open_time, [T0, T0 + H]);
    // No line end after the last row.
    assert_same(format!("{T0},1,2,0.5,1,1").as_bytes()).unwrap();
}

#[test]
fn rows_written_other_ways_are_read_as_the_importer_reads_them() {
    for row in [
        " 1 , 2 ,0.5, 1.5 , 3 ",
        "1e0,2,0.5,1.5,3",
        "1,2,0.5,1.5,3.",
        "1,2,0.5,1.5,12345678901234567890.123",
        "0.0000000000000000000001,1,0.0000000000000000000001,1,1",
        "1,2,0.5,1.5,-0",
    ] {
        assert_same(format!("{T0},{row}\n{},1,1,1,1,1\n", T0 + H).as_bytes()).unwrap();
    }
}

#[test]
fn bad_rows_give_the_importers_message_and_line() {
    let head = format!("open_time,open,high,low,close,volume\n{T0},1,2,0.5,1,1\n");
    let t = T0 + H;
    for row in [
        format!("{t},1,x,0.5,1,1"),
        format!("{t},1,0.4,0.5,0.45,1"),
        format!("{t},3,2,0.5,1,1"),
        format!("{t},1,2,0.5,2.5,1"),
        format!("{t},1,2,0.5,1,-1"),
        format!("{T0},1,2,0.5,1,1"),
        format!("{},1,2,0.5,1,1", T0 - H),
        "-5,1,2,0.5,1,1".to_string(),
        format!("{t},1,2,0.5,1"),
        format!("{t},1,2,0,1,1"),
        "0,1,2,0.5,1,1".to_string(),
        format!("{},1,2,0.5,1,1", NOW + 2 * 86_400_000),
        format!("{t},1,2,0.5,1,1\u{e9}"),
    ] {
        let err = assert_same(format!("{head}{row}\n").as_bytes()).unwrap_err();
        assert!(err.starts_with("line 3: "), "{row}: {err}");
    }
    let mut not_utf8 = head.into_bytes();
    not_utf8.extend_from_slice(b"\xff\xfe,1,2\n");
    assert!(assert_same(&not_utf8).unwrap_err().contains("UTF-8"));
    assert!(
        assert_same(b"open_time,open,high,low,close,volume\n")
            .unwrap_err()
            .contains("no candle rows")
    );
}

#[test]
fn cryptodatadownload_files_are_read_whole_and_sorted() {
    let text = "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\r\n\
                date,symbol,open,high,low,close,volume_btc,volume\r\n\
                2025-10-17 12-PM,BTCUSD,8051,8056.83,8021.23,8035.88,61.25,492394.56\r\n\
                2025-10-17 11-AM,BTCUSD,7975.89,8070,7975.89,8051,370.45,2971610.86\r\n";
    let cols = assert_same(text.as_bytes()).unwrap();
    assert!(cols.open_time[0] < cols.open_time[1]);
}

#[test]
fn lines_across_chunk_boundaries_and_over_long_lines() {
    // Rows of varying length over several chunks, so lines straddle every chunk boundary.
    let mut text = String::from("open_time,open,high,low,close,volume\n");
    let n = 3 * CHUNK_BYTES / 40;
    for i in 0..n as i64 {
        let p = 100 + i % 997;
        let frac = "123456789".get(..(i % 9) as usize).unwrap_or("");
        text.push_str(&format!(
            "{},{p}.{frac}1,{}.5,{p},{p},{}.{frac}0\n",
            T0 + i * 60_000,
            p + 1,
            i % 13
        ));
    }
    let cols = assert_same(text.as_bytes()).unwrap();
    assert_eq!(cols.len(), n);
    assert!(cols.holds_exact_candles());

    // A line too long for a candle row, complete or still open at a chunk's end.
    let long = "9".repeat(MAX_LINE_BYTES + 1);
    for tail in [format!("{long}\n"), long.clone()] {
        let err = assert_same(format!("{text}{tail}").as_bytes()).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }
    let mut at_boundary = text.into_bytes();
    at_boundary.truncate(CHUNK_BYTES - 10);
    at_boundary.truncate(at_boundary.iter().rposition(|&b| b == b'\n').unwrap() + 1);
    at_boundary.extend_from_slice(long.as_bytes());
    assert!(
        assert_same(&at_boundary)
            .unwrap_err()
            .contains("longer than")
    );
}

/// A number as the files write it: `m / 10^s` printed with `s` decimals, trailing zeros and all.
fn written(m: u64, s: u32) -> String {
    let digits = format!("{:0>width$}", m, width = s as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - s as usize);
    if s == 0 {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

proptest! {
    /// Whatever the numbers (any width and scale, out of range, unordered), the columns read
    /// straight from the file are those of the importer's candles, or its error.
    #[test]
    fn the_columns_reader_agrees_with_the_importer(
        rows in prop::collection::vec(
            (
                prop::array::uniform5((prop_oneof![9 => 0u64..10_000_000, 1 => any::<u64>()], 0u32..21)),
                0i64..3,
                prop::bool::weighted(0.9),
            ),
            1..40,
        ),
    ) {
        let mut text = String::new();
        let mut t = T0;
        for (fields, dt, sorted_prices) in rows {
            let mut nums: Vec<(u64, u32)> = fields.to_vec();
            if sorted_prices {
                // Usually a valid candle: low <= open, close <= high.
                let value = |&(m, s): &(u64, u32)| m as f64 / 10f64.powi(s as i32);
                nums[..4].sort_by(|a, b| value(a).total_cmp(&value(b)));
                let [low, open, close, high] = [nums[0], nums[1], nums[2], nums[3]];
                nums[..4].copy_from_slice(&[open, high, low, close]);
            }
            t += dt * H;
            let cells: Vec<String> = nums.iter().map(|&(m, s)| written(m, s)).collect();
            text.push_str(&format!("{t},{}\n", cells.join(",")));
        }
        let f = file_with(text.as_bytes());
        prop_assert_eq!(by_columns(f.path()), by_candles(f.path()));
    }
}

/// A cell for the one-pass row reader: a number written any way (leading and trailing zeros,
/// too many digits, `1.`, `.5`), or something that is not one.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[0-9]{1,10}(\\.[0-9]{1,10})?",
        2 => "0{0,3}[0-9]{1,12}\\.[0-9]{0,8}0{0,4}",
        1 => "[0-9]{15,21}(\\.[0-9]{0,6})?",
        1 => "\\.?[0-9]{0,3}[-+eE x\\r]?[0-9]{0,2}",
        1 => "(é|\\r|x|)",
    ]
}

proptest! {
    /// The one-pass reader takes a line exactly when the line-at-a-time reader does, with the
    /// same values, whatever its cells, its end (`\n`, `\r\n`, stray `\r`s), the columns after
    /// the volume, or what follows its line end.
    #[test]
    fn the_one_pass_row_reader_agrees_with_the_line_reader(
        time in "[0-9]{1,20}",
        price in cell(),
        cells in prop::collection::vec(prop_oneof![3 => Just(None), 2 => cell().prop_map(Some)], 5..8),
        tail in "(,[0-9a-z é\\r]{0,12}){0,2}\\r{0,2}",
        ending in "(\\n|\\r\\n|\\r\\r\\n|)",
        after in "[0-9,\\n]{0,8}",
    ) {
        // Usually the same number for all prices, so that many rows are valid candles.
        let cells: Vec<String> = cells.into_iter().map(|c| c.unwrap_or_else(|| price.clone())).collect();
        let line = format!("{time},{}{tail}", cells.join(","));
        let text = format!("{line}{ending}{after}");
        let bytes = text.as_bytes();
        let got = quick_row_at(bytes);
        let want = match memchr(b'\n', bytes) {
            Some(end) if end <= MAX_LINE_BYTES => {
                let mut l = &bytes[..end];
                if let [rest @ .., b'\r'] = l {
                    l = rest;
                }
                quick_row(l).map(|(t, row)| (t, row, end + 1))
            }
            _ => None,
        };
        prop_assert_eq!(got, want, "on {:?}", text);
    }
}

#[test]
fn chunk_ends_at_every_offset_of_a_row_give_the_same_columns() {
    // Rows the fast path takes, rows it leaves to the one-pass reader (16-digit numbers), rows
    // it stops at (a CRLF end, extra columns) and a blank line, so that a chunk ends at every
    // byte of every kind of row and at every distance from the fast path's window.
    let mut text = String::from("open_time,open,high,low,close,volume\n");
    for i in 0..400i64 {
        let t = T0 + i * 60_000;
        let p = 7000 + i % 89;
        text.push_str(&match i % 7 {
            0 => format!("{t},{p}.50,{p}.75,{p}.00,{p}.25,12.340000\n"),
            1 => format!("{t},{p},{p}.1,{p},{p},0\n"),
            2 => format!("{t},{p}.1234567890,{p}.2345678901,{p},{p},1.5\n"),
            3 => format!("{t},{p}.5,{p}.5,{p}.5,{p}.5,3\r\n"),
            4 => format!("{t},{p}.5,{p}.6,{p}.4,{p}.5,3,{t},9.9,1\n"),
            5 => format!("{t},{p}.05,{p}.06,{p}.04,{p}.05,123456789.123456\n\n"),
            _ => format!("{t},{p}.5,{p}.6,{p}.4,{p}.5,0.000001\n"),
        });
    }
    let f = file_with(text.as_bytes());
    let want = by_candles(f.path()).unwrap();
    for chunk in MAX_LINE_BYTES + 2..MAX_LINE_BYTES + 2 + 160 {
        let file = std::fs::File::open(f.path()).unwrap();
        let bounds = TimeBounds::for_files_at(NOW);
        let rows = read_rows(file, f.path(), text.len(), chunk, bounds).unwrap();
        let got = rows.builder.map(ColumnsBuilder::finish).unwrap();
        assert_eq!(got, want, "chunks of {chunk} bytes");
    }
}

#[test]
fn fraction_zeros_as_written_do_not_raise_the_exact_scale() {
    // Prices written with two decimals whose last is always 0, volumes with six whose last
    // three are: the exact view's scales are 1 and 3, as the importer's decimals have them.
    let mut text = String::new();
    for i in 0..20i64 {
        let p = 30_000 + i;
        text.push_str(&format!(
            "{},{p}.10,{p}.50,{p}.00,{p}.20,3.125000\n",
            T0 + i * H
        ));
    }
    let cols = assert_same(text.as_bytes()).unwrap();
    assert!(cols.holds_exact_candles());
    assert_eq!(cols.exact_open(0).unwrap().get().to_string(), "30000.1");
    assert_eq!(
        cols.exact_candle(3).unwrap().volume.get().to_string(),
        "3.125"
    );
}
