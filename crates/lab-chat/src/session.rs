//! One chat session: lines both ways at once, and a clear account of how it ended.
//!
//! A session has two threads. The **reader thread** blocks on the network
//! ([`WireReader::read`]), cuts what arrives into lines ([`LineDecoder`]) and reports each
//! one as a [`ChatEvent`] the moment it is complete. The **session loop** (the calling
//! thread) waits for [`SessionCommand`]s: a line the local user typed, the user leaving,
//! or the reader thread reporting how the peer's side ended. Neither waits for the other,
//! so either person can type at any time: full duplex, not the strict alternation of
//! `input(); send(); recv()`.
//!
//! The protocol on top of the bytes is small:
//! - a message is a UTF-8 line (see [`crate::framing`]);
//! - a line `Exit` (the homework's word) is a goodbye; the sender then closes;
//! - a line starting with `* ` is a notice from the server (busy, error, room news).
//!
//! How a session ends is reported precisely, because each case means something different:
//! the peer left politely (goodbye, `close_notify`), the session was *truncated* (the peer
//! vanished without `close_notify`: a crash, a cut cable, or an attacker), or the peer
//! broke the rules (an over-long line, invalid UTF-8) and was disconnected with one
//! clear error line.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use crate::event::{ChatEvent, EventSink};
use crate::framing::{FrameError, LineDecoder};
use crate::transport::{Established, Security, WireReader};

/// The goodbye line (the homework's word for leaving).
pub const EXIT_WORD: &str = "Exit";
/// Lines from the server that start with this are notices, not a person's words.
pub const NOTICE_PREFIX: &str = "* ";
/// The notice a second client gets while the server is busy with the first.
pub const BUSY_NOTICE: &str =
    "* busy: the server is already chatting with another client; try again later";
/// The first notice a room sends a new member; from then on lines are shown as they come.
pub const ROOM_WELCOME: &str = "* welcome to the room";
/// How long a leaving side waits for the peer's own `close_notify` before hanging up.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// The limits a session enforces on its peer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest accepted line, in bytes.
    pub max_line: usize,
    /// Longest time a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: crate::framing::DEFAULT_MAX_LINE,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What the local user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalInput {
    /// A line to send.
    Line(String),
    /// Typed `Exit`: leave this session.
    Exit,
    /// Closed standard input (Ctrl-D): leave, and there will be no more input.
    EndOfInput,
}

impl LocalInput {
    /// Classifies one line typed by the user (without its newline).
    pub fn from_typed(line: &str) -> Self {
        if line.trim() == EXIT_WORD {
            LocalInput::Exit
        } else {
            LocalInput::Line(line.to_string())
        }
    }
}

/// What a session loop is told to do.
#[derive(Debug)]
pub enum SessionCommand {
    /// Send this line to the peer.
    Send(String),
    /// The local user leaves: goodbye, `close_notify`, close.
    Leave,
    /// The reader thread saw the peer's side end.
    PeerEnded(PeerEnd),
}

/// How the peer's side of the session ended, as the reader thread saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum PeerEnd {
    /// A clean end: `close_notify` under TLS, FIN in plaintext.
    Closed { said_exit: bool },
    /// The connection ended without `close_notify` (or was reset).
    Truncated { detail: String },
    /// The peer broke the framing rules.
    BrokeRules { error: String },
    /// TLS failed after the handshake (a bad record, an alert from the peer).
    TlsFailed { error: String },
}

/// How a session ended, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum SessionEnd {
    /// The local user left.
    WeLeft,
    /// The local user closed standard input.
    InputEnded,
    /// The peer's side ended (how is inside).
    Peer(PeerEnd),
    /// Sending failed.
    SendFailed { error: String },
}

/// The facts of a finished session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    pub end: SessionEnd,
    pub lines_received: u64,
    pub lines_sent: u64,
    /// Notices (`* …` lines) the peer sent, e.g. the busy notice.
    pub notices: Vec<String>,
}

impl SessionReport {
    /// A session that could not even start.
    fn not_started(error: String) -> Self {
        SessionReport {
            end: SessionEnd::SendFailed { error },
            lines_received: 0,
            lines_sent: 0,
            notices: Vec::new(),
        }
    }
}

/// What the reader thread counted.
struct ReaderTally {
    lines: u64,
    notices: Vec<String>,
}

/// How the program around a session takes part in it.
pub struct SessionHooks {
    /// Sees the peer's lines, in order, all those completed by one read at once (a
    /// one-to-one chat prints each as `peer: …`).
    pub on_lines: Box<dyn FnMut(Vec<String>) + Send>,
    /// Whether the peer is a server, whose `* ` lines are notices (busy, errors, room
    /// news). A client's `* ` lines are ordinary lines, shown as `peer: * …`: otherwise a
    /// client could print what looks like the server's own messages on the server's screen.
    pub peer_is_server: bool,
}

