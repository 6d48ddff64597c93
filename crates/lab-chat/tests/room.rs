//! `--room`: names, join and leave notices, relaying to everyone else, and a slow client
//! dropped without stalling the others.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use crate::common::*;
use lab_kit::child::Stream;

#[test]
fn a_room_names_its_members_and_relays_each_line_to_everyone_else() {
    let certs = Certs::new();
    let (mut server, addr) = server(certs.path(), &["--room", "--require-client-cert"]);
    let cert = path_str(&certs.files.client_cert);
    let key = path_str(&certs.files.client_key);
    // alice is named by her certificate (CN=alice): the server knows who she is.
    let mut alice = client(addr, &["--ca", &certs.ca(), "--cert", &cert, "--key", &key]);
    expect_out(
        &alice,
        "* welcome to the room, alice; nobody else is here yet",
    );
    expect_out(&server, "* alice joined");
    // bob has his own certificate, and asks for another name: refused.
    let (bob_cert, bob_key) = certs.client_named("bob", "bob");
    let mut second = client(
        addr,
        &[
            "--ca",
            &certs.ca(),
            "--cert",
            &bob_cert,
            "--key",
            &bob_key,
            "--name",
            "robert",
        ],
    );
    expect_out(&second, "* welcome to the room, bob; here: alice");
    expect_out(&second, "* your name comes from your certificate: bob");
    expect_out(&alice, "* bob joined");
    alice.write_stdin("hello room\n").unwrap();
    expect_out(&second, "alice: hello room");
    second.write_stdin("hi alice\n").unwrap();
    expect_out(&alice, "bob: hi alice");
    // A second connection with alice's certificate would be a second "alice": turned away.
    let mut twin = client(addr, &["--ca", &certs.ca(), "--cert", &cert, "--key", &key]);
    expect_out(
        &twin,
        "* alice is already in the room (one connection per certificate)",
    );
    assert_eq!(exit_code(&mut twin), 0);
    // Nobody gets their own line back.
    assert_eq!(
        alice
            .lines(Stream::Stdout)
            .iter()
            .filter(|l| l.contains("hello room"))
            .count(),
        0
    );
    second.write_stdin("Exit\n").unwrap();
    expect_out(&alice, "* bob left");
    assert_eq!(exit_code(&mut second), 0);
    server.close_stdin();
    expect_out(&alice, "peer left");
    assert_eq!(exit_code(&mut alice), 0);
    assert_eq!(exit_code(&mut server), 0);
}

#[test]
fn guests_choose_a_name_and_everyone_hears_about_it() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--room", "--plaintext"]);
    let first = client(addr, &["--plaintext", "--name", "bob"]);
    expect_out(&first, "* welcome to the room, guest");
    expect_out(&server, "is now bob");
    let mut second = client(addr, &["--plaintext", "--name", "carol"]);
    expect_out(&second, "here: bob");
    expect_out(&first, "is now carol");
    second.write_stdin("hi bob\n").unwrap();
    expect_out(&first, "carol: hi bob");
    let mut third = client(addr, &["--plaintext", "--name", "carol"]);
    expect_out(&third, "* the name carol is taken");
    third.close_stdin();
    assert_eq!(exit_code(&mut third), 0);
}

/// A plaintext room member written in the test: reads lines on a thread, reports them.
fn reading_member(addr: std::net::SocketAddr) -> (TcpStream, mpsc::Receiver<String>) {
    let tcp = TcpStream::connect(addr).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = tcp.try_clone().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (tcp, rx)
}

