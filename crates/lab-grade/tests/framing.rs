//! The two-lines-in-one-segment check must not depend on when a program draws its prompt.
//!
//! It used to wait up to 300 ms for a prompt before sending: on a loaded machine a correct
//! program that drew its prompt later failed, and the same program could pass or fail from
//! one grading to the next. Each program below is graded on that one check several times,
//! with its prompt drawn at different moments; each must get the same verdict every time.

use crate::common::{options, pki, program, program_dir, write_program};
use lab_grade::advice::Language;
use lab_grade::chat_checks::{SERVER, framing_two_lines, typed_line_sent};
use lab_grade::report::{Status, Verdict};
use lab_grade::scene::Run;

/// A correct chat server: a thread shows each line from the client as `peer: …` (it starts
/// reading `argv[3]` ms after the client connected, as a program busy setting up would);
/// the main thread waits `argv[2]` ms, then draws a `> ` prompt once and reads its user's
/// lines (Python's `input()` prints the prompt before it reads).
const LATE_PROMPT: &str = r#"
import socket, sys, threading, time
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
peer, _ = listener.accept()
def receive():
    time.sleep(int(sys.argv[3]) / 1000)
    for line in peer.makefile("r", encoding="utf-8"):
        print("peer: " + line.rstrip("\n"), flush=True)
threading.Thread(target=receive, daemon=True).start()
time.sleep(int(sys.argv[2]) / 1000)
try:
    while True:
        peer.sendall((input("> ") + "\n").encode())
except EOFError:
    pass
"#;

/// A correct chat server that redraws its `> ` prompt after every message it shows
/// (`\r`, the message, a newline, the prompt), and once at the start.
const REDRAWN_PROMPT: &str = r#"
import socket, sys, threading
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
peer, _ = listener.accept()
screen = threading.Lock()
def receive():
    for line in peer.makefile("r", encoding="utf-8"):
        with screen:
            sys.stdout.write("\rpeer: " + line.rstrip("\n") + "\n> "); sys.stdout.flush()
threading.Thread(target=receive, daemon=True).start()
with screen:
    sys.stdout.write("> "); sys.stdout.flush()
for line in sys.stdin:
    peer.sendall(line.encode())
    with screen:
        sys.stdout.write("> "); sys.stdout.flush()
"#;

/// A chat server that shows what one `recv()` returned as one message, `peer: …`; with
/// `argv[2]` = `prompt` it redraws a `> ` prompt after each, as the one above does.
const MERGED: &str = r#"
import socket, sys
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
peer, _ = listener.accept()
prompt = sys.argv[2] == "prompt"
if prompt:
    sys.stdout.write("> "); sys.stdout.flush()
while True:
    data = peer.recv(4096)
    if not data:
        break
    sys.stdout.write(("\r" if prompt else "") + "peer: " + data.decode().rstrip("\n") + "\n")
    if prompt:
        sys.stdout.write("> ")
    sys.stdout.flush()
"#;

/// Grades `script` (run as `python3 script {port} extra…`) on the framing check alone.
fn framing(dir: &std::path::Path, script: &str, extra: &[&str]) -> Verdict {
    one_check(dir, script, extra, "framing_two_lines", framing_two_lines)
}

/// Grades `script` on one check of a plaintext chat server.
fn one_check(
    dir: &std::path::Path,
    script: &str,
    extra: &[&str],
    id: &'static str,
    body: fn(&Run<'_>, &mut lab_grade::scene::Scene, &lab_grade::chat_checks::ChatRole) -> Verdict,
) -> Verdict {
    let argv: Vec<&str> = ["python3", script, "{port}"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let program = program(&argv, Some(dir.to_path_buf()));
    let mut run = Run::new(&program, pki(), true, options(true)).unwrap();
    run.language = Language::Python;
    run.scene(
        id,
        |run| run.open_server(false),
        |run, scene| body(run, scene, &SERVER),
    )
}

fn said(verdict: &Verdict) -> String {
    format!(
        "{}\n{}",
        verdict.feedback.join("\n"),
        verdict.evidence.join("\n")
    )
}

#[test]
fn a_prompt_drawn_late_or_redrawn_passes_every_time() {
    if !crate::common::have("python3", "grading Python chat servers with prompts") {
        return;
    }
    let dir = program_dir();
    let late = write_program(dir.path(), "late.py", LATE_PROMPT);
    let redrawn = write_program(dir.path(), "redrawn.py", REDRAWN_PROMPT);
    // The prompt lands before the lines sent alone, between them, on the two lines, or
    // after them all, as the delays and the machine's load have it: always a pass. The
    // last case is the old failure made certain: the prompt comes 500 ms after the
    // connection (after the old 300 ms wait) and before the program reads its first line.
    for (prompt_ms, reader_ms) in [
        ("0", "0"),
        ("1", "0"),
        ("5", "0"),
        ("20", "0"),
        ("60", "0"),
        ("150", "0"),
        ("500", "0"),
        ("500", "700"),
    ] {
        let verdict = framing(dir.path(), &late, &[prompt_ms, reader_ms]);
        assert_eq!(
            verdict.status,
            Status::Passed,
            "prompt after {prompt_ms} ms, reading after {reader_ms} ms: {}",
            said(&verdict)
        );
    }
    for run in 1..=4 {
        let verdict = framing(dir.path(), &redrawn, &[]);
        assert_eq!(
            verdict.status,
            Status::Passed,
            "run {run}: {}",
            said(&verdict)
        );
    }
}

#[test]
fn merged_lines_fail_every_time_with_or_without_a_prompt() {
    if !crate::common::have("python3", "grading Python chat servers that merge lines") {
        return;
    }
    let dir = program_dir();
    let merged = write_program(dir.path(), "merged.py", MERGED);
    for mode in ["prompt", "plain"] {
        for run in 1..=4 {
            let verdict = framing(dir.path(), &merged, &[mode]);
            let text = said(&verdict);
            assert_eq!(verdict.status, Status::Failed, "{mode}, run {run}: {text}");
            assert!(
                text.contains("The second line was not shown like the first"),
                "{mode}, run {run}: {text}"
            );
            assert!(
                text.contains("peer: first of two: grape"),
                "the real line: {text}"
            );
        }
    }
}

/// A chat server that sends each typed line, then its newline in a second write
/// `argv[2]` ms later (`never`: no newline at all).
const NEWLINE_LATER: &str = r#"
import socket, sys, time
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
peer, _ = listener.accept()
for line in sys.stdin:
    peer.sendall(line.rstrip("\n").encode())
    if sys.argv[2] != "never":
        time.sleep(int(sys.argv[2]) / 1000)
        peer.sendall(b"\n")
"#;

/// The note "it arrived without a newline" came after a fixed 200 ms wait: a newline sent
/// in a second write later than that was said to be missing.
#[test]
fn a_newline_is_judged_by_whether_it_comes_not_how_soon() {
    if !crate::common::have(
        "python3",
        "grading Python servers that send the newline apart",
    ) {
        return;
    }
    let dir = program_dir();
    let script = write_program(dir.path(), "server.py", NEWLINE_LATER);
    let note = "without a newline";
    for (delay, missing) in [("0", false), ("400", false), ("never", true)] {
        let verdict = one_check(
            dir.path(),
            &script,
            &[delay],
            "stdin_line_sent",
            typed_line_sent,
        );
        let text = said(&verdict);
        assert_eq!(verdict.status, Status::Passed, "{delay}: {text}");
        assert_eq!(
            text.contains(note),
            missing,
            "newline after {delay} ms: {text}"
        );
    }
}
