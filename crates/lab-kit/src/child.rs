//! Running another program as a child process that is always killed and reaped.
//!
//! Tests and the grader start servers and clients as separate processes, exactly as a
//! student would in two terminals. A child left running after a failed test keeps its port
//! and its CPU; a child never waited for stays a zombie. [`RunningChild`] puts the child in
//! its own process group (so that anything it forks is reached too), collects its output on
//! background threads (bounded, so a program that floods its output cannot exhaust memory),
//! lets the caller wait for a line such as `listening on …`, and kills the whole group and
//! reaps the child when dropped, whatever happened.
//!
//! Killing is by process group *and* by pid, and every wait has a deadline: a descendant
//! may move the direct child into another group (`setpgid`), and a process stuck in the
//! kernel may not die at once, but neither can make the caller wait forever.
//!
//! Standard output can be a pseudo-terminal instead of a pipe ([`Capture::stdout_pty`]):
//! C's stdio (and most languages' runtimes) fully buffer their output into a pipe but
//! flush each line to a terminal, so a program then prints what a person at a terminal
//! would see, when they would see it.

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How much of each output stream is kept; the rest is counted, not stored.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;
/// A line longer than this is cut (and marked) so that output without newlines is bounded.
const MAX_LINE: usize = 64 * 1024;
/// After the child has exited, how long its last output may take to arrive. A process that
/// escaped the group (`setsid`) can hold the pipes open forever; then we stop waiting.
const LAST_OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// After SIGKILL, how long the child may take to be reaped before the caller stops waiting
/// (a process in uninterruptible sleep dies only when the kernel lets it).
const REAP_DEADLINE: Duration = Duration::from_secs(5);

/// How a child's output is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    /// At most this many bytes of each stream are kept; the rest is counted.
    pub limit: usize,
    /// Standard output is a pseudo-terminal (raw mode: no echo, `\n` stays `\n`), so that
    /// stdio libraries line-buffer it as they would in a terminal. Standard input and
    /// standard error stay pipes.
    pub stdout_pty: bool,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            limit: DEFAULT_OUTPUT_LIMIT,
            stdout_pty: false,
        }
    }
}

/// Which output stream of the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("could not start `{program}`: {source}")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: io::Error,
}

#[derive(Debug, Default)]
struct OutputState {
    lines: Vec<String>,
    kept_bytes: usize,
    dropped_bytes: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, OutputState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: String, limit: usize) {
        let mut state = self.lock();
        let size = line.len() + 1; // with its newline
        if state.kept_bytes + size <= limit {
            state.kept_bytes += size;
            state.lines.push(line);
        } else {
            state.dropped_bytes += size as u64;
        }
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Waits until the stream has ended, at most until `deadline`; true if it ended.
    fn wait_closed(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Reads a pipe to its end, splitting it into lines (lossy UTF-8, `\r\n` accepted).
fn collect_lines(mut pipe: impl Read, output: Arc<Output>, limit: usize) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    let finish = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.strip_suffix('\r').unwrap_or(&text).to_string()
    };
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A pseudo-terminal reports EIO once every process has closed its end.
            Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            output.push(finish(&line[..line.len() - 1]), limit);
        }
        if pending.len() > MAX_LINE {
            let mut line = finish(&pending);
            line.push_str(" […line cut]");
            output.push(line, limit);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        output.push(finish(&pending), limit);
    }
    output.close();
}

