//! The classroom narration of each experiment's report.
//!
//! Every function here only prints what a report holds; the experiments themselves never
//! print. Sentences that interpret a measurement are chosen from the measurement, so the
//! narration cannot claim what this run did not show.

use lab_kit::narrate::Narrator;

use crate::accuracy::AccuracyReport;
use crate::cpu::{CpuCostReport, WaitCost};
use crate::kernel_works::KernelKeepsWorkingReport;
use crate::pacing::PacingReport;
use crate::servers::{DesignRun, SleepingServerReport};
use crate::syscall::{Language, SyscallReport, TracedSleep};
use crate::threads::OnlyCallingThreadReport;
use lab_kit::narrate::{human_count as count, human_micros as micros, human_nanos as nanos};

type Result = std::io::Result<()>;

/// `+57.3 µs`, or `-1.0 µs` if a sleep was ever shorter than asked.
fn signed_nanos(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "+" };
    format!("{sign}{}", nanos(u128::from(ns.unsigned_abs())))
}

/// `yes` or `NO`, loud when a claim did not hold.
fn yes_no(holds: bool) -> &'static str {
    if holds { "yes" } else { "NO" }
}

/// Experiment 1: requested versus measured.
pub fn accuracy(report: &AccuracyReport, n: &mut Narrator) -> Result {
    n.section("1. At least, never less: how long does sleep(d) really last?")?;
    n.say(&format!(
        "Each request was slept {} times with std::thread::sleep and timed with Instant \
         (a monotonic clock). Overshoot = measured - requested.",
        report.repeats
    ))?;
    let row = |cells: [&str; 5]| {
        let line = format!(
            "  {:<10} {:<17} {:<17} {:<17} {:<17}",
            cells[0], cells[1], cells[2], cells[3], cells[4]
        );
        line.trim_end().to_string()
    };
    n.say(&row([
        "requested",
        "median measured",
        "min overshoot",
        "median overshoot",
        "max overshoot",
    ]))?;
    for request in &report.requests {
        n.say(&row([
            &nanos(u128::from(request.requested_ns)),
            &nanos(u128::from(request.median_measured_ns)),
            &signed_nanos(request.min_overshoot_ns),
            &signed_nanos(request.median_overshoot_ns),
            &signed_nanos(request.max_overshoot_ns),
        ]))?;
    }
    let total: usize = report.requests.iter().map(|r| r.measured_ns.len()).sum();
    let at_least: usize = report
        .requests
        .iter()
        .map(|r| {
            r.measured_ns
                .iter()
                .filter(|&&m| m >= r.requested_ns)
                .count()
        })
        .sum();
    n.fact(
        "sleeps >= their request",
        format!("{at_least} of {total}: {}", yes_no(at_least == total)),
    )?;
    match report.timer_slack_ns {
        Some(slack) => n.fact(
            "this thread's timer slack",
            format!("{} (prctl PR_GET_TIMERSLACK)", nanos(u128::from(slack))),
        )?,
        None => n.skipped(
            "timer slack",
            "prctl(PR_GET_TIMERSLACK) is not available here",
        )?,
    }
    if !report.every_sleep_at_least_requested {
        n.warn("a sleep was shorter than its request: that would break sleep's one promise")?;
    }
    n.say(
        "The kernel promises only \"not before\": the timer fires no earlier than asked, may be \
         deferred by the timer slack so timers can be grouped, and then the thread waits for a \
         CPU. So tiny sleeps last tens of microseconds, and on a busy machine any sleep can \
         last milliseconds longer. Rely on \"at least\", never on \"exactly\". That is \
         Linux; on Windows, Python 3.10 and older sleep in whole timer ticks of about 15.6 ms, \
         and Win32 Sleep may even return early (from sources: docs/03, \"On your machine\"). \
         Measure with time.perf_counter(), not time.time().",
    )
}

