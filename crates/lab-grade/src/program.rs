//! The student's program: its command line, the files it is given, and starting it.
//!
//! The grader treats the program as a black box, in any language: a command line with
//! placeholders (`{host}`, `{port}`, `{ca}`, `{cert}`, `{key}`, and `{dir}` in batch mode)
//! that are filled in for each start, and the same values in environment variables
//! (`LAB_HOST`, `LAB_PORT`, `LAB_CA`, `LAB_CERT`, `LAB_KEY`) for programs that prefer them.
//! The certificates are made for this run (rcgen, through `lab_kit::pki`) and written into
//! a private temporary folder that disappears when the run ends.
//!
//! Each start gets a fresh port from the kernel. A port cannot be reused right after a
//! server is killed: its side of each closed connection stays in TIME_WAIT, and a program
//! without `SO_REUSEADDR` would fail to bind (errno 98), which is not what a check is about.
//!
//! The program runs as a [`RunningChild`]: its own process group (anything it forks is
//! killed with it), bounded output capture, and always killed and reaped at the end.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lab_kit::child::{Capture, RunningChild, SpawnError, Stream, describe_status};
use lab_kit::pki::{CertifiedPem, LabCa, LabPki, LeafSpec, Role};

use crate::advice;
use crate::sandbox::Sandbox;

/// The host every program is given: IPv4 loopback (the certificate names it too).
pub const HOST: &str = "127.0.0.1";
/// The name the grader expects in a server's certificate, and asks for as a client.
pub const SERVER_NAME: &str = "localhost";
/// How much of each output stream of a program is kept (a flood is cut, not stored).
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// Everything the grader can't do without: files and settings errors.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no command to grade: give the student's command after --, e.g. -- python3 server.py {{port}}"
    )]
    NoCommand,
    #[error("could not make the run's certificates: {0}")]
    Pki(#[from] lab_kit::pki::PkiError),
    #[error("could not build the grader's TLS configuration: {0}")]
    Tls(#[from] lab_kit::tls::TlsSetupError),
    #[error("could not create a temporary folder for the run: {0}")]
    TempDir(std::io::Error),
    #[error("could not get a free port from the kernel: {0}")]
    Port(std::io::Error),
}

/// The certificates of a grading run: the lab's own, and the impostors'.
#[derive(Debug)]
pub struct GraderPki {
    /// The lab CA, the server certificate for localhost, a client certificate.
    pub lab: LabPki,
    /// A certificate for `localhost` signed by a CA the student's program does not trust.
    pub untrusted: CertifiedPem,
    /// A certificate signed by the lab CA, but for another name.
    pub wrong_name: CertifiedPem,
}

impl GraderPki {
    /// Generates a fresh set (a few milliseconds: ECDSA P-256 keys).
    pub fn generate() -> Result<Self, SetupError> {
        let lab = LabPki::generate("grader-client")?;
        let stranger = LabCa::generate("impostor CA")?;
        let untrusted = stranger.issue(&LeafSpec::lab_server())?;
        let wrong_name = lab.ca.issue(&LeafSpec {
            common_name: "impostor.invalid".into(),
            names: vec!["impostor.invalid".into()],
            role: Role::Server,
            expired: false,
        })?;
        Ok(GraderPki {
            lab,
            untrusted,
            wrong_name,
        })
    }
}

/// Ports this process handed out, and when: none is handed out twice within
/// [`PORT_QUARANTINE`], so that parallel gradings in one process (batch jobs, test threads)
/// never give two programs the same port.
static HANDED_OUT: Mutex<Vec<(u16, Instant)>> = Mutex::new(Vec::new());
/// How long a handed-out port is not handed out again by this process.
pub const PORT_QUARANTINE: Duration = Duration::from_secs(120);

/// A free port chosen by the kernel: bind port 0, read which port it gave, let it go.
///
/// The port is free when this returns, but nothing reserves it: the kernel may give it to
/// another process before the student's program binds it. Measured here, with four graders
/// in parallel that happened in 2 runs of 24 (the kernel's search for a free port starts at
/// a random offset but lands on the first gap after a dense run of used ports, so gaps are
/// hot spots). Two defences: this process never hands out the same port twice (below), and
/// [`listener_is_ours`] checks that the program listening on the port is the one started.
pub fn free_port() -> Result<u16, SetupError> {
    // Ports handed out recently stay bound here while the kernel is asked for another.
    let mut recently_given = Vec::new();
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(SetupError::Port)?;
        let port = listener.local_addr().map_err(SetupError::Port)?.port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        handed_out.retain(|(_, when)| when.elapsed() < PORT_QUARANTINE);
        if !handed_out.iter().any(|(given, _)| *given == port) {
            handed_out.push((port, Instant::now()));
            return Ok(port);
        }
        recently_given.push(listener);
    }
    Err(SetupError::Port(std::io::Error::other(
        "the kernel offered only ports already handed out",
    )))
}

