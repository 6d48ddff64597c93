//! The `lab-echo` command line: the server and client as real processes (each a
//! `RunningChild`, the server always on a kernel-chosen port), their error messages and exit
//! codes, the chapters' `--json` records, `--help`, and a tiny smoke run of the benchmark.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};

use std::process::Command;
use std::time::Duration;

use lab_kit::child::{RunningChild, Stream};
use predicates::prelude::*;
use serde_json::Value;

/// Generous: these normally take milliseconds, but the machine may be busy.
const DEADLINE: Duration = Duration::from_secs(30);

/// The binary with colors off and a fixed width for clap's help text.
fn lab_echo() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(lab_test_support::bin!("lab-echo"));
    command
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .timeout(DEADLINE);
    command
}

/// `lab-echo server --listen 127.0.0.1:0 ARGS…`, started and listening.
fn start_server(args: &[&str]) -> (RunningChild, SocketAddr) {
    let mut command = Command::new(lab_test_support::bin!("lab-echo"));
    command
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(args);
    let server = RunningChild::spawn(&mut command).unwrap();
    let addr = server
        .wait_for_listening(DEADLINE)
        .unwrap_or_else(|| panic!("no listening line: {}", server.text(Stream::Stderr)));
    // The listening line is the first line.
    assert!(server.lines(Stream::Stdout)[0].starts_with("listening on 127.0.0.1:"));
    (server, addr)
}

fn one_line(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text).into_owned();
    assert_eq!(text.lines().count(), 1, "expected one line, got: {text:?}");
    text
}

#[test]
fn the_client_gets_every_line_back_and_exits_0_at_end_of_input() {
    let (_server, addr) = start_server(&[]);
    let input: String = (1..=200).map(|i| format!("line number {i}\n")).collect();
    lab_echo()
        .args(["client", "--connect", &addr.to_string()])
        .write_stdin(input.clone())
        .assert()
        .success()
        .stdout(input);
}

#[test]
fn the_server_serves_many_clients_at_once() {
    let (server, addr) = start_server(&[]);
    // Five clients, all connected at the same time: each keeps its stdin open until all
    // five have had their first line echoed.
    let mut clients: Vec<RunningChild> = (0..5)
        .map(|i| {
            let mut client =
                RunningChild::spawn(Command::new(lab_test_support::bin!("lab-echo")).args([
                    "client",
                    "--connect",
                    &addr.to_string(),
                ]))
                .unwrap();
            client
                .write_stdin(&format!("client {i} says hello\n"))
                .unwrap();
            client
        })
        .collect();
    for (i, client) in clients.iter().enumerate() {
        let wanted = format!("client {i} says hello");
        assert!(
            client
                .wait_for_line(Stream::Stdout, DEADLINE, |l| l == wanted)
                .is_some(),
            "client {i}: {}",
            client.text(Stream::Stderr)
        );
    }
    // The server said so too: five connections, each on its own thread.
    let mut connected = 0;
    let fifth = server.wait_for_line(Stream::Stdout, DEADLINE, |line| {
        connected += usize::from(line.contains("connected ("));
        connected == 5
    });
    assert!(fifth.is_some(), "{}", server.text(Stream::Stdout));
    for client in &mut clients {
        client.write_stdin("goodbye\n").unwrap();
        client.close_stdin();
        let status = client
            .wait_timeout(DEADLINE)
            .unwrap()
            .expect("client exits");
        assert!(status.success(), "{}", client.text(Stream::Stderr));
        assert!(client.text(Stream::Stdout).ends_with("goodbye\n"));
    }
}

#[test]
fn a_client_over_the_limit_gets_a_busy_line_and_a_non_zero_exit() {
    let (server, addr) = start_server(&["--max-clients", "1"]);
    let mut first = RunningChild::spawn(Command::new(lab_test_support::bin!("lab-echo")).args([
        "client",
        "--connect",
        &addr.to_string(),
    ]))
    .unwrap();
    // Once its first line is echoed, the first client surely holds the only slot.
    first.write_stdin("first\n").unwrap();
    assert!(
        first
            .wait_for_line(Stream::Stdout, DEADLINE, |l| l == "first")
            .is_some()
    );
    let output = lab_echo()
        .args(["client", "--connect", &addr.to_string()])
        .write_stdin("second\n")
        .assert()
        .failure()
        .stdout("")
        .stderr(predicate::str::contains("server refused this client"))
        .stderr(predicate::str::contains(
            "lab-echo server busy: all 1 client slots are taken",
        ));
    one_line(&output.get_output().stderr);
    assert!(
        server
            .wait_for_line(Stream::Stdout, DEADLINE, |l| l
                .contains("refused: all 1 client slots"))
            .is_some()
    );
    // The first client is unaffected.
    first.write_stdin("still here\n").unwrap();
    first.close_stdin();
    assert!(first.wait_timeout(DEADLINE).unwrap().unwrap().success());
    assert_eq!(first.text(Stream::Stdout), "first\nstill here\n");
}

#[test]
fn a_port_in_use_is_one_clear_line_and_a_non_zero_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = lab_echo()
        .args(["server", "--listen", &addr])
        .assert()
        .failure()
        .stdout("")
        .stderr(predicate::str::starts_with(format!(
            "lab-echo: could not listen on {addr}: address already in use: AddrInUse (errno 98, EADDRINUSE)"
        )))
        .stderr(predicate::str::contains("--listen"));
    one_line(&output.get_output().stderr);
}

