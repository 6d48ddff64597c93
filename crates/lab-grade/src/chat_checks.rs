//! The checks a chat server and a chat client share, written once for both roles.
//!
//! One line each way, full duplex and framing are the same experiment whichever side the
//! student wrote: the grader sends lines over the connection and watches the program's
//! output, and types lines at the program and watches the connection. Only the words
//! change ("the server" or "the client", who the grader is playing) and the sample lines.
//! A [`ChatRole`] holds those, so that each check has one implementation and a fix to it
//! reaches both assignments.
//!
//! The checks that really differ by role (a server's `Exit` handling versus a client's
//! clean exit, the TLS handshake, the impostor servers, a plaintext client) stay in
//! [`crate::chat_server`] and [`crate::chat_client`].

use std::time::Instant;

use lab_kit::child::Stream;

use crate::advice::Remedy;
use crate::report::Verdict;
use crate::scene::{
    DUPLEX_ROUNDS, LINES_PER_ROUND, Run, SPLIT_GAP, Scene, SceneFailure, ShownAlone,
    judge_two_lines, line_with, wait_shown, waited_words,
};
use crate::wire::{Waited, tokened};

/// The words and sample lines that make a shared check speak about one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatRole {
    /// What the student's program is: `"server"` or `"client"`.
    pub program: &'static str,
    /// The other end, which the grader plays: `"client"` or `"server"`.
    pub grader_plays: &'static str,
    /// How the full-duplex and framing reports name the grader when it sends over the
    /// connection: "The grader" facing a server, "The grader's server" facing a client.
    pub grader_sender: &'static str,
    /// The id of the check that a line from the grader appears in the program's output.
    pub line_shown_check: &'static str,
    /// The line the grader sends in that check (last word: the token looked for).
    pub line_sent: &'static str,
    /// The line typed at the program in the `stdin_line_sent` check (last word: the token).
    pub line_typed: &'static str,
    /// How the full-duplex verdict praises a program that took in the grader's lines.
    pub duplex_received: &'static str,
    /// Two lines the grader sends while nobody types at the program. Each line's last word
    /// is the token looked for in the program's output: a program may decorate a line
    /// (`peer: …`), but it keeps the words.
    pub duplex_sent: [&'static str; 2],
    /// Two lines typed at the program while the grader says nothing (last word: the token).
    pub duplex_typed: [&'static str; 2],
}

/// The student wrote the server; the grader is its client.
pub const SERVER: ChatRole = ChatRole {
    program: "server",
    grader_plays: "client",
    grader_sender: "The grader",
    line_shown_check: "client_line_shown",
    line_sent: "hello from the grader: apple",
    line_typed: "typed at the server: banana",
    duplex_received: "received",
    duplex_sent: [
        "first, nobody typed yet: cherry",
        "second, still nobody typed: damson",
    ],
    duplex_typed: ["typed first: elderberry", "typed second: fig"],
};

/// The student wrote the client; the grader is its server.
pub const CLIENT: ChatRole = ChatRole {
    program: "client",
    grader_plays: "server",
    grader_sender: "The grader's server",
    line_shown_check: "server_line_shown",
    line_sent: "from the server: nectarine",
    line_typed: "typed at the client: mango",
    duplex_received: "showed the server's lines",
    duplex_sent: [
        "nobody typed at the client yet: orange",
        "still nobody typed: papaya",
    ],
    duplex_typed: ["typed first: quince", "typed second: raspberry"],
};

/// Runs the shared checks in the rubric's order (full duplex, then framing) on the run of
/// the program in `shared`, or a fresh one made by `open` after a failure (see
/// [`Run::shared_scene`]): a program stuck after one check cannot fail the next.
pub fn in_shared_run(
    run: &Run<'_>,
    shared: &mut Option<Scene>,
    open: impl Fn(&Run<'_>) -> Result<Scene, SceneFailure>,
    role: &ChatRole,
) -> [Verdict; 3] {
    [
        run.shared_scene("full_duplex", shared, &open, |run, scene| {
            full_duplex(run, scene, role)
        }),
        run.shared_scene("framing_two_lines", shared, &open, |run, scene| {
            framing_two_lines(run, scene, role)
        }),
        run.shared_scene("framing_split_line", shared, &open, |run, scene| {
            framing_split_line(run, scene, role)
        }),
    ]
}

/// One line from the grader, sent over the connection, must appear in the program's output.
pub fn line_shown(run: &Run<'_>, scene: &mut Scene, role: &ChatRole) -> Verdict {
    let started = Instant::now();
    let ChatRole {
        program,
        grader_plays,
        line_shown_check: id,
        line_sent: line,
        ..
    } = *role;
    let line = &tokened(line);
    let mut verdict = match scene.conn.send(format!("{line}\n").as_bytes()) {
        Err(e) => Verdict::failed(
            id,
            format!(
                "The grader could not send a line: {}.",
                lab_kit::errors::ErrorFacts::of(&e).summary()
            ),
        ),
        Ok(()) => match wait_shown(&scene.child, token_of(line), run.step_deadline()) {
            Some(printed) => Verdict::passed(
                id,
                format!("The {grader_plays}'s line appeared in the {program}'s output."),
            )
            .saw(format!(
                "the grader sent {line:?}; the {program} printed {printed:?}"
            )),
            None => run.with_output(
                Verdict::failed(
                    id,
                    format!(
                        "The grader sent {line:?}, and it did not appear in the {program}'s output within {} ms.",
                        run.options.deadlines.step.as_millis()
                    ),
                ),
                &mut scene.child,
            ),
        },
    };
    verdict.elapsed = started.elapsed();
    verdict
}

/// One line typed at the program (its standard input) must reach the grader, newline and
/// all.
pub fn typed_line_sent(run: &Run<'_>, scene: &mut Scene, role: &ChatRole) -> Verdict {
    let id = "stdin_line_sent";
    let started = Instant::now();
    let ChatRole {
        program,
        grader_plays,
        line_typed: typed,
        ..
    } = *role;
    let typed = &tokened(typed);
    let token = token_of(typed);
    let mut verdict = match scene.child.write_stdin(&format!("{typed}\n")) {
        Err(_) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "The grader could not type at the {program}: its standard input was closed (it had exited?)."
                ),
            ),
            &mut scene.child,
        ),
        Ok(()) => match scene.conn.wait_for_text(token, run.step_deadline()) {
            Waited::Arrived => {
                // Wait for the newline too (up to a step: a program that sends its line and
                // its newline in two writes must not depend on how soon the second comes),
                // then judge it.
                let with_newline = format!("{token}\n");
                let _ = scene
                    .conn
                    .wait_for_text(&with_newline, run.step_deadline());
                let received = scene.conn.received_text();
                let mut verdict = Verdict::passed(
                    id,
                    format!("The line typed at the {program} reached the {grader_plays}."),
                )
                .saw(format!(
                    "typed {typed:?}; the grader received {:?}",
                    line_with(&received, token).unwrap_or_default()
                ));
                if !received.contains(&with_newline) {
                    verdict = verdict.say("It arrived without a newline at its end. The protocol is lines: end every message with \\n, or the receiver cannot tell where one message ends and the next begins.");
                }
                verdict
            }
            other => run.with_output(
                Verdict::failed(
                    id,
                    format!(
                        "The grader typed {typed:?} at the {program}, and it did not reach the {grader_plays}: {}.",
                        waited_words(&other, run)
                    ),
                ),
                &mut scene.child,
            ),
        },
    };
    verdict.elapsed = started.elapsed();
    verdict
}

