//! `lab-chat server --room`: many clients, each line relayed to everyone else, on an event
//! loop.
//!
//! # Threads for one conversation, an event loop for thousands
//! The one-client chat ([`crate::server`], [`crate::session`]) uses blocking sockets and two
//! threads per conversation: the code reads top to bottom, like a student's, and a thread
//! costs nothing when there is one. A room for a whole school cannot afford that: each
//! thread reserves a stack and each wake-up is a context switch (the threaded room took
//! ~124 MiB of peak memory for 1,000 clients, and 20,000 threads would be needed for
//! 10,000). So the room runs on tokio, the ecosystem's event loop (the design of tokio's own
//! chat example and of mini-redis, with bounded queues), with tokio-rustls: each member is
//! two tasks (reading, writing) and its TLS state, about 20 KiB in all, and two worker
//! threads sleep in `epoll` until some socket is ready. The room's rules are the same code
//! as before (names, queues, limits): only the waiting changed.
//!
//! The homework's chat has one client; a room is where the design questions get sharper:
//! - **Names.** With mutual TLS the name is the client certificate's common name: the
//!   server *knows* who this is, and the name cannot be changed. Without a certificate a
//!   member is `guestN` until it sends `/name NAME` (`lab-chat client --name NAME` does).
//!   One rule ([`check_name`]) applies to every source of names, certificates included:
//!   1 to 32 ASCII letters, digits, `-`, `_` or `.` (no look-alike letters, no control
//!   characters, no spaces or colons), `server` and `guestN` reserved, unique in the room
//!   ignoring case. A second connection with a name already present is turned away.
//! - **Who said it.** A member's line reaches the others as `NAME: text`; the operator's
//!   lines as `server: text` and the room's news as `* …`. No member can produce either:
//!   `server` is reserved, and every member line starts with its valid name.
//! - **Fan-out without stalls.** A line from one member is queued for every other member;
//!   each member has its own writer, so a slow reader only slows its own queue.
//! - **Bounded queues, measured in bytes.** A member whose unsent bytes pass
//!   `--max-backlog` after its writer tried to write is *dropped*: its queue is
//!   abandoned, it gets one notice, everyone else is told. A burst that a member's socket
//!   takes at once never counts against it; one that stays unsent does.
//! - **Crowds.** Joins and leaves are told to everyone only while the room has at most
//!   [`ANNOUNCE_UP_TO`] members, and the welcome names at most 20 of those here: both
//!   would otherwise grow with the square of the room's size.
//! - **Floods.** Each member may send `--max-lines-per-second` lines a second, with bursts
//!   of five seconds' worth (a line costs one more for each KiB past the first); lines past
//!   that are not relayed, and the sender is told how many. The room holds at most
//!   `--max-members`, an address at most `--max-per-address` connections, handshakes are
//!   bounded as in the one-client server ([`crate::server::Admission`]), a member silent
//!   for `--idle-timeout` is disconnected, and the open-files limit is raised at start.
//!   Each member costs one descriptor: [`serve_room`] says how many members the open-files
//!   limit allows.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lab_kit::tls::SessionFacts;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::framing::LineDecoder;
use crate::server::{
    ACCEPT_PAUSE, Admission, AdmissionLimits, RefusalLog, Ticket, failed_accept,
    raise_open_file_limit, refuse,
};
use crate::session::{
    CLOSE_WAIT, ChatEvent, EXIT_WORD, EventSink, Limits, LocalInput, NOTICE_PREFIX, PeerEnd,
    ROOM_WELCOME, broke_rules, classify_read_error,
};
use crate::transport::{HandshakeError, Security};

/// The default limit of bytes waiting for one member after a write: 1 MiB.
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;
/// The default number of members.
pub const DEFAULT_MAX_MEMBERS: usize = 10_000;
/// The default rate of lines one member may send, per second.
pub const DEFAULT_MAX_LINES_PER_SECOND: u32 = 20;
/// The default time a member may stay silent: 15 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A member whose socket accepts nothing for this long is gone, whatever its queue says.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a member at once (small: a room holds thousands of these buffers).
const READ_BUFFER: usize = 4 * 1024;
/// Reads of a member's bytes that are already here gathered into one batch, at most.
const BATCH_READS: usize = 16;
/// Join and leave notices go to everyone while the room has at most this many members. In
/// a crowd they would be most of the traffic, and of the memory: each of N joins told to N
/// members is N² lines (50 million for 10,000 members). The server's own log still shows
/// every join and leave.
pub const ANNOUNCE_UP_TO: usize = 200;
/// The welcome names at most this many of the members already here.
const WELCOME_NAMES: usize = 20;
/// The rule every name obeys, as members are told it.
pub const NAME_RULE: &str = "names are 1 to 32 ASCII letters, digits, '-', '_' or '.'; \
                             `server` and `guestN` are reserved";

