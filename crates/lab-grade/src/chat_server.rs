//! The chat server's checks: the grader is the client, the student's program the server.
//!
//! As a TA would, the grader starts the server three times. The first run answers the
//! basic questions (does it listen, does TLS work, do lines go both ways) and then full
//! duplex and framing in the same session, ending with the client's `Exit`; a check that
//! fails there hands the next a fresh copy (see [`Run::shared_scene`]), so a server stuck in
//! `input()` after one check cannot fail the next for the wrong reason. A vanishing client
//! and a plaintext client each get a server of their own, in lanes that run alongside the
//! first (see [`Run::lane`]): a server that dies of either cannot spoil anything else.

use lab_kit::child::Stream;

use crate::advice::Remedy;
use crate::chat_checks;
use crate::report::{Status, Verdict};
use crate::scene::{Run, Scene, SceneProblem, in_lane, join_lanes, line_with, wait_shown};
use crate::wire::{Ending, HandshakeFailure, tokened};

/// Runs every chat-server check.
pub fn grade(run: &Run<'_>) -> Vec<Verdict> {
    let secure = !run.options.plaintext;
    std::thread::scope(|scope| {
        let lanes = [
            Some(in_lane(scope, run, "abrupt_disconnect", move |lane| {
                abrupt_disconnect(lane, secure)
            })),
            secure.then(|| in_lane(scope, run, "plaintext_refused", plaintext_refused)),
        ];
        let mut verdicts = shared_run(run, secure);
        join_lanes(&mut verdicts, lanes.into_iter().flatten());
        verdicts
    })
}

/// The first run of the server, shared by every check up to `Exit`. When it shows that a
/// lane's check cannot mean anything (the server never listened, no TLS session), it gives
/// that check's verdict itself, which then wins over the lane's.
fn shared_run(run: &Run<'_>, secure: bool) -> Vec<Verdict> {
    // The checks shared with the chat client (crate::chat_checks), worded for a server.
    let role = &chat_checks::SERVER;
    let mut verdicts = Vec::new();
    let started = std::time::Instant::now();
    // Listening, handshake, TLS version, one line each way.
    let mut scene = match run.open_server(secure) {
        Ok(scene) => scene,
        Err(failure) => {
            let SceneProblem::Handshake(handshake) = &failure.reason else {
                return run.never_listening(failure, started, crate::rubric::CHAT_SERVER);
            };
            verdicts.push(run.listening_passed(started));
            let mut failed = Verdict::failed(
                "tls_handshake",
                format!("The TLS handshake failed: {}.", handshake.describe()),
            )
            .say(handshake_advice(run, handshake));
            let version = version_after_failure(handshake);
            if let Some(mut child) = failure.child {
                run.settle_then_stop(&mut child);
                failed = run.with_output(failed, &mut child);
            }
            verdicts.push(failed);
            verdicts.push(version);
            // Everything up to the plaintext client needs a TLS session.
            for id in crate::rubric::ids_between(
                crate::rubric::CHAT_SERVER,
                "tls_version",
                "plaintext_refused",
            ) {
                verdicts.push(Verdict::failed(
                    id,
                    "Not run: it needs a TLS session, and the handshake failed (see above).",
                ));
            }
            return verdicts;
        }
    };
    verdicts.push(run.listening_passed(started));
    match &scene.facts {
        Some(facts) => {
            verdicts.push(
                Verdict::passed(
                    "tls_handshake",
                    "The TLS handshake succeeded: the server presented the lab's certificate for localhost, which the grader verified against the lab CA.",
                )
                .saw(format!(
                    "negotiated {} with {}",
                    facts.protocol, facts.cipher_suite
                )),
            );
            verdicts.push(
                Verdict::passed(
                    "tls_version",
                    format!("The session uses {}.", facts.protocol),
                )
                .saw(format!("protocol: {}", facts.protocol)),
            );
        }
        None => {
            verdicts.push(run.tls_not_used("tls_handshake"));
            verdicts.push(run.tls_not_used("tls_version"));
        }
    }
    let shown = chat_checks::line_shown(run, &mut scene, role);
    let typed = chat_checks::typed_line_sent(run, &mut scene, role);
    let mut shared = None;
    let last = if shown.status == Status::Passed {
        &typed
    } else {
        &shown
    };
    run.keep_if_sound(&mut shared, scene, last);
    verdicts.extend([shown, typed]);

    let open = |run: &Run<'_>| run.open_server(secure);
    verdicts.extend(chat_checks::in_shared_run(run, &mut shared, open, role));
    // Exit ends the session: the last check of the shared run.
    verdicts.push(run.shared_scene("exit_handled", &mut shared, open, exit_handled));
    run.end_shared(&mut shared);
    if !secure {
        verdicts.push(run.tls_not_used("plaintext_refused"));
    }
    verdicts
}

