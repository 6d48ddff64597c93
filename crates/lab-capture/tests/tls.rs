//! A TLS 1.3 session on the wire: the ClientHello and ServerHello are named, everything
//! after them is opaque application data with only its size to see, and the session's
//! secrets are written beside the pcap in SSLKEYLOGFILE format. Needs root or CAP_NET_RAW
//! (CI runs as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;

use lab_kit::pki::LabPki;
use lab_kit::tls::{Versions, client_config, server_config};

#[test]
fn a_tls_session_shows_its_hellos_then_only_sizes_and_leaves_a_key_log() {
    let dir = std::env::temp_dir().join(format!("lab-capture-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(tap) = lab_test_support::wiretap("a_tls_session_shows_its_hellos", Some(dir.clone()))
    else {
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    };
    let pki = LabPki::generate("student").unwrap();
    let server_tls = Arc::new(
        server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            None,
            Versions::Tls13Only,
        )
        .unwrap(),
    );
    let mut client_tls = client_config(pki.ca.cert_pem(), None, Versions::Tls13Only).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let mut watch = tap.watch("tls", &[server_addr.port()]);
    client_tls.key_log = watch.key_log().unwrap();

    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let connection = rustls::ServerConnection::new(server_tls).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).unwrap();
        tls.write_all(b"hello, client\n").unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        line
    });
    let tcp = TcpStream::connect(server_addr).unwrap();
    let name = "localhost".try_into().unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(client_tls), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"hello, server\n").unwrap();
    let mut reply = String::new();
    BufReader::new(&mut tls).read_line(&mut reply).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    assert_eq!(server.join().unwrap(), "hello, server\n");
    assert_eq!(reply, "hello, client\n");
    drop(tls);
    let wire = watch.finish().unwrap();
    let keys = std::fs::read_to_string(dir.join("tls.keys"));
    let pcap_exists = dir.join("tls.pcap").exists();
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(wire.is_complete(), "{:?}", wire.capture);
    // Each direction's records, in order: what an eavesdropper reads.
    let records = |toward_server: bool| -> Vec<String> {
        wire.packets
            .iter()
            .filter(|p| p.toward_server == toward_server)
            .flat_map(|p| {
                p.tls
                    .iter()
                    .map(|r| r.split(' ').next().unwrap().to_string())
            })
            .collect()
    };
    let client = records(true);
    let server = records(false);
    assert_eq!(client[0], "ClientHello", "{client:?}");
    assert_eq!(server[0], "ServerHello", "{server:?}");
    // After the hellos: only application data (and the compatibility ChangeCipherSpec).
    for record in client[1..].iter().chain(&server[1..]) {
        assert!(
            record == "ApplicationData" || record == "ChangeCipherSpec",
            "{record} is readable on the wire: {client:?} {server:?}"
        );
    }
    // The lines, the rest of the handshake and close_notify are all in there, as sizes.
    assert!(
        client.iter().filter(|r| *r == "ApplicationData").count() >= 3,
        "{client:?}"
    );
    assert!(
        server.iter().filter(|r| *r == "ApplicationData").count() >= 3,
        "{server:?}"
    );

    assert!(pcap_exists);
    let keys = keys.unwrap();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(
            keys.lines().any(|l| l.starts_with(label)),
            "{label} missing: {keys}"
        );
    }
    assert_eq!(
        wire.capture
            .key_log
            .as_deref()
            .map(|p| p.ends_with("tls.keys")),
        Some(true)
    );
}
