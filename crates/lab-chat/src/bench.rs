//! `lab-chat bench`: the chat's speed, measured side by side with well-known programs in
//! the same run on this machine's loopback.
//!
//! | What | Ours | Compared with | Target |
//! |---|---|---|---|
//! | bulk TLS throughput, the cipher the chat negotiates (AES-256-GCM) | our transport, one sender, one receiver | `openssl speed -evp aes-256-gcm` (one core, no network) and `openssl s_client` ← `s_server -WWW` | ≥ 40 % of the `speed` ceiling |
//! | full handshakes/s, ECDSA P-256 | sequential client, resumption off | `openssl s_time -new` against `openssl s_server` | ≥ 1.5 × s_time |
//! | chat line round trip p50/p99 | TLS echo of a 32-byte line | the same code over plain TCP | p50 ≤ 1.5 × plain TCP |
//! | room fan-out, deliveries/s (50 clients × 200 lines) | `lab-chat server --room` | `ncat --chat --ssl`, same load client | ≥ 2 × ncat |
//! | 10,000 clients in one room, 100 paced lines | every line to every client | — | none lost; ≤ 64 KiB of peak server memory per client |
//!
//! The load client is event-driven (one tokio task per client), like the room. The fan-out
//! runs five times for each server, alternately, and each reports its median run.
//!
//! Every loop is bounded in count and in time; a missing tool is reported, not guessed.
//! Build with `--release`: a debug build measures the compiler's lack of optimisation.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::child::{RunningChild, Stream};
use lab_kit::narrate::Narrator;
use lab_kit::pki::{LabPki, PkiFiles};
use lab_kit::tls::{self, Versions};
use serde::Serialize;

use crate::Error;
use crate::framing::LineDecoder;
use crate::transport::{self, Established};

/// The room's flood limits, opened wide: the load client is one address sending as fast
/// as the room relays (its own pacing keeps every member within the backlog).
const ROOM_LOAD_FLAGS: [&str; 8] = [
    "--max-members",
    "20000",
    "--max-per-address",
    "20000",
    "--max-pending",
    "20000",
    "--max-lines-per-second",
    "1000000",
];

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct BenchSize {
    pub bulk_bytes: usize,
    pub bulk_seconds: f64,
    pub handshake_seconds: f64,
    pub round_trips: usize,
    pub fanout_clients: usize,
    /// Lines in one burst of a fan-out sender (one burst fits one of ncat's reads).
    pub fanout_lines: usize,
    /// At most this many bursts per sender in one fan-out run...
    pub fanout_bursts: usize,
    /// ...and none started after this long.
    pub fanout_budget: Duration,
    pub crowd_clients: usize,
    /// How many of the crowd send a line (each goes to every other client).
    pub crowd_senders: usize,
    /// How many times the fan-out runs, for us and for ncat, alternately (a burst of
    /// other work on a shared machine can spoil one run: the medians are compared).
    pub fanout_rounds: usize,
}

impl BenchSize {
    /// The real benchmark (about half a minute).
    pub fn full() -> Self {
        BenchSize {
            bulk_bytes: 1 << 30,
            bulk_seconds: 3.0,
            handshake_seconds: 3.0,
            round_trips: 5000,
            fanout_clients: 50,
            // ncat --chat prefixes each *read* with `<userN> `: more than one read's worth
            // of lines per client (~8 KiB) would come out mangled, not slower.
            fanout_lines: 200,
            // 50 clients × 200 lines × 49 recipients is 490,000 deliveries a burst, a tenth
            // of a second: up to 400 bursts, none started after 2 s, make a run of seconds.
            fanout_bursts: 400,
            fanout_budget: Duration::from_secs(2),
            crowd_clients: 10_000,
            crowd_senders: 100,
            fanout_rounds: 5,
        }
    }

    /// A smoke run that only proves every part works (seconds).
    pub fn quick() -> Self {
        BenchSize {
            bulk_bytes: 4 << 20,
            bulk_seconds: 0.5,
            handshake_seconds: 0.3,
            round_trips: 50,
            fanout_clients: 4,
            fanout_lines: 5,
            fanout_bursts: 2,
            fanout_budget: Duration::from_secs(1),
            crowd_clients: 20,
            crowd_senders: 5,
            fanout_rounds: 1,
        }
    }
}

/// One figure of ours next to a peer's, with the target.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub experiment: &'static str,
    pub unit: &'static str,
    pub ours: f64,
    /// What we compare with, and its figure (None: the tool is missing, see `skipped`).
    pub peers: Vec<(String, Option<f64>)>,
    pub target: String,
    /// Whether the target was met (None when the reference could not be measured).
    pub met: Option<bool>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
}

/// The file named `name` in a folder of `PATH`, as the shell would find the program; `None`
/// when it is not installed (the benchmark then says so instead of guessing a figure).
pub fn tool_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

fn bench_error(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Demo(format!("benchmark {what}: {detail}"))
}

/// The port a child process listens on, found in `/proc` (for tools that do not print it).
pub fn listening_port_of(pid: u32, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let text = target.to_string_lossy().into_owned();
                text.strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(str::to_string)
            })
            .collect();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 the inode.
                if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                    let port = fields[1].rsplit(':').next()?;
                    return u16::from_str_radix(port, 16).ok();
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
pub fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn server_connect(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
) -> Result<Established, Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    transport::connect_tls(
        tcp,
        Arc::clone(client),
        "localhost"
            .try_into()
            .map_err(|_| bench_error("name", "localhost"))?,
        Duration::from_secs(30),
    )
    .map_err(|e| bench_error("handshake", e))
}

