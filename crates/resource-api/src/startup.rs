//! Building and running the API: bind, start discovering the issuer in the background (the API starts even
//! when the issuer is down, answering 503 until it has keys), serve until stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use auth_bearer::{BearerAuth, BearerConfig, IntrospectionCredentials};
use auth_core::clock::SharedClock;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use service_kit::metrics::Metrics;
use service_kit::{ServeLimits, shutdown_signal};

use crate::config::Config;
use crate::http::{ApiState, router};
use crate::items::ItemStore;

/// A built API, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `--metrics-listen`: /metrics on its own listener.
    metrics: Option<(TcpListener, Router)>,
    bearer: BearerAuth,
    discovery: JoinHandle<()>,
    limits: ServeLimits,
}

/// `https`, or `http` on a loopback host (what never leaves the machine).
fn https_or_loopback(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => service_kit::source::is_loopback_host(url.host_str().unwrap_or_default()),
        _ => false,
    }
}

impl Application {
    /// Binds the listener and prepares validation. The issuer is contacted in the background.
    pub async fn build(config: Config, clock: SharedClock) -> Result<Self> {
        // RFC 8414 §2: tokens are trusted for what the issuer's keys say, so its metadata must come over TLS
        // unless it never leaves the machine.
        let issuer = url::Url::parse(&config.issuer)
            .with_context(|| format!("--issuer {:?} is not a URL", config.issuer))?;
        if !https_or_loopback(&issuer) {
            anyhow::bail!(
                "--issuer {:?} must be https: plain http is allowed for loopback hosts only (127.0.0.0/8, ::1, localhost)",
                config.issuer
            );
        }
        let mut bearer_config = BearerConfig::new(config.issuer.clone(), config.audience.clone());
        bearer_config.jwks.cooldown = Duration::from_millis(config.jwks_cooldown_ms);
        bearer_config.introspection = match (
            &config.introspection_client_id,
            &config.introspection_secret,
        ) {
            (Some(client_id), Some(secret)) => Some(IntrospectionCredentials {
                client_id: client_id.clone(),
                client_secret: secret.expose().to_owned(),
            }),
            (Some(_), None) => anyhow::bail!(
                "--introspection-client-id needs --introspection-secret (RESOURCE_API_INTROSPECTION_SECRET)"
            ),
            (None, _) => None,
        };
        bearer_config.public_url = config.public_url.clone();
        // A bad certificate or key stops the start with one line naming the file.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                service_kit::tls::Tls::load(
                    service_kit::tls::TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    Duration::from_millis(config.tls_reload_ms),
                )
                .map_err(anyhow::Error::msg)?,
            ),
            _ => None,
        };
        bearer_config.https = tls.is_some();
        bearer_config.dpop_replay_capacity =
            usize::try_from(config.dpop_replay_capacity).unwrap_or(usize::MAX);
        bearer_config.dpop_nonce_key = match (&config.dpop_nonce, &config.dpop_nonce_key) {
            (false, _) => None,
            (true, Some(key)) if key.expose().len() >= 32 => Some(key.expose().as_bytes().to_vec()),
            (true, Some(_)) => {
                anyhow::bail!(
                    "--dpop-nonce-key (RESOURCE_API_DPOP_NONCE_KEY) must be at least 32 characters"
                )
            }
            (true, None) => {
                let mut key = vec![0u8; 32];
                auth_core::secret::fill_random(&mut key).context("making a DPoP nonce key")?;
                Some(key)
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        // RFC 9728: the identifier is configuration, never a request's Host.
        let resource = match (&config.resource, &config.public_url) {
            (Some(resource), _) => resource.clone(),
            (None, Some(public_url)) => public_url.clone(),
            (None, None) => {
                let mut bound = listener.local_addr().context("reading the bound address")?;
                if bound.ip().is_unspecified() {
                    bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{bound}")
            }
        };
        // RFC 9728 §1.2, RFC 8707 §2: an absolute URL, https unless loopback, no query or fragment.
        let usable = url::Url::parse(&resource).is_ok_and(|url| {
            https_or_loopback(&url) && url.query().is_none() && url.fragment().is_none()
        });
        if !usable {
            anyhow::bail!(
                "--resource {resource:?} must be an https URL (http only on a loopback host) without a query or fragment"
            );
        }
        bearer_config.resource = Some(resource);
        bearer_config.scopes_supported = vec!["read".into(), "write".into()];
        bearer_config.resource_name = Some("resource-api".into());
        let bearer = BearerAuth::new(bearer_config, http, clock);
        let metrics = Metrics::new();
        let state = ApiState {
            bearer: bearer.clone(),
            items: Arc::new(ItemStore::default()),
            metrics: metrics.clone(),
        };
        let interval = Duration::from_millis(config.jwks_cooldown_ms.max(100));
        let bearer_for_discovery = bearer.clone();
        let discovery = tokio::spawn(async move {
            discover_until_ready(bearer_for_discovery, interval).await;
            // Then keep the recorder bounded: histogram samples accumulate until upkeep drains them.
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                metrics.upkeep();
            }
        });
        let metrics = match config.metrics_listen {
            Some(address) => Some((
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding --metrics-listen {address}"))?,
                crate::http::metrics_router(state.clone()),
            )),
            None => None,
        };
        let metrics_here = metrics.is_none();
        Ok(Self {
            listener,
            metrics,
            router: router(state, metrics_here),
            bearer,
            discovery,
            limits: ServeLimits {
                header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
                max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
                max_connections_per_source: usize::try_from(config.max_connections_per_source)
                    .unwrap_or(usize::MAX),
                ipv6_source_prefix: config.ipv6_source_prefix,
                trusted_proxies: config.trusted_proxies.clone().into(),
                tls,
                ..ServeLimits::default()
            },
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().map(|address| address.port()).unwrap_or(0)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where /metrics is served with `--metrics-listen`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The validation layer (tests read its fetch count).
    pub fn bearer(&self) -> &BearerAuth {
        &self.bearer
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then finishes requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tracing::info!(address = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(), "resource-api listening");
        let (shutdown, metrics_shutdown) = service_kit::split_shutdown(shutdown);
        let metrics = self.metrics.map(|(listener, router)| {
            tokio::spawn(service_kit::serve(
                listener,
                router,
                ServeLimits::default(),
                metrics_shutdown,
            ))
        });
        service_kit::serve(self.listener, self.router, self.limits, shutdown).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        self.discovery.abort();
        tracing::info!("resource-api stopped");
        Ok(())
    }
}

/// Tries to reach the issuer until it answers, so readiness recovers without traffic.
async fn discover_until_ready(bearer: BearerAuth, interval: Duration) {
    loop {
        match bearer.discover().await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, "issuer not reachable yet; protected routes answer 503")
            }
        }
        tokio::time::sleep(interval).await;
    }
}
