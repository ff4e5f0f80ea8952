//! The routes of the demo API (`/protected`, `/items`, health, metrics) and the layers around them.

use std::sync::Arc;
use std::time::Duration;

use auth_bearer::{Authenticated, BearerAuth, BearerError};
use auth_core::wire::{ErrorCode, ErrorResponse};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use service_kit::metrics::Metrics;

use crate::items::ItemStore;

/// Slower requests get 408; larger bodies 413.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Token validation.
    pub bearer: BearerAuth,
    /// The items.
    pub items: Arc<ItemStore>,
    /// This service's own Prometheus recorder.
    pub metrics: Metrics,
}

impl FromRef<ApiState> for BearerAuth {
    fn from_ref(state: &ApiState) -> Self {
        state.bearer.clone()
    }
}

/// The application; /metrics on the same listener when `metrics_here`.
pub fn router(state: ApiState, metrics_here: bool) -> Router {
    let mut routes = Router::new()
        .route("/protected", get(protected_get))
        .route("/items", get(items_list_get).post(items_create_post))
        .route("/items/{id}", delete(items_delete))
        .route("/healthz", get(health_live_get))
        .route("/readyz", get(health_ready_get));
    if metrics_here {
        routes = routes.route("/metrics", get(health_metrics_get));
    }
    // RFC 9728: where a client that got a 401 learns who issues tokens for this API.
    let routes = routes.merge(state.bearer.metadata_routes());
    let routes = routes.layer(middleware::from_fn_with_state(
        state.metrics.clone(),
        service_kit::metrics::track_requests,
    ));
    service_kit::with_request_layers(routes, REQUEST_TIMEOUT, MAX_BODY_BYTES).with_state(state)
}

/// `/metrics` alone, for its own listener (`--metrics-listen`).
pub fn metrics_router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(health_metrics_get))
        .with_state(state)
}

/// The answer of `/protected`: the subject, and who acts for it on an exchanged token (RFC 8693 §4.1).
#[derive(serde::Serialize)]
struct Protected<'a> {
    message: &'static str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a auth_core::token::Actor>,
}

async fn protected_get(auth: Authenticated) -> Response {
    Json(Protected {
        message: "Secure data",
        user: &auth.claims.sub,
        act: auth.actor(),
    })
    .into_response()
}

async fn items_list_get(
    State(state): State<ApiState>,
    auth: Authenticated,
) -> Result<Response, BearerError> {
    auth.require_scope("read")?;
    Ok(Json(state.items.list()).into_response())
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

fn bad_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(ErrorResponse::new(ErrorCode::InvalidRequest, description)),
    )
        .into_response()
}

async fn items_create_post(
    State(state): State<ApiState>,
    auth: Authenticated,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<Response, BearerError> {
    auth.require_scope("write")?;
    let Json(new) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return Ok(bad_request(&format!(
                "the body must be JSON {{\"name\": …}}: {}",
                rejection.body_text()
            )));
        }
    };
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Ok(bad_request("name must be 1 to 200 characters"));
    }
    let item = state.items.create(name.to_owned());
    let mut response = (StatusCode::CREATED, Json(&item)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/items/{}", item.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn items_delete(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, BearerError> {
    auth.require_scope("write")?;
    // A sensitive route: a token revoked before its exp must fail here (RFC 7662).
    if let Err(error) = auth.require_active(&state.bearer).await {
        // With the configured realm and the metadata URL, as the extractor's own refusals.
        return Ok(state.bearer.refuse(&error));
    }
    let Ok(id) = id.parse::<u64>() else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    Ok(if state.items.delete(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response())
}

async fn health_live_get() -> &'static str {
    "ok"
}

async fn health_ready_get(State(state): State<ApiState>) -> Response {
    if state.bearer.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no keys from the issuer yet",
        )
            .into_response()
    }
}

async fn health_metrics_get(State(state): State<ApiState>) -> Response {
    state.metrics.set_gauge(
        "resource_api_jwks_fetches",
        state.bearer.jwks_fetch_count() as f64,
    );
    service_kit::metrics::exposition(&state.metrics)
}
