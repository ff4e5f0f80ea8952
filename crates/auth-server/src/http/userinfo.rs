//! `GET /userinfo` and `POST /userinfo` (OpenID Connect Core §5.3): the access token comes in the
//! `Authorization` header as a Bearer token (RFC 6750 §2.1) or with DPoP (RFC 9449 §7.1), or as a Bearer token
//! in a form body (RFC 6750 §2.2). The headers are read, and errors answered as RFC 6750 §3 challenges, by the
//! bearer layer's one reader and one challenge builder (`auth_bearer`), as at any resource server.

use auth_bearer::{BearerError, Scheme, authorization, challenge, dpop_header};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::form::OptionalForm;
use crate::error::Error;
use crate::state::AppState;
use crate::tokens::openid::OPENID;
use crate::tokens::userinfo::{self, Presentation, UserInfoRefusal};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo_get).post(userinfo_post))
}

/// The `realm` of our challenges.
const REALM: &str = "userinfo";

fn refuse(error: BearerError) -> Response {
    let mut response = challenge(&error, REALM);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A domain error of a proof check as the bearer layer words it (RFC 9449 §7.1).
fn proof_error(error: Error) -> BearerError {
    match error {
        Error::UseDpopNonce(nonce) => BearerError::UseDpopNonce(nonce),
        Error::OAuth(error) => {
            BearerError::InvalidDpopProof(error.error_description.unwrap_or_default())
        }
        other => BearerError::InvalidDpopProof(other.to_string()),
    }
}

/// The token of the `Authorization` header: `Ok(None)` without one (or with another scheme).
fn header_token(headers: &HeaderMap) -> Result<Option<(Scheme, &str)>, BearerError> {
    match authorization(headers) {
        Ok(token) => Ok(Some(token)),
        Err(BearerError::Missing) => Ok(None),
        Err(error) => Err(error),
    }
}

async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match header_token(&headers) {
        Ok(token) => answer(&state, &headers, "GET", token).await,
        Err(error) => refuse(error),
    }
}

async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalForm(params): OptionalForm,
) -> Response {
    let header_token = match header_token(&headers) {
        Ok(token) => token,
        Err(error) => return refuse(error),
    };
    let body_token = match params.get("access_token") {
        Ok(token) => token,
        Err(_) => {
            return refuse(BearerError::InvalidRequest(
                "access_token was given more than once".into(),
            ));
        }
    };
    match (header_token, body_token) {
        // RFC 6750 §2: one method only.
        (Some(_), Some(_)) => refuse(BearerError::InvalidRequest(
            "the token was sent in the header and in the body".into(),
        )),
        (Some(token), None) => answer(&state, &headers, "POST", Some(token)).await,
        (None, Some(token)) => {
            answer(&state, &headers, "POST", Some((Scheme::Bearer, token))).await
        }
        (None, None) => answer(&state, &headers, "POST", None).await,
    }
}

/// The answer for a token, or the bare challenge without one.
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    token: Option<(Scheme, &str)>,
) -> Response {
    let Some((scheme, token)) = token else {
        return refuse(BearerError::Missing);
    };
    let presentation = match scheme {
        Scheme::Bearer => Presentation::Bearer,
        Scheme::Dpop => match dpop_header(headers) {
            Ok(proof) => Presentation::Dpop { proof, method },
            Err(error) => return refuse(error),
        },
    };
    match userinfo::userinfo(state, token, presentation).await {
        Ok(info) => {
            let mut response = Json(info).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(UserInfoRefusal::InvalidToken) => refuse(BearerError::InvalidToken(
            "the access token is invalid, expired or revoked".into(),
        )),
        Err(UserInfoRefusal::WrongScheme) => refuse(BearerError::WrongScheme(
            "a DPoP-bound token is sent with the DPoP scheme and a proof; any other as a bearer token".into(),
        )),
        Err(UserInfoRefusal::InsufficientScope) => {
            refuse(BearerError::InsufficientScope(OPENID.into()))
        }
        Err(UserInfoRefusal::Proof(error)) => refuse(proof_error(error)),
        Err(UserInfoRefusal::Failed(error)) => {
            tracing::error!(%error, "userinfo failed");
            refuse(BearerError::Unavailable("the store failed".into()))
        }
    }
}
