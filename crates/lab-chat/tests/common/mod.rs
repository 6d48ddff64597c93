//! What every lab-chat integration test needs: certificates in a temporary folder, and the
//! `lab-chat` binary started as a server or a client (always a `RunningChild`, so it is
//! killed and reaped whatever happens).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_kit::child::{RunningChild, Stream};
use lab_kit::pki::{LabCa, LabPki, LeafSpec, PkiFiles};

/// Generous: things that take milliseconds may take seconds on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn exe() -> &'static str {
    lab_test_support::bin!("lab-chat")
        .to_str()
        .expect("the test binary's path is UTF-8")
}

/// A temporary folder with the lab's six PEM files (and the CA, to issue more).
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub files: PkiFiles,
    pub ca: LabCa,
}

impl Certs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = LabPki::generate("alice").unwrap();
        let files = pki.write_to(dir.path(), false).unwrap();
        Certs {
            dir,
            files,
            ca: pki.ca,
        }
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
        Certs {
            dir,
            files,
            ca: pki.ca,
        }
    }

    /// A client certificate whose common name is `name` (anything, even a line break),
    /// signed by this folder's CA: the `--cert` and `--key` paths.
    pub fn client_named(&self, file_stem: &str, name: &str) -> (String, String) {
        let issued = self
            .ca
            .issue(&LeafSpec {
                common_name: name.into(),
                names: Vec::new(),
                ..LeafSpec::client("unused")
            })
            .unwrap();
        let cert = self.path().join(format!("{file_stem}.pem"));
        let key = self.path().join(format!("{file_stem}-key.pem"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        (path_str(&cert), path_str(&key))
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
    lab_test_support::spawn_listening(command(&all))
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

/// Waits until `count` lines of the child's stdout contain `needle`.
#[track_caller]
pub fn expect_out_times(child: &RunningChild, needle: &str, count: usize) {
    let mut seen = 0;
    let found = child.wait_for_line(Stream::Stdout, PATIENCE, |line| {
        seen += usize::from(line.contains(needle));
        seen >= count
    });
    assert!(
        found.is_some(),
        "{} printed {needle:?} fewer than {count} times\nstdout:\n{}",
        child.program(),
        child.text(Stream::Stdout)
    );
}

/// Waits until the server's refusal log has told `count` refusals whose reason contains
/// `needle`: one per `refused ADDR: …` line, N per `refused N connections …` summary.
#[track_caller]
pub fn expect_refusals(child: &RunningChild, needle: &str, count: usize) {
    let mut seen = 0;
    let found = child.wait_for_line(Stream::Stdout, PATIENCE, |line| {
        if line.starts_with("refused ") && line.contains(needle) {
            seen += line
                .strip_prefix("refused ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|_| line.contains(" connections (the latest from "))
                .unwrap_or(1);
        }
        seen >= count
    });
    assert!(
        found.is_some(),
        "{} told fewer than {count} refusals with {needle:?}\nstdout:\n{}",
        child.program(),
        child.text(Stream::Stdout)
    );
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

/// A TLS client written in the test itself over `tcp` (trusting the folder's CA), to send
/// bytes our own client never would, or to connect from an address of the test's choice.
pub fn raw_tls(
    certs: &Certs,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let ca = std::fs::read_to_string(&certs.files.ca_cert).unwrap();
    let config = lab_kit::tls::client_config(&ca, None, lab_kit::tls::Versions::Tls13Only).unwrap();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// A TCP connection to `addr` from the local address `source` (on Linux every 127.x.y.z
/// is loopback: a second "machine" for tests of per-address limits).
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// Where `name` is installed, if it is (the benchmark's own lookup).
#[allow(unused_imports)] // not every test file looks for a tool
pub use lab_kit::child::find_program as tool;
