//! Refresh-token rotation, reuse detection, scope narrowing, client binding and atomicity.

use reqwest::StatusCode;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestClient, spawn_app};

backend_tests!(
    refresh_rotates_and_the_old_token_dies,
    refresh_token_reuse_revokes_the_family,
    scope_can_be_narrowed_never_widened,
    refresh_token_is_bound_to_its_client,
    concurrent_refresh_with_one_token_succeeds_exactly_once,
);

async fn refresh(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    app.post_token(client, &form).await
}

async fn setup(backend: Backend) -> (TestApp, TestClient, Value) {
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    app.create_user("alice").await;
    let tokens = app.code_flow(&client, "alice").await;
    (app, client, tokens)
}

async fn refresh_rotates_and_the_old_token_dies(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let response = refresh(&app, &client, first, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let rotated: Value = response.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(first, second, "a new refresh token every time");
    assert_eq!(rotated["scope"], "openid read write");
    assert_eq!(app.introspect(&client, first).await["active"], false);
    assert_eq!(app.introspect(&client, second).await["active"], true);
    assert_eq!(
        refresh(&app, &client, second, &[]).await.status(),
        StatusCode::OK
    );
}

async fn refresh_token_reuse_revokes_the_family(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let rotated: Value = refresh(&app, &client, first, &[])
        .await
        .json()
        .await
        .unwrap();
    let second = rotated["refresh_token"].as_str().unwrap();
    let access = rotated["access_token"].as_str().unwrap();
    // An attacker replays the old token.
    let reuse = refresh(&app, &client, first, &[]).await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // The whole family is dead: the newest refresh token and the access tokens descended from it.
    assert_eq!(
        refresh(&app, &client, second, &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.introspect(&client, access).await["active"], false);
    assert_eq!(
        app.introspect(&client, tokens["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
}

async fn scope_can_be_narrowed_never_widened(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let narrowed: Value = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        &[("scope", "read")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(narrowed["scope"], "read");
    assert_eq!(
        crate::helpers::claims(narrowed["access_token"].as_str().unwrap())["scope"],
        "read"
    );
    let widened = refresh(
        &app,
        &client,
        narrowed["refresh_token"].as_str().unwrap(),
        &[("scope", "read write")],
    )
    .await;
    assert_eq!(widened.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        widened.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

async fn refresh_token_is_bound_to_its_client(backend: Backend) {
    let (app, _, tokens) = setup(backend).await;
    let thief = app
        .create_client(
            "thief",
            &["refresh_token", "authorization_code"],
            false,
            "openid read write",
            &[],
            true,
        )
        .await;
    let stolen = refresh(&app, &thief, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        stolen.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn concurrent_refresh_with_one_token_succeeds_exactly_once(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, client, token) = (app.clone(), client.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            refresh(&app, &client, &token, &[]).await.status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let successes = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(successes, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::OK || *status == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}
