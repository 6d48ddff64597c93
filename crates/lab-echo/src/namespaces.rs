//! The bind address across a real (virtual) link: two network namespaces joined by a veth
//! pair, each a separate "host" with its own interfaces, its own loopback and its own ports.
//!
//! On one machine, `127.0.0.1` versus `0.0.0.0` only shows as "127.0.0.2 is refused". Across
//! a link it shows what it means in practice: a server bound to `127.0.0.1` cannot be reached
//! from another host at all, one bound to the wildcard can. And `127.0.0.1` on the client
//! host is the *client's own* loopback: it never leaves the client host.
//!
//! Creating namespaces needs root and the `ip` tool (iproute2). Each experiment creates its
//! own pair with unique names, uses only the documentation addresses 192.0.2.1 and 192.0.2.2
//! inside them, and deletes them when [`NamespacePair`] is dropped, whatever happened.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use lab_capture::{Wire, Wiretap};
use serde::Serialize;

use crate::attempt::ConnectAttempt;
use crate::error::Error;

/// The server host's address on the link (TEST-NET-1, RFC 5737).
pub const SERVER_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client host's address on the link.
pub const CLIENT_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Why namespaces cannot be created here, or `None` when they can be tried.
pub fn unavailable_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces are a Linux feature".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("creating network namespaces needs root".into());
    }
    // Root in a container may still lack the capability that creating namespaces needs.
    if !has_capability(CAP_SYS_ADMIN) {
        return Some(
            "creating network namespaces needs CAP_SYS_ADMIN, which this process lacks".into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("the `ip` tool is missing (on Debian/Ubuntu: apt-get install iproute2)".into()),
    }
}

/// The capability number of CAP_SYS_ADMIN (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process's effective capabilities (`CapEff` in /proc/self/status) include `cap`.
fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// Two network namespaces ("server host" and "client host") joined by a veth pair.
/// Dropping it deletes both namespaces (and with them the veth pair).
#[derive(Debug)]
pub struct NamespacePair {
    pub server_ns: String,
    pub client_ns: String,
    created: Vec<String>,
}

impl NamespacePair {
    /// Creates the pair: `192.0.2.1/24` on the server side, `192.0.2.2/24` on the client side,
    /// and each namespace's own loopback brought up.
    pub fn create() -> Result<Self, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut pair = NamespacePair {
            server_ns: format!("lab-echo-srv-{unique}"),
            client_ns: format!("lab-echo-cli-{unique}"),
            created: Vec::new(),
        };
        remove_leftovers();
        // From here on, `pair` is dropped (and cleans up) on any early return.
        for ns in [pair.server_ns.clone(), pair.client_ns.clone()] {
            run_ip(&["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        let (srv, cli) = (pair.server_ns.clone(), pair.client_ns.clone());
        // Interface names are per namespace, so fixed short names cannot collide.
        run_ip(&[
            "-n", &srv, "link", "add", "veth-srv", "type", "veth", "peer", "name", "veth-cli",
            "netns", &cli,
        ])?;
        let server_cidr = format!("{SERVER_HOST}/24");
        let client_cidr = format!("{CLIENT_HOST}/24");
        run_ip(&["-n", &srv, "addr", "add", &server_cidr, "dev", "veth-srv"])?;
        run_ip(&["-n", &cli, "addr", "add", &client_cidr, "dev", "veth-cli"])?;
        for (ns, dev) in [(&srv, "veth-srv"), (&cli, "veth-cli")] {
            run_ip(&["-n", ns, "link", "set", "lo", "up"])?;
            run_ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// Runs `work` on a fresh thread that has joined namespace `ns`; sockets it creates
    /// belong to that namespace for their whole life, whichever thread uses them later.
    pub fn run_in<T: Send>(
        &self,
        ns: &str,
        work: impl FnOnce() -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let handle = File::open(format!("/run/netns/{ns}")).map_err(Error::socket("open netns"))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // setns changes the namespace of the calling thread only; this thread
                    // ends right after `work`, so no other code runs in the wrong namespace.
                    // SAFETY: `handle` is an open namespace file for the whole call.
                    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(Error::socket("setns")(std::io::Error::last_os_error()));
                    }
                    work()
                })
                .join()
                .unwrap_or_else(|_| Err(Error::Unexpected("a namespace thread panicked".into())))
        })
    }
}