// ---------------------------------------------------------------------------------------
// Bulk throughput

/// A TLS 1.3 cipher suite as rustls names it, and as `openssl speed -evp` and
/// `openssl s_server -ciphersuites` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Suite {
    rustls: &'static str,
    evp: &'static str,
    openssl: &'static str,
}

const SUITES: [Suite; 3] = [
    Suite {
        rustls: "TLS13_AES_256_GCM_SHA384",
        evp: "aes-256-gcm",
        openssl: "TLS_AES_256_GCM_SHA384",
    },
    Suite {
        rustls: "TLS13_AES_128_GCM_SHA256",
        evp: "aes-128-gcm",
        openssl: "TLS_AES_128_GCM_SHA256",
    },
    Suite {
        rustls: "TLS13_CHACHA20_POLY1305_SHA256",
        evp: "chacha20-poly1305",
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
    },
];

/// Bulk throughput of our transport with the chat's own TLS configuration, and the cipher
/// suite it negotiated (the one the peers are measured with).
fn our_bulk(pki: &LabPki, size: &BenchSize) -> Result<(f64, Suite), Error> {
    let server = Arc::new(tls::server_config(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        None,
        Versions::Tls13Only,
    )?);
    let client = Arc::new(tls::client_config(
        pki.ca.cert_pem(),
        None,
        Versions::Tls13Only,
    )?);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = thread::spawn(move || -> Result<(usize, Duration), Error> {
        let (tcp, _) = listener.accept()?;
        let Established { mut reader, .. } =
            transport::accept_tls(tcp, server, Duration::from_secs(30))
                .map_err(|e| bench_error("bulk handshake", e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        let mut started = None;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            started.get_or_insert_with(Instant::now);
            total += n;
        }
        Ok((total, started.map(|s| s.elapsed()).unwrap_or_default()))
    });
    let Established {
        mut writer,
        security,
        ..
    } = server_connect(addr, &client)?;
    let negotiated = match &security {
        transport::Security::Tls(facts) => facts.cipher_suite.clone(),
        transport::Security::Plaintext => String::new(),
    };
    let suite = SUITES
        .into_iter()
        .find(|suite| suite.rustls == negotiated)
        .ok_or_else(|| bench_error("bulk", format!("negotiated {negotiated:?}")))?;
    let block = vec![0x5au8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs_f64(size.bulk_seconds);
    let mut sent = 0;
    while sent < size.bulk_bytes && Instant::now() < deadline {
        writer.write_all(&block)?;
        sent += block.len();
    }
    writer.close()?;
    let (received, elapsed) = receiver
        .join()
        .map_err(|_| bench_error("bulk", "receiver panicked"))??;
    if received != sent {
        return Err(bench_error(
            "bulk",
            format!("sent {sent}, received {received}"),
        ));
    }
    Ok((received as f64 / elapsed.as_secs_f64().max(1e-9), suite))
}

/// `openssl speed -evp CIPHER` on 16 KiB blocks (a TLS record's size), bytes/s.
fn openssl_speed(suite: Suite, seconds: f64) -> Result<f64, String> {
    let seconds = format!("{}", seconds.ceil().max(1.0) as u64);
    let mut child = RunningChild::spawn(Command::new("openssl").args([
        "speed", "-bytes", "16384", "-seconds", &seconds, "-evp", suite.evp,
    ]))
    .map_err(|e| e.to_string())?;
    child
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let out = child.text(Stream::Stdout);
    out.lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with(&suite.evp.to_ascii_lowercase())
        })
        .find_map(|l| {
            l.split_whitespace()
                .last()?
                .strip_suffix('k')?
                .parse::<f64>()
                .ok()
        })
        .map(|k| k * 1000.0)
        .ok_or_else(|| format!("could not read `openssl speed` output: {out}"))
}

/// `openssl s_client` downloading a file from `openssl s_server -WWW`, bytes/s.
fn openssl_bulk(suite: Suite, files: &PkiFiles, dir: &Path, bytes: usize) -> Result<f64, String> {
    let file = dir.join("bulk.bin");
    std::fs::File::create(&file)
        .and_then(|f| f.set_len(bytes as u64))
        .map_err(|e| e.to_string())?;
    let server = RunningChild::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                "127.0.0.1:0",
                "-tls1_3",
            ])
            .args(["-ciphersuites", suite.openssl, "-cert"])
            .arg(&files.server_cert)
            .arg("-key")
            .arg(&files.server_key)
            .current_dir(dir),
    )
    .map_err(|e| e.to_string())?;
    let port = listening_port_of(server.pid(), Duration::from_secs(10))
        .ok_or("s_server never listened")?;
    let script = format!(
        "printf 'GET /bulk.bin HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet -connect 127.0.0.1:{port} \
         -ciphersuites {} > /dev/null 2>&1",
        suite.openssl
    );
    let started = Instant::now();
    let mut client =
        RunningChild::spawn(Command::new("sh").args(["-c", &script])).map_err(|e| e.to_string())?;
    client
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?
        .ok_or("s_client did not finish within 60 s")?;
    Ok(bytes as f64 / started.elapsed().as_secs_f64())
}

