//! Where the chat's certificates come from: `lab-chat keygen`, or made on a first run.
//!
//! The certificates themselves are made by `lab_kit::pki` (one CA for the whole lab) and
//! the rustls configurations by `lab_kit::tls`; this module only decides *where* the files
//! live and turns them into configurations for the server and the client.
//!
//! Private keys deserve a private folder. `keygen` creates its folder with mode 0700
//! (whatever the umask), and both `keygen` and the server refuse a folder that another
//! user owns or that others can write: whoever can write there can replace `ca.pem` or
//! `server-key.pem` under our feet. The six files are first written into a temporary
//! folder inside it, then renamed into place, so a failure leaves no partial set behind.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lab_kit::pki::{LabPki, PkiFiles};
use lab_kit::tls::{self, Versions};

use crate::Error;

/// The client certificate's common name made by `keygen` (its chat name in a room).
pub const DEFAULT_CLIENT_NAME: &str = "student";

/// Where certificates live when `--certs`/`--out` is not given:
/// `$XDG_DATA_HOME/socket-lab/chat`, else `~/.local/share/socket-lab/chat`,
/// else `./lab-chat-certs`.
pub fn default_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("socket-lab/chat");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/socket-lab/chat");
    }
    PathBuf::from("lab-chat-certs")
}

/// Makes a new CA, server and client certificate in `dir` (see the module docs: a private
/// folder, written through a temporary folder and renames).
pub fn keygen(dir: &Path, force: bool) -> Result<PkiFiles, Error> {
    private_dir(dir)?;
    let files = PkiFiles::in_dir(dir);
    if !force && let Some(path) = every_file(&files).into_iter().find(|path| path.exists()) {
        return Err(lab_kit::pki::PkiError::Exists {
            path: path.to_path_buf(),
        }
        .into());
    }
    let pki = LabPki::generate(DEFAULT_CLIENT_NAME)?;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| lab_kit::pki::PkiError::Write { path, source }
    };
    // Removed, with whatever it holds, when this function returns.
    let staging = tempfile::Builder::new()
        .prefix(".keygen-")
        .tempdir_in(dir)
        .map_err(io_error(dir))?;
    let staged = pki.write_to(staging.path(), false)?;
    for (from, to) in every_file(&staged).into_iter().zip(every_file(&files)) {
        fs::rename(from, to).map_err(io_error(to))?;
    }
    Ok(files)
}

/// Creates `dir` with mode 0700 if it is missing; refuses it if another user owns it or
/// others may write to it.
pub fn private_dir(dir: &Path) -> Result<(), Error> {
    let io_error = |source| {
        Error::from(lab_kit::pki::PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    check_private_dir(dir)
}

/// Refuses a folder that another user owns or that others may write to.
pub fn check_private_dir(dir: &Path) -> Result<(), Error> {
    let unsafe_dir = |reason: String| Error::UnsafeDir {
        dir: dir.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(dir).map_err(|e| unsafe_dir(format!("cannot inspect it: {e}")))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a folder".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it belongs to user {}, not to you (user {me})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "others may write to it (mode {mode:04o}); `chmod 700 {}` if it is yours",
            dir.display()
        )));
    }
    Ok(())
}

/// The files in `dir`, created first if none of them exist. Returns whether they were made.
///
/// The server needs only its certificate and key; a folder that holds some of the lab's
/// files but not those is an error that says which are missing (making a new set there
/// would stop at the first existing file with advice about a `--force` the server lacks).
pub fn ensure_server_files(dir: &Path) -> Result<(PkiFiles, bool), Error> {
    let files = PkiFiles::in_dir(dir);
    if dir.exists() {
        check_private_dir(dir)?;
    }
    let server_needs = [&files.server_cert, &files.server_key];
    if server_needs.iter().all(|path| path.is_file()) {
        return Ok((files, false));
    }
    let any_lab_file = every_file(&files).iter().any(|path| path.exists());
    if any_lab_file {
        let missing = server_needs
            .iter()
            .filter(|path| !path.is_file())
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" and ");
        return Err(Error::IncompleteCerts {
            dir: dir.to_path_buf(),
            missing,
        });
    }
    Ok((keygen(dir, false)?, true))
}

/// The six files of the lab's PKI, in the order `keygen` lists them.
pub fn every_file(files: &PkiFiles) -> [&Path; 6] {
    [
        &files.ca_cert,
        &files.ca_key,
        &files.server_cert,
        &files.server_key,
        &files.client_cert,
        &files.client_key,
    ]
}

/// The server's TLS configuration from the files in `dir`; with `require_client_cert`,
/// clients must present a certificate signed by the same CA (mutual TLS).
pub fn server_config(
    files: &PkiFiles,
    require_client_cert: bool,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let cert = tls::read_pem_file(&files.server_cert, "the server certificate")?;
    let key = tls::read_pem_file(&files.server_key, "the server key")?;
    let ca = if require_client_cert {
        Some(tls::read_pem_file(&files.ca_cert, "the CA certificate")?)
    } else {
        None
    };
    Ok(Arc::new(tls::server_config(
        &cert,
        &key,
        ca.as_deref(),
        Versions::Tls13Only,
    )?))
}

/// The client's TLS configuration: trust only `ca`; with `identity`, a client certificate.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let ca_pem = tls::read_pem_file(ca, "the CA certificate")?;
    let identity = match identity {
        Some((cert, key)) => Some((
            tls::read_pem_file(cert, "the client certificate")?,
            tls::read_pem_file(key, "the client key")?,
        )),
        None => None,
    };
    Ok(Arc::new(tls::client_config(
        &ca_pem,
        identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        Versions::Tls13Only,
    )?))
}
