//! Experiment 6: a host that is down, on the client's own network.
//!
//! "No answer" is not always a timeout. When the destination is on the client's own link,
//! the client's kernel must first learn its hardware address: it asks the link "who has
//! 192.0.2.99?" (ARP), by default 3 times, 1 s apart (`mcast_solicit`, `retrans_time_ms`,
//! see `arp(7)`). When nobody answers, it gives up and `connect()` fails with
//! `EHOSTUNREACH` (errno 113, "No route to host") after about 3 s, whatever the program's own
//! deadline. Behind a router the ARP question is the router's, the client hears nothing and
//! waits for its deadline, as in experiment 3.
//!
//! The experiment builds its own link: a network namespace (a separate copy of the network
//! stack) with a veth pair, the client at 192.0.2.1/24 on one end, nobody at all on the
//! other, and connects to 192.0.2.99. Nothing outside the namespace is touched. It needs
//! root and `ip` ([`lab_kit::netns`]); elsewhere it is skipped with the reason.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lab_kit::attempt::Attempt;
use lab_kit::netns::Namespace;
use serde::Serialize;

/// The client's address on the link (TEST-NET-1, RFC 5737).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The address nobody has, on the same link.
pub const ABSENT_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// What a connect to an absent host on the client's own link did.
#[derive(Debug, Clone, Serialize)]
pub struct HostDownReport {
    pub experiment: &'static str,
    pub target: SocketAddr,
    /// The client's own deadline, far longer than ARP's.
    pub deadline_us: u64,
    #[serde(flatten)]
    pub attempt: Attempt,
    /// How many ARP questions the kernel asks before giving up (`mcast_solicit`).
    pub arp_questions: Option<u32>,
    /// How long it waits for each answer, in ms (`retrans_time_ms`).
    pub arp_wait_ms: Option<u32>,
}

/// Why the experiment could not run, or failed to set up.
#[derive(Debug, thiserror::Error)]
pub enum HostDownError {
    #[error("{0}")]
    Unavailable(String),
    #[error("could not build the experiment's network namespace: {0}")]
    Setup(#[from] std::io::Error),
}

/// The link's interface inside the namespace.
const DEVICE: &str = "veth-client";

/// Connects, with `deadline`, to an address nobody has on the client's own link.
pub fn connect_to_a_host_that_is_down(deadline: Duration) -> Result<HostDownReport, HostDownError> {
    if let Some(why) = lab_kit::netns::unavailable_reason() {
        return Err(HostDownError::Unavailable(why));
    }
    let namespace = Namespace::create("lab-refused-down")?;
    namespace.ip(&[
        "link",
        "add",
        DEVICE,
        "type",
        "veth",
        "peer",
        "name",
        "veth-nobody",
    ])?;
    namespace.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", DEVICE])?;
    namespace.ip(&["link", "set", DEVICE, "up"])?;
    namespace.ip(&["link", "set", "veth-nobody", "up"])?;
    let target = SocketAddr::from((ABSENT_HOST, 9));
    let (attempt, arp_questions, arp_wait_ms) = namespace.run_in(|| {
        // This thread is inside the namespace: /proc/sys/net shows the namespace's settings.
        let setting = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/{DEVICE}/{name}"))
                .ok()
                .and_then(|text| text.trim().parse().ok())
        };
        let started = Instant::now();
        let result = TcpStream::connect_timeout(&target, deadline);
        let elapsed = started.elapsed();
        (
            Attempt::record(&result, elapsed),
            setting("mcast_solicit"),
            setting("retrans_time_ms"),
        )
    })?;
    Ok(HostDownReport {
        experiment: "host_down",
        target,
        deadline_us: lab_kit::narrate::saturating_micros(deadline),
        attempt,
        arp_questions,
        arp_wait_ms,
    })
}
