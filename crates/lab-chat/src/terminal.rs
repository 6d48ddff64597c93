//! Typing that survives incoming lines: the chat in a real terminal.
//!
//! A chat reads the keyboard and the network at the same time. Printed naively, a line
//! from the peer lands in the middle of the line the user is typing (`I am typing a long
//! sentepeer: hello…`), and the user's own lines look like anything else on the screen;
//! `ncat --chat` behaves that way. When standard input *and* output are a terminal, the
//! programs use a line editor instead (rustyline): the user types after a `you: ` prompt,
//! so each sent line stays on screen as `you: …`; every other line is printed *above* the
//! line being typed, which is then redrawn intact (rustyline's `ExternalPrinter`); the
//! arrow keys bring back earlier lines.
//!
//! When either is not a terminal (a pipe, a file, the grader, a test) nothing changes:
//! lines are read plainly from stdin and events printed plainly to stdout, as before.
//!
//! A line editor puts the terminal in "raw" mode while it reads (it sees each key, not
//! each line). A chat may end while the editor waits for a key, so the terminal's mode is
//! saved first and restored when the [`LineEditor`] is dropped, whatever happens.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use nix::sys::termios::{self, SetArg, Termios};
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

use crate::session::{ChatEvent, EventSink, LocalInput};

/// The prompt, which also marks the user's own lines once sent: `you: hello`.
pub const PROMPT: &str = "you: ";

/// Whether standard input and standard output are both a terminal.
pub fn is_interactive() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// What the printing thread is asked to do.
enum ToPrint {
    Line(String),
    /// Make sure everything before is on the screen, then stop.
    Finish,
}

/// A line editor reading the terminal on its own thread; dropping this shows every event
/// already reported, then restores the terminal's mode.
pub struct LineEditor {
    saved_mode: Option<Termios>,
    /// The events to print, in order, then [`ToPrint::Finish`] on drop.
    to_print: Sender<ToPrint>,
    /// The thread that hands them to the editor (it may wait for the editor: events never
    /// do).
    printing: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LineEditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineEditor").finish_non_exhaustive()
    }
}

impl LineEditor {
    /// Starts the editor on a thread. Returns the guard, what the user types (as the
    /// session wants it), and a sink that prints each event above the line being typed
    /// (`json`: one object per line, as in plain mode).
    pub fn start(json: bool) -> Result<(Self, Receiver<LocalInput>, EventSink), ReadlineError> {
        let saved_mode = termios::tcgetattr(io::stdin()).ok();
        let mut editor = DefaultEditor::new()?;
        let mut printer = editor.create_external_printer()?;
        let (to_print, printed) = mpsc::channel();
        let printing = std::thread::Builder::new()
            .name("line-printer".into())
            .spawn(move || {
                while let Ok(ToPrint::Line(text)) = printed.recv() {
                    // Outside `readline` the printer writes the text as it is: end it here.
                    let _ = printer.print(format!("{text}\n"));
                }
                // The editor takes one message at a time, and shows each in full before it
                // takes the next: once two empty ones were taken, everything before them
                // is on the screen (at the cost of a blank line or two at the very end).
                for _ in 0..2 {
                    let _ = printer.print(String::new());
                }
            })?;
        let sink = Mutex::new(to_print.clone());
        let events: EventSink = Arc::new(move |event: ChatEvent| {
            let text = if json {
                serde_json::to_string(&event).unwrap_or_default()
            } else {
                event.to_string()
            };
            let _ = sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(ToPrint::Line(text));
        });
        let (tx, input) = mpsc::channel();
        let errors = Arc::clone(&events);
        std::thread::Builder::new()
            .name("line-editor".into())
            .spawn(move || {
                loop {
                    let typed = match editor.readline(PROMPT) {
                        Ok(line) => {
                            let _ = editor.add_history_entry(line.as_str());
                            LocalInput::from_typed(&line)
                        }
                        // Ctrl-D, or Ctrl-C: leave, as closing stdin does in plain mode.
                        Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                            LocalInput::EndOfInput
                        }
                        Err(e) => {
                            errors(ChatEvent::Error {
                                error: format!("reading the keyboard failed: {e}"),
                            });
                            LocalInput::EndOfInput
                        }
                    };
                    let last = typed == LocalInput::EndOfInput;
                    if tx.send(typed).is_err() || last {
                        return;
                    }
                }
            })?;
        let guard = LineEditor {
            saved_mode,
            to_print,
            printing: Some(printing),
        };
        Ok((guard, input, events))
    }
}

impl Drop for LineEditor {
    fn drop(&mut self) {
        // Every event reported so far reaches the screen before the program ends.
        let _ = self.to_print.send(ToPrint::Finish);
        if let Some(printing) = self.printing.take() {
            let _ = printing.join();
        }
        if let Some(mode) = &self.saved_mode {
            let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, mode);
        }
        // The editor is still waiting for a key, its prompt on the last line, and it may
        // still be redrawing it after the last line it printed (nothing says when it is
        // done). So that nothing after the program (the shell's prompt) follows a stray
        // `you: `: standard output is pointed at /dev/null first (a late redraw goes
        // nowhere), then the prompt's line is erased through a copy of the terminal's
        // descriptor. (Text typed there and never sent goes with it: it was never part of
        // the chat.) This runs as the program ends: nothing is printed to stdout after.
        let _ = io::stdout().flush();
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
        if let (Ok(terminal), Ok(null)) = (nix::unistd::dup(io::stdout()), null)
            && nix::unistd::dup2_stdout(&null).is_ok()
        {
            let _ = std::fs::File::from(terminal).write_all(b"\r\x1b[2K");
        }
    }
}