/// How a room runs.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    /// Bytes waiting for one member, after a write, before it is dropped.
    pub max_backlog: usize,
    pub max_members: usize,
    /// Lines one member may send per second (bursts of five seconds' worth).
    pub max_lines_per_second: u32,
    pub idle_timeout: Duration,
    pub admission: AdmissionLimits,
}

impl Default for RoomOptions {
    fn default() -> Self {
        RoomOptions {
            tls: None,
            limits: Limits::default(),
            max_backlog: DEFAULT_MAX_BACKLOG,
            max_members: DEFAULT_MAX_MEMBERS,
            max_lines_per_second: DEFAULT_MAX_LINES_PER_SECOND,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            admission: AdmissionLimits::default(),
        }
    }
}

/// Whether `name` may be a member's name (not yet whether it is free): see [`NAME_RULE`].
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let lower = name.to_ascii_lowercase();
    let reserved = lower == "server"
        || lower
            .strip_prefix("guest")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !valid || reserved {
        return Err(NAME_RULE.into());
    }
    Ok(())
}

/// A token bucket: `rate` tokens a second, at most five seconds' worth saved up.
#[derive(Debug)]
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        RateLimit {
            rate,
            tokens: rate * 5.0,
            last: Instant::now(),
        }
    }

    /// Takes `cost` tokens if there are that many.
    fn allow(&mut self, cost: f64) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate * 5.0);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The bytes queued for one room member and not yet written to its socket (counted until
/// the write that carries them has returned). A member whose backlog passes the room's
/// limit after a write was attempted is *dropped*: its queue is abandoned (so a slow client
/// cannot make the server buffer without bound, or stall anyone else) and it gets one
/// notice saying why. A backlog of twice the limit drops it at once, even while a write
/// is still blocked.
#[derive(Debug)]
pub struct Backlog {
    unsent: AtomicUsize,
    limit: usize,
    dropped: Mutex<Option<String>>,
}

impl Backlog {
    /// An empty backlog that may hold `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Backlog {
            unsent: AtomicUsize::new(0),
            limit,
            dropped: Mutex::new(None),
        }
    }

    /// Bytes queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    /// The most bytes that may wait after a write.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts `bytes` more queued bytes; returns the new total.
    pub fn push(&self, bytes: usize) -> usize {
        self.unsent.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    fn sent(&self, bytes: usize) {
        let _ = self
            .unsent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |unsent| {
                Some(unsent.saturating_sub(bytes))
            });
    }

    /// The reason to drop the member, measured after a write: more than the limit unsent.
    fn too_far_behind(&self) -> Option<String> {
        (self.unsent() > self.limit).then(|| self.drop_reason())
    }

    /// What a dropped member is told.
    pub fn drop_reason(&self) -> String {
        format!(
            "more than {} bytes were waiting for you; you were dropped",
            self.limit
        )
    }

    /// Marks the member as dropped, with the reason it will be told.
    pub fn drop_with(&self, reason: String) {
        let mut dropped = self.dropped.lock().unwrap_or_else(PoisonError::into_inner);
        dropped.get_or_insert(reason);
    }

    /// The reason, if the member was dropped.
    pub fn dropped(&self) -> Option<String> {
        self.dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a member's writer task is told to do.
#[derive(Debug)]
enum Outgoing {
    /// Lines for this member (one or more, without the final newline), shared by every
    /// recipient.
    Lines(Arc<str>),
    /// The room closes: our goodbye (`Exit`), then `close_notify`.
    Leave,
    /// Too far behind: one notice, then `close_notify`.
    Drop(String),
    /// The peer broke the rules: one error line, then `close_notify`.
    Error(String),
    /// The peer closed its side: answer with our `close_notify`.
    Close,
    /// The peer vanished: stop at once.
    Abort,
}

/// Where a member's lines go: its writer task, and the count of what waits there.
#[derive(Debug, Clone)]
struct Mailbox {
    tx: UnboundedSender<Outgoing>,
    backlog: Arc<Backlog>,
}

impl Mailbox {
    /// Queues `text` (counted in the backlog until written); the new backlog.
    fn lines(&self, text: Arc<str>) -> usize {
        let unsent = self.backlog.push(text.len() + 1);
        let _ = self.tx.send(Outgoing::Lines(text));
        unsent
    }

    fn tell(&self, text: String) {
        self.lines(Arc::from(text));
    }
}

struct Member {
    id: u64,
    name: String,
    /// The name came from a verified client certificate and cannot be changed.
    certified: bool,
    mailbox: Mailbox,
}

struct Room {
    members: Mutex<Vec<Member>>,
    options: RoomOptions,
    events: EventSink,
    next_guest: AtomicU64,
    stopping: AtomicBool,
}

/// Why a member could not join.
enum JoinRefused {
    Full(usize),
    NameTaken(String),
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `text` (one or more lines) for every member except `from`; drops members
    /// whose backlog reached twice the limit (their writer is stuck).
    fn broadcast(&self, from: Option<u64>, text: &str) {
        // One copy of the text, shared by every member's queue.
        let shared: Arc<str> = Arc::from(text);
        let mut dropped = Vec::new();
        {
            let mut members = self.lock();
            members.retain(|member| {
                if Some(member.id) == from {
                    return true;
                }
                let backlog = &member.mailbox.backlog;
                if member.mailbox.lines(Arc::clone(&shared)) > 2 * backlog.limit() {
                    let reason = backlog.drop_reason();
                    backlog.drop_with(reason.clone());
                    let _ = member.mailbox.tx.send(Outgoing::Drop(reason));
                    dropped.push(member.name.clone());
                    return false;
                }
                !member.mailbox.tx.is_closed()
            });
        }
        for name in dropped {
            self.announce_dropped(&name);
        }
    }

    fn announce_dropped(&self, name: &str) {
        let reason = format!("more than {} bytes behind", self.options.max_backlog);
        (self.events)(ChatEvent::Dropped {
            name: name.to_string(),
            reason: reason.clone(),
        });
        self.broadcast(None, &format!("* {name} was dropped: {reason}"));
    }

    fn name_of(&self, id: u64) -> Option<String> {
        self.lock()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.name.clone())
    }

    /// Adds a member, unless the room is full or the name is taken; returns the first
    /// [`WELCOME_NAMES`] of those already here, and how many they are.
    fn join(&self, member: Member) -> Result<(Vec<String>, usize), JoinRefused> {
        let mut members = self.lock();
        if members.len() >= self.options.max_members {
            return Err(JoinRefused::Full(self.options.max_members));
        }
        if members
            .iter()
            .any(|m| m.name.eq_ignore_ascii_case(&member.name))
        {
            return Err(JoinRefused::NameTaken(member.name));
        }
        let here = members
            .iter()
            .take(WELCOME_NAMES)
            .map(|m| m.name.clone())
            .collect();
        let count = members.len();
        members.push(member);
        Ok((here, count))
    }

    /// Whether joins and leaves are told to everyone (see [`ANNOUNCE_UP_TO`]).
    fn announces(&self) -> bool {
        self.lock().len() <= ANNOUNCE_UP_TO
    }

    /// Removes a member; false if it was already gone (dropped).
    fn remove(&self, id: u64) -> bool {
        let mut members = self.lock();
        let before = members.len();
        members.retain(|m| m.id != id);
        members.len() != before
    }

    /// Handles `/name NEW`: the notice to send back to the member only, if any.
    fn rename(&self, id: u64, wanted: &str) -> Option<String> {
        if let Err(rule) = check_name(wanted) {
            return Some(format!("* {rule}"));
        }
        let from = {
            let mut members = self.lock();
            let taken = members
                .iter()
                .any(|m| m.id != id && m.name.eq_ignore_ascii_case(wanted));
            if taken {
                return Some(format!("* the name {wanted} is taken"));
            }
            let member = members.iter_mut().find(|m| m.id == id)?;
            if member.certified {
                return Some(format!(
                    "* your name comes from your certificate: {}",
                    member.name
                ));
            }
            std::mem::replace(&mut member.name, wanted.to_string())
        };
        (self.events)(ChatEvent::Renamed {
            from: from.clone(),
            to: wanted.to_string(),
        });
        self.broadcast(None, &format!("* {from} is now {wanted}"));
        None
    }

    /// The room closes: every member says goodbye.
    fn close(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for member in self.lock().iter() {
            let _ = member.mailbox.tx.send(Outgoing::Leave);
        }
    }
}

