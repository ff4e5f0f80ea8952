//! Building and running the server: bind the listener, connect and migrate the store, load keys, start the
//! background poller (cross-replica cache invalidation, key schedule, purging), serve until stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_core::clock::SharedClock;
use auth_core::keys::KeyEncryptionKey;
use auth_core::secret::PasswordHasher;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use service_kit::metrics::Metrics;
use service_kit::{ServeLimits, shutdown_signal};

use crate::clients::cache::ClientCache;
use crate::config::ServeConfig;
use crate::keys::keyring::KeyRing;
use crate::protection::password_checks::PasswordChecks;
use crate::protection::throttle::Throttle;
use crate::state::{AppInner, AppState, Settings};
use crate::store::ClientStore;
use crate::store::sql::SqlStore;

/// What `serve` needs.
pub struct ApplicationConfig {
    pub serve: ServeConfig,
    pub database_url: String,
    /// The key-encryption key, when configured.
    pub key_encryption_key: Option<KeyEncryptionKey>,
    /// The clock (the system clock in production).
    pub clock: SharedClock,
    /// A listener already bound (socket activation, or a test that owned the port first); `None` binds
    /// `--listen`.
    pub listener: Option<std::net::TcpListener>,
    /// A configuration file, checked: applied once the database is migrated, before anything is read.
    pub declaration: Option<crate::declared::Declaration>,
}

/// Purge expired rows every this many seconds of the server's clock, whatever the poll interval.
pub const PURGE_EVERY_SECONDS: i64 = 600;

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `--metrics-listen`: /metrics on its own listener.
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
    poller: JoinHandle<()>,
    /// Delivers back-channel logouts.
    deliverer: JoinHandle<()>,
    limits: ServeLimits,
}

/// Settings from the `serve` flags and the issuer; a bad issuer is a one-line error.
pub fn settings(serve: &ServeConfig, issuer: String) -> Result<Settings> {
    let url =
        url::Url::parse(&issuer).with_context(|| format!("--issuer {issuer:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--issuer must be an http or https URL");
    }
    if serve.tls().is_some() && url.scheme() != "https" {
        bail!("--issuer {issuer:?} must be https: with --tls-cert the server speaks only https");
    }
    // RFC 8414 §2: the issuer has no query or fragment.
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--issuer must not have a query or fragment");
    }
    // RFC 8414 §2 and RFC 9700 §2.6: an issuer is https; plain http only where nothing crosses a network.
    if url.scheme() == "http"
        && !service_kit::source::is_loopback_host(url.host_str().unwrap_or_default())
    {
        bail!(
            "--issuer {issuer:?} must be https: plain http is allowed for loopback hosts only (127.0.0.0/8, ::1, localhost)"
        );
    }
    let path = url.path().trim_end_matches('/');
    let ttl = |value: u64, name: &str| {
        i64::try_from(value).with_context(|| format!("{name} is too large"))
    };
    Ok(Settings {
        base_url: issuer.trim_end_matches('/').to_owned(),
        issuer_path: (!path.is_empty()).then(|| path.to_owned()),
        access_token_ttl: ttl(serve.access_token_ttl, "--access-token-ttl")?,
        refresh_token_ttl: ttl(serve.refresh_token_ttl, "--refresh-token-ttl")?,
        auth_code_ttl: ttl(serve.auth_code_ttl, "--auth-code-ttl")?,
        session_ttl: ttl(serve.session_ttl, "--session-ttl")?,
        default_audience: serve.default_audience.clone(),
        secure_cookies: url.scheme() == "https",
        trusted_proxies: serve.trusted_proxies.clone(),
        ipv6_source_prefix: serve.ipv6_source_prefix,
        refresh_family_max_age: ttl(serve.refresh_family_max_age, "--refresh-family-max-age")?,
        accept_token_endpoint_audience: serve.accept_token_endpoint_audience,
        registration: serve.registration,
        registration_scopes: match &serve.registration_scopes {
            Some(text) => Some(
                auth_core::scope::ScopeSet::parse(text)
                    .map_err(|error| anyhow::anyhow!("--registration-scopes: {error}"))?,
            ),
            None => None,
        },
        registration_max_clients: serve.registration_max_clients,
        registration_idle_days: i64::from(serve.registration_idle_days),
        client_id_metadata_documents: serve.client_id_metadata_documents,
        scope_descriptions: crate::authorize::scope_descriptions::ScopeDescriptions::new(
            &serve.scope_descriptions,
        ),
        issuer,
    })
}

