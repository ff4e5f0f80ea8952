//! Health, readiness, metrics and request ids.

use reqwest::StatusCode;

use serde_json::Value;
use testkit::{Backend, ClientSpec, TestIssuer, backend_tests};

backend_tests!(
    health_readiness_and_metrics,
    responses_carry_a_request_id,
    the_home_page_says_what_this_is_and_links_the_metadata,
    metrics_can_have_a_listener_of_their_own,
);

/// `--metrics-listen`: /metrics there, and no longer on the public listener.
async fn metrics_can_have_a_listener_of_their_own(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let client = app.register(ClientSpec::machine()).await;
    app.client_credentials(&client).await;
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let metrics = app.metrics_address.expect("a metrics listener");
    assert_ne!(metrics, app.address);
    let text = app
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        testkit::issuer::metric(
            &text,
            "auth_tokens_issued_total{grant=\"client_credentials\"}"
        )
        .is_some_and(|count| count >= 1.0),
        "{text}"
    );
    // The health endpoints stay where load balancers look for them.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

async fn the_home_page_says_what_this_is_and_links_the_metadata(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let response = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/jwks.json",
    ] {
        assert!(
            page.contains(&format!("href=\"{}{path}\"", app.issuer())),
            "{path} in {page}"
        );
    }
}

async fn health_readiness_and_metrics(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let client = app.register(ClientSpec::machine()).await;
    app.client_credentials(&client).await;
    let refused = app
        .post_token(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "admin")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 1",
        "http_requests_total{route=\"/token\",method=\"POST\",status=\"400\"} 1",
        "http_request_duration_seconds_bucket{route=\"/token\",method=\"POST\"",
        "auth_tokens_issued_total{grant=\"client_credentials\"} 1",
        "auth_oauth_errors_total{error=\"invalid_scope\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
}

async fn responses_carry_a_request_id(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    let ours = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        ours.len() >= 18 && service_kit::layers::is_acceptable_request_id(ours.as_bytes()),
        "{ours}"
    );
    let next = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(next.headers()["x-request-id"], ours.as_str(), "unique");
    // Only a plain id of at most 64 characters is taken from the caller; anything else is replaced, so it
    // can neither forge nor bloat a log line.
    for hostile in [
        "a\" outcome=\"success".to_owned(),
        "x".repeat(65),
        "two words".to_owned(),
        "tab\there".to_owned(),
    ] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(&hostile) else {
            continue;
        };
        let response = app
            .http
            .get(app.url("/healthz"))
            .header("x-request-id", value)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, hostile, "{hostile:?} was taken");
        assert!(service_kit::layers::is_acceptable_request_id(
            echoed.as_bytes()
        ));
    }
    let given = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        given.headers()["x-request-id"],
        "abc-123",
        "a caller's id is kept"
    );
}
