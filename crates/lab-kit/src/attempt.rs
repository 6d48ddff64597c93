//! How one connection attempt ended, as plain data.
//!
//! Many experiments make connection attempts and record the same three facts about each: how it ended (`refused`, `timed_out`, `connected`), the error the operating
//! system reported (kind, errno), and how long the call took. The *time* is half of the
//! lesson: a refusal comes back in microseconds, a timeout takes as long as you let it.

use std::io;
use std::time::Duration;

use crate::errors::ErrorFacts;
use serde::Serialize;

/// How a connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Something answered: the handshake completed.
    Connected,
    /// The other host answered with a reset (TCP) or "port unreachable" (ICMP).
    Refused,
    /// Nothing answered before our deadline.
    TimedOut,
    /// Any other error.
    Failed,
}

impl Outcome {
    /// Classifies the result of a connect (or of a recv, for UDP). `WouldBlock` counts as a
    /// timeout: it is what a socket read timeout reports.
    pub fn of<T>(result: &io::Result<T>) -> Self {
        match result {
            Ok(_) => Outcome::Connected,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Refused,
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                Outcome::TimedOut
            }
            Err(_) => Outcome::Failed,
        }
    }
}

/// One attempt: how it ended, the error if any, and how long the call took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub error_kind: Option<String>,
    pub errno: Option<i32>,
    pub errno_name: Option<&'static str>,
    pub elapsed_us: u64,
}

impl Attempt {
    /// Records a finished call.
    pub fn record<T>(result: &io::Result<T>, elapsed: Duration) -> Self {
        let error = result.as_ref().err().map(ErrorFacts::of);
        Attempt {
            outcome: Outcome::of(result),
            error_kind: error.as_ref().map(|e| e.error_kind.clone()),
            errno: error.as_ref().and_then(|e| e.errno),
            errno_name: error.as_ref().and_then(|e| e.errno_name),
            elapsed_us: crate::narrate::saturating_micros(elapsed),
        }
    }

    /// The call's duration.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.elapsed_us)
    }

    /// `ConnectionRefused (errno 111, ECONNREFUSED)`, or `connected`.
    pub fn result_text(&self) -> String {
        match (&self.error_kind, self.errno, self.errno_name) {
            (Some(kind), Some(n), Some(name)) => format!("{kind} (errno {n}, {name})"),
            (Some(kind), Some(n), None) => format!("{kind} (errno {n})"),
            (Some(kind), None, _) => kind.clone(),
            (None, _, _) => "connected".to_string(),
        }
    }
}
