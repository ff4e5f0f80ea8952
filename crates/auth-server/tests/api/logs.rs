//! No secret in the logs (RFC 9700 §4.14, RFC 6749 §10.3): the real binary at TRACE level, every
//! dependency included, through the CLI, every grant, failures, refresh reuse and revocation. Then every
//! secret, password, code, token, cookie and Basic header of the run is looked for in what it logged.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::Value;

use testkit::binary::ServedBinary;
use testkit::issuer::no_redirect_client;
use testkit::jwt::pkce;
use testkit::{Backend, Browser, REDIRECT_URI, TestDatabase};

const PASSWORD: &str = "a-password-that-must-never-be-logged";

/// Runs a CLI subcommand at TRACE; returns stdout and appends stderr to `log`.
fn cli(args: &[&str], database_url: &str, stdin: Option<&str>, log: &mut String) -> String {
    let run = testkit::binary::run(crate::binary(), args, &[], database_url, stdin, "trace");
    log.push_str(&run.stderr);
    assert!(run.success, "{args:?}: {}", run.stderr);
    run.stdout
}

/// Seconds since the epoch (the binary runs on the system clock).
fn now() -> i64 {
    auth_core::clock::Clock::now(&auth_core::clock::SystemClock)
}

fn secret_of(json: &str) -> String {
    serde_json::from_str::<Value>(json.trim()).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_code_or_password_reaches_the_logs_even_at_trace() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut log = String::new();
    let mut secrets: Vec<(&str, String)> = Vec::new();
    let machine_secret = secret_of(&cli(
        &[
            "client",
            "create",
            "--client-id",
            "machine",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read",
            "--introspection",
        ],
        &db.url,
        None,
        &mut log,
    ));
    let web_secret = secret_of(&cli(
        &[
            "client",
            "create",
            "--client-id",
            "web",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "read",
        ],
        &db.url,
        None,
        &mut log,
    ));
    cli(
        &["user", "create", "--username", "alice", "--password-stdin"],
        &db.url,
        Some(PASSWORD),
        &mut log,
    );
    // A private_key_jwt client, its public key in a file.
    let signer = testkit::dpop::ProofKey::generate("ES256");
    let mut jwk = signer.public_jwk();
    jwk["kid"] = serde_json::json!("k1");
    let jwks_file = std::env::temp_dir().join(format!("logs-jwks-{}.json", std::process::id()));
    std::fs::write(&jwks_file, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    cli(
        &[
            "client",
            "create",
            "--client-id",
            "signer",
            "--grant-type",
            "client_credentials",
            "--jwks-file",
            jwks_file.to_str().unwrap(),
        ],
        &db.url,
        None,
        &mut log,
    );
    let _ = std::fs::remove_file(&jwks_file);

    let mut server =
        ServedBinary::start(crate::binary(), &db.url, "trace", &["--log-format", "json"]);
    let base = server.base.clone();
    // Read stderr on a thread, so a chatty TRACE log never fills the pipe and stalls the server.
    let stderr = server.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text)
            .expect("the whole log, as UTF-8");
        text
    });
    let http = no_redirect_client();
    // POST /token; the status and the JSON answer.
    let token = async |form: Vec<(&str, String)>, basic: Option<(&str, &str)>| {
        let mut request = http.post(format!("{base}/token")).form(&form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };

    // client_credentials, both ways of authenticating, and guesses.
    let basic = token(
        vec![("grant_type", "client_credentials".into())],
        Some(("machine", &machine_secret)),
    )
    .await
    .1;
    let post = token(
        vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", "machine".into()),
            ("client_secret", machine_secret.clone()),
        ],
        None,
    )
    .await
    .1;
    let guess = "a-guessed-secret-that-must-never-be-logged".to_owned();
    let (refused, _) = token(
        vec![("grant_type", "client_credentials".into())],
        Some(("machine", &guess)),
    )
    .await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
    let access_basic = basic["access_token"].as_str().unwrap().to_owned();
    let access_post = post["access_token"].as_str().unwrap().to_owned();
    let introspected = http
        .post(format!("{base}/introspect"))
        .basic_auth("machine", Some(&machine_secret))
        .form(&[("token", &access_basic)])
        .send()
        .await
        .unwrap();
    assert_eq!(introspected.status(), StatusCode::OK);
    let revoked = http
        .post(format!("{base}/revoke"))
        .basic_auth("machine", Some(&machine_secret))
        .form(&[("token", &access_post)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // A DPoP proof with a token request, and the same proof replayed (refused).
    let key = testkit::dpop::ProofKey::generate("ES256");
    let proof = key.proof("POST", &format!("{base}/token"), now(), None);
    for expected in [StatusCode::OK, StatusCode::BAD_REQUEST] {
        let response = http
            .post(format!("{base}/token"))
            .basic_auth("machine", Some(&machine_secret))
            .header("DPoP", &proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    // A client assertion (private_key_jwt), accepted, then replayed (refused).
    let assertion = signer.sign(
        &serde_json::json!({ "alg": "ES256", "kid": "k1" }),
        &serde_json::json!({ "iss": "signer", "sub": "signer", "aud": base.clone(),
                             "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string() }),
    );
    for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
        let response = http
            .post(format!("{base}/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "signer"),
                (
                    "client_assertion_type",
                    auth_core::client_assertion::ASSERTION_TYPE,
                ),
                ("client_assertion", &assertion),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    // A pushed request, and its request_uri used by a browser.
    let (_, pushed_challenge) = pkce();
    let pushed: Value = http
        .post(format!("{base}/par"))
        .basic_auth("web", Some(&web_secret))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", pushed_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    let pushed_page = http
        .get(format!(
            "{base}/authorize?client_id=web&request_uri={}",
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed_page.status(), StatusCode::OK);
    secrets.push(("DPoP proof", proof));
    secrets.push(("client assertion", assertion));
    secrets.push((
        "request_uri",
        request_uri
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned(),
    ));

    // The browser flow: a wrong password, then the right one, consent, the code, refresh and reuse.
    let (verifier, challenge) = pkce();
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id=web&redirect_uri={}&scope=read&state=st\
         &code_challenge={challenge}&code_challenge_method=S256",
        form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    );
    let mut browser = Browser::new(
        no_redirect_client(),
        format!("{base}/authorize"),
        base.clone(),
    );
    let login = browser.open_login(&authorize).await;
    let wrong_password = "a-wrong-password-that-must-never-be-logged";
    let refused = browser.sign_in(&login, "alice", wrong_password).await;
    assert!(
        refused.html.contains("Invalid username or password."),
        "{}",
        refused.html
    );
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    let redirect = browser.decide(&consent, "approve").await;
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    let code = redirect.redirect_param("code").unwrap();
    let (status, tokens) = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT_URI.into()),
            ("code_verifier", verifier.clone()),
        ],
        Some(("web", &web_secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = token(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh.clone()),
        ],
        Some(("web", &web_secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (reuse, _) = token(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh.clone()),
        ],
        Some(("web", &web_secret)),
    )
    .await;
    assert_eq!(reuse, StatusCode::BAD_REQUEST);
    for cookie in browser.cookie_header().unwrap().split("; ") {
        if let Some((_, value)) = cookie.split_once('=') {
            secrets.push(("cookie", value.to_owned()));
        }
    }
    secrets.push(("code", code));
    secrets.push((
        "user access token",
        tokens["access_token"].as_str().unwrap().to_owned(),
    ));
    secrets.push(("refresh token", refresh));
    secrets.push((
        "rotated refresh token",
        rotated["refresh_token"].as_str().unwrap().to_owned(),
    ));
    secrets.push((
        "rotated access token",
        rotated["access_token"].as_str().unwrap().to_owned(),
    ));
    assert!(server.stop().await.success());
    log.push_str(&reader.join().unwrap());

    secrets.extend([
        ("machine secret", machine_secret.clone()),
        ("web secret", web_secret.clone()),
        ("password", PASSWORD.to_owned()),
        ("wrong password", wrong_password.to_owned()),
        ("guessed secret", guess),
        ("access token (basic)", access_basic),
        ("access token (post)", access_post),
        ("PKCE verifier", verifier),
        (
            "Basic header",
            STANDARD.encode(format!("machine:{machine_secret}")),
        ),
        ("Basic header", STANDARD.encode(format!("web:{web_secret}"))),
    ]);
    // The log is real and detailed: every request, every SQL statement, the audit events of the failures.
    for target in ["tower_http::trace::on_request", "sqlx::query", "audit"] {
        assert!(
            log.contains(&format!("\"target\":\"{target}\"")),
            "no {target} events in {log}"
        );
    }
    // Each security event of the run is audited, one JSON object per line, with its outcome.
    let audited = |event: &str, outcome: &str| {
        log.lines().any(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|line| {
                line["target"] == "audit" && line["event"] == event && line["outcome"] == outcome
            })
        })
    };
    assert!(audited("login", "failure"), "the failed login is audited");
    assert!(audited("login", "success"), "the sign-in is audited");
    assert!(
        audited("client_auth", "failure"),
        "the guessed secret is audited"
    );
    // A client's text is a JSON string like every other field, never a quoted string inside one.
    let client_ids: Vec<String> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit" && line["event"] == "client_auth")
        .map(|line| line["client_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(client_ids.contains(&"machine".to_owned()), "{client_ids:?}");
    assert!(
        audited("revocation", "revoked"),
        "the revocation is audited"
    );
    assert!(
        audited("refresh_token_reuse", "family_revoked"),
        "the reuse is audited"
    );
    for (what, secret) in &secrets {
        assert!(
            secret.len() >= 16,
            "{what} is long enough to be a meaningful needle"
        );
        // A JWT is found by its signature, which is unique to it even where header and claims repeat.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!log.contains(needle), "the {what} appears in the logs");
    }
}

/// A username or client id can carry anything; the log gets it escaped and cut, so it can neither forge a
/// line, nor send escape sequences to a terminal, nor fill the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_is_logged_escaped_and_cut() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut log = String::new();
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
        &db.url,
        None,
        &mut log,
    );
    // The default (pretty) format, on a pipe.
    let mut server = ServedBinary::start(crate::binary(), &db.url, "info", &[]);
    let base = server.base.clone();
    let stderr = server.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let (_, challenge) = pkce();
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id=web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    );
    let mut browser = Browser::new(
        no_redirect_client(),
        format!("{base}/authorize"),
        base.clone(),
    );
    let login = browser.open_login(&authorize).await;
    let forged_line = "FORGED audit: event=\"login\" user=\"root\" outcome=\"success\"";
    let long = "L".repeat(500);
    for username in [
        format!("mallory\n{forged_line}"),
        "\u{1b}[2J\u{1b}[31mred".to_owned(),
        long.clone(),
    ] {
        let page = browser.sign_in(&login, &username, "guess").await;
        assert!(page.html.contains("Invalid username or password."));
    }
    // And request ids that would forge a field or fill the log, on requests whose audit line carries the
    // request's span: neither is taken.
    let forged_id = "x\" outcome=\"success";
    let huge_id = "R".repeat(60_000);
    for request_id in [forged_id, huge_id.as_str()] {
        let response = no_redirect_client()
            .post(format!("{base}/token"))
            .header("x-request-id", request_id)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "s"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_ne!(response.headers()["x-request-id"], request_id);
    }
    // And a client id at /token.
    let response = no_redirect_client()
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &format!("x\n{forged_line}")),
            ("client_secret", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(server.stop().await.success());
    let log = reader.join().unwrap();
    assert!(
        log.contains("mallory\\nFORGED"),
        "the newline is escaped: {log}"
    );
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED")),
        "no line was forged: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no escape sequence reaches the log: {log:?}"
    );
    assert!(log.contains("\\u{1b}[2J"), "{log}");
    assert!(
        !log.contains(&"L".repeat(65)),
        "client text is cut at 64 characters"
    );
    assert!(log.contains(&format!("\"{}…\"", "L".repeat(64))), "{log}");
    assert!(
        log.contains("request_id="),
        "the audit lines carry the request's span: {log}"
    );
    assert!(
        !log.contains("outcome=\"success") && !log.contains(&"R".repeat(65)),
        "a caller's request id reached the log: {log}"
    );
}
