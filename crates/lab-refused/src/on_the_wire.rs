//! What the packets of experiments 1, 3 and 4 prove, checked on the capture itself.
//!
//! The narration of each experiment ends with its packets (see `lab_capture`): here each
//! capture is read for its lesson, and the sentence that states it is printed only if the
//! packets really say so.
//! - Refused: exactly one SYN, answered by exactly one RST. The refusal *is* that reset.
//! - Full queue: the SYN, sent again by the client's kernel after about a second, and no
//!   SYN-ACK: silence, not a refusal. (When it is sent again is measured and explained by
//!   the experiment itself, from `TCP_INFO`: see [`crate::retransmissions`].)
//! - UDP: the datagram, answered by an ICMP "port unreachable".

use std::io;

use lab_capture::{Protocol, Wire, Wiretap};
use lab_kit::narrate::Narrator;

/// The TCP flags of a capture's packets, in order (`["SYN", "RST,ACK"]`).
pub fn tcp_flags(wire: &Wire) -> Vec<&str> {
    wire.of(Protocol::Tcp).map(|p| p.flags.as_str()).collect()
}

/// True if the capture is one SYN to the server and one reset back, nothing else.
pub fn is_one_syn_one_reset(wire: &Wire) -> bool {
    let packets = &wire.packets;
    packets.len() == 2
        && packets[0].is("SYN")
        && packets[0].toward_server
        && packets[1].has("RST")
        && !packets[1].toward_server
        && packets[1].src == packets[0].dst
        && packets[1].dst == packets[0].src
}

/// How many SYNs the client sent, and how many SYN-ACKs answered.
pub fn syns_and_answers(wire: &Wire) -> (usize, usize) {
    let syns = wire
        .packets
        .iter()
        .filter(|p| p.is("SYN") && p.toward_server)
        .count();
    let answers = wire.packets.iter().filter(|p| p.is("SYN,ACK")).count();
    (syns, answers)
}

/// True if an ICMP (or ICMPv6) "port unreachable" came back to the client.
pub fn has_port_unreachable(wire: &Wire) -> bool {
    wire.packets.iter().any(|p| {
        matches!(p.protocol, Protocol::Icmp | Protocol::Icmpv6)
            && !p.toward_server
            && p.icmp.as_deref() == Some("port unreachable")
    })
}

/// The packets of experiment 1, and what they prove.
pub fn refused(wire: Option<&Wire>, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(wire, tap, n)? else {
        return Ok(());
    };
    if is_one_syn_one_reset(wire) {
        n.say(
            "One SYN, answered by one RST: that reset is the whole refusal. No second SYN \
             follows.",
        )
    } else {
        n.warn("the capture is not one SYN and one RST; see the packets above")
    }
}

/// The packets of experiment 3, and what they prove.
pub fn backlog(wire: Option<&Wire>, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(wire, tap, n)? else {
        return Ok(());
    };
    match syns_and_answers(wire) {
        (syns, 0) if syns >= 2 => n.say(
            "The client's kernel sent the same SYN again when no answer came, and nothing \
             ever answered: no SYN-ACK, no RST. Silence on the wire is what a timeout looks \
             like.",
        ),
        (1, 0) => n.say(
            "One SYN and no answer. The client's kernel would have sent it again after about \
             a second; the deadline came first.",
        ),
        _ => n.warn("the capture is not a SYN without an answer; see the packets above"),
    }
}

/// The packets of experiment 4, and what they prove.
pub fn udp(wire: Option<&Wire>, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(wire, tap, n)? else {
        return Ok(());
    };
    if has_port_unreachable(wire) {
        n.say(
            "The datagram, then an ICMP \"port unreachable\" from the other kernel: that ICMP \
             message is what recv() reported as ConnectionRefused.",
        )
    } else {
        n.warn("no ICMP port unreachable was captured; see the packets above")
    }
}
