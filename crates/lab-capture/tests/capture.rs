//! The capture, checked on real loopback traffic: it sees exactly the experiment's packets,
//! nothing of the machine's other traffic, loses nothing of a multi-megabyte transfer, and
//! writes a pcap file that tcpdump reads. Needs root or CAP_NET_RAW (CI runs as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::process::Command;

use lab_capture::{Protocol, Wire, Wiretap};
use lab_kit::ports::ClosedTcpPort;

fn refused_connect(tap: &Wiretap) -> (Wire, std::net::SocketAddr) {
    let closed = ClosedTcpPort::reserve().unwrap();
    // Traffic on another loopback port, during the capture: the kernel's filter must drop it.
    let noise = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let watch = tap.watch("refused", &[closed.addr().port()]);
    let error = TcpStream::connect(closed.addr()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut other = TcpStream::connect(noise.local_addr().unwrap()).unwrap();
    other.write_all(b"not ours").unwrap();
    let wire = watch.finish().unwrap();
    (wire, closed.addr())
}

#[test]
fn a_refused_connect_is_one_syn_and_one_reset_and_nothing_else() {
    let Some(tap) = lab_test_support::wiretap("a_refused_connect_is_one_syn_and_one_reset", None)
    else {
        return;
    };
    let (wire, target) = refused_connect(&tap);
    assert!(wire.is_complete(), "{:?}", wire.capture);
    let flags: Vec<&str> = wire.packets.iter().map(|p| p.flags.as_str()).collect();
    assert_eq!(flags, ["SYN", "RST,ACK"], "{:#?}", wire.packets);
    let (syn, rst) = (&wire.packets[0], &wire.packets[1]);
    assert_eq!(syn.dst, target.to_string());
    assert_eq!(
        (rst.src.as_str(), rst.dst.as_str()),
        (syn.dst.as_str(), syn.src.as_str())
    );
    assert!(syn.toward_server && !rst.toward_server);
    // The reset acknowledges the SYN: relative ack 1.
    assert_eq!((syn.seq, rst.ack), (Some(0), Some(1)));
    assert!(rst.timestamp >= syn.timestamp);
}

#[test]
fn a_multi_megabyte_transfer_is_captured_to_the_last_byte() {
    let Some(tap) = lab_test_support::wiretap("a_multi_megabyte_transfer_is_captured", None) else {
        return;
    };
    const BYTES: usize = 8 << 20;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server = listener.local_addr().unwrap();
    let watch = tap.watch("transfer", &[server.port()]);
    let receiver = std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        connection.read_to_end(&mut received).unwrap();
        received.len()
    });
    let mut client = TcpStream::connect(server).unwrap();
    let client_addr = client.local_addr().unwrap();
    let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    client.write_all(&data).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(receiver.join().unwrap(), BYTES);
    let wire = watch.finish().unwrap();
    assert_eq!(
        wire.capture.kernel_drops,
        Some(0),
        "the kernel dropped frames"
    );
    assert!(wire.capture.complete);
    // Every byte of the stream, from relative sequence 1 to BYTES, is in some captured
    // segment (a retransmission may cover some twice: count the union, not the sum).
    let mut ranges: Vec<(u64, u64)> = wire
        .conversation(client_addr)
        .into_iter()
        .filter(|p| p.protocol == Protocol::Tcp && p.toward_server && p.len > 0)
        .map(|p| {
            let start = u64::from(p.seq.unwrap());
            (start, start + p.len as u64)
        })
        .collect();
    ranges.sort();
    let mut covered_until = 1u64;
    for (start, end) in ranges {
        assert!(
            start <= covered_until,
            "bytes {covered_until}..{start} were not captured"
        );
        covered_until = covered_until.max(end);
    }
    assert_eq!(covered_until, 1 + BYTES as u64);
    // And the FIN comes with or after the last byte.
    let fin = wire
        .packets
        .iter()
        .find(|p| p.toward_server && p.has("FIN"))
        .unwrap();
    assert_eq!(fin.seq.unwrap() as usize + fin.len, 1 + BYTES);
}

#[test]
fn tcpdump_reads_the_pcap_file_and_sees_the_syn_and_the_reset() {
    let dir = std::env::temp_dir().join(format!("lab-capture-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(tap) = lab_test_support::wiretap("tcpdump_reads_the_pcap_file", Some(dir.clone()))
    else {
        return;
    };
    let (wire, _) = refused_connect(&tap);
    let path = wire.capture.pcap.clone().unwrap();
    let tcpdump = Command::new("tcpdump").args(["-n", "-r", &path]).output();
    std::fs::remove_dir_all(&dir).unwrap();
    let output = match tcpdump {
        Ok(output) => output,
        Err(e) => {
            lab_test_support::skip_unless_ci(
                "tcpdump_reads_the_pcap_file",
                format!("tcpdump: {e}"),
            );
            return;
        }
    };
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("Flags [S]"), "{text}");
    assert!(lines[1].contains("Flags [R.]"), "{text}");
}
