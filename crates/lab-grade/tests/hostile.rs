//! Hostile programs: a student's program is untrusted, and these attack the grader the
//! way a dishonest student would. Each attack is a small Python script written here, into
//! a temporary folder (they are attack fixtures, not submissions to learn from).
//!
//! Every attack must fail to change its own grade, reach a secret, outlive the grading,
//! or reach the TA's terminal raw; and every test is bounded in count and time.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Written, expect, program_dir, write_program};
use assert_cmd::Command;
use lab_grade::Assignment;
use lab_grade::report::Status::Failed;

fn is_root() -> bool {
    // SAFETY: reads credentials only.
    unsafe { libc::geteuid() == 0 }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z"))
}

/// The pids a script wrote into `dir/pids`.
fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A folder the attack may write its pids into (0777: the throwaway user's too).
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn a_server_that_forges_the_graders_lines_at_startup_gains_nothing() {
    // Never reads a byte; prints every line the grader used to send, at startup.
    let forger = Written::new(
        "forger.py",
        "import socket, sys, time\nlines = ['hello from the grader: apple', 'first, nobody typed yet: cherry', 'second, still nobody typed: damson', 'first of two: grape', 'second of two: honeydew', 'one line in two segments: iceberry'] + [f'round {r} sent {k}' for r in range(1, 6) for k in range(1, 4)]\nfor line in lines: print('client: ' + line)\nsys.stdout.flush()\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\nconns = []\nwhile True: conns.append(s.accept()[0])\n",
    );
    let report = forger.grade(Assignment::ChatServer, &["python3", "{file}", "{port}"]);
    for id in [
        "client_line_shown",
        "full_duplex",
        "framing_two_lines",
        "framing_split_line",
    ] {
        expect(&report, id, Failed, "");
    }
}

#[test]
fn a_program_that_moves_its_direct_child_out_of_the_group_cannot_freeze_the_grader() {
    let dir = program_dir();
    let pid_dir = open_dir();
    let script = write_program(
        dir.path(),
        "escape.py",
        &format!(
            "import os, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nr, w = os.pipe()\npid = os.fork()\nif pid == 0:\n    os.setpgid(0, 0)\n    os.write(w, b'x')\n    time.sleep(600)\n    os._exit(0)\nos.read(r, 1)\nos.setpgid(0, pid)\nopen('{}/pids', 'a').write(f'{{os.getpid()}}\\n{{pid}}\\n')\ntime.sleep(600)\n",
            pid_dir.path().display()
        ),
    );
    let started = Instant::now();
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir.path())
        .args([
            "echo-server",
            "--json",
            "--start-timeout",
            "2",
            "--step-timeout",
            "1",
        ])
        .args(["--", "python3", &script, "{port}"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the grader was held up"
    );
    let recorded = pids(pid_dir.path());
    assert_eq!(recorded.len(), 2);
    if is_root() {
        for pid in recorded {
            assert!(!alive(pid), "{pid} outlived the grading");
        }
    } else {
        // The reduced mode's documented limit: the helper that left the group survives
        // (the direct child is killed by pid). The test ends it.
        for pid in recorded {
            // SAFETY: a plain kill of a process this test's script started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn secrets_and_other_roles_files_never_reach_the_program() {
    let dir = program_dir();
    // Prints its environment and the folder of {ca}, then fails so that it is all shown.
    let spy = write_program(
        dir.path(),
        "spy.py",
        "import os, sys\nprint('env', ' '.join(f'{k}={v}' for k, v in sorted(os.environ.items())), file=sys.stderr)\nfolder = os.path.dirname(sys.argv[1])\nread = []\nfor name in ['ca.key', '../ca.key', '../client/key.pem', '../../ca.key']:\n    try: read.append(name + ' ' + open(os.path.join(folder, name)).read()[:40])\n    except OSError as e: read.append('cannot read ' + name)\nprint('; '.join(read), file=sys.stderr)\nprint('files', sorted(os.listdir(folder)), file=sys.stderr)\nsys.exit(1)\n",
    );
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir.path())
        .env("GRADESCOPE_API_TOKEN", "gs-secret-0000")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-1111")
        .args(["chat-server", "--format", "gradescope", "--output"])
        .arg(dir.path().join("results.json"))
        .args(["--start-timeout", "5", "--step-timeout", "1"])
        .args(["--", "python3", &spy, "{ca}"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let results = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
    assert!(
        !results.contains("gs-secret") && !results.contains("aws-secret"),
        "{results}"
    );
    assert!(!results.contains("PRIVATE KEY"), "{results}");
    assert!(
        results.contains("['ca.pem', 'cert.pem', 'key.pem']"),
        "{results}"
    );
    assert!(
        results.contains("cannot read ../client/key.pem") || !is_root(),
        "{results}"
    );
}

#[test]
fn output_that_would_drive_the_terminal_is_escaped() {
    let dir = program_dir();
    let painter = write_program(
        dir.path(),
        "painter.py",
        "import sys\nprint('\\x1b[2K\\r\\x1b[32mScore: 18 / 18\\x1b[0m', file=sys.stderr)\nprint('\\x1b]0;owned\\x07')\nsys.exit(1)\n",
    );
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["echo-server", "--start-timeout", "5", "--step-timeout", "1"])
        .args(["--", "python3", &painter, "{port}"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains('\u{1b}'),
        "a raw ESC reached the terminal: {text:?}"
    );
    assert!(!text.contains('\r'), "{text:?}");
    assert!(text.contains("\\u{1b}[2K\\u{d}"), "{text}");
}

#[test]
fn a_flood_over_the_connection_fails_as_flooded_and_the_report_stays_small() {
    // Answers every client with up to 64 MiB (bounded) instead of a chat.
    let flooder = Written::new(
        "flood.py",
        "import socket, sys\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\nwhile True:\n    c, _ = s.accept()\n    try:\n        for _ in range(1024): c.sendall(b'x' * 65536)\n    except OSError: pass\n    c.close()\n",
    );
    let report = flooder.grade(Assignment::ChatServer, &["python3", "{file}", "{port}"]);
    let text = expect(&report, "stdin_line_sent", Failed, "");
    assert!(text.contains("flooded"), "{text}");
    let size = serde_json::to_string(&report).unwrap().len();
    assert!(
        size < 64 * 1024,
        "the report quotes the flood: {size} bytes"
    );
}

#[test]
fn a_fork_bomb_and_a_disk_filler_hit_their_limits_and_are_ended() {
    if !is_root() {
        // Without root there is no throwaway user, and RLIMIT_NPROC would count the
        // grader's own processes: the documented reduced mode does not set it. CI runs as
        // root, so there this is a failure, not a skip.
        lab_test_support::skip_unless_ci(
            "the fork-bomb and disk-filler limits",
            "the process limit needs root (a throwaway user per run)",
        );
        return;
    }
    let pid_dir = open_dir();
    // Bounded even without the limit: at most 200 forks, a 64 MiB file at most.
    let bomb = Written::new(
        "bomb.py",
        &format!(
            "import os, signal, socket, sys, time\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nout = open('{0}/result', 'w')\nforks = 0\nfor _ in range(200):\n    try: pid = os.fork()\n    except OSError: break\n    if pid == 0:\n        time.sleep(600); os._exit(0)\n    forks += 1\n    open('{0}/pids', 'a').write(f'{{pid}}\\n')\nwritten = 0\ntry:\n    with open(os.path.join(os.environ['TMPDIR'], 'fill'), 'wb') as f:\n        for _ in range(64): f.write(b'x' * (1 << 20)); f.flush(); written += 1 << 20\nexcept OSError: pass\nout.write(f'{{forks}} {{written}}\\n'); out.close()\ns = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(600)\n",
            pid_dir.path().display()
        ),
    );
    bomb.grade(Assignment::EchoServer, &["python3", "{file}", "{port}"]);
    let result = std::fs::read_to_string(pid_dir.path().join("result")).unwrap();
    let numbers: Vec<u64> = result
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(numbers[0] < 64, "forks were limited: {result}");
    assert!(
        numbers[1] <= 16 << 20,
        "the file size was limited: {result}"
    );
    for pid in pids(pid_dir.path()) {
        assert!(!alive(pid), "fork {pid} outlived the grading");
    }
}

#[test]
fn an_interrupted_grader_ends_the_program_and_removes_its_folders() {
    let dir = program_dir();
    let pid_dir = open_dir();
    let temp = tempfile::tempdir().unwrap();
    let sleeper = write_program(
        dir.path(),
        "sleeper.py",
        &format!(
            "import os, socket, sys, time\nopen('{}/pids', 'a').write(f'{{os.getpid()}}\\n')\ns = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(600)\n",
            pid_dir.path().display()
        ),
    );
    let mut grader = std::process::Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir.path())
        .env("TMPDIR", temp.path())
        .args([
            "echo-server",
            "--json",
            "--start-timeout",
            "60",
            "--step-timeout",
            "60",
        ])
        .args(["--", "python3", &sleeper, "{port}"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the program runs, then interrupt the grader as Ctrl-C would.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids(pid_dir.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let program = pids(pid_dir.path());
    assert_eq!(program.len(), 1, "the program never started");
    let folders_before = std::fs::read_dir(temp.path()).unwrap().count();
    assert!(folders_before > 0, "the run's folder exists while it runs");
    // SAFETY: signals the grader this test started.
    unsafe {
        libc::kill(grader.id() as i32, libc::SIGINT);
    }
    let status = grader.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(temp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(program[0]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(program[0]),
        "the program outlived the interrupted grader"
    );
}

#[test]
fn a_detached_process_cannot_rewrite_the_report_after_the_grader_exits() {
    let dir = program_dir();
    let out = open_dir(); // even a folder the program could write
    let results = out.path().join("results.json");
    // The program detaches a grandchild (double fork, setsid) that keeps overwriting the
    // report for up to 30 s, then exits at once itself.
    let forger = write_program(
        dir.path(),
        "forger.py",
        &format!(
            "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        open('{0}/pids', 'a').write(f'{{os.getpid()}}\\n')\n        for _ in range(300):\n            try: open('{1}', 'w').write('{{\"score\": 18}}')\n            except OSError: pass\n            time.sleep(0.1)\n    os._exit(0)\nsys.exit(1)\n",
            out.path().display(),
            results.display()
        ),
    );
    let output = Command::new(lab_test_support::bin!("lab-grade"))
        .current_dir(dir.path())
        .args(["echo-server", "--format", "gradescope", "--output"])
        .arg(&results)
        .args(["--start-timeout", "5", "--step-timeout", "1"])
        .args(["--", "python3", &forger, "{port}"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let recorded = pids(out.path());
    assert_eq!(recorded.len(), 1, "the detached writer started");
    if !is_root() {
        // The reduced mode's documented limit: it survives, and could write. End it.
        // SAFETY: a plain kill of the process this test's script started.
        unsafe {
            libc::kill(recorded[0], libc::SIGKILL);
        }
        return;
    }
    // Ended with its throwaway user before the report was written: it can write no more.
    assert!(
        !alive(recorded[0]),
        "the detached writer outlived the grading"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(report["score"], 0.0, "{report}");
}
