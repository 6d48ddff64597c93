//! The Gradescope autograder, run the way Gradescope runs it.
//!
//! `lab-grade export-gradescope` writes the zip; each test unzips it (with Info-ZIP's
//! `unzip`, not our own zip code) into a temporary folder standing in for `/autograder`,
//! copies `run_autograder` next to `source/` as Gradescope does, puts a reference
//! submission in `submission/`, runs `setup.sh` (it needs nothing from the internet when
//! `python3` is already installed) and `run_autograder` from `/autograder`, and reads
//! `results/results.json` as Gradescope would.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The grader's binary, as cargo built it for this test run.
fn lab_grade() -> &'static std::path::Path {
    lab_test_support::bin!("lab-grade")
}

/// Exports an autograder for `assignment` with `args` into `dir`, returns the zip's path.
fn export(dir: &Path, assignment: &str, args: &[&str]) -> PathBuf {
    let zip = dir.join("autograder.zip");
    let out = Command::new(lab_grade())
        .arg("export-gradescope")
        .arg(assignment)
        .arg("--output")
        .arg(&zip)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    zip
}

/// A folder laid out as Gradescope lays out `/autograder`, from `zip` and `submission`.
struct Autograder {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Autograder {
    /// `None` (after saying why) where Info-ZIP's `unzip` is missing.
    fn new(zip: &Path, submission: &Path) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // Stands in for `/`: others may pass through, as they may through `/`.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let root = dir.path().join("autograder");
        let source = root.join("source");
        std::fs::create_dir_all(&source).unwrap();
        let unzip = Command::new("unzip")
            .arg("-q")
            .arg(zip)
            .arg("-d")
            .arg(&source)
            .output();
        match unzip {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("unzip failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => {
                lab_test_support::skip_unless_ci("running the autograder", format!("unzip: {e}"));
                return None;
            }
        }
        std::fs::copy(source.join("run_autograder"), root.join("run_autograder")).unwrap();
        // Gradescope also leaves the submitter's names and e-mail addresses here.
        std::fs::write(root.join("submission_metadata.json"), "{\"users\": []}\n").unwrap();
        std::fs::create_dir(root.join("submission")).unwrap();
        for entry in std::fs::read_dir(submission).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                root.join("submission").join(entry.file_name()),
            )
            .unwrap();
        }
        Some(Autograder { _dir: dir, root })
    }

    /// Runs `script` (a path inside the root) as Gradescope does: executed directly (its
    /// `#!` line and mode matter), from `/autograder`, as the current user (root in CI).
    fn run(&self, script: &str) -> std::process::Output {
        let out = Command::new(self.root.join(script))
            .current_dir(&self.root)
            .env("AUTOGRADER_ROOT", &self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn setup_and_grade(&self) -> Value {
        self.run("source/setup.sh");
        self.run("run_autograder");
        self.results()
    }

    fn results(&self) -> Value {
        let text = std::fs::read_to_string(self.root.join("results/results.json")).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

fn examples(path: &str) -> PathBuf {
    crate::common::repo_root().join("examples").join(path)
}

/// The fields Gradescope documents, with the values the spec allows.
fn assert_valid_results(results: &Value) {
    assert!(results["score"].is_number(), "{results}");
    assert!(results["execution_time"].is_u64(), "{results}");
    assert_eq!(results["output_format"], "md");
    assert_eq!(results["stdout_visibility"], "hidden");
    assert!(
        results["output"]
            .as_str()
            .unwrap()
            .contains("socket-lab grader")
    );
    let tests = results["tests"].as_array().unwrap();
    let mut sum = 0.0;
    for (i, test) in tests.iter().enumerate() {
        assert_eq!(test["number"], (i + 1).to_string(), "{test}");
        assert!(!test["name"].as_str().unwrap().is_empty());
        assert!(["passed", "failed"].contains(&test["status"].as_str().unwrap()));
        assert_eq!(test["output_format"], "md");
        assert_eq!(test["visibility"], "visible");
        let tags = test["tags"].as_array().unwrap();
        assert!(!tags.is_empty(), "{test}");
        let score = test["score"].as_f64().unwrap();
        let max = test["max_score"].as_f64().unwrap();
        assert!((0.0..=max).contains(&score), "{test}");
        assert_eq!(score == max, test["status"] == "passed", "{test}");
        sum += score;
    }
    assert_eq!(results["score"].as_f64().unwrap(), sum);
}

fn test_named<'a>(results: &'a Value, tag: &str) -> &'a Value {
    results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tags"][0] == tag)
        .unwrap_or_else(|| panic!("no test tagged {tag}: {results}"))
}

#[test]
fn the_zip_has_both_scripts_at_its_root_with_a_shebang_lf_and_mode_0755() {
    let dir = tempfile::tempdir().unwrap();
    let zip = export(dir.path(), "chat-client", &[]);
    let mode = std::fs::metadata(&zip).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "an ordinary file, not a temporary file's 0600");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    for name in ["setup.sh", "run_autograder", "lab-grade"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
        let mut file = archive.by_name(name).unwrap();
        assert_eq!(file.unix_mode().unwrap() & 0o777, 0o755, "{name}");
        if name != "lab-grade" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{name}");
            assert!(!text.contains('\r'), "{name} has CR line endings");
        }
    }
    assert!(
        names.iter().all(|n| !n.contains('/')),
        "no folder: {names:?}"
    );
    // The default command for a client, and no rubric file when none was given.
    let mut run = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("run_autograder").unwrap(), &mut run)
        .unwrap();
    assert!(
        run.contains("-- python3 client.py '{host}' '{port}' '{ca}'"),
        "{run}"
    );
    assert!(!names.contains(&"rubric.toml".to_string()));
}

