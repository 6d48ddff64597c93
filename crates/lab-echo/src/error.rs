//! The errors of lab-echo, each saying what failed, where, and (at the binary's edge) what
//! to do about it.
//!
//! Socket errors are kept as `io::Error` so that their kind and errno survive to the report:
//! "address already in use" is `EADDRINUSE` (98 on Linux), "connection refused" is
//! `ECONNREFUSED` (111), and students should learn to recognise both by number and by name.

use std::io;

use lab_kit::errors::ErrorFacts;

/// Everything that can go wrong in lab-echo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `bind()` or `listen()` failed, typically because the port is taken.
    #[error("could not listen on {addr}: {}", describe(source))]
    Listen { addr: String, source: io::Error },
    /// The name in `HOST:PORT` could not be turned into an address.
    #[error(transparent)]
    Resolve(#[from] lab_kit::addr::ResolveError),
    /// `connect()` failed on every address the name resolved to.
    #[error("could not connect to {target}: {}", describe(source))]
    Connect { target: String, source: io::Error },
    /// A socket call in an experiment failed.
    #[error("{step} failed: {}", describe(source))]
    Socket {
        step: &'static str,
        source: io::Error,
    },
    /// An experiment found something it did not expect (a bug, or an unusual OS).
    #[error("{0}")]
    Unexpected(String),
    /// Echoes went missing: the server closed before echoing everything back.
    #[error("the server closed the connection after echoing {received} of {sent} bytes{reason}")]
    Incomplete {
        sent: u64,
        received: u64,
        reason: String,
    },
    /// The server refused this client because it already serves its maximum.
    #[error("the server refused this client: {0}")]
    Busy(String),
    /// Writing the narration failed (e.g. stdout is a closed pipe).
    #[error("could not write the narration: {0}")]
    Narration(#[from] io::Error),
}

impl Error {
    /// A socket step failed: keeps the step's name for the report.
    pub fn socket(step: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Socket { step, source }
    }

    /// What the user can do about it, appended to the one-line message at the binary's edge.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Listen { source, .. } if source.kind() == io::ErrorKind::AddrInUse => Some(
                "another program holds that port; stop it or choose another port with --listen",
            ),
            Error::Listen { source, .. } if source.kind() == io::ErrorKind::AddrNotAvailable => {
                Some("that address does not belong to this machine; try --listen 127.0.0.1:2000")
            }
            Error::Listen { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("ports below 1024 need privileges; choose a port above 1024")
            }
            Error::Resolve(_) => {
                Some("check the spelling of the host; give it as HOST:PORT, e.g. 127.0.0.1:2000")
            }
            Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                Some("nothing listens there; start `lab-echo server` first, or check the port")
            }
            _ => None,
        }
    }
}

/// `address already in use: AddrInUse (errno 98, EADDRINUSE)`: the one way lab-kit
/// describes an `io::Error`.
fn describe(error: &io::Error) -> String {
    ErrorFacts::of(error).describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_in_use_is_named_with_its_errno_and_a_hint() {
        let error = Error::Listen {
            addr: "127.0.0.1:2000".into(),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        let text = error.to_string();
        assert!(text.starts_with("could not listen on 127.0.0.1:2000: address"));
        assert!(text.contains("EADDRINUSE"), "{text}");
        assert!(error.hint().is_some_and(|h| h.contains("--listen")));
    }
}
