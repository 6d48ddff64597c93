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

use lab_kit::narrate::{human_count, human_micros};

use crate::packet::{Packet, Protocol};
use crate::{Mark, Wire};

/// Width between the two posts, in characters.
const WIDTH: usize = 46;
/// Captures longer than this are summarised.
const MAX_ARROWS: usize = 40;
const HEAD_ARROWS: usize = 26;
const TAIL_ARROWS: usize = 10;

/// What the arrow of `packet` says.
pub fn label(packet: &Packet) -> String {
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
            if !packet.tls.is_empty() {
                label.push_str(&format!(": {}", packet.tls.join(", ")));
            }
            label
        }
        Protocol::Udp => format!("UDP len={}", packet.len),
        Protocol::Icmp | Protocol::Icmpv6 => {
            format!("ICMP {}", packet.icmp.as_deref().unwrap_or("message"))
        }
    }
}

/// The lines of the ladder of `wire` (without the narration's evidence bar).
pub fn lines(wire: &Wire) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((client, server)) = ends(wire) {
        lines.push(format!("client {client}  ⇄  server {server}"));
    }
    lines.push(format!("client{}server", " ".repeat(WIDTH + 2 - 12)));
    // Packets and the endpoints' own marks, in time order, timed from the first of them.
    enum Row<'a> {
        Packet(&'a Packet),
        Mark(&'a Mark),
    }
    let mut rows: Vec<(std::time::Duration, Row<'_>)> = wire
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
    let first = rows.first().map(|(t, _)| *t).unwrap_or_default();
    let packet_count = wire.packets.len();
    let summarise = packet_count > MAX_ARROWS;
    let mut index = 0;
    let mut skipped: Vec<&Packet> = Vec::new();
    for (at, row) in &rows {
        let since =
            human_micros(u64::try_from(at.saturating_sub(first).as_micros()).unwrap_or(u64::MAX));
        match row {
            Row::Packet(packet) => {
                index += 1;
                if summarise && index > HEAD_ARROWS && index <= packet_count - TAIL_ARROWS {
                    skipped.push(packet);
                    continue;
                }
                if !skipped.is_empty() {
                    lines.push(summary(&skipped));
                    skipped.clear();
                }
                lines.push(format!(
                    "{} {since}",
                    arrow(&label(packet), packet.toward_server)
                ));
            }
            Row::Mark(mark) => {
                if !skipped.is_empty() {
                    lines.push(summary(&skipped));
                    skipped.clear();
                }
                let text = format!(" ┈┈ {} ┈┈", mark.label);
                let pad = WIDTH.saturating_sub(text.chars().count());
                lines.push(format!("│{text}{}│ {since}", " ".repeat(pad)));
            }
        }
    }
    if !skipped.is_empty() {
        lines.push(summary(&skipped));
    }
    lines
}

/// The client's and the server's addresses, from the first TCP or UDP packet (all clients,
/// in order of appearance, if several took part).
fn ends(wire: &Wire) -> Option<(String, String)> {
    let first = wire.packets.iter().find(|p| p.client.is_some())?;
    let (client, server) = if first.toward_server {
        (first.src.clone(), first.dst.clone())
    } else {
        (first.dst.clone(), first.src.clone())
    };
    let mut clients: Vec<String> = Vec::new();
    for packet_client in wire.packets.iter().filter_map(|p| p.client) {
        let packet_client = packet_client.to_string();
        if !clients.contains(&packet_client) {
            clients.push(packet_client);
        }
    }
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
