//! The "on the wire" part of an experiment's narration: the ladder, the drop count, the
//! pcap file. It follows the experiment's own narration; in `--json` mode the packets are
//! in the experiment's record instead, and nothing is printed here.

use std::io;

use lab_kit::narrate::Narrator;

use crate::{Wire, Wiretap, ladder, svg};

/// The name of the attachment that holds a ladder's SVG drawing. The evidence lines that
/// follow it are the same ladder as text (a report shows one or the other).
pub const LADDER_SVG: &str = "ladder-svg";

/// Prints what the capture of an experiment saw, or (once per chapter) why it saw nothing.
/// Returns the wire if its packets were captured, for the lab to say what they prove.
pub fn wire<'w>(
    wire: Option<&'w Wire>,
    tap: &Wiretap,
    n: &mut Narrator,
) -> io::Result<Option<&'w Wire>> {
    let Some(wire) = wire else { return Ok(None) };
    if let Some(why) = &wire.capture.unavailable {
        if tap.unavailable().is_none() {
            n.warn(why)?;
        } else if !tap.told_unavailable.replace(true) {
            n.skipped("the packets on the wire", why)?;
        }
        return Ok(None);
    }
    n.say(&format!(
        "On the wire: {} captured on {} (kernel filter: port {}), kernel timestamps:",
        match wire.packets.len() {
            1 => "1 packet".to_string(),
            count => format!("{count} packets"),
        },
        wire.capture.interface,
        wire.capture
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    ))?;
    // For a recorded report: the same ladder as a drawing, just before its text lines.
    n.attach(LADDER_SVG, || svg::ladder(wire));
    for line in ladder::lines(wire) {
        n.evidence(&line)?;
    }
    match wire.capture.kernel_drops {
        Some(0) => {}
        Some(drops) => n.warn(&format!(
            "the kernel dropped {drops} frames of this capture (its queue was full): the ladder is incomplete"
        ))?,
        None => {}
    }
    if let Some(why) = &wire.capture.timestamps_late {
        n.warn(why)?;
    }
    if !wire.capture.complete {
        n.warn(
            "the capture stopped before its end marker arrived: the last packets may be missing",
        )?;
    }
    if let Some(path) = &wire.capture.pcap {
        n.fact("pcap file (Wireshark)", path)?;
    }
    if let Some(path) = &wire.capture.key_log {
        n.fact("TLS key log", path)?;
    }
    if let Some(error) = &wire.capture.pcap_error {
        n.warn(error)?;
    }
    Ok(Some(wire))
}
