//! The demo API's routes and their RFC 6750 errors.

use auth_core::wire::GrantType;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Backend, ClientSpec, Stack, TestApi, TestIssuer};

fn svc() -> ClientSpec {
    ClientSpec::confidential("svc")
        .grants([GrantType::ClientCredentials])
        .scope("read write")
}

/// The items the API lists, with a token that may read.
async fn items(api: &TestApi, token: &str) -> Value {
    let response = api
        .with_token(Method::GET, "/items", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_answers_secure_data_with_the_subject() {
    let Stack { api, token, .. } = Stack::start("read").await;
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
    let Stack { api, token, .. } = Stack::start("read").await;
    let none = api
        .http
        .get(format!("{}/protected", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    // RFC 9728 §5.1: the challenge names where the API's metadata is.
    let bare = format!(
        "Bearer realm=\"resource-api\", resource_metadata=\"{}\"",
        api.url("/.well-known/oauth-protected-resource")
    );
    assert_eq!(none.headers()["www-authenticate"], bare.as_str());
    // RFC 6750 §3.1: no error code when the request carried no credentials, in the header or the body.
    assert_eq!(none.text().await.unwrap(), "");
    // RFC 6750 §2.3 allows a query parameter; this API accepts tokens only in the header.
    let query = api
        .http
        .get(format!("{}/protected?access_token={token}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 401);
    assert_eq!(query.headers()["www-authenticate"], bare.as_str());
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
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let svc = issuer.register(svc()).await;
    let api = TestApi::start(issuer.issuer(), None, 5_000).await;
    api.wait_ready().await;
    let reader = issuer.token(&svc, Some("read")).await;
    let writer = issuer.token(&svc, Some("write")).await;

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
    assert_eq!(body["error"], "insufficient_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("write")
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
    assert_eq!(
        cannot_read.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
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
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_request"
        );
    }
    let not_json = api
        .with_token(Method::POST, "/items", &writer)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // Nothing refused was stored.
    assert_eq!(items(&api, &reader).await, json!([item]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_needs_an_active_token_so_revocation_bites_before_exp() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let svc = issuer.register(svc()).await;
    let introspector = issuer
        .register(ClientSpec::resource_server("resource-api"))
        .await;
    let api = TestApi::start(
        issuer.issuer(),
        Some(("resource-api", introspector.secret.as_deref().unwrap())),
        5_000,
    )
    .await;
    api.wait_ready().await;
    let token = issuer.token(&svc, None).await;
    let create = async |name: &'static str| {
        let response = api
            .with_token(Method::POST, "/items", &token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()
    };
    let first = create("a").await;
    let second = create("b").await;
    let deleted = api
        .with_token(Method::DELETE, &format!("/items/{}", first["id"]), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        items(&api, &token).await,
        json!([second]),
        "only the first went"
    );
    let missing = api
        .with_token(Method::DELETE, "/items/999999", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Revoked: still a well-signed token, but the sensitive route asks the issuer on every request and
    // refuses it.
    let fresh = issuer.token(&svc, None).await;
    assert_eq!(issuer.revoke(&svc, &fresh).await, 200);
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
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    assert_eq!(
        items(&api, &token).await,
        json!([second]),
        "the refused DELETE deleted nothing"
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

testkit::backend_tests!(a_family_revoked_right_after_a_delete_cannot_delete_again);

/// A user's token DELETEs (the API asked the issuer: active); then the refresh token is reused, which
/// revokes the family. The very next DELETE with the same access token is refused: the API keeps no
/// positive introspection answer, so revocation bites on the next request (it does reuse a negative one:
/// a dead token never comes back).
async fn a_family_revoked_right_after_a_delete_cannot_delete_again(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    let web = issuer
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
                .scope("read write")
                .skip_consent(),
        )
        .await;
    let introspector = issuer
        .register(ClientSpec::resource_server("resource-api"))
        .await;
    issuer.user("alice").await;
    let api = TestApi::start(
        issuer.issuer(),
        Some(("resource-api", introspector.secret.as_deref().unwrap())),
        5_000,
    )
    .await;
    api.wait_ready().await;
    let first = issuer.code_flow(&web, "alice").await;
    let stolen = first["refresh_token"].as_str().unwrap();
    let rotated = issuer
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", stolen)],
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let token = rotated["access_token"].as_str().unwrap();
    let mut created = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let response = api
            .with_token(Method::POST, "/items", token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        created.push(response.json::<Value>().await.unwrap());
    }
    let delete = async |item: &Value, token: &str| {
        api.with_token(Method::DELETE, &format!("/items/{}", item["id"]), token)
            .send()
            .await
            .unwrap()
            .status()
    };
    // /introspect requests the issuer answered so far.
    let introspections = async || -> f64 {
        issuer
            .metrics()
            .await
            .lines()
            .filter(|line| {
                line.starts_with("http_requests_total{") && line.contains("route=\"/introspect\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let asked = introspections().await;
    assert_eq!(delete(&created[0], token).await, 204);
    assert_eq!(delete(&created[1], token).await, 204);
    assert_eq!(
        introspections().await,
        asked + 2.0,
        "an active answer is never reused"
    );
    // The rotated-away refresh token comes back: reuse, the family is revoked (RFC 9700 §4.14.2).
    let reuse = issuer
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", stolen)],
        )
        .await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        delete(&created[2], token).await,
        401,
        "at once, not after a cache"
    );
    assert_eq!(
        delete(&created[2], first["access_token"].as_str().unwrap()).await,
        401
    );
    let asked = introspections().await;
    assert_eq!(delete(&created[3], token).await, 401);
    assert_eq!(
        introspections().await,
        asked,
        "an inactive answer is reused"
    );
    assert_eq!(
        items(&api, token).await,
        json!([created[2], created[3]]),
        "the refused DELETEs deleted nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_introspection_configured_is_503_not_a_silent_pass() {
    let Stack { api, token, .. } = Stack::start("read write").await;
    let created = api
        .with_token(Method::POST, "/items", &token)
        .json(&json!({ "name": "kept" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let item: Value = created.json().await.unwrap();
    let response = api
        .with_token(Method::DELETE, &format!("/items/{}", item["id"]), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    assert_eq!(
        items(&api, &token).await,
        json!([item]),
        "nothing was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let api = TestApi::start(issuer.issuer(), None, 5_000).await;
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
    assert!(
        metrics
            .contains("http_requests_total{route=\"/protected\",method=\"GET\",status=\"401\"} 1"),
        "{metrics}"
    );
    // The start-up fetch, counted.
    assert!(metrics.contains("resource_api_jwks_fetches 1"), "{metrics}");
}

/// RFC 9728: the API serves its protected-resource metadata (its identifier is the address it listens on,
/// never a request's Host), names it in every 401, and accepts a token whose `aud` is that identifier (RFC
/// 8707 `resource`) as well as one for its audience name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_describes_itself_and_accepts_its_identifier_as_audience() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let api = TestApi::start(issuer.issuer(), None, 5_000).await;
    api.wait_ready().await;
    let document_url = api.url("/.well-known/oauth-protected-resource");
    let response = api
        .http
        .get(&document_url)
        .header("Host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["resource"], api.base.as_str());
    assert_eq!(document["authorization_servers"], json!([issuer.issuer()]));
    assert_eq!(document["scopes_supported"], json!(["read", "write"]));
    assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    assert_eq!(document["resource_name"], "resource-api");
    assert_eq!(document["dpop_bound_access_tokens_required"], false);
    // A client that asked for this resource by its identifier gets in.
    let client = issuer
        .register(
            ClientSpec::confidential("mcp")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .audiences([api.base.as_str(), "https://other.example/"]),
        )
        .await;
    let token_for = |resource: &str| {
        let (issuer, client, resource) = (&issuer, &client, resource.to_owned());
        async move {
            let response = issuer
                .post_token(
                    client,
                    &[
                        ("grant_type", "client_credentials"),
                        ("resource", &resource),
                    ],
                )
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let token = token_for(&api.base).await;
    let ok = api
        .with_token(Method::GET, "/protected", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Another resource's token is refused, and the refusal names the metadata.
    let other = token_for("https://other.example/").await;
    let refused = api
        .with_token(Method::GET, "/protected", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(&format!("resource_metadata=\"{document_url}\"")),
        "{challenge}"
    );
}

/// RFC 8693: a gateway exchanges the caller's token for one to this API; `/protected` names the subject
/// and the actor, as the bearer layer hands them to handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_names_the_actor_of_an_exchanged_token() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let svc = issuer
        .register(svc().audiences(["https://front.example/"]))
        .await;
    let gateway = issuer
        .register(
            ClientSpec::confidential("gateway")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .exchange_audience("resource-api"),
        )
        .await;
    let api = TestApi::start(issuer.issuer(), None, 5_000).await;
    api.wait_ready().await;
    let subject = issuer.token(&svc, Some("read")).await;
    let direct = api
        .with_token(Method::GET, "/protected", &subject)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.status(),
        401,
        "the subject token is for another audience"
    );
    let exchanged: Value = issuer
        .post_token(
            &gateway,
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("audience", "resource-api"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = exchanged["access_token"].as_str().unwrap();
    let answer = api
        .with_token(Method::GET, "/protected", token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({ "message": "Secure data", "user": "svc", "act": { "sub": "gateway" } })
    );
}
