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

use crate::demo::ConversationReport;

/// The names of one direction's TLS records, in order (`ClientHello`, `ApplicationData`…).
pub fn records(wire: &Wire, toward_server: bool) -> Vec<&str> {
    wire.packets
        .iter()
        .filter(|p| p.toward_server == toward_server)
        .flat_map(|p| p.tls.iter())
        .filter_map(|record| record.split(' ').next())
        .collect()
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
pub fn narrate_conversation(
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
             each one was is known from the two programs (their typing is marked among the \
             packets), not from the wire."
        ))
    } else {
        n.warn("the capture does not show TLS hellos followed by opaque records; see above")
    }
}
