//! A round-robin balancer in front of replicas, per request.

use std::net::SocketAddr;
use std::sync::Arc;

/// A round-robin load balancer in front of replicas: each request (not each connection) goes to the next
/// one, so one client's flow crosses replicas at every step. It serves on `listener`, which the caller bound
/// first (127.0.0.1:0) so that the replicas could be given its URL as their issuer.
pub async fn start_round_robin(
    listener: std::net::TcpListener,
    replicas: Vec<SocketAddr>,
) -> RoundRobin {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Balancer {
        replicas: Vec<SocketAddr>,
        next: AtomicUsize,
        counts: Vec<AtomicUsize>,
        http: reqwest::Client,
    }
    async fn forward(State(balancer): State<Arc<Balancer>>, request: Request) -> Response {
        let index = balancer.next.fetch_add(1, Ordering::Relaxed) % balancer.replicas.len();
        balancer.counts[index].fetch_add(1, Ordering::Relaxed);
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut forwarded = balancer
            .http
            .request(
                parts.method,
                format!("http://{}{path}", balancer.replicas[index]),
            )
            .body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" && name != "connection" {
                forwarded = forwarded.header(name, value);
            }
        }
        let Ok(answer) = forwarded.send().await else {
            // The replica is down or cut: what a real balancer answers.
            return Response::builder().status(502).body(Body::empty()).unwrap();
        };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                response = response.header(name, value);
            }
        }
        response
            .body(Body::from(answer.bytes().await.unwrap()))
            .unwrap()
    }
    let balancer = Arc::new(Balancer {
        counts: replicas.iter().map(|_| AtomicUsize::new(0)).collect(),
        replicas,
        next: AtomicUsize::new(0),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(crate::http::REQUEST_TIMEOUT)
            .build()
            .unwrap(),
    });
    let router = axum::Router::new()
        .fallback(forward)
        .with_state(balancer.clone());
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    RoundRobin {
        address,
        balancer_counts: Box::new(move || {
            balancer
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect()
        }),
        task,
    }
}

/// A running [`start_round_robin`] balancer; stops when dropped.
pub struct RoundRobin {
    /// Where it listens.
    pub address: SocketAddr,
    balancer_counts: Box<dyn Fn() -> Vec<usize> + Send + Sync>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    /// Requests forwarded to each replica so far.
    pub fn counts(&self) -> Vec<usize> {
        (self.balancer_counts)()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
