//! Room fan-out: every line of every client to every other client, through `lab-chat
//! server --room` and through `ncat --chat --ssl`, with the same event-driven load client
//! (one tokio task per client); and the crowd, 10,000 clients in one room.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab_kit::child::RunningChild;
use lab_kit::child::find_program;
use lab_kit::pki::PkiFiles;
use lab_kit::tls::{self, Versions};
use serde::Serialize;

use super::{BenchSize, bench_error, listening_port_of, peak_memory_kib};
use crate::Error;

/// The room's flood limits, opened wide: the load client is one address sending as fast
/// as the room relays (its own pacing keeps every member within the backlog).
pub(super) const ROOM_LOAD_FLAGS: [&str; 8] = [
    "--max-members",
    "20000",
    "--max-per-address",
    "20000",
    "--max-pending",
    "20000",
    "--max-lines-per-second",
    "1000000",
];

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
pub(super) const MARK: &str = "bench-line from=";

/// A load client's count of the lines it received, per sender. Lines come in runs from one
/// sender (a burst): the shared counter is touched once per run, not once per line.
pub(super) struct Tally<'a> {
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
pub(super) fn sender_of(line: &[u8]) -> Option<usize> {
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
pub(super) struct Traffic {
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
pub(super) fn load(
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

pub(super) async fn load_on_event_loop(
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

pub(super) fn our_room(
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

pub(super) fn ncat_room(
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
pub(super) fn median(mut runs: Vec<LoadResult>) -> Option<LoadResult> {
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

pub(super) fn room(files: &PkiFiles, size: &BenchSize) -> Result<RoomReport, Error> {
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
    let have_ncat = find_program("ncat").is_some();
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

/// This part at full size, for whoever is tuning it (not run by `cargo test`; the figures
/// are printed, never asserted):
/// `cargo test --release -p lab-chat --lib bench::fanout -- --ignored --nocapture`.
/// It needs the release binary built first (`cargo build --release -p lab-chat`);
/// `ROOM_CLIENTS=N` changes the crowd (above 100, one line each), `ROOM_EXE=PATH` runs
/// another build of the server (to compare two versions in the same minutes), and
/// `ROOM_NO_NCAT=1` skips ncat.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::{Path, PathBuf};

    use lab_kit::pki::LabPki;

    use super::*;

    #[test]
    fn the_sender_of_a_load_line_is_read_from_its_end() {
        assert_eq!(sender_of(b"guest3: n=12 bench-line from=4"), Some(4));
        assert_eq!(sender_of(b"<user5> n=0 bench-line from=17"), Some(17));
        assert_eq!(sender_of(b"n=199 bench-line from=49"), Some(49));
        // Not a load line, or one cut by a server that mangles lines.
        assert_eq!(sender_of(b"sync-3 from=0 "), None);
        assert_eq!(sender_of(b"* guest1 joined"), None);
        assert_eq!(sender_of(b"n=3 bench-line from="), None);
        assert_eq!(sender_of(b"n=3 bench-li<user2> ne from=7"), None);
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
        if find_program("ncat").is_some() && std::env::var_os("ROOM_NO_NCAT").is_none() {
            let ncat = ncat_room(&files, &config, traffic).unwrap();
            println!(
                "ncat {clients}: {:.0} deliveries/s ({} of {} in {:.2} s)",
                ncat.deliveries_per_second, ncat.delivered, ncat.expected, ncat.seconds
            );
        }
    }
}
