//! `socket-lab`: the tour's command line. It parses the arguments and calls
//! [`socket_lab::run`]; everything else lives in the library (`src/lib.rs`).
//!
//! `cargo run --release` runs the whole tour; `socket-lab refused` runs one chapter.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use socket_lab::{CHAPTERS, TourError, TourOptions};

#[derive(Debug, Parser)]
#[command(
    name = "socket-lab",
    version,
    about = "Five classic socket questions, answered by experiment on this machine.",
    long_about = "Five classic socket questions, answered by experiment on this machine.\n\n\
        With no chapter, runs the whole tour: every chapter, one after another.",
    after_help = "Examples:\n  \
        socket-lab                 # the whole tour\n  \
        socket-lab refused         # only chapter 1\n  \
        socket-lab --json refused  # one JSON object per experiment, for scripts\n  \
        sudo socket-lab --pcap caps   # also one pcap file per experiment, for Wireshark\n  \
        sudo socket-lab --html tour.html  # the whole tour as one page to post or print\n\n\
        Run as root (or with CAP_NET_RAW), the experiments also show their packets on the wire.\n\
        Colors are used only on a terminal, and never when NO_COLOR is set."
)]
struct Cli {
    /// Print one JSON object per experiment per line instead of the narration.
    #[arg(long, global = true)]
    json: bool,

    #[command(flatten)]
    capture: lab_capture::CaptureArgs,

    /// Also write the run as one self-contained HTML page (ladder diagrams as SVG), for a
    /// projector, a course page or paper.
    #[arg(long, global = true, value_name = "FILE")]
    html: Option<PathBuf>,
}

fn main() -> ExitCode {
    lab_kit::probe::dispatch(&socket_lab::probes());
    // One subcommand per chapter, from the tour's list: a new lab needs no change here.
    let command = Cli::command().subcommands(CHAPTERS.iter().map(|chapter| {
        clap::Command::new(chapter.slug)
            .about(format!("Chapter {}: {}", chapter.number, chapter.summary))
    }));
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let options = TourOptions {
        chapter: matches.subcommand_name().map(str::to_string),
        json: cli.json,
        capture: cli.capture,
        html: cli.html,
    };
    match socket_lab::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(TourError::ReaderLeft) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("socket-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
