//! The chat client's checks: the grader is the server (the real one, or an impostor), the
//! student's program the client.
//!
//! The impostor checks are the heart of it. A TLS client that does not verify the server
//! is encrypted, but to whom? The grader runs two impostors: one whose certificate for
//! `localhost` comes from a CA the client was never told to trust, and one with a genuine
//! lab-signed certificate for another name. A correct client aborts both handshakes. A
//! client that accepts either is shown what it would have leaked: the impostor sends a
//! line, the grader types a "password" at the client, and both are looked for.

use std::time::Instant;

use lab_kit::child::Stream;

use crate::advice::Remedy;
use crate::chat_checks;
use crate::program;
use crate::report::{Status, Verdict};
use crate::scene::{Run, Scene, SceneProblem, in_lane, join_lanes, wait_shown};
use crate::wire::{Ending, GraderConn, HandshakeFailure, Waited};

/// Runs every chat-client check.
///
/// A client connects once per run, so each impostor needs a run of its own, and so does the
/// client that finds no server: those three run in lanes alongside the shared run with the
/// real server (see [`Run::lane`]), four starts in all.
pub fn grade(run: &Run<'_>) -> Vec<Verdict> {
    let secure = !run.options.plaintext;
    std::thread::scope(|scope| {
        let impostors = secure.then(|| {
            [
                in_lane(scope, run, "refuses_untrusted", |lane| {
                    impostor(lane, "refuses_untrusted", Impostor::UntrustedCa)
                }),
                in_lane(scope, run, "refuses_wrong_name", |lane| {
                    impostor(lane, "refuses_wrong_name", Impostor::WrongName)
                }),
            ]
        });
        let no_server = in_lane(scope, run, "no_server_message", no_server_message);
        let mut verdicts = shared_run(run, secure);
        if !secure {
            verdicts.push(run.tls_not_used("refuses_untrusted"));
            verdicts.push(run.tls_not_used("refuses_wrong_name"));
        }
        join_lanes(
            &mut verdicts,
            impostors.into_iter().flatten().chain([no_server]),
        );
        verdicts
    })
}

/// The run with the real server, shared by every check up to `Exit`.
fn shared_run(run: &Run<'_>, secure: bool) -> Vec<Verdict> {
    // The checks shared with the chat server (crate::chat_checks), worded for a client.
    let role = &chat_checks::CLIENT;
    let real_server = || secure.then(|| run.tls.server.clone());
    let mut verdicts = Vec::new();
    let started = Instant::now();
    // It connects, completes the handshake, and lines go both ways.
    let mut scene = match run.open_client(real_server()) {
        Ok(scene) => scene,
        Err(failure) => {
            let blocked = "Not run: the client never completed its connection to the real server (see above).";
            if let SceneProblem::Handshake(handshake) = &failure.reason {
                verdicts.push(connects_passed(started));
                let mut failed = Verdict::failed(
                    "tls_handshake",
                    format!(
                        "The TLS handshake with the real server failed: {}.",
                        handshake.describe()
                    ),
                )
                .say(client_handshake_advice(run, handshake));
                if let Some(mut child) = failure.child {
                    run.settle_then_stop(&mut child);
                    failed = run.with_output(failed, &mut child);
                }
                verdicts.push(failed);
            } else {
                let mut failed = run.scene_failed("connects", failure);
                failed.elapsed = started.elapsed();
                verdicts.push(failed);
                verdicts.push(Verdict::failed("tls_handshake", blocked));
            }
            // Everything up to the impostors needs the real server's session.
            for id in crate::rubric::ids_between(
                crate::rubric::CHAT_CLIENT,
                "tls_handshake",
                "refuses_untrusted",
            ) {
                verdicts.push(Verdict::failed(id, blocked));
            }
            return verdicts;
        }
    };
    verdicts.push(connects_passed(started));
    verdicts.push(match &scene.facts {
        Some(facts) => Verdict::passed(
            "tls_handshake",
            format!(
                "The TLS handshake succeeded ({}), with the grader presenting the lab's certificate for localhost.",
                facts.protocol
            ),
        )
        .saw(format!("negotiated {} with {}", facts.protocol, facts.cipher_suite)),
        None => run.tls_not_used("tls_handshake"),
    });
    let typed = chat_checks::typed_line_sent(run, &mut scene, role);
    let shown = chat_checks::line_shown(run, &mut scene, role);
    let mut shared = None;
    let last = if typed.status == Status::Passed {
        &shown
    } else {
        &typed
    };
    run.keep_if_sound(&mut shared, scene, last);
    verdicts.extend([typed, shown]);

    let open = |run: &Run<'_>| run.open_client(real_server());
    verdicts.extend(chat_checks::in_shared_run(run, &mut shared, open, role));
    // Exit ends the client: the last check of the shared run.
    verdicts.push(run.shared_scene("exit_clean", &mut shared, open, exit_clean));
    run.end_shared(&mut shared);
    verdicts
}

