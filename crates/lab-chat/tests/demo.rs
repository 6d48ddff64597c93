//! The demonstration's claims, asserted on a live run, and its narration pinned.

use crate::common::*;
use lab_chat::demo::{self, SECRET};
use lab_kit::child::{RunningChild, Stream};
use lab_kit::narrate::{Format, Narrator};

/// The demo's own filters, after the shared ones: ciphertext bytes and handshake sizes vary.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"ciphertext(?: [0-9a-f]{2})+", "ciphertext [RANDOM BYTES]"),
        (r"(bytes captured\s+)\d+", "${1}[N]"),
        (r"localhost:\d{1,5}\b", "localhost:[PORT]"),
    ]
}

#[test]
fn the_demo_shows_each_property_and_its_narration_is_pinned() {
    let (mut narrator, captured) = Narrator::capture(Format::Text);
    let report = demo::run_demo(&mut narrator).unwrap();

    // Full duplex: the server's line reached a client that had sent nothing, and lines
    // typed on both sides at the same moment all arrived.
    assert!(report.conversation.server_spoke_first);
    assert_eq!(report.conversation.client_received, 3);
    assert_eq!(report.conversation.server_received, 3);
    assert!(matches!(
        report.conversation.security,
        lab_chat::transport::Security::Tls(ref facts) if facts.protocol == "TLSv1_3"
    ));

    // Confidentiality: the plaintext capture contains the message bytes, the TLS one does not.
    assert!(report.eavesdrop_plaintext.secret_seen);
    assert!(report.eavesdrop_plaintext.reply_seen);
    assert!(
        report.eavesdrop_tls.delivered,
        "the TLS chat worked through the relay"
    );
    assert!(!report.eavesdrop_tls.secret_seen);
    assert!(!report.eavesdrop_tls.reply_seen);
    assert!(report.eavesdrop_tls.bytes_captured > report.eavesdrop_plaintext.bytes_captured);

    // Server authentication: the impostor is refused with the verification error.
    assert!(report.impostor.refused);
    assert!(
        report
            .impostor
            .client_error
            .contains("invalid peer certificate: UnknownIssuer")
    );
    assert_eq!(report.impostor.lines_leaked, 0);
    assert!(report.impostor.impostor_saw.contains("UnknownCA"));

    // Integrity: a plaintext line is rewritten undetected; a changed TLS record is refused.
    assert!(report.tamper_plaintext.forgery_accepted);
    assert!(!report.tamper_plaintext.detected);
    assert!(
        report.tamper_tls.detected,
        "{}",
        report.tamper_tls.server_saw
    );
    assert!(!report.tamper_tls.forgery_accepted);
    assert!(!report.tamper_tls.server_saw.contains("peer: "));

    // Integrity of the ending: TLS reports the cut as truncation, plaintext cannot.
    assert!(report.truncation_tls.detected);
    assert!(
        report
            .truncation_tls
            .server_saw
            .contains("without close_notify")
    );
    assert!(!report.truncation_plaintext.detected);
    assert_eq!(
        report.truncation_plaintext.server_saw,
        "peer left (closed the TCP connection)"
    );

    // Client authentication: the server names the client, and refuses an anonymous one.
    assert_eq!(
        report.mutual_tls.client_subject.as_deref(),
        Some("CN=student, O=socket-lab")
    );
    assert!(
        report
            .mutual_tls
            .server_saw
            .contains("peer sent no certificates")
    );
    assert!(
        report
            .mutual_tls
            .anonymous_client_saw
            .contains("CertificateRequired")
    );

    // What the eavesdropper still learns under TLS (as the narration says): each line's
    // length. The record carrying the secret is the line with its \n plus 22 bytes (5 of
    // header, 1 of content type, 16 of authentication tag), and it never shows the words.
    let capture = &report.eavesdrop_tls.capture;
    let secret_record = format!("record, {} bytes", SECRET.len() + 1 + 22);
    assert!(
        capture.iter().any(|line| line.contains(&secret_record)),
        "no {secret_record:?} in {capture:?}"
    );
    assert!(capture.iter().all(|line| !line.contains(SECRET)));

    let text = captured.text();
    lab_test_support::assert_redacted_snapshot!("demo", text, filters());
}

