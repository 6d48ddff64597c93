//! Question 4: what do `bind()`, `listen()`, `accept()`, `connect()`, `send()` and `recv()`
//! really do?
//!
//! [`walk_through`] performs each call for real, with socket2 (a thin layer over the system
//! calls, so one function is one call), and records it as a numbered step with its arguments
//! and result. The lessons that students most often get wrong follow, each as an experiment:
//!
//! - TCP is a byte stream with **no message boundaries** ([`no_message_boundaries`]);
//! - `send` may accept **fewer bytes than asked** ([`partial_send`]);
//! - `recv` returning **0 means the peer closed**, a reset is an error ([`peer_closes`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use lab_kit::errors::ErrorFacts;
use lab_kit::kernel::{self, TcpState};
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::Error;

/// How long any single blocking call in these experiments may wait before the experiment
/// gives up: generous, because a loaded machine can be slow, and bounded, so nothing hangs.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The backlog the walk-through passes to `listen()`.
pub const BACKLOG: i32 = 128;

/// Which program makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Server,
    Client,
}

/// One system call of the walk-through.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub number: usize,
    pub side: Side,
    /// The call and its arguments, e.g. `bind(fd 3, 127.0.0.1:0)`.
    pub call: String,
    /// What it returned, e.g. `ok`, `fd 4`, `14 bytes`.
    pub result: String,
    /// What happened in the kernel, in one sentence.
    pub meaning: String,
}

/// What the kernel showed between `connect()` and `accept()`.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    /// Connections waiting in the listener's accept queue (`/proc/net/tcp`, rx_queue of
    /// the LISTEN socket), or None where `/proc/net/tcp` is not available.
    pub waiting_in_accept_queue: Option<u32>,
    /// The client's TCP state as the kernel reports it (ESTABLISHED before any accept).
    pub client_state: Option<String>,
}

