//! What a grading run found, scored by a rubric, and written for people or for a platform.
//!
//! The checks return [`Verdict`]s (what was seen, in plain words); [`score`] turns them
//! into a [`GradeReport`] with the rubric's points. The report is plain data: it is
//! narrated for a person ([`narrate_report`]), printed as JSON, or turned into what a
//! grading platform reads ([`crate::gradescope`], [`crate::classroom`]).

use std::time::Duration;

use lab_kit::narrate::Narrator;
use serde::Serialize;

use crate::rubric::{Assignment, Rubric};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// Not graded (a TLS check under `--no-tls-required`): worth no points either way.
    Skipped,
}

/// What one check saw, before points are attached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: &'static str,
    pub status: Status,
    /// The result and advice in plain words, for the student.
    pub feedback: Vec<String>,
    /// What the grader observed: lines the program printed, errors, negotiated versions.
    pub evidence: Vec<String>,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl Verdict {
    pub fn passed(id: &'static str, feedback: impl Into<String>) -> Self {
        Verdict {
            id,
            status: Status::Passed,
            feedback: vec![feedback.into()],
            evidence: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn failed(id: &'static str, feedback: impl Into<String>) -> Self {
        Verdict {
            status: Status::Failed,
            ..Verdict::passed(id, feedback)
        }
    }

    pub fn skipped(id: &'static str, feedback: impl Into<String>) -> Self {
        Verdict {
            status: Status::Skipped,
            ..Verdict::passed(id, feedback)
        }
    }

    /// Adds a sentence of feedback.
    pub fn say(mut self, text: impl Into<String>) -> Self {
        self.feedback.push(text.into());
        self
    }

    /// Adds sentences of advice (already plain words).
    pub fn advise(mut self, advice: Vec<String>) -> Self {
        for sentence in advice {
            if !self.feedback.contains(&sentence) {
                self.feedback.push(sentence);
            }
        }
        self
    }

    /// Adds a line of evidence.
    pub fn saw(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    /// Adds lines of evidence.
    pub fn saw_all(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }
}

/// One scored check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub points: f64,
    pub max_points: f64,
    pub feedback: Vec<String>,
    pub evidence: Vec<String>,
    pub elapsed_ms: u64,
}

/// The whole result for one program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeReport {
    pub assignment: Assignment,
    /// The student's command as given (with its placeholders).
    pub command: String,
    /// `tls` or `plaintext`: what the grader spoke.
    pub transport: &'static str,
    pub score: f64,
    pub max_score: f64,
    pub checks: Vec<CheckResult>,
    /// Gradescope visibility for every test.
    #[serde(skip)]
    pub visibility: String,
    /// How many times the grader started the program (for the benchmark).
    #[serde(skip)]
    pub program_starts: usize,
}

/// Attaches the rubric's points to the verdicts, in the rubric's order of checks.
pub fn score(
    assignment: Assignment,
    command: String,
    transport: &'static str,
    verdicts: Vec<Verdict>,
    rubric: &Rubric,
) -> GradeReport {
    let mut checks = Vec::new();
    for spec in assignment.checks() {
        let verdict = verdicts
            .iter()
            .find(|v| v.id == spec.id)
            .cloned()
            .unwrap_or_else(|| {
                Verdict::failed(
                    spec.id,
                    "This check did not run (a bug in the grader: please report it).",
                )
            });
        let max_points = match verdict.status {
            Status::Skipped => 0.0,
            _ => rubric.points(assignment, spec),
        };
        let points = match verdict.status {
            Status::Passed => max_points,
            _ => 0.0,
        };
        checks.push(CheckResult {
            id: spec.id,
            title: spec.title,
            status: verdict.status,
            points,
            max_points,
            // Every path that shows a report (text, JSON, Gradescope, batch) starts here.
            feedback: verdict.feedback.iter().map(|s| bounded(s)).collect(),
            evidence: verdict.evidence.iter().map(|s| bounded(s)).collect(),
            elapsed_ms: verdict.elapsed.as_millis() as u64,
        });
    }
    GradeReport {
        assignment,
        command,
        transport,
        score: checks.iter().map(|c| c.points).sum(),
        max_score: checks.iter().map(|c| c.max_points).sum(),
        checks,
        visibility: rubric.visibility.clone(),
        program_starts: 0,
    }
}

/// Prints one line on standard output, for the person or the script reading it.
///
/// A reader that went away (`lab-grade … | head -1`) is no reason to stop a grading: the
/// reports written to files are what count, so a closed pipe is ignored (Rust would
/// otherwise panic in `println!`). Any other failure is said on stderr.
pub fn print_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("lab-grade: could not write to standard output: {e}");
    }
}

/// `text` with every control character (ESC, `\r`, `\n`, …) and every bidirectional
/// override written as an escape (`\u{1b}`): a program's output quoted in a report can then
/// neither move the TA's cursor, recolour the terminal, nor print a fake `Score: 18 / 18`.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The most of one feedback or evidence string a report keeps: a program's output quoted
/// in it (an echo that came back as a megabyte of junk) is cut, and says so.
pub const QUOTE_LIMIT: usize = 600;

/// `text` escaped ([`escape_control`]) and cut to [`QUOTE_LIMIT`] characters.
pub fn bounded(text: &str) -> String {
    let escaped = escape_control(text);
    let total = escaped.chars().count();
    if total <= QUOTE_LIMIT {
        return escaped;
    }
    let kept: String = escaped.chars().take(QUOTE_LIMIT).collect();
    format!("{kept}… [{} more characters cut]", total - QUOTE_LIMIT)
}

/// `2`, `0.5`: points without a useless `.0`.
pub fn points_text(points: f64) -> String {
    if points.fract() == 0.0 {
        format!("{points:.0}")
    } else {
        format!("{points}")
    }
}

/// Prints the report for a person: each check, its points, feedback and evidence.
pub fn narrate_report(report: &GradeReport, narrator: &mut Narrator) -> std::io::Result<()> {
    let what = match report.assignment {
        Assignment::ChatServer => "a chat server",
        Assignment::ChatClient => "a chat client",
        Assignment::EchoServer => "an echo server",
    };
    narrator.heading(&format!(
        "Grading {what} ({}): {}",
        report.transport, report.command
    ))?;
    for check in &report.checks {
        let mark = match check.status {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
        };
        narrator.section(&format!(
            "[{mark}] {} ({}/{})",
            check.title,
            points_text(check.points),
            points_text(check.max_points)
        ))?;
        for sentence in &check.feedback {
            narrator.say(sentence)?;
        }
        for line in &check.evidence {
            narrator.evidence(line)?;
        }
        narrator.fact("took", format!("{} ms", check.elapsed_ms))?;
    }
    narrator.section(&format!(
        "Score: {} / {}",
        points_text(report.score),
        points_text(report.max_score)
    ))?;
    narrator.record(report)
}
