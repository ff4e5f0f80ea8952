//! TLS for the connection loop, by RFC 9325 (BCP 195): rustls on aws-lc-rs, TLS 1.3, and TLS 1.2 with ECDHE
//! key exchange and AEAD suites only (§4.2: the provider's TLS 1.2 suites are exactly those); ALPN `h2` and
//! `http/1.1`. The certificate chain and key are PEM files (PKCS#8, PKCS#1 or SEC1 keys), read again every
//! reload interval: a changed pair that loads serves the next handshakes (open connections keep theirs), a
//! pair that does not keeps the one in use and logs one error per change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The largest certificate or key file read.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// How often the files are read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Why a certificate and key cannot be served, in one line that names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {reason}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{flag} {path} is over 1 MiB")]
    TooLarge { flag: &'static str, path: PathBuf },
    #[error("--tls-cert {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("--tls-key {0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("--tls-key {key} does not match the certificate of --tls-cert {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("--tls-cert {cert} and --tls-key {key} cannot be used: {reason}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files' bytes, as last read.
type Pair = (Vec<u8>, Vec<u8>);

/// The TLS configuration in use, and where it came from. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    files: Arc<TlsFiles>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    /// The pair in use, and why the files were last refused (so that a bad pair is logged once, not every
    /// interval).
    seen: Arc<Mutex<(Pair, Option<String>)>>,
    reload_every: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .field("reload_every", &self.reload_every)
            .finish_non_exhaustive()
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let error = |reason: String| TlsError::Read {
        flag,
        path: path.to_owned(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| error(e.to_string()))?
        .len();
    if size > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            flag,
            path: path.to_owned(),
        });
    }
    // Read at most one byte past the cap: a file that grows meanwhile (or a FIFO) cannot hold us longer.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(|e| error(e.to_string()))?,
            MAX_PEM_BYTES + 1,
        ),
        &mut bytes,
    )
    .map_err(|e| error(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            flag,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn read_pair(files: &TlsFiles) -> Result<Pair, TlsError> {
    Ok((
        read("--tls-cert", &files.cert)?,
        read("--tls-key", &files.key)?,
    ))
}

/// A server configuration for a PEM chain and key.
fn server_config(files: &TlsFiles, (cert, key): &Pair) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(files.cert.clone()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::NoKey(files.key.clone()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Unusable {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: error.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            },
            other => TlsError::Unusable {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason: other.to_string(),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Loads the pair, or says in one line why it cannot be served.
    pub fn load(files: TlsFiles, reload_every: Duration) -> Result<Self, TlsError> {
        let pair = read_pair(&files)?;
        let config = server_config(&files, &pair)?;
        Ok(Self {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(Arc::new(config))),
            seen: Arc::new(Mutex::new((pair, None))),
            reload_every,
        })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .map(|config| Arc::clone(&config))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again: `Ok(true)` when a new pair now serves, `Ok(false)` when nothing changed, the
    /// error when the files cannot be served (the pair in use stays), with whether it is news (not the same
    /// refusal as the last time).
    pub fn reload(&self) -> Result<bool, (TlsError, bool)> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = read_pair(&self.files).and_then(|pair| {
            if pair == seen.0 {
                return Ok(None);
            }
            server_config(&self.files, &pair).map(|config| Some((pair, config)))
        });
        match loaded {
            Ok(None) => {
                seen.1 = None;
                Ok(false)
            }
            Ok(Some((pair, config))) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(config);
                }
                *seen = (pair, None);
                Ok(true)
            }
            Err(error) => {
                let text = error.to_string();
                let news = seen.1.as_deref() != Some(text.as_str());
                seen.1 = Some(text);
                Err((error, news))
            }
        }
    }

    /// Reloads every interval, forever: a new pair is logged at info, a refused one at error, once for each
    /// refusal (a pair written one file at a time may be refused once, then served).
    pub async fn watch(self) {
        let mut interval = tokio::time::interval(self.reload_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.reload()).await {
                Ok(Ok(true)) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(Err((error, true))) => {
                    tracing::error!(%error, "TLS certificate not reloaded; the one in use still serves");
                }
                Ok(Ok(false) | Err((_, false))) | Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServeLimits, serve};
    use axum::Router;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, certificate DER).
    fn certificate() -> (String, String, Vec<u8>) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        (
            made.cert.pem(),
            made.signing_key.serialize_pem(),
            made.cert.der().to_vec(),
        )
    }

    /// A folder of the test's own, with the pair written as cert.pem and key.pem.
    struct Files(PathBuf);

    impl Files {
        fn new(name: &str, cert: &str, key: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("service-kit-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let files = Self(dir);
            files.write(cert, key);
            files
        }

        fn write(&self, cert: &str, key: &str) {
            std::fs::write(self.0.join("cert.pem"), cert).unwrap();
            std::fs::write(self.0.join("key.pem"), key).unwrap();
        }

        fn tls_files(&self) -> TlsFiles {
            TlsFiles {
                cert: self.0.join("cert.pem"),
                key: self.0.join("key.pem"),
            }
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn start(
        tls: Tls,
        limits: ServeLimits,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().route("/", get(|| async { "hello" }));
        let limits = ServeLimits {
            tls: Some(tls),
            ..limits
        };
        tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    /// A client that trusts exactly `roots` and shows the certificate it was served.
    fn client(roots: &[&str]) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only(
                roots
                    .iter()
                    .map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()),
            )
            .tls_info(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// The DER of the certificate a response came with.
    fn served(response: &reqwest::Response) -> Vec<u8> {
        response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn https_serves_http_1_1_and_h2_and_only_https() {
        let (cert, key, _) = certificate();
        let files = Files::new("serves", &cert, &key);
        let tls = Tls::load(files.tls_files(), RELOAD_EVERY).unwrap();
        let (address, _stop) = start(tls, ServeLimits::default()).await;
        let url = format!("https://{address}/");
        let h2 = client(&[&cert]).get(&url).send().await.unwrap();
        assert_eq!(h2.version(), reqwest::Version::HTTP_2, "ALPN h2");
        assert_eq!(h2.text().await.unwrap(), "hello");
        let h1 = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
            .http1_only()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(h1.version(), reqwest::Version::HTTP_11);
        // TLS 1.2 is served, with an ECDHE key exchange and an AEAD suite (RFC 9325 §4.2): the only kind of
        // TLS 1.2 suite the provider is allowed to offer.
        let tls12 = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
            .max_tls_version(reqwest::tls::Version::TLS_1_2)
            .build()
            .unwrap();
        assert_eq!(
            tls12.get(&url).send().await.unwrap().text().await.unwrap(),
            "hello"
        );
        let config =
            server_config(&files.tls_files(), &read_pair(&files.tls_files()).unwrap()).unwrap();
        for suite in &config.crypto_provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_")
                    || (name.starts_with("TLS_ECDHE_")
                        && (name.ends_with("_GCM_SHA256")
                            || name.ends_with("_GCM_SHA384")
                            || name.ends_with("_CHACHA20_POLY1305_SHA256"))),
                "{name}"
            );
        }
        // A client that does not trust the certificate gets no answer; nor does plaintext HTTP.
        let other = certificate().0;
        assert!(client(&[&other]).get(&url).send().await.is_err());
        let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
            "plaintext got an HTTP answer: {answer:?}"
        );
    }

    /// A client that opens TCP and never finishes a handshake holds a slot of its source only until the
    /// header deadline, and counts against the per-source cap meanwhile.
    #[tokio::test]
    async fn an_unfinished_handshake_is_closed_at_the_header_deadline_and_counts_against_the_caps()
    {
        let (cert, key, _) = certificate();
        let files = Files::new("deadline", &cert, &key);
        let tls = Tls::load(files.tls_files(), RELOAD_EVERY).unwrap();
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            max_connections_per_source: 2,
            ..ServeLimits::default()
        };
        let (address, _stop) = start(tls, limits).await;
        let started = std::time::Instant::now();
        // Half a ClientHello, then silence.
        let mut silent = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
                .await
                .unwrap();
            silent.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The source's two slots are taken: a third connection is closed at once.
        let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_millis(400), third.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        for mut stream in silent {
            let mut rest = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(
                read.is_ok(),
                "an unfinished handshake outlived the deadline"
            );
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(450),
            "closed before its deadline: {elapsed:?}"
        );
        // Its slots are free again.
        let served = client(&[&cert])
            .get(format!("https://{address}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
    }

    #[tokio::test]
    async fn a_certificate_changed_on_disk_serves_new_handshakes_and_open_connections_keep_theirs()
    {
        let (first, first_key, first_der) = certificate();
        let (second, second_key, second_der) = certificate();
        let files = Files::new("reload", &first, &first_key);
        let tls = Tls::load(files.tls_files(), Duration::from_millis(100)).unwrap();
        let (address, _stop) = start(tls, ServeLimits::default()).await;
        let url = format!("https://{address}/");
        // One connection, kept alive across the swap.
        let kept = reqwest::Client::builder()
            .tls_certs_only(
                [&first, &second]
                    .map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()),
            )
            .tls_info(true)
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let before = kept.get(&url).send().await.unwrap();
        assert_eq!(served(&before), first_der);
        before.text().await.unwrap();
        // A bad pair first (the new certificate with the old key): refused, the first pair still serves.
        files.write(&second, &first_key);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fresh = client(&[&first, &second]).get(&url).send().await.unwrap();
        assert_eq!(served(&fresh), first_der, "a mismatched pair is not served");
        // Then the good pair: served within the interval to new handshakes.
        files.write(&second, &second_key);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fresh = client(&[&first, &second]).get(&url).send().await.unwrap();
        assert_eq!(served(&fresh), second_der);
        // The connection opened before the swap was not dropped: it still answers, with its handshake.
        let after = kept.get(&url).send().await.unwrap();
        assert_eq!(after.status(), 200);
        assert_eq!(served(&after), first_der, "the same connection");
    }

    #[test]
    fn a_pair_that_cannot_serve_is_one_line_naming_the_file() {
        let (cert, key, _) = certificate();
        let (_, other_key, _) = certificate();
        let files = Files::new("errors", &cert, &other_key);
        let error = |files: TlsFiles| Tls::load(files, RELOAD_EVERY).unwrap_err().to_string();
        let mismatch = error(files.tls_files());
        assert!(mismatch.contains("does not match"), "{mismatch}");
        files.write(&key, &key);
        assert!(error(files.tls_files()).contains("holds no PEM certificate"));
        files.write(&cert, &cert);
        assert!(error(files.tls_files()).contains("holds no PEM private key"));
        let missing = error(TlsFiles {
            cert: files.0.join("missing.pem"),
            key: files.0.join("key.pem"),
        });
        assert!(missing.starts_with("cannot read --tls-cert"), "{missing}");
        files.write(&"x".repeat(MAX_PEM_BYTES as usize + 1), &key);
        assert!(error(files.tls_files()).contains("over 1 MiB"));
        for text in [mismatch, missing] {
            assert_eq!(text.lines().count(), 1);
        }
        // Reloading a refused pair is news once, then the same refusal is not.
        files.write(&cert, &key);
        let tls = Tls::load(files.tls_files(), RELOAD_EVERY).unwrap();
        assert!(matches!(tls.reload(), Ok(false)));
        files.write(&cert, &other_key);
        assert!(matches!(tls.reload(), Err((_, true))));
        assert!(matches!(tls.reload(), Err((_, false))));
        files.write(&cert, &key);
        assert!(matches!(tls.reload(), Ok(false)), "back to the pair in use");
    }
}