/// A child process in its own process group, with captured output.
#[derive(Debug)]
pub struct RunningChild {
    child: Child,
    program: String,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    status: Option<ExitStatus>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl RunningChild {
    /// Starts `command` with piped stdin, stdout and stderr, in a new process group.
    pub fn spawn(command: &mut Command) -> Result<Self, SpawnError> {
        Self::spawn_with_limit(command, DEFAULT_OUTPUT_LIMIT)
    }

    /// Like [`spawn`](Self::spawn), keeping at most `limit` bytes of each output stream.
    pub fn spawn_with_limit(command: &mut Command, limit: usize) -> Result<Self, SpawnError> {
        Self::spawn_captured(
            command,
            Capture {
                limit,
                stdout_pty: false,
            },
        )
    }

    /// Like [`spawn`](Self::spawn), capturing output as `capture` says.
    pub fn spawn_captured(command: &mut Command, capture: Capture) -> Result<Self, SpawnError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let spawn_error = |source| SpawnError {
            program: program.clone(),
            source,
        };
        let limit = capture.limit;
        let pty_master = if capture.stdout_pty {
            let (master, slave) = open_raw_pty().map_err(spawn_error)?;
            command.stdout(Stdio::from(slave));
            Some(master)
        } else {
            command.stdout(Stdio::piped());
            None
        };
        let spawned = command
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        // The command still holds the terminal's other end: close it here, or its reader
        // would never see the end of the output.
        command.stdout(Stdio::null());
        let mut child = spawned.map_err(spawn_error)?;
        let stdout = Arc::new(Output::default());
        let stderr = Arc::new(Output::default());
        let mut readers = Vec::new();
        if let Some(master) = pty_master {
            let out = Arc::clone(&stdout);
            let master = std::fs::File::from(master);
            readers.push(thread::spawn(move || collect_lines(master, out, limit)));
        }
        if let Some(pipe) = child.stdout.take() {
            let out = Arc::clone(&stdout);
            readers.push(thread::spawn(move || collect_lines(pipe, out, limit)));
        }
        if let Some(pipe) = child.stderr.take() {
            let out = Arc::clone(&stderr);
            readers.push(thread::spawn(move || collect_lines(pipe, out, limit)));
        }
        let stdin = child.stdin.take();
        Ok(RunningChild {
            child,
            program,
            stdin,
            stdout,
            stderr,
            status: None,
            readers,
        })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The program's name, as given to `spawn`.
    pub fn program(&self) -> &str {
        &self.program
    }

    fn output(&self, stream: Stream) -> &Output {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    /// Waits until a line of `stream` satisfies `wanted`, the stream ends, or `timeout`
    /// passes. Returns the first matching line (also one printed before the call).
    pub fn wait_for_line(
        &self,
        stream: Stream,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let output = self.output(stream);
        let deadline = Instant::now() + timeout;
        let mut state = output.lock();
        let mut checked = 0;
        loop {
            if let Some(line) = state.lines[checked..].iter().find(|line| wanted(line)) {
                return Some(line.clone());
            }
            checked = state.lines.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state = output
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for the `listening on ADDR` line of a socket-lab style server.
    pub fn wait_for_listening(&self, timeout: Duration) -> Option<std::net::SocketAddr> {
        let line = self.wait_for_line(Stream::Stdout, timeout, |line| {
            crate::ready::listening_addr(line).is_some()
        })?;
        crate::ready::listening_addr(&line)
    }

    /// The lines of `stream` collected so far.
    pub fn lines(&self, stream: Stream) -> Vec<String> {
        self.output(stream).lock().lines.clone()
    }

    /// All of `stream` so far as one text, each line ended by `\n`.
    pub fn text(&self, stream: Stream) -> String {
        self.lines(stream)
            .iter()
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// How many bytes of `stream` were over the limit and thrown away.
    pub fn dropped_bytes(&self, stream: Stream) -> u64 {
        self.output(stream).lock().dropped_bytes
    }

    /// Writes `text` to the child's standard input.
    pub fn write_stdin(&mut self, text: &str) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => {
                stdin.write_all(text.as_bytes())?;
                stdin.flush()
            }
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdin was already closed",
            )),
        }
    }

    /// Closes the child's standard input: the child reads end-of-file.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status if the child has already exited.
    pub fn try_status(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the child to exit by itself.
    ///
    /// The standard library has no wait-with-timeout for a child, so this polls `try_wait`
    /// every few milliseconds: a bounded wait for an event, not a guess at how long it takes.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.join_readers();
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal_group(&self, signal: i32) {
        let Ok(pgid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH, harmlessly.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }

    /// Asks politely (SIGTERM), waits up to `grace`, then kills the whole group (SIGKILL)
    /// and reaps the child. Returns its exit status.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            self.kill_group_and_reap()?;
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM);
        if self.wait_timeout(grace)?.is_none() {
            self.signal_group(libc::SIGKILL);
        }
        self.kill_group_and_reap()
    }

    /// Kills the whole process group at once (SIGKILL) and reaps the child.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.kill_group_and_reap()
    }

