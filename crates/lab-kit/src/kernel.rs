//! The kernel's own TCP counters, read from `/proc/net/snmp` (Linux only).
//!
//! Every TCP event the kernel handles is counted there, system-wide: connections it opened
//! (`ActiveOpens`), attempts that failed (`AttemptFails`), resets it sent (`OutRsts`),
//! segments it retransmitted (`RetransSegs`). Reading them before and after an experiment
//! is independent evidence of what the kernel did, not what our program believes it did.
//! Other programs on the machine add to the same counters, so a difference is "at least".
//!
//! `/proc/net/tcp` and `/proc/net/tcp6` list every TCP socket, one row each: its addresses,
//! its state (`LISTEN`, `ESTABLISHED`, `TIME_WAIT` …), its queues and its inode, which ties
//! it to the process holding it open (`/proc/PID/fd`). [`tcp_sockets`] reads them with the
//! `procfs` crate; the lab's accept-queue and `TIME_WAIT` experiments, the grader (which
//! port did the student's program listen on?) and the chat benchmark all use it.
//!
//! `/proc/net/netstat` holds the extended counters (`TcpExt:`), among them the ones that
//! count SYNs dropped because a listener's accept queue was full (`ListenOverflows`,
//! `ListenDrops`).

use std::collections::BTreeMap;
use std::fs;
use std::io;

pub use procfs::net::{TcpNetEntry as TcpSocket, TcpState};

use serde::Serialize;

/// Where Linux publishes the counters.
pub const SNMP_PATH: &str = "/proc/net/snmp";

/// Where Linux publishes the extended counters.
pub const NETSTAT_PATH: &str = "/proc/net/netstat";

/// The counters of one table (`Tcp:` or `TcpExt:`): a header line of names, then values.
fn parse_table(text: &str, prefix: &str) -> BTreeMap<String, i64> {
    let mut lines = text.lines().filter(|line| line.starts_with(prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return BTreeMap::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}

/// One reading of the listen-queue counters of `/proc/net/netstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListenQueueCounters {
    /// Times a SYN or handshake completion found an accept queue full.
    pub listen_overflows: i64,
    /// Connection requests dropped at a listening socket (overflows included).
    pub listen_drops: i64,
}

impl ListenQueueCounters {
    /// Reads `ListenOverflows` and `ListenDrops` from the `TcpExt:` table.
    pub fn read() -> Result<Self, CountersUnavailable> {
        let text = fs::read_to_string(NETSTAT_PATH).map_err(CountersUnavailable::Unreadable)?;
        let table = parse_table(&text, "TcpExt:");
        match (table.get("ListenOverflows"), table.get("ListenDrops")) {
            (Some(&listen_overflows), Some(&listen_drops)) => Ok(ListenQueueCounters {
                listen_overflows,
                listen_drops,
            }),
            _ => Err(CountersUnavailable::Unparsable),
        }
    }

    /// What changed from `before` to `self`.
    pub fn since(&self, before: &ListenQueueCounters) -> ListenQueueCounters {
        ListenQueueCounters {
            listen_overflows: self.listen_overflows - before.listen_overflows,
            listen_drops: self.listen_drops - before.listen_drops,
        }
    }
}

/// One reading of the `Tcp:` counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCounters {
    values: BTreeMap<String, i64>,
}

/// The change of the counters we teach with, between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpCounterDelta {
    pub active_opens: i64,
    pub passive_opens: i64,
    pub attempt_fails: i64,
    pub out_rsts: i64,
    pub retrans_segs: i64,
}

/// Why the counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CountersUnavailable {
    #[error("the kernel's counters in /proc/net cannot be read ({0}); they are a Linux feature")]
    Unreadable(std::io::Error),
    #[error("/proc/net has no counter table in the expected format")]
    Unparsable,
}

impl TcpCounters {
    /// Reads the `Tcp:` header and value lines of `/proc/net/snmp`.
    pub fn read() -> Result<Self, CountersUnavailable> {
        let text = fs::read_to_string(SNMP_PATH).map_err(CountersUnavailable::Unreadable)?;
        Self::parse(&text).ok_or(CountersUnavailable::Unparsable)
    }

    /// Parses the two `Tcp:` lines: the first names the counters, the second holds values.
    pub fn parse(snmp: &str) -> Option<Self> {
        let values = parse_table(snmp, "Tcp:");
        if values.contains_key("AttemptFails") {
            Some(TcpCounters { values })
        } else {
            None
        }
    }

