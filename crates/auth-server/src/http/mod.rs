//! The HTTP surface: one module per resource, each exporting `router()`, merged here with the layers every
//! request goes through (request id, tracing span, metrics, timeout, 64 KiB body limit). Handlers map HTTP
//! to the domain modules and back; they make no decision of their own and never touch the store.

use std::time::Duration;

use axum::Router;
use axum::middleware;

use crate::state::AppState;

pub mod authorize;
pub mod cookies;
pub mod credentials;
pub mod device;
pub mod error;
pub mod form;
pub mod health;
pub mod logout;
pub mod oauth2;
pub mod outcome;
pub mod pages;
pub mod register;
pub mod source;
pub mod userinfo;
pub mod wellknown;

/// Request bodies over this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application; /metrics on the same listener when `metrics_here`.
pub fn router(state: AppState, request_timeout: Duration, metrics_here: bool) -> Router {
    let issuer_path = state.settings.issuer_path.clone();
    let routes = Router::new()
        .merge(wellknown::router(issuer_path.as_deref()))
        .merge(authorize::router())
        .merge(oauth2::router())
        .merge(device::router())
        .merge(userinfo::router())
        .merge(logout::router())
        .merge(register::router())
        .merge(pages::router())
        .merge(health::router(metrics_here));
    // An issuer with a path (behind a proxy that may or may not strip it) answers under both.
    let routes = match issuer_path.as_deref() {
        Some(path) => routes.clone().nest(path, routes),
        None => routes,
    };
    service_kit::with_request_layers(
        routes.layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            service_kit::metrics::track_requests,
        )),
        request_timeout,
        MAX_BODY_BYTES,
    )
    .with_state(state)
}