fn bulk(pki: &LabPki, files: &PkiFiles, dir: &Path, size: &BenchSize) -> Result<Comparison, Error> {
    let (ours, suite) = our_bulk(pki, size)?;
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    let mut ceiling = None;
    if tool_on_path("openssl").is_some() {
        match openssl_speed(suite, size.bulk_seconds) {
            Ok(v) => {
                ceiling = Some(v);
                peers.push(("openssl speed (one core, no I/O)".into(), Some(v)));
            }
            Err(e) => skipped.push(format!("openssl speed: {e}")),
        }
        match openssl_bulk(suite, files, dir, size.bulk_bytes.min(512 << 20)) {
            Ok(v) => peers.push(("openssl s_client <- s_server".into(), Some(v))),
            Err(e) => skipped.push(format!("openssl s_client/s_server: {e}")),
        }
    } else {
        skipped.push("openssl is not installed".into());
    }
    Ok(Comparison {
        experiment: "bulk_throughput",
        unit: "bytes/s",
        ours,
        peers,
        target: "at least 40% of the openssl speed ceiling".into(),
        met: ceiling.map(|c| ours >= 0.4 * c),
        skipped,
        notes: vec![format!(
            "{} (negotiated by the chat's own configuration); ours = {:.0}% of the ceiling",
            suite.rustls,
            ceiling.map(|c| 100.0 * ours / c).unwrap_or(f64::NAN)
        )],
    })
}

// ---------------------------------------------------------------------------------------
// Handshakes

fn our_handshakes(pki: &LabPki, seconds: f64) -> Result<f64, Error> {
    let server = Arc::new(tls::server_config(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        None,
        Versions::Tls13Only,
    )?);
    let mut client = tls::client_config(pki.ca.cert_pem(), None, Versions::Tls13Only)?;
    // Every handshake full: no session resumption (s_time -new does the same).
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let acceptor = thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_nodelay(true);
            match transport::accept_tls(tcp, Arc::clone(&server), Duration::from_secs(10)) {
                Ok(established) => established.writer.abort(),
                Err(transport::HandshakeError::Closed) => return, // the "stop" connection
                Err(_) => {}
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut done = 0u64;
    while Instant::now() < deadline && done < 1_000_000 {
        let established = server_connect(addr, &client)?;
        established.writer.abort();
        done += 1;
    }
    let elapsed = started.elapsed();
    // Wake the acceptor with a connection that closes at once, so it stops.
    drop(TcpStream::connect(addr));
    let _ = acceptor.join();
    Ok(done as f64 / elapsed.as_secs_f64())
}

fn openssl_s_time(files: &PkiFiles, seconds: f64) -> Result<f64, String> {
    let _server = RunningChild::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                "127.0.0.1:0",
                "-tls1_3",
                "-cert",
            ])
            .arg(&files.server_cert)
            .arg("-key")
            .arg(&files.server_key),
    )
    .map_err(|e| e.to_string())?;
    let port = listening_port_of(_server.pid(), Duration::from_secs(10))
        .ok_or("s_server never listened")?;
    let seconds = format!("{}", seconds.ceil().max(1.0) as u64);
    let started = Instant::now();
    let mut s_time = RunningChild::spawn(Command::new("openssl").args([
        "s_time",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-new",
        "-time",
        &seconds,
    ]))
    .map_err(|e| e.to_string())?;
    s_time
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?
        .ok_or("s_time did not finish")?;
    let elapsed = started.elapsed().as_secs_f64();
    let out = s_time.text(Stream::Stdout);
    let connections: f64 = out
        .lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("could not read s_time output: {out}"))?;
    Ok(connections / elapsed)
}

fn handshakes(pki: &LabPki, files: &PkiFiles, size: &BenchSize) -> Result<Comparison, Error> {
    let ours = our_handshakes(pki, size.handshake_seconds)?;
    let (reference, skipped) = if tool_on_path("openssl").is_some() {
        match openssl_s_time(files, size.handshake_seconds) {
            Ok(v) => (Some(v), vec![]),
            Err(e) => (None, vec![format!("openssl s_time: {e}")]),
        }
    } else {
        (None, vec!["openssl is not installed".into()])
    };
    Ok(Comparison {
        experiment: "full_handshakes",
        unit: "handshakes/s",
        ours,
        peers: vec![("openssl s_time -new -> s_server".into(), reference)],
        target: "at least 1.5x openssl s_time".into(),
        met: reference.map(|r| ours >= 1.5 * r),
        skipped,
        notes: vec![
            "ECDSA P-256 server certificate, TLS 1.3, one client after another, no resumption"
                .into(),
        ],
    })
}

// ---------------------------------------------------------------------------------------
// Round trip

/// A client connected to an echo server thread (TLS or plain TCP), for round trips.
struct EchoClient {
    reader: transport::WireReader,
    writer: transport::WireWriter,
    decoder: LineDecoder,
    buf: Vec<u8>,
    server: thread::JoinHandle<()>,
}

impl EchoClient {
    fn start(
        server_config: Option<Arc<rustls::ServerConfig>>,
        client_config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = thread::spawn(move || {
            let _ = echo_lines(listener, server_config);
        });
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let Established { reader, writer, .. } = match client_config {
            Some(config) => transport::connect_tls(
                tcp,
                config,
                "localhost"
                    .try_into()
                    .map_err(|_| bench_error("name", "localhost"))?,
                Duration::from_secs(30),
            )
            .map_err(|e| bench_error("handshake", e))?,
            None => transport::plaintext(tcp)?,
        };
        Ok(EchoClient {
            reader,
            writer,
            decoder: LineDecoder::new(1024),
            buf: vec![0u8; 16 * 1024],
            server,
        })
    }

