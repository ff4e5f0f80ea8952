//! A test certificate authority: one per test process, with a server certificate for `127.0.0.1` and
//! `localhost` signed by it, written as PEM files that `--tls-cert`/`--tls-key` (and `SSL_CERT_FILE`) read;
//! and clients that trust exactly that CA, as a relying party configured with a private CA would.

use std::path::PathBuf;
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA and one server certificate, on disk.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// Its file: what a client, or `SSL_CERT_FILE`, trusts.
    pub ca_path: PathBuf,
    /// The server's certificate chain and key, for `--tls-cert` and `--tls-key`.
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The server certificate (PEM), for tests that look at what they were served.
    pub cert_pem: String,
    /// base64(SHA-256(the server key's SubjectPublicKeyInfo)): how Chromium is told to trust this one
    /// certificate (`--ignore-certificate-errors-spki-list`) without ignoring any other error.
    pub server_spki_sha256: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA in `dir`, with a server certificate for 127.0.0.1 and localhost.
    pub fn create(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("create the CA folder");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "auth platform test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(params, ca_key);
        let ca = Self {
            ca_pem: ca_cert.pem(),
            ca_path: dir.join("ca.pem"),
            cert_path: dir.join("server.pem"),
            key_path: dir.join("server.key"),
            cert_pem: String::new(),
            server_spki_sha256: String::new(),
            issuer,
        };
        std::fs::write(&ca.ca_path, &ca.ca_pem).expect("write ca.pem");
        let (cert_pem, key_pem, spki) = ca.server_certificate_with_key();
        std::fs::write(&ca.cert_path, &cert_pem).expect("write server.pem");
        std::fs::write(&ca.key_path, key_pem).expect("write server.key");
        use base64::Engine as _;
        use sha2::Digest as _;
        let server_spki_sha256 =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&spki));
        Self {
            cert_pem,
            server_spki_sha256,
            ..ca
        }
    }

    /// A new server certificate and key (PEM) for 127.0.0.1 and localhost, signed by this CA.
    pub fn server_certificate(&self) -> (String, String) {
        let (cert, key, _) = self.server_certificate_with_key();
        (cert, key)
    }

    /// The same, with the key's SubjectPublicKeyInfo (DER).
    fn server_certificate_with_key(&self) -> (String, String, Vec<u8>) {
        use rcgen::PublicKeyData as _;
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (
            cert.pem(),
            key.serialize_pem(),
            key.subject_public_key_info(),
        )
    }

    /// The CA as a reqwest root.
    pub fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA certificate")
    }

    /// A client that trusts this CA alone, follows no redirect, and gives up after the harness's timeout.
    pub fn client(&self) -> reqwest::Client {
        self.builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client")
    }

    /// A builder with this CA as its only root and the harness's timeout.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_certs_only([self.root()])
            .timeout(crate::http::REQUEST_TIMEOUT)
    }
}

/// The test process's CA (made on first use, in a folder of the process's own).
pub fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        TestCa::create(std::env::temp_dir().join(format!("testkit-ca-{}", std::process::id())))
    })
}
