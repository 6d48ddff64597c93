//! Untrusted, broken programs: each must give a clear result, never a hung or crashed grader.
//!
//! Every case is a tiny shell or Python script written into a temporary folder. The tests
//! run the real binary and read its JSON report; that the test finishes at all is half the
//! point, and every process the program started must be gone afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// A temporary folder the program may enter and write (it records its pids there): as
/// root, the grader runs it as a throwaway user, for whom a 0700 folder is closed.
fn shared_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Writes `text` into `dir/name` and returns its path.
fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Grades `argv` as `assignment` with short deadlines and returns the JSON report.
fn grade(assignment: &str, extra: &[&str], argv: &[&str], dir: &Path) -> Value {
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args([
            assignment,
            "--json",
            "--start-timeout",
            "2",
            "--step-timeout",
            "1",
        ])
        .args(extra)
        .arg("--")
        .args(argv)
        .timeout(Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).unwrap()
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

fn feedback(report: &Value, id: &str) -> String {
    let check = check(report, id);
    format!("{} {}", check["feedback"], check["evidence"])
}

/// True if process `pid` is still running (a zombie awaiting its parent does not count).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z"),
        Err(_) => false,
    }
}

/// The pids the scripts recorded, one per line, in `dir/pids.*`: one file per process,
/// since copies of the program run side by side as different throwaway users (the grader's
/// lanes), and one cannot append to a file another created.
fn recorded_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("pids.") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    pids
}

/// Waits (bounded) for reaped orphans to disappear: init reaps them asynchronously.
fn assert_all_gone(pids: &[i32]) {
    assert!(!pids.is_empty(), "the script recorded no pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids {
        assert!(!alive(pid), "process {pid} survived the grading");
    }
}

#[test]
fn a_server_that_never_listens_fails_listening_with_the_wait_and_stops_there() {
    let dir = shared_dir();
    let started = Instant::now();
    let report = grade(
        "chat-server",
        &[],
        &["sh", "-c", "echo $$ >> pids.$$; exec sleep 1000"],
        dir.path(),
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited the start deadline"
    );
    assert_eq!(check(&report, "listening")["status"], "failed");
    assert!(feedback(&report, "listening").contains("accepted a connection"));
    assert!(feedback(&report, "full_duplex").contains("Not run"));
    assert_eq!(report["score"], 0.0);
    assert_all_gone(&recorded_pids(dir.path()));
}

#[test]
fn a_server_that_exits_at_once_is_reported_with_its_exit_code() {
    let dir = shared_dir();
    let report = grade(
        "echo-server",
        &[],
        &["sh", "-c", "echo 'no port given' >&2; exit 3"],
        dir.path(),
    );
    let text = feedback(&report, "listening");
    assert!(text.contains("exit code 3"), "{text}");
    assert!(
        text.contains("no port given"),
        "its stderr is shown: {text}"
    );
}

/// With `--no-tls-required`, a server that never started is out of the same total as one
/// that did: the TLS checks are skipped either way (they used to fail as "not run", and
/// grades.csv showed 0 / 18 beside 13 / 13).
#[test]
fn without_tls_required_a_server_that_never_starts_has_the_same_maximum() {
    let dir = shared_dir();
    let report = grade(
        "chat-server",
        &["--plaintext", "--no-tls-required"],
        &["sh", "-c", "exit 3"],
        dir.path(),
    );
    for id in ["tls_handshake", "tls_version", "plaintext_refused"] {
        assert_eq!(check(&report, id)["status"], "skipped", "{id}");
    }
    let tls_points: f64 = lab_grade::Assignment::ChatServer
        .checks()
        .iter()
        .filter(|spec| spec.tls)
        .map(|spec| spec.points)
        .sum();
    let all_points: f64 = lab_grade::Assignment::ChatServer
        .checks()
        .iter()
        .map(|spec| spec.points)
        .sum();
    assert_eq!(report["max_score"], all_points - tls_points);
}

#[test]
fn a_client_that_exits_at_once_and_one_that_never_connects_are_told_apart() {
    let dir = shared_dir();
    let quits = grade("chat-client", &[], &["sh", "-c", "exit 0"], dir.path());
    assert!(feedback(&quits, "connects").contains("ended (exit code 0)"));
    assert_eq!(check(&quits, "no_server_message")["status"], "failed");
    let sleeps = grade(
        "chat-client",
        &[],
        &["sh", "-c", "echo $$ >> pids.$$; exec sleep 1000"],
        dir.path(),
    );
    assert!(feedback(&sleeps, "connects").contains("never connected"));
    assert!(feedback(&sleeps, "no_server_message").contains("still running"));
    assert_all_gone(&recorded_pids(dir.path()));
}

