//! The chat program as a student runs it: two processes, real sockets, every error path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::*;
use lab_kit::child::Stream;
use lab_kit::pki::LeafSpec;

#[test]
fn a_conversation_goes_both_ways_at_once_and_ends_with_a_goodbye() {
    let certs = Certs::new();
    let (mut server, addr) = server(certs.path(), &["--once"]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    // The session facts are printed on both sides.
    let facts = expect_out(&client, "session with");
    assert!(facts.contains("TLSv1_3"), "{facts}");
    assert!(facts.contains("TLS13_"), "{facts}");
    assert!(facts.contains("CN=localhost, O=socket-lab"), "{facts}");
    expect_out(&server, "session with");

    // Full duplex: the server speaks first, and its line reaches a client whose user
    // has typed nothing at all (a strict-alternation client would be stuck in input()).
    server.write_stdin("hello from the server\n").unwrap();
    expect_out(&client, "peer: hello from the server");
    server
        .write_stdin("and a second line, still unanswered\n")
        .unwrap();
    expect_out(&client, "peer: and a second line, still unanswered");
    // Now the client, then the server again, then the client again (\r\n accepted).
    client.write_stdin("hi, client here\r\n").unwrap();
    expect_out(&server, "peer: hi, client here");
    server.write_stdin("server again\n").unwrap();
    client.write_stdin("client again\n").unwrap();
    expect_out(&client, "peer: server again");
    expect_out(&server, "peer: client again");

    client.write_stdin("Exit\n").unwrap();
    expect_out(&client, "you left (sent Exit and close_notify)");
    expect_out(
        &server,
        "peer left (said Exit, then closed the session with close_notify)",
    );
    assert_eq!(exit_code(&mut client), 0);
    assert_eq!(exit_code(&mut server), 0, "--once exits after the client");
    // A lone "peer: Exit" is never shown: Exit is the goodbye, not a message.
    assert!(!server.text(Stream::Stdout).contains("peer: Exit"));
}

#[test]
fn closing_stdin_leaves_too_and_the_server_waits_for_the_next_client() {
    let certs = Certs::new();
    let (mut server, addr) = server(certs.path(), &[]);
    let mut first = client(addr, &["--ca", &certs.ca()]);
    expect_out(&first, "session with");
    first.close_stdin();
    expect_out(
        &server,
        "peer left (said Exit, then closed the session with close_notify)",
    );
    assert_eq!(exit_code(&mut first), 0);
    expect_out(&server, "waiting for the next client");
    let mut second = client(addr, &["--ca", &certs.ca()]);
    expect_out(&second, "session with");
    second.write_stdin("second client here\n").unwrap();
    expect_out(&server, "peer: second client here");
    // Server's user closes stdin: the session ends politely and the server exits.
    server.close_stdin();
    expect_out(
        &second,
        "peer left (said Exit, then closed the session with close_notify)",
    );
    assert_eq!(exit_code(&mut second), 0);
    assert_eq!(exit_code(&mut server), 0);
}

#[test]
fn a_port_in_use_is_one_clear_error() {
    let certs = Certs::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = path_str(certs.path());
    let output = command(&["server", "--listen", &addr, "--certs", &dir])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("lab-chat: could not listen on 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("address already in use: AddrInUse (errno 98, EADDRINUSE)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("choose another port with --listen"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_missing_ca_file_is_one_clear_error() {
    let certs = Certs::new();
    let (_server, addr) = server(certs.path(), &[]);
    let missing = certs.path().join("no-such-ca.pem");
    let mut client = client(addr, &["--ca", &path_str(&missing)]);
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert!(
        stderr.contains("could not read the CA certificate from"),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-ca.pem"), "{stderr}");
    assert!(stderr.contains("run `lab-chat keygen`"), "{stderr}");
}

#[test]
fn a_server_signed_by_another_ca_is_refused() {
    let certs = Certs::new();
    let other = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut client = client(addr, &["--ca", &other.ca()]);
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert!(stderr.contains("TLS handshake with localhost:"), "{stderr}");
    // Same CA name, different key: webpki finds a candidate issuer whose signature fails.
    assert!(
        stderr.contains("invalid peer certificate: BadSignature"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not signed by the CA given with --ca"),
        "{stderr}"
    );
    // The server sees the client's refusal as an alert.
    expect_out(&server, "TLS handshake with 127.0.0.1:");
    assert!(!client.text(Stream::Stdout).contains("session with"));
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let spec = LeafSpec {
        common_name: "chat.example".into(),
        names: vec!["chat.example".into()],
        ..LeafSpec::lab_server()
    };
    let certs = Certs::with_server(&spec);
    let (_server, addr) = server(certs.path(), &[]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert!(
        stderr.contains("invalid peer certificate: certificate not valid for name \"localhost\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("not valid for the host name you connected to"),
        "{stderr}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let spec = LeafSpec {
        expired: true,
        ..LeafSpec::lab_server()
    };
    let certs = Certs::with_server(&spec);
    let (_server, addr) = server(certs.path(), &[]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert!(
        stderr.contains("invalid peer certificate: certificate expired"),
        "{stderr}"
    );
    assert!(stderr.contains("has expired"), "{stderr}");
}

#[test]
fn an_over_long_line_gets_one_error_line_and_a_disconnect() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--max-line", "16"]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    expect_out(&client, "session with");
    client.write_stdin("short\n").unwrap();
    expect_out(&server, "peer: short");
    client
        .write_stdin(&format!("{}\n", "x".repeat(100)))
        .unwrap();
    expect_out(
        &server,
        "disconnected the peer: line 2 is longer than the limit of 16 bytes",
    );
    expect_out(
        &client,
        "* error: line 2 is longer than the limit of 16 bytes; disconnecting",
    );
    expect_out(&client, "peer left (closed the session with close_notify)");
    assert_eq!(exit_code(&mut client), 0);
    // Nothing else is disturbed: the server goes on and serves the next client.
    expect_out(&server, "waiting for the next client");
    let next = crate::common::client(addr, &["--ca", &certs.ca()]);
    expect_out(&next, "session with");
    assert!(!server.text(Stream::Stdout).contains("xxxxxxxxxxxxxxxxx"));
}

/// A TLS client written in the test itself, to send bytes our own client never would.
fn raw_tls_client(
    certs: &Certs,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    raw_tls(certs, TcpStream::connect(addr).unwrap())
}

#[test]
fn invalid_utf8_is_reported_not_printed() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut tls = raw_tls_client(&certs, addr);
    tls.write_all(b"fine\nbad \xff\xfe bytes\n").unwrap();
    tls.flush().unwrap();
    expect_out(&server, "peer: fine");
    let line = expect_out(&server, "disconnected the peer");
    assert_eq!(
        line,
        "disconnected the peer: line 2 is not valid UTF-8 (invalid byte at offset 4: 0xff)"
    );
    let mut reply = String::new();
    let _ = tls.read_to_string(&mut reply);
    assert_eq!(
        reply,
        "* error: line 2 is not valid UTF-8 (invalid byte at offset 4: 0xff); disconnecting\n"
    );
    assert!(
        !server.text(Stream::Stdout).contains('\u{fffd}'),
        "no garbage printed"
    );
}

#[test]
fn a_client_cannot_pass_its_lines_off_as_the_servers_notices() {
    // `* ` lines are the server's notices to its clients; coming from a client they are
    // ordinary lines. Otherwise this client could print "* busy…" on the server's screen,
    // or make the server take it for a room and show its lines without `peer: `.
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut tls = raw_tls_client(&certs, addr);
    tls.write_all(b"* welcome to the room\nsession truncated: a forged status line\n")
        .unwrap();
    tls.flush().unwrap();
    expect_out(&server, "peer: * welcome to the room");
    expect_out(&server, "peer: session truncated: a forged status line");
    assert!(
        !server
            .lines(Stream::Stdout)
            .iter()
            .any(|line| line.starts_with("session truncated")),
        "{}",
        server.text(Stream::Stdout)
    );
}

#[test]
fn a_second_client_is_told_the_server_is_busy() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut first = client(addr, &["--ca", &certs.ca()]);
    expect_out(&server, "session with");
    expect_out(&first, "session with");
    let mut second = client(addr, &["--ca", &certs.ca()]);
    expect_out(
        &second,
        "* busy: the server is already chatting with another client",
    );
    assert_eq!(exit_code(&mut second), 1);
    assert!(
        second
            .text(Stream::Stderr)
            .contains("lab-chat: the server is busy")
    );
    expect_out(&server, "turned away 127.0.0.1:");
    // The first conversation is undisturbed.
    first.write_stdin("still here\n").unwrap();
    expect_out(&server, "peer: still here");
}

#[test]
fn a_client_killed_mid_session_is_a_truncated_session() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    expect_out(&server, "session with");
    client.write_stdin("about to vanish\n").unwrap();
    expect_out(&server, "peer: about to vanish");
    client.kill().unwrap();
    let line = expect_out(&server, "session truncated");
    assert!(line.contains("without close_notify"), "{line}");
    assert!(!server.text(Stream::Stdout).contains("peer left"));
    expect_out(&server, "waiting for the next client");
}

#[test]
fn a_server_killed_mid_session_is_a_truncated_session_for_the_client() {
    let certs = Certs::new();
    let (mut server, addr) = server(certs.path(), &[]);
    let mut client = client(addr, &["--ca", &certs.ca()]);
    expect_out(&client, "session with");
    server.kill().unwrap();
    expect_out(
        &client,
        "session truncated: the peer vanished without close_notify",
    );
    assert_eq!(exit_code(&mut client), 1);
    assert!(client.text(Stream::Stderr).contains("did not end cleanly"));
}

#[test]
fn a_client_that_never_handshakes_is_cut_off_at_the_deadline() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--handshake-timeout", "0.5"]);
    let silent = TcpStream::connect(addr).unwrap();
    let line = expect_out(&server, "TLS handshake with");
    assert!(
        line.ends_with("failed: no handshake within 500ms"),
        "{line}"
    );
    drop(silent);
    let next = client(addr, &["--ca", &certs.ca()]);
    expect_out(&next, "session with");
}

#[test]
fn an_idle_connection_never_holds_the_slot_so_a_real_client_is_not_told_busy() {
    // The slot policy: the one session slot is taken only after a completed handshake.
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--handshake-timeout", "600"]);
    let _silent = TcpStream::connect(addr).unwrap();
    let real = client(addr, &["--ca", &certs.ca()]);
    expect_out(&real, "session with");
    expect_out(&server, "session with");
    assert!(!real.text(Stream::Stdout).contains("busy"));
    assert!(!server.text(Stream::Stdout).contains("turned away"));
}

#[test]
fn a_flood_of_idle_connections_is_refused_past_the_pending_limit_and_then_a_client_is_served() {
    let certs = Certs::new();
    let (server, addr) = server(
        certs.path(),
        &["--max-pending", "4", "--handshake-timeout", "600"],
    );
    // Ten connections that never start TLS: four wait for their handshake, six are
    // refused at once (no thread, no handshake), counted and told in summary lines.
    let flood: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
    expect_refusals(
        &server,
        "the limit of 4 connections waiting for their handshake is reached",
        6,
    );
    // A real client during the flood is the newest: refused, clearly, on both sides.
    let mut during = client(addr, &["--ca", &certs.ca()]);
    assert_eq!(exit_code(&mut during), 1);
    let stderr = during.text(Stream::Stderr);
    assert!(stderr.contains("closed the connection"), "{stderr}");
    expect_refusals(&server, "is reached (the newest is refused)", 7);
    // The flood ends: its four pending places are given back, and the next client is served.
    drop(flood);
    expect_out_times(
        &server,
        "failed: the peer closed the connection during the handshake",
        4,
    );
    let after = client(addr, &["--ca", &certs.ca()]);
    expect_out(&after, "session with");
}

#[test]
fn control_characters_from_the_peer_are_shown_escaped() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut tls = raw_tls_client(&certs, addr);
    tls.write_all(b"\x1b]0;owned\x07\x1b[1A\x1b[2K\rpeer left (closed)\n")
        .unwrap();
    tls.flush().unwrap();
    let line = expect_out(&server, "peer: ");
    assert_eq!(
        line,
        "peer: \\u{1b}]0;owned\\u{7}\\u{1b}[1A\\u{1b}[2K\\rpeer left (closed)"
    );
    assert!(!server.text(Stream::Stdout).contains('\u{1b}'));
}

#[test]
fn mutual_tls_asks_the_client_for_its_certificate() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--require-client-cert"]);
    let cert = path_str(&certs.files.client_cert);
    let key = path_str(&certs.files.client_key);
    let with = client(addr, &["--ca", &certs.ca(), "--cert", &cert, "--key", &key]);
    let facts = expect_out(&server, "session with");
    assert!(
        facts.ends_with("peer certificate: CN=alice, O=socket-lab"),
        "{facts}"
    );
    expect_out(&with, "session with");
    drop(with);
    expect_out(&server, "waiting for the next client");

    // Without a certificate: under TLS 1.3 the server checks the client *after* the
    // client has finished, so the client learns it from the server's alert.
    let mut without = client(addr, &["--ca", &certs.ca()]);
    expect_out(&server, "failed: peer sent no certificates");
    assert_eq!(exit_code(&mut without), 1);
    let everything = without.text(Stream::Stdout) + &without.text(Stream::Stderr);
    assert!(everything.contains("CertificateRequired"), "{everything}");
}

#[test]
fn plaintext_chat_works_and_says_it_is_plaintext() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--plaintext"]);
    let mut client = client(addr, &["--plaintext"]);
    let line = expect_out(&client, "session with");
    assert!(
        line.ends_with("PLAINTEXT TCP, no encryption, no authentication"),
        "{line}"
    );
    client.write_stdin("in the clear\n").unwrap();
    expect_out(&server, "peer: in the clear");
    client.write_stdin("Exit\n").unwrap();
    expect_out(
        &server,
        "peer left (said Exit, then closed the TCP connection)",
    );
    assert_eq!(exit_code(&mut client), 0);
}

#[test]
fn a_tls_client_against_a_plaintext_server_fails_clearly() {
    let certs = Certs::new();
    let (server, addr) = server(certs.path(), &["--plaintext"]);
    let mut client = client(addr, &["--ca", &certs.ca(), "--handshake-timeout", "20"]);
    // The plaintext server reads the ClientHello as a line of garbage.
    expect_out(&server, "disconnected the peer");
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert!(stderr.contains("TLS handshake with localhost:"), "{stderr}");
}

#[test]
fn keygen_writes_private_keys_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = path_str(&dir.path().join("certs"));
    let first = command(&["keygen", "--out", &out]).output().unwrap();
    assert!(first.status.success());
    for (name, mode) in [
        ("ca.pem", 0o644),
        ("ca-key.pem", 0o600),
        ("server.pem", 0o644),
        ("server-key.pem", 0o600),
        ("client.pem", 0o644),
        ("client-key.pem", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join("certs").join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }
    let again = command(&["keygen", "--out", &out]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already exists; pass --force to replace it"),
        "{stderr}"
    );
    let forced = command(&["keygen", "--out", &out, "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success());
}

#[test]
fn keygen_makes_a_private_folder_whatever_the_umask_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/certs");
    let status = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" keygen --out \"$1\""])
        .arg(exe())
        .arg(&out)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca-key.pem",
            "ca.pem",
            "client-key.pem",
            "client.pem",
            "server-key.pem",
            "server.pem"
        ]
    );
}

