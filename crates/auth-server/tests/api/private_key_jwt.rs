//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): assertions signed by an
//! independent JOSE implementation (`testkit::dpop`, RustCrypto) with ES256, EdDSA, Ed25519, RS256 and PS256
//! keys; replays, wrong audiences, lifetimes, foreign keys and mixed methods refused; `jwks_uri` fetched with a
//! cache, a size cap and a timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::client_assertion::ASSERTION_TYPE;
use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use testkit::dpop::ProofKey;
use testkit::{Backend, ClientSpec, TestIssuer, backend_tests};

backend_tests!(
    clients_authenticate_with_assertions_of_every_algorithm_at_every_endpoint,
    assertions_are_refused_when_replayed_misaddressed_expired_or_foreign,
    a_jwks_uri_is_fetched_once_and_a_slow_huge_or_dead_one_fails_closed,
);

/// A key with its `kid`, and its public JWK as registered.
fn keyed(alg: &str, kid: &str) -> (ProofKey, Value) {
    let key = ProofKey::generate(alg);
    let mut jwk = key.public_jwk();
    jwk["kid"] = json!(kid);
    (key, jwk)
}

/// An assertion for `client_id` to `aud`, valid for a minute from `now`, with a fresh `jti`.
fn assertion(key: &ProofKey, kid: &str, client_id: &str, aud: Value, now: i64) -> String {
    assertion_with(key, kid, |claims| {
        claims["iss"] = json!(client_id);
        claims["sub"] = json!(client_id);
        claims["aud"] = aud;
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 60);
    })
}

fn assertion_with(key: &ProofKey, kid: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = json!({ "jti": uuid::Uuid::new_v4().to_string() });
    change(&mut claims);
    key.sign(
        &json!({ "alg": key.alg(), "kid": kid, "typ": "JWT" }),
        &claims,
    )
}