/// The common name in a subject such as `CN=alice, O=socket-lab`.
fn common_name(subject: &str) -> Option<String> {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .map(str::to_string)
}

/// Runs the room on `listener` until the input ends: an event loop (tokio, two worker
/// threads) with one task per member.
pub fn serve_room(
    listener: TcpListener,
    options: RoomOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    events(ChatEvent::Listening { addr });
    match raise_open_file_limit() {
        // One descriptor a member, and a few for the program itself.
        Ok(open_files) => {
            let members_allowed = open_files.saturating_sub(16) as usize;
            if members_allowed < options.max_members {
                events(ChatEvent::Error {
                    error: format!(
                        "the open-files limit ({open_files}, RLIMIT_NOFILE) allows about \
                         {members_allowed} members, fewer than --max-members {}: past them, \
                         the limit, not the room, refuses clients",
                        options.max_members
                    ),
                });
            }
        }
        Err(e) => events(ChatEvent::Error {
            error: format!("could not read or raise the open-files limit: {e}"),
        }),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("room")
        .enable_all()
        .build()?;
    runtime.block_on(run_room(listener, options, input, events))
}

async fn run_room(
    listener: TcpListener,
    options: RoomOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let admission = Arc::new(Admission::new(options.admission));
    let refusals = RefusalLog::start(Arc::clone(&events))?;
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let room = Arc::new(Room {
        members: Mutex::new(Vec::new()),
        options,
        events: Arc::clone(&events),
        next_guest: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
    });
    // The server's own stdin (a blocking read, so a thread) feeds the loop.
    let (typed_tx, mut typed) = unbounded_channel();
    std::thread::Builder::new()
        .name("room-input".into())
        .spawn(move || {
            for line in input {
                if typed_tx.send(line).is_err() {
                    return;
                }
            }
            let _ = typed_tx.send(LocalInput::EndOfInput);
        })?;
    let mut members = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE fails again at once: pause instead of spinning.
                        events(failed_accept(&e));
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                };
                match admission.admit(peer.ip()) {
                    Ok(ticket) => {
                        members.spawn(member(tcp, peer, ticket, Arc::clone(&room), acceptor.clone()));
                    }
                    Err(refusal) => {
                        if let Ok(tcp) = tcp.into_std() {
                            refuse(tcp, peer, &refusal, &refusals);
                        }
                    }
                }
            }
            line = typed.recv() => match line {
                Some(LocalInput::Line(line)) => room.broadcast(None, &format!("server: {line}")),
                Some(LocalInput::Exit | LocalInput::EndOfInput) | None => {
                    room.close();
                    break;
                }
            },
            // Finished members are reaped as they end (the set would otherwise grow).
            Some(_) = members.join_next(), if !members.is_empty() => {}
        }
    }
    // Every member was told to leave: let each finish its goodbye (Exit, close_notify)
    // before the process ends, or the clients would see a truncated session.
    while members.join_next().await.is_some() {}
    Ok(())
}

