//! Lab 3: what does `sleep` really do?
//!
//! The homework asks about Python's `time.sleep()`. The usual answer, "it adds a delay and
//! then the rest of the program runs", is true but misses what matters for networked
//! programs. This lab measures, on real sockets and real threads:
//!
//! - [`accuracy`]: a sleep lasts **at least** the requested time, never less; the overshoot is
//!   the kernel's timer slack plus scheduling delay, and it grows on a loaded machine.
//! - [`threads`]: a sleep suspends only the calling thread; the rest of the process runs on.
//! - [`cpu`]: a sleeping thread uses (almost) no CPU; a busy-wait of the same length burns it.
//! - [`kernel_works`]: while a server sleeps, the kernel completes a client's TCP handshake
//!   and stores its bytes in the receive buffer; they are all there when the sleep ends.
//! - [`servers`]: a single-threaded server that sleeps makes every client wait; a thread per
//!   client does not.
//! - [`pacing`]: what sleep is for (pacing, backoff) and what it is not for (waiting for data:
//!   a blocking `recv` wakes when the data arrives, not when a guess runs out).
//! - [`syscall`]: Rust's `thread::sleep` and Python's `time.sleep` are the same kernel service,
//!   `clock_nanosleep` on Linux with Python 3.11+, as `strace` shows (other systems and
//!   Python versions ask for the same service with another call: `docs/03-sleep.md`).
//!
//! Each experiment is a function returning a plain, serializable report; [`narrate`] turns
//! the reports into the classroom narration, and [`chapter`] runs them all for the tour.
//! Where packets may be captured (root or `CAP_NET_RAW`), [`on_the_wire`] shows and checks
//! the packets of [`kernel_works`]: the client's data acknowledged while the server sleeps.

pub mod accuracy;
pub mod cpu;
pub mod error;
pub mod kernel_works;
pub mod narrate;
pub mod on_the_wire;
pub mod pacing;
pub mod servers;
pub mod syscall;
pub mod threads;

use std::io;
use std::time::Duration;

pub use error::Error;
use lab_capture::Chapter;
use lab_kit::narrate::Narrator;
use lab_kit::probe::{Probe, ProbeFn};
use lab_kit::twin::Twin;

/// Chapter 3 of the tour: the question, its answer, and how to run it (`socket-lab sleep`).
pub const CHAPTER: Chapter = Chapter {
    slug: "sleep",
    number: 3,
    question: "What does sleep do? (Python's time.sleep(), Rust's std::thread::sleep)",
    summary: "what sleep does (Python's time.sleep, Rust's thread::sleep)",
    answer: "measured here (Linux): sleep asks the kernel (clock_nanosleep, the \
same call from Python 3.11+ and Rust) to take the calling thread off the CPU until a timer fires. It lasts at least the \
requested time, never less, and usually a little more (timer slack and scheduling, more on a \
busy machine). It suspends only the calling thread and costs almost no CPU while it waits. The \
kernel does not sleep with it: new connections complete their handshake and wait in the \
accept queue, incoming bytes wait in the receive buffer, so a sleeping server delays its \
clients' answers, and a single-threaded one delays every client queued behind it. Use sleep to pace or to back off between retries; to wait \
for data or for a server, use a blocking call, a timeout or readiness instead.",
    elsewhere: "on Windows, Python 3.10 and older sleep in whole timer ticks of \
about 15.6 ms (time.sleep(0.001) lasts about 15 ms); 3.11+ uses a high-resolution waitable \
timer; Win32 Sleep may even return early. Python 3.10 on Linux slept in select(). In asyncio \
code time.sleep blocks the whole event loop: use await asyncio.sleep(). Measure with \
time.perf_counter(), not time.time(). Sources: docs/03-sleep.md, \"On your machine\".",
    docs: "docs/03-sleep.md",
    twin: Twin {
        script: "q3_sleep.py",
        needs_lab_certificates: false,
    },
    probes: PROBES,
    run: |n, probe, tap| Ok(chapter(n, probe, tap)?),
};

