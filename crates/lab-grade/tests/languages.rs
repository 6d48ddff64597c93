//! Honest programs in the languages students use: each must get the grade a careful TA
//! would give, whatever its language, its prompt, or its stdio buffering.
//!
//! The programs are written here, small, into temporary folders: each reproduces one
//! wrong grade the grader used to give (a Node.js server that dies on a reset passing the
//! abrupt-disconnect check, a Node.js crash dump taken for a message, a prompt taken for
//! two merged lines, a C program losing points to `printf` buffering).

use crate::common::{Written, expect, have};
use lab_grade::Assignment;
use lab_grade::report::Status::{Failed, Passed};

/// A plaintext Node.js chat server with no 'error' handler: a reset kills it, every time.
const RESET_CRASHING_SERVER: &str = r#"
const net = require('net');
const readline = require('readline');
let peer = null;
net.createServer((socket) => {
  peer = socket;
  let buffered = '';
  socket.on('data', (chunk) => {
    buffered += chunk.toString('utf8');
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      console.log(`client: ${buffered.slice(0, at)}`);
      buffered = buffered.slice(at + 1);
    }
  });
  socket.on('end', () => { peer = null; });
}).listen(Number(process.argv[2]), '127.0.0.1');
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (peer) peer.write(line + '\n');
});
"#;

#[test]
fn a_server_that_dies_on_a_reset_fails_abrupt_disconnect_every_time() {
    if !have("node", "grading a Node.js server") {
        return;
    }
    let server = Written::new("server.js", RESET_CRASHING_SERVER);
    for run in 1..=3 {
        let report = server.grade(Assignment::ChatServer, &["node", "{file}", "{port}"]);
        let text = expect(&report, "abrupt_disconnect", Failed, &format!("run {run}"));
        assert!(text.contains("ECONNRESET"), "the real error line: {text}");
        assert!(text.contains("socket.on('error'"), "Node.js advice: {text}");
        assert!(
            !text.contains("BrokenPipeError"),
            "no Python advice: {text}"
        );
        // It is a correct chat otherwise.
        expect(&report, "full_duplex", Passed, &format!("run {run}"));
    }
}

/// A plaintext chat server that catches errors on send but not on recv. When the reset
/// reaches its read it crashes; when the grader typed at once and its send met the reset
/// first, its read then saw a clean end-of-file, and it passed (about half the time, 8 of
/// 16 gradings before the fix).
const SEND_GUARDED_SERVER: &str = r#"
import selectors, socket, sys
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
peer, _ = listener.accept()
sel = selectors.DefaultSelector()
sel.register(sys.stdin, selectors.EVENT_READ); sel.register(peer, selectors.EVENT_READ)
buffered = b""
while True:
    for key, _ in sorted(sel.select(), key=lambda k: k[0].fd):
        if key.fileobj is sys.stdin:
            line = sys.stdin.readline()
            if not line: sys.exit(0)
            try: peer.sendall(line.encode())
            except OSError: print("peer gone", flush=True)
        else:
            data = peer.recv(4096)
            if not data:
                print("client left", flush=True); sys.exit(0)
            buffered += data
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                print("client:", line.decode(), flush=True)
"#;

#[test]
fn a_server_that_dies_on_a_reset_read_fails_even_when_its_send_is_guarded() {
    let server = Written::new("server.py", SEND_GUARDED_SERVER);
    for run in 1..=3 {
        let report = server.grade(Assignment::ChatServer, &["python3", "{file}", "{port}"]);
        let text = expect(&report, "abrupt_disconnect", Failed, &format!("run {run}"));
        assert!(text.contains("ConnectionResetError"), "{text}");
    }
}

#[test]
fn a_node_client_that_crashes_when_no_server_runs_is_not_taken_at_its_word() {
    if !have("node", "grading a Node.js client") {
        return;
    }
    // No 'error' handler: the refused connect ends in Node.js's unhandled-error dump.
    let client = Written::new(
        "client.js",
        "const net = require('net');\nconst s = net.connect(Number(process.argv[2]), '127.0.0.1');\ns.on('data', (d) => process.stdout.write(d));\nprocess.stdin.on('data', (d) => s.write(d));\n",
    );
    let report = client.grade(Assignment::ChatClient, &["node", "{file}", "{port}"]);
    let text = expect(&report, "no_server_message", Failed, "");
    assert!(
        text.contains("Error: connect ECONNREFUSED 127.0.0.1:"),
        "{text}"
    );
    assert!(
        !text.contains("Node.js v"),
        "the real error line, not the dump's end: {text}"
    );
}

#[test]
fn a_c_program_killed_by_a_signal_has_crashed() {
    if !have("gcc", "compiling a C client") {
        return;
    }
    let client = Written::compiled(
        "client.c",
        "#include <stdio.h>\nint main(void) { puts(\"connecting\"); fflush(stdout); *(volatile int *)0 = 1; return 0; }\n",
        "client",
    );
    let report = client.grade(Assignment::ChatClient, &["{file}", "{port}"]);
    let text = expect(&report, "no_server_message", Failed, "");
    assert!(text.contains("SIGSEGV"), "{text}");
}

