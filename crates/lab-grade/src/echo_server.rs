//! The echo server's checks (lab 4): plaintext TCP, the grader as one or more clients.
//!
//! An echo server must send back exactly the bytes it received. That sounds trivial until
//! TCP's byte stream meets a server that treats one `recv()` as one message: it strips and
//! re-adds newlines per `recv()`, or answers only the first line of a read, or serves one
//! client at a time. Each check below makes one of those visible.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::advice::Remedy;
use crate::program::{self, Health};
use crate::report::Verdict;
use crate::scene::{Run, Scene, in_lane, join_lanes, waited_words};
use crate::wire::{GraderConn, Waited, tokened};

/// Size of the large-burst check: big enough to exceed the socket buffers, so that a server
/// which reads a little and writes a lot (or uses `send` instead of `sendall`) shows it.
pub const BURST_BYTES: usize = 256 * 1024;

/// Runs every echo-server check.
///
/// Twice started, as a TA would: one run holds one connection for every check up to the
/// large burst (a fresh copy after a failed check, see [`Run::shared_scene`]); the vanishing
/// client gets a server of its own, in a lane alongside (see [`Run::lane`]).
pub fn grade(run: &Run<'_>) -> Vec<Verdict> {
    std::thread::scope(|scope| {
        let vanishes = in_lane(scope, run, "client_vanishes", client_vanishes);
        let mut verdicts = shared_run(run);
        join_lanes(&mut verdicts, [vanishes]);
        verdicts
    })
}

/// The run shared by every check up to the large burst, on one connection.
fn shared_run(run: &Run<'_>) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    let started = Instant::now();
    let mut first = match run.open_server(false) {
        Ok(scene) => scene,
        Err(failure) => {
            return run.never_listening(failure, started, crate::rubric::ECHO_SERVER);
        }
    };
    verdicts.push(run.listening_passed(started));
    let mut echo = echo_exactly(
        run,
        &mut first,
        "echo_line",
        &format!("echo me: {}\n", tokened("umbrella")),
        "a line",
        None,
    );
    let mut shared = None;
    run.keep_if_sound(&mut shared, first, &echo);
    echo.elapsed = started.elapsed();
    verdicts.push(echo);
    let open = |run: &Run<'_>| run.open_server(false);
    verdicts.push(
        run.shared_scene("framing_two_lines", &mut shared, open, |run, scene| {
            echo_exactly(
                run,
                scene,
                "framing_two_lines",
                &format!(
                    "first: {}\nsecond: {}\n",
                    tokened("violin"),
                    tokened("walnut")
                ),
                "two lines in one TCP segment",
                None,
            )
        }),
    );
    verdicts.push(
        run.shared_scene("framing_split_line", &mut shared, open, |run, scene| {
            echo_exactly(
                run,
                scene,
                "framing_split_line",
                &format!("split: {}\n", tokened("xylophone")),
                "one line in two segments",
                Some(b"split: xylo".len()),
            )
        }),
    );
    verdicts.push(run.shared_scene("several_clients", &mut shared, open, several_clients));
    // The burst ends the connection: the last check of the shared run.
    verdicts.push(run.shared_scene("large_burst", &mut shared, open, large_burst));
    run.end_shared(&mut shared);
    verdicts
}

/// Sends `message` (in two segments, cut at `split`, if given) and expects it back exactly.
fn echo_exactly(
    run: &Run<'_>,
    scene: &mut Scene,
    id: &'static str,
    message: &str,
    what: &str,
    split: Option<usize>,
) -> Verdict {
    let message = message.as_bytes();
    // On a shared connection, only what comes back from now on answers this message.
    scene.conn.forget_received();
    let sent = match split {
        Some(at) => scene
            .conn
            .send_split(&message[..at], &message[at..], crate::scene::SPLIT_GAP),
        None => scene.conn.send(message),
    };
    if let Err(e) = sent {
        return Verdict::failed(
            id,
            format!(
                "The grader could not send: {}.",
                lab_kit::errors::ErrorFacts::of(&e).summary()
            ),
        );
    }
    let expected = String::from_utf8_lossy(message).into_owned();
    // Wait until as many bytes as were sent came back, or what came back already differs.
    let waited = scene.conn.wait_until(run.step_deadline(), |got| {
        got.len() >= expected.len() || !expected.starts_with(got)
    });
    if scene.conn.received_text() == expected {
        // Right so far, but bytes the server writes after the echo (a newline added in a
        // second write) arrive at their own pace: judged now, the verdict would depend on
        // timing. A follow-up line, sent now, comes back after everything the server wrote
        // before it, so the grader judges what came before the follow-up's echo.
        let follow_up = format!("then: {}\n", tokened("yuzu"));
        let back = scene.conn.send(follow_up.as_bytes()).is_ok()
            && scene
                .conn
                .wait_until(run.step_deadline(), |got| got.contains(follow_up.as_str()))
                == Waited::Arrived;
        // Its echo still on the way would arrive in the next check's answer: that check
        // gets a fresh connection to a fresh copy instead.
        scene.settled &= back;
    } else if waited == Waited::Arrived {
        // A wrong answer may still be arriving: give it the rest of a short moment to finish.
        let _ = scene
            .conn
            .wait_until(Instant::now() + Duration::from_millis(200), |got| {
                got.len() > expected.len() + 64
            });
    }
    let received = scene.conn.received_text();
    let got = match received.find("then: yuzu-") {
        Some(at) => received[..at].to_string(),
        None => received,
    };
    if got == expected {
        Verdict::passed(id, format!("It echoed {what} back byte for byte."))
            .saw(format!("sent {expected:?}, got back {got:?}"))
    } else {
        let mut verdict = Verdict::failed(
            id,
            format!(
                "It did not echo {what} back exactly: the grader sent {expected:?} and got back {got:?}{}.",
                match waited {
                    Waited::Arrived => String::new(),
                    other => format!(" ({})", waited_words(&other, run)),
                }
            ),
        );
        if split.is_some() || message.iter().filter(|&&b| b == b'\n').count() > 1 {
            // An echo server must not look for lines at all: only the echo advice applies.
            verdict = verdict.say(run.remedy(Remedy::EchoExact));
        }
        run.with_output(verdict, &mut scene.child)
    }
}

