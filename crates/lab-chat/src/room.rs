//! `lab-chat server --room`: many clients, each line relayed to everyone else.
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
//! - **Floods.** Each member may send `--max-lines-per-second` lines a second, with bursts
//!   of five seconds' worth (a line costs one more for each KiB past the first); lines past
//!   that are not relayed, and the sender is told how many. The room holds at most
//!   `--max-members`, an address at most `--max-per-address` connections, handshakes are
//!   bounded as in the one-client server ([`crate::server::Admission`]), a member silent
//!   for `--idle-timeout` is disconnected, and the open-files limit is raised at start.
//!   Each member costs two threads and three descriptors: [`serve_room`] says how many
//!   members the open-files limit allows.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;
use crate::server::{
    Admission, AdmissionLimits, Ticket, admit, handshake, local_address_of, raise_open_file_limit,
    turn_away,
};
use crate::session::{
    Backlog, ChatEvent, EventSink, Limits, LocalInput, ROOM_WELCOME, SessionCommand, SessionHooks,
    command_channel, run_session,
};
use crate::transport::Security;

/// The default limit of bytes waiting for one member after a write: 1 MiB.
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;
/// The default number of members.
pub const DEFAULT_MAX_MEMBERS: usize = 500;
/// The default rate of lines one member may send, per second.
pub const DEFAULT_MAX_LINES_PER_SECOND: u32 = 20;
/// The default time a member may stay silent: 15 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A member whose socket accepts nothing for this long is gone, whatever its queue says.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The rule every name obeys, as members are told it.
pub const NAME_RULE: &str = "names are 1 to 32 ASCII letters, digits, '-', '_' or '.'; \
                             `server` and `guestN` are reserved";

/// How a room runs.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The room sets `idle_timeout` from [`RoomOptions::idle_timeout`].
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

