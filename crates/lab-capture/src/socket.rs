//! The packet socket: `AF_PACKET`, raw, bound to one interface, with the kernel's filter and
//! the kernel's timestamps.
//!
//! An `AF_PACKET` socket receives a copy of every frame that crosses an interface, with the
//! link-layer header, before (incoming) or as (outgoing) the IP stack handles it: this is
//! what `tcpdump` and Wireshark read (through libpcap). Opening one needs root or the
//! `CAP_NET_RAW` capability, because it sees everyone's traffic.
//!
//! Three details matter for honest evidence:
//! - The filter must be in place *before* the first frame is queued. The socket is created
//!   with protocol 0 (it receives nothing), the filter attached, and only then bound with
//!   `ETH_P_ALL` to the interface: no unfiltered frame ever reaches the queue.
//! - On `lo` each frame is seen twice: once leaving (`PACKET_OUTGOING`) and once arriving
//!   (`PACKET_HOST`). [`Frame::outgoing`] tells them apart; the capture keeps one copy.
//! - `SO_TIMESTAMPNS` makes the kernel attach the time each frame was captured (the real-time
//!   clock, in nanoseconds): the time in the ladder is the kernel's, not our thread's.
//! - `PACKET_STATISTICS` counts the frames the kernel dropped because our queue was full.

use std::ffi::CString;
use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::filter::Instruction;

/// The receive buffer asked for (root may exceed `net.core.rmem_max` with `SO_RCVBUFFORCE`):
/// large enough to hold a multi-megabyte transfer even if our reader thread is not scheduled.
const RECEIVE_BUFFER: libc::c_int = 64 << 20;

/// How long one `recv` waits before the reader checks whether it should stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One frame as the kernel handed it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes copied into the buffer.
    pub captured: usize,
    /// The frame's real length (larger than `captured` if the buffer was too small).
    pub length: usize,
    /// When the kernel captured it, since the Unix epoch.
    pub timestamp: Duration,
    /// True for the copy of a frame this host sent (`PACKET_OUTGOING`).
    pub outgoing: bool,
}

/// The kernel's counts for the socket since the last time they were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Frames that passed the filter.
    pub packets: u64,
    /// Of those, frames dropped because the socket's queue was full.
    pub drops: u64,
}

/// A raw packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
}