/// The word a sample line is recognised by: its last.
fn token_of(line: &str) -> &str {
    line.rsplit(' ').next().unwrap_or(line)
}

/// Full duplex: both directions without turns, then several rounds of both at once.
///
/// A strict-alternation program (read the socket, then `input()`, then the socket again)
/// fails the first part: it cannot show a second line from the network until its user has
/// typed. A program with two threads sharing one TLS connection passes the first part and
/// may fail a later round, when both threads use the connection at the same moment.
pub fn full_duplex(run: &Run<'_>, scene: &mut Scene, role: &ChatRole) -> Verdict {
    let id = "full_duplex";
    let ChatRole {
        program,
        grader_plays,
        ..
    } = *role;
    let fail = |scene: &mut Scene, text: String| {
        run.with_output(
            Verdict::failed(id, text).say(run.remedy(Remedy::Duplex)),
            &mut scene.child,
        )
    };
    // The grader speaks twice while nobody types at the program.
    for line in role.duplex_sent.map(tokened) {
        if scene.conn.send(format!("{line}\n").as_bytes()).is_err()
            || wait_shown(&scene.child, token_of(&line), run.step_deadline()).is_none()
        {
            return fail(
                scene,
                format!(
                    "{} sent {line:?} while nobody typed at the {program}, and it did not appear within {} ms.",
                    role.grader_sender,
                    run.options.deadlines.step.as_millis()
                ),
            );
        }
    }
    // The program's user types twice while the grader says nothing.
    for line in role.duplex_typed.map(tokened) {
        if scene.child.write_stdin(&format!("{line}\n")).is_err() {
            return fail(scene, format!("The {program}'s standard input was closed."));
        }
        let waited = scene
            .conn
            .wait_for_text(token_of(&line), run.step_deadline());
        if waited != Waited::Arrived {
            return fail(
                scene,
                format!(
                    "{line:?} was typed at the {program} while the {grader_plays} said nothing, and it did not reach the {grader_plays}: {}.",
                    waited_words(&waited, run)
                ),
            );
        }
    }
    // Both at once, several rounds: typed and sent lines interleaved, then every line of
    // the round looked for on its way out.
    for round in 1..=DUPLEX_ROUNDS {
        let typed: Vec<String> = (1..=LINES_PER_ROUND)
            .map(|k| tokened(&format!("round {round} typed {k}")))
            .collect();
        let sent: Vec<String> = (1..=LINES_PER_ROUND)
            .map(|k| tokened(&format!("round {round} sent {k}")))
            .collect();
        for (typed, sent) in typed.iter().zip(&sent) {
            let _ = scene.child.write_stdin(&format!("{typed}\n"));
            let _ = scene.conn.send(format!("{sent}\n").as_bytes());
        }
        let last = LINES_PER_ROUND - 1;
        let waited = scene.conn.wait_for_text(&typed[last], run.step_deadline());
        let shown = wait_shown(&scene.child, &sent[last], run.step_deadline());
        let received = scene.conn.received_text();
        let printed = scene.child.text(Stream::Stdout);
        let all_typed = waited == Waited::Arrived && typed.iter().all(|t| received.contains(t));
        let all_sent = shown.is_some() && sent.iter().all(|s| printed.contains(s));
        if !all_typed || !all_sent {
            let mut verdict = fail(
                scene,
                format!(
                    "In round {round} of {DUPLEX_ROUNDS}, with {LINES_PER_ROUND} lines going each way at the same time, {}.",
                    match (all_typed, all_sent) {
                        (false, false) => "lines were lost in both directions".to_string(),
                        (false, true) => format!(
                            "lines typed at the {program} did not all reach the {grader_plays} ({})",
                            waited_words(&waited, run)
                        ),
                        _ => format!(
                            "lines from the {grader_plays} did not all appear in the {program}'s output"
                        ),
                    }
                ),
            );
            if round > 1 {
                verdict = verdict.say("Earlier rounds passed: a failure that comes and goes under simultaneous traffic is the sign of two threads sharing one connection without coordination.");
            }
            return verdict;
        }
    }
    Verdict::passed(
        id,
        format!(
            "The {program} {} while its user typed nothing, sent while the {grader_plays} said nothing, and kept {DUPLEX_ROUNDS} rounds of simultaneous traffic ({LINES_PER_ROUND} lines each way) intact.",
            role.duplex_received
        ),
    )
}

