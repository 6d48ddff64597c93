//! Experiment 2: retrying is the program's job, not the kernel's.
//!
//! Many students believe a client "keeps trying until the server appears". The kernel does
//! not do that: experiment 1 showed one refusal, returned at once. A client that waits for
//! its server does so because someone *wrote a loop*: try, and on `ConnectionRefused`
//! pause, try again, with a growing pause (backoff) and a limit on the number of tries so
//! that it gives up one day.
//!
//! Here a server thread starts listening a little later, on a port we reserved; the client
//! loop below fails a few times, then connects. Every attempt is recorded.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use lab_kit::attempt::{Attempt, Outcome};

/// How the client retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// At most this many attempts, then give up.
    pub max_attempts: u32,
    /// The pause after the first failure; it doubles after each one.
    pub first_pause: Duration,
    /// The pause never grows beyond this.
    pub max_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            first_pause: Duration::from_millis(5),
            max_pause: Duration::from_millis(200),
        }
    }
}

/// One attempt of the retry loop, with when it started.
#[derive(Debug, Clone, Serialize)]
pub struct RetryAttempt {
    pub number: u32,
    pub started_after_us: u64,
    #[serde(flatten)]
    pub attempt: Attempt,
}

/// What the retrying client saw.
#[derive(Debug, Clone, Serialize)]
pub struct RetryReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    /// When the server thread started listening, counted from the client's first try.
    pub server_listening_after_us: Option<u64>,
    pub attempts: Vec<RetryAttempt>,
    /// How the loop ended: `connected`, or the last failure when it gave up.
    pub outcome: Outcome,
}

impl RetryReport {
    /// How many attempts were refused before the end.
    pub fn refused_attempts(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.attempt.outcome == Outcome::Refused)
            .count()
    }
}

/// Connects to `target`, retrying refused attempts as `policy` says.
///
/// This loop is the whole "keeps retrying" behaviour; delete it and the client gives up
/// on the first `ConnectionRefused`.
pub fn connect_with_retries(
    target: SocketAddr,
    policy: RetryPolicy,
) -> (Option<TcpStream>, Vec<RetryAttempt>) {
    let first_try = Instant::now();
    let mut attempts = Vec::new();
    let mut pause = policy.first_pause;
    for number in 1..=policy.max_attempts {
        let started_after = first_try.elapsed();
        let started = Instant::now();
        let result = TcpStream::connect(target);
        let attempt = Attempt::record(&result, started.elapsed());
        let started_after_us = u64::try_from(started_after.as_micros()).unwrap_or(u64::MAX);
        attempts.push(RetryAttempt {
            number,
            started_after_us,
            attempt,
        });
        match result {
            Ok(stream) => return (Some(stream), attempts),
            // Refused: the server is not there *yet*. Our decision: wait, then try again.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if number < policy.max_attempts {
                    thread::sleep(pause);
                    pause = (pause * 2).min(policy.max_pause);
                }
            }
            // Any other error is not "not yet": give up at once.
            Err(_) => break,
        }
    }
    (None, attempts)
}

/// Starts a server `server_delay` after the client's first attempt, and lets a retrying
/// client find it.
pub fn retry_until_server_starts(
    server_delay: Duration,
    policy: RetryPolicy,
) -> std::io::Result<RetryReport> {
    // Hold a port where nothing listens yet; the late server binds and listens on it.
    let reserved = lab_kit::ports::ClosedTcpPort::reserve()?;
    let target = reserved.addr();
    let clock = Instant::now();
    let server = thread::spawn(move || -> std::io::Result<(TcpListener, Duration)> {
        // The delay is the experiment: a server that is started late, as when a student
        // starts the client first.
        thread::sleep(server_delay);
        let listener = TcpListener::bind(target)?;
        Ok((listener, clock.elapsed()))
    });
    let (stream, attempts) = connect_with_retries(target, policy);
    drop(reserved);
    let server = server
        .join()
        .map_err(|_| std::io::Error::other("the server thread panicked"))?;
    let server_listening_after_us = server
        .as_ref()
        .ok()
        .map(|(_, at)| u64::try_from(at.as_micros()).unwrap_or(u64::MAX));
    let outcome = match (&stream, attempts.last()) {
        (Some(_), _) => Outcome::Connected,
        (None, Some(last)) => last.attempt.outcome,
        (None, None) => Outcome::Failed,
    };
    Ok(RetryReport {
        experiment: "retry",
        target,
        server_listening_after_us,
        attempts,
        outcome,
    })
}
