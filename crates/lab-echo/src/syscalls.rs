//! Evidence from the kernel: the walk-through of [`crate::calls`] run again in a separate
//! process under `strace -f -e trace=network`, which records every network system call as
//! the kernel saw it.
//!
//! What Rust (or Python, or C) calls `send` is the `sendto` system call with no address,
//! and `recv` is `recvfrom`; `accept` is `accept4` (which can set flags such as
//! close-on-exec atomically). The order of the calls is the lesson: `connect` returns
//! before `accept4` is ever called.

use std::time::Duration;

use lab_kit::probe::Probe;
use lab_kit::strace::{self, StraceError, StraceRecord};
use serde::Serialize;

use crate::error::Error;

/// The probe that runs the walk-through (see [`crate::PROBES`]).
pub const SOCKET_CALLS_PROBE: &str = "socket-calls";

/// The calls that must appear, in this order, in the trace of the walk-through.
pub const EXPECTED_ORDER: &[&str] = &[
    "socket", "bind", "listen", "socket", "connect", "accept4", "sendto", "recvfrom", "shutdown",
    "recvfrom",
];

/// How long the traced walk-through may take (it normally takes milliseconds).
pub const TRACE_DEADLINE: Duration = Duration::from_secs(60);

/// The probe itself: runs the walk-through and reports success by its exit code.
pub fn run_socket_calls_probe(_args: &[String]) -> i32 {
    match crate::calls::walk_through() {
        Ok(walk) => {
            println!("walk-through done: {} steps", walk.steps.len());
            0
        }
        Err(error) => {
            eprintln!("lab-echo probe: {error}");
            1
        }
    }
}

/// What strace recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SyscallTrace {
    pub experiment: &'static str,
    /// The network system calls, in order, by name.
    pub names: Vec<String>,
    /// strace's lines, as it wrote them.
    pub lines: Vec<String>,
    /// True when [`EXPECTED_ORDER`] appears in `names` in that order.
    pub in_order: bool,
    /// True when the traced walk-through itself succeeded.
    pub probe_succeeded: bool,
}

/// A trace, or why there could not be one here.
#[derive(Debug, Clone)]
pub enum Traced {
    Recorded(SyscallTrace),
    Unavailable(String),
}

/// Runs the walk-through probe under strace.
pub fn trace_socket_calls(probe: &Probe) -> Result<Traced, Error> {
    let args = probe.args(SOCKET_CALLS_PROBE, &[]);
    match strace::trace(probe.exe(), &args, "trace=network", TRACE_DEADLINE) {
        Ok(record) => Ok(Traced::Recorded(summarize(&record))),
        Err(StraceError::Unavailable(why)) => Ok(Traced::Unavailable(why.to_string())),
        Err(other) => Err(Error::Unexpected(format!("strace failed: {other}"))),
    }
}

fn summarize(record: &StraceRecord) -> SyscallTrace {
    let names: Vec<String> = record.names().into_iter().map(str::to_string).collect();
    SyscallTrace {
        experiment: "socket_calls_strace",
        in_order: is_in_order(&names, EXPECTED_ORDER),
        lines: record.lines.clone(),
        names,
        probe_succeeded: record.success,
    }
}

/// True when `expected` is a subsequence of `names` (other calls may come in between).
pub fn is_in_order(names: &[String], expected: &[&str]) -> bool {
    let mut wanted = expected.iter().peekable();
    for name in names {
        if wanted.peek().is_some_and(|w| *w == name) {
            wanted.next();
        }
    }
    wanted.peek().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_subsequence_check() {
        let names: Vec<String> = ["socket", "setsockopt", "bind", "listen"]
            .map(String::from)
            .to_vec();
        assert!(is_in_order(&names, &["socket", "bind", "listen"]));
        assert!(!is_in_order(&names, &["bind", "socket"]));
    }
}
