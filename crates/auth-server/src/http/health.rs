//! `GET /healthz` (liveness), `GET /readyz` (the database answers), `GET /metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// The routes of this module; /metrics too unless it is served on its own address (`--metrics-listen`).
pub fn router(with_metrics: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/healthz", get(health_live_get))
        .route("/readyz", get(health_ready_get));
    if with_metrics {
        router.merge(metrics_router())
    } else {
        router
    }
}

/// `/metrics` alone, for its own listener.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(health_metrics_get))
}

async fn health_live_get() -> &'static str {
    "ok"
}

async fn health_ready_get(State(state): State<AppState>) -> impl IntoResponse {
    let database =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    match database {
        // Ready when every algorithm in use has a key that signs (a fresh rotation's key publishes first).
        Ok(Ok(()))
            if state
                .keys
                .in_use()
                .iter()
                .all(|alg| state.keys.snapshot().signer(*alg).is_some()) =>
        {
            (StatusCode::OK, "ready")
        }
        Ok(Ok(())) => (StatusCode::SERVICE_UNAVAILABLE, "no active signing key"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out"),
    }
}

async fn health_metrics_get(State(state): State<AppState>) -> Response {
    service_kit::metrics::exposition(&state.metrics)
}
