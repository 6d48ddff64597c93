//! The chat server: one client at a time (as the homework asks), or a room with `--room`.
//!
//! The accept loop never stops accepting. While a session runs, a second client is not
//! left hanging in the listen queue (where its `connect` would succeed and then nothing
//! would happen, a puzzling failure): it is accepted, gets the TLS handshake, one line
//! [`BUSY_NOTICE`](crate::session::BUSY_NOTICE), and a clean close. A peer that misbehaves
//! (never finishes its handshake, sends an endless line) only ever affects its own
//! connection, because each connection has its own thread and its own deadlines.
//!
//! # Bounded work for strangers
//! Accepting costs nothing, but a handshake costs a thread and CPU, so a flood of
//! connections must not cost a thread each. The [`Admission`] counts connections that have
//! not finished their handshake (or are being told "busy"): at most `--max-pending` at once
//! (64) and at most `--max-per-address` from one IP address; past either, the *newest*
//! connection is closed at once and the server prints `refused …` with the reason (in
//! summary: one line per reason per second with a count, told by a thread of its own, so
//! that a flood, or a log nobody reads, never stalls the accept loop). A real
//! client is served as soon as the flood ends (or its idle connections reach the handshake
//! timeout).
//!
//! **The slot policy.** The one session slot is taken only by a connection that *completed*
//! its TLS handshake. An idle TCP connection that never starts TLS holds a pending place,
//! never the slot: it cannot make a real client hear "busy".
//!
//! The local user's input (the server's stdin) is routed to whichever session is current;
//! `Exit` ends that session and the server waits for the next client (`--once`: exits),
//! closing stdin ends the session and the server.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::Error;
use crate::session::{
    BUSY_NOTICE, ChatEvent, EventSink, Limits, LocalInput, SessionCommand, SessionHooks,
    command_channel, run_session,
};
use crate::transport::{self, Established, HandshakeError};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `None` runs the chat in plaintext (`--plaintext`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    /// Exit after the first session (a completed handshake) instead of waiting for the
    /// next client.
    pub once: bool,
    /// How many connections may wait for their handshake, in all and per address.
    pub admission: AdmissionLimits,
}

/// Binds the listening socket, with an error that says what to do.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })
}

#[derive(Debug, Default)]
struct ServerState {
    /// The running session's command sender, if one runs.
    current: Option<Sender<SessionCommand>>,
    stopping: bool,
}

#[derive(Debug, Default)]
struct Shared(Mutex<ServerState>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An address that reaches `listening` from this machine (for waking our own `accept`).
pub fn local_address_of(listening: SocketAddr) -> SocketAddr {
    match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listening.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listening.port()).into(),
        _ => listening,
    }
}

/// `accept` has no timeout and no cancel: the simplest portable way to wake it is to
/// connect to ourselves, after setting the flag the accept loop checks.
fn wake_accept(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&local_address_of(addr), Duration::from_secs(2));
}

/// A failed `accept` (EMFILE, ECONNABORTED…) is that connection's failure: report it and
/// go on. Running out of file descriptors (EMFILE) fails again at once, so pause instead
/// of spinning, and let connections close meanwhile.
fn after_failed_accept(error: &std::io::Error, events: &EventSink) {
    events(failed_accept(error));
    thread::sleep(ACCEPT_PAUSE);
}

/// How long the accept loop pauses after a failed `accept`.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The event for a failed `accept`; running out of descriptors says whose limit it is.
pub(crate) fn failed_accept(error: &std::io::Error) -> ChatEvent {
    let out_of_files = matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    ChatEvent::Error {
        error: format!(
            "accept failed: {}{}",
            lab_kit::errors::ErrorFacts::of(error).summary(),
            if out_of_files {
                "; the open-files limit (RLIMIT_NOFILE), not the server, refuses this client"
            } else {
                ""
            }
        ),
    }
}

/// TLS handshake (or nothing, in plaintext) on an accepted connection.
pub fn establish(
    tcp: TcpStream,
    tls: &Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
) -> Result<Established, HandshakeError> {
    // Small chat lines must leave at once, not wait for Nagle's algorithm (lab 4).
    tcp.set_nodelay(true)?;
    match tls {
        Some(config) => transport::accept_tls(tcp, Arc::clone(config), limits.handshake_timeout),
        None => Ok(transport::plaintext(tcp)?),
    }
}

