//! `lab-chat`: the secure chat (server, client, keygen) and its demonstrations.
//!
//! This file only parses the command line and makes one call: the program's behaviour is
//! in the library ([`lab_chat::app`]), where it is tested.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lab_kit::probe::dispatch(lab_chat::PROBES);
    lab_chat::app::run(lab_chat::app::Cli::parse())
}
