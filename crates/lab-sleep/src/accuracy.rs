//! At least, never less: how long a sleep really lasts.
//!
//! `sleep(d)` asks the kernel to wake the thread once `d` has passed. The kernel promises
//! "not before": the timer fires no earlier than requested, then the woken thread must wait
//! for a CPU. On Linux an ordinary thread's timer may also be deferred by its *timer slack*
//! (50 µs by default, readable with `prctl(PR_GET_TIMERSLACK)`), so that several timers can
//! fire together and the CPU can stay idle longer. A 1 µs sleep therefore lasts tens of
//! microseconds, and on a busy machine any sleep can last milliseconds longer than asked.
//! A program may rely on "at least", never on "exactly".

use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The requests the lab measures: zero, then 1 µs to 100 ms in steps of 10 to 100.
pub const STANDARD_REQUESTS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_micros(1),
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
];

/// How one requested duration behaved over several sleeps.
#[derive(Debug, Clone, Serialize)]
pub struct RequestMeasurements {
    /// What was asked of `thread::sleep`.
    pub requested_ns: u64,
    /// What `Instant` measured around each call, in the order they ran.
    pub measured_ns: Vec<u64>,
    /// The median of the measured durations.
    pub median_measured_ns: u64,
    /// Measured minus requested: the smallest, the median and the largest. Signed, so that
    /// a sleep shorter than requested would show as negative instead of being hidden.
    pub min_overshoot_ns: i64,
    pub median_overshoot_ns: i64,
    pub max_overshoot_ns: i64,
}

impl RequestMeasurements {
    fn from_samples(requested: Duration, measured: Vec<Duration>) -> Self {
        let requested_ns = lab_kit::narrate::saturating_nanos(requested);
        let measured_ns: Vec<u64> = measured
            .iter()
            .copied()
            .map(lab_kit::narrate::saturating_nanos)
            .collect();
        let mut overshoots: Vec<i64> = measured_ns
            .iter()
            .map(|&m| {
                i64::try_from(m).unwrap_or(i64::MAX)
                    - i64::try_from(requested_ns).unwrap_or(i64::MAX)
            })
            .collect();
        overshoots.sort_unstable();
        let mut sorted = measured_ns.clone();
        sorted.sort_unstable();
        let median_measured_ns = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
        let median = overshoots.get(overshoots.len() / 2).copied().unwrap_or(0);
        RequestMeasurements {
            requested_ns,
            median_measured_ns,
            min_overshoot_ns: overshoots.first().copied().unwrap_or(0),
            median_overshoot_ns: median,
            max_overshoot_ns: overshoots.last().copied().unwrap_or(0),
            measured_ns,
        }
    }

    /// True when every measured sleep lasted at least the request.
    pub fn never_shorter(&self) -> bool {
        self.measured_ns.iter().all(|&m| m >= self.requested_ns)
    }
}

/// The accuracy experiment's result.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    pub experiment: &'static str,
    /// How many sleeps were measured per request.
    pub repeats: usize,
    /// This thread's timer slack from `prctl(PR_GET_TIMERSLACK)`, if the call worked.
    pub timer_slack_ns: Option<u64>,
    /// One entry per requested duration.
    pub requests: Vec<RequestMeasurements>,
    /// True when no sleep at all was shorter than its request.
    pub every_sleep_at_least_requested: bool,
}

/// Sleeps each of `requests` `repeats` times, timing each call with a monotonic clock.
///
/// The requests are interleaved (0, 1 µs, …, 100 ms, then again) so that a burst of load
/// from other programs lands on all of them, not on one request's samples only.
pub fn measure_sleep_accuracy(requests: &[Duration], repeats: usize) -> AccuracyReport {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(repeats); requests.len()];
    for _ in 0..repeats {
        for (request, measured) in requests.iter().zip(samples.iter_mut()) {
            let start = Instant::now();
            thread::sleep(*request);
            measured.push(start.elapsed());
        }
    }
    let requests: Vec<RequestMeasurements> = requests
        .iter()
        .zip(samples)
        .map(|(request, measured)| RequestMeasurements::from_samples(*request, measured))
        .collect();
    AccuracyReport {
        experiment: "sleep_accuracy",
        repeats,
        timer_slack_ns: timer_slack_ns(),
        every_sleep_at_least_requested: requests.iter().all(RequestMeasurements::never_shorter),
        requests,
    }
}

/// The calling thread's timer slack: how late the kernel may fire its timers, to group them.
fn timer_slack_ns() -> Option<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer arguments and only returns a number.
    let slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    u64::try_from(slack).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_shorter_than_requested_would_show_as_negative_overshoot() {
        let ms = Duration::from_millis;
        let row = RequestMeasurements::from_samples(ms(10), vec![ms(12), ms(9), ms(11)]);
        assert_eq!(row.min_overshoot_ns, -1_000_000);
        assert_eq!(row.median_overshoot_ns, 1_000_000);
        assert_eq!(row.max_overshoot_ns, 2_000_000);
        assert_eq!(row.median_measured_ns, 11_000_000);
        assert!(!row.never_shorter());
        let row = RequestMeasurements::from_samples(ms(10), vec![ms(10), ms(11)]);
        assert!(row.never_shorter());
    }
}
