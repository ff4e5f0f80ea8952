//! Tokens a resource server must refuse.

use std::sync::Arc;

use auth_core::clock::Clock;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::token::{AccessTokenClaims, Audience, issue};
use auth_core::wire::GrantType;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Backend, ClientSpec, Stack, TestApi, TestIssuer};

async fn stack() -> (TestIssuer, TestApi, String) {
    let Stack {
        issuer, api, token, ..
    } = Stack::start("read write").await;
    (issuer, api, token)
}

async fn status_and_challenge(api: &TestApi, token: &str) -> (u16, String) {
    let response = api
        .with_token(Method::GET, "/protected", token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

async fn assert_refused(api: &TestApi, token: &str, why: &str) {
    let (status, challenge) = status_and_challenge(api, token).await;
    assert_eq!(status, 401, "{why}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
}

fn parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let payload =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, payload)
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Claims signed with the issuer's real key, for attacks on the claim checks.
fn signed_by_issuer(issuer: &TestIssuer, edit: impl FnOnce(&mut AccessTokenClaims)) -> String {
    let now = issuer.clock.now();
    let mut claims = AccessTokenClaims {
        iss: issuer.issuer().to_owned(),
        sub: "svc".into(),
        aud: Audience::One("resource-api".into()),
        client_id: "svc".into(),
        scope: "read".parse().unwrap(),
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        auth_time: None,
        fam: None,
        cnf: None,
        act: None,
        may_act: None,
    };
    edit(&mut claims);
    let signer = issuer
        .state
        .keys
        .snapshot()
        .signer(issuer.state.keys.access_alg())
        .cloned()
        .unwrap();
    issue(&claims, &signer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_refused() {
    let (_issuer, api, token) = stack().await;
    let (mut header, payload) = parts(&token);
    header["alg"] = json!("none");
    assert_refused(
        &api,
        &format!("{}.{}.", encode(&header), encode(&payload)),
        "alg none",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_signed_with_the_public_key_is_refused() {
    use aws_lc_rs::hmac;
    let (issuer, api, token) = stack().await;
    let (mut header, payload) = parts(&token);
    header["alg"] = json!("HS256");
    let jwks = issuer
        .http
        .get(format!("{}/jwks.json", issuer.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let input = format!("{}.{}", encode(&header), encode(&payload));
    // Try the two usual "public key as HMAC secret" encodings: the JWKS bytes and the JWK itself.
    let jwk = serde_json::from_slice::<Value>(&jwks).unwrap()["keys"][0].to_string();
    for secret in [jwks.to_vec(), jwk.into_bytes()] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        assert_refused(
            &api,
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            "HS256 confusion",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_altered_after_signing_is_refused() {
    let (_issuer, api, token) = stack().await;
    let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
    let (_, mut payload) = parts(&token);
    payload["sub"] = json!("admin");
    payload["scope"] = json!("read write admin");
    pieces[1] = encode(&payload);
    assert_refused(&api, &pieces.join("."), "altered payload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_refused_and_made_up_kids_cannot_hammer_the_issuer() {
    let (issuer, _api, _) = stack().await;
    // An API of our own with a known cooldown, so the test can tell "once" from "never".
    let api = TestApi::start(issuer.issuer(), None, 5_000).await;
    api.wait_ready().await;
    let now = issuer.clock.now();
    let claims = AccessTokenClaims {
        iss: issuer.issuer().to_owned(),
        sub: "svc".into(),
        aud: Audience::One("resource-api".into()),
        client_id: "svc".into(),
        scope: "read".parse().unwrap(),
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: "x".into(),
        auth_time: None,
        fam: None,
        cnf: None,
        act: None,
        may_act: None,
    };
    let forged = |claims: &AccessTokenClaims| {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        issue(claims, &key).unwrap()
    };
    // The tokens of the flood, each with a fresh made-up key and kid, made before the clock starts.
    let flood: Vec<String> = (0..50).map(|_| forged(&claims)).collect();
    // Once the cooldown from the start-up fetch is over, an unknown kid causes exactly one refetch.
    let started = api.bearer.jwks_fetch_count();
    let mut waited = 0;
    while api.bearer.jwks_fetch_count() == started {
        assert_refused(&api, &forged(&claims), "unknown key").await;
        waited += 1;
        assert!(waited < 200, "no refetch within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let after_refetch = api.bearer.jwks_fetch_count();
    assert_eq!(after_refetch, started + 1);
    // Then the whole flood, inside the new 5 s cooldown, causes none.
    let api = Arc::new(api);
    let mut tasks = Vec::new();
    for token in flood {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            status_and_challenge(&api, &token).await
        }));
    }
    for task in tasks {
        let (status, challenge) = task.await.unwrap();
        assert_eq!(status, 401);
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    assert_eq!(
        api.bearer.jwks_fetch_count(),
        after_refetch,
        "at most one refetch per cooldown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_audience_and_other_issuer_are_refused() {
    let (issuer, api, _) = stack().await;
    let wrong_audience = signed_by_issuer(&issuer, |claims| {
        claims.aud = Audience::One("billing-api".into())
    });
    assert_refused(&api, &wrong_audience, "wrong audience").await;
    let other_issuer =
        signed_by_issuer(&issuer, |claims| claims.iss = "http://evil.example".into());
    assert_refused(&api, &other_issuer, "other issuer").await;
    // A real token from another real authorization server.
    let stranger = TestIssuer::spawn(Backend::Sqlite).await;
    let svc = stranger
        .register(
            ClientSpec::confidential("svc")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    assert_refused(&api, &stranger.token(&svc, None).await, "other server").await;
    // The right audience among several is accepted.
    let several = signed_by_issuer(&issuer, |claims| {
        claims.aud = Audience::Many(vec!["billing-api".into(), "resource-api".into()])
    });
    assert_eq!(status_and_challenge(&api, &several).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_typ_is_refused() {
    let (issuer, api, _) = stack().await;
    let signer = issuer
        .state
        .keys
        .snapshot()
        .signer(issuer.state.keys.access_alg())
        .cloned()
        .unwrap();
    let token = signed_by_issuer(&issuer, |_| {});
    let (mut header, payload) = parts(&token);
    header["typ"] = json!("JWT");
    let input = format!("{}.{}", encode(&header), encode(&payload));
    let signature = URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()).unwrap());
    assert_refused(
        &api,
        &format!("{input}.{signature}"),
        "typ JWT (e.g. an ID token)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_even_after_being_cached() {
    let (issuer, api, _) = stack().await;
    // Times from the API's own clock: the issuer's may have started in another second.
    let now = api.clock.now();
    let token = signed_by_issuer(&issuer, |claims| {
        claims.iat = now;
        claims.exp = now + 30;
    });
    assert_eq!(
        status_and_challenge(&api, &token).await.0,
        200,
        "valid, and now in the verified cache"
    );
    api.clock.advance(30 + 60);
    assert_eq!(
        status_and_challenge(&api, &token).await.0,
        200,
        "inside the 60 s leeway"
    );
    api.clock.advance(1);
    assert_refused(&api, &token, "expired past the leeway").await;
}

/// A real ID token (typ `JWT`) presented as an access token: refused by its type, even when the client it
/// was issued to is named like the API (so `aud` alone would not stop it), and by its audience otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_no_access_token() {
    let (issuer, api, _) = stack().await;
    issuer.user("alice").await;
    for client_id in ["resource-api", "web"] {
        let client = issuer
            .register(
                ClientSpec::confidential(client_id)
                    .grants([GrantType::AuthorizationCode])
                    .scope("openid read")
                    .skip_consent(),
            )
            .await;
        let tokens = issuer
            .code_flow_for(&client, "alice", Some("openid read"))
            .await;
        let id_token = tokens["id_token"].as_str().expect("an ID token");
        let (header, claims) = parts(id_token);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(claims["aud"], client_id);
        assert_refused(&api, id_token, "an ID token").await;
        // The access token of the same grant is fine.
        assert_eq!(
            status_and_challenge(&api, tokens["access_token"].as_str().unwrap())
                .await
                .0,
            200
        );
    }
}

/// A DPoP-bound token (RFC 9449) presented as a bearer token is refused: whoever stole it lacks the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_is_no_bearer_token() {
    let Stack {
        issuer,
        api,
        client,
        ..
    } = Stack::start("read write").await;
    let key = testkit::dpop::ProofKey::generate("ES256");
    // Checks token_type DPoP on the way.
    let token = crate::dpop::bound_token(&issuer, &client, &key).await;
    assert_refused(&api, &token, "a bound token as Bearer").await;
    // The same client's bearer token is fine.
    let plain = issuer.token(&client, None).await;
    assert_eq!(status_and_challenge(&api, &plain).await.0, 200);
}
