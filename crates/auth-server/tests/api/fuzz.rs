//! Fuzz targets over HTTP: hostile input at /token, /introspect, /revoke (form bodies, content
//! types, Basic credentials) and at /authorize (query strings and forms). The server must answer every one
//! with a client error or a success, never a 5xx, and /authorize must never redirect anywhere but the
//! registered redirect URI (no open redirector, RFC 9700 §4.11). Input holds any Unicode, NUL, invalid
//! UTF-8 and huge numbers; both back-ends run it, since PostgreSQL refuses values SQLite stores (a NUL).
//! Bounded in CI; `cargo xtask fuzz` raises PROPTEST_CASES.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use testkit::{Backend, ClientSpec, REDIRECT_URI, TestClient, TestIssuer};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A parameter name: the ones the endpoints read, or anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "grant_type",
            "client_id",
            "client_secret",
            "code",
            "redirect_uri",
            "code_verifier",
            "refresh_token",
            "scope",
            "resource",
            "token",
            "token_type_hint",
            "response_type",
            "state",
            "code_challenge",
            "code_challenge_method",
            "csrf_token",
            "username",
            "password",
            "decision",
        ])
        .prop_map(str::to_owned),
        "(?s).{0,12}",
    ]
}

/// A parameter value: meaningful ones, hostile ones, anything.
fn value(secret: String) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "client_credentials".to_owned(),
            "authorization_code".to_owned(),
            "refresh_token".to_owned(),
            "password".to_owned(),
            "implicit".to_owned(),
            "machine".to_owned(),
            "web".to_owned(),
            "code".to_owned(),
            "token".to_owned(),
            "S256".to_owned(),
            "plain".to_owned(),
            "read write".to_owned(),
            "read  write".to_owned(),
            REDIRECT_URI.to_owned(),
            format!("{REDIRECT_URI}/../evil"),
            "https://evil.example/callback".to_owned(),
            "//evil.example".to_owned(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned(),
            "a".repeat(5_000),
            "99999999999999999999999999999999".to_owned(),
            "-9223372036854775809".to_owned(),
            "1e308".to_owned(),
            "NaN".to_owned(),
            "nul\0byte".to_owned(),
            "aaaaaaaaaaaé".to_owned(),
            "\u{202e}\u{feff}\u{fffd}".to_owned(),
            secret,
        ]),
        "(?s).{0,60}",
        "[\\x00-\\x1f%&=+;]{0,20}",
    ]
}

/// Pairs joined into a query or form body, either properly encoded or raw (stray `%`, `+`, `&&`, `==`,
/// percent-encoded invalid UTF-8).
fn encoded_pairs(secret: String) -> impl Strategy<Value = String> {
    let pairs = prop::collection::vec((name(), value(secret)), 0..8);
    (pairs, any::<bool>(), any::<bool>()).prop_map(|(pairs, encode, invalid_utf8)| {
        let mut text = if encode {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for (name, value) in &pairs {
                serializer.append_pair(name, value);
            }
            serializer.finish()
        } else {
            pairs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        if invalid_utf8 {
            text.push_str("&scope=%FF%FE%80&x=%&y=%zz&&==");
        }
        text
    })
}

/// An Authorization header: none, right, wrong, malformed.
fn authorization(secret: String) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(format!(
            "Basic {}",
            STANDARD.encode(format!("machine:{secret}"))
        ))),
        ("[ -~]{0,20}", "[ -~]{0,20}").prop_map(|(id, secret)| Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        ))),
        "[ -~]{0,40}".prop_map(|text| Some(format!("Basic {text}"))),
        prop::sample::select(vec![
            "Basic",
            "Basic ====",
            "Bearer x",
            "basic bWFjaGluZTp4",
            "Digest a=b"
        ])
        .prop_map(|text| Some(text.to_owned())),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        Some("application/x-www-form-urlencoded"),
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ])
}

/// RFC 6749 §5.2 error codes (and RFC 7009's unsupported_token_type).
const ERROR_CODES: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
];

async fn setup(backend: Backend) -> (TestIssuer, TestClient) {
    let app = TestIssuer::spawn(backend).await;
    let machine = app.register(ClientSpec::machine().introspection()).await;
    app.register(ClientSpec::web()).await;
    (app, machine)
}

/// The fuzz targets, once per back-end.
mod sqlite {
    #[test]
    fn fuzz_token_introspect_and_revoke_never_fail_with_5xx() {
        super::token_introspect_and_revoke(testkit::Backend::Sqlite);
    }