#[test]
fn a_server_that_floods_its_output_is_graded_with_bounded_memory() {
    let dir = shared_dir();
    // Listens, then prints as fast as it can, forever.
    let flood = script(
        dir.path(),
        "flood.py",
        "import os, socket, sys\n\
         open(f'pids.{os.getpid()}', 'a').write(f'{os.getpid()}\\n')\n\
         s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n\
         line = 'flood ' * 50\n\
         while True:\n    print(line)\n",
    );
    let report = grade(
        "chat-server",
        &["--plaintext"],
        &["python3", flood.to_str().unwrap(), "{port}"],
        dir.path(),
    );
    assert_eq!(check(&report, "listening")["status"], "passed");
    let text = feedback(&report, "client_line_shown");
    assert_eq!(check(&report, "client_line_shown")["status"], "failed");
    assert!(text.contains("far more than a chat does"), "{text}");
    assert_all_gone(&recorded_pids(dir.path()));
}

#[test]
fn a_server_that_ignores_sigterm_and_forks_is_killed_with_its_whole_group() {
    let dir = shared_dir();
    // Ignores SIGTERM, forks a grandchild that also ignores it, then listens (in Python).
    let stubborn = script(
        dir.path(),
        "stubborn.sh",
        "trap '' TERM\n\
         sleep 1000 &\n\
         echo $! >> pids.$$\n\
         echo $$ >> pids.$$\n\
         exec python3 -c \"import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(1000)\" \"$1\"\n",
    );
    let started = Instant::now();
    let report = grade(
        "chat-server",
        &[],
        &["sh", stubborn.to_str().unwrap(), "{port}"],
        dir.path(),
    );
    assert_eq!(check(&report, "listening")["status"], "passed");
    // Listening but silent: the handshake times out, and says what that may mean.
    let text = feedback(&report, "tls_handshake");
    assert!(text.contains("no TLS answer before the deadline"), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let pids = recorded_pids(dir.path());
    assert!(
        pids.len() >= 2,
        "the program and its fork recorded their pids"
    );
    assert_all_gone(&pids);
}

#[test]
fn a_client_that_forks_and_hangs_after_connecting_is_stopped() {
    let dir = shared_dir();
    let hang = script(
        dir.path(),
        "hang.py",
        "import os, socket, sys, time\n\
         pid = os.fork()\n\
         if pid == 0:\n    time.sleep(1000)\n\
         open(f'pids.{os.getpid()}', 'a').write(f'{os.getpid()}\\n{pid}\\n')\n\
         s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
         time.sleep(1000)\n",
    );
    let report = grade(
        "chat-client",
        &[],
        &["python3", hang.to_str().unwrap(), "{port}"],
        dir.path(),
    );
    assert_eq!(
        check(&report, "connects")["status"],
        "passed",
        "{}",
        feedback(&report, "connects")
    );
    assert!(feedback(&report, "tls_handshake").contains("never sent a TLS ClientHello"));
    assert_all_gone(&recorded_pids(dir.path()));
}

#[test]
fn a_program_that_escapes_its_process_group_does_not_hold_up_the_grader() {
    let dir = shared_dir();
    // setsid puts the sleep in a session of its own: the group kill cannot reach it, and it
    // keeps the output pipes open. The grader must not wait for it.
    let report = grade(
        "echo-server",
        &[],
        &["sh", "-c", "setsid sleep 1000 & echo $! >> pids.$$; exit 0"],
        dir.path(),
    );
    assert!(feedback(&report, "listening").contains("ended (exit code 0)"));
    // One escapee per start of the program (the shared run and the vanishing client's lane).
    let pids = recorded_pids(dir.path());
    assert!(!pids.is_empty(), "the escapees recorded their pids");
    // SAFETY: reads credentials only.
    if unsafe { libc::geteuid() } != 0 {
        // The reduced mode's documented limit: the escapees are still running. The test
        // ends them.
        for &pid in &pids {
            assert!(alive(pid), "setsid escaped the group kill, as documented");
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
    // As root, the grader ended every process of the program's throwaway user.
    assert_all_gone(&pids);
}
