//! The public keys of `private_key_jwt` clients (RFC 7523 §2.2): registered as a JWK set, or fetched from
//! the client's `jwks_uri` with a size cap, a timeout and a cache, refetched on an unknown `kid` at most once
//! per cooldown (the rules the resource server follows for the issuer's JWKS).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::jose::ClientKey;
use serde_json::Value;
use service_kit::telemetry::untrusted;

use crate::store::ClientRecord;

/// The largest JWK set fetched.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long fetched keys are used.
pub const CACHE_FOR: Duration = Duration::from_secs(300);
/// The least time between two fetches for one client.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// The most keys read from one set.
pub const MAX_KEYS: usize = 16;

/// Why a client's keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The document is not a JWK set, or a key in it has private members.
    #[error("{0}")]
    Invalid(String),
    /// The `jwks_uri` did not answer well in time.
    #[error("fetching the client's jwks_uri failed: {0}")]
    Fetch(String),
}

/// The usable public signing keys of a JWK set document (keys of other types are skipped, RFC 7517 §5); a
/// key with private members makes the whole set invalid: whoever made it has leaked a private key.
pub fn parse_jwks(document: &[u8]) -> Result<Vec<ClientKey>, KeysError> {
    let value: Value = serde_json::from_slice(document)
        .map_err(|_| KeysError::Invalid("not a JSON JWK set".into()))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeysError::Invalid("no keys array".into()))?;
    let mut usable = Vec::new();
    for key in keys.iter().take(MAX_KEYS) {
        let Some(object) = key.as_object() else {
            continue;
        };
        match ClientKey::from_json(object) {
            Ok(key) => usable.push(key),
            Err(auth_core::jwks::JwksError::UnusableKey {
                reason: "a JWK with private members",
                ..
            }) => {
                return Err(KeysError::Invalid(
                    "a key has private members: register public keys only".into(),
                ));
            }
            Err(_) => continue,
        }
    }
    Ok(usable)
}

struct Fetched {
    keys: Arc<Vec<ClientKey>>,
    /// When the keys were fetched (`None`: never successfully).
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not: the cooldown counts from here.
    tried_at: Instant,
}

/// One client's cached keys, behind its own lock: a slow fetch holds up that client's requests only.
type Slot = Arc<tokio::sync::Mutex<Option<Fetched>>>;

/// Keys fetched from clients' `jwks_uri`s.
pub struct ClientKeys {
    /// Built at the first fetch: loading the platform's root certificates costs milliseconds of every start
    /// (what a test harness waits for), and most servers never fetch a `jwks_uri`.
    http: std::sync::OnceLock<reqwest::Client>,
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

impl Default for ClientKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientKeys {
    pub fn new() -> Self {
        Self {
            http: std::sync::OnceLock::new(),
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The client's keys. With a `jwks_uri`: from the cache while fresh, unless `kid` names no cached key;
    /// a fetch (or a failed one) is not tried again within the cooldown, and while a refetch fails the keys
    /// fetched before still serve. Concurrent requests of one client share one fetch; other clients are
    /// not held up by it.
    pub async fn for_client(
        &self,
        client: &ClientRecord,
        kid: Option<&str>,
    ) -> Result<Arc<Vec<ClientKey>>, KeysError> {
        if let Some(jwks) = &client.jwks {
            return parse_jwks(jwks.as_bytes()).map(Arc::new);
        }
        let Some(uri) = &client.jwks_uri else {
            return Ok(Arc::new(Vec::new()));
        };
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots
                .entry(client.client_id.as_str().to_owned())
                .or_default()
                .clone()
        };
        let mut entry = slot.lock().await;
        if let Some(cached) = entry.as_ref() {
            let fresh = cached.fetched_at.is_some_and(|at| at.elapsed() < CACHE_FOR);
            let knows_kid =
                kid.is_none_or(|kid| cached.keys.iter().any(|key| key.kid() == Some(kid)));
            let may_try = cached.tried_at.elapsed() >= REFETCH_COOLDOWN;
            if (fresh && knows_kid) || !may_try {
                return Ok(cached.keys.clone());
            }
        }
        let result = self.fetch(uri).await;
        let now = Instant::now();
        match result {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *entry = Some(Fetched {
                    keys: keys.clone(),
                    fetched_at: Some(now),
                    tried_at: now,
                });
                Ok(keys)
            }
            Err(error) => {
                let (keys, fetched_at) = entry
                    .as_ref()
                    .map(|cached| (cached.keys.clone(), cached.fetched_at))
                    .unwrap_or_default();
                *entry = Some(Fetched {
                    keys: keys.clone(),
                    fetched_at,
                    tried_at: now,
                });
                if fetched_at.is_some() {
                    tracing::warn!(client_id = &*untrusted(client.client_id.as_str()), %error, "refetching the client's jwks_uri failed; the keys fetched before still serve");
                    Ok(keys)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Forgets what was fetched (clients changed).
    pub async fn clear(&self) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    async fn fetch(&self, uri: &str) -> Result<Vec<ClientKey>, KeysError> {
        let fail = |why: String| KeysError::Fetch(why);
        let mut response = self
            .http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default()
            })
            .get(uri)
            .send()
            .await
            .map_err(|error| fail(error.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(fail("larger than 64 KiB".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| fail(error.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(fail("larger than 64 KiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}
