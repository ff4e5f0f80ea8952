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
    key_rotation_at_one_replica_reaches_the_other,
    refresh_tokens_raced_across_replicas_succeed_exactly_once,
    a_client_created_at_one_replica_is_accepted_by_the_other_within_the_poll_interval
);

/// Eight rotation chains; each refresh token is sent eight times at once, four to each replica, all chains
/// together: every token yields exactly one success (the compare-and-set is in the database, not in a
/// replica's memory), and the losers are told `invalid_grant`.
async fn refresh_tokens_raced_across_replicas_succeed_exactly_once(backend: Backend) {
    const CHAINS: usize = 8;
    const COPIES: usize = 8;
    let a = spawn_app(backend).await;
    let b = spawn_replica(&a).await;
    let client = a.web_client(true).await;
    a.create_user("alice").await;
    let mut tokens = Vec::new();
    for _ in 0..CHAINS {
        let issued = a.code_flow(&client, "alice").await;
        tokens.push(issued["refresh_token"].as_str().unwrap().to_owned());
    }
    let mut requests = tokio::task::JoinSet::new();
    for (chain, token) in tokens.iter().enumerate() {
        for copy in 0..COPIES {
            let replica = if copy % 2 == 0 { &a } else { &b };
            let request = replica
                .http
                .post(replica.url("/token"))
                .basic_auth(&client.id, client.secret.as_deref())
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
            requests.spawn(async move { (chain, request.send().await.unwrap()) });
        }
    }
    let mut successes = [0usize; CHAINS];
    while let Some(result) = requests.join_next().await {
        let (chain, response) = result.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::OK => successes[chain] += 1,
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("chain {chain}: {other} {body}"),
        }
    }
    assert_eq!(successes, [1; CHAINS], "successes per refresh token");
}

async fn a_client_created_at_one_replica_is_accepted_by_the_other_within_the_poll_interval(
    backend: Backend,
) {
    let a = spawn_app(backend).await;
    let b = spawn_replica(&a).await;
    let late = crate::helpers::TestClient {
        id: "late".into(),
        secret: Some("not yet".into()),
    };
    // B looks the id up first (and could remember that it does not exist).
    let response = b
        .post_token(&late, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let created = a
        .create_client("late", &["client_credentials"], false, "read", &[], false)
        .await;
    // docs/operations.md: a change reaches every replica within about one poll interval (100 ms in tests);
    // allow twenty for a loaded CI machine.
    let poll = Duration::from_millis(100);
    let mut accepted = false;
    for _ in 0..40 {
        if b.post_token(&created, &[("grant_type", "client_credentials")])
            .await
            .status()
            == StatusCode::OK
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(poll / 2).await;
    }
    assert!(accepted, "replica B never accepted the client created at A");
}

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
