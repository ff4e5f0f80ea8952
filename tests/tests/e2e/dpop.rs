//! DPoP at the resource server (RFC 9449 §7): resource-api, through the auth-bearer layer, accepts a bound
//! token only with the DPoP scheme and a fresh proof by its key for this very request and token. Proofs are
//! made with RustCrypto (`testkit::dpop`), independently of the layer's aws-lc-rs verification.

use auth_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::dpop::ProofKey;
use testkit::{Stack, TestApi, TestClient, TestIssuer};

/// A token bound to `key`, for `client`.
pub(crate) async fn bound_token(
    issuer: &TestIssuer,
    client: &TestClient,
    key: &ProofKey,
) -> String {
    let proof = key.proof("POST", &issuer.url("/token"), issuer.clock.now(), None);
    let response: Value = issuer
        .http
        .post(issuer.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["token_type"], "DPoP");
    response["access_token"].as_str().unwrap().to_owned()
}

/// A request with `Authorization: DPoP` and these proofs; the status, the challenge and the error.
async fn call(
    api: &TestApi,
    method: Method,
    path: &str,
    scheme: &str,
    token: &str,
    proofs: &[&str],
) -> (u16, String, String) {
    let mut request = api
        .http
        .request(method, api.url(path))
        .header("Authorization", format!("{scheme} {token}"));
    if path == "/items" {
        request = request.json(&json!({ "name": "bound" }));
    }
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        challenge,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_passes_only_with_a_fresh_proof_by_its_key_for_this_request() {
    let Stack {
        issuer,
        api,
        client,
        ..
    } = Stack::start("read write").await;
    let key = ProofKey::generate("ES256");
    let token = bound_token(&issuer, &client, &key).await;
    let url = api.url("/protected");
    let now = api.clock.now();
    let proof = key.proof("GET", &url, now, Some(&token));
    let (status, _, _) = call(&api, Method::GET, "/protected", "DPoP", &token, &[&proof]).await;
    assert_eq!(status, 200);
    // POST /items: htm is POST, htu the items URL.
    let items = key.proof("POST", &api.url("/items"), now, Some(&token));
    let (status, _, _) = call(&api, Method::POST, "/items", "DPoP", &token, &[&items]).await;
    assert_eq!(status, 201);
    let other = ProofKey::generate("ES256");
    let other_token = bound_token(&issuer, &client, &other).await;
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "the same proof again",
            vec![proof.clone()],
            "invalid_dpop_proof",
        ),
        ("no proof", vec![], "invalid_dpop_proof"),
        (
            "two proofs",
            vec![
                key.proof("GET", &url, now, Some(&token)),
                key.proof("GET", &url, now, Some(&token)),
            ],
            "invalid_dpop_proof",
        ),
        (
            "another key's proof",
            vec![other.proof("GET", &url, now, Some(&token))],
            "invalid_dpop_proof",
        ),
        (
            "no ath",
            vec![key.proof("GET", &url, now, None)],
            "invalid_dpop_proof",
        ),
        (
            "ath of another token",
            vec![key.proof("GET", &url, now, Some(&other_token))],
            "invalid_dpop_proof",
        ),
        (
            "wrong htm",
            vec![key.proof("POST", &url, now, Some(&token))],
            "invalid_dpop_proof",
        ),
        (
            "wrong htu",
            vec![key.proof("GET", &api.url("/items"), now, Some(&token))],
            "invalid_dpop_proof",
        ),
        (
            "query in htu",
            vec![key.proof("GET", &format!("{url}?a=1"), now, Some(&token))],
            "invalid_dpop_proof",
        ),
        (
            "stale iat",
            vec![key.proof("GET", &url, now - 300, Some(&token))],
            "invalid_dpop_proof",
        ),
        (
            "alg none",
            vec![key.proof_with("GET", &url, now, |header, _| {
                header.insert("alg".into(), json!("none"));
            })],
            "invalid_dpop_proof",
        ),
    ];
    for (why, proofs, error) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, challenge, code) =
            call(&api, Method::GET, "/protected", "DPoP", &token, &proofs).await;
        assert_eq!((status, code.as_str()), (401, error), "{why}");
        assert!(
            challenge.starts_with("DPoP algs=\"ES256 EdDSA Ed25519 RS256 PS256\""),
            "{why}: {challenge}"
        );
    }
    // A bound token as a bearer token (RFC 9449 §7.2), and an unbound one with the DPoP scheme: the DPoP
    // challenge carries the error, a Bearer challenge follows it.
    // RFC 9728 §5.1: every 401 challenge names the API's protected-resource metadata.
    let metadata = format!(
        ", resource_metadata=\"{}\"",
        api.url("/.well-known/oauth-protected-resource")
    );
    let wrong_scheme = |description: &str| {
        format!(
            "DPoP algs=\"ES256 EdDSA Ed25519 RS256 PS256\", error=\"invalid_token\", error_description=\"{description}\"{metadata} | Bearer realm=\"resource-api\"{metadata}"
        )
    };
    let (status, challenge, code) =
        call(&api, Method::GET, "/protected", "Bearer", &token, &[]).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"));
    assert_eq!(
        challenge,
        wrong_scheme("the token is DPoP-bound: present it with the DPoP scheme and a proof")
    );
    let plain = issuer.token(&client, None).await;
    let unbound = key.proof("GET", &url, now, Some(&plain));
    let (status, challenge, code) =
        call(&api, Method::GET, "/protected", "DPoP", &plain, &[&unbound]).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"));
    assert_eq!(
        challenge,
        wrong_scheme("the token is not DPoP-bound: present it as a bearer token")
    );
    // A missing proof: the DPoP challenge with its own error, exactly.
    let (_, challenge, _) = call(&api, Method::GET, "/protected", "DPoP", &token, &[]).await;
    assert_eq!(
        challenge,
        format!(
            "DPoP algs=\"ES256 EdDSA Ed25519 RS256 PS256\", error=\"invalid_dpop_proof\", error_description=\"the DPoP scheme needs a DPoP proof header\"{metadata}"
        )
    );
    // No token at all: a bare Bearer challenge first, the DPoP one second.
    let none = api.http.get(&url).send().await.unwrap();
    let challenges: Vec<&str> = none
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            format!("Bearer realm=\"resource-api\"{metadata}"),
            format!("DPoP algs=\"ES256 EdDSA Ed25519 RS256 PS256\"{metadata}")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_fills_only_its_share_of_the_replay_cache() {
    let Stack { issuer, client, .. } = Stack::start("read").await;
    // 640 entries: ten proofs per key (1/64), eighty per client (1/8).
    let api =
        TestApi::start_with(issuer.issuer(), |config| config.dpop_replay_capacity = 640).await;
    api.wait_ready().await;
    let url = api.url("/protected");
    let greedy = ProofKey::generate("ES256");
    let token = bound_token(&issuer, &client, &greedy).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let proof = greedy.proof("GET", &url, api.clock.now(), Some(&token));
        let (status, _, code) =
            call(&api, Method::GET, "/protected", "DPoP", &token, &[&proof]).await;
        statuses.push((status, code));
    }
    let accepted = statuses.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(accepted, 10, "{statuses:?}");
    assert!(
        statuses[10..]
            .iter()
            .all(|(status, code)| *status == 401 && code == "invalid_dpop_proof"),
        "{statuses:?}"
    );
    // Every other key is unaffected.
    let modest = ProofKey::generate("ES256");
    let other_token = bound_token(&issuer, &client, &modest).await;
    let proof = modest.proof("GET", &url, api.clock.now(), Some(&other_token));
    let (status, _, _) = call(
        &api,
        Method::GET,
        "/protected",
        "DPoP",
        &other_token,
        &[&proof],
    )
    .await;
    assert_eq!(status, 200);
    // Once its proofs are stale, the greedy key is served again.
    api.clock.advance(72);
    let proof = greedy.proof("GET", &url, api.clock.now(), Some(&token));
    let (status, _, _) = call(&api, Method::GET, "/protected", "DPoP", &token, &[&proof]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_nonces_are_required_when_configured() {
    let Stack { issuer, client, .. } = Stack::start("read").await;
    let api = TestApi::start_with(issuer.issuer(), |config| config.dpop_nonce = true).await;
    api.wait_ready().await;
    let key = ProofKey::generate("Ed25519");
    let token = bound_token(&issuer, &client, &key).await;
    let url = api.url("/protected");
    let now = api.clock.now();
    let response = api
        .http
        .get(&url)
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", key.proof("GET", &url, now, Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
    let proof = key.proof_with("GET", &url, now, |_, claims| {
        claims.insert("nonce".into(), json!(nonce));
        claims.insert("ath".into(), json!(testkit::dpop::ath(&token)));
    });
    let (status, _, _) = call(&api, Method::GET, "/protected", "DPoP", &token, &[&proof]).await;
    assert_eq!(status, 200);
}
