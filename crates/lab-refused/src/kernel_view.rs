//! Experiment 5: the same refusal, as the kernel records it.
//!
//! `strace` shows every system call a program makes, with arguments and result. We run
//! one refused connect in a child process (a *probe*: this program re-run with the hidden
//! argument `__probe refused-connect ADDR`) under `strace -e trace=network`, and keep the
//! lines. The one that matters reads
//! `connect(3, {sa_family=AF_INET, sin_port=htons(…), sin_addr=inet_addr("127.0.0.1")}, 16)
//! = -1 ECONNREFUSED (Connection refused)`: one call, one answer, so the program did not
//! retry. Whether the *kernel* resent a SYN inside that call, strace cannot say: it sees
//! system calls, not packets (see [`crate::retransmissions`]).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lab_kit::probe::Probe;
use lab_kit::strace::{self, StraceError};
use serde::Serialize;

/// The probe's name.
pub const REFUSED_CONNECT_PROBE: &str = "refused-connect";

/// What strace recorded of one refused connect.
#[derive(Debug, Clone, Serialize)]
pub struct StraceReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    /// Every network system call strace recorded, in order.
    pub syscalls: Vec<String>,
    /// How many `connect` calls the program made (one: nothing retried).
    pub connect_calls: usize,
    /// The `connect` line that failed with ECONNREFUSED.
    pub refused_line: Option<String>,
}

/// Runs the refused-connect probe under strace. `Err(Unavailable)` means strace cannot run
/// here; the caller says so and goes on.
pub fn trace_refused_connect(probe: &Probe) -> Result<StraceReport, StraceError> {
    let closed = lab_kit::ports::ClosedTcpPort::reserve()?;
    let target = closed.addr();
    let target_text = target.to_string();
    let args = probe.args(REFUSED_CONNECT_PROBE, &[&target_text]);
    let record = strace::trace(probe.exe(), &args, "trace=network", Duration::from_secs(30))?;
    let connects = record.calls("connect");
    let refused_line = connects
        .iter()
        .find(|line| line.contains("ECONNREFUSED"))
        .map(|line| line.to_string());
    Ok(StraceReport {
        experiment: "strace",
        target,
        connect_calls: connects.len(),
        refused_line,
        syscalls: record.lines.clone(),
    })
}

/// The probe: one plain `TcpStream::connect`, nothing else. Exit code 0 if it was refused
/// (what the experiment expects), 1 if anything else happened, 2 for a bad argument.
pub fn refused_connect(args: &[String]) -> i32 {
    let Some(target) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: __probe {REFUSED_CONNECT_PROBE} IP:PORT");
        return 2;
    };
    match TcpStream::connect(target) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            println!("refused: {e}");
            0
        }
        Err(e) => {
            println!("failed: {e}");
            1
        }
        Ok(_) => {
            println!("connected");
            1
        }
    }
}