#[test]
fn a_client_too_far_behind_is_dropped_and_the_others_are_not_stalled() {
    let certs = Certs::new();
    let (server, addr) = server(
        certs.path(),
        &[
            "--room",
            "--plaintext",
            "--max-backlog",
            "50000",
            "--max-lines-per-second",
            "1000000",
        ],
    );
    // A member that never reads: its socket buffers fill, then its queue.
    let slow = TcpStream::connect(addr).unwrap();
    expect_out(&server, "* guest1 joined");
    let (_reader, lines) = reading_member(addr);
    expect_out(&server, "* guest2 joined");
    let mut talker = TcpStream::connect(addr).unwrap();
    expect_out(&server, "* guest3 joined");
    // Batches of 40 lines; the reading member keeps up (we wait for each batch), the
    // slow one does not. Bounded: at most 64 MB in all.
    let payload = "x".repeat(1000);
    let mut received = 0usize;
    let mut sent = 0usize;
    let mut dropped_seen_by_reader = false;
    for batch in 0..1600 {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("{batch}.{i} {payload}\n"));
        }
        talker.write_all(text.as_bytes()).unwrap();
        sent += 40;
        while received < sent {
            let line = lines
                .recv_timeout(PATIENCE)
                .expect("the reading member was stalled");
            if line.starts_with("guest3: ") {
                received += 1;
            } else if line.contains("guest1 was dropped") {
                dropped_seen_by_reader = true;
            }
        }
        if dropped_seen_by_reader {
            break;
        }
    }
    assert!(dropped_seen_by_reader, "the slow member was never dropped");
    expect_out(
        &server,
        "* guest1 was dropped: more than 50000 bytes behind",
    );
    // The others go on: the reading member still gets the talker's lines.
    talker.write_all(b"the last line\n").unwrap();
    loop {
        let line = lines.recv_timeout(PATIENCE).expect("the room stalled");
        if line == "guest3: the last line" {
            break;
        }
    }
    // The slow member, when it finally reads, finds the reason at the end.
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut last = String::new();
    for line in BufReader::new(&slow).lines() {
        match line {
            Ok(line) => last = line,
            Err(_) => break,
        }
    }
    assert_eq!(
        last,
        "* more than 50000 bytes were waiting for you; you were dropped"
    );
}

/// The line a [`reading_member`] receives next that satisfies `wanted`.
#[track_caller]
fn next_line_where(lines: &mpsc::Receiver<String>, wanted: impl Fn(&str) -> bool) -> String {
    loop {
        let line = lines
            .recv_timeout(PATIENCE)
            .expect("the expected line never came");
        if wanted(&line) {
            return line;
        }
    }
}

#[test]
fn a_burst_of_1001_lines_drops_nobody_and_the_flooder_is_told_to_slow_down() {
    // Reproduced from the issue: one write of 1,001 short lines used to drop every other
    // member at once. Now the backlog is counted in bytes still unsent after a write, and
    // the sender's lines past its rate are not relayed.
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--room", "--plaintext"]);
    let (_reader, lines) = reading_member(addr);
    expect_out(&server, "* guest1 joined");
    let (mut flooder, flooder_lines) = reading_member(addr);
    expect_out(&server, "* guest2 joined");
    let burst: String = (0..1001).map(|i| format!("line {i}\n")).collect();
    flooder.write_all(burst.as_bytes()).unwrap();
    // Every line is either relayed to the reader or counted in a `* slow down` notice to
    // the flooder (one per read of the burst): wait until all 1,001 are accounted for.
    let mut relayed: Vec<usize> = Vec::new();
    let mut not_relayed = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while relayed.len() + not_relayed < 1001 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} relayed, {not_relayed} refused",
            relayed.len()
        );
        while let Ok(line) = lines.try_recv() {
            assert!(!line.contains("dropped"), "{line}");
            if let Some(n) = line.strip_prefix("guest2: line ") {
                relayed.push(n.parse().unwrap());
            }
        }
        if let Ok(notice) = flooder_lines.recv_timeout(std::time::Duration::from_millis(10))
            && let Some(rest) = notice.strip_prefix("* slow down: ")
        {
            not_relayed += rest.split(' ').next().unwrap().parse::<usize>().unwrap();
        }
    }
    assert_eq!(relayed.len() + not_relayed, 1001);
    // Five seconds' worth (100 lines) at least were relayed, never all, and in order.
    assert!(
        (100..1001).contains(&relayed.len()),
        "{} relayed",
        relayed.len()
    );
    assert!(relayed.windows(2).all(|w| w[0] < w[1]), "{relayed:?}");
    // The reader is still a member: the operator's next line reaches it.
    let mut server = server;
    server.write_stdin("still here?\n").unwrap();
    next_line_where(&lines, |l| l == "server: still here?");
    assert!(!server.text(Stream::Stdout).contains("dropped"));
}

