//! The echo tools: a server that sends back every byte it receives, and a client that sends
//! its standard input and prints what comes back.
//!
//! The server is the classic design: one thread per client, which is simple and, for a
//! bounded number of clients, fast. "Bounded" matters: without a limit, each new connection
//! costs a thread, and a flood of connections exhausts the machine. A client over the limit
//! gets one clear line and is closed, instead of waiting forever in the accept queue.
//!
//! The client shows full duplex: one thread sends standard input while the main thread reads
//! the echoes, so a long input never deadlocks against a server whose buffers are full.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::error::Error;

/// Where `lab-echo server` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2000";
/// Where `lab-echo client` connects unless told otherwise.
pub const DEFAULT_CONNECT: &str = "127.0.0.1:2000";
/// How many clients the server serves at once unless told otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// The start of the line a client over the limit receives before the server closes it.
pub const BUSY_PREFIX: &str = "lab-echo server busy:";
/// The size of each client's echo buffer: large enough for bulk transfers to move in big
/// chunks (fewer system calls), small enough that many clients cost little memory.
pub const ECHO_BUFFER: usize = 128 * 1024;

/// Resolves `HOST:PORT` (a name or an address) into socket addresses, in resolver order.
pub fn resolve(target: &str) -> Result<Vec<SocketAddr>, Error> {
    Ok(lab_kit::addr::resolve(target)?)
}

/// What happens at the server, one event per line of its log. The library never prints:
/// whoever runs the server decides where events go (the `lab-echo server` command prints
/// them; the benchmark drops them), as lab-chat's server reports through its event sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// `accept()` failed; that client is lost, the server goes on.
    AcceptFailed(String),
    /// A client was turned away because every slot was taken.
    Refused {
        peer: SocketAddr,
        max_clients: usize,
    },
    /// A client got a slot.
    Connected {
        peer: SocketAddr,
        count: usize,
        max_clients: usize,
    },
    /// A client closed after `bytes` were echoed.
    Left { peer: SocketAddr, bytes: u64 },
    /// A client's connection failed.
    Failed { peer: SocketAddr, error: String },
}

impl std::fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerEvent::AcceptFailed(error) => write!(f, "accept failed: {error}"),
            ServerEvent::Refused { peer, max_clients } => write!(
                f,
                "client {peer} refused: all {max_clients} client slots are taken"
            ),
            ServerEvent::Connected {
                peer,
                count,
                max_clients,
            } => write!(
                f,
                "client {peer} connected ({count} of at most {max_clients})"
            ),
            ServerEvent::Left { peer, bytes } => {
                write!(f, "client {peer} left after {bytes} bytes echoed")
            }
            ServerEvent::Failed { peer, error } => write!(f, "client {peer} failed: {error}"),
        }
    }
}

/// Where a server's events go: called from the accepting thread and every client's thread.
pub type EventSink = Arc<dyn Fn(ServerEvent) + Send + Sync>;

/// A bound, listening echo server.
#[derive(Debug)]
pub struct EchoServer {
    listener: TcpListener,
    max_clients: usize,
}

