//! The errors of lab-chat, each saying what failed and what to do about it: certificates,
//! a port, a target, a handshake, a busy server, a key folder. A peer that misbehaves is
//! not an error of the program: it is a session end ([`crate::session::PeerEnd`]),
//! reported as an event.

use std::io;
use std::net::SocketAddr;

use lab_kit::errors::ErrorFacts;

use crate::transport;

/// Everything that can go wrong in lab-chat, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pki(#[from] lab_kit::pki::PkiError),
    #[error("{0}; run `lab-chat keygen` or point --ca/--certs at the lab's files")]
    TlsSetup(#[from] lab_kit::tls::TlsSetupError),
    #[error("could not listen on {addr}: {}; choose another port with --listen", ErrorFacts::of(.source).describe())]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("`{target}` is not HOST:PORT (e.g. localhost:2000)")]
    Target { target: String },
    #[error(transparent)]
    Resolve(#[from] lab_kit::addr::ResolveError),
    #[error("could not connect to {target}: {}; is `lab-chat server` running there?", ErrorFacts::of(.source).describe())]
    Connect { target: String, source: io::Error },
    #[error("TLS handshake with {target} failed: {error} ({hint})")]
    Handshake {
        target: String,
        error: transport::HandshakeError,
        hint: &'static str,
    },
    #[error(
        "{} holds some of the lab's certificate files but not {missing}; make a fresh set \
         with `lab-chat keygen --out {} --force`, or point --certs at a complete folder",
        .dir.display(), .dir.display()
    )]
    IncompleteCerts {
        dir: std::path::PathBuf,
        missing: String,
    },
    #[error(
        "refusing the key folder {}: {reason}; whoever can write there could replace the \
         CA or the server's key",
        .dir.display()
    )]
    UnsafeDir {
        dir: std::path::PathBuf,
        reason: String,
    },
    #[error("the server is busy with another client; try again later")]
    Busy,
    #[error("{}", ErrorFacts::of(.0).describe())]
    Io(#[from] io::Error),
    /// Writing the narration failed (for example, stdout was closed).
    #[error("could not write the narration: {0}")]
    Narration(#[source] io::Error),
    #[error("the demo went wrong: {0}")]
    Demo(String),
}