/// The first check, passed: the program connected to the grader's server on its port
/// within the deadline (timed from `started`).
fn connects_passed(started: Instant) -> Verdict {
    let mut connects = Verdict::passed(
        "connects",
        "The client connected to the grader's server on the port it was given.",
    );
    connects.elapsed = started.elapsed();
    connects
}

fn client_handshake_advice(run: &Run<'_>, failure: &HandshakeFailure) -> String {
    match failure {
        HandshakeFailure::TimedOut => format!("The client connected but never sent a TLS ClientHello: it speaks plaintext. {}", run.remedy(Remedy::TlsClient)),
        HandshakeFailure::Tls(error) if error.contains("alert") || error.contains("Alert") => "The client aborted the handshake with the real server: it did not trust the lab's certificate. Load the CA file it is given ({ca}, or LAB_CA) and connect with server_hostname='localhost'.".into(),
        _ => "The client closed the connection during the handshake. Load the CA file it is given ({ca}, or LAB_CA) and connect with server_hostname='localhost'.".into(),
    }
}

fn exit_clean(run: &Run<'_>, scene: &mut Scene) -> Verdict {
    let id = "exit_clean";
    let _ = scene.child.write_stdin("Exit\n");
    // Read while waiting: the grader answers the client's close_notify with its own.
    let ending = scene.conn.wait_for_end(run.step_deadline());
    let status = program::wait_exit(&mut scene.child, run.options.deadlines.step);
    let health = run.health(&mut scene.child);
    match status {
        Some(status) if status.success() && health.crash.is_none() => {
            let mut verdict = Verdict::passed(
                id,
                "After Exit was typed, the client ended with exit code 0.",
            );
            verdict = verdict.saw(match &ending {
                Some(ending) => format!("the grader saw: {}", ending.describe()),
                None => "the grader's connection stayed open".into(),
            });
            if scene.facts.is_some() && ending == Some(Ending::Truncated) {
                verdict = verdict.say(run.remedy(Remedy::CloseNotify));
            }
            verdict
        }
        Some(status) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "After Exit was typed, the client ended with {} instead of a clean exit (code 0, no traceback).",
                    lab_kit::child::describe_status(status)
                ),
            ),
            &mut scene.child,
        ),
        None => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "After Exit was typed, the client was still running {} ms later. The homework says Exit ends the chat: close the connection and exit.",
                    run.options.deadlines.step.as_millis()
                ),
            ),
            &mut scene.child,
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impostor {
    UntrustedCa,
    WrongName,
}

