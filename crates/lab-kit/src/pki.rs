//! A throw-away certificate authority for the lab, made with rcgen.
//!
//! TLS only protects a conversation if the client can check *who* it is talking to. On the
//! web a public CA vouches for a server's name; in the lab we become our own tiny CA: one
//! CA certificate (the thing a client trusts), a server certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it, and a client certificate for mutual TLS. Private keys
//! are written readable by their owner only (mode 0600), as a private key must be.
//!
//! The same CA can also issue the *wrong* certificates that tests and the grader need: one
//! for another name, one that has expired. An impostor simply has a CA of its own.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names the lab server's certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why certificates could not be made, written or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A certificate and its private key, both PEM text.
#[derive(Debug, Clone)]
pub struct CertifiedPem {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Whether a leaf certificate identifies a server or a client (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// What a leaf certificate should say.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// The subject's common name, shown as the peer's name.
    pub common_name: String,
    /// DNS names and IP addresses (as text) the certificate is valid for.
    pub names: Vec<String>,
    pub role: Role,
    /// True for a certificate whose validity ended in 2021, for testing expiry.
    pub expired: bool,
}

impl LeafSpec {
    /// A server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn lab_server() -> Self {
        LeafSpec {
            common_name: "localhost".into(),
            names: SERVER_NAMES.iter().map(|s| s.to_string()).collect(),
            role: Role::Server,
            expired: false,
        }
    }

    /// A client certificate whose common name is `name`.
    pub fn client(name: &str) -> Self {
        LeafSpec {
            common_name: name.into(),
            names: vec![name.into()],
            role: Role::Client,
            expired: false,
        }
    }
}

/// A certificate authority that can sign leaf certificates.
#[derive(Debug)]
pub struct LabCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl LabCa {
    /// A new CA with an ECDSA P-256 key and the given common name.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "socket-lab");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(LabCa {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate: what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a leaf certificate with a fresh key, signed by this CA.
    pub fn issue(&self, spec: &LeafSpec) -> Result<CertifiedPem, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(spec.names.clone())?;
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "socket-lab");
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match spec.role {
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        if spec.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The lab's whole set: a CA, a server certificate and a client certificate.
#[derive(Debug)]
pub struct LabPki {
    pub ca: LabCa,
    pub server: CertifiedPem,
    pub client: CertifiedPem,
}

/// Where [`LabPki::write_to`] put each file.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl PkiFiles {
    /// The file names used in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        PkiFiles {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        }
    }

    /// True if every file exists.
    pub fn all_exist(&self) -> bool {
        self.all().iter().all(|(path, _)| path.is_file())
    }

    fn all(&self) -> [(&Path, bool); 6] {
        [
            (&self.ca_cert, false),
            (&self.ca_key, true),
            (&self.server_cert, false),
            (&self.server_key, true),
            (&self.client_cert, false),
            (&self.client_key, true),
        ]
    }
}

impl LabPki {
    /// A new CA, with a server certificate for the lab names and a client certificate
    /// whose common name is `client_name`.
    pub fn generate(client_name: &str) -> Result<Self, PkiError> {
        let ca = LabCa::generate("socket-lab CA")?;
        let server = ca.issue(&LeafSpec::lab_server())?;
        let client = ca.issue(&LeafSpec::client(client_name))?;
        Ok(LabPki { ca, server, client })
    }

    /// Writes the six PEM files into `dir` (created if needed). Keys get mode 0600.
    /// Refuses to replace an existing file unless `overwrite` is true.
    pub fn write_to(&self, dir: &Path, overwrite: bool) -> Result<PkiFiles, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.into(),
            source,
        })?;
        let files = PkiFiles::in_dir(dir);
        if !overwrite
            && let Some((path, _)) = files.all().into_iter().find(|(path, _)| path.exists())
        {
            return Err(PkiError::Exists {
                path: path.to_path_buf(),
            });
        }
        let contents = [
            self.ca.cert_pem(),
            self.ca.key_pem(),
            &self.server.cert_pem,
            &self.server.key_pem,
            &self.client.cert_pem,
            &self.client.key_pem,
        ];
        for ((path, private), text) in files.all().into_iter().zip(contents) {
            write_pem(path, text, private)?;
        }
        Ok(files)
    }
}

fn write_pem(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    let error = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mode = if private { 0o600 } else { 0o644 };
    // Remove first: `mode` only applies when the file is created.
    if path.exists() {
        fs::remove_file(path).map_err(error)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_keys_private_and_refuses_to_overwrite() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("keys");
        let pki = LabPki::generate("student").unwrap();
        let files = pki.write_to(&dir, false).unwrap();
        assert!(files.all_exist());
        let mode = fs::metadata(&files.server_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            pki.write_to(&dir, false),
            Err(PkiError::Exists { .. })
        ));
        assert!(pki.write_to(&dir, true).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
