//! RFC 6750 bearer-token validation for any axum service.
//!
//! [`BearerAuth`] discovers the issuer's keys from its RFC 8414 metadata, verifies access tokens (RFC 9068)
//! against the cached JWKS, keeps recently verified tokens so a repeated token costs a lookup, and asks the
//! issuer's introspection endpoint (RFC 7662) where a route needs to know a token is still active.
//! [`Authenticated`] is the extractor; errors answer exactly as RFC 6750 §3 says.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get, Json};
//! use resource_api::bearer::{Authenticated, BearerAuth, BearerConfig, BearerError};
//!
//! async fn reports(auth: Authenticated) -> Result<Json<String>, BearerError> {
//!     auth.require_scope("reports:read")?;                   // 403 insufficient_scope otherwise
//!     Ok(Json(format!("hello {}", auth.claims.sub)))
//! }
//!
//! # async fn example() {
//! let bearer = BearerAuth::new(
//!     BearerConfig::new("https://as.example", "reports-api"),
//!     reqwest::Client::new(),
//!     Arc::new(auth_core::clock::SystemClock),
//! );
//! let app: Router = Router::new().route("/reports", get(reports)).with_state(bearer);
//! # let _ = app;
//! # }
//! ```
//!
//! A state type of your own works too: implement `FromRef<YourState> for BearerAuth`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use auth_core::clock::SharedClock;
use auth_core::jwks::remote::{self, RemoteJwks, RemoteJwksOptions, RemoteVerifyError};
use auth_core::secret::SecretDigest;
use auth_core::token::{AccessTokenClaims, ValidationPolicy};
use auth_core::wire::{ErrorCode, IntrospectionResponse};
use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Client credentials for the issuer's introspection endpoint.
#[derive(Clone)]
pub struct IntrospectionCredentials {
    /// The client id.
    pub client_id: String,
    /// Its secret.
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
    /// How long an introspection answer is reused.
    pub introspection_cache_ttl: Duration,
}

impl BearerConfig {
    /// Defaults: realm `resource-api`, 5 s JWKS cooldown, 10 000 cached tokens, 3 s introspection cache.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            realm: "resource-api".into(),
            jwks: RemoteJwksOptions::default(),
            introspection: None,
            verified_cache_capacity: 10_000,
            introspection_cache_ttl: Duration::from_secs(3),
        }
    }
}

/// Why a request was not let through (RFC 6750 §3).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` header: 401 with a bare challenge (§3.1: no error code).
    #[error("no bearer token")]
    Missing,
    /// The token is invalid, expired, or revoked: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token lacks a scope: 403 `insufficient_scope`.
    #[error("insufficient scope: {0} required")]
    InsufficientScope(String),
    /// Keys or introspection are unavailable: 503.
    #[error("the issuer is unavailable: {0}")]
    Unavailable(String),
}

/// `WWW-Authenticate` and body for an error, with a realm.
pub fn challenge(error: &BearerError, realm: &str) -> Response {
    let escape = |text: &str| text.replace(['"', '\\'], "'");
    let (status, header_value, body) = match error {
        BearerError::Missing => (
            StatusCode::UNAUTHORIZED,
            format!("Bearer realm=\"{}\"", escape(realm)),
            serde_json::json!({ "error": "unauthorized", "error_description": "a bearer token is required" }),
        ),
        BearerError::InvalidToken(reason) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
                escape(realm),
                escape(reason)
            ),
            serde_json::json!({ "error": ErrorCode::InvalidToken, "error_description": reason }),
        ),
        BearerError::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                escape(realm),
                escape(scope)
            ),
            serde_json::json!({ "error": ErrorCode::InsufficientScope, "error_description": format!("scope {scope} is required"), "scope": scope }),
        ),
        BearerError::Unavailable(reason) => {
            tracing::warn!(%reason, "token validation unavailable");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": "temporarily_unavailable", "error_description": "the authorization server cannot be reached to validate tokens; retry shortly" })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&header_value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        challenge(&self, "resource-api")
    }
}

struct Discovered {
    jwks: RemoteJwks,
    introspection_endpoint: Option<String>,
}

/// Recently verified tokens by digest, in shards: an insert, and the eviction a full shard needs, locks one
/// shard, so lookups of other tokens go on and an eviction scans 1/SHARDS of the entries. (One map behind
/// one lock made every fresh token take the global write lock, and a full cache stop every reader while it
/// was swept: the fresh-token p99 in docs/benchmarks.md.)
struct VerifiedCache {
    shards: Box<[Shard]>,
    shard_capacity: usize,
}

type Shard = RwLock<HashMap<SecretDigest, Arc<AccessTokenClaims>>>;

const SHARDS: usize = 16;

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, digest: &SecretDigest) -> &Shard {
        // SHA-256 is uniform: any byte spreads tokens evenly over the shards.
        &self.shards[usize::from(digest.as_bytes()[31]) % SHARDS]
    }

    fn get(&self, digest: &SecretDigest) -> Option<Arc<AccessTokenClaims>> {
        self.shard(digest)
            .read()
            .ok()
            .and_then(|shard| shard.get(digest).cloned())
    }

    fn insert(&self, digest: SecretDigest, claims: Arc<AccessTokenClaims>, now: i64, leeway: i64) {
        let Ok(mut shard) = self.shard(&digest).write() else {
            return;
        };
        if shard.len() >= self.shard_capacity {
            shard.retain(|_, cached| now <= cached.exp + leeway);
            if shard.len() >= self.shard_capacity {
                // Still full of live tokens: start over rather than grow without bound.
                shard.clear();
            }
        }
        shard.insert(digest, claims);
    }
}

