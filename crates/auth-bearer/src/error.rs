//! Why a request was not let through, and the RFC 6750 §3 answer for each reason: the status, the
//! `WWW-Authenticate` challenge and an RFC 6749 §5.2-shaped JSON body (auth-core's wire type).

use auth_core::wire::{ErrorCode, ErrorResponse};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The `realm` of challenges unless configured otherwise.
pub const DEFAULT_REALM: &str = "resource-api";

/// Why a request was not let through (RFC 6750 §3).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BearerError {
    /// The request is malformed (two `Authorization` headers, a token in two places): 400
    /// `invalid_request` (RFC 6750 §3.1).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No `Authorization: Bearer` header: 401 with a bare challenge (RFC 6750 §3.1: no error code when
    /// the request carries no credentials).
    #[error("no bearer token")]
    Missing,
    /// The token is invalid, expired, or revoked: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token came under the wrong scheme: a DPoP-bound token as a bearer token, or an unbound one with
    /// the DPoP scheme (RFC 9449 §7.1, §7.2): 401 `invalid_token`, said in the DPoP challenge.
    #[error("invalid token for its scheme: {0}")]
    WrongScheme(String),
    /// The token lacks a scope: 403 `insufficient_scope`.
    #[error("insufficient scope: {0} required")]
    InsufficientScope(String),
    /// The DPoP proof is missing, invalid or replayed, or not by the token's key: 401 `invalid_dpop_proof`
    /// (RFC 9449 §7.1).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(String),
    /// The proof lacks this server's current nonce, which is this: 401 `use_dpop_nonce` (RFC 9449 §9).
    #[error("use the DPoP nonce")]
    UseDpopNonce(String),
    /// Keys or introspection are unavailable: 503.
    #[error("the issuer is unavailable: {0}")]
    Unavailable(String),
}

/// A quoted-string value of a challenge parameter (RFC 9110 §11.2): no quote or backslash survives.
fn quoted(text: &str) -> String {
    text.replace(['"', '\\'], "'")
}

/// The response for `error`, with `realm` in its challenge.
pub fn challenge(error: &BearerError, realm: &str) -> Response {
    challenge_with(error, realm, None)
}

/// The response for `error`, with `realm` in its challenge and, on a 401, `resource_metadata` naming the
/// resource's RFC 9728 metadata in every challenge (RFC 9728 §5.1).
pub fn challenge_with(
    error: &BearerError,
    realm: &str,
    resource_metadata: Option<&str>,
) -> Response {
    let realm = quoted(realm);
    let metadata = resource_metadata
        .map(|url| format!(", resource_metadata=\"{}\"", quoted(url)))
        .unwrap_or_default();
    let dpop = format!(
        "DPoP algs=\"{}\"",
        auth_core::jose::ClientAlgorithm::names()
    );
    let (status, challenge, body) = match error {
        BearerError::InvalidRequest(reason) => (
            StatusCode::BAD_REQUEST,
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{}\"",
                quoted(reason)
            ),
            Some(ErrorResponse::new(
                ErrorCode::InvalidRequest,
                reason.clone(),
            )),
        ),
        BearerError::Missing => (
            StatusCode::UNAUTHORIZED,
            format!("Bearer realm=\"{realm}\""),
            None,
        ),
        BearerError::InvalidToken(reason) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(reason)
            ),
            Some(ErrorResponse::new(ErrorCode::InvalidToken, reason.clone())),
        ),
        BearerError::WrongScheme(reason) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "{dpop}, error=\"invalid_token\", error_description=\"{}\"",
                quoted(reason)
            ),
            Some(ErrorResponse::new(ErrorCode::InvalidToken, reason.clone())),
        ),
        BearerError::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                quoted(scope)
            ),
            Some(ErrorResponse::new(
                ErrorCode::InsufficientScope,
                format!("scope {scope} is required"),
            )),
        ),
        BearerError::InvalidDpopProof(reason) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "{dpop}, error=\"invalid_dpop_proof\", error_description=\"{}\"",
                quoted(reason)
            ),
            Some(ErrorResponse::new(
                ErrorCode::InvalidDpopProof,
                reason.clone(),
            )),
        ),
        BearerError::UseDpopNonce(_) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "{dpop}, error=\"use_dpop_nonce\", error_description=\"the proof must carry the DPoP-Nonce\""
            ),
            Some(ErrorResponse::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the nonce of the DPoP-Nonce header",
            )),
        ),
        BearerError::Unavailable(reason) => {
            tracing::warn!(%reason, "token validation unavailable");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorResponse::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the authorization server cannot be reached to validate tokens; retry shortly",
                )),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
    };
    let mut response = match body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    };
    let unauthorized = status == StatusCode::UNAUTHORIZED;
    let with_metadata = |challenge: String| {
        if unauthorized {
            format!("{challenge}{metadata}")
        } else {
            challenge
        }
    };
    let challenge = with_metadata(challenge);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    // RFC 9449 §7.1: a resource that accepts both schemes may challenge with both: the scheme that failed
    // first, the other after it.
    let other = match error {
        BearerError::Missing | BearerError::InvalidToken(_) => Some(dpop),
        BearerError::WrongScheme(_) => Some(format!("Bearer realm=\"{realm}\"")),
        _ => None,
    };
    if let Some(other) = other.map(with_metadata)
        && let Ok(value) = HeaderValue::from_str(&other)
    {
        headers.append(header::WWW_AUTHENTICATE, value);
    }
    if let BearerError::UseDpopNonce(nonce) = error
        && let Ok(value) = HeaderValue::from_str(nonce)
    {
        headers.insert("dpop-nonce", value);
    }
    response
}

impl IntoResponse for BearerError {
    /// With the default realm; the extractor answers with the configured one.
    fn into_response(self) -> Response {
        challenge(&self, DEFAULT_REALM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // RFC 9728 §5.1: every 401 challenge names the metadata; a 403 needs no discovery.
        let url = "https://api.example/.well-known/oauth-protected-resource";
        let missing = challenge_with(&BearerError::Missing, "api", Some(url));
        let values: Vec<_> = missing
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            values[0],
            format!("Bearer realm=\"api\", resource_metadata=\"{url}\"")
        );
        assert!(values[1].starts_with("DPoP algs="), "{values:?}");
        assert!(
            values[1].ends_with(&format!(", resource_metadata=\"{url}\"")),
            "{values:?}"
        );
        let scope = challenge_with(
            &BearerError::InsufficientScope("write".into()),
            "api",
            Some(url),
        );
        assert!(
            !scope.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("resource_metadata")
        );
        let unavailable = challenge(&BearerError::Unavailable("down".into()), "r");
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "5");
    }
}
