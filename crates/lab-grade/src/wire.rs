//! The grader's end of a connection: TLS (rustls) or plaintext, with a deadline on every wait.
//!
//! The grader plays the other half of the chat, as the client of a student's server or the
//! server of a student's client. Everything it does on the wire is deliberate test input:
//! each message is one `write` (with `TCP_NODELAY`, so one write leaves as one TCP segment,
//! and over TLS as one TLS record), and every read waits at most until a deadline. Nothing
//! the student's program does (silence, garbage, a reset) can make it wait longer.
//!
//! rustls is driven by hand here (`read_tls`, `process_new_packets`, `reader`) rather than
//! through `rustls::Stream`, so that the grader can tell apart the ways a session ends: a
//! clean `close_notify`, a TCP close without it (truncation), a reset, a TLS alert.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::errors::ErrorFacts;
use lab_kit::tls::SessionFacts;

/// How a connection ended, as seen by the grader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed properly: TCP FIN, after a TLS `close_notify` when TLS was used.
    Closed,
    /// TLS only: the TCP connection closed without a `close_notify` first.
    Truncated,
    /// The connection failed (reset, …): the error's kind and errno.
    Failed(ErrorFacts),
    /// The TLS layer failed: an alert from the peer or a corrupt record.
    Tls(String),
    /// The program sent more than [`RECEIVE_LIMIT`] bytes: the grader kept the first
    /// ones and stopped reading (a flood cannot exhaust the grader's memory).
    Flooded,
}

/// How much the grader keeps of what a program sends on one connection: a chat or echo
/// check needs a few KiB (the largest, the echo burst, 256 KiB).
pub const RECEIVE_LIMIT: usize = 1 << 20;

impl Ending {
    /// In words, for a report.
    pub fn describe(&self) -> String {
        match self {
            Ending::Closed => "the program closed the connection".into(),
            Ending::Truncated => {
                "the program closed the TCP connection without a TLS close_notify".into()
            }
            Ending::Failed(facts) => format!("the connection failed: {}", facts.summary()),
            Ending::Tls(error) => format!("the TLS session failed: {error}"),
            Ending::Flooded => format!(
                "the program flooded the connection: it sent more than {} MiB, far more than any check asks for, and the grader stopped reading",
                RECEIVE_LIMIT >> 20
            ),
        }
    }
}

/// How a wait for data ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// What was waited for arrived.
    Arrived,
    /// The connection ended first.
    Ended(Ending),
    /// The deadline passed.
    TimedOut,
}

/// Why a TLS handshake did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The peer sent nothing (or not enough) before the deadline.
    TimedOut,
    /// The peer closed the connection in the middle of the handshake.
    PeerClosed,
    /// rustls rejected the handshake, or the peer sent an alert.
    Tls(String),
    /// The socket failed.
    Io(ErrorFacts),
}