/// A second client is served while the first stays connected and idle.
fn several_clients(run: &Run<'_>, scene: &mut Scene) -> Verdict {
    let id = "several_clients";
    let port = match scene.conn.try_clone_tcp().and_then(|t| t.peer_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => return Verdict::failed(id, format!("The grader lost its connection: {e}.")),
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut second = match TcpStream::connect_timeout(&addr, run.options.deadlines.step) {
        Ok(tcp) => GraderConn::plain(tcp),
        Err(e) => {
            return run.with_output(
                Verdict::failed(
                    id,
                    format!(
                        "A second client could not even connect: {}.",
                        lab_kit::errors::ErrorFacts::of(&e).summary()
                    ),
                ),
                &mut scene.child,
            );
        }
    };
    let yam = format!("{}\n", tokened("yam"));
    let _ = second.send(format!("second client: {yam}").as_bytes());
    let waited = second.wait_for_text(&yam, run.step_deadline());
    if waited != Waited::Arrived {
        return run.with_output(
            Verdict::failed(
                id,
                format!(
                    "While a first client stayed connected (and quiet), a second client sent a line and got no echo: {}.",
                    waited_words(&waited, run)
                ),
            )
            .say(run.remedy(Remedy::ManyClients)),
            &mut scene.child,
        );
    }
    let zucchini = format!("{}\n", tokened("zucchini"));
    let _ = scene
        .conn
        .send(format!("first client: {zucchini}").as_bytes());
    let waited = scene.conn.wait_for_text(&zucchini, run.step_deadline());
    if waited != Waited::Arrived {
        return run.with_output(
            Verdict::failed(
                id,
                format!(
                    "The second client was served, but then the first got no echo: {}.",
                    waited_words(&waited, run)
                ),
            ),
            &mut scene.child,
        );
    }
    Verdict::passed(
        id,
        "Two clients were connected at once, and each got its echo.",
    )
}

/// 256 KiB of numbered lines, written by one thread while the grader reads the echo.
fn large_burst(run: &Run<'_>, scene: &mut Scene) -> Verdict {
    let id = "large_burst";
    scene.conn.forget_received();
    let mut expected = Vec::with_capacity(BURST_BYTES);
    let mut n = 0;
    let token = crate::wire::fresh_token();
    while expected.len() < BURST_BYTES {
        n += 1;
        expected.extend_from_slice(
            format!("burst line {n:06} {token} {}\n", "x".repeat(35)).as_bytes(),
        );
    }
    let mut writer_tcp = match scene.conn.try_clone_tcp() {
        Ok(tcp) => tcp,
        Err(e) => {
            return Verdict::failed(id, format!("The grader could not clone its socket: {e}."));
        }
    };
    let to_send = expected.clone();
    // Writing everything before reading could deadlock with a correct server (both sides'
    // buffers full), so a separate thread writes while this one reads.
    let writer = thread::spawn(move || {
        let _ = writer_tcp.set_write_timeout(Some(Duration::from_secs(30)));
        writer_tcp.write_all(&to_send)
    });
    let deadline = Instant::now() + run.options.deadlines.step * 2;
    let waited = scene.conn.wait_until(deadline, |got| {
        got.len() >= expected.len() || !expected.starts_with(got.as_bytes())
    });
    let got = scene.conn.received_bytes().to_vec();
    let verdict = judge_burst(run, scene, &expected, &got, n, waited);
    // Now wake the writer if it is stuck (a server that stopped reading), and collect it.
    scene.conn.shutdown_both();
    let _ = writer.join();
    verdict
}

fn judge_burst(
    run: &Run<'_>,
    scene: &mut Scene,
    expected: &[u8],
    got: &[u8],
    n: usize,
    waited: Waited,
) -> Verdict {
    let id = "large_burst";
    if got == expected {
        return Verdict::passed(
            id,
            format!(
                "{} bytes ({n} lines) written while reading came back complete and in order.",
                expected.len()
            ),
        );
    }
    let same = got.iter().zip(expected).take_while(|(a, b)| a == b).count();
    let context = |bytes: &[u8]| {
        let end = (same + 24).min(bytes.len());
        String::from_utf8_lossy(&bytes[same.saturating_sub(8).min(end)..end]).into_owned()
    };
    run.with_output(
        Verdict::failed(
            id,
            format!(
                "Of {} bytes sent, {} came back{}; the echo first differs at byte {same}: expected {:?}, got {:?}.",
                expected.len(),
                got.len(),
                match waited {
                    Waited::Arrived => String::new(),
                    other => format!(" ({})", waited_words(&other, run)),
                },
                context(expected),
                context(got)
            ),
        )
        .say(run.remedy(Remedy::EchoExact))
        .say(run.remedy(Remedy::SendAll)),
        &mut scene.child,
    )
}

/// A client vanishes (TCP reset); the server must live and serve the next one.
fn client_vanishes(run: &Run<'_>) -> Verdict {
    let id = "client_vanishes";
    let started = Instant::now();
    let Scene {
        mut child,
        mut conn,
        ..
    } = match run.open_server(false) {
        Ok(scene) => scene,
        Err(failure) => return run.scene_failed(id, failure),
    };
    let addr = conn.try_clone_tcp().and_then(|t| t.peer_addr());
    let jackfruit = format!("{}\n", tokened("jackfruit"));
    let _ = conn.send(format!("about to vanish: {jackfruit}").as_bytes());
    let _ = conn.wait_for_text(&jackfruit, run.step_deadline());
    let _ = conn.send(b"unread when the client vanished\n");
    conn.vanish();
    // The reset reaches the server's read before anything else happens: a server that
    // dies of it dies in this window, every time, not only when it loses a race.
    let _ = program::wait_exit(&mut child, run.options.deadlines.watch);
    let served = match addr {
        Ok(addr) => match TcpStream::connect_timeout(&addr, run.options.deadlines.step) {
            Ok(tcp) => {
                let mut next = GraderConn::plain(tcp);
                let kumquat = format!("{}\n", tokened("kumquat"));
                let _ = next.send(format!("next client: {kumquat}").as_bytes());
                next.wait_for_text(&kumquat, run.step_deadline()) == Waited::Arrived
            }
            Err(_) => false,
        },
        Err(_) => false,
    };
    // Served: the server is fine now. Not served: it may be crashing right now, so give it
    // the watch window to finish dying and print its traceback.
    let health = if served {
        run.health(&mut child)
    } else {
        run.settle(&mut child)
    };
    let mut verdict = match (served, &health) {
        (true, health) if health.is_healthy() => Verdict::passed(
            id,
            "A client vanished (a TCP reset, no goodbye), and the server went on to serve the next client.",
        ),
        // The code serving that one client (a thread, a handler) died of the reset, and the
        // server itself went on and served the next client: what the check asks. The
        // traceback is worth fixing, not worth the point, and the words must be true: the
        // server did not crash.
        (true, Health {
            exited: None,
            crash: Some(crash),
            ..
        }) => Verdict::passed(
            id,
            "A client vanished (a TCP reset, no goodbye), and the server went on to serve the next client.",
        )
        .say(format!(
            "The code serving the vanished client died of it with an uncaught error ({crash}); the server itself went on, so no point is lost. {}",
            run.remedy(Remedy::PeerGone)
        ))
        .saw(format!("it printed: {crash}")),
        _ => run.with_output(
            Verdict::failed(
                id,
                if health.is_healthy() {
                    "A client vanished (a TCP reset), and the next client got no echo.".to_string()
                } else if health.exited.is_none() {
                    format!(
                        "A client vanished (a TCP reset), the code serving it crashed, and the next client got no echo. {}",
                        run.remedy(Remedy::PeerGone)
                    )
                } else {
                    format!(
                        "A client vanished (a TCP reset), and the server crashed: one client must never bring the server down. {}",
                        run.remedy(Remedy::PeerGone)
                    )
                },
            ),
            &mut child,
        ),
    };
    run.stop(&mut child);
    verdict.elapsed = started.elapsed();
    verdict
}
