//! Experiment 4: UDP has no connection to refuse.
//!
//! UDP sends datagrams without a handshake, so `send` to a port where nobody listens
//! *succeeds*: the datagram left. The receiving kernel answers it with an ICMP "port
//! unreachable" message. On a *connected* UDP socket, Linux remembers that answer and
//! reports it on the next call: the following `recv` fails with `ConnectionRefused`. The
//! refusal arrives late, on a different call, and only if you ask.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use lab_kit::errors::ErrorFacts;
use serde::Serialize;

use lab_kit::attempt::{Attempt, Outcome};

/// What sending a datagram to a closed UDP port did.
#[derive(Debug, Clone, Serialize)]
pub struct UdpReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    /// Bytes `send` reported sent (it succeeded).
    pub sent_bytes: Option<usize>,
    /// The error of `send`, if it had one.
    pub send_error: Option<ErrorFacts>,
    /// The `recv` that followed: refused, timed out, or (unexpectedly) data.
    #[serde(flatten)]
    pub recv: Attempt,
    /// The packets on the wire, when watched (`packets`, `capture`): the datagram, and the
    /// ICMP "port unreachable" that answered it.
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// Sends one datagram to a closed port on a connected UDP socket, then receives.
pub fn send_to_closed_udp_port(recv_deadline: Duration) -> std::io::Result<UdpReport> {
    send_to_closed_udp_port_watched(recv_deadline, &Wiretap::off())
}

/// Like [`send_to_closed_udp_port`], with the packets captured by `tap`.
pub fn send_to_closed_udp_port_watched(
    recv_deadline: Duration,
    tap: &Wiretap,
) -> std::io::Result<UdpReport> {
    let closed = lab_kit::ports::ClosedUdpPort::reserve()?;
    let target = closed.addr();
    let watch = tap.watch("udp", &[target.port()]);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    // connect() on UDP sends nothing; it only fixes the peer, and lets errors be reported.
    socket.connect(target)?;
    socket.set_read_timeout(Some(recv_deadline))?;
    let sent = socket.send(b"is anybody there?");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let received = socket.recv(&mut buf);
    let recv = Attempt::record(&received, started.elapsed());
    Ok(UdpReport {
        experiment: "udp",
        target,
        sent_bytes: sent.as_ref().ok().copied(),
        send_error: sent.as_ref().err().map(ErrorFacts::of),
        recv,
        wire: watch.finish(),
    })
}

impl UdpReport {
    /// True if the send succeeded and the next recv reported the refusal.
    pub fn refused_on_recv(&self) -> bool {
        self.sent_bytes.is_some() && self.recv.outcome == Outcome::Refused
    }
}
