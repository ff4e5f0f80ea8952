//! [`BearerAuth`]: the issuer's keys discovered from its RFC 8414 metadata and cached, access tokens
//! verified against them (RFC 9068, RFC 8725), and RFC 7662 introspection for routes that must see a
//! revocation before `exp`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use auth_core::clock::SharedClock;
use auth_core::id::Jkt;
use auth_core::jwks::remote::{self, RemoteJwks, RemoteJwksOptions, RemoteVerifyError};
use auth_core::secret::SecretDigest;
use auth_core::token::{AccessTokenClaims, ValidationPolicy};
use auth_core::wire::IntrospectionResponse;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cache::VerifiedCache;
use crate::error::{BearerError, DEFAULT_REALM};
use crate::replay::FirstUse;

/// A DPoP proof as a request presented it, with what it must match (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub struct PresentedProof<'a> {
    /// The `DPoP` header.
    pub proof: &'a str,
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URI without query, as this service's external address makes it (`htu`).
    pub uri: &'a str,
    /// The access token presented with it (`ath`).
    pub access_token: &'a str,
    /// The key the token is bound to (`cnf.jkt`).
    pub bound_to: &'a Jkt,
    /// The client the token was issued to: its proofs share one part of the replay cache.
    pub client_id: &'a str,
}

/// Client credentials for the issuer's introspection endpoint.
#[derive(Clone)]
pub struct IntrospectionCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a [`BearerAuth`] checks and how it caches.
#[derive(Debug, Clone)]
pub struct BearerConfig {
    /// The issuer identifier, exactly as in `iss`.
    pub issuer: String,
    /// This API's audience: `aud` must contain it.
    pub audience: String,
    /// `realm` of `WWW-Authenticate`.
    pub realm: String,
    /// JWKS cache tuning (the cooldown also paces metadata discovery while the issuer is down).
    pub jwks: RemoteJwksOptions,
    /// For routes that require an active token.
    pub introspection: Option<IntrospectionCredentials>,
    /// Verified tokens kept (by digest).
    pub verified_cache_capacity: usize,
    /// How long an `active: false` answer is reused. An active answer never is: a route that asks must
    /// see a revocation on its next request.
    pub inactive_cache_ttl: Duration,
    /// This API's external base URL (`https://api.example`), the `htu` of DPoP proofs behind a proxy.
    /// Without it, the listener's scheme ([`BearerConfig::https`]) and the request's `Host` header.
    pub public_url: Option<String>,
    /// The service listens with TLS: without a public URL, proofs name `https://` and the request's `Host`.
    pub https: bool,
    /// With a key (≥ 32 random bytes, the same at every replica), DPoP proofs must carry a nonce this layer
    /// issued (RFC 9449 §9).
    pub dpop_nonce_key: Option<Vec<u8>>,
    /// DPoP proof `jti`s remembered at once (each for the 71 s a proof can be fresh), at most 1/64 of them
    /// per key and 1/8 per client.
    pub dpop_replay_capacity: usize,
    /// This resource's identifier (RFC 9728 §1.2, RFC 8707: https, or http on a loopback host; no fragment),
    /// served and compared exactly as given: the layer then serves its protected-resource metadata, names
    /// it in every 401 challenge, and accepts tokens whose `aud` holds it as well as [`Self::audience`].
    pub resource: Option<String>,
    /// `scopes_supported` of the metadata.
    pub scopes_supported: Vec<String>,
    /// `resource_name` of the metadata.
    pub resource_name: Option<String>,
}

impl BearerConfig {
    /// Defaults: realm `resource-api`, 5 s JWKS cooldown, 10 000 cached tokens, inactive answers
    /// reused for 30 s.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            realm: DEFAULT_REALM.into(),
            jwks: RemoteJwksOptions::default(),
            introspection: None,
            verified_cache_capacity: 10_000,
            inactive_cache_ttl: Duration::from_secs(30),
            public_url: None,
            https: false,
            dpop_nonce_key: None,
            dpop_replay_capacity: 1_000_000,
            resource: None,
            scopes_supported: Vec::new(),
            resource_name: None,
        }
    }
}