    /// One counter by its kernel name, e.g. `"OutRsts"`.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.values.get(name).copied()
    }

    /// What changed from `before` to `self`.
    pub fn since(&self, before: &TcpCounters) -> TcpCounterDelta {
        let delta = |name: &str| self.get(name).unwrap_or(0) - before.get(name).unwrap_or(0);
        TcpCounterDelta {
            active_opens: delta("ActiveOpens"),
            passive_opens: delta("PassiveOpens"),
            attempt_fails: delta("AttemptFails"),
            out_rsts: delta("OutRsts"),
            retrans_segs: delta("RetransSegs"),
        }
    }
}

/// The kernel's own record of one TCP socket, `getsockopt(TCP_INFO)` (Linux): its
/// retransmissions (`tcpi_total_retrans`), and for a listening socket its accept queue
/// (`tcpi_unacked`, limit `tcpi_sacked`). `None` where it cannot be read.
#[cfg(target_os = "linux")]
pub fn tcp_info(socket: &impl std::os::fd::AsRawFd) -> Option<libc::tcp_info> {
    // SAFETY: `tcp_info` is plain data (integers only), so all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: the fd is open for the borrow of `socket`; `info` and `len` are valid for
    // writes of `len` bytes, and the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// Every TCP socket of this network namespace, IPv4 then IPv6, as the kernel lists them in
/// `/proc/net/tcp` and `/proc/net/tcp6`. (A kernel without IPv6 has no `tcp6`: then only
/// the IPv4 rows.)
pub fn tcp_sockets() -> io::Result<Vec<TcpSocket>> {
    let mut rows = procfs::net::tcp().map_err(io::Error::other)?;
    if let Ok(v6) = procfs::net::tcp6() {
        rows.extend(v6);
    }
    Ok(rows)
}

/// The kernel's name for a TCP state, as `ss` and `netstat` print it: `ESTABLISHED`,
/// `TIME_WAIT`, `LISTEN` …
pub fn state_name(state: &TcpState) -> &'static str {
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// The inodes of the sockets listening on `port` (IPv4 and IPv6).
pub fn listening_inodes(port: u16) -> Vec<u64> {
    tcp_sockets()
        .unwrap_or_default()
        .into_iter()
        .filter(|row| row.state == TcpState::Listen && row.local_address.port() == port)
        .map(|row| row.inode)
        .collect()
}

/// The inodes of the sockets process `pid` has open (`/proc/PID/fd/N -> socket:[INODE]`);
/// empty if the process is gone or not ours to look at.
pub fn socket_inodes_of(pid: u32) -> Vec<u64> {
    let Ok(pid) = i32::try_from(pid) else {
        return Vec::new();
    };
    let Ok(fds) = procfs::process::Process::new(pid).and_then(|process| process.fd()) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| match fd.target {
            procfs::process::FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect()
}

/// The port process `pid` listens on, if it listens on any (the first one the kernel
/// lists).
pub fn listening_port_of(pid: u32) -> Option<u16> {
    let inodes = socket_inodes_of(pid);
    tcp_sockets()
        .ok()?
        .into_iter()
        .find(|row| row.state == TcpState::Listen && inodes.contains(&row.inode))
        .map(|row| row.local_address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tcp_table() {
        let sample = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Tcp: RtoAlgorithm ActiveOpens PassiveOpens AttemptFails OutRsts RetransSegs\n\
            Tcp: 1 10 5 3 7 0\n";
        let before = TcpCounters::parse(sample).unwrap();
        let after = TcpCounters::parse(&sample.replace("1 10 5 3 7 0", "1 11 5 4 8 0")).unwrap();
        let delta = after.since(&before);
        assert_eq!(
            (delta.active_opens, delta.attempt_fails, delta.out_rsts),
            (1, 1, 1)
        );
    }

    #[test]
    fn reads_the_listen_queue_counters_on_linux() {
        if cfg!(target_os = "linux") {
            let counters = ListenQueueCounters::read().unwrap();
            assert!(counters.listen_drops >= counters.listen_overflows);
        }
    }

    #[test]
    fn a_listening_socket_is_found_with_its_state_port_and_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rows = tcp_sockets().unwrap();
        let row = rows
            .iter()
            .find(|row| row.local_address.port() == port)
            .expect("our listener is in /proc/net/tcp");
        assert_eq!(state_name(&row.state), "LISTEN");
        assert_eq!(listening_inodes(port), vec![row.inode]);
        assert!(socket_inodes_of(std::process::id()).contains(&row.inode));
        assert!(listening_port_of(std::process::id()).is_some());
    }
}