/// Serves clients on `listener`, one at a time, until the input ends (or, with `once`,
/// after the first session). Reports everything through `events`; the first event is
/// [`ChatEvent::Listening`].
///
/// Each accepted connection gets a thread for its handshake, but only while fewer than
/// `admission`'s limits are pending (in all, and from its address): past them it is closed
/// at once, with a [`ChatEvent::Refused`] line here. The session slot is taken only by a
/// connection that completed its handshake; so an idle connection that never starts TLS
/// costs one pending place until the handshake timeout, and never makes a real client
/// hear "busy".
pub fn serve(
    listener: TcpListener,
    options: ServerOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    events(ChatEvent::Listening { addr });
    let shared = Arc::new(Shared::default());
    let admission = Arc::new(Admission::new(options.admission));
    let refusals = RefusalLog::start(Arc::clone(&events))?;

    // The local user's lines go to the current session.
    {
        let shared = Arc::clone(&shared);
        let events = Arc::clone(&events);
        thread::Builder::new()
            .name("chat-input".into())
            .spawn(move || route_input(input, &shared, &events, addr))?;
    }

    for accepted in listener.incoming() {
        if shared.lock().stopping {
            break;
        }
        let Some((tcp, peer, ticket)) = admit(accepted, &admission, &refusals, &events) else {
            continue;
        };
        let (shared, options, sink) = (Arc::clone(&shared), options.clone(), Arc::clone(&events));
        let spawned = thread::Builder::new()
            .name("chat-connection".into())
            .stack_size(256 * 1024)
            .spawn(move || connection(tcp, peer, ticket, &shared, &options, addr, &sink));
        // The thread is not joined: the session's own slot wakes this loop when it ends
        // (with `--once`, or after end of input), so by then the goodbye is done.
        if let Err(e) = spawned {
            events(ChatEvent::Error {
                error: format!("could not start a thread for {peer}: {e}"),
            });
        }
    }
    Ok(())
}

/// One accepted connection: its handshake, then either the session or the busy notice.
fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
    shared: &Arc<Shared>,
    options: &ServerOptions,
    addr: SocketAddr,
    events: &EventSink,
) {
    let Some(established) = handshake(
        tcp,
        peer,
        &mut ticket,
        &options.tls,
        &options.limits,
        events,
    ) else {
        return;
    };
    let (commands_tx, commands) = command_channel();
    {
        let mut state = shared.lock();
        if state.current.is_some() || state.stopping {
            drop(state);
            events(ChatEvent::Busy { peer });
            turn_away(established, BUSY_NOTICE);
            return;
        }
        state.current = Some(commands_tx.clone());
    }
    // The slot is freed when this thread ends, however it ends.
    let _slot = SessionSlot {
        shared: Arc::clone(shared),
        once: options.once,
        addr,
        events: Arc::clone(events),
    };
    events(ChatEvent::Connected { peer });
    events(ChatEvent::SessionStarted {
        peer,
        security: established.security.clone(),
    });
    run_session(
        established,
        options.limits,
        commands,
        commands_tx,
        Arc::clone(events),
        SessionHooks {
            peer_is_server: false,
            ..SessionHooks::print_lines(events)
        },
    );
}

/// The server's one session slot, held by the session thread: dropping it (the session
/// ended, or its thread panicked or never started) frees the slot, so the next client is
/// served instead of being told "busy" forever, and with `--once` stops the server.
struct SessionSlot {
    shared: Arc<Shared>,
    once: bool,
    addr: SocketAddr,
    events: EventSink,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.current = None;
        if self.once || state.stopping {
            state.stopping = true;
            drop(state);
            wake_accept(self.addr);
        } else {
            drop(state);
            (self.events)(ChatEvent::Waiting);
        }
    }
}

/// Routes the local user's input to the current session.
fn route_input(input: Receiver<LocalInput>, shared: &Shared, events: &EventSink, addr: SocketAddr) {
    loop {
        // A closed channel is the end of input too.
        let typed = input.recv().unwrap_or(LocalInput::EndOfInput);
        let mut state = shared.lock();
        let current = state.current.clone();
        match typed {
            LocalInput::Line(line) => match current {
                Some(session) => {
                    let _ = session.send(SessionCommand::Send(line));
                }
                None => events(ChatEvent::NotSent {
                    reason: "no client is connected".into(),
                }),
            },
            LocalInput::Exit => {
                if let Some(session) = current {
                    let _ = session.send(SessionCommand::Leave);
                }
            }
            LocalInput::EndOfInput => {
                state.stopping = true;
                drop(state);
                match current {
                    // The session thread wakes the accept loop when it has closed.
                    Some(session) => {
                        let _ = session.send(SessionCommand::Leave);
                    }
                    None => wake_accept(addr),
                }
                return;
            }
        }
    }
}

