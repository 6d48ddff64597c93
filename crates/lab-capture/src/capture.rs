//! One experiment's capture: a reader thread on a packet socket, started before the
//! experiment's first packet and stopped after its last.
//!
//! Stopping is the subtle part. The frames of the experiment may still sit in the socket's
//! queue when the experiment returns, and waiting "a little while" would be a guess. So the
//! capture sends a *marker*: one UDP datagram from a port the filter also accepts (for UDP
//! only), to itself on loopback, or across the link to the host on the other side (whose
//! ICMP answer the filter does not let through). Frames reach the socket's queue in the order the kernel
//! handled them, so when the reader sees the marker, everything the experiment's calls sent
//! before it has been read. The marker itself is not kept.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::filter::ports_filter;
use crate::socket::{PacketSocket, Statistics};

/// The largest frame on `lo` (MTU 65,536) plus its Ethernet header, with room to spare.
const FRAME_BUFFER: usize = 70_000;
/// At most this many bytes of frames are kept in full; beyond it only the first
/// [`HEADERS_ONLY`] bytes of each frame (its headers), so memory stays bounded.
const KEEP_IN_FULL: usize = 256 << 20;
const HEADERS_ONLY: usize = 128;
/// How long `finish` waits for its marker before it gives up (a bound, not a guess: on a
/// healthy machine the marker arrives in microseconds).
const MARKER_DEADLINE: Duration = Duration::from_secs(10);

/// One captured frame, kept for the pcap file and for decoding.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// When the kernel captured it, since the Unix epoch.
    pub timestamp: Duration,
    /// The frame's real length on the wire.
    pub length: usize,
    /// Its bytes (all of them, unless the capture grew beyond its memory bound).
    pub data: Vec<u8>,
}

/// What the reader thread collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub frames: Vec<RawFrame>,
    /// Frames kept only in part, to bound memory.
    pub truncated: u64,
    /// The kernel's statistics for the whole capture.
    pub statistics: Statistics,
    /// True if the end-of-capture marker arrived (so nothing before it is missing).
    pub marker_seen: bool,
    /// Why the timestamps may be late (taken when read, not when the packet crossed), if so.
    pub timestamps_late: Option<String>,
}

/// A capture in progress.
#[derive(Debug)]
pub struct Capture {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<io::Result<Collected>>>,
    marker: UdpSocket,
    /// Where the marker goes: through the captured interface.
    marker_to: SocketAddr,
    timestamps_late: Option<String>,
}

impl Capture {
    /// Starts capturing, on `interface`, the packets to or from `ports`. Returns once the
    /// socket is bound: any packet sent after this returns is captured.
    ///
    /// `across` is, for an interface other than `lo`, an address on the other side of it
    /// (where the end marker is sent); on `lo` the marker goes to the capture itself.
    pub fn start(interface: &str, ports: &[u16], across: Option<IpAddr>) -> io::Result<Self> {
        let timestamps_late = crate::socket::keep_kernel_timestamps_on().err();
        let marker = match across {
            None => UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?,
            Some(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
        };
        let marker_port = marker.local_addr()?.port();
        let marker_to = match across {
            None => marker.local_addr()?,
            Some(ip) => SocketAddr::new(ip, marker_port),
        };
        let socket = PacketSocket::open(interface, &ports_filter(ports, &[marker_port]))?;
        let loopback = interface == "lo";
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("lab-capture".into())
                .spawn(move || read_until_marker(&socket, loopback, marker_port, &stop))?
        };
        Ok(Capture {
            stop,
            reader: Some(reader),
            marker,
            marker_to,
            timestamps_late,
        })
    }

    /// Sends the marker, waits until the reader has seen it, and returns every frame.
    pub fn finish(mut self) -> io::Result<Collected> {
        self.stop.store(true, Ordering::SeqCst);
        self.marker
            .send_to(b"lab-capture: end of experiment", self.marker_to)?;
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(collected)) => collected.map(|mut collected| {
                collected.timestamps_late = self.timestamps_late.take();
                collected
            }),
            Some(Err(_)) => Err(io::Error::other("the capture's reader thread panicked")),
            None => Err(io::Error::other("the capture was already finished")),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // A capture dropped without finish() (an experiment failed): stop the reader.
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = self.marker.send_to(b"lab-capture: stop", self.marker_to);
            let _ = reader.join();
        }
    }
}

fn read_until_marker(
    socket: &PacketSocket,
    loopback: bool,
    marker_port: u16,
    stop: &AtomicBool,
) -> io::Result<Collected> {
    let mut collected = Collected::default();
    let mut kept_bytes = 0usize;
    let mut buffer = vec![0u8; FRAME_BUFFER];
    let mut stop_asked: Option<Instant> = None;
    loop {
        match socket.recv(&mut buffer) {
            Ok(frame) => {
                // On loopback every frame is seen leaving and arriving: keep the arrival,
                // as libpcap does.
                if loopback && frame.outgoing {
                    continue;
                }
                let data = &buffer[..frame.captured];
                if is_marker(data, marker_port) {
                    if stop.load(Ordering::SeqCst) {
                        collected.marker_seen = true;
                        break;
                    }
                    continue;
                }
                let keep = if kept_bytes + data.len() <= KEEP_IN_FULL {
                    data.len()
                } else {
                    collected.truncated += 1;
                    data.len().min(HEADERS_ONLY)
                };
                kept_bytes += keep;
                collected.frames.push(RawFrame {
                    timestamp: if frame.timestamp.is_zero() {
                        SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                    } else {
                        frame.timestamp
                    },
                    length: frame.length,
                    data: data[..keep].to_vec(),
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if stop.load(Ordering::SeqCst) {
            let asked = *stop_asked.get_or_insert_with(Instant::now);
            if asked.elapsed() > MARKER_DEADLINE {
                break;
            }
        }
    }
    collected.statistics = socket.statistics()?;
    Ok(collected)
}

/// True if `frame` is a UDP datagram to the capture's own marker port.
fn is_marker(frame: &[u8], marker_port: u16) -> bool {
    matches!(
        etherparse::SlicedPacket::from_ethernet(frame).map(|p| p.transport),
        Ok(Some(etherparse::TransportSlice::Udp(udp))) if udp.destination_port() == marker_port
    )
}
