//! The narration of lab 1: turns each experiment's report into text for a classroom.
//!
//! Nothing here measures anything; every number printed comes from a report struct made
//! by an experiment. In `--json` mode the reports themselves are printed instead.

use std::io;

use lab_kit::narrate::Narrator;
use lab_kit::strace::StraceError;

use crate::backlog::BacklogReport;
use crate::host_down::{HostDownError, HostDownReport};
use crate::kernel_view::StraceReport;
use crate::refused::RefusedReport;
use crate::retry::{RetryPolicy, RetryReport};
use crate::udp::UdpReport;
use lab_kit::attempt::Outcome;
use lab_kit::narrate::human_duration as human;

/// `0 times`, `1 time`, `2 times`.
fn times(n: u32) -> String {
    if n == 1 {
        "1 time".to_string()
    } else {
        format!("{n} times")
    }
}

/// Prints experiment 1.
pub fn refused(report: &RefusedReport, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("1. Refused: connect to a port where nothing listens")?;
    n.say(&format!(
        "A client calls connect() to {}. Nothing listens on that port.",
        report.target
    ))?;
    n.fact("connect() returned", report.attempt.result_text())?;
    n.fact("elapsed", human(report.attempt.elapsed()))?;
    match (&report.counters, &report.counters_unavailable) {
        (Some(delta), _) => {
            n.say("The kernel's own TCP counters (/proc/net/snmp) across that one call:")?;
            n.fact(
                "Tcp ActiveOpens",
                format!(
                    "+{}  (a connection attempt was started)",
                    delta.active_opens
                ),
            )?;
            n.fact(
                "Tcp AttemptFails",
                format!("+{}  (…and it failed)", delta.attempt_fails),
            )?;
            n.fact(
                "Tcp OutRsts",
                format!(
                    "+{}  (a reset was sent in answer to the SYN)",
                    delta.out_rsts
                ),
            )?;
        }
        (None, Some(why)) => n.skipped("kernel counters", why)?,
        (None, None) => {}
    }
    if let Some(resent) = report.resent_segments {
        n.fact(
            "SYN sent again",
            format!("{}  (this socket's TCP_INFO)", times(resent)),
        )?;
    }
    match report.attempt.outcome {
        Outcome::Refused => n.say(
            "The server's kernel answered the SYN with a reset at once, so the call failed at \
             once, and the kernel did not send the SYN again. What happens next is the \
             program's decision: in Rust `?` returns the error, in Python an uncaught \
             ConnectionRefusedError ends the program with a traceback. That is Linux (and \
             macOS, errno 61); Windows sends the SYN again after a reset and fails only after \
             about 2 seconds, with WinError 10061 (from sources: docs/01, \"On your machine\").",
        ),
        _ => n.warn(
            "this attempt was not refused: another program may have taken the port; run it again",
        ),
    }
}

/// Prints experiment 2.
pub fn retry(report: &RetryReport, policy: &RetryPolicy, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("2. Retrying is the program's job")?;
    n.say(&format!(
        "A server thread starts listening on {} a little later. The client runs a loop that \
         we wrote: connect; if refused, pause ({} at first, doubling, at most {}), try again; \
         at most {} attempts.",
        report.target,
        human(policy.first_pause),
        human(policy.max_pause),
        policy.max_attempts
    ))?;
    for attempt in &report.attempts {
        n.fact(
            &format!(
                "attempt {} at {}",
                attempt.number,
                human(std::time::Duration::from_micros(attempt.started_after_us))
            ),
            format!(
                "{} in {}",
                attempt.attempt.result_text(),
                human(attempt.attempt.elapsed())
            ),
        )?;
    }
    if let Some(at) = report.server_listening_after_us {
        n.fact(
            "server listening after",
            human(std::time::Duration::from_micros(at)),
        )?;
    }
    match report.outcome {
        Outcome::Connected => n.say(&format!(
            "Connected after {} refused attempts. Each retry above was made by our loop \
             (retry.rs, connect_with_retries); without it, the first refusal would have been \
             the end. This is the behaviour many students expect from the system: here it \
             exists only when someone writes it. (Windows resends the SYN for about 2 seconds \
             after a refusal, then gives up too: it does not wait until a server appears either.)",
            report.refused_attempts()
        )),
        _ => n.warn("the loop gave up before the server appeared: the machine may be very busy; run it again"),
    }
}