/// The inodes of the sockets listening on `port` (IPv4 and IPv6), from the kernel's
/// socket tables (`/proc/net/tcp` and `/proc/net/tcp6`, read by `lab_kit::kernel`).
fn listening_inodes(port: u16) -> Vec<u64> {
    use lab_kit::kernel::TcpState;
    lab_kit::kernel::tcp_sockets()
        .unwrap_or_default()
        .into_iter()
        .filter(|socket| socket.state == TcpState::Listen && socket.local_address.port() == port)
        .map(|socket| socket.inode)
        .collect()
}

/// True if a process in process group `pgid` has one of `inodes` open as a socket.
fn group_holds_socket(pgid: u32, inodes: &[u64]) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp, …
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|field| field.parse::<u32>().ok());
        if pgrp != Some(pgid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy();
                if inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
                {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether the socket listening on `port` belongs to `child` (or to a process it started).
///
/// False only when the kernel shows a listener on that port held by no process of the
/// child's group: another program took the port. When nothing is seen listening (the
/// program accepted one client and closed its listener, or /proc is missing) the
/// connection is assumed to be the child's.
///
/// A program that closes its listener right after `accept()` (one client is all a chat
/// server needs) often does so while the grader scans `/proc` for it: the listener was in
/// the table, and is in no process any more. So a listener not found in the group is
/// looked up again: gone now, it was the program's; still there (another program's), not.
pub fn listener_is_ours(child: &RunningChild, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() || group_holds_socket(child.pid(), &inodes) {
        return true;
    }
    let now = listening_inodes(port);
    now.is_empty() || (now != inodes && group_holds_socket(child.pid(), &now))
}

/// The student's command (with placeholders) and where to run it.
#[derive(Debug, Clone)]
pub struct StudentProgram {
    pub argv: Vec<String>,
    /// The folder the program runs in (the submission's folder in batch mode).
    pub workdir: Option<PathBuf>,
    /// The value of `{dir}`.
    pub dir: Option<PathBuf>,
}

impl StudentProgram {
    pub fn new(argv: Vec<String>) -> Result<Self, SetupError> {
        if argv.is_empty() {
            return Err(SetupError::NoCommand);
        }
        Ok(StudentProgram {
            argv,
            workdir: None,
            dir: None,
        })
    }

    /// The command as given, for reports.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// Starts the program in `sandbox` with the placeholders filled in for `port` and the
    /// role's files.
    pub fn start(
        &self,
        sandbox: &Sandbox,
        port: u16,
        as_server: bool,
    ) -> Result<RunningChild, SpawnError> {
        let files = sandbox.role_files(as_server);
        let path = |p: &Path| p.display().to_string();
        // {dir} is the read-only copy when there is one, and always absolute: the program
        // runs inside it, so a relative {dir} would name a folder inside itself.
        let dir = sandbox.submission.clone().or_else(|| {
            self.dir
                .as_ref()
                .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        });
        let mut values = vec![
            ("host", HOST.to_string()),
            ("port", port.to_string()),
            ("ca", path(&files.ca)),
            ("cert", path(&files.cert)),
            ("key", path(&files.key)),
        ];
        if let Some(dir) = &dir {
            values.push(("dir", path(dir)));
        }
        let fill = |word: &str| {
            values.iter().fold(word.to_string(), |w, (name, value)| {
                w.replace(&format!("{{{name}}}"), value)
            })
        };
        let mut command = Command::new(fill(&self.argv[0]));
        command.args(self.argv[1..].iter().map(|w| fill(w)));
        let vars: Vec<(String, String)> = values
            .iter()
            .map(|(name, value)| (format!("LAB_{}", name.to_uppercase()), value.clone()))
            .collect();
        // A clean environment (PYTHONUNBUFFERED=1 among the few variables kept), the
        // throwaway user when root, limits before exec.
        sandbox.confine(&mut command, &vars);
        if let Some(dir) = dir.as_ref().filter(|_| sandbox.submission.is_some()) {
            command.current_dir(dir);
        } else {
            let here = match &self.workdir {
                Some(dir) => dir.clone(),
                None => std::env::current_dir().unwrap_or_else(|_| ".".into()),
            };
            let throwaway = matches!(
                sandbox.isolation(),
                crate::sandbox::Isolation::ThrowawayUser { .. }
            );
            if throwaway
                && !crate::sandbox::others_can_enter(
                    &std::path::absolute(&here).unwrap_or(here.clone()),
                )
            {
                return Err(SpawnError {
                    program: self.argv[0].clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "the folder it runs in, {}, is closed to the unprivileged user the grader runs programs as (a folder on its path lacks mode o+x); make it readable to all (chmod o+rx), or grade the folder with `lab-grade batch`, which runs a copy",
                            here.display()
                        ),
                    ),
                });
            }
            command.current_dir(here);
        }
        // Standard output is a terminal, as when a TA runs the program by hand: C's printf
        // and other stdio libraries then flush each line instead of holding output back
        // until exit. RunningChild stops the whole process group and the child by pid, and
        // never waits long for a process that escaped (the sandbox ends those).
        RunningChild::spawn_captured(
            &mut command,
            Capture {
                limit: OUTPUT_LIMIT,
                stdout_pty: true,
            },
        )
    }
}

