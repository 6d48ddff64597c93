//! What the secure conversation looks like on the wire: what an eavesdropper can read of it.
//!
//! The capture names each TLS record by its clear-text header (see `lab_capture::tls`):
//! the client's `ClientHello` and the server's `ServerHello` are readable; in TLS 1.3 every
//! record after them (the rest of the handshake, each chat line, `close_notify`) is
//! application data whose only visible features are its size and time. What each opaque
//! record *was* is known only from the endpoints: the users' typing is marked among the
//! packets, and the key log written beside the pcap lets Wireshark decrypt the session.

use std::io;

use lab_capture::{Wire, Wiretap};
use lab_kit::narrate::Narrator;

use crate::demo::{ConversationReport, ImpostorReport, TruncationReport};

/// The names of one direction's TLS records, in order (`ClientHello`, `ApplicationData`…).
pub fn records(wire: &Wire, toward_server: bool) -> Vec<&str> {
    wire.packets
        .iter()
        .filter(|p| p.toward_server == toward_server)
        .flat_map(|p| p.tls.iter())
        .filter_map(|record| record.split(' ').next())
        .collect()
}

/// What sealing adds to a TLS 1.3 record's content: its content type (1 byte) and the
/// AEAD tag (16 bytes, AES-GCM and ChaCha20-Poly1305 alike); rustls adds no padding.
const SEALING: usize = 17;

