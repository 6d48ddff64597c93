//! `lab-echo bench`: how fast is the echo server, measured side by side with its peers in
//! the same run, on loopback.
//!
//! - **Round-trip latency** (32-byte lines, `TCP_NODELAY` on): our echo server next to a
//!   minimal blocking ping-pong server in plain Rust std (the floor for a thread-per-client
//!   design) and, where `python3` exists, a Python threaded echo server. The servers are
//!   measured in alternating rounds so that a burst of load elsewhere on the machine hits
//!   them all alike.
//! - **Bulk echo throughput**: the client writes and reads at the same time (two threads), so
//!   the pipe stays full in both directions; next to `iperf3`'s single-stream loopback
//!   throughput where it is installed, measured between the two halves of the echo run. An
//!   echo moves every byte twice (there and back) on the same CPUs, so half of iperf3 is the
//!   physical ceiling.
//! - **The Nagle lesson**: a request written as two small writes, then a read, against a
//!   server that answers whole lines. With Nagle's algorithm on, the second write waits for
//!   the ACK of the first, which the server delays (delayed ACK, about 40 ms on Linux).
//!
//! A benchmark, not a test: it prints figures and targets; nothing here fails on timing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::child::{RunningChild, Stream};
use serde::Serialize;

use crate::echo::EchoServer;
use crate::error::Error;

/// The size of each latency message (31 bytes and a newline).
pub const MESSAGE_SIZE: usize = 32;
/// The bulk client's write and read size.
const BULK_CHUNK: usize = 256 * 1024;
/// How long we wait for a peer server to say it is listening.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Every blocking read in the benchmark gives up after this (a stuck peer ends the run).
const IO_DEADLINE: Duration = Duration::from_secs(30);

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Measured round trips per server (after a short warm-up).
    pub round_trips: usize,
    /// Bytes the bulk client sends (and receives back).
    pub bulk_bytes: u64,
    /// Round trips for each side of the Nagle lesson (each may take ~40 ms with Nagle on).
    pub nagle_round_trips: usize,
    /// Run the Python echo server, if python3 exists.
    pub python: bool,
    /// Run iperf3, if it exists, for this many seconds (0: do not run it).
    pub iperf3_seconds: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            round_trips: 20_000,
            bulk_bytes: 1 << 30,
            nagle_round_trips: 20,
            python: true,
            iperf3_seconds: 3,
        }
    }
}

/// Round-trip latency against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub experiment: &'static str,
    pub server: String,
    pub round_trips: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Bulk throughput of one program.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub experiment: &'static str,
    pub program: String,
    pub bytes: u64,
    pub seconds: f64,
    /// Payload bytes per second in one direction, in units of 10^9.
    pub gbytes_per_s: f64,
}

impl Throughput {
    /// Two runs of the same program as one: total bytes over total time.
    fn combined_with(&self, other: &Throughput) -> Throughput {
        let bytes = self.bytes + other.bytes;
        let seconds = self.seconds + other.seconds;
        Throughput {
            experiment: self.experiment,
            program: self.program.clone(),
            bytes,
            seconds,
            gbytes_per_s: bytes as f64 / seconds / 1e9,
        }
    }
}

/// One side of the Nagle lesson.
#[derive(Debug, Clone, Serialize)]
pub struct Nagle {
    pub experiment: &'static str,
    pub tcp_nodelay: bool,
    pub round_trips: usize,
    pub p50_us: f64,
    pub max_us: f64,
    /// The round trips' packets, when watched (`packets`, `capture`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub wire: Option<lab_capture::Wire>,
}

/// A peer that could not be measured here, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedPeer {
    pub experiment: &'static str,
    pub peer: &'static str,
    pub reason: String,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub latency: Vec<Latency>,
    pub bulk: Vec<Throughput>,
    pub nagle: Vec<Nagle>,
    pub skipped: Vec<SkippedPeer>,
}

/// The names under which servers appear in the report.
pub const OUR_SERVER: &str = "lab-echo server";
pub const STD_PING_PONG: &str = "std ping-pong";
pub const PYTHON_SERVER: &str = "Python threaded echo";
pub const IPERF3: &str = "iperf3 -c (one way)";
/// What the short names stand for.
pub const PEERS_EXPLAINED: &str = "std ping-pong: a minimal blocking Rust std server (read 32 \
bytes, write them back). Python threaded echo: socketserver.ThreadingTCPServer, TCP_NODELAY on.";

