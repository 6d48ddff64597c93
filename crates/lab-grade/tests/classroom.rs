//! `--format classroom`: the runner result GitHub Classroom's reporter reads, decoded and
//! checked field by field, and the workflow in `docs/grading.md` that uses it.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;

/// Runs `lab-grade ARGS` from the repository root with `$GITHUB_OUTPUT` set to `output`.
fn lab_grade(args: &[&str], github_output: &Path) -> Output {
    Command::new(lab_test_support::bin!("lab-grade"))
        .args(args)
        .current_dir(crate::common::repo_root())
        .env("NO_COLOR", "1")
        .env("GITHUB_OUTPUT", github_output)
        .output()
        .unwrap()
}

/// Decodes stdout (one line of base64) and checks that `$GITHUB_OUTPUT` gained exactly
/// the line `result=` with the same value after what it held before.
fn decode(out: &Output, github_output: &Path) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let encoded = stdout.trim_end();
    assert_eq!(
        std::fs::read_to_string(github_output).unwrap(),
        format!("earlier=1\nresult={encoded}\n")
    );
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// The fields the reporter reads, with the values it understands.
fn assert_runner_result(result: &Value) {
    assert_eq!(result["version"], 1);
    assert!(["pass", "fail", "error"].contains(&result["status"].as_str().unwrap()));
    assert!(result["max_score"].as_f64().unwrap() > 0.0);
    for test in result["tests"].as_array().unwrap() {
        assert!(!test["name"].as_str().unwrap().is_empty());
        assert!(["pass", "fail", "error"].contains(&test["status"].as_str().unwrap()));
        assert!(test["score"].is_number());
        assert!(test["message"].is_string());
        assert_eq!(test["test_code"], "");
        assert_eq!(test["filename"], "");
        assert_eq!(test["line_no"], 0, "a line number would be printed");
        assert!(test["duration"].is_u64());
    }
}

fn github_output() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("github_output");
    std::fs::write(&path, "earlier=1\n").unwrap();
    (dir, path)
}

fn total(result: &Value) -> f64 {
    result["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .sum()
}

/// Grades `examples/echo/FOLDER/server.py` with `--format classroom`, with deadlines that
/// a loaded machine cannot miss (full marks are asserted for the correct one).
fn grade_echo_server(folder: &str, github_output: &Path) -> Output {
    let server = format!("examples/echo/{folder}/server.py");
    lab_grade(
        &[
            "echo-server",
            "--format",
            "classroom",
            "--start-timeout",
            "30",
            "--step-timeout",
            "10",
            "--",
            "python3",
            &server,
            "{port}",
        ],
        github_output,
    )
}

#[test]
fn a_correct_program_is_a_passing_runner_result_with_every_point() {
    let (_dir, output) = github_output();
    let out = grade_echo_server("correct", &output);
    assert!(out.status.success());
    let result = decode(&out, &output);
    assert_runner_result(&result);
    assert_eq!(result["status"], "pass");
    assert_eq!(result["max_score"], 9.0);
    assert_eq!(result["tests"].as_array().unwrap().len(), 7);
    assert_eq!(total(&result), 9.0, "{result}");
    // The readable report is in the step's log (stderr).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Score: 9 / 9"), "{stderr}");
}

#[test]
fn a_broken_program_is_a_failing_runner_result_whose_failures_say_why() {
    let (_dir, output) = github_output();
    let out = grade_echo_server("broken", &output);
    assert!(out.status.success(), "grading completed: exit 0");
    let result = decode(&out, &output);
    assert_runner_result(&result);
    assert_eq!(result["status"], "fail");
    assert!(total(&result) < 9.0, "{result}");
    let failed: Vec<&Value> = result["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "fail")
        .collect();
    assert!(!failed.is_empty());
    for test in failed {
        assert_eq!(test["score"], 0.0);
        assert!(!test["message"].as_str().unwrap().is_empty(), "{test}");
    }
}

#[test]
fn a_grader_that_cannot_grade_still_gives_the_reporter_an_error_result() {
    let (dir, output) = github_output();
    let missing = dir.path().join("no-such-rubric.toml");
    let out = lab_grade(
        &[
            "chat-server",
            "--format",
            "classroom",
            "--rubric",
            missing.to_str().unwrap(),
            "--",
            "python3",
            "server.py",
            "{port}",
        ],
        &output,
    );
    assert_eq!(out.status.code(), Some(2));
    let result = decode(&out, &output);
    assert_runner_result(&result);
    assert_eq!(result["status"], "error");
    assert_eq!(result["max_score"], 18.0, "0 of the built-in 18 points");
    assert_eq!(total(&result), 0.0);
    let message = result["tests"][0]["message"].as_str().unwrap();
    assert!(message.contains("no-such-rubric.toml"), "{message}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lab-grade: could not read"));
}

/// The `yaml` block that follows `heading` in `docs/grading.md`.
fn workflow_in_docs() -> String {
    let docs = std::fs::read_to_string(crate::common::repo_root().join("docs/grading.md")).unwrap();
    let section = &docs[docs.find("## GitHub Classroom").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

#[test]
fn the_documented_workflow_wires_every_grading_step_to_the_reporter() {
    let workflow = workflow_in_docs();
    assert!(
        workflow.starts_with("name: Autograding Tests\n"),
        "{workflow}"
    );
    assert!(workflow.contains("\njobs:\n  run-autograding-tests:\n"));
    assert!(workflow.contains("uses: classroom-resources/autograding-grading-reporter@v1"));
    let lines: Vec<&str> = workflow.lines().collect();
    // Every step that runs lab-grade --format classroom, by its id.
    let mut ids = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = line.trim().strip_prefix("id: ") {
            let step = lines[i..]
                .iter()
                .skip(1)
                .take_while(|l| !l.trim_start().starts_with("- name:"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            if step.contains("--format classroom") {
                ids.push(id.to_string());
            }
        }
    }
    assert_eq!(ids, ["chat-server", "chat-client"]);
    for id in &ids {
        let variable = format!(
            "{}_RESULTS: \"${{{{ steps.{id}.outputs.result }}}}\"",
            id.to_uppercase()
        );
        assert!(workflow.contains(&variable), "{variable}");
    }
    assert!(workflow.contains(&format!("runners: {}\n", ids.join(","))));
    // The commands are the ones the reference submissions are graded with.
    assert!(workflow.contains(
        "lab-grade chat-server --format classroom -- python3 server.py {port} {cert} {key}"
    ));
    assert!(workflow.contains(
        "lab-grade chat-client --format classroom -- python3 client.py {host} {port} {ca}"
    ));
    assert!(!workflow.contains('\t'), "YAML forbids tabs");
}
