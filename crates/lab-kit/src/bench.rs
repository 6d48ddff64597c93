//! What every benchmark here shares: percentiles of measured samples, and how a target is
//! reported.
//!
//! A benchmark prints its figures side by side with a well-known peer, measured in the same
//! run on the same machine, and says whether the target was met. Latencies are reported as
//! percentiles (the median, p50, and the tail, p99), never as an average: one slow round
//! trip in a thousand hides in an average and is exactly what a user notices.

use std::time::Duration;

use crate::narrate::Narrator;

/// The `p`th percentile (`p` from 0 to 100) of `sorted` samples: the sample at that rank
/// (nearest rank, no interpolation). Zero when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let Some(last) = sorted.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * last as f64).round() as usize;
    sorted[rank.min(last)]
}

/// How a benchmark reports a target: `met`, `NOT met`, or, when the peer to compare with
/// could not run here, `not measured (reference missing)`.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured (reference missing)",
    }
}

/// The machine's load average over the last minute, as `/proc/loadavg` says it (`"2.31"`).
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// What every benchmark says before its figures: that a debug build's figures are not real
/// (and `release_command`, which gives real ones), and how loaded the machine is, since
/// other work competes with every figure measured.
pub fn narrate_conditions(release_command: &str, n: &mut Narrator) -> std::io::Result<()> {
    if cfg!(debug_assertions) {
        n.warn(&format!(
            "this is a debug build: run `{release_command}` for real figures"
        ))?;
    }
    if let Some(load) = load_average() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        n.fact(
            "machine load (1 min)",
            format!("{load} on {cores} cores: other work competes with every figure below"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_sample_at_that_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_micros(51));
        assert_eq!(percentile(&samples, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&samples, 0.0), Duration::from_micros(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn a_target_is_met_not_met_or_not_measured() {
        assert_eq!(verdict(Some(true)), "met");
        assert_eq!(verdict(Some(false)), "NOT met");
        assert!(verdict(None).starts_with("not measured"));
    }
}
