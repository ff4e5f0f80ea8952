//! The connection loop: axum on hyper, with what `axum::serve` leaves out, so that no client can hold a
//! connection, a task or a file descriptor for free:
//! - a deadline from accept until the first request's headers are in (HTTP/1 and h2c alike: hyper-util's
//!   protocol sniffing starts no timer, so a connection that never sends a byte would stay forever), and
//!   for every later HTTP/1 request head from its first byte;
//! - an idle timeout: a connection with no request in progress closes after it (HTTP/1 keep-alive and
//!   HTTP/2 alike); HTTP/2 also pings, so a peer that vanished with a stream open is noticed;
//! - a cap on open connections (clamped to what RLIMIT_NOFILE allows, after raising the soft limit to the
//!   hard one): at the cap the loop stops accepting until one closes, and a full file table (EMFILE) backs
//!   off and logs at error instead of spinning, never stopping for good;
//! - a cap per source (the TCP peer; IPv6 peers by their /64; trusted proxies exempt): a connection beyond
//!   it is closed at once, so one source cannot take every slot;
//! - shedding: from 90% of the cap, idle keep-alive connections are closed, oldest idle first, before the
//!   loop waits for a slot, so connections held open and idle never keep another source's request waiting;
//! - TLS when configured ([`crate::tls`]): the handshake falls inside the deadline from accept and holds
//!   the connection's slots like any connection, so a client that opens TCP and never finishes a handshake
//!   is closed at the header deadline;
//! - a bounded drain on shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::source::{Cidr, DEFAULT_IPV6_SOURCE_PREFIX, source_key};

/// File descriptors kept free for everything but client connections (database pool, logs, files).
const RESERVED_DESCRIPTORS: u64 = 128;

/// The limits of the connection layer.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// From accept until the first request's headers are complete; from its first byte for every later
    /// HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress closes after this.
    pub idle_timeout: Duration,
    /// Open connections at most (clamped to what the file-descriptor limit allows).
    pub max_connections: usize,
    /// How long open connections may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Open connections from one source at most (peers in `trusted_proxies` are exempt).
    pub max_connections_per_source: usize,
    /// IPv6 peers count as one source per prefix of this length.
    pub ipv6_source_prefix: u8,
    /// Proxies: a connection from one carries many clients' requests, so it is bounded by
    /// `max_connections` only.
    pub trusted_proxies: Arc<[Cidr]>,
    /// HTTPS only, with this certificate (reloaded as it changes on disk); plaintext when absent.
    pub tls: Option<crate::tls::Tls>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(30),
            max_connections_per_source: 64,
            ipv6_source_prefix: DEFAULT_IPV6_SOURCE_PREFIX,
            trusted_proxies: Arc::from(Vec::new()),
            tls: None,
        }
    }
}

/// The share of `max_connections` from which idle keep-alive connections are shed, in percent.
const SHED_FROM_PERCENT: usize = 90;

/// While every slot is taken, how often connections that went idle meanwhile are shed.
const SHED_RETRY: Duration = Duration::from_millis(100);

/// Every open connection, for the per-source counts and for shedding.
#[derive(Default)]
struct Registry {
    per_source: Mutex<HashMap<IpAddr, usize>>,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next: AtomicU64,
}

/// A connection's place in the registry: leaving it (the connection ended) frees its source's count.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    source: Option<IpAddr>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut open) = self.registry.open.lock() {
            open.remove(&self.id);
        }
        if let Some(source) = self.source
            && let Ok(mut counts) = self.registry.per_source.lock()
            && let Some(count) = counts.get_mut(&source)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&source);
            }
        }
    }
}

