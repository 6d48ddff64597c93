//! The Python twins (`python/`), run here on Linux: each one must run with the standard
//! library only and print what the docs' "On your machine" tables predict for Linux. (On
//! Windows and macOS their printed results are what the same tables predict there.)
//!
//! Nothing here pins a duration: findings are compared with the kernel's rules (at least,
//! never less) and with this machine's settings, read from /proc.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::time::Duration;

use lab_kit::twin::{Twin, TwinError, TwinRun};
use socket_lab::CHAPTERS;

const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `twin` (with `args`), or skips where python3 is missing (never in CI).
fn run(twin: Twin, args: &[OsString]) -> Option<TwinRun> {
    match lab_kit::twin::run(twin, args, DEADLINE) {
        Ok(run) => {
            assert!(
                run.measured_on
                    .as_deref()
                    .is_some_and(|on| on.contains("Python 3")),
                "a twin says where it measured:\n{}",
                run.stdout
            );
            Some(run)
        }
        Err(TwinError::NoPython) => {
            lab_test_support::skip_unless_ci(twin.script, "no python3 here");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The one finding that starts with `topic`.
fn finding<'a>(run: &'a TwinRun, topic: &str) -> &'a str {
    run.results
        .iter()
        .find(|r| r.starts_with(topic))
        .unwrap_or_else(|| panic!("no finding {topic:?} in:\n{}", run.stdout))
}

/// Every number in `text`, in order (`1,234` is not used by the twins).
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.trim_matches('.').parse().ok())
        .collect()
}

fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut parts = text.split_whitespace().map(|p| p.parse().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn q1_python_is_refused_at_once_loops_only_when_told_and_times_out_on_a_full_queue() {
    let Some(run) = run(CHAPTERS[0].twin, &[]) else {
        return;
    };
    let refused = finding(&run, "refused:");
    assert!(
        refused.contains("ConnectionRefusedError, errno 111 (ECONNREFUSED) after"),
        "{refused}"
    );
    assert!(
        finding(&run, "retry loop:").starts_with("retry loop: connected at attempt"),
        "{}",
        run.stdout
    );
    let full = finding(&run, "full accept queue:");
    assert!(full.contains("TimeoutError after"), "{full}");
    // The timeout is ours (2.5 s): never earlier.
    assert!(numbers(full)[0] >= 2500.0, "{full}");
    assert_eq!(
        finding(&run, "udp:"),
        "udp: send() succeeded (17 bytes), the next recv() raised ConnectionRefusedError, \
         errno 111 (ECONNREFUSED)"
    );
}

#[test]
fn q2_python_shows_the_resolver_order_the_trap_and_this_systems_loopback() {
    let Some(run) = run(CHAPTERS[1].twin, &[]) else {
        return;
    };
    let order = finding(&run, "localhost resolves to, in this order: ");
    let first = order
        .trim_start_matches("localhost resolves to, in this order: ")
        .split(", ")
        .next()
        .unwrap();
    assert!(first == "127.0.0.1" || first == "::1", "{order}");
    if first == "127.0.0.1" {
        let trap = finding(&run, "a client trying ::1 first:");
        assert!(
            trap.ends_with("then 127.0.0.1 connected in")
                || trap.contains("; then 127.0.0.1 connected in"),
            "{trap}"
        );
    }
    assert!(
        finding(&run, "create_connection(localhost) connected to ").contains(" after "),
        "{}",
        run.stdout
    );
    // Present, or `finding` fails: the IPv4-only socket goes straight to 127.0.0.1.
    finding(
        &run,
        "socket.socket().connect(localhost) (IPv4 only) connected to 127.0.0.1",
    );
    // Linux routes all of 127.0.0.0/8 to lo (macOS would say "could not bind").
    assert_eq!(finding(&run, "bind 127.0.0.2:"), "bind 127.0.0.2: bound");
    let (low, high) = ephemeral_range();
    let ports = numbers(finding(&run, "port 0 gave ports").trim_start_matches("port 0 gave ports"));
    assert_eq!(ports.len(), 3, "{}", run.stdout);
    for port in ports {
        assert!(
            (f64::from(low)..=f64::from(high)).contains(&port),
            "{port} outside {low}-{high}"
        );
    }
    // The default is this system's net.ipv6.bindv6only (where the kernel has IPv6 at all).
    match std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only") {
        Ok(v6only) => assert!(
            finding(&run, "[::] IPV6_V6ONLY is ")
                .starts_with(&format!("[::] IPV6_V6ONLY is {} by default", v6only.trim())),
            "{}",
            run.stdout
        ),
        Err(_) => {
            finding(&run, "[::] IPV6_V6ONLY");
        }
    }
}

