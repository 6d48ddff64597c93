//! lab-sleep's tests: the experiments' claims, the narration, the command line, the packets.
//!
//! One test binary for the whole crate (as ripgrep and cargo do): every file below is a
//! module, so the crate's tests link once and run in parallel with each other.

mod cli;
mod common;
mod experiments;
mod on_the_wire;
