//! The authorization code grant end to end: HTML login and consent, PKCE, code binding and replay.

use reqwest::StatusCode;
use serde_json::Value;

use auth_core::wire::GrantType;
use testkit::jwt::{claims, pkce};
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    code_flow_with_login_and_consent_issues_user_tokens,
    code_replay_fails_and_revokes_what_the_code_produced,
    code_is_bound_to_client_redirect_uri_and_verifier,
    redirect_uri_at_token_is_required_and_identical_when_sent_at_authorize,
    expired_code_is_invalid_grant,
    public_client_uses_pkce_with_no_secret,
    oauth2_crate_runs_the_code_flow,
    a_request_without_scope_gets_the_default_scope_and_no_id_token,
);

/// RFC 6749 §3.3: without `scope`, the client's scopes but the OpenID Connect ones; never an ID token nobody
/// asked for, and `invalid_scope` when nothing is left.
async fn a_request_without_scope_gets_the_default_scope_and_no_id_token(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(ClientSpec::web().scope("openid profile email read write"))
        .await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let mut browser = app.browser();
    let login = browser
        .open_login(&app.authorize_url(&client.id, &challenge, &[]))
        .await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    // The page asks for what will be granted: nothing about the user's identity or profile.
    assert!(
        consent
            .html
            .contains("Access is for <code>https://api.example/</code>"),
        "{}",
        consent.html
    );
    for scope in ["\"openid\"", "\"profile\"", "\"email\""] {
        assert!(
            !consent.html.contains(scope),
            "{scope} on the page: {}",
            consent.html
        );
    }
    let approved = browser.decide(&consent, "approve").await;
    let code = browser.code_of(&approved);
    let (status, tokens) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "read write");
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["scope"],
        "read write"
    );
    // An empty scope is the same as none.
    let (verifier, challenge) = pkce();
    let code = app
        .browser()
        .login_and_approve(
            &app.authorize_url(&client.id, &challenge, &[("scope", "")]),
            "alice",
            PASSWORD,
        )
        .await;
    let (_, tokens) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(tokens["scope"], "read write");
    // A sign-in that asks only who the user is names no API on its consent page.
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let login = browser
        .open_login(&app.authorize_url(&client.id, &challenge, &[("scope", "openid profile")]))
        .await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    assert!(!consent.html.contains("Access is for"), "{}", consent.html);
    // Asked for, openid is granted, with its ID token.
    let (verifier, challenge) = pkce();
    let code = app
        .browser()
        .login_and_approve(
            &app.authorize_url(&client.id, &challenge, &[("scope", "openid read")]),
            "alice",
            PASSWORD,
        )
        .await;
    let (_, tokens) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(tokens["scope"], "openid read");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    // A client with nothing but OpenID Connect scopes has no default: invalid_scope, to its redirect URI.
    let openid_only = app
        .register(
            ClientSpec::confidential("openid-only")
                .grants([GrantType::AuthorizationCode])
                .scope("openid profile"),
        )
        .await;
    let (_, challenge) = pkce();
    let refused = app
        .browser()
        .get(&app.authorize_url(&openid_only.id, &challenge, &[]))
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.html);
    assert_eq!(
        refused.redirect_param("error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(
        refused.redirect_param("state").as_deref(),
        Some("xyz-state")
    );
}

async fn code_flow_with_login_and_consent_issues_user_tokens(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web()).await;
    let user_id = app.user("alice").await;
    let tokens = app.code_flow(&client, "alice").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        tokens["scope"], "read write",
        "the default scope (RFC 6749 §3.3): no openid unless asked"
    );
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
    let claims = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        claims["sub"],
        user_id.as_str(),
        "sub is the user id for user grants"
    );
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["aud"], "https://api.example/");
    assert!(claims["auth_time"].is_i64());
}

/// Signs alice in through a fresh browser and approves: the code.
async fn code_for(app: &TestIssuer, client_id: &str, challenge: &str) -> String {
    app.browser()
        .login_and_approve(
            &app.authorize_url(client_id, challenge, &[]),
            "alice",
            PASSWORD,
        )
        .await
}

