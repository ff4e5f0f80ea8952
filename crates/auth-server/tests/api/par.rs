//! Pushed authorization requests (RFC 9126): pushed over the client's authenticated channel, validated as
//! /authorize validates, answered as JSON; the `request_uri` carries the browser through login and consent
//! once, expires, belongs to its client, and makes the other query parameters irrelevant.

use reqwest::StatusCode;
use serde_json::Value;

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use testkit::jwt::pkce;
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    a_pushed_request_carries_the_user_through_login_and_consent_once,
    pushes_are_validated_like_authorize_and_answered_as_json,
    a_request_uri_expires_and_belongs_to_its_client,
    a_client_that_requires_par_cannot_skip_it,
    each_refusal_is_counted_once_in_the_error_metric,
);

/// The value of `auth_oauth_errors_total` for `code` in the server's metrics (0 when absent).
async fn errors_counted(app: &TestIssuer, code: &str) -> u64 {
    let text = app.metrics().await;
    let prefix = format!("auth_oauth_errors_total{{error=\"{code}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn each_refusal_is_counted_once_in_the_error_metric(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode])
                .scope("read"),
        )
        .await;
    let (_, challenge) = pkce();
    let mut form = parameters(&challenge);
    form[2].1 = "admin".into();
    // A refused push: one JSON answer, one count.
    let refused = push(&app, &web, &form).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(errors_counted(&app, "invalid_scope").await, 1);
    // The same refusal at /authorize: one error redirect, one more count.
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "web")
        .extend_pairs(form.iter().map(|(name, value)| (*name, value.as_str())));
    let page = app.browser().get(url.as_str()).await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(errors_counted(&app, "invalid_scope").await, 2);
    // A page (unknown client: no redirect) is not an OAuth error sent to a client.
    let unknown = app
        .browser()
        .get(&app.url("/authorize?client_id=nobody&response_type=code"))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(errors_counted(&app, "invalid_request").await, 0);
}

/// The authorization parameters of a push, with this challenge.
fn parameters(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT_URI.into()),
        ("scope", "read".into()),
        ("state", "xyz-state".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

/// POST /par as `client` (Basic, or client_id for a public client).
async fn push(app: &TestIssuer, client: &TestClient, form: &[(&str, String)]) -> reqwest::Response {
    let request = app.http.post(app.url("/par"));
    let request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)),
        None => request,
    };
    let mut body: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if client.secret.is_none() {
        body.push(("client_id", &client.id));
    }
    request.form(&body).send().await.unwrap()
}

/// The authorization URL that uses a pushed request.
fn authorize_with(
    app: &TestIssuer,
    client_id: &str,
    request_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .extend_pairs(extra);
    url.to_string()
}

async fn pushed_uri(app: &TestIssuer, client: &TestClient, challenge: &str) -> String {
    let response = push(app, client, &parameters(challenge)).await;
    let status = response.status();
    let cache_control = response.headers().get("cache-control").cloned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(cache_control.unwrap(), "no-store");
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{uri}"
    );
    uri
}