struct Discovered {
    jwks: RemoteJwks,
    introspection_endpoint: Option<String>,
}

struct Inner {
    config: BearerConfig,
    http: reqwest::Client,
    clock: SharedClock,
    policy: ValidationPolicy,
    discovered: RwLock<Option<Arc<Discovered>>>,
    discovery: Mutex<Option<Instant>>,
    verified: VerifiedCache,
    /// Tokens the issuer said are inactive, and when. Inactive never turns active again (RFC 7009 §2.2,
    /// expiry), so reusing the answer is safe; it only spares the issuer a replayed dead token.
    inactive: RwLock<HashMap<SecretDigest, Instant>>,
    replay: crate::replay::ReplayCache,
    nonces: Option<auth_core::dpop::NonceSource>,
    metadata: Option<crate::metadata::ResourceMetadata>,
}

/// The validation layer's state. Cheap to clone.
#[derive(Clone)]
pub struct BearerAuth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// A validator for tokens of `config.issuer`. Nothing is fetched until [`BearerAuth::discover`] or the
    /// first request; an issuer that is down only delays readiness.
    pub fn new(config: BearerConfig, http: reqwest::Client, clock: SharedClock) -> Self {
        let verified = VerifiedCache::new(config.verified_cache_capacity);
        let replay = crate::replay::ReplayCache::new(config.dpop_replay_capacity);
        let nonces = config
            .dpop_nonce_key
            .as_deref()
            .map(auth_core::dpop::NonceSource::new);
        let mut policy = ValidationPolicy::new(
            config.issuer.clone(),
            config.audience.clone(),
            clock.clone(),
        );
        if let Some(resource) = &config.resource {
            policy = policy.also_accepting(resource.clone());
        }
        let algorithms = auth_core::jose::ClientAlgorithm::names();
        let metadata = config.resource.as_deref().and_then(|resource| {
            crate::metadata::ResourceMetadata::new(
                resource,
                &config.issuer,
                &config.scopes_supported,
                config.resource_name.as_deref(),
                &algorithms.split(' ').collect::<Vec<_>>(),
            )
        });
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                policy,
                discovered: RwLock::new(None),
                discovery: Mutex::new(None),
                verified,
                inactive: RwLock::new(HashMap::new()),
                replay,
                nonces,
                metadata,
            }),
        }
    }

    /// The route of the RFC 9728 document (`GET`, JSON), when [`BearerConfig::resource`] is set; merge it
    /// into the service's router.
    pub fn metadata_routes<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let Some(metadata) = self.inner.metadata.clone() else {
            return axum::Router::new();
        };
        let json: Arc<str> = metadata.json.into();
        axum::Router::new().route(
            &metadata.path,
            axum::routing::get(move || {
                let json = json.clone();
                async move {
                    (
                        [
                            (axum::http::header::CONTENT_TYPE, "application/json"),
                            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
                        ],
                        json.to_string(),
                    )
                }
            }),
        )
    }

    /// The RFC 9728 protected-resource metadata, when [`BearerConfig::resource`] is set.
    pub fn resource_metadata(&self) -> Option<&crate::metadata::ResourceMetadata> {
        self.inner.metadata.as_ref()
    }

    /// The answer for `error`: its RFC 6750 §3 challenge with the configured realm and, on a 401, the
    /// metadata URL (RFC 9728 §5.1). Handlers that refuse after the extractor answer with this too.
    pub fn refuse(&self, error: &BearerError) -> axum::response::Response {
        crate::error::challenge_with(
            error,
            &self.inner.config.realm,
            self.inner
                .metadata
                .as_ref()
                .map(|metadata| metadata.url.as_str()),
        )
    }

    /// Checks the DPoP proof of a request that presented a bound access token (RFC 9449 §7.1, §4.3) under
    /// the one proof policy of `auth_core::dpop` (this request's method and URI, `ath` of the token, its key
    /// the token's, the nonce when one is required), then records its `jti` so it is not accepted again.
    pub fn check_dpop_proof(&self, presented: &PresentedProof<'_>) -> Result<(), BearerError> {
        let now = self.inner.clock.now();
        let verified = auth_core::dpop::verify_proof(
            presented.proof,
            &auth_core::dpop::ProofContext {
                method: presented.method,
                uri: presented.uri,
                now,
                access_token: Some(presented.access_token),
                bound_to: Some(presented.bound_to),
                nonces: self.inner.nonces.as_ref(),
            },
        )
        .map_err(|error| match error {
            auth_core::dpop::ProofError::UseNonce(nonce) => BearerError::UseDpopNonce(nonce),
            other => BearerError::InvalidDpopProof(other.to_string()),
        })?;
        match self.inner.replay.first_use(
            verified.jkt.as_str(),
            presented.client_id,
            &verified.jti,
            verified.remember_until(),
            now,
        ) {
            FirstUse::New => Ok(()),
            FirstUse::Replayed => Err(BearerError::InvalidDpopProof(
                "the proof's jti was used before".into(),
            )),
            FirstUse::Full => {
                tracing::warn!("the DPoP replay cache is full of fresh proofs; refusing new ones");
                Err(BearerError::InvalidDpopProof(
                    "too many proofs at once; retry with a new proof".into(),
                ))
            }
            FirstUse::KeyOverShare => Err(BearerError::InvalidDpopProof(
                "too many fresh proofs by this key; retry in a minute".into(),
            )),
            FirstUse::ClientOverShare => Err(BearerError::InvalidDpopProof(
                "too many fresh proofs for this client; retry in a minute".into(),
            )),
        }
    }

    /// The current DPoP nonce, when nonces are required (for a `DPoP-Nonce` header on answers).
    pub fn current_dpop_nonce(&self) -> Option<String> {
        let nonces = self.inner.nonces.as_ref()?;
        Some(nonces.current(self.inner.clock.now()))
    }

    /// The configuration.
    pub fn config(&self) -> &BearerConfig {
        &self.inner.config
    }

    /// True once the issuer's metadata and keys have been fetched.
    pub fn is_ready(&self) -> bool {
        self.inner
            .discovered
            .read()
            .map(|discovered| discovered.is_some())
            .unwrap_or(false)
    }

    /// How many JWKS fetches have been made (metrics, tests).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.current()
            .map_or(0, |discovered| discovered.jwks.fetch_count())
    }

    fn current(&self) -> Option<Arc<Discovered>> {
        self.inner
            .discovered
            .read()
            .ok()
            .and_then(|discovered| discovered.clone())
    }

    /// Reads the issuer's metadata and keys, at most once per cooldown while it keeps failing.
    pub async fn discover(&self) -> Result<(), BearerError> {
        if self.current().is_some() {
            return Ok(());
        }
        let mut last_attempt = self.inner.discovery.lock().await;
        if self.current().is_some() {
            return Ok(());
        }
        let options = &self.inner.config.jwks;
        if last_attempt.is_some_and(|at| at.elapsed() < options.cooldown) {
            return Err(BearerError::Unavailable(
                "the issuer has not answered yet".into(),
            ));
        }
        *last_attempt = Some(Instant::now());
        let metadata = remote::fetch_metadata(
            &self.inner.http,
            &self.inner.config.issuer,
            options.fetch_timeout,
        )
        .await
        .map_err(|error| BearerError::Unavailable(error.to_string()))?;
        let jwks_uri = metadata.jwks_uri.ok_or_else(|| {
            BearerError::Unavailable("the issuer's metadata has no jwks_uri".into())
        })?;
        let jwks = RemoteJwks::new(jwks_uri, self.inner.http.clone(), options.clone());
        jwks.keys()
            .await
            .map_err(|error| BearerError::Unavailable(error.to_string()))?;
        let discovered = Arc::new(Discovered {
            jwks,
            introspection_endpoint: metadata.introspection_endpoint,
        });
        if let Ok(mut slot) = self.inner.discovered.write() {
            *slot = Some(discovered);
        }
        tracing::info!(issuer = %self.inner.config.issuer, "issuer metadata and keys loaded");
        Ok(())
    }

    /// Verifies a token: from the cache of verified tokens when it was seen before and has not expired,
    /// else by signature and claims.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessTokenClaims>, BearerError> {
        let digest = SecretDigest::of(token);
        let now = self.inner.clock.now();
        if let Some(claims) = self.inner.verified.get(&digest) {
            // An entry never outlives its token (same leeway as a fresh verification).
            if now <= claims.exp + self.inner.policy.leeway() {
                return Ok(claims);
            }
        }
        // Malformed tokens, alg none and the like are refused before keys are needed, so they are 401 even
        // while the issuer is unreachable and never cause traffic to it.
        auth_core::token::inspect_header(token)
            .map_err(|error| BearerError::InvalidToken(error.to_string()))?;
        self.discover().await?;
        let discovered = self
            .current()
            .ok_or_else(|| BearerError::Unavailable("no keys yet".into()))?;
        let claims = match discovered.jwks.verify(token, &self.inner.policy).await {
            Ok(claims) => Arc::new(claims),
            Err(RemoteVerifyError::Token(error)) => {
                return Err(BearerError::InvalidToken(error.to_string()));
            }
            Err(RemoteVerifyError::KeysUnavailable(error)) => {
                return Err(BearerError::Unavailable(error.to_string()));
            }
        };
        self.inner
            .verified
            .insert(digest, claims.clone(), now, self.inner.policy.leeway());
        Ok(claims)
    }

    /// Asks the issuer whether the token is still active (RFC 7662). Every call asks, unless the issuer
    /// already said this token is inactive.
    pub async fn is_active(&self, token: &str) -> Result<bool, BearerError> {
        let credentials =
            self.inner.config.introspection.as_ref().ok_or_else(|| {
                BearerError::Unavailable("introspection is not configured".into())
            })?;
        let digest = SecretDigest::of(token);
        let ttl = self.inner.config.inactive_cache_ttl;
        if let Some(at) = self
            .inner
            .inactive
            .read()
            .ok()
            .and_then(|cache| cache.get(&digest).copied())
            && at.elapsed() < ttl
        {
            return Ok(false);
        }
        self.discover().await?;
        let endpoint = self
            .current()
            .and_then(|discovered| discovered.introspection_endpoint.clone())
            .ok_or_else(|| {
                BearerError::Unavailable("the issuer has no introspection endpoint".into())
            })?;
        let response = self
            .inner
            .http
            .post(&endpoint)
            .basic_auth(
                form_encode(&credentials.client_id),
                Some(form_encode(&credentials.client_secret)),
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|error| BearerError::Unavailable(format!("introspection failed: {error}")))?;
        if !response.status().is_success() {
            return Err(BearerError::Unavailable(format!(
                "introspection answered {}",
                response.status()
            )));
        }
        let answer: IntrospectionResponse = response.json().await.map_err(|error| {
            BearerError::Unavailable(format!("introspection answer unreadable: {error}"))
        })?;
        if !answer.active
            && let Ok(mut cache) = self.inner.inactive.write()
        {
            let capacity = self.inner.config.verified_cache_capacity;
            if cache.len() >= capacity {
                cache.retain(|_, at| at.elapsed() < ttl);
                if cache.len() >= capacity {
                    cache.clear();
                }
            }
            cache.insert(digest, Instant::now());
        }
        Ok(answer.active)
    }
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64.
fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                encoded.push(byte as char)
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c/d"), "a+b%3Ac%2Fd");
    }
}