/// The whole walk-through.
#[derive(Debug, Clone, Serialize)]
pub struct WalkThrough {
    pub experiment: &'static str,
    pub steps: Vec<Step>,
    pub backlog: Backlog,
    /// The listener's file descriptor and the accepted connection's: different sockets.
    pub listener_fd: i32,
    pub accepted_fd: i32,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// What `recv` returned after the client's `shutdown(Write)`: 0, the end of the stream.
    pub recv_after_shutdown: usize,
    /// What a new `connect()` got once the listener was closed (ConnectionRefused).
    pub connect_after_close: Option<ErrorFacts>,
    /// The packets on the wire, when watched (`packets`, `capture`), with the moments the
    /// calls returned placed among them.
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The marks the walk-through places among its packets when watched: the moment each call
/// returned, by the clock of the kernel's packet timestamps.
pub mod marks {
    pub const CONNECT_RETURNED: &str = "client: connect() returned";
    pub const ACCEPT_RETURNED: &str = "server: accept() returned";
    pub const SEND_RETURNED: &str = "client: send() returned";
    pub const SHUTDOWN_RETURNED: &str = "client: shutdown(SHUT_WR) returned";
    pub const SERVER_CLOSED: &str = "server: close() returned";
    pub const LISTENER_CLOSED: &str = "server: listener closed";
}

/// The message the client sends in the walk-through.
pub const GREETING: &[u8] = b"hello, server\n";

/// Performs socket → setsockopt → bind → getsockname → listen → socket → connect → accept →
/// send → recv → shutdown → recv → close, all on one thread, and records each step.
///
/// One thread is enough, which is itself a lesson: `connect()` returns before anyone calls
/// `accept()`, because the kernel completes the handshake on its own.
pub fn walk_through() -> Result<WalkThrough, Error> {
    walk_through_watched(&Wiretap::off())
}

/// Like [`walk_through`], with its packets captured by `tap` from `listen()` on, and the
/// moments the calls returned marked among them ([`marks`]).
pub fn walk_through_watched(tap: &Wiretap) -> Result<WalkThrough, Error> {
    use std::os::fd::AsRawFd;
    let mut steps = Vec::new();
    let mut step = |side, call: String, result: String, meaning: &str| {
        steps.push(Step {
            number: steps.len() + 1,
            side,
            call,
            result,
            meaning: meaning.to_string(),
        });
    };

    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(Error::socket("socket"))?;
    let lfd = listener.as_raw_fd();
    step(
        Side::Server,
        "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)".into(),
        format!("fd {lfd}"),
        "a new TCP socket: no address, no connection yet",
    );
    listener
        .set_reuse_address(true)
        .map_err(Error::socket("setsockopt"))?;
    step(
        Side::Server,
        format!("setsockopt(fd {lfd}, SO_REUSEADDR, 1)"),
        "ok".into(),
        "a restarted server may bind its port even while old connections linger in TIME_WAIT \
         (on Linux and macOS; on Windows SO_REUSEADDR lets another program take a port in use: \
         use SO_EXCLUSIVEADDRUSE there)",
    );
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    listener
        .bind(&SockAddr::from(wanted))
        .map_err(Error::socket("bind"))?;
    step(
        Side::Server,
        format!("bind(fd {lfd}, {wanted})"),
        "ok".into(),
        "the socket now owns an address; asking for port zero lets the kernel choose a free one",
    );
    let server = socket_addr(&listener, "getsockname")?;
    step(
        Side::Server,
        format!("getsockname(fd {lfd})"),
        server.to_string(),
        "the port the kernel chose",
    );
    let mut watch = tap.watch("socket_calls", &[server.port()]);
    listener.listen(BACKLOG).map_err(Error::socket("listen"))?;
    step(
        Side::Server,
        format!("listen(fd {lfd}, {BACKLOG})"),
        "ok".into(),
        "from now on the kernel answers SYNs to this port and queues finished handshakes \
         (Linux queues up to backlog + 1, capped by net.core.somaxconn)",
    );

    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(Error::socket("socket"))?;
    let cfd = client.as_raw_fd();
    step(
        Side::Client,
        "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)".into(),
        format!("fd {cfd}"),
        "the client's own socket",
    );
    let started = Instant::now();
    // A plain blocking connect: on loopback it either completes or is refused at once.
    client
        .connect(&SockAddr::from(server))
        .map_err(Error::socket("connect"))?;
    let connect_took = started.elapsed();
    watch.mark(marks::CONNECT_RETURNED);
    let client_addr = socket_addr(&client, "getsockname")?;
    step(
        Side::Client,
        format!("connect(fd {cfd}, {server})"),
        format!(
            "ok in {}, from {client_addr}",
            lab_kit::narrate::human_duration(connect_took)
        ),
        "SYN, SYN-ACK, ACK: the handshake is complete, and the server has not called accept(); \
         the client never called bind(): connect() bound it to a free ephemeral port",
    );
    let backlog = Backlog {
        waiting_in_accept_queue: wait_for_accept_queue(server.port()),
        client_state: tcp_state(client_addr.port(), server.port()),
    };

    let (connection, peer) = listener.accept().map_err(Error::socket("accept"))?;
    watch.mark(marks::ACCEPT_RETURNED);
    let afd = connection.as_raw_fd();
    let peer = peer
        .as_socket()
        .map_or_else(|| "?".into(), |p| p.to_string());
    step(
        Side::Server,
        format!("accept(fd {lfd})"),
        format!("new fd {afd}, peer {peer}"),
        "takes one finished connection off the queue as a NEW socket; the listener keeps listening",
    );

    let bytes_sent = client.send(GREETING).map_err(Error::socket("send"))?;
    watch.mark(marks::SEND_RETURNED);
    step(
        Side::Client,
        format!("send(fd {cfd}, {:?})", text(GREETING)),
        format!("{bytes_sent} bytes"),
        "copies the bytes into the kernel's send buffer and returns how many it took",
    );
    let mut buffer = [0u8; 1024];
    let bytes_received = (&connection)
        .read(&mut buffer)
        .map_err(Error::socket("recv"))?;
    step(
        Side::Server,
        format!("recv(fd {afd}, buffer of {} bytes)", buffer.len()),
        format!(
            "{bytes_received} bytes: {:?}",
            text(&buffer[..bytes_received])
        ),
        "returns what has arrived so far, up to the buffer's size",
    );
    client
        .shutdown(Shutdown::Write)
        .map_err(Error::socket("shutdown"))?;
    watch.mark(marks::SHUTDOWN_RETURNED);
    step(
        Side::Client,
        format!("shutdown(fd {cfd}, SHUT_WR)"),
        "ok".into(),
        "sends a FIN: \"I will send nothing more\" (the client could still receive)",
    );
    let recv_after_shutdown = (&connection)
        .read(&mut buffer)
        .map_err(Error::socket("recv"))?;
    step(
        Side::Server,
        format!("recv(fd {afd}, buffer of {} bytes)", buffer.len()),
        format!("{recv_after_shutdown} bytes"),
        "0 means end of stream: the peer will send nothing more",
    );
    drop(connection);
    watch.mark(marks::SERVER_CLOSED);
    step(
        Side::Server,
        format!("close(fd {afd})"),
        "ok".into(),
        "releases the server's end of this connection; the listener is another socket, still open",
    );
    drop(client);
    step(
        Side::Client,
        format!("close(fd {cfd})"),
        "ok".into(),
        "releases the client's end of the connection",
    );
    drop(listener);
    step(
        Side::Server,
        format!("close(fd {lfd})"),
        "ok".into(),
        "releases the listening socket: nobody listens on this port any more",
    );
    // close() drops this process's reference; the kernel closes the socket when the last
    // reference goes. A program that starts a child at this instant (fork, then exec) holds
    // a copy of every descriptor until the exec, so we look until the LISTEN row is gone.
    wait_until_not_listening(server.port());
    watch.mark(marks::LISTENER_CLOSED);
    let late = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(Error::socket("socket"))?;
    let late_fd = late.as_raw_fd();
    let connect_after_close = late.connect(&SockAddr::from(server)).err();
    step(
        Side::Client,
        format!("connect(fd {late_fd}, {server})"),
        connect_after_close.as_ref().map_or_else(
            || "ok (unexpected)".into(),
            |e| format!("failed: {}", ErrorFacts::of(e).summary()),
        ),
        "a new client socket (fd numbers are reused: the lowest free one), after the listener closed: nothing listens there any more (lab 1)",
    );
    Ok(WalkThrough {
        experiment: "socket_calls",
        steps,
        backlog,
        listener_fd: lfd,
        accepted_fd: afd,
        bytes_sent,
        bytes_received,
        recv_after_shutdown,
        connect_after_close: connect_after_close.as_ref().map(ErrorFacts::of),
        wire: watch.finish(),
    })
}

fn socket_addr(socket: &Socket, step: &'static str) -> Result<SocketAddr, Error> {
    socket
        .local_addr()
        .map_err(Error::socket(step))?
        .as_socket()
        .ok_or_else(|| Error::Unexpected(format!("{step} returned a non-IP address")))
}

/// Bytes as text for narration (the experiments only send ASCII).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The LISTEN socket's accept queue length (for a LISTEN socket, Linux reports the number
/// of finished connections not yet accepted as its rx_queue in `/proc/net/tcp`). The final
/// ACK of the handshake may still be in flight inside the kernel when `connect()` returns,
/// so we look until it shows, within a bound.
fn wait_for_accept_queue(port: u16) -> Option<u32> {
    let deadline = Instant::now() + CALL_DEADLINE;
    loop {
        let queued = kernel::tcp_sockets()
            .ok()?
            .into_iter()
            .find(|row| row.local_address.port() == port && row.state == TcpState::Listen)
            .map(|row| row.rx_queue)?;
        if queued > 0 || Instant::now() >= deadline {
            return Some(queued);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (within a bound) until no socket listens on `port` any more, per `/proc/net/tcp`.
fn wait_until_not_listening(port: u16) {
    let deadline = Instant::now() + CALL_DEADLINE;
    while !kernel::listening_inodes(port).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The kernel's name for the state of the connection from port `local` to port `remote`
/// on loopback (from `/proc/net/tcp`, Linux only), e.g. `ESTABLISHED` or `TIME_WAIT`.
pub fn tcp_state(local: u16, remote: u16) -> Option<String> {
    let row = kernel::tcp_sockets()
        .ok()?
        .into_iter()
        .find(|row| row.local_address.port() == local && row.remote_address.port() == remote)?;
    Some(kernel::state_name(&row.state).to_string())
}

/// A connected pair on loopback: the client's stream and the server's accepted stream.
pub struct ConnectedPair {
    pub client: TcpStream,
    pub server: TcpStream,
}

impl std::fmt::Debug for ConnectedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedPair").finish_non_exhaustive()
    }
}

impl ConnectedPair {
    /// Listens on `127.0.0.1:0`, connects, accepts; both ends get a read timeout so that a
    /// wrong expectation ends the experiment with an error instead of hanging it.
    pub fn open() -> Result<Self, Error> {
        Self::open_with(|_| Ok(()))
    }

    /// Like [`open`](Self::open), configuring the listener (whose options the accepted
    /// socket inherits) before `listen()`.
    pub fn open_with(configure: impl FnOnce(&Socket) -> io::Result<()>) -> Result<Self, Error> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .map_err(Error::socket("socket"))?;
        configure(&listener).map_err(Error::socket("setsockopt"))?;
        listener
            .bind(&SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
            .map_err(Error::socket("bind"))?;
        listener.listen(BACKLOG).map_err(Error::socket("listen"))?;
        let listener: TcpListener = listener.into();
        let addr = listener
            .local_addr()
            .map_err(Error::socket("getsockname"))?;
        let client =
            TcpStream::connect_timeout(&addr, CALL_DEADLINE).map_err(Error::socket("connect"))?;
        let (server, _) = listener.accept().map_err(Error::socket("accept"))?;
        for end in [&client, &server] {
            end.set_read_timeout(Some(CALL_DEADLINE))
                .map_err(Error::socket("setsockopt"))?;
        }
        Ok(ConnectedPair { client, server })
    }
}

/// Waits until at least `wanted` bytes have arrived at `stream`, without consuming them
/// (`recv` with `MSG_PEEK`), so that the next `recv` sees them all at once.
fn wait_until_arrived(stream: &TcpStream, wanted: usize) -> Result<(), Error> {
    let socket = socket2::SockRef::from(stream);
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); wanted];
    let deadline = Instant::now() + CALL_DEADLINE;
    loop {
        let available = socket
            .peek(&mut buffer)
            .map_err(Error::socket("recv(MSG_PEEK)"))?;
        if available >= wanted {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Unexpected(format!(
                "only {available} of {wanted} bytes arrived within {CALL_DEADLINE:?}"
            )));
        }
        std::thread::yield_now();
    }
}