#[test]
fn the_demo_in_json_prints_one_object_per_experiment() {
    let output = command(&["--json", "demo"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let experiments: Vec<String> = stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["experiment"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        experiments,
        [
            "keys",
            "conversation",
            "eavesdrop_plaintext",
            "eavesdrop_tls",
            "impostor",
            "tamper_plaintext",
            "tamper_tls",
            "truncation_tls",
            "truncation_plaintext",
            "mutual_tls"
        ]
    );
}

#[test]
fn the_eavesdrop_command_prints_what_crosses_the_wire() {
    let certs = Certs::new();
    let (server, server_addr) = server(certs.path(), &["--plaintext"]);
    let relay = RunningChild::spawn(&mut command(&[
        "eavesdrop",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server_addr.to_string(),
    ]))
    .unwrap();
    let relay_addr = relay.wait_for_listening(PATIENCE).unwrap();
    let mut client = client(relay_addr, &["--plaintext"]);
    expect_out(&client, "session with");
    client.write_stdin("meet me at the library\n").unwrap();
    expect_out(&server, "peer: meet me at the library");
    let line = expect_out(&relay, "meet me at the library");
    assert!(line.starts_with("client → server"), "{line}");
    assert!(relay.text(Stream::Stderr).is_empty());
}

/// The address in a `{"event":"listening","addr":…}` line, once `child` has printed one.
fn json_listening_addr(child: &RunningChild) -> std::net::SocketAddr {
    let line = expect_out(child, r#""event":"listening""#);
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    record["addr"].as_str().unwrap().parse().unwrap()
}

#[test]
fn with_json_the_server_and_the_eavesdropper_print_one_object_per_line() {
    let certs = Certs::new();
    let mut server_command = command(&[
        "--json",
        "server",
        "--plaintext",
        "--once",
        "--listen",
        "127.0.0.1:0",
        "--certs",
        &path_str(certs.path()),
    ]);
    let mut server = RunningChild::spawn(&mut server_command).unwrap();
    let server_addr = json_listening_addr(&server);
    let relay = RunningChild::spawn(&mut command(&[
        "--json",
        "eavesdrop",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server_addr.to_string(),
    ]))
    .unwrap();
    let relay_addr = json_listening_addr(&relay);
    let mut client = client(relay_addr, &["--plaintext"]);
    expect_out(&client, "session with");
    client.write_stdin("meet me at the library\n").unwrap();
    expect_out(&server, r#""text":"meet me at the library""#);
    client.write_stdin("Exit\n").unwrap();
    expect_out(&server, r#""event":"peer_left""#);
    // The relay printed each chunk before forwarding it; wait until we have read the last.
    expect_out(&relay, "[69,120,105,116,10]"); // the bytes of "Exit\n"
    assert_eq!(exit_code(&mut client), 0);
    assert_eq!(exit_code(&mut server), 0, "--once exits after the client");

    // Every line of both is one JSON object; the relay's chunks carry the bytes it saw.
    let every_line_json = |child: &RunningChild| -> Vec<serde_json::Value> {
        child
            .lines(Stream::Stdout)
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    };
    let server_events = every_line_json(&server);
    assert!(
        server_events
            .iter()
            .any(|e| e["event"] == "peer_left" && e["said_exit"] == true),
        "{server_events:?}"
    );
    let captured: Vec<u8> = every_line_json(&relay)
        .iter()
        .filter(|chunk| chunk["direction"] == "client_to_server")
        .flat_map(|chunk| chunk["bytes"].as_array().unwrap().clone())
        .map(|byte| u8::try_from(byte.as_u64().unwrap()).unwrap())
        .collect();
    assert_eq!(captured, b"meet me at the library\nExit\n");
}

#[test]
fn each_narration_is_told_from_a_plain_report() {
    // A report made by hand, as the experiment would return it: the narration alone.
    let report = demo::TamperReport {
        experiment: "tamper_tls",
        plaintext: false,
        sent: demo::ORDER.into(),
        server_saw: "TLS failed: cannot decrypt peer's message".into(),
        forgery_accepted: false,
        detected: true,
    };
    let text = lab_test_support::narration(|n| {
        demo::narrate::tamper(&report, n).map_err(std::io::Error::other)
    });
    lab_test_support::assert_redacted_snapshot!("tamper_narration", text);
}
