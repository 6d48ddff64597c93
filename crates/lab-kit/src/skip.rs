//! Saying that a test cannot run here, and never letting CI pass that way.
//!
//! Some evidence needs a tool or a right that a machine may lack: `strace`, `openssl`,
//! `python3`, `ncat`, root for network namespaces. On a student's laptop such a test says
//! plainly what it skipped and why, and passes. In CI (`CI` is set), `.ci/run` installs
//! every one of those tools, so a missing one is a broken CI, not a reason to skip: the test
//! fails there instead, and a green CI means the evidence really was checked.

use std::fmt::Display;
use std::io::Write;

/// Reports that `what` cannot run because of `why`: a visible `skipped:` line on a
/// developer's machine, a failure (panic) when the `CI` environment variable is set.
pub fn skip_unless_ci(what: &str, why: impl Display) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} must run in CI, but cannot: {why} (.ci/run installs what the tests need)");
    }
    // Written to stderr directly, not with eprintln!: the test harness captures (and hides)
    // what a passing test prints with the print macros, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped: {what}: {why}");
}