#[test]
fn the_room_caps_its_members_and_each_address() {
    let certs = Certs::new();
    let (server, addr) = server(
        certs.path(),
        &["--room", "--plaintext", "--max-members", "1"],
    );
    let _first = client(addr, &["--plaintext"]);
    expect_out(&server, "* guest1 joined");
    let mut second = client(addr, &["--plaintext"]);
    expect_out(
        &second,
        "* the room is full (at most 1 members); try again later",
    );
    assert_eq!(exit_code(&mut second), 0);
    expect_out(&server, "refused 127.0.0.1:");

    let (server, addr) = crate::common::server(
        certs.path(),
        &["--room", "--plaintext", "--max-per-address", "1"],
    );
    let _first = TcpStream::connect(addr).unwrap();
    expect_out(&server, "* guest1 joined");
    let (_second, lines) = reading_member(addr);
    let line = expect_out(&server, "refused 127.0.0.1:");
    assert!(
        line.ends_with("the limit of 1 connections from 127.0.0.1 is reached"),
        "{line}"
    );
    // Refused before any handshake: closed, nothing said, no member made.
    assert!(lines.recv_timeout(PATIENCE).is_err());
    assert!(!server.text(Stream::Stdout).contains("guest2"));
}

#[test]
fn a_silent_member_is_disconnected_at_the_idle_timeout() {
    let certs = Certs::new();
    let (server, addr) = server(
        certs.path(),
        &["--room", "--plaintext", "--idle-timeout", "0.5"],
    );
    let (_silent, lines) = reading_member(addr);
    next_line_where(&lines, |l| l.starts_with("* welcome"));
    let notice = next_line_where(&lines, |l| l.starts_with("* error"));
    assert_eq!(
        notice,
        "* error: sent nothing for 0.5 s (the idle timeout); disconnecting"
    );
    expect_out(&server, "* guest1 left");
}

#[test]
fn one_name_rule_for_guests_and_certificates_and_nobody_can_speak_as_the_server() {
    let certs = Certs::new();
    let (guests_room, addr) = server(certs.path(), &["--room", "--plaintext"]);
    let bob = client(addr, &["--plaintext", "--name", "bob"]);
    expect_out(&bob, "* welcome to the room, guest");
    expect_out(&guests_room, "is now bob");
    let mut guest = client(addr, &["--plaintext"]);
    expect_out(&guest, "here: bob");
    let rule = "* names are 1 to 32 ASCII letters, digits, '-', '_' or '.'; \
                `server` and `guestN` are reserved";
    // `server`, a look-alike of bob with a Cyrillic letter, another guest's name, a space.
    for wanted in ["server", "SERVER", "b\u{43e}b", "guest7", "bob smith"] {
        guest.write_stdin(&format!("/name {wanted}\n")).unwrap();
    }
    expect_out_times(&guest, rule, 5);
    guest.write_stdin("/name BOB\n").unwrap();
    expect_out(&guest, "* the name BOB is taken");
    assert!(!bob.text(Stream::Stdout).contains("is now s"));

    // Names from certificates obey the same rule: a line break that would forge a server
    // notice, or a leading `* `, is refused with one notice, before anyone hears of it.
    let (server, addr) = crate::common::server(certs.path(), &["--room", "--require-client-cert"]);
    let (bob_cert, bob_key) = certs.client_named("bob", "bob");
    let mut bob = client(
        addr,
        &["--ca", &certs.ca(), "--cert", &bob_cert, "--key", &bob_key],
    );
    expect_out(&bob, "* welcome to the room, bob");
    for (stem, forged) in [
        ("forger", "mallory\n* server: reconnect to evil.example"),
        ("notice", "* admin"),
    ] {
        let (cert, key) = certs.client_named(stem, forged);
        let mut forger = client(addr, &["--ca", &certs.ca(), "--cert", &cert, "--key", &key]);
        expect_out(&forger, "cannot be used in the room");
        assert_eq!(exit_code(&mut forger), 0);
    }
    expect_out_times(&server, "its certificate's name", 2);
    guest.write_stdin("Exit\n").unwrap();
    let seen = bob.text(Stream::Stdout);
    assert!(
        !seen.contains("mallory") && !seen.contains("admin"),
        "{seen}"
    );
    bob.close_stdin();
    assert_eq!(exit_code(&mut bob), 0);
}

#[test]
fn control_characters_in_a_members_line_are_shown_escaped() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--room", "--plaintext"]);
    let viewer = client(addr, &["--plaintext"]);
    expect_out(&viewer, "* welcome to the room");
    let mut attacker = TcpStream::connect(addr).unwrap();
    expect_out(&server, "* guest2 joined");
    attacker
        .write_all(b"hi\x1b[1A\x1b[2K\r* guest1 left\x1b]0;owned\x07\n")
        .unwrap();
    let line = expect_out(&viewer, "guest2: hi");
    assert_eq!(
        line,
        "guest2: hi\\u{1b}[1A\\u{1b}[2K\\r* guest1 left\\u{1b}]0;owned\\u{7}"
    );
    assert!(!viewer.text(Stream::Stdout).contains('\u{1b}'));
}

