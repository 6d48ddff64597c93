//! The socket-lab tour: every chapter, one after another, narrated for a classroom.
//!
//! Each chapter answers one of five classic homework questions about sockets by running
//! a real experiment on this machine and printing what it measured. The chapters live in
//! the lab crates (`crates/lab-*`); this binary only lists them and runs them in order.
//!
//! `cargo run --release` runs the whole tour; `socket-lab refused` runs one chapter.

mod html;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lab_capture::Wiretap;
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;
use lab_kit::twin::{TWINS, Twin, TwinError, TwinRun};

/// How long a Python twin may take before the tour stops it and goes on.
const TWIN_DEADLINE: Duration = Duration::from_secs(120);

/// Any chapter's error, reported once at the edge.
type ChapterError = Box<dyn std::error::Error + Send + Sync>;

/// One chapter of the tour: the question it answers, the function that answers it, and its
/// Python twin (`python/`), run beside it when `python3` exists.
struct Chapter {
    command: Command,
    question: &'static str,
    /// Runs the chapter; the wiretap captures the packets of the experiments that send any.
    run: fn(&mut Narrator, &Probe, &Wiretap) -> Result<(), ChapterError>,
    twin: Twin,
}

/// The chapters, in the order of the homework's questions.
const CHAPTERS: &[Chapter] = &[
    Chapter {
        command: Command::Refused,
        question: "1. What happens when a TCP client connects and no server is running?",
        run: |n, p, tap| Ok(lab_refused::chapter(n, p, tap)?),
        twin: TWINS[0],
    },
    Chapter {
        command: Command::Localhost,
        question: "2. What is localhost, and how is it used to develop networked programs?",
        run: |n, p, tap| Ok(lab_echo::localhost_chapter(n, p, tap)?),
        twin: TWINS[1],
    },
    Chapter {
        command: Command::Sleep,
        question: "3. What does sleep do?",
        run: |n, p, tap| Ok(lab_sleep::chapter_watched(n, p, tap)?),
        twin: TWINS[2],
    },
    Chapter {
        command: Command::Calls,
        question: "4. What do bind(), listen(), accept(), connect(), send() and recv() really do?",
        run: |n, p, tap| Ok(lab_echo::socket_calls_chapter(n, p, tap)?),
        twin: TWINS[3],
    },
    Chapter {
        command: Command::Chat,
        question: "5. A secure chat, one client and one server: what makes it secure?",
        run: |n, p, tap| Ok(lab_chat::chapter_watched(n, p, tap)?),
        twin: TWINS[4],
    },
];

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

    /// Write each experiment's packets to DIR/<experiment>.pcap (open them in Wireshark).
    #[arg(long, global = true, value_name = "DIR")]
    pcap: Option<std::path::PathBuf>,

    /// Do not capture the experiments' packets.
    #[arg(long, global = true, conflicts_with = "pcap")]
    no_capture: bool,

    /// Also write the run as one self-contained HTML page (ladder diagrams as SVG), for a
    /// projector, a course page or paper.
    #[arg(long, global = true, value_name = "FILE")]
    html: Option<std::path::PathBuf>,

    #[command(subcommand)]
    chapter: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Command {
    /// Chapter 1: connecting when no server is running (refused, timed out, retried).
    Refused,
    /// Chapter 2: what localhost is (loopback, bind addresses, port 0, namespaces).
    Localhost,
    /// Chapter 3: what sleep does (Python's time.sleep, Rust's thread::sleep).
    Sleep,
    /// Chapter 4: bind, listen, accept, connect, send, recv, step by step, and under strace.
    Calls,
    /// Chapter 5: a secure chat (TLS vs plaintext, an eavesdropper, an impostor).
    Chat,
}