/// Framing, part one: two lines in one TCP segment must be shown as two lines.
///
/// First the grader sends two lines on their own, one segment each, and waits until each
/// is shown (a readiness event, not a sleep): they teach how this program shows one
/// message, and a prompt drawn at the start is used up by them. Then it sends two lines in
/// one segment, and each must be shown as the lines sent alone were
/// (see [`judge_two_lines`]): the verdict does not depend on when a prompt is drawn.
pub fn framing_two_lines(run: &Run<'_>, scene: &mut Scene, role: &ChatRole) -> Verdict {
    let id = "framing_two_lines";
    let mut alone = Vec::new();
    for word in ["alone first: kiwi", "alone second: lime"] {
        let sent = tokened(word);
        if let Err(e) = scene.conn.send(format!("{sent}\n").as_bytes()) {
            return could_not_send(id, &e);
        }
        let Some(printed) = wait_shown(&scene.child, token_of(&sent), run.step_deadline()) else {
            return run.with_output(
                Verdict::failed(
                    id,
                    format!(
                        "{} sent {sent:?} on its own, and it did not appear in the {}'s output within {} ms, so two lines at once could not be tried. (A {} that waits for its own user before it reads the socket shows nothing here: see the full-duplex check.)",
                        role.grader_sender,
                        role.program,
                        run.options.deadlines.step.as_millis(),
                        role.program
                    ),
                ),
                &mut scene.child,
            );
        };
        alone.push(ShownAlone { sent, printed });
    }
    let (first, second) = (
        &tokened("first of two: grape"),
        &tokened("second of two: honeydew"),
    );
    // One write, TCP_NODELAY on: both lines leave in one TCP segment (and one TLS record).
    if let Err(e) = scene.conn.send(format!("{first}\n{second}\n").as_bytes()) {
        return could_not_send(id, &e);
    }
    let _ = wait_shown(&scene.child, token_of(second), run.step_deadline());
    let lines = scene.child.lines(Stream::Stdout);
    match judge_two_lines(&lines, &alone, first, second) {
        Ok(seen) => Verdict::passed(
            id,
            "Two lines that arrived in one TCP segment were shown as two lines, each like a line sent on its own.",
        )
        .saw(format!("the {} printed {seen}", role.program)),
        Err(problem) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "{} sent {first:?} and {second:?} in one TCP segment. {problem}",
                    role.grader_sender
                ),
            )
            .say(run.remedy(Remedy::Framing)),
            &mut scene.child,
        ),
    }
}

