//! The transport's full-duplex design under stress: both ends send megabytes at the same
//! time over one TLS session. A design that writes to the socket while holding the
//! connection's lock can deadlock here (each writer blocked on a full socket buffer, each
//! reader waiting for the lock); ours must finish.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use lab_chat::transport::{self, Established};
use lab_kit::pki::LabPki;
use lab_kit::tls::{Versions, client_config, server_config};

const EACH_WAY: usize = 16 << 20; // far more than both sockets' buffers together

fn send_and_receive(established: Established) -> usize {
    let Established {
        mut reader,
        mut writer,
        ..
    } = established;
    let sender = thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..EACH_WAY / block.len() {
            writer.write_all(&block).unwrap();
        }
        writer.close().unwrap();
        writer
    });
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => break,
            n => received += n,
        }
    }
    let _writer = sender.join().unwrap();
    received
}

#[test]
fn both_ends_can_send_megabytes_at_once_without_deadlock() {
    let pki = LabPki::generate("alice").unwrap();
    let server = Arc::new(
        server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            None,
            Versions::Tls13Only,
        )
        .unwrap(),
    );
    let client = Arc::new(client_config(pki.ca.cert_pem(), None, Versions::Tls13Only).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = std::time::Duration::from_secs(30);
    let server_side = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        send_and_receive(transport::accept_tls(tcp, server, timeout).unwrap())
    });
    let tcp = TcpStream::connect(addr).unwrap();
    let established =
        transport::connect_tls(tcp, client, "localhost".try_into().unwrap(), timeout).unwrap();
    let client_received = send_and_receive(established);
    let server_received = server_side.join().unwrap();
    assert_eq!(client_received, EACH_WAY);
    assert_eq!(server_received, EACH_WAY);
}
