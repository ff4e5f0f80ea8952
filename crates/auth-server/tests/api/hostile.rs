//! Hostile clients, many at a time and over real sockets: bursts of logins, floods of bad secrets, slow
//! and silent connections, spoofed forwarding headers, bytes no client should send. The server bounds
//! what each costs, locks no one out, and answers every one with a 4xx or a well-formed answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::wire::GrantType;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::browser::Page;
use testkit::issuer::{OTHER_SOURCE, client_with, metric};
use testkit::jwt::pkce;
use testkit::{Backend, Browser, ClientSpec, PASSWORD, REDIRECT_URI, TestIssuer, backend_tests};

backend_tests!(
    concurrent_wrong_passwords_get_no_more_checks_than_the_limit_and_the_user_signs_in_from_elsewhere,
    failed_logins_with_made_up_usernames_throttle_their_source_only,
    no_throttle_locks_a_client_out,
    bytes_no_client_should_send_get_a_4xx_never_a_5xx,
    forwarded_for_is_believed_only_from_a_trusted_proxy,
);

/// A web client, alice, and a browser at its login form.
async fn login_form(issuer: &TestIssuer, mut browser: Browser) -> (Browser, Page) {
    let (_, challenge) = pkce();
    let login = browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    (browser, login)
}

async fn web_and_alice(backend: Backend) -> TestIssuer {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    issuer
}

