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
//!
//! A batch in which *every* submission fails the same way at startup is almost certainly
//! a wrong `--run` template, not a class of zeros: [`same_startup_failure`] says so, and
//! the binary exits non-zero. Each program runs on a read-only copy of its folder (see
//! [`crate::sandbox`]), so `../bob/server.py` is out of reach; a submission folder that is
//! a symbolic link is refused; names that a spreadsheet would run as a formula
//! (`=HYPERLINK(…)`) are neutralised in `grades.csv`; both summary files are written to a
//! temporary name and renamed into place.

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
use crate::report::{GradeReport, escape_control, points_text};
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

/// The submission folders in `dir` (absolute), sorted by name; hidden folders are skipped.
/// A symbolic link is listed too, so that it gets a row saying it was refused.
pub fn submission_folders(dir: &Path) -> Result<Vec<PathBuf>, BatchError> {
    let read_error = |source| BatchError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let dir = std::path::absolute(dir).map_err(read_error)?;
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if (entry.path().is_dir() || is_link) && !hidden {
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

/// How a batch shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing until the end (library use, tests).
    Quiet,
    /// A progress bar on standard error, drawn at once (a terminal).
    Bar,
    /// One line per finished submission on standard output (a pipe, a CI log).
    Lines,
}

/// Grades every submission folder in `dir`, `settings.jobs` at a time, showing `progress`.
pub fn grade_folder(
    dir: &Path,
    settings: &BatchSettings,
    progress: Progress,
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
    let bar = if progress == Progress::Bar && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(folders.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} graded, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // The first frame now, not after the first submission: the TA sees the batch started.
    bar.tick();
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
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
                    bar.set_message(format!("last: {}", escape_control(&row.submission)));
                    bar.inc(1);
                    if progress == Progress::Lines {
                        crate::report::print_line(row_line(&row));
                    }
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

/// One submission's line for people: name, score, problem (control characters escaped).
pub fn row_line(row: &BatchRow) -> String {
    format!(
        "{:<30} {:>6} / {:<6} {}",
        escape_control(&row.submission),
        points_text(row.score),
        points_text(row.max_score),
        escape_control(row.problem.as_deref().unwrap_or(""))
    )
}

/// `1 submission`, `4 submissions`.
pub fn count_words(count: usize) -> String {
    if count == 1 {
        "1 submission".into()
    } else {
        format!("{count} submissions")
    }
}

/// When every submission (two or more) failed its first check the same way, the template
/// is almost certainly wrong: the failure that they share, in words.
pub fn same_startup_failure(summary: &BatchSummary) -> Option<String> {
    if summary.rows.len() < 2 {
        return None;
    }
    let first_failure = |row: &BatchRow| -> Option<String> {
        if let Some(problem) = &row.problem {
            return Some(problem.clone());
        }
        let report = row.report.as_ref()?;
        let first = report.checks.first()?;
        (first.status == crate::report::Status::Failed).then(|| first.feedback.join(" "))
    };
    // The same way: equal once the submission's own name and any numbers (ports, pids,
    // times) are set aside.
    let shape = |row: &BatchRow, text: &str| -> String {
        text.replace(&row.submission, "{name}")
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect()
    };
    let mut shapes = summary
        .rows
        .iter()
        .map(|row| first_failure(row).map(|text| (shape(row, &text), text)));
    let (first_shape, example) = shapes.next()??;
    for other in shapes {
        if other?.0 != first_shape {
            return None;
        }
    }
    Some(example)
}

fn grade_one(
    folder: &Path,
    argv: &[String],
    pki: &GraderPki,
    settings: &BatchSettings,
) -> BatchRow {
    let started = Instant::now();
    // A link could point anywhere (another student's folder, /etc): never followed.
    if std::fs::symlink_metadata(folder).is_ok_and(|m| m.file_type().is_symlink()) {
        return problem_row(
            folder,
            "refused: the submission folder is a symbolic link, not a folder of the batch".into(),
        );
    }
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
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["submission", "score", "max_score"];
    header.extend(&ids);
    header.push("problem");
    writer
        .write_record(&header)
        .map_err(|e| write_error(&csv_path, e.to_string()))?;
    for row in &summary.rows {
        let mut record = vec![
            spreadsheet_safe(&row.submission),
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
        record.push(spreadsheet_safe(row.problem.as_deref().unwrap_or_default()));
        writer
            .write_record(&record)
            .map_err(|e| write_error(&csv_path, e.to_string()))?;
    }
    let csv_bytes = writer
        .into_inner()
        .map_err(|e| write_error(&csv_path, e.to_string()))?;
    write_atomically(&csv_path, &csv_bytes).map_err(|e| write_error(&csv_path, e.to_string()))?;
    let json = serde_json::to_string_pretty(summary)
        .map_err(|e| write_error(&json_path, e.to_string()))?;
    write_atomically(&json_path, (json + "\n").as_bytes())
        .map_err(|e| write_error(&json_path, e.to_string()))?;
    Ok((csv_path, json_path))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader
/// sees the old file or the new one, never half of one, and nothing can slip in between.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return is a formula to Excel, LibreOffice and Google Sheets (OWASP, "CSV
/// Injection"), so it gets a leading `'`, which they show as text.
pub fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_formulas_and_sameness_are_said_right() {
        assert_eq!(count_words(1), "1 submission");
        assert_eq!(count_words(4), "4 submissions");
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("+1"), "'+1");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("alice"), "alice");
        let row = |name: &str, problem: &str| BatchRow {
            submission: name.into(),
            score: 0.0,
            max_score: 0.0,
            checks: BTreeMap::new(),
            problem: Some(problem.into()),
            elapsed_ms: 0,
            report: None,
        };
        let summary = |rows| BatchSummary {
            assignment: Assignment::EchoServer,
            template: "t".into(),
            jobs: 1,
            elapsed_ms: 0,
            rows,
        };
        let same = summary(vec![
            row("alice", "alice/srever.py: not found (port 4001)"),
            row("bob", "bob/srever.py: not found (port 4999)"),
        ]);
        assert!(same_startup_failure(&same).is_some());
        let different = summary(vec![row("alice", "exit code 1"), row("bob", "timed out")]);
        assert!(same_startup_failure(&different).is_none());
        let alone = summary(vec![row("alice", "exit code 1")]);
        assert!(same_startup_failure(&alone).is_none());
    }
}
