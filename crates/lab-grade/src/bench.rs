//! `lab-grade bench`: how long grading one submission takes, and how many times the
//! program is started, for each reference submission, next to the targets of issue 10.
//!
//! A course grades a class of 300 on Gradescope's half CPU: what costs time is starting the
//! student's program (a JVM takes a second or more, a Python asyncio server a tenth) and
//! the seconds spent watching for a crash after a check provokes one. The grader starts a
//! program only a few times (checks share a run, see [`crate::scene`]) and watches in lanes
//! side by side; this benchmark shows what that buys, one reference submission per line.
//!
//! Speed is measured here, never in a timed test: the figures depend on the machine and on
//! what else runs on it, so the load is printed first and only figures of the same run are
//! compared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab_kit::narrate::Narrator;
use serde::Serialize;

use crate::program::{GraderPki, SetupError, StudentProgram};
use crate::rubric::{Assignment, Rubric};
use crate::scene::{Deadlines, GradeOptions};

/// One reference submission in `examples/`, and how a TA grades it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// What it is, for the table: `chat server, Python`.
    pub name: &'static str,
    pub assignment: Assignment,
    /// The command, run from the repository root.
    pub argv: &'static [&'static str],
    /// A tool it needs, if not everyone has it (`node`, `javac`, `cc`).
    pub needs: Option<&'static str>,
    /// The target for its grading time, if it names one.
    pub target: Option<Duration>,
}

/// The reference submissions, in the order of the table.
pub const REFERENCES: &[Reference] = &[
    Reference {
        name: "chat server, Python",
        assignment: Assignment::ChatServer,
        argv: &[
            "python3",
            "examples/chat/secure/server.py",
            "{port}",
            "{cert}",
            "{key}",
        ],
        needs: None,
        target: Some(Duration::from_millis(2500)),
    },
    Reference {
        name: "chat server, Node.js",
        assignment: Assignment::ChatServer,
        argv: &[
            "node",
            "examples/chat/secure-node/server.js",
            "{port}",
            "{cert}",
            "{key}",
        ],
        needs: Some("node"),
        target: None,
    },
    Reference {
        name: "chat server, Java",
        assignment: Assignment::ChatServer,
        argv: &[
            "sh",
            "examples/chat/secure-java/run.sh",
            "{port}",
            "{cert}",
            "{key}",
        ],
        needs: Some("javac"),
        target: Some(Duration::from_secs(6)),
    },
    Reference {
        name: "chat client, Python",
        assignment: Assignment::ChatClient,
        argv: &[
            "python3",
            "examples/chat/secure/client.py",
            "{host}",
            "{port}",
            "{ca}",
        ],
        needs: None,
        target: None,
    },
    Reference {
        name: "chat client, Node.js",
        assignment: Assignment::ChatClient,
        argv: &[
            "node",
            "examples/chat/secure-node/client.js",
            "{host}",
            "{port}",
            "{ca}",
        ],
        needs: Some("node"),
        target: None,
    },
    Reference {
        name: "chat client, Java",
        assignment: Assignment::ChatClient,
        argv: &[
            "sh",
            "examples/chat/secure-java/client.sh",
            "{host}",
            "{port}",
            "{ca}",
        ],
        needs: Some("javac"),
        target: None,
    },
    Reference {
        name: "echo server, Python",
        assignment: Assignment::EchoServer,
        argv: &["python3", "examples/echo/correct/server.py", "{port}"],
        needs: None,
        target: None,
    },
    Reference {
        name: "echo server, C",
        assignment: Assignment::EchoServer,
        argv: &["sh", "examples/echo/correct-c/run.sh", "{port}"],
        needs: Some("cc"),
        target: None,
    },
];

/// What one reference's gradings measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub name: &'static str,
    /// The median wall time of one grading.
    pub median_ms: u128,
    /// The slowest of the gradings.
    pub max_ms: u128,
    /// How many times one grading started the program (the same in every grading of a
    /// correct submission).
    pub program_starts: usize,
    pub score: f64,
    pub max_score: f64,
    pub target_ms: Option<u128>,
    /// True when every grading gave full marks (a reference that loses points is a bug
    /// in the reference or the grader, not a figure).
    pub full_marks: bool,
}

