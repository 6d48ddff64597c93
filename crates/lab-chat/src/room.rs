//! `lab-chat server --room`: many clients, each line relayed to everyone else.
//!
//! The homework's chat has one client; a room is where the design questions get sharper:
//! - **Names.** With mutual TLS the name is the client certificate's common name: the
//!   server *knows* who this is, and the name cannot be changed. Without a certificate a
//!   member is `guestN` until it sends `/name NAME` (`lab-chat client --name NAME` does).
//! - **Fan-out without stalls.** A line from one member is queued for every other member;
//!   each member has its own writer, so a slow reader only slows its own queue.
//! - **Bounded queues.** A member whose queue passes `--max-queue` lines is *dropped*: its
//!   queue is abandoned, it gets one notice, everyone else is told. Without the bound one
//!   client that stops reading would make the server buffer without limit.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::Error;
use crate::server::{after_failed_accept, establish, local_address_of};
use crate::session::{
    Backlog, ChatEvent, EventSink, Limits, LocalInput, ROOM_WELCOME, SessionCommand, SessionHooks,
    command_channel, run_session,
};
use crate::transport::Security;

/// The default limit of lines queued for one member.
pub const DEFAULT_MAX_QUEUE: usize = 1000;
/// A member whose socket accepts nothing for this long is gone, whatever its queue says.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a room runs.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    /// Lines queued for one member before it is dropped.
    pub max_queue: usize,
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
    max_queue: usize,
    events: EventSink,
    next_guest: AtomicU64,
    stopping: AtomicBool,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `text` (one or more lines) for every member except `from`; drops members
    /// too far behind.
    fn broadcast(&self, from: Option<u64>, text: &str) {
        let lines = text.split('\n').count();
        // One copy of the text, shared by every member's queue.
        let shared: Arc<str> = Arc::from(text);
        let mut dropped = Vec::new();
        {
            let mut members = self.lock();
            members.retain(|member| {
                if Some(member.id) == from {
                    return true;
                }
                if member.backlog.push(lines) > self.max_queue {
                    let reason = format!(
                        "more than {} lines were waiting for you; you were dropped",
                        self.max_queue
                    );
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
            let reason = format!("more than {} lines behind", self.max_queue);
            (self.events)(ChatEvent::Dropped {
                name: name.clone(),
                reason: reason.clone(),
            });
            self.broadcast(None, &format!("* {name} was dropped: {reason}"));
        }
    }

    fn names(&self) -> Vec<String> {
        self.lock().iter().map(|m| m.name.clone()).collect()
    }

    fn name_of(&self, id: u64) -> Option<String> {
        self.lock()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.name.clone())
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
        let valid = !wanted.is_empty()
            && wanted.len() <= 32
            && wanted
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Some("* names are 1 to 32 letters, digits, '-', '_' or '.'".into());
        }
        let from = {
            let mut members = self.lock();
            if members.iter().any(|m| m.name == wanted) {
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
    options: RoomOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    events(ChatEvent::Listening { addr });
    let room = Arc::new(Room {
        members: Mutex::new(Vec::new()),
        max_queue: options.max_queue,
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
        let tcp = match accepted {
            Ok(tcp) => tcp,
            Err(e) => {
                after_failed_accept(&e, &events);
                continue;
            }
        };
        let (room, options) = (Arc::clone(&room), options.clone());
        let spawned = thread::Builder::new()
            .name("room-member".into())
            .stack_size(256 * 1024)
            .spawn(move || member(tcp, &room, &options));
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

/// One member, from handshake to goodbye.
fn member(tcp: TcpStream, room: &Arc<Room>, options: &RoomOptions) {
    let Ok(peer) = tcp.peer_addr() else { return };
    let events = Arc::clone(&room.events);
    let established = match establish(tcp, &options.tls, &options.limits) {
        Ok(established) => established,
        Err(error) => {
            events(ChatEvent::HandshakeFailed {
                peer,
                error: error.to_string(),
            });
            return;
        }
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
    let name = certified_name.unwrap_or_else(|| format!("guest{id}"));
    let (commands_tx, commands) = command_channel();
    let backlog = Arc::new(Backlog::default());
    let others = room.names();
    room.lock().push(Member {
        id,
        name: name.clone(),
        certified,
        commands: commands_tx.clone(),
        backlog: Arc::clone(&backlog),
    });
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
    // All the lines one read completed are relayed as one batch: one wake-up per
    // recipient, not one per line.
    let on_lines = Box::new(move |lines: Vec<String>| {
        let mut name = relay_room.name_of(id).unwrap_or_default();
        let mut batch = String::new();
        for text in lines {
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
            backlog: Some(backlog),
            peer_is_server: false,
        },
    );
    let name = room.name_of(id).unwrap_or(name);
    if room.remove(id) {
        events(ChatEvent::LeftRoom { name: name.clone() });
        room.broadcast(None, &format!("* {name} left"));
    }
}
