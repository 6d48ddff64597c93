//! Lab 1: what happens, exactly, when a TCP client connects and no server is running?
//!
//! A common answer says "the client reports that the server cannot be found and keeps
//! retrying until it appears". This lab shows what really happens, on real sockets, with
//! the kernel's own evidence:
//!
//! 1. [`refused`]: on Linux the connect fails *at once* with `ConnectionRefused` (errno
//!    111): the server's kernel answered the SYN with a reset, and the counters say so.
//!    (Windows resends the SYN and fails after about 2 s: see the docs' per-OS table.)
//! 2. [`retry`]: retrying exists only as a loop someone writes.
//! 3. [`backlog`]: a different failure, silence: a full accept queue drops the SYN, the
//!    client's kernel sends it again after 1 s, and the client times out at its deadline.
//! 4. [`udp`]: UDP has no connection to refuse; the refusal shows up on the next `recv`.
//! 5. [`kernel_view`]: `strace` shows the one `connect()` system call and its answer (and
//!    why it cannot show retransmissions: [`retransmissions`]).
//! 6. [`host_down`]: a host that is down on the client's own link is neither refused nor a
//!    timeout of ours: nobody answers ARP, and `connect()` fails with `EHOSTUNREACH`.
//!
//! Where the process may capture packets (root or `CAP_NET_RAW`), experiments 1, 3 and 4 also
//! show their packets on the wire, and [`on_the_wire`] checks what they prove.
//!
//! Each experiment returns a plain report (with `lab_kit::attempt::Attempt`s); [`narrate`]
//! prints it.

pub mod backlog;
pub mod error;
pub mod host_down;
pub mod kernel_view;
pub mod narrate;
pub mod on_the_wire;
pub mod refused;
pub mod retransmissions;
pub mod retry;
pub mod udp;

use std::time::Duration;

pub use error::Error;
use error::setup;
use lab_capture::{Chapter, Wiretap};
use lab_kit::narrate::Narrator;
use lab_kit::probe::{Probe, ProbeFn};
use lab_kit::twin::Twin;

/// Chapter 1 of the tour: the question, its answer, and how to run it (`socket-lab refused`).
pub const CHAPTER: Chapter = Chapter {
    slug: "refused",
    number: 1,
    question: "I ran the client and no server is running. What happens, exactly?",
    summary: "connecting when no server is running (refused, timed out, retried)",
    // The short answer, printed at the end of the chapter: what was just measured here.
    answer: "measured here (Linux): the client's SYN reached the server's machine, \
    whose kernel found no socket listening on that port and answered at once with a reset \
    (RST). connect() failed within microseconds with ECONNREFUSED (errno 111; \
    ConnectionRefused in Rust, ConnectionRefusedError in Python), and the SYN was sent once. \
    The error goes back to the program, once: only a loop the programmer wrote tries again. \
    When nothing answers at all (a full accept queue on Linux, a firewall that drops packets) \
    the kernel sends the SYN again (first after 1 second, inside the same connect()) and the \
    failure is a timeout, after as long as the client was willing to wait. A host that is \
    down on the client's own network is a third case: nobody answers ARP, and connect() fails \
    with EHOSTUNREACH (errno 113) after about 3 seconds.",
    // What differs on the students' other systems, from sources (docs/01, "On your machine").
    elsewhere: "macOS also refuses at once (errno 61, ECONNREFUSED). Windows \
    sends the SYN again after the reset and raises ConnectionRefusedError [WinError 10061] \
    only after about 2 seconds (Microsoft KB 175523; about 2,000 ms in public CI runs): on Windows \
    the client does wait, but it still gives up after those 2 seconds: it does not wait until a server appears. Windows also \
    refuses a connection to a full accept queue instead of ignoring it, and a Windows \
    machine whose firewall drops the SYN gives a timeout (WinError 10060). Sources: \
    docs/01-connection-refused.md, \"On your machine\".",
    docs: "docs/01-connection-refused.md",
    twin: Twin {
        script: "q1_refused.py",
        needs_lab_certificates: false,
    },
    probes: PROBES,
    run: |n, probe, tap| Ok(chapter(n, probe, tap)?),
};

/// The probes this lab re-runs under strace.
pub const PROBES: &[(&str, ProbeFn)] = &[(
    kernel_view::REFUSED_CONNECT_PROBE,
    kernel_view::refused_connect,
)];

