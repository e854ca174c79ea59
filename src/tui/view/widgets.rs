//! Formatting helpers the screens share (the charts live in `charts`).

use crate::domain::Quote;

pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

pub fn fmt_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "--".into())
}

pub fn fmt_quote(q: Quote) -> String {
    format!("{:.2}", q.get())
}

pub fn fmt_quote_signed(q: Quote) -> String {
    if q.get().is_sign_negative() && !q.is_zero() {
        format!("{:.2}", q.get())
    } else {
        format!("+{:.2}", q.get())
    }
}

pub fn fmt_pct(v: f64) -> String {
    format!("{v:+.2}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_quote_shows_plus_for_gains_and_minus_for_losses() {
        use rust_decimal_macros::dec;
        assert_eq!(fmt_quote_signed(Quote(dec!(12.3))), "+12.30");
        assert_eq!(fmt_quote_signed(Quote(dec!(-3))), "-3.00");
        assert_eq!(fmt_quote_signed(Quote::ZERO), "+0.00");
    }
}
