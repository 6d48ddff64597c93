//! `lab-grade batch`: a folder of submissions, graded in parallel, summarised as CSV and JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

fn submission(root: &Path, name: &str, server_py: Option<&str>) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(text) = server_py {
        std::fs::write(dir.join("server.py"), text).unwrap();
    }
}

fn example(path: &str) -> String {
    std::fs::read_to_string(crate::common::repo_root().join(path)).unwrap()
}

fn run_batch(dir: &Path, out: &Path, assignment: &str, jobs: &str) -> String {
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .env("NO_COLOR", "1")
        .arg("batch")
        .arg(dir)
        .args([
            "--run",
            "python3 {dir}/server.py {port}",
            "--assignment",
            assignment,
        ])
        .args([
            "--jobs",
            jobs,
            "--start-timeout",
            "10",
            "--step-timeout",
            "3",
        ])
        .arg("--out")
        .arg(out)
        .timeout(Duration::from_secs(600))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(output).unwrap()
}

#[test]
fn a_batch_with_broken_submissions_gives_every_one_a_row() {
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    submission(
        &subs,
        "alice",
        Some(&example("examples/echo/correct/server.py")),
    );
    // A space in the folder name: the template is split before {dir} is filled in.
    submission(
        &subs,
        "bob smith",
        Some(&example("examples/echo/broken/server.py")),
    );
    submission(
        &subs,
        "carol",
        Some("import sys\nsys.exit('carol: not finished yet')\n"),
    );
    submission(&subs, "dave", None); // handed in nothing
    let out = root.path().join("out");
    let stdout = run_batch(&subs, &out, "echo-server", "2");
    assert!(stdout.contains("4 submissions graded"), "{stdout}");

    let mut csv = csv::Reader::from_path(out.join("grades.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(&header[..3], ["submission", "score", "max_score"]);
    assert!(header.contains(&"several_clients".to_string()));
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let scores: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&r[0], &r[1], &r[2])).collect();
    assert_eq!(
        scores,
        [
            ("alice", "9", "9"),
            ("bob smith", "4", "9"),
            ("carol", "0", "9"),
            ("dave", "0", "9")
        ]
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("grades.json")).unwrap()).unwrap();
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let feedback = |i: usize| rows[i]["report"]["checks"][0].to_string();
    assert!(
        feedback(2).contains("not finished yet"),
        "carol's stderr is shown"
    );
    assert!(
        feedback(3).contains("could not open the program file"),
        "{}",
        feedback(3)
    );
}

