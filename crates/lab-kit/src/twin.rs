//! The Python twins: each question's core experiment as a standalone Python script.
//!
//! The homework's students write Python, mostly on Windows or macOS, where this Rust lab does
//! not run. `python/` at the workspace root holds one script per question, standard library
//! only, that runs unchanged everywhere (`python3 FILE`, `py FILE`) and prints what it
//! measured, each finding on a line that starts with [`RESULT_PREFIX`]. The tour runs the
//! twin beside the Rust experiment when a `python3` exists here and shows those lines; the
//! tests run every twin and check them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::child::{RunningChild, Stream, describe_status};

/// Every finding a twin prints starts with this.
pub const RESULT_PREFIX: &str = "result: ";

/// The line a twin prints to say where it measured ("measured on: Linux 6.1, Python 3.11.2").
pub const MEASURED_ON_PREFIX: &str = "measured on: ";

/// The twins' folder in this workspace.
pub fn twins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python")
}

/// One twin: which script, for which question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Twin {
    /// The script's file name in `python/`, e.g. `q1_refused.py`.
    pub script: &'static str,
    /// True if it needs the lab's certificates (a CA and a server certificate, in a folder
    /// passed as its argument): the secure chat's twin.
    pub needs_lab_certificates: bool,
}

impl Twin {
    /// The script's path in this workspace.
    pub fn path(&self) -> PathBuf {
        twins_dir().join(self.script)
    }

    /// How a reader names it: `python/q1_refused.py`.
    pub fn shown_as(&self) -> String {
        format!("python/{}", self.script)
    }
}

/// What a twin printed.
#[derive(Debug, Clone, Serialize)]
pub struct TwinRun {
    pub experiment: &'static str,
    pub script: String,
    /// Where it measured, as the twin said it ("Linux 6.1.0, Python 3.11.2").
    pub measured_on: Option<String>,
    /// Its findings, without the `result: ` prefix.
    pub results: Vec<String>,
    /// Everything it printed on stdout, for a failed run's report.
    #[serde(skip)]
    pub stdout: String,
    #[serde(skip)]
    pub stderr: String,
}

/// Why a twin did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("python3 is not installed here (on Debian/Ubuntu: apt-get install python3)")]
    NoPython,
    #[error("{script} is missing (expected at {path})")]
    Missing { script: String, path: PathBuf },
    #[error("{script} did not finish within {seconds} s; it was stopped")]
    TooSlow { script: String, seconds: u64 },
    #[error("{script} failed ({status}): {stderr}")]
    Failed {
        script: String,
        status: String,
        stderr: String,
    },
    #[error("could not run {script}: {source}")]
    Io {
        script: String,
        source: std::io::Error,
    },
}

/// The Python here, as `python3 --version` says it (`Python 3.11.2`), if there is one.
pub fn python_version() -> Option<String> {
    let output = Command::new("python3").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && text.starts_with("Python")).then_some(text)
}

/// Runs `twin` with `python3`, passing `args`, for at most `deadline`.
pub fn run(twin: Twin, args: &[OsString], deadline: Duration) -> Result<TwinRun, TwinError> {
    let script = twin.shown_as();
    let path = twin.path();
    if !path.is_file() {
        return Err(TwinError::Missing { script, path });
    }
    let mut command = Command::new("python3");
    command.arg(&path).args(args);
    let mut child = RunningChild::spawn(&mut command).map_err(|e| match e.source.kind() {
        std::io::ErrorKind::NotFound => TwinError::NoPython,
        _ => TwinError::Io {
            script: script.clone(),
            source: e.source,
        },
    })?;
    child.close_stdin();
    let status = match child.wait_timeout(deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Err(TwinError::TooSlow {
                script,
                seconds: deadline.as_secs(),
            });
        }
        Err(source) => return Err(TwinError::Io { script, source }),
    };
    let stdout = child.text(Stream::Stdout);
    let stderr = child.text(Stream::Stderr);
    if !status.success() {
        return Err(TwinError::Failed {
            script,
            status: describe_status(status),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(TwinRun {
        experiment: "python_twin",
        script,
        measured_on: stdout
            .lines()
            .find_map(|line| line.strip_prefix(MEASURED_ON_PREFIX))
            .map(str::to_string),
        results: stdout
            .lines()
            .filter_map(|line| line.strip_prefix(RESULT_PREFIX))
            .map(str::to_string)
            .collect(),
        stdout,
        stderr,
    })
}