/// POST `form` plus the assertion to `path`; the status. Every refusal (401) is checked to carry the body of
/// RFC 6749 §5.2 with `invalid_client`, whatever the reason.
async fn post(app: &TestIssuer, path: &str, assertion: &str, form: &[(&str, &str)]) -> StatusCode {
    let mut body = vec![
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    body.extend_from_slice(form);
    let response = app
        .http
        .post(app.url(path))
        .form(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_client", "{path}: {error}");
    }
    status
}

const CLIENT_CREDENTIALS: &[(&str, &str)] = &[("grant_type", "client_credentials")];

async fn clients_authenticate_with_assertions_of_every_algorithm_at_every_endpoint(
    backend: Backend,
) {
    let app = TestIssuer::spawn(backend).await;
    let metadata = app.metadata().await;
    for member in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert!(
            metadata[member]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{member}"
        );
    }
    assert_eq!(
        metadata["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
    let token_url = app.url("/token");
    for (i, alg) in ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"]
        .iter()
        .enumerate()
    {
        let id = format!("signer-{i}");
        let (key, jwk) = keyed(alg, "k1");
        app.register(
            ClientSpec::confidential(&id)
                .grants([GrantType::ClientCredentials])
                .introspection()
                .jwks(&[jwk]),
        )
        .await;
        let now = app.clock.now();
        // aud the issuer identifier, as a string or a one-member array (rfc7523bis §4).
        for aud in [json!(app.issuer()), json!([app.issuer()])] {
            let signed = assertion(&key, "k1", &id, aud.clone(), now);
            let mut form = vec![("client_id", id.as_str())];
            form.extend_from_slice(CLIENT_CREDENTIALS);
            assert_eq!(
                post(&app, "/token", &signed, &form).await,
                StatusCode::OK,
                "{alg} {aud}"
            );
        }
        // Without client_id: the assertion's sub names the client (RFC 7521 §4.2).
        let signed = assertion(&key, "k1", &id, json!(app.issuer()), now);
        let response = app
            .http
            .post(&token_url)
            .form(&[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", signed.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{alg} without client_id");
        let token: Value = response.json().await.unwrap();
        let token = token["access_token"].as_str().unwrap();
        // /introspect and /revoke take the same audience: the issuer.
        let at_introspect = assertion(&key, "k1", &id, json!(app.issuer()), now);
        let response = app
            .http
            .post(app.url("/introspect"))
            .form(&[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", at_introspect.as_str()),
                ("token", token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{alg} at /introspect");
        let introspection: Value = response.json().await.unwrap();
        assert_eq!(introspection["active"], true);
        let at_revoke = assertion(&key, "k1", &id, json!(app.issuer()), now);
        assert_eq!(
            post(&app, "/revoke", &at_revoke, &[("token", token)]).await,
            StatusCode::OK,
            "{alg} at /revoke"
        );
        assert_eq!(app.introspect(token).await["active"], false);
    }
}

async fn assertions_are_refused_when_replayed_misaddressed_expired_or_foreign(backend: Backend) {
    let app = TestIssuer::spawn(backend.clone()).await;
    let replica = app.replica().await;
    let (key, jwk) = keyed("ES256", "k1");
    let (stranger, stranger_jwk) = keyed("ES256", "k1");
    app.register(
        ClientSpec::confidential("signer")
            .grants([GrantType::ClientCredentials])
            .jwks(&[jwk]),
    )
    .await;
    app.register(
        ClientSpec::confidential("other")
            .grants([GrantType::ClientCredentials])
            .jwks(&[stranger_jwk]),
    )
    .await;
    let secret_client = app
        .register(ClientSpec::confidential("secretive").grants([GrantType::ClientCredentials]))
        .await;
    let now = app.clock.now();
    let issuer = json!(app.issuer());
    let form: Vec<(&str, &str)> = vec![
        ("client_id", "signer"),
        ("grant_type", "client_credentials"),
    ];
    // Used once, at either replica.
    let once = assertion(&key, "k1", "signer", issuer.clone(), now);
    assert_eq!(post(&app, "/token", &once, &form).await, StatusCode::OK);
    assert_eq!(
        post(&replica, "/token", &once, &form).await,
        StatusCode::UNAUTHORIZED,
        "replayed at the other replica"
    );
    assert_eq!(
        post(&app, "/token", &once, &form).await,
        StatusCode::UNAUTHORIZED,
        "replayed"
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            assertion(
                &key,
                "k1",
                "signer",
                json!("https://elsewhere.example"),
                now,
            ),
        ),
        // FAPI 2.0 Security Profile §5.3.2.1 and rfc7523bis §4 (audience injection, CVE-2025-27370/27371):
        // the issuer alone, never an endpoint URL or an array with anything else.
        (
            "aud the token endpoint URL",
            assertion(&key, "k1", "signer", json!(app.url("/token")), now),
        ),
        (
            "aud the endpoint it was sent to",
            assertion(&key, "k1", "signer", json!(app.url("/revoke")), now),
        ),
        (
            "aud an array with the issuer and another",
            assertion(
                &key,
                "k1",
                "signer",
                json!([app.issuer(), "https://elsewhere.example"]),
                now,
            ),
        ),
        (
            "aud an array of the token endpoint",
            assertion(&key, "k1", "signer", json!([app.url("/token")]), now),
        ),
        (
            "iat 90 s ahead",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("signer");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
                claims["exp"] = json!(now + 150);
                claims["iat"] = json!(now + 90);
            }),
        ),
        (
            "nbf 90 s ahead",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("signer");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
                claims["exp"] = json!(now + 150);
                claims["nbf"] = json!(now + 90);
            }),
        ),
        (
            "expired",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("signer");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
                claims["exp"] = json!(now - 120);
            }),
        ),
        (
            "an hour long",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("signer");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
                claims["exp"] = json!(now + 3600);
            }),
        ),
        (
            "no exp",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("signer");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
            }),
        ),
        (
            "iss is another client",
            assertion_with(&key, "k1", |claims| {
                claims["iss"] = json!("other");
                claims["sub"] = json!("signer");
                claims["aud"] = issuer.clone();
                claims["exp"] = json!(now + 60);
            }),
        ),
        (
            "signed by another client's key",
            assertion(&stranger, "k1", "signer", issuer.clone(), now),
        ),
        (
            "alg none",
            format!(
                "{}.",
                assertion(&key, "k1", "signer", issuer.clone(), now)
                    .rsplit_once('.')
                    .unwrap()
                    .0
                    .replacen(
                        &base64_url(
                            &json!({ "alg": "ES256", "kid": "k1", "typ": "JWT" }).to_string()
                        ),
                        &base64_url(&json!({ "alg": "none", "kid": "k1" }).to_string()),
                        1
                    )
            ),
        ),
    ];
    for (why, signed) in &cases {
        assert_eq!(
            post(&app, "/token", signed, &form).await,
            StatusCode::UNAUTHORIZED,
            "{why}"
        );
    }
    // A clock 8 s ahead of ours is skew, not an attack.
    let ahead = assertion_with(&key, "k1", |claims| {
        claims["iss"] = json!("signer");
        claims["sub"] = json!("signer");
        claims["aud"] = issuer.clone();
        claims["exp"] = json!(now + 68);
        claims["iat"] = json!(now + 8);
        claims["nbf"] = json!(now + 8);
    });
    assert_eq!(post(&app, "/token", &ahead, &form).await, StatusCode::OK);
    // --accept-token-endpoint-audience: the token endpoint URL too, as one string, at every endpoint.
    let older = TestIssuer::spawn_with(backend, |serve| {
        serve.accept_token_endpoint_audience = true;
    })
    .await;
    let (old_key, old_jwk) = keyed("ES256", "k1");
    older
        .register(
            ClientSpec::confidential("signer")
                .grants([GrantType::ClientCredentials])
                .jwks(&[old_jwk]),
        )
        .await;
    let now = older.clock.now();
    let to_token = assertion(&old_key, "k1", "signer", json!(older.url("/token")), now);
    assert_eq!(
        post(&older, "/token", &to_token, &form).await,
        StatusCode::OK
    );
    for aud in [json!(older.url("/revoke")), json!([older.url("/token")])] {
        let refused = assertion(&old_key, "k1", "signer", aud.clone(), now);
        assert_eq!(
            post(&older, "/token", &refused, &form).await,
            StatusCode::UNAUTHORIZED,
            "{aud}"
        );
    }
    // A client with a secret cannot use an assertion, nor one with keys a secret; never both at once.
    let at_secret = assertion(&key, "k1", "secretive", issuer.clone(), now);
    let form_secretive: Vec<(&str, &str)> = vec![
        ("client_id", "secretive"),
        ("grant_type", "client_credentials"),
    ];
    assert_eq!(
        post(&app, "/token", &at_secret, &form_secretive).await,
        StatusCode::UNAUTHORIZED
    );
    let with_secret = app
        .http
        .post(app.url("/token"))
        .basic_auth("signer", Some(secret_client.secret.as_deref().unwrap()))
        .form(CLIENT_CREDENTIALS)
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret.status(), StatusCode::UNAUTHORIZED);
    let both = app
        .http
        .post(app.url("/token"))
        .basic_auth("signer", Some("x"))
        .form(&[
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                assertion(&key, "k1", "signer", issuer.clone(), now).as_str(),
            ),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let wrong_type = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("client_assertion_type", "urn:example:other"),
            (
                "client_assertion",
                assertion(&key, "k1", "signer", issuer.clone(), now).as_str(),
            ),
            ("client_id", "signer"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNAUTHORIZED);
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// A client's JWKS host. Every route serves the client's real keys, so only the fetch rule in question can
/// make it fail: `/good` (counting fetches; the document can be swapped), `/slow` (after 8 s), `/huge` (the
/// keys plus 100 KiB of padding), `/redirect` (a 302 to `/good`), `/counted` (counting fetches, after 300 ms, for
/// the per-client lock).
async fn jwks_host(
    document: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    huge_fetches: Arc<AtomicUsize>,
    locked_fetches: Arc<AtomicUsize>,
) -> String {
    use axum::routing::get;
    let serve = |document: &Arc<std::sync::Mutex<Value>>| document.lock().unwrap().to_string();
    let json = |body: String| ([("content-type", "application/json")], body);
    let app = axum::Router::new()
        .route(
            "/good",
            get({
                let document = document.clone();
                move || {
                    let body = serve(&document);
                    fetches.fetch_add(1, Ordering::SeqCst);
                    async move { json(body) }
                }
            }),
        )
        .route(
            "/slow",
            get({
                let document = document.clone();
                move || {
                    let body = serve(&document);
                    async move {
                        tokio::time::sleep(Duration::from_secs(8)).await;
                        json(body)
                    }
                }
            }),
        )
        .route(
            "/huge",
            get({
                let document = document.clone();
                move || {
                    huge_fetches.fetch_add(1, Ordering::SeqCst);
                    let mut value = document.lock().unwrap().clone();
                    value["padding"] = json!("x".repeat(100 * 1024));
                    async move { json(value.to_string()) }
                }
            }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [("location", "/good")]) }),
        )
        .route(
            "/counted",
            get({
                let document = document.clone();
                move || {
                    let body = serve(&document);
                    locked_fetches.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        json(body)
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

async fn a_jwks_uri_is_fetched_once_and_a_slow_huge_or_dead_one_fails_closed(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let (key, jwk) = keyed("EdDSA", "k1");
    let document = Arc::new(std::sync::Mutex::new(json!({ "keys": [jwk] })));
    let fetches = Arc::new(AtomicUsize::new(0));
    let huge_fetches = Arc::new(AtomicUsize::new(0));
    let locked_fetches = Arc::new(AtomicUsize::new(0));
    let host = jwks_host(
        document.clone(),
        fetches.clone(),
        huge_fetches.clone(),
        locked_fetches.clone(),
    )
    .await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", listener.local_addr().unwrap())
    };
    for (id, uri) in [
        ("fetched", format!("{host}/good")),
        ("slow", format!("{host}/slow")),
        ("huge", format!("{host}/huge")),
        ("redirected", format!("{host}/redirect")),
        ("locked", format!("{host}/counted")),
        ("dead", dead),
    ] {
        app.register(
            ClientSpec::confidential(id)
                .grants([GrantType::ClientCredentials])
                .jwks_uri(&uri),
        )
        .await;
    }
    // Registering bumps the config version, and the server drops its fetched keys (and their cooldowns) when
    // its poll (every 100 ms here) sees that: let it see it first, so the counts below are not reset halfway.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let now = app.clock.now();
    let issuer = json!(app.issuer());
    let form = |id: &'static str| [("client_id", id), ("grant_type", "client_credentials")];
    for _ in 0..3 {
        let signed = assertion(&key, "k1", "fetched", issuer.clone(), now);
        assert_eq!(
            post(&app, "/token", &signed, &form("fetched")).await,
            StatusCode::OK
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached");
    // Ten requests of one client at once share one fetch (a lock per client).
    let mut concurrent = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let signed = assertion(&key, "k1", "locked", issuer.clone(), now);
        let (http, url) = (app.http.clone(), app.url("/token"));
        concurrent.spawn(async move {
            http.post(url)
                .form(&[
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", signed.as_str()),
                    ("client_id", "locked"),
                    ("grant_type", "client_credentials"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = concurrent.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        locked_fetches.load(Ordering::SeqCst),
        1,
        "one fetch per client at a time"
    );
    // A new key under a new kid is not fetched again within the cooldown: a flood of made-up kids cannot make
    // the server hammer the client's host.
    let (rotated, rotated_jwk) = keyed("EdDSA", "k2");
    *document.lock().unwrap() = json!({ "keys": [rotated_jwk.clone()] });
    for _ in 0..3 {
        let signed = assertion(&rotated, "k2", "fetched", issuer.clone(), now);
        assert_eq!(
            post(&app, "/token", &signed, &form("fetched")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the cooldown holds");
    *document.lock().unwrap() = json!({ "keys": [rotated_jwk, jwk_of(&key, "k1")] });
    // The slow (8 s, past the 5 s timeout), huge (past 64 KiB), redirecting and dead hosts serve the right
    // keys or none: each fails closed, with the body of RFC 6749 §5.2, while another client is served.
    let slow = {
        let signed = assertion(&key, "k1", "slow", issuer.clone(), now);
        let (http, url) = (app.http.clone(), app.url("/token"));
        tokio::spawn(async move {
            http.post(url)
                .form(&[
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", signed.as_str()),
                    ("client_id", "slow"),
                    ("grant_type", "client_credentials"),
                ])
                .send()
                .await
                .unwrap()
        })
    };
    let meanwhile = assertion(&key, "k1", "locked", issuer.clone(), now);
    let started = std::time::Instant::now();
    assert_eq!(
        post(&app, "/token", &meanwhile, &form("locked")).await,
        StatusCode::OK
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "another client waited for a slow host"
    );
    let slow = slow.await.unwrap();
    assert_eq!(slow.status(), StatusCode::UNAUTHORIZED, "slow");
    let body: Value = slow.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "slow");
    for id in ["huge", "redirected", "dead", "huge"] {
        let signed = assertion(&key, "k1", id, issuer.clone(), now);
        let response = app
            .http
            .post(app.url("/token"))
            .form(&[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", signed.as_str()),
                ("client_id", id),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{id}");
    }
    // A failed fetch starts the cooldown too: the second try did not fetch again.
    assert_eq!(huge_fetches.load(Ordering::SeqCst), 1);
}

/// The public JWK of `key` under `kid`.
fn jwk_of(key: &ProofKey, kid: &str) -> Value {
    let mut jwk = key.public_jwk();
    jwk["kid"] = json!(kid);
    jwk
}