/// Two sends, one recv; a small buffer; and framing that restores the messages.
#[derive(Debug, Clone, Serialize)]
pub struct NoMessageBoundaries {
    pub experiment: &'static str,
    /// The two messages, each given to its own `send()` call, with TCP_NODELAY on so each
    /// leaves as its own segment.
    pub sends: Vec<String>,
    /// What one `recv()` with a 1024-byte buffer returned once both had arrived.
    pub one_recv: String,
    /// A message, and what a `recv()` with a small buffer returned of it.
    pub long_message: String,
    pub small_buffer: usize,
    pub small_recv: String,
    /// What the next `recv()` returned: the rest.
    pub next_recv: String,
    /// The two messages again, read back by "read until newline" (`BufRead::read_line`).
    pub newline_framed: Vec<String>,
    /// The two messages sent with a 4-byte big-endian length before each, read back
    /// by reading the length, then exactly that many bytes.
    pub length_prefixed: Vec<String>,
}

/// The two messages of the boundaries experiment.
pub const TWO_MESSAGES: [&str; 2] = ["hello\n", "world\n"];
/// The message read through a small buffer, and that buffer's size.
pub const LONG_MESSAGE: &str = "a longer message\n";
pub const SMALL_BUFFER: usize = 5;

/// Shows that TCP delivers bytes, not messages, and that framing gives messages back.
pub fn no_message_boundaries() -> Result<NoMessageBoundaries, Error> {
    let ConnectedPair { mut client, server } = ConnectedPair::open()?;
    client
        .set_nodelay(true)
        .map_err(Error::socket("setsockopt"))?;
    let both: usize = TWO_MESSAGES.iter().map(|m| m.len()).sum();

    // Two sends, both before the receiver reads: they arrive in one recv.
    for message in TWO_MESSAGES {
        client
            .write_all(message.as_bytes())
            .map_err(Error::socket("send"))?;
    }
    wait_until_arrived(&server, both)?;
    let mut buffer = [0u8; 1024];
    let n = (&server).read(&mut buffer).map_err(Error::socket("recv"))?;
    let one_recv = text(&buffer[..n]);

    // A buffer smaller than the message: recv returns part of it, the rest stays queued.
    client
        .write_all(LONG_MESSAGE.as_bytes())
        .map_err(Error::socket("send"))?;
    wait_until_arrived(&server, LONG_MESSAGE.len())?;
    let mut small = [0u8; SMALL_BUFFER];
    let n = (&server).read(&mut small).map_err(Error::socket("recv"))?;
    let small_recv = text(&small[..n]);
    let n = (&server).read(&mut buffer).map_err(Error::socket("recv"))?;
    let next_recv = text(&buffer[..n]);

    // Framing by newline: the reader keeps reading until it has a whole line.
    for message in TWO_MESSAGES {
        client
            .write_all(message.as_bytes())
            .map_err(Error::socket("send"))?;
    }
    wait_until_arrived(&server, both)?;
    let mut lines = BufReader::new(&server);
    let mut newline_framed = Vec::new();
    for _ in TWO_MESSAGES {
        let mut line = String::new();
        lines.read_line(&mut line).map_err(Error::socket("recv"))?;
        newline_framed.push(line);
    }

    // Framing by length prefix: 4 bytes of length, then exactly that many bytes.
    let mut framed = Vec::new();
    for message in ["hello", "world"] {
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(message.as_bytes());
    }
    client.write_all(&framed).map_err(Error::socket("send"))?;
    let mut length_prefixed = Vec::new();
    for _ in 0..2 {
        let mut length = [0u8; 4];
        lines
            .read_exact(&mut length)
            .map_err(Error::socket("recv"))?;
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        lines.read_exact(&mut body).map_err(Error::socket("recv"))?;
        length_prefixed.push(text(&body));
    }

    Ok(NoMessageBoundaries {
        experiment: "no_message_boundaries",
        sends: TWO_MESSAGES.iter().map(|m| m.to_string()).collect(),
        one_recv,
        long_message: LONG_MESSAGE.into(),
        small_buffer: SMALL_BUFFER,
        small_recv,
        next_recv,
        newline_framed,
        length_prefixed,
    })
}

