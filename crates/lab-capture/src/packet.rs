//! From frames to packets a student can read: addresses, TCP flags, sequence numbers
//! relative to each side's first one, payload length, ICMP errors.
//!
//! The frames are parsed with `etherparse` (Ethernet, IPv4/IPv6, TCP/UDP/ICMP), not by hand.
//! Sequence numbers are shown as Wireshark shows them by default: relative to the
//! *initial sequence number* (ISN) that each side chose at random in its SYN, so that a
//! handshake always reads `seq=0`, then `seq=1 ack=1`, and a data segment's `seq` is the
//! offset of its first byte in the stream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice};
use serde::Serialize;

/// The transport of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "ICMP")]
    Icmp,
    #[serde(rename = "ICMPv6")]
    Icmpv6,
}

/// One packet of an experiment, as the ladder and the JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct Packet {
    /// Microseconds since the capture's first packet (kernel timestamps).
    pub t_us: u64,
    /// Sender, `ip:port` (just `ip` for ICMP).
    pub src: String,
    /// Receiver, `ip:port` (just `ip` for ICMP).
    pub dst: String,
    pub protocol: Protocol,
    /// TCP flags such as `SYN`, `SYN,ACK`, `RST,ACK`, `PSH,ACK`; empty for UDP and ICMP.
    pub flags: String,
    /// TCP sequence number relative to the sender's initial one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// TCP acknowledgment number relative to the receiver's initial one (when ACK is set and
    /// the capture saw the receiver send something).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// Payload bytes (TCP or UDP data; for ICMP, the quoted bytes).
    pub len: usize,
    /// For ICMP: what the message says, e.g. `port unreachable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<String>,
    /// The TLS records that begin in this segment, e.g. `ClientHello 517`,
    /// `ApplicationData 58` (type and length, all an eavesdropper can read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<String>,
    /// What the endpoints say this packet carried, which the wire does not show (such as
    /// which opaque TLS record was a typed line): added by the lab, never inferred here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_from_endpoints: Vec<String>,
    /// When the kernel captured it, since the Unix epoch.
    #[serde(skip)]
    pub timestamp: Duration,
    /// True if it travels from the client's side to the server's (the watched ports).
    #[serde(skip)]
    pub toward_server: bool,
    /// The absolute TCP sequence and acknowledgment numbers, as on the wire.
    #[serde(skip)]
    pub wire_seq: u32,
    #[serde(skip)]
    pub wire_ack: u32,
    /// For TCP and UDP: the client's address (the end that is not a watched port).
    #[serde(skip)]
    pub client: Option<SocketAddr>,
    /// Which captured frame this is (its index in the capture, and in the pcap file).
    #[serde(skip)]
    pub frame: usize,
}

impl Packet {
    /// True if this is TCP with exactly these flags, e.g. `is("SYN")`, `is("RST,ACK")`.
    pub fn is(&self, flags: &str) -> bool {
        self.protocol == Protocol::Tcp && self.flags == flags
    }

    /// True if this TCP packet has `flag` among its flags.
    pub fn has(&self, flag: &str) -> bool {
        self.protocol == Protocol::Tcp && self.flags.split(',').any(|f| f == flag)
    }
}

/// Parses one Ethernet frame. `server_ports` decides which end is the server. Returns None
/// for a frame that is not IPv4/IPv6 TCP, UDP or ICMP (the filter lets none through), and
/// for a TCP or UDP frame with a watched port at neither end or at both: an experiment's
/// packets go between a watched (server) port and a client's port that the kernel chose, so
/// such a frame belongs to another program that happens to use the same port numbers.
pub fn decode(frame: &[u8], timestamp: Duration, server_ports: &[u16]) -> Option<Packet> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => return None,
    };
    let mut packet = Packet {
        t_us: 0,
        src: src_ip.to_string(),
        dst: dst_ip.to_string(),
        protocol: Protocol::Tcp,
        flags: String::new(),
        seq: None,
        ack: None,
        len: 0,
        icmp: None,
        tls: Vec::new(),
        known_from_endpoints: Vec::new(),
        timestamp,
        toward_server: true,
        wire_seq: 0,
        wire_ack: 0,
        client: None,
        frame: 0,
    };
    let ends = |src_port: u16, dst_port: u16, packet: &mut Packet| {
        let src = SocketAddr::new(src_ip, src_port);
        let dst = SocketAddr::new(dst_ip, dst_port);
        packet.src = src.to_string();
        packet.dst = dst.to_string();
        packet.toward_server =
            server_ports.contains(&dst_port) || !server_ports.contains(&src_port);
        packet.client = Some(if packet.toward_server { src } else { dst });
    };
    // Neither end on a watched port: let through by the kernel for the end marker's UDP port
    // number (or, where it is IPv6, not this experiment's at all).
    let foreign = |src: u16, dst: u16| {
        let watched = |port: u16| server_ports.contains(&port);
        watched(src) == watched(dst)
    };
    match sliced.transport? {
        TransportSlice::Tcp(tcp) if foreign(tcp.source_port(), tcp.destination_port()) => {
            return None;
        }
        TransportSlice::Udp(udp) if foreign(udp.source_port(), udp.destination_port()) => {
            return None;
        }
        TransportSlice::Tcp(tcp) => {
            ends(tcp.source_port(), tcp.destination_port(), &mut packet);
            let flags = [
                (tcp.syn(), "SYN"),
                (tcp.fin(), "FIN"),
                (tcp.rst(), "RST"),
                (tcp.psh(), "PSH"),
                (tcp.ack(), "ACK"),
                (tcp.urg(), "URG"),
            ];
            packet.flags = flags
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(",");
            packet.wire_seq = tcp.sequence_number();
            packet.wire_ack = tcp.acknowledgment_number();
            packet.len = tcp.payload().len();
        }
        TransportSlice::Udp(udp) => {
            ends(udp.source_port(), udp.destination_port(), &mut packet);
            packet.protocol = Protocol::Udp;
            packet.len = udp.payload().len();
        }
        TransportSlice::Icmpv4(icmp) => {
            packet.protocol = Protocol::Icmp;
            packet.len = icmp.payload().len();
            packet.icmp = Some(icmpv4_meaning(icmp.type_u8(), icmp.code_u8()));
            packet.toward_server = quoted_toward_server(icmp.payload(), server_ports);
        }
        TransportSlice::Icmpv6(icmp) => {
            packet.protocol = Protocol::Icmpv6;
            packet.len = icmp.payload().len();
            packet.icmp = Some(icmpv6_meaning(icmp.type_u8(), icmp.code_u8()));
            packet.toward_server = quoted_toward_server(icmp.payload(), server_ports);
        }
        _ => return None,
    }
    Some(packet)
}