/// An accepted connection, its peer, and its place among the admitted; `None` (after
/// saying why) when `accept` failed or the connection is refused.
pub(crate) fn admit(
    accepted: std::io::Result<TcpStream>,
    admission: &Arc<Admission>,
    refusals: &RefusalLog,
    events: &EventSink,
) -> Option<(TcpStream, SocketAddr, Ticket)> {
    let tcp = match accepted {
        Ok(tcp) => tcp,
        Err(e) => {
            after_failed_accept(&e, events);
            return None;
        }
    };
    let peer = tcp.peer_addr().ok()?;
    match admission.admit(peer.ip()) {
        Ok(ticket) => Some((tcp, peer, ticket)),
        Err(refusal) => {
            refuse(tcp, peer, &refusal, refusals);
            None
        }
    }
}

/// The handshake of an admitted connection; a failure is reported. Either way the
/// connection's pending place is given back (its address still counts while it lives).
pub(crate) fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: &mut Ticket,
    tls: &Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    events: &EventSink,
) -> Option<Established> {
    let established = establish(tcp, tls, limits);
    ticket.settle();
    match established {
        Ok(established) => Some(established),
        Err(error) => {
            events(ChatEvent::HandshakeFailed {
                peer,
                error: error.to_string(),
            });
            None
        }
    }
}

/// Sends one notice over an established session (TLS or not) and hangs up cleanly: the
/// busy notice, a full room, a name the room cannot accept.
pub(crate) fn turn_away(mut established: Established, notice: &str) {
    let writer = &mut established.writer;
    let _ = writer.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = writer.write_all(format!("{notice}\n").as_bytes());
    let _ = writer.close();
    writer.drain_then_abort(Duration::from_secs(3));
}

/// Closes a connection refused before its handshake (there is no TLS session yet to
/// carry a notice), and counts it in the refusal log.
pub(crate) fn refuse(tcp: TcpStream, peer: SocketAddr, refusal: &Refusal, log: &RefusalLog) {
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    log.refused(peer, refusal);
}

/// How often the refusal log tells what it counted.
pub const REFUSAL_SUMMARY_PERIOD: Duration = Duration::from_secs(1);

/// Refused connections, told in summary: the first refusal of a quiet spell at once (as
/// `refused ADDR: reason`), then at most one line per reason per
/// [`REFUSAL_SUMMARY_PERIOD`], with a count. A flood of thousands of connections makes a
/// few lines, not thousands. Counting a refusal takes a lock for a moment and never
/// writes: a thread of its own tells them, so a log that cannot be written (stdout a pipe
/// nobody reads) never stalls the accept loop; it only delays the summary.
#[derive(Debug)]
pub struct RefusalLog {
    shared: Arc<RefusalShared>,
}

#[derive(Debug)]
struct RefusalShared {
    tally: Mutex<RefusalTally>,
    wake: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct RefusalTally {
    /// Per reason: how many, and the latest peer.
    counted: Vec<(String, usize, SocketAddr)>,
    closed: bool,
}

impl RefusalShared {
    fn lock(&self) -> MutexGuard<'_, RefusalTally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RefusalLog {
    /// Starts the thread that tells refusals to `events`.
    pub fn start(events: EventSink) -> std::io::Result<Self> {
        let shared = Arc::new(RefusalShared {
            tally: Mutex::new(RefusalTally::default()),
            wake: std::sync::Condvar::new(),
        });
        let teller = Arc::clone(&shared);
        thread::Builder::new()
            .name("refusal-log".into())
            .spawn(move || tell_refusals(&teller, &events))?;
        Ok(RefusalLog { shared })
    }

    /// Counts one refused connection (never blocks on output).
    pub fn refused(&self, peer: SocketAddr, refusal: &Refusal) {
        let reason = refusal.to_string();
        let mut tally = self.shared.lock();
        match tally.counted.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, count, latest)) => {
                *count += 1;
                *latest = peer;
            }
            None => tally.counted.push((reason, 1, peer)),
        }
        drop(tally);
        self.shared.wake.notify_one();
    }
}

