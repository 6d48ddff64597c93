//! Printing measured durations and counts the way a person reads them.
//!
//! Sleep requests span five orders of magnitude (1 µs to 100 ms), so a fixed unit would
//! print either `0.001 ms` or `100000 µs`. These helpers pick the unit that keeps three
//! significant figures or so, and group large counts in thousands.

use std::time::Duration;

/// `0 ns`, `850 ns`, `57.3 µs`, `1.06 ms`, `100.1 ms`, `2.00 s`.
pub fn duration(d: Duration) -> String {
    nanos(d.as_nanos())
}

/// Like [`duration`], from a number of nanoseconds.
pub fn nanos(ns: u128) -> String {
    let ns_f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..100_000 => format!("{:.1} µs", ns_f / 1e3),
        100_000..1_000_000 => format!("{:.0} µs", ns_f / 1e3),
        1_000_000..10_000_000 => format!("{:.2} ms", ns_f / 1e6),
        10_000_000..1_000_000_000 => format!("{:.1} ms", ns_f / 1e6),
        _ => format!("{:.2} s", ns_f / 1e9),
    }
}

/// Like [`duration`], from a number of microseconds.
pub fn micros(us: u64) -> String {
    nanos(u128::from(us) * 1_000)
}

/// `57,123,456`: thousands grouped so a count can be read aloud.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Microseconds in a `Duration`, saturated into a `u64` for JSON.
pub fn as_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nanoseconds in a `Duration`, saturated into a `u64` for JSON.
pub fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_readable_unit() {
        assert_eq!(duration(Duration::ZERO), "0 ns");
        assert_eq!(duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(duration(Duration::from_nanos(57_345)), "57.3 µs");
        assert_eq!(duration(Duration::from_micros(250)), "250 µs");
        assert_eq!(duration(Duration::from_micros(1_064)), "1.06 ms");
        assert_eq!(duration(Duration::from_micros(100_080)), "100.1 ms");
        assert_eq!(duration(Duration::from_secs(2)), "2.00 s");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(57_123_456), "57,123,456");
    }
}