/// An ICMP error quotes the datagram that caused it: if that datagram went to the server,
/// the error goes back to the client.
fn quoted_toward_server(quoted: &[u8], server_ports: &[u16]) -> bool {
    let Ok(inner) = LaxSlicedPacket::from_ip(quoted) else {
        return false;
    };
    if !matches!(inner.net, Some(LaxNetSlice::Ipv4(_) | LaxNetSlice::Ipv6(_))) {
        return false;
    }
    let quoted_dst = match inner.transport {
        Some(TransportSlice::Udp(udp)) => udp.destination_port(),
        Some(TransportSlice::Tcp(tcp)) => tcp.destination_port(),
        _ => return false,
    };
    !server_ports.contains(&quoted_dst)
}

fn icmpv4_meaning(kind: u8, code: u8) -> String {
    match (kind, code) {
        (3, 0) => "network unreachable".into(),
        (3, 1) => "host unreachable".into(),
        (3, 3) => "port unreachable".into(),
        (3, 4) => "fragmentation needed".into(),
        (3, _) => format!("destination unreachable (code {code})"),
        (11, _) => "time exceeded".into(),
        (0, _) => "echo reply".into(),
        (8, _) => "echo request".into(),
        _ => format!("type {kind} code {code}"),
    }
}

fn icmpv6_meaning(kind: u8, code: u8) -> String {
    match (kind, code) {
        (1, 4) => "port unreachable".into(),
        (1, _) => format!("destination unreachable (code {code})"),
        (2, _) => "packet too big".into(),
        (3, _) => "time exceeded".into(),
        _ => format!("type {kind} code {code}"),
    }
}

/// Fills in what needs the whole capture: times relative to the first packet, and TCP
/// sequence numbers relative to each side's initial sequence number.
pub fn relate(packets: &mut [Packet]) {
    packets.sort_by_key(|p| p.timestamp);
    let first = packets.first().map(|p| p.timestamp).unwrap_or_default();
    // The base of each direction: its SYN's sequence number, or the first one seen.
    let mut base: HashMap<(String, String), u32> = HashMap::new();
    for packet in packets.iter().filter(|p| p.protocol == Protocol::Tcp) {
        let key = (packet.src.clone(), packet.dst.clone());
        if packet.has("SYN") {
            base.insert(key, packet.wire_seq);
        } else {
            base.entry(key).or_insert(packet.wire_seq);
        }
    }
    for packet in packets.iter_mut() {
        packet.t_us =
            u64::try_from(packet.timestamp.saturating_sub(first).as_micros()).unwrap_or(u64::MAX);
        if packet.protocol != Protocol::Tcp {
            continue;
        }
        let own = base
            .get(&(packet.src.clone(), packet.dst.clone()))
            .copied()
            .unwrap_or(0);
        packet.seq = Some(packet.wire_seq.wrapping_sub(own));
        if packet.has("ACK") {
            // Relative to the peer's base; unknown (left out) if the capture saw nothing the
            // peer sent, as when it starts in the middle of a connection.
            let peer = base.get(&(packet.dst.clone(), packet.src.clone())).copied();
            packet.ack = peer.map(|peer| packet.wire_ack.wrapping_sub(peer));
        }
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn tcp_frame(src: u16, dst: u16) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(src, dst, 1, 65_535)
            .syn()
            .write(&mut frame, &[])
            .unwrap();
        frame
    }

    #[test]
    fn the_server_end_is_the_watched_port_and_a_frame_between_two_watched_ports_is_foreign() {
        let to_server = decode(&tcp_frame(40_000, 5000), Duration::ZERO, &[5000]).unwrap();
        assert!(to_server.toward_server && to_server.is("SYN"));
        assert_eq!(to_server.client, Some("127.0.0.1:40000".parse().unwrap()));
        let back = decode(&tcp_frame(5000, 40_000), Duration::ZERO, &[5000]).unwrap();
        assert!(!back.toward_server);
        assert!(decode(&tcp_frame(5000, 6000), Duration::ZERO, &[5000, 6000]).is_none());
        assert!(decode(&tcp_frame(40_000, 7000), Duration::ZERO, &[5000]).is_none());
    }
}