/// The Python threaded echo server: the standard library's socketserver, one thread per
/// client, TCP_NODELAY on, printing `listening on ADDR` like every socket-lab server.
pub const PYTHON_ECHO_SERVER: &str = r#"
import socket, socketserver

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            self.request.sendall(data)

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

server = Server(("127.0.0.1", 0), Echo)
print("listening on %s:%d" % server.server_address, flush=True)
server.serve_forever()
"#;

/// Runs the whole benchmark.
pub fn run(options: &BenchOptions) -> Result<BenchReport, Error> {
    let mut skipped = Vec::new();
    let latency = measure_latencies(options, &mut skipped)?;
    // The echo's bytes go in two halves, one before and one after iperf3, so that both
    // programs are measured under the same conditions on a machine others also use.
    let first_half = bulk_echo(options.bulk_bytes / 2)?;
    let mut peer = None;
    if options.iperf3_seconds > 0 {
        match iperf3(options.iperf3_seconds) {
            Ok(result) => peer = Some(result),
            Err(reason) => skipped.push(SkippedPeer {
                experiment: "bench_skipped",
                peer: "iperf3",
                reason,
            }),
        }
    }
    let second_half = bulk_echo(options.bulk_bytes - options.bulk_bytes / 2)?;
    let mut bulk = vec![first_half.combined_with(&second_half)];
    bulk.extend(peer);
    let nagle = vec![
        nagle_lesson(false, options.nagle_round_trips)?,
        nagle_lesson(true, options.nagle_round_trips)?,
    ];
    Ok(BenchReport {
        latency,
        bulk,
        nagle,
        skipped,
    })
}

/// Starts our echo server on a kernel-chosen port, on a background thread.
///
/// The thread lives until the process ends: the benchmark is a short-lived command.
fn start_our_server() -> Result<SocketAddr, Error> {
    let server = EchoServer::bind("127.0.0.1:0", 16)?;
    let addr = server.local_addr()?;
    // The benchmark does not log a line per client: its events are dropped.
    thread::spawn(move || server.serve(std::sync::Arc::new(|_| {})));
    Ok(addr)
}

/// A listener on a loopback port the kernel chooses, and its address.
fn loopback_listener() -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| Error::Listen {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    let addr = listener
        .local_addr()
        .map_err(Error::socket("getsockname"))?;
    Ok((listener, addr))
}

/// The minimal blocking ping-pong server: accept one client, read exactly one message,
/// write it back, repeat. Nothing can be simpler on a blocking socket.
fn start_std_ping_pong() -> Result<SocketAddr, Error> {
    let (listener, addr) = loopback_listener()?;
    thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut message = [0u8; MESSAGE_SIZE];
        loop {
            if stream.read_exact(&mut message).is_err() {
                return Ok(()); // the client closed
            }
            stream.write_all(&message)?;
        }
    });
    Ok(addr)
}

/// A connected latency client.
struct PingClient {
    name: String,
    stream: TcpStream,
    samples: Vec<Duration>,
}

impl PingClient {
    fn connect(name: &str, addr: SocketAddr) -> Result<Self, Error> {
        let stream =
            TcpStream::connect_timeout(&addr, IO_DEADLINE).map_err(|source| Error::Connect {
                target: format!("{name} at {addr}"),
                source,
            })?;
        stream
            .set_nodelay(true)
            .map_err(Error::socket("setsockopt"))?;
        stream
            .set_read_timeout(Some(IO_DEADLINE))
            .map_err(Error::socket("setsockopt"))?;
        Ok(PingClient {
            name: name.to_string(),
            stream,
            samples: Vec::new(),
        })
    }

