//! What socket-lab's tests share, and its programs do not need.
//!
//! The model is cargo's own `cargo-test-support`: a crate that only ever appears under
//! `[dev-dependencies]`, so that nothing here is compiled into a lab or the tour. Before it
//! existed, each lab's `tests/common` grew its own copy of the snapshot filters, the
//! narration capture and the "start this server and wait until it listens" dance, and the
//! redactions lived in production code.
//!
//! - [`REDACTIONS`] / [`redactions`]: what varies from run to run, hidden in snapshots.
//! - [`assert_redacted_snapshot!`]: the one snapshot assertion.
//! - [`narration`]: a narration captured as plain text.
//! - [`bin!`] and [`spawn_listening`]: the one way to start a binary of the crate under test.
//! - [`output_read_by_head`] and [`output_with_stdout_closed`]: a program whose reader
//!   leaves (`program | head`), which must end quietly.
//! - [`skip_unless_ci`], [`wiretap`], [`python`]: a test that needs what a machine may lack
//!   says so and passes on a laptop, and fails in CI, where `.ci/run` installs everything.

use std::fmt::Display;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lab_capture::Wiretap;
use lab_kit::child::{RunningChild, Stream};
use lab_kit::narrate::{Format, Narrator};

#[doc(hidden)]
pub use insta;

/// How long a test waits for a program to be ready before it fails. Generous: the CI
/// machine has two cores, often shared by several test binaries at once.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Snapshot filters: `(regex, replacement)` pairs in the form insta's `filters` setting
/// takes. A lab's narration contains live measurements: ports chosen by the kernel,
/// durations, process ids, temporary paths. Snapshots pin everything else, word for word.
/// Order matters: more specific patterns come first.
pub const REDACTIONS: &[(&str, &str)] = &[
    // Temporary paths (before anything inside them is redacted).
    (r"/tmp/[^\s'`)]+", "[TMP]"),
    // IPv4 and IPv6 socket addresses: keep the address (127.0.0.1 vs 127.0.0.2 matters),
    // hide the port the kernel chose.
    (r"\b((?:\d{1,3}\.){3}\d{1,3}):\d{1,5}\b", "$1:[PORT]"),
    (r"\[([0-9a-fA-F:.]+)\]:\d{1,5}\b", "[$1]:[PORT]"),
    // strace's view of an address: sin_port=htons(41234), sin6_port=htons(41234).
    (r"port=htons\(\d+\)", "port=htons([PORT])"),
    (r"\b[Pp]ort \d{1,5}\b", "port [PORT]"),
    // Process ids, as in "pid 1234" and strace's "[pid  1234]".
    (r"\[pid\s+\d+\]", "[pid [PID]]"),
    (r"\bpid[ =:]\s*\d+", "pid [PID]"),
    // Durations: 16 µs, 1.5 ms, 44ms, 2.000s, 1.2µs.
    (r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s)\b", "[DURATION]"),
];

/// [`REDACTIONS`] as an owned vector, the form `insta::with_settings!` wants. A lab's own
/// filters are appended after them, never instead of them.
pub fn redactions() -> Vec<(&'static str, &'static str)> {
    REDACTIONS.to_vec()
}

/// Pins `text` as the snapshot `name`, with [`REDACTIONS`] applied, then `extra` filters
/// if given (a `Vec<(&str, &str)>`, the lab's own, applied after the shared ones).
///
/// A macro rather than a function so that insta files the snapshot beside the test that
/// asserts it (`tests/snapshots/`), named after that test's module.
#[macro_export]
macro_rules! assert_redacted_snapshot {
    ($name:expr, $text:expr) => {
        $crate::assert_redacted_snapshot!(
            $name,
            $text,
            ::std::vec::Vec::<(&'static str, &'static str)>::new()
        )
    };
    ($name:expr, $text:expr, $extra:expr) => {{
        let mut filters = $crate::redactions();
        filters.extend($extra);
        $crate::insta::with_settings!({ filters => filters }, {
            $crate::insta::assert_snapshot!($name, $text);
        });
    }};
}

/// The path of binary `name` of the package under test, as cargo built it for this test
/// run (`CARGO_BIN_EXE_<name>`). The one way the tests launch a binary:
/// `Command::new(bin!("lab-echo"))`, or `assert_cmd::Command::new(bin!("lab-echo"))` for
/// assertions on its output.
#[macro_export]
macro_rules! bin {
    ($name:literal) => {
        ::std::path::Path::new(env!(concat!("CARGO_BIN_EXE_", $name)))
    };
}

/// Runs `narrate` on a narrator that writes plain text into memory; returns that text.
///
/// # Panics
/// If narrating fails: writing into memory cannot, so that is a bug in the test.
pub fn narration(narrate: impl FnOnce(&mut Narrator) -> std::io::Result<()>) -> String {
    let (mut narrator, captured) = Narrator::capture(Format::Text);
    if let Err(e) = narrate(&mut narrator) {
        panic!("narrating into memory failed: {e}");
    }
    captured.text()
}