impl Measured {
    /// `met`, `NOT met` or nothing, against the reference's target.
    pub fn target_words(&self) -> String {
        match self.target_ms {
            Some(target) => format!(
                "target at most {:.1} s — {}",
                target as f64 / 1000.0,
                lab_kit::bench::verdict(Some(self.median_ms <= target))
            ),
            None => "no target".into(),
        }
    }
}

/// Grades `reference` (from `root`, the repository root) `runs` times with the default
/// deadlines, as `lab-grade chat-server …` would.
pub fn measure(
    reference: &Reference,
    root: &Path,
    pki: &GraderPki,
    runs: usize,
) -> Result<Measured, SetupError> {
    let mut program = StudentProgram::new(reference.argv.iter().map(|s| s.to_string()).collect())?;
    program.workdir = Some(root.to_path_buf());
    let options = GradeOptions {
        deadlines: Deadlines::default(),
        ..GradeOptions::default()
    };
    let rubric = Rubric::built_in();
    let mut walls = Vec::new();
    let mut last = None;
    let mut full_marks = true;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let report = crate::grade(reference.assignment, &program, pki, options, &rubric)?;
        walls.push(started.elapsed());
        full_marks &= report.score == report.max_score;
        last = Some(report);
    }
    walls.sort();
    let Some(report) = last else {
        return Err(SetupError::NoCommand);
    };
    Ok(Measured {
        name: reference.name,
        median_ms: lab_kit::bench::percentile(&walls, 50.0).as_millis(),
        max_ms: lab_kit::bench::percentile(&walls, 100.0).as_millis(),
        program_starts: report.program_starts,
        score: report.score,
        max_score: report.max_score,
        target_ms: reference.target.map(|t| t.as_millis()),
        full_marks,
    })
}

/// True if `tool` is a file in a folder of the `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|folder| folder.join(tool).is_file()))
}

/// The repository root to grade the references from: `root` if given, else the current
/// folder if it holds `examples/`, else the source tree this binary was built from.
pub fn find_root(root: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match root {
        Some(root) => vec![root.to_path_buf()],
        None => vec![
            PathBuf::from("."),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        ],
    };
    candidates
        .into_iter()
        .find(|c| c.join("examples/chat/secure/server.py").is_file())
        .and_then(|c| c.canonicalize().ok())
        .ok_or_else(|| {
            "the reference submissions (examples/chat/secure/server.py …) are not here: run from the repository root, or give it with --root".to_string()
        })
}

/// Runs and narrates the benchmark: every reference whose tool is installed, `runs` times.
pub fn run(root: &Path, runs: usize, n: &mut Narrator) -> Result<Vec<Measured>, BenchError> {
    n.heading("lab-grade bench: grading the reference submissions, as a TA would")?;
    lab_kit::bench::narrate_conditions("cargo run --release -p lab-grade -- bench", n)?;
    n.say(&format!(
        "Each reference graded {runs} time(s) with the default deadlines; the median wall time of one grading, the number of times one grading started the program, and the issue's target."
    ))?;
    let pki = GraderPki::generate()?;
    let mut measured = Vec::new();
    n.section("Wall time to grade one submission, and program starts")?;
    for reference in REFERENCES {
        if let Some(tool) = reference
            .needs
            .filter(|tool| lab_kit::child::find_program(tool).is_none())
        {
            n.skipped(reference.name, &format!("`{tool}` is not installed"))?;
            continue;
        }
        let m = measure(reference, root, &pki, runs)?;
        n.fact(
            m.name,
            format!(
                "{:>5.2} s (max {:.2} s), {} starts, {}/{} points; {}",
                m.median_ms as f64 / 1000.0,
                m.max_ms as f64 / 1000.0,
                m.program_starts,
                m.score,
                m.max_score,
                m.target_words()
            ),
        )?;
        if !m.full_marks {
            n.warn(&format!(
                "{} lost points in at least one grading: a reference must get full marks",
                m.name
            ))?;
        }
        n.record(&m)?;
        measured.push(m);
    }
    Ok(measured)
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("could not set up the grader: {0}")]
    Setup(#[from] SetupError),
    #[error("could not write the results: {0}")]
    Narration(#[from] std::io::Error),
}
