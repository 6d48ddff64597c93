//! The chapter's experiments, each a function that really does it (threads, real sockets
//! on 127.0.0.1) and returns a plain struct of what happened; nothing here prints.
//! Narration is in [`super::narrate`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use lab_capture::{Wire, Wiretap};
use lab_kit::pki::{LabCa, LeafSpec, PkiFiles};
use lab_kit::tls::{self, Versions};
use serde::Serialize;

use crate::Error;
use crate::client::{self, ClientOptions};
use crate::eavesdrop::{Direction, Relay, tls_records};
use crate::server::{self, ServerOptions};
use crate::session::{ChatEvent, EventSink, Limits, LocalInput, SessionReport};
use crate::transport::Security;

/// Generous: each step normally takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

/// The secret both chats carry, to look for in the captures.
pub const SECRET: &str = "the exam password is hunter2";

/// Events collected from an in-process server or client, with a way to wait for one.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<Vec<ChatEvent>>,
    changed: Condvar,
}

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Vec<ChatEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sink that appends to this log.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let log = Arc::clone(self);
        Arc::new(move |event| {
            log.lock().push(event);
            log.changed.notify_all();
        })
    }

    /// Waits until at least `count` events satisfy `wanted`.
    pub fn wait_count(&self, count: usize, wanted: impl Fn(&ChatEvent) -> bool) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut events = self.lock();
        loop {
            if events.iter().filter(|e| wanted(e)).count() >= count {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            events = self
                .changed
                .wait_timeout(events, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for the first event that satisfies `wanted`.
    pub fn wait_for(&self, wanted: impl Fn(&ChatEvent) -> bool) -> Option<ChatEvent> {
        if !self.wait_count(1, &wanted) {
            return None;
        }
        self.lock().iter().find(|e| wanted(e)).cloned()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<ChatEvent> {
        self.lock().clone()
    }

    /// Every event so far, as the program would have printed it.
    pub fn lines(&self) -> Vec<String> {
        self.lock().iter().map(ToString::to_string).collect()
    }
}

fn step_failed(what: &str, log: &EventLog) -> Error {
    Error::Demo(format!(
        "{what} did not happen within {PATIENCE:?}; events so far: {:?}",
        log.lines()
    ))
}

/// A server running in a thread of this process (`--once`).
struct InProcessServer {
    addr: SocketAddr,
    input: Sender<LocalInput>,
    log: Arc<EventLog>,
    thread: thread::JoinHandle<Result<(), Error>>,
}

fn start_server(tls: Option<Arc<rustls::ServerConfig>>) -> Result<InProcessServer, Error> {
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let (input, input_rx) = mpsc::channel();
    let log = Arc::new(EventLog::default());
    let sink = log.sink();
    let options = ServerOptions {
        tls,
        limits: Limits::default(),
        once: true,
        admission: Default::default(),
    };
    let thread = thread::Builder::new()
        .name("demo-server".into())
        .spawn(move || server::serve(listener, options, input_rx, sink))?;
    Ok(InProcessServer {
        addr,
        input,
        log,
        thread,
    })
}

impl InProcessServer {
    fn finish(self) -> Result<Vec<String>, Error> {
        let InProcessServer {
            input, log, thread, ..
        } = self;
        let _ = input.send(LocalInput::EndOfInput);
        drop(input);
        match thread.join() {
            Ok(result) => result?,
            Err(_) => return Err(Error::Demo("the server thread panicked".into())),
        }
        Ok(log.lines())
    }
}

/// A client running in a thread of this process, connected to `addr` but verifying the
/// name `localhost` (so that it can go through a relay).
struct InProcessClient {
    input: Sender<LocalInput>,
    log: Arc<EventLog>,
    thread: thread::JoinHandle<Result<SessionReport, Error>>,
}

fn start_client(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<InProcessClient, Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let (input, input_rx) = mpsc::channel();
    let log = Arc::new(EventLog::default());
    let sink = log.sink();
    let options = ClientOptions {
        target: format!("localhost:{}", addr.port()),
        tls,
        limits: Limits::default(),
    };
    let thread = thread::Builder::new()
        .name("demo-client".into())
        .spawn(move || client::run_client(tcp, &options, input_rx, sink))?;
    Ok(InProcessClient { input, log, thread })
}

impl InProcessClient {
    fn finish(self) -> Result<(Result<SessionReport, Error>, Vec<String>), Error> {
        let InProcessClient { input, log, thread } = self;
        drop(input);
        let result = thread
            .join()
            .map_err(|_| Error::Demo("the client thread panicked".into()))?;
        Ok((result, log.lines()))
    }
}

/// A server, a relay in front of it, and a client that connects through the relay (it
/// still verifies the name `localhost`, so under TLS the relay cannot pass for the server):
/// the setting of the eavesdropping, tampering and truncation steps. Returned in the order
/// they were started; dropped in reverse, the client first.
fn chat_through_relay(
    files: &PkiFiles,
    plaintext: bool,
) -> Result<(InProcessServer, Relay, InProcessClient), Error> {
    let tls = lab_tls(files)?;
    let (server_tls, client_tls) = if plaintext {
        (None, None)
    } else {
        (Some(tls.server), Some(tls.client))
    };
    let server = start_server(server_tls)?;
    let relay = Relay::start(TcpListener::bind("127.0.0.1:0")?, server.addr, None)?;
    let client = start_client(relay.addr(), client_tls)?;
    Ok((server, relay, client))
}

fn is_session(event: &ChatEvent) -> bool {
    matches!(event, ChatEvent::SessionStarted { .. })
}

fn is_line(event: &ChatEvent) -> bool {
    matches!(event, ChatEvent::PeerLine { .. })
}

/// TLS configurations made from the lab's files.
struct LabTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn lab_tls(files: &PkiFiles) -> Result<LabTls, Error> {
    Ok(LabTls {
        server: crate::keys::server_config(files, false)?,
        client: crate::keys::client_config(&files.ca_cert, None)?,
    })
}

// ---------------------------------------------------------------------------------------
// 1. Keys

/// The files `keygen` made.
#[derive(Debug, Clone, Serialize)]
pub struct KeysReport {
    pub experiment: &'static str,
    pub files: Vec<KeyFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyFile {
    pub name: String,
    pub mode: String,
    pub subject: Option<String>,
}

/// Makes the lab's certificates in `dir`, as `lab-chat keygen --out DIR` does.
pub fn make_keys(dir: &Path) -> Result<(PkiFiles, KeysReport), Error> {
    use std::os::unix::fs::PermissionsExt;
    let files = crate::keys::keygen(dir, false)?;
    let mut listed = Vec::new();
    for path in crate::keys::every_file(&files) {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        let subject = std::fs::read_to_string(path)
            .ok()
            .and_then(|pem| tls::certs_from_pem(&pem, "a certificate").ok())
            .and_then(|certs| certs.first().and_then(tls::subject_of));
        listed.push(KeyFile {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            mode: format!("{mode:04o}"),
            subject,
        });
    }
    Ok((
        files,
        KeysReport {
            experiment: "keys",
            files: listed,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// 2. A conversation in both directions at once

/// What each side saw of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationReport {
    pub experiment: &'static str,
    pub security: Security,
    /// The client showed the server's first line although its user had typed nothing.
    pub server_spoke_first: bool,
    /// Lines each side sent at the same moment, and how many the other side received.
    pub sent_at_once: usize,
    pub client_received: usize,
    pub server_received: usize,
    pub server_output: Vec<String>,
    pub client_output: Vec<String>,
    /// The session's packets, when watched (`packets` with their TLS records, `capture`),
    /// with the moments the users typed marked among them ([`conversation_marks`]).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The moments the conversation marks among its packets when watched.
pub mod conversation_marks {
    pub const SERVER_TYPED: &str = "server: the user typed a line";
    pub const CLIENT_TYPED: &str = "client: the user typed a line";
    pub const CLIENT_EXIT: &str = "client: the user typed Exit";
}

/// Runs a TLS chat in this process: the server speaks first, then both sides send three
/// lines at the same moment, then the client says `Exit`.
pub fn conversation(files: &PkiFiles) -> Result<ConversationReport, Error> {
    conversation_watched(files, &Wiretap::off())
}

/// Like [`conversation`], with the session's packets captured by `tap`, the client's TLS
/// secrets in a key log beside the pcap, and the users' lines marked among the packets.
pub fn conversation_watched(files: &PkiFiles, tap: &Wiretap) -> Result<ConversationReport, Error> {
    use conversation_marks::{CLIENT_EXIT, CLIENT_TYPED, SERVER_TYPED};
    let tls = lab_tls(files)?;
    let server = start_server(Some(tls.server))?;
    let mut watch = tap.watch("conversation", &[server.addr.port()]);
    let client_tls = match watch.key_log() {
        Some(key_log) => {
            let mut config = (*tls.client).clone();
            config.key_log = key_log;
            Arc::new(config)
        }
        None => tls.client,
    };
    let client = start_client(server.addr, Some(client_tls))?;
    if !client.log.wait_count(1, is_session) || !server.log.wait_count(1, is_session) {
        return Err(step_failed("the TLS session", &client.log));
    }
    let security = match client.log.wait_for(is_session) {
        Some(ChatEvent::SessionStarted { security, .. }) => security,
        _ => Security::Plaintext,
    };
    // What each user typed, in order: the endpoints' own account of the records to come.
    let mut server_typed = vec!["Hi! The server speaks first.".to_string()];
    let mut client_typed = Vec::new();
    watch.mark(SERVER_TYPED);
    let _ = server.input.send(LocalInput::Line(server_typed[0].clone()));
    let server_spoke_first = client.log.wait_count(1, is_line);
    // Both users type at the same moment: neither waits for the other's line.
    const AT_ONCE: usize = 3;
    for i in 1..=AT_ONCE {
        let (server_line, client_line) = (
            format!("server line {i} of {AT_ONCE}"),
            format!("client line {i} of {AT_ONCE}"),
        );
        server_typed.push(server_line.clone());
        client_typed.push(client_line.clone());
        watch.mark(SERVER_TYPED);
        watch.mark(CLIENT_TYPED);
        let _ = server.input.send(LocalInput::Line(server_line));
        let _ = client.input.send(LocalInput::Line(client_line));
    }
    let client_done = client.log.wait_count(1 + AT_ONCE, is_line);
    let server_done = server.log.wait_count(AT_ONCE, is_line);
    if !client_done || !server_done {
        return Err(step_failed("the simultaneous lines", &server.log));
    }
    watch.mark(CLIENT_EXIT);
    let _ = client.input.send(LocalInput::Exit);
    if server
        .log
        .wait_for(|e| matches!(e, ChatEvent::PeerLeft { .. }))
        .is_none()
    {
        return Err(step_failed("the client's goodbye", &server.log));
    }
    let (client_result, client_output) = client.finish()?;
    client_result?;
    let server_output = server.finish()?;
    let count = |lines: &[String]| lines.iter().filter(|l| l.starts_with("peer: ")).count();
    Ok(ConversationReport {
        experiment: "conversation",
        security,
        server_spoke_first,
        sent_at_once: AT_ONCE,
        // Minus the server's first line, counted above.
        client_received: count(&client_output).saturating_sub(1),
        server_received: count(&server_output),
        server_output,
        client_output,
        wire: watch.finish().map(|mut wire| {
            crate::on_the_wire::label_from_endpoints(&mut wire, &client_typed, &server_typed);
            wire
        }),
    })
}

// ---------------------------------------------------------------------------------------
// 3. The eavesdropper

/// What a relay in the middle captured of one chat.
#[derive(Debug, Clone, Serialize)]
pub struct EavesdropReport {
    pub experiment: &'static str,
    pub plaintext: bool,
    pub bytes_captured: usize,
    /// The secret line appears, byte for byte, in the capture.
    pub secret_seen: bool,
    /// The server's reply appears in the capture.
    pub reply_seen: bool,
    /// What the eavesdropper printed (plaintext: the chunks; TLS: the records).
    pub capture: Vec<String>,
    /// Did the chat itself work through the relay?
    pub delivered: bool,
}

/// A chat through an eavesdropping relay: the client sends [`SECRET`], the server replies.
pub fn eavesdrop(files: &PkiFiles, plaintext: bool) -> Result<EavesdropReport, Error> {
    let (server, relay, client) = chat_through_relay(files, plaintext)?;
    if !client.log.wait_count(1, is_session) {
        return Err(step_failed("the session through the relay", &client.log));
    }
    let _ = client.input.send(LocalInput::Line(SECRET.into()));
    let delivered_secret = server.log.wait_count(1, is_line);
    let _ = server
        .input
        .send(LocalInput::Line("noted, see you at 9".into()));
    let delivered_reply = client.log.wait_count(1, is_line);
    let _ = client.input.send(LocalInput::Exit);
    let _ = server
        .log
        .wait_for(|e| matches!(e, ChatEvent::PeerLeft { .. }));
    let (client_result, _) = client.finish()?;
    client_result?;
    server.finish()?;

    let upstream = relay.bytes(Direction::ClientToServer);
    let downstream = relay.bytes(Direction::ServerToClient);
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    let capture = if plaintext {
        relay.chunks().iter().map(|c| c.describe()).collect()
    } else {
        // The client's records, as an eavesdropper sees them: headers in the clear,
        // then ciphertext. Show the first few after the handshake's first flight.
        let records = tls_records(&upstream);
        records
            .iter()
            .filter(|r| r.content_type == "application_data")
            .zip(crate::eavesdrop::client_application_data_roles(&records))
            .take(3)
            .map(|(r, role)| {
                format!(
                    "client → server TLS {} record, {} bytes ({role}): header {}, ciphertext {} …",
                    r.content_type, r.length, r.header, r.body_preview
                )
            })
            .collect()
    };
    Ok(EavesdropReport {
        experiment: if plaintext {
            "eavesdrop_plaintext"
        } else {
            "eavesdrop_tls"
        },
        plaintext,
        bytes_captured: upstream.len() + downstream.len(),
        secret_seen: contains(&upstream, SECRET),
        reply_seen: contains(&downstream, "noted, see you at 9"),
        capture,
        delivered: delivered_secret && delivered_reply,
    })
}

// ---------------------------------------------------------------------------------------
// 4. The impostor

/// What happened when the client met a server with a certificate from another CA.
#[derive(Debug, Clone, Serialize)]
pub struct ImpostorReport {
    pub experiment: &'static str,
    /// The impostor's certificate subject (it claims to be `localhost` too).
    pub impostor_subject: Option<String>,
    pub refused: bool,
    /// The client's error, as it printed it.
    pub client_error: String,
    /// What the impostor saw: the client's alert.
    pub impostor_saw: String,
    /// Did any chat line reach the impostor?
    pub lines_leaked: usize,
    /// The attempt's packets, when watched (`packets`, `capture`).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// An impostor terminates TLS with its own CA's certificate for `localhost`; the client
/// (trusting only the lab CA) must refuse it.
pub fn impostor(files: &PkiFiles) -> Result<ImpostorReport, Error> {
    impostor_watched(files, &Wiretap::off())
}

/// Like [`impostor`], with the attempt's packets captured by `tap`.
pub fn impostor_watched(files: &PkiFiles, tap: &Wiretap) -> Result<ImpostorReport, Error> {
    let fake_ca = LabCa::generate("impostor CA")?;
    let fake = fake_ca.issue(&LeafSpec::lab_server())?;
    let impostor_subject = tls::certs_from_pem(&fake.cert_pem, "the impostor's certificate")?
        .first()
        .and_then(tls::subject_of);
    let impostor_config = Arc::new(tls::server_config(
        &fake.cert_pem,
        &fake.key_pem,
        None,
        Versions::Tls13Only,
    )?);
    let impostor = start_server(Some(impostor_config))?;
    let watch = tap.watch("impostor", &[impostor.addr.port()]);
    let client_config = crate::keys::client_config(&files.ca_cert, None)?;
    let client = start_client(impostor.addr, Some(client_config))?;
    let _ = client.input.send(LocalInput::Line(SECRET.into()));
    let (result, _) = client.finish()?;
    let (refused, client_error) = match result {
        Err(error) => (true, error.to_string()),
        Ok(_) => (false, "the client accepted the impostor".into()),
    };
    let _ = impostor
        .log
        .wait_for(|e| matches!(e, ChatEvent::HandshakeFailed { .. }));
    let impostor_log = impostor.log.events();
    let lines_leaked = impostor_log.iter().filter(|e| is_line(e)).count();
    let impostor_saw = impostor_log
        .iter()
        .find_map(|e| match e {
            ChatEvent::HandshakeFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "no handshake failure".into());
    impostor.finish()?;
    Ok(ImpostorReport {
        experiment: "impostor",
        impostor_subject,
        refused,
        client_error,
        impostor_saw,
        lines_leaked,
        wire: watch.finish(),
    })
}

// ---------------------------------------------------------------------------------------
// 5. Tampering

/// The line the client sends, and what the attacker turns it into.
pub const ORDER: &str = "transfer 10 euros to Bob";
pub const FORGED: &str = "transfer 99 euros to Eve";

/// What the server received after the relay changed the client's bytes in flight.
#[derive(Debug, Clone, Serialize)]
pub struct TamperReport {
    pub experiment: &'static str,
    pub plaintext: bool,
    pub sent: String,
    /// The server printed the attacker's version as if the client had said it.
    pub forgery_accepted: bool,
    /// The server noticed and refused the modified record.
    pub detected: bool,
    pub server_saw: String,
}

/// The relay rewrites the next client → server chunk: in plaintext it swaps the words; in
/// TLS it can only flip bits of ciphertext (it cannot read or re-encrypt), here the last.
pub fn tamper(files: &PkiFiles, plaintext: bool) -> Result<TamperReport, Error> {
    let (server, relay, client) = chat_through_relay(files, plaintext)?;
    if !client.log.wait_count(1, is_session) || !server.log.wait_count(1, is_session) {
        return Err(step_failed("the session through the relay", &client.log));
    }
    relay.tamper_next(
        Direction::ClientToServer,
        Box::new(|bytes: &mut Vec<u8>| {
            let (order, forged) = (ORDER.as_bytes(), FORGED.as_bytes());
            match bytes.windows(order.len()).position(|w| w == order) {
                Some(at) => bytes[at..at + order.len()].copy_from_slice(forged),
                None => {
                    if let Some(last) = bytes.last_mut() {
                        *last ^= 0x01;
                    }
                }
            }
        }),
    );
    let _ = client.input.send(LocalInput::Line(ORDER.into()));
    let server_saw = server
        .log
        .wait_for(|e| {
            matches!(
                e,
                ChatEvent::PeerLine { .. }
                    | ChatEvent::TlsFailed { .. }
                    | ChatEvent::Truncated { .. }
            )
        })
        .ok_or_else(|| step_failed("the tampered line", &server.log))?;
    let _ = client.input.send(LocalInput::Exit);
    let _ = server.log.wait_for(|e| {
        matches!(
            e,
            ChatEvent::PeerLeft { .. } | ChatEvent::TlsFailed { .. } | ChatEvent::Truncated { .. }
        )
    });
    let _ = client.finish()?;
    server.finish()?;
    Ok(TamperReport {
        experiment: if plaintext {
            "tamper_plaintext"
        } else {
            "tamper_tls"
        },
        plaintext,
        sent: ORDER.into(),
        forgery_accepted: matches!(&server_saw, ChatEvent::PeerLine { text } if text == FORGED),
        detected: matches!(server_saw, ChatEvent::TlsFailed { .. }),
        server_saw: server_saw.to_string(),
    })
}

// ---------------------------------------------------------------------------------------
// 6. Truncation

/// What the server concluded when the relay cut the connection.
#[derive(Debug, Clone, Serialize)]
pub struct TruncationReport {
    pub experiment: &'static str,
    pub plaintext: bool,
    /// The server reported a truncated session (not a normal goodbye).
    pub detected: bool,
    /// What the server printed about the end.
    pub server_saw: String,
    /// What the client printed about the end.
    pub client_saw: String,
    /// The session's end between the relay and the server, when watched (`packets`,
    /// `capture`): a bare FIN where a close_notify record should have come.
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The mark placed among the packets when the relay cuts the session.
pub const RELAY_CUTS: &str = "relay: cuts the connection (FIN, no close_notify)";

/// A chat through the relay, which then cuts the connection (a bare FIN to each side).
pub fn truncation(files: &PkiFiles, plaintext: bool) -> Result<TruncationReport, Error> {
    truncation_watched(files, plaintext, &Wiretap::off())
}

/// Like [`truncation`], with the packets between the relay and the server captured by
/// `tap` (from just after the relay connected) and the cut marked among them.
pub fn truncation_watched(
    files: &PkiFiles,
    plaintext: bool,
    tap: &Wiretap,
) -> Result<TruncationReport, Error> {
    let (server, relay, client) = chat_through_relay(files, plaintext)?;
    let mut watch = tap.watch(
        if plaintext {
            "truncation_plaintext"
        } else {
            "truncation_tls"
        },
        &[server.addr.port()],
    );
    let _ = client
        .input
        .send(LocalInput::Line("transfer 10 euros to Bob".into()));
    if !server.log.wait_count(1, is_line) {
        return Err(step_failed("the first line", &server.log));
    }
    watch.mark(RELAY_CUTS);
    relay.cut();
    let ended = |e: &ChatEvent| {
        matches!(
            e,
            ChatEvent::Truncated { .. } | ChatEvent::PeerLeft { .. } | ChatEvent::TlsFailed { .. }
        )
    };
    let server_end = server
        .log
        .wait_for(ended)
        .ok_or_else(|| step_failed("the end of the session", &server.log))?;
    let client_end = client
        .log
        .wait_for(ended)
        .ok_or_else(|| step_failed("the end of the session", &client.log))?;
    let _ = client.finish()?;
    server.finish()?;
    Ok(TruncationReport {
        experiment: if plaintext {
            "truncation_plaintext"
        } else {
            "truncation_tls"
        },
        plaintext,
        detected: matches!(server_end, ChatEvent::Truncated { .. }),
        server_saw: server_end.to_string(),
        client_saw: client_end.to_string(),
        wire: watch.finish(),
    })
}

// ---------------------------------------------------------------------------------------
// 7. Mutual TLS

/// What a server that requires client certificates saw.
#[derive(Debug, Clone, Serialize)]
pub struct MutualTlsReport {
    pub experiment: &'static str,
    /// The client certificate's subject, as the server printed it.
    pub client_subject: Option<String>,
    /// A client without a certificate was refused.
    pub anonymous_refused: bool,
    pub server_saw: String,
    pub anonymous_client_saw: String,
}

/// `--require-client-cert`: a client with the lab's client certificate is let in (and
/// named); one without is refused.
pub fn mutual_tls(files: &PkiFiles) -> Result<MutualTlsReport, Error> {
    let server_config = crate::keys::server_config(files, true)?;
    let with_identity = crate::keys::client_config(
        &files.ca_cert,
        Some((&files.client_cert, &files.client_key)),
    )?;
    let server = start_server(Some(Arc::clone(&server_config)))?;
    let client = start_client(server.addr, Some(with_identity))?;
    let client_subject = match server.log.wait_for(is_session) {
        Some(ChatEvent::SessionStarted {
            security: Security::Tls(facts),
            ..
        }) => facts.peer_subject,
        _ => return Err(step_failed("the mutual TLS session", &server.log)),
    };
    let _ = client.input.send(LocalInput::Exit);
    let _ = server
        .log
        .wait_for(|e| matches!(e, ChatEvent::PeerLeft { .. }));
    let _ = client.finish()?;
    server.finish()?;

    let anonymous = crate::keys::client_config(&files.ca_cert, None)?;
    let server = start_server(Some(server_config))?;
    let client = start_client(server.addr, Some(anonymous))?;
    let server_saw = server
        .log
        .wait_for(|e| matches!(e, ChatEvent::HandshakeFailed { .. }))
        .map(|e| e.to_string())
        .ok_or_else(|| step_failed("the refusal", &server.log))?;
    let anonymous_client_saw = client
        .log
        .wait_for(|e| matches!(e, ChatEvent::TlsFailed { .. }))
        .map(|e| e.to_string())
        .ok_or_else(|| step_failed("the refusal", &client.log))?;
    let _ = client.finish()?;
    server.finish()?;
    Ok(MutualTlsReport {
        experiment: "mutual_tls",
        client_subject,
        anonymous_refused: true,
        server_saw,
        anonymous_client_saw,
    })
}
