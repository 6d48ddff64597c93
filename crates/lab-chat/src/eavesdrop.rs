//! The eavesdropper: a relay in the middle that forwards every byte and keeps a copy.
//!
//! Anyone on the path between two programs (the café's Wi-Fi, a compromised router, a
//! colleague with `tcpdump` on a shared machine) sees exactly what this relay sees: the
//! bytes on the wire. With `--plaintext` that is the whole conversation, word for word.
//! With TLS it is a handshake and then records of ciphertext: the relay still learns
//! *that* two parties talk, when, and roughly how much (record lengths), but not what.
//!
//! The relay can also **change** bytes in flight ([`Relay::tamper_next`]): in plaintext the
//! receiver gets the attacker's words; under TLS the record's authentication tag no longer
//! matches and the receiver refuses it. And it can **cut** the connection, as an attacker could: it sends each side a
//! plain TCP FIN. A plaintext chat cannot tell that from the peer closing normally; TLS
//! can, because the peer's `close_notify` (an authenticated "I am done") never came.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use serde::Serialize;

/// Which way bytes were going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::ClientToServer => "client → server",
            Direction::ServerToClient => "server → client",
        })
    }
}

/// What one `read` on one side of the relay returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireChunk {
    pub direction: Direction,
    pub bytes: Vec<u8>,
}

impl WireChunk {
    /// One line describing the chunk: text if it is readable, else a hex preview.
    pub fn describe(&self) -> String {
        match std::str::from_utf8(&self.bytes) {
            Ok(text)
                if text
                    .chars()
                    .all(|c| !c.is_control() || c == '\n' || c == '\r') =>
            {
                format!("{} {:>5} bytes: {text:?}", self.direction, self.bytes.len())
            }
            _ => format!(
                "{} {:>5} bytes: {} …",
                self.direction,
                self.bytes.len(),
                hex(&self.bytes[..self.bytes.len().min(16)])
            ),
        }
    }
}

/// `17 03 03 00 22`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TLS record as the eavesdropper sees it: a 5-byte header in the clear, then ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsRecordView {
    pub content_type: &'static str,
    /// Length of the whole record, header included.
    pub length: usize,
    pub header: String,
    /// The first bytes after the header.
    pub body_preview: String,
}

/// Splits a byte stream into TLS records (the complete ones), read from their headers as
/// lab-capture reads them on the wire.
pub fn tls_records(stream: &[u8]) -> Vec<TlsRecordView> {
    lab_capture::tls::records(stream)
        .take_while(|record| record.is_complete())
        .map(|record| TlsRecordView {
            content_type: match record.content_type {
                20 => "change_cipher_spec",
                21 => "alert",
                22 => "handshake",
                23 => "application_data",
                _ => "unknown",
            },
            length: 5 + record.length,
            header: hex(&stream[record.offset..record.offset + 5]),
            body_preview: hex(&record.body[..record.body.len().min(8)]),
        })
        .collect()
}

