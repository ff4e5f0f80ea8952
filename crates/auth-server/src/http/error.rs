//! The one error type of the HTTP layer: OAuth errors become RFC 6749 §5.2 bodies, storage failures 503,
//! and no internal text ever reaches a client.

use std::borrow::Cow;

use auth_core::wire::{ErrorCode, ErrorResponse};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::grants::GrantError;

/// Result of a handler.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// What went wrong, in terms a client may see.
#[derive(Debug)]
pub enum ApiError {
    /// An OAuth error (400, or 401 for invalid_client).
    OAuth {
        /// The code.
        code: ErrorCode,
        /// For the client developer.
        description: Cow<'static, str>,
        /// The client tried HTTP Basic: answer with a Basic challenge (RFC 6749 §5.2).
        basic_challenge: bool,
    },
    /// Too many failures from this client or address.
    Throttled {
        /// Seconds until the window ends.
        retry_after: i64,
    },
    /// The database (or the signing key) is unavailable: 503, `temporarily_unavailable`.
    Unavailable(String),
    /// A bug: 500, `server_error`.
    Internal(String),
}

impl ApiError {
    /// An OAuth error.
    pub fn oauth(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidRequest, description)
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth {
                code: ErrorCode::InvalidClient,
                ..
            }
            | Self::OAuth {
                code: ErrorCode::InvalidToken,
                ..
            } => StatusCode::UNAUTHORIZED,
            Self::OAuth { .. } => StatusCode::BAD_REQUEST,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body.
    pub fn body(&self) -> ErrorResponse {
        match self {
            Self::OAuth {
                code, description, ..
            } => ErrorResponse::new(*code, description.clone()),
            Self::Throttled { .. } => ErrorResponse::new(
                ErrorCode::InvalidClient,
                "too many failed attempts; retry later",
            ),
            Self::Unavailable(_) => ErrorResponse::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; retry later",
            ),
            Self::Internal(_) => ErrorResponse::new(ErrorCode::ServerError, "internal error"),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::OAuth { code, description } => Self::oauth(code, description),
            GrantError::Store(store) => Self::Unavailable(format!("{store:#}")),
            GrantError::NoSigningKey => Self::Unavailable("no signing key is active".into()),
            GrantError::Signing => Self::Internal("signing failed".into()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Unavailable(format!("{error:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => {
                tracing::error!(%cause, "request failed: service unavailable")
            }
            Self::Internal(cause) => tracing::error!(%cause, "request failed: internal error"),
            _ => {}
        }
        let body = self.body();
        metrics::counter!("auth_oauth_errors_total", "error" => body.error.as_str()).increment(1);
        let mut response = (self.status_code(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::OAuth {
                basic_challenge: true,
                ..
            } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"auth-server\""),
                );
            }
            Self::Throttled { retry_after } => {
                if let Ok(value) = HeaderValue::from_str(&(*retry_after).max(1).to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_rfc6749_section_5_2() {
        assert_eq!(
            ApiError::oauth(ErrorCode::InvalidClient, "x").status_code(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::oauth(ErrorCode::InvalidGrant, "x").status_code(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::oauth(ErrorCode::UnsupportedGrantType, "x").status_code(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::Throttled { retry_after: 3 }.status_code(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            ApiError::Unavailable("db down".into()).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn internal_text_never_reaches_the_body() {
        let error = ApiError::Internal("secret stack trace".into());
        assert_eq!(error.body().error, ErrorCode::ServerError);
        assert!(
            !serde_json::to_string(&error.body())
                .unwrap()
                .contains("secret")
        );
        let unavailable = ApiError::Unavailable("connection refused to 10.0.0.5".into());
        assert!(
            !serde_json::to_string(&unavailable.body())
                .unwrap()
                .contains("10.0.0.5")
        );
    }

    #[test]
    fn basic_challenge_and_cache_control_headers() {
        let response = ApiError::OAuth {
            code: ErrorCode::InvalidClient,
            description: "bad".into(),
            basic_challenge: true,
        }
        .into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"auth-server\""
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