#[test]
fn q3_python_sleeps_at_least_as_asked_costs_no_cpu_and_blocks_an_event_loop() {
    let Some(run) = run(CHAPTERS[2].twin, &[]) else {
        return;
    };
    for requested in ["0.0", "0.001", "0.01"] {
        let line = finding(&run, &format!("time.sleep({requested})"));
        assert!(line.ends_with("shorter than asked: 0"), "{line}");
    }
    let cpu = numbers(finding(&run, "CPU used in"));
    // [0.2, sleeping ms, busy ms]: the sleeper used less CPU than the busy-wait.
    assert!(cpu[1] < cpu[2], "{}", run.stdout);
    let threads = numbers(finding(&run, "while the main thread slept"));
    assert!(threads[1] > 0.0, "{}", run.stdout);
    let ticks = finding(&run, "asyncio, a 10 ms ticker");
    assert!(ticks.contains("time.sleep -> 0 ticks"), "{ticks}");
    assert!(!ticks.ends_with("asyncio.sleep -> 0 ticks"), "{ticks}");
    let kernel = finding(&run, "while the server slept");
    assert!(
        kernel.ends_with("sent 28 bytes; at wake-up one non-blocking recv() returned 28 bytes"),
        "{kernel}"
    );
}

#[test]
fn q4_python_walks_the_calls_and_meets_each_surprise() {
    let Some(run) = run(CHAPTERS[3].twin, &[]) else {
        return;
    };
    let (low, high) = ephemeral_range();
    let bound = finding(
        &run,
        "connect() bound the client by itself to 127.0.0.1, port ",
    );
    let port = numbers(bound)[0];
    assert!(
        (f64::from(low)..=f64::from(high)).contains(&port),
        "{bound}"
    );
    assert!(
        finding(&run, "after the client's shutdown(SHUT_WR)")
            .contains("returned b'': end of stream")
    );
    assert_eq!(
        finding(&run, "two send() calls"),
        r"two send() calls, one recv(1024) returned b'first message\nsecond message\n'"
    );
    let partial = finding(&run, "non-blocking send()");
    let took = numbers(partial)[1];
    assert!(took > 0.0 && took < 4_194_304.0, "{partial}");
    assert!(
        partial.ends_with("then BlockingIOError, errno 11 (EAGAIN)"),
        "{partial}"
    );
    assert!(finding(&run, "sendall() with a 0.5 s timeout").contains("TimeoutError"));
    assert_eq!(
        finding(&run, "after the peer's close()"),
        "after the peer's close(), recv() returned b''"
    );
    assert!(
        finding(&run, "the peer closed with unread data (RST)")
            .ends_with("raised ConnectionResetError, errno 104 (ECONNRESET)")
    );
    let after = finding(&run, "sending on after the reset");
    assert!(
        after.contains("BrokenPipeError, errno 32")
            || after.contains("ConnectionResetError, errno 104"),
        "{after}"
    );
    // Linux: listen(0) queues backlog + 1 = 1 finished handshake, then drops SYNs.
    assert_eq!(
        finding(&run, "listen(0), no accept()"),
        "listen(0), no accept(): 1 connection(s) completed, the next one: TimeoutError"
    );
    assert!(
        finding(&run, "SO_REUSEADDR").ends_with("bind failed: OSError, errno 98 (EADDRINUSE)"),
        "{}",
        run.stdout
    );
}