/// Why a server could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotListening {
    /// The command could not be started at all.
    Spawn(String),
    /// The program ended before it listened.
    Exited(String),
    /// Nothing accepted a connection before the deadline.
    Silent { waited_ms: u128, last_error: String },
}

impl NotListening {
    pub fn describe(&self) -> String {
        match self {
            NotListening::Spawn(error) => format!("The program could not be started: {error}."),
            NotListening::Exited(status) => {
                format!("The program ended ({status}) before it accepted a connection.")
            }
            NotListening::Silent {
                waited_ms,
                last_error,
            } => format!(
                "Nothing accepted a connection on the given port within {waited_ms} ms (last attempt: {last_error}). Does the program listen on the port it is given ({{port}} or LAB_PORT), on 127.0.0.1?"
            ),
        }
    }
}

/// Connects to a just-started server, retrying until `timeout` (through
/// `lab_kit::ready::connect_until_ready`, in short slices so that a program that already
/// died is noticed at once instead of at the deadline). The connection that succeeds is the
/// one the check uses: many student servers accept exactly one client.
pub fn connect_to_started(
    child: &mut RunningChild,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, NotListening> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        match lab_kit::ready::connect_until_ready(addr, slice) {
            Ok(stream) => return Ok(stream),
            Err(not_ready) => {
                if let Ok(Some(status)) = child.try_status() {
                    return Err(NotListening::Exited(describe_status(status)));
                }
                if Instant::now() >= deadline {
                    return Err(NotListening::Silent {
                        waited_ms: started.elapsed().as_millis(),
                        last_error: lab_kit::errors::ErrorFacts::of(&not_ready.last_error)
                            .summary(),
                    });
                }
            }
        }
    }
}

/// The last lines of a stream, for evidence (at most `count`, each cut to 200 characters).
pub fn tail(child: &RunningChild, stream: Stream, count: usize) -> Vec<String> {
    let lines = child.lines(stream);
    let start = lines.len().saturating_sub(count);
    lines[start..]
        .iter()
        .map(|line| {
            let mut cut: String = line.chars().take(200).collect();
            if cut.len() < line.len() {
                cut.push('…');
            }
            cut
        })
        .collect()
}

/// Waits up to `timeout` for the program to exit, and returns its status if it did.
/// (Its last output, a traceback printed just before exiting, is collected too.)
pub fn wait_exit(child: &mut RunningChild, timeout: Duration) -> Option<std::process::ExitStatus> {
    child.wait_timeout(timeout).ok().flatten()
}

/// Stops the program and everything it started: SIGTERM to its process group, up to
/// `grace` to exit, then SIGKILL to the group (which also ends a fork that ignored
/// SIGTERM), and reaps it.
pub fn stop(child: &mut RunningChild, grace: Duration) {
    let _ = child.terminate(grace);
}

/// What a program's health looks like after a check: did it crash, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The exit status in words, if it has exited.
    pub exited: Option<String>,
    /// True if it exited with a non-zero code or by a signal.
    pub failed_exit: bool,
    /// The crash line (a traceback's exception, a panic), if its error output shows one.
    pub crash: Option<String>,
    /// Advice for what its output shows.
    pub advice: Vec<String>,
}

impl Health {
    /// True if the program neither crashed nor ended with a failure.
    pub fn is_healthy(&self) -> bool {
        !self.failed_exit && self.crash.is_none()
    }
}

