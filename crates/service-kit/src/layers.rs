//! The layers every request of both services goes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The request-id header: the caller's when it is well formed, else one of ours; echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// A caller's request id is used only when it is 1 to 64 of `[A-Za-z0-9._:-]`: anything else (quotes, spaces,
/// newlines, 60 kB) could forge or bloat every log line it appears in, audit lines included.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&value.len())
        && value
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// Our request ids: a random 64-bit prefix drawn once per process and a counter, so ids are unique across
/// replicas and restarts without a random draw per request.
#[derive(Debug)]
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        // A failed draw leaves the prefix from the clock and the process id: still distinct per process.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64);
            bytes = (nanos ^ u64::from(std::process::id()) << 32).to_le_bytes();
        }
        Self {
            prefix: u64::from_le_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    fn make(&self) -> HeaderValue {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let text = format!("{:016x}-{sequence:x}", self.prefix);
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Sets the request id: a caller's acceptable one is kept, anything else replaced by one of ours.
#[derive(Debug, Clone)]
struct RequestIdLayer {
    ids: std::sync::Arc<RequestIds>,
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            ids: self.ids.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct RequestIdService<S> {
    inner: S,
    ids: std::sync::Arc<RequestIds>,
}

impl<S, B> Service<axum::http::Request<B>> for RequestIdService<S>
where
    S: Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let headers = request.headers_mut();
        let mut given = headers.get_all(&REQUEST_ID).iter();
        let keep = match (given.next(), given.next()) {
            (Some(value), None) => is_acceptable_request_id(value.as_bytes()),
            _ => false,
        };
        if !keep {
            headers.insert(REQUEST_ID, self.ids.make());
        }
        self.inner.call(request)
    }
}

/// Wraps `router` in the layers every request goes through, outermost first: a request id (set before
/// anything logs), a tracing span `request{method, path, request_id}` (the path, never the query, which
/// may carry codes), the id copied to the response, a timeout answered with 408, and a body limit
/// answered with 413.
pub fn with_request_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    request_timeout: Duration,
    max_body_bytes: usize,
) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(RequestIdLayer {
                ids: std::sync::Arc::new(RequestIds::new()),
            })
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
                    })
                    // A 5xx is not an error of the layer's: the handler that answered it logged its cause,
                    // and a readiness probe's 503 while a service starts is no error at all.
                    .on_failure(
                        tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                    ),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            ))
            .layer(RequestBodyLimitLayer::new(max_body_bytes)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_taken_from_callers() {
        for good in ["abc", "0f3c-11", "a.b_c:d-e", &"x".repeat(64)] {
            assert!(is_acceptable_request_id(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a b",
            "a\"b",
            "outcome=\"success\"",
            "a\nb",
            "é",
            "a/b",
        ] {
            assert!(!is_acceptable_request_id(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn our_request_ids_are_acceptable_and_distinct() {
        let ids = RequestIds::new();
        let first = ids.make();
        let second = ids.make();
        assert_ne!(first, second);
        assert!(is_acceptable_request_id(first.as_bytes()), "{first:?}");
    }
}
