//! Snapshots of lab 1's narration and command line, as a student reads them. Everything
//! that varies between runs (ports, durations, counter values, the number of refused
//! retries, file descriptors) is redacted; the words and the shape are pinned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assert_cmd::Command;
use lab_kit::probe::Probe;
use lab_refused::{Experiment, Options};
use predicates::prelude::*;

/// This lab's redactions, applied after the workspace's.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // Counter deltas: other traffic on the machine can add to them.
        (r"\+\d+  \(", "+[N]  ("),
        // Resent SYNs: how many depends on the deadline the test chose.
        (r"\d+ times?  \(this socket", "[N] times  (this socket"),
        // How many attempts were refused depends on scheduling: collapse them.
        (
            r"(?m)(^  attempt \d+ at \[DURATION\] +ConnectionRefused[^\n]*\n)+",
            "  [REFUSED ATTEMPTS]\n",
        ),
        (
            r"(?m)^  attempt \d+ at \[DURATION\] +",
            "  attempt [N] at [DURATION]  ",
        ),
        (r"after \d+ refused attempts", "after [N] refused attempts"),
        // Measured resend times and this kernel's settings.
        (r"(?m)^(  SYN sent again at +).*$", "$1[TIMES]"),
        (r"(?m)^(  this kernel's settings +).*$", "$1[SETTINGS]"),
        // File descriptors in strace lines.
        (r"\((\d+), \{sa_family", "([FD], {sa_family"),
        (r"(?m)\) = \d+$", ") = [FD]"),
    ]
}

fn narrate(experiment: Experiment) -> String {
    let probe = Probe::binary(lab_test_support::bin!("lab-refused"));
    let options = Options {
        backlog_deadline: Duration::from_millis(300),
        ..Options::default()
    };
    lab_test_support::narration(|n| {
        lab_refused::run_experiment(experiment, &options, &probe, n).map_err(std::io::Error::other)
    })
}

#[test]
fn refused_narration() {
    let text = narrate(Experiment::Refused);
    lab_test_support::assert_redacted_snapshot!("refused_narration", text, filters());
}

#[test]
fn retry_narration() {
    let text = narrate(Experiment::Retry);
    // The redaction collapses the refused attempts; make sure there were some.
    assert!(text.contains("ConnectionRefused"), "{text}");
    lab_test_support::assert_redacted_snapshot!("retry_narration", text, filters());
}

#[test]
fn backlog_narration() {
    let text = narrate(Experiment::Backlog);
    lab_test_support::assert_redacted_snapshot!("backlog_narration", text, filters());
}

#[test]
fn host_down_narration() {
    if let Some(why) = lab_kit::netns::unavailable_reason() {
        lab_test_support::skip_unless_ci("host_down_narration", why);
        return;
    }
    let text = narrate(Experiment::HostDown);
    lab_test_support::assert_redacted_snapshot!("host_down_narration", text, filters());
}

#[test]
fn udp_narration() {
    let text = narrate(Experiment::Udp);
    lab_test_support::assert_redacted_snapshot!("udp_narration", text, filters());
}

#[test]
fn strace_narration() {
    if lab_kit::strace::locate().is_err() {
        lab_test_support::skip_unless_ci("strace_narration", "strace is not available here");
        return;
    }
    let text = narrate(Experiment::Strace);
    lab_test_support::assert_redacted_snapshot!("strace_narration", text, filters());
}

#[test]
fn help_lists_the_experiments_with_examples() {
    let output = Command::new(lab_test_support::bin!("lab-refused"))
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
}

#[test]
fn json_prints_one_object_per_experiment_with_the_measured_fields() {
    let output = Command::new(lab_test_support::bin!("lab-refused"))
        .args([
            "--json",
            "--deadline-ms",
            "300",
            "refused",
            "backlog",
            "udp",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let experiments: Vec<&str> = lines
        .iter()
        .map(|l| l["experiment"].as_str().unwrap())
        .collect();
    assert_eq!(experiments, ["refused", "backlog", "udp"]);
    assert_eq!(lines[0]["outcome"], "refused");
    assert_eq!(lines[0]["error_kind"], "ConnectionRefused");
    assert_eq!(lines[0]["errno"], libc::ECONNREFUSED);
    assert!(lines[0]["elapsed_us"].is_u64());
    assert!(lines[0]["counters"]["attempt_fails"].as_i64().unwrap() >= 1);
    assert!(lines[0]["counters"]["out_rsts"].as_i64().unwrap() >= 1);
    assert_eq!(lines[1]["outcome"], "timed_out");
    assert!(lines[1]["elapsed_us"].as_u64().unwrap() >= 300_000);
    assert_eq!(lines[2]["outcome"], "refused");
}

#[test]
fn a_bad_argument_is_a_clear_error_and_a_failure() {
    Command::new(lab_test_support::bin!("lab-refused"))
        .arg("--deadline-ms")
        .arg("0")
        .assert()
        .failure()
        .stderr(predicate::str::contains("--deadline-ms"));
    Command::new(lab_test_support::bin!("lab-refused"))
        .arg("teleport")
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid value 'teleport'"));
}
