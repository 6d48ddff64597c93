//! Question 2: what is `localhost`, and how is it used to develop networked programs?
//!
//! Two wrong answers are common: "localhost is the client's own network" and "the client
//! becomes a server". The experiments here show what it really is, on the reader's machine:
//!
//! - `localhost` is a *name*. The system resolver (`/etc/hosts` first, on Linux) turns it
//!   into loopback addresses, often both `127.0.0.1` and `::1`, in an order that matters
//!   (Windows and macOS put `::1` first).
//! - A server bound to `127.0.0.1` only is refused on `::1`; `TcpStream::connect("localhost:…")`
//!   still works because it tries each resolved address in turn.
//! - Loopback is a virtual interface (`lo`) inside the kernel: no network card is involved,
//!   its MTU is 65536, and the whole `127.0.0.0/8` range belongs to it. That is Linux: macOS's
//!   `lo0` has MTU 16384 and only `127.0.0.1` configured (`docs/02-localhost.md`).
//! - The address a server binds decides who can reach it: `127.0.0.1` only this machine,
//!   over loopback; the wildcard `0.0.0.0` every interface (see also [`crate::namespaces`]).
//! - Port 0 asks the kernel for a free ephemeral port, which is how two programs (a server
//!   and a client) are developed and tested on one machine.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use lab_capture::{Wire, Wiretap};
use serde::Serialize;

use lab_kit::attempt::Outcome;

use crate::attempt::ConnectAttempt;
use crate::error::Error;

/// The name every machine gives itself.
pub const LOCALHOST: &str = "localhost";
/// Where Linux publishes the range of ports the kernel picks from for port 0.
pub const EPHEMERAL_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Where Linux publishes the loopback interface's properties.
pub const LOOPBACK_SYSFS: &str = "/sys/class/net/lo";

/// What `localhost` resolves to here, in the order a client tries the addresses.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub experiment: &'static str,
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// True when at least one address is a loopback address.
    pub includes_loopback: bool,
    /// True when every address is a loopback address.
    pub all_loopback: bool,
}

/// Resolves `localhost` through the system resolver (`getaddrinfo`), as every client does.
pub fn resolve_localhost() -> Result<Resolution, Error> {
    let addresses = resolve_name(LOCALHOST)?;
    Ok(Resolution {
        experiment: "localhost_resolution",
        name: LOCALHOST.to_string(),
        includes_loopback: addresses.iter().any(IpAddr::is_loopback),
        all_loopback: !addresses.is_empty() && addresses.iter().all(IpAddr::is_loopback),
        addresses,
    })
}

/// The addresses `name` resolves to, in the resolver's order, without duplicates.
fn resolve_name(name: &str) -> Result<Vec<IpAddr>, Error> {
    let resolved = lab_kit::addr::resolve(&format!("{name}:0"))?;
    let mut addresses: Vec<IpAddr> = Vec::new();
    for addr in resolved {
        if !addresses.contains(&addr.ip()) {
            addresses.push(addr.ip());
        }
    }
    Ok(addresses)
}

/// The classic trap: a server on `127.0.0.1` only, and a client that tries `::1` first.
#[derive(Debug, Clone, Serialize)]
pub struct Ipv6FirstTrap {
    pub experiment: &'static str,
    /// The server's address (bound to 127.0.0.1, port from the kernel).
    pub server: SocketAddr,
    /// A client that tries `::1` first, then `127.0.0.1`, as many systems order `localhost`.
    pub ipv6_first_attempts: Vec<ConnectAttempt>,
    /// Each address `localhost` resolves to here, tried in turn: what `TcpStream::connect`
    /// does inside.
    pub localhost_attempts: Vec<ConnectAttempt>,
    /// The peer that `TcpStream::connect(("localhost", port))` ended up connected to.
    pub std_connected_to: Option<SocketAddr>,
}

/// Runs the trap: refused on `::1`, connected on `127.0.0.1`, and what `std` does.
pub fn ipv6_first_trap() -> Result<Ipv6FirstTrap, Error> {
    let listener = bind_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let server = local_addr(&listener)?;
    let port = server.port();
    let ipv6_first_attempts = [
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ]
    .into_iter()
    .map(ConnectAttempt::once)
    .collect();
    let localhost_attempts = resolve_name(LOCALHOST)?
        .into_iter()
        .map(|ip| ConnectAttempt::once(SocketAddr::new(ip, port)))
        .collect();
    // The standard library resolves the name and tries every address until one connects.
    let std_connected_to = std::net::TcpStream::connect((LOCALHOST, port))
        .and_then(|stream| stream.peer_addr())
        .ok();
    Ok(Ipv6FirstTrap {
        experiment: "ipv6_first_trap",
        server,
        ipv6_first_attempts,
        localhost_attempts,
        std_connected_to,
    })
}