/// A correct plaintext Node.js chat server that prints a `> ` prompt whenever it waits for
/// its user (at the start and after each typed line), not after the client's lines.
const PROMPT_SERVER: &str = r#"
const net = require('net');
const readline = require('readline');
const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: false });
rl.setPrompt('> ');
let peer = null;
net.createServer((socket) => {
  peer = socket;
  socket.on('error', () => { peer = null; });
  readline.createInterface({ input: socket }).on('line', (line) => {
    if (line === 'Exit') { socket.end(); return; }
    console.log(`client: ${line}`);
  });
  rl.prompt();
}).listen(Number(process.argv[2]), '127.0.0.1');
rl.on('line', (line) => { if (peer) peer.write(line + '\n'); rl.prompt(); });
"#;

#[test]
fn a_prompt_is_not_two_lines_merged_into_one() {
    if !have("node", "grading a Node.js server with a prompt") {
        return;
    }
    let server = Written::new("server.js", PROMPT_SERVER);
    let report = server.grade(Assignment::ChatServer, &["node", "{file}", "{port}"]);
    expect(&report, "framing_two_lines", Passed, "");
    expect(&report, "framing_split_line", Passed, "");
}

/// A plaintext C chat server that prints with printf and never calls fflush.
const PRINTF_SERVER: &str = r#"
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int listener = socket(AF_INET, SOCK_STREAM, 0), yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(listener, (struct sockaddr *)&addr, sizeof addr);
    listen(listener, 8);
    int peer = accept(listener, NULL, NULL);
    char buf[4096], line[4096];
    size_t have = 0;
    struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = peer, .events = POLLIN } };
    for (;;) {
        poll(fds, 2, -1);
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            /* read(), not fgets(): stdio would buffer typed lines where poll() cannot see them. */
            ssize_t typed = read(0, line, sizeof line);
            if (typed <= 0) return 0;
            send(peer, line, typed, MSG_NOSIGNAL);
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = recv(peer, buf + have, sizeof buf - have, 0);
            if (n <= 0) { printf("client left\n"); return 0; }
            have += n;
            char *nl;
            while ((nl = memchr(buf, '\n', have))) {
                *nl = 0;
                printf("client: %s\n", buf);
                have -= nl + 1 - buf;
                memmove(buf, nl + 1, have);
            }
        }
    }
}
"#;

#[test]
fn printf_without_fflush_loses_no_points() {
    if !have("gcc", "compiling a C server") {
        return;
    }
    let server = Written::compiled("server.c", PRINTF_SERVER, "server");
    let report = server.grade(Assignment::ChatServer, &["{file}", "{port}"]);
    for id in [
        "client_line_shown",
        "full_duplex",
        "framing_two_lines",
        "framing_split_line",
    ] {
        expect(&report, id, Passed, "");
    }
}

/// A threaded Python echo server without a try around its per-client loop: the reset of
/// a vanished client kills that client's thread (a traceback), and the server goes on.
const THREAD_PER_CLIENT_ECHO: &str = r#"
import socket, sys, threading

def serve(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)

listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

#[test]
fn a_server_whose_client_thread_dies_of_a_reset_is_not_said_to_have_crashed() {
    if !have("python3", "grading a threaded Python echo server") {
        return;
    }
    let server = Written::new("server.py", THREAD_PER_CLIENT_ECHO);
    for run in 1..=3 {
        let report = server.grade(Assignment::EchoServer, &["python3", "{file}", "{port}"]);
        let text = expect(&report, "client_vanishes", Passed, &format!("run {run}"));
        assert!(!text.contains("the server crashed"), "run {run}: {text}");
        assert_eq!(
            report.score,
            report.max_score,
            "run {run}: {}",
            crate::common::narrated(&report)
        );
    }
}

/// A plaintext Python chat server that closes its listener as soon as it has its one
/// client, a common and correct design.
const LISTENER_CLOSING_SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
conn, addr = s.accept()
s.close()
print("Connected by", addr, flush=True)
for line in conn.makefile("r"):
    print("Client:", line.rstrip("\n"), flush=True)
"#;

/// The grader used to find the listener in the kernel's table, then not in the program
/// (closed in between), and took it for another program's: 0 points, 2 gradings in 3.
#[test]
fn a_server_that_closes_its_listener_after_accepting_is_listening() {
    if !have(
        "python3",
        "grading a Python server that closes its listener",
    ) {
        return;
    }
    let server = Written::new("server.py", LISTENER_CLOSING_SERVER);
    for run in 1..=3 {
        let report = server.grade(Assignment::ChatServer, &["python3", "{file}", "{port}"]);
        for id in ["listening", "client_line_shown"] {
            expect(&report, id, Passed, &format!("run {run}"));
        }
    }
}

/// The echo checks judged as soon as the echo's length had come back: the extra newline
/// was caught or not as it happened to arrive (scores 4, 5 and 7 of 9 in six gradings of
/// this program). Judged up to the echo of a follow-up line, it fails every time.
#[test]
fn bytes_written_after_the_echo_are_always_seen() {
    if !have(
        "python3",
        "grading a Python echo server that adds a newline",
    ) {
        return;
    }
    // The threaded echo server above, with an extra newline in a second write.
    let extra_newline = THREAD_PER_CLIENT_ECHO.replace(
        "conn.sendall(data)",
        "conn.sendall(data)\n            conn.sendall(b\"\\n\")",
    );
    let server = Written::new("server.py", &extra_newline);
    for run in 1..=3 {
        let report = server.grade(Assignment::EchoServer, &["python3", "{file}", "{port}"]);
        for id in ["echo_line", "framing_two_lines", "framing_split_line"] {
            let text = expect(&report, id, Failed, &format!("run {run}"));
            assert!(
                text.contains("\\n\\n"),
                "the extra newline is quoted: {text}"
            );
        }
    }
}
