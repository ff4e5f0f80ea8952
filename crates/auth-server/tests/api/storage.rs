//! What the database holds, read over a connection of the test's own (the rows, not what the server says
//! they are): high-entropy secrets only as SHA-256 digests, nothing for issuing a JWT, and nothing for a
//! visitor who has not signed in.

use auth_core::secret::SecretDigest;
use auth_core::wire::GrantType;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::jwt::pkce;
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestIssuer, backend_tests};

backend_tests!(
    codes_refresh_tokens_sessions_and_request_uris_are_stored_only_as_digests,
    issuing_jwts_and_anonymous_visitors_write_nothing,
);

/// Every table of the schema.
const TABLES: [&str; 14] = [
    "app_user",
    "authorization_code",
    "client",
    "config_version",
    "consent",
    "deleted_client",
    "login_session",
    "pushed_request",
    "refresh_token",
    "revoked_access_token",
    "server_secret",
    "signing_key",
    "token_family",
    "used_jti",
];

/// How many rows the whole database holds.
async fn rows(app: &TestIssuer) -> i64 {
    let sum = TABLES
        .iter()
        .map(|table| format!("(select count(*) from {table})"))
        .collect::<Vec<_>>()
        .join(" + ");
    app.count(&format!("select {sum}")).await
}

/// Rows of `table` whose `column` is `value`.
async fn rows_with(app: &TestIssuer, table: &str, column: &str, value: &str) -> i64 {
    app.count(&format!(
        "select count(*) from {table} where {column} = '{}'",
        value.replace('\'', "''")
    ))
    .await
}

async fn codes_refresh_tokens_sessions_and_request_uris_are_stored_only_as_digests(
    backend: Backend,
) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(ClientSpec::web()).await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let mut browser = app.browser();
    let code = browser
        .login_and_approve(
            &app.authorize_url("web", &challenge, &[]),
            "alice",
            PASSWORD,
        )
        .await;
    let session = browser
        .cookie_header()
        .unwrap()
        .split("; ")
        .find_map(|pair| pair.strip_prefix("auth_session="))
        .expect("a session cookie")
        .to_owned();
    assert_eq!(
        rows_with(&app, "authorization_code", "code_digest", &code).await,
        0
    );
    assert_eq!(
        rows_with(
            &app,
            "authorization_code",
            "code_digest",
            &SecretDigest::of(&code).to_hex()
        )
        .await,
        1
    );
    assert_eq!(
        rows_with(&app, "login_session", "session_digest", &session).await,
        0
    );
    assert_eq!(
        rows_with(
            &app,
            "login_session",
            "session_digest",
            &SecretDigest::of(&session).to_hex()
        )
        .await,
        1
    );
    let response = app
        .post_token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        rows_with(&app, "refresh_token", "token_digest", refresh).await,
        0
    );
    assert_eq!(
        rows_with(
            &app,
            "refresh_token",
            "token_digest",
            &SecretDigest::of(refresh).to_hex()
        )
        .await,
        1
    );
    let pushed: Value = app
        .post_form(
            "/par",
            &web,
            &[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert_eq!(
        rows_with(&app, "pushed_request", "digest", request_uri).await,
        0
    );
    assert_eq!(
        rows_with(
            &app,
            "pushed_request",
            "digest",
            &SecretDigest::of(request_uri).to_hex()
        )
        .await,
        1
    );
    // Nor does any of them appear anywhere in those rows.
    for (table, secret) in [
        ("authorization_code", code.as_str()),
        ("login_session", session.as_str()),
        ("refresh_token", refresh),
        ("pushed_request", request_uri),
    ] {
        let like = app
            .count(&format!(
                "select count(*) from {table} where {} like '%{secret}%'",
                match table {
                    "authorization_code" => "code_digest || redirect_uri || code_challenge",
                    "login_session" => "session_digest || user_id",
                    "refresh_token" => "token_digest || family_id",
                    _ => "digest || params",
                }
            ))
            .await;
        assert_eq!(like, 0, "{table}");
    }
}

async fn issuing_jwts_and_anonymous_visitors_write_nothing(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let machine = app
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    app.register(ClientSpec::web()).await;
    app.user("alice").await;
    let before = rows(&app).await;
    // Issuing JWT access tokens (client_credentials) and introspecting them.
    for _ in 0..20 {
        let token = app.access_token(&machine).await;
        assert_eq!(app.introspect(&token).await["active"], true);
    }
    // The introspecting client was registered on first use: one row of its own, nothing else.
    assert_eq!(
        rows(&app).await,
        before + 1,
        "issuing a JWT wrote something"
    );
    let before = rows(&app).await;
    // Anonymous visitors: authorization requests (new browsers each), failed logins, error pages.
    for index in 0..20 {
        let (_, challenge) = pkce();
        let mut browser = app.browser();
        let login = browser
            .open_login(&app.authorize_url("web", &challenge, &[]))
            .await;
        let page = browser
            .submit(
                &login.form(),
                &[
                    ("username", &format!("nobody{index}")),
                    ("password", "wrong"),
                ],
            )
            .await;
        assert!(
            matches!(page.status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
            "{}",
            page.status
        );
        browser
            .get(&app.url("/authorize?client_id=unknown&response_type=code"))
            .await;
    }
    assert_eq!(
        rows(&app).await,
        before,
        "a visitor who never signed in grew the database"
    );
}