/// The bounded bigger run: 50 submissions (every fifth broken in one of four ways),
/// four at a time. Run it with `cargo test -p lab-grade --test main -- --ignored batch::`.
#[test]
#[ignore = "about a minute: run by hand, figures in the report"]
fn fifty_submissions_four_at_a_time_all_get_a_result() {
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    let secure = example("examples/chat/secure/server.py");
    let insecure = example("examples/chat/insecure/server.py");
    for i in 0..50 {
        let name = format!("student{i:02}");
        match i % 10 {
            1 => submission(&subs, &name, Some(&insecure)),
            3 => submission(&subs, &name, Some("import sys\nsys.exit(1)\n")),
            5 => submission(
                &subs,
                &name,
                Some("import time\nwhile True: print('x' * 80)\n"),
            ),
            7 => submission(&subs, &name, None),
            _ => submission(&subs, &name, Some(&secure)),
        }
    }
    // The template passes only {port}: the secure server finds its files in LAB_CERT, LAB_KEY.
    let out = root.path().join("out");
    let started = Instant::now();
    let stdout = run_batch(&subs, &out, "chat-server", "4");
    let elapsed = started.elapsed();
    eprintln!("50 submissions, --jobs 4: {elapsed:.1?}\n{stdout}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("grades.json")).unwrap()).unwrap();
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    let full = rows.iter().filter(|r| r["score"] == 18.0).count();
    assert_eq!(full, 30, "every unbroken submission gets full marks");
    assert!(
        rows.iter()
            .all(|r| r["max_score"] == 18.0 && r["report"].is_object())
    );
}

/// Writes a submission folder `name` in `subs` with `files` (name, text), and a `run.sh`
/// that starts it the mixed-language way (`sh {dir}/run.sh {port} {cert} {key}`).
fn folder_with_run_sh(subs: &Path, name: &str, files: &[(&str, String)], run_sh: &str) {
    let dir = subs.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    std::fs::write(
        dir.join("run.sh"),
        format!("#!/bin/sh\nhere=\"$(dirname \"$0\")\"\n{run_sh}\n"),
    )
    .unwrap();
}

/// The class of 300: copies of the Python, Node.js and Java reference servers, and a third
/// broken in seven different ways, each folder with its run.sh, graded two at a time. Run it
/// with `cargo test -p lab-grade --test main -- --ignored --nocapture three_hundred`.
#[test]
#[ignore = "several minutes: run by hand, figures in the report"]
fn three_hundred_submissions_in_three_languages_two_at_a_time_all_get_a_result() {
    if !crate::common::have("node", "Node.js submissions in the batch")
        || !crate::common::have("javac", "Java submissions in the batch")
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    let python = || ("server.py", example("examples/chat/secure/server.py"));
    let node = || ("server.js", example("examples/chat/secure-node/server.js"));
    let java = || {
        (
            "ChatServer.java",
            example("examples/chat/secure-java/ChatServer.java"),
        )
    };
    let start_python = r#"exec python3 "$here/server.py" "$@""#;
    let mut correct = 0;
    for i in 0..300 {
        let name = format!("student{i:03}");
        let broken = |text: &str| [("server.py", text.to_string())];
        match i % 9 {
            0..=2 => folder_with_run_sh(&subs, &name, &[python()], start_python),
            3 | 4 => folder_with_run_sh(
                &subs,
                &name,
                &[node()],
                r#"exec node "$here/server.js" "$@""#,
            ),
            5 => {
                // The reference's own run.sh: javac into $TMPDIR, then java.
                let dir = subs.join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("ChatServer.java"), java().1).unwrap();
                std::fs::write(
                    dir.join("run.sh"),
                    example("examples/chat/secure-java/run.sh"),
                )
                .unwrap();
            }
            // A plaintext server graded for TLS: the handshake times out.
            6 => folder_with_run_sh(
                &subs,
                &name,
                &broken(&example("examples/chat/insecure/server.py")),
                r#"exec python3 "$here/server.py" "$1""#,
            ),
            7 => match (i / 9) % 4 {
                0 => folder_with_run_sh(
                    &subs,
                    &name,
                    &broken("import sys\nsys.exit(1)\n"),
                    start_python,
                ),
                1 => folder_with_run_sh(
                    &subs,
                    &name,
                    &broken("while True: print('x' * 80)\n"),
                    start_python,
                ),
                2 => submission(&subs, &name, None),
                _ => folder_with_run_sh(&subs, &name, &broken("def main(:\n"), start_python),
            },
            // Listens, accepts, and never says a word; or crashes on the first line.
            _ => match (i / 9) % 2 {
                0 => folder_with_run_sh(
                    &subs,
                    &name,
                    &broken(
                        "import socket, sys\ns = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\nc = []\nwhile True: c.append(s.accept())\n",
                    ),
                    start_python,
                ),
                _ => folder_with_run_sh(
                    &subs,
                    &name,
                    &[node()],
                    r#"exec node "$here/server.js" "$1" /nonexistent/cert.pem "$3""#,
                ),
            },
        }
        if i % 9 <= 5 {
            correct += 1;
        }
    }
    let out = root.path().join("out");
    let started = Instant::now();
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .env("NO_COLOR", "1")
        .arg("batch")
        .arg(&subs)
        .args([
            "--run",
            "sh {dir}/run.sh {port} {cert} {key}",
            "--jobs",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .timeout(Duration::from_secs(1800))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let elapsed = started.elapsed();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("grades.json")).unwrap()).unwrap();
    let rows = summary["rows"].as_array().unwrap();
    let full = rows.iter().filter(|r| r["score"] == 18.0).count();
    eprintln!(
        "300 submissions, --jobs 2: {:.0} s ({:.1} min), {} rows, {full} with full marks; load {}\n{}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / 60.0,
        rows.len(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        String::from_utf8_lossy(&output)
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(rows.len(), 300, "a result for every submission");
    assert!(
        rows.iter()
            .all(|r| r["max_score"] == 18.0 && r["report"].is_object())
    );
    assert_eq!(
        full, correct,
        "every copy of a reference gets full marks, no broken one does"
    );
}

/// Runs a batch from `cwd` with the documented template and returns (success, stdout,
/// stderr).
fn run_batch_in(cwd: &Path, dir: &str, template: &str) -> (bool, String, String) {
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .args([
            "batch",
            dir,
            "--run",
            template,
            "--assignment",
            "echo-server",
        ])
        .args([
            "--jobs",
            "2",
            "--start-timeout",
            "10",
            "--step-timeout",
            "3",
        ])
        .args(["--out", "out"])
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut csv = csv::Reader::from_path(path).unwrap();
    csv.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn a_relative_batch_folder_grades_with_the_documented_template() {
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    let correct = example("examples/echo/correct/server.py");
    submission(&subs, "alice", Some(&correct));
    submission(&subs, "bob", Some(&correct));
    // The form the docs show: a relative folder, {dir} in the template.
    let (ok, stdout, stderr) = run_batch_in(
        root.path(),
        "submissions/",
        "python3 {dir}/server.py {port}",
    );
    assert!(ok, "{stdout}\n{stderr}");
    let rows = csv_rows(&root.path().join("out/grades.csv"));
    let scores: Vec<(&str, &str)> = rows.iter().map(|r| (&r[0][..], &r[1][..])).collect();
    assert_eq!(scores, [("alice", "9"), ("bob", "9")], "{stdout}");
    // In a pipe, one line per submission as it finishes, then the summary.
    assert!(stdout.lines().any(|l| l.starts_with("alice")), "{stdout}");
    assert!(stdout.contains("2 submissions graded"), "{stdout}");
}

#[test]
fn a_template_that_fails_every_submission_the_same_way_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    let correct = example("examples/echo/correct/server.py");
    submission(&subs, "alice", Some(&correct));
    submission(&subs, "bob", Some(&correct));
    // A typo in the file name: every program fails at startup, identically.
    let (ok, stdout, stderr) =
        run_batch_in(root.path(), "submissions", "python3 {dir}/srever.py {port}");
    assert!(!ok, "a wrong template must not exit 0: {stdout}");
    assert!(
        stderr.contains("--run template is almost certainly wrong"),
        "{stderr}"
    );
    // The grades are still written, so nothing is lost.
    assert_eq!(csv_rows(&root.path().join("out/grades.csv")).len(), 2);
}

#[test]
fn one_student_cannot_overwrite_another_nor_break_the_summary() {
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    let correct = example("examples/echo/correct/server.py");
    // "alice" is first: her program tries to overwrite bob's before serving.
    let saboteur = format!(
        "import os\ntry:\n    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'bob', 'server.py'), 'w').write('raise SystemExit(1)')\nexcept OSError:\n    pass\n{correct}"
    );
    submission(&subs, "alice", Some(&saboteur));
    submission(&subs, "bob", Some(&correct));
    // A folder name a spreadsheet would run, one with terminal escapes, and a link out.
    submission(&subs, "=HYPERLINK(\"http:evil\")", Some(&correct));
    submission(&subs, "eve\u{1b}[2K\rScore 9", Some(&correct));
    std::os::unix::fs::symlink(root.path(), subs.join("mallory")).unwrap();
    let (_, stdout, stderr) =
        run_batch_in(root.path(), "submissions", "python3 {dir}/server.py {port}");
    let rows = csv_rows(&root.path().join("out/grades.csv"));
    let find = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name}: {rows:?}\n{stdout}\n{stderr}"))
    };
    assert_eq!(find("bob")[1], "9", "bob's program was not overwritten");
    assert_eq!(
        std::fs::read_to_string(subs.join("bob/server.py")).unwrap(),
        correct
    );
    assert_eq!(find("'=HYPERLINK(\"http:evil\")")[1], "9");
    let mallory = find("mallory");
    assert!(
        mallory.last().unwrap().contains("symbolic link"),
        "{mallory:?}"
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "a raw ESC reached the terminal: {stdout:?}"
    );
    assert!(stdout.contains("eve\\u{1b}[2K\\u{d}Score 9"), "{stdout}");
}

