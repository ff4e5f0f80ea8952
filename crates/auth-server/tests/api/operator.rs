//! The operator's commands against a running server's database: `client list|show|delete` and
//! `user list|delete|set-password`, their JSON, their one-line errors, and what they revoke.

use reqwest::StatusCode;
use serde_json::Value;

use testkit::{Backend, ClientSpec, PASSWORD, TestIssuer, backend_tests};

use crate::cli::{json, run};

backend_tests!(
    clients_are_listed_shown_and_deleted_with_every_token_they_hold,
    users_are_listed_deleted_and_given_new_passwords_that_end_their_grants,
);

/// Refreshes `refresh_token` as `web`; the status and body.
async fn refresh(
    app: &TestIssuer,
    web: &testkit::TestClient,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let response = app
        .post_token(
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
    (response.status(), response.json().await.unwrap())
}

/// One line on stderr, exit 1.
fn assert_one_line_error(run: &testkit::binary::Run, says: &str) {
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(says), "{}", run.stderr);
}

async fn clients_are_listed_shown_and_deleted_with_every_token_they_hold(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let machine = app.register(ClientSpec::machine()).await;
    let web = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let named = json(&run(
        &[
            "client",
            "create",
            "--client-id",
            "album",
            "--name",
            "Photo Album",
            "--public",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            testkit::REDIRECT_URI,
        ],
        &app.database_url,
        None,
    ));
    assert_eq!(named["client_id"], "album");

    let listed = json(&run(&["client", "list"], &app.database_url, None));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|client| client["client_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"album") && ids.contains(&"machine") && ids.contains(&"web"),
        "{ids:?}"
    );
    let text = listed.to_string();
    let secret = machine.secret.clone().unwrap();
    let digest = auth_core::secret::SecretDigest::of(&secret).to_hex();
    assert!(
        !text.contains(&secret) && !text.contains(&digest) && !text.contains("\"client_secret\""),
        "never a secret or its digest: {text}"
    );
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "by client id");
    let shown = json(&run(&["client", "show", "album"], &app.database_url, None));
    let mut keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "audiences",
            "backchannel_logout_uri",
            "client_id",
            "exchange_audiences",
            "grant_types",
            "id_token_signed_response_alg",
            "introspection",
            "jwks",
            "jwks_uri",
            "name",
            "post_logout_redirect_uris",
            "public",
            "redirect_uris",
            "registered",
            "require_dpop",
            "require_par",
            "scope",
            "skip_consent",
            "token_endpoint_auth_method",
            "token_exchange",
        ]
    );
    assert_eq!(shown["name"], "Photo Album");
    assert_eq!(
        shown["id_token_signed_response_alg"], "RS256",
        "the default"
    );
    assert_eq!(shown["public"], true);
    assert_eq!(shown["token_endpoint_auth_method"], "none");
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["authorization_code"])
    );
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!([testkit::REDIRECT_URI])
    );
    let shown = json(&run(
        &["client", "show", "machine"],
        &app.database_url,
        None,
    ));
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");
    assert!(!shown.to_string().contains("digest"), "{shown}");
    assert_one_line_error(
        &run(&["client", "show", "nobody"], &app.database_url, None),
        "no client",
    );
    assert_one_line_error(
        &run(&["client", "delete", "nobody"], &app.database_url, None),
        "no client",
    );

    // Tokens of every kind, active before the deletion.
    let machine_token = app.access_token(&machine).await;
    let issued = app.code_flow(&web, "alice").await;
    let user_token = issued["access_token"].as_str().unwrap().to_owned();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect(&machine_token).await["active"], true);
    assert_eq!(app.introspect(&user_token).await["active"], true);

    let deleted = json(&run(
        &["client", "delete", "machine"],
        &app.database_url,
        None,
    ));
    assert_eq!(
        deleted,
        serde_json::json!({ "client_id": "machine", "deleted": true })
    );
    // The running server may still hold the client in its cache for a moment: whatever it mints from there
    // is inactive all the same (the client no longer exists).
    let late = app
        .post_token(&machine, &[("grant_type", "client_credentials")])
        .await;
    if late.status() == StatusCode::OK {
        let late: Value = late.json().await.unwrap();
        let token = late["access_token"].as_str().unwrap();
        assert_eq!(app.introspect(token).await["active"], false);
    } else {
        assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        app.count("select count(*) from authorization_code where client_id = 'web'")
            .await
            > 0
    );
    // With JSON logs, the audit event goes to stderr and the answer stays alone on stdout.
    let logged = testkit::binary::run(
        crate::binary(),
        &["--log-format", "json", "client", "delete", "web"],
        &[],
        &app.database_url,
        None,
        "audit=info",
    );
    let deleted = json(&logged);
    assert_eq!(deleted["deleted"], true);
    let event: Value = logged
        .stderr
        .lines()
        .find_map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|v| v["event"] == "client_deleted")
        })
        .unwrap_or_else(|| panic!("no client_deleted event: {}", logged.stderr));
    assert_eq!(event["target"], "audit");
    assert_eq!(event["outcome"], "deleted");
    for table in [
        "authorization_code",
        "token_family",
        "consent",
        "pushed_request",
    ] {
        assert_eq!(
            app.count(&format!(
                "select count(*) from {table} where client_id = 'web'"
            ))
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(app.introspect(&machine_token).await["active"], false);
    assert_eq!(app.introspect(&user_token).await["active"], false);
    assert_eq!(app.count("select count(*) from refresh_token").await, 0);
    // Registered again under the same id, the old tokens stay dead.
    json(&run(
        &[
            "client",
            "create",
            "--client-id",
            "machine",
            "--grant-type",
            "client_credentials",
        ],
        &app.database_url,
        None,
    ));
    assert_eq!(app.introspect(&machine_token).await["active"], false);
    // Once the server has forgotten the deleted client, its refresh token gets nothing either.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (status, body) = refresh(&app, &web, &refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let listed = json(&run(&["client", "list"], &app.database_url, None));
    assert!(!listed.to_string().contains("\"web\""), "{listed}");
    // The very second of a deletion and a re-registration: a token of that second is not revived.
    let now = auth_core::clock::Clock::now(&app.clock);
    let (record, _) = ClientSpec::machine().record();
    assert!(
        app.state
            .store
            .delete_client(&auth_core::id::ClientId::parse("machine").unwrap(), now)
            .await
            .unwrap()
    );
    app.state
        .store
        .create_client(&record, None, now)
        .await
        .unwrap();
    let signer = app
        .state
        .keys
        .snapshot()
        .signer(app.state.keys.access_alg())
        .cloned()
        .unwrap();
    let same_second = auth_core::token::issue(
        &auth_core::token::AccessTokenClaims {
            iss: app.issuer().to_owned(),
            sub: "machine".into(),
            aud: auth_core::token::Audience::One("resource-api".into()),
            client_id: "machine".into(),
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
        },
        &signer,
    )
    .unwrap();
    assert_eq!(app.introspect(&same_second).await["active"], false);
}

async fn users_are_listed_deleted_and_given_new_passwords_that_end_their_grants(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(ClientSpec::web().skip_consent()).await;
    let alice_id = app.user("alice").await;
    let bob_id = app
        .user_with_profile(
            "bob",
            PASSWORD,
            Some("Bob Builder"),
            Some("bob@example.com"),
            true,
        )
        .await;

    let listed = json(&run(&["user", "list"], &app.database_url, None));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["username"], "alice");
    assert_eq!(listed[0]["user_id"], alice_id.as_str());
    assert_eq!(listed[1]["name"], "Bob Builder");
    assert_eq!(listed[1]["email_verified"], true);
    let text = listed.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );

    // A new password: the old one and every grant made with it stop working, the new one signs in.
    let issued = app.code_flow(&web, "alice").await;
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.count("select count(*) from login_session").await, 1);
    let new_password = "a completely different passphrase";
    let changed = json(&run(
        &["user", "set-password", "alice", "--password-stdin"],
        &app.database_url,
        Some(&format!("{new_password}\n")),
    ));
    assert_eq!(
        changed,
        serde_json::json!({ "username": "alice", "grants_revoked": 1 })
    );
    assert_eq!(app.count("select count(*) from login_session").await, 0);
    assert_eq!(app.introspect(&access).await["active"], false);
    let (status, body) = refresh(&app, &web, &refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (_, challenge) = testkit::jwt::pkce();
    let url = app.authorize_url(&web.id, &challenge, &[]);
    let mut browser = app.browser();
    let login = browser.open_login(&url).await;
    let refused = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(
        refused.html.contains("Invalid username or password"),
        "{}",
        refused.html
    );
    let mut browser = app.browser();
    let login = browser.open_login(&url).await;
    let signed_in = browser.sign_in(&login, "alice", new_password).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    // A sign-in whose check ran against the old hash while the password changed gets no session.
    let alice = app
        .state
        .store
        .find_user_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let session = |digest: &str| auth_server::store::StoredSession {
        digest: auth_core::secret::SecretDigest::of(digest),
        user_id: alice.user_id.clone(),
        sid: None,
        auth_time: auth_core::id::UnixTime(0),
        expires_at: i64::MAX,
    };
    let stale = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$c29tZWhhc2g";
    assert!(
        !app.state
            .store
            .create_session(&session("a"), stale)
            .await
            .unwrap()
    );
    assert!(
        app.state
            .store
            .create_session(&session("b"), &alice.password_hash)
            .await
            .unwrap()
    );
    assert_one_line_error(
        &run(
            &["user", "set-password", "nobody", "--password-stdin"],
            &app.database_url,
            Some("x\n"),
        ),
        "no user",
    );

    // Deleting a user ends its grants and sessions.
    let issued = app.code_flow(&web, "bob").await;
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let deleted = json(&run(&["user", "delete", "bob"], &app.database_url, None));
    assert_eq!(
        deleted,
        serde_json::json!({ "username": "bob", "deleted": true })
    );
    for table in ["login_session", "consent", "token_family"] {
        assert_eq!(
            app.count(&format!(
                "select count(*) from {table} where user_id = '{bob_id}'"
            ))
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(app.introspect(&access).await["active"], false);
    let (status, _) = refresh(&app, &web, issued["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_one_line_error(
        &run(&["user", "delete", "bob"], &app.database_url, None),
        "no user",
    );
    let listed = json(&run(&["user", "list"], &app.database_url, None));
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
