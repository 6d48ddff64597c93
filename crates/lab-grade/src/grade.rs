//! A grading run, dispatched: the assignment's checks, run in a fresh [`Run`], scored by
//! the rubric.
//!
//! This module only chooses and runs; the checks live in [`crate::chat_server`],
//! [`crate::chat_client`] and [`crate::echo_server`], and the machinery they share in
//! [`crate::scene`]. Which checks run, and what "not run" lists contain, come from
//! [`crate::rubric`]: a check the rubric names and no assignment runs fails the unit test
//! `every_check_of_every_assignment_gets_exactly_one_verdict`.

use crate::program::{GraderPki, SetupError, StudentProgram};
use crate::report::GradeReport;
use crate::rubric::{Assignment, Rubric};
pub use crate::scene::{Deadlines, GradeOptions, Run};

/// Grades `program` for `assignment` and scores it with `rubric`.
pub fn grade(
    assignment: Assignment,
    program: &StudentProgram,
    pki: &GraderPki,
    options: GradeOptions,
    rubric: &Rubric,
) -> Result<GradeReport, SetupError> {
    let run = Run::new(program, pki, assignment != Assignment::ChatClient, options)?;
    let verdicts = run_checks(assignment, &run);
    let transport = if options.plaintext || assignment == Assignment::EchoServer {
        "plaintext"
    } else {
        "tls"
    };
    let mut report =
        crate::report::score(assignment, program.display(), transport, verdicts, rubric);
    report.program_starts = run.program_starts();
    Ok(report)
}

/// Every check of `assignment`, run: one verdict per check of its rubric, in its order
/// (the checks run in lanes side by side finish in any order).
pub fn run_checks(assignment: Assignment, run: &Run<'_>) -> Vec<crate::report::Verdict> {
    let mut verdicts = match assignment {
        Assignment::ChatServer => crate::chat_server::grade(run),
        Assignment::ChatClient => crate::chat_client::grade(run),
        Assignment::EchoServer => crate::echo_server::grade(run),
    };
    let checks = assignment.checks();
    verdicts.sort_by_key(|v| checks.iter().position(|c| c.id == v.id));
    verdicts
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `assignment`'s checks on `argv` with short deadlines; the verdicts' ids.
    fn verdict_ids(assignment: Assignment, argv: &[&str], plaintext: bool) -> Vec<&'static str> {
        let pki = GraderPki::generate().unwrap();
        let program = StudentProgram::new(argv.iter().map(|s| s.to_string()).collect()).unwrap();
        let mut run = Run::new(
            &program,
            &pki,
            assignment != Assignment::ChatClient,
            GradeOptions {
                plaintext,
                no_tls_required: false,
                deadlines: Deadlines {
                    start: Duration::from_secs(10),
                    step: Duration::from_millis(300),
                    watch: Duration::from_millis(100),
                    grace: Duration::from_millis(100),
                },
            },
        )
        .unwrap();
        run.language = crate::advice::Language::Python;
        run_checks(assignment, &run).iter().map(|v| v.id).collect()
    }

    /// A program that accepts (or makes) a connection and then says nothing: every scene
    /// opens, every wait times out, and in TLS mode every handshake fails.
    const SILENT_SERVER: &str = "import socket, sys, time\ns = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\nc = []\nwhile True: c.append(s.accept())\n";
    const SILENT_CLIENT: &str = "import socket, sys, time\ns = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\ntime.sleep(60)\n";

    /// A check the rubric names must get exactly one verdict on every path through its
    /// assignment (all pass, none could start, the handshake failed): a forgotten check, or
    /// a "not run" list that drifted from the rubric, fails here, not in a student's report.
    #[test]
    fn every_check_of_every_assignment_gets_exactly_one_verdict() {
        let cases: [(Assignment, &[&str], bool); 7] = [
            (Assignment::ChatServer, &["sh", "-c", "exit 3"], false),
            (
                Assignment::ChatServer,
                &["python3", "-c", SILENT_SERVER, "{port}"],
                false,
            ),
            (
                Assignment::ChatServer,
                &["python3", "-c", SILENT_SERVER, "{port}"],
                true,
            ),
            (Assignment::ChatClient, &["sh", "-c", "exit 3"], false),
            (
                Assignment::ChatClient,
                &["python3", "-c", SILENT_CLIENT, "{port}"],
                false,
            ),
            (
                Assignment::ChatClient,
                &["python3", "-c", SILENT_CLIENT, "{port}"],
                true,
            ),
            (
                Assignment::EchoServer,
                &["python3", "-c", SILENT_SERVER, "{port}"],
                true,
            ),
        ];
        for (assignment, argv, plaintext) in cases {
            let ids = verdict_ids(assignment, argv, plaintext);
            let rubric: Vec<&str> = assignment.checks().iter().map(|c| c.id).collect();
            assert_eq!(ids, rubric, "{assignment:?} {argv:?} plaintext={plaintext}");
        }
        let ids = verdict_ids(Assignment::EchoServer, &["sh", "-c", "exit 3"], true);
        let rubric: Vec<&str> = Assignment::EchoServer
            .checks()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, rubric);
    }
}
