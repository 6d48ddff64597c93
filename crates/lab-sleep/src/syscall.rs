//! The same kernel service underneath: `clock_nanosleep`.
//!
//! Neither Rust nor Python can put a thread to sleep by itself: only the kernel can take a
//! thread off the CPU and wake it later. Both languages' sleep functions end in the same
//! system call, `clock_nanosleep` (or the older `nanosleep`), and `strace` shows it. The
//! details differ: Rust's `thread::sleep` asks for a *relative* sleep ("10 ms from now"),
//! Python 3.11+ computes a deadline and asks for an *absolute* one on the monotonic clock
//! (`TIMER_ABSTIME`), so that a sleep interrupted by a signal resumes to the same deadline.
//! A sleep of zero shows another difference: Rust returns without asking the kernel at all.
//!
//! Python before 3.11 slept with `select()` and no file descriptors; that is traced too.
//! This is Linux: macOS has no `clock_nanosleep` (Python 3.11+ uses `nanosleep()` there), and
//! Windows sleeps in a waitable timer (Python 3.11+) or in whole timer ticks (3.10 and older).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab_kit::child::{RunningChild, Stream};
use lab_kit::probe::Probe;
use lab_kit::strace::{self, StraceUnavailable};
use serde::Serialize;

/// The probe that sleeps: `lab-sleep __probe thread-sleep MICROSECONDS`.
pub const SLEEP_PROBE: &str = "thread-sleep";
/// The system calls that put a thread to sleep, as strace names them.
pub const SLEEP_SYSCALLS: &[&str] = &["clock_nanosleep", "nanosleep", "select", "pselect6"];
/// How long each traced program is given (strace and a cold Python start are slow on a
/// loaded machine; normally each run takes well under a second).
const TRACE_DEADLINE: Duration = Duration::from_secs(30);

/// The probe: sleeps the number of microseconds in `args[0]` with `std::thread::sleep`.
pub fn sleep_probe(args: &[String]) -> i32 {
    let Some(Ok(micros)) = args.first().map(|a| a.parse::<u64>()) else {
        eprintln!("usage: lab-sleep __probe {SLEEP_PROBE} MICROSECONDS");
        return 2;
    };
    std::thread::sleep(Duration::from_micros(micros));
    0
}

/// Which language's sleep was traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Rust,
    Python,
}

impl Language {
    /// The language's name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
        }
    }
}

/// What happened to one traced sleep.
#[derive(Debug, Clone, Serialize)]
pub struct TracedSleep {
    pub language: Language,
    /// The sleep the program asked for, in microseconds.
    pub requested_us: u64,
    /// The source line that slept, as a reader would write it.
    pub code: String,
    /// `traced` or `skipped`.
    pub outcome: &'static str,
    /// Why it was skipped (strace or python3 missing, strace not permitted, …).
    pub skipped_reason: Option<String>,
    /// strace's lines for the sleep system calls, as strace wrote them (without the process
    /// id that `strace -f -o FILE` puts in front of each line).
    pub sleep_lines: Vec<String>,
    /// From the first `clock_nanosleep` line: which clock, and whether the program asked to
    /// sleep *until* a time (`TIMER_ABSTIME`) rather than *for* a time.
    pub clock: Option<String>,
    pub absolute_deadline: Option<bool>,
    /// Whether the traced program exited successfully.
    pub program_succeeded: bool,
}

impl TracedSleep {
    fn skipped(language: Language, requested_us: u64, code: String, why: String) -> Self {
        TracedSleep {
            language,
            requested_us,
            code,
            outcome: "skipped",
            skipped_reason: Some(why),
            sleep_lines: Vec::new(),
            clock: None,
            absolute_deadline: None,
            program_succeeded: false,
        }
    }

    /// The names of the sleep system calls seen, in order.
    pub fn syscall_names(&self) -> Vec<&str> {
        self.sleep_lines
            .iter()
            .filter_map(|line| strace::syscall_name(line))
            .collect()
    }
}

/// The result of the same-syscall experiment.
#[derive(Debug, Clone, Serialize)]
pub struct SyscallReport {
    pub experiment: &'static str,
    /// The strace filter used.
    pub strace_expression: String,
    /// Rust 10 ms, Rust 0, Python 10 ms, Python 0.
    pub runs: Vec<TracedSleep>,
}

impl SyscallReport {
    /// The run for `language` and `requested_us`, if it is part of the report.
    pub fn run(&self, language: Language, requested_us: u64) -> Option<&TracedSleep> {
        self.runs
            .iter()
            .find(|r| r.language == language && r.requested_us == requested_us)
    }
}

/// The requested sleeps: 10 ms, long enough to be unmistakable, and zero.
pub const TRACED_REQUESTS_US: &[u64] = &[10_000, 0];