/// Experiment 2: another thread counts while the calling thread sleeps.
pub fn only_calling_thread(report: &OnlyCallingThreadReport, n: &mut Narrator) -> Result {
    n.section("2. It suspends only the calling thread, not the process")?;
    n.say("A second thread counts as fast as it can while this thread sleeps.")?;
    n.fact("requested sleep", micros(report.requested_us))?;
    n.fact("slept", micros(report.slept_us))?;
    n.fact("count before the sleep", count(report.count_before_sleep))?;
    n.fact("count after the sleep", count(report.count_after_sleep))?;
    n.fact(
        "counted during the sleep",
        count(report.counted_during_sleep),
    )?;
    if report.counted_during_sleep > 0 {
        n.say(
            "The count moved while this thread slept: the kernel schedules threads, and sleep \
             took only the calling one off the CPU. (Python's time.sleep releases the GIL, so \
             other Python threads run too.)",
        )
    } else {
        n.warn("the other thread did not count during the sleep (was the machine starved?)")
    }
}

fn wait_cost(label: &str, cost: &WaitCost, n: &mut Narrator) -> Result {
    n.fact(
        label,
        format!(
            "{} of CPU in {} of wall time",
            nanos(u128::from(cost.cpu_ns)),
            micros(cost.wall_us)
        ),
    )
}

/// Experiment 3: CPU time of a sleep and of a spin.
pub fn cpu_cost(report: &CpuCostReport, n: &mut Narrator) -> Result {
    n.section("3. Sleeping costs no CPU; busy-waiting does")?;
    n.say(&format!(
        "The same thread waits {} twice: once with thread::sleep, once by spinning on the \
         clock. Its CPU time comes from {}.",
        micros(report.requested_us),
        report.cpu_clock
    ))?;
    wait_cost("sleep", &report.sleep, n)?;
    wait_cost("spin", &report.spin, n)?;
    n.fact("clock reads while spinning", count(report.spin_clock_reads))?;
    if report.sleep.cpu_ns.saturating_mul(4) < report.spin.cpu_ns {
        n.say(
            "The sleeping thread was off the CPU; the spinning one kept a core busy (as much as \
             the scheduler gave it) for nothing. On a shared machine a spin steals that core \
             from every other program, and from the threads that would produce what it waits for.",
        )
    } else {
        n.warn("the spin did not cost clearly more CPU than the sleep in this run")
    }
}

/// Experiment 4: what the kernel did for the client while the server slept.
pub fn kernel_keeps_working(report: &KernelKeepsWorkingReport, n: &mut Narrator) -> Result {
    n.section("4. The kernel keeps working while the program sleeps")?;
    n.say(&format!(
        "A server thread listens, then sleeps {} before accept() and recv(). Meanwhile a \
         client connects and sends {} messages. Times are from the start of the server's sleep.",
        micros(report.server_sleep_us),
        report.client_writes
    ))?;
    n.fact(
        "client connect() returned",
        format!("at {}", micros(report.client_connected_at_us)),
    )?;
    n.fact(
        "client's writes returned",
        format!(
            "at {} ({} bytes)",
            micros(report.client_sent_at_us),
            report.bytes_sent
        ),
    )?;
    n.fact(
        "server woke up",
        format!("at {}", micros(report.server_woke_at_us)),
    )?;
    // On a very busy machine the client may get no CPU during the sleep; the experiment then
    // tries again with a doubled sleep, and says so here.
    n.fact(
        "tries needed",
        format!(
            "{} (the sleep doubles if the client got no CPU during it)",
            report.attempts
        ),
    )?;
    match (report.accept_queue_at_wake, report.accept_queue_limit) {
        (Some(queued), Some(limit)) => n.fact(
            "accept queue at wake-up",
            format!("{queued} connection(s) waiting (limit {limit}), before accept() was called"),
        )?,
        _ => n.skipped(
            "accept queue",
            "TCP_INFO on a listening socket is not available here",
        )?,
    }
    n.fact(
        "non-blocking accept()",
        format!("returned a connection in {}", micros(report.accept_took_us)),
    )?;
    n.fact(
        "bytes in receive buffer",
        format!(
            "{} (ioctl FIONREAD, right after accept)",
            report.bytes_available_at_accept
        ),
    )?;
    n.fact(
        "one non-blocking recv()",
        format!(
            "{} bytes in {}",
            report.bytes_received_at_once,
            micros(report.recv_took_us)
        ),
    )?;
    for line in report.received_text.lines() {
        n.evidence(line)?;
    }
    let all_there = report.bytes_available_at_accept == report.bytes_sent
        && report.bytes_received_at_once == report.bytes_sent;
    if report.client_finished_during_sleep() && all_there {
        n.say(
            "The client's connect() returned before the server ever called accept(): the kernel \
             completed the handshake and queued the connection. Its bytes were acknowledged and \
             stored in the receive buffer, all of them, ready the moment the server woke. The \
             sleep delayed the server's answer, not the client's delivery.",
        )
    } else {
        n.warn("this run did not show every byte waiting when the server woke")
    }
}

