//! /introspect (RFC 7662) and /revoke (RFC 7009).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    introspection_describes_active_tokens_and_hides_everything_else,
    revoked_access_token_is_inactive_until_its_exp,
    revoking_a_refresh_token_revokes_its_family,
    revoke_answers_200_for_unknown_and_foreign_tokens_without_effect,
    introspection_requires_client_authentication,
    expired_deny_list_entries_and_codes_are_purged,
);

async fn introspection_describes_active_tokens_and_hides_everything_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.machine_client().await;
    let token = app.access_token(&client).await;
    let response = app
        .post_form(
            "/introspect",
            &client,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    for member in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "jti",
        "token_type",
    ] {
        assert!(body.get(member).is_some(), "{member} missing: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    for garbage in ["", "garbage", "a.b.c", &format!("{token}x")] {
        let response = app
            .post_form("/introspect", &client, &[("token", garbage)])
            .await;
        if garbage.is_empty() {
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "token is required"
            );
        } else {
            assert_eq!(
                response.json::<Value>().await.unwrap(),
                json!({ "active": false }),
                "{garbage}"
            );
        }
    }
    app.clock.advance(901);
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false }),
        "expired"
    );
}

async fn revoked_access_token_is_inactive_until_its_exp(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.machine_client().await;
    let token = app.access_token(&client).await;
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false })
    );
    // Revoking twice is fine.
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
}

async fn revoking_a_refresh_token_revokes_its_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client(true).await;
    app.create_user("alice").await;
    let tokens = app.code_flow(&client, "alice").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.post_form(
            "/revoke",
            &client,
            &[("token", refresh), ("token_type_hint", "refresh_token")]
        )
        .await
        .status(),
        StatusCode::OK
    );
    assert_eq!(app.introspect(&client, refresh).await["active"], false);
    assert_eq!(app.introspect(&client, access).await["active"], false);
    let response = app
        .post_token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn revoke_answers_200_for_unknown_and_foreign_tokens_without_effect(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.machine_client().await;
    let other = app
        .create_client("other", &["client_credentials"], false, "read", &[], false)
        .await;
    let token = app.access_token(&owner).await;
    assert_eq!(app.revoke(&other, "never-issued").await, StatusCode::OK);
    assert_eq!(
        app.revoke(&other, &token).await,
        StatusCode::OK,
        "RFC 7009 §2.2: same answer"
    );
    assert_eq!(
        app.introspect(&owner, &token).await["active"],
        true,
        "a client can revoke only its own tokens"
    );
}

async fn introspection_requires_client_authentication(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.machine_client().await;
    let token = app.access_token(&client).await;
    let anonymous = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let revoke_anonymous = app
        .http
        .post(app.url("/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke_anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn expired_deny_list_entries_and_codes_are_purged(backend: Backend) {
    use auth_core::clock::Clock;
    let app = spawn_app(backend).await;
    let client = app.machine_client().await;
    let token = app.access_token(&client).await;
    app.revoke(&client, &token).await;
    let now = app.clock.now();
    assert_eq!(
        app.state.store.purge_expired(now).await.unwrap(),
        0,
        "nothing has expired yet"
    );
    assert_eq!(
        app.state.store.purge_expired(now + 901).await.unwrap(),
        1,
        "the deny-list entry outlives its token by nothing"
    );
}
