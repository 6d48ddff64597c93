//! Interoperability: lab-chat speaks standard TLS 1.3, so other implementations talk to it.
//!
//! - `openssl s_client` (OpenSSL's own client, verifying the chain and the name) against
//!   our server;
//! - a Python client using only the standard `ssl` module (asyncio, one thread: two threads
//!   sharing one `SSLSocket` corrupt the session, see the chapter's notes) against our server;
//! - our client against `openssl s_server`.
//!
//! Each is skipped with a visible message where the tool is missing; `.ci/run` installs them.

use std::process::Command;

use crate::common::*;
use lab_kit::child::{RunningChild, Stream};

fn skip(tool_name: &str) -> bool {
    if tool(tool_name).is_none() {
        lab_test_support::skip_unless_ci(tool_name, "it is not installed");
        return true;
    }
    false
}

#[test]
fn openssl_s_client_chats_with_our_server() {
    if skip("openssl") {
        return;
    }
    let certs = Certs::new();
    let (mut server, addr) = server(certs.path(), &[]);
    let mut s_client = RunningChild::spawn(Command::new("openssl").args([
        "s_client",
        "-quiet",
        "-CAfile",
        &certs.ca(),
        "-verify_return_error",
        // -quiet implies -ign_eof; we want EOF on stdin to end the session.
        "-no_ign_eof",
        "-verify_hostname",
        "localhost",
        "-servername",
        "localhost",
        "-connect",
        &addr.to_string(),
    ]))
    .unwrap();
    let facts = expect_out(&server, "session with");
    assert!(facts.contains("TLSv1_3"), "{facts}");
    // Both directions, the server first.
    server.write_stdin("hello openssl\n").unwrap();
    expect_out(&s_client, "hello openssl");
    s_client
        .write_stdin("hello from openssl s_client\n")
        .unwrap();
    expect_out(&server, "peer: hello from openssl s_client");
    // s_client's stdin at EOF: it sends close_notify and leaves.
    s_client.close_stdin();
    expect_out(&server, "peer left (closed the session with close_notify)");
    assert_eq!(exit_code(&mut s_client), 0);
    // OpenSSL checked the chain and the name (-verify_return_error would have failed it).
    let stderr = s_client.text(Stream::Stderr);
    assert!(stderr.contains("verify return:1"), "{stderr}");
}

#[test]
fn openssl_s_client_refuses_our_server_with_another_ca() {
    if skip("openssl") {
        return;
    }
    let certs = Certs::new();
    let other = Certs::new();
    let (server, addr) = server(certs.path(), &[]);
    let mut s_client = RunningChild::spawn(Command::new("openssl").args([
        "s_client",
        "-quiet",
        "-CAfile",
        &other.ca(),
        "-verify_return_error",
        "-connect",
        &addr.to_string(),
    ]))
    .unwrap();
    assert_ne!(exit_code(&mut s_client), 0);
    expect_err(&s_client, "certificate verify failed");
    expect_out(&server, "TLS handshake with");
}

const PYTHON_CLIENT: &str = r#"
import asyncio, ssl, sys

async def main(port, cafile):
    # The standard library's client: verifies the chain AND the host name by default.
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    reader, writer = await asyncio.open_connection("localhost", port, ssl=ctx)
    tls = writer.get_extra_info("ssl_object")
    print("python connected", tls.version(), tls.cipher()[0], flush=True)
    writer.write(b"hello from python\n")
    await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            print("python: server closed", flush=True)
            return
        text = line.decode().rstrip("\n")
        print("python got:", text, flush=True)
        if text == "bye python":
            break
    writer.write(b"Exit\n")
    await writer.drain()
    writer.close()  # sends close_notify
    await writer.wait_closed()
    print("python done", flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"#;

#[test]
fn a_python_ssl_client_chats_with_our_server() {
    if skip("python3") {
        return;
    }
    let certs = Certs::new();
    let script = certs.path().join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();
    let (mut server, addr) = server(certs.path(), &[]);
    let mut python = RunningChild::spawn(Command::new("python3").args([
        path_str(&script),
        addr.port().to_string(),
        certs.ca(),
    ]))
    .unwrap();
    let line = expect_out(&python, "python connected");
    assert!(line.contains("TLSv1.3"), "{line}");
    expect_out(&server, "peer: hello from python");
    server.write_stdin("hello python\n").unwrap();
    expect_out(&python, "python got: hello python");
    server.write_stdin("bye python\n").unwrap();
    expect_out(&python, "python done");
    assert_eq!(exit_code(&mut python), 0, "{}", python.text(Stream::Stderr));
    expect_out(
        &server,
        "peer left (said Exit, then closed the session with close_notify)",
    );
}

#[test]
fn our_client_chats_with_openssl_s_server() {
    if skip("openssl") {
        return;
    }
    let certs = Certs::new();
    // s_server's stdin is a pipe we hold open: at EOF it would close each connection.
    let s_server = RunningChild::spawn(Command::new("openssl").args([
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        &path_str(&certs.files.server_cert),
        "-key",
        &path_str(&certs.files.server_key),
        "-tls1_3",
        "-naccept",
        "1",
    ]))
    .unwrap();
    let accept = expect_out(&s_server, "ACCEPT 127.0.0.1:");
    let port: u16 = accept.rsplit(':').next().unwrap().parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s_server = s_server;
    let mut client = client(addr, &["--ca", &certs.ca()]);
    let facts = expect_out(&client, "session with");
    assert!(facts.contains("TLSv1_3"), "{facts}");
    assert!(facts.contains("CN=localhost, O=socket-lab"), "{facts}");
    client.write_stdin("hello s_server\n").unwrap();
    expect_out(&s_server, "hello s_server");
    s_server.write_stdin("hello lab-chat client\n").unwrap();
    expect_out(&client, "peer: hello lab-chat client");
    client.write_stdin("Exit\n").unwrap();
    expect_out(&client, "you left");
    assert_eq!(exit_code(&mut client), 0);
    expect_out(&s_server, "Exit");
}