    /// `count` round trips; records them only when `measure` (the rest is warm-up).
    fn round_trips(&mut self, count: usize, measure: bool) -> Result<(), Error> {
        let mut message = [b'x'; MESSAGE_SIZE];
        message[MESSAGE_SIZE - 1] = b'\n';
        let mut reply = [0u8; MESSAGE_SIZE];
        for _ in 0..count {
            let started = Instant::now();
            self.stream
                .write_all(&message)
                .map_err(Error::socket("send"))?;
            self.stream
                .read_exact(&mut reply)
                .map_err(Error::socket("recv"))?;
            if measure {
                self.samples.push(started.elapsed());
            }
        }
        Ok(())
    }

    fn result(mut self) -> Latency {
        self.samples.sort_unstable();
        Latency {
            experiment: "bench_latency",
            server: self.name,
            round_trips: self.samples.len(),
            p50_us: percentile_us(&self.samples, 50.0),
            p99_us: percentile_us(&self.samples, 99.0),
        }
    }
}

/// The `p`th percentile (0 to 100) of sorted samples, in microseconds.
fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    lab_kit::bench::percentile(sorted, p).as_secs_f64() * 1e6
}

fn measure_latencies(
    options: &BenchOptions,
    skipped: &mut Vec<SkippedPeer>,
) -> Result<Vec<Latency>, Error> {
    let mut clients = vec![
        PingClient::connect(STD_PING_PONG, start_std_ping_pong()?)?,
        PingClient::connect(OUR_SERVER, start_our_server()?)?,
    ];
    // Kept alive (and killed on drop) for as long as its client is used.
    let mut _python_child = None;
    if options.python {
        match start_python_server() {
            Ok((child, addr)) => {
                clients.push(PingClient::connect(PYTHON_SERVER, addr)?);
                _python_child = Some(child);
            }
            Err(reason) => skipped.push(SkippedPeer {
                experiment: "bench_skipped",
                peer: "python3",
                reason,
            }),
        }
    }
    let warm_up = (options.round_trips / 10).clamp(1, 1_000);
    for client in &mut clients {
        client.round_trips(warm_up, false)?;
    }
    // Alternating rounds: each server gets a slice of every period of the run.
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        let share =
            options.round_trips / ROUNDS + usize::from(round < options.round_trips % ROUNDS);
        for client in &mut clients {
            client.round_trips(share, true)?;
        }
    }
    Ok(clients.into_iter().map(PingClient::result).collect())
}

/// Starts the Python server (its source given on the command line with `-c`: no file to
/// write, so no temporary file anyone could tamper with); returns it with its address.
fn start_python_server() -> Result<(RunningChild, SocketAddr), String> {
    let started =
        RunningChild::spawn(Command::new("python3").args(["-u", "-c", PYTHON_ECHO_SERVER]));
    match started {
        Err(e) => Err(format!("python3 is not available: {e}")),
        Ok(child) => match child.wait_for_listening(READY_DEADLINE) {
            Some(addr) => Ok((child, addr)),
            None => Err(format!(
                "the Python server did not start: {}",
                child.text(Stream::Stderr).trim()
            )),
        },
    }
}

