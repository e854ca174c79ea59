use super::*;
use crate::services::market_data::csv_columns::quick_row_at;
use proptest::prelude::*;

/// A digit run read a byte at a time: its value (when at most 19 digits), length and trailing
/// zeros.
fn run_by_bytes(bytes: &[u8], j: usize) -> (u64, u32, u32) {
    let digits: Vec<u8> = bytes[j..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    let value = digits
        .iter()
        .take(19)
        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    let zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
    (value, digits.len() as u32, zeros as u32)
}

/// Bytes that end a digit run, the ones next to the digits in ASCII among them.
fn terminator() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b','),
        Just(b'.'),
        Just(b'\n'),
        Just(b'\r'),
        Just(b'/'),
        Just(b':'),
        Just(b' '),
        Just(0x80u8),
        Just(0xb0u8),
        Just(0xffu8),
        any::<u8>().prop_filter("not a digit", |b| !b.is_ascii_digit()),
    ]
}

proptest! {
    /// Eight digits at a time give what the byte loop gives: every offset of digit strings of
    /// any length with any byte after them.
    #[test]
    fn digit_runs_read_eight_at_a_time_match_the_byte_loop(
        pieces in prop::collection::vec(("[0-9]{0,22}", terminator()), 1..6),
        max in prop_oneof![Just(0u32), Just(7), Just(8), Just(9), Just(15), Just(16), Just(18)],
    ) {
        let mut bytes = Vec::new();
        for (digits, end) in &pieces {
            bytes.extend_from_slice(digits.as_bytes());
            bytes.push(*end);
        }
        let len = bytes.len();
        // Loads read up to 8 bytes past a run's end.
        bytes.extend_from_slice(&[b'x'; 24]);
        for j in 0..len {
            let (value, digits, zeros) = run_by_bytes(&bytes, j);
            let want = (digits <= max).then_some(Run { value, len: digits, trailing_zeros: zeros });
            prop_assert_eq!(digit_run(&bytes, j, max), want, "at {} of {:?}", j, String::from_utf8_lossy(&bytes));
        }
    }

    /// Expecting a run of some length gives the run counted, whether the length is right or
    /// not, and leaves the length of the run (when it is short enough to take) expected.
    #[test]
    fn digit_runs_read_expecting_a_length_match_the_counted_ones(
        pieces in prop::collection::vec(("[0-9]{0,19}", terminator()), 1..4),
        max in prop_oneof![Just(7u32), Just(8), Just(15), Just(18)],
        guess in 0u32..20,
    ) {
        let mut bytes = Vec::new();
        for (digits, end) in &pieces {
            bytes.extend_from_slice(digits.as_bytes());
            bytes.push(*end);
        }
        let len = bytes.len();
        bytes.extend_from_slice(&[b'x'; 24]);
        for j in 0..len {
            let want = digit_run(&bytes, j, max);
            let mut expected = guess;
            prop_assert_eq!(digit_run_expecting(&bytes, j, max, &mut expected), want);
            if let Some(run) = want {
                prop_assert_eq!(expected, run.len);
                let mut again = expected;
                prop_assert_eq!(digit_run_expecting(&bytes, j, max, &mut again), want);
            }
        }
    }

    /// Any bytes at all (so any byte value in any lane): the same.
    #[test]
    fn digit_runs_in_arbitrary_bytes_match_the_byte_loop(
        mut bytes in prop::collection::vec(prop_oneof![3 => b'0'..=b'9', 1 => any::<u8>()], 0..64),
    ) {
        let len = bytes.len();
        bytes.extend_from_slice(&[0u8; 24]);
        for j in 0..len {
            let (value, digits, zeros) = run_by_bytes(&bytes, j);
            let want = (digits <= 18).then_some(Run { value, len: digits, trailing_zeros: zeros });
            prop_assert_eq!(digit_run(&bytes, j, 18), want);
        }
    }
}

/// A cell: a number written any way (leading and trailing zeros, up to and past the fast
/// path's digits), or something that is not one.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[0-9]{1,8}(\\.[0-9]{1,8})?",
        3 => "0{0,3}[0-9]{1,9}\\.[0-9]{0,6}0{0,8}",
        2 => "[0-9]{7,9}\\.[0-9]{5,9}",
        1 => "[0-9]{14,19}(\\.[0-9]{0,6})?",
        1 => "\\.?[0-9]{0,3}[-+eE x\\r]?[0-9]{0,2}",
        1 => "(é|\\r|x|)",
    ]
}

/// Digits in a written cell.
fn digits(cell: &str) -> usize {
    cell.bytes().filter(u8::is_ascii_digit).count()
}

proptest! {
    /// The fast path takes a line only as the one-pass reader does, with the same open time,
    /// the same numbers (once normalised), the same line length, and each f64 that of the
    /// normalised number; and it takes every line that reader takes whose numbers have at most
    /// fifteen digits.
    #[test]
    fn the_fast_row_reader_agrees_with_the_one_pass_reader(
        time in prop_oneof![3 => "1[5-7][0-9]{11}", 1 => "[0-9]{1,20}"],
        price in cell(),
        cells in prop::collection::vec(prop_oneof![3 => Just(None), 2 => cell().prop_map(Some)], 5..8),
        tail in "(,[0-9a-z é\\r]{0,12}){0,2}\\r{0,2}",
        ending in "(\\n|\\r\\n|\\r\\r\\n|)",
        after in "[0-9,.\\n]{0,8}",
        mut expected in prop::array::uniform11(0u32..20),
    ) {
        let cells: Vec<String> = cells.into_iter().map(|c| c.unwrap_or_else(|| price.clone())).collect();
        let line = format!("{time},{}{tail}", cells.join(","));
        let mut bytes = format!("{line}{ending}{after}").into_bytes();
        bytes.resize(bytes.len().max(ROW_WINDOW), b'7');
        let slow = quick_row_at(&bytes);
        let got = row_at(&bytes, &mut expected);
        // Whatever lengths were expected, the row read again with the ones it left expects
        // them all.
        prop_assert_eq!(row_at(&bytes, &mut expected.clone()), got);
        match got {
            Some(row) => {
                let normal = row.numbers.map(|n| {
                    let zeros = n.scale - n.normal_scale;
                    (n.value / 10u64.pow(zeros), n.normal_scale)
                });
                prop_assert_eq!(slow, Some((row.open_time, normal, row.used)));
                for (value, (m, s)) in row.values.iter().zip(normal) {
                    prop_assert_eq!(value.to_bits(), (m as f64 / EXACT_POW10[s as usize]).to_bits());
                }
            }
            None => {
                let short = cells.iter().take(5).all(|c| digits(c) <= MAX_FAST_DIGITS as usize);
                prop_assert!(slow.is_none() || !short, "not taken: {:?}", line);
            }
        }
    }
}

#[test]
fn numbers_as_written_keep_their_scale_and_know_their_normal_one() {
    let read = |text: &str| {
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(b",xxxxxxxxxxxxxxxx");
        number_at(&bytes, 0, &mut [0, 0]).map(|(n, end)| (n.value, n.scale, n.normal_scale, end))
    };
    assert_eq!(read("30000.00"), Some((3_000_000, 2, 0, 8)));
    assert_eq!(read("7195.240"), Some((7_195_240, 3, 2, 8)));
    assert_eq!(read("0.000"), Some((0, 3, 0, 5)));
    assert_eq!(
        read("12345678.1234567"),
        Some((123_456_781_234_567, 7, 7, 16))
    );
    assert_eq!(read("12345678.12345678"), None);
    assert_eq!(read("1."), None);
    assert_eq!(read(".5"), None);
}