impl PacketSocket {
    /// Opens a packet socket on `interface` that receives only what `filter` accepts.
    pub fn open(interface: &str, filter: &[Instruction]) -> io::Result<Self> {
        // Protocol 0: no frame is delivered until bind() names a protocol.
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        let fd = socket.as_raw_fd();
        let program = libc::sock_fprog {
            len: u16::try_from(filter.len())
                .map_err(|_| io::Error::other("the packet filter is too long"))?,
            filter: filter.as_ptr().cast_mut(),
        };
        set_option(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &program)?;
        set_option(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1 as &libc::c_int,
        )?;
        if set_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RECEIVE_BUFFER).is_err() {
            // Without CAP_NET_ADMIN the kernel caps the size at net.core.rmem_max; the drop
            // count will say whether that was enough.
            set_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RECEIVE_BUFFER)?;
        }
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        let index = interface_index(interface)?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index;
        // SAFETY: `address` is a valid sockaddr_ll and the length is its size.
        let bound = unsafe {
            libc::bind(
                fd,
                (&raw const address).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { socket })
    }

    /// Receives one frame into `buffer`, with its kernel timestamp and direction. Fails with
    /// `WouldBlock` (or `TimedOut`) when nothing arrived within [`POLL_INTERVAL`].
    pub fn recv(&self, buffer: &mut [u8]) -> io::Result<Frame> {
        let (length, timestamp, from) = recv_timestamped(self.socket.as_raw_fd(), buffer)?;
        Ok(Frame {
            captured: length.min(buffer.len()),
            length,
            timestamp: timestamp.unwrap_or_default(),
            outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        })
    }

    /// The kernel's counts (`PACKET_STATISTICS`); reading them resets them.
    pub fn statistics(&self) -> io::Result<Statistics> {
        // SAFETY: tpacket_stats is plain old data.
        let mut stats: libc::tpacket_stats = unsafe { zeroed() };
        let mut length = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats` is writable and `length` is its size.
        let result = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut length,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Statistics {
            packets: u64::from(stats.tp_packets),
            drops: u64::from(stats.tp_drops),
        })
    }
}

/// `recvmsg` on `fd` into `buffer`: the message's real length (`MSG_TRUNC`), its kernel
/// timestamp (`SCM_TIMESTAMPNS`, if the socket asked for them) and its sender's address read
/// as a `sockaddr_ll` (meaningful for a packet socket).
fn recv_timestamped(
    fd: RawFd,
    buffer: &mut [u8],
) -> io::Result<(usize, Option<Duration>, libc::sockaddr_ll)> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    let mut control = [MaybeUninit::<u64>::uninit(); 16];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: as above.
    let mut message: libc::msghdr = unsafe { zeroed() };
    message.msg_name = (&raw mut from).cast();
    message.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of::<[u64; 16]>();
    // SAFETY: every pointer in `message` points to live memory of the stated size.
    // MSG_TRUNC: return the frame's real length even if the buffer is smaller.
    let length = unsafe { libc::recvmsg(fd, &raw mut message, libc::MSG_TRUNC) };
    let length = usize::try_from(length).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel filled `message`'s control buffer.
    let timestamp = unsafe { kernel_timestamp(&message) };
    Ok((length, timestamp, from))
}

/// Makes sure the kernel timestamps packets as they cross, for as long as this process runs.
///
/// The kernel stamps an arriving packet only while some socket has asked for timestamps,
/// and it turns that on *later*, from a work queue, after the first socket asks. Until then
/// a packet that reaches a socket unstamped is stamped when it is *read*: a capture started
/// in that moment would show its first packets late (after the program's own marks, say).
/// So one socket that asks for timestamps is kept open for the life of the process, and
/// this waits until the kernel really stamps: a datagram sent to ourselves must carry a time
/// earlier than the clock read right after `send` returned (the stamp is taken during the
/// send, on loopback), not the later time of our `recv`.
pub fn keep_kernel_timestamps_on() -> Result<(), String> {
    static KEEPER: std::sync::OnceLock<Result<std::net::UdpSocket, String>> =
        std::sync::OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let result = (|| -> io::Result<Result<std::net::UdpSocket, String>> {
            let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
            set_option(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &1 as &libc::c_int,
            )?;
            socket.set_read_timeout(Some(Duration::from_secs(1)))?;
            let me = socket.local_addr()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut buffer = [0u8; 16];
            loop {
                socket.send_to(b"timestamp?", me)?;
                let sent = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let (_, stamp, _) = recv_timestamped(socket.as_raw_fd(), &mut buffer)?;
                if stamp.is_some_and(|stamp| stamp <= sent) {
                    return Ok(Ok(socket));
                }
                if std::time::Instant::now() > deadline {
                    return Ok(Err(
                        "the kernel did not start timestamping packets within 5 s: \
                                   the times shown are when the capture read each packet"
                            .to_string(),
                    ));
                }
                // The kernel's work queue has not run yet: give it the CPU, then look again.
                std::thread::sleep(Duration::from_millis(1));
            }
        })();
        result.unwrap_or_else(|e| Err(format!("could not turn kernel timestamps on: {e}")))
    });
    keeper.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The `SCM_TIMESTAMPNS` control message of a received message, if there is one.
///
/// # Safety
/// `message` must have been filled by a successful `recvmsg`.
unsafe fn kernel_timestamp(message: &libc::msghdr) -> Option<Duration> {
    // SAFETY: the caller promises a filled msghdr; CMSG_* walk its control buffer.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let time = libc::CMSG_DATA(header)
                    .cast::<libc::timespec>()
                    .read_unaligned();
                return Some(Duration::new(
                    u64::try_from(time.tv_sec).ok()?,
                    u32::try_from(time.tv_nsec).ok()?,
                ));
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
        None
    }
}

fn set_option<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length is its size.
    let result = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's index of the interface named `name` (`lo` is usually 1).
pub fn interface_index(name: &str) -> io::Result<i32> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an interface name has no NUL"))?;
    // SAFETY: `c_name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named {name}"),
        ));
    }
    i32::try_from(index).map_err(|_| io::Error::other("interface index out of range"))
}
