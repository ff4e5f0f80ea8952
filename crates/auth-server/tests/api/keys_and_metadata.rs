//! RFC 8414 metadata, the JWKS, signing algorithms and key rotation.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::jwks::KeySet;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::token::{ValidationPolicy, verify};
use auth_server::keyring::stored_form;
use reqwest::StatusCode;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, jwt_header, spawn_app, spawn_app_with};

backend_tests!(
    metadata_lists_endpoints_and_capabilities,
    issuer_with_a_path_serves_metadata_at_the_rfc8414_path,
    jwks_publishes_public_keys_only_with_max_age,
    every_signing_algorithm_issues_tokens_that_verify_against_the_jwks,
    key_rotation_keeps_old_keys_published_until_their_tokens_expire,
);

async fn metadata_lists_endpoints_and_capabilities(backend: Backend) {
    let app = spawn_app(backend).await;
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], app.state.settings.issuer);
    for (member, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks.json"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
    ] {
        assert_eq!(metadata[member], app.url(path), "{member}");
    }
    assert_eq!(
        metadata["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
}

async fn issuer_with_a_path_serves_metadata_at_the_rfc8414_path(backend: Backend) {
    let app = spawn_app_with(backend, |serve| {
        serve.issuer = format!("http://{}/tenant", serve.listen)
    })
    .await;
    let root = format!("http://{}", app.address);
    let metadata: Value = app
        .http
        .get(format!(
            "{root}/.well-known/oauth-authorization-server/tenant"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], format!("{root}/tenant"));
    assert_eq!(metadata["token_endpoint"], format!("{root}/tenant/token"));
    // The endpoints answer under the issuer path.
    let client = app.machine_client().await;
    let response = app
        .http
        .post(format!("{root}/tenant/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    assert_eq!(
        crate::helpers::claims(token["access_token"].as_str().unwrap())["iss"],
        format!("{root}/tenant")
    );
}

async fn jwks(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    let response = app.http.get(app.url("/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (response.headers().clone(), response.json().await.unwrap())
}

async fn jwks_publishes_public_keys_only_with_max_age(backend: Backend) {
    let app = spawn_app(backend).await;
    let (headers, body) = jwks(&app).await;
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["kty"], "EC");
    assert!(key["kid"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            key.get(private).is_none(),
            "{private} must never be published"
        );
    }
}

fn policy(app: &TestApp) -> ValidationPolicy {
    ValidationPolicy::new(
        app.state.settings.issuer.clone(),
        "resource-api",
        std::sync::Arc::new(app.clock.clone()),
    )
}

async fn every_signing_algorithm_issues_tokens_that_verify_against_the_jwks(backend: Backend) {
    for alg in [
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Es256,
    ] {
        let app = spawn_app_with(backend.clone(), |serve| serve.signing_alg = alg).await;
        let client = app.machine_client().await;
        let token = app.access_token(&client).await;
        assert_eq!(jwt_header(&token)["alg"], alg.as_str());
        let (_, body) = jwks(&app).await;
        let keys = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
        let claims = verify(&token, &keys, &policy(&app)).unwrap();
        assert_eq!(claims.sub, "machine");
    }
}

/// Polls the JWKS until `predicate` holds (the poller runs every 100 ms in tests).
async fn wait_for_jwks(app: &TestApp, predicate: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, body) = jwks(app).await;
        if predicate(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the JWKS did not reach the expected state");
}

fn kids(body: &Value) -> Vec<String> {
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn key_rotation_keeps_old_keys_published_until_their_tokens_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.machine_client().await;
    let old_token = app.access_token(&client).await;
    let old_kid = jwt_header(&old_token)["kid"].as_str().unwrap().to_owned();

    // `keys rotate --activate-after 300`, as the command does it.
    let now = app.clock.now();
    let new_key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
    app.state
        .store
        .insert_key(&stored_form(&new_key, None, now, now + 300).unwrap())
        .await
        .unwrap();
    let published =
        wait_for_jwks(&app, |body| kids(body).contains(&new_key.kid().to_owned())).await;
    assert!(
        kids(&published).contains(&old_kid),
        "both keys are published"
    );
    let still_old = app.access_token(&client).await;
    assert_eq!(
        jwt_header(&still_old)["kid"],
        old_kid.as_str(),
        "the new key does not sign before its time"
    );

    app.clock.advance(300);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_token = app.access_token(&client).await;
    assert_eq!(jwt_header(&new_token)["kid"], new_key.kid());
    let (_, body) = jwks(&app).await;
    let keys = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
    assert!(
        verify(&old_token, &keys, &policy(&app)).is_ok(),
        "tokens of the old key still verify"
    );
    assert_eq!(app.introspect(&client, &still_old).await["active"], true);

    app.clock.advance(900 + 60);
    let retired = wait_for_jwks(&app, |body| !kids(body).contains(&old_kid)).await;
    assert_eq!(kids(&retired), vec![new_key.kid().to_owned()]);
}
