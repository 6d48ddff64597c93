//! What the packets of the kernel-keeps-working experiment prove, checked on the capture.
//!
//! The server's sleep is marked among the packets (by the clock of the kernel's packet
//! timestamps). If the handshake, every byte the client sent, and the server kernel's
//! acknowledgment of the last byte all fall before "server: woke up", then the sleeping
//! program took no part in any of it: its kernel did the work.

use lab_capture::{Packet, Wire, Wiretap};
use lab_kit::narrate::Narrator;
use std::io;

use crate::kernel_works::{KernelKeepsWorkingReport, marks};

/// The server kernel's first acknowledgment of every byte the client sent, if captured.
pub fn ack_of_everything(wire: &Wire, bytes_sent: usize) -> Option<&Packet> {
    let last = 1 + u32::try_from(bytes_sent).ok()?;
    wire.packets
        .iter()
        .find(|p| !p.toward_server && p.has("ACK") && p.ack.is_some_and(|ack| ack >= last))
}

/// True if the handshake, every data segment and the acknowledgment of the last byte were on
/// the wire before the server woke up.
pub fn acknowledged_while_asleep(wire: &Wire, bytes_sent: usize) -> bool {
    let Some(woke) = wire.mark_time(marks::WOKE) else {
        return false;
    };
    let data: Vec<&Packet> = wire
        .packets
        .iter()
        .filter(|p| p.toward_server && p.len > 0)
        .collect();
    let data_bytes: usize = data.iter().map(|p| p.len).sum();
    let syn_ack_early = wire
        .packets
        .iter()
        .any(|p| p.is("SYN,ACK") && p.timestamp < woke);
    data_bytes >= bytes_sent
        && data.iter().all(|p| p.timestamp < woke)
        && syn_ack_early
        && ack_of_everything(wire, bytes_sent).is_some_and(|ack| ack.timestamp < woke)
}

/// The experiment's packets, and what they prove.
pub fn kernel_keeps_working(
    report: &KernelKeepsWorkingReport,
    tap: &Wiretap,
    n: &mut Narrator,
) -> io::Result<()> {
    let Some(wire) = lab_capture::narrate::wire(report.wire.as_ref(), tap, n)? else {
        return Ok(());
    };
    if acknowledged_while_asleep(wire, report.bytes_sent) {
        n.say(
            "Between \"sleep began\" and \"woke up\": the handshake, the client's data, and \
             the server kernel's ACK of the last byte. The sleeping program sent none of those \
             packets; its kernel did.",
        )
    } else {
        n.warn("the capture does not show the data acknowledged during the sleep; see above")
    }
}