/// Adds to the conversation's packets what the two programs know and the wire does not
/// show, each note marked as coming from the endpoints. The programs know what each user
/// typed, in order, and how a line is framed (`text\n`), so a record whose size is exactly
/// that of the next typed line(s) sealed is named with them; after Exit the client sends the
/// line `Exit`, then its 19-byte `close_notify`; the client's first encrypted record is its
/// handshake Finished. A record whose size does not fit is left as the wire shows it.
pub fn label_from_endpoints(wire: &mut Wire, client_typed: &[String], server_typed: &[String]) {
    let mut notes: Vec<(usize, String)> = Vec::new();
    for toward_server in [true, false] {
        let mut typed: std::collections::VecDeque<String> = if toward_server {
            client_typed
                .iter()
                .cloned()
                .chain([crate::session::EXIT_WORD.to_string()])
                .collect()
        } else {
            server_typed.iter().cloned().collect()
        };
        let mut first_opaque = toward_server;
        let mut said_exit = false;
        for (index, packet) in wire.packets.iter().enumerate() {
            if packet.toward_server != toward_server {
                continue;
            }
            for record in &packet.tls {
                let Some(size) = record
                    .strip_prefix("ApplicationData ")
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                if first_opaque {
                    first_opaque = false;
                    notes.push((index, "the client's handshake Finished".into()));
                    continue;
                }
                if said_exit && size == CLOSE_NOTIFY_SIZE {
                    notes.push((index, "close_notify, after Exit".into()));
                    said_exit = false;
                    continue;
                }
                // The typed lines this record holds, if its size says so exactly.
                let mut content = 0;
                let mut lines = 0;
                while content + SEALING < size && lines < typed.len() {
                    content += typed[lines].len() + 1;
                    lines += 1;
                }
                if lines == 0 || content + SEALING != size {
                    continue;
                }
                let held: Vec<String> = typed.drain(..lines).collect();
                said_exit =
                    toward_server && held.last().is_some_and(|l| l == crate::session::EXIT_WORD);
                notes.push((
                    index,
                    format!(
                        "{} {}",
                        if held.len() == 1 {
                            "the line"
                        } else {
                            "the lines"
                        },
                        held.iter()
                            .map(|l| format!("{l:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    for (index, note) in notes {
        wire.packets[index].known_from_endpoints.push(note);
    }
}

/// True if each side's first record is its hello and nothing after is readable.
pub fn only_hellos_readable(wire: &Wire) -> bool {
    let client = records(wire, true);
    let server = records(wire, false);
    let opaque = |r: &&str| *r == "ApplicationData" || *r == "ChangeCipherSpec";
    client.first() == Some(&"ClientHello")
        && server.first() == Some(&"ServerHello")
        && client[1..].iter().all(opaque)
        && server[1..].iter().all(opaque)
}

/// The conversation's packets, and what an eavesdropper learns from them.
pub fn conversation(
    report: &ConversationReport,
    tap: &Wiretap,
    n: &mut Narrator,
) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    if only_hellos_readable(wire) {
        let opaque = records(wire, true)
            .into_iter()
            .chain(records(wire, false))
            .filter(|r| *r == "ApplicationData")
            .count();
        n.say(&format!(
            "On the wire, only the ClientHello and the ServerHello can be read. After them \
             come {opaque} \"ApplicationData\" records (the rest of the handshake, every \
             line, the close_notify; a one-byte ChangeCipherSpec is only there for old \
             middleboxes): an eavesdropper learns their sizes and times, nothing more. What \
             the named ones carried is known from the two programs (what their users typed, \
             and a sealed record's size: its content plus 17 bytes), not from the wire."
        ))
    } else {
        n.warn("the capture does not show TLS hellos followed by opaque records; see above")
    }
}

/// The size of a TLS 1.3 `close_notify` on the wire: an alert (2 bytes) and its content
/// type (1), sealed with a 16-byte authentication tag (AES-GCM and ChaCha20-Poly1305 alike).
pub const CLOSE_NOTIFY_RECORD: &str = "ApplicationData 19";
/// The same, as a number of bytes.
const CLOSE_NOTIFY_SIZE: usize = 19;

/// The records the client side sent before its first FIN (all of them if it sent none).
fn client_records_before_fin(wire: &Wire) -> Vec<&str> {
    let fin = wire
        .packets
        .iter()
        .find(|p| p.toward_server && p.has("FIN"))
        .map(|p| p.timestamp);
    wire.packets
        .iter()
        .filter(|p| p.toward_server && fin.is_none_or(|fin| p.timestamp <= fin))
        .flat_map(|p| p.tls.iter().map(String::as_str))
        .collect()
}

/// True if the client side ended with a FIN and no close_notify-sized record before it.
pub fn bare_fin(wire: &Wire) -> bool {
    let has_fin = wire.packets.iter().any(|p| p.toward_server && p.has("FIN"));
    has_fin && !client_records_before_fin(wire).contains(&CLOSE_NOTIFY_RECORD)
}

/// True if the client side sent a close_notify-sized record, then its FIN.
pub fn close_notify_then_fin(wire: &Wire) -> bool {
    let has_fin = wire.packets.iter().any(|p| p.toward_server && p.has("FIN"));
    has_fin && client_records_before_fin(wire).last() == Some(&CLOSE_NOTIFY_RECORD)
}

/// The impostor attempt's packets, and what they prove.
pub fn impostor(report: &ImpostorReport, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    let after_hello = records(wire, true)
        .iter()
        .skip(1)
        .filter(|r| **r == "ApplicationData")
        .count();
    if report.lines_leaked == 0
        && records(wire, true).first() == Some(&"ClientHello")
        && after_hello <= 1
    {
        n.say(&format!(
            "The client sent its ClientHello and, after checking the impostor's certificate, \
             {} encrypted record (its alert) before closing: no chat line ever left it.",
            after_hello
        ))
    } else {
        n.warn("the impostor attempt's packets are not a refused handshake; see above")
    }
}

/// The cut session's packets, and what they prove.
pub fn truncation(report: &TruncationReport, tap: &Wiretap, n: &mut Narrator) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    if bare_fin(wire) {
        n.say(
            "After the line, a bare FIN: no 19-byte record before it, where a close_notify \
             (an encrypted alert: 2 bytes, its type, a 16-byte tag) would have come. TCP says \
             \"the end\"; TLS says nothing, and that is how the server knows it was cut.",
        )
    } else {
        n.warn("the cut session's packets do not end with a bare FIN; see above")
    }
}
