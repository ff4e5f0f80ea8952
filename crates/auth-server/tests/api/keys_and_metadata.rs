//! RFC 8414 metadata, the JWKS, signing algorithms and key rotation.

use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::jwks::KeySet;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::token::{ValidationPolicy, verify};
use auth_server::keys::keyring::stored_form;
use reqwest::StatusCode;
use serde_json::Value;

use testkit::jwt::{claims, header as jwt_header};
use testkit::{Backend, ClientSpec, TestIssuer, backend_tests};

backend_tests!(
    metadata_lists_endpoints_and_capabilities,
    scopes_supported_is_always_present_and_follows_the_registered_clients,
    issuer_with_a_path_serves_metadata_at_the_rfc8414_path,
    jwks_publishes_public_keys_only_with_max_age,
    every_signing_algorithm_issues_tokens_that_verify_against_the_jwks,
    key_rotation_keeps_old_keys_published_until_their_tokens_expire,
);

async fn metadata_lists_endpoints_and_capabilities(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let metadata = app.metadata().await;
    assert_eq!(metadata["issuer"], app.issuer());
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
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        metadata["device_authorization_endpoint"],
        app.url("/device_authorization")
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    assert_eq!(
        metadata["introspection_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
}

/// RFC 8414 §2 `scopes_supported`: present even before any client exists (strict clients check it), then
/// every scope some client may be granted, at every replica once the registration is polled.
async fn scopes_supported_is_always_present_and_follows_the_registered_clients(backend: Backend) {
    let a = TestIssuer::spawn(backend).await;
    let b = a.replica().await;
    // OpenID Connect's own scopes are always there.
    assert_eq!(
        a.metadata().await["scopes_supported"],
        serde_json::json!(["openid", "profile", "email"])
    );
    a.register(ClientSpec::machine()).await;
    a.register(ClientSpec::web().scope("openid read profile"))
        .await;
    let expected = serde_json::json!(["email", "openid", "profile", "read", "write"]);
    for replica in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listed = replica.metadata().await["scopes_supported"].clone();
            let mut sorted: Vec<String> = serde_json::from_value(listed.clone()).unwrap();
            sorted.sort();
            if serde_json::json!(sorted) == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still {listed} at {}",
                replica.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn issuer_with_a_path_serves_metadata_at_the_rfc8414_path(backend: Backend) {
    // Behind a proxy that routes https://id.example/tenant here.
    let issuer = "https://id.example/tenant";
    let app = TestIssuer::spawn_with(backend, |serve| serve.issuer = Some(issuer.into())).await;
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
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/token"));
    // The endpoints answer under the issuer path.
    let client = app.register(ClientSpec::machine()).await;
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
        claims(token["access_token"].as_str().unwrap())["iss"],
        issuer
    );
}

async fn jwks(app: &TestIssuer) -> (reqwest::header::HeaderMap, Value) {
    let response = app.http.get(app.url("/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (response.headers().clone(), response.json().await.unwrap())
}

async fn jwks_publishes_public_keys_only_with_max_age(backend: Backend) {
    let public_members = |kty: &str| -> &'static [&'static str] {
        match kty {
            "EC" => &["kty", "crv", "x", "y"],
            "OKP" => &["kty", "crv", "x"],
            _ => &["kty", "n", "e"],
        }
    };
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
        let app = TestIssuer::spawn_with(backend.clone(), |serve| serve.signing_alg = alg).await;
        let (headers, body) = jwks(&app).await;
        assert_eq!(headers["cache-control"], "public, max-age=300");
        let keys = body["keys"].as_array().unwrap();
        // The access tokens' key, and RS256 for ID tokens (the same key when access tokens are RS256).
        let mut algorithms: Vec<&str> = keys
            .iter()
            .map(|key| key["alg"].as_str().unwrap())
            .collect();
        algorithms.sort_unstable();
        let mut expected = vec![alg.as_str(), "RS256"];
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(algorithms, expected, "{alg}");
        for key in keys {
            let key = key.as_object().unwrap();
            assert_eq!(key["use"], "sig");
            assert!(key["kid"].is_string());
            // Exactly the public members of RFC 7518 §6 / RFC 8037 §2: no d, p, q, dp, dq, qi, oth or k.
            let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
            members.sort_unstable();
            let mut public: Vec<&str> = public_members(key["kty"].as_str().unwrap())
                .iter()
                .copied()
                .chain(["alg", "kid", "use"])
                .collect();
            public.sort_unstable();
            assert_eq!(members, public, "{alg}");
        }
    }
}

fn policy(app: &TestIssuer) -> ValidationPolicy {
    ValidationPolicy::new(
        app.issuer(),
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
        let app = TestIssuer::spawn_with(backend.clone(), |serve| serve.signing_alg = alg).await;
        let client = app.register(ClientSpec::machine()).await;
        let token = app.access_token(&client).await;
        assert_eq!(jwt_header(&token)["alg"], alg.as_str());
        let (_, body) = jwks(&app).await;
        let keys = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
        let claims = verify(&token, &keys, &policy(&app)).unwrap();
        assert_eq!(claims.sub, "machine");
    }
}

/// Polls the JWKS until `predicate` holds (the poller runs every 100 ms in tests).
async fn wait_for_jwks(app: &TestIssuer, predicate: impl Fn(&Value) -> bool) -> Value {
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
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
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
    // The poller (every 100 ms here) makes the new key the signer.
    let mut new_token = app.access_token(&client).await;
    for _ in 0..100 {
        if jwt_header(&new_token)["kid"] == new_key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        new_token = app.access_token(&client).await;
    }
    assert_eq!(jwt_header(&new_token)["kid"], new_key.kid());
    let (_, body) = jwks(&app).await;
    let keys = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
    assert!(
        verify(&old_token, &keys, &policy(&app)).is_ok(),
        "tokens of the old key still verify"
    );
    assert_eq!(app.introspect(&still_old).await["active"], true);

    // One second before the last token of the old key is past its verifiers' leeway, it is still there
    // (recomputed now, as the poller would).
    app.clock.advance(900 + 60 - 1);
    app.state.keys.refresh(app.clock.now());
    assert!(kids(&jwks(&app).await.1).contains(&old_kid));
    app.clock.advance(1);
    let retired = wait_for_jwks(&app, |body| !kids(body).contains(&old_kid)).await;
    assert!(kids(&retired).contains(&new_key.kid().to_owned()));
    // The RS256 key of ID tokens was not rotated: it stays, and is not retired by an ES256 key.
    assert_eq!(kids(&retired).len(), 2, "{retired}");
}