impl Error {
    /// A `map_err` adapter that says what was being done: `.map_err(Error::io("bind"))`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// How long the experiments run; the defaults suit a classroom, [`Options::quick`] suits
/// tests and impatient students.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How many times each requested duration is slept in the accuracy experiment.
    pub accuracy_repeats: usize,
    /// How long the sleep (and the spin) lasts in the thread and CPU experiments.
    pub long_sleep: Duration,
    /// How long each server sleeps per client, and before `recv`.
    pub server_sleep: Duration,
    /// Whether the packets of the kernel-keeps-working experiment are captured (off by
    /// default).
    pub wiretap: lab_capture::Wiretap,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accuracy_repeats: 7,
            long_sleep: Duration::from_millis(200),
            server_sleep: Duration::from_millis(200),
            wiretap: lab_capture::Wiretap::off(),
        }
    }
}

impl Options {
    /// Fewer repetitions; the sleeps themselves keep their length so the lessons hold.
    pub fn quick() -> Self {
        Options {
            accuracy_repeats: 3,
            ..Options::default()
        }
    }
}

/// Which experiments to run (all of them in the tour). Each variant's comment is also its
/// help on the command line, where it is named as `#[value(name)]` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Requested vs measured sleep: at least, never less.
    Accuracy,
    /// Another thread keeps counting while this one sleeps.
    #[value(name = "threads")]
    OnlyCallingThread,
    /// CPU time of a sleep vs a busy-wait.
    #[value(name = "cpu")]
    CpuCost,
    /// A client connects and sends while the server sleeps.
    #[value(name = "kernel")]
    KernelKeepsWorking,
    /// A sleeping single-threaded server vs a thread per client.
    #[value(name = "servers")]
    SleepingServer,
    /// Pacing with sleep; waiting with a blocking recv.
    Pacing,
    /// strace: Rust's and Python's sleep are the same system call.
    Syscall,
}

impl Experiment {
    /// Every experiment, in the chapter's order.
    pub const ALL: &[Experiment] = &[
        Experiment::Accuracy,
        Experiment::OnlyCallingThread,
        Experiment::CpuCost,
        Experiment::KernelKeepsWorking,
        Experiment::SleepingServer,
        Experiment::Pacing,
        Experiment::Syscall,
    ];
}

/// The probes this lab re-runs under `strace` (`lab-sleep __probe thread-sleep 10000`).
pub const PROBES: &[(&str, ProbeFn)] = &[(syscall::SLEEP_PROBE, syscall::sleep_probe)];

/// The tour's chapter: every experiment with default options, packets captured by `tap`.
pub fn chapter(
    narrator: &mut Narrator,
    probe: &Probe,
    tap: &lab_capture::Wiretap,
) -> Result<(), Error> {
    let options = Options {
        wiretap: tap.clone(),
        ..Options::default()
    };
    run(Experiment::ALL, &options, probe, narrator)
}

/// Runs `experiments` with `options`, narrating each (or printing one JSON line each).
pub fn run(
    experiments: &[Experiment],
    options: &Options,
    probe: &Probe,
    narrator: &mut Narrator,
) -> Result<(), Error> {
    narrator.heading(&CHAPTER.heading())?;
    for experiment in experiments {
        match experiment {
            Experiment::Accuracy => {
                let report = accuracy::measure_sleep_accuracy(
                    accuracy::STANDARD_REQUESTS,
                    options.accuracy_repeats,
                );
                narrate::accuracy(&report, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::OnlyCallingThread => {
                let report = threads::count_while_main_thread_sleeps(options.long_sleep)?;
                narrate::only_calling_thread(&report, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::CpuCost => {
                let report = cpu::compare_sleep_with_spin(options.long_sleep)?;
                narrate::cpu_cost(&report, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::KernelKeepsWorking => {
                let report = kernel_works::client_during_server_sleep_watched(
                    options.server_sleep,
                    &options.wiretap,
                )?;
                narrate::kernel_keeps_working(&report, narrator)?;
                on_the_wire::kernel_keeps_working(&report, &options.wiretap, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::SleepingServer => {
                let report = servers::compare_server_designs(options.server_sleep)?;
                narrate::sleeping_server(&report, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::Pacing => {
                let report =
                    pacing::paced_sender_blocking_receiver(pacing::MESSAGES, pacing::INTERVAL)?;
                narrate::pacing(&report, narrator)?;
                narrator.record(&report)?;
            }
            Experiment::Syscall => {
                let report = syscall::trace_sleep_calls(probe);
                narrate::syscall(&report, narrator)?;
                narrator.record(&report)?;
            }
        }
    }
    narrator.answer(CHAPTER.answer)?;
    narrator.elsewhere(CHAPTER.elsewhere)?;
    Ok(())
}