    /// Sends one line and waits for it to come back.
    fn round_trip(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        self.writer
            .write_all(b"a chat line of about 32 bytes..\n")?;
        loop {
            if let Some(reply) = self.decoder.next_line() {
                reply.map_err(|e| bench_error("echo", e))?;
                return Ok(started.elapsed());
            }
            let n = self.reader.read(&mut self.buf)?;
            if n == 0 {
                return Err(bench_error("echo", "the echo server closed"));
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    fn finish(mut self) {
        let _ = self.writer.close();
        let _ = self.server.join();
    }
}

/// The echo server: each line back as it arrives.
fn echo_lines(
    listener: TcpListener,
    server_config: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Error> {
    let (tcp, _) = listener.accept()?;
    tcp.set_nodelay(true)?;
    let Established {
        mut reader,
        mut writer,
        ..
    } = match server_config {
        Some(config) => transport::accept_tls(tcp, config, Duration::from_secs(30))
            .map_err(|e| bench_error("echo handshake", e))?,
        None => transport::plaintext(tcp)?,
    };
    let mut decoder = LineDecoder::new(1024);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        decoder.push(&buf[..n]);
        while let Some(Ok(mut line)) = decoder.next_line() {
            line.push('\n');
            writer.write_all(line.as_bytes())?;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Round-trip figures.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub experiment: &'static str,
    pub round_trips: usize,
    pub tls_p50_us: f64,
    pub tls_p99_us: f64,
    pub tcp_p50_us: f64,
    pub tcp_p99_us: f64,
    pub target: String,
    pub met: bool,
}

fn latency(pki: &LabPki, size: &BenchSize) -> Result<LatencyReport, Error> {
    let server = Arc::new(tls::server_config(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        None,
        Versions::Tls13Only,
    )?);
    let client = Arc::new(tls::client_config(
        pki.ca.cert_pem(),
        None,
        Versions::Tls13Only,
    )?);
    // TLS and plain TCP round trips alternate, so that both see the same machine load.
    let mut over_tls = EchoClient::start(Some(server), Some(client))?;
    let mut over_tcp = EchoClient::start(None, None)?;
    let mut tls_samples = Vec::with_capacity(size.round_trips);
    let mut tcp_samples = Vec::with_capacity(size.round_trips);
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..size.round_trips {
        if Instant::now() > deadline {
            break;
        }
        tls_samples.push(over_tls.round_trip()?);
        tcp_samples.push(over_tcp.round_trip()?);
    }
    over_tls.finish();
    over_tcp.finish();
    tls_samples.sort();
    tcp_samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let tls_p50 = us(percentile(&tls_samples, 0.5));
    let tcp_p50 = us(percentile(&tcp_samples, 0.5));
    Ok(LatencyReport {
        experiment: "round_trip",
        round_trips: tls_samples.len().min(tcp_samples.len()),
        tls_p50_us: tls_p50,
        tls_p99_us: us(percentile(&tls_samples, 0.99)),
        tcp_p50_us: tcp_p50,
        tcp_p99_us: us(percentile(&tcp_samples, 0.99)),
        target: "TLS p50 within 1.5x of plain TCP p50".into(),
        met: tls_p50 <= 1.5 * tcp_p50,
    })
}

// ---------------------------------------------------------------------------------------
// Fan-out: a load client shared by our room and ncat --chat

/// What the load client measured against one chat server.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub clients: usize,
    /// How many of the clients sent lines, and how many lines they sent in all.
    pub senders: usize,
    pub lines_sent: usize,
    pub expected: usize,
    pub delivered: usize,
    pub seconds: f64,
    pub deliveries_per_second: f64,
    pub peak_server_memory_kib: Option<u64>,
}

impl LoadResult {
    /// The figures of one load run: `measured` is (lines expected, lines delivered, seconds).
    fn of_run(
        traffic: Traffic,
        (expected, delivered, seconds): (usize, usize, f64),
        peak_server_memory_kib: Option<u64>,
    ) -> Self {
        LoadResult {
            clients: traffic.clients,
            senders: traffic.senders,
            lines_sent: expected / traffic.clients.saturating_sub(1).max(1),
            expected,
            delivered,
            seconds,
            deliveries_per_second: delivered as f64 / seconds,
            peak_server_memory_kib,
        }
    }
}

/// How every load line ends, before its sender's number: `n=I bench-line from=S`.
const MARK: &str = "bench-line from=";

/// A load client's count of the lines it received, per sender. Lines come in runs from one
/// sender (a burst): the shared counter is touched once per run, not once per line.
struct Tally<'a> {
    me: usize,
    per_burst: usize,
    received: &'a [AtomicUsize],
    burst_done: &'a [tokio::sync::Notify],
    synced: &'a [AtomicUsize],
    /// The current run: its sender and how many lines so far.
    run: Option<(usize, usize)>,
}

impl Tally<'_> {
    fn line(&mut self, line: &[u8]) {
        match sender_of(line) {
            Some(sender) if sender != self.me && sender < self.received.len() => {
                match &mut self.run {
                    Some((current, count)) if *current == sender => *count += 1,
                    _ => {
                        self.flush();
                        self.run = Some((sender, 1));
                    }
                }
            }
            Some(_) => {}
            None => {
                // `… sync-K from=0`: the clock has not started yet.
                let text = String::from_utf8_lossy(line);
                if let Some(at) = text.find("sync-") {
                    let n = text[at + 5..]
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    self.synced[self.me].fetch_max(n, Ordering::Relaxed);
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Some((sender, count)) = self.run.take() {
            let before = self.received[sender].fetch_add(count, Ordering::Relaxed);
            // A burst of this sender has now reached everybody: its next may go.
            if (before + count) / self.per_burst > before / self.per_burst {
                self.burst_done[sender].notify_one();
            }
        }
    }
}

/// The sender `S` of an intact load line (`… n=I bench-line from=S`, the sender last). The
/// load client reads millions of lines a second on the same cores as the server it
/// measures: this looks only at the line's end and allocates nothing, so that the server,
/// not the client, sets the pace.
fn sender_of(line: &[u8]) -> Option<usize> {
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (head, number) = line.split_at(line.len() - digits);
    if digits == 0 || digits > 9 || !head.ends_with(MARK.as_bytes()) {
        return None;
    }
    Some(
        number
            .iter()
            .fold(0, |n, digit| n * 10 + usize::from(digit - b'0')),
    )
}

/// How a load run sends: the first `senders` clients send bursts of `lines` lines, client
/// `i` starting `i × pace` after the clock starts (pacing keeps every member's backlog
/// small). A sender sends its next burst once every other client has received the last
/// one, up to `bursts` bursts, and starts none after `budget`: the run is bounded in count
/// and in time, and lasts long enough (seconds, not a tenth of one) to be measured on a
/// shared machine. One burst at a time per sender also keeps ncat's lines intact: `ncat
/// --chat` prefixes each *read* with `<userN> `, so two bursts read as one would be cut
/// mid-line.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    clients: usize,
    senders: usize,
    lines: usize,
    bursts: usize,
    budget: Duration,
    pace: Duration,
}

/// `clients` TLS clients on `addr`, each a task of one event loop (tokio, like the room);
/// the senders send their lines, and every other client must receive each of them. Returns
/// (lines expected, lines delivered, seconds) within `limit`.
fn load(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    traffic: Traffic,
    limit: Duration,
) -> Result<(usize, usize, f64), Error> {
    // Each client costs this process a descriptor too.
    let open_files = crate::server::raise_open_file_limit()?;
    if open_files < traffic.clients as u64 + 64 {
        return Err(bench_error(
            "load",
            format!(
                "the open-files limit here ({open_files}, RLIMIT_NOFILE) is too low for {} \
                 clients: the limit, not the room, stops this run",
                traffic.clients
            ),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(load_on_event_loop(addr, Arc::clone(config), traffic, limit))
}

async fn load_on_event_loop(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    traffic: Traffic,
    limit: Duration,
) -> Result<(usize, usize, f64), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Traffic {
        clients,
        senders,
        lines,
        bursts,
        budget,
        pace,
    } = traffic;
    let connector = tokio_rustls::TlsConnector::from(config);
    // Lines received from each sender (by everyone else), and a wake-up for that sender
    // when one of its bursts has reached everybody.
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
    let burst_done: Arc<Vec<tokio::sync::Notify>> =
        Arc::new((0..clients).map(|_| tokio::sync::Notify::new()).collect());
    let synced: Arc<Vec<AtomicUsize>> =
        Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
    let per_burst = lines * (clients - 1);
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(|e| bench_error("name", e))?;
    // Connect in waves of 100, so that the listen queue never overflows.
    let mut writers = Vec::with_capacity(clients);
    let mut readers = tokio::task::JoinSet::new();
    for wave in (0..clients).collect::<Vec<_>>().chunks(100) {
        let mut connecting = tokio::task::JoinSet::new();
        for &me in wave {
            let (connector, name) = (connector.clone(), name.clone());
            connecting.spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let tls =
                    tokio::time::timeout(Duration::from_secs(30), connector.connect(name, tcp))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                Ok::<_, std::io::Error>((me, tls))
            });
        }
        let mut connected = Vec::new();
        while let Some(done) = connecting.join_next().await {
            let (me, tls) = done
                .map_err(|e| bench_error("load", e))?
                .map_err(|e| bench_error("load: connecting a client", e))?;
            connected.push((me, tls));
        }
        connected.sort_by_key(|(me, _)| *me);
        for (me, tls) in connected {
            let (mut reader, writer) = tokio::io::split(tls);
            writers.push(writer);
            let (received, burst_done, synced) = (
                Arc::clone(&received),
                Arc::clone(&burst_done),
                Arc::clone(&synced),
            );
            readers.spawn(async move {
                let mut tally = Tally {
                    me,
                    per_burst,
                    received: &received,
                    burst_done: &burst_done,
                    synced: &synced,
                    run: None,
                };
                // Lines are split on `\n` here, in the bytes as read (a partial last line
                // waits in `carry`): the load client stays cheap (see [`sender_of`]).
                let mut carry = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let data = &buf[..n];
                    let mut start = 0;
                    for end in memchr::memchr_iter(b'\n', data) {
                        if carry.is_empty() {
                            tally.line(&data[start..end]);
                        } else {
                            carry.extend_from_slice(&data[start..end]);
                            tally.line(&carry);
                            carry.clear();
                        }
                        start = end + 1;
                    }
                    tally.flush();
                    carry.extend_from_slice(&data[start..]);
                }
            });
        }
    }
    // Everyone must be registered in the room before the clock starts: client 0 sends
    // `sync-K` until every other client has seen it.
    let all_synced = |round| (1..clients).all(|i| synced[i].load(Ordering::Relaxed) >= round);
    let mut round = 0;
    loop {
        round += 1;
        if round > 200 {
            return Err(bench_error("load", "the clients never all joined"));
        }
        writers[0]
            .write_all(format!("sync-{round} from=0 \n").as_bytes())
            .await?;
        let wait_until = Instant::now() + Duration::from_millis(2000);
        while Instant::now() < wait_until && !all_synced(round) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if all_synced(round) {
            break;
        }
    }
    let started = Instant::now();
    let deadline = started + limit;
    // Lines sent so far, by all senders, and how many senders have finished.
    let sent = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut sending = tokio::task::JoinSet::new();
    let mut quiet = Vec::new();
    for (me, mut writer) in writers.into_iter().enumerate() {
        if me >= senders {
            quiet.push(writer);
            continue;
        }
        let (received, burst_done) = (Arc::clone(&received), Arc::clone(&burst_done));
        let (sent, finished) = (Arc::clone(&sent), Arc::clone(&finished));
        sending.spawn(async move {
            tokio::time::sleep_until((started + pace * me as u32).into()).await;
            let mut text = String::new();
            for burst in 0..bursts {
                if burst > 0 && started.elapsed() >= budget {
                    break;
                }
                text.clear();
                for i in 0..lines {
                    let n = burst * lines + i;
                    let _ = writeln!(text, "n={n} {MARK}{me}");
                }
                if writer.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
                sent.fetch_add(lines, Ordering::Relaxed);
                if burst + 1 == bursts {
                    break;
                }
                // The next burst once this one has reached everybody (or never, if a line
                // is lost: the main loop gives up after seconds without progress).
                let target = (burst + 1) * per_burst;
                let waited = tokio::time::timeout_at(deadline.into(), async {
                    while received[me].load(Ordering::Relaxed) < target {
                        burst_done[me].notified().await;
                    }
                })
                .await;
                if waited.is_err() {
                    break;
                }
            }
            finished.fetch_add(1, Ordering::Relaxed);
            writer
        });
    }
    let total = || {
        received
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    // Wait for every delivery of every line sent, the deadline, or 3 s without progress
    // once every sender has started (lines that will never come); the rate is measured up
    // to the last delivery seen.
    let last_start = started + pace * senders.saturating_sub(1) as u32;
    let mut last_total = 0;
    let mut last_progress = Instant::now();
    loop {
        let now_total = total();
        if now_total != last_total {
            last_total = now_total;
            last_progress = Instant::now();
        }
        let all_sent = finished.load(Ordering::Relaxed) == senders;
        let expected = sent.load(Ordering::Relaxed) * (clients - 1);
        if (all_sent && now_total >= expected)
            || Instant::now() >= deadline
            || (Instant::now() > last_start && last_progress.elapsed() > Duration::from_secs(3))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = last_progress
        .duration_since(started)
        .as_secs_f64()
        .max(1e-6);
    let delivered = total();
    let expected = sent.load(Ordering::Relaxed) * (clients - 1);
    if finished.load(Ordering::Relaxed) < senders {
        // A sender still waits for a burst that will never be complete.
        sending.abort_all();
    }
    while let Some(done) = sending.join_next().await {
        if let Ok(mut writer) = done {
            let _ = writer.shutdown().await;
        }
    }
    for mut writer in quiet {
        let _ = writer.shutdown().await;
    }
    readers.abort_all();
    Ok((expected, delivered, seconds))
}

fn our_room(
    files: &PkiFiles,
    config: &Arc<rustls::ClientConfig>,
    traffic: Traffic,
) -> Result<LoadResult, Error> {
    let exe = std::env::current_exe()?;
    let mut server = RunningChild::spawn(
        Command::new(exe)
            .args(["server", "--room", "--listen", "127.0.0.1:0", "--certs"])
            .arg(&files.dir)
            .args(ROOM_LOAD_FLAGS)
            .env("NO_COLOR", "1"),
    )
    .map_err(|e| bench_error("room", e))?;
    let addr = server
        .wait_for_listening(Duration::from_secs(30))
        .ok_or_else(|| bench_error("room", "the room server never listened"))?;
    let measured = load(addr, config, traffic, Duration::from_secs(300))?;
    let peak = peak_memory_kib(server.pid());
    let _ = server.terminate(Duration::from_secs(2));
    Ok(LoadResult::of_run(traffic, measured, peak))
}

fn ncat_room(
    files: &PkiFiles,
    config: &Arc<rustls::ClientConfig>,
    traffic: Traffic,
) -> Result<LoadResult, String> {
    let server = RunningChild::spawn(
        Command::new("ncat")
            .args([
                "--chat",
                "--ssl",
                "--max-conns",
                &(traffic.clients + 10).to_string(),
            ])
            .arg("--ssl-cert")
            .arg(&files.server_cert)
            .arg("--ssl-key")
            .arg(&files.server_key)
            .args(["-l", "127.0.0.1", "0"]),
    )
    .map_err(|e| e.to_string())?;
    let port =
        listening_port_of(server.pid(), Duration::from_secs(10)).ok_or("ncat never listened")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let measured =
        load(addr, config, traffic, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    Ok(LoadResult::of_run(
        traffic,
        measured,
        peak_memory_kib(server.pid()),
    ))
}

/// The run with the median rate.
fn median(mut runs: Vec<LoadResult>) -> Option<LoadResult> {
    runs.sort_by(|a, b| a.deliveries_per_second.total_cmp(&b.deliveries_per_second));
    let middle = runs.len() / 2;
    runs.into_iter().nth(middle)
}

/// The room figures.
#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    pub experiment: &'static str,
    pub ours: LoadResult,
    pub ncat: Option<LoadResult>,
    pub skipped: Vec<String>,
    pub crowd: LoadResult,
}

fn room(files: &PkiFiles, size: &BenchSize) -> Result<RoomReport, Error> {
    let ca = tls::read_pem_file(&files.ca_cert, "the CA certificate")?;
    let config = Arc::new(tls::client_config(&ca, None, Versions::Tls12AndNewer)?);
    let fanout = Traffic {
        clients: size.fanout_clients,
        senders: size.fanout_clients,
        lines: size.fanout_lines,
        bursts: size.fanout_bursts,
        budget: size.fanout_budget,
        pace: Duration::ZERO,
    };
    // Ours and ncat's alternate; each reports its median run.
    let mut skipped = Vec::new();
    let have_ncat = tool_on_path("ncat").is_some();
    if !have_ncat {
        skipped.push("ncat is not installed (apt-get install ncat)".into());
    }
    let (mut ours, mut ncat) = (Vec::new(), Vec::new());
    for _ in 0..size.fanout_rounds.max(1) {
        ours.push(our_room(files, &config, fanout)?);
        if have_ncat && skipped.is_empty() {
            match ncat_room(files, &config, fanout) {
                Ok(result) => ncat.push(result),
                Err(e) => skipped.push(format!("ncat --chat --ssl: {e}")),
            }
        }
    }
    let ours = median(ours).ok_or_else(|| bench_error("room", "no fan-out run"))?;
    let ncat = median(ncat);
    // The crowd: many clients, a few lines paced so that nobody's backlog grows.
    let crowd = our_room(
        files,
        &config,
        Traffic {
            clients: size.crowd_clients,
            senders: size.crowd_senders,
            lines: 1,
            bursts: 1,
            budget: Duration::ZERO,
            pace: Duration::from_millis(20),
        },
    )?;
    Ok(RoomReport {
        experiment: "room",
        ours,
        ncat,
        skipped,
        crowd,
    })
}

// ---------------------------------------------------------------------------------------
// The whole benchmark

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub bulk: Comparison,
    pub handshakes: Comparison,
    pub latency: LatencyReport,
    pub room: RoomReport,
}

fn rate(value: f64, unit: &str) -> String {
    match unit {
        "bytes/s" => format!("{:.2} GB/s", value / 1e9),
        _ => format!("{value:.0} {unit}"),
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured (reference missing)",
    }
}

fn narrate_comparison(c: &Comparison, n: &mut Narrator) -> Result<(), Error> {
    n.fact("lab-chat", rate(c.ours, c.unit))?;
    for (name, value) in &c.peers {
        match value {
            Some(v) => n.fact(name, rate(*v, c.unit))?,
            None => n.fact(name, "not measured")?,
        }
    }
    for note in &c.notes {
        n.say(&format!("  {note}"))?;
    }
    for skip in &c.skipped {
        n.skipped("reference", skip)?;
    }
    n.fact("target", format!("{} — {}", c.target, verdict(c.met)))?;
    n.record(c)?;
    Ok(())
}

fn narrate_load(name: &str, r: &LoadResult, n: &mut Narrator) -> Result<(), Error> {
    n.fact(
        name,
        format!(
            "{:.0} deliveries/s ({} of {} lines delivered in {:.2} s{})",
            r.deliveries_per_second,
            r.delivered,
            r.expected,
            r.seconds,
            r.peak_server_memory_kib
                .map(|k| format!(", peak server memory {:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_default()
        ),
    )?;
    Ok(())
}

/// Runs and narrates the benchmark.
pub fn run(size: BenchSize, n: &mut Narrator) -> Result<BenchReport, Error> {
    n.heading("lab-chat bench: the secure chat's speed, next to well-known programs")?;
    if cfg!(debug_assertions) {
        n.warn("this is a debug build: run `cargo run --release -p lab-chat -- bench` for real figures")?;
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let cores = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        n.fact(
            "machine load (1 min)",
            format!(
                "{} on {cores} cores: other work competes with every figure below",
                load.split_whitespace().next().unwrap_or("?")
            ),
        )?;
    }
    let dir = tempfile::Builder::new()
        .prefix("lab-chat-bench")
        .tempdir()?;
    let pki = LabPki::generate(crate::keys::DEFAULT_CLIENT_NAME)?;
    let files = pki.write_to(&dir.path().join("certs"), false)?;

    n.section("Bulk TLS throughput, the cipher the chat negotiates, loopback")?;
    let bulk = bulk(&pki, &files, dir.path(), &size)?;
    narrate_comparison(&bulk, n)?;

    n.section("Full TLS 1.3 handshakes per second, ECDSA P-256")?;
    let handshakes = handshakes(&pki, &files, &size)?;
    narrate_comparison(&handshakes, n)?;

    n.section("Chat line round trip (32-byte line, echoed)")?;
    let latency = latency(&pki, &size)?;
    n.fact(
        "TLS 1.3 p50 / p99",
        format!(
            "{:.1} µs / {:.1} µs",
            latency.tls_p50_us, latency.tls_p99_us
        ),
    )?;
    n.fact(
        "plain TCP p50 / p99",
        format!(
            "{:.1} µs / {:.1} µs",
            latency.tcp_p50_us, latency.tcp_p99_us
        ),
    )?;
    n.fact(
        "target",
        format!(
            "{} — {} ({:.2}x)",
            latency.target,
            verdict(Some(latency.met)),
            latency.tls_p50_us / latency.tcp_p50_us
        ),
    )?;
    n.record(&latency)?;

    n.section("Room fan-out (each line to every other client, TLS)")?;
    let room = room(&files, &size)?;
    narrate_load(
        &format!("lab-chat --room, {} clients", room.ours.clients),
        &room.ours,
        n,
    )?;
    match &room.ncat {
        Some(ncat) => narrate_load(
            &format!("ncat --chat --ssl, {} clients", ncat.clients),
            ncat,
            n,
        )?,
        None => {
            for skip in &room.skipped {
                n.skipped("ncat", skip)?;
            }
        }
    }
    let met = room
        .ncat
        .as_ref()
        .map(|ncat| room.ours.deliveries_per_second >= 2.0 * ncat.deliveries_per_second);
    n.fact(
        "target",
        format!(
            "at least 2x ncat's deliveries/s (medians of alternating runs) — {}",
            verdict(met)
        ),
    )?;
    if let Some(ncat) = &room.ncat
        && ncat.delivered < ncat.expected
    {
        n.warn(&format!(
            "ncat delivered {} of {} lines intact",
            ncat.delivered, ncat.expected
        ))?;
    }
    narrate_load(
        &format!("lab-chat --room, {} clients", room.crowd.clients),
        &room.crowd,
        n,
    )?;
    n.fact(
        "target",
        format!(
            "every line to every client — {}",
            if room.crowd.delivered == room.crowd.expected {
                "met: none lost"
            } else {
                "NOT met: lines lost"
            }
        ),
    )?;
    if let Some(kib) = room.crowd.peak_server_memory_kib {
        let per_client = kib as f64 / room.crowd.clients as f64;
        n.fact(
            "memory per client",
            format!(
                "{per_client:.1} KiB (peak server memory / clients); target at most 64 KiB — {}",
                verdict(Some(per_client <= 64.0))
            ),
        )?;
    }
    n.record(&room)?;
    Ok(BenchReport {
        bulk,
        handshakes,
        latency,
        room,
    })
}

/// One part of the benchmark at full size, for whoever is tuning that part (not run by
/// `cargo test`; the figures are printed, never asserted):
/// `cargo test --release -p lab-chat --lib bench::parts -- --ignored --nocapture`.
/// The room part needs the release binary built first (`cargo build --release -p lab-chat`);
/// `ROOM_CLIENTS=N` changes the crowd (above 100, one line each), `ROOM_EXE=PATH` runs
/// another build of the server (to compare two versions in the same minutes), and
/// `ROOM_NO_NCAT=1` skips ncat.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod parts {
    use super::*;

    #[test]
    #[ignore = "a benchmark part: run by hand, in release"]
    fn bulk_only() {
        let pki = LabPki::generate(crate::keys::DEFAULT_CLIENT_NAME).unwrap();
        for _ in 0..3 {
            let (rate, suite) = our_bulk(&pki, &BenchSize::full()).unwrap();
            let ceiling = openssl_speed(suite, 3.0).unwrap();
            println!(
                "bulk {}: {:.3} GB/s, openssl speed {:.3} GB/s, {:.0}%",
                suite.rustls,
                rate / 1e9,
                ceiling / 1e9,
                100.0 * rate / ceiling
            );
        }
    }

    #[test]
    #[ignore = "a benchmark part: run by hand, in release"]
    fn room_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = LabPki::generate(crate::keys::DEFAULT_CLIENT_NAME).unwrap();
        let files = pki.write_to(&dir.path().join("certs"), false).unwrap();
        let ca = tls::read_pem_file(&files.ca_cert, "the CA certificate").unwrap();
        let config = Arc::new(tls::client_config(&ca, None, Versions::Tls12AndNewer).unwrap());
        let exe = std::env::var_os("ROOM_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/lab-chat")
            });
        let clients: usize = std::env::var("ROOM_CLIENTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(50);
        let traffic = if clients > 100 {
            Traffic {
                clients,
                senders: 100,
                lines: 1,
                bursts: 1,
                budget: Duration::ZERO,
                pace: Duration::from_millis(20),
            }
        } else {
            Traffic {
                clients,
                senders: clients,
                lines: 200,
                bursts: BenchSize::full().fanout_bursts,
                budget: BenchSize::full().fanout_budget,
                pace: Duration::ZERO,
            }
        };
        let mut server = RunningChild::spawn(
            Command::new(exe)
                .args(["server", "--room", "--listen", "127.0.0.1:0", "--certs"])
                .arg(&files.dir)
                .args(ROOM_LOAD_FLAGS),
        )
        .unwrap();
        let addr = server.wait_for_listening(Duration::from_secs(30)).unwrap();
        let (expected, delivered, seconds) =
            load(addr, &config, traffic, Duration::from_secs(300)).unwrap();
        println!(
            "room {clients}: {:.0} deliveries/s ({delivered} of {expected} in {seconds:.2} s), \
             peak server memory {:?} KiB",
            delivered as f64 / seconds,
            peak_memory_kib(server.pid())
        );
        let _ = server.terminate(Duration::from_secs(2));
        if tool_on_path("ncat").is_some() && std::env::var_os("ROOM_NO_NCAT").is_none() {
            let ncat = ncat_room(&files, &config, traffic).unwrap();
            println!(
                "ncat {clients}: {:.0} deliveries/s ({} of {} in {:.2} s)",
                ncat.deliveries_per_second, ncat.delivered, ncat.expected, ncat.seconds
            );
        }
    }
}