impl HandshakeFailure {
    pub fn describe(&self) -> String {
        match self {
            HandshakeFailure::TimedOut => "no TLS answer before the deadline".into(),
            HandshakeFailure::PeerClosed => {
                "the program closed the connection during the handshake".into()
            }
            HandshakeFailure::Tls(error) => format!("TLS error: {error}"),
            HandshakeFailure::Io(facts) => format!("socket error: {}", facts.summary()),
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A fresh random token: 8 hex digits from the kernel's random source.
///
/// Every line the grader sends carries one (`apple-3f9a1c2e`), so a program cannot print
/// or send the expected line before it received it: output that forges the grader's
/// lines at startup never matches, and only output after the send can count.
pub fn fresh_token() -> String {
    let mut bytes = [0u8; 4];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into our buffer.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != 4 {
        // Not reachable on Linux ≥ 3.17; still never a fixed value.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        bytes = (nanos ^ std::process::id().rotate_left(16)).to_ne_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `word` with a fresh token: `apple` → `apple-3f9a1c2e`.
pub fn tokened(word: &str) -> String {
    format!("{word}-{}", fresh_token())
}

/// Time left before `deadline`, or `None` once it has passed.
/// The time left before `deadline`, if any.
///
/// Linux counts a socket timeout (`SO_RCVTIMEO`) in timer ticks, so a read can time out up
/// to a tick *before* the deadline it was given. Every wait below therefore asks again
/// whether time is really left before it reports a timeout.
fn left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

/// The grader's side of one connection.
#[derive(Debug)]
pub struct GraderConn {
    tcp: TcpStream,
    tls: Option<rustls::Connection>,
    received: Vec<u8>,
    ended: Option<Ending>,
}

impl GraderConn {
    /// A plaintext connection.
    pub fn plain(tcp: TcpStream) -> Self {
        let _ = tcp.set_nodelay(true);
        GraderConn {
            tcp,
            tls: None,
            received: Vec::new(),
            ended: None,
        }
    }

    /// Connects TLS as a client over `tcp`, verifying the server for `server_name`.
    pub fn tls_client(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        deadline: Instant,
    ) -> Result<(Self, SessionFacts), HandshakeFailure> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| HandshakeFailure::Tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| HandshakeFailure::Tls(e.to_string()))?;
        Self::handshake(tcp, conn.into(), deadline)
    }

    /// Accepts TLS as a server over `tcp`.
    pub fn tls_server(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        deadline: Instant,
    ) -> Result<(Self, SessionFacts), HandshakeFailure> {
        let conn = rustls::ServerConnection::new(config)
            .map_err(|e| HandshakeFailure::Tls(e.to_string()))?;
        Self::handshake(tcp, conn.into(), deadline)
    }

    fn handshake(
        mut tcp: TcpStream,
        mut conn: rustls::Connection,
        deadline: Instant,
    ) -> Result<(Self, SessionFacts), HandshakeFailure> {
        let _ = tcp.set_nodelay(true);
        let io_failure = |e: io::Error| {
            if is_timeout(&e) {
                HandshakeFailure::TimedOut
            } else {
                HandshakeFailure::Io(ErrorFacts::of(&e))
            }
        };
        loop {
            while conn.wants_write() {
                let time = left(deadline).ok_or(HandshakeFailure::TimedOut)?;
                let _ = tcp.set_write_timeout(Some(time));
                conn.write_tls(&mut tcp).map_err(io_failure)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            let time = left(deadline).ok_or(HandshakeFailure::TimedOut)?;
            let _ = tcp.set_read_timeout(Some(time));
            match conn.read_tls(&mut tcp) {
                Ok(0) => return Err(HandshakeFailure::PeerClosed),
                Ok(_) => {}
                // Timed out a tick early: the loop checks the deadline again.
                Err(e) if is_timeout(&e) && left(deadline).is_some() => continue,
                Err(e) => return Err(io_failure(e)),
            }
            if let Err(error) = conn.process_new_packets() {
                // Tell the peer why (rustls queued an alert), then give up.
                let _ = conn.write_tls(&mut tcp);
                return Err(HandshakeFailure::Tls(error.to_string()));
            }
        }
        let facts = SessionFacts::of(&conn);
        Ok((
            GraderConn {
                tcp,
                tls: Some(conn),
                received: Vec::new(),
                ended: None,
            },
            facts,
        ))
    }

    /// Sends `bytes` as one write: one TLS record, one TCP segment (for small messages).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let _ = self.tcp.set_write_timeout(Some(Duration::from_secs(5)));
        match self.tls.as_mut() {
            Some(conn) => {
                conn.writer().write_all(bytes)?;
                while conn.wants_write() {
                    conn.write_tls(&mut self.tcp)?;
                }
                Ok(())
            }
            None => self.tcp.write_all(bytes),
        }
    }

    /// Sends one line in two segments with a deliberate `gap` between them.
    ///
    /// The gap is part of the test input, not a wait for readiness: it gives the first
    /// segment time to be delivered and read on its own, so that a program which treats
    /// one `recv()` as one message sees half a line, exactly as it would on a slow network.
    pub fn send_split(&mut self, first: &[u8], second: &[u8], gap: Duration) -> io::Result<()> {
        self.send(first)?;
        thread::sleep(gap);
        self.send(second)
    }

    /// The TCP connection underneath (for a handshake that is itself the test).
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// A second handle on the TCP connection (plaintext: a writer thread beside a reader).
    pub fn try_clone_tcp(&self) -> io::Result<TcpStream> {
        self.tcp.try_clone()
    }

    /// Everything received so far.
    pub fn received_bytes(&self) -> &[u8] {
        &self.received
    }

    /// How the connection ended, if it has.
    pub fn ended(&self) -> Option<&Ending> {
        self.ended.as_ref()
    }

    /// Forgets what was received so far: on a connection shared by several checks, each
    /// judges only what arrives after it began.
    pub fn forget_received(&mut self) {
        self.received.clear();
    }

    /// Everything received so far, as text (invalid UTF-8 replaced).
    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Reads once more (waiting at most until `deadline`) and appends to what was received.
    fn read_more(&mut self, deadline: Instant) -> Waited {
        if let Some(ending) = &self.ended {
            return Waited::Ended(ending.clone());
        }
        let mut buf = [0u8; 16 * 1024];
        let outcome = match self.tls.as_mut() {
            None => loop {
                let Some(time) = left(deadline) else {
                    return Waited::TimedOut;
                };
                let _ = self.tcp.set_read_timeout(Some(time));
                match self.tcp.read(&mut buf) {
                    Ok(0) => break Err(Ending::Closed),
                    Ok(n) => break Ok(buf[..n].to_vec()),
                    // Maybe a tick early: the top of the loop checks the deadline again.
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => break Err(Ending::Failed(ErrorFacts::of(&e))),
                }
            },
            Some(conn) => loop {
                match conn.reader().read(&mut buf) {
                    Ok(0) => {
                        // The peer said goodbye with close_notify: answer with ours, as a
                        // well-behaved peer does (a program waiting for it can then finish).
                        conn.send_close_notify();
                        while conn.wants_write() {
                            if conn.write_tls(&mut self.tcp).is_err() {
                                break;
                            }
                        }
                        break Err(Ending::Closed);
                    }
                    Ok(n) => break Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        break Err(Ending::Truncated);
                    }
                    Err(e) => break Err(Ending::Failed(ErrorFacts::of(&e))),
                }
                let Some(time) = left(deadline) else {
                    return Waited::TimedOut;
                };
                let _ = self.tcp.set_read_timeout(Some(time));
                match conn.read_tls(&mut self.tcp) {
                    Ok(_) => {}
                    // Maybe a tick early: the top of the loop checks the deadline again.
                    Err(e) if is_timeout(&e) => continue,
                    Err(e) => break Err(Ending::Failed(ErrorFacts::of(&e))),
                }
                if let Err(error) = conn.process_new_packets() {
                    let _ = conn.write_tls(&mut self.tcp);
                    break Err(Ending::Tls(error.to_string()));
                }
                while conn.wants_write() {
                    if conn.write_tls(&mut self.tcp).is_err() {
                        break;
                    }
                }
            },
        };
        match outcome {
            Ok(bytes) if self.received.len() + bytes.len() > RECEIVE_LIMIT => {
                let room = RECEIVE_LIMIT - self.received.len();
                self.received.extend_from_slice(&bytes[..room]);
                self.ended = Some(Ending::Flooded);
                Waited::Ended(Ending::Flooded)
            }
            Ok(bytes) => {
                self.received.extend_from_slice(&bytes);
                Waited::Arrived
            }
            Err(ending) => {
                self.ended = Some(ending.clone());
                Waited::Ended(ending)
            }
        }
    }

    /// Waits until the text received so far satisfies `wanted`, the connection ends, or
    /// `deadline` passes.
    pub fn wait_until(
        &mut self,
        deadline: Instant,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Waited {
        loop {
            if wanted(&self.received_text()) {
                return Waited::Arrived;
            }
            match self.read_more(deadline) {
                Waited::Arrived => {}
                other => return other,
            }
        }
    }

    /// Waits until `text` has been received.
    pub fn wait_for_text(&mut self, text: &str, deadline: Instant) -> Waited {
        self.wait_until(deadline, |received| received.contains(text))
    }

    /// Waits for the peer to end the connection; data arriving meanwhile is kept.
    pub fn wait_for_end(&mut self, deadline: Instant) -> Option<Ending> {
        loop {
            match self.read_more(deadline) {
                Waited::Arrived => {}
                Waited::Ended(ending) => return Some(ending),
                Waited::TimedOut => return None,
            }
        }
    }

    /// Shuts the connection down in both directions (a blocked writer on a clone wakes up).
    pub fn shutdown_both(&self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }

    /// Ends politely: a TLS `close_notify` (when TLS is used), then a TCP FIN.
    pub fn close(mut self) {
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
            let _ = self.tcp.set_write_timeout(Some(Duration::from_secs(1)));
            while conn.wants_write() {
                if conn.write_tls(&mut self.tcp).is_err() {
                    break;
                }
            }
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }

    /// Vanishes: no goodbye, no `close_notify`, and a TCP reset (RST) instead of a FIN,
    /// as when the peer's program is killed or its machine loses the network.
    pub fn vanish(self) {
        // SO_LINGER with a zero timeout makes close() send RST and drop unsent data.
        let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::pki::LabPki;
    use lab_kit::tls::{Versions, client_config, server_config};
    use std::net::TcpListener;

    #[test]
    fn a_tls_pair_exchanges_lines_and_sees_a_clean_close() {
        let pki = LabPki::generate("grader").unwrap();
        let server = Arc::new(
            server_config(
                &pki.server.cert_pem,
                &pki.server.key_pem,
                None,
                Versions::Tls12AndNewer,
            )
            .unwrap(),
        );
        let client =
            Arc::new(client_config(pki.ca.cert_pem(), None, Versions::Tls12AndNewer).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let server_side = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let (mut conn, facts) = GraderConn::tls_server(tcp, server, deadline).unwrap();
            assert_eq!(conn.wait_for_text("b\n", deadline), Waited::Arrived);
            conn.send(b"pong\n").unwrap();
            conn.close();
            facts
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let (mut conn, facts) = GraderConn::tls_client(tcp, client, "localhost", deadline).unwrap();
        conn.send_split(b"a\n", b"b\n", Duration::from_millis(1))
            .unwrap();
        assert_eq!(conn.wait_for_text("pong\n", deadline), Waited::Arrived);
        assert_eq!(conn.wait_for_end(deadline), Some(Ending::Closed));
        assert!(facts.protocol.starts_with("TLSv1_"));
        assert_eq!(server_side.join().unwrap().peer_subject, None);
    }

    #[test]
    fn a_silent_peer_times_out_at_the_deadline_and_a_wrong_ca_is_refused() {
        let pki = LabPki::generate("grader").unwrap();
        let other = LabPki::generate("other").unwrap();
        let client =
            Arc::new(client_config(pki.ca.cert_pem(), None, Versions::Tls12AndNewer).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let tcp = TcpStream::connect(addr).unwrap();
        let silent = GraderConn::tls_client(
            tcp,
            Arc::clone(&client),
            "localhost",
            started + Duration::from_millis(200),
        );
        assert_eq!(silent.unwrap_err(), HandshakeFailure::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));

        let impostor = Arc::new(
            server_config(
                &other.server.cert_pem,
                &other.server.key_pem,
                None,
                Versions::Tls12AndNewer,
            )
            .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let server_side = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap(); // the silent one
            drop(tcp);
            let (tcp, _) = listener.accept().unwrap();
            GraderConn::tls_server(tcp, impostor, deadline).map(|_| ())
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let refused = GraderConn::tls_client(tcp, client, "localhost", deadline).unwrap_err();
        assert!(
            matches!(refused, HandshakeFailure::Tls(ref e) if e.contains("invalid peer certificate")),
            "{refused:?}"
        );
        assert!(matches!(
            server_side.join().unwrap(),
            Err(HandshakeFailure::Tls(_))
        ));
    }

    #[test]
    fn a_flood_is_cut_at_the_limit_and_ends_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let flooder = thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            // Bounded: 4 MiB at most, and it stops when the grader stops reading.
            for _ in 0..64 {
                if tcp.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut conn = GraderConn::plain(TcpStream::connect(addr).unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let waited = conn.wait_for_text("never sent", deadline);
        assert_eq!(waited, Waited::Ended(Ending::Flooded));
        assert_eq!(conn.received_bytes().len(), RECEIVE_LIMIT);
        assert!(Ending::Flooded.describe().contains("flooded"));
        conn.shutdown_both();
        drop(conn);
        flooder.join().unwrap();
    }
}
