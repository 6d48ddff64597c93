//! Narration: each experiment's plain result, told for a classroom through a
//! [`Narrator`]. Nothing here measures anything; in `--json` mode each experiment is one
//! JSON line instead (`Narrator::record`).

use std::io;

use lab_kit::narrate::Narrator;

use crate::attempt::ConnectAttempt;
use crate::calls::{NoMessageBoundaries, PartialSend, PeerCloses, WalkThrough};
use crate::localhost::{
    BindAddressMatters, EphemeralPort, Ipv6FirstTrap, LoopbackInterface, Resolution,
};
use crate::namespaces::AcrossALink;
use crate::syscalls::{EXPECTED_ORDER, SyscallTrace};

fn attempt_line(narrator: &mut Narrator, attempt: &ConnectAttempt) -> io::Result<()> {
    narrator.evidence(&format!(
        "connect {:<22} → {}",
        attempt.target.to_string(),
        attempt.describe()
    ))
}

fn list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `localhost` is a name, resolved to loopback addresses.
pub fn resolution(report: &Resolution, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("`localhost` is a name for loopback addresses")?;
    n.say("A client never connects to a name. It first asks the system resolver")?;
    n.say("(getaddrinfo, which reads /etc/hosts before asking DNS) for addresses:")?;
    n.fact("localhost resolves to", list(&report.addresses))?;
    n.fact(
        "all of them loopback",
        if report.all_loopback { "yes" } else { "no" },
    )?;
    n.say("Many systems list both 127.0.0.1 and ::1; the order decides which is tried first.")?;
    n.say("Windows and macOS list ::1 first (from sources: docs/02, \"On your machine\").")
}

/// The `::1`-first trap.
pub fn ipv6_first_trap(report: &Ipv6FirstTrap, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("The classic trap: a server on 127.0.0.1, a client that tries ::1 first")?;
    n.fact("server bound to", report.server)?;
    n.say("A client that tries ::1 first (as many systems order `localhost`):")?;
    for attempt in &report.ipv6_first_attempts {
        attempt_line(n, attempt)?;
    }
    n.say("::1 is IPv6 loopback, a different address: nothing listens there. A client that")?;
    n.say("gives up after the first address fails; one that tries the next address works.")?;
    n.say("TcpStream::connect(\"localhost:PORT\") tries each address localhost resolves to,")?;
    n.say("in order, until one connects; here:")?;
    for attempt in &report.localhost_attempts {
        n.evidence(&format!(
            "try {:<26} → {}",
            attempt.target.to_string(),
            attempt.describe()
        ))?;
    }
    match report.std_connected_to {
        Some(peer) => n.fact("std connected to", peer)?,
        None => n.fact("std connected to", "nothing (every address failed)")?,
    }
    n.say("Python: socket.create_connection((\"localhost\", port)) also tries each address in")?;
    n.say("order, each with the full timeout; a plain socket.socket() is IPv4 only, so its")?;
    n.say("connect((\"localhost\", port)) goes to 127.0.0.1 and never meets this trap. On")?;
    n.say("Windows each refused ::1 attempt costs about 2 seconds (from sources: docs/02).")
}

/// The loopback interface and the 127.0.0.0/8 range.
pub fn loopback_interface(report: &LoopbackInterface, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Loopback is a virtual interface inside the kernel")?;
    match report.mtu {
        Some(mtu) => n.fact(
            "lo MTU",
            format!("{mtu} (the largest packet; a typical Ethernet card: 1500)"),
        )?,
        None => n.skipped("lo MTU", "/sys/class/net/lo/mtu is not readable here")?,
    }
    n.say("A server on each of these addresses, none of them configured by anyone:")?;
    for trip in &report.range_round_trips {
        let outcome = match (trip.bound, trip.echoed) {
            (true, true) => "bound, connected, echoed \"ping\"",
            (true, false) => "bound and connected, but the echo was wrong",
            (false, _) => "could not bind",
        };
        n.evidence(&format!("{:<17} {outcome}", trip.address.to_string()))?;
    }
    match &report.foreign_bind.error {
        Some(error) => n.evidence(&format!(
            "{:<17} could not bind: {} (not an address of this machine)",
            report.foreign_bind.address.to_string(),
            error.summary()
        ))?,
        None => n.warn(&format!(
            "binding {} succeeded: this machine has that address configured",
            report.foreign_bind.address
        ))?,
    }
    if let Some(packets) = report.lo_packets_delta {
        n.fact(
            "packets counted on lo",
            format!("≥ {packets} (every one stayed in the kernel)"),
        )?;
    }
    n.say("On Linux the whole 127.0.0.0/8 range is routed to `lo`: packets to it never reach")?;
    n.say("a network card, and they never leave this machine. macOS configures only 127.0.0.1")?;
    n.say("on its `lo0` (binding 127.0.0.2 fails, errno 49) with MTU 16384 (from sources).")
}