/// Traces Rust's `thread::sleep` (via `probe`) and Python's `time.sleep`, each for 10 ms and
/// for zero, keeping strace's lines for the sleep system calls.
pub fn trace_sleep_calls(probe: &Probe) -> SyscallReport {
    let expression = format!("trace={}", SLEEP_SYSCALLS.join(","));
    let strace_problem = strace::locate()
        .err()
        .map(|e: StraceUnavailable| e.to_string());
    // Without strace there is nothing to show for Python either: say why once.
    let python = match &strace_problem {
        Some(why) => Err(why.clone()),
        None => locate_python(),
    };
    let mut runs = Vec::new();
    for &requested_us in TRACED_REQUESTS_US {
        let code = format!("std::thread::sleep(Duration::from_micros({requested_us}))");
        let run = match &strace_problem {
            Some(why) => TracedSleep::skipped(Language::Rust, requested_us, code, why.clone()),
            None => {
                let micros = requested_us.to_string();
                let args = probe.args(SLEEP_PROBE, &[micros.as_str()]);
                traced(
                    Language::Rust,
                    requested_us,
                    code,
                    probe.exe(),
                    &args,
                    &expression,
                )
            }
        };
        runs.push(run);
    }
    for &requested_us in TRACED_REQUESTS_US {
        let code = format!("time.sleep({})", requested_us as f64 / 1e6);
        let run = match &python {
            Err(why) => TracedSleep::skipped(Language::Python, requested_us, code, why.clone()),
            Ok(python) => {
                let script = format!("import time; {code}");
                let args = ["-c", script.as_str()];
                traced(
                    Language::Python,
                    requested_us,
                    code,
                    python,
                    &args,
                    &expression,
                )
            }
        };
        runs.push(run);
    }
    SyscallReport {
        experiment: "same_syscall_underneath",
        strace_expression: expression,
        runs,
    }
}

fn traced(
    language: Language,
    requested_us: u64,
    code: String,
    program: &Path,
    args: &[&str],
    expression: &str,
) -> TracedSleep {
    match strace::trace(program, args, expression, TRACE_DEADLINE) {
        Ok(record) => {
            let sleep_lines: Vec<String> = record
                .lines
                .iter()
                .map(|line| strace::without_pid(line).to_string())
                .filter(|line| {
                    strace::syscall_name(line).is_some_and(|name| SLEEP_SYSCALLS.contains(&name))
                })
                .collect();
            let clock_and_flags = sleep_lines
                .iter()
                .find_map(|line| clock_nanosleep_args(line));
            TracedSleep {
                language,
                requested_us,
                code,
                outcome: "traced",
                skipped_reason: None,
                clock: clock_and_flags.map(|(clock, _)| clock.to_string()),
                absolute_deadline: clock_and_flags
                    .map(|(_, flags)| flags.contains("TIMER_ABSTIME")),
                sleep_lines,
                program_succeeded: record.success,
            }
        }
        Err(e) => TracedSleep::skipped(language, requested_us, code, e.to_string()),
    }
}

/// The clock and the flags of a `clock_nanosleep(CLOCK, FLAGS, …)` line.
fn clock_nanosleep_args(line: &str) -> Option<(&str, &str)> {
    let args = line.trim_start().strip_prefix("clock_nanosleep(")?;
    let mut parts = args.splitn(3, ',').map(str::trim);
    Some((parts.next()?, parts.next()?))
}

/// The real Python 3 interpreter: `python3` from `PATH`, asked for `sys.executable`, so that
/// wrappers such as pyenv's shims are not traced along with it.
fn locate_python() -> Result<PathBuf, String> {
    let mut command = Command::new("python3");
    command.args(["-c", "import sys; print(sys.executable)"]);
    let mut child = RunningChild::spawn(&mut command).map_err(|_| {
        "python3 is not installed (on Debian/Ubuntu: apt-get install python3)".to_string()
    })?;
    child.close_stdin();
    match child.wait_timeout(TRACE_DEADLINE) {
        Ok(Some(status)) if status.success() => {}
        _ => return Err("python3 did not run `import sys` successfully".to_string()),
    }
    let path = child.text(Stream::Stdout).trim().to_string();
    if path.is_empty() {
        return Err("python3 did not say where its interpreter is".to_string());
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_sleep_lines() {
        let line =
            "14950 clock_nanosleep(CLOCK_MONOTONIC, 0, {tv_sec=0, tv_nsec=10000000}, 0x7ffd) = 0";
        let line = strace::without_pid(line);
        assert!(line.starts_with("clock_nanosleep("));
        assert_eq!(clock_nanosleep_args(line), Some(("CLOCK_MONOTONIC", "0")));
        let python =
            "clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, {tv_sec=960, tv_nsec=1}, NULL) = 0";
        assert_eq!(
            clock_nanosleep_args(python),
            Some(("CLOCK_MONOTONIC", "TIMER_ABSTIME"))
        );
    }
}
