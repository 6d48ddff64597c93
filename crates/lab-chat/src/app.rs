//! The `lab-chat` program around the library: its command line ([`Cli`]), standard input
//! turned into the chat's [`LocalInput`]s (a line that is not UTF-8 is reported, not sent),
//! events printed as text or JSON lines, the `--name` sent first, and the rule that turns
//! the way a session ended into an exit code. Errors become one clear line and a non-zero
//! exit code. `main.rs` only parses the arguments and calls [`run`].

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use crate::client::{self, ClientOptions};
use crate::keys;
use crate::server::{self, ServerOptions};
use crate::session::{
    BUSY_NOTICE, ChatEvent, EventSink, Limits, LocalInput, PeerEnd, SessionEnd, SessionReport,
};
use crate::terminal::{self, LineEditor};
use crate::{Error, eavesdrop, framing};
use clap::{Args, Parser, Subcommand};
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;

#[derive(Debug, Parser)]
#[command(
    name = "lab-chat",
    version,
    about = "Lab 5: a secure chat (TLS 1.3, full duplex) and why each property matters.",
    after_help = "Examples:\n  \
        lab-chat keygen --out certs             # a lab CA, server and client certificates\n  \
        lab-chat server --certs certs           # terminal 1\n  \
        lab-chat client --ca certs/ca.pem       # terminal 2; type lines, `Exit` to leave\n  \
        lab-chat server --certs certs --require-client-cert\n  \
        lab-chat client --ca certs/ca.pem --cert certs/client.pem --key certs/client-key.pem\n  \
        lab-chat server --plaintext             # the insecure version, to compare\n  \
        lab-chat server --room                  # many clients; each line goes to all\n  \
        lab-chat client --name alice            # your name in a room\n  \
        lab-chat demo                           # eavesdropper, impostor, truncation, live\n  \
        sudo lab-chat demo --pcap caps          # its TLS session for Wireshark, with the keys\n  \
        lab-chat eavesdrop --listen 127.0.0.1:2001 --upstream 127.0.0.1:2000\n  \
        lab-chat client --connect localhost:2001 --ca certs/ca.pem   # via the eavesdropper"
)]
pub struct Cli {
    /// Print one JSON object per event per line instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a lab CA, a server certificate (localhost, 127.0.0.1, ::1) and a client certificate.
    Keygen {
        /// Folder for the PEM files [default: ~/.local/share/socket-lab/chat].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Wait for clients and chat with one at a time (or a room with --room).
    Server(ServerArgs),
    /// Connect to a server and chat.
    Client(ClientArgs),
    /// Run the whole demonstration: conversation, eavesdropper, impostor, truncation.
    ///
    /// With --pcap DIR the conversation's packets go to DIR/conversation.pcap and its TLS
    /// secrets to DIR/conversation.keys, for Wireshark.
    Demo {
        #[command(flatten)]
        capture: lab_capture::CaptureArgs,
    },
    /// Measure throughput, handshakes, round trips and room fan-out next to openssl and ncat.
    Bench {
        /// A tiny run that only proves each part works (seconds).
        #[arg(long)]
        quick: bool,
    },
    /// A relay that forwards a chat and prints every byte that crosses it.
    Eavesdrop {
        /// Where clients connect (instead of the server).
        #[arg(long, default_value = "127.0.0.1:2001")]
        listen: SocketAddr,
        /// The real server.
        #[arg(long, default_value = "127.0.0.1:2000")]
        upstream: SocketAddr,
    },
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Longest accepted line, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = framing::DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Longest time a TLS handshake may take (and, for a client, its connect), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    handshake_timeout: f64,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits, String> {
        let timeout = Duration::try_from_secs_f64(self.handshake_timeout).map_err(|_| {
            format!(
                "--handshake-timeout {} is not a duration in seconds",
                self.handshake_timeout
            )
        })?;
        if self.max_line == 0 {
            return Err("--max-line must be at least 1".into());
        }
        Ok(Limits {
            max_line: self.max_line,
            handshake_timeout: timeout,
        })
    }
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Address to listen on (port 0: the kernel picks one).
    #[arg(long, default_value = "127.0.0.1:2000")]
    listen: SocketAddr,
    /// Folder with ca.pem, server.pem, server-key.pem (created if empty) [default: ~/.local/share/socket-lab/chat].
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by the lab CA.
    #[arg(long)]
    require_client_cert: bool,
    /// Exit after the first session (a completed handshake) instead of waiting for the next.
    #[arg(long)]
    once: bool,
    /// No TLS: bare TCP, readable by anyone on the path (for comparison only).
    #[arg(long)]
    plaintext: bool,
    /// A room: many clients, each line relayed to all the others.
    #[arg(long)]
    room: bool,
    /// In a room: bytes still unsent to one client after a write before it is dropped.
    #[arg(long, value_name = "BYTES", default_value_t = crate::room::DEFAULT_MAX_BACKLOG)]
    max_backlog: usize,
    /// In a room: the most members at once.
    #[arg(long, value_name = "N", default_value_t = crate::room::DEFAULT_MAX_MEMBERS)]
    max_members: usize,
    /// In a room: lines one member may send per second (bursts of five seconds' worth).
    #[arg(long, value_name = "LINES", default_value_t = crate::room::DEFAULT_MAX_LINES_PER_SECOND)]
    max_lines_per_second: u32,
    /// In a room: a member that sends nothing for this long is disconnected, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = crate::room::DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout: f64,
    /// Connections at once still in their TLS handshake (or being told "busy"); newer ones are refused.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_PENDING)]
    max_pending: usize,
    /// Connections at once from one IP address (pending, or in the room).
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_PER_ADDRESS)]
    max_per_address: usize,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Server to connect to; the host is the name its certificate must match.
    #[arg(long, default_value = "localhost:2000")]
    connect: String,
    /// The CA certificate to trust [default: ca.pem in the default certificate folder].
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate for mutual TLS (with --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// No TLS: bare TCP (for comparison only).
    #[arg(long)]
    plaintext: bool,
    /// Your name in a --room server (sent as `/name NAME`; a client certificate's name wins).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Runs the command; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> ExitCode {
    let events = printer(cli.json);
    let result = match cli.command {
        Command::Keygen { out, force } => {
            let dir = out.unwrap_or_else(keys::default_dir);
            keys::keygen(&dir, force)
                .map(|files| {
                    if cli.json {
                        let record = serde_json::json!({"event": "keygen", "dir": files.dir});
                        println!("{record}");
                    } else {
                        println!(
                            "wrote ca.pem, server.pem, client.pem and their keys (mode 0600) to {}",
                            files.dir.display()
                        );
                    }
                })
                .map_err(Failure::from)
        }
        Command::Server(args) => run_server(args, cli.json, events),
        Command::Client(args) => run_client(args, cli.json, events),
        Command::Demo { capture } => run_demo(cli.json, &capture),
        Command::Bench { quick } => run_bench(quick, cli.json),
        Command::Eavesdrop { listen, upstream } => run_eavesdrop(listen, upstream, cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `lab-chat demo | head`: the reader left; nothing more to say to anyone.
        Err(Failure::ReaderLeft) => ExitCode::FAILURE,
        Err(Failure::Usage(message)) | Err(Failure::Chat(message)) => {
            eprintln!("lab-chat: {message}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Usage(String),
    Chat(String),
    /// Standard output was closed while narrating: as every lab, end quietly.
    ReaderLeft,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        if lab_kit::narrate::is_closed_output(&error) {
            return Failure::ReaderLeft;
        }
        Failure::Chat(error.to_string())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Usage(message)
    }
}

/// Writes one line to standard output, ignoring a closed stdout (`lab-chat server | head`):
/// `println!` would panic there, in whichever thread reported the event (a session thread
/// that panics never tells the server it is free again).
fn print_line(line: impl std::fmt::Display) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// Prints each event as one line of text, or one JSON object.
fn printer(json: bool) -> EventSink {
    Arc::new(move |event: ChatEvent| {
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                print_line(line);
            }
        } else {
            print_line(event);
        }
    })
}

/// Standard input, line by line, as [`LocalInput`]s on a channel (a thread blocks on it).
fn stdin_lines(events: EventSink) -> Receiver<LocalInput> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_typed(io::stdin().lock(), &tx, &events));
    rx
}

