//! The claims of lab 1 and of docs/01-connection-refused.md, each as a test that fails if
//! the claim is false. Durations are compared with each other and with deadlines, never
//! pinned: this suite must hold on a busy two-core machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lab_kit::attempt::Outcome;
use lab_kit::probe::Probe;
use lab_refused::backlog::connect_to_full_backlog;
use lab_refused::host_down::{HostDownError, connect_to_a_host_that_is_down};
use lab_refused::kernel_view::trace_refused_connect;
use lab_refused::refused::connect_to_closed_port;
use lab_refused::retry::{RetryPolicy, retry_until_server_starts};
use lab_refused::udp::send_to_closed_udp_port;

#[test]
fn connecting_to_a_closed_port_is_refused_with_errno_111_and_a_reset() {
    let report = connect_to_closed_port().unwrap();
    assert_eq!(report.attempt.outcome, Outcome::Refused);
    assert_eq!(
        report.attempt.error_kind.as_deref(),
        Some("ConnectionRefused")
    );
    assert_eq!(report.attempt.errno, Some(libc::ECONNREFUSED));
    assert_eq!(report.attempt.errno_name, Some("ECONNREFUSED"));
    if cfg!(target_os = "linux") {
        assert_eq!(report.attempt.errno, Some(111));
        let counters = report.counters.expect("Linux has /proc/net/snmp");
        // Other programs add to the same system-wide counters: "at least one".
        assert!(counters.active_opens >= 1, "{counters:?}");
        assert!(counters.attempt_fails >= 1, "{counters:?}");
        assert!(counters.out_rsts >= 1, "{counters:?}");
        // The socket's own count: a reset came back, so its SYN was never sent again.
        assert_eq!(report.resent_segments, Some(0), "{report:?}");
    }
}

#[test]
fn a_full_backlog_makes_the_kernel_resend_the_syn_after_one_second_inside_one_connect() {
    // Long enough for Linux's first resend (1 s after the first SYN), short of the second (3 s).
    let deadline = Duration::from_millis(2500);
    let silent = connect_to_full_backlog(deadline).unwrap();
    assert_eq!(silent.attempt.outcome, Outcome::TimedOut, "{silent:?}");
    if cfg!(target_os = "linux") {
        let resent = silent.resent_segments.expect("Linux has TCP_INFO");
        assert!(resent >= 1, "the SYN was sent again: {silent:?}");
        // System-wide, so "at least" as many as this one socket resent.
        let retrans = silent.retrans_segs.expect("Linux has /proc/net/snmp");
        assert!(retrans >= i64::from(resent), "{silent:?}");
        // Each resend was seen as it happened; the first one 1 s after the first SYN, not
        // before (the lower bound is the kernel's rule; no upper bound: the machine is busy).
        assert_eq!(silent.resent_at_us.len(), resent as usize, "{silent:?}");
        assert!(silent.resent_at_us[0] >= 1_000_000, "{silent:?}");
    }
}

#[test]
fn a_refusal_is_fast_and_a_full_backlog_times_out_at_its_deadline() {
    let deadline = Duration::from_millis(400);
    let refused = connect_to_closed_port().unwrap();
    let silent = connect_to_full_backlog(deadline).unwrap();

    assert_eq!(silent.attempt.outcome, Outcome::TimedOut, "{silent:?}");
    assert_eq!(silent.attempt.error_kind.as_deref(), Some("TimedOut"));
    assert!(
        silent.queued_connections >= 1,
        "the queue held the filler connection"
    );
    assert!(
        silent.attempt.elapsed() >= deadline,
        "timed out before the deadline: {silent:?}"
    );
    assert!(silent.timed_out_at_deadline());
    // "Fast" is relative: the refusal took a small fraction of the time the silence took.
    assert!(
        refused.attempt.elapsed() * 4 < silent.attempt.elapsed(),
        "refused took {:?}, timeout {:?}",
        refused.attempt.elapsed(),
        silent.attempt.elapsed()
    );
    if let Some(queue) = silent.listen_queue {
        assert!(
            queue.listen_overflows >= 1,
            "the kernel counted the dropped SYN: {queue:?}"
        );
    }
}

#[test]
fn only_our_loop_retries_and_it_finds_the_late_server() {
    let policy = RetryPolicy {
        max_attempts: 40,
        first_pause: Duration::from_millis(5),
        max_pause: Duration::from_millis(100),
    };
    let report = retry_until_server_starts(Duration::from_millis(60), policy).unwrap();
    assert_eq!(report.outcome, Outcome::Connected, "{report:?}");
    assert!(
        report.refused_attempts() >= 1,
        "the server was not there at first: {report:?}"
    );
    let last = report.attempts.last().unwrap();
    assert_eq!(last.attempt.outcome, Outcome::Connected);
    // Every attempt before the last was refused: each one a separate call we made.
    assert!(
        report.attempts[..report.attempts.len() - 1]
            .iter()
            .all(|a| a.attempt.outcome == Outcome::Refused)
    );
}

