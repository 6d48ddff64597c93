//! Lab 5: a secure chat, one client and one server, that really is secure.
//!
//! The homework asks for "a simple socket program with one client and one server
//! communicating with each other, using a secure chat system". The typical submission
//! sends plaintext over TCP, lets only one side talk at a time, assumes one `recv` is one
//! message, and forgets that the peer can leave. This crate is the program those
//! submissions should have been, and the experiments that show why each property matters:
//!
//! - [`transport`]: TLS 1.3 (rustls, ring) or bare TCP, split for full duplex;
//! - [`framing`]: lines out of a byte stream, with limits;
//! - [`session`]: one conversation, both ways at once, and how it ended; [`event`]: what
//!   the chat tells its user, as text or JSON;
//! - [`server`] and [`client`]: the two programs; [`keys`]: where certificates come from;
//! - [`terminal`]: typing that survives incoming lines, when a person types in a terminal;
//! - [`eavesdrop`]: a relay in the middle that reads (and can cut) the wire;
//! - [`room`]: many clients on an event loop; [`bench`]: the speed, next to openssl and ncat;
//! - [`demo`]: the chapter for the tour and `lab-chat demo` (experiments, then narration);
//! - [`app`]: the `lab-chat` program (its command line, standard input, exit codes).

pub mod app;
pub mod bench;
pub mod client;
pub mod demo;
pub mod eavesdrop;
mod error;
pub mod event;
pub mod framing;
pub mod keys;
pub mod on_the_wire;
pub mod room;
pub mod server;
pub mod session;
pub mod terminal;
pub mod transport;

pub use demo::{chapter, chapter_watched};
pub use error::Error;

/// Chapter 5 of the tour: the question, its answer, and how to run it (`socket-lab chat`,
/// `lab-chat demo`).
pub const CHAPTER: lab_capture::Chapter = lab_capture::Chapter {
    slug: "chat",
    number: 5,
    question: "a secure chat, one client and one server. What makes it secure?",
    summary: "a secure chat (TLS vs plaintext, an eavesdropper, an impostor)",
    answer: "\"Secure\" means four things, and each one was just shown failing without it. \
    Confidentiality: the eavesdropper read every plaintext line and no TLS line. \
    Integrity: the attacker rewrote a plaintext order undetected, while a TLS record \
    changed by one bit was refused; even the end is authenticated (a cut without \
    close_notify was reported as truncated; in plaintext it looked like a goodbye). \
    Server authentication: the client verified the chain to the lab CA and the name \
    localhost, and refused the impostor before sending a word. Client authentication: \
    with --require-client-cert (mutual TLS) the server knows who the client is, and \
    turns away a client without a certificate. \
    Encryption without verification is not security: it is a private conversation \
    with whoever answered. And a chat also needs full duplex, framing and a clear \
    ending, or it is not much of a chat.",
    elsewhere: "TLS is the same on every system; what differs is around it. On a Windows console \
    asyncio cannot read stdin (read it in a thread, as examples/chat/secure/ does), and \
    Python from python.org on macOS trusts no CA until \"Install Certificates.command\" \
    is run; given cafile=ca.pem, every system trusts exactly the lab CA. Sources: \
    docs/05-secure-chat.md, \"On your machine\".",
    docs: "docs/05-secure-chat.md",
    twin: lab_kit::twin::Twin {
        script: "q5_secure_chat.py",
        needs_lab_certificates: true,
    },
    probes: PROBES,
    run: |n, probe, tap| Ok(chapter_watched(n, probe, tap)?),
};

/// The probes this lab runs under strace (none: its evidence is the wire itself).
pub const PROBES: &[(&str, lab_kit::probe::ProbeFn)] = &[];
