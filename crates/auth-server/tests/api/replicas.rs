//! Two `serve` processes' applications on one database behave as one server.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_server::keys::keyring::stored_form;
use reqwest::StatusCode;
use serde_json::Value;

use auth_core::wire::GrantType;
use testkit::jwt::header as jwt_header;
use testkit::{Backend, ClientSpec, TestClient, TestIssuer, backend_tests};

backend_tests!(
    a_token_issued_at_one_replica_is_refreshed_revoked_and_introspected_at_another,
    key_rotation_at_one_replica_reaches_the_other,
    refresh_tokens_raced_across_replicas_succeed_exactly_once,
    a_client_created_at_one_replica_is_accepted_by_the_other_at_once
);

/// Eight rotation chains; each refresh token is sent eight times at once, four to each replica, all chains
/// together: every token yields exactly one success (the compare-and-set is in the database, not in a
/// replica's memory), and the losers are told `invalid_grant`.
async fn refresh_tokens_raced_across_replicas_succeed_exactly_once(backend: Backend) {
    const CHAINS: usize = 8;
    const COPIES: usize = 8;
    let a = TestIssuer::spawn(backend).await;
    let b = a.replica().await;
    let client = a.register(ClientSpec::web().skip_consent()).await;
    a.user("alice").await;
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
    let mut winners = Vec::new();
    while let Some(result) = requests.join_next().await {
        let (chain, response) = result.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::OK => {
                successes[chain] += 1;
                winners.push(body);
            }
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("chain {chain}: {other} {body}"),
        }
    }
    assert_eq!(successes, [1; CHAINS], "successes per refresh token");
    // Every loser was reuse: each family is revoked, the winner's tokens too, at either replica.
    for (index, winner) in winners.iter().enumerate() {
        let (here, there) = if index % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let refreshed = here
            .post_token(
                &client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", winner["refresh_token"].as_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            there
                .introspect(winner["access_token"].as_str().unwrap())
                .await["active"],
            false
        );
    }
}

async fn a_client_created_at_one_replica_is_accepted_by_the_other_at_once(backend: Backend) {
    let a = TestIssuer::spawn(backend).await;
    let b = a.replica().await;
    let late = TestClient {
        id: "late".into(),
        secret: Some("not yet".into()),
    };
    // B looks the id up first. Unknown ids are never cached, so B cannot remember that it did not exist.
    let response = b
        .post_token(&late, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let created = a
        .register(
            ClientSpec::confidential("late")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    // No waiting for a poll: the very next request at B finds the client in the database.
    let token = b
        .post_token(&created, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    assert!(token.json::<Value>().await.unwrap()["access_token"].is_string());
}

async fn a_token_issued_at_one_replica_is_refreshed_revoked_and_introspected_at_another(
    backend: Backend,
) {
    let a = TestIssuer::spawn(backend).await;
    let b = a.replica().await;
    let client = a
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    a.user("alice").await;
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
        a.introspect(rotated["access_token"].as_str().unwrap())
            .await["active"],
        true
    );
    assert_eq!(
        b.revoke(&client, rotated["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK
    );
    assert_eq!(
        a.introspect(rotated["access_token"].as_str().unwrap())
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
        b.introspect_as(&client, rotated["refresh_token"].as_str().unwrap())
            .await["active"],
        false
    );
}

async fn key_rotation_at_one_replica_reaches_the_other(backend: Backend) {
    let a = TestIssuer::spawn(backend).await;
    let b = a.replica().await;
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
    // An emergency rotation in the same second as the first key: insertion order makes it the signer, at
    // B too once its poller has reloaded (polled, not slept on).
    let client = a.register(ClientSpec::machine()).await;
    let mut kid = Value::Null;
    for _ in 0..50 {
        let token: Value = b.client_credentials(&client).await;
        kid = jwt_header(token["access_token"].as_str().unwrap())["kid"].clone();
        if kid == key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kid, key.kid());
}