/// What the bind address means.
pub fn bind_address(report: &BindAddressMatters, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("The bind address decides who can reach a server")?;
    for server in &report.servers {
        n.fact("server bound to", server.bound_to)?;
        for attempt in &server.attempts {
            attempt_line(n, attempt)?;
        }
    }
    if let Some(why) = &report.ipv6_skipped {
        n.skipped("a server bound to [::]", why)?;
    }
    n.say("127.0.0.1 accepts only connections to 127.0.0.1; the wildcard 0.0.0.0 (or [::],")?;
    n.say("which on Linux also takes IPv4) accepts connections to any address of this machine.")?;
    n.say("On Windows [::] is IPv6 only unless the program clears IPV6_V6ONLY (from sources).")
}

/// The same across a link between two namespaces.
pub fn across_a_link(report: &AcrossALink, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Across a real (virtual) link: two network namespaces")?;
    n.fact(
        "server host",
        format!("{} (its own network namespace)", report.server_host),
    )?;
    n.fact(
        "client host",
        format!(
            "{} (another one, joined by a veth pair)",
            report.client_host
        ),
    )?;
    n.say("From the client host, to the server bound to 0.0.0.0:")?;
    attempt_line(n, &report.to_wildcard_server)?;
    if let Some(peer) = report.wildcard_server_saw_peer {
        n.fact("the server saw a client at", peer)?;
    }
    n.say("From the client host, to the server bound to 127.0.0.1 (same host, its port):")?;
    attempt_line(n, &report.to_loopback_server)?;
    n.say("And to 127.0.0.1 with that port: the client host's OWN loopback, not the server's:")?;
    attempt_line(n, &report.to_own_loopback)
}

/// Port 0 and the ephemeral range.
pub fn ephemeral_port(report: &EphemeralPort, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Port zero: the kernel picks a free port")?;
    match report.range {
        Some((low, high)) => n.fact(
            "ephemeral range",
            format!("{low}–{high} (ip_local_port_range)"),
        )?,
        None => n.skipped(
            "ephemeral range",
            "/proc/sys/net/ipv4/ip_local_port_range is not readable",
        )?,
    }
    n.fact(
        "three servers asked for 0",
        format!("got {}", list(&report.ports)),
    )?;
    if let Some(all) = report.all_in_range {
        n.fact("all in the range", if all { "yes" } else { "no" })?;
    }
    n.say("This is how networked programs are developed and tested: a server and a client,")?;
    n.say("two programs on one machine, talking over loopback on a port the kernel chose.")?;
    n.say("The client does not become a server; localhost is not \"the client's network\".")?;
    n.say("Windows and macOS hand out ports 49152–65535 instead (from sources: docs/02).")
}

/// The numbered walk-through.
pub fn walk_through(report: &WalkThrough, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Every call, for real (socket2, one function per system call)")?;
    for step in &report.steps {
        let side = match step.side {
            crate::calls::Side::Server => "server",
            crate::calls::Side::Client => "client",
        };
        n.say(&format!(
            "{:>2}. {side}  {}  →  {}",
            step.number, step.call, step.result
        ))?;
        n.evidence(&step.meaning)?;
        if step.call.starts_with("connect") && step.result.starts_with("ok") {
            match (
                &report.backlog.waiting_in_accept_queue,
                &report.backlog.client_state,
            ) {
                (Some(queued), Some(state)) => {
                    n.fact(
                        "waiting in accept queue",
                        format!("{queued} connection (no accept yet)"),
                    )?;
                    n.fact("client's TCP state", state)?;
                }
                _ => n.skipped("accept queue", "/proc/net/tcp is not available here")?,
            }
        }
    }
    Ok(())
}

