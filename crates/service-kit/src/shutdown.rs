//! Shutdown on signals.

use std::future::Future;

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives between the two (a supervisor stopping a server that has just
/// said it listens) is still a graceful shutdown, never the default action that kills the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (terminate, interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let received = async |signal: Option<tokio::signal::unix::Signal>| match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            };
            tokio::select! {
                () = received(terminate) => {},
                () = received(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing requests in flight");
    }
}

/// Splits one shutdown into two: the first future completes when `shutdown` does, the second right after
/// (for a second listener, such as `--metrics-listen`, that must stop with the first).
pub fn split_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stopped, mut watch) = tokio::sync::watch::channel(false);
    let first = async move {
        shutdown.await;
        let _ = stopped.send(true);
    };
    let second = async move {
        let _ = watch.wait_for(|stopped| *stopped).await;
    };
    (first, second)
}
