//! Test harness: real servers on 127.0.0.1:0, each on its own database (a fresh SQLite file, or a fresh
//! PostgreSQL database created from `DATABASE_URL` and dropped afterwards), driven by reqwest.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::clock::{Clock, ManualClock, SystemClock};
use auth_core::pkce::{generate_verifier, s256_challenge};
use auth_server::commands::client_record;
use auth_server::config::{ClientCreate, ServeConfig};
use auth_server::startup::{Application, ApplicationConfig};
use auth_server::state::AppState;
use auth_server::store::UserRecord;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from `DATABASE_URL`, or `None` (with a printed reason) when it is not set.
    pub fn postgres() -> Option<Self> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => Some(Self::Postgres(url)),
            _ => {
                eprintln!(
                    "SKIPPED (PostgreSQL half): DATABASE_URL is not set to a postgres:// URL"
                );
                None
            }
        }
    }
}

/// Writes each behaviour test as `async fn name(backend: Backend)` once, and runs it on both back-ends.
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$test(backend).await
                    }
                }
            )+
        }
    };
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile_dir::TempDir>,
    drop_postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile_dir::TempDir::new();
                let url = format!("sqlite://{}", dir.path().join("auth.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    drop_postgres: None,
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
                let (mut admin, _) = connect_postgres(admin_url).await;
                sqlx::Executor::execute(
                    &mut admin,
                    sqlx::AssertSqlSafe(format!("create database {name}")),
                )
                .await
                .expect("create test database");
                let url = replace_database(admin_url, &name);
                Self {
                    url,
                    _dir: None,
                    drop_postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }
}

async fn connect_postgres(url: &str) -> (sqlx::PgConnection, ()) {
    use sqlx::Connection;
    (
        sqlx::PgConnection::connect(url)
            .await
            .expect("connect to PostgreSQL (DATABASE_URL)"),
        (),
    )
}

fn replace_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.drop_postgres.take() {
            // Drop runs outside async: use a thread with its own runtime, and wait for it.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::Executor::execute(
                            &mut admin,
                            sqlx::AssertSqlSafe(format!(
                                "drop database if exists {name} with (force)"
                            )),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A minimal temporary directory (removed on drop), to avoid another dependency.
pub mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "auth-server-test-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _db: Option<Arc<TestDatabase>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// A registered client and its secret.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// Starts a server on a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server on a fresh database, with `configure` applied to the serve flags.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let db = Arc::new(TestDatabase::create(&backend).await);
    let mut app = spawn_on(&db.url, ManualClock::new(SystemClock.now()), configure).await;
    app._db = Some(db);
    app
}

/// A second replica of `app`: same database, same issuer, same clock.
pub async fn spawn_replica(app: &TestApp) -> TestApp {
    let issuer = app.state.settings.issuer.clone();
    spawn_on(&app.database_url, app.clock.clone(), |serve| {
        serve.issuer = issuer
    })
    .await
}

/// Starts a server on an existing database.
pub async fn spawn_on(
    database_url: &str,
    clock: ManualClock,
    configure: impl FnOnce(&mut ServeConfig),
) -> TestApp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let mut serve = ServeConfig {
        listen: address,
        issuer: format!("http://{address}"),
        config_poll_ms: 100,
        // Tests run in parallel against one PostgreSQL (max_connections 100): keep each server's pool small.
        db_max_connections: 4,
        ..ServeConfig::default()
    };
    configure(&mut serve);
    let application = Application::build(ApplicationConfig {
        serve: serve.clone(),
        database_url: database_url.to_owned(),
        key_encryption_key: None,
        clock: Arc::new(clock.clone()),
    })
    .await
    .expect("build application");
    let state = application.state().clone();
    let (shutdown, stopped) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        let _ = application
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    // Requests go to this replica's own address, under the issuer's path (replicas share one issuer).
    let issuer_path = state.settings.issuer_path.clone().unwrap_or_default();
    TestApp {
        base: format!("http://{address}{issuer_path}"),
        address,
        http: no_redirect_client(),
        clock,
        state,
        database_url: database_url.to_owned(),
        shutdown: Some(shutdown),
        handle: Some(handle),
        _db: None,
    }
}