/// The status and JSON body of a response.
async fn status_and_body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn exchange(
    app: &TestIssuer,
    client: &TestClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    app.post_token(
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn code_replay_fails_and_revokes_what_the_code_produced(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &client.id, &challenge).await;
    let (status, first) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(access).await["active"], true);

    let replay = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // RFC 6749 §4.1.2: everything issued from the code is revoked.
    assert_eq!(
        app.introspect(access).await,
        serde_json::json!({ "active": false })
    );
    assert_eq!(
        app.introspect_as(&client, refresh).await,
        serde_json::json!({ "active": false })
    );
    let (status, body) = status_and_body(
        app.post_token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

async fn code_is_bound_to_client_redirect_uri_and_verifier(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web().skip_consent()).await;
    let other = app
        .register(
            ClientSpec::confidential("other-web")
                .grants([GrantType::AuthorizationCode])
                .scope("read")
                .skip_consent(),
        )
        .await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &client.id, &challenge).await;

    let wrong_verifier = exchange(&app, &client, &code, &"x".repeat(43)).await;
    let (status, body) = status_and_body(wrong_verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let other_client = exchange(&app, &other, &code, &verifier).await;
    let (status, body) = status_and_body(other_client).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let wrong_redirect = app
        .post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    let (status, body) = status_and_body(wrong_redirect).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let no_verifier = app
        .post_token(
            &client,
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    let (status, body) = status_and_body(no_verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // None of the failures consumed the code: the rightful exchange still works.
    let (status, tokens) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
}

/// RFC 6749 §4.1.3: "ensure that the redirect_uri parameter is present if [it] was included in the initial
/// authorization request, and if included ensure that their values are identical".
async fn redirect_uri_at_token_is_required_and_identical_when_sent_at_authorize(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &client.id, &challenge).await;
    let attempt = async |redirect_uri: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(redirect_uri) = redirect_uri {
            form.push(("redirect_uri", redirect_uri));
        }
        status_and_body(app.post_token(&client, &form).await).await
    };
    let (status, body) = attempt(None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "left out: {body}"
    );
    // Equivalent as a URL, but not the identical string.
    for variant in [
        "HTTP://127.0.0.1:9/callback",
        "http://127.0.0.1:9/callback?",
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/%63allback",
    ] {
        let (status, body) = attempt(Some(variant)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{variant}: {body}"
        );
    }
    // None of them used the code up.
    let (status, tokens) = attempt(Some(REDIRECT_URI)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // An authorization request without redirect_uri (one registered URI): the token request may leave it
    // out, and if it sends one, it must be the registered URI.
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&app.authorize_url(&client.id, &challenge, &[])).unwrap();
    let query: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != "redirect_uri")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(query);
    let code = app
        .browser()
        .login_and_approve(url.as_str(), "alice", PASSWORD)
        .await;
    let wrong = app
        .post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", "http://127.0.0.1:9/other"),
            ],
        )
        .await;
    let (status, body) = status_and_body(wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, tokens) = status_and_body(
        app.post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

async fn expired_code_is_invalid_grant(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &client.id, &challenge).await;
    // Valid for --auth-code-ttl (60 s): at 59 s another code still works, at 60 s this one does not.
    let (other_verifier, other_challenge) = pkce();
    let other = code_for(&app, &client.id, &other_challenge).await;
    app.clock.advance(59);
    let (status, _) = status_and_body(exchange(&app, &client, &other, &other_verifier).await).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(2);
    let (status, body) = status_and_body(exchange(&app, &client, &code, &verifier).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

async fn public_client_uses_pkce_with_no_secret(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(
            ClientSpec::public("spa")
                .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
                .scope("read")
                .skip_consent(),
        )
        .await;
    assert!(client.secret.is_none());
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, "spa", &challenge).await;
    // Without the verifier, the public client has nothing to prove the code is its own.
    let (status, body) = status_and_body(
        app.post_form(
            "/token",
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, tokens) = status_and_body(
        app.post_form(
            "/token",
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // A public client may refresh with `none` authentication, and may not introspect.
    let refreshed = app
        .post_form(
            "/token",
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    let (status, refreshed) = status_and_body(refreshed).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(
        refreshed["refresh_token"], tokens["refresh_token"],
        "rotated"
    );
    let (status, body) = status_and_body(
        app.post_form(
            "/introspect",
            &client,
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

async fn oauth2_crate_runs_the_code_flow(backend: Backend) {
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
        RedirectUrl, Scope, TokenResponse, TokenUrl,
    };
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let oauth = oauth2::basic::BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone().unwrap()))
        .set_auth_uri(AuthUrl::new(app.url("/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The browser part: login form, then (skip-consent client) straight to the redirect.
    let mut browser = app.browser();
    let login = browser.open_login(authorize_url.as_str()).await;
    let redirect = browser.sign_in(&login, "alice", PASSWORD).await;
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    assert_eq!(
        redirect.redirect_param("state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = redirect.redirect_param("code").unwrap();
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&crate::client_credentials::oauth2_http)
        .await
        .unwrap();
    assert_eq!(claims(token.access_token().secret())["scope"], "read");
    assert!(token.refresh_token().is_some());
}
