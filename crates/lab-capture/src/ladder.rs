//! The ladder diagram: the client on the left, the server on the right, one arrow per
//! packet, time running down the page.
//!
//! ```text
//! client                                          server
//! │── SYN seq=0 ──────────────────────────────────▶│ 0 ns
//! │◀────────────────────────── RST,ACK seq=0 ack=1 ─│ 18.0 µs
//! ```
//!
//! Each label holds what a student needs to follow the conversation: the TCP flags, the
//! sequence and acknowledgment numbers relative to each side's first one, the payload
//! length, or the ICMP message. The time since the first packet ends the line. Long
//! transfers are summarised: the first and last packets are drawn, the middle counted.

use std::time::Duration;

use lab_kit::narrate::{human_count, human_micros};

use crate::packet::{Packet, Protocol};
use crate::{Mark, Wire};

/// Width between the two posts, in characters.
const WIDTH: usize = 46;
/// Captures longer than this are summarised.
const MAX_ARROWS: usize = 40;
const HEAD_ARROWS: usize = 26;
const TAIL_ARROWS: usize = 10;

/// The TLS records that begin in `packet`, if any: `ServerHello 122, ApplicationData 640`.
pub fn tls_label(packet: &Packet) -> Option<String> {
    (!packet.tls.is_empty()).then(|| packet.tls.join(", "))
}

/// What the endpoints said `packet` carried, marked as such, if they said anything.
pub fn known_label(packet: &Packet) -> Option<String> {
    (!packet.known_from_endpoints.is_empty()).then(|| {
        format!(
            "known from the endpoints, not seen: {}",
            packet.known_from_endpoints.join("; ")
        )
    })
}

/// What the arrow of `packet` says about its transport: flags, numbers, length or ICMP.
pub fn transport_label(packet: &Packet) -> String {
    match packet.protocol {
        Protocol::Tcp => {
            let mut label = packet.flags.clone();
            if let Some(seq) = packet.seq {
                label.push_str(&format!(" seq={seq}"));
            }
            if let Some(ack) = packet.ack {
                label.push_str(&format!(" ack={ack}"));
            }
            if packet.len > 0 {
                label.push_str(&format!(" len={}", packet.len));
            }
            label
        }
        Protocol::Udp => format!("UDP len={}", packet.len),
        Protocol::Icmp | Protocol::Icmpv6 => {
            format!("ICMP {}", packet.icmp.as_deref().unwrap_or("message"))
        }
    }
}

/// The server's end of `packet`: its destination going to the server, its source coming back.
fn server_end(packet: &Packet) -> &str {
    if packet.toward_server {
        &packet.dst
    } else {
        &packet.src
    }
}

/// True if the packets of `wire` involve more than one server address or port, so that each
/// arrow must say which one it is about.
pub(crate) fn several_servers(wire: &Wire) -> bool {
    let mut servers = wire
        .packets
        .iter()
        .filter(|p| p.client.is_some())
        .map(server_end);
    let first = servers.next();
    servers.any(|s| Some(s) != first)
}

/// The arrow's words: with the server's address in front when several servers took part.
pub(crate) fn arrow_label(packet: &Packet, several_servers: bool, text: String) -> String {
    if several_servers && packet.client.is_some() {
        format!("{} {text}", server_end(packet))
    } else {
        text
    }
}

