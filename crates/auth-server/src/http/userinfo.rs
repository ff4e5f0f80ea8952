//! `GET /userinfo` and `POST /userinfo` (OpenID Connect Core §5.3): the access token comes as a Bearer
//! token (RFC 6750 §2.1, or §2.2 in a form body); errors are RFC 6750 §3 challenges.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::form::OptionalForm;
use crate::error::Error;
use crate::openid::{self, OPENID, Presentation, UserInfoRefusal};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo_get).post(userinfo_post))
}

/// The `realm` of our challenges.
const REALM: &str = "userinfo";

/// An RFC 6750 §3 error: the challenge, and the same as JSON.
fn challenge(status: StatusCode, error: Option<(&str, &str)>, scope: Option<&str>) -> Response {
    let mut value = format!("Bearer realm=\"{REALM}\"");
    if let Some((code, description)) = error {
        value.push_str(&format!(
            ", error=\"{code}\", error_description=\"{description}\""
        ));
    }
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    let body = match error {
        Some((code, description)) => {
            serde_json::json!({ "error": code, "error_description": description })
        }
        None => serde_json::json!({}),
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An RFC 9449 §7.1 challenge for a proof that failed: `invalid_dpop_proof`, or `use_dpop_nonce` with the
/// nonce in a `DPoP-Nonce` header.
fn dpop_challenge(error: &Error) -> Response {
    let (code, description, nonce) = match error {
        Error::UseDpopNonce(nonce) => (
            "use_dpop_nonce",
            "the proof must carry the DPoP-Nonce".to_owned(),
            Some(nonce.as_str()),
        ),
        Error::OAuth(error) => (
            error.error.as_str(),
            error.error_description.clone().unwrap_or_default(),
            None,
        ),
        _ => ("invalid_dpop_proof", String::new(), None),
    };
    let description = description.replace(['"', '\\'], "'");
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "error": code, "error_description": description })),
    )
        .into_response();
    let value = format!(
        "DPoP algs=\"{}\", error=\"{code}\", error_description=\"{description}\"",
        auth_core::jose::ClientAlgorithm::names()
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = nonce
        && let Ok(value) = HeaderValue::from_str(nonce)
    {
        headers.insert("dpop-nonce", value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn invalid_request(description: &str) -> Response {
    challenge(
        StatusCode::BAD_REQUEST,
        Some(("invalid_request", description)),
        None,
    )
}

/// How the token was sent: the scheme of the Authorization header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The token of the Authorization header and its scheme (Bearer or DPoP): `Ok(None)` without one (or with
/// another scheme), `Err` with the reason for a malformed one.
fn bearer(headers: &HeaderMap) -> Result<Option<(Scheme, &str)>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some((Scheme::Bearer, token.trim())))
        }
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("dpop") && !token.trim().is_empty() =>
        {
            Ok(Some((Scheme::Dpop, token.trim())))
        }
        // Another scheme: as if no Bearer token were sent (RFC 6750 §3: a bare challenge).
        _ => Ok(None),
    }
}

async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Ok(token) => answer(&state, &headers, "GET", token).await,
        Err(why) => invalid_request(why),
    }
}

async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalForm(params): OptionalForm,
) -> Response {
    let header_token = match bearer(&headers) {
        Ok(token) => token,
        Err(why) => return invalid_request(why),
    };
    let body_token = match params.get("access_token") {
        Ok(token) => token,
        Err(_) => return invalid_request("access_token was given more than once"),
    };
    match (header_token, body_token) {
        // RFC 6750 §2: one method only.
        (Some(_), Some(_)) => invalid_request("the token was sent in the header and in the body"),
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
        return challenge(StatusCode::UNAUTHORIZED, None, None);
    };
    let presentation = match scheme {
        Scheme::Bearer => Presentation::Bearer,
        Scheme::Dpop => {
            let proof = match super::oauth2::dpop_header(headers) {
                Ok(proof) => proof,
                Err(error) => return dpop_challenge(&error),
            };
            Presentation::Dpop { proof, method }
        }
    };
    match openid::userinfo(state, token, presentation).await {
        Ok(info) => {
            let mut response = Json(info).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(UserInfoRefusal::InvalidToken) => challenge(
            StatusCode::UNAUTHORIZED,
            Some((
                "invalid_token",
                "the access token is invalid, expired or revoked",
            )),
            None,
        ),
        Err(UserInfoRefusal::InsufficientScope) => challenge(
            StatusCode::FORBIDDEN,
            Some(("insufficient_scope", "the access token lacks scope openid")),
            Some(OPENID),
        ),
        Err(UserInfoRefusal::Proof(error)) => dpop_challenge(&error),
        Err(UserInfoRefusal::Failed(error)) => {
            tracing::error!(%error, "userinfo failed");
            let mut response = challenge(
                StatusCode::SERVICE_UNAVAILABLE,
                Some((
                    "temporarily_unavailable",
                    "the service is temporarily unavailable",
                )),
                None,
            );
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
            response
        }
    }
}