fn impostor(run: &Run<'_>, id: &'static str, kind: Impostor) -> Verdict {
    let (config, who) = match kind {
        Impostor::UntrustedCa => (
            run.tls.untrusted.clone(),
            "an impostor server presenting a certificate for localhost signed by a CA the client was not told to trust",
        ),
        Impostor::WrongName => (
            run.tls.wrong_name.clone(),
            "an impostor server presenting a certificate signed by the lab CA, but for the name impostor.invalid instead of localhost",
        ),
    };
    let started = Instant::now();
    // The connection stays plain TCP until here: the handshake is the test.
    let Scene {
        mut child, conn, ..
    } = match run.open_client(None) {
        Ok(scene) => scene,
        Err(failure) => return run.scene_failed(id, failure),
    };
    let mut verdict = match GraderConn::tls_server(conn.into_tcp(), config, run.step_deadline()) {
        Err(HandshakeFailure::TimedOut) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "The client connected to {who}, but no TLS handshake came within {} ms.",
                    run.options.deadlines.step.as_millis()
                ),
            ),
            &mut child,
        ),
        Err(failure) => {
            let health = run.settle(&mut child);
            let mut verdict = Verdict::passed(
                id,
                format!(
                    "The client was connected to {who}, and it refused: it aborted the handshake."
                ),
            )
            .saw(format!("the impostor saw: {}", failure.describe()));
            if let Some(crash) = &health.crash {
                verdict = verdict
                    .saw(format!("the client printed a traceback: {crash}"))
                    .say(run.remedy(Remedy::ReportVerifyFailure));
            } else if let Some(message) = program::tail(&child, Stream::Stderr, 1)
                .pop()
                .or_else(|| program::tail(&child, Stream::Stdout, 1).pop())
            {
                verdict = verdict.saw(format!("the client said: {message}"));
            }
            verdict
        }
        Ok((mut conn, facts)) => {
            // It trusted the impostor. Show what that costs.
            let strawberry = crate::wire::tokened("strawberry");
            let tangerine = crate::wire::tokened("tangerine");
            let _ = conn.send(format!("impostor says: trust me: {strawberry}\n").as_bytes());
            let _ = child.write_stdin(&format!("my password is {tangerine}\n"));
            let leaked = conn.wait_for_text(&tangerine, run.step_deadline()) == Waited::Arrived;
            let believed = wait_shown(&child, &strawberry, run.step_deadline());
            let mut verdict = Verdict::failed(
                id,
                format!("The client completed a TLS handshake ({}) with {who}: it would talk to anyone who intercepts the connection.", facts.protocol),
            )
            .say(run.remedy(match kind {
                Impostor::UntrustedCa => Remedy::VerifyChain,
                Impostor::WrongName => Remedy::VerifyName,
            }));
            if leaked {
                verdict = verdict.saw(format!(
                    "the impostor received what the user typed: \"my password is {tangerine}\""
                ));
            }
            if let Some(printed) = believed {
                verdict = verdict.saw(format!(
                    "the client showed the impostor's line: {printed:?}"
                ));
            }
            verdict
        }
    };
    run.stop(&mut child);
    verdict.elapsed = started.elapsed();
    verdict
}

fn no_server_message(run: &Run<'_>) -> Verdict {
    let id = "no_server_message";
    let started = Instant::now();
    let port = match program::free_port() {
        Ok(port) => port,
        Err(e) => return Verdict::failed(id, format!("The grader could not set up: {e}.")),
    };
    let mut child = match run.start_program(port, false) {
        Ok(child) => child,
        Err(e) => return Verdict::failed(id, format!("The program could not be started: {e}.")),
    };
    // Starting is part of it (a JVM, a build in run.sh): the client gets the time a program
    // may take to start and connect, not one step, to find the port closed and say so.
    let status = program::wait_exit(&mut child, run.options.deadlines.start);
    let health = run.health(&mut child);
    let message = program::tail(&child, Stream::Stderr, 1)
        .pop()
        .or_else(|| program::tail(&child, Stream::Stdout, 1).pop());
    let mut verdict = match (status, &health.crash, &message) {
        (None, _, _) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "With no server on its port, the client was still running {} ms after it was started. Connecting to a closed port fails at once (ECONNREFUSED): report it and exit.",
                    run.options.deadlines.start.as_millis()
                ),
            ),
            &mut child,
        ),
        (Some(_), Some(crash), _) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "With no server on its port, the client crashed with a raw traceback ({crash}) instead of a clear message."
                ),
            ),
            &mut child,
        ),
        (Some(status), None, None) => Verdict::failed(
            id,
            format!(
                "With no server on its port, the client ended ({}) without a word. Say what happened: \"could not connect to 127.0.0.1:PORT: connection refused; is the server running?\"",
                lab_kit::child::describe_status(status)
            ),
        ),
        (Some(status), None, Some(message)) => {
            let mut verdict = Verdict::passed(
                id,
                "With no server on its port, the client said so in its own words and ended.",
            )
            .saw(format!("the client said: {message}"))
            .saw(format!(
                "it ended: {}",
                lab_kit::child::describe_status(status)
            ));
            if status.success() {
                verdict = verdict.say("It ended with exit code 0: a failure is better reported with a non-zero exit code, so that scripts notice.");
            }
            verdict
        }
    };
    run.stop(&mut child);
    verdict.elapsed = started.elapsed();
    verdict
}
