//! The chat server: one client at a time (as the homework asks), or a room with `--room`.
//!
//! The accept loop never stops accepting. While a session runs, a second client is not
//! left hanging in the listen queue (where its `connect` would succeed and then nothing
//! would happen, a puzzling failure): it is accepted, gets the TLS handshake, one line
//! [`BUSY_NOTICE`](crate::session::BUSY_NOTICE), and a clean close. A peer that misbehaves
//! (never finishes its handshake, sends an endless line) only ever affects its own
//! connection, because each connection has its own thread and its own deadlines.
//!
//! The local user's input (the server's stdin) is routed to whichever session is current;
//! `Exit` ends that session and the server waits for the next client (`--once`: exits),
//! closing stdin ends the session and the server.

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
    /// Exit after the first connection instead of waiting for the next client.
    pub once: bool,
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
pub(crate) fn after_failed_accept(error: &std::io::Error, events: &EventSink) {
    events(ChatEvent::Error {
        error: format!(
            "accept failed: {}",
            lab_kit::errors::ErrorFacts::of(error).summary()
        ),
    });
    thread::sleep(Duration::from_millis(50));
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
/// after the first connection). Reports everything through `events`; the first event is
/// [`ChatEvent::Listening`].
pub fn serve(
    listener: TcpListener,
    options: ServerOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    events(ChatEvent::Listening { addr });
    let shared = Arc::new(Shared::default());

    // The local user's lines go to the current session.
    {
        let shared = Arc::clone(&shared);
        let events = Arc::clone(&events);
        thread::Builder::new()
            .name("chat-input".into())
            .spawn(move || route_input(input, &shared, &events, addr))?;
    }

    let mut session_thread: Option<thread::JoinHandle<()>> = None;
    for accepted in listener.incoming() {
        if shared.lock().stopping {
            break;
        }
        let tcp = match accepted {
            Ok(tcp) => tcp,
            Err(e) => {
                after_failed_accept(&e, &events);
                continue;
            }
        };
        let Ok(peer) = tcp.peer_addr() else { continue };
        let mut state = shared.lock();
        if state.current.is_some() {
            drop(state);
            let (tls, limits, events) = (options.tls.clone(), options.limits, Arc::clone(&events));
            let _ = thread::Builder::new()
                .name("chat-busy".into())
                .spawn(move || turn_away(tcp, peer, &tls, &limits, &events));
            continue;
        }
        let (commands_tx, commands) = command_channel();
        state.current = Some(commands_tx.clone());
        drop(state);
        if let Some(previous) = session_thread.take() {
            let _ = previous.join();
        }
        // The slot is freed when the session thread ends, however it ends; or at once, if
        // the thread cannot even start (the closure that owns it is dropped).
        let slot = SessionSlot {
            shared: Arc::clone(&shared),
            once: options.once,
            addr,
            events: Arc::clone(&events),
        };
        let (options, session_events) = (options.clone(), Arc::clone(&events));
        let spawned = thread::Builder::new()
            .name("chat-session".into())
            .spawn(move || {
                let _slot = slot;
                let events = session_events;
                events(ChatEvent::Connected { peer });
                match establish(tcp, &options.tls, &options.limits) {
                    Ok(established) => {
                        events(ChatEvent::SessionStarted {
                            peer,
                            security: established.security.clone(),
                        });
                        run_session(
                            established,
                            options.limits,
                            commands,
                            commands_tx,
                            Arc::clone(&events),
                            SessionHooks {
                                peer_is_server: false,
                                ..SessionHooks::print_lines(&events)
                            },
                        );
                    }
                    Err(error) => events(ChatEvent::HandshakeFailed {
                        peer,
                        error: error.to_string(),
                    }),
                }
            });
        match spawned {
            Ok(handle) => session_thread = Some(handle),
            Err(e) => events(ChatEvent::Error {
                error: format!("could not start a thread for {peer}: {e}"),
            }),
        }
    }
    if let Some(session) = session_thread {
        let _ = session.join();
    }
    Ok(())
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

/// Tells a second client, over its own TLS session, that the server is busy.
fn turn_away(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: &Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    events: &EventSink,
) {
    match establish(tcp, tls, limits) {
        Ok(mut established) => {
            events(ChatEvent::Busy { peer });
            let writer = &mut established.writer;
            let _ = writer.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = writer.write_all(format!("{BUSY_NOTICE}\n").as_bytes());
            let _ = writer.close();
            writer.drain_then_abort(Duration::from_secs(3));
        }
        Err(error) => events(ChatEvent::HandshakeFailed {
            peer,
            error: error.to_string(),
        }),
    }
}
