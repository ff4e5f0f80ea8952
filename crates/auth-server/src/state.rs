//! Application state shared by every handler: settings, the store (behind its traits), the clock, the key
//! ring, the client cache, the password hasher and its bound, the failure throttle and the metrics.

use std::sync::{Arc, RwLock};

use auth_core::scope::ScopeSet;

use auth_core::clock::SharedClock;
use auth_core::keys::KeyEncryptionKey;
use auth_core::secret::PasswordHasher;
use service_kit::metrics::Metrics;

use crate::clients::cache::ClientCache;
use crate::keys::keyring::KeyRing;
use crate::keys::server_secrets::ServerSecrets;
use crate::protection::password_checks::PasswordChecks;
use crate::protection::throttle::Throttle;
use crate::store::Store;

/// Settings derived from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier, exactly as configured.
    pub issuer: String,
    /// The issuer without a trailing slash: the base of every endpoint URL.
    pub base_url: String,
    /// The issuer's path (`/p` for `https://host/p`), when it has one.
    pub issuer_path: Option<String>,
    /// Seconds.
    pub access_token_ttl: i64,
    /// Seconds.
    pub refresh_token_ttl: i64,
    /// Seconds.
    pub auth_code_ttl: i64,
    /// Login-session lifetime, seconds.
    pub session_ttl: i64,
    /// Audience for clients registered without one.
    pub default_audience: String,
    /// Cookies get `Secure` when the issuer is https.
    pub secure_cookies: bool,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<service_kit::source::Cidr>,
    /// IPv6 sources count per prefix of this length.
    pub ipv6_source_prefix: u8,
    /// The absolute lifetime of a refresh-token family, seconds from its creation.
    pub refresh_family_max_age: i64,
    /// The consent page's words for each scope.
    pub scope_descriptions: crate::authorize::scope_descriptions::ScopeDescriptions,
    /// `--accept-token-endpoint-audience`: client assertions may name the token endpoint URL as `aud`.
    pub accept_token_endpoint_audience: bool,
    /// Who may register clients at /register (RFC 7591).
    pub registration: crate::clients::policy::RegistrationPolicy,
    /// The scopes a dynamic client may have (`None`: every scope of `scopes_supported`).
    pub registration_scopes: Option<ScopeSet>,
    /// Dynamic clients at most.
    pub registration_max_clients: u64,
    /// Days without a token after which a dynamic client is deleted.
    pub registration_idle_days: i64,
    /// Whether an https `client_id` names a client ID metadata document.
    pub client_id_metadata_documents: bool,
}

/// Everything handlers share.
pub struct AppInner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub keys: KeyRing,
    pub clients: ClientCache,
    /// The keys of `private_key_jwt` clients that registered a `jwks_uri`.
    pub client_keys: crate::clients::keys::ClientKeys,
    /// argon2id for passwords.
    pub hasher: PasswordHasher,
    pub throttle: Throttle,
    /// The device authorization rate per (client, source), in a table of its own: requests that need no
    /// credential never fill the table that counts failed logins and user codes.
    pub device_throttle: Throttle,
    /// The bounded argon2 checks.
    pub password_checks: Arc<PasswordChecks>,
    pub metrics: Metrics,
    /// Seals signing keys at rest, when configured.
    pub kek: Option<KeyEncryptionKey>,
    /// The server's own secrets (the CSRF MAC key), the same at every replica.
    pub secrets: ServerSecrets,
    /// The batched writer of single-use `jti`s.
    pub jtis: crate::tokens::replay::JtiRecorder,
    /// DPoP server nonces, when `--dpop-nonce` requires them.
    pub dpop_nonces: Option<auth_core::dpop::NonceSource>,
    /// Every scope a registered client may be granted (RFC 8414 `scopes_supported`), renewed by the
    /// config-version poll.
    pub supported_scopes: RwLock<Arc<ScopeSet>>,
    /// The dynamic clients whose activity this replica noted today.
    pub issued_today: crate::clients::idle::IssuedToday,
    /// The fetcher of client ID metadata documents, and its cache.
    pub documents: crate::clients::document_fetch::DocumentFetcher,
    /// Delivers back-channel logouts.
    pub backchannel: crate::backchannel::deliverer::Deliverer,
}

impl AppInner {
    /// The scopes this server grants.
    pub fn supported_scopes(&self) -> Arc<ScopeSet> {
        self.supported_scopes
            .read()
            .map(|scopes| scopes.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Re-reads the scopes of the registered clients.
    pub async fn refresh_supported_scopes(&self) -> Result<(), crate::store::StoreError> {
        let scopes = Arc::new(self.store.registered_scopes().await?);
        if let Ok(mut current) = self.supported_scopes.write() {
            *current = scopes;
        }
        Ok(())
    }
}

/// The state handed to handlers; cheap to clone.
pub type AppState = Arc<AppInner>;
