//! Seeing the packets: each experiment's own packets, captured from the wire as it runs.
//!
//! The labs prove their answers with system calls and kernel counters; the packets are the
//! strongest evidence of all, and some claims can only be proven there: a refused connect
//! is one SYN answered by one RST; a full accept queue is a SYN sent again and again with no
//! answer; a UDP datagram to a closed port comes back as an ICMP "port unreachable".
//!
//! - [`socket`]: an `AF_PACKET` raw socket on `lo`, with kernel timestamps and drop counts;
//! - [`filter`]: the classic BPF program that keeps only the experiment's own ports;
//! - [`capture`]: the reader thread, and how it knows it has read everything;
//! - [`packet`]: frames parsed (with etherparse) into what a ladder shows;
//! - [`ladder`]: the terminal's ladder diagram; [`svg`]: the same for the HTML report;
//!   [`pcap`]: the file for Wireshark; [`tls`]: the TLS records an eavesdropper sees;
//! - [`narrate`]: the "on the wire" part that follows an experiment's narration.
//!
//! A lab holds a [`Wiretap`] for a run and, around each experiment, asks it to
//! [`watch`](Wiretap::watch) the experiment's ports; [`Watch::finish`] returns the [`Wire`]:
//! the packets (also in the experiment's JSON record), the kernel's drop count, the pcap
//! file. Capturing needs root or `CAP_NET_RAW`; without it, the [`Wire`] says why and the
//! experiment goes on with the evidence it has.
//!
//! This is its own crate so that only the programs that capture pay for etherparse and
//! pcap-file, and so that the capture (unsafe FFI for the socket options) stays in one place.

pub mod capture;
pub mod filter;
pub mod ladder;
pub mod narrate;
pub mod packet;
pub mod pcap;
pub mod socket;
pub mod svg;
pub mod tls;

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::capture::{Capture, RawFrame};
pub use crate::packet::{Packet, Protocol};

/// The lab contract (`lab_kit::chapter`), with this crate's [`Wiretap`] as the way a
/// chapter is told to capture its packets: what every lab exports as `CHAPTER`.
pub type Chapter = lab_kit::chapter::Chapter<Wiretap>;

/// The interface every loopback experiment crosses.
pub const LOOPBACK: &str = "lo";

/// Whether, and where, a run captures its experiments' packets.
#[derive(Debug)]
pub struct Wiretap {
    state: State,
    pcap_dir: Option<PathBuf>,
    /// True once this chapter has said that it cannot capture (it says so once).
    told_unavailable: Cell<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Off,
    On,
    Unavailable(String),
}

impl Clone for Wiretap {
    /// A copy for the next chapter: the same settings, and it will say again (once) if it
    /// cannot capture.
    fn clone(&self) -> Self {
        Wiretap {
            state: self.state.clone(),
            pcap_dir: self.pcap_dir.clone(),
            told_unavailable: Cell::new(false),
        }
    }
}

impl PartialEq for Wiretap {
    /// Two wiretaps are equal if they have the same settings.
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state && self.pcap_dir == other.pcap_dir
    }
}

impl Eq for Wiretap {}

impl Default for Wiretap {
    /// Off: a lab's experiments capture nothing unless a wiretap is given.
    fn default() -> Self {
        Wiretap::off()
    }
}

impl Wiretap {
    /// No capture at all: the experiments run exactly as without this crate.
    pub fn off() -> Self {
        Wiretap {
            state: State::Off,
            pcap_dir: None,
            told_unavailable: Cell::new(false),
        }
    }