impl EchoServer {
    /// Binds and listens on `addr` (e.g. `127.0.0.1:0`); serving starts with [`serve`](Self::serve).
    pub fn bind(addr: &str, max_clients: usize) -> Result<Self, Error> {
        let mut last_error = None;
        for candidate in resolve(addr)? {
            match TcpListener::bind(candidate) {
                Ok(listener) => {
                    return Ok(EchoServer {
                        listener,
                        max_clients: max_clients.max(1),
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(Error::Listen {
            addr: addr.to_string(),
            source: last_error.unwrap_or_else(|| io::Error::other("no address to bind")),
        })
    }

    /// The address the kernel bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener
            .local_addr()
            .map_err(Error::socket("getsockname"))
    }

    /// Accepts clients forever, one thread each, at most `max_clients` at once, reporting
    /// what happens to `events`.
    pub fn serve(self, events: EventSink) -> Result<(), Error> {
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A connection that was reset while queued, or no file descriptors
                    // left: that client is lost, the server goes on (after a pause, so
                    // a persistent error does not spin the CPU).
                    events(ServerEvent::AcceptFailed(e.to_string()));
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if active.load(Ordering::SeqCst) >= self.max_clients {
                events(ServerEvent::Refused {
                    peer,
                    max_clients: self.max_clients,
                });
                refuse_busy(stream, self.max_clients);
                continue;
            }
            let slot = ClientSlot::take(&active);
            events(ServerEvent::Connected {
                peer,
                count: slot.count,
                max_clients: self.max_clients,
            });
            let events = Arc::clone(&events);
            thread::spawn(move || {
                let result = echo_until_closed(stream);
                drop(slot);
                events(match result {
                    Ok(bytes) => ServerEvent::Left { peer, bytes },
                    Err(e) => ServerEvent::Failed {
                        peer,
                        error: e.to_string(),
                    },
                });
            });
        }
    }
}

/// One of the bounded client slots; freed when dropped (also if the echo thread panics).
struct ClientSlot {
    active: Arc<AtomicUsize>,
    count: usize,
}

impl ClientSlot {
    fn take(active: &Arc<AtomicUsize>) -> Self {
        let count = active.fetch_add(1, Ordering::SeqCst) + 1;
        ClientSlot {
            active: Arc::clone(active),
            count,
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells a client over the limit why, and closes it politely.
///
/// Closing a socket that still has unread input makes the kernel send a reset, which could
/// destroy our line before the client reads it. So: send the line, send our FIN, and read
/// (and discard) what the client sent, for a short bounded time, before closing.
fn refuse_busy(mut stream: TcpStream, max_clients: usize) {
    let _ = writeln!(
        stream,
        "{BUSY_PREFIX} all {max_clients} client slots are taken; try again later"
    );
    let _ = stream.shutdown(Shutdown::Write);
    // Bounded in time: the accept loop waits here, so a refused client cannot hold it long.
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    let mut discard = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut discard) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Sends back everything `stream` receives, until the client closes. Returns the byte count.
pub fn echo_until_closed(mut stream: TcpStream) -> io::Result<u64> {
    // Echo each chunk at once: with Nagle's algorithm on, a small echo could wait for the
    // ACK of the previous one (see the Nagle lesson in the benchmark).
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; ECHO_BUFFER];
    let mut echoed = 0u64;
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => break, // the client closed its side: the end of the stream
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buffer[..n])?;
        echoed += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(echoed)
}

/// Connects to `target`, trying each address it resolves to in turn (like
/// `TcpStream::connect`), keeping the last error for the report.
pub fn connect(target: &str) -> Result<TcpStream, Error> {
    let mut last_error = None;
    for addr in resolve(target)? {
        match TcpStream::connect_timeout(&addr, crate::attempt::CONNECT_DEADLINE) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::Connect {
        target: target.to_string(),
        source: last_error.unwrap_or_else(|| io::Error::other("no address to connect to")),
    })
}

/// What a client run sent and got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ClientSummary {
    pub sent: u64,
    pub received: u64,
}

/// Sends `input` line by line to the server at `target`, writes the echoes to `output`, and
/// returns once every byte sent has come back and the server closed.
pub fn run_client(
    target: &str,
    input: impl BufRead + Send + 'static,
    mut output: impl Write,
) -> Result<ClientSummary, Error> {
    let stream = connect(target)?;
    stream
        .set_nodelay(true)
        .map_err(Error::socket("setsockopt"))?;
    let sending = stream.try_clone().map_err(Error::socket("dup"))?;
    let sent = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let send_error: Arc<std::sync::Mutex<Option<io::Error>>> = Arc::default();
    {
        let (sent, done_sending, send_error) = (
            Arc::clone(&sent),
            Arc::clone(&done_sending),
            Arc::clone(&send_error),
        );
        // Not joined: if the server goes away while we wait for input, the main thread
        // reports it and the process ends without waiting for the next line of input.
        thread::spawn(move || {
            let result = send_lines(input, &sending, &sent);
            if let Err(e) = result {
                *send_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
            done_sending.store(true, Ordering::SeqCst);
            // Our FIN: "no more input". The server echoes what is left, then closes.
            let _ = sending.shutdown(Shutdown::Write);
        });
    }
    let mut echoes = BufReader::new(&stream);
    let mut line = Vec::new();
    let mut received = 0u64;
    loop {
        line.clear();
        let n = echoes
            .read_until(b'\n', &mut line)
            .map_err(Error::socket("recv"))?;
        if n == 0 {
            break;
        }
        if received == 0 && line.starts_with(BUSY_PREFIX.as_bytes()) {
            return Err(Error::Busy(
                String::from_utf8_lossy(&line).trim().to_string(),
            ));
        }
        received += n as u64;
        output
            .write_all(&line)
            .map_err(Error::socket("write to stdout"))?;
        output.flush().map_err(Error::socket("write to stdout"))?;
    }
    let sent = sent.load(Ordering::SeqCst);
    let finished = done_sending.load(Ordering::SeqCst);
    let failure = send_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if finished && failure.is_none() && received == sent {
        return Ok(ClientSummary { sent, received });
    }
    let reason = match failure {
        Some(e) => format!(" (sending failed: {e})"),
        None if !finished => " (before the input ended)".to_string(),
        None => String::new(),
    };
    Err(Error::Incomplete {
        sent,
        received,
        reason,
    })
}

fn send_lines(mut input: impl BufRead, mut stream: &TcpStream, sent: &AtomicU64) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        stream.write_all(&line)?;
        // The reader compares its total with this count only after the server closed,
        // which happens after our FIN, which is sent after the last count: no race.
        sent.fetch_add(line.len() as u64, Ordering::SeqCst);
    }
}