impl Application {
    /// Connects, migrates, loads keys and binds the listener.
    pub async fn build(config: ApplicationConfig) -> Result<Self> {
        // The dummy hash that makes an unknown user cost a password check takes an argon2 run: made on a
        // blocking thread once everything else is ready (start to ready is what CI waits for).
        let hasher = PasswordHasher::deferred();
        // An in-memory database starts without keys: the server's own are made while it opens.
        let fresh = if crate::store::sql::is_in_memory(&config.database_url) {
            crate::keys::keyring::FreshKeys::start(&crate::keys::keyring::algorithms_in_use(
                config.serve.signing_alg,
                &[],
            ))
        } else {
            crate::keys::keyring::FreshKeys::default()
        };
        // Bound first: the issuer may be the address the system picked (`--listen 127.0.0.1:0`).
        let listener = match config.listener {
            Some(listener) => {
                listener
                    .set_nonblocking(true)
                    .context("preparing the given listener")?;
                TcpListener::from_std(listener).context("adopting the given listener")?
            }
            None => TcpListener::bind(config.serve.listen)
                .await
                .with_context(|| format!("binding {}", config.serve.listen))?,
        };
        let bound = listener.local_addr().context("reading the bound address")?;
        // A bad certificate or key stops the start with one line naming the file.
        let tls = match config.serve.tls() {
            Some(files) => Some(
                service_kit::tls::Tls::load(
                    files,
                    Duration::from_millis(config.serve.tls_reload_ms),
                )
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let issuer = config.serve.issuer_for(bound);
        let settings = settings(&config.serve, issuer)?;
        let store = SqlStore::connect(&config.database_url, config.serve.db_max_connections.max(1))
            .await
            .context("connecting to the database")?
            .with_backchannel_max_pending(
                i64::try_from(config.serve.backchannel_max_pending).unwrap_or(i64::MAX),
            );
        let now = config.clock.now();
        // The file first: the keys of the clients' ID-token algorithms and the scopes are read after it.
        if let Some(declaration) = &config.declaration {
            crate::declared::apply::apply(
                &store,
                declaration,
                &hasher,
                config.key_encryption_key.as_ref(),
                now,
            )
            .await?;
        }
        // Read before anything it versions: a change from now on is picked up by the first poll.
        let known_version = crate::store::HealthStore::config_version(&store).await.ok();
        let client_algs = store
            .id_token_algorithms()
            .await
            .context("reading the clients' ID-token algorithms")?;
        let keys = KeyRing::load(
            &store,
            config.key_encryption_key.as_ref(),
            config.serve.signing_alg,
            &client_algs,
            settings.access_token_ttl,
            now,
            fresh,
        )
        .await
        .context("loading signing keys")?;
        let secrets =
            crate::keys::server_secrets::load(&store, config.key_encryption_key.as_ref(), now)
                .await
                .context("loading the server's secrets")?;
        let supported_scopes = store
            .registered_scopes()
            .await
            .context("reading the clients' scopes")?;
        let dpop_nonces = config.serve.dpop_nonce.then(|| secrets.dpop_nonce_source());
        let store: Arc<dyn crate::store::Store> = Arc::new(store);
        let jtis = crate::tokens::replay::JtiRecorder::start(store.clone());
        let state: AppState = Arc::new(AppInner {
            settings,
            store,
            jtis,
            clock: config.clock,
            keys,
            clients: ClientCache::default(),
            client_keys: crate::clients::keys::ClientKeys::new(),
            hasher,
            throttle: Throttle::default(),
            device_throttle: Throttle::default(),
            password_checks: PasswordChecks::new(
                usize::try_from(config.serve.max_password_checks).unwrap_or(1),
            ),
            metrics: Metrics::new(),
            kek: config.key_encryption_key,
            secrets,
            dpop_nonces,
            supported_scopes: std::sync::RwLock::new(Arc::new(supported_scopes)),
            issued_today: crate::clients::idle::IssuedToday::default(),
            documents: crate::clients::document_fetch::DocumentFetcher::new(
                config.serve.insecure_loopback_metadata,
            ),
            backchannel: crate::backchannel::deliverer::Deliverer::new(
                config.serve.insecure_loopback_metadata,
            ),
        });
        // Before the first unknown-user check, which would otherwise make it itself.
        tokio::task::spawn_blocking({
            let hasher = state.hasher.clone();
            move || {
                if let Err(error) = hasher.prepare() {
                    tracing::error!(error = %error, "making the password checks' dummy hash");
                }
            }
        });
        let deliverer = tokio::spawn(crate::backchannel::deliver(state.clone()));
        let poller = tokio::spawn(poll_changes(
            state.clone(),
            Duration::from_millis(config.serve.config_poll_ms.max(50)),
            known_version,
        ));
        let metrics = match config.serve.metrics_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding --metrics-listen {address}"))?;
                let router = crate::http::health::metrics_router().with_state(state.clone());
                Some((listener, router))
            }
            None => None,
        };
        let router = crate::http::router(
            state.clone(),
            Duration::from_secs(config.serve.request_timeout.max(1)),
            metrics.is_none(),
        );
        Ok(Self {
            listener,
            router,
            metrics,
            state,
            poller,
            deliverer,
            limits: ServeLimits {
                header_read_timeout: Duration::from_millis(config.serve.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(config.serve.idle_timeout_ms),
                max_connections: usize::try_from(config.serve.max_connections)
                    .unwrap_or(usize::MAX),
                max_connections_per_source: usize::try_from(
                    config.serve.max_connections_per_source,
                )
                .unwrap_or(usize::MAX),
                ipv6_source_prefix: config.serve.ipv6_source_prefix,
                trusted_proxies: config.serve.trusted_proxies.clone().into(),
                tls,
                ..ServeLimits::default()
            },
        })
    }

    /// The bound port (for servers bound to port 0).
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

    /// The shared state (tests use it to move the clock or look at keys).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tracing::info!(address = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(), issuer = %self.state.settings.issuer, "auth-server listening");
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
        self.poller.abort();
        self.deliverer.abort();
        tracing::info!("auth-server stopped");
        Ok(())
    }
}