struct Inner {
    config: BearerConfig,
    http: reqwest::Client,
    clock: SharedClock,
    policy: ValidationPolicy,
    discovered: RwLock<Option<Arc<Discovered>>>,
    discovery: Mutex<Option<Instant>>,
    verified: VerifiedCache,
    introspected: RwLock<HashMap<SecretDigest, (bool, Instant)>>,
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
        let policy = ValidationPolicy::new(
            config.issuer.clone(),
            config.audience.clone(),
            clock.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                policy,
                discovered: RwLock::new(None),
                discovery: Mutex::new(None),
                verified,
                introspected: RwLock::new(HashMap::new()),
            }),
        }
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

    /// Asks the issuer whether the token is still active (RFC 7662), reusing an answer for a few seconds.
    pub async fn is_active(&self, token: &str) -> Result<bool, BearerError> {
        let credentials =
            self.inner.config.introspection.as_ref().ok_or_else(|| {
                BearerError::Unavailable("introspection is not configured".into())
            })?;
        let digest = SecretDigest::of(token);
        let ttl = self.inner.config.introspection_cache_ttl;
        if let Some((active, at)) = self
            .inner
            .introspected
            .read()
            .ok()
            .and_then(|cache| cache.get(&digest).copied())
            && at.elapsed() < ttl
        {
            return Ok(active);
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
        if let Ok(mut cache) = self.inner.introspected.write() {
            if cache.len() >= self.inner.config.verified_cache_capacity {
                cache.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            cache.insert(digest, (answer.active, Instant::now()));
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

/// The bearer token of a request: only from `Authorization: Bearer` (RFC 6750 §2.1); query strings and
/// bodies are never read.
pub fn bearer_token(parts: &Parts) -> Result<&str, BearerError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(BearerError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| BearerError::InvalidToken("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidToken(
            "the bearer token is empty".into(),
        ));
    }
    Ok(token)
}

/// A request with a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
    token: String,
}

impl Authenticated {
    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), BearerError> {
        if self.claims.scope.contains(scope) {
            Ok(())
        } else {
            Err(BearerError::InsufficientScope(scope.to_owned()))
        }
    }

    /// 401 `invalid_token` unless the issuer says the token is still active (revocation before `exp`).
    pub async fn require_active(&self, bearer: &BearerAuth) -> Result<(), BearerError> {
        if bearer.is_active(&self.token).await? {
            Ok(())
        } else {
            Err(BearerError::InvalidToken(
                "the token has been revoked".into(),
            ))
        }
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    BearerAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = BearerAuth::from_ref(state);
        let realm = bearer.config().realm.clone();
        let token = bearer_token(parts)
            .map_err(|error| challenge(&error, &realm))?
            .to_owned();
        let claims = bearer
            .verify(&token)
            .await
            .map_err(|error| challenge(&error, &realm))?;
        Ok(Self { claims, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/protected?access_token=abc");
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn claims(exp: i64) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: auth_core::token::Audience::One("resource-api".into()),
            client_id: "app".into(),
            scope: auth_core::scope::ScopeSet::empty(),
            iat: exp - 900,
            exp,
            nbf: None,
            jti: "j".into(),
            auth_time: None,
        })
    }

    #[test]
    fn the_verified_cache_stays_bounded_and_sweeps_expired_entries_first() {
        let cache = VerifiedCache::new(160);
        let now = 1_000;
        let live = SecretDigest::of("live");
        cache.insert(live, claims(now + 900), now, 60);
        // Far more expired entries than the cache holds: every full shard sweeps them, and the live
        // entry survives every sweep of its shard.
        for i in 0..10_000 {
            cache.insert(
                SecretDigest::of(&format!("old-{i}")),
                claims(now - 100),
                now,
                60,
            );
        }
        let sizes: Vec<usize> = cache
            .shards
            .iter()
            .map(|shard| shard.read().unwrap().len())
            .collect();
        assert!(
            sizes.iter().all(|size| *size <= 10),
            "bounded per shard: {sizes:?}"
        );
        assert_eq!(cache.get(&live).map(|claims| claims.exp), Some(now + 900));
        assert!(cache.get(&SecretDigest::of("never-inserted")).is_none());
    }

    #[test]
    fn only_the_authorization_header_carries_tokens() {
        assert!(
            matches!(bearer_token(&parts(None)), Err(BearerError::Missing)),
            "the query string is ignored"
        );
        assert!(matches!(
            bearer_token(&parts(Some("Basic abc"))),
            Err(BearerError::Missing)
        ));
        assert!(matches!(
            bearer_token(&parts(Some("Bearer "))),
            Err(BearerError::InvalidToken(_))
        ));
        assert_eq!(bearer_token(&parts(Some("bearer a.b.c"))).unwrap(), "a.b.c");
    }

    #[test]
    fn challenges_follow_rfc6750_section_3() {
        let missing = challenge(&BearerError::Missing, "resource-api");
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"resource-api\""
        );
        let invalid = challenge(
            &BearerError::InvalidToken("token has \"expired\"".into()),
            "resource-api",
        );
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            invalid.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"resource-api\", error=\"invalid_token\", error_description=\"token has 'expired'\""
        );
        let scope = challenge(
            &BearerError::InsufficientScope("write".into()),
            "resource-api",
        );
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            scope.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"resource-api\", error=\"insufficient_scope\", scope=\"write\""
        );
        assert_eq!(
            challenge(&BearerError::Unavailable("down".into()), "r").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c/d"), "a+b%3Ac%2Fd");
    }
}