/// The loopback interface, and the whole `127.0.0.0/8` range that belongs to it.
#[derive(Debug, Clone, Serialize)]
pub struct LoopbackInterface {
    pub experiment: &'static str,
    /// The interface's MTU from `/sys/class/net/lo/mtu` (65536 on Linux), if readable.
    pub mtu: Option<u32>,
    /// A server bound to each of these addresses was reached, and echoed a message back.
    pub range_round_trips: Vec<RangeRoundTrip>,
    /// Binding an address that is not on any interface of this machine (TEST-NET-1).
    pub foreign_bind: ForeignBind,
    /// Packets and bytes the `lo` interface counted during the round trips.
    pub lo_packets_delta: Option<u64>,
    pub lo_bytes_delta: Option<u64>,
}

/// One address in 127.0.0.0/8, bound and reached.
#[derive(Debug, Clone, Serialize)]
pub struct RangeRoundTrip {
    pub address: Ipv4Addr,
    pub bound: bool,
    pub echoed: bool,
}

/// What happened when we tried to bind an address this machine does not have.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignBind {
    pub address: Ipv4Addr,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub error: Option<lab_kit::errors::ErrorFacts>,
}

/// Addresses of 127.0.0.0/8 to try: the familiar one and three that nobody configured.
pub const RANGE_SAMPLES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 1, 2, 3),
    Ipv4Addr::new(127, 255, 255, 254),
];
/// An address reserved for documentation (RFC 5737): never configured on a real machine.
pub const NOT_OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Reads `lo`'s MTU, binds a server on several 127.x.y.z addresses and echoes through each,
/// counting the packets on `lo`.
pub fn loopback_interface() -> Result<LoopbackInterface, Error> {
    let mtu = read_sysfs_number("mtu").and_then(|mtu| u32::try_from(mtu).ok());
    let before = lo_counters();
    let mut range_round_trips = Vec::new();
    for address in RANGE_SAMPLES {
        range_round_trips.push(round_trip_on(address)?);
    }
    let after = lo_counters();
    let (lo_packets_delta, lo_bytes_delta) = match (before, after) {
        (Some(b), Some(a)) => (Some(a.0.saturating_sub(b.0)), Some(a.1.saturating_sub(b.1))),
        _ => (None, None),
    };
    let foreign_bind = ForeignBind {
        address: NOT_OURS,
        error: TcpListener::bind((NOT_OURS, 0))
            .err()
            .map(|e| lab_kit::errors::ErrorFacts::of(&e)),
    };
    Ok(LoopbackInterface {
        experiment: "loopback_interface",
        mtu,
        range_round_trips,
        foreign_bind,
        lo_packets_delta,
        lo_bytes_delta,
    })
}

/// Binds a server on `address`, connects to it, and checks one message comes back.
fn round_trip_on(address: Ipv4Addr) -> Result<RangeRoundTrip, Error> {
    let Ok(listener) = TcpListener::bind((address, 0)) else {
        return Ok(RangeRoundTrip {
            address,
            bound: false,
            echoed: false,
        });
    };
    let server = local_addr(&listener)?;
    let (attempt, client) = ConnectAttempt::measure(server);
    let Some(mut client) = client else {
        return Err(Error::Unexpected(format!(
            "connect to our own server on {server}: {}",
            attempt.describe()
        )));
    };
    let (mut accepted, _) = listener.accept().map_err(Error::socket("accept"))?;
    client.write_all(b"ping\n").map_err(Error::socket("send"))?;
    let mut request = [0u8; 5];
    accepted
        .read_exact(&mut request)
        .map_err(Error::socket("recv"))?;
    accepted
        .write_all(&request)
        .map_err(Error::socket("send"))?;
    let mut reply = [0u8; 5];
    client
        .read_exact(&mut reply)
        .map_err(Error::socket("recv"))?;
    Ok(RangeRoundTrip {
        address,
        bound: true,
        echoed: &reply == b"ping\n",
    })
}