/// Every tick: if another replica (or a CLI command) changed clients or keys, drop the caches and reload
/// keys; recompute which key signs and which are published; keep the metrics recorder bounded; now and
/// then purge expired rows.
/// `known_version` is the configuration version read before the keys and scopes were: a change made
/// after that read (at another replica, while this one starts) is reloaded at the first poll.
async fn poll_changes(state: AppState, interval: Duration, known_version: Option<i64>) {
    let mut known_version = known_version;
    let mut last_purge = state.clock.now();
    loop {
        tokio::time::sleep(interval).await;
        let now = state.clock.now();
        match state.store.config_version().await {
            Ok(version) if Some(version) != known_version => {
                state.clients.clear();
                state.client_keys.clear().await;
                if let Err(error) = state.refresh_supported_scopes().await {
                    tracing::warn!(%error, "reading the clients' scopes failed; will retry");
                    continue;
                }
                let client_algs = match state.store.id_token_algorithms().await {
                    Ok(algs) => algs,
                    Err(error) => {
                        tracing::warn!(%error, "reading the clients' ID-token algorithms failed; will retry");
                        continue;
                    }
                };
                match state
                    .keys
                    .reload(state.store.as_ref(), state.kek.as_ref(), &client_algs, now)
                    .await
                {
                    Ok(()) => known_version = Some(version),
                    Err(error) => {
                        tracing::warn!(%error, "reloading signing keys failed; will retry")
                    }
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "config version poll failed; will retry"),
        }
        state.keys.refresh(now);
        state.metrics.upkeep();
        if now - last_purge >= PURGE_EVERY_SECONDS {
            last_purge = now;
            match state
                .store
                .purge_expired(now, crate::config::MAX_ACCESS_TOKEN_TTL)
                .await
            {
                Ok(purged) => tracing::debug!(purged, "expired rows purged"),
                Err(error) => tracing::warn!(%error, "purging expired rows failed"),
            }
            if let Err(error) = crate::clients::registrar::delete_idle(&state, now).await {
                tracing::warn!(%error, "deleting idle dynamic clients failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_issuer_must_be_loopback() {
        let serve = ServeConfig::default();
        for good in [
            "http://127.0.0.1:8080",
            "http://127.9.0.1",
            "http://[::1]:8080",
            "http://localhost:8080/p",
            "https://id.example",
        ] {
            assert!(settings(&serve, good.into()).is_ok(), "{good}");
        }
        for bad in [
            "http://id.example",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]",
        ] {
            let error = settings(&serve, bad.into()).unwrap_err().to_string();
            assert!(error.contains("must be https"), "{bad}: {error}");
        }
    }
}
