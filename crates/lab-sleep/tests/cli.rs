//! The `lab-sleep` command line: exit codes, `--json` fields, `--help`, and the strace probe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use predicates::prelude::*;
use serde_json::Value;

/// The binary with colors off and a fixed width for clap's help text.
fn lab_sleep() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(lab_test_support::bin!("lab-sleep"));
    command.env("NO_COLOR", "1").env("COLUMNS", "100");
    command
}

#[test]
fn help_lists_the_experiments_and_examples() {
    let output = lab_sleep().arg("--help").assert().success();
    let help = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    assert!(help.contains("Examples:"));
    insta::assert_snapshot!("help", help);
}

#[test]
fn json_prints_one_object_per_experiment_with_the_measurements() {
    let output = lab_sleep()
        .args(["--json", "--quick"])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["experiment"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sleep_accuracy",
            "only_calling_thread_sleeps",
            "cpu_cost_sleep_vs_spin",
            "kernel_keeps_working",
            "sleeping_server",
            "pacing_with_sleep",
            "same_syscall_underneath",
        ]
    );
    let [accuracy, threads, cpu, kernel, servers, pacing, syscall] = &records[..] else {
        unreachable!("seven records, checked above");
    };

    assert_eq!(accuracy["repeats"], 3);
    assert_eq!(accuracy["every_sleep_at_least_requested"], true);
    for request in accuracy["requests"].as_array().unwrap() {
        let requested = request["requested_ns"].as_u64().unwrap();
        for measured in request["measured_ns"].as_array().unwrap() {
            assert!(measured.as_u64().unwrap() >= requested);
        }
        assert!(request["median_overshoot_ns"].is_i64());
    }

    assert!(threads["counted_during_sleep"].as_u64().unwrap() > 0);

    assert_eq!(cpu["cpu_clock"], "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    let sleep_cpu = cpu["sleep"]["cpu_ns"].as_u64().unwrap();
    let spin_cpu = cpu["spin"]["cpu_ns"].as_u64().unwrap();
    assert!(sleep_cpu * 4 < spin_cpu, "{cpu}");

    let sent = kernel["bytes_sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(kernel["bytes_available_at_accept"].as_u64(), Some(sent));
    assert_eq!(kernel["bytes_received_at_once"].as_u64(), Some(sent));
    assert_eq!(kernel["accept_queue_at_wake"], 1);

    let single = servers["single_threaded_second_client_waited_us"]
        .as_u64()
        .unwrap();
    let threaded = servers["thread_per_client_second_client_waited_us"]
        .as_u64()
        .unwrap();
    assert!(single >= servers["server_sleep_us"].as_u64().unwrap());
    assert!(threaded < single);
    assert_eq!(servers["single_threaded"]["design"], "single_threaded");

    assert!(pacing["min_send_gap_us"].as_u64().unwrap() >= pacing["interval_us"].as_u64().unwrap());

    let runs = syscall["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        assert!(["traced", "skipped"].contains(&run["outcome"].as_str().unwrap()));
        assert!(["rust", "python"].contains(&run["language"].as_str().unwrap()));
    }
    if common::strace_available("json syscall fields") {
        assert_eq!(runs[0]["outcome"], "traced");
        assert!(!runs[0]["sleep_lines"].as_array().unwrap().is_empty());
    }
}

#[test]
fn one_experiment_can_be_chosen_by_name() {
    lab_sleep()
        .args(["--quick", "threads"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "2. It suspends only the calling thread",
        ))
        .stdout(predicate::str::contains("1. At least").not())
        .stdout(predicate::str::contains("Answer:"));
}

#[test]
fn an_unknown_experiment_is_a_usage_error() {
    lab_sleep()
        .arg("naptime")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("invalid value 'naptime'"))
        .stderr(predicate::str::contains("accuracy"));
}

#[test]
fn the_sleep_probe_sleeps_and_rejects_bad_arguments() {
    lab_sleep()
        .args(["__probe", "thread-sleep", "1000"])
        .assert()
        .code(0);
    lab_sleep()
        .args(["__probe", "thread-sleep", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "usage: lab-sleep __probe thread-sleep MICROSECONDS",
        ));
    lab_sleep()
        .args(["__probe", "nap"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown probe"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `lab-sleep | head -n 2`: once head has left, the next write fails with EPIPE.
    let output = lab_test_support::output_read_by_head(
        lab_test_support::bin!("lab-sleep"),
        &["--quick", "threads", "cpu"],
        2,
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
