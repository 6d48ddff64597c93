//! GitHub Classroom: the runner result its grading reporter reads.
//!
//! In GitHub Classroom (2024 and later) a push runs the workflow
//! `.github/workflows/classroom.yml`; each grading step leaves an output `result`, and the
//! last step, `classroom-resources/autograding-grading-reporter`, reads each step's result
//! from an environment variable `<STEP-ID>_RESULTS`, prints it in the log and sends the
//! points to Classroom. A result is base64 of a JSON object (the format the reporter's own
//! graders write):
//!
//! ```json
//! {"version": 1, "status": "pass", "max_score": 18,
//!  "tests": [{"name": "…", "status": "pass", "score": 1, "message": "…", "test_code": "",
//!             "filename": "", "line_no": 0, "duration": 12}]}
//! ```
//!
//! What the reporter does with it (its source, `src/`): the points sent to Classroom are the
//! sum of `tests[].score` out of `max_score` (a runner with no `max_score` counts for
//! nothing); the table in the log shows instead (passed tests ÷ tests) × `max_score`, so it
//! differs when checks weigh differently; `status` `fail` or `error` marks the job failed;
//! `message` is printed only for `error` tests, and `line_no` must be 0 to print no line.
//! `lab-grade --format classroom` therefore prints the readable report on stderr, where the
//! student reads the whole feedback in the step's log.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::report::{GradeReport, Status};

/// One test (one check) in a runner result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerTest {
    pub name: String,
    /// `pass`, `fail` or `error`.
    pub status: &'static str,
    pub score: f64,
    /// The feedback, in plain words.
    pub message: String,
    pub test_code: String,
    pub filename: String,
    /// 0: the reporter prints a line number only when it is not 0.
    pub line_no: u32,
    /// Milliseconds.
    pub duration: u64,
}

/// The JSON a grading step hands to the reporter (before base64).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerResult {
    pub version: u32,
    /// `pass` (every check passed), `fail`, or `error` (the grader could not grade).
    pub status: &'static str,
    pub max_score: f64,
    pub tests: Vec<RunnerTest>,
}

impl RunnerResult {
    /// The result for a completed grading.
    pub fn from_report(report: &GradeReport) -> Self {
        let tests: Vec<RunnerTest> = report
            .checks
            .iter()
            // A skipped check was not graded: left out, so it does not count as a test.
            .filter(|check| check.status != Status::Skipped)
            .map(|check| RunnerTest {
                name: check.title.to_string(),
                status: if check.status == Status::Failed {
                    "fail"
                } else {
                    "pass"
                },
                score: check.points,
                message: check.feedback.join(" "),
                test_code: String::new(),
                filename: String::new(),
                line_no: 0,
                duration: check.elapsed_ms,
            })
            .collect();
        RunnerResult {
            version: 1,
            status: if tests.iter().all(|t| t.status == "pass") {
                "pass"
            } else {
                "fail"
            },
            max_score: report.max_score,
            tests,
        }
    }

    /// The result when the grader itself could not grade: one `error` test saying why, 0
    /// points out of `max_score`.
    pub fn error(message: &str, max_score: f64, elapsed: Duration) -> Self {
        RunnerResult {
            version: 1,
            status: "error",
            max_score,
            tests: vec![RunnerTest {
                name: "lab-grade".into(),
                status: "error",
                score: 0.0,
                message: format!("The grader could not grade this program: {message}"),
                test_code: String::new(),
                filename: String::new(),
                line_no: 0,
                duration: elapsed.as_millis() as u64,
            }],
        }
    }

    /// Base64 of the JSON: the value of the step output `result`.
    pub fn encode(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// Appends `result=ENCODED` to the file GitHub Actions names in `$GITHUB_OUTPUT`, which
/// makes it the step's output `result`.
pub fn append_step_output(path: &Path, encoded: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    writeln!(file, "result={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_result_decodes_to_version_1_with_zero_points() {
        let encoded =
            RunnerResult::error("no such rubric", 18.0, Duration::from_millis(5)).encode();
        let json = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["status"], "error");
        assert_eq!(value["max_score"], 18.0);
        assert_eq!(value["tests"][0]["score"], 0.0);
        assert_eq!(value["tests"][0]["line_no"], 0);
        assert!(
            value["tests"][0]["message"]
                .as_str()
                .unwrap()
                .contains("no such rubric")
        );
    }

    #[test]
    fn the_step_output_is_appended_as_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        std::fs::write(&path, "earlier=1\n").unwrap();
        append_step_output(&path, "eyJ2IjoxfQ==").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "earlier=1\nresult=eyJ2IjoxfQ==\n"
        );
    }
}
