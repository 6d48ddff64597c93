//! The pieces every socket-lab lab shares, kept in one place so that each lab's code is
//! only about its own networking lesson.
//!
//! - [`narrate`]: printing a lab's results for a classroom, or as JSON lines for machines.
//! - [`addr`]: `HOST:PORT` into the addresses a client tries, in the resolver's order.
//! - [`bench`]: percentiles and target verdicts, as every benchmark reports them.
//! - [`attempt`]: how one connection attempt ended (refused, timed out, connected).
//! - [`errors`]: what an `io::Error` really was (its `ErrorKind`, errno number and name).
//! - [`kernel`]: the kernel's own TCP counters (`/proc/net/snmp`) and socket table
//!   (`/proc/net/tcp`).
//! - [`ports`]: loopback ports where nothing listens, held so that they stay closed.
//! - [`ready`]: waiting for a server to be ready without guessing with `sleep`.
//! - [`cli`]: what every lab's binary does around its one call (all experiments by
//!   default, a quiet end when the reader left).
//! - [`child`]: finding a program, and running it as a child that is always killed and
//!   reaped.
//! - [`strace`] and [`probe`]: watching the real system calls a program makes.
//! - [`pki`] and [`tls`]: a throw-away certificate authority and rustls configurations
//!   (behind the `tls` feature: labs 1 to 4 do not compile a TLS stack).
//! - [`chapter`]: the lab contract, what every lab gives the tour.

pub mod addr;
pub mod attempt;
pub mod bench;
pub mod chapter;
pub mod child;
pub mod cli;
pub mod errors;
pub mod kernel;
pub mod narrate;
pub mod netns;
#[cfg(feature = "tls")]
pub mod pki;
pub mod ports;
pub mod probe;
pub mod ready;
pub mod strace;
#[cfg(feature = "tls")]
pub mod tls;
pub mod twin;