/// Prints experiment 3.
pub fn backlog(report: &BacklogReport, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("3. Refused is not the only failure: a full accept queue answers nothing")?;
    n.say(&format!(
        "A server listens on {} with backlog {} and never calls accept(). Its accept queue \
         already holds {} that completed the handshake: the queue is full. A new client \
         connects, willing to wait {}.",
        report.target,
        report.backlog,
        match report.queued_connections {
            1 => "1 connection".to_string(),
            n => format!("{n} connections"),
        },
        human(std::time::Duration::from_micros(report.deadline_us))
    ))?;
    n.fact("connect() returned", report.attempt.result_text())?;
    n.fact("elapsed", human(report.attempt.elapsed()))?;
    if let Some(delta) = &report.listen_queue {
        n.fact(
            "TcpExt ListenOverflows",
            format!(
                "+{}  (SYNs that found the queue full)",
                delta.listen_overflows
            ),
        )?;
        n.fact(
            "TcpExt ListenDrops",
            format!("+{}  (…and were dropped, unanswered)", delta.listen_drops),
        )?;
    }
    if let Some(resent) = report.resent_segments {
        n.fact(
            "SYN sent again",
            format!("{}  (this socket's TCP_INFO)", times(resent)),
        )?;
    }
    if let Some(retrans) = report.retrans_segs {
        n.fact(
            "Tcp RetransSegs",
            format!("+{retrans}  (segments resent, by every program on this machine)"),
        )?;
    }
    if !report.resent_at_us.is_empty() {
        let at: Vec<String> = report
            .resent_at_us
            .iter()
            .map(|&us| human(std::time::Duration::from_micros(us)))
            .collect();
        n.fact(
            "SYN sent again at",
            format!("{}  (after the first SYN)", at.join(", ")),
        )?;
    }
    if let Some(retries) = report.syn_retries {
        let linear = match report.syn_linear_timeouts {
            Some(linear) => format!(", tcp_syn_linear_timeouts = {linear}"),
            None => String::new(),
        };
        n.fact(
            "this kernel's settings",
            format!("tcp_syn_retries = {retries}{linear}"),
        )?;
    }
    if !report.timed_out_at_deadline() {
        return n.warn("this attempt did not time out at its deadline; see the result above");
    }
    let deadline = std::time::Duration::from_micros(report.deadline_us);
    if report.resent_segments == Some(0) && deadline < crate::retransmissions::FIRST_SYN_TIMEOUT {
        n.say(
            "Our deadline ended the wait before the first resend, due 1 second after \
             the first SYN: run `lab-refused backlog --deadline-ms 2500` to see it.",
        )?;
    }
    // With no resend counted (a deadline under 1 s), say what the kernel would have done.
    let the_clients_kernel = if report.resent_segments == Some(0) {
        "and our client's kernel would have sent it again 1 second after the first SYN, \
         inside the same connect() call, had our deadline not ended the wait first."
    } else {
        "and our client's kernel sent it again, first 1 second after the first SYN, all \
         inside one connect() call, until our deadline ended the wait."
    };
    n.say(&format!(
        "No reset came back: the server's kernel dropped each SYN, hoping room would soon be \
         made, {the_clients_kernel} Linux 6.5 and later \
         keep resending every second for the first few resends (tcp_syn_linear_timeouts), \
         then double the wait; older kernels doubled from the start: 1, 3, 7, 15 … seconds. TimedOut has no errno here: it is \
         our own deadline, not an answer (without one, Linux gives up with ETIMEDOUT, errno \
         110). A firewall that drops packets looks like this. Not all silence does: a host \
         that is down on the client's own network fails differently (experiment 6); and \
         Windows answers a full accept queue with a reset, so there it is refused (from \
         sources: docs/01, \"On your machine\")."
    ))
}

