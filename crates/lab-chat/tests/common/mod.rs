//! What every lab-chat integration test needs: certificates in a temporary folder, and the
//! `lab-chat` binary started as a server or a client (always a `RunningChild`, so it is
//! killed and reaped whatever happens).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_kit::child::{RunningChild, Stream};
use lab_kit::pki::{LabCa, LabPki, LeafSpec, PkiFiles};

/// Generous: things that take milliseconds may take seconds on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_lab-chat")
}

/// A temporary folder with the lab's six PEM files.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub files: PkiFiles,
}

impl Certs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = LabPki::generate("alice")
            .unwrap()
            .write_to(dir.path(), false)
            .unwrap();
        Certs { dir, files }
    }

    /// A folder whose server certificate is `server` (signed by a fresh CA).
    pub fn with_server(server: &LeafSpec) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = LabCa::generate("socket-lab CA").unwrap();
        let pki = LabPki {
            server: ca.issue(server).unwrap(),
            client: ca.issue(&LeafSpec::client("alice")).unwrap(),
            ca,
        };
        let files = pki.write_to(dir.path(), false).unwrap();
        Certs { dir, files }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> String {
        self.files.ca_cert.display().to_string()
    }
}

pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(exe());
    command.args(args).env("NO_COLOR", "1");
    command
}

/// `lab-chat server --listen 127.0.0.1:0 --certs DIR ARGS…`, once it is listening.
pub fn server(certs: &Path, args: &[&str]) -> (RunningChild, SocketAddr) {
    let mut all = vec!["server", "--listen", "127.0.0.1:0", "--certs"];
    let dir = certs.display().to_string();
    all.push(&dir);
    all.extend_from_slice(args);
    let child = RunningChild::spawn(&mut command(&all)).unwrap();
    let addr = child
        .wait_for_listening(PATIENCE)
        .unwrap_or_else(|| panic!("server never listened: {}", child.text(Stream::Stderr)));
    (child, addr)
}

/// `lab-chat client --connect localhost:PORT ARGS…`.
pub fn client(addr: SocketAddr, args: &[&str]) -> RunningChild {
    let target = format!("localhost:{}", addr.port());
    let mut all = vec!["client", "--connect", &target];
    all.extend_from_slice(args);
    RunningChild::spawn(&mut command(&all)).unwrap()
}

/// Waits for a line of `stream` containing `needle`; fails with both streams shown.
#[track_caller]
pub fn expect_line(child: &RunningChild, stream: Stream, needle: &str) -> String {
    child
        .wait_for_line(stream, PATIENCE, |line| line.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "{} never printed a line with {needle:?}\nstdout:\n{}\nstderr:\n{}",
                child.program(),
                child.text(Stream::Stdout),
                child.text(Stream::Stderr)
            )
        })
}

#[track_caller]
pub fn expect_out(child: &RunningChild, needle: &str) -> String {
    expect_line(child, Stream::Stdout, needle)
}

#[track_caller]
pub fn expect_err(child: &RunningChild, needle: &str) -> String {
    expect_line(child, Stream::Stderr, needle)
}

/// Waits for the child to exit by itself; returns its exit code.
#[track_caller]
pub fn exit_code(child: &mut RunningChild) -> i32 {
    let status = child.wait_timeout(PATIENCE).unwrap().unwrap_or_else(|| {
        panic!(
            "{} did not exit\nstdout:\n{}\nstderr:\n{}",
            child.program(),
            child.text(Stream::Stdout),
            child.text(Stream::Stderr)
        )
    });
    status.code().unwrap_or(-1)
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// Where `name` is installed, if it is (the benchmark's own lookup).
#[allow(unused_imports)] // not every test file looks for a tool
pub use lab_chat::bench::tool_on_path as tool;
