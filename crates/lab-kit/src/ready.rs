//! Waiting until a server is ready, instead of guessing with `sleep`.
//!
//! A fixed `sleep(1s)` before connecting is either too long (slow tests) or too short (a
//! loaded machine, a flaky test). The reliable ways are: let the server *tell* us it is
//! listening (every socket-lab server prints `listening on ADDR` as its first line, after
//! `listen()` has returned), or try to connect until a deadline. Note what the second one
//! is: a retry loop with a pause between attempts. As lab 1 shows, the kernel never retries
//! a refused connection for you; retrying is always the program's own decision.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The words every socket-lab server prints before its address, once it is listening.
pub const LISTENING_PREFIX: &str = "listening on ";

/// The address in a line such as `listening on 127.0.0.1:41234`, if it is one.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix(LISTENING_PREFIX)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Why the server never became ready.
#[derive(Debug, thiserror::Error)]
#[error("{addr} did not accept a connection within {waited:?} (last error: {last_error})")]
pub struct NotReady {
    pub addr: SocketAddr,
    pub waited: Duration,
    pub last_error: io::Error,
}

/// How long one connection attempt may take: never less than a second, whatever is left of
/// the caller's timeout.
///
/// An attempt given up on is not undone: if the server's kernel completes the handshake a
/// moment later (a loaded machine delays it), that connection is already in the server's
/// accept queue, and we close it. A server that serves one client takes that dead
/// connection as its client, and the real one meets a closed door (this made a correct
/// one-client server fail a grading now and then). On loopback a handshake that is not
/// refused completes in microseconds; a second covers any load, and the kernel's own first
/// SYN retry comes only after a second.
fn attempt_timeout(left: Duration) -> Duration {
    left.clamp(Duration::from_secs(1), Duration::from_secs(2))
}

/// Connects to `addr` until it succeeds or `timeout` has passed; returns the connection.
///
/// Between refused attempts it backs off from 1 ms up to 50 ms, so a server that starts
/// in a few milliseconds is found in a few milliseconds. The last attempt may run past
/// `timeout` by up to a second (see [`attempt_timeout`]).
pub fn connect_until_ready(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, NotReady> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&addr, attempt_timeout(left)) {
            Ok(stream) => return Ok(stream),
            Err(last_error) => {
                if Instant::now() + pause >= deadline {
                    return Err(NotReady {
                        addr,
                        waited: started.elapsed(),
                        last_error,
                    });
                }
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn an_attempt_is_never_cut_short_by_the_little_time_left() {
        assert_eq!(attempt_timeout(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            attempt_timeout(Duration::from_millis(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            attempt_timeout(Duration::from_secs(60)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn reads_the_listening_line() {
        assert_eq!(
            listening_addr("listening on 127.0.0.1:2000"),
            Some("127.0.0.1:2000".parse().unwrap())
        );
        assert_eq!(
            listening_addr("listening on [::1]:80 (tls)"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(listening_addr("hello"), None);
    }

    #[test]
    fn connects_to_a_listening_socket_and_gives_up_on_a_closed_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert!(connect_until_ready(open, Duration::from_secs(5)).is_ok());

        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = connect_until_ready(closed, Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.last_error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
