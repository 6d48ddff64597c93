//! Labs 2 and 4 of socket-lab: an echo server and client, and the experiments that answer
//!
//! - **Question 2**: what is `localhost`, and how is it used to develop networked programs?
//!   ([`localhost`], [`namespaces`], the tour chapter [`localhost_chapter`])
//! - **Question 4**: what do `bind()`, `connect()`, `send()`, `recv()` and `accept()` really
//!   do? ([`calls`], [`syscalls`], the tour chapter [`calls_chapter`])
//!
//! Every experiment is a function that returns a plain, serializable struct; [`narrate`]
//! tells it for a classroom. The echo tools are in [`echo`], the benchmark in [`bench`](mod@bench).

pub mod attempt;
pub mod bench;
pub mod calls;
pub mod echo;
pub mod error;
pub mod localhost;
pub mod namespaces;
pub mod narrate;
pub mod on_the_wire;
pub mod syscalls;

use lab_capture::{Chapter, Wiretap};
use lab_kit::narrate::Narrator;
use lab_kit::probe::{Probe, ProbeFn};
use lab_kit::twin::Twin;

pub use error::Error;

/// Chapter 2 of the tour: what localhost is (`socket-lab localhost`).
pub const LOCALHOST_CHAPTER: Chapter = Chapter {
    slug: "localhost",
    number: 2,
    question: "What is localhost, and how is it used to develop networked programs?",
    summary: "what localhost is (loopback, bind addresses, port 0, namespaces)",
    answer: "measured here (Linux): `localhost` is a name that the \
system resolver turns into loopback addresses (127.0.0.1, often also ::1). Loopback is a \
virtual interface inside the kernel: the packets never reach a network card or leave the \
machine, and on Linux the whole 127.0.0.0/8 range belongs to it. It is not the client's network and nobody becomes a server: \
a server is a program that bound an address and listens, and a client on the same machine \
reaches it through loopback. Which address the server binds decides who can reach it \
(127.0.0.1: only this machine; 0.0.0.0: every interface). With port 0 the kernel picks a \
free port, so a server and a client can be developed and tested as two programs on one \
machine, exactly as this workspace's own tests do.",
    elsewhere: "Windows and macOS resolve localhost to ::1 first: \
Python's socket.create_connection(\"localhost\", …) tries ::1, then 127.0.0.1, and on Windows \
each refused ::1 costs about 2 seconds; a plain socket.socket() is IPv4 only and goes straight \
to 127.0.0.1. macOS configures only 127.0.0.1 on lo0 (binding 127.0.0.2 fails) and its MTU \
is 16384. On Windows a socket on [::] is IPv6 only by default. Windows and macOS hand out \
ephemeral ports 49152-65535. Sources: docs/02-localhost.md, \"On your machine\".",
    docs: "docs/02-localhost.md",
    twin: Twin {
        script: "q2_localhost.py",
        needs_lab_certificates: false,
    },
    probes: &[],
    run: |n, probe, tap| Ok(localhost_chapter(n, probe, tap)?),
};

/// Chapter 4 of the tour: what the socket calls do (`socket-lab calls`).
pub const CALLS_CHAPTER: Chapter = Chapter {
    slug: "calls",
    number: 4,
    question: "What do bind(), listen(), accept(), connect(), send() and recv() really do?",
    summary: "bind, listen, accept, connect, send, recv, step by step, and under strace",
    answer: "measured here (Linux): each call is one request to \
the kernel. bind() gives a \
socket an address, listen() tells the kernel to complete handshakes for it and queue them, \
connect() performs the three-way handshake (done before the server calls accept()), and \
accept() takes one finished connection off the queue as a new socket. send() copies bytes \
into the kernel's send buffer and returns how many it took (maybe fewer than asked); recv() \
returns whatever bytes have arrived, up to the buffer, with no message boundaries, and 0 \
when the peer has closed. Messages exist only if the program frames them.",
    elsewhere: "the calls are the same everywhere (Python's socket \
module wraps them); the error numbers are not: Linux's ECONNRESET 104 is 54 on macOS and \
WinError 10054 on Windows, address in use is 98 / 48 / 10048. On Windows SO_REUSEADDR lets \
another socket take a port in use (use SO_EXCLUSIVEADDRUSE). Sources: \
docs/04-socket-calls.md, \"On your machine\".",
    docs: "docs/04-socket-calls.md",
    twin: Twin {
        script: "q4_calls.py",
        needs_lab_certificates: false,
    },
    probes: PROBES,
    run: |n, probe, tap| Ok(calls_chapter(n, probe, tap)?),
};

