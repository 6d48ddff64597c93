//! Bulk TLS throughput: one session moving a gigabyte, with the cipher suite the chat's own
//! configuration negotiates, next to `openssl speed` (the one-core ceiling, no I/O) and
//! `openssl s_client` downloading from `openssl s_server -WWW`.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::child::find_program;
use lab_kit::child::{RunningChild, Stream};
use lab_kit::pki::PkiFiles;

use super::{BenchSize, BenchTls, Comparison, bench_error, listening_port_of, server_connect};
use crate::Error;
use crate::transport::{self, Established};

/// A TLS 1.3 cipher suite as rustls names it, and as `openssl speed -evp` and
/// `openssl s_server -ciphersuites` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Suite {
    rustls: &'static str,
    evp: &'static str,
    openssl: &'static str,
}

pub(super) const SUITES: [Suite; 3] = [
    Suite {
        rustls: "TLS13_AES_256_GCM_SHA384",
        evp: "aes-256-gcm",
        openssl: "TLS_AES_256_GCM_SHA384",
    },
    Suite {
        rustls: "TLS13_AES_128_GCM_SHA256",
        evp: "aes-128-gcm",
        openssl: "TLS_AES_128_GCM_SHA256",
    },
    Suite {
        rustls: "TLS13_CHACHA20_POLY1305_SHA256",
        evp: "chacha20-poly1305",
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
    },
];

/// Bulk throughput of our transport with the chat's own TLS configuration, and the cipher
/// suite it negotiated (the one the peers are measured with).
pub(super) fn our_bulk(tls: &BenchTls, size: &BenchSize) -> Result<(f64, Suite), Error> {
    let (server, client) = (Arc::clone(&tls.server), &tls.client);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = thread::spawn(move || -> Result<(usize, Duration), Error> {
        let (tcp, _) = listener.accept()?;
        let Established { mut reader, .. } =
            transport::accept_tls(tcp, server, Duration::from_secs(30))
                .map_err(|e| bench_error("bulk handshake", e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        let mut started = None;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            started.get_or_insert_with(Instant::now);
            total += n;
        }
        Ok((total, started.map(|s| s.elapsed()).unwrap_or_default()))
    });
    let Established {
        mut writer,
        security,
        ..
    } = server_connect(addr, client)?;
    let negotiated = match &security {
        transport::Security::Tls(facts) => facts.cipher_suite.clone(),
        transport::Security::Plaintext => String::new(),
    };
    let suite = SUITES
        .into_iter()
        .find(|suite| suite.rustls == negotiated)
        .ok_or_else(|| bench_error("bulk", format!("negotiated {negotiated:?}")))?;
    let block = vec![0x5au8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs_f64(size.bulk_seconds);
    let mut sent = 0;
    while sent < size.bulk_bytes && Instant::now() < deadline {
        writer.write_all(&block)?;
        sent += block.len();
    }
    writer.close()?;
    let (received, elapsed) = receiver
        .join()
        .map_err(|_| bench_error("bulk", "receiver panicked"))??;
    if received != sent {
        return Err(bench_error(
            "bulk",
            format!("sent {sent}, received {received}"),
        ));
    }
    Ok((received as f64 / elapsed.as_secs_f64().max(1e-9), suite))
}

/// `openssl speed -evp CIPHER` on 16 KiB blocks (a TLS record's size), bytes/s.
pub(super) fn openssl_speed(suite: Suite, seconds: f64) -> Result<f64, String> {
    let seconds = format!("{}", seconds.ceil().max(1.0) as u64);
    let mut child = RunningChild::spawn(Command::new("openssl").args([
        "speed", "-bytes", "16384", "-seconds", &seconds, "-evp", suite.evp,
    ]))
    .map_err(|e| e.to_string())?;
    child
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let out = child.text(Stream::Stdout);
    out.lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with(&suite.evp.to_ascii_lowercase())
        })
        .find_map(|l| {
            l.split_whitespace()
                .last()?
                .strip_suffix('k')?
                .parse::<f64>()
                .ok()
        })
        .map(|k| k * 1000.0)
        .ok_or_else(|| format!("could not read `openssl speed` output: {out}"))
}