/// The payload of a JWT, unverified (tests check what the server put there).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

/// The header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().expect("JWT header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("JSON header")
}

/// A PKCE pair.
pub fn pkce() -> (String, String) {
    let verifier = generate_verifier();
    let challenge = s256_challenge(&verifier);
    (verifier, challenge)
}

/// The query parameters of a Location header.
pub fn location_params(response: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = response
        .headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let url = url::Url::parse(&location).expect("absolute Location");
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut base = url.clone();
    base.set_query(None);
    (base.to_string(), params)
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Pulls `name="…" value="…"` out of an HTML form (our templates write hidden inputs that way).
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/")
            .replace("&quot;", "\""),
    )
}

/// The `name=value` of every Set-Cookie header, joined as a Cookie header.
pub fn cookies_from(response: &reqwest::Response, existing: &str) -> String {
    let mut jar: Vec<(String, String)> = existing
        .split("; ")
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for value in response.headers().get_all("set-cookie") {
        let text = value.to_str().expect("ASCII cookie");
        let pair = text.split(';').next().expect("cookie pair");
        if let Some((name, value)) = pair.split_once('=') {
            jar.retain(|(existing, _)| existing != name);
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a client the way `auth-server client create` does.
    pub async fn create_client(
        &self,
        id: &str,
        grants: &[&str],
        public: bool,
        scope: &str,
        audiences: &[&str],
        skip_consent: bool,
    ) -> TestClient {
        let create = ClientCreate {
            client_id: id.into(),
            public,
            secret_stdin: false,
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            redirect_uris: if grants.contains(&"authorization_code") {
                vec![REDIRECT_URI.into()]
            } else {
                vec![]
            },
            scope: scope.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            skip_consent,
        };
        let (record, secret) = client_record(&create, None).expect("valid client");
        self.state
            .store
            .create_client(&record, self.clock.now())
            .await
            .expect("store client");
        TestClient {
            id: id.into(),
            secret,
        }
    }

    /// A confidential client_credentials client with scope "read write".
    pub async fn machine_client(&self) -> TestClient {
        self.create_client(
            "machine",
            &["client_credentials"],
            false,
            "read write",
            &[],
            false,
        )
        .await
    }

    /// A confidential web client with code + refresh grants.
    pub async fn web_client(&self, skip_consent: bool) -> TestClient {
        self.create_client(
            "web",
            &["authorization_code", "refresh_token"],
            false,
            "openid read write",
            &["https://api.example/"],
            skip_consent,
        )
        .await
    }

    pub async fn create_user(&self, username: &str) -> String {
        let hash = self.state.hasher.hash(PASSWORD).expect("hash");
        let user = UserRecord {
            user_id: uuid::Uuid::new_v4().to_string(),
            username: username.into(),
            password_hash: hash,
        };
        self.state
            .store
            .create_user(&user, self.clock.now())
            .await
            .expect("store user");
        user.user_id
    }

    /// Opens an authorization URL in a fresh browser and expects the login form: returns the browser's
    /// cookies and the form's hidden fields.
    pub async fn login_page(&self, url: &str) -> (String, Vec<(String, String)>) {
        let page = self.http.get(url).send().await.expect("GET /authorize");
        assert_eq!(page.status(), StatusCode::OK);
        let cookies = cookies_from(&page, "");
        let html = page.text().await.expect("login page");
        assert!(
            html.contains("name=\"password\""),
            "login form expected: {html}"
        );
        (cookies, hidden_fields(&html))
    }

    /// A client_credentials access token of `client`.
    pub async fn access_token(&self, client: &TestClient) -> String {
        self.client_credentials(client).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// POST /token with Basic authentication.
    pub async fn post_token(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .form(form)
            .send()
            .await
            .expect("POST /token")
    }

    /// POST to an endpoint with client_secret_post (or `none` for public clients).
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

    pub async fn client_credentials(&self, client: &TestClient) -> Value {
        let response = self
            .post_token(client, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("token JSON")
    }

    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let response = self
            .post_form("/introspect", client, &[("token", token)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("introspection JSON")
    }

    pub async fn revoke(&self, client: &TestClient, token: &str) -> StatusCode {
        self.post_form("/revoke", client, &[("token", token)])
            .await
            .status()
    }

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

    /// The whole browser flow: authorize → login form → credentials → consent → approve → code.
    /// Returns the code and the cookies of the browser.
    pub async fn browser_login_and_approve(
        &self,
        client_id: &str,
        username: &str,
        challenge: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let (cookies, mut form) = self
            .login_page(&self.authorize_url(client_id, challenge, extra))
            .await;
        form.push(("username".into(), username.into()));
        form.push(("password".into(), PASSWORD.into()));
        let consent = self
            .http
            .post(self.url("/authorize"))
            .header("cookie", &cookies)
            .form(&form)
            .send()
            .await
            .expect("POST login");
        let cookies = cookies_from(&consent, &cookies);
        let code = if consent.status() == StatusCode::SEE_OTHER {
            consent
        } else {
            assert_eq!(consent.status(), StatusCode::OK);
            let html = consent.text().await.expect("consent page");
            assert!(
                html.contains("value=\"approve\""),
                "consent form expected: {html}"
            );
            let mut form = hidden_fields(&html);
            form.push(("decision".into(), "approve".into()));
            self.http
                .post(self.url("/authorize"))
                .header("cookie", &cookies)
                .form(&form)
                .send()
                .await
                .expect("POST consent")
        };
        assert_eq!(code.status(), StatusCode::SEE_OTHER);
        let (base, params) = location_params(&code);
        assert_eq!(base, REDIRECT_URI);
        assert_eq!(param(&params, "state"), Some("xyz-state"));
        assert_eq!(
            param(&params, "iss"),
            Some(self.state.settings.issuer.as_str())
        );
        (param(&params, "code").expect("code").to_owned(), cookies)
    }

    /// Authorization code flow end to end, returning the token response.
    pub async fn code_flow(&self, client: &TestClient, username: &str) -> Value {
        let (verifier, challenge) = pkce();
        let (code, _) = self
            .browser_login_and_approve(&client.id, username, &challenge, &[])
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

/// Every hidden input of a form page, as (name, value) pairs.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input type=\"hidden\" name=\"") {
        rest = &rest[start + "<input type=\"hidden\" name=\"".len()..];
        let name_end = rest.find('"').expect("name end");
        let name = rest[..name_end].to_owned();
        if let Some(value) =
            hidden_field(&format!("name=\"{name}\"{}", &rest[name_end + 1..]), &name)
        {
            fields.push((name, value));
        }
    }
    fields
}

/// The real `auth-server serve` process on a free loopback port, ready when returned.
pub struct ServedBinary {
    pub base: String,
    pub child: std::process::Child,
}

impl ServedBinary {
    /// Starts `serve` on `database_url` with `RUST_LOG=rust_log` and `extra` flags; stderr is piped (take it
    /// from `child` and read it, or a chatty log fills the pipe).
    pub async fn start(database_url: &str, rust_log: &str, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let base = format!("http://{listen}");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_auth-server"))
            .args(["serve", "--listen", &listen, "--issuer", &base])
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", rust_log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start auth-server serve");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                return Self { base, child };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("auth-server serve never became ready");
    }

    /// SIGTERM, then the exit status.
    pub async fn stop(self) -> std::process::ExitStatus {
        let mut child = self.child;
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(signalled.success());
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait")
    }
}

/// Runs an `auth-server` subcommand on `database_url` with `RUST_LOG=rust_log`, `stdin` written to it;
/// returns success, stdout and stderr.
pub fn run_cli(
    args: &[&str],
    database_url: &str,
    stdin: Option<&str>,
    rust_log: &str,
) -> (bool, String, String) {
    run_cli_with_env(args, &[], database_url, stdin, rust_log)
}

/// [`run_cli`] with extra environment variables.
pub fn run_cli_with_env(
    args: &[&str],
    envs: &[(&str, &str)],
    database_url: &str,
    stdin: Option<&str>,
    rust_log: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(args)
        .envs(envs.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", rust_log)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run auth-server");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