    #[test]
    fn fuzz_authorize_never_fails_with_5xx_nor_redirects_elsewhere() {
        super::authorize(testkit::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn fuzz_token_introspect_and_revoke_never_fail_with_5xx() {
        super::token_introspect_and_revoke(testkit::Backend::postgres());
    }

    #[test]
    fn fuzz_authorize_never_fails_with_5xx_nor_redirects_elsewhere() {
        super::authorize(testkit::Backend::postgres());
    }
}

fn token_introspect_and_revoke(backend: Backend) {
    let runtime = runtime();
    let (app, machine) = runtime.block_on(setup(backend));
    let secret = machine.secret.clone().unwrap();
    // Weighted towards well-formed requests of the real client, so that many cases get past client
    // authentication into the grant, introspection and revocation code (counted below).
    let right = format!("Basic {}", STANDARD.encode(format!("machine:{secret}")));
    // Most bodies start from a request each endpoint can answer, and the fuzz adds to it.
    let base = "grant_type=client_credentials&token=not-a-token&";
    let input = (
        prop::sample::select(vec!["/token", "/introspect", "/revoke"]),
        prop_oneof![
            3 => encoded_pairs(secret.clone()).prop_map(move |pairs| format!("{base}{pairs}").into_bytes()),
            1 => encoded_pairs(secret.clone()).prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..300),
        ],
        prop_oneof![
            3 => Just(Some("application/x-www-form-urlencoded")),
            1 => content_type(),
        ],
        prop_oneof![3 => Just(Some(right)), 1 => authorization(secret)],
        prop_oneof![
            6 => Just(reqwest::Method::POST),
            1 => Just(reqwest::Method::GET),
            1 => Just(reqwest::Method::PUT),
        ],
    );
    let past_authentication = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    runner
        .run(
            &input,
            |(path, body, content_type, authorization, method)| {
                // Each case in a new throttle window: a long run must reach the grant, introspection
                // and revocation logic, not the throttle that earlier cases' failures set off.
                app.clock.advance(61);
                runtime.block_on(async {
                    let mut request = app
                        .http
                        .request(method.clone(), app.url(path))
                        .body(body.clone());
                    if let Some(content_type) = content_type {
                        request = request.header(CONTENT_TYPE, content_type);
                    }
                    if let Some(authorization) = &authorization {
                        request = request.header(AUTHORIZATION, authorization);
                    }
                    let response = request
                        .send()
                        .await
                        .map_err(|error| TestCaseError::fail(error.to_string()))?;
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    prop_assert!(status.as_u16() < 500, "{method} {path}: {status} {text}");
                    prop_assert_ne!(
                        status,
                        429,
                        "{} {}: throttled in a fresh window",
                        method,
                        path
                    );
                    if status == 400 || status == 401 {
                        let json: serde_json::Value =
                            serde_json::from_str(&text).map_err(|_| {
                                TestCaseError::fail(format!("{status} without a JSON body: {text}"))
                            })?;
                        let code = json["error"].as_str().unwrap_or_default();
                        prop_assert!(ERROR_CODES.contains(&code), "{status} {text}");
                        // These come only from the code behind client authentication.
                        if PAST_AUTHENTICATION.contains(&code) {
                            past_authentication.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    } else if status == 200 {
                        past_authentication.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(())
                })
            },
        )
        .unwrap();
    let reached = past_authentication.into_inner();
    eprintln!(
        "fuzz: {reached} of {} cases got past client authentication",
        cases()
    );
    assert!(
        reached * 20 >= cases() as usize,
        "only {reached} of {} cases got past client authentication",
        cases()
    );
}

/// Errors only the grant, introspection and revocation code answers, after the client authenticated.
const PAST_AUTHENTICATION: [&str; 5] = [
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

fn authorize(backend: Backend) {
    let runtime = runtime();
    let (app, _) = runtime.block_on(setup(backend));
    let input = (
        encoded_pairs(String::new()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let signed_in_checked = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    runner
        .run(&input, |(query, post, with_base, with_csrf, with_login)| {
            // A quarter of the cases are sign-ins: a post of a valid request with a real CSRF token and a
            // username and password, plus whatever else the fuzz adds.
            let login = with_login && with_csrf;
            let (post, with_base) = (post || login, with_base || login);
            app.clock.advance(61);
            runtime.block_on(async {
                // Most cases start from a valid request, so the fuzz reaches past the first check.
                let base = "response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback\
                            &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&";
                let query = if with_base { format!("{base}{query}") } else { query };
                let request = if post {
                    let mut request = app
                        .http
                        .post(app.url("/authorize"))
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                    // Half the posts carry a real CSRF cookie and token, so the login and consent
                    // handling is fuzzed too, not only the CSRF check in front of it.
                    let mut body = query.clone();
                    if with_csrf {
                        let mut browser = app.browser();
                        let login = browser.get(&format!("{}?{base}", app.url("/authorize"))).await;
                        let token = login.form().field("csrf_token").unwrap_or_default().to_owned();
                        body = format!("csrf_token={token}&{query}");
                        if let Some(cookies) = browser.cookie_header() {
                            request = request.header(reqwest::header::COOKIE, cookies);
                        }
                    }
                    // A sign-in carries the valid request, and the fuzz in its username and password.
                    if login {
                        let token = body.split('&').next().unwrap_or_default().to_owned();
                        let credentials = form_urlencoded::Serializer::new(String::new())
                            .append_pair("username", &query.chars().take(40).collect::<String>())
                            .append_pair("password", &query)
                            .finish();
                        body = format!("{token}&{base}{credentials}");
                    }
                    request.body(body)
                } else {
                    app.http.get(format!("{}?{query}", app.url("/authorize")))
                };
                let response = request.send().await.map_err(|error| TestCaseError::fail(error.to_string()))?;
                let status = response.status();
                if status.is_redirection() {
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    prop_assert!(
                        location.starts_with(&format!("{REDIRECT_URI}?")),
                        "redirected to {location:?} for {query:?}"
                    );
                }
                prop_assert!(status.as_u16() < 500, "{status} for {query:?}");
                let text = response.text().await.unwrap_or_default();
                if text.contains("Invalid username or password.") {
                    signed_in_checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .unwrap();
    // A quarter of the cases are sign-ins, each in a fresh throttle window: most of them must reach the
    // password check.
    let reached = signed_in_checked.into_inner();
    eprintln!(
        "fuzz: {reached} of {} cases reached the password check",
        cases()
    );
    assert!(
        reached * 20 >= cases() as usize,
        "only {reached} of {} cases reached the password check",
        cases()
    );
}
