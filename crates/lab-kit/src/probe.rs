//! Probes: small pieces of a lab run as a separate process, so that `strace` can watch them.
//!
//! To show the *real* system calls behind, say, one refused `connect`, a lab runs that one
//! call in a fresh process under `strace`. Every socket-lab binary (each lab's own and the
//! tour) understands a hidden first argument, `__probe NAME ARGS…`, which runs the named
//! probe and exits. [`Probe`] says which binary to re-run; [`dispatch`] is the first thing
//! each `main` calls.

use std::path::{Path, PathBuf};

/// The hidden first argument that turns a socket-lab binary into a probe runner.
pub const PROBE_ARG: &str = "__probe";

/// A probe: its name and the function that runs it, returning the exit code.
pub type ProbeFn = fn(&[String]) -> i32;

/// A binary that can run probes.
#[derive(Debug, Clone)]
pub struct Probe {
    exe: PathBuf,
}

impl Probe {
    /// The running program itself (the normal case for a lab binary or the tour).
    pub fn current() -> std::io::Result<Self> {
        Ok(Probe {
            exe: std::env::current_exe()?,
        })
    }

    /// Another socket-lab binary, e.g. `env!("CARGO_BIN_EXE_lab-refused")` in a test.
    pub fn binary(exe: impl Into<PathBuf>) -> Self {
        Probe { exe: exe.into() }
    }

    /// The binary to run.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The arguments that run probe `name` with `args`.
    pub fn args<'a>(&self, name: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec![PROBE_ARG, name];
        all.extend_from_slice(args);
        all
    }
}

/// If this process was started as `PROG __probe NAME ARGS…`, runs that probe and exits.
/// Otherwise returns, and `main` goes on as usual.
pub fn dispatch(probes: &[(&str, ProbeFn)]) {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(PROBE_ARG) {
        return;
    }
    let name = args.get(2).map(String::as_str).unwrap_or("");
    let code = match probes.iter().find(|(probe, _)| *probe == name) {
        Some((_, run)) => run(&args[3..]),
        None => {
            eprintln!("unknown probe `{name}`");
            2
        }
    };
    std::process::exit(code);
}
