//! socket-lab's workspace-level tests: the tour, its HTML page, the packets of every chapter, the Python twins, and the claims of docs/.
//!
//! One test binary for the whole crate (as ripgrep and cargo do): every file below is a
//! module, so the crate's tests link once and run in parallel with each other.

mod docs;
mod html;
mod packets;
mod tour;
mod twins;

/// The tour's binary, colours off, ready for assertions on its output.
fn socket_lab() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(lab_test_support::bin!("socket-lab"));
    command.env("NO_COLOR", "1");
    command
}
