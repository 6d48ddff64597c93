//! What an eavesdropper sees of a TLS session: the record layer, and nothing more.
//!
//! TLS sends *records*: a 5-byte header in the clear (content type, version, length), then
//! the body. The first records are readable: the client's `ClientHello` and the server's
//! `ServerHello` (type 22, handshake). In TLS 1.3 everything after the `ServerHello` (the
//! rest of the handshake, every line of the chat, alerts, `close_notify`) travels as
//! *application data* (type 23) records whose bodies are ciphertext: the wire shows only
//! their sizes and times, and that is the lesson. (The endpoints know what each record was:
//! the lab marks its own events among the packets, and writes the session's secrets in
//! `SSLKEYLOGFILE` format beside the pcap so that Wireshark can decrypt it.)
//!
//! Records do not line up with TCP segments: one segment may carry several records, and a
//! record may span segments. So each direction's byte stream is put back together from the
//! captured segments (by sequence number), read record by record, and each record is
//! credited to the segment that carries its first byte.

use std::collections::BTreeMap;

use etherparse::{SlicedPacket, TransportSlice};

use crate::capture::RawFrame;
use crate::packet::{Packet, Protocol};

/// The name of a record, from its content type and (for a handshake) its message type.
fn record_name(content_type: u8, body: &[u8]) -> String {
    match content_type {
        20 => "ChangeCipherSpec".into(),
        21 => "Alert".into(),
        22 => match body.first() {
            Some(1) => "ClientHello".into(),
            Some(2) => "ServerHello".into(),
            Some(kind) => format!("Handshake({kind})"),
            None => "Handshake".into(),
        },
        23 => "ApplicationData".into(),
        other => format!("Record({other})"),
    }
}

/// One TLS record found in a byte stream: a 5-byte header in the clear (content type,
/// version, length), then the body (ciphertext once the handshake is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record's header starts in the stream.
    pub offset: usize,
    /// 20 ChangeCipherSpec, 21 Alert, 22 Handshake, 23 ApplicationData.
    pub content_type: u8,
    /// The body's length, as the header says it.
    pub length: usize,
    /// The body as far as the stream holds it: shorter than `length` if the stream ends
    /// inside the record.
    pub body: &'a [u8],
}

impl Record<'_> {
    /// True if the stream holds the whole record.
    pub fn is_complete(&self) -> bool {
        self.body.len() == self.length
    }
}

/// The TLS records of `stream`, in order, read from their headers alone (which is all an
/// eavesdropper, or a packet capture, can read). The last one may be cut off.
pub fn records(stream: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = stream.get(at..at + 5)?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let body = &stream[at + 5..(at + 5 + length).min(stream.len())];
        let record = Record {
            offset: at,
            content_type: header[0],
            length,
            body,
        };
        at += 5 + length;
        Some(record)
    })
}

/// One direction's TCP segments: relative sequence number → (packet index, payload).
type Segments = BTreeMap<u32, (usize, Vec<u8>)>;

/// Finds the TLS records in the TCP streams of `packets` (decoded from `frames`, each
/// packet knowing its frame) and names them in each packet's `tls` list, e.g. `ClientHello 517`. A
/// direction whose stream does not begin with a TLS record header is left alone.
pub fn label_records(packets: &mut [Packet], frames: &[RawFrame]) {
    // Each direction's segments, by relative sequence number.
    let mut streams: BTreeMap<(String, String), Segments> = BTreeMap::new();
    for (index, packet) in packets.iter().enumerate() {
        if packet.protocol != Protocol::Tcp || packet.len == 0 {
            continue;
        }
        let payload = frames.get(packet.frame).and_then(|f| tcp_payload(&f.data));
        let (Some(seq), Some(payload)) = (packet.seq, payload) else {
            continue;
        };
        streams
            .entry((packet.src.clone(), packet.dst.clone()))
            .or_default()
            .entry(seq)
            .or_insert((index, payload));
    }
    for segments in streams.values() {
        // The stream, from its first captured byte, with where each segment began in it.
        let mut stream: Vec<u8> = Vec::new();
        let mut starts: Vec<(usize, usize)> = Vec::new();
        let mut next: Option<u32> = None;
        for (&seq, (index, payload)) in segments {
            let skip = match next {
                None => 0,
                Some(expected) if seq <= expected => (expected - seq) as usize,
                // A hole (a segment not captured): stop here rather than misread.
                Some(_) => break,
            };
            if skip >= payload.len() {
                continue;
            }
            starts.push((stream.len(), *index));
            stream.extend_from_slice(&payload[skip..]);
            next = Some(seq + payload.len() as u32);
        }
        // A TLS stream starts with a record header: type 20-23, version 3.x. (A capture that
        // starts after the handshake, as when a lab watches only a session's end, still reads.)
        if !(stream.len() >= 3 && (20..=23).contains(&stream[0]) && stream[1] == 3) {
            continue;
        }
        for record in records(&stream) {
            let carrier = starts
                .iter()
                .rev()
                .find(|(offset, _)| *offset <= record.offset)
                .map(|(_, index)| *index);
            if let Some(index) = carrier {
                packets[index].tls.push(format!(
                    "{} {}",
                    record_name(record.content_type, record.body),
                    record.length
                ));
            }
        }
    }
}

