//! Shared by the integration tests: one PKI per test binary, the repository root, filters.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use lab_grade::report::narrate_report;
use lab_grade::{
    Assignment, Deadlines, GradeOptions, GradeReport, GraderPki, Rubric, StudentProgram,
};

/// Generated once per test binary: key generation is cheap, but not free.
pub fn pki() -> &'static GraderPki {
    static PKI: OnceLock<GraderPki> = OnceLock::new();
    PKI.get_or_init(|| GraderPki::generate().unwrap())
}

/// The repository root, where `examples/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Deadlines for tests: generous for what a working program does in milliseconds, short
/// enough that checks which fail by waiting (strict alternation) keep the suite quick.
pub fn test_deadlines() -> Deadlines {
    Deadlines {
        start: Duration::from_secs(15),
        step: Duration::from_secs(3),
        watch: Duration::from_millis(1000),
        grace: Duration::from_millis(300),
    }
}

pub fn options(plaintext: bool) -> GradeOptions {
    GradeOptions {
        plaintext,
        no_tls_required: false,
        deadlines: test_deadlines(),
    }
}

/// A program run from `dir` (the repository root when `None`).
pub fn program(argv: &[&str], dir: Option<PathBuf>) -> StudentProgram {
    let mut program = StudentProgram::new(argv.iter().map(|s| s.to_string()).collect()).unwrap();
    program.workdir = Some(dir.unwrap_or_else(repo_root));
    program
}

pub fn grade(assignment: Assignment, argv: &[&str], options: GradeOptions) -> GradeReport {
    lab_grade::grade(
        assignment,
        &program(argv, None),
        pki(),
        options,
        &Rubric::built_in(),
    )
    .unwrap()
}

pub fn narrated(report: &GradeReport) -> String {
    lab_test_support::narration(|n| narrate_report(report, n))
}

/// This crate's snapshot filters, applied after lab-test-support's shared ones: the
/// grader's tokens, Python's printed addresses, and the two names the kernel may give a
/// write to a vanished peer (which one depends on timing).
pub fn grader_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // The fresh random token in every line the grader sends.
        (r"-[0-9a-f]{8}\b", "-[TOKEN]"),
        (r"segments [0-9a-f]{8}:", "segments [TOKEN]:"),
        (r"\('127\.0\.0\.1', \d+\)", "('127.0.0.1', [PORT])"),
        (
            r"(?:BrokenPipeError|ConnectionResetError): \[Errno \d+\] [A-Za-z ]+",
            "[PEER-GONE ERROR]",
        ),
    ]
}

pub fn status_of(report: &GradeReport, id: &str) -> lab_grade::report::Status {
    report.checks.iter().find(|c| c.id == id).unwrap().status
}

/// True if `tool` runs here; otherwise says the test is skipped (a failure under CI).
pub fn have(tool: &str, what: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        lab_test_support::skip_unless_ci(what, format!("`{tool}` is not installed"));
    }
    found
}

/// A temporary folder for a test's own student programs, readable by everyone: as root
/// the grader runs a program as a throwaway user, for whom a 0700 folder is closed.
pub fn program_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Writes `text` to `dir/name`, readable by everyone.
pub fn write_program(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A student program that a test writes into a fresh folder (readable by the throwaway
/// user), then grades over plaintext: the shape of every test of a small program written in
/// the test (`languages`, `hostile`).
pub struct Written {
    pub dir: tempfile::TempDir,
    /// The program file's path.
    pub path: String,
}

impl Written {
    /// `source` written as `file` in a fresh folder.
    pub fn new(file: &str, source: &str) -> Self {
        let dir = program_dir();
        let path = write_program(dir.path(), file, source);
        Written { dir, path }
    }

    /// `source`, written as `file` and compiled with gcc into `binary` beside it (the
    /// binary's path is [`Written::path`]).
    pub fn compiled(file: &str, source: &str, binary: &str) -> Self {
        let written = Written::new(file, source);
        let output = written.dir.path().join(binary);
        let status = std::process::Command::new("gcc")
            .args(["-O1", "-o"])
            .arg(&output)
            .arg(&written.path)
            .status()
            .unwrap();
        assert!(status.success(), "gcc failed on {file}");
        Written {
            path: output.display().to_string(),
            ..written
        }
    }

    /// Grades `argv`, where `{file}` is this program's path, as `assignment` over plaintext
    /// with the test deadlines, run from its folder.
    pub fn grade(&self, assignment: Assignment, argv: &[&str]) -> GradeReport {
        let argv: Vec<&str> = argv
            .iter()
            .map(|word| {
                if *word == "{file}" {
                    &self.path[..]
                } else {
                    word
                }
            })
            .collect();
        grade_in(assignment, &argv, self.dir.path(), options(true))
    }
}

/// Asserts that check `id` of `report` has `status` (if not, the message names `context`,
/// such as `run 2`, and quotes the check) and returns its feedback and evidence as one text.
pub fn expect(
    report: &GradeReport,
    id: &str,
    status: lab_grade::report::Status,
    context: &str,
) -> String {
    let text = said(report, id);
    assert_eq!(check(report, id).status, status, "{context} {id}: {text}");
    text
}

/// Grades `argv` (run from `dir`) with the test deadlines.
pub fn grade_in(
    assignment: Assignment,
    argv: &[&str],
    dir: &std::path::Path,
    options: GradeOptions,
) -> GradeReport {
    lab_grade::grade(
        assignment,
        &program(argv, Some(dir.to_path_buf())),
        pki(),
        options,
        &Rubric::built_in(),
    )
    .unwrap()
}

pub fn check<'a>(report: &'a GradeReport, id: &str) -> &'a lab_grade::report::CheckResult {
    report.checks.iter().find(|c| c.id == id).unwrap()
}

/// A check's feedback and evidence as one text.
pub fn said(report: &GradeReport, id: &str) -> String {
    let check = check(report, id);
    format!(
        "{}\n{}",
        check.feedback.join("\n"),
        check.evidence.join("\n")
    )
}
