//! rustls configurations for the lab's TLS programs, built in one place.
//!
//! Two decisions are made here once, for every program in the workspace:
//! - **The crypto provider is `ring`**, named explicitly. rustls can use `ring` or
//!   `aws-lc-rs`; `ring` builds in about half the time here. Naming the provider (instead
//!   of relying on a process-wide default) also means nothing can panic because two
//!   providers are compiled in.
//! - **The client verifies the server** against the lab CA (the chain *and* the name), and
//!   the server can require a client certificate from the same CA (mutual TLS). There is
//!   no switch to turn verification off: a TLS connection that does not check who is at
//!   the other end is encrypted, but to whom?

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Serialize;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("could not read {what} from {path}: {source}")]
    ReadPem {
        what: &'static str,
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} contains no PEM certificate")]
    NoCertificate { what: String },
    #[error("could not build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("could not build the client-certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Which TLS versions to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.3 only: what the lab's own chat uses.
    Tls13Only,
    /// TLS 1.2 and 1.3: what a grader accepts from a student's program.
    Tls12AndNewer,
}

impl Versions {
    fn list(self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static TLS12_AND_13: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        match self {
            Versions::Tls13Only => TLS13_ONLY,
            Versions::Tls12AndNewer => TLS12_AND_13,
        }
    }
}

/// The crypto provider every socket-lab TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// All certificates in PEM text (a chain, or a CA bundle).
pub fn certs_from_pem(
    pem: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// The first private key in PEM text.
pub fn key_from_pem(
    pem: &str,
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| TlsSetupError::ReadPem {
        what,
        path: "(memory)".into(),
        source,
    })
}

/// Reads a PEM file into text, with the file named in the error.
pub fn read_pem_file(path: &Path, what: &'static str) -> Result<String, TlsSetupError> {
    std::fs::read_to_string(path).map_err(|e| TlsSetupError::ReadPem {
        what,
        path: path.display().to_string(),
        source: rustls::pki_types::pem::Error::Io(e),
    })
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem, "the CA file")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A server configuration presenting `cert_pem`/`key_pem`; with `client_ca_pem`, clients
/// must present a certificate signed by that CA (mutual TLS).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
    versions: Versions,
) -> Result<ServerConfig, TlsSetupError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions.list())?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = certs_from_pem(cert_pem, "the server certificate")?;
    Ok(builder.with_single_cert(chain, key_from_pem(key_pem, "the server key")?)?)
}

/// A client configuration that trusts only `ca_pem`; with `client_identity`
/// (certificate PEM, key PEM) it can answer a server that asks for a client certificate.
pub fn client_config(
    ca_pem: &str,
    client_identity: Option<(&str, &str)>,
    versions: Versions,
) -> Result<ClientConfig, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.list())?
        .with_root_certificates(roots(ca_pem)?);
    Ok(match client_identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            certs_from_pem(cert, "the client certificate")?,
            key_from_pem(key, "the client key")?,
        )?,
        None => builder.with_no_client_auth(),
    })
}

/// What was negotiated, printed when a session starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionFacts {
    /// e.g. `TLSv1_3`.
    pub protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The peer certificate's subject, e.g. `CN=localhost, O=socket-lab`, if it sent one.
    pub peer_subject: Option<String>,
}

impl SessionFacts {
    /// Reads the facts of an established connection (client or server side).
    pub fn of(conn: &rustls::CommonState) -> Self {
        SessionFacts {
            protocol: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_else(|| "none".into()),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_else(|| "none".into()),
            peer_subject: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(subject_of),
        }
    }
}

/// The subject of a DER certificate, as `CN=…, O=…`.
pub fn subject_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let mut parts = Vec::new();
    for cn in subject.iter_common_name() {
        parts.push(format!("CN={}", cn.as_str().ok()?));
    }
    for o in subject.iter_organization() {
        parts.push(format!("O={}", o.as_str().ok()?));
    }
    Some(parts.join(", "))
}

/// The common name of a DER certificate (used as a chat user's name under mutual TLS).
pub fn common_name_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Like [`server_config`] (no client authentication), but negotiating only `suites`: a
/// TLS 1.3 server picks the suite, so restricting the server fixes it for every client.
/// Used by benchmarks that compare one cipher (e.g. AES-128-GCM) with other programs.
pub fn server_config_with_suites(
    cert_pem: &str,
    key_pem: &str,
    versions: Versions,
    suites: &[rustls::CipherSuite],
) -> Result<ServerConfig, TlsSetupError> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suites.contains(&suite.suite()));
    let chain = certs_from_pem(cert_pem, "the server certificate")?;
    Ok(ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions.list())?
        .with_no_client_auth()
        .with_single_cert(chain, key_from_pem(key_pem, "the server key")?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::LabPki;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Sends `message` from `client` to `server` over a real loopback connection; returns
    /// what each side knows of the session, and what the server received.
    fn talk_over_loopback(
        server: ServerConfig,
        client: ClientConfig,
        message: &'static [u8],
    ) -> (SessionFacts, SessionFacts, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_thread = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::new(server)).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            let mut received = vec![0u8; message.len()];
            tls.read_exact(&mut received).unwrap();
            (SessionFacts::of(&conn), received)
        });
        let mut tcp = TcpStream::connect(addr).unwrap();
        let name = "localhost".try_into().unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(message).unwrap();
        tls.flush().unwrap();
        let (server_facts, received) = server_thread.join().unwrap();
        (SessionFacts::of(&conn), server_facts, received)
    }

    #[test]
    fn a_client_trusting_the_lab_ca_talks_to_the_lab_server_with_mutual_tls() {
        let pki = LabPki::generate("alice").unwrap();
        let server = server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            Some(pki.ca.cert_pem()),
            Versions::Tls13Only,
        )
        .unwrap();
        let client = client_config(
            pki.ca.cert_pem(),
            Some((&pki.client.cert_pem, &pki.client.key_pem)),
            Versions::Tls13Only,
        )
        .unwrap();
        let (client_facts, server_facts, received) = talk_over_loopback(server, client, b"hello");
        assert_eq!(received, b"hello");
        assert_eq!(client_facts.protocol, "TLSv1_3");
        assert_eq!(
            client_facts.peer_subject.as_deref(),
            Some("CN=localhost, O=socket-lab")
        );
        assert_eq!(
            server_facts.peer_subject.as_deref(),
            Some("CN=alice, O=socket-lab")
        );
    }

    #[test]
    fn a_server_restricted_to_one_suite_negotiates_it() {
        let pki = LabPki::generate("alice").unwrap();
        let server = server_config_with_suites(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            Versions::Tls13Only,
            &[rustls::CipherSuite::TLS13_AES_128_GCM_SHA256],
        )
        .unwrap();
        let client = client_config(pki.ca.cert_pem(), None, Versions::Tls13Only).unwrap();
        let (client_facts, server_facts, _) = talk_over_loopback(server, client, b"hi");
        assert_eq!(client_facts.cipher_suite, "TLS13_AES_128_GCM_SHA256");
        assert_eq!(server_facts.cipher_suite, "TLS13_AES_128_GCM_SHA256");
    }
}