    fn kill_group_and_reap(&mut self) -> io::Result<ExitStatus> {
        // Even after the child itself exited, its forks may still run in its group.
        self.signal_group(libc::SIGKILL);
        self.stdin = None;
        let status = match self.status {
            Some(status) => status,
            None => {
                // A descendant may have moved the child into another process group: the
                // group kill then misses it, a kill by pid does not.
                let _ = self.child.kill();
                let deadline = Instant::now() + REAP_DEADLINE;
                loop {
                    if let Some(status) = self.child.try_wait()? {
                        break status;
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "`{}` (pid {}) did not die within {} s of SIGKILL",
                                self.program,
                                self.child.id(),
                                REAP_DEADLINE.as_secs()
                            ),
                        ));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            }
        };
        self.status = Some(status);
        self.join_readers();
        Ok(status)
    }

    /// Collects the reader threads once the child's output has ended. A descendant that left
    /// the process group can keep the pipes open after the child is gone; its readers are
    /// then detached (they end when the pipe finally closes) instead of waited for forever.
    fn join_readers(&mut self) {
        if self.readers.is_empty() {
            return;
        }
        let deadline = Instant::now() + LAST_OUTPUT_GRACE;
        let ended = self.stdout.wait_closed(deadline) && self.stderr.wait_closed(deadline);
        for reader in self.readers.drain(..) {
            if ended {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        let _ = self.kill_group_and_reap();
    }
}

/// The program `name` as the shell would find it in a folder of `PATH`, if it is installed
/// (the `which` crate, which also checks that the file is executable).
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    which::which(name).ok()
}

/// `exit code 3`, `killed by signal 9 (SIGKILL)`, in words for reports.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        },
        _ => "ended".to_string(),
    }
}

/// The name of a common signal (`SIGSEGV`), as a crash report names it.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return None,
    })
}