#[test]
fn a_mixed_language_class_is_graded_with_one_run_sh_per_folder() {
    if !crate::common::have("node", "a Node.js submission in a batch")
        || !crate::common::have("cc", "a C submission in a batch")
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let subs = root.path().join("submissions");
    // Python: run.sh starts the interpreter on the file beside it.
    submission(
        &subs,
        "alice",
        Some(&example("examples/echo/correct/server.py")),
    );
    std::fs::write(
        subs.join("alice/run.sh"),
        "#!/bin/sh\nexec python3 \"$(dirname \"$0\")/server.py\" \"$@\"\n",
    )
    .unwrap();
    // C: the reference folder as it is (its run.sh compiles into $TMPDIR).
    submission(&subs, "bob", None);
    for file in ["server.c", "run.sh"] {
        std::fs::write(
            subs.join("bob").join(file),
            example(&format!("examples/echo/correct-c/{file}")),
        )
        .unwrap();
    }
    // Node.js: an echo is one line of it.
    submission(&subs, "carol", None);
    std::fs::write(
        subs.join("carol/server.js"),
        "require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(Number(process.argv[2]), '127.0.0.1');\n",
    )
    .unwrap();
    std::fs::write(
        subs.join("carol/run.sh"),
        "#!/bin/sh\nexec node \"$(dirname \"$0\")/server.js\" \"$@\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run_batch_in(root.path(), "submissions", "sh {dir}/run.sh {port}");
    assert!(ok, "{stdout}\n{stderr}");
    let rows = csv_rows(&root.path().join("out/grades.csv"));
    let scores: Vec<(&str, &str)> = rows.iter().map(|r| (&r[0][..], &r[1][..])).collect();
    assert_eq!(
        scores,
        [("alice", "9"), ("bob", "9"), ("carol", "9")],
        "{stdout}"
    );
}