/// Sends `bytes` through our echo server while reading the echo back, concurrently.
pub fn bulk_echo(bytes: u64) -> Result<Throughput, Error> {
    let addr = start_our_server()?;
    let stream =
        TcpStream::connect_timeout(&addr, IO_DEADLINE).map_err(|source| Error::Connect {
            target: addr.to_string(),
            source,
        })?;
    stream
        .set_read_timeout(Some(IO_DEADLINE))
        .map_err(Error::socket("setsockopt"))?;
    let writer = stream.try_clone().map_err(Error::socket("dup"))?;
    let started = Instant::now();
    let sender = thread::spawn(move || -> io::Result<()> {
        let chunk = vec![b'x'; BULK_CHUNK];
        let mut left = bytes;
        let mut writer = writer;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            writer.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    // Read in large chunks (io::copy would use an 8 KiB buffer: many more system calls).
    let mut buffer = vec![0u8; BULK_CHUNK];
    let mut received = 0u64;
    loop {
        match (&stream).read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::socket("recv")(e)),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    sender
        .join()
        .map_err(|_| Error::Unexpected("the sending thread panicked".into()))?
        .map_err(Error::socket("send"))?;
    if received != bytes {
        return Err(Error::Incomplete {
            sent: bytes,
            received,
            reason: String::new(),
        });
    }
    Ok(Throughput {
        experiment: "bench_bulk",
        program: format!("{OUR_SERVER} (echo)"),
        bytes,
        seconds,
        gbytes_per_s: bytes as f64 / seconds / 1e9,
    })
}

/// Runs `iperf3 -s -1` and `iperf3 -c 127.0.0.1 -J` on a port the kernel said was free.
fn iperf3(seconds: u32) -> Result<Throughput, String> {
    // Ask the kernel for a free port, then free it for iperf3 (which cannot take port 0).
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port()
        .to_string();
    let server = RunningChild::spawn(Command::new("iperf3").args([
        "-s",
        "-1",
        "--forceflush",
        "-B",
        "127.0.0.1",
        "-p",
        &port,
    ]))
    .map_err(|e| format!("iperf3 is not installed (apt-get install iperf3): {e}"))?;
    if server
        .wait_for_line(Stream::Stdout, READY_DEADLINE, |l| {
            l.contains("Server listening")
        })
        .is_none()
    {
        return Err(format!(
            "the iperf3 server did not start: {} {}",
            server.text(Stream::Stdout).trim(),
            server.text(Stream::Stderr).trim()
        ));
    }
    let mut client = RunningChild::spawn(Command::new("iperf3").args([
        "-c",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        &seconds.to_string(),
        "-J",
    ]))
    .map_err(|e| format!("could not run the iperf3 client: {e}"))?;
    let deadline = Duration::from_secs(u64::from(seconds) + 30);
    match client.wait_timeout(deadline) {
        Ok(Some(_)) => {}
        _ => return Err("the iperf3 client did not finish in time".into()),
    }
    let report: serde_json::Value = serde_json::from_str(&client.text(Stream::Stdout))
        .map_err(|e| format!("iperf3 printed no JSON report: {e}"))?;
    let received = &report["end"]["sum_received"];
    let (Some(bits_per_second), Some(bytes), Some(secs)) = (
        received["bits_per_second"].as_f64(),
        received["bytes"].as_u64(),
        received["seconds"].as_f64(),
    ) else {
        return Err(format!(
            "iperf3's report has no end.sum_received: {}",
            report["error"]
        ));
    };
    Ok(Throughput {
        experiment: "bench_bulk",
        program: IPERF3.into(),
        bytes,
        seconds: secs,
        gbytes_per_s: bits_per_second / 8.0 / 1e9,
    })
}

/// A request/response server: reads one whole line, then answers it. Unlike a byte echo,
/// it sends nothing (so no ACK rides along) until the request is complete.
fn start_line_server() -> Result<SocketAddr, Error> {
    let (listener, addr) = loopback_listener()?;
    thread::spawn(move || -> io::Result<()> {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut writer = stream.try_clone()?;
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                return Ok(());
            }
            writer.write_all(line.as_bytes())?;
        }
    });
    Ok(addr)
}

/// Two small writes, then a read, `round_trips` times, with TCP_NODELAY as given.
pub fn nagle_lesson(tcp_nodelay: bool, round_trips: usize) -> Result<Nagle, Error> {
    nagle_lesson_watched(tcp_nodelay, round_trips, &lab_capture::Wiretap::off())
}

