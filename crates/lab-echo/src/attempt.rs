//! One `connect()` attempt, measured: where to, what happened, how long it took.
//!
//! Several experiments ask the same question of different addresses ("does anything answer
//! here?"), so the answer has one shape: the outcome, the error's kind and errno when it
//! failed, and the elapsed time. A refusal on loopback takes microseconds: the kernel
//! answers the SYN with a reset at once (lab 1 shows this in detail).

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lab_kit::errors::ErrorFacts;
use serde::Serialize;

/// How long one attempt may take before we call it a timeout. Loopback answers in
/// microseconds; seconds leave room for a machine under heavy load.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// What a connection attempt ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The three-way handshake completed: something listens there.
    Connected,
    /// The kernel at the other end answered with a reset: nothing listens there.
    Refused,
    /// No answer before the deadline.
    TimedOut,
    /// Another failure, e.g. the address is not usable on this machine.
    Failed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Connected => "connected",
            Outcome::Refused => "refused",
            Outcome::TimedOut => "timed out",
            Outcome::Failed => "failed",
        })
    }
}

/// One measured `connect()`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectAttempt {
    pub target: SocketAddr,
    pub outcome: Outcome,
    /// The error's kind, errno and name, when the attempt failed.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorFacts>,
    pub elapsed_us: u64,
}

impl ConnectAttempt {
    /// Connects to `target` once (no retry) and records what happened. The connection,
    /// if any, is returned too so that the caller can use or close it.
    pub fn measure(target: SocketAddr) -> (Self, Option<TcpStream>) {
        let started = Instant::now();
        let result = TcpStream::connect_timeout(&target, CONNECT_DEADLINE);
        let elapsed_us = micros(started.elapsed());
        match result {
            Ok(stream) => (
                ConnectAttempt {
                    target,
                    outcome: Outcome::Connected,
                    error: None,
                    elapsed_us,
                },
                Some(stream),
            ),
            Err(error) => {
                let outcome = match error.kind() {
                    std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
                    std::io::ErrorKind::TimedOut => Outcome::TimedOut,
                    _ => Outcome::Failed,
                };
                (
                    ConnectAttempt {
                        target,
                        outcome,
                        error: Some(ErrorFacts::of(&error)),
                        elapsed_us,
                    },
                    None,
                )
            }
        }
    }

    /// Like [`measure`](Self::measure), closing any connection at once.
    pub fn once(target: SocketAddr) -> Self {
        Self::measure(target).0
    }

    /// `connected in 41 µs` or `refused: ConnectionRefused (errno 111, ECONNREFUSED) in 30 µs`.
    pub fn describe(&self) -> String {
        match &self.error {
            None => format!("{} in {}", self.outcome, format_micros(self.elapsed_us)),
            Some(error) => format!(
                "{}: {} in {}",
                self.outcome,
                error.summary(),
                format_micros(self.elapsed_us)
            ),
        }
    }
}

/// A duration in whole microseconds (saturating).
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// `730 µs`, `1.2 ms`, `2.50 s`: a duration in the unit a reader takes in at a glance.
pub fn format_micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_in_readable_units() {
        assert_eq!(format_micros(730), "730 µs");
        assert_eq!(format_micros(1_234), "1.2 ms");
        assert_eq!(format_micros(2_500_000), "2.50 s");
    }
}
