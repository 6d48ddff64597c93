//! `lab-sleep`: lab 3 on its own. What does `sleep` really do?
//!
//! A thin command line over the library: it parses the options, runs the chosen
//! experiments through [`lab_sleep::run`] and reports errors in one line.

use std::process::ExitCode;

use clap::Parser;
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;
use lab_sleep::{Experiment, Options};

#[derive(Debug, Parser)]
#[command(
    name = "lab-sleep",
    version,
    about = "Lab 3: what does sleep really do? Measured with real threads and sockets.",
    long_about = "Lab 3: what does sleep really do? Measured with real threads and sockets.\n\n\
        Python's time.sleep() and Rust's std::thread::sleep both ask the kernel to take the \
        calling thread off the CPU until a timer fires. This lab measures what that means: \
        at least the requested time, only the calling thread, no CPU, the kernel keeps \
        receiving meanwhile, and a sleeping single-threaded server makes every client wait.",
    after_help = "Examples:\n  \
        lab-sleep                      # every experiment, narrated\n  \
        lab-sleep accuracy cpu         # only those two experiments\n  \
        lab-sleep --quick              # fewer repetitions of the accuracy measurement\n  \
        lab-sleep --json               # one JSON object per experiment per line\n  \
        lab-sleep --json syscall       # strace's view of Rust's and Python's sleep\n  \
        sudo lab-sleep kernel --pcap caps  # its packets too, in caps/kernel_keeps_working.pcap\n\n\
        The strace experiment needs strace (and python3 for Python's side); without them it \
        says \"skipped\" and why. Colors are used only on a terminal, and never when NO_COLOR \
        is set."
)]
struct Cli {
    /// Print one JSON object per experiment per line instead of the narration.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    capture: lab_capture::CaptureArgs,

    /// Repeat the accuracy measurement fewer times (the sleeps keep their length).
    #[arg(long)]
    quick: bool,

    /// Which experiments to run, in the order given (default: all, in the chapter's order).
    #[arg(value_enum)]
    experiments: Vec<Experiment>,
}

fn main() -> ExitCode {
    lab_kit::probe::dispatch(lab_sleep::PROBES);
    let cli = Cli::parse();
    let probe = match Probe::current() {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("lab-sleep: cannot find its own executable to run the strace probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wiretap = match cli.capture.wiretap() {
        Ok(wiretap) => wiretap,
        Err(e) => {
            eprintln!("lab-sleep: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        wiretap,
        ..if cli.quick {
            Options::quick()
        } else {
            Options::default()
        }
    };
    let experiments = lab_kit::cli::experiments_or_all(&cli.experiments, Experiment::ALL);
    let mut narrator = Narrator::stdout(Format::from_json_flag(cli.json));
    let outcome = lab_sleep::run(&experiments, &options, &probe, &mut narrator);
    let _ = narrator.flush();
    lab_kit::cli::finish("lab-sleep", outcome)
}
