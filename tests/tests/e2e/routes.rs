//! The routes of SPEC §4 and their RFC 6750 errors.

use platform_tests::{Stack, start_api, start_issuer, start_stack};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_answers_secure_data_with_the_subject() {
    let Stack { api, token, .. } = start_stack("read").await;
    let response = api
        .with_token(Method::GET, "/protected", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "message": "Secure data", "user": "svc" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_401_with_a_bare_challenge_and_query_tokens_are_ignored() {
    let Stack { api, token, .. } = start_stack("read").await;
    let none = api
        .http
        .get(format!("{}/protected", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"resource-api\""
    );
    // RFC 6750 §2.3 allows a query parameter; this API accepts tokens only in the header.
    let query = api
        .http
        .get(format!("{}/protected?access_token={token}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 401);
    assert_eq!(
        query.headers()["www-authenticate"],
        "Bearer realm=\"resource-api\""
    );
    let garbage = api
        .with_token(Method::GET, "/protected", "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    let challenge = garbage.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"resource-api\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(
        garbage.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_need_read_and_write_scopes() {
    let issuer = start_issuer().await;
    let secret = issuer
        .client("svc", &["client_credentials"], "read write", &[])
        .await;
    let api = start_api(&issuer.base, None, 5_000).await;
    api.wait_ready().await;
    let reader = issuer.token("svc", &secret, Some("read")).await;
    let writer = issuer.token("svc", &secret, Some("write")).await;

    let created = api
        .with_token(Method::POST, "/items", &writer)
        .json(&json!({ "name": "first" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let item: Value = created.json().await.unwrap();
    assert_eq!(item["name"], "first");
    assert_eq!(location, format!("/items/{}", item["id"]));

    let listed = api
        .with_token(Method::GET, "/items", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([item]));

    let forbidden = api
        .with_token(Method::POST, "/items", &reader)
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        forbidden.headers()["www-authenticate"],
        "Bearer realm=\"resource-api\", error=\"insufficient_scope\", scope=\"write\""
    );
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["scope"].as_str()),
        (Some("insufficient_scope"), Some("write"))
    );
    let cannot_read = api
        .with_token(Method::GET, "/items", &writer)
        .send()
        .await
        .unwrap();
    assert_eq!(cannot_read.status(), 403);
    assert!(
        cannot_read.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"read\"")
    );

    for bad in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "x".repeat(201) }),
    ] {
        let response = api
            .with_token(Method::POST, "/items", &writer)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    let not_json = api
        .with_token(Method::POST, "/items", &writer)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_needs_an_active_token_so_revocation_bites_before_exp() {
    let issuer = start_issuer().await;
    let secret = issuer
        .client("svc", &["client_credentials"], "read write", &[])
        .await;
    let introspector = issuer
        .client("resource-api", &["client_credentials"], "", &[])
        .await;
    let api = start_api(&issuer.base, Some(("resource-api", &introspector)), 5_000).await;
    api.wait_ready().await;
    let token = issuer.token("svc", &secret, None).await;
    let create = |name: &'static str| {
        api.with_token(Method::POST, "/items", &token)
            .json(&json!({ "name": name }))
            .send()
    };
    let first: Value = create("a").await.unwrap().json().await.unwrap();
    let second: Value = create("b").await.unwrap().json().await.unwrap();
    let deleted = api
        .with_token(Method::DELETE, &format!("/items/{}", first["id"]), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let missing = api
        .with_token(Method::DELETE, "/items/999999", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Revoked: still a well-signed token, but the sensitive route asks the issuer (after the short
    // introspection cache) and refuses it.
    let fresh = issuer.token("svc", &secret, None).await;
    issuer.revoke("svc", &secret, &fresh).await;
    let refused = api
        .with_token(Method::DELETE, &format!("/items/{}", second["id"]), &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // Routes that only verify the signature keep accepting it until its exp (documented trade-off).
    assert_eq!(
        api.with_token(Method::GET, "/protected", &fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_introspection_configured_is_503_not_a_silent_pass() {
    let Stack { api, token, .. } = start_stack("write").await;
    let response = api
        .with_token(Method::DELETE, "/items/1", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let issuer = start_issuer().await;
    let api = start_api(&issuer.base, None, 5_000).await;
    api.wait_ready().await;
    assert_eq!(
        api.http
            .get(format!("{}/healthz", api.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    api.http
        .get(format!("{}/protected", api.base))
        .send()
        .await
        .unwrap();
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{route=\"/protected\",method=\"GET\",status=\"401\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("resource_api_jwks_fetches"));
}