/// A non-blocking send to a peer that does not read, then `write_all`.
#[derive(Debug, Clone, Serialize)]
pub struct PartialSend {
    pub experiment: &'static str,
    /// The bytes given to the first non-blocking `send()`.
    pub asked: usize,
    /// The send buffer the kernel granted (SO_SNDBUF as read back).
    pub send_buffer: usize,
    /// What the first `send()` accepted: fewer bytes than asked.
    pub first_send: usize,
    /// Sends until the first error, and the bytes they accepted in total.
    pub sends_until_error: usize,
    pub accepted_before_error: usize,
    /// The error that stopped them: WouldBlock (EAGAIN).
    #[serde(flatten)]
    pub error: Option<ErrorFacts>,
    /// Once the peer reads: the loop that sends the rest on the same non-blocking socket
    /// (send what fits, wait until writable, send more), and how many `send()` calls it took.
    pub rest_sent: usize,
    pub rest_send_calls: usize,
    pub rest_would_blocks: usize,
    /// `write_all` of another `asked` bytes on the socket made blocking: how many `write()`
    /// calls it made inside (on Linux a blocking send waits until it has taken everything,
    /// so usually one).
    pub write_all_calls: usize,
    /// Bytes the peer read in total (everything either way).
    pub peer_received: u64,
}

