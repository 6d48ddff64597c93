//! One `connect()` attempt to a given address, measured: lab-kit's [`Attempt`] (outcome,
//! error kind and errno, elapsed time) together with the address it was made to.
//!
//! Several experiments ask the same question of different addresses ("does anything answer
//! here?"). A refusal on loopback takes microseconds: the kernel answers the SYN with a
//! reset at once (lab 1 shows this in detail).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lab_kit::attempt::{Attempt, Outcome};
use lab_kit::narrate::human_duration;
use serde::Serialize;

/// How long one attempt may take before we call it a timeout. Loopback answers in
/// microseconds; seconds leave room for a machine under heavy load.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// One measured `connect()` to `target`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectAttempt {
    pub target: SocketAddr,
    #[serde(flatten)]
    pub attempt: Attempt,
}

impl ConnectAttempt {
    /// Connects to `target` once (no retry) and records what happened. The connection,
    /// if any, is returned too so that the caller can use or close it.
    pub fn measure(target: SocketAddr) -> (Self, Option<TcpStream>) {
        let started = Instant::now();
        let result = TcpStream::connect_timeout(&target, CONNECT_DEADLINE);
        let attempt = Attempt::record(&result, started.elapsed());
        (ConnectAttempt { target, attempt }, result.ok())
    }

    /// Like [`measure`](Self::measure), closing any connection at once.
    pub fn once(target: SocketAddr) -> Self {
        Self::measure(target).0
    }

    /// How the attempt ended.
    pub fn outcome(&self) -> Outcome {
        self.attempt.outcome
    }

    /// `connected in 41 µs` or `refused: ConnectionRefused (errno 111, ECONNREFUSED) in 30 µs`.
    pub fn describe(&self) -> String {
        let took = human_duration(self.attempt.elapsed());
        match self.attempt.outcome {
            Outcome::Connected => format!("connected in {took}"),
            other => format!(
                "{}: {} in {took}",
                outcome_word(other),
                self.attempt.result_text()
            ),
        }
    }
}

/// The outcome in words for narration.
pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Connected => "connected",
        Outcome::Refused => "refused",
        Outcome::TimedOut => "timed out",
        Outcome::Failed => "failed",
    }
}