/// One row of a ladder: a packet, a program's own event, or a run of packets left out.
pub(crate) enum Row<'a> {
    Packet(&'a Packet),
    Mark(&'a Mark),
    Summary(Vec<&'a Packet>),
}

/// The packets and the programs' marks of `wire` in time order; when there are more than
/// `max` packets, only the first `head` and the last `tail` are kept, the others replaced by
/// a summary row where they were.
pub(crate) fn timeline(
    wire: &Wire,
    max: usize,
    head: usize,
    tail: usize,
) -> Vec<(Duration, Row<'_>)> {
    let mut rows: Vec<(Duration, Row<'_>)> = wire
        .packets
        .iter()
        .map(|p| (p.timestamp, Row::Packet(p)))
        .chain(
            wire.capture
                .marks
                .iter()
                .map(|m| (m.timestamp, Row::Mark(m))),
        )
        .collect();
    rows.sort_by_key(|(t, _)| *t);
    let packets = wire.packets.len();
    if packets <= max {
        return rows;
    }
    let mut kept = Vec::new();
    let mut skipped: Vec<&Packet> = Vec::new();
    let mut skipped_at = Duration::ZERO;
    let mut index = 0;
    for (at, row) in rows {
        if let Row::Packet(packet) = row {
            index += 1;
            if index > head && index <= packets - tail {
                if skipped.is_empty() {
                    skipped_at = at;
                }
                skipped.push(packet);
                continue;
            }
        }
        if !skipped.is_empty() {
            kept.push((skipped_at, Row::Summary(std::mem::take(&mut skipped))));
        }
        kept.push((at, row));
    }
    if !skipped.is_empty() {
        kept.push((skipped_at, Row::Summary(skipped)));
    }
    kept
}

/// The lines of the ladder of `wire` (without the narration's evidence bar).
pub fn lines(wire: &Wire) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((client, server)) = ends(wire) {
        lines.push(format!("client {client}  ⇄  server {server}"));
    }
    lines.push(format!("client{}server", " ".repeat(WIDTH + 2 - 12)));
    let rows = timeline(wire, MAX_ARROWS, HEAD_ARROWS, TAIL_ARROWS);
    let several = several_servers(wire);
    // Times count from the first row, packet or mark.
    let first = rows.first().map(|(t, _)| *t).unwrap_or_default();
    for (at, row) in &rows {
        let since =
            human_micros(u64::try_from(at.saturating_sub(first).as_micros()).unwrap_or(u64::MAX));
        match row {
            Row::Packet(packet) => {
                let text = arrow_label(packet, several, transport_label(packet));
                lines.push(format!("{} {since}", arrow(&text, packet.toward_server)));
                // The TLS records on a line of their own, under the arrow.
                if let Some(tls) = tls_label(packet) {
                    lines.push(format!("│   TLS: {tls}"));
                }
                if let Some(known) = known_label(packet) {
                    lines.push(format!("│   {known}"));
                }
            }
            Row::Mark(mark) => {
                let text = format!(" ┈┈ {} ┈┈", mark.label);
                let pad = WIDTH.saturating_sub(text.chars().count());
                lines.push(format!("│{text}{}│ {since}", " ".repeat(pad)));
            }
            Row::Summary(skipped) => lines.push(summary(skipped)),
        }
    }
    lines
}

/// The client's and the server's addresses, from the first TCP or UDP packet.
pub(crate) fn first_ends(wire: &Wire) -> Option<(String, String)> {
    let first = wire.packets.iter().find(|p| p.client.is_some())?;
    Some(if first.toward_server {
        (first.src.clone(), first.dst.clone())
    } else {
        (first.dst.clone(), first.src.clone())
    })
}

/// Like [`first_ends`], naming every client, in order of appearance, if several took part.
fn ends(wire: &Wire) -> Option<(String, String)> {
    let (client, server) = first_ends(wire)?;
    let mut clients: Vec<String> = Vec::new();
    for packet_client in wire.packets.iter().filter_map(|p| p.client) {
        let packet_client = packet_client.to_string();
        if !clients.contains(&packet_client) {
            clients.push(packet_client);
        }
    }
    let server = if several_servers(wire) {
        "(several: each arrow names its own)".to_string()
    } else {
        server
    };
    match clients.len() {
        0 | 1 => Some((client, server)),
        2 | 3 => Some((
            format!("{} (one after the other)", clients.join(", ")),
            server,
        )),
        more => Some((format!("{more} clients ({client} first)"), server)),
    }
}

/// `│── label ───▶│` or `│◀─── label ──│`.
fn arrow(label: &str, rightwards: bool) -> String {
    let fill = WIDTH.saturating_sub(label.chars().count() + 4).max(2);
    let dashes = "─".repeat(fill);
    if rightwards {
        format!("│─ {label} {dashes}▶│")
    } else {
        format!("│◀{dashes} {label} ─│")
    }
}

/// One line standing for the packets not drawn.
fn summary(skipped: &[&Packet]) -> String {
    let count = |toward: bool| skipped.iter().filter(|p| p.toward_server == toward).count() as u64;
    let bytes = |toward: bool| {
        skipped
            .iter()
            .filter(|p| p.toward_server == toward)
            .map(|p| p.len as u64)
            .sum::<u64>()
    };
    format!(
        "│ ⋮ {} more packets: {} → with {} bytes, {} ← with {} bytes",
        human_count(skipped.len() as u64),
        human_count(count(true)),
        human_count(bytes(true)),
        human_count(count(false)),
        human_count(bytes(false)),
    )
}
