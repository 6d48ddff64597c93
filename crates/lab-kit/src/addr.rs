//! `HOST:PORT` into socket addresses: what every client here does before `connect()`.
//!
//! A name such as `localhost` can stand for several addresses (`::1` and `127.0.0.1`), in
//! the order the system's resolver prefers; a client should try each in turn, as Python's
//! `socket.create_connection` does. The resolver reads `/etc/hosts` and asks DNS: that is
//! `getaddrinfo()`, called by `ToSocketAddrs`.

use std::net::{SocketAddr, ToSocketAddrs};

/// Why `HOST:PORT` gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("`{target}` is not HOST:PORT (e.g. localhost:2000)")]
    NotHostPort { target: String },
    #[error("could not resolve `{target}`: {}", crate::errors::ErrorFacts::of(.source).describe())]
    Lookup {
        target: String,
        source: std::io::Error,
    },
    #[error("`{target}` resolves to no address")]
    NoAddress { target: String },
}

/// Splits `HOST:PORT` (`[::1]:2000` for an IPv6 address) and resolves the host, returning
/// every address in the resolver's order.
pub fn resolve(target: &str) -> Result<Vec<SocketAddr>, ResolveError> {
    let not_host_port = || ResolveError::NotHostPort {
        target: target.to_string(),
    };
    let (host, port) = target.rsplit_once(':').ok_or_else(not_host_port)?;
    let port: u16 = port.parse().map_err(|_| not_host_port())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(not_host_port());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            target: target.to_string(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress {
            target: target.to_string(),
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_resolve_with_their_port() {
        assert_eq!(
            resolve("127.0.0.1:2000").unwrap(),
            vec!["127.0.0.1:2000".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:80").unwrap(),
            vec!["[::1]:80".parse::<SocketAddr>().unwrap()]
        );
        let localhost = resolve("localhost:7").unwrap();
        assert!(
            localhost
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7)
        );
    }

    #[test]
    fn what_is_not_host_port_is_named() {
        for bad in ["localhost", "localhost:http", ":2000", "localhost:70000"] {
            let error = resolve(bad).unwrap_err();
            assert!(
                matches!(error, ResolveError::NotHostPort { .. }),
                "{bad}: {error}"
            );
            assert!(error.to_string().contains("is not HOST:PORT"), "{error}");
        }
    }
}