/// What to tell a student whose server failed the handshake.
fn handshake_advice(run: &Run<'_>, failure: &HandshakeFailure) -> String {
    match failure {
        HandshakeFailure::TimedOut => format!("The server never answered the grader's TLS ClientHello. If it speaks plaintext, it is waiting for a line that never comes: {}, or grade it with --plaintext.", run.remedy(Remedy::TlsServer)),
        HandshakeFailure::PeerClosed => "The server closed the connection instead of answering the TLS ClientHello. A plaintext server does that when it takes the ClientHello's binary bytes for a message (and a UnicodeDecodeError in its output is that ClientHello): wrap the accepted socket with TLS, or grade it with --plaintext. A TLS server does it when it cannot load the certificate and key it is given ({cert} and {key}, or LAB_CERT and LAB_KEY).".into(),
        HandshakeFailure::Tls(error) if error.contains("certificate") || error.contains("Certificate") => "The grader did not accept the server's certificate: present the certificate the grader gives ({cert}, signed by the lab CA, for localhost), not one of your own.".into(),
        HandshakeFailure::Tls(error) if error.contains("ProtocolVersion") || error.contains("PeerIncompatible") => "The server only offered TLS versions older than 1.2, which are no longer considered safe: use ssl.PROTOCOL_TLS_SERVER and do not lower minimum_version.".into(),
        HandshakeFailure::Tls(_) | HandshakeFailure::Io(_) => "Check that the server wraps the accepted socket with TLS (server_side=True) using the certificate and key it is given.".into(),
    }
}

fn version_after_failure(failure: &HandshakeFailure) -> Verdict {
    match failure {
        HandshakeFailure::Tls(error)
            if error.contains("ProtocolVersion") || error.contains("PeerIncompatible") =>
        {
            Verdict::failed(
                "tls_version",
                "The server offered no TLS version the grader accepts (1.2 or 1.3).",
            )
            .saw(error.clone())
        }
        _ => Verdict::failed(
            "tls_version",
            "Not known: no TLS session was established (see the handshake check).",
        ),
    }
}

fn exit_handled(run: &Run<'_>, scene: &mut Scene) -> Verdict {
    let id = "exit_handled";
    let _ = scene.conn.send(b"Exit\n");
    let ending = scene.conn.wait_for_end(run.step_deadline());
    let health = run.settle(&mut scene.child);
    let ended_words = ending.as_ref().map(Ending::describe);
    match ending {
        Some(Ending::Closed | Ending::Truncated) if health.is_healthy() => {
            let mut verdict = Verdict::passed(
                id,
                "After the client sent Exit, the server ended the session without crashing.",
            )
            .saw(ended_words.unwrap_or_default());
            if let Some(status) = health.exited {
                verdict = verdict.saw(format!("the server then ended: {status}"));
            }
            if scene.facts.is_some() && ending_is_truncated(&scene.conn) {
                verdict = verdict.say(run.remedy(Remedy::CloseNotify));
            }
            verdict
        }
        Some(_) | None if !health.is_healthy() => run.with_output(
            Verdict::failed(id, "After the client sent Exit, the server crashed."),
            &mut scene.child,
        ),
        Some(other) => run.with_output(
            Verdict::failed(
                id,
                format!("After the client sent Exit, {}.", other.describe()),
            ),
            &mut scene.child,
        ),
        None => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "After the client sent Exit, the server kept the connection open for {} ms. The homework says Exit ends the chat: when the peer sends Exit, close the connection.",
                    run.options.deadlines.step.as_millis()
                ),
            ),
            &mut scene.child,
        ),
    }
}

