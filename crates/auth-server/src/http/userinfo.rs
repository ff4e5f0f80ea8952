//! `GET /userinfo` and `POST /userinfo` (OpenID Connect Core §5.3): the access token comes as a Bearer
//! token (RFC 6750 §2.1, or §2.2 in a form body); errors are RFC 6750 §3 challenges.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::form::OptionalForm;
use crate::openid::{self, OPENID, UserInfoRefusal};
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

fn invalid_request(description: &str) -> Response {
    challenge(
        StatusCode::BAD_REQUEST,
        Some(("invalid_request", description)),
        None,
    )
}

/// The token of the Authorization header: `Ok(None)` without one (or with another scheme), `Err` with
/// the reason for a malformed one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
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
            Ok(Some(token.trim()))
        }
        // Another scheme: as if no Bearer token were sent (RFC 6750 §3: a bare challenge).
        _ => Ok(None),
    }
}

async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Ok(token) => answer(&state, token).await,
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
        (Some(token), None) | (None, Some(token)) => answer(&state, Some(token)).await,
        (None, None) => answer(&state, None).await,
    }
}

/// The answer for a token, or the bare challenge without one.
async fn answer(state: &AppState, token: Option<&str>) -> Response {
    let Some(token) = token else {
        return challenge(StatusCode::UNAUTHORIZED, None, None);
    };
    match openid::userinfo(state, token).await {
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
