//! Key rotation end to end, and an issuer that is down when the API starts.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::wire::GrantType;
use auth_server::keys::keyring::stored_form;
use reqwest::Method;
use testkit::{Backend, ClientSpec, Refuser, TestApi, TestIssuer};

fn kid(token: &str) -> String {
    testkit::jwt::header(token)["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn svc() -> ClientSpec {
    ClientSpec::confidential("svc")
        .grants([GrantType::ClientCredentials])
        .scope("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_issuer_needs_no_restart_here() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let svc = issuer.register(svc()).await;
    let api = TestApi::start(issuer.issuer(), None, 200).await;
    api.wait_ready().await;
    let before = issuer.token(&svc, None).await;
    assert_eq!(
        api.with_token(Method::GET, "/protected", &before)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Emergency rotation (`keys rotate --alg ES256 --activate-after 0`): the new key signs from the next poll.
    let now = issuer.clock.now();
    let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
    issuer
        .state
        .store
        .insert_key(&stored_form(&key, None, now, now).unwrap())
        .await
        .unwrap();
    let mut after = String::new();
    for _ in 0..50 {
        after = issuer.token(&svc, None).await;
        if kid(&after) == key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kid(&after), key.kid(), "the issuer signs with the new key");
    // The API refetches the JWKS for the unknown kid (at most once per its 200 ms cooldown, which may
    // still run from the start-up fetch): polled until accepted, bounded.
    let fetches = api.bearer.jwks_fetch_count();
    let mut status = 0;
    for _ in 0..50 {
        status = api
            .with_token(Method::GET, "/protected", &after)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(
        api.bearer.jwks_fetch_count(),
        fetches + 1,
        "one refetch for the new kid"
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
    // The issuer's port is bound, but nothing answers there yet: every connection is closed.
    let down = Refuser::bind();
    let api = TestApi::start(&format!("http://{}", down.address()), None, 200).await;
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
    let someone = TestIssuer::spawn(Backend::Sqlite).await;
    let svc_elsewhere = someone.register(svc()).await;
    let foreign = someone.token(&svc_elsewhere, None).await;
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

    // The issuer comes up on that same port, and the API finds it by itself.
    let issuer = TestIssuer::spawn_on_listener(Backend::Sqlite, down.into_listener().await).await;
    let svc = issuer.register(svc()).await;
    api.wait_ready().await;
    let token = issuer.token(&svc, None).await;
    assert_eq!(
        api.with_token(Method::GET, "/protected", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