impl Drop for RefusalLog {
    /// What is counted is still told; then the thread ends.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// The refusal log's thread: waits for a refusal, tells what was counted, pauses.
fn tell_refusals(shared: &RefusalShared, events: &EventSink) {
    loop {
        let (counted, closed) = {
            let mut tally = shared.lock();
            while tally.counted.is_empty() && !tally.closed {
                tally = shared
                    .wake
                    .wait(tally)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (std::mem::take(&mut tally.counted), tally.closed)
        };
        for (reason, count, latest) in counted {
            events(if count == 1 {
                ChatEvent::Refused {
                    peer: latest,
                    reason,
                }
            } else {
                ChatEvent::RefusedMany {
                    count,
                    latest,
                    reason,
                }
            });
        }
        if closed {
            return;
        }
        // At most one line per reason per period; a closing log ends the pause early.
        let tally = shared.lock();
        let _ = shared
            .wake
            .wait_timeout_while(tally, REFUSAL_SUMMARY_PERIOD, |t| !t.closed);
    }
}

/// Limits on connections that have not earned a place yet: how many may be pending (in
/// their handshake, or being told "busy") at once, and how many one address may hold
/// (pending, or in the room).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_pending: usize,
    pub max_per_address: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_pending: DEFAULT_MAX_PENDING,
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
        }
    }
}

/// Connections at once in their handshake (or being told "busy"); more are closed at once.
pub const DEFAULT_MAX_PENDING: usize = 64;
/// Connections at once from one IP address (pending, or members of a room): half the
/// pending places, so that one address can never hold all of them. (A class behind one
/// NAT address needs a larger `--max-per-address`.)
pub const DEFAULT_MAX_PER_ADDRESS: usize = DEFAULT_MAX_PENDING / 2;

/// Why a connection was closed before its handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the limit of {limit} connections waiting for their handshake is reached (the newest \
         is refused)"
    )]
    TooManyPending { limit: usize },
    #[error("the limit of {limit} connections from {ip} is reached")]
    TooManyFromAddress { ip: IpAddr, limit: usize },
}

#[derive(Debug, Default)]
struct AdmissionState {
    pending: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Counts pending connections and connections per address; see [`AdmissionLimits`].
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<AdmissionState>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            state: Mutex::new(AdmissionState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pending place for a connection from `ip`, or why not. The place is given back
    /// when the [`Ticket`] is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut state = self.lock();
        if state.pending >= self.limits.max_pending {
            return Err(Refusal::TooManyPending {
                limit: self.limits.max_pending,
            });
        }
        let from_ip = state.per_address.entry(ip).or_default();
        if *from_ip >= self.limits.max_per_address {
            return Err(Refusal::TooManyFromAddress {
                ip,
                limit: self.limits.max_per_address,
            });
        }
        *from_ip += 1;
        state.pending += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            ip,
            pending: true,
        })
    }
}

/// One admitted connection's place: pending until [`Ticket::settle`], counted against its
/// address until dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    pending: bool,
}

impl Ticket {
    /// The handshake is over: free the pending place (the address still counts).
    pub fn settle(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.admission.lock().pending -= 1;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle();
        let mut state = self.admission.lock();
        if let Some(count) = state.per_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.per_address.remove(&self.ip);
            }
        }
    }
}

/// Raises this process's limit of open files (`RLIMIT_NOFILE`) as far as it is allowed
/// (the hard limit): each client costs descriptors, and the usual soft limit of 1,024
/// would stop a room long before the machine does. Returns the limit now in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn refusals_are_counted_and_told_in_summary_without_losing_one() {
        let (tx, told) = mpsc::channel();
        let tx = Mutex::new(tx);
        let log = RefusalLog::start(Arc::new(move |event| {
            let _ = tx.lock().unwrap().send(event);
        }))
        .unwrap();
        let refusal = Refusal::TooManyPending { limit: 4 };
        let started = std::time::Instant::now();
        for port in 1000..1100 {
            log.refused(SocketAddr::from(([127, 0, 0, 1], port)), &refusal);
        }
        // Dropping the log tells what is still counted; the thread then ends.
        drop(log);
        let seconds = started.elapsed().as_secs() as usize;
        let mut counted = 0;
        let mut lines = 0;
        while counted < 100 {
            let event = told.recv_timeout(Duration::from_secs(30)).unwrap();
            lines += 1;
            counted += match event {
                ChatEvent::Refused { reason, .. } => {
                    assert_eq!(reason, refusal.to_string());
                    1
                }
                ChatEvent::RefusedMany {
                    count,
                    latest,
                    reason,
                } => {
                    assert_eq!(reason, refusal.to_string());
                    assert!(latest.port() >= 1000 && latest.port() < 1100);
                    count
                }
                other => panic!("unexpected event {other:?}"),
            };
        }
        assert_eq!(counted, 100);
        // A hundred refusals at once are a few lines, not a hundred: the first at once, at
        // most one more per second the loop took, and the rest when the log is dropped.
        assert!(lines <= 3 + seconds, "{lines} lines for 100 refusals");
    }
}