#[test]
fn the_shipped_binary_needs_no_newer_glibc_than_gradescopes_ubuntu_22_04() {
    let binary = std::fs::read(lab_grade()).unwrap();
    let ours = lab_grade::gradescope::glibc_needed(&binary)
        .unwrap()
        .unwrap();
    assert!(
        ours <= lab_grade::gradescope::IMAGE_GLIBC,
        "lab-grade needs GLIBC_{ours}"
    );
    // The same answer from binutils, read independently of our ELF code.
    let objdump = match Command::new("objdump").arg("-T").arg(lab_grade()).output() {
        Ok(out) => out,
        Err(e) => {
            lab_test_support::skip_unless_ci("objdump -T on lab-grade", e);
            return;
        }
    };
    let text = String::from_utf8_lossy(&objdump.stdout);
    let newest = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(lab_grade::gradescope::GlibcVersion::parse)
        .max()
        .expect("objdump shows GLIBC_ versions");
    assert_eq!(newest, ours, "objdump and lab-grade agree");
}

#[test]
fn a_binary_gradescope_cannot_run_is_refused_at_export() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let out = Command::new(lab_grade())
        .args(["export-gradescope", "echo-server", "--binary"])
        .arg(&script)
        .arg("--output")
        .arg(dir.path().join("a.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a Linux x86-64 program"), "{err}");
    assert!(!dir.path().join("a.zip").exists());
    let out = Command::new(lab_grade())
        .args([
            "export-gradescope",
            "echo-server",
            "--apt",
            "python3; rm -rf /",
        ])
        .arg("--output")
        .arg(dir.path().join("a.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an Ubuntu package name"));
}

#[test]
fn the_secure_reference_server_gets_full_marks_on_the_exported_autograder() {
    let dir = tempfile::tempdir().unwrap();
    let rubric = dir.path().join("rubric.toml");
    std::fs::write(&rubric, "[chat-server]\nfull_duplex = 4\n").unwrap();
    let zip = export(
        dir.path(),
        "chat-server",
        &[
            "--rubric",
            rubric.to_str().unwrap(),
            // Full marks are asserted: deadlines that a loaded machine cannot miss.
            "--start-timeout",
            "30",
            "--step-timeout",
            "10",
        ],
    );
    let Some(autograder) = Autograder::new(&zip, &examples("chat/secure")) else {
        return;
    };
    let results = autograder.setup_and_grade();
    assert_valid_results(&results);
    assert_eq!(
        results["score"], 19.0,
        "18 points, full_duplex 3 → 4: {results}"
    );
    assert_eq!(results["tests"].as_array().unwrap().len(), 11);
    assert_eq!(test_named(&results, "full_duplex")["max_score"], 4.0);
    assert_eq!(test_named(&results, "tls_handshake")["tags"][1], "tls");
    assert_locked_down(&autograder.root);
}

