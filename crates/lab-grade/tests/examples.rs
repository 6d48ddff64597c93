//! Grades every reference submission in `examples/` once and pins its report.
//!
//! Each test asserts the facts that matter (which checks pass and fail, the score), then
//! snapshots the whole narrated report, redacted, as a student would read it.

use crate::common::{grade, grader_filters, have, narrated, options, status_of};
use lab_grade::report::Status::{self, Failed, Passed};
use lab_grade::{Assignment, GradeReport};

/// Asserts that the report scores every point of the built-in rubric, `max_score`.
fn assert_full_marks(report: &GradeReport, max_score: f64) {
    assert_eq!(report.score, report.max_score, "{}", narrated(report));
    assert_eq!(report.max_score, max_score);
}

/// Asserts that each check of `ids` has `status`, showing the whole report if not.
fn assert_status(report: &GradeReport, status: Status, ids: &[&str]) {
    for id in ids {
        assert_eq!(status_of(report, id), status, "{id}\n{}", narrated(report));
    }
}

/// Asserts that exactly the checks for which `should_fail` is true failed, and every
/// other check passed: for a program that is right but for one mistake.
fn assert_only_failed(report: &GradeReport, should_fail: impl Fn(&str) -> bool) {
    for check in &report.checks {
        let expected = if should_fail(check.id) {
            Failed
        } else {
            Passed
        };
        assert_eq!(check.status, expected, "{}\n{}", check.id, narrated(report));
    }
}

fn snapshot(name: &str, text: &str) {
    lab_test_support::assert_redacted_snapshot!(name, text, grader_filters());
}

#[test]
fn the_secure_chat_server_gets_full_marks() {
    let report = grade(
        Assignment::ChatServer,
        &[
            "python3",
            "examples/chat/secure/server.py",
            "{port}",
            "{cert}",
            "{key}",
        ],
        options(false),
    );
    assert_full_marks(&report, 18.0);
    // Started as a TA would: the shared run, the vanishing client, the plaintext client.
    assert_eq!(report.program_starts, 3);
    snapshot("secure_chat_server", &narrated(&report));
}

#[test]
fn the_secure_chat_client_gets_full_marks() {
    let report = grade(
        Assignment::ChatClient,
        &[
            "python3",
            "examples/chat/secure/client.py",
            "{host}",
            "{port}",
            "{ca}",
        ],
        options(false),
    );
    assert_full_marks(&report, 19.0);
    // The real server, the two impostors, no server.
    assert_eq!(report.program_starts, 4);
    snapshot("secure_chat_client", &narrated(&report));
}

#[test]
fn the_insecure_alternating_server_fails_tls_duplex_framing_and_the_vanishing_client() {
    let report = grade(
        Assignment::ChatServer,
        &["python3", "examples/chat/insecure/server.py", "{port}"],
        options(true),
    );
    assert_status(
        &report,
        Passed,
        &[
            "listening",
            "client_line_shown",
            "stdin_line_sent",
            "exit_handled",
        ],
    );
    assert_status(
        &report,
        Failed,
        &[
            "tls_handshake",
            "tls_version",
            "full_duplex",
            "framing_two_lines",
            "framing_split_line",
            "abrupt_disconnect",
            "plaintext_refused",
        ],
    );
    let text = narrated(&report);
    assert!(text.contains("strict-alternation"));
    assert!(text.contains("[Errno"), "the crash is shown: {text}");
    snapshot("insecure_chat_server_plaintext", &text);
}

#[test]
fn the_insecure_server_graded_for_tls_fails_the_handshake_and_says_why() {
    let report = grade(
        Assignment::ChatServer,
        &["python3", "examples/chat/insecure/server.py", "{port}"],
        options(false),
    );
    assert_eq!(status_of(&report, "listening"), Passed);
    assert_eq!(status_of(&report, "tls_handshake"), Failed);
    // A plaintext server prints the ClientHello (or chokes on it), and serves plaintext.
    assert_eq!(status_of(&report, "plaintext_refused"), Failed);
    assert_eq!(report.score, 1.0, "{}", narrated(&report));
    let handshake = report
        .checks
        .iter()
        .find(|c| c.id == "tls_handshake")
        .unwrap();
    assert!(handshake.feedback.iter().any(|f| f.contains("--plaintext")));
}

#[test]
fn the_insecure_alternating_client_fails_duplex_and_shows_a_traceback_when_refused() {
    let report = grade(
        Assignment::ChatClient,
        &["python3", "examples/chat/insecure/client.py", "{port}"],
        options(true),
    );
    assert_status(
        &report,
        Passed,
        &[
            "connects",
            "stdin_line_sent",
            "server_line_shown",
            "exit_clean",
        ],
    );
    assert_status(
        &report,
        Failed,
        &[
            "tls_handshake",
            "full_duplex",
            "framing_two_lines",
            "framing_split_line",
            "refuses_untrusted",
            "refuses_wrong_name",
            "no_server_message",
        ],
    );
    let text = narrated(&report);
    assert!(text.contains("ConnectionRefusedError: [Errno 111]"));
    assert!(text.contains("nothing was listening"));
    snapshot("insecure_chat_client_plaintext", &text);
}

#[test]
fn the_client_that_turns_off_verification_fails_both_impostor_checks_only() {
    let report = grade(
        Assignment::ChatClient,
        &[
            "python3",
            "examples/chat/unverified/client.py",
            "{host}",
            "{port}",
            "{ca}",
        ],
        options(false),
    );
    assert_only_failed(&report, |id| id.starts_with("refuses_"));
    let text = narrated(&report);
    assert!(text.contains("the impostor received what the user typed"));
    snapshot("unverified_chat_client", &text);
}

