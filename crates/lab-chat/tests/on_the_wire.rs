//! Question 5 on the wire: the secure conversation's packets show a ClientHello and a
//! ServerHello, then only opaque application data; the client's secrets are written beside
//! the pcap (SSLKEYLOGFILE format) for Wireshark. Needs root or CAP_NET_RAW (CI runs as root).

use lab_chat::demo::{self, conversation_marks};
use lab_chat::on_the_wire;

#[test]
fn the_secure_conversation_shows_only_its_hellos_and_sizes() {
    let scratch = tempfile::Builder::new()
        .prefix("lab-chat-wire")
        .tempdir()
        .unwrap();
    let pcaps = scratch.path().join("pcap");
    std::fs::create_dir_all(&pcaps).unwrap();
    let Some(tap) = lab_test_support::wiretap(
        "the_secure_conversation_shows_only_its_hellos",
        Some(pcaps.clone()),
    ) else {
        return;
    };
    let (files, _) = demo::make_keys(&scratch.path().join("certs")).unwrap();
    let report = demo::conversation_watched(&files, &tap).unwrap();
    let wire = report.wire.as_ref().unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    assert!(
        on_the_wire::only_hellos_readable(wire),
        "{:#?}",
        wire.packets
    );
    // Every line typed went out as ciphertext: at least one record per line, each way.
    let lines = 1 + report.sent_at_once;
    let opaque = |toward| {
        on_the_wire::records(wire, toward)
            .iter()
            .filter(|r| **r == "ApplicationData")
            .count()
    };
    assert!(opaque(false) >= lines, "server records: {}", opaque(false));
    assert!(
        opaque(true) >= report.sent_at_once,
        "client records: {}",
        opaque(true)
    );
    let typed = wire
        .capture
        .marks
        .iter()
        .filter(|m| m.label == conversation_marks::CLIENT_TYPED)
        .count();
    assert_eq!(typed, report.sent_at_once);
    let keys = std::fs::read_to_string(pcaps.join("conversation.keys")).unwrap();
    assert!(
        keys.lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
        "{keys}"
    );
    assert!(pcaps.join("conversation.pcap").exists());
    // What the endpoints know: every typed line named on the record that carried it, the
    // goodbye (Exit, close_notify) and the client's encrypted Finished.
    let known: Vec<&str> = wire
        .packets
        .iter()
        .flat_map(|p| p.known_from_endpoints.iter().map(String::as_str))
        .collect();
    let known = known.join("\n");
    let received: Vec<&str> = report
        .client_output
        .iter()
        .chain(&report.server_output)
        .filter_map(|line| line.strip_prefix("peer: "))
        .collect();
    assert_eq!(received.len(), 1 + 2 * report.sent_at_once, "{received:?}");
    for text in received {
        assert!(
            known.contains(&format!("{text:?}")),
            "{text} not named: {known}"
        );
    }
    for note in [
        "the client's handshake Finished",
        "the line \"Exit\"",
        "close_notify, after Exit",
    ] {
        assert!(known.contains(note), "{note} missing: {known}");
    }
    // The client's goodbye: a close_notify-sized record, then the FIN.
    assert!(
        on_the_wire::close_notify_then_fin(wire),
        "{:#?}",
        wire.packets
    );

    // Wireshark's engine (tshark) decrypts the session with the key log, and not without.
    let pcap = pcaps.join("conversation.pcap");
    let keys = pcaps.join("conversation.keys");
    let Some(with_keys) = tshark_hex(&pcap, Some(&keys)) else {
        return;
    };
    assert!(with_keys.contains("client line 1 of"), "{with_keys}");
    assert!(with_keys.contains("server line 1 of"), "{with_keys}");
    let without_keys = tshark_hex(&pcap, None).unwrap();
    assert!(
        !without_keys.contains("client line 1 of"),
        "decrypted without the keys?"
    );
}

/// tshark's hex dump of every packet of `pcap` (decrypted with `keys` if given), or None
/// after saying why where tshark is missing (a failure in CI, which installs it).
fn tshark_hex(pcap: &std::path::Path, keys: Option<&std::path::Path>) -> Option<String> {
    let mut command = std::process::Command::new("tshark");
    command.arg("-r").arg(pcap).arg("-x");
    if let Some(keys) = keys {
        command
            .arg("-o")
            .arg(format!("tls.keylog_file:{}", keys.display()));
    }
    let mut child = match lab_kit::child::RunningChild::spawn(&mut command) {
        Ok(child) => child,
        Err(e) => {
            lab_test_support::skip_unless_ci("decrypting the chat's pcap with tshark", e);
            return None;
        }
    };
    let status = child
        .wait_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    let text = child.text(lab_kit::child::Stream::Stdout);
    let _ = child.kill();
    assert!(status.is_some_and(|s| s.success()), "tshark failed: {text}");
    Some(text)
}

#[test]
fn the_impostor_gets_a_hello_and_an_alert_and_no_line() {
    let scratch = tempfile::Builder::new()
        .prefix("lab-chat-wire")
        .tempdir()
        .unwrap();
    let Some(tap) = lab_test_support::wiretap("the_impostor_gets_a_hello_and_an_alert", None)
    else {
        return;
    };
    let (files, _) = demo::make_keys(&scratch.path().join("certs")).unwrap();
    let report = demo::impostor_watched(&files, &tap).unwrap();
    assert!(report.refused);
    let wire = report.wire.as_ref().unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    let client: Vec<&str> = on_the_wire::records(wire, true)
        .into_iter()
        .filter(|r| *r != "ChangeCipherSpec")
        .collect();
    assert_eq!(
        client,
        ["ClientHello", "ApplicationData"],
        "{:#?}",
        wire.packets
    );
}

#[test]
fn a_cut_tls_session_ends_with_a_bare_fin() {
    let scratch = tempfile::Builder::new()
        .prefix("lab-chat-wire")
        .tempdir()
        .unwrap();
    let Some(tap) = lab_test_support::wiretap("a_cut_tls_session_ends_with_a_bare_fin", None)
    else {
        return;
    };
    let (files, _) = demo::make_keys(&scratch.path().join("certs")).unwrap();
    let report = demo::truncation_watched(&files, false, &tap).unwrap();
    assert!(report.detected, "{report:?}");
    let wire = report.wire.as_ref().unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    assert!(on_the_wire::bare_fin(wire), "{:#?}", wire.packets);
    assert!(!on_the_wire::close_notify_then_fin(wire));
}
