//! Experiment 1: connect to a port where nothing listens.
//!
//! The client's kernel sends a SYN to 127.0.0.1:PORT. The receiving kernel (the same one,
//! on loopback) finds no socket listening on that port and answers at once with a TCP
//! reset (RST). The client's `connect()` then fails with `ECONNREFUSED` (errno 111 on
//! Linux), which Rust reports as `io::ErrorKind::ConnectionRefused` and Python as
//! `ConnectionRefusedError`. It takes microseconds, because an answer came back.
//!
//! Nothing retries. The error is returned to the program, and the program decides: Rust's
//! `?` passes it up, an unhandled Python exception ends the program with a traceback.
//!
//! The kernel's own counters confirm what happened: `ActiveOpens` (a connection was
//! started), `AttemptFails` (it failed) and `OutRsts` (a reset was sent) each rise.

use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use lab_capture::{Wire, Wiretap};
use lab_kit::kernel::{TcpCounterDelta, TcpCounters};
use lab_kit::ports::ClosedTcpPort;
use serde::Serialize;

use lab_kit::attempt::Attempt;

/// What connecting to a closed port did.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    #[serde(flatten)]
    pub attempt: Attempt,
    /// The kernel's counters across the attempt, where `/proc/net/snmp` exists.
    pub counters: Option<TcpCounterDelta>,
    /// Why the counters are missing, if they are.
    pub counters_unavailable: Option<String>,
    /// The packets on the wire, when the attempt was watched (`packets`, `capture`).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// Connects once to a closed loopback port and records the result and the counters.
///
/// The port is held by a socket that is bound but never called `listen()`
/// ([`ClosedTcpPort`]): bind alone does not make a server, so the kernel refuses, and no
/// other program can take the port while we measure.
pub fn connect_to_closed_port() -> std::io::Result<RefusedReport> {
    connect_to_closed_port_watched(&Wiretap::off())
}

/// Like [`connect_to_closed_port`], with the attempt's packets captured by `tap`.
pub fn connect_to_closed_port_watched(tap: &Wiretap) -> std::io::Result<RefusedReport> {
    let closed = ClosedTcpPort::reserve()?;
    let watch = tap.watch("refused", &[closed.addr().port()]);
    let mut report = connect_and_count(closed.addr());
    report.wire = watch.finish();
    Ok(report)
}

/// Connects once to `target`, reading the kernel's TCP counters before and after.
pub fn connect_and_count(target: SocketAddr) -> RefusedReport {
    let before = TcpCounters::read();
    let started = Instant::now();
    let result = TcpStream::connect(target);
    let elapsed = started.elapsed();
    let after = TcpCounters::read();
    let (counters, counters_unavailable) = match (before, after) {
        (Ok(before), Ok(after)) => (Some(after.since(&before)), None),
        (Err(e), _) | (_, Err(e)) => (None, Some(e.to_string())),
    };
    RefusedReport {
        experiment: "refused",
        target,
        attempt: Attempt::record(&result, elapsed),
        counters,
        counters_unavailable,
        wire: None,
    }
}