#[test]
fn the_correct_echo_server_gets_full_marks() {
    let report = grade(
        Assignment::EchoServer,
        &["python3", "examples/echo/correct/server.py", "{port}"],
        options(false),
    );
    assert_full_marks(&report, 9.0);
    // The shared run, and the vanishing client.
    assert_eq!(report.program_starts, 2);
    snapshot("correct_echo_server", &narrated(&report));
}

#[test]
fn the_broken_echo_server_fails_split_lines_second_clients_bursts_and_resets() {
    let report = grade(
        Assignment::EchoServer,
        &["python3", "examples/echo/broken/server.py", "{port}"],
        options(false),
    );
    assert_status(
        &report,
        Passed,
        &["listening", "echo_line", "framing_two_lines"],
    );
    assert_status(
        &report,
        Failed,
        &[
            "framing_split_line",
            "several_clients",
            "large_burst",
            "client_vanishes",
        ],
    );
    burst_snapshot("broken_echo_server", &narrated(&report));
}

/// How much of the burst came back before the first difference depends on how the kernel
/// cut the stream: pin the sentence's shape, not its numbers.
fn burst_snapshot(name: &str, text: &str) {
    let mut filters = grader_filters();
    filters.push((
        r"Of (\d+) bytes sent, \d+ came back; the echo first differs at byte \d+: expected .*, got .*\.",
        "Of $1 bytes sent, [N] came back; the echo first differs at byte [N]: expected [TEXT], got [TEXT].",
    ));
    lab_test_support::assert_redacted_snapshot!(name, text, filters);
}

#[test]
fn a_client_that_checks_the_chain_but_not_the_name_fails_only_the_wrong_name_check() {
    let dir = tempfile::tempdir().unwrap();
    let secure =
        std::fs::read_to_string(crate::common::repo_root().join("examples/chat/secure/client.py"))
            .unwrap();
    let variant = secure.replace(
        "        context = ssl.create_default_context(cafile=ca)\n",
        "        context = ssl.create_default_context(cafile=ca)\n        context.check_hostname = False\n",
    );
    assert_ne!(variant, secure);
    let path = dir.path().join("client.py");
    std::fs::write(&path, variant).unwrap();
    let report = grade(
        Assignment::ChatClient,
        &[
            "python3",
            path.to_str().unwrap(),
            "{host}",
            "{port}",
            "{ca}",
        ],
        options(false),
    );
    assert_only_failed(&report, |id| id == "refuses_wrong_name");
}

#[test]
fn the_node_chat_server_gets_full_marks() {
    if !have("node", "grading the Node.js reference server") {
        return;
    }
    let report = grade(
        Assignment::ChatServer,
        &[
            "node",
            "examples/chat/secure-node/server.js",
            "{port}",
            "{cert}",
            "{key}",
        ],
        options(false),
    );
    assert_full_marks(&report, 18.0);
    snapshot("node_chat_server", &narrated(&report));
}

#[test]
fn the_java_chat_server_gets_full_marks_through_its_run_sh() {
    if !have("javac", "grading the Java reference server") {
        return;
    }
    let report = grade(
        Assignment::ChatServer,
        &[
            "sh",
            "examples/chat/secure-java/run.sh",
            "{port}",
            "{cert}",
            "{key}",
        ],
        options(false),
    );
    assert_full_marks(&report, 18.0);
    snapshot("java_chat_server", &narrated(&report));
}

#[test]
fn the_java_chat_client_gets_full_marks_through_its_client_sh() {
    if !have("javac", "grading the Java reference client") {
        return;
    }
    let report = grade(
        Assignment::ChatClient,
        &[
            "sh",
            "examples/chat/secure-java/client.sh",
            "{host}",
            "{port}",
            "{ca}",
        ],
        options(false),
    );
    assert_full_marks(&report, 19.0);
    snapshot("java_chat_client", &narrated(&report));
}

#[test]
fn the_node_chat_client_gets_full_marks() {
    if !have("node", "grading the Node.js reference client") {
        return;
    }
    let report = grade(
        Assignment::ChatClient,
        &[
            "node",
            "examples/chat/secure-node/client.js",
            "{host}",
            "{port}",
            "{ca}",
        ],
        options(false),
    );
    assert_full_marks(&report, 19.0);
    snapshot("node_chat_client", &narrated(&report));
}

#[test]
fn the_c_echo_server_gets_full_marks_through_its_run_sh() {
    if !have("cc", "grading the C reference echo server") {
        return;
    }
    let report = grade(
        Assignment::EchoServer,
        &["sh", "examples/echo/correct-c/run.sh", "{port}"],
        options(true),
    );
    assert_full_marks(&report, 9.0);
    snapshot("c_echo_server", &narrated(&report));
}

#[test]
fn the_c_echo_server_that_takes_one_recv_for_one_line_fails_split_lines_and_bursts() {
    if !have("cc", "grading the C one-recv echo server") {
        return;
    }
    let report = grade(
        Assignment::EchoServer,
        &["sh", "examples/echo/one-recv-c/run.sh", "{port}"],
        options(true),
    );
    assert_only_failed(&report, |id| {
        matches!(id, "framing_split_line" | "large_burst")
    });
    let text = narrated(&report);
    // Advice in C's terms, never Python's.
    assert!(text.contains("recv()"), "{text}");
    assert!(!text.contains("sendall"), "{text}");
    burst_snapshot("c_one_recv_echo_server", &text);
}