#[test]
fn without_a_loop_there_is_exactly_one_attempt() {
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let closed = lab_kit::ports::ClosedTcpPort::reserve().unwrap();
    let target = closed.addr();
    let (stream, attempts) = lab_refused::retry::connect_with_retries(target, policy);
    assert!(stream.is_none());
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt.outcome, Outcome::Refused);
}

#[test]
fn udp_send_succeeds_and_the_next_recv_is_refused() {
    let report = send_to_closed_udp_port(Duration::from_secs(5)).unwrap();
    assert_eq!(report.sent_bytes, Some(b"is anybody there?".len()));
    assert!(report.send_error.is_none());
    assert_eq!(report.recv.outcome, Outcome::Refused, "{report:?}");
    assert_eq!(report.recv.errno, Some(libc::ECONNREFUSED));
    assert!(report.refused_on_recv());
}

#[test]
fn strace_records_one_connect_answered_with_econnrefused() {
    let probe = Probe::binary(lab_test_support::bin!("lab-refused"));
    match trace_refused_connect(&probe) {
        Ok(report) => {
            assert_eq!(report.connect_calls, 1, "{:#?}", report.syscalls);
            let line = report
                .refused_line
                .expect("a connect line with ECONNREFUSED");
            assert!(line.contains("= -1 ECONNREFUSED"), "{line}");
            assert!(
                line.contains(&format!("htons({})", report.target.port())),
                "{line}"
            );
        }
        Err(lab_kit::strace::StraceError::Unavailable(why)) => {
            lab_test_support::skip_unless_ci(
                "strace_records_one_connect_answered_with_econnrefused",
                why,
            );
        }
        Err(other) => panic!("strace failed: {other}"),
    }
}

#[test]
fn python_raises_connection_refused_error_with_errno_111() {
    let closed = lab_kit::ports::ClosedTcpPort::reserve().unwrap();
    let target = closed.addr();
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {}))\nexcept OSError as e:\n    print(type(e).__name__, e.errno)\n",
        target.port()
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(output) => {
            let printed = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                printed.trim(),
                format!("ConnectionRefusedError {}", libc::ECONNREFUSED)
            );
        }
        Err(e) => {
            lab_test_support::skip_unless_ci(
                "python_raises_connection_refused_error_with_errno_111",
                format!("no python3 ({e})"),
            );
        }
    }
}

#[test]
fn a_host_that_is_down_on_the_same_link_is_unreachable_after_the_arp_questions() {
    let deadline = Duration::from_secs(20);
    let report = match connect_to_a_host_that_is_down(deadline) {
        Ok(report) => report,
        Err(HostDownError::Unavailable(why)) => {
            lab_test_support::skip_unless_ci("the host-down experiment", why);
            return;
        }
        Err(other) => panic!("{other}"),
    };
    assert_eq!(report.attempt.errno, Some(libc::EHOSTUNREACH), "{report:?}");
    assert_eq!(report.attempt.errno_name, Some("EHOSTUNREACH"));
    // The kernel's answer, not our deadline, ended the wait: after the ARP questions (the
    // kernel's timers count in ticks, so allow a little less than the nominal 3 × 1 s).
    let (questions, wait_ms) = (report.arp_questions.unwrap(), report.arp_wait_ms.unwrap());
    let arp = Duration::from_millis(u64::from(questions) * u64::from(wait_ms));
    assert!(report.attempt.elapsed() >= arp.mul_f64(0.9), "{report:?}");
    assert!(report.attempt.elapsed() < deadline, "{report:?}");
}

#[test]
fn python_reports_a_host_that_is_down_as_a_plain_oserror_113() {
    if let Some(why) = lab_kit::netns::unavailable_reason() {
        lab_test_support::skip_unless_ci("python_reports_a_host_that_is_down", why);
        return;
    }
    let namespace = lab_kit::netns::Namespace::create("lab-refused-py").unwrap();
    for args in [
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"][..],
        &["addr", "add", "192.0.2.1/24", "dev", "v0"],
        &["link", "set", "v0", "up"],
        &["link", "set", "v1", "up"],
    ] {
        namespace.ip(args).unwrap();
    }
    let script = "import socket\ns = socket.socket()\ns.settimeout(20)\ntry:\n    \
        s.connect(('192.0.2.99', 9))\nexcept OSError as e:\n    print(type(e).__name__, e.errno)\n";
    match std::process::Command::new("ip")
        .args(["netns", "exec", namespace.name(), "python3", "-c", script])
        .output()
    {
        Ok(output) if output.status.success() => {
            let printed = String::from_utf8_lossy(&output.stdout);
            assert_eq!(printed.trim(), format!("OSError {}", libc::EHOSTUNREACH));
        }
        Ok(output) => lab_test_support::skip_unless_ci(
            "python_reports_a_host_that_is_down",
            format!(
                "python3 failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(e) => lab_test_support::skip_unless_ci("python_reports_a_host_that_is_down", e),
    }
}
