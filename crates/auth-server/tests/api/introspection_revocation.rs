//! /introspect (RFC 7662) and /revoke (RFC 7009).

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::wire::GrantType;
use testkit::jwt::{claims, pkce};
use testkit::{Backend, ClientSpec, PASSWORD, TestIssuer, backend_tests};

backend_tests!(
    introspection_describes_active_tokens_and_hides_everything_else,
    revoked_access_token_is_inactive_until_its_exp,
    revoking_a_refresh_token_revokes_its_family,
    revoke_answers_200_for_unknown_and_foreign_tokens_without_effect,
    introspection_requires_client_authentication,
    expired_deny_list_entries_and_codes_are_purged,
);

async fn introspection_describes_active_tokens_and_hides_everything_else(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let token = app.access_token(&client).await;
    let response = app
        .post_form(
            "/introspect",
            &client,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let issued = claims(&token);
    assert_eq!(
        body,
        json!({
            "active": true,
            "scope": "read write",
            "client_id": "machine",
            "sub": "machine",
            "aud": "resource-api",
            "iss": app.issuer(),
            "exp": issued["exp"],
            "iat": issued["iat"],
            "jti": issued["jti"],
            "token_type": "Bearer",
        })
    );
    assert_eq!(
        issued["exp"].as_i64().unwrap() - issued["iat"].as_i64().unwrap(),
        900
    );
    let response = app
        .post_form("/introspect", &client, &[("token", "")])
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "token is required"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    for garbage in ["garbage", "a.b.c", &format!("{token}x")] {
        let response = app
            .post_form("/introspect", &client, &[("token", garbage)])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "RFC 7662 §2.2");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({ "active": false }),
            "{garbage}"
        );
    }
    // Active up to its last second, inactive from exp on (no leeway at the issuer, RFC 7662 §2.2).
    app.clock.advance(899);
    assert_eq!(app.introspect(&client, &token).await["active"], true);
    app.clock.advance(1);
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false }),
        "expired"
    );
}

async fn revoked_access_token_is_inactive_until_its_exp(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    use auth_core::clock::Clock;
    let token = app.access_token(&client).await;
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false })
    );
    // Revoking twice is fine.
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    // Until its last second, purging keeps the deny-list entry; after exp the entry may go, and the
    // token stays inactive because it has expired.
    app.clock.advance(899);
    app.state
        .store
        .purge_expired(app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false })
    );
    app.clock.advance(2);
    app.state
        .store
        .purge_expired(app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        app.introspect(&client, &token).await,
        json!({ "active": false })
    );
}

async fn revoking_a_refresh_token_revokes_its_family(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
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
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn revoke_answers_200_for_unknown_and_foreign_tokens_without_effect(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let owner = app.register(ClientSpec::machine()).await;
    let other = app
        .register(
            ClientSpec::confidential("other")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
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
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let token = app.access_token(&client).await;
    let anonymous = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let revoke_anonymous = app
        .http
        .post(app.url("/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke_anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        revoke_anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(
        app.introspect(&client, &token).await["active"],
        true,
        "the anonymous revocation did nothing"
    );
}

async fn expired_deny_list_entries_and_codes_are_purged(backend: Backend) {
    use auth_core::clock::Clock;
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let web = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let token = app.access_token(&client).await;
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    // A code that is never exchanged (it lives 60 s).
    let (verifier, challenge) = pkce();
    let code = app
        .browser()
        .login_and_approve(
            &app.authorize_url(&web.id, &challenge, &[]),
            "alice",
            PASSWORD,
        )
        .await;
    let now = app.clock.now();
    assert_eq!(
        app.state.store.purge_expired(now + 60).await.unwrap(),
        0,
        "nothing has expired yet"
    );
    assert_eq!(
        app.state.store.purge_expired(now + 61).await.unwrap(),
        1,
        "the code, a second after its expiry"
    );
    assert_eq!(
        app.state.store.purge_expired(now + 901).await.unwrap(),
        1,
        "the deny-list entry outlives its token by nothing"
    );
    let exchanged = app
        .post_token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", testkit::REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(exchanged.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        exchanged.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}