/// Framing, part two: one line split over two TCP segments must be shown as one line.
pub fn framing_split_line(run: &Run<'_>, scene: &mut Scene, role: &ChatRole) -> Verdict {
    let id = "framing_split_line";
    let ChatRole {
        program,
        grader_sender,
        ..
    } = *role;
    let head = &format!(
        "one line in two segments {}: ice",
        crate::wire::fresh_token()
    );
    let rest = &tokened("berry");
    if let Err(e) =
        scene
            .conn
            .send_split(head.as_bytes(), format!("{rest}\n").as_bytes(), SPLIT_GAP)
    {
        return could_not_send(id, &e);
    }
    let whole = format!("{head}{rest}");
    match wait_shown(&scene.child, head, run.step_deadline()) {
        Some(printed) if printed.contains(&whole) => Verdict::passed(
            id,
            "A line that arrived in two TCP segments was shown as one line.",
        )
        .saw(format!("the {program} printed {printed:?}")),
        Some(printed) => run.with_output(
            Verdict::failed(
                id,
                format!(
                    "{grader_sender} sent {whole:?} in two pieces, {} ms apart, and the {program} printed half of it as a message: {printed:?}.",
                    SPLIT_GAP.as_millis()
                ),
            )
            .say(run.remedy(Remedy::Framing)),
            &mut scene.child,
        ),
        None => run.with_output(
            Verdict::failed(
                id,
                format!("{grader_sender} sent {whole:?} in two pieces, and it never appeared in the {program}'s output. (A {program} that waits for its own user before it reads the socket shows nothing here: see the full-duplex check.)"),
            )
            .say(run.remedy(Remedy::Framing)),
            &mut scene.child,
        ),
    }
}

/// The verdict when the grader's own send fails: the test input never left, so there is
/// nothing to judge the program's framing on.
fn could_not_send(id: &'static str, error: &std::io::Error) -> Verdict {
    Verdict::failed(
        id,
        format!(
            "The grader could not send: {}.",
            lab_kit::errors::ErrorFacts::of(error).summary()
        ),
    )
}
