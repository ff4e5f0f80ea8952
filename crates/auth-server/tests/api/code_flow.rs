//! The authorization code grant end to end: HTML login and consent, PKCE, code binding and replay.

use reqwest::StatusCode;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Backend, REDIRECT_URI, TestClient, claims, pkce, spawn_app};

backend_tests!(
    code_flow_with_login_and_consent_issues_user_tokens,
    code_replay_fails_and_revokes_what_the_code_produced,
    code_is_bound_to_client_redirect_uri_and_verifier,
    expired_code_is_invalid_grant,
    public_client_uses_pkce_with_no_secret,
    oauth2_crate_runs_the_code_flow,
);

async fn code_flow_with_login_and_consent_issues_user_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client(false).await;
    let user_id = app.create_user("alice").await;
    let tokens = app.code_flow(&client, "alice").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid read write");
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

async fn exchange(
    app: &crate::helpers::TestApp,
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
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    app.create_user("alice").await;
    let (verifier, challenge) = pkce();
    let (code, _) = app
        .browser_login_and_approve(&client.id, "alice", &challenge, &[])
        .await;
    let first: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(&client, access).await["active"], true);

    let replay = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // RFC 6749 §4.1.2: everything issued from the code is revoked.
    assert_eq!(
        app.introspect(&client, access).await,
        serde_json::json!({ "active": false })
    );
    assert_eq!(
        app.introspect(&client, refresh).await,
        serde_json::json!({ "active": false })
    );
    let refreshed = app
        .post_token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
}

async fn code_is_bound_to_client_redirect_uri_and_verifier(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    let other = app
        .create_client(
            "other-web",
            &["authorization_code"],
            false,
            "read",
            &[],
            true,
        )
        .await;
    app.create_user("alice").await;
    let (verifier, challenge) = pkce();
    let (code, _) = app
        .browser_login_and_approve(&client.id, "alice", &challenge, &[])
        .await;

    let wrong_verifier = exchange(&app, &client, &code, &"x".repeat(43)).await;
    assert_eq!(
        wrong_verifier.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let other_client = exchange(&app, &other, &code, &verifier).await;
    assert_eq!(
        other_client.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
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
    assert_eq!(
        wrong_redirect.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let no_verifier = app
        .post_token(
            &client,
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    assert_eq!(
        no_verifier.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // None of the failures consumed the code: the rightful exchange still works.
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        StatusCode::OK
    );
}

async fn expired_code_is_invalid_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    app.create_user("alice").await;
    let (verifier, challenge) = pkce();
    let (code, _) = app
        .browser_login_and_approve(&client.id, "alice", &challenge, &[])
        .await;
    app.clock.advance(61);
    let response = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn public_client_uses_pkce_with_no_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app
        .create_client(
            "spa",
            &["authorization_code", "refresh_token"],
            true,
            "read",
            &[],
            true,
        )
        .await;
    assert!(client.secret.is_none());
    app.create_user("alice").await;
    let (verifier, challenge) = pkce();
    let (code, _) = app
        .browser_login_and_approve("spa", "alice", &challenge, &[])
        .await;
    let response = app
        .post_form(
            "/token",
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
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
    assert_eq!(refreshed.status(), StatusCode::OK);
    let introspection = app
        .post_form(
            "/introspect",
            &client,
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspection.status(), StatusCode::UNAUTHORIZED);
}

async fn oauth2_crate_runs_the_code_flow(backend: Backend) {
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
        RedirectUrl, Scope, TokenResponse, TokenUrl,
    };
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    app.create_user("alice").await;
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
    let (cookies, mut form) = app.login_page(authorize_url.as_str()).await;
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), crate::helpers::PASSWORD.into()));
    let redirect = app
        .http
        .post(app.url("/authorize"))
        .header("cookie", cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    let (_, params) = crate::helpers::location_params(&redirect);
    assert_eq!(
        crate::helpers::param(&params, "state"),
        Some(csrf.secret().as_str())
    );
    let code = crate::helpers::param(&params, "code").unwrap().to_owned();
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&crate::client_credentials::oauth2_http)
        .await
        .unwrap();
    assert_eq!(claims(token.access_token().secret())["scope"], "read");
    assert!(token.refresh_token().is_some());
}
