//! Harness for the platform tests: an auth-server and a resource-api, each the real application on
//! 127.0.0.1:0, talking HTTP to each other and to the test like any client.

// This crate exists for tests: a failed expectation should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_core::clock::{Clock, ManualClock, SystemClock};
use auth_server::commands::client_record;
use auth_server::config::{ClientCreate, ServeConfig};
use auth_server::startup::{Application as AuthApplication, ApplicationConfig};
use auth_server::state::AppState;
use auth_server::store::UserRecord;
use resource_api::bearer::BearerAuth;
use resource_api::config::{Config as ApiConfig, LogFormat};
use resource_api::startup::Application as ApiApplication;
use serde_json::Value;

/// A free port on loopback (bound, then released).
pub fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A running authorization server.
pub struct Issuer {
    /// The issuer identifier (its own address, unless configured otherwise).
    pub base: String,
    /// Where it listens.
    pub address: SocketAddr,
    pub database_url: String,
    pub state: AppState,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    dir: Option<TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("platform-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts an auth-server (SQLite) at `address`, with `configure` applied.
pub async fn start_issuer_at(
    address: SocketAddr,
    configure: impl FnOnce(&mut ServeConfig),
) -> Issuer {
    let dir = TempDir::new();
    let database_url = format!("sqlite://{}", dir.0.join("auth.db").display());
    let mut issuer = start_on(&database_url, address, configure).await;
    issuer.dir = Some(dir);
    issuer
}

/// Another replica of `of`: the same database and issuer identifier, its own address.
pub async fn start_replica(of: &Issuer) -> Issuer {
    let issuer = of.base.clone();
    start_on(&of.database_url, free_address(), |serve| {
        serve.issuer = issuer
    })
    .await
}

async fn start_on(
    database_url: &str,
    address: SocketAddr,
    configure: impl FnOnce(&mut ServeConfig),
) -> Issuer {
    let mut serve = ServeConfig {
        listen: address,
        issuer: format!("http://{address}"),
        config_poll_ms: 100,
        // Tests run in parallel against one PostgreSQL (max_connections 100): keep each server's pool small.
        db_max_connections: 4,
        ..ServeConfig::default()
    };
    configure(&mut serve);
    let clock = ManualClock::new(SystemClock.now());
    let application = AuthApplication::build(ApplicationConfig {
        serve: serve.clone(),
        database_url: database_url.to_owned(),
        key_encryption_key: None,
        clock: Arc::new(clock.clone()),
    })
    .await
    .unwrap();
    let state = application.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    Issuer {
        base: serve.issuer,
        address,
        database_url: database_url.to_owned(),
        state,
        clock,
        http: reqwest::Client::new(),
        dir: None,
        stop: Some(stop),
    }
}

/// Starts an auth-server on a free port.
pub async fn start_issuer() -> Issuer {
    start_issuer_at(free_address(), |_| {}).await
}

impl Issuer {
    /// Registers a client; returns its secret.
    pub async fn client(
        &self,
        id: &str,
        grants: &[&str],
        scope: &str,
        audiences: &[&str],
    ) -> String {
        let create = ClientCreate {
            client_id: id.into(),
            public: false,
            secret_stdin: false,
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            redirect_uris: vec![],
            scope: scope.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            skip_consent: false,
        };
        let (record, secret) = client_record(&create, None).unwrap();
        self.state
            .store
            .create_client(&record, self.clock.now())
            .await
            .unwrap();
        secret.unwrap()
    }

    /// Registers a public PKCE client (authorization_code + refresh_token) with one redirect URI.
    pub async fn public_client(&self, id: &str, redirect_uri: &str, scope: &str) {
        let create = ClientCreate {
            client_id: id.into(),
            public: true,
            secret_stdin: false,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec![redirect_uri.into()],
            scope: scope.into(),
            audiences: vec![],
            skip_consent: false,
        };
        let (record, _) = client_record(&create, None).unwrap();
        self.state
            .store
            .create_client(&record, self.clock.now())
            .await
            .unwrap();
    }

    /// Registers a user who signs in with `password`.
    pub async fn user(&self, username: &str, password: &str) {
        let user = UserRecord {
            user_id: uuid::Uuid::new_v4().to_string(),
            username: username.into(),
            password_hash: self.state.hasher.hash(password).unwrap(),
        };
        self.state
            .store
            .create_user(&user, self.clock.now())
            .await
            .unwrap();
    }

    /// A client_credentials token.
    pub async fn token(&self, id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Revokes a token as its client.
    pub async fn revoke(&self, id: &str, secret: &str, token: &str) {
        let response = self
            .http
            .post(format!("{}/revoke", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// A running resource API.
pub struct Api {
    pub base: String,
    pub bearer: BearerAuth,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a resource API for `issuer` (a URL), optionally with introspection credentials.
pub async fn start_api(
    issuer: &str,
    introspection: Option<(&str, &str)>,
    jwks_cooldown_ms: u64,
) -> Api {
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        issuer: issuer.to_owned(),
        audience: "resource-api".into(),
        introspection_client_id: introspection.map(|(id, _)| id.to_owned()),
        jwks_cooldown_ms,
        header_read_timeout_ms: 10_000,
        log_format: LogFormat::Pretty,
    };
    let clock = ManualClock::new(SystemClock.now());
    let application = ApiApplication::build_with_introspection_secret(
        config,
        Arc::new(clock.clone()),
        introspection.map(|(_, s)| s.to_owned()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", application.local_addr().unwrap());
    let bearer = application.bearer().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    Api {
        base,
        bearer,
        clock,
        http: reqwest::Client::new(),
        stop: Some(stop),
    }
}

impl Api {
    /// A request with a bearer token.
    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Waits until the API has the issuer's keys.
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("resource-api never became ready");
    }
}

/// An issuer with a client `svc` (client_credentials, `scope`), a resource API without introspection that
/// already holds the issuer's keys, and a token of `svc` with all its scope.
pub struct Stack {
    pub issuer: Issuer,
    pub api: Api,
    pub secret: String,
    pub token: String,
}

/// Starts a [`Stack`].
pub async fn start_stack(scope: &str) -> Stack {
    let issuer = start_issuer().await;
    let secret = issuer
        .client("svc", &["client_credentials"], scope, &[])
        .await;
    let api = start_api(&issuer.base, None, 5_000).await;
    api.wait_ready().await;
    let token = issuer.token("svc", &secret, None).await;
    Stack {
        issuer,
        api,
        secret,
        token,
    }
}

/// A round-robin load balancer in front of replicas: each request (not each connection) goes to the next
/// one, so one client's flow crosses replicas at every step. Returns when it listens at `address`.
pub async fn start_round_robin(address: SocketAddr, replicas: Vec<SocketAddr>) -> RoundRobin {
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
        let answer = forwarded.send().await.unwrap();
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
            .build()
            .unwrap(),
    });
    let router = axum::Router::new()
        .fallback(forward)
        .with_state(balancer.clone());
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    RoundRobin {
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
