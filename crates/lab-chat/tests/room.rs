//! `--room`: names, join and leave notices, relaying to everyone else, and a slow client
//! dropped without stalling the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use common::*;
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
    // The second member has the same certificate here, but asks for a name: refused.
    let mut second = client(
        addr,
        &[
            "--ca",
            &certs.ca(),
            "--cert",
            &cert,
            "--key",
            &key,
            "--name",
            "bob",
        ],
    );
    expect_out(&second, "* welcome to the room, alice; here: alice");
    expect_out(&second, "* your name comes from your certificate: alice");
    expect_out(&alice, "* alice joined");
    alice.write_stdin("hello room\n").unwrap();
    expect_out(&second, "alice: hello room");
    second.write_stdin("hi alice\n").unwrap();
    expect_out(&alice, "alice: hi alice");
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
    expect_out(&alice, "* alice left");
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
        &["--room", "--plaintext", "--max-queue", "50"],
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
    expect_out(&server, "* guest1 was dropped: more than 50 lines behind");
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
        "* more than 50 lines were waiting for you; you were dropped"
    );
}
