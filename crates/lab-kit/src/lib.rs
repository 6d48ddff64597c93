//! The pieces every socket-lab lab shares, kept in one place so that each lab's code is
//! only about its own networking lesson.
//!
//! - [`narrate`]: printing a lab's results for a classroom, or as JSON lines for machines.
//! - [`attempt`]: how one connection attempt ended (refused, timed out, connected).
//! - [`errors`]: what an `io::Error` really was (its `ErrorKind`, errno number and name).
//! - [`kernel`]: the kernel's own TCP counters from `/proc/net/snmp`.
//! - [`ports`]: loopback ports where nothing listens, held so that they stay closed.
//! - [`ready`]: waiting for a server to be ready without guessing with `sleep`.
//! - [`child`]: running another program as a child that is always killed and reaped.
//! - [`strace`] and [`probe`]: watching the real system calls a program makes.
//! - [`skip`]: skipping a test for a missing tool, except in CI, where that fails.
//! - [`redact`]: the snapshot filters that hide what varies from run to run.
//! - [`pki`] and [`tls`]: a throw-away certificate authority and rustls configurations
//!   (behind the `tls` feature: labs 1 to 4 do not compile a TLS stack).
//! - [`chapter`]: the lab contract, what every lab gives the tour.

pub mod attempt;
pub mod chapter;
pub mod child;
pub mod errors;
pub mod kernel;
pub mod narrate;
pub mod netns;
#[cfg(feature = "tls")]
pub mod pki;
pub mod ports;
pub mod probe;
pub mod ready;
pub mod redact;
pub mod skip;
pub mod strace;
#[cfg(feature = "tls")]
pub mod tls;
pub mod twin;
