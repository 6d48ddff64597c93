//! Ports where nothing listens, held so that they stay that way.
//!
//! The obvious way to find a closed port, "bind to port 0, note the port, close the
//! socket", has a race: a test process forks children (strace, python3, a student's
//! program), and a child forked in that instant holds a copy of the socket until it
//! calls `exec`. For that moment the port still listens, and a connect that should be
//! refused succeeds. So we keep a socket that *owns* the port but can never accept:
//!
//! - TCP: a socket that is bound but never calls `listen()`. The kernel answers a SYN for
//!   it with a reset, exactly as for a port nobody holds, and no other program can take
//!   the port meanwhile. It is bound with `SO_REUSEADDR`, so a server that is *meant* to
//!   appear there later (lab 1's late server) can still bind and listen.
//! - UDP: a bound socket would receive datagrams, so it is also connected to another
//!   address (127.0.0.1 port 9). A connected UDP socket only takes datagrams from its
//!   peer; anything else finds no socket, and the kernel answers "port unreachable".

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// A loopback TCP port that refuses connections for as long as this value lives.
#[derive(Debug)]
pub struct ClosedTcpPort {
    _holder: Socket,
    addr: SocketAddr,
}

impl ClosedTcpPort {
    /// Takes a free port on 127.0.0.1 without listening on it.
    pub fn reserve() -> io::Result<Self> {
        let holder = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        holder.set_reuse_address(true)?;
        holder.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let addr = holder
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("a TCP socket bound to 127.0.0.1 has no IP address"))?;
        Ok(ClosedTcpPort {
            _holder: holder,
            addr,
        })
    }

    /// The address where nothing listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A loopback UDP port whose datagrams are answered "port unreachable" while this lives.
#[derive(Debug)]
pub struct ClosedUdpPort {
    _holder: UdpSocket,
    addr: SocketAddr,
}

impl ClosedUdpPort {
    /// Takes a free UDP port on 127.0.0.1 that accepts datagrams from nobody we use.
    pub fn reserve() -> io::Result<Self> {
        let holder = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        holder.connect((Ipv4Addr::LOCALHOST, 9))?;
        let addr = holder.local_addr()?;
        Ok(ClosedUdpPort {
            _holder: holder,
            addr,
        })
    }

    /// The address where nothing receives.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn a_reserved_tcp_port_refuses_and_a_server_can_still_take_it() {
        let port = ClosedTcpPort::reserve().unwrap();
        let err = TcpStream::connect(port.addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let server = TcpListener::bind(port.addr()).unwrap();
        assert!(TcpStream::connect(server.local_addr().unwrap()).is_ok());
    }

    #[test]
    fn a_reserved_udp_port_is_unreachable() {
        let port = ClosedUdpPort::reserve().unwrap();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client.connect(port.addr()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send(b"anyone?").unwrap();
        let err = client.recv(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
