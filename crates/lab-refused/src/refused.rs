//! Experiment 1: connect to a port where nothing listens.
//!
//! The client's kernel sends a SYN to 127.0.0.1:PORT. The receiving kernel (the same one,
//! on loopback) finds no socket listening on that port and answers at once with a TCP
//! reset (RST). On Linux the client's `connect()` then fails with `ECONNREFUSED` (errno
//! 111), which Rust reports as `io::ErrorKind::ConnectionRefused` and Python as
//! `ConnectionRefusedError`. It takes microseconds, because an answer came back, and the
//! socket's own `TCP_INFO` says its SYN was sent once.
//!
//! That is Linux (and macOS, errno 61). Windows sends the SYN again after a reset and
//! fails after about 2 s with `WSAECONNREFUSED` (10061): see `docs/01-connection-refused.md`,
//! "On your machine", for the sources. Either way the program gets the error once, and
//! decides: Rust's `?` passes it up, an unhandled Python exception ends the program.
//!
//! The kernel's own counters confirm what happened: `ActiveOpens` (a connection was
//! started), `AttemptFails` (it failed) and `OutRsts` (a reset was sent) each rise.

use std::net::SocketAddr;
use std::time::Instant;

use lab_capture::{Wire, Wiretap};
use lab_kit::kernel::{TcpCounterDelta, TcpCounters};
use lab_kit::ports::ClosedTcpPort;
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

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
    /// How many times this socket's SYN was sent again (`TCP_INFO`), where it can be read.
    pub resent_segments: Option<u32>,
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
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    );
    let before = TcpCounters::read();
    let started = Instant::now();
    let result = socket
        .as_ref()
        .map_err(clone_error)
        .and_then(|socket| socket.connect(&target.into()));
    let elapsed = started.elapsed();
    let after = TcpCounters::read();
    let resent_segments = socket
        .as_ref()
        .ok()
        .and_then(crate::retransmissions::resent_segments);
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
        resent_segments,
        wire: None,
    }
}

/// An `io::Error` has no `Clone`: keep what the narration reports (its kind and errno).
fn clone_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}
