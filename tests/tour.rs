//! The tour (`cargo run --release`): its help lists every chapter, each chapter runs on its
//! own, and `--json` is one JSON object per line. The chapters' own claims are tested in
//! their crates; here we test that the tour really runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use predicates::prelude::*;

use crate::socket_lab;

#[test]
fn help_lists_the_chapters() {
    let output = socket_lab().arg("--help").output().unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
}

#[test]
fn the_refused_chapter_runs_alone_with_live_evidence() {
    socket_lab()
        .arg("refused")
        .assert()
        .success()
        .stdout(predicate::str::contains("Question 1:"))
        .stdout(predicate::str::contains(
            "ConnectionRefused (errno 111, ECONNREFUSED)",
        ))
        .stdout(predicate::str::contains("Answer:"))
        .stdout(predicate::str::contains("\u{1b}[").not());
}

#[test]
fn the_tour_binary_runs_the_strace_probe_of_lab_1() {
    if lab_kit::strace::locate().is_err() {
        lab_test_support::skip_unless_ci(
            "the_tour_binary_runs_the_strace_probe_of_lab_1",
            "no strace here",
        );
        return;
    }
    socket_lab()
        .arg("refused")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "= -1 ECONNREFUSED (Connection refused)",
        ));
}

#[test]
fn json_mode_prints_only_json_lines() {
    let output = socket_lab().args(["--json", "refused"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.trim().is_empty());
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["experiment"].is_string(), "{line}");
    }
}

#[test]
fn an_unknown_chapter_is_an_error() {
    socket_lab()
        .arg("teleport")
        .assert()
        .failure()
        .stderr(predicate::str::contains("unrecognized subcommand"));
}

/// The headings of the chapters that exist, in the order of the homework's questions.
const QUESTIONS_IN_ORDER: &[&str] = &[
    "Question 1:",
    "Question 2:",
    "Question 3:",
    "Question 4:",
    "Question 5:",
];

#[test]
fn the_whole_tour_runs_every_chapter_in_order() {
    let output = socket_lab().output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut from = 0;
    for question in QUESTIONS_IN_ORDER {
        let at = text[from..]
            .find(question)
            .unwrap_or_else(|| panic!("{question} missing or out of order"));
        from += at + question.len();
    }
    assert_eq!(
        text.matches("Answer:").count(),
        QUESTIONS_IN_ORDER.len(),
        "one answer per chapter"
    );
    // Which system and which Python the evidence comes from, and what differs elsewhere.
    assert!(text.contains("operating system"), "{text}");
    assert!(text.contains("Python (for the twins)"), "{text}");
    assert_eq!(
        text.matches("Elsewhere (from sources, not measured here):")
            .count(),
        QUESTIONS_IN_ORDER.len(),
        "each chapter says what differs elsewhere"
    );
    if lab_kit::twin::python_version().is_some() {
        assert_eq!(text.matches("The same in Python: python/q").count(), 5);
    }
}

#[test]
fn the_tour_binary_runs_the_strace_probe_of_lab_4() {
    if lab_kit::strace::locate().is_err() {
        lab_test_support::skip_unless_ci(
            "the_tour_binary_runs_the_strace_probe_of_lab_4",
            "no strace here",
        );
        return;
    }
    socket_lab()
        .arg("calls")
        .assert()
        .success()
        .stdout(predicate::str::contains("accept4("))
        .stdout(predicate::str::contains("skipped: strace").not());
}

#[test]
fn the_tour_runs_each_chapters_python_twin_beside_it() {
    if !lab_test_support::python("the_tour_runs_each_chapters_python_twin_beside_it") {
        return;
    }
    let output = socket_lab().arg("refused").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let twin = text
        .find("The same in Python: python/q1_refused.py")
        .unwrap_or_else(|| panic!("no twin section:\n{text}"));
    // After the chapter's answer, which separates what was measured here from elsewhere.
    let answer = text.find("Answer: measured here (Linux)").unwrap();
    let elsewhere = text
        .find("Elsewhere (from sources, not measured here):")
        .unwrap();
    assert!(answer < elsewhere && elsewhere < twin, "{text}");
    assert!(
        text[twin..].contains("│ refused: ConnectionRefusedError, errno 111 (ECONNREFUSED)"),
        "{text}"
    );
    assert!(text[twin..].contains("measured on"), "{text}");
}