/// `openssl s_client` downloading a file from `openssl s_server -WWW`, bytes/s.
pub(super) fn openssl_bulk(
    suite: Suite,
    files: &PkiFiles,
    dir: &Path,
    bytes: usize,
) -> Result<f64, String> {
    let file = dir.join("bulk.bin");
    std::fs::File::create(&file)
        .and_then(|f| f.set_len(bytes as u64))
        .map_err(|e| e.to_string())?;
    let server = RunningChild::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                "127.0.0.1:0",
                "-tls1_3",
            ])
            .args(["-ciphersuites", suite.openssl, "-cert"])
            .arg(&files.server_cert)
            .arg("-key")
            .arg(&files.server_key)
            .current_dir(dir),
    )
    .map_err(|e| e.to_string())?;
    let port = listening_port_of(server.pid(), Duration::from_secs(10))
        .ok_or("s_server never listened")?;
    let script = format!(
        "printf 'GET /bulk.bin HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet -connect 127.0.0.1:{port} \
         -ciphersuites {} > /dev/null 2>&1",
        suite.openssl
    );
    let started = Instant::now();
    let mut client =
        RunningChild::spawn(Command::new("sh").args(["-c", &script])).map_err(|e| e.to_string())?;
    client
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?
        .ok_or("s_client did not finish within 60 s")?;
    Ok(bytes as f64 / started.elapsed().as_secs_f64())
}

pub(super) fn bulk(
    tls: &BenchTls,
    files: &PkiFiles,
    dir: &Path,
    size: &BenchSize,
) -> Result<Comparison, Error> {
    let (ours, suite) = our_bulk(tls, size)?;
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    let mut ceiling = None;
    if find_program("openssl").is_some() {
        match openssl_speed(suite, size.bulk_seconds) {
            Ok(v) => {
                ceiling = Some(v);
                peers.push(("openssl speed (one core, no I/O)".into(), Some(v)));
            }
            Err(e) => skipped.push(format!("openssl speed: {e}")),
        }
        match openssl_bulk(suite, files, dir, size.bulk_bytes.min(512 << 20)) {
            Ok(v) => peers.push(("openssl s_client <- s_server".into(), Some(v))),
            Err(e) => skipped.push(format!("openssl s_client/s_server: {e}")),
        }
    } else {
        skipped.push("openssl is not installed".into());
    }
    Ok(Comparison {
        experiment: "bulk_throughput",
        unit: "bytes/s",
        ours,
        peers,
        target: "at least 40% of the openssl speed ceiling".into(),
        met: ceiling.map(|c| ours >= 0.4 * c),
        skipped,
        notes: vec![format!(
            "{} (negotiated by the chat's own configuration); ours = {:.0}% of the ceiling",
            suite.rustls,
            ceiling.map(|c| 100.0 * ours / c).unwrap_or(f64::NAN)
        )],
    })
}

/// This part at full size, for whoever is tuning it (not run by `cargo test`; the figures
/// are printed, never asserted):
/// `cargo test --release -p lab-chat --lib bench::bulk -- --ignored --nocapture`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "a benchmark part: run by hand, in release"]
    fn bulk_only() {
        let pki = lab_kit::pki::LabPki::generate(crate::keys::DEFAULT_CLIENT_NAME).unwrap();
        let configs = BenchTls::of(&pki).unwrap();
        for _ in 0..3 {
            let (rate, suite) = our_bulk(&configs, &BenchSize::full()).unwrap();
            let ceiling = openssl_speed(suite, 3.0).unwrap();
            println!(
                "bulk {}: {:.3} GB/s, openssl speed {:.3} GB/s, {:.0}%",
                suite.rustls,
                rate / 1e9,
                ceiling / 1e9,
                100.0 * rate / ceiling
            );
        }
    }
}
