//! A sleeping single-threaded server makes every client wait; a thread per client does not.
//!
//! Students often "simulate work" or "wait a bit" with `time.sleep` inside a server's loop.
//! In a server with one thread, that thread is the only one that accepts, reads and
//! replies, so while it sleeps for one client, the next client's connection and request sit
//! in the kernel's queues, and its wait includes the first client's sleep. With one thread
//! per client, each sleep suspends only its own client's thread and the sleeps overlap.
//!
//! Both servers below run the same handler (read one line, sleep, reply); two clients
//! connect and send their requests back to back. Only the design differs.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;

/// How many clients each server serves before it stops (every loop is bounded).
pub const CLIENTS: usize = 2;
/// Deadlines for accept, connect and reads: generous, they only matter if something broke.
const DEADLINE: Duration = Duration::from_secs(10);

/// The two designs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// One thread accepts and serves each client in turn.
    SingleThreaded,
    /// One thread accepts; each client gets its own thread.
    ThreadPerClient,
}

impl Design {
    /// The design's name, as printed.
    pub fn describe(self) -> &'static str {
        match self {
            Design::SingleThreaded => "single-threaded server",
            Design::ThreadPerClient => "thread per client",
        }
    }
}

/// One client's request, timed from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ClientWait {
    /// When the client began to send its request, and when the reply arrived.
    pub sent_at_us: u64,
    pub replied_at_us: u64,
    /// The wait this client saw: reply minus request.
    pub waited_us: u64,
    /// The reply line the server sent.
    pub reply: String,
}

/// One server design's run.
#[derive(Debug, Clone, Serialize)]
pub struct DesignRun {
    pub design: Design,
    /// Each client, in the order they connected.
    pub clients: Vec<ClientWait>,
}

impl DesignRun {
    /// How long the second client waited for its reply.
    pub fn second_client_waited_us(&self) -> u64 {
        self.clients.get(1).map_or(0, |c| c.waited_us)
    }

    /// How long after the first client began sending the second client had its reply.
    pub fn second_reply_after_first_request_us(&self) -> u64 {
        match (self.clients.first(), self.clients.get(1)) {
            (Some(first), Some(second)) => second.replied_at_us.saturating_sub(first.sent_at_us),
            _ => 0,
        }
    }
}

/// The result of the sleeping-server experiment.
#[derive(Debug, Clone, Serialize)]
pub struct SleepingServerReport {
    pub experiment: &'static str,
    /// How long each server sleeps per request.
    pub server_sleep_us: u64,
    pub single_threaded: DesignRun,
    pub thread_per_client: DesignRun,
    /// The headline figures, repeated at the top level for scripts.
    pub single_threaded_second_client_waited_us: u64,
    pub thread_per_client_second_client_waited_us: u64,
}

/// Runs both designs with the same per-request sleep.
pub fn compare_server_designs(sleep: Duration) -> Result<SleepingServerReport, Error> {
    let single_threaded = run_design(Design::SingleThreaded, sleep)?;
    let thread_per_client = run_design(Design::ThreadPerClient, sleep)?;
    Ok(SleepingServerReport {
        experiment: "sleeping_server",
        server_sleep_us: lab_kit::narrate::saturating_micros(sleep),
        single_threaded_second_client_waited_us: single_threaded.second_client_waited_us(),
        thread_per_client_second_client_waited_us: thread_per_client.second_client_waited_us(),
        single_threaded,
        thread_per_client,
    })
}

