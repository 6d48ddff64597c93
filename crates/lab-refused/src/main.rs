//! `lab-refused`: lab 1 on its own. What happens when a client connects and no server runs?
//!
//! A thin command line over the library: choose experiments, `--json` for machines.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;
use lab_refused::{Experiment, Options};

#[derive(Debug, Parser)]
#[command(
    name = "lab-refused",
    version,
    about = "Lab 1: what happens, exactly, when a TCP client connects and no server is running?",
    after_help = "Examples:\n  \
        lab-refused                      # every experiment, narrated\n  \
        lab-refused refused udp          # only experiments 1 and 4\n  \
        lab-refused --json               # one JSON object per experiment per line\n  \
        lab-refused backlog --deadline-ms 8000   # watch the kernel resend the SYN inside one connect()\n  \
        sudo lab-refused --pcap caps     # also write caps/refused.pcap etc. for Wireshark\n\n\
        Run as root (or with CAP_NET_RAW), each experiment also shows its packets on the wire.\n\
        Colors are used only on a terminal, and never when NO_COLOR is set."
)]
struct Cli {
    /// Which experiments to run (default: all, in order).
    #[arg(value_enum)]
    experiments: Vec<Experiment>,

    /// Print one JSON object per experiment per line instead of the narration.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    capture: lab_capture::CaptureArgs,

    /// How long the client waits for the listener whose queue is full (experiment 3).
    #[arg(long, value_name = "MS", default_value_t = 2500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    deadline_ms: u64,
}

fn main() -> ExitCode {
    lab_kit::probe::dispatch(lab_refused::PROBES);
    let cli = Cli::parse();
    let experiments = lab_kit::cli::experiments_or_all(&cli.experiments, Experiment::ALL);
    let wiretap = match cli.capture.wiretap() {
        Ok(wiretap) => wiretap,
        Err(e) => {
            eprintln!("lab-refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        backlog_deadline: Duration::from_millis(cli.deadline_ms),
        wiretap,
        ..Options::default()
    };
    let probe = match Probe::current() {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("lab-refused: cannot find its own executable to run the strace probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut narrator = Narrator::stdout(Format::from_json_flag(cli.json));
    let outcome = lab_refused::run(&experiments, &options, &probe, &mut narrator);
    lab_kit::cli::finish("lab-refused", outcome)
}
