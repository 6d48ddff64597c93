//! The kernel's own TCP counters, read from `/proc/net/snmp` (Linux only).
//!
//! Every TCP event the kernel handles is counted there, system-wide: connections it opened
//! (`ActiveOpens`), attempts that failed (`AttemptFails`), resets it sent (`OutRsts`),
//! segments it retransmitted (`RetransSegs`). Reading them before and after an experiment
//! is independent evidence of what the kernel did, not what our program believes it did.
//! Other programs on the machine add to the same counters, so a difference is "at least".

use std::collections::BTreeMap;
use std::fs;

use serde::Serialize;

/// Where Linux publishes the counters.
pub const SNMP_PATH: &str = "/proc/net/snmp";

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
    #[error("{SNMP_PATH} cannot be read ({0}); the kernel counters are a Linux feature")]
    Unreadable(std::io::Error),
    #[error("{SNMP_PATH} has no Tcp: table in the expected format")]
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
        let mut tcp_lines = snmp.lines().filter(|line| line.starts_with("Tcp:"));
        let names = tcp_lines.next()?.split_whitespace().skip(1);
        let values = tcp_lines.next()?.split_whitespace().skip(1);
        let values: BTreeMap<String, i64> = names
            .zip(values)
            .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
            .collect();
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
}
