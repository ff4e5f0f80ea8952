//! DPoP at the token endpoint (RFC 9449 §5): proofs made by an independent JOSE implementation
//! (`testkit::dpop`, RustCrypto) against the real server, each §4.3 check failing on its own, `jti` replay
//! across replicas, server nonces valid at every replica, and public clients' refresh tokens bound to the key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use testkit::dpop::ProofKey;
use testkit::jwt::claims;
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    a_proof_binds_the_access_token_to_its_key_with_every_algorithm,
    every_proof_check_fails_on_its_own,
    a_proof_is_used_once_across_replicas,
    a_client_that_requires_dpop_is_refused_without_a_proof,
    server_nonces_are_required_and_valid_at_every_replica,
    a_public_clients_refresh_token_is_bound_to_its_key,
    a_code_bound_by_dpop_jkt_or_a_pushed_proof_needs_that_key,
);

/// POST /token with a `DPoP` header.
async fn token_with_proof(
    app: &TestIssuer,
    client: &TestClient,
    form: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let mut request = app.http.post(app.url("/token"));
    request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)).form(form),
        None => {
            let mut body = vec![("client_id", client.id.as_str())];
            body.extend_from_slice(form);
            request.form(&body)
        }
    };
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    request.send().await.expect("POST /token")
}

async fn machine(app: &TestIssuer) -> TestClient {
    app.register(ClientSpec::confidential("machine").grants([GrantType::ClientCredentials]))
        .await
}