/// Two sends, one recv.
pub fn no_message_boundaries(report: &NoMessageBoundaries, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("No message boundaries: TCP delivers a stream of bytes")?;
    for message in &report.sends {
        n.fact("send", format!("{message:?}"))?;
    }
    n.fact("one recv (1024 bytes)", format!("{:?}", report.one_recv))?;
    n.fact("send", format!("{:?}", report.long_message))?;
    n.fact(
        &format!("recv ({} bytes)", report.small_buffer),
        format!("{:?}", report.small_recv),
    )?;
    n.fact("next recv (1024 bytes)", format!("{:?}", report.next_recv))?;
    n.say("The fix is framing, decided by the protocol. Read until newline:")?;
    n.fact(
        "read_line, read_line",
        format!("{:?}", report.newline_framed),
    )?;
    n.say("or send a 4-byte length before each message and read exactly that many bytes:")?;
    n.fact(
        "length, body, length, body",
        format!("{:?}", report.length_prefixed),
    )
}

/// Partial send and WouldBlock.
pub fn partial_send(report: &PartialSend, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Partial send: send() may take fewer bytes than you asked")?;
    n.say("A peer that does not read, small buffers, and a non-blocking socket:")?;
    n.fact("asked to send", format!("{} bytes", report.asked))?;
    n.fact(
        "first send returned",
        format!("{} bytes", report.first_send),
    )?;
    n.fact(
        "then",
        match &report.error {
            Some(error) => format!(
                "{} more send(s) accepted {} bytes in all, then {}",
                report.sends_until_error.saturating_sub(1),
                report.accepted_before_error,
                error.summary()
            ),
            None => "no error (unexpected)".into(),
        },
    )?;
    n.say("The kernel takes what fits in its buffers; the program must send the rest later.")?;
    n.say("Once the peer reads, a loop does that: send the rest, and on WouldBlock wait")?;
    n.say("(poll) until the socket is writable again:")?;
    n.fact(
        "the rest",
        format!(
            "{} bytes in {} send() calls, {} WouldBlock waits",
            report.rest_sent, report.rest_send_calls, report.rest_would_blocks
        ),
    )?;
    n.say("On a blocking socket that loop is write_all. Linux's blocking send() itself waits")?;
    n.say("until it has taken everything, so here the loop rarely turns; a signal or a send")?;
    n.say("timeout makes it return early, which is why a bare write() is a bug. Python's")?;
    n.say("sock.sendall() is that loop; sock.setblocking(False) makes send() raise")?;
    n.say("BlockingIOError instead of waiting:")?;
    n.fact(
        "write_all made",
        format!(
            "{} write() call(s) for {} bytes",
            report.write_all_calls, report.asked
        ),
    )?;
    n.fact(
        "peer received",
        format!("{} bytes in all", report.peer_received),
    )
}

/// recv of 0, and a reset.
pub fn peer_closes(report: &PeerCloses, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("recv() returning 0 means the peer closed")?;
    match report.recv_after_close {
        Some(bytes) => n.fact("peer close() (FIN)", format!("recv returned {bytes} bytes"))?,
        None => n.warn("recv after the peer's close did not return")?,
    }
    match &report.recv_after_reset {
        Some(error) => n.fact(
            "peer SO_LINGER 0 (RST)",
            format!("recv failed: {}", error.summary()),
        )?,
        None => n.warn("recv after the peer's reset did not fail")?,
    }
    n.say("0 is not an error and not \"no data yet\" (a blocking recv waits for data): it is")?;
    n.say("the end of the stream. A loop that ignores it spins forever. In Python recv()")?;
    n.say("returns b\"\", and the reset raises ConnectionResetError: errno 104 on Linux, 54 on")?;
    n.say("macOS, WinError 10054 on Windows (from sources: docs/04, \"On your machine\").")
}

/// The strace record.
pub fn syscall_trace(report: &SyscallTrace, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("Evidence from the kernel: strace -f -e trace=network")?;
    n.say("The same walk-through, run again in a child process under strace:")?;
    for line in &report.lines {
        if lab_kit::strace::syscall_name(line).is_some() {
            n.evidence(lab_kit::strace::without_pid(line))?;
        }
    }
    n.fact(
        "in the expected order",
        format!(
            "{} ({})",
            if report.in_order { "yes" } else { "NO" },
            EXPECTED_ORDER.join(" → ")
        ),
    )?;
    n.say("send is the sendto system call, recv is recvfrom, accept is accept4.")
}