/// Like [`nagle_lesson`], with the round trips' packets captured by `tap`.
pub fn nagle_lesson_watched(
    tcp_nodelay: bool,
    round_trips: usize,
    tap: &lab_capture::Wiretap,
) -> Result<Nagle, Error> {
    let addr = start_line_server()?;
    let watch = tap.watch(
        if tcp_nodelay {
            "nagle_nodelay"
        } else {
            "nagle"
        },
        &[addr.port()],
    );
    let mut stream =
        TcpStream::connect_timeout(&addr, IO_DEADLINE).map_err(|source| Error::Connect {
            target: addr.to_string(),
            source,
        })?;
    stream
        .set_nodelay(tcp_nodelay)
        .map_err(Error::socket("setsockopt"))?;
    stream
        .set_read_timeout(Some(IO_DEADLINE))
        .map_err(Error::socket("setsockopt"))?;
    let mut samples = Vec::with_capacity(round_trips);
    let mut reply = [0u8; 12];
    for _ in 0..round_trips {
        let started = Instant::now();
        // A request built in two pieces, as code that writes a header then a body does.
        stream.write_all(b"hello ").map_err(Error::socket("send"))?;
        stream
            .write_all(b"world\n")
            .map_err(Error::socket("send"))?;
        stream
            .read_exact(&mut reply)
            .map_err(Error::socket("recv"))?;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    Ok(Nagle {
        experiment: "bench_nagle",
        tcp_nodelay,
        round_trips,
        p50_us: percentile_us(&samples, 50.0),
        max_us: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        wire: watch.finish(),
    })
}

/// Prints the report with the targets next to the figures.
pub fn narrate(report: &BenchReport, n: &mut lab_kit::narrate::Narrator) -> io::Result<()> {
    for record in &report.latency {
        n.record(record)?;
    }
    for record in &report.bulk {
        n.record(record)?;
    }
    for record in &report.nagle {
        n.record(record)?;
    }
    for record in &report.skipped {
        n.record(record)?;
    }
    n.heading("lab-echo bench: loopback, measured side by side in one run")?;
    n.section(&format!(
        "Round-trip latency ({MESSAGE_SIZE}-byte lines, TCP_NODELAY on)"
    ))?;
    n.say(PEERS_EXPLAINED)?;
    for r in &report.latency {
        n.fact(
            &r.server,
            format!(
                "p50 {:>7.1} µs   p99 {:>7.1} µs   ({} round trips)",
                r.p50_us, r.p99_us, r.round_trips
            ),
        )?;
    }
    let find = |name: &str| report.latency.iter().find(|r| r.server == name);
    if let (Some(ours), Some(floor)) = (find(OUR_SERVER), find(STD_PING_PONG)) {
        let ratio = ours.p50_us / floor.p50_us;
        n.fact(
            "target: p50 ≤ 1.1× std",
            format!("{ratio:.2}× {}", verdict(ratio <= 1.1)),
        )?;
    }
    if let (Some(ours), Some(python)) = (find(OUR_SERVER), find(PYTHON_SERVER)) {
        n.fact(
            "target: not slower than Python",
            format!(
                "{:.1} µs vs {:.1} µs {}",
                ours.p50_us,
                python.p50_us,
                verdict(ours.p50_us <= python.p50_us)
            ),
        )?;
    }
    n.section("Bulk throughput (payload bytes per second, one direction)")?;
    n.say("The echo client writes and reads at the same time; iperf3 only sends.")?;
    for r in &report.bulk {
        n.fact(
            &r.program,
            format!(
                "{:.2} GB/s   ({} MiB in {:.2} s)",
                r.gbytes_per_s,
                r.bytes >> 20,
                r.seconds
            ),
        )?;
    }
    if let (Some(ours), Some(iperf)) = (
        report
            .bulk
            .iter()
            .find(|r| r.program.starts_with(OUR_SERVER)),
        report.bulk.iter().find(|r| r.program == IPERF3),
    ) {
        let share = ours.gbytes_per_s / iperf.gbytes_per_s;
        n.fact(
            "target: ≥ 50% of iperf3",
            format!("{:.0}% {}", share * 100.0, verdict(share >= 0.5)),
        )?;
        n.say("(an echo moves every byte twice on the same CPUs: 50% is the physical ceiling)")?;
    }
    for s in &report.skipped {
        n.skipped(s.peer, &s.reason)?;
    }
    n.section("The Nagle lesson: two small writes, then a read")?;
    for r in &report.nagle {
        n.fact(
            if r.tcp_nodelay {
                "TCP_NODELAY on"
            } else {
                "TCP_NODELAY off (Nagle)"
            },
            format!(
                "p50 {:>9.1} µs   max {:>9.1} µs   ({} round trips)",
                r.p50_us, r.max_us, r.round_trips
            ),
        )?;
    }
    n.say("With Nagle on, the second write waits until the first is acknowledged; the server,")?;
    n.say("which answers only whole lines, delays that ACK (about 40 ms on Linux). Write each")?;
    n.say("request in one piece, or set TCP_NODELAY.")?;
    n.flush()
}

fn verdict(met: bool) -> String {
    format!("({})", lab_kit::bench::verdict(Some(met)))
}
