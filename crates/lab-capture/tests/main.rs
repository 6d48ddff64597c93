//! lab-capture's tests: capturing real packets on loopback, and a real TLS session's records.
//!
//! One test binary for the whole crate (as ripgrep and cargo do): every file below is a
//! module, so the crate's tests link once and run in parallel with each other.

mod capture;
mod tls;
