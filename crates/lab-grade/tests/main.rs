//! lab-grade's integration tests: one test binary, one module per subject, as ripgrep and
//! cargo lay theirs out. Every test binary links the grader and the TLS stack; on a 2-core
//! machine one link instead of ten is minutes of CI.
//!
//! Run one subject with its module path: `cargo test -p lab-grade --test main examples::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod batch;
mod classroom;
mod cli;
mod examples;
mod fairness;
mod framing;
mod gradescope;
mod hostile;
mod languages;
mod reliability;