fn ending_is_truncated(conn: &crate::wire::GraderConn) -> bool {
    conn.ended() == Some(&Ending::Truncated)
}

fn abrupt_disconnect(run: &Run<'_>, secure: bool) -> Verdict {
    let id = "abrupt_disconnect";
    let started = std::time::Instant::now();
    let Scene {
        mut child,
        mut conn,
        ..
    } = match run.open_server(secure) {
        Ok(scene) => scene,
        Err(failure) => return run.scene_failed(id, failure),
    };
    let jackfruit = tokened("jackfruit");
    let _ = conn.send(format!("about to vanish: {jackfruit}\n").as_bytes());
    let _ = wait_shown(&child, &jackfruit, run.step_deadline());
    conn.vanish();
    // First the reset alone: a chat server is always reading its socket, so the reset
    // reaches its read, and a server that dies of it dies now. (Typing at once, as before,
    // raced the reset: the server could meet it on its write instead and then read a
    // clean end-of-file, and a reset-crashing server sometimes passed.)
    let mut health = run.settle(&mut child);
    if health.is_healthy() && health.exited.is_none() {
        // Then the server's user keeps typing: the next send meets the vanished client.
        let _ = child.write_stdin(&format!("are you still there? {}\n", tokened("kiwi")));
        health = run.settle(&mut child);
    }
    let mut verdict = if health.is_healthy() {
        let state = match &health.exited {
            Some(status) => format!("it then ended normally ({status})"),
            None => format!(
                "it was still running {} ms later",
                run.options.deadlines.watch.as_millis()
            ),
        };
        Verdict::passed(
            id,
            "The client vanished mid-session (a TCP reset, no goodbye, no close_notify) and the server did not crash.",
        )
        .saw(state)
    } else {
        run.with_output(
            Verdict::failed(
                id,
                "The client vanished mid-session (a TCP reset, no goodbye, no close_notify), the server's user typed a line, and the server crashed. A peer can vanish at any time (a closed laptop, a killed program): one client must never bring the server down.",
            ),
            &mut child,
        )
    };
    run.stop(&mut child);
    verdict.elapsed = started.elapsed();
    verdict
}

/// A fresh server, a plaintext client: the message must not be shown, the server must live.
fn plaintext_refused(run: &Run<'_>) -> Verdict {
    let id = "plaintext_refused";
    run.scene(
        id,
        |run| run.open_server(false),
        |run, scene| {
            let lemon = tokened("lemon");
            let line = format!("plaintext hello: {lemon}");
            let _ = scene.conn.send(format!("{line}\n").as_bytes());
            let ending = scene.conn.wait_for_end(run.step_deadline());
            let health = run.settle(&mut scene.child);
            let printed = line_with(&scene.child.text(Stream::Stdout), &lemon);
            let answer = scene.conn.received_bytes();
            let mut verdict = match (&printed, health.is_healthy()) {
                (Some(printed), _) => run.with_output(
                    Verdict::failed(
                        id,
                        format!(
                            "A client that spoke plaintext was served: the server printed {printed:?}. A secure server must refuse a connection that does not start with a TLS handshake."
                        ),
                    ),
                    &mut scene.child,
                ),
                (None, false) => run.with_output(
                    Verdict::failed(
                        id,
                        format!("The server did not show the plaintext message, but it crashed on it: one bad client must not stop the server. {}", run.remedy(Remedy::SurviveBadHandshake)),
                    ),
                    &mut scene.child,
                ),
                (None, true) => Verdict::passed(
                    id,
                    "A client that spoke plaintext was not served, and the server kept running.",
                ),
            };
            verdict = verdict.saw(match ending {
                Some(ending) => ending.describe(),
                None => format!(
                    "the server kept the connection open for {} ms without showing the message",
                    run.options.deadlines.step.as_millis()
                ),
            });
            if !answer.is_empty() {
                verdict = verdict.saw(format!(
                    "it answered {} bytes starting {}{}",
                    answer.len(),
                    hex_start(answer),
                    if answer.first() == Some(&0x15) {
                        " (a TLS alert record)"
                    } else {
                        ""
                    }
                ));
            }
            verdict
        },
    )
}

fn hex_start(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