/// The experiments of this lab, in the order of the chapter. Each variant's comment is
/// also its help on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// 1. connect to a closed port: refused at once.
    Refused,
    /// 2. a retry loop that finds a server which starts late.
    Retry,
    /// 3. a full accept queue: no answer, timed out at the deadline.
    Backlog,
    /// 4. UDP to a closed port: send succeeds, recv is refused.
    Udp,
    /// 5. the refused connect() as strace records it.
    Strace,
    /// 6. a host that is down on the client's own link: no ARP answer, EHOSTUNREACH (root).
    HostDown,
}

impl Experiment {
    /// All of them, in order.
    pub const ALL: &[Experiment] = &[
        Experiment::Refused,
        Experiment::Retry,
        Experiment::Backlog,
        Experiment::Udp,
        Experiment::Strace,
        Experiment::HostDown,
    ];
}

/// The knobs of the experiments.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the client waits for the full-backlog listener (experiment 3).
    pub backlog_deadline: Duration,
    /// How long after the client's first attempt the late server starts (experiment 2).
    pub server_delay: Duration,
    /// The client's retry loop (experiment 2).
    pub retry: retry::RetryPolicy,
    /// How long the UDP socket waits for the refusal (experiment 4).
    pub udp_deadline: Duration,
    /// The client's own deadline for the host that is down (experiment 6): far longer than
    /// ARP's 3 s, so that the kernel's answer, not ours, ends the wait.
    pub host_down_deadline: Duration,
    /// Whether the packets of experiments 1, 3 and 4 are captured (off by default).
    pub wiretap: Wiretap,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backlog_deadline: Duration::from_millis(2500),
            server_delay: Duration::from_millis(60),
            retry: retry::RetryPolicy::default(),
            udp_deadline: Duration::from_secs(2),
            host_down_deadline: Duration::from_secs(20),
            wiretap: Wiretap::off(),
        }
    }
}

/// Runs `experiment` and narrates it.
pub fn run_experiment(
    experiment: Experiment,
    options: &Options,
    probe: &Probe,
    n: &mut Narrator,
) -> Result<(), Error> {
    match experiment {
        Experiment::Refused => {
            let report = refused::connect_to_closed_port_watched(&options.wiretap)
                .map_err(setup("refused"))?;
            narrate::refused(&report, n)?;
            on_the_wire::refused(report.wire.as_ref(), &options.wiretap, n)?;
        }
        Experiment::Retry => {
            let report = retry::retry_until_server_starts(options.server_delay, options.retry)
                .map_err(setup("retry"))?;
            narrate::retry(&report, &options.retry, n)?;
        }
        Experiment::Backlog => {
            let report = backlog::connect_to_full_backlog_watched(
                options.backlog_deadline,
                &options.wiretap,
            )
            .map_err(setup("backlog"))?;
            narrate::backlog(&report, n)?;
            on_the_wire::backlog(report.wire.as_ref(), &options.wiretap, n)?;
        }
        Experiment::Udp => {
            let report =
                udp::send_to_closed_udp_port_watched(options.udp_deadline, &options.wiretap)
                    .map_err(setup("udp"))?;
            narrate::udp(&report, n)?;
            on_the_wire::udp(report.wire.as_ref(), &options.wiretap, n)?;
        }
        Experiment::Strace => {
            let result = kernel_view::trace_refused_connect(probe);
            narrate::strace(&result, n)?;
        }
        Experiment::HostDown => {
            let result = host_down::connect_to_a_host_that_is_down(options.host_down_deadline);
            narrate::host_down(&result, n)?;
        }
    }
    Ok(())
}

/// Runs the chosen experiments under the chapter's heading, then gives the answer.
pub fn run(
    experiments: &[Experiment],
    options: &Options,
    probe: &Probe,
    n: &mut Narrator,
) -> Result<(), Error> {
    n.heading(&CHAPTER.heading())?;
    for &experiment in experiments {
        run_experiment(experiment, options, probe, n)?;
    }
    n.answer(CHAPTER.answer)?;
    n.elsewhere(CHAPTER.elsewhere)?;
    n.flush()?;
    Ok(())
}

/// The tour's chapter 1: every experiment with its default settings, its packets captured
/// by `tap`.
pub fn chapter(n: &mut Narrator, probe: &Probe, tap: &Wiretap) -> Result<(), Error> {
    let options = Options {
        wiretap: tap.clone(),
        ..Options::default()
    };
    run(Experiment::ALL, &options, probe, n)
}