impl Registry {
    /// Registers a connection from `source` (`None`: exempt from the per-source cap); `None` back when that
    /// source already holds `per_source` connections.
    fn register(
        self: &Arc<Self>,
        source: Option<IpAddr>,
        per_source: usize,
        activity: &Arc<Activity>,
    ) -> Option<Registered> {
        if let Some(source) = source {
            let mut counts = self
                .per_source
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = counts.entry(source).or_insert(0);
            if *count >= per_source {
                return None;
            }
            *count += 1;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, activity.clone());
        }
        Some(Registered {
            registry: self.clone(),
            id,
            source,
        })
    }

    /// Closes idle keep-alive connections (a request answered, none in progress), oldest idle first, until at
    /// most `keep` connections remain open or no idle one is left. Returns how many were told to close.
    fn shed_idle(&self, keep: usize) -> usize {
        let Ok(open) = self.open.lock() else {
            return 0;
        };
        if open.len() <= keep {
            return 0;
        }
        let mut idle: Vec<&Arc<Activity>> = open
            .values()
            .filter(|activity| activity.is_idle_keep_alive())
            .collect();
        idle.sort_by_key(|activity| activity.idle_since());
        let shed = (open.len() - keep).min(idle.len());
        for activity in &idle[..shed] {
            activity.shed();
        }
        shed
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns how many connections fit under it, at most
/// `requested`.
pub fn connection_limit(requested: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::warn!(%error, soft, hard, "could not raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!(%error, "could not read the open-file limit");
            return requested.max(1);
        }
    };
    let fits =
        usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS).max(1)).unwrap_or(usize::MAX);
    if fits < requested {
        tracing::warn!(
            requested,
            allowed = fits,
            open_files = soft,
            "--max-connections clamped to the open-file limit"
        );
    }
    requested.clamp(1, fits)
}

