//! Prometheus metrics held by each service's state, never installed as the process-global recorder: two
//! services in one process (tests, embedding) never mix their figures, and no `static` is involved.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// Latency buckets, in seconds: from half a millisecond (a cached token check) to 2.5 s (a stalled database).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A service's recorder. Label values are `&'static str`, so no client input can grow the label sets.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A new, empty recorder.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        Self {
            recorder: Arc::new(recorder),
        }
    }

    /// Adds one to a counter.
    pub fn increment(&self, name: &'static str, labels: &[(&'static str, &'static str)]) {
        metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::counter!(name, labels).increment(1);
        });
    }

    /// Sets a gauge.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::gauge!(name).set(value);
        });
    }

    /// One HTTP request: count and latency per route pattern (never the raw path, whose ids would explode
    /// the label set), method and status.
    fn record_request(&self, route: String, method: String, status: u16, seconds: f64) {
        metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.to_string()).increment(1);
            metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
                .record(seconds);
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Drains histogram samples into their buckets; without it they pile up until a scrape. Call it
    /// every few seconds.
    pub fn upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }
}

/// Middleware: [`Metrics::record_request`] for every request. Use with
/// `axum::middleware::from_fn_with_state(metrics, track_requests)`.
pub async fn track_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = match request.method().as_str() {
        method @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => method,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    metrics.record_request(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: the Prometheus text.
pub fn exposition(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_recorders_keep_their_own_figures() {
        let one = Metrics::new();
        let other = Metrics::new();
        one.increment("things_total", &[("kind", "a")]);
        one.increment("things_total", &[("kind", "a")]);
        assert!(
            one.render().contains("things_total{kind=\"a\"} 2"),
            "{}",
            one.render()
        );
        assert!(!other.render().contains("things_total"));
    }
}