    /// Captures every watched experiment if this process may (root or `CAP_NET_RAW`), and
    /// writes one pcap file per experiment into `pcap_dir` if given (it must exist).
    pub fn on(pcap_dir: Option<PathBuf>) -> Self {
        let state = match socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None) {
            Ok(_) => State::On,
            Err(e) => State::Unavailable(unavailable_reason(&e)),
        };
        Wiretap {
            state,
            pcap_dir,
            told_unavailable: Cell::new(false),
        }
    }

    /// A wiretap that cannot capture, for `why`: what a process without root or
    /// `CAP_NET_RAW` gets. For tests of that path on a machine where capture works.
    pub fn unavailable_for_tests(why: &str) -> Self {
        Wiretap {
            state: State::Unavailable(why.to_string()),
            pcap_dir: None,
            told_unavailable: Cell::new(false),
        }
    }

    /// True if watched experiments will really be captured (on, and permitted).
    pub fn captures(&self) -> bool {
        matches!(self.state, State::On)
    }

    /// True unless capture was turned off.
    pub fn is_on(&self) -> bool {
        !matches!(self.state, State::Off)
    }

    /// Why this process cannot capture, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        match &self.state {
            State::Unavailable(why) => Some(why),
            _ => None,
        }
    }

    /// Starts watching the packets to or from `ports` on loopback, for the experiment named
    /// `experiment` (also the pcap file's name). Call it before the experiment's first packet.
    pub fn watch(&self, experiment: &str, ports: &[u16]) -> Watch {
        self.watch_interface(experiment, LOOPBACK, ports, None)
    }

    /// Like [`watch`](Self::watch), on the link `interface` of the calling thread's network
    /// namespace; `across` is an address on the other side of the link.
    pub fn watch_link(
        &self,
        experiment: &str,
        interface: &str,
        ports: &[u16],
        across: std::net::IpAddr,
    ) -> Watch {
        self.watch_interface(experiment, interface, ports, Some(across))
    }

    fn watch_interface(
        &self,
        experiment: &str,
        interface: &str,
        ports: &[u16],
        across: Option<std::net::IpAddr>,
    ) -> Watch {
        let running = match &self.state {
            State::Off => Running::Off,
            State::Unavailable(why) => Running::NotCapturing(why.clone()),
            State::On => match Capture::start(interface, ports, across) {
                Ok(capture) => Running::Capturing(capture),
                Err(e) => Running::NotCapturing(format!("could not capture on {interface}: {e}")),
            },
        };
        Watch {
            pcap_dir: self.pcap_dir.clone(),
            experiment: experiment.to_string(),
            interface: interface.to_string(),
            ports: ports.to_vec(),
            running,
            marks: Vec::new(),
            key_log: None,
        }
    }
}

fn unavailable_reason(e: &io::Error) -> String {
    if matches!(e.kind(), io::ErrorKind::PermissionDenied) || e.raw_os_error() == Some(libc::EPERM)
    {
        "capturing packets needs root or CAP_NET_RAW (sudo, or setcap cap_net_raw+ep on the binary)"
            .to_string()
    } else {
        format!("this system cannot open a packet socket: {e}")
    }
}

enum Running {
    Off,
    NotCapturing(String),
    Capturing(Capture),
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Running::Off => f.write_str("Off"),
            Running::NotCapturing(why) => write!(f, "NotCapturing({why})"),
            Running::Capturing(_) => f.write_str("Capturing"),
        }
    }
}

/// One experiment being watched.
#[derive(Debug)]
pub struct Watch {
    /// Where the pcap file goes, if anywhere.
    pcap_dir: Option<PathBuf>,
    experiment: String,
    interface: String,
    ports: Vec<u16>,
    running: Running,
    marks: Vec<Mark>,
    key_log: Option<std::sync::Arc<tls::KeyLogLines>>,
}

/// A moment an endpoint reported itself (such as "accept() returned"), placed among the
/// packets by time: known from the program, not seen on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Microseconds since the first packet (0 if it came before any).
    pub t_us: u64,
    pub label: String,
    /// Since the Unix epoch, the clock of the kernel's packet timestamps.
    #[serde(skip)]
    pub timestamp: Duration,
}

impl Watch {
    /// Records that `label` happened now, by the clock of the packet timestamps.
    pub fn mark(&mut self, label: impl Into<String>) {
        self.mark_at(label, SystemTime::now());
    }

