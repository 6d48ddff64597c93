//! The wire under a chat session: TLS 1.3 (rustls) or bare TCP, split for full duplex.
//!
//! # Why this needs a design at all
//! A chat is *full duplex*: the local user may type while a line from the peer is on its
//! way. With blocking sockets that means two threads, one blocked reading the network and
//! one blocked reading the keyboard. Plain TCP makes that easy (`TcpStream::try_clone`
//! gives the reader and the writer each a handle on the same socket). A TLS connection
//! is harder: it is *one* state machine (sequence numbers, keys, alerts) that both
//! directions update, and rustls has no ready-made way to split it.
//!
//! # The design used here
//! - The connection lives in a `Mutex<rustls::Connection>` shared by both threads.
//! - The **reader** blocks in `read` on its own clone of the raw socket *without holding
//!   the lock*; only when bytes have arrived does it lock, hand them to rustls
//!   (`read_tls`), decrypt (`process_new_packets`), and take the plaintext (`reader()`).
//!   Holding the lock across the blocking read would freeze the writer until the peer
//!   spoke: exactly the strict alternation this lab exists to avoid.
//! - The **writer** locks, encrypts (`writer().write_all`), collects the records
//!   (`write_tls`) and then writes them to the socket *after* releasing the connection
//!   lock, under a second lock (`wire`) taken before the first is released. That second
//!   lock keeps records in order on the wire (TLS records carry sequence numbers: two
//!   writers interleaving would be a fatal decryption error at the peer), and releasing
//!   the first lock means a writer blocked on a full socket buffer never stops our reader
//!   from draining the peer's data. So two peers that both send a lot cannot deadlock
//!   (`both_ends_can_send_megabytes_at_once_without_deadlock`). One narrow case remains:
//!   when decrypting makes rustls queue something to *send* (the answer to a peer's
//!   `KeyUpdate`, an alert), the reader takes the wire lock too, and waits while our
//!   writer is blocked on a full socket. A chat never triggers it (rustls updates keys by
//!   itself only after millions of records); a design with one event loop (mio) has no
//!   such case.
//! - No read timeouts, no polling: each thread sleeps in the kernel until its event
//!   happens, so a line is shown the moment it arrives (lab 4's round-trip figures apply).
//!
//! `mio` with one thread and non-blocking sockets (as in rustls's own examples) is the
//! other sound design; threads keep this program readable next to a student's.
//!
//! # Where bulk time goes: copies
//! Profiling a bulk transfer (`perf record`) shows that copying costs about as much as
//! AES-GCM itself: rustls 0.23's buffered API copies every record's plaintext into a
//! freshly allocated buffer on both sides (`CommonState::take_received_plaintext` when
//! receiving), and on some CPUs (AMD EPYC under KVM, here) glibc's `rep movsb` copy into a
//! destination that is not 64-byte aligned runs at a fraction of its usual speed. This
//! module keeps its own buffers (the socket reads, the encrypted records) for the whole
//! session instead of allocating per record. `rustls::unbuffered`, which decrypts in place
//! into a buffer the caller owns, would remove rustls's own copy too; it is a different
//! design of this module, not done yet (`docs/performance.md` has the figures).
//!
//! # How a session ends
//! [`WireReader::read`] returns `Ok(0)` only for a *clean* end: TLS `close_notify` (or, in
//! plaintext, TCP's FIN, which cannot tell "done" from "crashed"). A TLS peer that vanishes
//! without `close_notify` surfaces as `io::ErrorKind::UnexpectedEof`: a **truncated**
//! session, which could be an attacker cutting the conversation short.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lab_kit::tls::SessionFacts;
use rustls::pki_types::ServerName;

/// Why a TLS session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no handshake within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("{}", lab_kit::errors::ErrorFacts::of(.0).message)]
    Io(#[from] io::Error),
    #[error("the peer closed the connection during the handshake")]
    Closed,
}

/// How the two ends are protected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "security", rename_all = "snake_case")]
pub enum Security {
    /// TLS, with what was negotiated.
    Tls(SessionFacts),
    /// Bare TCP: anyone on the path reads and changes every byte.
    Plaintext,
}