#[test]
fn a_key_folder_that_others_can_write_is_refused_by_keygen_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = path_str(&shared);
    let keygen = command(&["keygen", "--out", &out]).output().unwrap();
    assert_eq!(keygen.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&keygen.stderr);
    assert!(
        stderr.contains("refusing the key folder")
            && stderr.contains("others may write to it (mode 0777)"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written"
    );
    let server = command(&["server", "--listen", "127.0.0.1:0", "--certs", &out])
        .output()
        .unwrap();
    assert_eq!(server.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&server.stderr).contains("others may write to it"));
}

#[test]
fn a_key_folder_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        // Giving a folder away takes root; the check itself is the same `uid` comparison.
        eprintln!("a_key_folder_owned_by_another_user_is_refused: needs root to chown, not run");
        return;
    }
    let certs = Certs::new();
    std::os::unix::fs::chown(certs.path(), Some(65534), Some(65534)).unwrap();
    let server = command(&["server", "--listen", "127.0.0.1:0", "--certs"])
        .arg(certs.path())
        .output()
        .unwrap();
    assert_eq!(server.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&server.stderr);
    assert!(
        stderr.contains("it belongs to user 65534, not to you (user 0)"),
        "{stderr}"
    );
}

#[test]
fn a_certificate_folder_without_the_server_key_is_one_clear_error() {
    let certs = Certs::new();
    std::fs::remove_file(&certs.files.server_key).unwrap();
    let dir = path_str(certs.path());
    let output = command(&["server", "--listen", "127.0.0.1:0", "--certs", &dir])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("holds some of the lab's certificate files but not server-key.pem"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("lab-chat keygen --out {dir} --force")),
        "{stderr}"
    );
    // Nothing was overwritten or added.
    assert!(!certs.files.server_key.exists());
}