const CLIENT_CREDENTIALS: &[(&str, &str)] = &[("grant_type", "client_credentials")];

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn a_proof_binds_the_access_token_to_its_key_with_every_algorithm(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = machine(&app).await;
    app.register(ClientSpec::confidential("resource-api").introspection())
        .await;
    let metadata = app.metadata().await;
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
    for alg in ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"] {
        let key = ProofKey::generate(alg);
        let proof = key.proof("POST", &app.url("/token"), app.clock.now(), None);
        let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&proof]).await;
        assert_eq!(response.status(), StatusCode::OK, "{alg}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{alg}");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(
            claims(token)["cnf"],
            json!({ "jkt": key.thumbprint() }),
            "{alg}: RFC 7638 thumbprint"
        );
        let introspection = app.introspect(token).await;
        assert_eq!(introspection["active"], true);
        assert_eq!(introspection["token_type"], "DPoP");
        assert_eq!(introspection["cnf"]["jkt"], key.thumbprint().as_str());
    }
    // Without a proof: a plain bearer token, as before.
    let plain = app.client_credentials(&client).await;
    assert_eq!(plain["token_type"], "Bearer");
    assert!(
        claims(plain["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
}

async fn every_proof_check_fails_on_its_own(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = machine(&app).await;
    let key = ProofKey::generate("ES256");
    let uri = app.url("/token");
    let now = app.clock.now();
    let hs256 = {
        // An HMAC "signature" keyed with the public key's JSON: algorithm confusion.
        let header = json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk() });
        let claims = json!({ "jti": "hs", "htm": "POST", "htu": uri, "iat": now });
        let input = format!(
            "{}.{}",
            base64_url(header.to_string().as_bytes()),
            base64_url(claims.to_string().as_bytes())
        );
        format!("{input}.{}", base64_url(b"not really an hmac"))
    };
    let alg_none = {
        let header = json!({ "typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk() });
        let claims = json!({ "jti": "none", "htm": "POST", "htu": uri, "iat": now });
        format!(
            "{}.{}.",
            base64_url(header.to_string().as_bytes()),
            base64_url(claims.to_string().as_bytes())
        )
    };
    let other = ProofKey::generate("ES256");
    let cases: Vec<(&str, String)> = vec![
        ("wrong htm", key.proof("GET", &uri, now, None)),
        (
            "wrong htu",
            key.proof("POST", &app.url("/revoke"), now, None),
        ),
        (
            "query in htu",
            key.proof("POST", &format!("{uri}?x=1"), now, None),
        ),
        ("stale iat", key.proof("POST", &uri, now - 120, None)),
        ("future iat", key.proof("POST", &uri, now + 120, None)),
        ("alg none", alg_none),
        ("HS256", hs256),
        (
            "wrong typ",
            key.proof_with("POST", &uri, now, |header, _| {
                header.insert("typ".into(), json!("JWT"));
            }),
        ),
        (
            "private jwk",
            key.proof_with("POST", &uri, now, |header, _| {
                header["jwk"]["d"] = json!("AAAA");
            }),
        ),
        (
            "no jwk",
            key.proof_with("POST", &uri, now, |header, _| {
                header.remove("jwk");
            }),
        ),
        (
            "another key's jwk",
            key.proof_with("POST", &uri, now, |header, _| {
                header.insert("jwk".into(), other.public_jwk());
            }),
        ),
        (
            "no jti",
            key.proof_with("POST", &uri, now, |_, claims| {
                claims.remove("jti");
            }),
        ),
        (
            "no iat",
            key.proof_with("POST", &uri, now, |_, claims| {
                claims.remove("iat");
            }),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (why, proof) in &cases {
        let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[proof]).await;
        assert_eq!(
            error_of(response).await,
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof".to_owned()),
            "{why}"
        );
    }
    // Two DPoP headers (§4.3 step 1), even two good proofs.
    let (first, second) = (
        key.proof("POST", &uri, now, None),
        key.proof("POST", &uri, now, None),
    );
    let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&first, &second]).await;
    assert_eq!(error_of(response).await.1, "invalid_dpop_proof");
    // Normalization (§4.3 step 9): the host's case and the default port do not matter.
    let url = url::Url::parse(&uri).unwrap();
    let shouting = format!(
        "{}://{}:{}{}",
        url.scheme().to_uppercase(),
        url.host_str().unwrap().to_uppercase(),
        url.port_or_known_default().unwrap(),
        url.path()
    );
    let response = token_with_proof(
        &app,
        &client,
        CLIENT_CREDENTIALS,
        &[&key.proof("POST", &shouting, now, None)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn a_proof_is_used_once_across_replicas(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let replica = app.replica().await;
    let client = machine(&app).await;
    let key = ProofKey::generate("EdDSA");
    let proof = key.proof("POST", &app.url("/token"), app.clock.now(), None);
    // The same proof sent to both replicas at once, 8 times over: exactly one is accepted.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut attempts = Vec::new();
    for i in 0..8 {
        let target = if i % 2 == 0 { &app } else { &replica };
        let request = target
            .http
            .post(target.url("/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header("DPoP", &proof)
            .form(CLIENT_CREDENTIALS);
        let barrier = barrier.clone();
        attempts.push(tokio::spawn(async move {
            barrier.wait().await;
            request.send().await.expect("POST /token").status()
        }));
    }
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST)
    );
}

async fn a_client_that_requires_dpop_is_refused_without_a_proof(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(
            ClientSpec::confidential("bound")
                .grants([GrantType::ClientCredentials])
                .require_dpop(),
        )
        .await;
    let response = app.post_token(&client, CLIENT_CREDENTIALS).await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof".to_owned())
    );
    let key = ProofKey::generate("ES256");
    let proof = key.proof("POST", &app.url("/token"), app.clock.now(), None);
    let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&proof]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn server_nonces_are_required_and_valid_at_every_replica(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| serve.dpop_nonce = true).await;
    let replica = app.replica_with(|serve| serve.dpop_nonce = true).await;
    let client = machine(&app).await;
    let key = ProofKey::generate("ES256");
    let now = app.clock.now();
    let response = token_with_proof(
        &app,
        &client,
        CLIENT_CREDENTIALS,
        &[&key.proof("POST", &app.url("/token"), now, None)],
    )
    .await;
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "use_dpop_nonce".to_owned())
    );
    let with_nonce = |nonce: String| {
        key.proof_with("POST", &app.url("/token"), now, move |_, claims| {
            claims.insert("nonce".into(), json!(nonce));
        })
    };
    // The nonce one replica gave is good at the other.
    let response = token_with_proof(
        &replica,
        &client,
        CLIENT_CREDENTIALS,
        &[&with_nonce(nonce.clone())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("dpop-nonce"));
    // A made-up nonce, and one from long ago, are not.
    for stale in ["1.abc".to_owned(), format!("0{nonce}")] {
        let response =
            token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&with_nonce(stale)]).await;
        assert_eq!(error_of(response).await.1, "use_dpop_nonce");
    }
    // Nonces rotate: after two periods the old one is refused and the new one works.
    app.clock.advance(2 * auth_core::dpop::NONCE_PERIOD);
    let later = app.clock.now();
    let old = key.proof_with("POST", &app.url("/token"), later, |_, claims| {
        claims.insert("nonce".into(), json!(nonce));
    });
    let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&old]).await;
    let fresh = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(error_of(response).await.1, "use_dpop_nonce");
    assert_ne!(fresh, nonce);
    let proof = key.proof_with("POST", &app.url("/token"), later, |_, claims| {
        claims.insert("nonce".into(), json!(fresh));
    });
    let response = token_with_proof(&app, &client, CLIENT_CREDENTIALS, &[&proof]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_public_clients_refresh_token_is_bound_to_its_key(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let spa = app
        .register(
            ClientSpec::public("spa")
                .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
                .scope("openid read")
                .skip_consent(),
        )
        .await;
    app.user("alice").await;
    let (verifier, challenge) = testkit::jwt::pkce();
    let mut browser = app.browser();
    let code = browser
        .login_and_approve(
            &app.authorize_url("spa", &challenge, &[("scope", "openid read")]),
            "alice",
            PASSWORD,
        )
        .await;
    let key = ProofKey::generate("ES256");
    let uri = app.url("/token");
    let response = token_with_proof(
        &app,
        &spa,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        &[&key.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    // At /userinfo: with the DPoP scheme and a proof by its key (with ath), as GET and POST.
    let access = tokens["access_token"].as_str().unwrap();
    for method in ["GET", "POST"] {
        let proof = key.proof(method, &app.url("/userinfo"), app.clock.now(), Some(access));
        let request = match method {
            "GET" => app.http.get(app.url("/userinfo")),
            _ => app.http.post(app.url("/userinfo")),
        };
        let response = request
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", proof.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let info: Value = response.json().await.unwrap();
        assert!(info["sub"].is_string());
        // The same proof again is a replay.
        let replay = app
            .http
            .get(app.url("/userinfo"))
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", proof.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        assert!(
            replay.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_dpop_proof\"")
        );
    }
    // A bound token is no bearer token (RFC 9449 §7.2), at /userinfo too: the answer is a DPoP challenge
    // that says so.
    let userinfo = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let challenge = userinfo.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP algs=") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    // A thief with the token and a proof of its own (right method, URI and ath, wrong key): refused.
    let thief = ProofKey::generate("ES256");
    let stolen = app
        .http
        .get(app.url("/userinfo"))
        .header("Authorization", format!("DPoP {access}"))
        .header(
            "DPoP",
            thief.proof("GET", &app.url("/userinfo"), app.clock.now(), Some(access)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    assert!(
        stolen.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_dpop_proof\""),
        "the thief's key is not the token's"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    // Without a proof, or with another key's: refused, and the token is not spent (no reuse detection).
    for proofs in [
        vec![],
        vec![thief.proof("POST", &uri, app.clock.now(), None)],
    ] {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let response = token_with_proof(&app, &spa, &form, &proofs).await;
        assert_eq!(
            error_of(response).await,
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof".to_owned())
        );
    }
    // The right key rotates it, and the successor is bound too.
    let response = token_with_proof(
        &app,
        &spa,
        &form,
        &[&key.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    assert_eq!(
        claims(rotated["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint().as_str()
    );
    let next = rotated["refresh_token"].as_str().unwrap();
    // The rotated-out token, replayed without the key, revokes nothing: its binding is checked first.
    let response = token_with_proof(&app, &spa, &form, &[]).await;
    assert_eq!(error_of(response).await.1, "invalid_dpop_proof");
    let response = token_with_proof(
        &app,
        &spa,
        &[("grant_type", "refresh_token"), ("refresh_token", next)],
        &[&thief.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(error_of(response).await.1, "invalid_dpop_proof");
    // The family is alive: the owner rotates on.
    let response = token_with_proof(
        &app,
        &spa,
        &[("grant_type", "refresh_token"), ("refresh_token", next)],
        &[&key.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    let current = rotated["refresh_token"].as_str().unwrap();
    // At /revoke the same rule: without a proof by its key (none, the thief's, one for another URI), the
    // answer is 200 and nothing is revoked.
    let revoke_uri = app.url("/revoke");
    for proof in [
        None,
        Some(thief.proof("POST", &revoke_uri, app.clock.now(), None)),
        Some(key.proof("POST", &uri, app.clock.now(), None)),
    ] {
        let mut request = app
            .http
            .post(&revoke_uri)
            .form(&[("token", current), ("client_id", "spa")]);
        if let Some(proof) = &proof {
            request = request.header("DPoP", proof.as_str());
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
    }
    let alive = token_with_proof(
        &app,
        &spa,
        &[("grant_type", "refresh_token"), ("refresh_token", current)],
        &[&key.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(alive.status(), StatusCode::OK, "revoked without the key");
    let alive: Value = alive.json().await.unwrap();
    let current = alive["refresh_token"].as_str().unwrap();
    // With a proof by its key, revoked.
    let revoked = app
        .http
        .post(&revoke_uri)
        .header(
            "DPoP",
            key.proof("POST", &revoke_uri, app.clock.now(), None),
        )
        .form(&[("token", current), ("client_id", "spa")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let response = token_with_proof(
        &app,
        &spa,
        &[("grant_type", "refresh_token"), ("refresh_token", current)],
        &[&key.proof("POST", &uri, app.clock.now(), None)],
    )
    .await;
    assert_eq!(error_of(response).await.1, "invalid_grant");
}

async fn a_code_bound_by_dpop_jkt_or_a_pushed_proof_needs_that_key(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let spa = app
        .register(
            ClientSpec::public("spa")
                .grants([GrantType::AuthorizationCode])
                .skip_consent(),
        )
        .await;
    app.user("alice").await;
    let key = ProofKey::generate("ES256");
    let thief = ProofKey::generate("ES256");
    let uri = app.url("/token");
    let mut browser = app.browser();
    // A malformed dpop_jkt is an error redirect.
    let (_, challenge) = testkit::jwt::pkce();
    let page = browser
        .get(&app.authorize_url("spa", &challenge, &[("dpop_jkt", "not-a-thumbprint")]))
        .await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("invalid_request")
    );
    // Bound with dpop_jkt at /authorize, then with a proof at /par.
    let thumbprint = key.thumbprint();
    for pushed in [false, true] {
        let (verifier, challenge) = testkit::jwt::pkce();
        let url = if pushed {
            let response = app
                .http
                .post(app.url("/par"))
                .header(
                    "DPoP",
                    key.proof("POST", &app.url("/par"), app.clock.now(), None),
                )
                .form(&[
                    ("client_id", "spa"),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT_URI),
                    ("state", "xyz-state"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            let body: Value = response.json().await.unwrap();
            let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
            url.query_pairs_mut()
                .append_pair("client_id", "spa")
                .append_pair("request_uri", body["request_uri"].as_str().unwrap());
            url.to_string()
        } else {
            app.authorize_url("spa", &challenge, &[("dpop_jkt", thumbprint.as_str())])
        };
        let page = browser.get(&url).await;
        let page = if page.is_login_form() {
            browser.sign_in(&page, "alice", PASSWORD).await
        } else {
            page
        };
        let code = browser.code_of(&page);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ];
        // Without a proof, or with another key's: refused, and the code is not spent.
        for proofs in [
            vec![],
            vec![thief.proof("POST", &uri, app.clock.now(), None)],
        ] {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let response = token_with_proof(&app, &spa, &form, &proofs).await;
            assert_eq!(
                error_of(response).await,
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof".to_owned()),
                "pushed: {pushed}"
            );
        }
        let response = token_with_proof(
            &app,
            &spa,
            &form,
            &[&key.proof("POST", &uri, app.clock.now(), None)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "pushed: {pushed}");
    }
}