/// What the request side of a connection tells its reads.
#[derive(Debug)]
struct Activity {
    /// Requests being answered.
    open: AtomicUsize,
    seen_request: AtomicBool,
    /// When the connection was accepted: `idle_since` counts from it.
    accepted: Instant,
    /// When `open` last went back to zero, in microseconds after `accepted` (an atomic, not a lock: it is
    /// read on every read that has to wait).
    idle_since: AtomicU64,
    /// The waker of a read that is waiting: woken when the connection turns idle (to arm a deadline) or is
    /// shed.
    reader: Mutex<Option<Waker>>,
    /// Told to close as soon as no request is in progress (shedding).
    shed: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            accepted: Instant::now(),
            idle_since: AtomicU64::new(0),
            reader: Mutex::new(None),
            shed: AtomicBool::new(false),
        })
    }

    /// A keep-alive connection between requests: it answered one, and none is in progress.
    fn is_idle_keep_alive(&self) -> bool {
        self.seen_request.load(Ordering::Acquire)
            && self.open.load(Ordering::Acquire) == 0
            && !self.shed.load(Ordering::Acquire)
    }

    /// Closes the connection once it has no request in progress.
    fn shed(&self) {
        self.shed.store(true, Ordering::Release);
        self.wake_reader();
    }

    fn wake_reader(&self) {
        if let Some(reader) = self.reader.lock().ok().and_then(|mut reader| reader.take()) {
            reader.wake();
        }
    }

    /// A request came in: until the guard drops, the connection is not idle.
    fn request(self: &Arc<Self>) -> RequestGuard {
        self.seen_request.store(true, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_micros(self.idle_since.load(Ordering::Acquire))
    }

    fn mark_idle(&self) {
        let since = u64::try_from(self.accepted.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.idle_since.store(since, Ordering::Release);
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.mark_idle();
            self.0.wake_reader();
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The socket, with deadlines on reading: a read that would wait past the deadline fails, which ends the
/// connection.
struct GuardedIo<S> {
    inner: S,
    activity: Arc<Activity>,
    limits: Deadlines,
    accepted: Instant,
    /// The first bytes, until we know whether this is HTTP/2 (its preface) or HTTP/1.
    prefix: Vec<u8>,
    http2: Option<bool>,
    /// HTTP/1: when the current request head began (its first byte after the connection went idle).
    head_started: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

/// The deadlines a connection's reads keep.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl<S> GuardedIo<S> {
    /// `accepted`: when the TCP connection was accepted (a TLS handshake came before this).
    fn new(inner: S, activity: Arc<Activity>, limits: Deadlines, accepted: Instant) -> Self {
        Self {
            inner,
            activity,
            limits,
            accepted,
            prefix: Vec::new(),
            http2: None,
            head_started: None,
            sleep: Box::pin(tokio::time::sleep_until(
                accepted + limits.header_read_timeout,
            )),
        }
    }

    /// The time by which the next byte must arrive, if any.
    fn deadline(&self) -> Option<Instant> {
        if self.activity.open.load(Ordering::Acquire) > 0 {
            // A request is being answered: the request timeout bounds it.
            return None;
        }
        if !self.activity.seen_request.load(Ordering::Acquire) {
            return Some(self.accepted + self.limits.header_read_timeout);
        }
        let idle_since = self.activity.idle_since();
        match (self.http2, self.head_started) {
            (Some(false), Some(started)) if started >= idle_since => {
                Some(started + self.limits.header_read_timeout)
            }
            _ => Some(idle_since + self.limits.idle_timeout),
        }
    }

    fn saw_bytes(&mut self, bytes: &[u8]) {
        if self.http2.is_none() {
            let wanted = H2_PREFACE.len() - self.prefix.len();
            self.prefix
                .extend_from_slice(&bytes[..bytes.len().min(wanted)]);
            if !H2_PREFACE.starts_with(&self.prefix) {
                self.http2 = Some(false);
            } else if self.prefix.len() == H2_PREFACE.len() {
                self.http2 = Some(true);
            }
        }
        if self.http2 == Some(false)
            && self.activity.seen_request.load(Ordering::Acquire)
            && self.activity.open.load(Ordering::Acquire) == 0
        {
            let idle_since = self.activity.idle_since();
            if self.head_started.is_none_or(|started| started < idle_since) {
                self.head_started = Some(Instant::now());
            }
        }
    }
}

impl<S> GuardedIo<S> {
    /// Keeps the waiting read's waker, so the connection can be woken when it turns idle or is shed. The
    /// lock is taken only when the waker changed (a connection's reads mostly come from one task).
    fn remember_waker(&self, cx: &Context<'_>) {
        if let Ok(mut reader) = self.activity.reader.lock()
            && !reader
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            *reader = Some(cx.waker().clone());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.shed.load(Ordering::Acquire)
            && this.activity.open.load(Ordering::Acquire) == 0
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "idle connection shed to make room",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.saw_bytes(read);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.deadline() {
                None => {
                    this.remember_waker(cx);
                    Poll::Pending
                }
                Some(deadline) => {
                    this.remember_waker(cx);
                    // The timer is moved only to an earlier deadline. A later one (the idle deadline after
                    // each request) is left to the armed timer: when it fires early, the deadline is
                    // looked at again and the timer moved then. A keep-alive connection so costs one
                    // timer update per idle period, not one per request.
                    if deadline < this.sleep.deadline() {
                        this.sleep.as_mut().reset(deadline);
                    }
                    loop {
                        match this.sleep.as_mut().poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(()) if Instant::now() >= deadline => {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "no request within the deadline",
                                )));
                            }
                            Poll::Ready(()) => this.sleep.as_mut().reset(deadline),
                        }
                    }
                }
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Is this accept error the process or system running out of descriptors or memory?
fn out_of_resources(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections.
/// Handlers see the peer address through `ConnectInfo<SocketAddr>`, as with axum's own `serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = ServeLimits {
        max_connections: connection_limit(limits.max_connections),
        ..limits
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shed_from = (limits.max_connections * SHED_FROM_PERCENT / 100).max(1);
    let registry = Arc::new(Registry::default());
    let deadlines = Deadlines {
        header_read_timeout: limits.header_read_timeout,
        idle_timeout: limits.idle_timeout,
    };
    let graceful = GracefulShutdown::new();
    let reloader = limits.tls.clone().map(|tls| tokio::spawn(tls.watch()));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    loop {
        // Near the cap, idle keep-alive connections make room before the loop waits for a slot: a new
        // client is served rather than queued behind connections that are doing nothing.
        let held = limits.max_connections - slots.available_permits();
        if held >= shed_from {
            let shed = registry.shed_idle(shed_from.saturating_sub(1));
            if shed > 0 {
                tracing::debug!(shed, held, "idle connections shed near the connection cap");
            }
        }
        // At the cap, wait for a connection to close before accepting another: further clients wait in
        // the listen backlog, and are served as soon as a slot frees.
        let acquire = slots.clone().acquire_owned();
        let mut acquire = std::pin::pin!(acquire);
        let slot = loop {
            tokio::select! {
                slot = &mut acquire => break slot.ok(),
                () = &mut shutdown => break None,
                // Connections busy when the wait began may have gone idle since: shed them then.
                () = tokio::time::sleep(SHED_RETRY) => {
                    registry.shed_idle(shed_from.saturating_sub(1));
                }
            }
        };
        let Some(slot) = slot else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = Duration::ZERO;
                    accepted
                }
                Err(error) if out_of_resources(&error) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tracing::error!(%error, backoff = ?backoff, "accept failed: out of file descriptors or memory; backing off");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let activity = Activity::new();
        let source = source_key(peer.ip(), limits.ipv6_source_prefix);
        let counted = (!limits
            .trusted_proxies
            .iter()
            .any(|proxy| proxy.contains(peer.ip())))
        .then_some(source);
        let Some(registered) =
            registry.register(counted, limits.max_connections_per_source, &activity)
        else {
            // Closed at once: the source holds its share of the slots already.
            tracing::debug!(%source, "connection refused: too many from this source");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let guard = requests.request();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await;
                drop(guard);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let watcher = graceful.watcher();
        let acceptor = limits.tls.as_ref().map(crate::tls::Tls::acceptor);
        let accepted = Instant::now();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            // The deadlines of GuardedIo cover request heads of both protocols.
            builder.http1().timer(TokioTimer::new());
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(deadlines.idle_timeout.min(Duration::from_secs(20))))
                .keep_alive_timeout(Duration::from_secs(20));
            let ended = match acceptor {
                None => {
                    let io = GuardedIo::new(stream, activity, deadlines, accepted);
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(io), service))
                        .await
                }
                Some(acceptor) => {
                    // The handshake has what is left of the header deadline; plaintext and strangers fail it.
                    let handshake = tokio::time::timeout_at(
                        accepted + deadlines.header_read_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let io = GuardedIo::new(stream, activity, deadlines, accepted);
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(io), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no TLS handshake within the deadline");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
            drop(registered);
            drop(slot);
        });
    }
    drop(listener);
    if let Some(reloader) = reloader {
        reloader.abort();
    }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;

    fn limits(header_ms: u64, idle_ms: u64, max_connections: usize) -> ServeLimits {
        ServeLimits {
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connections,
            drain_timeout: Duration::from_secs(1),
            ..ServeLimits::default()
        }
    }

    /// Reads until the server closes the connection (or 10 s pass); returns what came and when it closed.
    async fn until_closed(stream: &mut TcpStream, started: Instant) -> (String, Option<Duration>) {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let deadline = started + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => {
                    return (
                        String::from_utf8_lossy(&received).into_owned(),
                        Some(started.elapsed()),
                    );
                }
                Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
                Err(_) => return (String::from_utf8_lossy(&received).into_owned(), None),
            }
        }
    }

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

    /// The tests' client: it gives up after 30 s, so a deadlock fails its test instead of hanging the run.
    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    async fn peer(address: SocketAddr) -> String {
        http()
            .get(format!("http://{address}/peer"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_deadline() {
        let (address, _stop, _) = start(limits(300, 60_000, 64), peer_router()).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(address).await.unwrap();
        let (received, closed) = until_closed(&mut silent, started).await;
        let closed = closed.expect("still open after 10 s");
        assert!(
            closed >= Duration::from_millis(250) && closed < Duration::from_secs(3),
            "{closed:?}"
        );
        assert_eq!(received, "");
    }

    #[tokio::test]
    async fn an_h2c_connection_with_only_the_preface_and_settings_is_closed_at_the_header_deadline()
    {
        let (address, _stop, _) = start(limits(300, 60_000, 64), peer_router()).await;
        let started = Instant::now();
        let mut h2 = TcpStream::connect(address).await.unwrap();
        h2.write_all(H2_PREFACE).await.unwrap();
        // An empty SETTINGS frame (RFC 9113 §6.5): length 0, type 4, no flags, stream 0.
        h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        let (_, closed) = until_closed(&mut h2, started).await;
        let closed = closed.expect("still open after 10 s");
        assert!(closed < Duration::from_secs(3), "{closed:?}");
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_closes_after_the_idle_timeout_not_during_a_request() {
        let release = Arc::new(Notify::new());
        let router = {
            let release = release.clone();
            peer_router().route(
                "/slow",
                get(move || async move {
                    release.notified().await;
                    "done"
                }),
            )
        };
        let (address, _stop, _) = start(limits(5_000, 400, 64), router).await;
        let mut connection = TcpStream::connect(address).await.unwrap();
        // A request that takes longer than the idle timeout: the connection stays open for it.
        connection
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        release.notify_one();
        let mut buffer = [0u8; 1024];
        let read = connection.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..read]).contains("done"));
        // Then, idle, it closes after 400 ms.
        let idle = Instant::now();
        let (_, closed) = until_closed(&mut connection, idle).await;
        let closed = closed.expect("still open after 10 s");
        assert!(
            closed >= Duration::from_millis(350) && closed < Duration::from_secs(3),
            "{closed:?}"
        );
    }

    #[tokio::test]
    async fn a_second_request_head_trickled_is_cut_at_the_header_deadline() {
        let (address, _stop, _) = start(limits(500, 60_000, 64), peer_router()).await;
        let mut connection = TcpStream::connect(address).await.unwrap();
        connection
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let read = connection.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..read]).contains("127.0.0.1"));
        let started = Instant::now();
        connection
            .write_all(b"GET /peer HTTP/1.1\r\n")
            .await
            .unwrap();
        for i in 0..100 {
            if connection
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(100), connection.read(&mut buffer)).await
            {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn at_the_connection_cap_a_client_waits_and_is_served_once_a_slot_frees() {
        let (address, _stop, _) = start(limits(10_000, 60_000, 2), peer_router()).await;
        let first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        // Both slots are held by silent connections: a third client's request is not answered...
        let waiting = tokio::spawn(async move { peer(address).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served beyond the cap");
        // ...until one of them goes; the server did not stop accepting.
        drop(first);
        let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once a slot freed")
            .unwrap();
        assert_eq!(answered, "127.0.0.1");
    }

    #[tokio::test]
    async fn http2_requests_are_served_through_the_deadlines() {
        let (address, _stop, _) = start(limits(300, 400, 64), peer_router()).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .http2_prior_knowledge()
            .build()
            .unwrap();
        for _ in 0..3 {
            let response = client
                .get(format!("http://{address}/peer"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            assert_eq!(response.text().await.unwrap(), "127.0.0.1");
            // Past both deadlines between requests: an idle connection is closed and the client
            // reconnects; a new request is always served.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A connection from `source` (a loopback address) to `address`.
    async fn connect_from(source: &str, address: SocketAddr) -> io::Result<TcpStream> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.parse().unwrap(), 0))?;
        socket.connect(address).await
    }

    /// One request on `stream` (HTTP/1.1 keep-alive); the answer's text, or `None` if the server closed it.
    async fn request_on(stream: &mut TcpStream) -> Option<String> {
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => Some(String::from_utf8_lossy(&buffer[..read]).into_owned()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn one_source_holding_its_share_is_refused_more_while_another_source_is_served() {
        let limits = ServeLimits {
            max_connections_per_source: 4,
            ..limits(10_000, 60_000, 64)
        };
        let (address, _stop, _) = start(limits, peer_router()).await;
        // 127.0.0.1 holds its four connections, silent.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(connect_from("127.0.0.1", address).await.unwrap());
        }
        // A fifth from the same source is closed at once, without an answer.
        let mut fifth = connect_from("127.0.0.1", address).await.unwrap();
        assert_eq!(
            request_on(&mut fifth).await,
            None,
            "a fifth connection was served"
        );
        // Another source is served meanwhile (a generous bound, not a timing target).
        let mut other = connect_from("127.0.0.2", address).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), request_on(&mut other))
            .await
            .expect("the second source waited")
            .expect("the second source was refused");
        assert!(answer.contains("127.0.0.2"), "{answer}");
        // Once one of the four goes, the first source may connect again.
        drop(held.pop());
        let mut again = None;
        for _ in 0..50 {
            let mut stream = connect_from("127.0.0.1", address).await.unwrap();
            if let Some(answer) = request_on(&mut stream).await {
                again = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            again.is_some(),
            "the source stayed locked out after a slot freed"
        );
    }

    #[tokio::test]
    async fn trusted_proxies_are_bounded_by_the_global_cap_only() {
        let limits = ServeLimits {
            max_connections_per_source: 2,
            trusted_proxies: Arc::from(vec!["127.0.0.1".parse::<Cidr>().unwrap()]),
            ..limits(10_000, 60_000, 64)
        };
        let (address, _stop, _) = start(limits, peer_router()).await;
        let mut streams = Vec::new();
        for _ in 0..5 {
            let mut stream = connect_from("127.0.0.1", address).await.unwrap();
            assert!(
                request_on(&mut stream).await.is_some(),
                "a proxy's connection was refused"
            );
            streams.push(stream);
        }
        for _ in 0..2 {
            let mut stream = connect_from("127.0.0.3", address).await.unwrap();
            assert!(request_on(&mut stream).await.is_some());
            streams.push(stream);
        }
        let mut third = connect_from("127.0.0.3", address).await.unwrap();
        assert_eq!(
            request_on(&mut third).await,
            None,
            "an ordinary source beyond its share"
        );
    }

    #[tokio::test]
    async fn near_the_cap_idle_keep_alive_connections_make_room_oldest_first() {
        // Ten slots: from nine held, idle ones are shed before the loop waits.
        let (address, _stop, _) = start(limits(10_000, 60_000, 10), peer_router()).await;
        let mut idle = Vec::new();
        for index in 0..9 {
            let source = format!("127.0.1.{}", index + 1);
            let mut stream = connect_from(&source, address).await.unwrap();
            assert!(request_on(&mut stream).await.is_some());
            idle.push(stream);
            // Distinct idle times: the first is the oldest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A tenth, then an eleventh source are served at once, not after the 60 s idle timeout.
        for source in ["127.0.2.1", "127.0.2.2"] {
            let mut stream = connect_from(source, address).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(5), request_on(&mut stream))
                .await
                .expect("a new source waited behind idle connections")
                .expect("a new source was refused");
            assert!(answer.contains(source), "{answer}");
            idle.push(stream);
        }
        // The oldest idle connection was the one closed.
        let (_, closed) = until_closed(&mut idle[0], Instant::now()).await;
        assert!(closed.is_some(), "the oldest idle connection is still open");
        assert!(
            request_on(&mut idle[8]).await.is_some(),
            "a younger idle connection was shed before the oldest"
        );
    }

    #[test]
    fn the_connection_limit_fits_the_open_file_limit() {
        let fits = connection_limit(usize::MAX);
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert!(fits >= 1);
        assert!(fits as u64 <= soft.saturating_sub(RESERVED_DESCRIPTORS).max(1));
        assert_eq!(connection_limit(5), 5.min(fits));
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let (address, _stop, _) = start(ServeLimits::default(), peer_router()).await;
        assert_eq!(peer(address).await, "127.0.0.1");
    }

    #[tokio::test]
    async fn a_header_trickle_is_cut_off_at_the_deadline_while_others_are_served() {
        // The trickled request names a route that counts its calls: it must never be called.
        let reached = Arc::new(AtomicUsize::new(0));
        let router = {
            let reached = reached.clone();
            peer_router().route(
                "/counted",
                get(move || {
                    reached.fetch_add(1, Ordering::SeqCst);
                    async { "reached" }
                }),
            )
        };
        let (address, _stop, _) = start(limits(500, 60_000, 64), router).await;
        let trickle = testing::trickle_headers(address, "GET /counted HTTP/1.1", async {
            assert_eq!(peer(address).await, "127.0.0.1");
        })
        .await
        .unwrap();
        assert!(trickle.closed, "still open after 10 s: {trickle:?}");
        // Cut at the 500 ms deadline, not at some other limit (the trickle would go on for 10 s).
        assert!(trickle.closed_after < Duration::from_secs(3), "{trickle:?}");
        // hyper may answer 408 before closing; the handler was never called.
        assert_eq!(reached.load(Ordering::SeqCst), 0, "{trickle:?}");
        assert!(!trickle.received.contains("reached"), "{trickle:?}");
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
        let in_flight = tokio::spawn(http().get(format!("http://{address}/slow")).send());
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