#[test]
fn a_first_server_run_makes_certificates_in_the_default_folder_and_says_where() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command(&["server", "--listen", "127.0.0.1:0"]);
    cmd.env("HOME", home.path()).env_remove("XDG_DATA_HOME");
    let server = lab_kit::child::RunningChild::spawn(&mut cmd).unwrap();
    let addr = server.wait_for_listening(PATIENCE).unwrap();
    let line = expect_out(&server, "created a lab CA");
    let dir = home.path().join(".local/share/socket-lab/chat");
    assert!(line.contains(&path_str(&dir)), "{line}");
    assert!(line.contains("--ca"), "{line}");
    // The first stdout line is still `listening on`.
    assert!(server.lines(Stream::Stdout)[0].starts_with("listening on "));
    // And the client finds them there too, with no options at all but the port.
    let mut client_cmd = command(&["client", "--connect", &format!("localhost:{}", addr.port())]);
    client_cmd
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME");
    let client = lab_kit::child::RunningChild::spawn(&mut client_cmd).unwrap();
    expect_out(&client, "session with");
}

#[test]
fn connecting_where_no_server_listens_is_one_clear_error() {
    let held = lab_kit::ports::ClosedTcpPort::reserve().unwrap();
    let closed = held.addr();
    let certs = Certs::new();
    let output = command(&[
        "client",
        "--connect",
        &format!("127.0.0.1:{}", closed.port()),
        "--ca",
        &certs.ca(),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connection refused: ConnectionRefused (errno 111, ECONNREFUSED)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is `lab-chat server` running there?"),
        "{stderr}"
    );
}

#[test]
fn a_server_that_never_completes_the_connect_is_one_clear_error_at_the_deadline() {
    // Lab 1's listener whose accept queue is full: the kernel drops every further SYN,
    // and `connect` alone would wait for the SYN retries (about two minutes) before failing.
    let full = lab_refused::backlog::ListenerWithFullBacklog::new(0).unwrap();
    let addr = full.addr();
    let certs = Certs::new();
    let target = format!("127.0.0.1:{}", addr.port());
    let mut client = lab_kit::child::RunningChild::spawn(&mut command(&[
        "client",
        "--connect",
        &target,
        "--ca",
        &certs.ca(),
        "--handshake-timeout",
        "1",
    ]))
    .unwrap();
    assert_eq!(exit_code(&mut client), 1);
    let stderr = client.text(Stream::Stderr);
    assert_eq!(
        stderr,
        format!(
            "lab-chat: could not connect to {target}: connection timed out: TimedOut; \
             is `lab-chat server` running there?\n"
        )
    );
}

#[test]
fn help_lists_the_commands_with_examples() {
    // No terminal and no COLUMNS: clap wraps at its default width, the same everywhere.
    let output = command(&["--help"]).env_remove("COLUMNS").output().unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!("help", String::from_utf8(output.stdout).unwrap());
}

#[test]
fn a_server_whose_stdout_was_closed_still_serves_and_exits_cleanly() {
    // `lab-chat server | head -n 1`: the reader of the server's stdout leaves after the
    // first line. Every later event meets a closed pipe (EPIPE); the server must go on.
    let certs = Certs::new();
    let dir = path_str(certs.path());
    let script = r#""$@" | { head -n 1; exec 0<&-; echo "stdout closed" >&2; }"#;
    let mut pipeline = lab_kit::child::RunningChild::spawn(
        std::process::Command::new("sh")
            .args(["-c", script, "sh", exe(), "server", "--plaintext", "--once"])
            .args(["--listen", "127.0.0.1:0", "--certs", &dir])
            .env("NO_COLOR", "1"),
    )
    .unwrap();
    let addr = pipeline.wait_for_listening(PATIENCE).unwrap();
    expect_err(&pipeline, "stdout closed");
    let mut client = client(addr, &["--plaintext"]);
    expect_out(&client, "session with");
    client
        .write_stdin("is anyone reading your stdout?\n")
        .unwrap();
    client.write_stdin("Exit\n").unwrap();
    assert_eq!(exit_code(&mut client), 0);
    // --once: the server exits after its client, as if its stdout were still open.
    assert_eq!(exit_code(&mut pipeline), 0);
    let stderr = pipeline.text(Stream::Stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_the_demo_quietly() {
    // `lab-chat demo | head -n 2`: once head has left, the next write fails with EPIPE; like
    // every lab, the demo then ends without a word on stderr.
    let output = lab_test_support::output_read_by_head(
        lab_test_support::bin!("lab-chat"),
        &["demo", "--no-capture"],
        2,
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