/// What a client's `application_data` record carries, as far as an eavesdropper can tell.
///
/// In TLS 1.3 the client's only clear handshake record is its ClientHello; its last
/// handshake message, **Finished**, travels encrypted, disguised as `application_data`
/// (RFC 8446, 5.2). So the first such record is the handshake's end, not a chat line; only
/// the records after it carry the conversation (and the closing `close_notify` alert, equally
/// disguised). In TLS 1.2 the client sends more handshake records in the clear, its Finished
/// among them, and every `application_data` record is data.
pub fn client_application_data_roles(records: &[TlsRecordView]) -> Vec<&'static str> {
    let tls13 = records
        .iter()
        .filter(|r| r.content_type == "handshake")
        .count()
        == 1;
    records
        .iter()
        .filter(|r| r.content_type == "application_data")
        .enumerate()
        .map(|(i, _)| {
            if tls13 && i == 0 {
                "the client's encrypted handshake Finished, not a chat line"
            } else {
                "data: a chat line or the closing alert; only its length shows"
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct RelayState {
    chunks: Vec<WireChunk>,
    /// Both sockets of each relayed connection still open, to cut them; a connection
    /// leaves the list when both its pumps have ended (or a long-running relay would keep
    /// two descriptors per finished connection until it runs out).
    sockets: Vec<RelayedConnection>,
    next_id: u64,
}

#[derive(Debug)]
struct RelayedConnection {
    id: u64,
    client: TcpStream,
    server: TcpStream,
}

/// What a running relay shares with its threads.
struct Shared {
    state: Mutex<RelayState>,
    /// A change to make to the next chunk going one way (the attacker *modifies*).
    tamper: Mutex<Option<(Direction, Tamper)>>,
    cut: AtomicBool,
    stopping: AtomicBool,
    observer: Option<Observer>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, RelayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change an attacker makes to bytes in flight.
pub type Tamper = Box<dyn FnOnce(&mut Vec<u8>) + Send>;

/// Called with each chunk as it crosses (the CLI prints it).
pub type Observer = Arc<dyn Fn(&WireChunk) + Send + Sync>;

/// A running relay: `listen` ↔ `upstream`, keeping a copy of every byte.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("addr", &self.addr).finish()
    }
}

impl Relay {
    /// Starts relaying connections accepted on `listener` to `upstream`.
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        observer: Option<Observer>,
    ) -> io::Result<Relay> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(RelayState::default()),
            tamper: Mutex::new(None),
            cut: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            observer,
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || accept_loop(listener, upstream, for_thread))?;
        Ok(Relay {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients should connect (instead of the real server).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every chunk seen so far, in order.
    pub fn chunks(&self) -> Vec<WireChunk> {
        self.shared.lock().chunks.clone()
    }

    /// All bytes seen going one way, concatenated.
    pub fn bytes(&self, direction: Direction) -> Vec<u8> {
        self.shared
            .lock()
            .chunks
            .iter()
            .filter(|c| c.direction == direction)
            .flat_map(|c| c.bytes.iter().copied())
            .collect()
    }

    /// Changes the next chunk going `direction` with `change` before forwarding it.
    pub fn tamper_next(&self, direction: Direction, change: Tamper) {
        *self
            .shared
            .tamper
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((direction, change));
    }

    /// Cuts every relayed connection: each side gets a bare TCP FIN, no TLS close_notify.
    /// Later bytes are read and thrown away (so that no side gets a reset instead).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for connection in &self.shared.lock().sockets {
            let _ = connection.client.shutdown(Shutdown::Write);
            let _ = connection.server.shutdown(Shutdown::Write);
        }
    }

    /// Runs the relay in the calling thread until the process ends (the CLI).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for connection in &self.shared.lock().sockets {
            let _ = connection.client.shutdown(Shutdown::Both);
            let _ = connection.server.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the blocking accept so the thread can see `stopping`.
            let _ = TcpStream::connect(crate::server::local_address_of(self.addr));
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for accepted in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok(client) => client,
            Err(_) => {
                // Out of file descriptors (EMFILE) fails again at once: pause, don't spin.
                thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let (Ok(client3), Ok(server3)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = {
            let mut state = shared.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.sockets.push(RelayedConnection {
                id,
                client: client3,
                server: server3,
            });
            id
        };
        // The last of the two pumps to end forgets the connection.
        let pumps_running = Arc::new(AtomicUsize::new(2));
        let up = (Arc::clone(&shared), Arc::clone(&pumps_running));
        let down = (Arc::clone(&shared), pumps_running);
        let spawned_up = thread::Builder::new()
            .name("relay-up".into())
            .spawn(move || {
                pump(client, server2, Direction::ClientToServer, &up.0);
                forget_when_last(&up.0, &up.1, id);
            });
        let spawned_down = thread::Builder::new()
            .name("relay-down".into())
            .spawn(move || {
                pump(server, client2, Direction::ServerToClient, &down.0);
                forget_when_last(&down.0, &down.1, id);
            });
        if spawned_up.is_err() || spawned_down.is_err() {
            // Without both pumps the connection cannot work: close it and forget it.
            let mut state = shared.lock();
            for connection in state.sockets.iter().filter(|c| c.id == id) {
                let _ = connection.client.shutdown(Shutdown::Both);
                let _ = connection.server.shutdown(Shutdown::Both);
            }
            state.sockets.retain(|c| c.id != id);
        }
    }
}

/// Called by each pump of connection `id` as it ends; the second one drops the relay's
/// copies of the connection's sockets.
fn forget_when_last(shared: &Shared, pumps_running: &AtomicUsize, id: u64) {
    if pumps_running.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.lock().sockets.retain(|c| c.id != id);
    }
}

/// Copies `from` → `to`, keeping a copy, until `from` ends.
fn pump(mut from: TcpStream, mut to: TcpStream, direction: Direction, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.cut.load(Ordering::SeqCst) {
            continue; // the attacker swallows whatever comes after the cut
        }
        let mut bytes = buf[..n].to_vec();
        {
            let mut tamper = shared.tamper.lock().unwrap_or_else(PoisonError::into_inner);
            if tamper
                .as_ref()
                .is_some_and(|(wanted, _)| *wanted == direction)
                && let Some((_, change)) = tamper.take()
            {
                change(&mut bytes);
            }
        }
        let chunk = WireChunk { direction, bytes };
        if let Some(observer) = &shared.observer {
            observer(&chunk);
        }
        let forwarded = chunk.bytes.clone();
        shared.lock().chunks.push(chunk);
        if to.write_all(&forwarded).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, body_len: u16) -> Vec<u8> {
        let mut bytes = vec![content_type, 3, 3];
        bytes.extend_from_slice(&body_len.to_be_bytes());
        bytes.resize(5 + usize::from(body_len), 0xab);
        bytes
    }

    #[test]
    fn in_tls_1_3_the_first_application_data_record_is_the_clients_finished() {
        // ClientHello, change_cipher_spec (compatibility), Finished (69 bytes with
        // SHA-384), a chat line, close_notify: as a TLS 1.3 client sends them.
        let stream = [
            record(22, 200),
            record(20, 1),
            record(23, 69),
            record(23, 46),
            record(23, 19),
        ]
        .concat();
        let roles = client_application_data_roles(&tls_records(&stream));
        assert_eq!(roles.len(), 3);
        assert!(roles[0].contains("Finished"), "{roles:?}");
        assert!(
            roles[1..].iter().all(|r| r.starts_with("data")),
            "{roles:?}"
        );
    }

    #[test]
    fn in_tls_1_2_every_application_data_record_is_data() {
        // ClientHello, ClientKeyExchange, change_cipher_spec, Finished: all before any data.
        let stream = [
            record(22, 200),
            record(22, 70),
            record(20, 1),
            record(22, 40),
            record(23, 46),
        ]
        .concat();
        let roles = client_application_data_roles(&tls_records(&stream));
        assert_eq!(
            roles,
            ["data: a chat line or the closing alert; only its length shows"]
        );
    }
}
