//! client_credentials at /token, client authentication, and the error bodies of RFC 6749 §5.2.

use reqwest::StatusCode;
use serde_json::Value;

use auth_core::wire::GrantType;
use testkit::jwt::{claims, header as jwt_header};
use testkit::{Backend, ClientSpec, TestClient, TestIssuer, backend_tests};

backend_tests!(
    client_credentials_issues_an_rfc9068_token,
    client_secret_post_works_and_two_methods_at_once_are_refused,
    requested_scope_must_be_a_subset,
    wrong_secret_is_401_with_a_basic_challenge,
    unknown_grant_and_unregistered_grant_are_refused,
    resource_parameter_selects_a_registered_audience,
    malformed_requests_get_rfc6749_errors,
    bodies_over_64_kib_are_refused_with_413,
    oauth2_crate_client_gets_tokens,
);

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("error JSON"))
}

async fn client_credentials_issues_an_rfc9068_token(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let response = app
        .post_token(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900, "a number, not a string");
    assert_eq!(body["scope"], "read");
    assert!(
        body.get("refresh_token").is_none(),
        "client_credentials issues no refresh token"
    );
    let token = body["access_token"].as_str().unwrap();
    let header = jwt_header(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    let claims = claims(token);
    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["sub"], "machine");
    assert_eq!(claims["client_id"], "machine");
    assert_eq!(claims["aud"], "resource-api", "the --default-audience");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].is_string());
    // No scope asked: the client's scopes.
    let all = app.client_credentials(&client).await;
    assert_eq!(all["scope"], "read write");
    assert_ne!(
        claims["jti"],
        testkit::jwt::claims(all["access_token"].as_str().unwrap())["jti"],
        "jti is unique"
    );
}

async fn client_secret_post_works_and_two_methods_at_once_are_refused(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let response = app
        .post_form("/token", &client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "machine"
    );
    let both = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

async fn requested_scope_must_be_a_subset(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let (status, body) = error_of(
        app.post_token(
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
}

async fn wrong_secret_is_401_with_a_basic_challenge(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let wrong = client.with_secret("wrong");
    let grant = [("grant_type", "client_credentials")];
    let response = app.post_token(&wrong, &grant).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"auth-server\""
    );
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // client_secret_post failure: 401 without a Basic challenge.
    let response = app.post_form("/token", &wrong, &grant).await;
    assert!(response.headers().get("www-authenticate").is_none());
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // An unknown client gets the same answer as a wrong secret: nothing says the id does not exist.
    let nobody = TestClient {
        id: "nobody".into(),
        secret: Some("x".into()),
    };
    let unknown = app.post_token(&nobody, &grant).await;
    assert_eq!(
        unknown.headers()["www-authenticate"],
        "Basic realm=\"auth-server\""
    );
    let (status, unknown_body) = error_of(unknown).await;
    assert_eq!((status, &unknown_body), (StatusCode::UNAUTHORIZED, &body));
    // A confidential client presenting no secret.
    let no_secret = TestClient {
        id: client.id.clone(),
        secret: None,
    };
    let (status, body) = error_of(app.post_form("/token", &no_secret, &grant).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

async fn unknown_grant_and_unregistered_grant_are_refused(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let (status, body) =
        error_of(app.post_token(&client, &[("grant_type", "password")]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = error_of(
        app.post_token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
}

async fn resource_parameter_selects_a_registered_audience(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(
            ClientSpec::confidential("svc")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .audiences(["https://api.example/", "https://billing.example/"]),
        )
        .await;
    let default = app.client_credentials(&client).await;
    assert_eq!(
        claims(default["access_token"].as_str().unwrap())["aud"],
        "https://api.example/",
        "first registered audience"
    );
    let response = app
        .post_token(
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://billing.example/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://billing.example/"
    );
    for bad in [
        "https://other.example/",
        "not-a-uri",
        "https://api.example/#frag",
    ] {
        let (status, body) = error_of(
            app.post_token(
                &client,
                &[("grant_type", "client_credentials"), ("resource", bad)],
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_target")),
            "{bad}"
        );
    }
}

async fn malformed_requests_get_rfc6749_errors(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    // Missing grant_type.
    let (status, body) = error_of(app.post_token(&client, &[("scope", "read")]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // A parameter twice (RFC 6749 §3.2).
    let (status, body) = error_of(
        app.post_token(
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("scope", "write"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // JSON instead of a form.
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // Garbage bytes and a broken Basic header never cause a 5xx.
    let response = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', b'%'])
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let response = app
        .http
        .post(app.url("/token"))
        .header("authorization", "Basic ###")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"auth-server\"",
        "the client tried Basic (RFC 6749 §5.2)"
    );
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

async fn bodies_over_64_kib_are_refused_with_413(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let big = "a".repeat(65 * 1024);
    let response = app
        .post_token(
            &client,
            &[("grant_type", "client_credentials"), ("padding", &big)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// The `oauth2` crate as a real, independent client, over reqwest.
pub async fn oauth2_http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    // Over https, a client configured with the test CA alone (as a relying party with a private CA is).
    let client = if parts.uri.scheme_str() == Some("https") {
        testkit::tls::ca().client()
    } else {
        testkit::issuer::no_redirect_client()
    };
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder
        .body(response.bytes().await?.to_vec())
        .expect("valid response"))
}

async fn oauth2_crate_client_gets_tokens(backend: Backend) {
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    let oauth = oauth2::basic::BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone().unwrap()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap());
    let token = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("write".into()))
        .request_async(&oauth2_http)
        .await
        .unwrap();
    assert_eq!(token.scopes().unwrap()[0].as_str(), "write");
    assert_eq!(token.expires_in().unwrap().as_secs(), 900);
    assert_eq!(claims(token.access_token().secret())["scope"], "write");
    let refused = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&oauth2_http)
        .await;
    match refused {
        Err(oauth2::RequestTokenError::ServerResponse(error)) => assert_eq!(
            *error.error(),
            oauth2::basic::BasicErrorResponseType::InvalidScope
        ),
        other => panic!("invalid_scope expected: {other:?}"),
    }
}
