//! The [`Authenticated`] extractor: the token from `Authorization: Bearer` only (RFC 6750 §2.1), verified,
//! with the scope and activity checks a handler asks for.

use std::sync::Arc;

use auth_core::token::AccessTokenClaims;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;

use crate::error::{BearerError, challenge};
use crate::validator::BearerAuth;

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
        // RFC 9449 §7.2: a token bound to a DPoP key is refused when presented as a bearer token, or anyone
        // holding it could use it. (Accepting it with a proof under the DPoP scheme is not built yet.)
        if claims.cnf.is_some() {
            return Err(challenge(
                &BearerError::InvalidToken("the token is DPoP-bound, not a bearer token".into()),
                &realm,
            ));
        }
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
}
