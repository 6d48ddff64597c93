//! Chat-line round trips: a 32-byte line echoed over TLS, and over plain TCP by the same
//! code, measured alternately so that both see the same load.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::bench::percentile;
use serde::Serialize;

use super::{BenchSize, BenchTls, bench_error};
use crate::Error;
use crate::framing::LineDecoder;
use crate::transport::{self, Established};

/// A client connected to an echo server thread (TLS or plain TCP), for round trips.
pub(super) struct EchoClient {
    reader: transport::WireReader,
    writer: transport::WireWriter,
    decoder: LineDecoder,
    buf: Vec<u8>,
    server: thread::JoinHandle<()>,
}

impl EchoClient {
    fn start(
        server_config: Option<Arc<rustls::ServerConfig>>,
        client_config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = thread::spawn(move || {
            let _ = echo_lines(listener, server_config);
        });
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let Established { reader, writer, .. } = match client_config {
            Some(config) => transport::connect_tls(
                tcp,
                config,
                "localhost"
                    .try_into()
                    .map_err(|_| bench_error("name", "localhost"))?,
                Duration::from_secs(30),
            )
            .map_err(|e| bench_error("handshake", e))?,
            None => transport::plaintext(tcp)?,
        };
        Ok(EchoClient {
            reader,
            writer,
            decoder: LineDecoder::new(1024),
            buf: vec![0u8; 16 * 1024],
            server,
        })
    }

    /// Sends one line and waits for it to come back.
    fn round_trip(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        self.writer
            .write_all(b"a chat line of about 32 bytes..\n")?;
        loop {
            if let Some(reply) = self.decoder.next_line() {
                reply.map_err(|e| bench_error("echo", e))?;
                return Ok(started.elapsed());
            }
            let n = self.reader.read(&mut self.buf)?;
            if n == 0 {
                return Err(bench_error("echo", "the echo server closed"));
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    fn finish(mut self) {
        let _ = self.writer.close();
        let _ = self.server.join();
    }
}

/// The echo server: each line back as it arrives.
pub(super) fn echo_lines(
    listener: TcpListener,
    server_config: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Error> {
    let (tcp, _) = listener.accept()?;
    tcp.set_nodelay(true)?;
    let Established {
        mut reader,
        mut writer,
        ..
    } = match server_config {
        Some(config) => transport::accept_tls(tcp, config, Duration::from_secs(30))
            .map_err(|e| bench_error("echo handshake", e))?,
        None => transport::plaintext(tcp)?,
    };
    let mut decoder = LineDecoder::new(1024);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        decoder.push(&buf[..n]);
        while let Some(Ok(mut line)) = decoder.next_line() {
            line.push('\n');
            writer.write_all(line.as_bytes())?;
        }
    }
}

/// Round-trip figures.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub experiment: &'static str,
    pub round_trips: usize,
    pub tls_p50_us: f64,
    pub tls_p99_us: f64,
    pub tcp_p50_us: f64,
    pub tcp_p99_us: f64,
    pub target: String,
    pub met: bool,
}

pub(super) fn latency(tls: &BenchTls, size: &BenchSize) -> Result<LatencyReport, Error> {
    let (server, client) = (Arc::clone(&tls.server), Arc::clone(&tls.client));
    // TLS and plain TCP round trips alternate, so that both see the same machine load.
    let mut over_tls = EchoClient::start(Some(server), Some(client))?;
    let mut over_tcp = EchoClient::start(None, None)?;
    let mut tls_samples = Vec::with_capacity(size.round_trips);
    let mut tcp_samples = Vec::with_capacity(size.round_trips);
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..size.round_trips {
        if Instant::now() > deadline {
            break;
        }
        tls_samples.push(over_tls.round_trip()?);
        tcp_samples.push(over_tcp.round_trip()?);
    }
    over_tls.finish();
    over_tcp.finish();
    tls_samples.sort();
    tcp_samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let tls_p50 = us(percentile(&tls_samples, 50.0));
    let tcp_p50 = us(percentile(&tcp_samples, 50.0));
    Ok(LatencyReport {
        experiment: "round_trip",
        round_trips: tls_samples.len().min(tcp_samples.len()),
        tls_p50_us: tls_p50,
        tls_p99_us: us(percentile(&tls_samples, 99.0)),
        tcp_p50_us: tcp_p50,
        tcp_p99_us: us(percentile(&tcp_samples, 99.0)),
        target: "TLS p50 within 1.5x of plain TCP p50".into(),
        met: tls_p50 <= 1.5 * tcp_p50,
    })
}
