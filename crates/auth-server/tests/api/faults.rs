//! Database faults: the database goes away under a running server, and comes back.
//! PostgreSQL is reached through a TCP proxy the test cuts (every open connection dropped, new ones
//! refused) and restores; SQLite is locked by another connection holding a write transaction.
//! The server must answer 503 with an RFC 6749 body (not hang, not 500), report not-ready, recover by
//! itself, and leave no half-written grant: a refresh that failed during the outage did not rotate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auth_core::clock::{Clock, ManualClock, SystemClock};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use testkit::{Backend, ClientSpec, TestClient, TestDatabase, TestIssuer};

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::<AbortHandle>::new()));
        let (accept_up, accept_connections) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !accept_up.load(Ordering::SeqCst) {
                    // Down: the connection is closed at once, as when the server is gone.
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            address,
            up,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A fresh PostgreSQL database and a server that reaches it through a [`Proxy`].
async fn behind_proxy() -> (TestDatabase, Proxy, TestIssuer) {
    let db = TestDatabase::create(&Backend::postgres()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.address.port())).unwrap();
    let app =
        TestIssuer::on_database(url.as_str(), ManualClock::new(SystemClock.now()), |_| {}).await;
    (db, proxy, app)
}

async fn readyz(app: &TestIssuer) -> StatusCode {
    app.http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls /readyz until it answers `status`; bounded, so a server that never notices fails the test.
async fn wait_for_readyz(app: &TestIssuer, status: StatusCode) {
    for _ in 0..150 {
        if readyz(app).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {status}");
}

async fn refresh(app: &TestIssuer, client: &TestClient, token: &str) -> (StatusCode, Value) {
    // A client-side bound: a hang would fail here rather than stall the suite.
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        app.post_token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        ),
    )
    .await
    .expect("the token endpoint answered within 20 s");
    let status = response.status();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("a JSON body: {status} {body:?}")),
    )
}

fn assert_unavailable(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        !description.contains("sqlx")
            && !description.contains("postgres")
            && !description.contains("database"),
        "no internals in the body: {description}"
    );
}

/// A code-flow refresh token of the web client, for user `alice`.
async fn refresh_token(app: &TestIssuer) -> (TestClient, String) {
    let web = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let tokens = app.code_flow(&web, "alice").await;
    (web, tokens["refresh_token"].as_str().unwrap().to_owned())
}

