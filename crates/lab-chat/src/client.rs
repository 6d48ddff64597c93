//! The chat client: connect, verify the server, then chat until someone leaves.
//!
//! The client checks two things before it sends a single line: that the server's
//! certificate chains to the CA it was given (`--ca`), and that the certificate is valid
//! for the name it connected to. Either failure stops the handshake with the reason
//! (rustls's verification error, explained in words). Without those checks, TLS would
//! encrypt the conversation perfectly… to whoever answered.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::Error;
use crate::session::{
    ChatEvent, EventSink, Limits, LocalInput, SessionCommand, SessionHooks, SessionReport,
    command_channel, run_session,
};
use crate::transport::{self, HandshakeError};

/// `HOST:PORT` split into the host (the name the certificate must match) and the port.
pub fn split_target(target: &str) -> Result<(String, u16), Error> {
    let bad = || Error::Target {
        target: target.to_string(),
    };
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Connects to `target` (`HOST:PORT`), trying each address the name resolves to, each for
/// at most `timeout`. (Without a deadline, a host that drops our SYNs, or a server whose
/// accept queue is full, keeps `connect` waiting for the kernel's SYN retries: about two
/// minutes on Linux.)
pub fn connect(target: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs = lab_kit::addr::resolve(target)?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Connect {
        target: target.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("the name has no address")),
    })
}

/// How the client runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `HOST:PORT`; the host is the name the server's certificate must match.
    pub target: String,
    /// `None` for `--plaintext`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub limits: Limits,
}

/// Handshakes on `tcp` and chats until the session ends. The local user's input arrives on
/// `input`; everything worth showing goes to `events`.
pub fn run_client(
    tcp: TcpStream,
    options: &ClientOptions,
    input: Receiver<LocalInput>,
    events: EventSink,
) -> Result<SessionReport, Error> {
    let peer = tcp.peer_addr()?;
    events(ChatEvent::Connected { peer });
    let established = match &options.tls {
        Some(config) => {
            let (host, _) = split_target(&options.target)?;
            let name = ServerName::try_from(host.clone()).map_err(|_| Error::Target {
                target: options.target.clone(),
            })?;
            transport::connect_tls(
                tcp,
                Arc::clone(config),
                name,
                options.limits.handshake_timeout,
            )
            .map_err(|error| Error::Handshake {
                target: options.target.clone(),
                hint: explain_handshake_error(&error),
                error,
            })?
        }
        None => transport::plaintext(tcp)?,
    };
    events(ChatEvent::SessionStarted {
        peer,
        security: established.security.clone(),
    });
    let (commands_tx, commands) = command_channel();
    let to_session = commands_tx.clone();
    // The user's input becomes session commands; this thread ends with the input.
    thread::Builder::new()
        .name("chat-input".into())
        .spawn(move || {
            for typed in input {
                let command = match typed {
                    LocalInput::Line(line) => SessionCommand::Send(line),
                    LocalInput::Exit | LocalInput::EndOfInput => SessionCommand::Leave,
                };
                let leaving = matches!(command, SessionCommand::Leave);
                if to_session.send(command).is_err() || leaving {
                    return;
                }
            }
            let _ = to_session.send(SessionCommand::Leave);
        })?;
    let hooks = SessionHooks::print_lines(&events);
    Ok(run_session(
        established,
        options.limits,
        commands,
        commands_tx,
        events,
        hooks,
    ))
}

/// What a failed handshake most likely means, in words, for the one-line error.
pub fn explain_handshake_error(error: &HandshakeError) -> &'static str {
    use rustls::{AlertDescription, CertificateError, Error as TlsError};
    match error {
        HandshakeError::Tls(TlsError::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server's certificate is not signed by the CA given with --ca: \
                 an impostor, or the wrong CA file"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the host name you connected to"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired: make new ones with `lab-chat keygen --force`"
            }
            _ => "the server's certificate was rejected",
        },
        HandshakeError::Tls(TlsError::AlertReceived(AlertDescription::CertificateRequired)) => {
            "the server requires a client certificate: pass --cert and --key"
        }
        HandshakeError::Tls(TlsError::AlertReceived(
            AlertDescription::UnknownCA | AlertDescription::BadCertificate,
        )) => "the server rejected our client certificate",
        HandshakeError::Tls(TlsError::InvalidMessage(_)) => {
            "the server did not speak TLS: is it running with --plaintext?"
        }
        HandshakeError::TimedOut(_) => "the server accepted the connection but never answered",
        HandshakeError::Closed => {
            "the server closed the connection: it is not a TLS server, or it is refusing \
             connections for now (too many waiting for their handshake; its output says)"
        }
        _ => "see the error above",
    }
}
