//! The routes of SPEC §4 and the middleware around them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use metrics_exporter_prometheus::PrometheusRecorder;
use serde::Deserialize;

use crate::bearer::{Authenticated, BearerAuth, BearerError};
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
    /// This service's own Prometheus recorder: kept in state rather than installed as the process-global
    /// recorder, so two services in one process (tests, embedding) never mix their metrics.
    pub metrics: Arc<PrometheusRecorder>,
}

impl FromRef<ApiState> for BearerAuth {
    fn from_ref(state: &ApiState) -> Self {
        state.bearer.clone()
    }
}

/// The application.
pub fn router(state: ApiState) -> Router {
    let routes = Router::new()
        .route("/protected", get(protected_get))
        .route("/items", get(items_list_get).post(items_create_post))
        .route("/items/{id}", delete(items_delete))
        .route("/healthz", get(health_live_get))
        .route("/readyz", get(health_ready_get))
        .route("/metrics", get(health_metrics_get))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics));
    service_kit::with_request_layers(routes, REQUEST_TIMEOUT, MAX_BODY_BYTES).with_state(state)
}

async fn protected_get(auth: Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "message": "Secure data", "user": auth.claims.sub }))
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
        Json(serde_json::json!({ "error": "invalid_request", "error_description": description })),
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
    auth.require_active(&state.bearer).await?;
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

async fn health_metrics_get(State(state): State<ApiState>) -> impl IntoResponse {
    let fetches = state.bearer.jwks_fetch_count() as f64;
    metrics::with_local_recorder(state.metrics.as_ref(), || {
        metrics::gauge!("resource_api_jwks_fetches").set(fetches)
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.handle().render(),
    )
}

/// Request count and latency per route.
async fn track_metrics(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::with_local_recorder(state.metrics.as_ref(), || {
        metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
        metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
            .record(elapsed);
    });
    response
}
