//! What the walk-through's packets prove, checked on the capture itself.
//!
//! The walk-through marks the moment each call returned among its packets (by the clock of
//! the kernel's packet timestamps), so the capture can show, not just say:
//! - the three-way handshake (SYN, SYN-ACK, ACK) is over before `accept()` returns: the
//!   kernel completes connections on its own, and `accept()` only takes one off the queue;
//! - `send()` puts the bytes on the wire as one segment, acknowledged by the other kernel;
//! - `shutdown(SHUT_WR)` sends a FIN; the server's `close()` sends its own;
//! - once the listener is closed, a new SYN gets a reset (question 1 again).

use lab_capture::{Packet, Wire, Wiretap};
use lab_kit::narrate::Narrator;
use std::io;

use crate::calls::{PeerCloses, WalkThrough, marks};
use crate::localhost::BindAddressMatters;
use crate::namespaces::AcrossALink;

/// The three packets of the first handshake, if the capture has them in order: the SYN, the
/// SYN-ACK answering it, the ACK answering that.
pub fn handshake(wire: &Wire) -> Option<[&Packet; 3]> {
    let syn = wire.packets.iter().find(|p| p.is("SYN"))?;
    let syn_ack = wire
        .packets
        .iter()
        .find(|p| p.is("SYN,ACK") && p.dst == syn.src && p.timestamp >= syn.timestamp)?;
    let ack = wire.packets.iter().find(|p| {
        p.is("ACK") && p.src == syn.src && p.ack == Some(1) && p.timestamp >= syn_ack.timestamp
    })?;
    Some([syn, syn_ack, ack])
}

/// True if the whole handshake was on the wire before `accept()` returned.
pub fn handshake_before_accept(wire: &Wire) -> bool {
    match (handshake(wire), wire.mark_time(marks::ACCEPT_RETURNED)) {
        (Some([_, _, ack]), Some(accepted)) => ack.timestamp <= accepted,
        _ => false,
    }
}

/// The first client's FIN.
pub fn client_fin(wire: &Wire) -> Option<&Packet> {
    let [syn, _, _] = handshake(wire)?;
    wire.packets
        .iter()
        .find(|p| p.has("FIN") && p.src == syn.src)
}

/// For `bind_address`: true if the server bound to 127.0.0.1 (the first watched port) got
/// a handshake on 127.0.0.1 and answered a SYN to 127.0.0.2 with a reset, while the server
/// bound to 0.0.0.0 (the second) completed handshakes on both.
pub fn bound_address_decides(wire: &Wire) -> bool {
    let [loopback, wildcard, ..] = wire.capture.ports[..] else {
        return false;
    };
    let answered = |ip: &str, port: u16, flags: &str| {
        let at = format!("{ip}:{port}");
        wire.packets.iter().any(|p| p.src == at && p.has(flags))
    };
    answered("127.0.0.1", loopback, "SYN")
        && answered("127.0.0.2", loopback, "RST")
        && !answered("127.0.0.2", loopback, "SYN")
        && answered("127.0.0.1", wildcard, "SYN")
        && answered("127.0.0.2", wildcard, "SYN")
}

/// The bind-address attempts' packets, and what they prove.
pub fn bind_address(
    report: &BindAddressMatters,
    tap: &Wiretap,
    n: &mut Narrator,
) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    if bound_address_decides(wire) {
        n.say(
            "On lo: the server bound to 127.0.0.1 answered a SYN to 127.0.0.1 with a SYN-ACK \
             and a SYN to 127.0.0.2 with a reset, exactly as a closed port; the server bound \
             to 0.0.0.0 answered both. The same kernel, the same port number: the address a \
             server binds decides which SYNs it gets.",
        )
    } else {
        n.warn("the bind-address packets are not what this experiment expects; see above")
    }
}

/// What crossed the link in `across_a_link`: (a handshake with the `0.0.0.0` server, a
/// reset from the server host for the `127.0.0.1` server's port, no loopback address on the
/// link).
pub fn across_the_link(wire: &Wire) -> (bool, bool, bool) {
    let [wildcard, loopback, ..] = wire.capture.ports[..] else {
        return (false, false, false);
    };
    let to = |port: u16| move |p: &&Packet| p.dst.ends_with(&format!(":{port}"));
    let from = |port: u16| move |p: &&Packet| p.src.ends_with(&format!(":{port}"));
    let handshake = wire
        .packets
        .iter()
        .filter(to(wildcard))
        .any(|p| p.is("SYN"))
        && wire
            .packets
            .iter()
            .filter(from(wildcard))
            .any(|p| p.is("SYN,ACK"));
    let reset = wire
        .packets
        .iter()
        .filter(to(loopback))
        .any(|p| p.is("SYN"))
        && wire
            .packets
            .iter()
            .filter(from(loopback))
            .any(|p| p.has("RST"));
    let no_loopback = !wire
        .packets
        .iter()
        .any(|p| p.src.starts_with("127.") || p.dst.starts_with("127."));
    (handshake, reset, no_loopback)
}

/// The packets that crossed the link, and what they prove.
pub fn across_a_link(report: &AcrossALink, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    match across_the_link(wire) {
        (true, true, true) => n.say(
            "On the link: the handshake with the server bound to 0.0.0.0, then a SYN for the \
             server bound to 127.0.0.1, answered with a reset by the server host (that port is \
             closed on its link address). The third attempt, to 127.0.0.1, never appears here: \
             loopback traffic stays inside its own host.",
        ),
        _ => n.warn("the link's packets are not what this experiment expects; see above"),
    }
}

