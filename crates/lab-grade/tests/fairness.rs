//! Fair under load: each reference submission gets the same grade every time, while busy
//! processes compete for the CPUs (Gradescope gives a submission half a CPU; a TA's laptop
//! compiles something else at the same time). A verdict that flips under load is a check
//! whose result depends on timing: a bug.
//!
//! On demand (several minutes):
//! `cargo test -p lab-grade --test main -- --ignored --nocapture fairness::`

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::common::{have, narrated, options, pki, program};
use lab_grade::bench::REFERENCES;
use lab_grade::report::Status;
use lab_grade::{Assignment, Rubric};

/// How many gradings of each submission must agree.
const RUNS: usize = 10;
/// Busy loops competing for the 2 CPUs: twice as many as there are cores.
const BUSY: usize = 4;

/// Busy loops, each in its own process group, bounded by `timeout` even if the test is
/// killed, and ended (the whole group) when dropped.
struct Busy(Vec<Child>);

impl Busy {
    fn start(count: usize) -> Self {
        let children = (0..count)
            .map(|_| {
                Command::new("timeout")
                    .args(["1800", "sh", "-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .unwrap()
            })
            .collect();
        Busy(children)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SAFETY: signals only the process group this test created for the loop.
            unsafe {
                libc::killpg(child.id() as i32, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

fn load() -> String {
    lab_kit::bench::load_average().unwrap_or_else(|| "?".to_string())
}

/// A submission to grade, and how.
struct Case {
    name: &'static str,
    assignment: Assignment,
    argv: &'static [&'static str],
    plaintext: bool,
    needs: Option<&'static str>,
}

/// The broken references, graded as the examples tests grade them: their failures must be
/// as stable as the others' passes.
const BROKEN: &[(&str, Assignment, &[&str], bool)] = &[
    (
        "insecure chat server, --plaintext",
        Assignment::ChatServer,
        &["python3", "examples/chat/insecure/server.py", "{port}"],
        true,
    ),
    (
        "insecure chat client, --plaintext",
        Assignment::ChatClient,
        &["python3", "examples/chat/insecure/client.py", "{port}"],
        true,
    ),
    (
        "unverified chat client",
        Assignment::ChatClient,
        &[
            "python3",
            "examples/chat/unverified/client.py",
            "{host}",
            "{port}",
            "{ca}",
        ],
        false,
    ),
    (
        "broken echo server",
        Assignment::EchoServer,
        &["python3", "examples/echo/broken/server.py", "{port}"],
        true,
    ),
    (
        "one-recv echo server, C",
        Assignment::EchoServer,
        &["sh", "examples/echo/one-recv-c/run.sh", "{port}"],
        true,
    ),
];

#[test]
#[ignore = "several minutes with the CPUs saturated: run by hand, figures in the report"]
fn every_reference_gets_the_same_grade_ten_times_while_busy_loops_compete() {
    let mut cases: Vec<Case> = REFERENCES
        .iter()
        .map(|r| Case {
            name: r.name,
            assignment: r.assignment,
            argv: r.argv,
            plaintext: false,
            needs: r.needs,
        })
        .collect();
    cases.extend(
        BROKEN
            .iter()
            .map(|&(name, assignment, argv, plaintext)| Case {
                name,
                assignment,
                argv,
                plaintext,
                needs: (argv[0] == "sh").then_some("cc"),
            }),
    );
    let before = load();
    let busy = Busy::start(BUSY);
    let started = Instant::now();
    let mut flips = Vec::new();
    for Case {
        name,
        assignment,
        argv,
        plaintext,
        needs,
    } in cases
    {
        if let Some(tool) = needs
            && !have(tool, name)
        {
            continue;
        }
        let program = program(argv, None);
        // The first grading, and its report: when a later one differs, both are shown.
        let mut first: Option<((f64, Vec<Status>), String)> = None;
        let case_started = Instant::now();
        for run in 1..=RUNS {
            let report = lab_grade::grade(
                assignment,
                &program,
                pki(),
                options(plaintext),
                &Rubric::built_in(),
            )
            .unwrap();
            let grade = (
                report.score,
                report.checks.iter().map(|c| c.status).collect::<Vec<_>>(),
            );
            match &first {
                None => first = Some((grade, narrated(&report))),
                Some((expected, first_report)) if *expected != grade => flips.push(format!(
                    "{name}, run {run}: {} instead of {}\n{}\nrun 1 was:\n{first_report}",
                    grade.0,
                    expected.0,
                    narrated(&report)
                )),
                Some(_) => {}
            }
        }
        eprintln!(
            "{name}: {RUNS} gradings, {} points each time: {}, {:.1} s, load {}",
            first.as_ref().map(|f| f.0.0).unwrap_or_default(),
            if flips.iter().any(|f| f.starts_with(name)) {
                "NOT identical"
            } else {
                "identical"
            },
            case_started.elapsed().as_secs_f64(),
            load()
        );
    }
    drop(busy);
    eprintln!(
        "{BUSY} busy loops; load {before} before, {} at the end; {:.0} s in all",
        load(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        flips.is_empty(),
        "verdicts that flipped:\n{}",
        flips.join("\n\n")
    );
}