/// The output of `future` if it is ready at once (without waiting), else `None`.
async fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        output = future => Some(output),
        () = std::future::ready(()) => None,
    }
}

/// A peer that sent nothing for `timeout`.
fn idle(timeout: Duration) -> PeerEnd {
    PeerEnd::BrokeRules {
        error: format!(
            "sent nothing for {} s (the idle timeout)",
            timeout.as_secs_f64()
        ),
    }
}

/// A member's connection, TLS or not.
trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// The cost of a line against the rate limit: one, and one more per KiB past the first.
fn line_cost(line: &str) -> f64 {
    1.0 + (line.len() / 1024) as f64
}

/// The handshake, within the deadline: the stream and what was negotiated.
async fn handshake(
    tcp: tokio::net::TcpStream,
    acceptor: Option<TlsAcceptor>,
    limit: Duration,
) -> Result<(Box<dyn Wire>, Security), HandshakeError> {
    tcp.set_nodelay(true)?;
    let Some(acceptor) = acceptor else {
        return Ok((Box::new(tcp), Security::Plaintext));
    };
    match timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let facts = SessionFacts::of(tls.get_ref().1);
            Ok((Box::new(tls), Security::Tls(facts)))
        }
        Ok(Err(e)) => Err(match e.into_inner() {
            Some(inner) => match inner.downcast::<rustls::Error>() {
                Ok(tls) => HandshakeError::Tls(*tls),
                Err(other) => HandshakeError::Io(std::io::Error::other(other)),
            },
            None => HandshakeError::Closed,
        }),
        Err(_) => Err(HandshakeError::TimedOut(limit)),
    }
}