/// The round trips of the Nagle lesson: each request's two segments (`hello `, `world\n`),
/// as (first, second) pairs of the client's data segments, in order.
pub fn request_pairs(wire: &Wire) -> Vec<(&Packet, &Packet)> {
    let data: Vec<&Packet> = wire
        .packets
        .iter()
        .filter(|p| p.toward_server && p.len > 0)
        .collect();
    data.chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// True if every request's second segment left only after the server acknowledged the first
/// (Nagle's rule: a small segment waits while earlier data is unacknowledged).
pub fn second_waits_for_ack(wire: &Wire) -> bool {
    let pairs = request_pairs(wire);
    !pairs.is_empty()
        && pairs.iter().all(|(first, second)| {
            let first_end = first.seq.unwrap_or(0) + first.len as u32;
            wire.packets.iter().any(|p| {
                !p.toward_server
                    && p.ack.is_some_and(|ack| ack >= first_end)
                    && p.timestamp <= second.timestamp
            })
        })
}

/// The longest wait between a request's two segments.
pub fn longest_hold(wire: &Wire) -> std::time::Duration {
    request_pairs(wire)
        .iter()
        .map(|(first, second)| second.timestamp.saturating_sub(first.timestamp))
        .max()
        .unwrap_or_default()
}

/// A section of its own: the Nagle stall on the wire, with and without `TCP_NODELAY`.
/// Runs only where packets are captured (it has nothing to show otherwise).
pub fn nagle_on_the_wire(tap: &Wiretap, n: &mut Narrator) -> Result<(), crate::Error> {
    /// Enough round trips for the stall to show: the first one is answered at once.
    const ROUND_TRIPS: usize = 3;
    if !tap.captures() {
        return Ok(());
    }
    n.section("On the wire: the Nagle stall (two small writes, then a read)")?;
    n.say(&format!(
        "A client writes each request in two pieces (\"hello \", then \"world\\n\") to a \
         server that answers only whole lines, {ROUND_TRIPS} times: first with TCP_NODELAY off \
         (the default), then on."
    ))?;
    let with_nagle = crate::bench::nagle_lesson_watched(false, ROUND_TRIPS, tap)?;
    n.record(&with_nagle)?;
    n.say("First with TCP_NODELAY off (Nagle's algorithm on):")?;
    if let Some(wire) = lab_capture::narrate::wire(with_nagle.wire.as_ref(), tap, n)? {
        if second_waits_for_ack(wire) {
            n.say(&format!(
                "With Nagle's algorithm, each \"world\\n\" waited until the server \
                 acknowledged \"hello \". The server's kernel delays that ACK, hoping to send \
                 it with a reply, and the reply needs the whole line: both sides wait, up to \
                 {} here, until the delayed-ACK timer fires.",
                lab_kit::narrate::human_duration(longest_hold(wire))
            ))?;
        } else {
            n.warn("a second segment did not wait for the ACK of the first; see above")?;
        }
    }
    let without = crate::bench::nagle_lesson_watched(true, ROUND_TRIPS, tap)?;
    n.record(&without)?;
    n.say("Then with TCP_NODELAY on:")?;
    if let Some(wire) = lab_capture::narrate::wire(without.wire.as_ref(), tap, n)? {
        n.say(&format!(
            "With TCP_NODELAY, each piece left as soon as it was written: the longest wait \
             between the two was {}. (Better still: build the request, then write it once.)",
            lab_kit::narrate::human_duration(longest_hold(wire))
        ))?;
    }
    Ok(())
}

/// The ending of each connection of `peer_closes`, as the server's first FIN or RST to the
/// client: `(flags of connection 1's ending, flags of connection 2's ending)`.
pub fn endings(wire: &Wire) -> (Option<&str>, Option<&str>) {
    let ending = |port: u16| {
        wire.packets
            .iter()
            .find(|p| {
                !p.toward_server
                    && (p.has("FIN") || p.has("RST"))
                    && p.src.ends_with(&format!(":{port}"))
            })
            .map(|p| p.flags.as_str())
    };
    match wire.capture.ports[..] {
        [closed, reset, ..] => (ending(closed), ending(reset)),
        _ => (None, None),
    }
}

/// The packets of `peer_closes`, and what they prove.
pub fn peer_closes(report: &PeerCloses, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    match endings(wire) {
        (Some(fin), Some(rst)) if fin.contains("FIN") && rst.contains("RST") => n.say(
            "close() sent a FIN: the orderly end, which recv() on the other side reads as 0. \
             close() after SO_LINGER 0 sent a RST instead: the connection is thrown away, and \
             recv() on the other side fails with ConnectionReset.",
        ),
        _ => n.warn("the capture does not show a FIN then a RST; see the packets above"),
    }
}

/// The walk-through's packets, and what they prove.
pub fn walk_through(report: &WalkThrough, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    if handshake_before_accept(wire) {
        n.say(
            "SYN, SYN-ACK, ACK: the three-way handshake was over before accept() returned, \
             even before it was called. The kernel completes connections on its own; accept() \
             only takes a finished one off the queue.",
        )?;
    } else {
        n.warn("the capture does not show the handshake before accept() returned; see above")?;
    }
    let data = wire.packets.iter().find(|p| p.len > 0 && p.toward_server);
    if let Some(data) = data {
        n.say(&format!(
            "send() put its {} bytes on the wire in one segment ({}).",
            data.len, data.flags
        ))?;
    }
    if client_fin(wire).is_some() {
        n.say(
            "shutdown(SHUT_WR) sent a FIN: the end of the client's stream, which recv() on the \
             server reported as 0 bytes. The server's close() sent its own FIN. The last SYN, \
             after the listener closed, got a reset: question 1 again.",
        )?;
    }
    Ok(())
}
