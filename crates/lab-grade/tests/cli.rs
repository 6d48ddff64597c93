//! The `lab-grade` binary: output formats, the rubric file, and its error messages.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn lab_grade() -> Command {
    let mut cmd = Command::new(lab_test_support::bin!("lab-grade"));
    cmd.current_dir(crate::common::repo_root())
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn gradescope_results_have_the_documented_fields_and_the_rubric_applies() {
    let dir = tempfile::tempdir().unwrap();
    let rubric = dir.path().join("rubric.toml");
    std::fs::write(
        &rubric,
        "[chat-server]\nfull_duplex = 5\nstdin_line_sent = 0.5\n\n[gradescope]\nvisibility = \"after_published\"\n",
    )
    .unwrap();
    let results = dir.path().join("results.json");
    lab_grade()
        .args([
            "chat-server",
            "--plaintext",
            "--no-tls-required",
            "--step-timeout",
            "3",
        ])
        .arg("--rubric")
        .arg(&rubric)
        .args(["--format", "gradescope", "--output"])
        .arg(&results)
        .args([
            "--",
            "python3",
            "examples/chat/insecure/server.py",
            "{port}",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("written to"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    // Gradescope's documented top-level fields.
    let score = json["score"].as_f64().expect("score is a number");
    assert!(json["output"].is_string());
    let tests = json["tests"].as_array().expect("tests is an array");
    // The three TLS checks are skipped (--no-tls-required): not graded, so not listed.
    assert_eq!(tests.len(), 11 - 3);
    let mut sum = 0.0;
    for test in tests {
        let name = test["name"].as_str().expect("name is a string");
        let test_score = test["score"].as_f64().expect("score is a number");
        let max = test["max_score"].as_f64().expect("max_score is a number");
        assert!((0.0..=max).contains(&test_score), "{name}");
        assert!(["passed", "failed"].contains(&test["status"].as_str().unwrap()));
        assert!(!test["output"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(test["visibility"], "after_published");
        assert!(!name.is_empty());
        sum += test_score;
        if name.contains("full duplex") {
            assert_eq!(max, 5.0, "the rubric file's points");
            assert_eq!(test["status"], "failed");
            assert!(
                test["output"]
                    .as_str()
                    .unwrap()
                    .contains("strict-alternation")
            );
        }
        if name.contains("typed at the server") {
            assert_eq!((test_score, max), (0.5, 0.5));
        }
    }
    assert_eq!(score, sum);
}

#[test]
fn json_output_is_one_object_with_every_check() {
    let output = lab_grade()
        .args([
            "echo-server",
            "--json",
            "--",
            "python3",
            "examples/echo/correct/server.py",
            "{port}",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(output).unwrap();
    assert_eq!(text.lines().count(), 1);
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["assignment"], "echo-server");
    assert_eq!(report["score"], report["max_score"]);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    for check in checks {
        assert_eq!(check["status"], "passed");
        assert!(check["elapsed_ms"].is_u64());
    }
}

#[test]
fn a_rubric_with_a_typo_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let rubric = dir.path().join("rubric.toml");
    std::fs::write(&rubric, "[chat-server]\nful_duplex = 5\n").unwrap();
    lab_grade()
        .arg("chat-server")
        .arg("--rubric")
        .arg(&rubric)
        .args(["--", "python3", "server.py", "{port}"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("lab-grade: the rubric "))
        .stderr(predicate::str::contains("`chat-server.ful_duplex`"))
        .stderr(predicate::str::contains("full_duplex"))
        .stderr(predicate::function(|s: &str| s.lines().count() == 1));
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    // No command after --.
    lab_grade().arg("chat-server").assert().code(2);
    // --no-tls-required only means something with --plaintext.
    lab_grade()
        .args(["chat-server", "--no-tls-required", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--plaintext"));
    lab_grade()
        .args(["echo-server", "--step-timeout", "0", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--step-timeout 0"));
    // The echo server is always plaintext: the TLS flags are refused, not ignored.
    for flags in [&["--plaintext"][..], &["--plaintext", "--no-tls-required"]] {
        lab_grade()
            .arg("echo-server")
            .args(flags)
            .args(["--", "true"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("always graded over plaintext"));
    }
}

/// Grades an echo server `argv` with `--json` and returns the report.
fn echo_server_json(argv: &[&str]) -> Value {
    let output = lab_grade()
        .args(["echo-server", "--json", "--"])
        .args(argv)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).unwrap()
}

#[test]
fn a_program_that_does_not_exist_is_graded_zero_with_the_reason() {
    let report = echo_server_json(&["./no-such-program", "{port}"]);
    assert_eq!(report["score"], 0.0);
    let first = &report["checks"][0];
    assert_eq!(first["status"], "failed");
    let feedback = first["feedback"].to_string();
    assert!(feedback.contains("could not be started"), "{feedback}");
    assert!(feedback.contains("no-such-program"), "{feedback}");
}

#[test]
fn a_reader_that_goes_away_does_not_make_the_grader_panic() {
    // `lab-grade … | head -1`: the pipe's reading end is closed before the report is
    // printed. Rust's println! would panic on the broken pipe; the grader carries on.
    for format in ["text", "json"] {
        let mut command = std::process::Command::new(lab_test_support::bin!("lab-grade"));
        command.current_dir(crate::common::repo_root()).args([
            "echo-server",
            "--format",
            format,
            "--",
            "./no-such-program",
            "{port}",
        ]);
        let output = lab_test_support::output_with_stdout_closed(command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "--format {format}: {stderr}");
        assert!(output.status.success(), "--format {format}: {stderr}");
    }
}

#[test]
fn the_program_starts_with_no_signal_blocked_so_that_sigterm_reaches_it() {
    // The grader's binary blocks SIGINT and SIGTERM in its own threads (one thread takes
    // them); a signal mask survives exec, and a program started with SIGTERM blocked never
    // got the polite stop, only the SIGKILL after the grace. The program shows its mask,
    // then exits, so that the first check fails with its output as evidence.
    // Not through sh: dash clears its signal mask when it starts.
    let report = echo_server_json(&["grep", "SigBlk", "/proc/self/status"]);
    let evidence = report["checks"][0]["evidence"].to_string();
    // The report escapes the tab: `SigBlk:\u{9}0000000000000000`.
    assert!(
        evidence.contains("SigBlk:") && evidence.contains("0000000000000000\""),
        "the program's signal mask: {evidence}"
    );
}
