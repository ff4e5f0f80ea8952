//! Request parameters (RFC 6749 §3.1, §3.2): form bodies and query strings parsed strictly. A parameter
//! given twice is refused; one given without a value counts as omitted.

use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::error::ApiError;

/// Parsed parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text.
    pub fn parse(text: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(text)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`; `Ok(None)` when absent or empty; an error when repeated.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty());
        let first = values.next().map(|(_, value)| value.as_str());
        if values.next().is_some() {
            return Err(ApiError::invalid_request(format!(
                "parameter {name} was given more than once"
            )));
        }
        Ok(first)
    }

    /// The value of `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)?
            .ok_or_else(|| ApiError::invalid_request(format!("parameter {name} is required")))
    }

    /// True when `name` appears at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }
}

/// A form body of a POST (RFC 6749 §3.2: `application/x-www-form-urlencoded`), with our error format for
/// a wrong content type and 413 for bodies over the limit.
#[derive(Debug)]
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = axum::response::Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
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
            return Err(ApiError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into_response());
        }
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(Params::parse(&body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_omitted() {
        let params = Params::parse(b"grant_type=client_credentials&scope=&scope=read&x=1&x=2");
        assert_eq!(
            params.get("grant_type").unwrap(),
            Some("client_credentials")
        );
        assert_eq!(
            params.get("scope").unwrap(),
            Some("read"),
            "the empty one counts as omitted"
        );
        assert!(params.get("x").is_err());
        assert_eq!(params.get("missing").unwrap(), None);
        assert!(params.require("missing").is_err());
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let params = Params::parse(b"scope=read+write&redirect_uri=http%3A%2F%2Fa%2Fcb");
        assert_eq!(params.get("scope").unwrap(), Some("read write"));
        assert_eq!(params.get("redirect_uri").unwrap(), Some("http://a/cb"));
    }
}
