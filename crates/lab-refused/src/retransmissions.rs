//! How many times the kernel resent one socket's SYN, and when it would resend it.
//!
//! `strace` shows system calls, never packets: a `connect()` that waits is one call, however
//! many SYNs the kernel sends inside it. The evidence of a retransmission is the kernel's own
//! bookkeeping: per socket, `getsockopt(TCP_INFO)` (`tcpi_total_retrans`); system-wide, the
//! `RetransSegs` counter of `/proc/net/snmp`; or the packets themselves.
//!
//! Linux resends an unanswered SYN first after 1 s (`TCP_TIMEOUT_INIT`, `include/net/tcp.h`).
//! Before Linux 6.5 it then doubled each wait (1, 3, 7, 15, 31, 63 s after the first SYN, giving
//! up at about 127 s with the default `tcp_syn_retries = 6`). Since 6.5 the first
//! `tcp_syn_linear_timeouts` (default 4) waits stay at 1 s, as macOS has long done, before
//! doubling (kernel commit ccce324dabfe, "tcp: make the first N SYN RTO backoffs linear";
//! `Documentation/networking/ip-sysctl.rst`). The backlog experiment measures the schedule.

use std::time::Duration;

use socket2::Socket;

/// Where Linux publishes how many times an unanswered SYN is resent.
pub const SYN_RETRIES_PATH: &str = "/proc/sys/net/ipv4/tcp_syn_retries";

/// Linux's first retransmission timeout for a SYN (`TCP_TIMEOUT_INIT`).
pub const FIRST_SYN_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times this socket's kernel resent a segment (for a connecting socket: its SYN),
/// from `TCP_INFO`. `None` where `TCP_INFO` does not exist (other systems than Linux).
#[cfg(target_os = "linux")]
pub fn resent_segments(socket: &Socket) -> Option<u32> {
    lab_kit::kernel::tcp_info(socket).map(|info| info.tcpi_total_retrans)
}

/// How many times this socket's kernel resent a segment: unknown on this system.
#[cfg(not(target_os = "linux"))]
pub fn resent_segments(_socket: &Socket) -> Option<u32> {
    None
}

/// Where Linux 6.5 and later publish how many SYN resends keep a 1 s wait.
pub const SYN_LINEAR_TIMEOUTS_PATH: &str = "/proc/sys/net/ipv4/tcp_syn_linear_timeouts";

/// This machine's `tcp_syn_retries`, where Linux publishes it.
pub fn syn_retries() -> Option<u32> {
    read_number(SYN_RETRIES_PATH)
}

/// This machine's `tcp_syn_linear_timeouts` (Linux 6.5 and later).
pub fn syn_linear_timeouts() -> Option<u32> {
    read_number(SYN_LINEAR_TIMEOUTS_PATH)
}

fn read_number(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
