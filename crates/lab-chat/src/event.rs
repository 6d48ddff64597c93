//! What the chat tells its user: every event of a server, a client or a room as one value
//! ([`ChatEvent`]), shown as one line of text (its `Display`) or one JSON object (its
//! `Serialize`), and the [`EventSink`] the library reports them through. The library never
//! prints: the program decides where events go (the terminal, a test's log, the demo).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::framing::escape_controls;
use crate::transport::Security;

/// Something worth telling the user, as one line of text (or one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    Listening {
        addr: SocketAddr,
    },
    CertificatesCreated {
        dir: PathBuf,
    },
    Connected {
        peer: SocketAddr,
    },
    SessionStarted {
        peer: SocketAddr,
        #[serde(flatten)]
        security: Security,
    },
    PeerLine {
        text: String,
    },
    RoomLine {
        text: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    Notice {
        text: String,
    },
    PeerLeft {
        said_exit: bool,
        secure: bool,
    },
    Truncated {
        detail: String,
    },
    DisconnectedPeer {
        reason: String,
    },
    TlsFailed {
        error: String,
    },
    YouLeft,
    Busy {
        peer: SocketAddr,
    },
    HandshakeFailed {
        peer: SocketAddr,
        error: String,
    },
    Refused {
        peer: SocketAddr,
        reason: String,
    },
    /// Several connections refused for one reason within a second (see
    /// [`crate::server::RefusalLog`]).
    RefusedMany {
        count: usize,
        latest: SocketAddr,
        reason: String,
    },
    NotSent {
        reason: String,
    },
    Waiting,
    Joined {
        name: String,
    },
    LeftRoom {
        name: String,
    },
    Dropped {
        name: String,
        reason: String,
    },
    Error {
        error: String,
    },
}

impl std::fmt::Display for ChatEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatEvent::Listening { addr } => {
                write!(f, "{}{addr}", lab_kit::ready::LISTENING_PREFIX)
            }
            ChatEvent::CertificatesCreated { dir } => write!(
                f,
                "created a lab CA and certificates in {} (clients use --ca {})",
                dir.display(),
                dir.join("ca.pem").display()
            ),
            ChatEvent::Connected { peer } => write!(f, "connected: {peer}"),
            ChatEvent::SessionStarted { peer, security } => match security {
                Security::Tls(facts) => write!(
                    f,
                    "session with {peer}: {}, {}, peer certificate: {}",
                    facts.protocol,
                    facts.cipher_suite,
                    escape_controls(
                        facts
                            .peer_subject
                            .as_deref()
                            .unwrap_or("none (not asked for)")
                    )
                ),
                Security::Plaintext => write!(
                    f,
                    "session with {peer}: PLAINTEXT TCP, no encryption, no authentication"
                ),
            },
            ChatEvent::PeerLine { text } => write!(f, "peer: {}", escape_controls(text)),
            ChatEvent::RoomLine { text } => write!(f, "{}", escape_controls(text)),
            ChatEvent::Renamed { from, to } => write!(f, "* {from} is now {to}"),
            ChatEvent::Notice { text } => write!(f, "{}", escape_controls(text)),
            ChatEvent::PeerLeft { said_exit, secure } => {
                let how = match (said_exit, secure) {
                    (true, true) => "said Exit, then closed the session with close_notify",
                    (false, true) => "closed the session with close_notify",
                    (true, false) => "said Exit, then closed the TCP connection",
                    (false, false) => "closed the TCP connection",
                };
                write!(f, "peer left ({how})")
            }
            ChatEvent::Truncated { detail } => write!(
                f,
                "session truncated: the peer vanished without close_notify ({detail}); \
                 the last lines may be missing (or the peer is a Python program whose \
                 blocking SSLSocket.close() sends no close_notify: only unwrap() does)"
            ),
            ChatEvent::DisconnectedPeer { reason } => {
                write!(f, "disconnected the peer: {reason}")
            }
            ChatEvent::TlsFailed { error } if error.contains("CertificateRequired") => write!(
                f,
                "TLS failed: {error} (the server requires a client certificate: \
                 pass --cert and --key)"
            ),
            ChatEvent::TlsFailed { error } => write!(f, "TLS failed: {error}"),
            ChatEvent::YouLeft => write!(f, "you left (sent Exit and close_notify)"),
            ChatEvent::Busy { peer } => {
                write!(f, "turned away {peer}: busy with another client")
            }
            ChatEvent::HandshakeFailed { peer, error } => {
                write!(
                    f,
                    "TLS handshake with {peer} failed: {}",
                    escape_controls(error)
                )
            }
            ChatEvent::Refused { peer, reason } => write!(f, "refused {peer}: {reason}"),
            ChatEvent::RefusedMany {
                count,
                latest,
                reason,
            } => write!(
                f,
                "refused {count} connections (the latest from {latest}): {reason}"
            ),
            ChatEvent::NotSent { reason } => write!(f, "not sent: {reason}"),
            ChatEvent::Waiting => write!(f, "waiting for the next client"),
            ChatEvent::Joined { name } => write!(f, "* {name} joined"),
            ChatEvent::LeftRoom { name } => write!(f, "* {name} left"),
            ChatEvent::Dropped { name, reason } => write!(f, "* {name} was dropped: {reason}"),
            ChatEvent::Error { error } => write!(f, "error: {error}"),
        }
    }
}

/// Where a program's events go: printed by the CLI, collected by tests and the demo.
pub type EventSink = Arc<dyn Fn(ChatEvent) + Send + Sync>;
