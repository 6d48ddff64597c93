//! lab-chat's integration tests, one binary (as ripgrep and cargo do: one link of the TLS
//! stack, not nine): the chat as a student runs it (`cli`, `terminal`), the room, the
//! demonstration's claims and narration, interoperation with openssl and Python, the wire,
//! and a smoke run of the benchmark. What they share is in `common`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod bench;
mod cli;
mod demo;
mod duplex;
mod interop;
mod on_the_wire;
mod room;
mod terminal;
