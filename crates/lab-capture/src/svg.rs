//! The ladder diagram as SVG, for the HTML report: drawn to scale in time where that helps,
//! with a visible break for a long gap (a retransmission timer, a sleeping server).
//!
//! Vertical distance is time, at [`PX_PER_MS`], except that two rows are never closer than
//! [`ROW`] (so labels stay readable: a handshake takes microseconds) and a gap longer than
//! [`BREAK_AFTER`] is drawn as a zigzag break labelled with its length. The time of each row
//! is written in the left margin, so nothing is lost by either rule. The drawing has no
//! script, no external font or style: it is part of a self-contained page.

use std::fmt::Write as _;
use std::time::Duration;

use lab_kit::narrate::{human_count, human_duration, human_micros};

use crate::ladder::{
    Row, arrow_label, first_ends, several_servers, timeline, tls_label, transport_label,
};
use crate::packet::{Packet, Protocol};
use crate::{Mark, Wire};

/// Pixels per millisecond of time between rows.
pub const PX_PER_MS: f64 = 2.0;
/// The smallest distance between two rows, in pixels.
pub const ROW: f64 = 30.0;
/// Gaps longer than this are drawn as a break.
pub const BREAK_AFTER: Duration = Duration::from_millis(100);
const BREAK_HEIGHT: f64 = 76.0;
const WIDTH: f64 = 780.0;
const CLIENT_X: f64 = 170.0;
const SERVER_X: f64 = 690.0;
const TOP: f64 = 64.0;
/// How far an arrow falls while it crosses: the look of a ladder diagram.
const SLANT: f64 = 10.0;
const MAX_ARROWS: usize = 40;

/// The SVG drawing of `wire`'s packets and marks.
pub fn ladder(wire: &Wire) -> String {
    let rows = timeline(wire, MAX_ARROWS, MAX_ARROWS * 2 / 3, MAX_ARROWS / 3);
    let several = several_servers(wire);
    let first = rows.first().map(|(t, _)| *t).unwrap_or_default();

    let mut body = String::new();
    let mut y = TOP;
    let mut previous: Option<Duration> = None;
    // Room taken under the previous arrow by its line of TLS records.
    let mut below = 0.0;
    for (at, row) in &rows {
        if let Some(before) = previous {
            let gap = at.saturating_sub(before);
            if gap > BREAK_AFTER {
                // Below the previous arrow's slanted end.
                draw_break(&mut body, y + SLANT + 8.0 + below, gap);
                y += BREAK_HEIGHT + below;
            } else {
                y += (gap.as_secs_f64() * 1000.0 * PX_PER_MS).max(ROW) + below;
            }
        }
        previous = Some(*at);
        below = match row {
            Row::Packet(packet) => {
                let lines = usize::from(!packet.tls.is_empty()) + packet.known_from_endpoints.len();
                18.0 * lines as f64
            }
            _ => 0.0,
        };
        let since =
            human_micros(u64::try_from(at.saturating_sub(first).as_micros()).unwrap_or(u64::MAX));
        let _ = write!(
            body,
            r#"<text class="time" x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            CLIENT_X - 16.0,
            y + 4.0,
            escape(&since)
        );
        match row {
            Row::Packet(packet) => draw_arrow(&mut body, y, packet, several),
            Row::Mark(mark) => draw_mark(&mut body, y, mark),
            Row::Summary(skipped) => draw_summary(&mut body, y, skipped),
        }
    }
    let height = y + 40.0;
    let (client, server) = first_ends(wire).unwrap_or_default();
    let server = if several {
        "(see each arrow)".to_string()
    } else {
        server
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="ladder" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" role="img" aria-label="ladder diagram of {} packets">"#,
        wire.packets.len()
    );
    svg.push_str(concat!(
        r#"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" orient="auto-start-reverse">"#,
        r#"<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#
    ));
    let _ = write!(
        svg,
        r#"<text class="end" x="{CLIENT_X}" y="22" text-anchor="middle">client</text><text class="addr" x="{CLIENT_X}" y="40" text-anchor="middle">{}</text><text class="end" x="{SERVER_X}" y="22" text-anchor="middle">server</text><text class="addr" x="{SERVER_X}" y="40" text-anchor="middle">{}</text>"#,
        escape(&client),
        escape(&server)
    );
    let _ = write!(
        svg,
        r#"<line class="post" x1="{CLIENT_X}" y1="{:.0}" x2="{CLIENT_X}" y2="{:.0}"/><line class="post" x1="{SERVER_X}" y1="{:.0}" x2="{SERVER_X}" y2="{:.0}"/>"#,
        TOP - 14.0,
        height - 16.0,
        TOP - 14.0,
        height - 16.0
    );
    svg.push_str(&body);
    svg.push_str("</svg>");
    svg
}

