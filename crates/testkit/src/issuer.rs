//! [`TestIssuer`]: the real auth-server application in-process, bound to 127.0.0.1:0 (no port is released
//! and bound again), on its own database, with a clock the test moves.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::clock::{Clock, ManualClock, SystemClock};
use auth_server::config::ServeConfig;
use auth_server::startup::{Application, ApplicationConfig};
use auth_server::state::AppState;
use auth_server::store::UserRecord;
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::clients::{ClientSpec, REDIRECT_URI, TestClient};
use crate::database::{Backend, TestDatabase};

/// The password of every user the harness creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running auth-server.
pub struct TestIssuer {
    /// Where requests go: this replica's address, under the issuer's path.
    pub base: String,
    pub address: SocketAddr,
    /// Where /metrics is served with `--metrics-listen`.
    pub metrics_address: Option<SocketAddr>,
    /// Follows no redirect.
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub database_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    database: Option<Arc<TestDatabase>>,
    /// The resource server [`TestIssuer::introspect`] asks as, registered on first use.
    introspector: tokio::sync::OnceCell<TestClient>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub use crate::http::{
    OTHER_SOURCE, REQUEST_TIMEOUT, client_from, client_with, http_client, no_redirect_client,
};

/// The value of one series (`name{labels}`, exactly as exposed) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

impl TestIssuer {
    /// A server on a fresh database.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server on a fresh database, with `configure` applied to the `serve` flags.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let database = Arc::new(TestDatabase::create(&backend).await);
        let mut issuer = Self::on_database(
            &database.url,
            ManualClock::new(SystemClock.now()),
            configure,
        )
        .await;
        issuer.database = Some(database);
        issuer
    }

    /// A server on a fresh database that speaks only https, with a certificate of [`crate::tls::ca`]; its
    /// `http` client trusts that CA alone.
    pub async fn spawn_tls(backend: Backend) -> Self {
        Self::spawn_with(backend, |serve| {
            let ca = crate::tls::ca();
            serve.tls_cert = Some(ca.cert_path.clone());
            serve.tls_key = Some(ca.key_path.clone());
        })
        .await
    }

    /// Another replica: the same database, issuer identifier and clock, its own address.
    pub async fn replica(&self) -> Self {
        self.replica_with(|_| {}).await
    }

    /// Another replica, with `configure` applied to its `serve` flags too.
    pub async fn replica_with(&self, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let issuer = self.issuer().to_owned();
        let mut replica = Self::on_database(&self.database_url, self.clock.clone(), |serve| {
            serve.issuer = Some(issuer);
            configure(serve);
        })
        .await;
        replica.database = self.database.clone();
        replica
    }

    /// A server on a fresh database, serving on a listener the test bound (see [`crate::Refuser`]).
    pub async fn spawn_on_listener(backend: Backend, listener: std::net::TcpListener) -> Self {
        let database = Arc::new(TestDatabase::create(&backend).await);
        let mut issuer = Self::start(
            &database.url,
            ManualClock::new(SystemClock.now()),
            Some(listener),
            |_| {},
        )
        .await;
        issuer.database = Some(database);
        issuer
    }

    /// A server on an existing database.
    pub async fn on_database(
        database_url: &str,
        clock: ManualClock,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        Self::start(database_url, clock, None, configure).await
    }

