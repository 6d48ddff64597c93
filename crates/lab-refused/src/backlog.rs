//! Experiment 3: refused is not the only failure; silence is another.
//!
//! A listening socket has an *accept queue* (the backlog): connections whose handshake the
//! kernel has completed, waiting for the program to call `accept()`. When that queue is
//! full, Linux does not refuse new connections: it silently drops their SYN, hoping the
//! program will soon make room. The client's kernel hears nothing and resends the SYN after
//! about a second, and again and again (how often is the kernel's choice: the capture in
//! [`crate::on_the_wire`] shows it). A `connect()` with a deadline gives up at the deadline
//! with `TimedOut`: not in microseconds, but exactly as long as you were willing to wait.
//!
//! This is also what a firewall that drops packets, or a host that is down or unreachable,
//! looks like from the client: no answer at all. A closed port on a reachable host looks
//! like experiment 1: an immediate answer, "refused".
//!
//! The kernel counts each dropped SYN in `ListenOverflows` and `ListenDrops`
//! (`/proc/net/netstat`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use lab_kit::kernel::ListenQueueCounters;
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use lab_kit::attempt::{Attempt, Outcome};

/// How long each filler connection may take before we decide the queue is full.
const FILLER_DEADLINE: Duration = Duration::from_millis(250);
/// At most this many filler connections (Linux queues backlog + 1).
const MAX_FILLERS: usize = 16;

/// A listening socket that never calls `accept()`, with its accept queue filled up.
#[derive(Debug)]
pub struct ListenerWithFullBacklog {
    /// The listening socket; dropping it closes it.
    _listener: Socket,
    /// The connections that filled the queue; they stay open while this value lives.
    fillers: Vec<TcpStream>,
    addr: SocketAddr,
}

impl ListenerWithFullBacklog {
    /// Listens on a loopback port with the given backlog, then connects until a connection
    /// gets no answer within a short deadline: the queue is full.
    pub fn new(backlog: i32) -> std::io::Result<Self> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        listener.listen(backlog)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("the listener has no IP address"))?;
        let mut fillers = Vec::new();
        for _ in 0..MAX_FILLERS {
            match TcpStream::connect_timeout(&addr, FILLER_DEADLINE) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => return Err(e),
            }
        }
        Ok(ListenerWithFullBacklog {
            _listener: listener,
            fillers,
            addr,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections completed their handshake and wait, unaccepted, in the queue.
    pub fn queued(&self) -> usize {
        self.fillers.len()
    }
}

/// What a connect to a listener with a full queue did.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    pub backlog: i32,
    /// Connections that completed and now sit in the accept queue.
    pub queued_connections: usize,
    pub deadline_us: u64,
    #[serde(flatten)]
    pub attempt: Attempt,
    /// The kernel's listen-queue counters across the attempt, where available.
    pub listen_queue: Option<ListenQueueCounters>,
    /// The attempt's packets on the wire, when it was watched (`packets`, `capture`): the
    /// SYN, sent again by the client's kernel, and no answer.
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

impl BacklogReport {
    /// True if the attempt timed out, and did not do so before its deadline.
    pub fn timed_out_at_deadline(&self) -> bool {
        self.attempt.outcome == Outcome::TimedOut && self.attempt.elapsed_us >= self.deadline_us
    }
}

/// Fills a listener's queue, then connects once more with `deadline`.
pub fn connect_to_full_backlog(deadline: Duration) -> std::io::Result<BacklogReport> {
    connect_to_full_backlog_watched(deadline, &Wiretap::off())
}

/// Like [`connect_to_full_backlog`], with the last attempt's packets captured by `tap` (the
/// queue is filled before the capture starts).
pub fn connect_to_full_backlog_watched(
    deadline: Duration,
    tap: &Wiretap,
) -> std::io::Result<BacklogReport> {
    let backlog = 0;
    let full = ListenerWithFullBacklog::new(backlog)?;
    let watch = tap.watch("backlog", &[full.addr().port()]);
    let before = ListenQueueCounters::read().ok();
    let started = Instant::now();
    let result = TcpStream::connect_timeout(&full.addr(), deadline);
    let elapsed = started.elapsed();
    let listen_queue = match (before, ListenQueueCounters::read().ok()) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    Ok(BacklogReport {
        experiment: "backlog",
        target: full.addr(),
        backlog,
        queued_connections: full.queued(),
        deadline_us: u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX),
        attempt: Attempt::record(&result, elapsed),
        listen_queue,
        wire: watch.finish(),
    })
}