#[test]
fn a_flood_from_one_address_does_not_keep_a_client_from_another_out() {
    // Idle connections that never start TLS, all from 127.0.0.1: only two may wait for
    // their handshake (half the pending places), the rest are refused at once. A client
    // from another address (127.0.0.2, also loopback on Linux) still gets a place.
    let certs = Certs::new();
    let (server, addr) = server(
        certs.path(),
        &[
            "--room",
            "--max-pending",
            "4",
            "--max-per-address",
            "2",
            "--handshake-timeout",
            "600",
        ],
    );
    let flood: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
    expect_refusals(
        &server,
        "the limit of 2 connections from 127.0.0.1 is reached",
        8,
    );
    let other = connect_from("127.0.0.2".parse().unwrap(), addr);
    let mut tls = raw_tls(&certs, other);
    let mut welcome = String::new();
    BufReader::new(&mut tls).read_line(&mut welcome).unwrap();
    assert!(
        welcome.starts_with("* welcome to the room, guest"),
        "{welcome:?}"
    );
    expect_out(&server, "joined");
    drop(flood);
}

#[test]
fn a_member_that_breaks_the_framing_rules_gets_one_error_line_and_the_room_goes_on() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--room", "--plaintext", "--max-line", "16"]);
    let (_reader, lines) = reading_member(addr);
    expect_out(&server, "* guest1 joined");
    let (mut breaker, breaker_lines) = reading_member(addr);
    breaker
        .write_all(format!("{}\n", "x".repeat(100)).as_bytes())
        .unwrap();
    next_line_where(&breaker_lines, |l| {
        l == "* error: line 1 is longer than the limit of 16 bytes; disconnecting"
    });
    let (mut breaker, breaker_lines) = reading_member(addr);
    breaker.write_all(b"fine\nbad \xff\xfe bytes\n").unwrap();
    next_line_where(&breaker_lines, |l| {
        l == "* error: line 2 is not valid UTF-8 (invalid byte at offset 4: 0xff); disconnecting"
    });
    expect_out(&server, "disconnected the peer: line 2 is not valid UTF-8");
    // The others only heard the valid line, and the room goes on.
    next_line_where(&lines, |l| l.ends_with(": fine"));
    let (_late, late_lines) = reading_member(addr);
    next_line_where(&late_lines, |l| l.starts_with("* welcome to the room"));
}

/// A server process whose standard output is a pipe that nobody reads (after its first
/// line): killed and reaped on drop.
struct UnreadServer {
    child: std::process::Child,
    _stdin: std::process::ChildStdin,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for UnreadServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_flood_of_refusals_never_stalls_accepting_even_when_nobody_reads_the_log() {
    // `lab-chat server --room | (read first line; sleep)`: the log is a pipe that fills
    // after 64 KiB. One line per refused connection (about 80 bytes) from the accept loop
    // would block that loop after some 800 refusals; refusals are counted there and told in
    // summary by a thread of their own, so a member from another address still gets in.
    let mut child = std::process::Command::new(exe())
        .args([
            "server",
            "--room",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--max-per-address",
            "2",
        ])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let read = stdout.read_line(&mut first);
    // From here on, nobody reads the server's stdout (but it stays open: no EPIPE).
    let server = UnreadServer {
        child,
        _stdin: stdin,
        _stdout: stdout,
    };
    read.unwrap();
    let addr = lab_kit::ready::listening_addr(first.trim_end())
        .unwrap_or_else(|| panic!("no listening line: {first:?}"));
    // Two connections hold 127.0.0.1's places; 2,000 more are refused, each at once.
    let _held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for _ in 0..2000 {
        drop(TcpStream::connect(addr).unwrap());
    }
    // Accepting goes on: a member from another address is welcomed.
    let other = connect_from("127.0.0.2".parse().unwrap(), addr);
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut welcome = String::new();
    BufReader::new(&other).read_line(&mut welcome).unwrap();
    assert!(
        welcome.starts_with("* welcome to the room, guest"),
        "{welcome:?}"
    );
    drop(server);
}