fn design_run(run: &DesignRun, n: &mut Narrator) -> Result {
    for (number, client) in run.clients.iter().enumerate() {
        n.fact(
            &format!("{}: client {}", run.design.describe(), number + 1),
            format!(
                "request at {}, reply at {}, waited {}",
                micros(client.sent_at_us),
                micros(client.replied_at_us),
                micros(client.waited_us)
            ),
        )?;
    }
    Ok(())
}

/// Experiment 5: the second client's wait, single-threaded versus thread per client.
pub fn sleeping_server(report: &SleepingServerReport, n: &mut Narrator) -> Result {
    n.section("5. A sleeping single-threaded server makes every client wait")?;
    n.say(&format!(
        "Two servers run the same handler: read a request, sleep {}, reply. Two clients send \
         their requests back to back.",
        micros(report.server_sleep_us)
    ))?;
    design_run(&report.single_threaded, n)?;
    design_run(&report.thread_per_client, n)?;
    let single = report.single_threaded_second_client_waited_us;
    let threaded = report.thread_per_client_second_client_waited_us;
    n.fact(
        "second client's wait",
        format!(
            "{} single-threaded vs {} thread per client",
            micros(single),
            micros(threaded)
        ),
    )?;
    let two_sleeps = report.server_sleep_us.saturating_mul(2);
    let serialized = report.single_threaded.second_reply_after_first_request_us();
    n.fact(
        "single-threaded",
        format!(
            "client 2's reply came {} after client 1's request (two sleeps: {})",
            micros(serialized),
            micros(two_sleeps)
        ),
    )?;
    if single >= report.server_sleep_us && serialized >= two_sleeps && threaded < single {
        n.say(
            "With one thread, the server slept for client 1 while client 2's request waited in \
             the kernel; only then did it read client 2's request and sleep again, so client 2 \
             paid for both sleeps. With a thread per client the two sleeps overlapped and client \
             2 waited less. A sleep in a single-threaded server is paid by every client queued \
             behind it.",
        )
    } else {
        n.warn("this run did not show the single-threaded server delaying its second client")
    }
}

