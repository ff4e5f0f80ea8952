//! Two `serve` processes' applications on one database behave as one server.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_server::keyring::stored_form;
use reqwest::StatusCode;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Backend, spawn_app, spawn_replica};

backend_tests!(
    a_token_issued_at_one_replica_is_refreshed_revoked_and_introspected_at_another,
    key_rotation_at_one_replica_reaches_the_other
);

async fn a_token_issued_at_one_replica_is_refreshed_revoked_and_introspected_at_another(
    backend: Backend,
) {
    let a = spawn_app(backend).await;
    let b = spawn_replica(&a).await;
    let client = a.web_client(true).await;
    a.create_user("alice").await;
    let tokens = a.code_flow(&client, "alice").await;
    // Refreshed at B.
    let response = b
        .post_token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    let status = response.status();
    let rotated: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{rotated}");
    // Introspected at A, revoked at B, introspected at A again.
    assert_eq!(
        a.introspect(&client, rotated["access_token"].as_str().unwrap())
            .await["active"],
        true
    );
    assert_eq!(
        b.revoke(&client, rotated["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK
    );
    assert_eq!(
        a.introspect(&client, rotated["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    // Reuse of the first refresh token at A is detected after the rotation at B.
    let reuse = a
        .post_token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        b.introspect(&client, rotated["refresh_token"].as_str().unwrap())
            .await["active"],
        false
    );
}

async fn key_rotation_at_one_replica_reaches_the_other(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = spawn_replica(&a).await;
    let now = a.clock.now();
    let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
    a.state
        .store
        .insert_key(&stored_form(&key, None, now, now).unwrap())
        .await
        .unwrap();
    // The docs promise propagation within a few poll intervals; the tests poll every 100 ms.
    let mut seen = false;
    for _ in 0..50 {
        let body: Value = b
            .http
            .get(b.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body.to_string().contains(key.kid()) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "replica B publishes the key rotated at A");
    // An emergency rotation in the same second as the first key: insertion order makes it the signer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = a.machine_client().await;
    let token: Value = b.client_credentials(&client).await;
    assert_eq!(
        crate::helpers::jwt_header(token["access_token"].as_str().unwrap())["kid"],
        key.kid()
    );
}
