//! Watching the real system calls a program makes, with `strace`.
//!
//! A Rust `TcpStream::connect` or a Python `sock.connect` is a thin wrapper around the
//! kernel's `connect(2)`. `strace` prints each system call as the kernel saw it, with its
//! arguments and its result: `connect(3, {sa_family=AF_INET, …}, 16) = -1 ECONNREFUSED
//! (Connection refused)`. That is the evidence no library can fake. strace needs the right
//! to trace (ptrace); where it is missing or not allowed, the labs say so and go on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::child::{RunningChild, Stream};

/// Why strace cannot be used here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StraceUnavailable {
    #[error("strace is not installed (on Debian/Ubuntu: apt-get install strace)")]
    NotInstalled,
    #[error("strace is installed but cannot trace here: {0}")]
    NotPermitted(String),
}

/// Why a traced run failed.
#[derive(Debug, thiserror::Error)]
pub enum StraceError {
    #[error(transparent)]
    Unavailable(#[from] StraceUnavailable),
    #[error("could not run strace: {0}")]
    Run(#[from] crate::child::SpawnError),
    #[error("could not read strace's output file {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the traced program did not finish within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The record of one traced run.
#[derive(Debug, Clone)]
pub struct StraceRecord {
    /// strace's lines, one system call each (unfinished/resumed pairs as strace wrote them).
    pub lines: Vec<String>,
    /// What the traced program printed on stdout.
    pub stdout: String,
    /// Whether the traced program exited with success.
    pub success: bool,
}

impl StraceRecord {
    /// The lines for one system call name, e.g. `"connect"`.
    pub fn calls(&self, name: &str) -> Vec<&str> {
        self.lines
            .iter()
            .map(String::as_str)
            .filter(|line| syscall_name(line) == Some(name))
            .collect()
    }

    /// The system call names in order, e.g. `["socket", "connect", "close"]`.
    pub fn names(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|line| syscall_name(line))
            .collect()
    }
}

/// The system call a strace line records: `connect` in `[pid 12] connect(3, …) = 0`.
/// Lines that resume an earlier unfinished call (`<... connect resumed>`) are not counted
/// again; signals and exits (`+++`, `---`) are not system calls.
pub fn syscall_name(line: &str) -> Option<&str> {
    let line = without_pid(line);
    let paren = line.find('(')?;
    let name = &line[..paren];
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    is_name.then_some(name)
}

/// The line without the process id that `strace -f` puts in front of it: `[pid 12] `
/// on a terminal, or a bare `12  ` when writing to a file.
pub fn without_pid(line: &str) -> &str {
    let line = line.trim_start();
    if let Some(rest) = line.strip_prefix("[pid") {
        return rest
            .split_once(']')
            .map_or(line, |(_, rest)| rest.trim_start());
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && line[digits..].starts_with(' ') {
        line[digits..].trim_start()
    } else {
        line
    }
}

/// Finds strace and checks that it is allowed to trace here.
pub fn locate() -> Result<PathBuf, StraceUnavailable> {
    let path = crate::child::find_program("strace").ok_or(StraceUnavailable::NotInstalled)?;
    let probe = Command::new(&path)
        .args(["-o", "/dev/null", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(path),
        Ok(out) => Err(StraceUnavailable::NotPermitted(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
        Err(e) => Err(StraceUnavailable::NotPermitted(e.to_string())),
    }
}

/// Runs `program args…` under `strace -f -e <expression>` and returns what it recorded.
///
/// `expression` is strace's filter, e.g. `trace=network` or `trace=clock_nanosleep,nanosleep`.
/// strace writes to its own file so the program's output stays separate.
pub fn trace(
    program: &Path,
    args: &[&str],
    expression: &str,
    timeout: Duration,
) -> Result<StraceRecord, StraceError> {
    let strace = locate()?;
    // strace writes its record into a file of its own, created here first, exclusively and
    // under a random name (tempfile): a predictable name in /tmp could be a symlink planted
    // by another user, and strace would write wherever it points.
    let out_file = tempfile::Builder::new()
        .prefix("socket-lab-strace-")
        .suffix(".txt")
        .tempfile()
        .map_err(|source| StraceError::Output {
            path: std::env::temp_dir(),
            source,
        })?;
    let out_path = out_file.path().to_path_buf();
    let mut command = Command::new(strace);
    command
        .arg("-f")
        .arg("-e")
        .arg(expression)
        .arg("-o")
        .arg(&out_path)
        .arg(program)
        .args(args);
    let mut child = RunningChild::spawn(&mut command)?;
    child.close_stdin();
    let status = child.wait_timeout(timeout)?;
    let stdout = child.text(Stream::Stdout);
    drop(child);
    let text = std::fs::read_to_string(&out_path).map_err(|source| StraceError::Output {
        path: out_path.clone(),
        source,
    });
    drop(out_file);
    let status = status.ok_or(StraceError::TimedOut(timeout))?;
    let lines = text?.lines().map(str::to_string).collect();
    Ok(StraceRecord {
        lines,
        stdout,
        success: status.success(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_system_calls() {
        assert_eq!(
            syscall_name("connect(3, {sa_family=AF_INET}, 16) = 0"),
            Some("connect")
        );
        assert_eq!(
            syscall_name("[pid  4242] accept4(3, NULL, NULL, SOCK_CLOEXEC) = 4"),
            Some("accept4")
        );
        assert_eq!(
            syscall_name("[pid 12] <... recvfrom resumed>\"hi\", 5, 0, NULL, NULL) = 2"),
            None
        );
        assert_eq!(syscall_name("+++ exited with 0 +++"), None);
        assert_eq!(
            syscall_name("9191  connect(3, {sa_family=AF_INET}, 16) = 0"),
            Some("connect")
        );
        assert_eq!(
            without_pid("9191  +++ exited with 0 +++"),
            "+++ exited with 0 +++"
        );
    }
}