#[test]
fn the_insecure_reference_server_gets_low_marks_with_reasons_on_the_exported_autograder() {
    let dir = tempfile::tempdir().unwrap();
    let zip = export(dir.path(), "chat-server", &["--start-timeout", "15"]);
    let Some(autograder) = Autograder::new(&zip, &examples("chat/insecure")) else {
        return;
    };
    let results = autograder.setup_and_grade();
    assert_valid_results(&results);
    assert_eq!(test_named(&results, "listening")["status"], "passed");
    let handshake = test_named(&results, "tls_handshake");
    assert_eq!(handshake["status"], "failed");
    assert!(
        handshake["output"]
            .as_str()
            .unwrap()
            .contains("--plaintext"),
        "the feedback says why: {handshake}"
    );
    assert!(results["score"].as_f64().unwrap() < 18.0 / 2.0, "{results}");
}

/// After grading, a user other than root can read the submission but not change it, and
/// can neither read the autograder's files nor write the results.
fn assert_locked_down(root: &Path) {
    // SAFETY: reads credentials only.
    if unsafe { libc::geteuid() } != 0 {
        lab_test_support::skip_unless_ci("the autograder's permissions", "needs root");
        return;
    }
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("source"), 0o700);
    assert_eq!(mode("results"), 0o700);
    assert_eq!(mode("run_autograder"), 0o700);
    assert_eq!(mode("submission_metadata.json"), 0o600);
    // A uid that no account uses, like the throwaway user lab-grade runs programs as.
    let as_stranger = |script: &str| {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .env("R", root)
            .uid(3_999_999_917)
            .gid(3_999_999_917);
        command.output().unwrap().status.success()
    };
    assert!(as_stranger("cat \"$R/submission/server.py\" >/dev/null"));
    assert!(!as_stranger("echo x >> \"$R/submission/server.py\""));
    assert!(!as_stranger("touch \"$R/submission/new.py\""));
    assert!(!as_stranger("cat \"$R/source/lab-grade\" >/dev/null"));
    assert!(!as_stranger("ls \"$R/source\""));
    assert!(!as_stranger(
        "echo '{\"score\": 99}' > \"$R/results/results.json\""
    ));
    assert!(!as_stranger("echo x >> \"$R/run_autograder\""));
    assert!(!as_stranger("cat \"$R/submission_metadata.json\""));
}

/// Replaces the shipped lab-grade with a script that fails as `body` does.
fn break_the_grader(autograder: &Autograder, body: &str) {
    let path = autograder.root.join("source/lab-grade");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An autograder for the correct echo server whose shipped lab-grade fails as `body` does.
fn with_broken_grader(zip: &Path, body: &str) -> Option<Autograder> {
    let autograder = Autograder::new(zip, &examples("echo/correct"))?;
    break_the_grader(&autograder, body);
    Some(autograder)
}

fn assert_fallback(results: &Value, words: &[&str]) {
    assert_eq!(results["score"], 0, "{results}");
    assert_eq!(results["tests"].as_array().unwrap().len(), 0);
    let output = results["output"].as_str().unwrap();
    assert!(output.contains("score is 0"), "{output}");
    for word in words {
        assert!(output.contains(word), "{word:?} in {output}");
    }
}

#[test]
fn a_grader_that_fails_or_is_killed_still_leaves_results_with_score_0_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let zip = export(dir.path(), "echo-server", &[]);

    let Some(autograder) = with_broken_grader(
        &zip,
        "echo 'lab-grade: could not create a temporary folder: \"No space left\"' >&2; exit 2",
    ) else {
        return;
    };
    autograder.run("run_autograder");
    assert_fallback(
        &autograder.results(),
        &[
            "exit status 2",
            "could not create a temporary folder: No space left",
        ],
    );

    let Some(autograder) = with_broken_grader(&zip, "kill -9 $$") else {
        return;
    };
    autograder.run("run_autograder");
    assert_fallback(&autograder.results(), &["ended by signal 9"]);

    // No submission at all (an empty upload): still a result, and why.
    let Some(autograder) = Autograder::new(&zip, &examples("echo/correct")) else {
        return;
    };
    std::fs::remove_dir_all(autograder.root.join("submission")).unwrap();
    autograder.run("run_autograder");
    assert_fallback(&autograder.results(), &["no submission folder"]);
}