/// The probes this lab re-runs in a child process (`lab-echo __probe NAME`), so that
/// `strace` can watch them. Every binary that runs [`calls_chapter`] must call
/// `lab_kit::probe::dispatch` with these first.
pub const PROBES: &[(&str, ProbeFn)] = &[(
    syscalls::SOCKET_CALLS_PROBE,
    syscalls::run_socket_calls_probe,
)];

/// Chapter for question 2: runs the localhost experiments and narrates them.
pub fn localhost_chapter(
    narrator: &mut Narrator,
    _probe: &Probe,
    tap: &Wiretap,
) -> Result<(), Error> {
    narrator.heading(&LOCALHOST_CHAPTER.heading())?;
    narrate::resolution(&localhost::resolve_localhost()?, narrator)?;
    narrate::ipv6_first_trap(&localhost::ipv6_first_trap()?, narrator)?;
    narrate::loopback_interface(&localhost::loopback_interface()?, narrator)?;
    let bound = localhost::bind_address_matters_watched(tap)?;
    narrate::bind_address(&bound, narrator)?;
    on_the_wire::bind_address(&bound, tap, narrator)?;
    match namespaces::unavailable_reason() {
        // Where namespaces should work but the system refuses (a kernel without veth,
        // a locked-down container), the chapter says so and goes on.
        None => match namespaces::across_a_link_watched(tap) {
            Ok(report) => {
                narrate::across_a_link(&report, narrator)?;
                on_the_wire::across_a_link(&report, tap, narrator)?;
            }
            Err(error) => {
                narrator.section("Across a real (virtual) link: two network namespaces")?;
                narrator.skipped("the namespace experiment", &error.to_string())?;
            }
        },
        Some(why) => {
            narrator.section("Across a real (virtual) link: two network namespaces")?;
            narrator.skipped("the namespace experiment", &why)?;
        }
    }
    narrate::ephemeral_port(&localhost::ephemeral_port()?, narrator)?;
    narrator.answer(LOCALHOST_CHAPTER.answer)?;
    narrator.elsewhere(LOCALHOST_CHAPTER.elsewhere)?;
    Ok(narrator.flush()?)
}

/// Chapter for question 4: the walk-through (with its packets, where `tap` may capture
/// them), the three surprises, and the strace evidence.
pub fn calls_chapter(narrator: &mut Narrator, probe: &Probe, tap: &Wiretap) -> Result<(), Error> {
    narrator.heading(&CALLS_CHAPTER.heading())?;
    let walk = calls::walk_through_watched(tap)?;
    narrate::walk_through(&walk, narrator)?;
    on_the_wire::walk_through(&walk, tap, narrator)?;
    narrate::no_message_boundaries(&calls::no_message_boundaries()?, narrator)?;
    narrate::partial_send(&calls::partial_send()?, narrator)?;
    let closes = calls::peer_closes_watched(tap)?;
    narrate::peer_closes(&closes, narrator)?;
    on_the_wire::peer_closes(&closes, tap, narrator)?;
    on_the_wire::nagle_on_the_wire(tap, narrator)?;
    match syscalls::trace_socket_calls(probe)? {
        syscalls::Traced::Recorded(trace) => narrate::syscall_trace(&trace, narrator)?,
        syscalls::Traced::Unavailable(why) => {
            narrator.section("Evidence from the kernel: strace -f -e trace=network")?;
            narrator.skipped("the strace record", &why)?;
        }
    }
    narrator.answer(CALLS_CHAPTER.answer)?;
    narrator.elsewhere(CALLS_CHAPTER.elsewhere)?;
    Ok(narrator.flush()?)
}
