//! The form body of an OAuth POST (RFC 6749 §3.2: `application/x-www-form-urlencoded`), read into
//! [`Params`] with our error format for a wrong content type and 413 for a body over the limit.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::error::invalid_request;
use crate::params::Params;

/// A parsed form body.
#[derive(Debug)]
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::from(invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ))
            .into_response());
        }
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(Params::parse(&body)))
    }
}

/// A form body that may also be absent (no body, any or no content type): a POST that carries its
/// credentials in headers only, as UserInfo requests may (OpenID Connect Core §5.3.1).
#[derive(Debug)]
pub struct OptionalForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OptionalForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_content_type = request.headers().contains_key(header::CONTENT_TYPE);
        let length_zero = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() == "0");
        if has_content_type && !length_zero {
            return OAuthForm::from_request(request, state)
                .await
                .map(|OAuthForm(params)| Self(params));
        }
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !body.is_empty() {
            return Err(ApiError::from(invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ))
            .into_response());
        }
        Ok(Self(Params::parse(b"")))
    }
}