    /// Records that `label` happened at `when` (read with `SystemTime::now()` by the thread
    /// that saw it happen, perhaps another one).
    pub fn mark_at(&mut self, label: impl Into<String>, when: SystemTime) {
        if matches!(self.running, Running::Capturing(_)) {
            self.marks.push(Mark {
                t_us: 0,
                label: label.into(),
                timestamp: when.duration_since(UNIX_EPOCH).unwrap_or_default(),
            });
        }
    }

    /// A key log for the experiment's TLS client (`ClientConfig::key_log`), when capturing:
    /// its secrets are written beside the pcap file as `<experiment>.keys`, in the
    /// `SSLKEYLOGFILE` format, so that Wireshark decrypts the session.
    pub fn key_log(&mut self) -> Option<std::sync::Arc<tls::KeyLogLines>> {
        if !matches!(self.running, Running::Capturing(_)) {
            return None;
        }
        Some(std::sync::Arc::clone(
            self.key_log.get_or_insert_with(Default::default),
        ))
    }

    /// Stops watching and returns what was seen; None if capture is off.
    pub fn finish(self) -> Option<Wire> {
        let mut capture = CaptureFacts {
            interface: self.interface,
            ports: self.ports,
            kernel_drops: None,
            frames_truncated: 0,
            complete: false,
            pcap: None,
            pcap_error: None,
            key_log: None,
            timestamps_late: None,
            unavailable: None,
            marks: self.marks,
        };
        let running = match self.running {
            Running::Off => return None,
            Running::NotCapturing(why) => {
                capture.unavailable = Some(why);
                return Some(Wire {
                    packets: Vec::new(),
                    capture,
                    frames: Vec::new(),
                });
            }
            Running::Capturing(running) => running,
        };
        let mut collected = match running.finish() {
            Ok(collected) => collected,
            Err(e) => {
                capture.unavailable = Some(format!("the capture failed: {e}"));
                return Some(Wire {
                    packets: Vec::new(),
                    capture,
                    frames: Vec::new(),
                });
            }
        };
        capture.kernel_drops = Some(collected.statistics.drops);
        capture.frames_truncated = collected.truncated;
        capture.complete = collected.marker_seen;
        capture.timestamps_late = collected.timestamps_late.take();
        // The experiment's frames (decoded), in the pcap file and the ladder alike.
        let mut frames = Vec::with_capacity(collected.frames.len());
        let mut packets: Vec<Packet> = Vec::with_capacity(collected.frames.len());
        for frame in std::mem::take(&mut collected.frames) {
            if let Some(mut packet) = packet::decode(&frame.data, frame.timestamp, &capture.ports) {
                packet.frame = frames.len();
                packets.push(packet);
                frames.push(frame);
            }
        }
        packet::relate(&mut packets);
        tls::label_records(&mut packets, &frames);
        let first = packets.first().map(|p| p.timestamp).unwrap_or_default();
        for mark in &mut capture.marks {
            mark.t_us =
                u64::try_from(mark.timestamp.saturating_sub(first).as_micros()).unwrap_or(u64::MAX);
        }
        if let Some(dir) = &self.pcap_dir {
            let path = dir.join(format!("{}.pcap", self.experiment));
            match pcap::write(&path, &frames) {
                Ok(()) => capture.pcap = Some(path.display().to_string()),
                Err(e) => {
                    capture.pcap_error = Some(format!("could not write {}: {e}", path.display()))
                }
            }
            if let Some(key_log) = &self.key_log {
                let path = dir.join(format!("{}.keys", self.experiment));
                let mut text = key_log.lines().join("\n");
                text.push('\n');
                match std::fs::write(&path, text) {
                    Ok(()) => capture.key_log = Some(path.display().to_string()),
                    Err(e) => {
                        capture.pcap_error =
                            Some(format!("could not write {}: {e}", path.display()))
                    }
                }
            }
        }
        Some(Wire {
            packets,
            capture,
            frames,
        })
    }
}

