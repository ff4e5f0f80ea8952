//! The connection loop: axum on hyper, with what `axum::serve` leaves out.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use axum::routing::get;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tokio::sync::Notify;

    async fn start(
        limits: ServeLimits,
        router: Router,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop, handle)
    }

    fn peer_router() -> Router {
        Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
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
        let (address, _stop, _) = start(ServeLimits::default(), peer_router()).await;
        assert_eq!(peer(address).await, "127.0.0.1");
    }

    #[tokio::test]
    async fn a_header_trickle_is_cut_off_at_the_deadline_while_others_are_served() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(1),
        };
        let (address, _stop, _) = start(limits, peer_router()).await;
        let trickle = testing::trickle_headers(address, "GET /peer HTTP/1.1", async {
            assert_eq!(peer(address).await, "127.0.0.1");
        })
        .await
        .unwrap();
        assert!(trickle.closed, "still open after 10 s: {trickle:?}");
        // Cut at the 500 ms deadline, not at some other limit (the trickle would go on for 10 s).
        assert!(trickle.closed_after < Duration::from_secs(3), "{trickle:?}");
        assert!(trickle.reached_no_handler(), "{trickle:?}");
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
        // The handler says when it has started, then waits to be released: no sleeps, no timing.
        let started = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let router = {
            let (started, release) = (started.clone(), release.clone());
            Router::new().route(
                "/slow",
                get(move || async move {
                    started.notify_one();
                    release.notified().await;
                    "done"
                }),
            )
        };
        let (address, stop, server) = start(ServeLimits::default(), router).await;
        let in_flight = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
        started.notified().await;
        stop.send(()).unwrap();
        // The listener closes while the request is still in flight.
        let mut refused = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(address).await.is_err() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(refused, "the listener was still accepting after shutdown");
        assert!(
            !server.is_finished(),
            "the server waits for the request in flight"
        );
        release.notify_one();
        let response = in_flight.await.unwrap().unwrap();
        assert_eq!(response.text().await.unwrap(), "done");
        server.await.unwrap();
    }
}