impl SessionHooks {
    /// Each line of the peer becomes a [`ChatEvent::PeerLine`]; `* ` lines are notices
    /// (the client's view of a server; a server sets `peer_is_server` to false).
    pub fn print_lines(events: &EventSink) -> Self {
        let events = Arc::clone(events);
        SessionHooks {
            on_lines: Box::new(move |lines| {
                for text in lines {
                    events(ChatEvent::PeerLine { text });
                }
            }),
            peer_is_server: true,
        }
    }
}

impl std::fmt::Debug for SessionHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHooks")
            .field("peer_is_server", &self.peer_is_server)
            .finish_non_exhaustive()
    }
}

/// A handle to post commands into a running session.
pub type SessionHandle = Sender<SessionCommand>;

/// Runs one session until it ends. `commands` carries the local user's input; the reader
/// thread posts into `commands_tx` (a clone of its sender) when the peer's side ends.
/// `on_line` sees each of the peer's lines (the room relays them; a one-to-one chat prints
/// them as `peer: …`).
pub fn run_session(
    established: Established,
    limits: Limits,
    commands: Receiver<SessionCommand>,
    commands_tx: Sender<SessionCommand>,
    events: EventSink,
    hooks: SessionHooks,
) -> SessionReport {
    let SessionHooks {
        on_lines,
        peer_is_server,
    } = hooks;
    let Established {
        reader,
        mut writer,
        security,
        ..
    } = established;
    let secure = matches!(security, Security::Tls(_));
    let reader_events = Arc::clone(&events);
    let reader_thread = thread::Builder::new()
        .name("chat-reader".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            read_lines(
                reader,
                limits,
                peer_is_server,
                commands_tx,
                reader_events,
                on_lines,
            )
        });
    let reader_thread = match reader_thread {
        Ok(handle) => handle,
        Err(e) => {
            writer.abort();
            return SessionReport::not_started(format!("could not start the reader thread: {e}"));
        }
    };

    let mut lines_sent = 0;
    let wait_for_peer_close = |writer: &mut crate::transport::WireWriter| {
        // We said goodbye and sent close_notify; the peer answers with its own.
        // Wait for it a little, then hang up regardless. The deadline is fixed when the
        // wait starts: commands still arriving (lines typed after Exit) are ignored and must not extend it, or a peer that never
        // answers would keep this session, and its thread, alive as long as others talk.
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match commands.recv_timeout(left) {
                Ok(SessionCommand::PeerEnded(_)) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        writer.abort();
    };
    let mut pending: Option<SessionCommand> = None;
    // The bytes of one write, kept to reuse the allocation.
    let mut bytes = Vec::new();
    let end = loop {
        let command = match pending.take() {
            Some(command) => command,
            None => match commands.recv() {
                Ok(command) => command,
                Err(_) => break SessionEnd::InputEnded,
            },
        };
        match command {
            SessionCommand::Send(_) => {
                // Take every line already waiting (up to 64 KiB): one TLS record and one
                // write for many lines (a paste, a script).
                bytes.clear();
                let mut next = Some(command);
                let mut lines = 0;
                while bytes.len() < 64 * 1024 {
                    match next.take().map(Ok).unwrap_or_else(|| commands.try_recv()) {
                        Ok(SessionCommand::Send(line)) => {
                            bytes.extend_from_slice(line.as_bytes());
                            bytes.push(b'\n');
                            lines += 1;
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = writer.write_all(&bytes) {
                    writer.abort();
                    break SessionEnd::SendFailed {
                        error: lab_kit::errors::ErrorFacts::of(&e).summary(),
                    };
                }
                lines_sent += lines;
            }
            SessionCommand::Leave => {
                let _ = writer.write_all(format!("{EXIT_WORD}\n").as_bytes());
                let _ = writer.close();
                events(ChatEvent::YouLeft);
                wait_for_peer_close(&mut writer);
                break SessionEnd::WeLeft;
            }
            SessionCommand::PeerEnded(end) => {
                match &end {
                    PeerEnd::Closed { said_exit } => {
                        events(ChatEvent::PeerLeft {
                            said_exit: *said_exit,
                            secure,
                        });
                        // Answer the peer's close_notify with ours, politely.
                        let _ = writer.close();
                    }
                    PeerEnd::Truncated { detail } => events(ChatEvent::Truncated {
                        detail: detail.clone(),
                    }),
                    PeerEnd::BrokeRules { error } => {
                        events(ChatEvent::DisconnectedPeer {
                            reason: error.clone(),
                        });
                        // One clear error line for the peer, then a clean close.
                        let _ = writer.set_write_timeout(Some(Duration::from_secs(2)));
                        let notice = format!("{NOTICE_PREFIX}error: {error}; disconnecting\n");
                        let _ = writer.write_all(notice.as_bytes());
                        let _ = writer.close();
                        writer.drain_then_abort(CLOSE_WAIT);
                    }
                    PeerEnd::TlsFailed { error } => events(ChatEvent::TlsFailed {
                        error: error.clone(),
                    }),
                }
                writer.abort();
                break SessionEnd::Peer(end);
            }
        }
    };
    writer.abort();
    let tally = reader_thread.join().unwrap_or(ReaderTally {
        lines: 0,
        notices: Vec::new(),
    });
    SessionReport {
        end,
        lines_received: tally.lines,
        lines_sent,
        notices: tally.notices,
    }
}

/// The reader thread: network bytes in, lines and one final [`PeerEnd`] out.
fn read_lines(
    mut reader: WireReader,
    limits: Limits,
    peer_is_server: bool,
    commands_tx: Sender<SessionCommand>,
    events: EventSink,
    mut on_lines: Box<dyn FnMut(Vec<String>) + Send>,
) -> ReaderTally {
    let mut decoder = LineDecoder::new(limits.max_line);
    let mut buf = vec![0u8; 16 * 1024];
    let mut tally = ReaderTally {
        lines: 0,
        notices: Vec::new(),
    };
    let mut said_exit = false;
    let mut in_room = false;
    let mut batch: Vec<String> = Vec::new();
    let end = 'session: loop {
        // Lines completed by the previous read go out together, before we block again.
        if !batch.is_empty() {
            on_lines(std::mem::take(&mut batch));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break PeerEnd::Closed { said_exit },
            Ok(n) => n,
            Err(e) => break classify_read_error(&e),
        };
        decoder.push(&buf[..n]);
        while let Some(line) = decoder.next_line() {
            match line {
                Ok(line) if line.trim() == EXIT_WORD => said_exit = true,
                Ok(line) if peer_is_server && line.starts_with(NOTICE_PREFIX) => {
                    if !batch.is_empty() {
                        on_lines(std::mem::take(&mut batch));
                    }
                    if line.starts_with(ROOM_WELCOME) {
                        in_room = true;
                    }
                    tally.notices.push(line.clone());
                    events(ChatEvent::Notice { text: line });
                }
                Ok(line) if in_room => {
                    // A room's lines already say who spoke: `alice: hello`.
                    tally.lines += 1;
                    events(ChatEvent::RoomLine { text: line });
                }
                Ok(line) => {
                    tally.lines += 1;
                    batch.push(line);
                }
                Err(error) => break 'session broke_rules(&error),
            }
        }
    };
    if !batch.is_empty() {
        on_lines(batch);
    }
    let _ = commands_tx.send(SessionCommand::PeerEnded(end));
    tally
}

pub(crate) fn broke_rules(error: &FrameError) -> PeerEnd {
    PeerEnd::BrokeRules {
        error: error.to_string(),
    }
}

/// Truncation, reset, and TLS failures, told apart.
pub(crate) fn classify_read_error(error: &io::Error) -> PeerEnd {
    let facts = lab_kit::errors::ErrorFacts::of(error);
    match error.kind() {
        io::ErrorKind::UnexpectedEof => PeerEnd::Truncated {
            detail: "the TCP connection ended with a bare FIN".into(),
        },
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => PeerEnd::Truncated {
            detail: format!("connection reset, {}", facts.summary()),
        },
        io::ErrorKind::InvalidData => PeerEnd::TlsFailed {
            error: error.to_string(),
        },
        _ => PeerEnd::Truncated {
            detail: facts.summary(),
        },
    }
}

/// A pair of channel ends for a session's commands.
pub fn command_channel() -> (Sender<SessionCommand>, Receiver<SessionCommand>) {
    mpsc::channel()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// After our goodbye, a peer that never closes its side is hung up on after
    /// [`CLOSE_WAIT`], even while commands keep arriving (a room keeps relaying lines to a
    /// member that is leaving): they must not restart the wait.
    #[test]
    fn a_peer_that_never_answers_our_goodbye_is_hung_up_on_while_lines_keep_coming() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        let established = crate::transport::plaintext(ours).unwrap();
        let (commands_tx, commands) = command_channel();
        let session_over = Arc::new(AtomicBool::new(false));
        // Lines keep coming every 100 ms, for at most 60 s (ten times CLOSE_WAIT and more).
        let feeder = {
            let (commands_tx, session_over) = (commands_tx.clone(), Arc::clone(&session_over));
            thread::spawn(move || {
                commands_tx.send(SessionCommand::Leave).unwrap();
                for _ in 0..600 {
                    if session_over.load(Ordering::SeqCst) {
                        return true;
                    }
                    let _ = commands_tx.send(SessionCommand::Send("still talking".into()));
                    thread::sleep(Duration::from_millis(100));
                }
                false
            })
        };
        let report = run_session(
            established,
            Limits::default(),
            commands,
            commands_tx,
            Arc::new(|_| {}),
            SessionHooks {
                on_lines: Box::new(|_| {}),
                peer_is_server: false,
            },
        );
        session_over.store(true, Ordering::SeqCst);
        assert_eq!(report.end, SessionEnd::WeLeft);
        assert!(
            feeder.join().unwrap(),
            "the session waited for the peer's close as long as lines kept coming"
        );
        // The peer got our goodbye, then end of stream.
        let mut received = String::new();
        peer.read_to_string(&mut received).unwrap();
        assert_eq!(received, "Exit\n");
    }
}