impl Drop for NamespacePair {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

/// Deletes namespaces that an earlier run left behind when it was killed before its
/// `Drop` could run (SIGKILL): ours are named `lab-echo-…-PID-N`, and PID is no longer alive.
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("lab-echo-srv-")
            .or_else(|| name.strip_prefix("lab-echo-cli-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

fn run_ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(Error::socket("run ip"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Unexpected(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// What a client host saw of a server host's two servers.
#[derive(Debug, Clone, Serialize)]
pub struct AcrossALink {
    pub experiment: &'static str,
    pub server_host: Ipv4Addr,
    pub client_host: Ipv4Addr,
    /// Connect from the client host to the server bound to `0.0.0.0` (server host's address).
    pub to_wildcard_server: ConnectAttempt,
    /// The client address the wildcard server's `accept()` reported.
    pub wildcard_server_saw_peer: Option<SocketAddr>,
    /// Connect from the client host to the server bound to `127.0.0.1` (server host's address).
    pub to_loopback_server: ConnectAttempt,
    /// Connect from the client host to `127.0.0.1` with the loopback server's port: this is
    /// the client host's own loopback, where nothing listens.
    pub to_own_loopback: ConnectAttempt,
    /// What crossed the link, captured on the server host's end of it (`veth-srv`), when
    /// watched (`packets`, `capture`).
    #[serde(flatten)]
    pub wire: Option<Wire>,
}

/// The server host's end of the link, where the watched experiment captures.
pub const SERVER_LINK: &str = "veth-srv";

/// Creates a namespace pair, runs two servers in one and a client in the other.
pub fn across_a_link() -> Result<AcrossALink, Error> {
    across_a_link_watched(&Wiretap::off())
}

/// Like [`across_a_link`], with what crosses the link captured by `tap` on the server
/// host's end of it ([`SERVER_LINK`]).
pub fn across_a_link_watched(tap: &Wiretap) -> Result<AcrossALink, Error> {
    let pair = NamespacePair::create()?;
    let tap = tap.clone();
    let (wildcard, loopback, watch) = pair.run_in(&pair.server_ns, move || {
        let bind = |ip: Ipv4Addr| {
            TcpListener::bind((ip, 0)).map_err(|source| Error::Listen {
                addr: format!("{ip}:0"),
                source,
            })
        };
        let (wildcard, loopback) = (bind(Ipv4Addr::UNSPECIFIED)?, bind(Ipv4Addr::LOCALHOST)?);
        let mut ports = Vec::new();
        for listener in [&wildcard, &loopback] {
            ports.push(
                listener
                    .local_addr()
                    .map_err(Error::socket("getsockname"))?
                    .port(),
            );
        }
        // The packet socket is opened here, in the server host's namespace, on its end of
        // the link.
        let watch = tap.watch_link("across_a_link", SERVER_LINK, &ports, CLIENT_HOST.into());
        Ok((wildcard, loopback, watch))
    })?;
    let wildcard_port = wildcard
        .local_addr()
        .map_err(Error::socket("getsockname"))?
        .port();
    let loopback_port = loopback
        .local_addr()
        .map_err(Error::socket("getsockname"))?
        .port();
    let (to_wildcard_server, to_loopback_server, to_own_loopback) =
        pair.run_in(&pair.client_ns, || {
            Ok((
                ConnectAttempt::measure(SocketAddr::from((SERVER_HOST, wildcard_port))),
                ConnectAttempt::once(SocketAddr::from((SERVER_HOST, loopback_port))),
                ConnectAttempt::once(SocketAddr::from((Ipv4Addr::LOCALHOST, loopback_port))),
            ))
        })?;
    let (to_wildcard_server, kept_open) = to_wildcard_server;
    let wildcard_server_saw_peer = if kept_open.is_some() {
        wildcard.accept().ok().map(|(_, peer)| peer)
    } else {
        None
    };
    drop((wildcard, loopback));
    Ok(AcrossALink {
        experiment: "across_a_link",
        server_host: SERVER_HOST,
        client_host: CLIENT_HOST,
        to_wildcard_server,
        wildcard_server_saw_peer,
        to_loopback_server,
        to_own_loopback,
        wire: watch.finish(),
    })
}