/// Starts `command` (colours off) and waits for its `listening on ADDR` line.
///
/// # Panics
/// If it cannot start or never says it listens within [`PATIENCE`]; the panic quotes its
/// stderr. The child is killed and reaped when the returned value is dropped.
pub fn spawn_listening(mut command: Command) -> (RunningChild, SocketAddr) {
    command.env("NO_COLOR", "1");
    let child = match RunningChild::spawn(&mut command) {
        Ok(child) => child,
        Err(e) => panic!("cannot start {command:?}: {e}"),
    };
    match child.wait_for_listening(PATIENCE) {
        Some(addr) => (child, addr),
        None => panic!(
            "{} never said it was listening; its stderr:\n{}",
            child.program(),
            child.text(Stream::Stderr)
        ),
    }
}

/// Runs `program args…` as `program args… | head -n LINES` in a shell (colours off) and
/// returns the pipeline's output: head's exit status, the lines head let through, and the
/// program's stderr. After head has left, the program's next write fails with EPIPE.
///
/// # Panics
/// If `sh` cannot be started.
pub fn output_read_by_head(
    program: &std::path::Path,
    args: &[&str],
    lines: usize,
) -> std::process::Output {
    let script = format!(r#""$@" | head -n {lines}"#);
    let output = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(program)
        .args(args)
        .env("NO_COLOR", "1")
        .output();
    match output {
        Ok(output) => output,
        Err(e) => panic!("cannot run sh for `{} | head`: {e}", program.display()),
    }
}

/// Runs `command` (colours off) with its stdout a pipe whose reading end is closed before
/// the program writes anything: every write fails with EPIPE at once.
///
/// # Panics
/// If the command cannot be started.
pub fn output_with_stdout_closed(mut command: Command) -> std::process::Output {
    use std::process::Stdio;
    command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start {command:?}: {e}"),
    };
    drop(child.stdout.take());
    match child.wait_with_output() {
        Ok(output) => output,
        Err(e) => panic!("cannot wait for {command:?}: {e}"),
    }
}

/// Reports that `what` cannot run because of `why`: a visible `skipped:` line on a
/// developer's machine, a failure (panic) when the `CI` environment variable is set.
///
/// Some evidence needs a tool or a right that a machine may lack: `strace`, `openssl`,
/// `python3`, `ncat`, root for network namespaces. On a student's laptop such a test says
/// plainly what it skipped and why, and passes. In CI, `.ci/run` installs every one of
/// those tools, so a missing one is a broken CI, not a reason to skip.
pub fn skip_unless_ci(what: &str, why: impl Display) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} must run in CI, but cannot: {why} (.ci/run installs what the tests need)");
    }
    // Written to stderr directly, not with eprintln!: the test harness captures (and hides)
    // what a passing test prints with the print macros, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped: {what}: {why}");
}

/// A wiretap that captures (writing pcap files into `pcap_dir` if given), or `None` where
/// this process may not capture, after saying so with [`skip_unless_ci`] (CI runs as root).
pub fn wiretap(test: &str, pcap_dir: Option<PathBuf>) -> Option<Wiretap> {
    let tap = Wiretap::on(pcap_dir);
    match tap.unavailable() {
        Some(why) => {
            skip_unless_ci(test, why);
            None
        }
        None => Some(tap),
    }
}

/// True when a `python3` runs here; otherwise says that `test` is skipped (a failure in CI).
pub fn python(test: &str) -> bool {
    let found = lab_kit::twin::python_version().is_some();
    if !found {
        skip_unless_ci(test, "no python3 here");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redactions_hide_what_varies_and_keep_the_address() {
        let text = "connect to 127.0.0.1:41234 refused after 16 µs (pid 991, /tmp/x1)";
        let mut redacted = text.to_string();
        for (pattern, replacement) in REDACTIONS {
            let regex = insta_regex(pattern);
            redacted = regex.replace_all(&redacted, *replacement).into_owned();
        }
        assert_eq!(
            redacted,
            "connect to 127.0.0.1:[PORT] refused after [DURATION] (pid [PID], [TMP])"
        );
    }

    #[test]
    fn a_snapshot_is_asserted_with_the_redactions() {
        assert_redacted_snapshot!("redacted", "listening on 127.0.0.1:5555 after 3 ms");
    }

    #[test]
    fn narration_is_captured_as_plain_text() {
        let text = narration(|n| n.fact("port", 80));
        assert!(text.contains("port"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "no colours in captured text: {text:?}"
        );
    }

    /// insta applies the filters with the `regex` crate; so does this check.
    fn insta_regex(pattern: &str) -> regex::Regex {
        regex::Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))
    }
}