/// A pseudo-terminal in raw mode (no echo, no `\n` → `\r\n`), both ends close-on-exec:
/// `(master, slave)`. The slave becomes a child's standard output.
fn open_raw_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt returns a new fd or -1; it is owned from here on.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if master < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `master` is a valid fd that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    use std::os::fd::AsRawFd;
    let m = master.as_raw_fd();
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: grantpt/unlockpt take the master fd; ptsname_r writes at most `name.len()`
    // bytes, NUL included, into our buffer.
    unsafe {
        if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
            return Err(io::Error::last_os_error());
        }
        let err = libc::ptsname_r(m, name.as_mut_ptr(), name.len());
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
    }
    // SAFETY: `name` is NUL-terminated by ptsname_r; open returns a new fd or -1.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `slave` is a valid fd that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // SAFETY: termios is plain data; tcgetattr fills it, cfmakeraw edits it, tcsetattr
    // applies it to the slave we own.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave.as_raw_fd(), &mut mode) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut mode);
        if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &mode) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((master, slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_line_and_reaps() {
        let mut child = RunningChild::spawn(
            Command::new("sh").args(["-c", "echo listening on 127.0.0.1:9; cat"]),
        )
        .unwrap();
        let addr = child.wait_for_listening(Duration::from_secs(10)).unwrap();
        assert_eq!(addr.port(), 9);
        child.write_stdin("hello\n").unwrap();
        assert!(
            child
                .wait_for_line(Stream::Stdout, Duration::from_secs(10), |l| l == "hello")
                .is_some()
        );
        child.close_stdin();
        let status = child
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn kills_the_whole_group_including_forks() {
        let mut child = RunningChild::spawn(
            Command::new("sh").args(["-c", "trap '' TERM; sleep 1000 & echo forked $!; wait"]),
        )
        .unwrap();
        let line = child
            .wait_for_line(Stream::Stdout, Duration::from_secs(10), |l| {
                l.starts_with("forked")
            })
            .unwrap();
        let grandchild: i32 = line["forked ".len()..].parse().unwrap();
        let status = child.terminate(Duration::from_millis(100)).unwrap();
        assert_eq!(describe_status(status), "killed by signal 9 (SIGKILL)");
        // The grandchild got the SIGKILL too. Delivery is asynchronous, so wait (bounded)
        // until it is gone or a zombie (reparented, no longer running).
        let running = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .map(|stat| !stat.contains(") Z"))
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(!running(), "the forked grandchild survived");
    }

    #[test]
    fn a_descendant_that_escaped_the_group_cannot_hang_the_caller() {
        // The child starts a process in a new session (outside our reach by group), which
        // inherits the output pipes, then exits.
        let mut child = RunningChild::spawn(
            Command::new("sh").args(["-c", "setsid sleep 60 & echo escaped $!"]),
        )
        .unwrap();
        let line = child
            .wait_for_line(Stream::Stdout, Duration::from_secs(10), |l| {
                l.starts_with("escaped")
            })
            .unwrap();
        let escaped: i32 = line["escaped ".len()..].parse().unwrap();
        let started = Instant::now();
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
        child.kill().unwrap();
        drop(child);
        let waited = started.elapsed();
        // SAFETY: a plain kill of the process this test started.
        unsafe {
            libc::kill(escaped, libc::SIGKILL);
        }
        assert!(status.is_some_and(|s| s.success()));
        assert!(
            waited < Duration::from_secs(30),
            "waited {waited:?} for a pipe held by an escapee"
        );
    }

    #[test]
    fn output_is_bounded() {
        let mut child = RunningChild::spawn_with_limit(
            Command::new("sh").args(["-c", "yes flood | head -c 1000000"]),
            10_000,
        )
        .unwrap();
        child.wait_timeout(Duration::from_secs(20)).unwrap();
        assert!(child.text(Stream::Stdout).len() <= 20_000);
        assert!(child.dropped_bytes(Stream::Stdout) > 900_000);
    }

    #[test]
    fn a_child_moved_out_of_its_group_is_still_killed_and_reaped() {
        // The grandchild makes a process group of its own, and the direct child joins it:
        // both are then out of reach of a kill of the child's original group.
        let mut child = RunningChild::spawn(Command::new("python3").args([
            "-c",
            r"
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.write(w, b'x')
    time.sleep(60)
    os._exit(0)
os.read(r, 1)
os.setpgid(0, pid)
print('moved', pid, flush=True)
time.sleep(60)
",
        ]))
        .unwrap();
        let line = child
            .wait_for_line(Stream::Stdout, Duration::from_secs(20), |l| {
                l.starts_with("moved")
            })
            .unwrap();
        let helper: i32 = line["moved ".len()..].parse().unwrap();
        let started = Instant::now();
        let status = child.terminate(Duration::from_millis(100));
        // SAFETY: ends the helper this test started (it left the child's group on purpose).
        unsafe {
            libc::kill(helper, libc::SIGKILL);
        }
        let status = status.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn stdout_through_a_pty_is_line_buffered_by_stdio() {
        // `python3 -u` would unbuffer; plain python3 line-buffers only on a terminal, as C's
        // stdio does. The line must arrive while the program still runs.
        let mut child = RunningChild::spawn_captured(
            Command::new("python3").args([
                "-c",
                "import sys, time; print('tty' if sys.stdout.isatty() else 'pipe'); sys.stdout.write('> '); sys.stdout.flush(); time.sleep(60)",
            ]),
            Capture {
                stdout_pty: true,
                ..Capture::default()
            },
        )
        .unwrap();
        let line = child.wait_for_line(Stream::Stdout, Duration::from_secs(20), |_| true);
        assert_eq!(line.as_deref(), Some("tty"));
        let started = Instant::now();
        child.kill().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