fn main() -> ExitCode {
    // Every lab's probes, so that the tour binary can re-run any of them under strace.
    let probes: Vec<_> = [
        lab_refused::PROBES,
        lab_echo::PROBES,
        lab_sleep::PROBES,
        lab_chat::PROBES,
    ]
    .concat();
    lab_kit::probe::dispatch(&probes);
    let cli = Cli::parse();
    let probe = match Probe::current() {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("socket-lab: cannot find its own executable to run probes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wiretap = match Wiretap::from_flags(cli.no_capture, cli.pcap.as_deref()) {
        Ok(wiretap) => wiretap,
        Err(e) => {
            eprintln!("socket-lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut narrator, recorded) = Narrator::stdout(Format::from_json_flag(cli.json)).recording();
    if cli.chapter.is_none() && introduce_the_tour(&mut narrator).is_err() {
        return ExitCode::FAILURE;
    }
    let chosen = CHAPTERS
        .iter()
        .filter(|c| cli.chapter.is_none_or(|wanted| wanted == c.command));
    for chapter in chosen {
        // A fresh copy of the wiretap per chapter: each chapter says once if it cannot capture.
        let result = (chapter.run)(&mut narrator, &probe, &wiretap.clone())
            .and_then(|()| Ok(the_same_in_python(chapter.twin, &mut narrator)?));
        if let Err(e) = result {
            if closed_stdout(e.as_ref()) {
                // `socket-lab | head`: the reader left; nothing more to say to anyone.
                return ExitCode::FAILURE;
            }
            let _ = narrator.flush();
            eprintln!("socket-lab: chapter \"{}\" failed: {e}", chapter.question);
            return ExitCode::FAILURE;
        }
    }
    let _ = narrator.flush();
    if let Some(path) = &cli.html
        && let Err(e) = std::fs::write(path, html::page(&recorded.blocks()))
    {
        eprintln!(
            "socket-lab: cannot write the HTML report {}: {e} (choose a file you may write)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The opening of the whole tour: what it is, and which machine the evidence comes from.
fn introduce_the_tour(n: &mut Narrator) -> std::io::Result<()> {
    n.heading("socket-lab: five classic socket questions, answered by experiment")?;
    n.say(
        "Every number below is measured now, on this machine, with real sockets. Each \
         chapter runs its experiments, shows the evidence, and ends with the answer.",
    )?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = format!("{} {}", std::env::consts::OS, release.trim());
    n.fact("operating system", kernel.trim())?;
    if is_wsl(&release) {
        n.say(
            "This is WSL (Windows Subsystem for Linux): a Linux kernel running on Windows. \
             What follows is Linux's behaviour, not Windows'. To see Windows' own, run the \
             Python twins with Windows' Python, e.g. `py python\\q1_refused.py`.",
        )?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    n.fact("CPUs", cpus)?;
    n.fact(
        "Python (for the twins)",
        lab_kit::twin::python_version()
            .unwrap_or_else(|| "none found: the Python twins will be skipped".to_string()),
    )?;
    n.say(
        "What each chapter measures here is this system's behaviour. Where Windows or macOS \
         differ, the chapter says so after its answer, under \"Elsewhere\", from sources named \
         in its docs page. After each chapter its Python twin (python/, standard library only, \
         for Windows, macOS and Linux) runs the same experiment in the homework's language.",
    )?;
    n.say("The chapters:")?;
    for chapter in CHAPTERS {
        n.say(&format!("  {}", chapter.question))?;
    }
    Ok(())
}

/// Runs the chapter's Python twin and shows its findings; says plainly why when it cannot.
fn the_same_in_python(twin: Twin, n: &mut Narrator) -> std::io::Result<()> {
    n.section(&format!("The same in Python: {}", twin.shown_as()))?;
    match run_twin(twin) {
        Ok(run) => {
            n.record(&run)?;
            if let Some(on) = &run.measured_on {
                n.fact("measured on", on)?;
            }
            // Under the section's title, each finding is quoted as the script printed it.
            for result in &run.results {
                n.evidence(result)?;
            }
            Ok(())
        }
        Err(TwinError::NoPython) => n.skipped(&twin.shown_as(), &TwinError::NoPython.to_string()),
        Err(e) => n.warn(&e.to_string()),
    }
}

/// Runs `twin`; the secure chat's twin gets a fresh lab CA and server certificate, in a
/// temporary folder removed afterwards.
fn run_twin(twin: Twin) -> Result<TwinRun, TwinError> {
    if twin != TWINS[4] {
        return lab_kit::twin::run(twin, &[], TWIN_DEADLINE);
    }
    let dir = std::env::temp_dir().join(format!("socket-lab-twin-certs-{}", std::process::id()));
    let written = lab_kit::pki::LabPki::generate("twin")
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|pki| {
            pki.write_to(&dir, true)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
    let result = match written {
        Ok(files) => lab_kit::twin::run(twin, &[OsString::from(&files.dir)], TWIN_DEADLINE),
        Err(source) => Err(TwinError::Io {
            script: twin.shown_as(),
            source,
        }),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// True if this Linux kernel is WSL's (its release names Microsoft, e.g.
/// `5.15.153.1-microsoft-standard-WSL2`).
fn is_wsl(kernel_release: &str) -> bool {
    kernel_release.to_ascii_lowercase().contains("microsoft")
}

/// True if `error` (or what caused it) is a write to a closed pipe.
fn closed_stdout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_wsl;

    #[test]
    fn wsl_is_recognised_by_its_kernel_release() {
        assert!(is_wsl("5.15.153.1-microsoft-standard-WSL2\n"));
        assert!(is_wsl("4.4.0-19041-Microsoft"));
        assert!(!is_wsl("6.18.44-fc-v1098"));
        assert!(!is_wsl(""));
    }
}