fn draw_arrow(body: &mut String, y: f64, packet: &Packet, several_servers: bool) {
    let (x1, x2) = if packet.toward_server {
        (CLIENT_X, SERVER_X)
    } else {
        (SERVER_X, CLIENT_X)
    };
    let class = if packet.has("RST") {
        "rst"
    } else if packet.has("SYN") || packet.has("FIN") {
        "ctl"
    } else if matches!(packet.protocol, Protocol::Icmp | Protocol::Icmpv6) {
        "icmp"
    } else if packet.len > 0 {
        "data"
    } else {
        "ack"
    };
    let _ = write!(
        body,
        r#"<line class="arrow {class}" x1="{x1}" y1="{y:.1}" x2="{x2}" y2="{:.1}" marker-end="url(#head)"/><text class="label {class}" x="{:.0}" y="{:.1}" text-anchor="middle">{}</text>"#,
        y + SLANT,
        (CLIENT_X + SERVER_X) / 2.0,
        y - 5.0,
        escape(&arrow_label(
            packet,
            several_servers,
            transport_label(packet)
        ))
    );
    // The TLS records on a line of their own, under the arrow, then what the endpoints said.
    let mut under = y + SLANT + 16.0;
    if let Some(tls) = tls_label(packet) {
        let _ = write!(
            body,
            r#"<text class="tls" x="{:.0}" y="{under:.1}" text-anchor="middle">TLS: {}</text>"#,
            (CLIENT_X + SERVER_X) / 2.0,
            escape(&tls)
        );
        under += 18.0;
    }
    // Short, in the endpoints' colour (the page's legend says what it means), one per note.
    for note in &packet.known_from_endpoints {
        let _ = write!(
            body,
            r#"<text class="known" x="{:.0}" y="{under:.1}" text-anchor="middle">↳ {}</text>"#,
            (CLIENT_X + SERVER_X) / 2.0,
            escape(note)
        );
        under += 18.0;
    }
}

fn draw_mark(body: &mut String, y: f64, mark: &Mark) {
    let side = if mark.label.starts_with("server") {
        SERVER_X
    } else {
        CLIENT_X
    };
    let _ = write!(
        body,
        r#"<line class="mark" x1="{CLIENT_X}" y1="{y:.1}" x2="{SERVER_X}" y2="{y:.1}"/><circle class="mark" cx="{}" cy="{y:.1}" r="4"/><text class="mark" x="{:.0}" y="{:.1}" text-anchor="middle">{} (the program's own event)</text>"#,
        side,
        (CLIENT_X + SERVER_X) / 2.0,
        y - 5.0,
        escape(&mark.label)
    );
}

fn draw_summary(body: &mut String, y: f64, skipped: &[&Packet]) {
    let bytes = |toward: bool| -> u64 {
        skipped
            .iter()
            .filter(|p| p.toward_server == toward)
            .map(|p| p.len as u64)
            .sum()
    };
    let _ = write!(
        body,
        r#"<text class="summary" x="{:.0}" y="{:.1}" text-anchor="middle">⋮ {} more packets: {} bytes →, {} bytes ← ⋮</text>"#,
        (CLIENT_X + SERVER_X) / 2.0,
        y + 4.0,
        human_count(skipped.len() as u64),
        human_count(bytes(true)),
        human_count(bytes(false)),
    );
}

fn draw_break(body: &mut String, y: f64, gap: Duration) {
    let mid = y + BREAK_HEIGHT / 2.0;
    let mut zigzag = format!("M{:.0},{mid:.1}", CLIENT_X - 30.0);
    let mut x = CLIENT_X - 30.0;
    let mut up = true;
    while x < SERVER_X + 30.0 {
        x += 12.0;
        let _ = write!(
            zigzag,
            " L{x:.0},{:.1}",
            if up { mid - 5.0 } else { mid + 5.0 }
        );
        up = !up;
    }
    let _ = write!(
        body,
        r#"<rect class="gap" x="{:.0}" y="{:.1}" width="{:.0}" height="{:.0}"/><path class="break" d="{zigzag}"/><text class="gap" x="{:.0}" y="{:.1}" text-anchor="middle">{} later (not to scale)</text>"#,
        CLIENT_X - 34.0,
        mid - 10.0,
        SERVER_X - CLIENT_X + 68.0,
        20.0,
        (CLIENT_X + SERVER_X) / 2.0,
        mid - 12.0,
        escape(&human_duration(gap))
    );
}

/// `text` made safe inside SVG/HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;
    use crate::capture::RawFrame;
    use crate::{CaptureFacts, packet};

    /// A capture of the same SYN sent at 0 s and 1 s, then a reset 10 µs later.
    fn wire() -> Wire {
        let frame = |src: u16, dst: u16, rst: bool| {
            let builder = PacketBuilder::ethernet2([0; 6], [0; 6])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
                .tcp(src, dst, 7, 65_535);
            let builder = if rst {
                builder.rst().ack(8)
            } else {
                builder.syn()
            };
            let mut data = Vec::new();
            builder.write(&mut data, &[]).unwrap();
            data
        };
        let at = [0, 1_000_000, 1_000_010];
        let frames: Vec<RawFrame> = [
            frame(40_000, 5000, false),
            frame(40_000, 5000, false),
            frame(5000, 40_000, true),
        ]
        .into_iter()
        .zip(at)
        .map(|(data, us)| RawFrame {
            timestamp: Duration::from_micros(us),
            length: data.len(),
            data,
        })
        .collect();
        let mut packets: Vec<Packet> = frames
            .iter()
            .map(|f| packet::decode(&f.data, f.timestamp, &[5000]).unwrap())
            .collect();
        packet::relate(&mut packets);
        Wire {
            packets,
            capture: CaptureFacts {
                interface: "lo".into(),
                ports: vec![5000],
                kernel_drops: Some(0),
                frames_truncated: 0,
                complete: true,
                pcap: None,
                pcap_error: None,
                key_log: None,
                timestamps_late: None,
                unavailable: None,
                marks: Vec::new(),
            },
            frames,
        }
    }

    #[test]
    fn a_long_gap_is_a_labelled_break_and_the_labels_are_text() {
        let svg = ladder(&wire());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(">SYN seq=0</text>").count(), 2);
        assert!(svg.contains(">RST,ACK seq=0 ack=1</text>"), "{svg}");
        assert_eq!(
            svg.matches("later (not to scale)").count(),
            1,
            "one break, for the 1 s gap"
        );
        assert!(svg.contains(">1.00 s later (not to scale)</text>"), "{svg}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