struct TlsShared {
    conn: Mutex<rustls::Connection>,
    /// The socket handle used for writing; its lock also orders records on the wire.
    wire: Mutex<TcpStream>,
}

impl TlsShared {
    fn conn(&self) -> MutexGuard<'_, rustls::Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends whatever rustls has queued. Called with the connection locked; the wire lock is
    /// taken before the connection lock is released, so records stay in order.
    fn flush(&self, mut conn: MutexGuard<'_, rustls::Connection>) -> io::Result<()> {
        let mut records = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut records)?;
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut wire = self.wire.lock().unwrap_or_else(PoisonError::into_inner);
        drop(conn);
        wire.write_all(&records)
    }
}

/// An established connection, ready to be split into a reader and a writer.
#[derive(Debug)]
pub struct Established {
    pub reader: WireReader,
    pub writer: WireWriter,
    pub security: Security,
    pub peer: SocketAddr,
}

/// Plaintext over bare TCP.
pub fn plaintext(tcp: TcpStream) -> io::Result<Established> {
    let peer = tcp.peer_addr()?;
    let write_half = tcp.try_clone()?;
    Ok(Established {
        reader: WireReader {
            tcp,
            tls: None,
            raw: vec![0; 16 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        },
        writer: WireWriter {
            tcp: write_half,
            tls: None,
            records: Vec::new(),
        },
        security: Security::Plaintext,
        peer,
    })
}

/// Runs a TLS server handshake on `tcp`, giving up after `timeout`.
pub fn accept_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let conn = rustls::ServerConnection::new(config)?;
    handshake(tcp, conn.into(), timeout)
}

/// Runs a TLS client handshake on `tcp` for `server_name`, giving up after `timeout`.
pub fn connect_tls(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let conn = rustls::ClientConnection::new(config, server_name)?;
    handshake(tcp, conn.into(), timeout)
}

/// Drives the handshake with blocking I/O and a deadline for the *whole* handshake (a
/// per-read timeout would let a peer sending one byte a second hold us forever).
fn handshake(
    mut tcp: TcpStream,
    mut conn: rustls::Connection,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let deadline = Instant::now() + timeout;
    let peer = tcp.peer_addr()?;
    let result = (|| {
        while conn.is_handshaking() {
            while conn.wants_write() {
                conn.write_tls(&mut tcp)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HandshakeError::TimedOut(timeout));
            }
            tcp.set_read_timeout(Some(left))?;
            match conn.read_tls(&mut tcp) {
                Ok(0) => return Err(HandshakeError::Closed),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(HandshakeError::TimedOut(timeout));
                }
                Err(e) => return Err(e.into()),
            }
            conn.process_new_packets()?;
        }
        // Send our last handshake flight (the client's Finished) before any data.
        while conn.wants_write() {
            conn.write_tls(&mut tcp)?;
        }
        Ok(())
    })();
    if let Err(error) = result {
        // Tell the peer why (rustls queued an alert), but do not wait for it.
        let _ = tcp.set_write_timeout(Some(Duration::from_millis(200)));
        while conn.wants_write() {
            if conn.write_tls(&mut tcp).is_err() {
                break;
            }
        }
        let _ = tcp.shutdown(Shutdown::Both);
        return Err(error);
    }
    tcp.set_read_timeout(None)?;
    let security = Security::Tls(SessionFacts::of(&conn));
    let shared = Arc::new(TlsShared {
        conn: Mutex::new(conn),
        wire: Mutex::new(tcp.try_clone()?),
    });
    Ok(Established {
        reader: WireReader {
            tcp: tcp.try_clone()?,
            tls: Some(Arc::clone(&shared)),
            // Large enough for several records per read system call.
            raw: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        },
        writer: WireWriter {
            tcp,
            tls: Some(shared),
            records: Vec::new(),
        },
        security,
        peer,
    })
}

