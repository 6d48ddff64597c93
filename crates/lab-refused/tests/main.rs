//! lab-refused's tests: the claims of lab 1 and its docs page, the narration, the packets.
//!
//! One test binary for the whole crate (as ripgrep and cargo do): every file below is a
//! module, so the crate's tests link once and run in parallel with each other.

mod claims;
mod narration;
mod on_the_wire;