fn tcp_payload(frame: &[u8]) -> Option<Vec<u8>> {
    match SlicedPacket::from_ethernet(frame).ok()?.transport? {
        TransportSlice::Tcp(tcp) => Some(tcp.payload().to_vec()),
        _ => None,
    }
}

/// Collects a TLS session's secrets, as rustls hands them to a [`rustls::KeyLog`], in the
/// `SSLKEYLOGFILE` format (NSS key log) that Wireshark reads: `LABEL client_random secret`,
/// hexadecimal, one per line.
#[derive(Debug, Default)]
pub struct KeyLogLines(std::sync::Mutex<Vec<String>>);

impl KeyLogLines {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(feature = "tls")]
impl rustls::KeyLog for KeyLogLines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{label} {} {}", hex(client_random), hex(secret)));
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;

    use super::*;
    use crate::packet::{decode, relate};

    const CLIENT: u16 = 40_000;
    const SERVER: u16 = 443;

    /// A TCP segment on loopback, as the capture would hold it.
    fn segment(from_client: bool, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = if from_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        let builder = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(src, dst, seq, 65_535);
        let builder = if syn { builder.syn() } else { builder.ack(1) };
        let mut frame = Vec::new();
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut record = vec![content_type, 3, 3];
        record.extend((body.len() as u16).to_be_bytes());
        record.extend(body);
        record
    }

    #[test]
    fn records_are_read_from_their_headers_and_the_last_may_be_cut_off() {
        let mut stream = record(22, &[1, 0, 0, 1]);
        stream.extend(record(23, b"secret!!"));
        stream.truncate(stream.len() - 3);
        let found: Vec<Record> = records(&stream).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].offset, found[0].content_type, found[0].length),
            (0, 22, 4)
        );
        assert!(found[0].is_complete());
        assert_eq!(
            (found[1].offset, found[1].content_type, found[1].length),
            (9, 23, 8)
        );
        assert_eq!(found[1].body, b"secre");
        assert!(!found[1].is_complete());
        assert_eq!(
            records(&stream[..4]).count(),
            0,
            "no whole header, no record"
        );
    }

    fn label(frames: Vec<Vec<u8>>) -> Vec<Vec<String>> {
        let frames: Vec<RawFrame> = frames
            .into_iter()
            .enumerate()
            .map(|(i, data)| RawFrame {
                timestamp: Duration::from_micros(i as u64),
                length: data.len(),
                data,
            })
            .collect();
        let mut packets: Vec<Packet> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut p = decode(&f.data, f.timestamp, &[SERVER]).unwrap();
                p.frame = i;
                p
            })
            .collect();
        relate(&mut packets);
        label_records(&mut packets, &frames);
        packets.into_iter().map(|p| p.tls).collect()
    }

    #[test]
    fn records_are_found_across_and_within_segments_and_retransmissions_count_once() {
        let mut hello_body = vec![1u8];
        hello_body.resize(300, 0);
        let client_hello = record(22, &hello_body);
        let first_data = record(23, &[0; 20]);
        let mut client_stream = client_hello.clone();
        client_stream.extend(&first_data);
        let (part1, part2) = client_stream.split_at(200);
        let mut server_hello_body = vec![2u8];
        server_hello_body.resize(90, 0);
        let mut server_stream = record(22, &server_hello_body);
        server_stream.extend(record(20, &[1]));
        server_stream.extend(record(23, &[0; 50]));
        let labels = label(vec![
            segment(true, 1000, true, &[]),
            segment(false, 5000, true, &[]),
            segment(true, 1001, false, part1),
            segment(true, 1201, false, part2),
            // The same bytes again: a retransmission.
            segment(true, 1201, false, part2),
            segment(false, 5001, false, &server_stream),
        ]);
        assert_eq!(labels[2], ["ClientHello 300"]);
        assert_eq!(labels[3], ["ApplicationData 20"]);
        assert!(labels[4].is_empty(), "a retransmission is not a new record");
        assert_eq!(
            labels[5],
            ["ServerHello 90", "ChangeCipherSpec 1", "ApplicationData 50"]
        );
    }

    #[test]
    fn a_stream_that_is_not_tls_is_left_alone() {
        let labels = label(vec![
            segment(true, 1000, true, &[]),
            segment(true, 1001, false, b"GET / HTTP/1.1\r\n\r\n"),
        ]);
        assert!(labels.iter().all(Vec::is_empty));
    }
}