/// The size of the non-blocking send and of the `write_all`.
pub const PARTIAL_SEND_BYTES: usize = 4 << 20;
/// The buffer sizes we ask for (Linux doubles them for its bookkeeping).
pub const SMALL_BUFFER_REQUEST: usize = 16 << 10;

/// Counts the `write()` calls that `write_all` makes on the way.
struct CountingWriter<W> {
    inner: W,
    sizes: Vec<usize>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sizes.push(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Shows a partial send and `WouldBlock` with a peer that does not read, then `write_all`.
pub fn partial_send() -> Result<PartialSend, Error> {
    // Small receive buffer on the server side (set on the listener before listen(), so
    // the accepted socket inherits it and the window it advertises is small).
    let pair = ConnectedPair::open_with(|l| l.set_recv_buffer_size(SMALL_BUFFER_REQUEST))?;
    let client = socket2::SockRef::from(&pair.client);
    client
        .set_send_buffer_size(SMALL_BUFFER_REQUEST)
        .map_err(Error::socket("setsockopt"))?;
    let send_buffer = client
        .send_buffer_size()
        .map_err(Error::socket("getsockopt"))?;
    pair.client
        .set_nonblocking(true)
        .map_err(Error::socket("fcntl"))?;

    let data = vec![b'x'; PARTIAL_SEND_BYTES];
    let mut first_send = None;
    let mut sends_until_error = 0;
    let mut accepted_before_error = 0;
    let mut error = None;
    // Bounded: the buffers hold a few hundred KiB at most, so this ends long before.
    while sends_until_error < 100_000 {
        match (&pair.client).write(&data) {
            Ok(n) => {
                first_send.get_or_insert(n);
                sends_until_error += 1;
                accepted_before_error += n;
            }
            Err(e) => {
                error = Some(ErrorFacts::of(&e));
                break;
            }
        }
    }
    let first_send = first_send.unwrap_or(0);

    // Now the peer reads everything; the sender finishes its job by hand: send the rest,
    // and whenever the kernel says WouldBlock, wait until the socket is writable again.
    let ConnectedPair { client, server } = pair;
    let reader = std::thread::spawn(move || -> io::Result<u64> {
        io::copy(&mut (&server), &mut io::sink())
    });
    let mut offset = accepted_before_error.min(PARTIAL_SEND_BYTES);
    let (mut rest_send_calls, mut rest_would_blocks) = (0, 0);
    let deadline = Instant::now() + CALL_DEADLINE;
    while offset < PARTIAL_SEND_BYTES && Instant::now() < deadline {
        match (&client).write(&data[offset..]) {
            Ok(n) => {
                rest_send_calls += 1;
                offset += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                rest_would_blocks += 1;
                wait_writable(&client)?;
            }
            Err(e) => return Err(Error::socket("send")(e)),
        }
    }
    let rest_sent = offset - accepted_before_error.min(PARTIAL_SEND_BYTES);

    // The same job on a blocking socket is one line: write_all.
    client
        .set_nonblocking(false)
        .map_err(Error::socket("fcntl"))?;
    client
        .set_write_timeout(Some(CALL_DEADLINE))
        .map_err(Error::socket("setsockopt"))?;
    let mut counting = CountingWriter {
        inner: &client,
        sizes: Vec::new(),
    };
    counting
        .write_all(&data)
        .map_err(Error::socket("write_all"))?;
    client
        .shutdown(Shutdown::Write)
        .map_err(Error::socket("shutdown"))?;
    let peer_received = reader
        .join()
        .map_err(|_| Error::Unexpected("the reading thread panicked".into()))?
        .map_err(Error::socket("recv"))?;
    Ok(PartialSend {
        experiment: "partial_send",
        asked: PARTIAL_SEND_BYTES,
        send_buffer,
        first_send,
        sends_until_error,
        accepted_before_error,
        error,
        rest_sent,
        rest_send_calls,
        rest_would_blocks,
        write_all_calls: counting.sizes.len(),
        peer_received,
    })
}

/// Waits (at most a second) until `stream` can take more bytes: poll(2) for POLLOUT.
fn wait_writable(stream: &TcpStream) -> Result<(), Error> {
    use std::os::fd::AsRawFd;
    let mut pollfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and its count is 1.
    let rc = unsafe { libc::poll(&mut pollfd, 1, 1_000) };
    if rc < 0 {
        return Err(Error::socket("poll")(io::Error::last_os_error()));
    }
    Ok(())
}

/// What `recv` reports when the peer closes, and when it resets.
#[derive(Debug, Clone, Serialize)]
pub struct PeerCloses {
    pub experiment: &'static str,
    /// The peer called close() normally (FIN): recv returned this many bytes (0).
    pub recv_after_close: Option<usize>,
    /// The peer set SO_LINGER to 0 and closed (RST): recv failed with this error.
    pub recv_after_reset: Option<ErrorFacts>,
    /// The two endings on the wire, when watched (`packets`, `capture`): a FIN, then a RST.
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The marks `peer_closes` places among its packets when watched.
pub mod peer_closes_marks {
    pub const CLOSED: &str = "server: close() on connection 1";
    pub const RESET: &str = "server: SO_LINGER 0, close() on connection 2";
}

/// Closes one connection normally and resets another, and reads from the other end.
pub fn peer_closes() -> Result<PeerCloses, Error> {
    peer_closes_watched(&Wiretap::off())
}

/// Like [`peer_closes`], with the two endings captured by `tap` (from after both
/// connections were made) and each `close()` marked among the packets.
pub fn peer_closes_watched(tap: &Wiretap) -> Result<PeerCloses, Error> {
    let closing = ConnectedPair::open()?;
    let resetting = ConnectedPair::open()?;
    let mut ports = Vec::new();
    for pair in [&closing, &resetting] {
        ports.push(
            pair.server
                .local_addr()
                .map_err(Error::socket("getsockname"))?
                .port(),
        );
    }
    let mut watch = tap.watch("peer_closes", &ports);

    let ConnectedPair { client, server } = closing;
    drop(server);
    watch.mark(peer_closes_marks::CLOSED);
    let mut buffer = [0u8; 64];
    let recv_after_close = (&client).read(&mut buffer).ok();

    let ConnectedPair { client, server } = resetting;
    // SO_LINGER with a zero timeout makes close() discard the connection and send a RST
    // instead of the orderly FIN.
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .map_err(Error::socket("setsockopt"))?;
    drop(server);
    watch.mark(peer_closes_marks::RESET);
    let recv_after_reset = (&client)
        .read(&mut buffer)
        .err()
        .map(|e| ErrorFacts::of(&e));
    Ok(PeerCloses {
        experiment: "peer_closes",
        recv_after_close,
        recv_after_reset,
        wire: watch.finish(),
    })
}