#[test]
fn an_unresolvable_host_is_one_clear_line_and_a_non_zero_exit() {
    // `.invalid` is reserved (RFC 2606): it never resolves.
    let output = lab_echo()
        .args(["client", "--connect", "no-such-host.invalid:2000"])
        .write_stdin("hello\n")
        .assert()
        .failure()
        .stderr(predicate::str::starts_with(
            "lab-echo: could not resolve `no-such-host.invalid:2000`:",
        ))
        .stderr(predicate::str::contains("HOST:PORT"));
    one_line(&output.get_output().stderr);
    // A missing port is caught the same way.
    lab_echo()
        .args(["client", "--connect", "127.0.0.1"])
        .assert()
        .failure()
        .stderr(predicate::str::starts_with(
            "lab-echo: `127.0.0.1` is not HOST:PORT (e.g. localhost:2000)",
        ));
}

#[test]
fn a_refused_connect_is_one_clear_line_and_a_non_zero_exit() {
    let closed = lab_kit::ports::ClosedTcpPort::reserve().unwrap();
    let addr = closed.addr().to_string();
    let output = lab_echo()
        .args(["client", "--connect", &addr])
        .write_stdin("hello\n")
        .assert()
        .failure()
        .stdout("")
        .stderr(predicate::str::starts_with(format!(
            "lab-echo: could not connect to {addr}: connection refused: ConnectionRefused (errno 111, ECONNREFUSED)"
        )))
        .stderr(predicate::str::contains("start `lab-echo server` first"));
    one_line(&output.get_output().stderr);
}

#[test]
fn help_shows_the_subcommands_and_examples() {
    let output = lab_echo().arg("--help").assert().success();
    let help = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    for word in [
        "server",
        "client",
        "localhost",
        "calls",
        "bench",
        "Examples:",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
    insta::assert_snapshot!("help", help);
}

fn json_records(args: &[&str]) -> Vec<Value> {
    let output = lab_echo().args(args).assert().success();
    String::from_utf8(output.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn the_localhost_chapter_prints_one_json_object_per_experiment() {
    let records = json_records(&["localhost", "--json"]);
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["experiment"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "localhost_resolution",
        "ipv6_first_trap",
        "loopback_interface",
        "bind_address",
        "ephemeral_port",
    ];
    if lab_echo::namespaces::unavailable_reason().is_none() {
        expected.insert(4, "across_a_link");
    }
    assert_eq!(names, expected);
    let trap = &records[1];
    let refused = &trap["ipv6_first_attempts"][0];
    assert_eq!(
        refused["target"].as_str().unwrap().split("]:").next(),
        Some("[::1")
    );
    if refused["outcome"] == "refused" {
        assert_eq!(refused["error_kind"], "ConnectionRefused");
        assert_eq!(refused["errno"], 111);
    }
    assert!(refused["elapsed_us"].is_u64());
}

#[test]
fn the_socket_calls_chapter_prints_one_json_object_per_experiment() {
    let records = json_records(&["calls", "--json"]);
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["experiment"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "socket_calls",
        "no_message_boundaries",
        "partial_send",
        "peer_closes",
    ];
    // Where packets are captured, the chapter also shows the Nagle stall on the wire.
    if lab_capture::Wiretap::on(None).captures() {
        expected.extend(["bench_nagle", "bench_nagle"]);
    }
    if lab_kit::strace::locate().is_ok() {
        expected.push("socket_calls_strace");
    } else {
        lab_test_support::skip_unless_ci(
            "the strace record in calls --json",
            "strace is not usable here",
        );
    }
    assert_eq!(names, expected);
    assert_eq!(records[0]["steps"].as_array().unwrap().len(), 16);
    assert_eq!(records[2]["error_kind"], "WouldBlock");
    assert_eq!(records[3]["recv_after_close"], 0);
    assert_eq!(records[3]["recv_after_reset"]["errno_name"], "ECONNRESET");
}

#[test]
fn the_benchmark_runs_in_a_tiny_smoke_version() {
    // Tiny counts: this proves the benchmark works, it measures nothing worth reading.
    let records = json_records(&[
        "bench",
        "--json",
        "--round-trips",
        "50",
        "--bytes",
        "1048576",
        "--nagle-round-trips",
        "2",
        "--iperf3-seconds",
        "0",
    ]);
    let count = |name: &str| records.iter().filter(|r| r["experiment"] == name).count();
    // std ping-pong and ours, plus Python where it runs (or a skipped record).
    assert!(count("bench_latency") >= 2);
    assert_eq!(count("bench_latency") + count("bench_skipped"), 3);
    assert_eq!(count("bench_bulk"), 1);
    assert_eq!(count("bench_nagle"), 2);
    for record in records
        .iter()
        .filter(|r| r["experiment"] == "bench_latency")
    {
        assert_eq!(record["round_trips"], 50);
        assert!(record["p50_us"].as_f64().unwrap() > 0.0);
        assert!(record["p99_us"].as_f64().unwrap() >= record["p50_us"].as_f64().unwrap());
    }
    let bulk = records
        .iter()
        .find(|r| r["experiment"] == "bench_bulk")
        .unwrap();
    assert_eq!(bulk["bytes"], 1_048_576);
}

#[test]
fn a_client_that_resets_its_connection_affects_only_itself() {
    let (server, addr) = start_server(&[]);
    // A rude client: sends a line, then aborts the connection with a reset (SO_LINGER 0)
    // without reading its echo.
    let rude = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut &rude, b"bye\n").unwrap();
    socket2::SockRef::from(&rude)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(rude);
    // The server noticed that client end (failed or left), and keeps serving others.
    assert!(
        server
            .wait_for_line(Stream::Stdout, DEADLINE, |l| l.contains("failed:")
                || l.contains("left after"))
            .is_some(),
        "{}",
        server.text(Stream::Stdout)
    );
    lab_echo()
        .args(["client", "--connect", &addr.to_string()])
        .write_stdin("still served\n")
        .assert()
        .success()
        .stdout("still served\n");
}