/// Reads and throws away what the peer still sends, until it closes or `CLOSE_WAIT`
/// passes: waiting for its `close_notify`, and not resetting a connection that still
/// holds our last line.
async fn drain(reader: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    let _ = timeout(CLOSE_WAIT, async {
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One notice, `close_notify`, and a clean hang-up, for a connection that will not join.
async fn turn_away(mut wire: Box<dyn Wire>, notice: &str) {
    let _ = timeout(Duration::from_secs(2), async {
        wire.write_all(format!("{notice}\n").as_bytes()).await?;
        wire.shutdown().await
    })
    .await;
    drain(&mut wire).await;
}

/// One member, from handshake to goodbye.
async fn member(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
    room: Arc<Room>,
    acceptor: Option<TlsAcceptor>,
) {
    let events = Arc::clone(&room.events);
    let limits = room.options.limits;
    let handshook = handshake(tcp, acceptor, limits.handshake_timeout).await;
    // No longer pending; the ticket still counts this connection against its address.
    ticket.settle();
    let (wire, security) = match handshook {
        Ok(handshook) => handshook,
        Err(error) => {
            events(ChatEvent::HandshakeFailed {
                peer,
                error: error.to_string(),
            });
            return;
        }
    };
    events(ChatEvent::SessionStarted {
        peer,
        security: security.clone(),
    });
    let certified_name = match &security {
        Security::Tls(facts) => facts.peer_subject.as_deref().and_then(common_name),
        Security::Plaintext => None,
    };
    let certified = certified_name.is_some();
    let id = room.next_guest.fetch_add(1, Ordering::Relaxed);
    let name = match certified_name {
        Some(name) => match check_name(&name) {
            Ok(()) => name,
            Err(rule) => {
                let shown = crate::framing::escape_controls(&name).into_owned();
                events(ChatEvent::Refused {
                    peer,
                    reason: format!("its certificate's name {shown:?} breaks the name rule"),
                });
                let notice = format!(
                    "* your certificate's name {shown:?} cannot be used in the room: {rule}"
                );
                turn_away(wire, &notice).await;
                return;
            }
        },
        None => format!("guest{id}"),
    };
    let (tx, rx) = unbounded_channel();
    let mailbox = Mailbox {
        tx,
        backlog: Arc::new(Backlog::new(room.options.max_backlog)),
    };
    let joined = room.join(Member {
        id,
        name: name.clone(),
        certified,
        mailbox: mailbox.clone(),
    });
    let (others, already_here) = match joined {
        Ok(joined) => joined,
        Err(refused) => {
            let notice = match refused {
                JoinRefused::Full(max) => {
                    format!("* the room is full (at most {max} members); try again later")
                }
                JoinRefused::NameTaken(name) => {
                    format!("* {name} is already in the room (one connection per certificate)")
                }
            };
            events(ChatEvent::Refused {
                peer,
                reason: notice.trim_start_matches(NOTICE_PREFIX).to_string(),
            });
            turn_away(wire, &notice).await;
            return;
        }
    };
    let (mut reader, writer) = tokio::io::split(wire);
    let mut writing = tokio::spawn(write_member(writer, rx, Arc::clone(&mailbox.backlog)));
    mailbox.tell(if others.is_empty() {
        format!("{ROOM_WELCOME}, {name}; nobody else is here yet")
    } else if already_here > others.len() {
        format!(
            "{ROOM_WELCOME}, {name}; here: {} and {} more",
            others.join(", "),
            already_here - others.len()
        )
    } else {
        format!("{ROOM_WELCOME}, {name}; here: {}", others.join(", "))
    });
    if room.stopping.load(Ordering::SeqCst) {
        // Joined while the room was closing: leave at once (the sweep may have missed us).
        let _ = mailbox.tx.send(Outgoing::Leave);
    }
    events(ChatEvent::Joined { name: name.clone() });
    if room.announces() {
        room.broadcast(Some(id), &format!("* {name} joined"));
    }

    let mut speaker = Speaker {
        id,
        room: Arc::clone(&room),
        mailbox: mailbox.clone(),
        rate: RateLimit::new(room.options.max_lines_per_second),
        name: String::new(),
        batch: String::new(),
        over_rate: 0,
    };
    let mut decoder = LineDecoder::new(limits.max_line);
    let mut buf = vec![0u8; READ_BUFFER];
    let idle_timeout = room.options.idle_timeout;
    let mut said_exit = false;
    // The peer's side, until it ends, or until our writer ends (goodbye, dropped, failed).
    let peer_end = loop {
        let read = tokio::select! {
            read = timeout(idle_timeout, reader.read(&mut buf)) => read,
            _ = &mut writing => {
                // We said goodbye, or dropped the member: wait for its close a little.
                drain(&mut reader).await;
                break None;
            }
        };
        let n = match read {
            Err(_) => break Some(idle(idle_timeout)),
            Ok(Ok(0)) => break Some(PeerEnd::Closed { said_exit }),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => break Some(classify_read_error(&e)),
        };
        // All the lines that are already here (this read, and up to BATCH_READS more that
        // need no waiting: the rest of a TLS record, the next records) are relayed as one
        // batch: one wake-up per recipient, not one per line. No allocation per line
        // either: each is copied once, from the decoder's buffer into the batch.
        speaker.begin();
        let mut end = None;
        let mut chunk = Some(n);
        let mut reads = 0;
        while let Some(n) = chunk.take() {
            decoder.push(&buf[..n]);
            while let Some(line) = decoder.next_line_str() {
                match line {
                    Ok(line) if line.trim() == EXIT_WORD => said_exit = true,
                    Ok(line) => speaker.line(line),
                    Err(error) => {
                        end = Some(broke_rules(&error));
                        break;
                    }
                }
            }
            reads += 1;
            if end.is_some() || reads >= BATCH_READS {
                break;
            }
            match ready_now(reader.read(&mut buf)).await {
                None => {}
                Some(Ok(0)) => end = Some(PeerEnd::Closed { said_exit }),
                Some(Ok(n)) => chunk = Some(n),
                Some(Err(e)) => end = Some(classify_read_error(&e)),
            }
        }
        speaker.finish();
        if end.is_some() {
            break end;
        }
    };
    match peer_end {
        None => {}
        Some(PeerEnd::Closed { .. }) => {
            let _ = mailbox.tx.send(Outgoing::Close);
        }
        Some(PeerEnd::BrokeRules { error }) => {
            events(ChatEvent::DisconnectedPeer {
                reason: error.clone(),
            });
            let _ = mailbox.tx.send(Outgoing::Error(error));
            drain(&mut reader).await;
        }
        Some(PeerEnd::Truncated { detail }) => {
            events(ChatEvent::Truncated { detail });
            let _ = mailbox.tx.send(Outgoing::Abort);
        }
        Some(PeerEnd::TlsFailed { error }) => {
            events(ChatEvent::TlsFailed { error });
            let _ = mailbox.tx.send(Outgoing::Abort);
        }
    }
    if !writing.is_finished() {
        let _ = timeout(WRITE_TIMEOUT, &mut writing).await;
        writing.abort();
    }
    let name = room.name_of(id).unwrap_or(name);
    if room.remove(id) {
        // Dropped by its own writer (too far behind after a write), or gone by itself.
        if mailbox.backlog.dropped().is_some() {
            room.announce_dropped(&name);
        } else {
            events(ChatEvent::LeftRoom { name: name.clone() });
            if room.announces() {
                room.broadcast(None, &format!("* {name} left"));
            }
        }
    }
    drop(ticket);
}

/// A member's lines on their way to the room: the rate limit, `/name`, the `NAME: ` prefix.
/// The lines of one read are gathered into one batch: [`begin`](Self::begin), a
/// [`line`](Self::line) each, [`finish`](Self::finish).
struct Speaker {
    id: u64,
    room: Arc<Room>,
    mailbox: Mailbox,
    rate: RateLimit,
    /// The member's name as the batch began (or after its `/name`).
    name: String,
    batch: String,
    /// Lines of this batch past the rate limit.
    over_rate: usize,
}

impl Speaker {
    fn begin(&mut self) {
        self.name = self.room.name_of(self.id).unwrap_or_default();
        self.batch.clear();
        self.over_rate = 0;
    }

    fn line(&mut self, text: &str) {
        let room = &self.room;
        if !self.rate.allow(line_cost(text)) {
            self.over_rate += 1;
            return;
        }
        if let Some(wanted) = text.strip_prefix("/name ") {
            // What was said before the new name goes out under the old one.
            if !self.batch.is_empty() {
                room.broadcast(Some(self.id), &self.batch);
                self.batch.clear();
            }
            if let Some(notice) = room.rename(self.id, wanted.trim()) {
                self.mailbox.tell(notice);
            }
            self.name = room.name_of(self.id).unwrap_or_default();
            return;
        }
        if !self.batch.is_empty() {
            self.batch.push('\n');
        }
        self.batch.push_str(&self.name);
        self.batch.push_str(": ");
        self.batch.push_str(text);
    }

    fn finish(&mut self) {
        let room = &self.room;
        if !self.batch.is_empty() {
            room.broadcast(Some(self.id), &self.batch);
            self.batch.clear();
        }
        if self.over_rate > 0 {
            self.mailbox.tell(format!(
                "* slow down: {} of your lines were not relayed (at most {} lines a second, \
                 a line costing one more per KiB)",
                self.over_rate, room.options.max_lines_per_second
            ));
            self.over_rate = 0;
        }
    }
}

/// A member's writer task: takes every line already queued (up to 64 KiB) into one write,
/// and ends with a goodbye, a notice, or nothing, as it is told.
async fn write_member(
    mut writer: impl AsyncWrite + Unpin,
    mut queue: UnboundedReceiver<Outgoing>,
    backlog: Arc<Backlog>,
) {
    let mut bytes = Vec::new();
    loop {
        let Some(first) = queue.recv().await else {
            return;
        };
        bytes.clear();
        let mut next = Some(first);
        let mut end = None;
        while let Some(item) = next.take().or_else(|| queue.try_recv().ok()) {
            match item {
                Outgoing::Lines(text) => {
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.push(b'\n');
                    if bytes.len() >= 64 * 1024 {
                        break;
                    }
                }
                other => {
                    end = Some(other);
                    break;
                }
            }
        }
        // Marked as dropped (here, or by the room): the queue is abandoned.
        if let Some(reason) = backlog.dropped() {
            end = Some(Outgoing::Drop(reason));
            bytes.clear();
        }
        if !bytes.is_empty() {
            let written = timeout(WRITE_TIMEOUT, async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
            // The bytes are with the kernel now; what is still queued is really unsent.
            backlog.sent(bytes.len());
            if let Some(reason) = backlog.too_far_behind() {
                backlog.drop_with(reason);
            }
        }
        let last_words = match end {
            None => continue,
            Some(Outgoing::Leave) => Some(format!("{EXIT_WORD}\n")),
            Some(Outgoing::Drop(reason)) => Some(format!("{NOTICE_PREFIX}{reason}\n")),
            Some(Outgoing::Error(error)) => {
                Some(format!("{NOTICE_PREFIX}error: {error}; disconnecting\n"))
            }
            Some(Outgoing::Close) => None,
            Some(Outgoing::Abort | Outgoing::Lines(_)) => return,
        };
        let _ = timeout(Duration::from_secs(2), async {
            if let Some(words) = last_words {
                writer.write_all(words.as_bytes()).await?;
            }
            // close_notify, then FIN.
            writer.shutdown().await
        })
        .await;
        return;
    }
}
