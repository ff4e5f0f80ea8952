//! A remote JWKS cache: discovers the `jwks_uri` from RFC 8414 metadata, honours `Cache-Control: max-age`,
//! refetches on an unknown `kid` at most once per cooldown, and lets concurrent misses share one fetch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::KeySet;
use crate::token::{self, AccessTokenClaims, TokenError, ValidationPolicy};
use crate::wire::AuthorizationServerMetadata;

/// The largest JWKS or metadata document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Tuning of a [`RemoteJwks`].
#[derive(Debug, Clone)]
pub struct RemoteJwksOptions {
    /// Minimum time between two fetches caused by unknown kids or failures (default 5 s).
    pub cooldown: Duration,
    /// Freshness when the response has no `max-age` (default 5 min).
    pub default_max_age: Duration,
    /// Upper bound on a server-sent `max-age` (default 1 day).
    pub max_max_age: Duration,
    /// Timeout of one fetch (default 5 s).
    pub fetch_timeout: Duration,
}

impl Default for RemoteJwksOptions {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(5),
            default_max_age: Duration::from_secs(300),
            max_max_age: Duration::from_secs(86_400),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Why keys could not be had from the issuer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The request failed or the server answered with an error status.
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The document did not parse.
    #[error("document at {url} is invalid: {reason}")]
    Document {
        /// What was fetched.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// RFC 8414 §3.3: the metadata's `issuer` must equal the issuer it was fetched for.
    #[error("metadata names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// What we asked for.
        expected: String,
        /// What the metadata says.
        found: String,
    },
    /// No keys have been fetched yet, and the last attempt was inside the cooldown.
    #[error("no signing keys from the issuer yet")]
    NoKeysYet,
}

/// The result of verifying against remote keys: a bad token, or no keys to judge it with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteVerifyError {
    /// The token is invalid.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The issuer's keys are not available (resource servers answer 503).
    #[error(transparent)]
    KeysUnavailable(#[from] RemoteError),
}

/// The well-known metadata URL of an issuer (RFC 8414 §3.1): the suffix goes between host and path.
pub fn metadata_url(issuer: &str) -> String {
    const SUFFIX: &str = "/.well-known/oauth-authorization-server";
    let trimmed = issuer.trim_end_matches('/');
    match trimmed.find("://").map(|scheme_end| scheme_end + 3) {
        Some(authority_start) => match trimmed[authority_start..].find('/') {
            Some(path_start) => {
                let split = authority_start + path_start;
                format!("{}{SUFFIX}{}", &trimmed[..split], &trimmed[split..])
            }
            None => format!("{trimmed}{SUFFIX}"),
        },
        None => format!("{trimmed}{SUFFIX}"),
    }
}

/// Reads `max-age` from a `Cache-Control` value; `no-store`/`no-cache` mean zero.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    let value = cache_control?;
    let mut result = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, seconds)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
        {
            result = seconds
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    result
}

struct Cached {
    keys: Arc<KeySet>,
    fresh_until: Instant,
    generation: u64,
}

struct FetchState {
    last_attempt: Option<Instant>,
}

struct Inner {
    jwks_uri: String,
    client: reqwest::Client,
    options: RemoteJwksOptions,
    cached: RwLock<Option<Cached>>,
    fetch: Mutex<FetchState>,
    fetches: AtomicU64,
}

/// A JWKS kept fresh from a URL. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("jwks_uri", &self.inner.jwks_uri)
            .finish_non_exhaustive()
    }
}