/// The receiving half: owned by the reader thread.
pub struct WireReader {
    tcp: TcpStream,
    tls: Option<Arc<TlsShared>>,
    /// Bytes read from the socket and not yet given to rustls.
    raw: Box<[u8]>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for WireReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireReader")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl WireReader {
    /// Blocks until some of the peer's plaintext arrives. `Ok(0)` is a clean end (TLS
    /// `close_notify`, or FIN in plaintext); `UnexpectedEof` is a truncated TLS session; a TLS
    /// protocol or decryption failure is `InvalidData`.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(shared) = self.tls.clone() else {
            return (&self.tcp).read(buf);
        };
        loop {
            let mut conn = shared.conn();
            // Hand rustls what the socket gave us (maybe only part: it stops when its
            // plaintext buffer is full, until we have taken some out).
            while self.start < self.end {
                let mut unread = &self.raw[self.start..self.end];
                match conn.read_tls(&mut unread) {
                    Ok(0) => {
                        // After close_notify rustls reads nothing more.
                        self.start = self.end;
                    }
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::Other => break, // buffer full
                    Err(e) => return Err(e),
                }
                if let Err(error) = conn.process_new_packets() {
                    // rustls queued an alert for the peer: send it, then fail.
                    let _ = shared.flush(conn);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
            let plaintext = conn.reader().read(buf);
            // Processing may have queued something to send (a key update, an alert).
            if conn.wants_write() {
                shared.flush(conn)?;
            } else {
                drop(conn);
            }
            match plaintext {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Nothing to hand out yet: sleep in the kernel until bytes arrive. The lock is
            // NOT held here, so the writer can send meanwhile.
            let n = (&self.tcp).read(&mut self.raw)?;
            if n == 0 {
                // TCP end of stream: let rustls decide whether it was clean.
                let mut conn = shared.conn();
                conn.read_tls(&mut io::empty())?;
                let _ = conn.process_new_packets();
                return conn.reader().read(buf);
            }
            self.start = 0;
            self.end = n;
        }
    }
}

/// The sending half: owned by the writing thread.
pub struct WireWriter {
    tcp: TcpStream,
    tls: Option<Arc<TlsShared>>,
    /// Encrypted records waiting to be written (kept to reuse its allocation).
    records: Vec<u8>,
}

impl std::fmt::Debug for WireWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireWriter")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl WireWriter {
    /// Sends `bytes` (encrypted, under TLS).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(shared) = &self.tls else {
            return (&self.tcp).write_all(bytes);
        };
        // Encrypt record by record (rustls buffers at most 64 KiB of unsent plaintext),
        // collecting the records, then write them with one system call per 256 KiB.
        for batch in bytes.chunks(256 * 1024) {
            let mut conn = shared.conn();
            let mut records = std::mem::take(&mut self.records);
            records.clear();
            for chunk in batch.chunks(16 * 1024) {
                conn.writer().write_all(chunk)?;
                while conn.wants_write() {
                    conn.write_tls(&mut records)?;
                }
            }
            let mut wire = shared.wire.lock().unwrap_or_else(PoisonError::into_inner);
            drop(conn);
            let written = wire.write_all(&records);
            self.records = records;
            written?;
        }
        Ok(())
    }

    /// Ends our direction cleanly: TLS `close_notify`, then TCP FIN. The peer can still send
    /// (its own `close_notify`), and our reader still receives it.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(shared) = &self.tls {
            let mut conn = shared.conn();
            conn.send_close_notify();
            shared.flush(conn)?;
        }
        self.tcp.shutdown(Shutdown::Write)
    }

    /// Stops both directions at once (wakes a reader blocked in `read` with end-of-stream).
    pub fn abort(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Hangs up without losing what we just sent: reads and discards what the peer still
    /// sends (up to `timeout`, at most 4 MiB) before closing. Closing a socket with unread
    /// data makes the kernel send a reset, and a reset can destroy our last line (an error
    /// notice, the busy notice) before the peer's program reads it.
    pub fn drain_then_abort(&self, timeout: Duration) {
        if let Ok(mut raw) = self.tcp.try_clone() {
            let deadline = Instant::now() + timeout;
            let mut buf = [0u8; 8192];
            let mut total = 0usize;
            while total < 4 << 20 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || raw.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match raw.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        }
        self.abort();
    }

    /// A handle that can [`abort`](Self::abort) from another thread.
    pub fn abort_handle(&self) -> io::Result<TcpStream> {
        self.tcp.try_clone()
    }

    /// Limits how long a write may block (a peer that stops reading).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }
}