/// Experiment 6: pacing with sleep, receiving with a blocking call.
pub fn pacing(report: &PacingReport, n: &mut Narrator) -> Result {
    n.section("6. What sleep is for, and what it is not for")?;
    n.say(&format!(
        "For pacing: a sender sleeps {} between {} UDP datagrams. Not for waiting: the receiver \
         does not sleep-and-check, it blocks in recv() and the kernel wakes it when a datagram \
         arrives.",
        micros(report.interval_us),
        report.messages.len()
    ))?;
    for (number, message) in report.messages.iter().enumerate() {
        let gap = message.gap_since_previous_send_us.map_or_else(
            || "first".to_string(),
            |gap| format!("{} after the previous", micros(gap)),
        );
        n.fact(
            &format!("datagram {}", number + 1),
            format!("sent {gap}, received {} later", micros(message.delivery_us)),
        )?;
    }
    n.fact("shortest gap between sends", micros(report.min_send_gap_us))?;
    n.fact(
        "median send-to-recv delay",
        micros(report.median_delivery_us),
    )?;
    n.say(
        "Sleep is the right tool when the delay is the goal: pacing, and backoff between \
         retries (lab 1's retry loop, connect_with_retries in crates/lab-refused/src/retry.rs, sleeps longer after each refused connect). To wait for \
         data, a connection or a server, use the call that waits for the event (a blocking \
         recv/accept/connect with a timeout, or readiness with poll), as this workspace's own \
         tests do: a sleep there is a guess, too short (check again) or too long (the data \
         waits for you).",
    )
}

fn traced_sleep(run: &TracedSleep, n: &mut Narrator) -> Result {
    let what = format!(
        "{}, {} ({})",
        run.language.name(),
        run.code,
        lab_kit::narrate::human_micros(run.requested_us)
    );
    if let Some(why) = &run.skipped_reason {
        return n.skipped(&what, why);
    }
    n.say(&format!("  {what}:"))?;
    if run.sleep_lines.is_empty() {
        n.evidence("(no sleep system call at all)")?;
    }
    for line in &run.sleep_lines {
        n.evidence(line)?;
    }
    if !run.program_succeeded {
        n.warn("the traced program did not exit successfully")?;
    }
    Ok(())
}

/// Experiment 7: strace's view of both languages' sleep.
pub fn syscall(report: &SyscallReport, n: &mut Narrator) -> Result {
    n.section("7. The same system call underneath")?;
    n.say(&format!(
        "Each program runs under strace -f -e {}; these are the lines it recorded.",
        report.strace_expression
    ))?;
    for run in &report.runs {
        traced_sleep(run, n)?;
    }
    let ten_ms = |language| {
        report
            .runs
            .iter()
            .find(|r| r.language == language && r.requested_us > 0 && !r.sleep_lines.is_empty())
    };
    if let (Some(rust), Some(python)) = (ten_ms(Language::Rust), ten_ms(Language::Python)) {
        let names = |run: &TracedSleep| run.syscall_names().join(", ");
        n.fact("Rust's sleep became", names(rust))?;
        n.fact("Python's sleep became", names(python))?;
        for run in [rust, python] {
            if let (Some(clock), Some(absolute)) = (&run.clock, run.absolute_deadline) {
                let how = if absolute {
                    "until a deadline (TIMER_ABSTIME), so a sleep interrupted by a signal can resume to the same deadline"
                } else {
                    "for a relative duration"
                };
                n.fact(
                    &format!("{} sleeps on", run.language.name()),
                    format!("{clock}, {how}"),
                )?;
            }
        }
        n.say(
            "Neither language can pause a thread by itself: both ask the kernel for the same \
             service, take this thread off the CPU until a clock passes a time. The libraries \
             differ only above the kernel, in how they phrase the request. This is Python \
             3.11 or later on Linux; Python 3.10 slept in select(), and on Windows 3.11+ uses a \
             high-resolution waitable timer (from sources: What's New in Python 3.11, docs/03).",
        )?;
    }
    let zero = |language| report.run(language, 0).filter(|r| r.outcome == "traced");
    if zero(Language::Rust).is_some_and(|run| run.sleep_lines.is_empty()) {
        n.say("Rust's sleep of zero returned without any system call: nothing to wait for.")?;
    }
    if zero(Language::Python).is_some_and(|run| !run.sleep_lines.is_empty()) {
        n.say("Python's time.sleep(0) still asked the kernel, with a deadline already passed.")?;
    }
    Ok(())
}