async fn fetch_document(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, Option<String>), RemoteError> {
    let fetch_error = |reason: String| RemoteError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|error| fetch_error(error.to_string()))?;
    if !response.status().is_success() {
        return Err(fetch_error(format!("status {}", response.status())));
    }
    let cache_control = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| fetch_error(error.to_string()))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(fetch_error("document too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, cache_control))
}

/// Fetches an issuer's RFC 8414 metadata and checks that it names that issuer exactly (§3.3).
pub async fn fetch_metadata(
    client: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<AuthorizationServerMetadata, RemoteError> {
    let url = metadata_url(issuer);
    let (body, _) = fetch_document(client, &url, timeout).await?;
    let metadata: AuthorizationServerMetadata =
        serde_json::from_slice(&body).map_err(|error| RemoteError::Document {
            url: url.clone(),
            reason: error.to_string(),
        })?;
    if metadata.issuer != issuer {
        return Err(RemoteError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

impl RemoteJwks {
    /// A cache of the JWKS at `jwks_uri`. Nothing is fetched until keys are first needed.
    pub fn new(
        jwks_uri: impl Into<String>,
        client: reqwest::Client,
        options: RemoteJwksOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                jwks_uri: jwks_uri.into(),
                client,
                options,
                cached: RwLock::new(None),
                fetch: Mutex::new(FetchState { last_attempt: None }),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// Reads the issuer's RFC 8414 metadata, checks its `issuer` (§3.3), and makes a cache of its `jwks_uri`.
    pub async fn discover(
        issuer: &str,
        client: reqwest::Client,
        options: RemoteJwksOptions,
    ) -> Result<Self, RemoteError> {
        let metadata = fetch_metadata(&client, issuer, options.fetch_timeout).await?;
        let jwks_uri = metadata.jwks_uri.ok_or_else(|| RemoteError::Document {
            url: metadata_url(issuer),
            reason: "no jwks_uri".into(),
        })?;
        Ok(Self::new(jwks_uri, client, options))
    }

    /// The URL the keys come from.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// How many fetches have been made (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Option<(Arc<KeySet>, bool, u64)> {
        let guard = self.inner.cached.read().ok()?;
        guard.as_ref().map(|cached| {
            (
                cached.keys.clone(),
                Instant::now() < cached.fresh_until,
                cached.generation,
            )
        })
    }

    /// The current keys, fetched or refreshed when missing or stale. When a refresh fails, stale keys are
    /// served rather than nothing (a JWKS outage should not become an API outage).
    pub async fn keys(&self) -> Result<Arc<KeySet>, RemoteError> {
        match self.snapshot() {
            Some((keys, true, _)) => Ok(keys),
            Some((keys, false, generation)) => {
                Ok(self.refresh(Some(generation)).await.unwrap_or(keys))
            }
            None => self.refresh(None).await,
        }
    }

    /// Fetches now unless another caller already did since `seen_generation`, or the cooldown since the
    /// last attempt has not passed. Only one fetch runs at a time; waiting callers take its result.
    async fn refresh(&self, seen_generation: Option<u64>) -> Result<Arc<KeySet>, RemoteError> {
        let mut state = self.inner.fetch.lock().await;
        if let Some((keys, _, generation)) = self.snapshot()
            && Some(generation) != seen_generation
        {
            return Ok(keys);
        }
        let now = Instant::now();
        if let Some(last) = state.last_attempt
            && now.duration_since(last) < self.inner.options.cooldown
        {
            return self
                .snapshot()
                .map(|(keys, _, _)| keys)
                .ok_or(RemoteError::NoKeysYet);
        }
        state.last_attempt = Some(now);
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let options = &self.inner.options;
        let url = &self.inner.jwks_uri;
        let (body, cache_control) =
            fetch_document(&self.inner.client, url, options.fetch_timeout).await?;
        let keys =
            Arc::new(
                KeySet::from_jwks_json(&body).map_err(|error| RemoteError::Document {
                    url: url.clone(),
                    reason: error.to_string(),
                })?,
            );
        let freshness = max_age(cache_control.as_deref())
            .unwrap_or(options.default_max_age)
            .min(options.max_max_age)
            .max(options.cooldown);
        if let Ok(mut cached) = self.inner.cached.write() {
            let generation = cached.as_ref().map_or(0, |cached| cached.generation + 1);
            *cached = Some(Cached {
                keys: keys.clone(),
                fresh_until: Instant::now() + freshness,
                generation,
            });
        }
        Ok(keys)
    }

    /// Verifies a token against the issuer's keys. A token naming an unknown `kid` causes one refetch (at
    /// most one per cooldown across all callers), so a key rotation at the issuer needs no restart while a
    /// flood of made-up kids cannot hammer the issuer. Malformed tokens are refused before any fetch.
    pub async fn verify(
        &self,
        token: &str,
        policy: &ValidationPolicy,
    ) -> Result<AccessTokenClaims, RemoteVerifyError> {
        let (kid, _) = token::inspect_header(token)?;
        let mut keys = self.keys().await?;
        if !keys.contains(&kid) {
            let generation = self.snapshot().map(|(_, _, generation)| generation);
            keys = self.refresh(generation).await?;
        }
        Ok(token::verify(token, &keys, policy)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::keys::{SigningAlgorithm, SigningKey};
    use crate::token::{AccessTokenClaims, Audience, issue};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A real HTTP/1.1 server on 127.0.0.1:0 serving one JWKS document (changeable), counting requests.
    /// While `up` is false it closes every connection, as a server that is down.
    struct JwksServer {
        url: String,
        body: Arc<std::sync::Mutex<String>>,
        cache_control: Arc<std::sync::Mutex<String>>,
        requests: Arc<AtomicUsize>,
        up: Arc<AtomicBool>,
    }

    /// Polls `condition` every 20 ms for at most 10 s.
    async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
        for _ in 0..500 {
            if condition().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what} did not happen within 10 s");
    }

    async fn serve(keys: &[&SigningKey], cache_control: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(std::sync::Mutex::new(document(keys)));
        let cache_control = Arc::new(std::sync::Mutex::new(cache_control.to_owned()));
        let requests = Arc::new(AtomicUsize::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let (body2, cache2, requests2, up2) = (
            body.clone(),
            cache_control.clone(),
            requests.clone(),
            up.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(socket);
                    continue;
                }
                requests2.fetch_add(1, Ordering::SeqCst);
                let body = body2.lock().unwrap().clone();
                let cache_control = cache2.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: {cache_control}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        JwksServer {
            url,
            body,
            cache_control,
            requests,
            up,
        }
    }

    fn document(keys: &[&SigningKey]) -> String {
        serde_json::to_string(&KeySet::from_signing_keys(keys.iter().copied()).to_document())
            .unwrap()
    }

    fn token(key: &SigningKey) -> String {
        let now = crate::clock::Clock::now(&SystemClock);
        let claims = AccessTokenClaims {
            iss: "http://issuer".into(),
            sub: "alice".into(),
            aud: Audience::One("api".into()),
            client_id: "app".into(),
            scope: "read".parse().unwrap(),
            iat: now,
            exp: now + 300,
            nbf: None,
            jti: "j".into(),
            auth_time: None,
            fam: None,
            cnf: None,
            act: None,
            may_act: None,
        };
        issue(&claims, key).unwrap()
    }

    fn policy() -> ValidationPolicy {
        ValidationPolicy::new("http://issuer", "api", Arc::new(SystemClock))
    }

    fn options(cooldown_ms: u64) -> RemoteJwksOptions {
        RemoteJwksOptions {
            cooldown: Duration::from_millis(cooldown_ms),
            ..RemoteJwksOptions::default()
        }
    }

    #[test]
    fn metadata_url_inserts_the_well_known_suffix_before_the_path() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://as.example/"),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://as.example/tenant/a"),
            "https://as.example/.well-known/oauth-authorization-server/tenant/a"
        );
    }

    #[test]
    fn cache_control_max_age_parsing() {
        assert_eq!(
            max_age(Some("public, max-age=600")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age(Some("Max-Age=\"30\"")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(max_age(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(Some("public")), None);
        assert_eq!(max_age(None), None);
    }

    #[tokio::test]
    async fn keys_are_cached_for_max_age_then_refetched() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let server = serve(&[&key], "public, max-age=1").await;
        let remote = RemoteJwks::new(&server.url, reqwest::Client::new(), options(100));
        for _ in 0..5 {
            remote.verify(&token(&key), &policy()).await.unwrap();
        }
        assert_eq!(
            server.requests.load(Ordering::SeqCst),
            1,
            "fresh keys are served from the cache"
        );
        // Once max-age has passed, the next verification refetches (polled, not slept on).
        eventually("the refetch of stale keys", async || {
            remote.verify(&token(&key), &policy()).await.unwrap();
            server.requests.load(Ordering::SeqCst) == 2
        })
        .await;
    }

    #[tokio::test]
    async fn rotation_is_picked_up_by_one_refetch_on_an_unknown_kid() {
        let old = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let new = SigningKey::generate(SigningAlgorithm::EdDsa).unwrap();
        let server = serve(&[&old], "max-age=3600").await;
        let remote = RemoteJwks::new(&server.url, reqwest::Client::new(), options(3_000));
        remote.verify(&token(&old), &policy()).await.unwrap();
        *server.body.lock().unwrap() = document(&[&old, &new]);
        // Inside the cooldown of the first fetch, the new kid is not fetched for.
        assert!(matches!(
            remote.verify(&token(&new), &policy()).await,
            Err(RemoteVerifyError::Token(TokenError::UnknownKey(_)))
        ));
        assert_eq!(remote.fetch_count(), 1);
        // After it, one refetch picks the new key up.
        eventually("the new key verifying", async || {
            remote.verify(&token(&new), &policy()).await.is_ok()
        })
        .await;
        assert_eq!(remote.fetch_count(), 2);
    }

    #[tokio::test]
    async fn a_flood_of_unknown_kids_causes_at_most_one_fetch_per_cooldown() {
        let known = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let server = serve(&[&known], "max-age=3600").await;
        let remote = RemoteJwks::new(&server.url, reqwest::Client::new(), options(3_000));
        remote.keys().await.unwrap();
        let flood: Vec<String> = (0..200)
            .map(|_| token(&SigningKey::generate(SigningAlgorithm::EdDsa).unwrap()))
            .collect();
        // Once the first cooldown is over, an unknown kid refetches once...
        eventually("a refetch for an unknown kid", async || {
            let stranger = SigningKey::generate(SigningAlgorithm::EdDsa).unwrap();
            let _ = remote.verify(&token(&stranger), &policy()).await;
            server.requests.load(Ordering::SeqCst) == 2
        })
        .await;
        // ...and the whole flood, inside the new cooldown, refetches never.
        let mut tasks = Vec::new();
        for token in flood {
            let remote = remote.clone();
            tasks.push(tokio::spawn(async move {
                remote.verify(&token, &policy()).await
            }));
        }
        for task in tasks {
            let result = task.await.unwrap();
            assert!(
                matches!(
                    result,
                    Err(RemoteVerifyError::Token(TokenError::UnknownKey(_)))
                ),
                "{result:?}"
            );
        }
        assert_eq!(
            server.requests.load(Ordering::SeqCst),
            2,
            "initial fetch + one refetch, none for the flood"
        );
        // The known key still verifies, from the cache.
        remote.verify(&token(&known), &policy()).await.unwrap();
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn malformed_tokens_never_cause_a_fetch() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let server = serve(&[&key], "max-age=3600").await;
        let remote = RemoteJwks::new(&server.url, reqwest::Client::new(), options(0));
        for garbage in ["", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(matches!(
                remote.verify(garbage, &policy()).await,
                Err(RemoteVerifyError::Token(_))
            ));
        }
        assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn issuer_down_is_keys_unavailable_then_recovers() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let server = serve(&[&key], "max-age=3600").await;
        server.up.store(false, Ordering::SeqCst);
        let remote = RemoteJwks::new(&server.url, reqwest::Client::new(), options(200));
        assert!(matches!(
            remote.verify(&token(&key), &policy()).await,
            Err(RemoteVerifyError::KeysUnavailable(_))
        ));
        // Inside the cooldown nothing is fetched.
        assert!(matches!(remote.keys().await, Err(RemoteError::NoKeysYet)));
        server.up.store(true, Ordering::SeqCst);
        eventually("the keys once the issuer is back", async || {
            remote.verify(&token(&key), &policy()).await.is_ok()
        })
        .await;
    }

    #[tokio::test]
    async fn discovery_checks_the_issuer() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let server = serve(&[&key], "max-age=60").await;
        let base = server.url.trim_end_matches("/jwks.json").to_owned();
        // Every path of this test server answers with its one body; serve the metadata from it.
        let metadata = serde_json::json!({ "issuer": base, "jwks_uri": server.url.clone(), "response_types_supported": ["code"] });
        *server.body.lock().unwrap() = metadata.to_string();
        *server.cache_control.lock().unwrap() = "no-store".into();
        let remote = RemoteJwks::discover(&base, reqwest::Client::new(), options(0))
            .await
            .unwrap();
        assert_eq!(remote.jwks_uri(), server.url);
        let wrong =
            RemoteJwks::discover(&format!("{base}/other"), reqwest::Client::new(), options(0))
                .await;
        assert!(matches!(wrong, Err(RemoteError::IssuerMismatch { .. })));
    }
}