/// Prints experiment 4.
pub fn udp(report: &UdpReport, n: &mut Narrator) -> io::Result<()> {
    n.record(report)?;
    n.section("4. UDP has no connection to refuse")?;
    n.say(&format!(
        "A connected UDP socket sends one datagram to {}, where nothing is bound, then calls recv().",
        report.target
    ))?;
    match (&report.sent_bytes, &report.send_error) {
        (Some(bytes), _) => n.fact("send()", format!("succeeded: {bytes} bytes left"))?,
        (None, Some(error)) => n.fact("send()", error.summary())?,
        (None, None) => {}
    }
    n.fact(
        "the next recv()",
        format!(
            "{} after {}",
            report.recv.result_text(),
            human(report.recv.elapsed())
        ),
    )?;
    if report.refused_on_recv() {
        n.say(
            "There is no handshake in UDP, so send() cannot be refused: it succeeded. The \
             other kernel answered the datagram with an ICMP \"port unreachable\" message, and \
             Linux reported it on the next call on this connected socket: recv() says \
             ConnectionRefused. Late, on another call, and only because we asked. (Windows \
             reports it as WinError 10054, ConnectionResetError, even on an unconnected \
             socket's recvfrom; from sources: docs/01, \"On your machine\".)",
        )
    } else {
        n.warn("recv() did not report the refusal; on this system the ICMP answer may be filtered")
    }
}

/// Prints experiment 5, or says why it could not run.
pub fn strace(result: &Result<StraceReport, StraceError>, n: &mut Narrator) -> io::Result<()> {
    n.section("5. The kernel's view: the system calls, as strace records them")?;
    let report = match result {
        Ok(report) => report,
        Err(StraceError::Unavailable(why)) => {
            n.record(&serde_json::json!({"experiment": "strace", "skipped": why.to_string()}))?;
            return n.skipped("strace", &why.to_string());
        }
        Err(other) => {
            n.record(&serde_json::json!({"experiment": "strace", "error": other.to_string()}))?;
            return n.warn(&format!("strace could not record the probe: {other}"));
        }
    };
    n.record(report)?;
    n.say(&format!(
        "The same refused connect to {}, run in a child process under `strace -e trace=network`:",
        report.target
    ))?;
    for line in &report.syscalls {
        n.evidence(lab_kit::strace::without_pid(line))?;
    }
    n.fact("connect() calls", report.connect_calls)?;
    if report.refused_line.is_some() && report.connect_calls == 1 {
        n.say(
            "One connect() system call, answered with ECONNREFUSED: no second call, so the \
             program did not retry. strace shows system calls, never packets: a SYN the \
             kernel sends again happens inside one connect() and cannot appear here \
             (experiment 3's connect() resent its SYN and was still one call). The evidence \
             that the kernel did not resend is its own count, TCP_INFO in experiment 1.",
        )
    } else {
        n.warn("strace did not show exactly one refused connect(); see the lines above")
    }
}

/// Prints experiment 6, or says why it could not run.
pub fn host_down(
    result: &Result<HostDownReport, HostDownError>,
    n: &mut Narrator,
) -> io::Result<()> {
    n.section("6. A host that is down, on the client's own network: nobody answers ARP")?;
    let report = match result {
        Ok(report) => report,
        Err(HostDownError::Unavailable(why)) => {
            n.record(&serde_json::json!({"experiment": "host_down", "skipped": why}))?;
            return n.skipped("the host-down experiment", why);
        }
        Err(other) => {
            n.record(&serde_json::json!({"experiment": "host_down", "error": other.to_string()}))?;
            return n.warn(&other.to_string());
        }
    };
    n.record(report)?;
    n.say(&format!(
        "In a network namespace of its own, a client at {} connects to {}: an address on \
         its own link that nobody has. It is willing to wait {}.",
        crate::host_down::CLIENT,
        report.target,
        human(std::time::Duration::from_micros(report.deadline_us))
    ))?;
    n.fact("connect() returned", report.attempt.result_text())?;
    n.fact("elapsed", human(report.attempt.elapsed()))?;
    if let (Some(questions), Some(wait)) = (report.arp_questions, report.arp_wait_ms) {
        n.fact(
            "ARP asked",
            format!(
                "{questions} times, {wait} ms apart, then gave up  (mcast_solicit, retrans_time_ms)"
            ),
        )?;
    }
    if report.attempt.errno == Some(libc::EHOSTUNREACH) {
        n.say(
            "Neither a refusal nor our deadline: before sending a SYN to a machine on its own \
             link, the client's kernel asks the link who has that address (ARP). Nobody \
             answered, so the kernel gave up and reported the host unreachable: \
             EHOSTUNREACH, \"No route to host\" (in Python a plain OSError, errno 113). Behind \
             a router the ARP question is the router's, the client hears nothing, and it is \
             a timeout, as in experiment 3.",
        )
    } else {
        n.warn("this attempt did not end with EHOSTUNREACH; see the result above")
    }
}
