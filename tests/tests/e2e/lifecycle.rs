//! Key rotation end to end, and an issuer that is down when the API starts.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_server::keyring::stored_form;
use platform_tests::{free_address, start_api, start_issuer, start_issuer_at};
use reqwest::Method;

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_issuer_needs_no_restart_here() {
    let issuer = start_issuer().await;
    let secret = issuer
        .client("svc", &["client_credentials"], "read", &[])
        .await;
    let api = start_api(&issuer.base, None, 200).await;
    api.wait_ready().await;
    let before = issuer.token("svc", &secret, None).await;
    assert_eq!(
        api.with_token(Method::GET, "/protected", &before)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Emergency rotation (`keys rotate --activate-after 0`): the new key signs from the next poll.
    let now = issuer.clock.now();
    let key = SigningKey::generate(SigningAlgorithm::EdDsa).unwrap();
    issuer
        .state
        .store
        .insert_key(&stored_form(&key, None, now, now).unwrap())
        .await
        .unwrap();
    let mut after = String::new();
    for _ in 0..50 {
        after = issuer.token("svc", &secret, None).await;
        if kid(&after) == key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kid(&after), key.kid(), "the issuer signs with the new key");
    tokio::time::sleep(Duration::from_millis(250)).await; // past the API's 200 ms refetch cooldown
    assert_eq!(
        api.with_token(Method::GET, "/protected", &after)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        api.with_token(Method::GET, "/protected", &before)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "old tokens still verify"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_at_start_gives_503_then_recovers_by_itself() {
    let address = free_address();
    let api = start_api(&format!("http://{address}"), None, 200).await;
    let readiness = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(readiness.status(), 503);
    let response = api
        .with_token(Method::GET, "/protected", "a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a malformed token is refused without keys"
    );
    // Any well-formed token must wait for keys: 503 with a clear body.
    let someone = start_issuer().await;
    let secret = someone
        .client("svc", &["client_credentials"], "read", &[])
        .await;
    let foreign = someone.token("svc", &secret, None).await;
    let unavailable = api
        .with_token(Method::GET, "/protected", &foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    assert_eq!(
        unavailable.json::<serde_json::Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );

    let issuer = start_issuer_at(address, |_| {}).await;
    let secret = issuer
        .client("svc", &["client_credentials"], "read", &[])
        .await;
    api.wait_ready().await;
    let token = issuer.token("svc", &secret, None).await;
    assert_eq!(
        api.with_token(Method::GET, "/protected", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
