//! The lab contract: what every lab gives the tour, as one type.
//!
//! A chapter is one homework question answered by experiment. Its lab crate owns
//! everything about it (the question's words, the one-paragraph answer, the experiments,
//! the probes its strace runs re-execute, its Python twin) and exports it as one
//! `pub const CHAPTER`. The tour (`src/main.rs` at the workspace root) only lists the
//! chapters in the homework's order; its subcommands, its `--help`, the probe dispatch and
//! the twin beside each chapter all come from that list. So adding a lab is: a crate, one
//! line in the tour's list, one docs page (see `CONTRIBUTING.md`).
//!
//! `Tap` is how a chapter is told to capture its packets. lab-kit sits below the packet
//! capture crate, so it cannot name that type; `lab_capture::Chapter` is this type with
//! `lab_capture::Wiretap` filled in, and that is the one the labs use.

use crate::narrate::Narrator;
use crate::probe::{Probe, ProbeFn};
use crate::twin::Twin;

/// Any chapter's error, boxed: the tour reports it once, at its edge, whatever the lab.
pub type ChapterError = Box<dyn std::error::Error + Send + Sync>;

/// How a chapter runs: narrate every experiment to `narrator`, re-running probes through
/// `probe`, capturing packets through the tap.
pub type RunChapter<Tap> = fn(&mut Narrator, &Probe, &Tap) -> Result<(), ChapterError>;

/// One chapter of the tour: a question, and the lab that answers it.
pub struct Chapter<Tap: 'static> {
    /// The tour's subcommand for it (`socket-lab refused`), a lower-case word.
    pub slug: &'static str,
    /// Its number in the homework (1 to 5).
    pub number: u8,
    /// The question, as the chapter's heading shows it.
    pub question: &'static str,
    /// One line for the tour's `--help`: what the chapter shows.
    pub summary: &'static str,
    /// The one-paragraph answer the chapter ends with, after its evidence: what was just
    /// measured here.
    pub answer: &'static str,
    /// What differs on the students' other systems, from sources named in its docs page.
    pub elsewhere: &'static str,
    /// Its page under `docs/`, relative to the workspace root.
    pub docs: &'static str,
    /// Its Python twin in `python/`, run beside it by the tour.
    pub twin: Twin,
    /// The probes its strace experiments re-run in a child process (`exe __probe NAME`):
    /// the tour's binary must dispatch them too.
    pub probes: &'static [(&'static str, ProbeFn)],
    /// Runs the whole chapter.
    pub run: RunChapter<Tap>,
}

impl<Tap> Chapter<Tap> {
    /// The chapter's heading: `Question 1: …`.
    pub fn heading(&self) -> String {
        format!("Question {}: {}", self.number, self.question)
    }
}

impl<Tap> std::fmt::Debug for Chapter<Tap> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chapter")
            .field("slug", &self.slug)
            .field("number", &self.number)
            .field("question", &self.question)
            .finish_non_exhaustive()
    }
}
