//! lab-echo's tests: localhost and the socket calls (questions 2 and 4), the echo programs' command line, the packets.
//!
//! One test binary for the whole crate (as ripgrep and cargo do): every file below is a
//! module, so the crate's tests link once and run in parallel with each other.

mod calls;
mod cli;
mod common;
mod localhost;
mod on_the_wire;
