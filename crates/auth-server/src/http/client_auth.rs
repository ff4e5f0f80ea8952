//! Client authentication at /token, /revoke and /introspect (SPEC §3.1, RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, and `none` for public clients. Secrets are compared in constant time with their
//! stored digest; failures are throttled per client id and per address.

use std::net::IpAddr;
use std::sync::Arc;

use auth_core::secret::SecretDigest;
use auth_core::wire::ErrorCode;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use super::form::Params;
use crate::state::{AppState, CLIENT_AUTH_FAILURES_PER_CLIENT};
use crate::store::ClientRecord;

/// Failed client authentications allowed per address per window (all client ids together).
const CLIENT_AUTH_FAILURES_PER_ADDRESS: u32 = 100;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic.
    ClientSecretBasic,
    /// `client_id` + `client_secret` in the body.
    ClientSecretPost,
    /// A public client: `client_id` only.
    None,
}

/// The methods in metadata.
pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    /// Its record.
    pub client: Arc<ClientRecord>,
    /// How it authenticated.
    pub method: AuthMethod,
}

/// Decodes `Authorization: Basic` into (client_id, secret); RFC 6749 §2.3.1 form-urlencodes both first.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Result<(String, String), ()> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        let unescape = |part: &str| -> String {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    };
    Some(decode())
}

fn invalid_client(basic: bool) -> ApiError {
    ApiError::OAuth {
        code: ErrorCode::InvalidClient,
        description: "client authentication failed".into(),
        basic_challenge: basic,
    }
}

/// Authenticates the client of a request. Confidential clients must present their secret; public clients
/// present only their id (and must then prove possession some other way: PKCE at the token endpoint).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    address: IpAddr,
) -> Result<AuthenticatedClient, ApiError> {
    let basic = basic_credentials(headers);
    let body_id = params.get("client_id")?;
    let body_secret = params.get("client_secret")?;
    let (client_id, secret, method) = match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(ApiError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some(Err(())), _, None) => return Err(invalid_client(true)),
        (Some(Ok((id, secret))), body_id, None) => {
            if body_id.is_some_and(|body_id| body_id != id) {
                return Err(ApiError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, Some(secret), AuthMethod::ClientSecretBasic)
        }
        (None, Some(id), Some(secret)) => (
            id.to_owned(),
            Some(secret.to_owned()),
            AuthMethod::ClientSecretPost,
        ),
        (None, Some(id), None) => (id.to_owned(), None, AuthMethod::None),
        (None, None, _) => return Err(invalid_client(false)),
    };
    let basic_used = method == AuthMethod::ClientSecretBasic;
    let now = state.clock.now();
    let client_key = || format!("client:{client_id}");
    let address_key = || format!("client-addr:{address}");
    // With no failures on record (the normal case) this is one atomic load: no lock, no key strings.
    if !state.throttle.is_empty()
        && let Err(retry_after) = state
            .throttle
            .check(&client_key(), CLIENT_AUTH_FAILURES_PER_CLIENT, now)
            .and_then(|()| {
                state
                    .throttle
                    .check(&address_key(), CLIENT_AUTH_FAILURES_PER_ADDRESS, now)
            })
    {
        tracing::warn!(target: "audit", event = "client_auth", client_id = %client_id, source = %address, outcome = "throttled", "client authentication throttled");
        return Err(ApiError::Throttled { retry_after });
    }
    let client = state.clients.get(state.store.as_ref(), &client_id).await?;
    let authenticated = match (&client, &secret) {
        (Some(client), Some(secret)) => match &client.secret_digest {
            Some(digest) => digest.matches(secret),
            None => false,
        },
        (Some(client), None) => client.is_public,
        (None, Some(secret)) => {
            // Spend the same work as a real comparison, so unknown ids do not answer faster.
            let _ = SecretDigest::of("unknown-client").matches(secret);
            false
        }
        (None, None) => false,
    };
    match client {
        Some(client) if authenticated => {
            if !state.throttle.is_empty() {
                state.throttle.reset(&client_key());
            }
            Ok(AuthenticatedClient { client, method })
        }
        _ => {
            state.throttle.record_failure(&client_key(), now);
            state.throttle.record_failure(&address_key(), now);
            tracing::warn!(target: "audit", event = "client_auth", client_id = %client_id, source = %address, outcome = "failure", "client authentication failed");
            Err(invalid_client(basic_used))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        // "my%3Aclient:s%2Bcret" → id "my:client", secret "s+cret" (RFC 6749 §2.3.1).
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcret");
        let parsed = basic_credentials(&headers(&format!("Basic {encoded}")))
            .unwrap()
            .unwrap();
        assert_eq!(parsed, ("my:client".to_owned(), "s+cret".to_owned()));
    }

    #[test]
    fn malformed_basic_is_an_error_and_other_schemes_are_ignored() {
        assert!(basic_credentials(&headers("Basic !!!")).unwrap().is_err());
        assert!(
            basic_credentials(&headers(&format!("Basic {}", STANDARD.encode("no-colon"))))
                .unwrap()
                .is_err()
        );
        assert!(basic_credentials(&headers("Bearer abc")).is_none());
        assert!(basic_credentials(&HeaderMap::new()).is_none());
    }
}
