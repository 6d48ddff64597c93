//! Grading a folder of submissions, several at a time, with a summary at the end.
//!
//! Each submission is a folder; its program runs with `{dir}` set to that folder and the
//! folder as its working directory. Every grading has its own ports (fresh from the kernel
//! for each start) and its own temporary folder of certificates, so submissions graded in
//! parallel cannot see or disturb each other. The certificates themselves are generated
//! once per batch and written into each run's folder.
//!
//! One submission can never stop the batch: whatever its program does, its grading ends
//! in a row of the summary, with a score or with the problem that prevented one.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::grade::{GradeOptions, grade};
use crate::program::{GraderPki, StudentProgram};
use crate::report::{GradeReport, points_text};
use crate::rubric::{Assignment, Rubric};

/// What went wrong before any submission could be graded.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("could not read the submissions folder {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no submission folders")]
    Empty { path: PathBuf },
    #[error(
        "the --run template is empty: give the command, e.g. 'python3 {{dir}}/server.py {{port}}'"
    )]
    EmptyTemplate,
    #[error(transparent)]
    Setup(#[from] crate::program::SetupError),
    #[error("could not write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// How to grade the batch.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub assignment: Assignment,
    /// The command template; split at spaces (no shell), placeholders filled per word.
    pub template: String,
    pub jobs: usize,
    pub options: GradeOptions,
    pub rubric: Rubric,
}

/// One submission's line in the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRow {
    pub submission: String,
    pub score: f64,
    pub max_score: f64,
    /// Points per check id.
    pub checks: BTreeMap<String, f64>,
    /// Why there is no real score (the grader could not run it), if so.
    pub problem: Option<String>,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<GradeReport>,
}

/// The whole batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchSummary {
    pub assignment: Assignment,
    pub template: String,
    pub jobs: usize,
    pub elapsed_ms: u64,
    pub rows: Vec<BatchRow>,
}

/// The submission folders in `dir`, sorted by name (hidden folders are skipped).
pub fn submission_folders(dir: &Path) -> Result<Vec<PathBuf>, BatchError> {
    let read_error = |source| BatchError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.path().is_dir() && !hidden {
            folders.push(entry.path());
        }
    }
    folders.sort();
    if folders.is_empty() {
        return Err(BatchError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(folders)
}

/// Grades every submission folder in `dir`, `settings.jobs` at a time. With `progress`, a
/// progress bar is drawn on standard error if it is a terminal (never into a pipe or a log).
pub fn grade_folder(
    dir: &Path,
    settings: &BatchSettings,
    progress: bool,
) -> Result<BatchSummary, BatchError> {
    let argv: Vec<String> = settings
        .template
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if argv.is_empty() {
        return Err(BatchError::EmptyTemplate);
    }
    let folders = submission_folders(dir)?;
    let pki = GraderPki::generate()?;
    let started = Instant::now();
    let bar = if progress && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(folders.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} graded, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<BatchRow>>> = Mutex::new(vec![None; folders.len()]);
    std::thread::scope(|scope| {
        for _ in 0..settings.jobs.clamp(1, folders.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(folder) = folders.get(index) else {
                        break;
                    };
                    let row = grade_one(folder, &argv, &pki, settings);
                    bar.set_message(format!("last: {}", row.submission));
                    bar.inc(1);
                    if let Ok(mut rows) = rows.lock() {
                        rows[index] = Some(row);
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let rows = rows
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .zip(&folders)
        .map(|(row, folder)| {
            row.unwrap_or_else(|| problem_row(folder, "the grader lost this result".into()))
        })
        .collect();
    Ok(BatchSummary {
        assignment: settings.assignment,
        template: settings.template.clone(),
        jobs: settings.jobs,
        elapsed_ms: started.elapsed().as_millis() as u64,
        rows,
    })
}

fn folder_name(folder: &Path) -> String {
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| folder.display().to_string())
}

fn problem_row(folder: &Path, problem: String) -> BatchRow {
    BatchRow {
        submission: folder_name(folder),
        score: 0.0,
        max_score: 0.0,
        checks: BTreeMap::new(),
        problem: Some(problem),
        elapsed_ms: 0,
        report: None,
    }
}

fn grade_one(
    folder: &Path,
    argv: &[String],
    pki: &GraderPki,
    settings: &BatchSettings,
) -> BatchRow {
    let started = Instant::now();
    let program = StudentProgram {
        argv: argv.to_vec(),
        workdir: Some(folder.to_path_buf()),
        dir: Some(folder.to_path_buf()),
    };
    // A bug in the grader must cost one row, not the batch.
    let graded = catch_unwind(AssertUnwindSafe(|| {
        grade(
            settings.assignment,
            &program,
            pki,
            settings.options,
            &settings.rubric,
        )
    }));
    let mut row = match graded {
        Ok(Ok(report)) => BatchRow {
            submission: folder_name(folder),
            score: report.score,
            max_score: report.max_score,
            checks: report
                .checks
                .iter()
                .map(|c| (c.id.to_string(), c.points))
                .collect(),
            problem: None,
            elapsed_ms: 0,
            report: Some(report),
        },
        Ok(Err(error)) => problem_row(folder, format!("could not grade: {error}")),
        Err(_) => problem_row(folder, "the grader itself failed on this submission".into()),
    };
    row.elapsed_ms = started.elapsed().as_millis() as u64;
    row
}

/// Writes `grades.csv` (one row per submission, one column per check) and `grades.json`
/// (everything, with each full report) into `out`.
pub fn write_summary(summary: &BatchSummary, out: &Path) -> Result<(PathBuf, PathBuf), BatchError> {
    let write_error = |path: &Path, message: String| BatchError::Write {
        path: path.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e.to_string()))?;
    let csv_path = out.join("grades.csv");
    let json_path = out.join("grades.json");
    let ids: Vec<&str> = summary.assignment.checks().iter().map(|c| c.id).collect();
    let mut writer =
        csv::Writer::from_path(&csv_path).map_err(|e| write_error(&csv_path, e.to_string()))?;
    let mut header = vec!["submission", "score", "max_score"];
    header.extend(&ids);
    header.push("problem");
    writer
        .write_record(&header)
        .map_err(|e| write_error(&csv_path, e.to_string()))?;
    for row in &summary.rows {
        let mut record = vec![
            row.submission.clone(),
            points_text(row.score),
            points_text(row.max_score),
        ];
        for id in &ids {
            record.push(
                row.checks
                    .get(*id)
                    .map(|p| points_text(*p))
                    .unwrap_or_default(),
            );
        }
        record.push(row.problem.clone().unwrap_or_default());
        writer
            .write_record(&record)
            .map_err(|e| write_error(&csv_path, e.to_string()))?;
    }
    writer
        .flush()
        .map_err(|e| write_error(&csv_path, e.to_string()))?;
    let json = serde_json::to_string_pretty(summary)
        .map_err(|e| write_error(&json_path, e.to_string()))?;
    std::fs::write(&json_path, json + "\n").map_err(|e| write_error(&json_path, e.to_string()))?;
    Ok((csv_path, json_path))
}
