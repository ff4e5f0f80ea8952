//! The HTTP surface: one module per resource, each exporting `router()`, merged here with the middleware
//! every request goes through (request id, tracing span, metrics, timeout, 64 KiB body limit).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::state::AppState;

pub mod authorize;
pub mod client_auth;
pub mod error;
pub mod form;
pub mod health;
pub mod oauth2;
pub mod wellknown;

/// Request bodies over this are refused with 413 (SPEC §3).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let issuer_path = state.settings.issuer_path.clone();
    let routes = Router::new()
        .merge(wellknown::router(issuer_path.as_deref()))
        .merge(authorize::router())
        .merge(oauth2::router())
        .merge(health::router());
    // An issuer with a path (behind a proxy that may or may not strip it) answers under both.
    let routes = match issuer_path.as_deref() {
        Some(path) => routes.clone().nest(path, routes),
        None => routes,
    };
    service_kit::with_request_layers(
        routes.layer(middleware::from_fn(track_metrics)),
        request_timeout,
        MAX_BODY_BYTES,
    )
    .with_state(state)
}

/// Request count and latency per route (the matched pattern, so ids in paths do not explode the labels).
async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
