//! Each claim of lab 3 (and of docs/03-sleep.md) as a test that fails if the claim is false.
//!
//! The machine running these tests may be busy (other builds, other tests): every assertion
//! is a lower bound or a relationship between two measurements, never a tight upper bound on
//! a duration. Each test also pins the experiment's narration, with every number redacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use lab_kit::probe::Probe;
use lab_sleep::syscall::{Language, SLEEP_SYSCALLS};
use lab_sleep::{accuracy, cpu, kernel_works, narrate, pacing, servers, syscall, threads};

/// This lab's snapshot: its filters mask facts from sources *before* the shared redactions
/// (so that "15.6 ms" from Windows' documentation is not hidden as a duration), which the
/// shared macro cannot do.
fn assert_redacted_snapshot(name: &str, text: &str) {
    insta::with_settings!({ filters => common::filters() }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn every_sleep_lasts_at_least_its_request() {
    let report = accuracy::measure_sleep_accuracy(accuracy::STANDARD_REQUESTS, 3);
    assert_eq!(report.requests.len(), 6);
    for request in &report.requests {
        assert_eq!(request.measured_ns.len(), 3);
        for &measured in &request.measured_ns {
            assert!(
                measured >= request.requested_ns,
                "a sleep of {} ns lasted only {measured} ns",
                request.requested_ns
            );
        }
        assert!(request.min_overshoot_ns >= 0);
        assert!(request.min_overshoot_ns <= request.median_overshoot_ns);
        assert!(request.median_overshoot_ns <= request.max_overshoot_ns);
    }
    assert!(report.every_sleep_at_least_requested);
    // Linux gives every ordinary thread a timer slack (50 µs unless changed).
    assert!(report.timer_slack_ns.is_some_and(|slack| slack > 0));
    // A 1 µs request is not honoured to the microsecond: it lasts longer than asked.
    let one_micro = &report.requests[1];
    assert_eq!(one_micro.requested_ns, 1_000);
    assert!(one_micro.min_overshoot_ns > 0);
    assert_redacted_snapshot(
        "accuracy",
        &lab_test_support::narration(|n| narrate::accuracy(&report, n)),
    );
}

#[test]
fn another_thread_keeps_counting_while_this_one_sleeps() {
    let sleep = Duration::from_millis(200);
    let report = threads::count_while_main_thread_sleeps(sleep).unwrap();
    assert!(report.slept_us >= 200_000);
    assert!(
        report.counted_during_sleep > 0,
        "the other thread did not count while this one slept: {report:?}"
    );
    assert_eq!(
        report.counted_during_sleep,
        report.count_after_sleep - report.count_before_sleep
    );
    assert_redacted_snapshot(
        "only_calling_thread",
        &lab_test_support::narration(|n| narrate::only_calling_thread(&report, n)),
    );
}

#[test]
fn sleeping_costs_far_less_cpu_than_spinning() {
    let report = cpu::compare_sleep_with_spin(Duration::from_millis(200)).unwrap();
    assert_eq!(report.cpu_clock, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    assert!(report.sleep.wall_us >= 200_000 && report.spin.wall_us >= 200_000);
    assert!(report.spin_clock_reads > 0);
    assert!(
        report.sleep.cpu_ns.saturating_mul(4) < report.spin.cpu_ns,
        "sleep used {} ns of CPU, spin {} ns: expected sleep < spin / 4",
        report.sleep.cpu_ns,
        report.spin.cpu_ns
    );
    // "Almost no CPU": a sleeping thread is charged only for entering and leaving the sleep,
    // far below 5% of the time it slept (waiting for a CPU is not CPU time, so a busy
    // machine does not change this).
    assert!(
        report.sleep.cpu_ns < 10_000_000,
        "a 200 ms sleep used {} ns of CPU",
        report.sleep.cpu_ns
    );
    assert_redacted_snapshot(
        "cpu_cost",
        &lab_test_support::narration(|n| narrate::cpu_cost(&report, n)),
    );
}

#[test]
fn bytes_sent_during_the_sleep_are_waiting_when_it_ends() {
    let report = kernel_works::client_during_server_sleep(Duration::from_millis(200)).unwrap();
    // The client's connect returned while the server slept, i.e. before it called accept:
    // the kernel did the handshake.
    assert!(
        report.client_connected_at_us < report.server_woke_at_us,
        "{report:?}"
    );
    assert!(
        report.client_sent_at_us < report.server_woke_at_us,
        "{report:?}"
    );
    assert!(report.server_woke_at_us >= report.server_sleep_us);
    // The connection waited in the listener's accept queue.
    assert_eq!(report.accept_queue_at_wake, Some(1));
    // Every byte was in the receive buffer at once: FIONREAD saw them all, and one
    // non-blocking recv (which would fail with WouldBlock otherwise) returned them all.
    let expected: String = kernel_works::CLIENT_MESSAGES.concat();
    assert_eq!(report.bytes_sent, expected.len());
    assert_eq!(report.bytes_available_at_accept, expected.len());
    assert_eq!(report.bytes_received_at_once, expected.len());
    assert_eq!(report.received_text, expected);
    assert_redacted_snapshot(
        "kernel_keeps_working",
        &lab_test_support::narration(|n| narrate::kernel_keeps_working(&report, n)),
    );
}

#[test]
fn a_sleeping_single_threaded_server_delays_the_second_client() {
    let sleep = Duration::from_millis(200);
    let report = servers::compare_server_designs(sleep).unwrap();
    let single = &report.single_threaded;
    let threaded = &report.thread_per_client;
    assert_eq!(single.clients.len(), 2);
    assert_eq!(threaded.clients.len(), 2);
    for client in single.clients.iter().chain(&threaded.clients) {
        // Every client waits at least for its own request's sleep.
        assert!(client.waited_us >= 200_000, "{client:?}");
        assert!(client.reply.starts_with("done: request from client"));
    }
    // Single-threaded: the server sleeps for client 1's request, then for client 2's, one
    // after the other, so client 2's reply comes at least two sleeps after client 1 sent.
    assert!(
        single.second_reply_after_first_request_us() >= 400_000,
        "{single:?}"
    );
    assert!(report.single_threaded_second_client_waited_us >= 200_000);
    // Thread per client: the second client waited less than in the single-threaded server.
    assert!(
        report.thread_per_client_second_client_waited_us
            < report.single_threaded_second_client_waited_us,
        "{report:?}"
    );
    assert_redacted_snapshot(
        "sleeping_server",
        &lab_test_support::narration(|n| narrate::sleeping_server(&report, n)),
    );
}

#[test]
fn sleep_paces_sends_and_a_blocking_recv_wakes_when_data_arrives() {
    let report =
        pacing::paced_sender_blocking_receiver(pacing::MESSAGES, pacing::INTERVAL).unwrap();
    assert_eq!(report.messages.len(), pacing::MESSAGES);
    // Pacing: no two sends closer than the interval.
    assert!(report.min_send_gap_us >= 50_000, "{report:?}");
    // Waiting: the blocking receiver typically saw each datagram far sooner than a
    // sleep-and-check loop with the same interval would (a relationship, not a bound).
    assert!(report.median_delivery_us < report.interval_us, "{report:?}");
    assert_redacted_snapshot(
        "pacing",
        &lab_test_support::narration(|n| narrate::pacing(&report, n)),
    );
}

#[test]
fn python_threads_keep_running_while_one_sleeps() {
    // The same lesson in Python: time.sleep releases the GIL, so another thread counts on.
    let script = "import threading, time\n\
        count = 0\n\
        stop = False\n\
        def counter():\n    global count\n    while not stop:\n        count += 1\n\
        t = threading.Thread(target=counter); t.start()\n\
        while count == 0: pass\n\
        before = count; time.sleep(0.2); after = count\n\
        stop = True; t.join()\n\
        print(after - before)\n";
    let mut command = std::process::Command::new("python3");
    command.args(["-c", script]);
    let Ok(mut child) = lab_kit::child::RunningChild::spawn(&mut command) else {
        lab_test_support::skip_unless_ci(
            "python_threads_keep_running_while_one_sleeps",
            "python3 is not installed",
        );
        return;
    };
    child.close_stdin();
    let status = child
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .expect("python3 finished within 60 s");
    assert!(
        status.success(),
        "{}",
        child.text(lab_kit::child::Stream::Stderr)
    );
    let counted: u64 = child
        .text(lab_kit::child::Stream::Stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        counted > 0,
        "the other Python thread did not count during time.sleep"
    );
}

fn probe() -> Probe {
    Probe::binary(lab_test_support::bin!("lab-sleep"))
}

#[test]
fn rust_and_python_sleep_are_the_same_system_call() {
    let report = syscall::trace_sleep_calls(&probe());
    if !common::strace_available("rust_and_python_sleep_are_the_same_system_call") {
        assert!(report.runs.iter().all(|r| r.outcome == "skipped"));
        return;
    }
    let is_sleep_call = |name: &str| SLEEP_SYSCALLS.contains(&name);
    let rust = report.run(Language::Rust, 10_000).unwrap();
    assert_eq!(rust.outcome, "traced", "{rust:?}");
    assert!(rust.program_succeeded);
    assert!(
        rust.syscall_names()
            .iter()
            .any(|name| *name == "clock_nanosleep" || *name == "nanosleep"),
        "no clock_nanosleep/nanosleep in {rust:?}"
    );
    // Rust asks for a relative sleep ("for 10 ms"), not a deadline.
    if rust.clock.is_some() {
        assert_eq!(rust.absolute_deadline, Some(false), "{rust:?}");
    }
    // A zero sleep in Rust makes no system call at all.
    let rust_zero = report.run(Language::Rust, 0).unwrap();
    assert_eq!(rust_zero.outcome, "traced");
    assert!(rust_zero.sleep_lines.is_empty(), "{rust_zero:?}");

    let python = report.run(Language::Python, 10_000).unwrap();
    if python.outcome == "skipped" {
        lab_test_support::skip_unless_ci(
            "Python's side of rust_and_python_sleep_are_the_same_system_call",
            python.skipped_reason.as_deref().unwrap_or(""),
        );
        return;
    }
    assert!(python.program_succeeded);
    assert!(
        python
            .syscall_names()
            .iter()
            .any(|name| is_sleep_call(name)),
        "no sleep system call in {python:?}"
    );
    // Python (3.11 and later) asks for an absolute deadline on the monotonic clock.
    if python.clock.is_some() {
        assert_eq!(python.clock.as_deref(), Some("CLOCK_MONOTONIC"));
        assert_eq!(python.absolute_deadline, Some(true), "{python:?}");
    }
    let python_zero = report.run(Language::Python, 0).unwrap();
    assert!(!python_zero.sleep_lines.is_empty(), "{python_zero:?}");
    assert_redacted_snapshot(
        "syscall",
        &lab_test_support::narration(|n| narrate::syscall(&report, n)),
    );
}

#[test]
fn the_chapter_runs_every_experiment_and_answers() {
    let text = lab_test_support::narration(|n| {
        lab_sleep::chapter(n, &probe(), &lab_capture::Wiretap::off()).map_err(std::io::Error::other)
    });
    assert!(text.contains(&lab_sleep::CHAPTER.heading()));
    for section in 1..=7 {
        assert!(
            text.contains(&format!("\n{section}. ")),
            "section {section} missing"
        );
    }
    assert!(text.contains("Answer: measured here (Linux): sleep asks the kernel"));
    assert!(text.contains("Elsewhere (from sources, not measured here): on Windows"));
    assert!(!text.contains("warning:"), "a claim did not hold:\n{text}");
}