/// Starts a server of `design`, sends it [`CLIENTS`] requests back to back and times each
/// reply.
pub fn run_design(design: Design, sleep: Duration) -> Result<DesignRun, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(Error::io("could not bind 127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("could not read the listener's address"))?;
    let server = thread::spawn(move || match design {
        Design::SingleThreaded => serve_one_at_a_time(&listener, sleep),
        Design::ThreadPerClient => serve_each_in_its_own_thread(&listener, sleep),
    });
    let clients = send_requests_back_to_back(addr);
    let served = server
        .join()
        .map_err(|_| Error::ThreadPanicked(design.describe()));
    // The clients' result first: when they fail, the server's error is only a consequence.
    let clients = clients?;
    served??;
    Ok(DesignRun { design, clients })
}

/// The single-threaded design: accept, read, sleep, reply; then the next client.
fn serve_one_at_a_time(listener: &TcpListener, sleep: Duration) -> Result<(), Error> {
    for _ in 0..CLIENTS {
        let stream = accept_within(listener, DEADLINE)?;
        handle_request(stream, sleep)?;
    }
    Ok(())
}

/// The thread-per-client design: accept, hand the connection to a new thread, accept again.
fn serve_each_in_its_own_thread(listener: &TcpListener, sleep: Duration) -> Result<(), Error> {
    let mut handlers = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let stream = accept_within(listener, DEADLINE)?;
        handlers.push(thread::spawn(move || handle_request(stream, sleep)));
    }
    for handler in handlers {
        handler
            .join()
            .map_err(|_| Error::ThreadPanicked("client handler"))??;
    }
    Ok(())
}

/// The handler both designs share: read one request line, sleep, reply.
fn handle_request(stream: TcpStream, sleep: Duration) -> Result<(), Error> {
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(Error::io("could not set the server's read timeout"))?;
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader
        .read_line(&mut request)
        .map_err(Error::io("the server could not read a request"))?;
    thread::sleep(sleep);
    let reply = format!("done: {}\n", request.trim_end());
    (&stream)
        .write_all(reply.as_bytes())
        .map_err(Error::io("the server could not reply"))
}

/// Accepts one connection, waiting at most `deadline` for it (with `poll`, so that a
/// client that never comes cannot hang the experiment).
fn accept_within(listener: &TcpListener, deadline: Duration) -> Result<TcpStream, Error> {
    let mut ready = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = libc::c_int::try_from(deadline.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let rc = unsafe { libc::poll(&mut ready, 1, timeout_ms) };
    match rc {
        1.. => listener
            .accept()
            .map(|(stream, _)| stream)
            .map_err(Error::io("the server's accept failed")),
        0 => Err(Error::io(format!(
            "no client connected within {}",
            lab_kit::narrate::human_duration(deadline)
        ))(io::ErrorKind::TimedOut.into())),
        _ => Err(Error::io("poll on the listener failed")(
            io::Error::last_os_error(),
        )),
    }
}

/// The clients: connect and send every request first, then read every reply, timing each.
fn send_requests_back_to_back(addr: SocketAddr) -> Result<Vec<ClientWait>, Error> {
    let start = Instant::now();
    let mut pending = Vec::with_capacity(CLIENTS);
    for number in 1..=CLIENTS {
        let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).map_err(Error::io(
            format!("client {number} could not connect to {addr}"),
        ))?;
        stream
            .set_read_timeout(Some(DEADLINE))
            .map_err(Error::io("could not set the client's read timeout"))?;
        // Timed *before* the write: the server cannot read a request before it is written,
        // so "reply time - this time" is never less than the server's sleep.
        let sent_at = start.elapsed();
        stream
            .write_all(format!("request from client {number}\n").as_bytes())
            .map_err(Error::io(format!("client {number} could not send")))?;
        pending.push((stream, sent_at));
    }
    let mut waits = Vec::with_capacity(CLIENTS);
    for (number, (stream, sent_at)) in pending.into_iter().enumerate() {
        let mut reply = String::new();
        BufReader::new(&stream)
            .read_line(&mut reply)
            .map_err(Error::io(format!("client {} got no reply", number + 1)))?;
        let replied_at = start.elapsed();
        waits.push(ClientWait {
            sent_at_us: lab_kit::narrate::saturating_micros(sent_at),
            replied_at_us: lab_kit::narrate::saturating_micros(replied_at),
            waited_us: lab_kit::narrate::saturating_micros(replied_at.saturating_sub(sent_at)),
            reply: reply.trim_end().to_string(),
        });
    }
    Ok(waits)
}