/// PostgreSQL behind a proxy the test cuts: `faults::postgres::…`.
mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_503_and_recovers_with_nothing_half_written() {
        let (db, proxy, app) = behind_proxy().await;
        let (web, first) = refresh_token(&app).await;
        let machine = app.register(ClientSpec::machine().introspection()).await;
        let access = app.access_token(&machine).await;
        assert_eq!(readyz(&app).await, StatusCode::OK);

        proxy.cut();
        wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
        let (status, body) = refresh(&app, &web, &first).await;
        assert_unavailable(status, &body);
        // Introspection needs the deny list: it cannot say "active" without the database.
        let response = app
            .post_form("/introspect", &machine, &[("token", &access)])
            .await;
        let status = response.status();
        assert_unavailable(status, &response.json().await.unwrap());

        proxy.restore();
        wait_for_readyz(&app, StatusCode::OK).await;
        // The failed rotation wrote nothing: the same refresh token still works, exactly once.
        let (status, body) = refresh(&app, &web, &first).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let second = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        let (status, body) = refresh(&app, &web, &second).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_ne!(body["refresh_token"].as_str(), Some(second.as_str()));
        assert_eq!(
            app.introspect(&access).await["active"],
            true,
            "the access token issued before the outage is still good"
        );
        drop(app);
        drop(db);
    }

    /// The connection is cut while refresh rotations are in flight, so some die mid-transaction. Whatever each
    /// client was told, the database holds whole rotations only: every live family has exactly one unused
    /// refresh token (none lost, none doubled), and every used refresh token has exactly one successor. A
    /// rotation the client saw succeed is usable after recovery.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cut_during_rotations_leaves_only_whole_rotations() {
        use sqlx::Connection;
        const CHAINS: usize = 8;
        let (db, proxy, app) = behind_proxy().await;
        let web = app.register(ClientSpec::web().skip_consent()).await;
        app.user("alice").await;
        // The live chains: their current refresh token.
        let mut chains: Vec<(usize, String)> = Vec::new();
        for chain in 0..CHAINS {
            let issued = app.code_flow(&web, "alice").await;
            chains.push((chain, issued["refresh_token"].as_str().unwrap().to_owned()));
        }
        // Cuts at several moments, so that across rounds some rotations finish, some never start, and some
        // die between their statements. Rounds go on (at most 30) until both a completed rotation and a cut
        // one were seen, so the test never passes without having cut one. A fast machine finishes all eight
        // rotations within 2 ms of the last request, so a round also sends all eight at once and cuts at once.
        let (mut completed, mut cut) = (0, 0);
        for delay_ms in [0u64, 2, 6, 12, 25, 50].into_iter().cycle().take(30) {
            if completed > 0 && cut > 0 && delay_ms == 0 {
                break;
            }
            let mut requests = tokio::task::JoinSet::new();
            for (chain, token) in &chains {
                let request = app
                    .http
                    .post(app.url("/token"))
                    .basic_auth(&web.id, web.secret.as_deref())
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
                let (chain, token) = (*chain, token.clone());
                requests.spawn(async move { (chain, token, request.send().await) });
                // At 0 ms all eight go at once and the cut lands among them.
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            proxy.cut();
            let mut answers = Vec::new();
            while let Some(joined) = requests.join_next().await {
                let (chain, token, response) = joined.unwrap();
                let response = response.unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                match status {
                    StatusCode::OK => completed += 1,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_unavailable(status, &body);
                        cut += 1;
                    }
                    other => panic!("chain {chain}: {other} {body}"),
                }
                answers.push((chain, token, status, body));
            }
            proxy.restore();
            wait_for_readyz(&app, StatusCode::OK).await;
            chains.clear();
            for (chain, token, status, body) in answers {
                if status == StatusCode::OK {
                    // The client was told: the new token is the one to use, and it works.
                    let next = body["refresh_token"].as_str().unwrap().to_owned();
                    let (again, again_body) = refresh(&app, &web, &next).await;
                    assert_eq!(again, StatusCode::OK, "chain {chain}: {again_body}");
                    chains.push((
                        chain,
                        again_body["refresh_token"].as_str().unwrap().to_owned(),
                    ));
                    continue;
                }
                // 503: the rotation either rolled back (the old token still works) or committed while its
                // answer was lost with the connection (the old token is now used, and presenting it again is
                // reuse, which revokes the family, RFC 9700 §4.14.2). Both are whole; nothing in between.
                let (again, again_body) = refresh(&app, &web, &token).await;
                match again {
                    StatusCode::OK => chains.push((
                        chain,
                        again_body["refresh_token"].as_str().unwrap().to_owned(),
                    )),
                    StatusCode::BAD_REQUEST => {
                        assert_eq!(again_body["error"], "invalid_grant", "chain {chain}");
                    }
                    other => panic!("chain {chain}: {other} {again_body}"),
                }
            }
        }
        assert!(completed > 0 && cut > 0, "completed {completed}, cut {cut}");
        let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let families: Vec<(String, bool, i64, i64, i64)> = sqlx::query_as(
            "select f.family_id, f.revoked_at is not null, \
               (select count(*) from refresh_token r where r.family_id = f.family_id and r.used_at is null), \
               (select count(*) from refresh_token r where r.family_id = f.family_id), \
               (select count(*) from refresh_token r where r.family_id = f.family_id and r.used_at is not null) \
             from token_family f",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(families.len(), CHAINS);
        for (family, revoked, unused, refresh_tokens, used) in families {
            if !revoked {
                assert_eq!(unused, 1, "family {family}: unused refresh tokens");
            }
            assert_eq!(
                refresh_tokens,
                used + 1,
                "family {family}: every use of a refresh token wrote exactly one successor"
            );
        }
        admin.close().await.unwrap();
        drop(app);
        drop(db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_sqlite_is_503_and_recovers_with_nothing_half_written() {
    use sqlx::Connection;

    let app = TestIssuer::spawn(Backend::Sqlite).await;
    let (web, first) = refresh_token(&app).await;
    // Another process-like connection takes the write lock and keeps it (WAL: readers go on, writers wait).
    let mut locker = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut locker, "BEGIN EXCLUSIVE")
        .await
        .unwrap();

    // The rotation cannot write: after the busy timeout it answers 503, not 500 and not a hang.
    let (status, body) = refresh(&app, &web, &first).await;
    assert_unavailable(status, &body);

    sqlx::Executor::execute(&mut locker, "ROLLBACK")
        .await
        .unwrap();
    locker.close().await.unwrap();
    let (status, body) = refresh(&app, &web, &first).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the failed rotation wrote nothing: {body}"
    );
    let (status, body) = refresh(&app, &web, &first).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "and now it is used: {body}"
    );
    assert_eq!(body["error"], "invalid_grant");
}

/// Makes files read-only for this process and undoes it when dropped, even if the test fails: `chmod a-w`
/// binds an ordinary user; root ignores file modes, so for root it is `chattr +i` (CAP_LINUX_IMMUTABLE).
struct ReadOnly {
    paths: Vec<std::path::PathBuf>,
    immutable: bool,
}

impl ReadOnly {
    fn set(paths: Vec<std::path::PathBuf>) -> Self {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
            .unwrap_or(false);
        let (program, flag) = if root {
            ("chattr", "+i")
        } else {
            ("chmod", "a-w")
        };
        let status = std::process::Command::new(program)
            .arg(flag)
            .args(&paths)
            .status()
            .unwrap_or_else(|error| panic!("{program} {flag}: {error}"));
        assert!(
            status.success(),
            "{program} {flag} failed: root needs CAP_LINUX_IMMUTABLE and a file system with immutable files"
        );
        Self {
            paths,
            immutable: root,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let (program, flag) = if self.immutable {
            ("chattr", "-i")
        } else {
            ("chmod", "u+w")
        };
        let _ = std::process::Command::new(program)
            .arg(flag)
            .args(&self.paths)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sqlite_is_503_for_writes_while_ready_and_recovers_with_nothing_half_written() {
    let app = TestIssuer::spawn(Backend::Sqlite).await;
    let (web, first) = refresh_token(&app).await;
    let machine = app.register(ClientSpec::machine()).await;
    let file = std::path::PathBuf::from(app.database_url.trim_start_matches("sqlite://"));
    let wal = file.with_extension("db-wal");
    // The shared-memory index stays writable: SQLite maps it, and a mapped page that cannot be written
    // is a SIGBUS, not an error. The database and its write-ahead log are what "read-only" means.
    let read_only = ReadOnly::set(vec![file, wal]);
    let (status, body) = refresh(&app, &web, &first).await;
    assert_unavailable(status, &body);
    // Reading still works: the server stays ready, and what needs no write is served.
    assert_eq!(readyz(&app).await, StatusCode::OK);
    let token = app.client_credentials(&machine).await;
    assert!(token["access_token"].is_string());

    drop(read_only);
    let (status, body) = refresh(&app, &web, &first).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the failed rotation wrote nothing: {body}"
    );
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let (status, body) = refresh(&app, &web, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
