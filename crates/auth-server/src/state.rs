//! Application state shared by every handler: settings, the store (behind its traits), the clock, the key
//! ring, the client cache, the password hasher and its bound, the failure throttle and the metrics.

use std::sync::Arc;

use auth_core::clock::SharedClock;
use auth_core::keys::KeyEncryptionKey;
use auth_core::secret::PasswordHasher;
use service_kit::metrics::Metrics;

use crate::clients::ClientCache;
use crate::keyring::KeyRing;
use crate::password_checks::PasswordChecks;
use crate::store::Store;
use crate::throttle::Throttle;

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
    pub trusted_proxies: Vec<crate::http::source::Cidr>,
}

/// Everything handlers share.
pub struct AppInner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub keys: KeyRing,
    pub clients: ClientCache,
    /// argon2id for passwords.
    pub hasher: PasswordHasher,
    pub throttle: Throttle,
    /// The bounded argon2 checks.
    pub password_checks: Arc<PasswordChecks>,
    pub metrics: Metrics,
    /// Seals signing keys at rest, when configured.
    pub kek: Option<KeyEncryptionKey>,
}

/// The state handed to handlers; cheap to clone.
pub type AppState = Arc<AppInner>;