/// Reads typed lines from `input` until it ends (then [`LocalInput::EndOfInput`]) or
/// nobody listens: each line without its `\n` or `\r\n`; a line that is not valid UTF-8
/// is reported as [`ChatEvent::NotSent`] and skipped, never sent mangled.
fn read_typed(mut input: impl BufRead, tx: &Sender<LocalInput>, events: &EventSink) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let typed = match std::str::from_utf8(bytes) {
            Ok(text) => LocalInput::from_typed(text),
            Err(e) => {
                events(ChatEvent::NotSent {
                    reason: format!(
                        "your line is not valid UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                });
                continue;
            }
        };
        if tx.send(typed).is_err() {
            return;
        }
    }
    let _ = tx.send(LocalInput::EndOfInput);
}

/// `typed`, after `/name NAME` when a name was given (a room then knows us by it first).
fn name_first(name: Option<&str>, typed: Receiver<LocalInput>) -> Receiver<LocalInput> {
    let Some(name) = name else {
        return typed;
    };
    let (tx, rx) = mpsc::channel();
    let _ = tx.send(LocalInput::Line(format!("/name {name}")));
    let _ = std::thread::Builder::new()
        .name("stdin-forward".into())
        .spawn(move || {
            for line in typed {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    rx
}

/// How a client's session ending becomes its exit code: a server that was busy, or a
/// session that did not end cleanly (truncated, TLS failure, a failed send) is a failure;
/// a goodbye from either side, or the end of our input, is a success.
fn client_outcome(report: &SessionReport) -> Result<(), Failure> {
    if report.notices.iter().any(|n| n == BUSY_NOTICE) {
        return Err(Error::Busy.into());
    }
    match report.end {
        SessionEnd::Peer(PeerEnd::Truncated { .. })
        | SessionEnd::Peer(PeerEnd::TlsFailed { .. })
        | SessionEnd::SendFailed { .. } => Err(Failure::Chat(
            "the session did not end cleanly (see above)".into(),
        )),
        _ => Ok(()),
    }
}

/// What the user types, and where events go: a line editor when stdin and stdout are a
/// terminal (see `crate::terminal`), plain lines otherwise. Keep the editor's guard
/// alive as long as the chat runs: dropping it gives the terminal back its mode.
fn typed_input(
    json: bool,
    events: EventSink,
) -> (Receiver<LocalInput>, EventSink, Option<LineEditor>) {
    if terminal::is_interactive() {
        match LineEditor::start(json) {
            Ok((editor, input, printed)) => return (input, printed, Some(editor)),
            Err(e) => events(ChatEvent::Error {
                error: format!("no line editor ({e}): reading plain lines"),
            }),
        }
    }
    (stdin_lines(Arc::clone(&events)), events, None)
}

fn run_server(args: ServerArgs, json: bool, events: EventSink) -> Result<(), Failure> {
    let limits = args.limits.limits()?;
    let mut created = None;
    let tls = if args.plaintext {
        None
    } else {
        let dir = args.certs.clone().unwrap_or_else(keys::default_dir);
        let (files, made) = keys::ensure_server_files(&dir)?;
        if made {
            created = Some(files.dir.clone());
        }
        Some(keys::server_config(&files, args.require_client_cert)?)
    };
    let listener = server::bind(args.listen)?;
    let (input, events, _editor) = typed_input(json, events);
    // `listening on` must be the first line: print it, then the certificate news.
    let first = Arc::clone(&events);
    let announced: EventSink = Arc::new(move |event| {
        let listening = matches!(event, ChatEvent::Listening { .. });
        first(event);
        if listening && let Some(dir) = &created {
            first(ChatEvent::CertificatesCreated { dir: dir.clone() });
        }
    });
    let admission = server::AdmissionLimits {
        max_pending: args.max_pending.max(1),
        max_per_address: args.max_per_address.max(1),
    };
    if args.room {
        let idle_timeout = Duration::try_from_secs_f64(args.idle_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                format!(
                    "--idle-timeout {} is not a positive duration in seconds",
                    args.idle_timeout
                )
            })?;
        let options = crate::room::RoomOptions {
            tls,
            limits,
            max_backlog: args.max_backlog.max(1),
            max_members: args.max_members.max(1),
            max_lines_per_second: args.max_lines_per_second.max(1),
            idle_timeout,
            admission,
        };
        crate::room::serve_room(listener, options, input, announced)?;
    } else {
        let options = ServerOptions {
            tls,
            limits,
            once: args.once,
            admission,
        };
        server::serve(listener, options, input, announced)?;
    }
    Ok(())
}

fn run_client(args: ClientArgs, json: bool, events: EventSink) -> Result<(), Failure> {
    let limits = args.limits.limits()?;
    let tls = if args.plaintext {
        None
    } else {
        let ca = args
            .ca
            .clone()
            .unwrap_or_else(|| keys::default_dir().join("ca.pem"));
        let identity = args.cert.as_deref().zip(args.key.as_deref());
        Some(keys::client_config(&ca, identity)?)
    };
    let options = ClientOptions {
        target: args.connect.clone(),
        tls,
        limits,
    };
    let tcp = client::connect(&args.connect, limits.handshake_timeout)?;
    let (typed, events, _editor) = typed_input(json, events);
    let input = name_first(args.name.as_deref(), typed);
    let report = client::run_client(tcp, &options, input, events)?;
    client_outcome(&report)
}

fn run_demo(json: bool, capture: &lab_capture::CaptureArgs) -> Result<(), Failure> {
    let tap = capture
        .wiretap()
        .map_err(|e| Failure::Chat(e.to_string()))?;
    let mut narrator = Narrator::stdout(Format::from_json_flag(json));
    let probe = Probe::current()
        .map_err(|e| Failure::Chat(format!("cannot find its own executable: {e}")))?;
    let result = crate::chapter_watched(&mut narrator, &probe, &tap);
    let _ = narrator.flush();
    Ok(result?)
}

fn run_eavesdrop(listen: SocketAddr, upstream: SocketAddr, json: bool) -> Result<(), Failure> {
    let listener = server::bind(listen)?;
    let addr = listener.local_addr().map_err(Error::from)?;
    // The first line says where to connect: `listening on ADDR` in text, or (one JSON
    // object per line, like every other event) a `listening` event, as the server prints.
    if json {
        let record = serde_json::json!({"event": "listening", "addr": addr, "upstream": upstream});
        println!("{record}");
    } else {
        println!(
            "{}{addr} (relaying to {upstream})",
            lab_kit::ready::LISTENING_PREFIX
        );
    }
    let observer: eavesdrop::Observer = Arc::new(move |chunk: &eavesdrop::WireChunk| {
        if json {
            if let Ok(line) = serde_json::to_string(chunk) {
                print_line(line);
            }
        } else {
            print_line(chunk.describe());
        }
    });
    let relay = eavesdrop::Relay::start(listener, upstream, Some(observer)).map_err(Error::from)?;
    relay.wait();
    Ok(())
}

fn run_bench(quick: bool, json: bool) -> Result<(), Failure> {
    let mut narrator = Narrator::stdout(Format::from_json_flag(json));
    let size = if quick {
        crate::bench::BenchSize::quick()
    } else {
        crate::bench::BenchSize::full()
    };
    let result = crate::bench::run(size, &mut narrator);
    let _ = narrator.flush();
    result.map(|_| ()).map_err(Failure::from)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn collecting() -> (EventSink, Arc<Mutex<Vec<ChatEvent>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        (Arc::new(move |e| sink.lock().unwrap().push(e)), seen)
    }

    #[test]
    fn typed_lines_lose_their_endings_and_invalid_utf8_is_reported_not_sent() {
        let (events, seen) = collecting();
        let (tx, rx) = mpsc::channel();
        let input: &[u8] = b"hello\r\nbad \xff line\nExit\nlast without newline";
        read_typed(input, &tx, &events);
        let typed: Vec<LocalInput> = rx.try_iter().collect();
        assert_eq!(
            typed,
            [
                LocalInput::Line("hello".into()),
                LocalInput::Exit,
                LocalInput::Line("last without newline".into()),
                LocalInput::EndOfInput,
            ]
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [ChatEvent::NotSent {
                reason: "your line is not valid UTF-8 (invalid byte at offset 4)".into()
            }]
        );
    }

    #[test]
    fn a_name_goes_first_then_everything_typed() {
        let (tx, typed) = mpsc::channel();
        tx.send(LocalInput::Line("hi".into())).unwrap();
        tx.send(LocalInput::EndOfInput).unwrap();
        drop(tx);
        let all: Vec<LocalInput> = name_first(Some("alice"), typed).iter().collect();
        assert_eq!(
            all,
            [
                LocalInput::Line("/name alice".into()),
                LocalInput::Line("hi".into()),
                LocalInput::EndOfInput,
            ]
        );
        let (tx, typed) = mpsc::channel();
        tx.send(LocalInput::Exit).unwrap();
        drop(tx);
        assert_eq!(
            name_first(None, typed).iter().collect::<Vec<_>>(),
            [LocalInput::Exit]
        );
    }

    fn ended(end: SessionEnd, notices: &[&str]) -> SessionReport {
        SessionReport {
            end,
            lines_received: 0,
            lines_sent: 0,
            notices: notices.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_clean_end_succeeds_and_a_busy_server_or_a_cut_session_fails() {
        let closed = SessionEnd::Peer(PeerEnd::Closed { said_exit: true });
        assert_eq!(client_outcome(&ended(SessionEnd::WeLeft, &[])), Ok(()));
        assert_eq!(client_outcome(&ended(SessionEnd::InputEnded, &[])), Ok(()));
        assert_eq!(client_outcome(&ended(closed.clone(), &[])), Ok(()));
        assert_eq!(
            client_outcome(&ended(closed, &[BUSY_NOTICE])),
            Err(Failure::Chat(Error::Busy.to_string()))
        );
        for end in [
            SessionEnd::Peer(PeerEnd::Truncated {
                detail: "cut".into(),
            }),
            SessionEnd::Peer(PeerEnd::TlsFailed {
                error: "bad record".into(),
            }),
            SessionEnd::SendFailed {
                error: "reset".into(),
            },
        ] {
            assert_eq!(
                client_outcome(&ended(end, &[])),
                Err(Failure::Chat(
                    "the session did not end cleanly (see above)".into()
                ))
            );
        }
    }
}
