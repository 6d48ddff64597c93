//! Each claim of question 4 (and of docs/04-socket-calls.md) as a test that fails if the
//! claim is false, plus the narration of each experiment pinned as a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use lab_echo::calls::{self, Side};
use lab_echo::narrate;
use lab_echo::syscalls::{self, Traced};
use lab_kit::probe::Probe;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[test]
fn the_walk_through_makes_each_call_and_connect_completes_before_accept() {
    let report = calls::walk_through().unwrap();
    let calls: Vec<&str> = report
        .steps
        .iter()
        .map(|s| s.call.split('(').next().unwrap())
        .collect();
    assert_eq!(
        calls,
        [
            "socket",
            "setsockopt",
            "bind",
            "getsockname",
            "listen",
            "socket",
            "connect",
            "accept",
            "send",
            "recv",
            "shutdown",
            "recv",
            "close",
            "close",
            "close",
            "connect"
        ]
    );
    assert_eq!(report.steps[6].side, Side::Client);
    assert_eq!(report.steps[7].side, Side::Server);
    // connect() returned before accept(): the kernel had finished the handshake and
    // queued the connection on the listening socket.
    if cfg!(target_os = "linux") {
        assert_eq!(report.backlog.waiting_in_accept_queue, Some(1));
        assert_eq!(report.backlog.client_state.as_deref(), Some("ESTABLISHED"));
    }
    // accept() returns a new socket; the listener is another one.
    assert_ne!(report.accepted_fd, report.listener_fd);
    assert_eq!(report.bytes_sent, calls::GREETING.len());
    assert_eq!(report.bytes_received, calls::GREETING.len());
    assert_eq!(report.recv_after_shutdown, 0);
    // Once the listener is closed, nobody listens on the port: a new connect is refused.
    let late = report
        .connect_after_close
        .as_ref()
        .expect("connect after close must fail");
    assert_eq!(late.error_kind, "ConnectionRefused");
    lab_test_support::assert_redacted_snapshot!(
        "walk_through",
        &lab_test_support::narration(|n| narrate::walk_through(&report, n)),
        common::filters()
    );
}

#[test]
fn two_sends_arrive_in_one_recv_and_a_small_buffer_gets_part_of_a_message() {
    let report = calls::no_message_boundaries().unwrap();
    assert_eq!(report.one_recv, "hello\nworld\n");
    assert_eq!(
        report.small_recv,
        &calls::LONG_MESSAGE[..calls::SMALL_BUFFER]
    );
    assert_eq!(
        report.next_recv,
        &calls::LONG_MESSAGE[calls::SMALL_BUFFER..]
    );
    // Framing gives the messages back.
    assert_eq!(report.newline_framed, ["hello\n", "world\n"]);
    assert_eq!(report.length_prefixed, ["hello", "world"]);
    lab_test_support::assert_redacted_snapshot!(
        "no_message_boundaries",
        &lab_test_support::narration(|n| narrate::no_message_boundaries(&report, n)),
        common::filters()
    );
}

#[test]
fn a_non_blocking_send_takes_fewer_bytes_than_asked_then_would_block() {
    let report = calls::partial_send().unwrap();
    assert!(report.first_send > 0);
    assert!(report.first_send < report.asked, "{report:?}");
    assert!(report.accepted_before_error < report.asked, "{report:?}");
    let error = report
        .error
        .as_ref()
        .expect("the sends must end in an error");
    assert_eq!(error.error_kind, "WouldBlock");
    assert_eq!(error.errno_name, Some("EAGAIN"));
    // The loop that sends the rest needed several calls and at least one wait.
    assert_eq!(
        report.accepted_before_error + report.rest_sent,
        report.asked
    );
    assert!(
        report.rest_send_calls > 1 && report.rest_would_blocks >= 1,
        "{report:?}"
    );
    // Nothing was lost: the peer got both the first copy and write_all's copy.
    assert_eq!(report.peer_received, 2 * report.asked as u64);
    assert!(report.write_all_calls >= 1);
    if cfg!(target_os = "linux") {
        // A blocking send on Linux waits until the kernel has taken every byte.
        assert_eq!(report.write_all_calls, 1, "{report:?}");
    }
    lab_test_support::assert_redacted_snapshot!(
        "partial_send",
        &lab_test_support::narration(|n| narrate::partial_send(&report, n)),
        common::filters()
    );
}

#[test]
fn recv_returns_0_after_close_and_connection_reset_after_so_linger_0() {
    let report = calls::peer_closes().unwrap();
    assert_eq!(report.recv_after_close, Some(0));
    let reset = report
        .recv_after_reset
        .as_ref()
        .expect("recv must fail after a reset");
    assert_eq!(reset.error_kind, "ConnectionReset");
    assert_eq!(reset.errno_name, Some("ECONNRESET"));
    lab_test_support::assert_redacted_snapshot!(
        "peer_closes",
        &lab_test_support::narration(|n| narrate::peer_closes(&report, n)),
        common::filters()
    );
}

/// The network system calls of the walk-through, exactly, as strace records them.
const PINNED_SEQUENCE: &[&str] = &[
    "socket",
    "setsockopt",
    "bind",
    "getsockname",
    "listen",
    "socket",
    "connect",
    "getsockname",
    "accept4",
    "sendto",
    "recvfrom",
    "shutdown",
    "recvfrom",
    "socket",
    "connect",
];

#[test]
fn strace_records_the_real_system_calls_in_order() {
    let probe = Probe::binary(lab_test_support::bin!("lab-echo"));
    let report = match syscalls::trace_socket_calls(&probe).unwrap() {
        Traced::Recorded(report) => report,
        Traced::Unavailable(why) => {
            lab_test_support::skip_unless_ci("the strace sequence test", why);
            return;
        }
    };
    assert!(report.probe_succeeded, "{:?}", report.lines);
    assert_eq!(report.names, PINNED_SEQUENCE, "{:#?}", report.lines);
    assert!(report.in_order);
    lab_test_support::assert_redacted_snapshot!(
        "strace",
        &lab_test_support::narration(|n| narrate::syscall_trace(&report, n)),
        common::filters()
    );
}

/// Step 2 of the walk-through says why servers set SO_REUSEADDR: after a server closes a
/// connection first, that connection lingers in TIME_WAIT and holds the port.
#[test]
fn so_reuseaddr_lets_a_restarted_server_bind_while_time_wait_lingers() {
    let new_socket = || Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let listener = new_socket();
    listener.set_reuse_address(true).unwrap();
    listener
        .bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    listener.listen(8).unwrap();
    let addr = listener.local_addr().unwrap();
    let server_port = addr.as_socket().unwrap().port();
    let client = TcpStream::connect(addr.as_socket().unwrap()).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let (connection, _) = listener.accept().unwrap();
    // The server closes first (it will be the side in TIME_WAIT), then the client, then
    // the server stops listening: the "server" is gone.
    drop(connection);
    drop(client);
    drop(listener);
    if cfg!(target_os = "linux") {
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls::tcp_state(server_port, client_port).as_deref() != Some("TIME_WAIT") {
            assert!(
                Instant::now() < deadline,
                "the connection never reached TIME_WAIT"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // A restarted server without SO_REUSEADDR cannot bind the port...
    let without = new_socket().bind(&addr).unwrap_err();
    assert_eq!(without.kind(), std::io::ErrorKind::AddrInUse);
    // ...with it, it can.
    let restarted = new_socket();
    restarted.set_reuse_address(true).unwrap();
    restarted.bind(&addr).unwrap();
}