fn read_sysfs_number(name: &str) -> Option<u64> {
    fs::read_to_string(format!("{LOOPBACK_SYSFS}/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `lo`'s received packets and bytes (every packet it sends, it also receives).
fn lo_counters() -> Option<(u64, u64)> {
    Some((
        read_sysfs_number("statistics/rx_packets")?,
        read_sysfs_number("statistics/rx_bytes")?,
    ))
}

/// A server bound to one address, and which addresses reach it.
#[derive(Debug, Clone, Serialize)]
pub struct BoundServer {
    /// The address given to `bind()`.
    pub bound_to: SocketAddr,
    pub attempts: Vec<ConnectAttempt>,
}

/// What the bind address means, on one machine.
#[derive(Debug, Clone, Serialize)]
pub struct BindAddressMatters {
    pub experiment: &'static str,
    pub servers: Vec<BoundServer>,
    /// Why the IPv6 wildcard part did not run, when it did not.
    pub ipv6_skipped: Option<String>,
    /// The attempts' packets on `lo`, when watched (`packets`, `capture`).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// Binds servers to `127.0.0.1`, `0.0.0.0` and `[::]` and tries `127.0.0.1`, `127.0.0.2`
/// (and `::1`) against each.
///
/// Binding the wildcard opens the port on every interface of this machine for the few
/// milliseconds the experiment lasts; we only ever connect to it over loopback.
pub fn bind_address_matters() -> Result<BindAddressMatters, Error> {
    bind_address_matters_watched(&Wiretap::off())
}

/// Like [`bind_address_matters`], with the attempts' packets captured by `tap` (all the
/// servers are bound first, then watched, then tried).
pub fn bind_address_matters_watched(tap: &Wiretap) -> Result<BindAddressMatters, Error> {
    let v4_targets = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];
    let mut v4_listeners = Vec::new();
    for bind_ip in [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED] {
        let listener = bind_listener(SocketAddr::from((bind_ip, 0)))?;
        let port = local_addr(&listener)?.port();
        v4_listeners.push((bind_ip, port, listener));
    }
    // `[::]` on Linux is dual-stack by default (IPV6_V6ONLY is off): it also accepts IPv4
    // connections, which arrive as IPv4-mapped addresses (::ffff:127.0.0.1).
    let v6_listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0));
    let v6_port = match &v6_listener {
        Ok(listener) => Some(local_addr(listener)?.port()),
        Err(_) => None,
    };
    let ports: Vec<u16> = v4_listeners
        .iter()
        .map(|(_, port, _)| *port)
        .chain(v6_port)
        .collect();
    let watch = tap.watch("bind_address", &ports);
    let mut servers = Vec::new();
    for (bind_ip, port, _listener) in &v4_listeners {
        let attempts = v4_targets
            .iter()
            .map(|&ip| ConnectAttempt::once(SocketAddr::from((ip, *port))))
            .collect();
        servers.push(BoundServer {
            bound_to: SocketAddr::from((*bind_ip, *port)),
            attempts,
        });
    }
    let mut ipv6_skipped = None;
    match (v6_listener, v6_port) {
        (Ok(_listener), Some(port)) => {
            let targets = [
                SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
                SocketAddr::from((v4_targets[0], port)),
                SocketAddr::from((v4_targets[1], port)),
            ];
            servers.push(BoundServer {
                bound_to: SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
                attempts: targets.into_iter().map(ConnectAttempt::once).collect(),
            });
        }
        (Err(e), _) => {
            ipv6_skipped = Some(format!(
                "IPv6 is not available here ({})",
                lab_kit::errors::ErrorFacts::of(&e).summary()
            ))
        }
        (Ok(_), None) => {}
    }
    Ok(BindAddressMatters {
        experiment: "bind_address",
        servers,
        ipv6_skipped,
        wire: watch.finish(),
    })
}

/// Port 0: the kernel chooses a free port from the ephemeral range.
#[derive(Debug, Clone, Serialize)]
pub struct EphemeralPort {
    pub experiment: &'static str,
    /// The range from `/proc/sys/net/ipv4/ip_local_port_range`, if readable.
    pub range: Option<(u16, u16)>,
    /// The ports the kernel gave to three servers that asked for port 0.
    pub ports: Vec<u16>,
    /// True when every port lies in the range (None when the range is unknown).
    pub all_in_range: Option<bool>,
}

/// Binds three servers to `127.0.0.1:0` and reads back the ports the kernel chose.
pub fn ephemeral_port() -> Result<EphemeralPort, Error> {
    let range = read_ephemeral_range();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(bind_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?);
    }
    let ports = listeners
        .iter()
        .map(|l| local_addr(l).map(|a| a.port()))
        .collect::<Result<Vec<u16>, Error>>()?;
    let all_in_range =
        range.map(|(low, high)| ports.iter().all(|port| (low..=high).contains(port)));
    Ok(EphemeralPort {
        experiment: "ephemeral_port",
        range,
        ports,
        all_in_range,
    })
}

/// Reads the two numbers of `ip_local_port_range` (Linux only).
pub fn read_ephemeral_range() -> Option<(u16, u16)> {
    let text = fs::read_to_string(EPHEMERAL_RANGE_PATH).ok()?;
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}

fn bind_listener(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).map_err(|source| Error::Listen {
        addr: addr.to_string(),
        source,
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(Error::socket("getsockname"))
}

/// True when `attempts` has an attempt to `ip` with `outcome`.
pub fn outcome_for(attempts: &[ConnectAttempt], ip: IpAddr) -> Option<Outcome> {
    attempts
        .iter()
        .find(|a| a.target.ip() == ip)
        .map(ConnectAttempt::outcome)
}
