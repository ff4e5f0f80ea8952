//! Client authentication at /token, /revoke, /introspect and /par (RFC 6749 §2.3, RFC 7523 §2.2):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt`, and `none` for public clients. Secrets
//! are compared in constant time with their stored digest.

use std::sync::Arc;

use auth_core::secret::SecretDigest;
use auth_core::wire::ErrorCode;

use service_kit::telemetry::untrusted;

use crate::error::{Error, Result, oauth};
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::ClientRecord;

/// How a client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A public client: `client_id` only.
    None,
    /// A JWT assertion signed with the client's key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The name in metadata (RFC 8414 §2).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The methods this server accepts, in metadata order.
pub const AUTH_METHODS: [AuthMethod; 4] = [
    AuthMethod::ClientSecretBasic,
    AuthMethod::ClientSecretPost,
    AuthMethod::PrivateKeyJwt,
    AuthMethod::None,
];

/// What a request presented to authenticate its client, already read from the header or the body.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    /// The secret, for `client_secret_basic` and `client_secret_post`.
    pub secret: Option<String>,
    /// The signed JWT, for `private_key_jwt`.
    pub assertion: Option<String>,
    pub method: AuthMethod,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A client that proved who it is.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<ClientRecord>,
    pub method: AuthMethod,
}

/// `invalid_client` (RFC 6749 §5.2, HTTP 401).
pub fn invalid_client() -> Error {
    oauth(ErrorCode::InvalidClient, "client authentication failed")
}

/// Authenticates the client of a request. Confidential clients must present their secret; public clients
/// present only their id (and must then prove possession some other way: PKCE at the token endpoint).
///
/// Nothing is throttled here: secrets are 256-bit (or at least 32 characters when given), compared as
/// SHA-256 digests in constant time, so guessing is hopeless; a throttle per client id would only let anyone
/// lock a client out (a public client with a made-up secret, say), and a correct secret is always accepted.
pub async fn authenticate(
    state: &AppState,
    credentials: &ClientCredentials,
    source: RequestSource,
) -> Result<AuthenticatedClient> {
    let client_id = credentials.client_id.as_str();
    let client = state.clients.get(state.store.as_ref(), client_id).await?;
    let authenticated = match (&client, &credentials.secret) {
        (Some(client), _) if credentials.method == AuthMethod::PrivateKeyJwt => {
            match &credentials.assertion {
                Some(assertion) if client.uses_private_key_jwt() => {
                    check_assertion(state, client, assertion).await?
                }
                _ => false,
            }
        }
        // A private_key_jwt client has no secret and is not public: nothing else authenticates it.
        (Some(client), Some(secret)) => client
            .secret_digest
            .is_some_and(|digest| digest.matches(secret)),
        (Some(client), None) => client.is_public,
        (None, Some(secret)) => {
            // Spend the same work as a real comparison, so unknown ids do not answer faster.
            std::hint::black_box(SecretDigest::of("unknown-client").matches(secret));
            false
        }
        (None, None) => false,
    };
    match client {
        Some(client) if authenticated => Ok(AuthenticatedClient {
            client,
            method: credentials.method,
        }),
        _ => {
            tracing::warn!(target: "audit", event = "client_auth", client_id = &*untrusted(client_id), source = %source.address, outcome = "failure", "client authentication failed");
            Err(invalid_client())
        }
    }
}

/// Checks a `private_key_jwt` assertion (RFC 7523 §3): signed by one of the client's keys (fetched again
/// once, after the cooldown, when its `kid` is unknown), `iss` = `sub` = the client, `aud` the issuer
/// identifier alone (or the token endpoint URL with `--accept-token-endpoint-audience`), short-lived, and
/// its `jti` never seen before at any replica. `Ok(false)` for any failure of the client's making; `Err`
/// only when the store fails.
async fn check_assertion(state: &AppState, client: &ClientRecord, assertion: &str) -> Result<bool> {
    use auth_core::client_assertion::{AssertionContext, LEEWAY, verify_assertion};
    let kid = auth_core::jose::ClientJws::parse(assertion, None)
        .ok()
        .and_then(|jws| jws.header_str("kid").map(str::to_owned));
    let keys = match state.client_keys.for_client(client, kid.as_deref()).await {
        Ok(keys) => keys,
        Err(error) => {
            tracing::warn!(client_id = &*untrusted(client.client_id.as_str()), %error, "the client's keys are unavailable");
            return Ok(false);
        }
    };
    // draft-ietf-oauth-rfc7523bis §4 (updating RFC 7523 §3 and RFC 9126 §2) and FAPI 2.0: the issuer
    // identifier at every endpoint; the token endpoint URL only where the operator accepts the older form.
    let token_url = format!("{}/token", state.settings.base_url);
    let now = state.clock.now();
    let verified = match verify_assertion(
        assertion,
        &keys,
        &AssertionContext {
            client_id: client.client_id.as_str(),
            issuer: &state.settings.issuer,
            token_endpoint: state
                .settings
                .accept_token_endpoint_audience
                .then_some(token_url.as_str()),
            now,
        },
    ) {
        Ok(verified) => verified,
        Err(error) => {
            tracing::debug!(client_id = &*untrusted(client.client_id.as_str()), %error, "client assertion refused");
            return Ok(false);
        }
    };
    // RFC 7523 §3 step 7: single use, at whichever replica it arrives.
    let digest = SecretDigest::of(&format!(
        "assertion\u{0}{}\u{0}{}",
        client.client_id, verified.jti
    ));
    Ok(state
        .jtis
        .first_use(digest, verified.exp + LEEWAY + 1)
        .await?)
}
