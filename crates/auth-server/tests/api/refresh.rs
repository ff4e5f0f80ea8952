//! Refresh-token rotation, reuse detection, scope narrowing, client binding and atomicity.

use reqwest::StatusCode;
use serde_json::Value;

use auth_core::wire::GrantType;
use testkit::jwt::claims;
use testkit::{Backend, ClientSpec, TestClient, TestIssuer, backend_tests};

backend_tests!(
    refresh_rotates_and_the_old_token_dies,
    refresh_token_reuse_revokes_the_family,
    narrowing_on_refresh_narrows_only_the_access_token,
    refresh_token_is_bound_to_its_client,
    concurrent_refresh_with_one_token_succeeds_exactly_once,
);

async fn refresh(
    app: &TestIssuer,
    client: &TestClient,
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    app.post_token(client, &form).await
}

async fn setup(backend: Backend) -> (TestIssuer, TestClient, Value) {
    let app = TestIssuer::spawn(backend).await;
    // May introspect, to see its own refresh tokens (RFC 7662 §4).
    let client = app
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    app.user("alice").await;
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
    assert_eq!(rotated["scope"], "read write");
    assert_eq!(app.introspect_as(&client, first).await["active"], false);
    assert_eq!(app.introspect_as(&client, second).await["active"], true);
    let third = refresh(&app, &client, second, &[]).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert!(third.json::<Value>().await.unwrap()["refresh_token"].is_string());
}

async fn refresh_token_reuse_revokes_the_family(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let response = refresh(&app, &client, first, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
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
    let newest = refresh(&app, &client, second, &[]).await;
    assert_eq!(newest.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        newest.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(app.introspect(access).await["active"], false);
    assert_eq!(
        app.introspect(tokens["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
}

/// RFC 6749 §6: a narrower `scope` narrows the new access token; the new refresh token keeps the scope of
/// the one presented (so a later refresh may ask for the rest again), and nothing may widen it.
async fn narrowing_on_refresh_narrows_only_the_access_token(backend: Backend) {
    let (app, client, tokens) = setup(backend).await;
    let response = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        &[("scope", "read")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let narrowed: Value = response.json().await.unwrap();
    assert_eq!(narrowed["scope"], "read");
    assert_eq!(
        claims(narrowed["access_token"].as_str().unwrap())["scope"],
        "read"
    );
    let kept = narrowed["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.introspect_as(&client, kept).await["scope"],
        "read write",
        "the new refresh token keeps the presented scope"
    );
    // So the next refresh may ask for all of it again (and gets all of it by default).
    let again = refresh(&app, &client, kept, &[("scope", "read write")]).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["scope"], "read write");
    let default = refresh(&app, &client, again["refresh_token"].as_str().unwrap(), &[]).await;
    let default: Value = default.json().await.unwrap();
    assert_eq!(default["scope"], "read write");
    // Never wider than the presented token's scope.
    let widened = refresh(
        &app,
        &client,
        default["refresh_token"].as_str().unwrap(),
        &[("scope", "read write admin")],
    )
    .await;
    assert_eq!(widened.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        widened.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    // RFC 8707: another audience than the authorization's is invalid_target.
    let presented = default["refresh_token"].as_str().unwrap();
    let elsewhere = refresh(
        &app,
        &client,
        presented,
        &[("resource", "https://elsewhere.example/")],
    )
    .await;
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        elsewhere.json::<Value>().await.unwrap()["error"],
        "invalid_target"
    );
    // Neither refusal used the token up (nor counted as reuse): it still rotates, once.
    let still = refresh(&app, &client, presented, &[]).await;
    assert_eq!(still.status(), StatusCode::OK);
    let reused = refresh(&app, &client, presented, &[]).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
}

async fn refresh_token_is_bound_to_its_client(backend: Backend) {
    let (app, _, tokens) = setup(backend).await;
    let thief = app
        .register(
            ClientSpec::confidential("thief")
                .grants([GrantType::RefreshToken, GrantType::AuthorizationCode])
                .scope("openid read write")
                .skip_consent(),
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
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, client, token, start) =
            (app.clone(), client.clone(), token.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let response = refresh(&app, &client, &token, &[]).await;
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        if *status != StatusCode::OK {
            assert_eq!(
                (*status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant"))
            );
        }
    }
    // The losers presented a token that was already used: reuse, which revokes the family, the winner's
    // tokens included (a race and a theft look the same, RFC 9700 §4.14.2).
    let winner = winners[0];
    let after = refresh(
        &app,
        &client,
        winner["refresh_token"].as_str().unwrap(),
        &[],
    )
    .await;
    assert_eq!(after.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        after.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.introspect(winner["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
}