async fn a_pushed_request_carries_the_user_through_login_and_consent_once(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode])
                .scope("read write"),
        )
        .await;
    app.user("alice").await;
    let metadata = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["pushed_authorization_request_endpoint"],
        app.url("/par")
    );
    assert_eq!(metadata["require_pushed_authorization_requests"], false);
    let (verifier, challenge) = pkce();
    let request_uri = pushed_uri(&app, &web, &challenge).await;
    // Parameters outside the pushed request are ignored (RFC 9126 §4): not this state, not this scope.
    let url = authorize_with(
        &app,
        "web",
        &request_uri,
        &[
            ("state", "forged"),
            ("scope", "write"),
            ("redirect_uri", "https://evil.example/"),
        ],
    );
    let mut browser = app.browser();
    let login = browser.open_login(&url).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    // The form carries only the client and the request_uri.
    let form = consent.form();
    assert_eq!(form.field("request_uri"), Some(request_uri.as_str()));
    assert!(form.field("scope").is_none());
    let approved = browser.decide(&consent, "approve").await;
    let code = browser.code_of(&approved);
    let tokens = app
        .post_token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(tokens["scope"], "read");
    // Used: the same request_uri now is an error page, never a second code.
    let again = browser.get(&url).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.location().is_none());
    assert!(again.html.contains("invalid_request_uri"), "{}", again.html);
    // A public client pushes with its client_id and PKCE.
    let spa = app
        .register(
            ClientSpec::public("spa")
                .grants([GrantType::AuthorizationCode])
                .scope("read write")
                .skip_consent(),
        )
        .await;
    let (_, challenge) = pkce();
    let spa_uri = pushed_uri(&app, &spa, &challenge).await;
    let page = browser
        .get(&authorize_with(&app, "spa", &spa_uri, &[]))
        .await;
    assert!(page.redirect_param("code").is_some(), "{}", page.html);
    // A private_key_jwt client pushes with an assertion addressed to the PAR endpoint (RFC 9126 §2).
    let key = testkit::dpop::ProofKey::generate("ES256");
    let mut jwk = key.public_jwk();
    jwk["kid"] = serde_json::json!("k1");
    app.register(
        ClientSpec::confidential("signer")
            .grants([GrantType::AuthorizationCode])
            .scope("read write")
            .jwks(&[jwk]),
    )
    .await;
    let now = app.clock.now();
    let assertion = key.sign(
        &serde_json::json!({ "alg": "ES256", "kid": "k1" }),
        &serde_json::json!({ "iss": "signer", "sub": "signer", "aud": app.issuer(),
                             "exp": now + 60, "jti": "par-1" }),
    );
    let (_, challenge) = pkce();
    let mut form: Vec<(&str, String)> = parameters(&challenge);
    form.push(("client_id", "signer".into()));
    form.push((
        "client_assertion_type",
        auth_core::client_assertion::ASSERTION_TYPE.into(),
    ));
    form.push(("client_assertion", assertion));
    let response = app
        .http
        .post(app.url("/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // rfc7523bis §5 (updating RFC 9126 §2): the issuer is the PAR endpoint's audience too; the token or PAR
    // endpoint URL is not (audience injection).
    for (aud, jti) in [(app.url("/token"), "par-2"), (app.url("/par"), "par-3")] {
        let assertion = key.sign(
            &serde_json::json!({ "alg": "ES256", "kid": "k1" }),
            &serde_json::json!({ "iss": "signer", "sub": "signer", "aud": aud,
                                 "exp": now + 60, "jti": jti }),
        );
        form.pop();
        form.push(("client_assertion", assertion));
        let response = app
            .http
            .post(app.url("/par"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{aud}");
    }
}

async fn pushes_are_validated_like_authorize_and_answered_as_json(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode])
                .scope("read write"),
        )
        .await;
    let (_, challenge) = pkce();
    let with = |name: &'static str, value: Option<&str>| {
        let mut form: Vec<(&str, String)> = parameters(&challenge)
            .into_iter()
            .filter(|(key, _)| *key != name)
            .collect();
        if let Some(value) = value {
            form.push((name, value.to_owned()));
        }
        form
    };
    for (why, form, code) in [
        (
            "a request_uri",
            with("request_uri", Some("urn:x")),
            "invalid_request",
        ),
        (
            "an unregistered redirect_uri",
            with("redirect_uri", Some("https://evil.example/cb")),
            "invalid_request",
        ),
        (
            "no code_challenge",
            with("code_challenge", None),
            "invalid_request",
        ),
        (
            "plain PKCE",
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            "response_type token",
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            "a scope not registered",
            with("scope", Some("admin")),
            "invalid_scope",
        ),
        (
            "another client_id",
            with("client_id", Some("other")),
            "invalid_request",
        ),
    ] {
        let response = push(&app, &web, &form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{why}: {body}");
    }
    let wrong = push(
        &app,
        &web.with_secret("wrong-secret-wrong-secret-wrong-secret"),
        &parameters(&challenge),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

async fn a_request_uri_expires_and_belongs_to_its_client(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode])
                .scope("read write")
                .skip_consent(),
        )
        .await;
    app.register(
        ClientSpec::confidential("other")
            .grants([GrantType::AuthorizationCode])
            .scope("read write")
            .skip_consent(),
    )
    .await;
    let (_, challenge) = pkce();
    let request_uri = pushed_uri(&app, &web, &challenge).await;
    let mut browser = app.browser();
    let foreign = browser
        .get(&authorize_with(&app, "other", &request_uri, &[]))
        .await;
    assert_eq!(
        foreign.status,
        StatusCode::BAD_REQUEST,
        "another client's request_uri"
    );
    assert!(foreign.location().is_none());
    let made_up = browser
        .get(&authorize_with(
            &app,
            "web",
            "urn:ietf:params:oauth:request_uri:made-up",
            &[],
        ))
        .await;
    assert_eq!(made_up.status, StatusCode::BAD_REQUEST);
    app.clock.advance(61);
    let expired = browser
        .get(&authorize_with(&app, "web", &request_uri, &[]))
        .await;
    assert_eq!(
        expired.status,
        StatusCode::BAD_REQUEST,
        "expired after 60 s"
    );
    assert!(expired.location().is_none());
    let _ = app.clock.now();
}

async fn a_client_that_requires_par_cannot_skip_it(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let strict = app
        .register(
            ClientSpec::confidential("strict")
                .grants([GrantType::AuthorizationCode])
                .scope("read write")
                .skip_consent()
                .require_par(),
        )
        .await;
    app.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let page = browser
        .get(&app.authorize_url("strict", &challenge, &[]))
        .await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(page.redirect_param("state").as_deref(), Some("xyz-state"));
    let request_uri = pushed_uri(&app, &strict, &challenge).await;
    let login = browser
        .open_login(&authorize_with(&app, "strict", &request_uri, &[]))
        .await;
    let done = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(done.redirect_param("code").is_some(), "{}", done.html);
}
