//! The [`Authenticated`] extractor: the token from `Authorization: Bearer` only (RFC 6750 §2.1), verified,
//! with the scope and activity checks a handler asks for.

use std::sync::Arc;

use auth_core::token::AccessTokenClaims;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;

use crate::error::BearerError;
use crate::validator::{BearerAuth, PresentedProof};

/// How a request presented its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP` with a `DPoP` proof header (RFC 9449 §7.1).
    Dpop,
}

/// The access token of a request and its scheme: only from the `Authorization` header (RFC 6750 §2.1,
/// RFC 9449 §7.1); query strings and bodies are never read.
pub fn presented_token(parts: &Parts) -> Result<(Scheme, &str), BearerError> {
    authorization(&parts.headers)
}

/// The token and scheme of an `Authorization` header: the one reader of the header for every service of the
/// platform. No header, or another scheme, is [`BearerError::Missing`] (RFC 6750 §3.1: a bare challenge);
/// two headers are `invalid_request`.
pub fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::InvalidToken("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(BearerError::Missing);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidToken(
            "the access token is empty".into(),
        ));
    }
    Ok((scheme, token))
}

/// The bearer token of a request (`Authorization: Bearer` only).
pub fn bearer_token(parts: &Parts) -> Result<&str, BearerError> {
    match presented_token(parts)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(BearerError::Missing),
    }
}

/// The one `DPoP` header of a request, if any (RFC 9449 §4.3 step 1): the one reader of the header for
/// every service of the platform (the token endpoint, /par, /userinfo, any resource server).
pub fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| BearerError::InvalidDpopProof("the DPoP header is not a JWT".into())),
        (Some(_), Some(_)) => Err(BearerError::InvalidDpopProof(
            "more than one DPoP header".into(),
        )),
    }
}

/// The proof a `DPoP`-scheme request must carry.
fn dpop_proof(parts: &Parts) -> Result<&str, BearerError> {
    dpop_header(&parts.headers)?.ok_or_else(|| {
        BearerError::InvalidDpopProof("the DPoP scheme needs a DPoP proof header".into())
    })
}

/// The URI a proof must name for this request: the configured public URL (or the listener's scheme and
/// `Host`) and the path, without query (RFC 9449 §4.3 step 9).
fn request_uri(
    parts: &Parts,
    public_url: Option<&str>,
    https: bool,
) -> Result<String, BearerError> {
    // Under a nested router the request's URI lost its prefix; the original one has it.
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path(), |original| original.0.path());
    match public_url {
        Some(base) => Ok(format!("{}{path}", base.trim_end_matches('/'))),
        None => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))
                .ok_or_else(|| BearerError::InvalidDpopProof("the request has no Host".into()))?;
            let scheme = if https { "https" } else { "http" };
            Ok(format!("{scheme}://{host}{path}"))
        }
    }
}

/// A request with a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
    /// How the token was presented.
    pub scheme: Scheme,
    token: String,
}

impl Authenticated {
    /// Who acts for the subject, when the token came from a token exchange (RFC 8693 §4.1): the current
    /// actor, whose own `act` names whoever acted before it (see `Actor::chain`). Authorization decisions
    /// look at the subject and the current actor only; the earlier ones are history (§4.1).
    pub fn actor(&self) -> Option<&auth_core::token::Actor> {
        self.claims.act.as_ref()
    }

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
        let refuse = |error: BearerError| bearer.refuse(&error);
        let (scheme, token) = presented_token(parts).map_err(refuse)?;
        let token = token.to_owned();
        let claims = bearer.verify(&token).await.map_err(refuse)?;
        match (scheme, &claims.cnf) {
            (Scheme::Bearer, None) => {}
            // RFC 9449 §7.2: a bound token presented as a bearer token is refused: whoever holds it is not
            // thereby its owner.
            (Scheme::Bearer, Some(_)) => {
                return Err(refuse(BearerError::WrongScheme(
                    "the token is DPoP-bound: present it with the DPoP scheme and a proof".into(),
                )));
            }
            (Scheme::Dpop, None) => {
                return Err(refuse(BearerError::WrongScheme(
                    "the token is not DPoP-bound: present it as a bearer token".into(),
                )));
            }
            (Scheme::Dpop, Some(cnf)) => {
                let proof = dpop_proof(parts).map_err(refuse)?;
                let uri = request_uri(
                    parts,
                    bearer.config().public_url.as_deref(),
                    bearer.config().https,
                )
                .map_err(refuse)?;
                bearer
                    .check_dpop_proof(&PresentedProof {
                        proof,
                        method: parts.method.as_str(),
                        uri: &uri,
                        access_token: &token,
                        bound_to: &cnf.jkt,
                        client_id: &claims.client_id,
                    })
                    .map_err(refuse)?;
            }
        }
        Ok(Self {
            claims,
            token,
            scheme,
        })
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
