//! Token exchange (RFC 8693): delegation with and without an actor token, nested `act`, the targets and
//! scope a client may ask for, the subject's family and lifetime carried over, DPoP binding, and the clients
//! and tokens refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use testkit::dpop::ProofKey;
use testkit::jwt::claims;
use testkit::{Backend, ClientSpec, TestClient, TestIssuer, backend_tests};

backend_tests!(
    a_service_exchanges_a_users_token_for_another_audience,
    an_actor_token_names_the_actor_and_chains_nest,
    targets_scope_and_parameters_are_checked,
    an_inactive_subject_or_one_of_a_revoked_family_is_refused,
    the_exchanged_token_never_outlives_its_subject,
    a_proof_binds_the_exchanged_token_to_the_exchangers_key,
    only_confidential_clients_registered_for_exchange_may_exchange,
);

const TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ORDERS: &str = "https://orders.example/";
const BILLING: &str = "https://billing.example/";

struct Setup {
    app: TestIssuer,
    web: TestClient,
    gateway: TestClient,
    /// alice's access token from the code flow (`read write`, audience api.example).
    user_token: String,
    refresh_token: String,
}

async fn setup(backend: Backend) -> Setup {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    let gateway = app
        .register(
            ClientSpec::confidential("gateway")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .exchange_audience(ORDERS)
                .exchange_audience(BILLING),
        )
        .await;
    app.user("alice").await;
    let tokens = app.code_flow(&web, "alice").await;
    Setup {
        user_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        app,
        web,
        gateway,
    }
}

