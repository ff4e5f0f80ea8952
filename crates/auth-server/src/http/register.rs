//! `POST /register` (RFC 7591) and `GET`/`PUT`/`DELETE /register/{client_id}` (RFC 7592): HTTP in and out of
//! [`crate::clients::registrar`]. Every answer is `Cache-Control: no-store` (RFC 7591 §3.2.1).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::clients::registrar::{self, Refusal};
use crate::http::source::Source;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/register", post(register)).route(
        "/register/{client_id}",
        axum::routing::get(read).put(update).delete(delete),
    )
}

/// The Bearer token of the request, if it has one (a missing or other scheme is `None`: a bare challenge);
/// under `off` there is no endpoint at all (404), whatever the request holds.
fn bearer<'a>(state: &AppState, headers: &'a HeaderMap) -> Result<Option<&'a str>, Refusal> {
    if state.settings.registration == crate::clients::policy::RegistrationPolicy::Off {
        return Err(Refusal::Off);
    }
    match auth_bearer::authorization(headers) {
        Ok((auth_bearer::Scheme::Bearer, token)) => Ok(Some(token)),
        Ok((auth_bearer::Scheme::Dpop, _)) | Err(auth_bearer::BearerError::Missing) => Ok(None),
        Err(_) => Err(Refusal::InvalidToken),
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refused(refusal: Refusal) -> Response {
    let response = match refusal {
        Refusal::Off => StatusCode::NOT_FOUND.into_response(),
        // RFC 6750 §3.1: no credentials, a bare challenge.
        Refusal::MissingToken => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({ "error": "invalid_token", "error_description": "a Bearer token is needed" })),
        )
            .into_response(),
        Refusal::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            axum::Json(json!({ "error": "invalid_token", "error_description": "the token is unknown, expired or spent" })),
        )
            .into_response(),
        Refusal::TooMany { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.max(1).to_string())],
            axum::Json(json!({ "error": "temporarily_unavailable", "error_description": "too many registrations; retry later" })),
        )
            .into_response(),
        Refusal::Full => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": "access_denied", "error_description": "registration is closed for now" })),
        )
            .into_response(),
        Refusal::Metadata(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": error.code.as_str(), "error_description": error.description })),
        )
            .into_response(),
        Refusal::Store(error) => {
            tracing::error!(error = %error, "registration: the database failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "error": "temporarily_unavailable", "error_description": "try again later" })),
            )
                .into_response()
        }
    };
    no_store(response)
}

async fn register(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = match bearer(&state, &headers) {
        Ok(bearer) => bearer,
        Err(refusal) => return refused(refusal),
    };
    match registrar::register(&state, source, bearer, &body).await {
        Ok(answer) => no_store((StatusCode::CREATED, axum::Json(answer)).into_response()),
        Err(refusal) => refused(refusal),
    }
}

async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bearer = match bearer(&state, &headers) {
        Ok(bearer) => bearer,
        Err(refusal) => return refused(refusal),
    };
    match registrar::read(&state, &client_id, bearer).await {
        Ok(answer) => no_store(axum::Json(answer).into_response()),
        Err(refusal) => refused(refusal),
    }
}

async fn update(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = match bearer(&state, &headers) {
        Ok(bearer) => bearer,
        Err(refusal) => return refused(refusal),
    };
    match registrar::update(&state, &client_id, bearer, &body).await {
        Ok(answer) => no_store(axum::Json(answer).into_response()),
        Err(refusal) => refused(refusal),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bearer = match bearer(&state, &headers) {
        Ok(bearer) => bearer,
        Err(refusal) => return refused(refusal),
    };
    match registrar::delete(&state, &client_id, bearer).await {
        Ok(()) => no_store(StatusCode::NO_CONTENT.into_response()),
        Err(refusal) => refused(refusal),
    }
}
