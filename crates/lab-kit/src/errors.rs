//! What an `io::Error` from a socket call really was.
//!
//! Rust folds the operating system's error number (errno) into an [`io::ErrorKind`], but the
//! number is still there (`raw_os_error`). Students meet these errors under other names in
//! other languages (Python's `ConnectionRefusedError` is errno 111, `ECONNREFUSED`), so the
//! labs always print all three: the kind, the number and the symbolic name.

use std::io;

use serde::Serialize;

/// The facts of one failed call, ready to print or to serialize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorFacts {
    /// The portable Rust classification, e.g. `ConnectionRefused`.
    pub error_kind: String,
    /// The operating system's error number, e.g. 111 on Linux.
    pub errno: Option<i32>,
    /// The C name of that number, e.g. `ECONNREFUSED`.
    pub errno_name: Option<&'static str>,
    /// The operating system's own message, e.g. "Connection refused".
    pub message: String,
}

impl ErrorFacts {
    /// Reads the kind, errno and message out of an `io::Error`.
    pub fn of(error: &io::Error) -> Self {
        let errno = error.raw_os_error();
        ErrorFacts {
            error_kind: format!("{:?}", error.kind()),
            errno,
            errno_name: errno.and_then(errno_name),
            message: error.to_string(),
        }
    }

    /// The one way an error is described in a message: the system's own words, then the
    /// facts: `address already in use: AddrInUse (errno 98, EADDRINUSE)`.
    pub fn describe(&self) -> String {
        // io::Error's text ends with " (os error 98)", which the facts already say.
        let message = self.message.split(" (os error").next().unwrap_or_default();
        let message = message.to_lowercase();
        if message.is_empty() || message == self.error_kind.to_lowercase() {
            return self.summary();
        }
        format!("{message}: {}", self.summary())
    }

    /// The facts alone, as evidence lines show them: `ConnectionRefused (errno 111,
    /// ECONNREFUSED)`, or just the kind when there is no errno.
    pub fn summary(&self) -> String {
        match (self.errno, self.errno_name) {
            (Some(n), Some(name)) => format!("{} (errno {n}, {name})", self.error_kind),
            (Some(n), None) => format!("{} (errno {n})", self.error_kind),
            _ => self.error_kind.clone(),
        }
    }
}

/// The symbolic name of the errno values that socket programs meet.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::EPIPE => "EPIPE",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => return None,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_is_errno_111_on_linux() {
        let facts = ErrorFacts::of(&io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(facts.error_kind, "ConnectionRefused");
        assert_eq!(facts.errno_name, Some("ECONNREFUSED"));
        if cfg!(target_os = "linux") {
            assert_eq!(
                facts.summary(),
                "ConnectionRefused (errno 111, ECONNREFUSED)"
            );
            assert_eq!(
                facts.describe(),
                "connection refused: ConnectionRefused (errno 111, ECONNREFUSED)"
            );
        }
    }

    #[test]
    fn an_error_without_errno_is_described_by_its_words_and_kind() {
        let facts = ErrorFacts::of(&io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        assert_eq!(facts.describe(), "no addresses: NotFound");
    }
}