async fn exchange(
    app: &TestIssuer,
    client: &TestClient,
    subject: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", GRANT),
        ("subject_token", subject),
        ("subject_token_type", TOKEN_TYPE),
    ];
    form.extend_from_slice(extra);
    app.post_token(client, &form).await
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn a_service_exchanges_a_users_token_for_another_audience(backend: Backend) {
    let s = setup(backend).await;
    let response = exchange(&s.app, &s.gateway, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued_token_type"], TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none(), "never a refresh token");
    let token = body["access_token"].as_str().unwrap();
    let exchanged = claims(token);
    let original = claims(&s.user_token);
    assert_eq!(exchanged["sub"], original["sub"]);
    assert_eq!(exchanged["fam"], original["fam"]);
    assert_eq!(exchanged["aud"], ORDERS);
    assert_eq!(exchanged["client_id"], "gateway");
    assert_eq!(exchanged["act"], json!({ "sub": "gateway" }));
    // Introspection shows the actor (RFC 8693 §4.1).
    let introspected = s.app.introspect_as(&s.web, token).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["act"], json!({ "sub": "gateway" }));
    // A narrower scope, two targets (a `resource` written without its path's slash is the same one).
    let narrow = exchange(
        &s.app,
        &s.gateway,
        &s.user_token,
        &[
            ("audience", ORDERS),
            ("resource", "https://billing.example"),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(narrow.status(), StatusCode::OK);
    let narrow: Value = narrow.json().await.unwrap();
    assert_eq!(narrow["scope"], "read");
    assert_eq!(
        claims(narrow["access_token"].as_str().unwrap())["aud"],
        json!([ORDERS, BILLING])
    );
}

async fn an_actor_token_names_the_actor_and_chains_nest(backend: Backend) {
    let s = setup(backend).await;
    // The actor token: the gateway's own client_credentials token (`sub` = gateway).
    let actor = s.app.access_token(&s.gateway).await;
    let response = exchange(
        &s.app,
        &s.gateway,
        &s.user_token,
        &[
            ("audience", ORDERS),
            ("actor_token", &actor),
            ("actor_token_type", TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first: Value = response.json().await.unwrap();
    let first = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&first)["act"], json!({ "sub": "gateway" }));
    // The orders service exchanges again for billing: the new actor nests the earlier one.
    let orders = s
        .app
        .register(
            ClientSpec::confidential("orders-svc")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .exchange_audience(BILLING),
        )
        .await;
    let second = exchange(&s.app, &orders, &first, &[("audience", BILLING)]).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    let mut token = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims(&token)["act"],
        json!({ "sub": "orders-svc", "act": { "sub": "gateway" } })
    );
    assert_eq!(claims(&token)["sub"], claims(&s.user_token)["sub"]);
    // At most five actors deep: three more exchanges succeed, the sixth actor is refused.
    let loop_client = s
        .app
        .register(
            ClientSpec::confidential("relay")
                .grants([GrantType::ClientCredentials])
                .scope("read")
                .exchange_audience(BILLING),
        )
        .await;
    for _ in 0..3 {
        let next = exchange(&s.app, &loop_client, &token, &[("audience", BILLING)]).await;
        assert_eq!(next.status(), StatusCode::OK);
        let next: Value = next.json().await.unwrap();
        token = next["access_token"].as_str().unwrap().to_owned();
    }
    let too_deep = exchange(&s.app, &loop_client, &token, &[("audience", BILLING)]).await;
    assert_eq!(
        error_of(too_deep).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // An actor token issued to another client: nobody writes someone else into `act`.
    let strangers = s.app.access_token(&orders).await;
    let borrowed = exchange(
        &s.app,
        &s.gateway,
        &s.user_token,
        &[
            ("audience", ORDERS),
            ("actor_token", &strangers),
            ("actor_token_type", TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(
        error_of(borrowed).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // An actor token that is not an active token of ours.
    let forged = exchange(
        &s.app,
        &s.gateway,
        &s.user_token,
        &[
            ("audience", ORDERS),
            ("actor_token", "a.b.c"),
            ("actor_token_type", TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(
        error_of(forged).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

async fn targets_scope_and_parameters_are_checked(backend: Backend) {
    let s = setup(backend).await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        // Not one of its exchange audiences (its client_credentials audience does not count either).
        (
            &[("audience", "https://elsewhere.example/")],
            "invalid_target",
        ),
        (&[("audience", "https://api.example/")], "invalid_target"),
        // Wider than the subject token.
        (
            &[("audience", ORDERS), ("scope", "read admin")],
            "invalid_scope",
        ),
        // No target at all.
        (&[], "invalid_request"),
        (
            &[
                ("audience", ORDERS),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
            "invalid_request",
        ),
        (
            &[("audience", ORDERS), ("actor_token_type", TOKEN_TYPE)],
            "invalid_request",
        ),
        (
            &[("audience", ORDERS), ("scope", "read"), ("scope", "write")],
            "invalid_request",
        ),
    ];
    for (extra, expected) in cases {
        let response = exchange(&s.app, &s.gateway, &s.user_token, extra).await;
        assert_eq!(
            error_of(response).await,
            (StatusCode::BAD_REQUEST, (*expected).to_owned()),
            "{extra:?}"
        );
    }
    let wrong_type = s
        .app
        .post_token(
            &s.gateway,
            &[
                ("grant_type", GRANT),
                ("subject_token", &s.user_token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
                ("audience", ORDERS),
            ],
        )
        .await;
    assert_eq!(
        error_of(wrong_type).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let eleven: Vec<(&str, &str)> = std::iter::repeat_n(("audience", ORDERS), 11).collect();
    let response = exchange(&s.app, &s.gateway, &s.user_token, &eleven).await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_target".into())
    );
    // A refresh token is not a subject this server exchanges.
    let response = exchange(
        &s.app,
        &s.gateway,
        &s.refresh_token,
        &[("audience", ORDERS)],
    )
    .await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

async fn an_inactive_subject_or_one_of_a_revoked_family_is_refused(backend: Backend) {
    let s = setup(backend).await;
    let response = exchange(&s.app, &s.gateway, &s.user_token, &[("audience", ORDERS)]).await;
    let exchanged: Value = response.json().await.unwrap();
    let exchanged = exchanged["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.app.introspect_as(&s.web, &exchanged).await["active"],
        true
    );
    // The user's grant is revoked (its refresh token revoked: RFC 7009 §2.1 takes the family).
    assert_eq!(s.app.revoke(&s.web, &s.refresh_token).await, StatusCode::OK);
    assert_eq!(
        s.app.introspect_as(&s.web, &exchanged).await["active"],
        false,
        "the exchanged token dies with the user's grant"
    );
    let again = exchange(&s.app, &s.gateway, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(
        error_of(again).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

async fn the_exchanged_token_never_outlives_its_subject(backend: Backend) {
    let s = setup(backend).await;
    let subject_exp = claims(&s.user_token)["exp"].as_i64().unwrap();
    s.app.clock.advance(120);
    let response = exchange(&s.app, &s.gateway, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["exp"].as_i64().unwrap(), subject_exp);
    assert_eq!(
        body["expires_in"].as_i64().unwrap(),
        subject_exp - s.app.clock.now()
    );
    // Once the subject expired, nothing more.
    s.app.clock.set(subject_exp + 1);
    let late = exchange(&s.app, &s.gateway, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(
        error_of(late).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

async fn a_proof_binds_the_exchanged_token_to_the_exchangers_key(backend: Backend) {
    let s = setup(backend).await;
    let key = ProofKey::generate("ES256");
    let proof = key.proof("POST", &s.app.url("/token"), s.app.clock.now(), None);
    let response = s
        .app
        .http
        .post(s.app.url("/token"))
        .basic_auth(&s.gateway.id, s.gateway.secret.as_deref())
        .header("DPoP", &proof)
        .form(&[
            ("grant_type", GRANT),
            ("subject_token", s.user_token.as_str()),
            ("subject_token_type", TOKEN_TYPE),
            ("audience", ORDERS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["cnf"]["jkt"], key.thumbprint());
    assert_eq!(
        s.app.introspect_as(&s.web, token).await["token_type"],
        "DPoP"
    );
}

async fn only_confidential_clients_registered_for_exchange_may_exchange(backend: Backend) {
    let s = setup(backend).await;
    // A confidential client without the right.
    let plain = s
        .app
        .register(
            ClientSpec::confidential("plain")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    let response = exchange(&s.app, &plain, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "unauthorized_client".into())
    );
    // A public client cannot be registered for it.
    let create = ClientSpec::public("pub")
        .grants([GrantType::AuthorizationCode])
        .exchange_audience(ORDERS)
        .to_create();
    let metadata = auth_server::commands::client_metadata(&create, None).unwrap();
    let error = auth_server::clients::registration::validate(&metadata).unwrap_err();
    assert_eq!(error.field.flag(), "--token-exchange", "{error}");
    // A public client presenting the grant is refused before any token is read.
    let public = s
        .app
        .register(ClientSpec::public("spa").grants([GrantType::AuthorizationCode]))
        .await;
    let response = exchange(&s.app, &public, &s.user_token, &[("audience", ORDERS)]).await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "unauthorized_client".into())
    );
}
