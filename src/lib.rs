//! The socket-lab tour: every chapter, one after another, narrated for a classroom.
//!
//! Each chapter answers one of five classic homework questions about sockets by running a
//! real experiment on this machine and printing what it measured. The chapters live in the
//! lab crates; this crate only lists them ([`CHAPTERS`]) and runs them in order, each with
//! its Python twin beside it. The binary (`src/main.rs`) parses the command line and calls
//! [`run`].
//!
//! Layout of the workspace, bottom to top:
//!
//! - `crates/lab-kit`: what every lab shares (narration, errors, child processes, strace,
//!   the certificate authority) and the lab contract, [`lab_kit::chapter::Chapter`].
//! - `crates/lab-capture`: the packets on the wire, for the chapters that send any.
//! - `crates/lab-refused` (question 1), `crates/lab-echo` (questions 2 and 4),
//!   `crates/lab-sleep` (question 3), `crates/lab-chat` (question 5): one library per lab,
//!   each exporting its `CHAPTER`, with a thin binary of its own.
//! - `crates/lab-grade`: grading students' programs over the wire (not part of the tour).
//! - `crates/lab-test-support`: what the tests share (a dev-dependency only).
//! - this crate: the tour, and [`html`], the tour as one page.

pub mod html;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lab_capture::Chapter;
use lab_kit::chapter::ChapterError;
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::{Probe, ProbeFn};
use lab_kit::twin::{Twin, TwinError, TwinRun};

/// The chapters, in the order of the homework's questions. Adding a lab is adding its
/// `CHAPTER` here (see `CONTRIBUTING.md`): the subcommands, `--help`, the probes and the
/// Python twins all follow from this list.
pub const CHAPTERS: &[&Chapter] = &[
    &lab_refused::CHAPTER,
    &lab_echo::LOCALHOST_CHAPTER,
    &lab_sleep::CHAPTER,
    &lab_echo::CALLS_CHAPTER,
    &lab_chat::CHAPTER,
];

/// How long a Python twin may take before the tour stops it and goes on.
const TWIN_DEADLINE: Duration = Duration::from_secs(120);

/// Every chapter's probes, so that the tour binary can re-run any of them under strace.
pub fn probes() -> Vec<(&'static str, ProbeFn)> {
    CHAPTERS
        .iter()
        .flat_map(|c| c.probes.iter().copied())
        .collect()
}

/// The chapter whose subcommand is `slug`.
pub fn chapter(slug: &str) -> Option<&'static Chapter> {
    CHAPTERS.iter().copied().find(|c| c.slug == slug)
}

/// What the tour is asked to do.
#[derive(Debug, Default)]
pub struct TourOptions {
    /// One chapter (by slug), or None for the whole tour.
    pub chapter: Option<String>,
    /// One JSON object per experiment per line instead of the narration.
    pub json: bool,
    /// `--pcap DIR` and `--no-capture`.
    pub capture: lab_capture::CaptureArgs,
    /// Also write the run as one HTML page.
    pub html: Option<PathBuf>,
}

/// Why the tour stopped.
#[derive(Debug, thiserror::Error)]
pub enum TourError {
    #[error("there is no chapter `{0}`; run socket-lab --help for the list")]
    UnknownChapter(String),
    #[error("cannot find its own executable to run probes: {0}")]
    Probe(std::io::Error),
    #[error(transparent)]
    Wiretap(lab_capture::Error),
    #[error("chapter \"{question}\" failed: {source}")]
    Chapter {
        question: &'static str,
        source: ChapterError,
    },
    /// `socket-lab | head`: the reader left; nothing more to say to anyone.
    #[error("the reader of the narration went away")]
    ReaderLeft,
    #[error("cannot write the HTML report {}: {source} (choose a file you may write)", path.display())]
    Html {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the tour (or one chapter of it) as `options` ask, narrating to standard output.
pub fn run(options: &TourOptions) -> Result<(), TourError> {
    let chosen: Vec<&Chapter> = match &options.chapter {
        None => CHAPTERS.to_vec(),
        Some(slug) => vec![chapter(slug).ok_or_else(|| TourError::UnknownChapter(slug.clone()))?],
    };
    let probe = Probe::current().map_err(TourError::Probe)?;
    let wiretap = options.capture.wiretap().map_err(TourError::Wiretap)?;
    let (mut narrator, recorded) =
        Narrator::stdout(Format::from_json_flag(options.json)).recording();
    if options.chapter.is_none() && introduce_the_tour(&mut narrator).is_err() {
        return Err(TourError::ReaderLeft);
    }
    for chapter in chosen {
        // A fresh copy of the wiretap per chapter: each chapter says once if it cannot capture.
        let result = (chapter.run)(&mut narrator, &probe, &wiretap.clone())
            .and_then(|()| Ok(the_same_in_python(chapter.twin, &mut narrator)?));
        if let Err(source) = result {
            if lab_kit::narrate::is_closed_output(source.as_ref()) {
                return Err(TourError::ReaderLeft);
            }
            let _ = narrator.flush();
            return Err(TourError::Chapter {
                question: chapter.question,
                source,
            });
        }
    }
    let _ = narrator.flush();
    if let Some(path) = &options.html {
        std::fs::write(path, html::page(&recorded.blocks())).map_err(|source| TourError::Html {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
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
        n.say(&format!("  {}. {}", chapter.number, chapter.question))?;
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
    if !twin.needs_lab_certificates {
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