struct Member {
    id: u64,
    name: String,
    /// The name came from a verified client certificate and cannot be changed.
    certified: bool,
    commands: Sender<SessionCommand>,
    backlog: Arc<Backlog>,
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
        let bytes = text.len() + 1;
        // One copy of the text, shared by every member's queue.
        let shared: Arc<str> = Arc::from(text);
        let mut dropped = Vec::new();
        {
            let mut members = self.lock();
            members.retain(|member| {
                if Some(member.id) == from {
                    return true;
                }
                if member.backlog.push(bytes) > 2 * member.backlog.limit() {
                    let reason = member.backlog.drop_reason();
                    member.backlog.drop_with(reason.clone());
                    let _ = member.commands.send(SessionCommand::Drop(reason));
                    dropped.push(member.name.clone());
                    return false;
                }
                member
                    .commands
                    .send(SessionCommand::Relay(Arc::clone(&shared)))
                    .is_ok()
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

    /// Adds a member, unless the room is full or the name is taken; returns who was
    /// already here.
    fn join(&self, member: Member) -> Result<Vec<String>, JoinRefused> {
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
        let here = members.iter().map(|m| m.name.clone()).collect();
        members.push(member);
        Ok(here)
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
}

/// The common name in a subject such as `CN=alice, O=socket-lab`.
fn common_name(subject: &str) -> Option<String> {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .map(str::to_string)
}

/// Runs the room on `listener` until the input ends.
pub fn serve_room(
    listener: TcpListener,
    mut options: RoomOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    events(ChatEvent::Listening { addr });
    options.limits.idle_timeout = Some(options.idle_timeout);
    match raise_open_file_limit() {
        // Three descriptors a member, and some for pending connections and the program.
        Ok(open_files) => {
            let members_allowed = (open_files.saturating_sub(64) / 3) as usize;
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
    let admission = Arc::new(Admission::new(options.admission));
    let room = Arc::new(Room {
        members: Mutex::new(Vec::new()),
        options,
        events: Arc::clone(&events),
        next_guest: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
    });
    {
        let room = Arc::clone(&room);
        thread::Builder::new()
            .name("room-input".into())
            .spawn(move || room_input(input, &room, addr))?;
    }
    let mut members: Vec<thread::JoinHandle<()>> = Vec::new();
    for accepted in listener.incoming() {
        if room.stopping.load(Ordering::SeqCst) {
            break;
        }
        members.retain(|member| !member.is_finished());
        let Some((tcp, peer, ticket)) = admit(accepted, &admission, &events) else {
            continue;
        };
        let room = Arc::clone(&room);
        let spawned = thread::Builder::new()
            .name("room-member".into())
            .stack_size(256 * 1024)
            .spawn(move || member(tcp, peer, ticket, &room));
        match spawned {
            Ok(handle) => members.push(handle),
            Err(e) => events(ChatEvent::Error {
                error: format!("could not start a thread for a member: {e}"),
            }),
        }
    }
    // Every member was told to leave: let each finish its goodbye (Exit, close_notify)
    // before the process ends, or the clients would see a truncated session.
    for member in members {
        let _ = member.join();
    }
    Ok(())
}

/// The server's own stdin: its lines go to everyone; end of input closes the room.
fn room_input(input: Receiver<LocalInput>, room: &Room, addr: SocketAddr) {
    loop {
        match input.recv().unwrap_or(LocalInput::EndOfInput) {
            LocalInput::Line(line) => room.broadcast(None, &format!("server: {line}")),
            LocalInput::Exit | LocalInput::EndOfInput => {
                room.stopping.store(true, Ordering::SeqCst);
                for member in room.lock().iter() {
                    let _ = member.commands.send(SessionCommand::Leave);
                }
                let _ = TcpStream::connect_timeout(&local_address_of(addr), Duration::from_secs(2));
                return;
            }
        }
    }
}

/// The cost of a line against the rate limit: one, and one more per KiB past the first.
fn line_cost(line: &str) -> f64 {
    1.0 + (line.len() / 1024) as f64
}

/// One member, from handshake to goodbye.
fn member(tcp: TcpStream, peer: SocketAddr, mut ticket: Ticket, room: &Arc<Room>) {
    let events = Arc::clone(&room.events);
    let options = &room.options;
    let Some(established) = handshake(
        tcp,
        peer,
        &mut ticket,
        &options.tls,
        &options.limits,
        &events,
    ) else {
        return;
    };
    let _ = established.writer.set_write_timeout(Some(WRITE_TIMEOUT));
    events(ChatEvent::SessionStarted {
        peer,
        security: established.security.clone(),
    });
    let certified_name = match &established.security {
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
                turn_away(
                    established,
                    &format!(
                        "* your certificate's name {shown:?} cannot be used in the room: \
                         {rule}"
                    ),
                );
                return;
            }
        },
        None => format!("guest{id}"),
    };
    let (commands_tx, commands) = command_channel();
    let backlog = Arc::new(Backlog::new(options.max_backlog));
    let joined = room.join(Member {
        id,
        name: name.clone(),
        certified,
        commands: commands_tx.clone(),
        backlog: Arc::clone(&backlog),
    });
    let others = match joined {
        Ok(others) => others,
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
                reason: notice.trim_start_matches("* ").to_string(),
            });
            turn_away(established, &notice);
            return;
        }
    };
    let welcome = if others.is_empty() {
        format!("{ROOM_WELCOME}, {name}; nobody else is here yet")
    } else {
        format!("{ROOM_WELCOME}, {name}; here: {}", others.join(", "))
    };
    let _ = commands_tx.send(SessionCommand::Send(welcome));
    if room.stopping.load(Ordering::SeqCst) {
        // Joined while the room was closing: leave at once (the sweep may have missed us).
        let _ = commands_tx.send(SessionCommand::Leave);
    }
    events(ChatEvent::Joined { name: name.clone() });
    room.broadcast(Some(id), &format!("* {name} joined"));

    let relay_room = Arc::clone(room);
    let reply = commands_tx.clone();
    let mut rate = RateLimit::new(options.max_lines_per_second);
    let max_lines_per_second = options.max_lines_per_second;
    // All the lines one read completed are relayed as one batch: one wake-up per
    // recipient, not one per line.
    let on_lines = Box::new(move |lines: Vec<String>| {
        let mut name = relay_room.name_of(id).unwrap_or_default();
        let mut batch = String::new();
        let mut over_rate = 0usize;
        for text in lines {
            if !rate.allow(line_cost(&text)) {
                over_rate += 1;
                continue;
            }
            if let Some(wanted) = text.strip_prefix("/name ") {
                if !batch.is_empty() {
                    relay_room.broadcast(Some(id), &std::mem::take(&mut batch));
                }
                if let Some(notice) = relay_room.rename(id, wanted.trim()) {
                    let _ = reply.send(SessionCommand::Send(notice));
                }
                name = relay_room.name_of(id).unwrap_or_default();
                continue;
            }
            if !batch.is_empty() {
                batch.push('\n');
            }
            batch.push_str(&name);
            batch.push_str(": ");
            batch.push_str(&text);
        }
        if !batch.is_empty() {
            relay_room.broadcast(Some(id), &batch);
        }
        if over_rate > 0 {
            let _ = reply.send(SessionCommand::Send(format!(
                "* slow down: {over_rate} of your lines were not relayed (at most \
                 {max_lines_per_second} lines a second, a line costing one more per KiB)"
            )));
        }
    });
    // The room's own log shows how members ended badly; their lines and goodbyes are
    // already told as room news.
    let log = Arc::clone(&events);
    let quiet: EventSink = Arc::new(move |event| {
        if matches!(
            event,
            ChatEvent::Truncated { .. }
                | ChatEvent::DisconnectedPeer { .. }
                | ChatEvent::TlsFailed { .. }
        ) {
            log(event);
        }
    });
    run_session(
        established,
        options.limits,
        commands,
        commands_tx,
        quiet,
        SessionHooks {
            on_lines,
            backlog: Some(Arc::clone(&backlog)),
            peer_is_server: false,
        },
    );
    let name = room.name_of(id).unwrap_or(name);
    if room.remove(id) {
        // Dropped by its own writer (too far behind after a write), or gone by itself.
        if backlog.dropped().is_some() {
            room.announce_dropped(&name);
        } else {
            events(ChatEvent::LeftRoom { name: name.clone() });
            room.broadcast(None, &format!("* {name} left"));
        }
    }
    drop(ticket);
}