    async fn start(
        database_url: &str,
        clock: ManualClock,
        listener: Option<std::net::TcpListener>,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let mut serve = ServeConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            config_poll_ms: 100,
            // Tests run in parallel against one PostgreSQL (max_connections 100): small pools.
            db_max_connections: 4,
            ..ServeConfig::default()
        };
        configure(&mut serve);
        let tls = serve.tls().is_some();
        let application = Application::build(ApplicationConfig {
            serve,
            database_url: database_url.to_owned(),
            key_encryption_key: None,
            clock: Arc::new(clock.clone()),
            listener,
            declaration: None,
        })
        .await
        .expect("build auth-server");
        let address = application.local_addr().expect("bound address");
        let metrics_address = application.metrics_addr();
        let state = application.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = application
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("testkit: auth-server stopped with an error: {error:#}");
            }
        });
        let issuer_path = state.settings.issuer_path.clone().unwrap_or_default();
        let (scheme, http) = if tls {
            ("https", crate::tls::ca().client())
        } else {
            ("http", no_redirect_client())
        };
        Self {
            base: format!("{scheme}://{address}{issuer_path}"),
            address,
            metrics_address,
            http,
            clock,
            state,
            database_url: database_url.to_owned(),
            stop: Some(stop),
            database: None,
            introspector: tokio::sync::OnceCell::new(),
        }
    }

    /// The answer of a `select count(*) …` on this server's database, read over a connection of its own
    /// (what the rows are, not what the server says they are).
    pub async fn count(&self, query: &str) -> i64 {
        use sqlx::Connection;
        let query = sqlx::AssertSqlSafe(query.to_owned());
        if self.database_url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("connect to the SQLite database");
            sqlx::query_scalar(query)
                .fetch_one(&mut connection)
                .await
                .expect("count")
        } else {
            let mut connection = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("connect to the PostgreSQL database");
            sqlx::query_scalar(query)
                .fetch_one(&mut connection)
                .await
                .expect("count")
        }
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.state.settings.issuer
    }

    /// An endpoint URL of this replica.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a client, as `client create` does (with the first key of its ID-token algorithm when none
    /// exists yet), and has this replica see it at once.
    pub async fn register(&self, spec: ClientSpec) -> TestClient {
        let (record, secret) = spec.record();
        let now = self.clock.now();
        let key = record.id_token_signed_response_alg.map(|alg| {
            let key = auth_core::keys::SigningKey::generate(alg).expect("a signing key");
            auth_server::keys::keyring::stored_form(&key, None, now, now).expect("stored form")
        });
        self.state
            .store
            .create_client(&record, key.as_ref(), now)
            .await
            .expect("store the client");
        if key.is_some() {
            let algs = self
                .state
                .store
                .id_token_algorithms()
                .await
                .expect("the clients' algorithms");
            self.state
                .keys
                .reload(self.state.store.as_ref(), None, &algs, now)
                .await
                .expect("reload the keys");
        }
        TestClient {
            id: record.client_id.into_string(),
            secret,
        }
    }

    /// Registers a user whose password is [`PASSWORD`]; returns the user id.
    pub async fn user(&self, username: &str) -> String {
        self.user_with_password(username, PASSWORD).await
    }

    /// Registers a user; returns the user id.
    pub async fn user_with_password(&self, username: &str, password: &str) -> String {
        self.user_with_profile(username, password, None, None, false)
            .await
    }

    /// Registers a user with OpenID Connect claims (`name`, `email`, `email_verified`), as
    /// `user create --name --email --email-verified` does; returns the user id.
    pub async fn user_with_profile(
        &self,
        username: &str,
        password: &str,
        name: Option<&str>,
        email: Option<&str>,
        email_verified: bool,
    ) -> String {
        let user = UserRecord {
            user_id: auth_core::id::UserId::generate(),
            username: username.into(),
            password_hash: self.state.hasher.hash(password).expect("hash"),
            name: name.map(str::to_owned),
            email: email.map(str::to_owned),
            email_verified,
        };
        self.state
            .store
            .create_user(&user, self.clock.now())
            .await
            .expect("store the user");
        user.user_id.into_string()
    }

    /// POST /token with Basic authentication (`none` for a public client: its id in the body).
    pub async fn post_token(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let request = self.http.post(self.url("/token"));
        let request = match &client.secret {
            Some(secret) => request.basic_auth(&client.id, Some(secret)).form(form),
            None => {
                let mut body = vec![("client_id", client.id.as_str())];
                body.extend_from_slice(form);
                request.form(&body)
            }
        };
        request.send().await.expect("POST /token")
    }

    /// POST a form with `client_secret_post` (or `none` for a public client).
    pub async fn post_form(
        &self,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut body: Vec<(&str, &str)> = vec![("client_id", client.id.as_str())];
        if let Some(secret) = client.secret.as_deref() {
            body.push(("client_secret", secret));
        }
        body.extend_from_slice(form);
        self.http
            .post(self.url(path))
            .form(&body)
            .send()
            .await
            .expect("POST")
    }

    /// A client_credentials token response (asserting 200).
    pub async fn client_credentials(&self, client: &TestClient) -> Value {
        let response = self
            .post_token(client, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("token JSON")
    }

    /// A client_credentials access token.
    pub async fn access_token(&self, client: &TestClient) -> String {
        self.client_credentials(client).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A client_credentials access token with `scope` (or the client's).
    pub async fn token(&self, client: &TestClient, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|scope| ("scope", scope)));
        let response = self.post_token(client, &form).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The introspection answer a resource server (a client registered with `--introspection`) gets
    /// (asserting 200).
    pub async fn introspect(&self, token: &str) -> Value {
        let introspector = self
            .introspector
            .get_or_init(|| async {
                let id = format!("introspector-{}", uuid::Uuid::new_v4().simple());
                self.register(ClientSpec::resource_server(&id)).await
            })
            .await;
        self.introspect_as(introspector, token).await
    }

    /// The introspection answer `client` gets (asserting 200).
    pub async fn introspect_as(&self, client: &TestClient, token: &str) -> Value {
        let response = self
            .post_form("/introspect", client, &[("token", token)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("introspection JSON")
    }

    /// Revokes a token; returns the status.
    pub async fn revoke(&self, client: &TestClient, token: &str) -> StatusCode {
        self.post_form("/revoke", client, &[("token", token)])
            .await
            .status()
    }

    /// An authorization request URL with the harness's redirect URI and `state=xyz-state`.
    pub fn authorize_url(
        &self,
        client_id: &str,
        challenge: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut url = url::Url::parse(&self.url("/authorize")).expect("url");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("response_type", "code");
            query.append_pair("client_id", client_id);
            query.append_pair("redirect_uri", REDIRECT_URI);
            query.append_pair("state", "xyz-state");
            query.append_pair("code_challenge", challenge);
            query.append_pair("code_challenge_method", "S256");
            for (name, value) in extra {
                query.append_pair(name, value);
            }
        }
        url.to_string()
    }

    /// A browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(
            self.http.clone(),
            self.url("/authorize"),
            self.issuer().to_owned(),
        )
    }

    /// A browser on another machine: it connects from `source`.
    pub fn browser_from(&self, source: std::net::IpAddr) -> Browser {
        Browser::new(
            client_from(source),
            self.url("/authorize"),
            self.issuer().to_owned(),
        )
    }

    /// A browser that sends `headers` with every request.
    pub fn browser_with(
        &self,
        source: Option<std::net::IpAddr>,
        headers: reqwest::header::HeaderMap,
    ) -> Browser {
        Browser::new(
            client_with(source, headers),
            self.url("/authorize"),
            self.issuer().to_owned(),
        )
    }

    /// The JSON document at `path` of this replica (a GET that must answer 200 with JSON).
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response
            .json()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: not JSON: {error}"))
    }

    /// The RFC 8414 metadata document.
    pub async fn metadata(&self) -> Value {
        self.get_json("/.well-known/oauth-authorization-server")
            .await
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The code flow end to end for `client` and `username` (login, consent), with the token response. No
    /// `scope`: the client's default scope (no `openid`, so no ID token; see [`TestIssuer::code_flow_for`]).
    pub async fn code_flow(&self, client: &TestClient, username: &str) -> Value {
        self.code_flow_for(client, username, None).await
    }

    /// The code flow asking for `scope` when given.
    pub async fn code_flow_for(
        &self,
        client: &TestClient,
        username: &str,
        scope: Option<&str>,
    ) -> Value {
        let (verifier, challenge) = crate::jwt::pkce();
        let mut browser = self.browser();
        let extra: Vec<(&str, &str)> = scope.map(|scope| ("scope", scope)).into_iter().collect();
        let code = browser
            .login_and_approve(
                &self.authorize_url(&client.id, &challenge, &extra),
                username,
                PASSWORD,
            )
            .await;
        let response = self
            .post_token(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("token JSON")
    }
}
