//! The chat in a real terminal (tmux): a line from the peer that arrives while the user is
//! half-way through typing is printed above the typed line, which stays intact and is sent
//! whole; the user's own lines read `you: …`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

/// A tmux server of our own (its socket in a temporary folder of ours), killed with
/// everything in it on drop; the folder and the socket go with it.
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(first_window: &str, command: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "40",
            "-s",
            "chat",
            "-n",
            first_window,
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep a pane whose program ended, to read what it printed last.
        tmux.run(&["set-option", "-g", "remain-on-exit", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn new_window(&self, name: &str, command: &str) {
        let out = self.run(&["new-window", "-d", "-t", "chat", "-n", name, command]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Types `text` literally into a window (no Enter).
    fn type_text(&self, window: &str, text: &str) {
        self.run(&["send-keys", "-t", &format!("chat:{window}"), "-l", text]);
    }

    fn press_enter(&self, window: &str) {
        self.run(&["send-keys", "-t", &format!("chat:{window}"), "Enter"]);
    }

    /// The window's screen, one string per row, trailing blanks removed.
    fn screen(&self, window: &str) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p", "-t", &format!("chat:{window}")]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|row| row.trim_end().to_string())
            .collect()
    }

    /// Waits (polling the screen, at most [`PATIENCE`]) until a row satisfies `wanted`.
    #[track_caller]
    fn wait_for_row(&self, window: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(window);
            if let Some(row) = screen.iter().find(|row| wanted(row)) {
                return row.clone();
            }
            assert!(
                Instant::now() < deadline,
                "window {window} never showed the expected row:\n{}",
                screen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn a_line_from_the_peer_never_breaks_the_line_being_typed() {
    if tool("tmux").is_none() {
        lab_test_support::skip_unless_ci("the terminal chat test", "tmux is not installed");
        return;
    }
    let exe = exe();
    let tmux = Tmux::start(
        "server",
        &format!("env NO_COLOR=1 {exe} server --plaintext --listen 127.0.0.1:0"),
    );
    let listening = tmux.wait_for_row("server", |row| row.starts_with("listening on "));
    let addr = listening.trim_start_matches("listening on ").to_string();
    // The shell reports the client's exit status when it ends.
    tmux.new_window(
        "client",
        &format!(
            "env NO_COLOR=1 {exe} client --plaintext --connect {addr}; echo \"exit status $?\""
        ),
    );
    tmux.wait_for_row("client", |row| row.starts_with("session with"));
    tmux.wait_for_row("server", |row| row.starts_with("session with"));

    // Half a line typed on the client, and on screen after the prompt.
    tmux.type_text("client", "I am typing a long sente");
    tmux.wait_for_row("client", |row| row == "you: I am typing a long sente");
    // The server's user sends a line meanwhile: it appears above, the typing is redrawn.
    tmux.type_text("server", "hello from the server");
    tmux.press_enter("server");
    tmux.wait_for_row("client", |row| row == "peer: hello from the server");
    tmux.wait_for_row("client", |row| row == "you: I am typing a long sente");
    // The typing is completed and sent.
    tmux.type_text("client", "nce");
    tmux.press_enter("client");
    tmux.wait_for_row("server", |row| row == "peer: I am typing a long sentence");

    let client = tmux.screen("client");
    let incoming = client
        .iter()
        .position(|row| row == "peer: hello from the server")
        .unwrap();
    let typed = client
        .iter()
        .position(|row| row == "you: I am typing a long sentence")
        .unwrap_or_else(|| panic!("the typed line is not intact:\n{}", client.join("\n")));
    assert!(incoming < typed, "{}", client.join("\n"));
    assert!(
        client.iter().all(|row| !row.contains("sentepeer")),
        "{}",
        client.join("\n")
    );
    // The server's own line is marked as its user's.
    tmux.wait_for_row("server", |row| row == "you: hello from the server");

    // Leaving restores the terminal: the client says goodbye and exits cleanly.
    tmux.type_text("client", "Exit");
    tmux.press_enter("client");
    tmux.wait_for_row("server", |row| row.starts_with("peer left (said Exit"));
    // The editor's last prompt is erased as the program ends: the shell's line does not
    // follow a stray `you: `, and no empty prompt is left behind.
    tmux.wait_for_row("client", |row| row.contains("exit status "));
    let client = tmux.screen("client");
    let shown = client.join("\n");
    assert!(client.iter().any(|row| row == "exit status 0"), "{shown}");
    assert!(!client.iter().any(|row| row == "you:"), "{shown}");
    assert!(
        client
            .iter()
            .any(|row| row.ends_with("you left (sent Exit and close_notify)")),
        "{shown}"
    );
}
