//! Full TLS 1.3 handshakes per second (ECDSA P-256, no resumption), one client after
//! another, next to `openssl s_time -new` against `openssl s_server`.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::child::find_program;
use lab_kit::child::{RunningChild, Stream};
use lab_kit::pki::PkiFiles;

use super::{BenchSize, BenchTls, Comparison, listening_port_of, server_connect};
use crate::Error;
use crate::transport;

pub(super) fn our_handshakes(tls: &BenchTls, seconds: f64) -> Result<f64, Error> {
    let server = Arc::clone(&tls.server);
    let mut client = (*tls.client).clone();
    // Every handshake full: no session resumption (s_time -new does the same).
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let acceptor = thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_nodelay(true);
            match transport::accept_tls(tcp, Arc::clone(&server), Duration::from_secs(10)) {
                Ok(established) => established.writer.abort(),
                Err(transport::HandshakeError::Closed) => return, // the "stop" connection
                Err(_) => {}
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut done = 0u64;
    while Instant::now() < deadline && done < 1_000_000 {
        let established = server_connect(addr, &client)?;
        established.writer.abort();
        done += 1;
    }
    let elapsed = started.elapsed();
    // Wake the acceptor with a connection that closes at once, so it stops.
    drop(TcpStream::connect(addr));
    let _ = acceptor.join();
    Ok(done as f64 / elapsed.as_secs_f64())
}

pub(super) fn openssl_s_time(files: &PkiFiles, seconds: f64) -> Result<f64, String> {
    let _server = RunningChild::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                "127.0.0.1:0",
                "-tls1_3",
                "-cert",
            ])
            .arg(&files.server_cert)
            .arg("-key")
            .arg(&files.server_key),
    )
    .map_err(|e| e.to_string())?;
    let port = listening_port_of(_server.pid(), Duration::from_secs(10))
        .ok_or("s_server never listened")?;
    let seconds = format!("{}", seconds.ceil().max(1.0) as u64);
    let started = Instant::now();
    let mut s_time = RunningChild::spawn(Command::new("openssl").args([
        "s_time",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-new",
        "-time",
        &seconds,
    ]))
    .map_err(|e| e.to_string())?;
    s_time
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?
        .ok_or("s_time did not finish")?;
    let elapsed = started.elapsed().as_secs_f64();
    let out = s_time.text(Stream::Stdout);
    let connections: f64 = out
        .lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("could not read s_time output: {out}"))?;
    Ok(connections / elapsed)
}

pub(super) fn handshakes(
    tls: &BenchTls,
    files: &PkiFiles,
    size: &BenchSize,
) -> Result<Comparison, Error> {
    let ours = our_handshakes(tls, size.handshake_seconds)?;
    let (reference, skipped) = if find_program("openssl").is_some() {
        match openssl_s_time(files, size.handshake_seconds) {
            Ok(v) => (Some(v), vec![]),
            Err(e) => (None, vec![format!("openssl s_time: {e}")]),
        }
    } else {
        (None, vec!["openssl is not installed".into()])
    };
    Ok(Comparison {
        experiment: "full_handshakes",
        unit: "handshakes/s",
        ours,
        peers: vec![("openssl s_time -new -> s_server".into(), reference)],
        target: "at least 1.5x openssl s_time".into(),
        met: reference.map(|r| ours >= 1.5 * r),
        skipped,
        notes: vec![
            "ECDSA P-256 server certificate, TLS 1.3, one client after another, no resumption"
                .into(),
        ],
    })
}
