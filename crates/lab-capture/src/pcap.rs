//! Writing a capture as a `.pcap` file that Wireshark and `tcpdump -r` open.
//!
//! The classic pcap format (written with the `pcap-file` crate): a file header naming the
//! link type (Ethernet: `lo` frames carry a 14-byte Ethernet header with zero addresses),
//! then each frame with its kernel timestamp in nanoseconds and its real length.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::capture::RawFrame;

/// Writes `frames` to a new pcap file at `path`.
pub fn write(path: &Path, frames: &[RawFrame]) -> io::Result<()> {
    let file = BufWriter::new(File::create(path)?);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(file, header).map_err(io::Error::other)?;
    for frame in frames {
        let length = u32::try_from(frame.length).unwrap_or(u32::MAX);
        writer
            .write_packet(&PcapPacket::new(frame.timestamp, length, &frame.data))
            .map_err(io::Error::other)?;
    }
    let mut file = writer.into_writer();
    io::Write::flush(&mut file)
}