#[test]
fn a_grader_that_runs_past_the_time_limit_is_stopped_and_leaves_results() {
    let dir = tempfile::tempdir().unwrap();
    let zip = export(dir.path(), "echo-server", &["--time-limit", "1"]);
    // Never finishes by itself: only the time limit ends it.
    let Some(autograder) = with_broken_grader(&zip, "exec sleep 600") else {
        return;
    };
    autograder.run("run_autograder");
    assert_fallback(&autograder.results(), &["time limit of 1 s"]);
}

#[test]
fn setup_fails_the_image_build_when_the_shipped_grader_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let zip = export(dir.path(), "echo-server", &[]);
    // What a binary built against a newer glibc prints on an older one.
    let Some(autograder) = with_broken_grader(
        &zip,
        "echo \"lab-grade: /lib/x86_64-linux-gnu/libc.so.6: version 'GLIBC_2.39' not found\" >&2; exit 1",
    ) else {
        return;
    };
    let out = Command::new(autograder.root.join("source/setup.sh"))
        .current_dir(&autograder.root)
        .env("AUTOGRADER_ROOT", &autograder.root)
        .output()
        .unwrap();
    assert!(!out.status.success(), "setup.sh must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("GLIBC_2.39"));
}

/// A submission that attacks the autograder: it tries to forge `results.json`, rewrite
/// `run_autograder`, read the grader, and leaves a detached process (`setsid`, double fork)
/// that keeps trying after grading. Then it serves as the secure reference server does.
const HOSTILE_PRELUDE: &str = r##"
import os, runpy, sys, time

FORGED = '{"score": 1000, "tests": []}'

def attack():
    for path, data in [("../results/results.json", FORGED), ("../run_autograder", "#!/bin/sh\n")]:
        try:
            with open(path, "w") as f:
                f.write(data)
        except OSError:
            pass
    try:
        open("../source/lab-grade", "rb").read(1)
        sys.stderr.write("read the grader\n")
    except OSError:
        pass

attack()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        sys.argv[0] = "MARKER"
        for _ in range(3000):
            attack()
            time.sleep(0.01)
    os._exit(0)
runpy.run_path("reference.py", run_name="__main__")
"##;

#[test]
fn a_hostile_submission_cannot_forge_its_result_or_outlive_grading() {
    // SAFETY: reads credentials only.
    if unsafe { libc::geteuid() } != 0 {
        lab_test_support::skip_unless_ci("the hostile submission on the autograder", "needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let submission = dir.path().join("submission");
    std::fs::create_dir(&submission).unwrap();
    let marker = format!("hostile-{}", std::process::id());
    std::fs::write(
        submission.join("server.py"),
        HOSTILE_PRELUDE.replace("MARKER", &marker),
    )
    .unwrap();
    std::fs::copy(
        examples("chat/secure/server.py"),
        submission.join("reference.py"),
    )
    .unwrap();
    let zip = export(
        dir.path(),
        "chat-server",
        &["--start-timeout", "30", "--step-timeout", "10"],
    );
    let Some(autograder) = Autograder::new(&zip, &submission) else {
        return;
    };
    let run_before = std::fs::read_to_string(autograder.root.join("run_autograder")).unwrap();
    let results = autograder.setup_and_grade();
    assert_valid_results(&results);
    assert_eq!(results["score"], 18.0, "graded on its merits: {results}");
    assert_eq!(
        std::fs::read_to_string(autograder.root.join("run_autograder")).unwrap(),
        run_before,
        "run_autograder was changed"
    );
    // Every process the submission left behind was ended when grading ended.
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
}
