//! Experiment 3: refused is not the only failure; silence is another.
//!
//! A listening socket has an *accept queue* (the backlog): connections whose handshake the
//! kernel has completed, waiting for the program to call `accept()`. When that queue is
//! full, Linux does not refuse new connections: it silently drops their SYN, hoping the
//! program will soon make room. The client's kernel hears nothing and sends the SYN again
//! 1 s after the first, then 3 s, 7 s, 15 s … after it ([`crate::retransmissions`]). A
//! `connect()` with a deadline gives up at the deadline with `TimedOut`: not in
//! microseconds, but exactly as long as you were willing to wait. The default deadline
//! (2.5 s) is long enough to see the first resent SYN, counted by the socket's own
//! `TCP_INFO` and by the kernel's `RetransSegs`.
//!
//! This is also what a firewall that drops packets looks like from the client: no answer
//! at all. Not everywhere, and not every "nobody there": Windows *refuses* a connection
//! when the accept queue is full, and a host that is down on the client's own subnet
//! fails differently (no ARP answer: `EHOSTUNREACH`). See `docs/01-connection-refused.md`.
//!
//! The kernel counts each dropped SYN in `ListenOverflows` and `ListenDrops`
//! (`/proc/net/netstat`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use lab_kit::kernel::{ListenQueueCounters, TcpCounters};
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
    /// How many times the client's SYN was sent again, from its socket's `TCP_INFO`.
    pub resent_segments: Option<u32>,
    /// When each resend was seen, in microseconds after the first SYN (`TCP_INFO` read every
    /// [`RESEND_WATCH_STEP`] while waiting, so each is late by at most that much).
    pub resent_at_us: Vec<u64>,
    /// This machine's `tcp_syn_linear_timeouts` (Linux 6.5 and later), if it has one.
    pub syn_linear_timeouts: Option<u32>,
    /// `RetransSegs` (`/proc/net/snmp`) across the attempt: system-wide, "at least".
    pub retrans_segs: Option<i64>,
    /// This machine's `tcp_syn_retries`, which sets how long Linux keeps resending.
    pub syn_retries: Option<u32>,
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
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    let before = ListenQueueCounters::read().ok();
    let tcp_before = TcpCounters::read().ok();
    let started = Instant::now();
    let mut resent_at = Vec::new();
    let result = connect_until(&client, full.addr(), deadline, |at| resent_at.push(at));
    let elapsed = started.elapsed();
    let resent_segments = crate::retransmissions::resent_segments(&client);
    // A resend the kernel made after the last look (a busy machine can fire the timer late)
    // is seen only now: record it at this time, so that every counted resend has a time.
    let counted = resent_segments.map_or(0, |n| n as usize);
    while resent_at.len() < counted {
        resent_at.push(started.elapsed());
    }
    let listen_queue = match (before, ListenQueueCounters::read().ok()) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    let retrans_segs = match (tcp_before, TcpCounters::read().ok()) {
        (Some(before), Some(after)) => Some(after.since(&before).retrans_segs),
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
        resent_segments,
        resent_at_us: resent_at
            .into_iter()
            .map(lab_kit::narrate::saturating_micros)
            .collect(),
        syn_linear_timeouts: crate::retransmissions::syn_linear_timeouts(),
        retrans_segs,
        syn_retries: crate::retransmissions::syn_retries(),
        wire: watch.finish(),
    })
}

/// How often the waiting client reads its socket's `TCP_INFO` to see a resent SYN.
pub const RESEND_WATCH_STEP: Duration = Duration::from_millis(10);

/// Connects `socket` to `addr`, waiting until `deadline` has passed, never less. (socket2's
/// `connect_timeout` rounds its last wait down to whole milliseconds and may return a little
/// early; the lesson here is "exactly as long as you were willing to wait".) While it waits
/// it reads the socket's `TCP_INFO` every [`RESEND_WATCH_STEP`] and calls `resent` with the
/// time since the first SYN whenever the kernel has sent the SYN again.
fn connect_until(
    socket: &Socket,
    addr: SocketAddr,
    deadline: Duration,
    mut resent: impl FnMut(Duration),
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let started = Instant::now();
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let mut resends_seen = 0;
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let seen = crate::retransmissions::resent_segments(socket).unwrap_or(0);
        while resends_seen < seen {
            resends_seen += 1;
            resent(started.elapsed());
        }
        let left = left.min(RESEND_WATCH_STEP);
        let mut pollfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // Round up, so that the wait is never shorter than what is left.
        let wait_ms =
            libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pollfd` is a valid, initialised array of one element for the whole call.
        let ready = unsafe { libc::poll(&raw mut pollfd, 1, wait_ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready > 0 {
            return match socket.take_error()? {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
    }
}
