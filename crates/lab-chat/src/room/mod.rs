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
//!   each member has its own writer, so a slow reader only slows its own queue. The lines
//!   of one read (and of the reads already waiting) travel as one batch, stored once and
//!   shared by every queue: one wake-up per recipient, not one per line; each writer then
//!   encrypts everything queued for its member in one write (its own TLS session: the
//!   encryption cannot be shared).
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_kit::tls::SessionFacts;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

mod members;
mod rules;

pub use rules::{Backlog, check_name};

use members::{JoinRefused, Mailbox, Member, Outgoing, Room, Speaker, write_member};
use rules::RateLimit;

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
