//! The HTTP face of the domain's errors: OAuth errors become RFC 6749 §5.2 JSON bodies (401 with a Basic
//! challenge for `invalid_client` after Basic, RFC 6749 §5.2), throttling 429 with `Retry-After`, and every
//! server-side failure 503 or 500 with a fixed text: the cause goes to the log, never to the client.

use auth_core::wire::{ErrorCode, ErrorResponse};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::store::StoreError;

/// Result of a handler.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    /// The client tried HTTP Basic: an `invalid_client` answer carries a Basic challenge.
    pub basic_challenge: bool,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            error,
            basic_challenge: false,
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match &self.error {
            Error::OAuth(ErrorResponse {
                error: ErrorCode::InvalidClient | ErrorCode::InvalidToken,
                ..
            }) => StatusCode::UNAUTHORIZED,
            Error::OAuth(_) | Error::UseDpopNonce(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Store(StoreError::Rejected(_)) => StatusCode::BAD_REQUEST,
            Error::Store(_) | Error::NoSigningKey => StatusCode::SERVICE_UNAVAILABLE,
            Error::Signing | Error::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body: the client's error as it is, anything else as fixed text.
    pub fn body(&self) -> ErrorResponse {
        match &self.error {
            Error::OAuth(error) | Error::Forbidden(error) => error.clone(),
            Error::UseDpopNonce(_) => ErrorResponse::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the nonce of the DPoP-Nonce header",
            ),
            Error::TooMany { .. } => ErrorResponse::new(
                ErrorCode::TemporarilyUnavailable,
                "too many requests; retry later",
            ),
            Error::Store(StoreError::Rejected(_)) => ErrorResponse::new(
                ErrorCode::InvalidRequest,
                "the request carries characters or sizes this server does not accept",
            ),
            Error::Store(_) | Error::NoSigningKey => ErrorResponse::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; retry later",
            ),
            Error::Signing | Error::Random => {
                ErrorResponse::new(ErrorCode::ServerError, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(cause = %chain(&self.error), "request failed");
        }
        let body = self.body();
        let code = body.error;
        let mut response = (status, Json(body)).into_response();
        // For the metrics of the handler that answers it.
        response.extensions_mut().insert(code);
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Error::OAuth(ErrorResponse {
            error: ErrorCode::InvalidClient,
            ..
        }) = &self.error
            && self.basic_challenge
        {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"auth-server\""),
            );
        }
        if let Error::UseDpopNonce(nonce) = &self.error
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert("dpop-nonce", value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Error::TooMany { retry_after } = &self.error {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from((*retry_after).max(1)),
            );
        }
        response
    }
}

/// The error with its chain of causes, for the log.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::oauth;

    #[test]
    fn status_codes_follow_rfc6749_section_5_2() {
        let status = |error: Error| ApiError::from(error).status_code();
        assert_eq!(
            status(oauth(ErrorCode::InvalidClient, "x")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(oauth(ErrorCode::InvalidGrant, "x")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(oauth(ErrorCode::UnsupportedGrantType, "x")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Error::Store(StoreError::Rejected(sqlx::Error::RowNotFound))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Error::Store(StoreError::Corrupt("x"))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(Error::Random), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_text_never_reaches_the_body() {
        for error in [
            Error::Store(StoreError::Corrupt("secret detail 10.0.0.5")),
            Error::Signing,
            Error::Random,
        ] {
            let body = serde_json::to_string(&ApiError::from(error).body()).unwrap();
            assert!(
                !body.contains("10.0.0.5") && !body.contains("secret"),
                "{body}"
            );
        }
    }

    #[test]
    fn basic_challenge_retry_after_and_cache_control_headers() {
        let response = ApiError {
            error: oauth(ErrorCode::InvalidClient, "bad"),
            basic_challenge: true,
        }
        .into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"auth-server\""
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let unavailable = ApiError::from(Error::NoSigningKey).into_response();
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "5");
        assert!(
            unavailable
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .is_none()
        );
    }
}