/// Reads the program's health now (without waiting), with advice in `language`'s terms.
///
/// A death by a signal is a crash even when nothing was printed (a C program killed by
/// SIGSEGV, or by SIGPIPE when it writes to a vanished peer): the signal is the crash line.
pub fn health(child: &mut RunningChild, language: advice::Language) -> Health {
    use std::os::unix::process::ExitStatusExt;
    let status = child.try_status().ok().flatten();
    let stderr = child.text(Stream::Stderr);
    let stdout = child.text(Stream::Stdout);
    let signal_death = status.filter(|s| s.signal().is_some()).map(describe_status);
    Health {
        exited: status.map(describe_status),
        failed_exit: status.is_some_and(|s| !s.success()),
        crash: advice::crash_line(&stderr)
            .or_else(|| advice::crash_line(&stdout))
            .or(signal_death),
        advice: advice::for_output(&format!("{stderr}\n{stdout}"), language),
    }
}

/// Owned handle on the TLS configurations the grader uses against a program.
#[derive(Debug, Clone)]
pub struct GraderTls {
    /// The grader as a client: trusts only the lab CA, accepts TLS 1.2 and 1.3.
    pub client: Arc<rustls::ClientConfig>,
    /// The grader as the real server: the lab's certificate for localhost.
    pub server: Arc<rustls::ServerConfig>,
    /// The impostor whose certificate the lab CA did not sign.
    pub untrusted: Arc<rustls::ServerConfig>,
    /// The impostor with a lab-signed certificate for another name.
    pub wrong_name: Arc<rustls::ServerConfig>,
}

impl GraderTls {
    pub fn new(pki: &GraderPki) -> Result<Self, SetupError> {
        use lab_kit::tls::{Versions, client_config, server_config};
        let versions = Versions::Tls12AndNewer;
        let server = |leaf: &CertifiedPem| -> Result<_, SetupError> {
            Ok(Arc::new(server_config(
                &leaf.cert_pem,
                &leaf.key_pem,
                None,
                versions,
            )?))
        };
        Ok(GraderTls {
            client: Arc::new(client_config(pki.lab.ca.cert_pem(), None, versions)?),
            server: server(&pki.lab.server)?,
            untrusted: server(&pki.untrusted)?,
            wrong_name: server(&pki.wrong_name)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_environment_are_filled_for_each_start() {
        let pki = GraderPki::generate().unwrap();
        let sandbox = Sandbox::new(&pki, None, true).unwrap();
        let files = sandbox.role_files(true).clone();
        let program = StudentProgram::new(vec![
            "sh".into(),
            "-c".into(),
            "echo args $0 $1 $2; echo env $LAB_HOST $LAB_PORT $LAB_CA $LAB_CERT $PYTHONUNBUFFERED"
                .into(),
            "{host}:{port}".into(),
            "{ca}".into(),
            "{cert}".into(),
        ])
        .unwrap();
        let mut child = program.start(&sandbox, 4242, true).unwrap();
        assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
        let out = child.text(Stream::Stdout);
        let ca = files.ca.display().to_string();
        let cert = files.cert.display().to_string();
        assert!(
            out.contains(&format!("args 127.0.0.1:4242 {ca} {cert}")),
            "{out}"
        );
        assert!(
            out.contains(&format!("env 127.0.0.1 4242 {ca} {cert} 1")),
            "{out}"
        );
        // The CA file is the lab CA, and the client gets the client certificate.
        assert_eq!(
            std::fs::read_to_string(&files.ca).unwrap(),
            pki.lab.ca.cert_pem()
        );
        let mut client = program.start(&sandbox, 4242, false).unwrap();
        assert!(wait_exit(&mut client, Duration::from_secs(10)).is_some());
        let client_cert = sandbox.client.cert.display().to_string();
        assert!(client.text(Stream::Stdout).contains(&client_cert));
    }

    #[test]
    fn a_listener_is_recognised_as_the_programs_own_or_another_programs() {
        let pki = GraderPki::generate().unwrap();
        let sandbox = Sandbox::new(&pki, None, true).unwrap();
        // Someone else (this test) listens on a port; the program listens on another.
        let stranger = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = stranger.local_addr().unwrap().port();
        let port = free_port().unwrap();
        let program = StudentProgram::new(vec![
            "python3".into(),
            "-c".into(),
            "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)".into(),
            "{port}".into(),
        ])
        .unwrap();
        let mut child = program.start(&sandbox, port, true).unwrap();
        connect_to_started(&mut child, port, Duration::from_secs(20)).unwrap();
        assert!(listener_is_ours(&child, port));
        assert!(!listener_is_ours(&child, taken));
        stop(&mut child, Duration::from_millis(100));
    }

    #[test]
    fn a_port_is_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn an_empty_command_is_refused() {
        assert!(matches!(
            StudentProgram::new(Vec::new()),
            Err(SetupError::NoCommand)
        ));
    }
}
