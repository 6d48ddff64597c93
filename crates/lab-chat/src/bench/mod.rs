//! `lab-chat bench`: the chat's speed, measured side by side with well-known programs in
//! the same run on this machine's loopback.
//!
//! | What | Ours | Compared with | Target |
//! |---|---|---|---|
//! | bulk TLS throughput, the cipher the chat negotiates (AES-256-GCM) | our transport, one sender, one receiver | `openssl speed -evp aes-256-gcm` (one core, no network) and `openssl s_client` ← `s_server -WWW` | ≥ 40 % of the `speed` ceiling |
//! | full handshakes/s, ECDSA P-256 | sequential client, resumption off | `openssl s_time -new` against `openssl s_server` | ≥ 1.5 × s_time |
//! | chat line round trip p50/p99 | TLS echo of a 32-byte line | the same code over plain TCP | p50 ≤ 1.5 × plain TCP |
//! | room fan-out, deliveries/s (50 clients, bursts of 200 lines for about 2 s) | `lab-chat server --room` | `ncat --chat --ssl`, same load client | ≥ 2 × ncat |
//! | 10,000 clients in one room, 100 paced lines | every line to every client | — | none lost; ≤ 64 KiB of peak server memory per client |
//!
//! The load client is event-driven (one tokio task per client), like the room, and cheap
//! (it splits lines with memchr and allocates nothing per line): it runs on the same cores
//! as the server it measures. The fan-out runs five times for each server, alternately,
//! and each reports its median run. One module per part: `bulk`, `handshakes`,
//! `round_trip`, `fanout`.
//!
//! Every loop is bounded in count and in time; a missing tool is reported, not guessed.
//! Build with `--release`: a debug build measures the compiler's lack of optimisation.

mod bulk;
mod fanout;
mod handshakes;
mod round_trip;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::bench::verdict;

use lab_kit::narrate::Narrator;
use lab_kit::pki::LabPki;
use lab_kit::tls::{self, Versions};
use serde::Serialize;

pub use fanout::{LoadResult, RoomReport};
pub use round_trip::LatencyReport;

use crate::Error;
use crate::transport::{self, Established};

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

pub(crate) fn bench_error(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Demo(format!("benchmark {what}: {detail}"))
}

/// The port a child process listens on, found in `/proc` (for tools that do not print
/// it), waiting for it to listen at most `timeout`.
pub fn listening_port_of(pid: u32, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(port) = lab_kit::kernel::listening_port_of(pid) {
            return Some(port);
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

/// The chat's TLS 1.3 configurations, server and client, built once for every part.
#[derive(Debug, Clone)]
pub(crate) struct BenchTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl BenchTls {
    pub(crate) fn of(pki: &LabPki) -> Result<Self, Error> {
        Ok(BenchTls {
            server: Arc::new(tls::server_config(
                &pki.server.cert_pem,
                &pki.server.key_pem,
                None,
                Versions::Tls13Only,
            )?),
            client: Arc::new(tls::client_config(
                pki.ca.cert_pem(),
                None,
                Versions::Tls13Only,
            )?),
        })
    }
}

pub(crate) fn server_connect(
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

fn narrate_comparison(c: &Comparison, n: &mut Narrator) -> Result<(), Error> {
    n.fact("lab-chat", rate(c.ours, c.unit))
        .map_err(Error::Narration)?;
    for (name, value) in &c.peers {
        match value {
            Some(v) => n.fact(name, rate(*v, c.unit))?,
            None => n.fact(name, "not measured")?,
        }
    }
    for note in &c.notes {
        n.say(&format!("  {note}")).map_err(Error::Narration)?;
    }
    for skip in &c.skipped {
        n.skipped("reference", skip).map_err(Error::Narration)?;
    }
    n.fact("target", format!("{} — {}", c.target, verdict(c.met)))
        .map_err(Error::Narration)?;
    n.record(c).map_err(Error::Narration)?;
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
    )
    .map_err(Error::Narration)?;
    Ok(())
}

/// Runs and narrates the benchmark.
pub fn run(size: BenchSize, n: &mut Narrator) -> Result<BenchReport, Error> {
    n.heading("lab-chat bench: the secure chat's speed, next to well-known programs")
        .map_err(Error::Narration)?;
    lab_kit::bench::narrate_conditions("cargo run --release -p lab-chat -- bench", n)?;
    let dir = tempfile::Builder::new()
        .prefix("lab-chat-bench")
        .tempdir()?;
    let pki = LabPki::generate(crate::keys::DEFAULT_CLIENT_NAME)?;
    let files = pki.write_to(&dir.path().join("certs"), false)?;
    let configs = BenchTls::of(&pki)?;

    n.section("Bulk TLS throughput, the cipher the chat negotiates, loopback")
        .map_err(Error::Narration)?;
    let bulk = bulk::bulk(&configs, &files, dir.path(), &size)?;
    narrate_comparison(&bulk, n)?;

    n.section("Full TLS 1.3 handshakes per second, ECDSA P-256")
        .map_err(Error::Narration)?;
    let handshakes = handshakes::handshakes(&configs, &files, &size)?;
    narrate_comparison(&handshakes, n)?;

    n.section("Chat line round trip (32-byte line, echoed)")
        .map_err(Error::Narration)?;
    let latency = round_trip::latency(&configs, &size)?;
    n.fact(
        "TLS 1.3 p50 / p99",
        format!(
            "{:.1} µs / {:.1} µs",
            latency.tls_p50_us, latency.tls_p99_us
        ),
    )
    .map_err(Error::Narration)?;
    n.fact(
        "plain TCP p50 / p99",
        format!(
            "{:.1} µs / {:.1} µs",
            latency.tcp_p50_us, latency.tcp_p99_us
        ),
    )
    .map_err(Error::Narration)?;
    n.fact(
        "target",
        format!(
            "{} — {} ({:.2}x)",
            latency.target,
            verdict(Some(latency.met)),
            latency.tls_p50_us / latency.tcp_p50_us
        ),
    )
    .map_err(Error::Narration)?;
    n.record(&latency).map_err(Error::Narration)?;

    n.section("Room fan-out (each line to every other client, TLS)")
        .map_err(Error::Narration)?;
    let room = fanout::room(&files, &size)?;
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
                n.skipped("ncat", skip).map_err(Error::Narration)?;
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
    )
    .map_err(Error::Narration)?;
    if let Some(ncat) = &room.ncat
        && ncat.delivered < ncat.expected
    {
        n.warn(&format!(
            "ncat delivered {} of {} lines intact",
            ncat.delivered, ncat.expected
        ))
        .map_err(Error::Narration)?;
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
    )
    .map_err(Error::Narration)?;
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
    n.record(&room).map_err(Error::Narration)?;
    Ok(BenchReport {
        bulk,
        handshakes,
        latency,
        room,
    })
}