/// An experiment's packets, as seen on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Wire {
    /// Every packet of the experiment, in time order.
    pub packets: Vec<Packet>,
    /// How they were captured, and whether anything is missing.
    pub capture: CaptureFacts,
    /// The frames themselves, as written to the pcap file.
    #[serde(skip)]
    pub frames: Vec<RawFrame>,
}

/// How an experiment's packets were captured.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureFacts {
    pub interface: String,
    /// The ports the kernel's filter kept.
    pub ports: Vec<u16>,
    /// Frames the kernel dropped because the capture's queue was full (`PACKET_STATISTICS`).
    pub kernel_drops: Option<u64>,
    /// Frames kept only in part (their headers) to bound memory.
    pub frames_truncated: u64,
    /// True if the capture read everything up to its end-of-experiment marker.
    pub complete: bool,
    /// The pcap file written, if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_error: Option<String>,
    /// The TLS key log written beside the pcap (`SSLKEYLOGFILE` format), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_log: Option<String>,
    /// Why the times may be late (when read rather than when the packet crossed), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamps_late: Option<String>,
    /// Why there are no packets, if there are none because capture was impossible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// What the endpoints reported, placed among the packets by time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

impl Wire {
    /// When the mark named `label` was taken (since the Unix epoch), if it was.
    pub fn mark_time(&self, label: &str) -> Option<Duration> {
        self.capture
            .marks
            .iter()
            .find(|m| m.label == label)
            .map(|m| m.timestamp)
    }

    /// The packets between `client` and the watched ports (one conversation), plus the ICMP.
    pub fn conversation(&self, client: std::net::SocketAddr) -> Vec<&Packet> {
        self.packets
            .iter()
            .filter(|p| p.client == Some(client) || p.client.is_none())
            .collect()
    }

    /// The packets of one protocol.
    pub fn of(&self, protocol: Protocol) -> impl Iterator<Item = &Packet> {
        self.packets.iter().filter(move |p| p.protocol == protocol)
    }

    /// True if the capture saw everything and the kernel dropped nothing.
    pub fn is_complete(&self) -> bool {
        self.capture.unavailable.is_none()
            && self.capture.complete
            && self.capture.kernel_drops == Some(0)
    }
}

/// Why `--pcap DIR` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the pcap directory {dir}: {source} (choose a directory you may write)")]
    PcapDir { dir: PathBuf, source: io::Error },
    #[error(
        "--pcap needs packet capture, and {0}; run without --pcap to see the experiments without their packets"
    )]
    PcapUnavailable(String),
}

/// The capture flags every socket-lab command shares (`#[command(flatten)]`): `--pcap DIR`
/// and `--no-capture`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CaptureArgs {
    /// Write each experiment's packets to DIR/<experiment>.pcap (open them in Wireshark).
    #[arg(long, global = true, value_name = "DIR")]
    pub pcap: Option<PathBuf>,

    /// Do not capture the experiments' packets (captured as root or with CAP_NET_RAW).
    #[arg(long, global = true, conflicts_with = "pcap")]
    pub no_capture: bool,
}

impl CaptureArgs {
    /// The wiretap these flags ask for (see [`Wiretap::from_flags`]).
    pub fn wiretap(&self) -> Result<Wiretap, Error> {
        Wiretap::from_flags(self.no_capture, self.pcap.as_deref())
    }
}

impl Wiretap {
    /// The wiretap a command line asked for: `--no-capture`, or capture (where permitted)
    /// with `--pcap DIR` creating DIR. Asking for pcap files where capture is impossible is an
    /// error: the files would silently not exist.
    pub fn from_flags(no_capture: bool, pcap_dir: Option<&Path>) -> Result<Self, Error> {
        if no_capture {
            return Ok(Wiretap::off());
        }
        let tap = Wiretap::on(pcap_dir.map(Path::to_path_buf));
        if let Some(dir) = pcap_dir {
            if let Some(why) = tap.unavailable() {
                return Err(Error::PcapUnavailable(why.to_string()));
            }
            std::fs::create_dir_all(dir).map_err(|source| Error::PcapDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(tap)
    }
}
