//! The kernel keeps working while a program sleeps.
//!
//! A sleeping server is not a deaf server. Its listening socket belongs to the kernel, and
//! the kernel answers a client's SYN, completes the three-way handshake and puts the new
//! connection in the listener's accept queue (the *backlog*) with nobody calling `accept`.
//! The client's `connect` returns as soon as the handshake is done. The bytes the client then
//! sends are acknowledged by the kernel and stored in the connection's receive buffer. When
//! the server wakes, `accept` returns at once and every byte is already there: `FIONREAD`
//! counts them, and a non-blocking `recv` takes them all without waiting.
//!
//! What the sleep delayed is the *reply*, not the delivery.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use serde::Serialize;

use crate::Error;

/// What the client sends while the server sleeps: three separate writes.
pub const CLIENT_MESSAGES: &[&str] = &[
    "hello, server\n",
    "are you there?\n",
    "I will not wait for an answer to send this\n",
];

/// How many times the experiment is tried, doubling the server's sleep each time, if the
/// machine is so busy that the client did not get to run during the sleep.
const ATTEMPTS: u32 = 3;
/// Connect and I/O deadlines: generous, since they only matter when something is broken.
const DEADLINE: Duration = Duration::from_secs(10);

/// What the client and the server saw, with every time measured from the moment the server
/// began to sleep.
#[derive(Debug, Clone, Serialize)]
pub struct KernelKeepsWorkingReport {
    pub experiment: &'static str,
    /// How long the server slept before calling `accept` and `recv`.
    pub server_sleep_us: u64,
    /// How many tries it took for the client to act while the server slept (usually 1).
    pub attempts: u32,
    /// When the client's `connect` returned: the handshake was complete.
    pub client_connected_at_us: u64,
    /// When the client's last `write` returned, and how much it wrote in how many writes.
    pub client_sent_at_us: u64,
    pub client_writes: usize,
    pub bytes_sent: usize,
    /// When the server's sleep ended.
    pub server_woke_at_us: u64,
    /// The listener's accept queue when the server woke, before it called `accept`
    /// (`TCP_INFO` on a listening socket: `tcpi_unacked` is the queue, `tcpi_sacked` its limit).
    pub accept_queue_at_wake: Option<u32>,
    pub accept_queue_limit: Option<u32>,
    /// How long `accept` took: the connection was already waiting.
    pub accept_took_us: u64,
    /// Bytes in the receive buffer right after `accept` (`ioctl(FIONREAD)`).
    pub bytes_available_at_accept: usize,
    /// Bytes a single non-blocking `recv` returned, and how long it took.
    pub bytes_received_at_once: usize,
    pub recv_took_us: u64,
    /// What the server received, as text.
    pub received_text: String,
    /// The packets on the wire, when watched (`packets`, `capture`), with the server's sleep
    /// marked among them ([`marks`]).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The moments the experiment marks among its packets when watched.
pub mod marks {
    pub const SLEEP_BEGAN: &str = "server: sleep began";
    pub const WOKE: &str = "server: woke up";
}

impl KernelKeepsWorkingReport {
    /// True when the client's connect and every write finished while the server slept.
    pub fn client_finished_during_sleep(&self) -> bool {
        self.client_connected_at_us < self.server_woke_at_us
            && self.client_sent_at_us < self.server_woke_at_us
    }
}

/// What the server thread measured, as instants.
struct ServerView {
    woke: Instant,
    /// The same moment by the clock of the packet timestamps.
    woke_wall: std::time::SystemTime,
    accept_queue: Option<(u32, u32)>,
    accept_took: Duration,
    bytes_available: usize,
    received: Vec<u8>,
    recv_took: Duration,
}

/// A server thread sleeps `server_sleep` before `accept` and `recv`; a client connects and
/// sends during that sleep. Retries with a longer sleep if the client did not get a chance
/// to run in time (a very busy machine).
pub fn client_during_server_sleep(
    server_sleep: Duration,
) -> Result<KernelKeepsWorkingReport, Error> {
    client_during_server_sleep_watched(server_sleep, &Wiretap::off())
}

/// Like [`client_during_server_sleep`], with the packets captured by `tap` and the server's
/// sleep marked among them.
pub fn client_during_server_sleep_watched(
    server_sleep: Duration,
    tap: &Wiretap,
) -> Result<KernelKeepsWorkingReport, Error> {
    let mut sleep = server_sleep;
    let mut attempt = 1;
    loop {
        let outcome = run_once(sleep, attempt, tap)?;
        match outcome {
            Some(report) if report.client_finished_during_sleep() || attempt == ATTEMPTS => {
                return Ok(report);
            }
            None if attempt == ATTEMPTS => {
                return Err(Error::io(format!(
                    "no client connection reached the server during a {} sleep, {ATTEMPTS} times",
                    lab_kit::narrate::human_duration(sleep)
                ))(io::ErrorKind::TimedOut.into()));
            }
            _ => {
                attempt += 1;
                sleep *= 2;
            }
        }
    }
}

/// One try; `None` when the client's connection had not reached the queue when the server
/// woke (the machine was too busy to run the client during the sleep).
fn run_once(
    server_sleep: Duration,
    attempt: u32,
    tap: &Wiretap,
) -> Result<Option<KernelKeepsWorkingReport>, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(Error::io("could not bind 127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("could not read the listener's address"))?;
    // A non-blocking accept proves the point: it fails with WouldBlock unless a connection
    // is already waiting in the queue. (The accepted socket itself starts out blocking.)
    listener
        .set_nonblocking(true)
        .map_err(Error::io("could not make the listener non-blocking"))?;
    let mut watch = tap.watch("kernel_keeps_working", &[addr.port()]);
    let (sleep_started_tx, sleep_started_rx) = mpsc::channel::<(Instant, std::time::SystemTime)>();

    let server = thread::spawn(move || -> Result<Option<ServerView>, Error> {
        let _ = sleep_started_tx.send((Instant::now(), std::time::SystemTime::now()));
        thread::sleep(server_sleep);
        let woke = Instant::now();
        let woke_wall = std::time::SystemTime::now();
        let accept_queue = listener_queue(&listener);

        let accept_started = Instant::now();
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(Error::io("the sleeping server's accept failed")(e)),
        };
        let accept_took = accept_started.elapsed();

        let bytes_available = bytes_in_receive_buffer(&stream).map_err(Error::io(
            "ioctl(FIONREAD) on the accepted connection failed",
        ))?;

        // Non-blocking: if the bytes were not already here, this would fail with WouldBlock
        // instead of waiting for them.
        stream.set_nonblocking(true).map_err(Error::io(
            "could not make the accepted connection non-blocking",
        ))?;
        let mut buffer = vec![0u8; 64 * 1024];
        let recv_started = Instant::now();
        let received = match stream.read(&mut buffer) {
            Ok(n) => buffer[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => return Err(Error::io("the sleeping server's recv failed")(e)),
        };
        let recv_took = recv_started.elapsed();
        Ok(Some(ServerView {
            woke,
            woke_wall,
            accept_queue,
            accept_took,
            bytes_available,
            received,
            recv_took,
        }))
    });

    // Wait (on a channel, not with a guess) until the server has begun its sleep.
    let sleep_started = match sleep_started_rx.recv_timeout(DEADLINE) {
        Ok((started, started_wall)) => {
            watch.mark_at(marks::SLEEP_BEGAN, started_wall);
            started
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(Error::io(format!(
                "the sleeping server thread did not start within {}",
                lab_kit::narrate::human_duration(DEADLINE)
            ))(io::ErrorKind::TimedOut.into()));
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(Error::ThreadPanicked("sleeping server"));
        }
    };
    let client = connect_and_send(addr);
    let server_view = server
        .join()
        .map_err(|_| Error::ThreadPanicked("sleeping server"))??;
    let Some(server_view) = server_view else {
        // A client that failed outright is an error; one that was merely late is a retry.
        client?;
        return Ok(None);
    };
    // The client's connection is kept open until the server has read from it.
    let (client_stream, connected, sent) = client?;
    drop(client_stream);
    watch.mark_at(marks::WOKE, server_view.woke_wall);

    let since_sleep = |t: Instant| {
        lab_kit::narrate::saturating_micros(t.saturating_duration_since(sleep_started))
    };
    Ok(Some(KernelKeepsWorkingReport {
        experiment: "kernel_keeps_working",
        server_sleep_us: lab_kit::narrate::saturating_micros(server_sleep),
        attempts: attempt,
        client_connected_at_us: since_sleep(connected),
        client_sent_at_us: since_sleep(sent),
        client_writes: CLIENT_MESSAGES.len(),
        bytes_sent: CLIENT_MESSAGES.iter().map(|m| m.len()).sum(),
        server_woke_at_us: since_sleep(server_view.woke),
        accept_queue_at_wake: server_view.accept_queue.map(|(queued, _)| queued),
        accept_queue_limit: server_view.accept_queue.map(|(_, limit)| limit),
        accept_took_us: lab_kit::narrate::saturating_micros(server_view.accept_took),
        bytes_available_at_accept: server_view.bytes_available,
        bytes_received_at_once: server_view.received.len(),
        recv_took_us: lab_kit::narrate::saturating_micros(server_view.recv_took),
        received_text: String::from_utf8_lossy(&server_view.received).into_owned(),
        wire: watch.finish(),
    }))
}

/// The client: connect, then write each message, noting when connect and the last write
/// returned.
fn connect_and_send(addr: SocketAddr) -> Result<(TcpStream, Instant, Instant), Error> {
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE)
        .map_err(Error::io(format!("the client could not connect to {addr}")))?;
    let connected = Instant::now();
    for message in CLIENT_MESSAGES {
        stream
            .write_all(message.as_bytes())
            .map_err(Error::io("the client could not send"))?;
    }
    let sent = Instant::now();
    Ok((stream, connected, sent))
}

/// How many bytes wait in a socket's receive buffer (`ioctl(fd, FIONREAD, &n)`).
pub fn bytes_in_receive_buffer(stream: &TcpStream) -> io::Result<usize> {
    let mut available: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for the call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut available) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(available).unwrap_or(0))
}

/// A listener's accept queue: (connections waiting for `accept`, the queue's limit).
///
/// On Linux, `getsockopt(TCP_INFO)` on a *listening* socket reports the queue length in
/// `tcpi_unacked` and the backlog limit in `tcpi_sacked`. `None` where that is unavailable.
pub fn listener_queue(listener: &TcpListener) -> Option<(u32, u32)> {
    lab_kit::kernel::tcp_info(listener).map(|info| (info.tcpi_unacked, info.tcpi_sacked))
}