#[test]
fn q5_python_verifies_the_server_and_sees_truncation_only_when_asked() {
    let dir = std::env::temp_dir().join(format!("socket-lab-twin-test-{}", std::process::id()));
    let files = lab_kit::pki::LabPki::generate("twin")
        .unwrap()
        .write_to(&dir, true)
        .unwrap();
    let result = run(CHAPTERS[4].twin, &[OsString::from(&files.dir)]);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(run) = result else { return };
    // The reference pair (examples/chat/secure/), run by the twin as a student would.
    assert!(
        finding(&run, "reference pair: client printed").contains("(TLSv1.3); type Exit to leave"),
        "{}",
        run.stdout
    );
    assert_eq!(
        finding(&run, "reference pair: server printed"),
        "reference pair: server printed 'client: hello from the client', client printed \
         'server: hello from the server'"
    );
    assert_eq!(
        finding(&run, "reference pair: after Exit"),
        "reference pair: after Exit the server printed 'client said Exit'; the client exited with 0"
    );
    let handshake = finding(&run, "handshake:");
    assert!(
        handshake.starts_with("handshake: TLSv1.3, cipher TLS_AES_"),
        "{handshake}"
    );
    assert!(handshake.ends_with("server verified as localhost by the lab CA"));
    assert_eq!(
        finding(&run, "one line each way"),
        r"one line each way: the server got b'meet at 9\n', the client got b'noted: meet at 9\n'"
    );
    assert!(
        finding(&run, "a certificate that is not for the name asked")
            .contains("refused: SSLCertVerificationError")
    );
    assert!(
        finding(&run, "a client with only the system's CAs")
            .contains("refused: SSLCertVerificationError")
    );
    assert_eq!(
        finding(
            &run,
            "client close() only; server with suppress_ragged_eofs=True"
        ),
        "client close() only; server with suppress_ragged_eofs=True: recv() returned b''"
    );
    assert_eq!(
        finding(
            &run,
            "client close() only; server with suppress_ragged_eofs=False"
        ),
        "client close() only; server with suppress_ragged_eofs=False: recv() raised SSLEOFError"
    );
    assert_eq!(
        finding(&run, "client unwrap() then close()"),
        "client unwrap() then close(); server with suppress_ragged_eofs=False: recv() returned b''"
    );
}

#[test]
fn the_q5_twin_says_how_to_make_certificates_when_they_are_missing() {
    let dir = std::env::temp_dir().join(format!("socket-lab-no-certs-{}", std::process::id()));
    match lab_kit::twin::run(CHAPTERS[4].twin, &[OsString::from(&dir)], DEADLINE) {
        Err(TwinError::Failed { stderr, .. }) => {
            assert!(stderr.contains("lab-chat keygen --out"), "{stderr}");
            // A student on Windows or macOS has no lab-chat: where to make them instead.
            assert!(stderr.contains("WSL2"), "{stderr}");
        }
        Err(TwinError::NoPython) => lab_test_support::skip_unless_ci("q5 twin", "no python3 here"),
        other => panic!("{other:?}"),
    }
}

/// `python3 python/q1_refused.py | head -3`: once the reader has gone, a twin stops quietly
/// (no `BrokenPipeError` traceback for the student to puzzle over), with a non-zero exit.
#[test]
fn every_twin_stops_quietly_when_its_reader_leaves() {
    if !lab_test_support::python("every_twin_stops_quietly_when_its_reader_leaves") {
        return;
    }
    for twin in CHAPTERS.iter().map(|chapter| chapter.twin) {
        let mut command = std::process::Command::new("python3");
        // q5 stops early without certificates: its first lines are enough here.
        command.arg(twin.path()).arg("no-such-certs-folder");
        // The reader leaves before the first line: every write now fails with EPIPE.
        let output = lab_test_support::output_with_stdout_closed(command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("Traceback") && !stderr.contains("BrokenPipeError"),
            "{}: {stderr}",
            twin.script
        );
        assert!(!output.status.success(), "{}", twin.script);
    }
}