async fn concurrent_wrong_passwords_get_no_more_checks_than_the_limit_and_the_user_signs_in_from_elsewhere(
    backend: Backend,
) {
    const ATTEMPTS: usize = 40;
    let issuer = web_and_alice(backend).await;
    let (browser, login) = login_form(&issuer, issuer.browser()).await;
    let checks_before = issuer.state.hasher.evaluations();
    let start = Arc::new(tokio::sync::Barrier::new(ATTEMPTS));
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..ATTEMPTS {
        let (mut browser, form, start) = (browser.clone(), login.form(), start.clone());
        attempts.spawn(async move {
            start.wait().await;
            browser
                .submit(&form, &[("username", "alice"), ("password", "wrong")])
                .await
        });
    }
    let (mut refused, mut throttled, mut busy) = (0, 0, 0);
    while let Some(page) = attempts.join_next().await {
        let page = page.unwrap();
        match page.status {
            StatusCode::OK => {
                assert!(
                    page.html.contains("Invalid username or password."),
                    "{}",
                    page.html
                );
                refused += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(page.headers.contains_key("retry-after"));
                throttled += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => busy += 1,
            other => panic!("{other}: {}", page.html),
        }
    }
    // Each attempt was counted before its check: the burst got five checks at most, not forty.
    let checks = issuer.state.hasher.evaluations() - checks_before;
    assert!(
        refused + busy <= 5 && refused >= 1,
        "{refused} refused, {busy} busy"
    );
    assert!(checks <= 5, "{checks} password checks for a limit of 5");
    assert_eq!(refused + throttled + busy, ATTEMPTS);
    // From here even the right password waits out the window...
    let mut here = browser.clone();
    let page = here.sign_in(&login, "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // ...but alice on another machine is not locked out by it.
    let (mut elsewhere, other_login) = login_form(&issuer, issuer.browser_from(OTHER_SOURCE)).await;
    let consent = elsewhere.sign_in(&other_login, "alice", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.is_consent_form(), "{}", consent.html);
    // And here once the window has passed.
    issuer.clock.advance(61);
    let consent = here.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
}

async fn failed_logins_with_made_up_usernames_throttle_their_source_only(backend: Backend) {
    let issuer = web_and_alice(backend).await;
    let (mut browser, login) = login_form(&issuer, issuer.browser()).await;
    let checks_before = issuer.state.hasher.evaluations();
    for i in 0..20 {
        let page = browser
            .sign_in(&login, &format!("nobody-{i}"), "guess")
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.html.contains("Invalid username or password."));
    }
    // Made-up usernames cost a real (dummy) check each, like real ones: no enumeration by timing.
    assert_eq!(issuer.state.hasher.evaluations() - checks_before, 20);
    let throttled = browser.sign_in(&login, "nobody-20", "guess").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        issuer.state.hasher.evaluations() - checks_before,
        20,
        "a throttled login costs no check"
    );
    // Another source, and every user there, is not affected.
    let (mut elsewhere, other_login) = login_form(&issuer, issuer.browser_from(OTHER_SOURCE)).await;
    let consent = elsewhere.sign_in(&other_login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    let metrics = issuer.metrics().await;
    assert_eq!(
        metric(&metrics, "auth_login_attempts_total{result=\"failure\"}"),
        Some(20.0)
    );
    assert_eq!(
        metric(&metrics, "auth_login_attempts_total{result=\"throttled\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "auth_login_attempts_total{result=\"success\"}"),
        Some(1.0)
    );
}

async fn no_throttle_locks_a_client_out(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    let machine = issuer.register(ClientSpec::machine()).await;
    let spa = issuer
        .register(
            ClientSpec::public("spa")
                .grants([GrantType::AuthorizationCode])
                .scope("read")
                .skip_consent(),
        )
        .await;
    issuer.user("alice").await;
    let grant = [("grant_type", "client_credentials")];
    let invalid_client = async |response: reqwest::Response| {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    };
    // Thirty guesses at the machine's secret: each is refused, none throttles the real secret.
    for _ in 0..30 {
        invalid_client(
            issuer
                .post_token(&machine.with_secret("guess"), &grant)
                .await,
        )
        .await;
    }
    assert_eq!(
        issuer.post_token(&machine, &grant).await.status(),
        StatusCode::OK
    );
    // Twenty requests naming the public client with a made-up secret...
    for _ in 0..20 {
        invalid_client(
            issuer
                .post_form(
                    "/token",
                    &spa.with_secret("made-up"),
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", "x"),
                        ("code_verifier", &"v".repeat(43)),
                    ],
                )
                .await,
        )
        .await;
    }
    // ...and a real user of that client still gets tokens.
    let (verifier, challenge) = pkce();
    let code = issuer
        .browser()
        .login_and_approve(
            &issuer.authorize_url("spa", &challenge, &[]),
            "alice",
            PASSWORD,
        )
        .await;
    let exchanged = issuer
        .post_form(
            "/token",
            &spa,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(exchanged.status(), StatusCode::OK);
    // A hundred and fifty made-up client ids from this address: the real client here is still served.
    for i in 0..150 {
        let made_up = testkit::TestClient {
            id: format!("made-up-{i}"),
            secret: Some("x".into()),
        };
        invalid_client(issuer.post_token(&made_up, &grant).await).await;
    }
    assert_eq!(
        issuer.post_token(&machine, &grant).await.status(),
        StatusCode::OK
    );
}

/// A JWT whose header and claims are given, with a signature of zeros.
fn jwt(header: &Value, claims: &Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([0u8; 64])
    )
}

async fn bytes_no_client_should_send_get_a_4xx_never_a_5xx(backend: Backend) {
    let issuer = web_and_alice(backend).await;
    let machine = issuer.register(ClientSpec::machine().introspection()).await;
    let client_error = |what: &str, status: StatusCode| {
        assert!(status.is_client_error(), "{what}: {status}");
    };
    // A NUL in a client id (PostgreSQL refuses NUL in text), by Basic and in the body, and ids too long.
    for client_id in [
        "nul\0id",
        "nul%00id",
        &"x".repeat(10_000),
        "é\u{202e}\u{feff}",
    ] {
        let basic = issuer
            .post_token(
                &testkit::TestClient {
                    id: client_id.into(),
                    secret: Some("s".into()),
                },
                &[("grant_type", "client_credentials")],
            )
            .await;
        client_error("Basic client id", basic.status());
        let body = issuer
            .http
            .post(issuer.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={client_id}&client_secret=s"
            ))
            .send()
            .await
            .unwrap();
        client_error("body client id", body.status());
    }
    // A NUL in the client id of an authorization request: the error page, never a 503.
    let page = issuer
        .http
        .get(format!(
            "{}?response_type=code&client_id=w%00eb&redirect_uri=x",
            issuer.url("/authorize")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    // A NUL, invalid UTF-8 and a megabyte-long name in the login form: the same refusal as any wrong login.
    let (mut browser, login) = login_form(&issuer, issuer.browser()).await;
    for username in ["al\0ice", "\u{fffd}\u{0}", &"u".repeat(60_000)] {
        let page = browser.sign_in(&login, username, "pw").await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{:?}",
            &username[..username.len().min(20)]
        );
        assert!(page.html.contains("Invalid username or password."));
    }
    let raw = browser
        .post(&[("csrf_token", login.form().field("csrf_token").unwrap())])
        .await;
    client_error("a post without a request", raw.status);
    // JWTs with a non-ASCII typ, NUL in the kid and huge numbers: not active, not a 5xx, not a panic.
    for token in [
        jwt(
            &serde_json::json!({"alg": "ES256", "typ": "aaaaaaaaaaaé", "kid": "k"}),
            &serde_json::json!({}),
        ),
        jwt(
            &serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "\u{0}"}),
            &serde_json::json!({}),
        ),
        jwt(
            &serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "k"}),
            &serde_json::json!({"exp": 1e308, "iat": -1e308, "iss": "\u{0}"}),
        ),
    ] {
        for path in ["/introspect", "/revoke"] {
            let response = issuer.post_form(path, &machine, &[("token", &token)]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        assert_eq!(
            issuer.introspect(&token).await,
            serde_json::json!({ "active": false })
        );
    }
    // Percent-encoded invalid UTF-8 and NUL everywhere in a token request.
    let response = issuer
        .http
        .post(issuer.url("/token"))
        .basic_auth(&machine.id, machine.secret.as_deref())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=%FF%00%FE&scope=%00")
        .send()
        .await
        .unwrap();
    client_error("refresh with junk", response.status());
}

async fn forwarded_for_is_believed_only_from_a_trusted_proxy(backend: Backend) {
    let forwarded = |address: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        headers
    };
    // Twenty failures from one forwarded client; is another forwarded client throttled with it?
    async fn throttles_the_other(issuer: &TestIssuer, first: Browser, other: Browser) -> bool {
        let (mut first, login) = login_form(issuer, first).await;
        for i in 0..20 {
            let page = first.sign_in(&login, &format!("nobody-{i}"), "guess").await;
            assert_eq!(page.status, StatusCode::OK);
        }
        let (mut other, login) = login_form(issuer, other).await;
        other.sign_in(&login, "alice", PASSWORD).await.status == StatusCode::TOO_MANY_REQUESTS
    }
    // Behind a trusted proxy (here: loopback), each client is its own source.
    let behind_proxy = TestIssuer::spawn_with(backend.clone(), |serve| {
        serve.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    behind_proxy.register(ClientSpec::web()).await;
    behind_proxy.user("alice").await;
    assert!(
        !throttles_the_other(
            &behind_proxy,
            behind_proxy.browser_with(None, forwarded("203.0.113.5")),
            behind_proxy.browser_with(None, forwarded("203.0.113.6")),
        )
        .await,
        "another client behind the proxy was throttled with the first"
    );
    // A client cannot spoof its way out: the right-most untrusted entry counts, not what it wrote first.
    assert!(
        throttles_the_other(
            &behind_proxy,
            behind_proxy.browser_with(None, forwarded("198.51.100.1, 203.0.113.7")),
            behind_proxy.browser_with(None, forwarded("198.51.100.2, 203.0.113.7")),
        )
        .await
    );
    // Without a trusted proxy the header is ignored: both are the TCP peer.
    let direct = web_and_alice(backend).await;
    assert!(
        throttles_the_other(
            &direct,
            direct.browser_with(None, forwarded("203.0.113.5")),
            direct.browser_with(None, forwarded("203.0.113.6")),
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_secrets_never_locks_the_client_out_and_others_are_served_throughout() {
    const REQUESTS: usize = 3_200;
    const WORKERS: usize = 32;
    let app = TestIssuer::spawn(Backend::Sqlite).await;
    let victim = app.register(ClientSpec::machine()).await;
    let wrong = victim.with_secret("guess");
    let url = app.url("/token");
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (http, url, wrong, answered) = (
            app.http.clone(),
            url.clone(),
            wrong.clone(),
            answered.clone(),
        );
        workers.spawn(async move {
            for _ in 0..REQUESTS / WORKERS {
                let response = http
                    .post(&url)
                    .basic_auth(&wrong.id, wrong.secret.as_deref())
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // While the flood runs, the right secret is accepted every time, from the same address.
    while answered.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        let response = app
            .post_token(&victim, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let during = answered.load(Ordering::Relaxed);
    assert!(
        during < REQUESTS,
        "the 50 requests overlapped the flood ({during} answered)"
    );
    while let Some(worker) = workers.join_next().await {
        worker.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_off_at_the_deadline_while_others_are_served() {
    let app =
        TestIssuer::spawn_with(Backend::Sqlite, |serve| serve.header_read_timeout_ms = 500).await;
    let trickle =
        service_kit::testing::trickle_headers(app.address, "POST /token HTTP/1.1", async {
            let response = app.http.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        })
        .await
        .unwrap();
    assert!(trickle.closed, "still open after 10 s: {trickle:?}");
    // At the configured 500 ms deadline, not at some other limit.
    assert!(trickle.closed_after < Duration::from_secs(3), "{trickle:?}");
    // hyper may answer 408 before closing; the request never reached a handler.
    assert!(trickle.reached_no_handler(), "{trickle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_h2c_preface_only_connections_are_closed_at_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestIssuer::spawn_with(Backend::Sqlite, |serve| serve.header_read_timeout_ms = 500).await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let mut h2c = tokio::net::TcpStream::connect(app.address).await.unwrap();
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    h2c.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    for connection in [&mut silent, &mut h2c] {
        let mut buffer = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), connection.read(&mut buffer)).await
            {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("still open after 10 s"),
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile and after, the server serves.
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Peak and current resident memory of a process, in KiB (from /proc).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// 500 concurrent login posts with made-up usernames, from 25 loopback addresses, at the real binary: its
/// resident memory (peak included) stays under 256 MiB, the only 5xx is the busy login page, and another
/// client's token requests and login page are answered throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_logins_keep_the_server_under_256_mib_and_others_served() {
    const SOURCES: u8 = 25;
    const PER_SOURCE: usize = 20;
    let db = testkit::TestDatabase::create(&Backend::Sqlite).await;
    let cli = |args: &[&str], stdin: Option<&str>| {
        let run = testkit::binary::run(crate::binary(), args, &[], &db.url, stdin, "warn");
        assert!(run.success, "{}", run.stderr);
        run.stdout
    };
    cli(
        &[
            "client",
            "create",
            "--client-id",
            "web",
            "--public",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            REDIRECT_URI,
        ],
        None,
    );
    let machine: Value = serde_json::from_str(
        cli(
            &[
                "client",
                "create",
                "--client-id",
                "machine",
                "--grant-type",
                "client_credentials",
            ],
            None,
        )
        .trim(),
    )
    .unwrap();
    let machine_secret = machine["client_secret"].as_str().unwrap().to_owned();
    let server = testkit::binary::ServedBinary::start(
        crate::binary(),
        &db.url,
        "error",
        &["--max-password-checks", "2"],
    );
    let pid = server.child.id();
    let (before_peak, before) = memory_kib(pid);
    let base = server.base.clone();
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id=web&redirect_uri={}&state=s&code_challenge={}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
        pkce().1
    );
    // One browser's form and cookies, posted from 25 machines at once.
    let mut browser = Browser::new(
        testkit::issuer::no_redirect_client(),
        format!("{base}/authorize"),
        base.clone(),
    );
    let login = browser.open_login(&authorize).await;
    let cookies = browser.cookie_header().unwrap();
    let form = login.form();
    let burst_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Another client, meanwhile: token requests and the login page, every answer checked.
    let others = {
        let (base, secret, authorize, burst_over) = (
            base.clone(),
            machine_secret.clone(),
            authorize.clone(),
            burst_over.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut served = 0;
            while !burst_over.load(Ordering::Relaxed) {
                let token = http
                    .post(format!("{base}/token"))
                    .basic_auth("machine", Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(token.status(), StatusCode::OK);
                let page = http.get(&authorize).send().await.unwrap();
                assert_eq!(page.status(), StatusCode::OK);
                served += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            served
        })
    };
    let start = Arc::new(tokio::sync::Barrier::new(usize::from(SOURCES) * PER_SOURCE));
    let mut burst = tokio::task::JoinSet::new();
    for source in 0..SOURCES {
        let client = client_with(
            Some(IpAddr::from([127, 0, 1, source + 1])),
            reqwest::header::HeaderMap::new(),
        );
        for attempt in 0..PER_SOURCE {
            let fields: Vec<(String, String)> = form
                .submission(&[
                    ("username", &format!("nobody-{source}-{attempt}")),
                    ("password", "guess"),
                ])
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            let (client, url, cookies, start) = (
                client.clone(),
                format!("{base}/authorize"),
                cookies.clone(),
                start.clone(),
            );
            burst.spawn(async move {
                start.wait().await;
                let response = client
                    .post(&url)
                    .header("cookie", cookies)
                    .form(&fields)
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status(), retry_after)
            });
        }
    }
    let (mut refused, mut busy) = (0, 0);
    while let Some(answer) = burst.join_next().await {
        let (status, retry_after) = answer.unwrap();
        match status {
            StatusCode::OK => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(retry_after.unwrap(), "1");
                busy += 1;
            }
            other => panic!("{other}"),
        }
    }
    burst_over.store(true, Ordering::Relaxed);
    let served_meanwhile = others.await.unwrap();
    let (peak, after) = memory_kib(pid);
    eprintln!(
        "login burst: {refused} checked and refused, {busy} busy; resident {before} KiB before (peak {before_peak}), \
         peak {peak} KiB, {after} KiB after; {served_meanwhile} rounds served to another client"
    );
    assert!(refused >= 1 && refused + busy == usize::from(SOURCES) * PER_SOURCE);
    assert!(
        served_meanwhile >= 1,
        "the other client was served during the burst"
    );
    assert!(peak < 256 * 1024, "peak resident memory {peak} KiB");
    assert!(server.stop().await.success());
}
