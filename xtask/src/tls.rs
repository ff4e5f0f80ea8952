//! `cargo xtask up --tls`: a local certificate authority (made once, kept in the state folder so a browser or
//! a system can be told to trust it) and a server certificate for `127.0.0.1` and `localhost` signed by it
//! at every start; and an https GET that trusts that CA alone, for the readiness checks (xtask links no HTTP
//! client: rustls over a std socket).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files of a run with TLS.
#[derive(Debug, Clone)]
pub struct LocalTls {
    /// The CA certificate: `curl --cacert`, `SSL_CERT_FILE`.
    pub ca: PathBuf,
    /// The server certificate and key both servers use.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The CA in `dir` (made on the first run, then reused) and a new server certificate signed by it.
pub fn local_tls(dir: &Path) -> Result<LocalTls> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_pem_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    // The CA's name and constraints, the same every run: with the kept key, a server certificate signed
    // now chains to the ca.pem made on the first run.
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(
        DnType::CommonName,
        "auth platform local CA (cargo xtask up --tls)",
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let kept = match (ca_pem_path.is_file(), std::fs::read_to_string(&ca_key_path)) {
        (true, Ok(key)) => Some(KeyPair::from_pem(&key).context("reading the local CA's key")?),
        _ => None,
    };
    let key = match kept {
        Some(key) => key,
        None => {
            let key = KeyPair::generate().context("making the local CA's key")?;
            let cert = params.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            std::fs::write(&ca_pem_path, cert.pem())
                .with_context(|| format!("writing {}", ca_pem_path.display()))?;
            key
        }
    };
    let issuer = Issuer::new(params, key);
    let key = KeyPair::generate().context("making the server key")?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    let tls = LocalTls {
        ca: ca_pem_path,
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&tls.cert, cert.pem())
        .with_context(|| format!("writing {}", tls.cert.display()))?;
    write_private(&tls.key, &key.serialize_pem())?;
    Ok(tls)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `GET path` over https to `address` (an IP and port, which the certificate must name), trusting the CA
/// in `ca_pem` alone; the reply's head and body as text.
pub fn https_get(address: &str, path: &str, ca_pem: &str) -> Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("reading the CA")?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).context("the server's name")?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    let socket = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut reply = Vec::new();
    // A server may close without close_notify after a `Connection: close` answer: what came is the reply.
    if let Err(error) = stream.read_to_end(&mut reply)
        && reply.is_empty()
    {
        bail!("reading from {address}: {error}");
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_ca_is_made_once_and_signs_a_new_server_certificate_each_run() {
        let folder = crate::test_support::Folder::new("tls");
        let first = local_tls(&folder.0).unwrap();
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let server = std::fs::read_to_string(&first.cert).unwrap();
        let second = local_tls(&folder.0).unwrap();
        assert_eq!(
            std::fs::read_to_string(&second.ca).unwrap(),
            ca,
            "the CA is kept"
        );
        assert_ne!(std::fs::read_to_string(&second.cert).unwrap(), server);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [folder.0.join("ca.key"), second.key.clone()] {
                let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
    }
}
