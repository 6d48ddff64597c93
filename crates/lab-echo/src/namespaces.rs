//! The bind address across a real (virtual) link: two network namespaces joined by a veth
//! pair, each a separate "host" with its own interfaces, its own loopback and its own ports.
//!
//! On one machine, `127.0.0.1` versus `0.0.0.0` only shows as "127.0.0.2 is refused". Across
//! a link it shows what it means in practice: a server bound to `127.0.0.1` cannot be reached
//! from another host at all, one bound to the wildcard can. And `127.0.0.1` on the client
//! host is the *client's own* loopback: it never leaves the client host.
//!
//! Creating namespaces needs root and the `ip` tool (iproute2) ([`lab_kit::netns`]). Each
//! experiment creates its own pair with unique names, uses only the documentation addresses
//! 192.0.2.1 and 192.0.2.2 inside them, and deletes them when [`NamespacePair`] is dropped,
//! whatever happened.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use lab_capture::{Wire, Wiretap};
use lab_kit::netns::Namespace;
use serde::Serialize;

use crate::attempt::ConnectAttempt;
use crate::error::Error;

/// The server host's address on the link (TEST-NET-1, RFC 5737).
pub const SERVER_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client host's address on the link.
pub const CLIENT_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Why namespaces cannot be created here, or `None` when they can be tried.
pub fn unavailable_reason() -> Option<String> {
    lab_kit::netns::unavailable_reason()
}

/// Two network namespaces ("server host" and "client host") joined by a veth pair.
/// Dropping it deletes both namespaces (and with them the veth pair).
#[derive(Debug)]
pub struct NamespacePair {
    pub server_ns: String,
    pub client_ns: String,
    namespaces: Vec<Namespace>,
}

impl NamespacePair {
    /// Creates the pair: `192.0.2.1/24` on the server side, `192.0.2.2/24` on the client side,
    /// and each namespace's own loopback brought up.
    pub fn create() -> Result<Self, Error> {
        let create =
            |prefix| Namespace::create(prefix).map_err(Error::socket("create a namespace"));
        // Each namespace is deleted when dropped, so an early return cleans up.
        let server = create("lab-echo-srv")?;
        let client = create("lab-echo-cli")?;
        // Interface names are per namespace, so fixed short names cannot collide.
        let setup = || -> std::io::Result<()> {
            server.ip(&[
                "link",
                "add",
                "veth-srv",
                "type",
                "veth",
                "peer",
                "name",
                "veth-cli",
                "netns",
                client.name(),
            ])?;
            server.ip(&[
                "addr",
                "add",
                &format!("{SERVER_HOST}/24"),
                "dev",
                "veth-srv",
            ])?;
            client.ip(&[
                "addr",
                "add",
                &format!("{CLIENT_HOST}/24"),
                "dev",
                "veth-cli",
            ])?;
            server.ip(&["link", "set", "veth-srv", "up"])?;
            client.ip(&["link", "set", "veth-cli", "up"])
        };
        setup().map_err(Error::socket("set up the link"))?;
        Ok(NamespacePair {
            server_ns: server.name().to_string(),
            client_ns: client.name().to_string(),
            namespaces: vec![server, client],
        })
    }

    /// Runs `work` on a fresh thread that has joined namespace `ns`; sockets it creates
    /// belong to that namespace for their whole life, whichever thread uses them later.
    pub fn run_in<T: Send>(
        &self,
        ns: &str,
        work: impl FnOnce() -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let namespace = self
            .namespaces
            .iter()
            .find(|n| n.name() == ns)
            .ok_or_else(|| Error::Unexpected(format!("no namespace {ns} in this pair")))?;
        namespace
            .run_in(work)
            .map_err(Error::socket("join the namespace"))?
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
