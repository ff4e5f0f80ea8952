//! What auth-server and resource-api share below their applications: the HTTP connection loop and shutdown
//! on signals. It knows no OAuth and no storage.
//!
//! [`with_request_layers`] puts around a router what every request of both services goes through: a
//! request id, a tracing span carrying it, a timeout and a body limit.
//!
//! [`serve`] runs an axum router on hyper with what `axum::serve` leaves out: a deadline for reading a
//! request's headers (a client trickling header bytes, "slowloris", is cut off instead of holding a
//! connection and a task forever) and a bounded drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The request-id header: the caller's, or a new UUID; echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
            }))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            ))
            .layer(RequestBodyLimitLayer::new(max_body_bytes)),
    )
}

/// Timeouts of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// From the first byte of a request until its headers are complete.
    pub header_read_timeout: Duration,
    /// How long open connections may take to finish after shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections.
/// Handlers see the peer address through `ConnectInfo<SocketAddr>`, as with axum's own `serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(timeout = ?limits.drain_timeout, "connections still open after the drain timeout; closing");
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

/// For the tests of services built on [`serve`].
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What a slow-header client saw.
    pub struct Trickle {
        /// The server closed the connection within the 10 s the client kept trickling.
        pub closed: bool,
        /// Whatever the server sent before closing (hyper may answer 408).
        pub received: String,
    }

    /// Connects to `address`, sends `request_line` and a Host header, then one more header line every
    /// 100 ms for up to 10 s, never ending the headers; after the third line it awaits `meanwhile` (a
    /// well-behaved client's request). Stops as soon as the server closes the connection.
    pub async fn trickle_headers(
        address: SocketAddr,
        request_line: &str,
        meanwhile: impl Future<Output = ()>,
    ) -> std::io::Result<Trickle> {
        let mut slow = tokio::net::TcpStream::connect(address).await?;
        slow.write_all(format!("{request_line}\r\nHost: x\r\n").as_bytes())
            .await?;
        let mut meanwhile = Some(meanwhile);
        let mut received = Vec::new();
        for i in 0..100 {
            if slow
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return Ok(Trickle::new(true, &received));
            }
            let mut buffer = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => return Ok(Trickle::new(true, &received)),
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            if i == 2
                && let Some(meanwhile) = meanwhile.take()
            {
                meanwhile.await;
            }
        }
        Ok(Trickle::new(false, &received))
    }

    impl Trickle {
        fn new(closed: bool, received: &[u8]) -> Self {
            Self {
                closed,
                received: String::from_utf8_lossy(received).into_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;

    async fn start(
        limits: ServeLimits,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop, handle)
    }

    async fn peer(address: SocketAddr) -> String {
        reqwest::get(format!("http://{address}/peer"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let (address, _stop, _) = start(ServeLimits::default()).await;
        assert_eq!(peer(address).await, "127.0.0.1");
    }

    #[tokio::test]
    async fn a_header_trickle_is_cut_off_while_others_are_served() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(1),
        };
        let (address, _stop, _) = start(limits).await;
        let trickle = testing::trickle_headers(address, "GET /peer HTTP/1.1", async {
            assert_eq!(peer(address).await, "127.0.0.1");
        })
        .await
        .unwrap();
        assert!(
            trickle.closed,
            "the slow connection was still open after 10 s"
        );
        // Whatever hyper answered (a 408), the request never reached the router.
        assert!(
            !trickle.received.contains("127.0.0.1"),
            "{}",
            trickle.received
        );
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, ServeLimits::default(), async {
            let _ = stopped.await;
        }));
        let in_flight = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let response = in_flight.await.unwrap().unwrap();
        assert_eq!(response.text().await.unwrap(), "done");
        server.await.unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}
