//! Dynamic client registration (RFC 7591) and its management (RFC 7592) over real sockets: the three
//! policies, initial access tokens spent exactly once per 201 under concurrency, the per-source and total
//! caps of open registration with another source still served, the registration access token as the only
//! key to a registration (and rotated by every update), a self-registered client signing a user in with a
//! consent page that says so and is never remembered, and an `openidconnect` relying party registering itself.

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::secret::OpaqueToken;
use auth_server::config::RegistrationPolicy;
use testkit::{Backend, ClientSpec, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    registration_is_off_by_default_and_answers_404,
    an_open_registration_signs_a_user_in_and_consent_is_shown_every_time,
    initial_access_tokens_are_needed_under_token_and_spent_once_per_registration,
    open_registration_is_capped_per_source_and_in_total,
    a_registration_is_read_replaced_and_deleted_only_with_its_current_token,
    an_openidconnect_relying_party_registers_itself_and_signs_in,
    the_cli_makes_initial_access_tokens_shown_once,
    a_configuration_files_prune_never_deletes_a_self_registered_client,
    an_idle_dynamic_client_is_deleted_and_issuance_writes_once_a_day,
    an_update_and_a_delete_with_one_token_never_both_succeed,
);

/// RFC 7592: a PUT rotates the registration access token, so a DELETE sent at the same moment with the same
/// token must not also succeed (the deleting statement checks the token itself), and one of them always does.
async fn an_update_and_a_delete_with_one_token_never_both_succeed(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = RegistrationPolicy::Token
    })
    .await;
    app.register(ClientSpec::machine().scope("read")).await;
    let token = OpaqueToken::generate();
    let now = app.clock.now();
    app.state
        .store
        .create_initial_token(&token.digest(), now + 600, 40, now)
        .await
        .unwrap();
    for _ in 0..20 {
        let registered: Value = post_register(
            &app.http,
            &app,
            Some(token.as_str()),
            &json!({"grant_types": ["client_credentials"], "scope": "read"}),
        )
        .await
        .json()
        .await
        .unwrap();
        let uri = registered["registration_client_uri"]
            .as_str()
            .unwrap()
            .to_owned();
        let access = registered["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"client_id": registered["client_id"], "grant_types": ["client_credentials"], "scope": "read"});
        let (put, delete) = tokio::join!(
            app.http.put(&uri).bearer_auth(&access).json(&body).send(),
            app.http.delete(&uri).bearer_auth(&access).send()
        );
        let (put, delete) = (put.unwrap().status(), delete.unwrap().status());
        assert_ne!(
            (put, delete),
            (StatusCode::OK, StatusCode::NO_CONTENT),
            "both won"
        );
        assert!(
            put == StatusCode::OK || delete == StatusCode::NO_CONTENT,
            "neither won: {put} {delete}"
        );
    }
}

/// `--registration-idle-days`: a dynamic client without a token for that long is deleted by the purge
/// round (its tokens with it), one that got a token stays; issuance notes activity at most once a day, so
/// the token endpoint does not write per request.
async fn an_idle_dynamic_client_is_deleted_and_issuance_writes_once_a_day(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = RegistrationPolicy::Token;
        serve.registration_idle_days = 30;
    })
    .await;
    let operator = app.register(ClientSpec::machine().scope("read")).await;
    let token = OpaqueToken::generate();
    let now = app.clock.now();
    app.state
        .store
        .create_initial_token(&token.digest(), now + 60, 2, now)
        .await
        .unwrap();
    let mut machines = Vec::new();
    for _ in 0..2 {
        let registered: Value = post_register(
            &app.http,
            &app,
            Some(token.as_str()),
            &json!({"grant_types": ["client_credentials"], "scope": "read"}),
        )
        .await
        .json()
        .await
        .unwrap();
        machines.push(TestClient {
            id: registered["client_id"].as_str().unwrap().to_owned(),
            secret: registered["client_secret"].as_str().map(str::to_owned),
        });
    }
    let [used, idle] = <[TestClient; 2]>::try_from(machines).unwrap();
    let last_issued = async |client: &TestClient| {
        app.count(&format!(
            "select coalesce(last_issued_at, -1) from client where client_id = '{}'",
            client.id
        ))
        .await
    };
    app.access_token(&idle).await;
    // Twenty days on, at noon (so that an hour later is the same day whatever the time of the run), `used`
    // gets tokens: the first of the day is noted, the next (an hour later) is not.
    let to_noon = (86_400 + 43_200 - app.clock.now().rem_euclid(86_400)) % 86_400;
    app.clock.advance(20 * 86_400 + to_noon);
    app.access_token(&used).await;
    let noted = last_issued(&used).await;
    assert_eq!(noted, app.clock.now());
    app.clock.advance(3_600);
    app.access_token(&used).await;
    assert_eq!(
        last_issued(&used).await,
        noted,
        "a second write the same day"
    );
    // Fifteen more days: `idle` had no token for 35 days and goes at the next purge round; `used` (15 days)
    // and the operator's client stay.
    app.clock.advance(15 * 86_400);
    let mut gone = false;
    for _ in 0..100 {
        if app
            .count(&format!(
                "select count(*) from client where client_id = '{}'",
                idle.id
            ))
            .await
            == 0
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the idle client was not deleted");
    // Its record leaves the replica's cache at the next configuration poll, as after `client delete`.
    let mut status = StatusCode::OK;
    for _ in 0..50 {
        status = app
            .http
            .post(app.url("/token"))
            .basic_auth(&idle.id, idle.secret.as_deref())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status();
        if status != StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.access_token(&used).await;
    app.access_token(&operator).await;
}

async fn a_configuration_files_prune_never_deletes_a_self_registered_client(backend: Backend) {
    let app = open(backend, |_| {}).await;
    app.register(ClientSpec::machine().scope("read")).await;
    let registered: Value = post_register(&app.http, &app, None, &mcp_like())
        .await
        .json()
        .await
        .unwrap();
    let folder = std::env::temp_dir().join(format!("prune-dynamic-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("empty.toml");
    std::fs::write(&file, "prune = true\n").unwrap();
    let applied = crate::cli::json(&crate::cli::run(
        &["config", "apply", file.to_str().unwrap()],
        &app.database_url,
        None,
    ));
    std::fs::remove_dir_all(&folder).unwrap();
    assert_eq!(
        applied["clients"]["pruned"], 1,
        "the operator's client: {applied}"
    );
    let left: Vec<String> = app
        .state
        .store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|client| client.client_id.into_string())
        .collect();
    assert_eq!(left, [registered["client_id"].as_str().unwrap()]);
}

async fn the_cli_makes_initial_access_tokens_shown_once(backend: Backend) {
    let db = testkit::TestDatabase::create(&backend).await;
    let made = crate::cli::json(&crate::cli::run(
        &[
            "registration",
            "token",
            "create",
            "--ttl",
            "600",
            "--max-uses",
            "2",
        ],
        &db.url,
        None,
    ));
    assert_eq!(made["expires_in"], 600);
    assert_eq!(made["max_uses"], 2);
    let token = made["initial_access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    let app = TestIssuer::on_database(
        &db.url,
        auth_core::clock::ManualClock::new(auth_core::clock::SystemClock.now()),
        |serve| serve.registration = RegistrationPolicy::Token,
    )
    .await;
    app.register(ClientSpec::machine().scope("read")).await;
    for expected in [
        StatusCode::CREATED,
        StatusCode::CREATED,
        StatusCode::UNAUTHORIZED,
    ] {
        let response = post_register(&app.http, &app, Some(&token), &mcp_like()).await;
        assert_eq!(response.status(), expected);
    }
    // Stored as its digest only.
    assert_eq!(
        app.count(&format!(
            "select count(*) from initial_access_token where token_digest = '{}'",
            token
        ))
        .await,
        0
    );
}

fn mcp_like() -> Value {
    json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Totally Legit Bank",
        "scope": "openid read",
    })
}

async fn open(
    backend: Backend,
    configure: impl FnOnce(&mut auth_server::config::ServeConfig),
) -> TestIssuer {
    TestIssuer::spawn_with(backend, |serve| {
        serve.registration = RegistrationPolicy::Open;
        configure(serve);
    })
    .await
}

async fn post_register(
    http: &reqwest::Client,
    app: &TestIssuer,
    bearer: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = http.post(app.url("/register")).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn registration_is_off_by_default_and_answers_404(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let response = post_register(&app.http, &app, None, &mcp_like()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.metadata().await.get("registration_endpoint"), None);
    let open = open(Backend::Sqlite, |_| {}).await;
    assert_eq!(
        open.metadata().await["registration_endpoint"],
        open.url("/register")
    );
}

async fn an_open_registration_signs_a_user_in_and_consent_is_shown_every_time(backend: Backend) {
    let app = open(backend, |_| {}).await;
    // Its scopes must exist somewhere: an operator's client registers `read`.
    app.register(ClientSpec::machine().scope("read")).await;
    app.user("alice").await;
    let response = post_register(&app.http, &app, None, &mcp_like()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let registered: Value = response.json().await.unwrap();
    assert!(
        registered
            .as_object()
            .unwrap()
            .values()
            .all(|value| !value.is_null()),
        "{registered}"
    );
    assert_eq!(registered["redirect_uris"], json!([REDIRECT_URI]));
    assert_eq!(
        registered.get("client_secret"),
        None,
        "a public client has no secret"
    );
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    assert!(!client_id.starts_with("https:"));
    assert_eq!(
        registered["registration_client_uri"],
        app.url(&format!("/register/{client_id}"))
    );
    // The consent page says who registered it, and the user signs in with code + PKCE.
    let client = TestClient {
        id: client_id.clone(),
        secret: None,
    };
    let (verifier, challenge) = testkit::jwt::pkce();
    let url = app.authorize_url(&client_id, &challenge, &[("scope", "openid read")]);
    let mut browser = app.browser();
    let login = browser.open_login(&url).await;
    let consent = browser.sign_in(&login, "alice", testkit::PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    assert!(
        consent
            .html
            .contains("registered by its developer, not by the operator of this server"),
        "{}",
        consent.html
    );
    let approved = browser.decide(&consent, "approve").await;
    let code = browser.code_of(&approved);
    let tokens = app
        .post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    let claims = testkit::jwt::claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        claims["aud"], "resource-api",
        "a dynamic client's one audience"
    );
    // Consent is never remembered: prompt=none asks again, and a new request shows the page.
    let silent = browser
        .get(&app.authorize_url(
            &client_id,
            &challenge,
            &[("scope", "openid read"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(
        silent.redirect_param("error").as_deref(),
        Some("consent_required")
    );
    let again = browser
        .get(&app.authorize_url(&client_id, &challenge, &[("scope", "openid read")]))
        .await;
    assert!(again.is_consent_form(), "{}", again.html);
    // `client list` says who registered it.
    let listed = app.state.store.list_clients().await.unwrap();
    let ours = listed
        .iter()
        .find(|client| client.client_id.as_str() == client_id)
        .unwrap();
    assert_eq!(ours.registered, auth_server::store::Registered::Dynamic);
    assert_eq!(
        auth_server::commands::client_json(ours)["registered"],
        "dynamic"
    );
}

async fn initial_access_tokens_are_needed_under_token_and_spent_once_per_registration(
    backend: Backend,
) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = RegistrationPolicy::Token
    })
    .await;
    app.register(ClientSpec::machine().scope("read")).await;
    let missing = post_register(&app.http, &app, None, &mcp_like()).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let unknown = post_register(&app.http, &app, Some("made-up"), &mcp_like()).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let token = OpaqueToken::generate();
    let now = app.clock.now();
    app.state
        .store
        .create_initial_token(&token.digest(), now + 60, 3, now)
        .await
        .unwrap();
    // A refused registration spends nothing.
    let bad = post_register(
        &app.http,
        &app,
        Some(token.as_str()),
        &json!({"redirect_uris": ["http://evil.example/cb"]}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_redirect_uri");
    // Eight at once with three uses left: exactly three clients.
    let statuses: Vec<StatusCode> = futures_join(8, |_| {
        let http = app.http.clone();
        let url = app.url("/register");
        let token = token.as_str().to_owned();
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"grant_types": ["client_credentials"], "scope": "read"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    })
    .await;
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::CREATED)
            .count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|status| matches!(*status, StatusCode::CREATED | StatusCode::UNAUTHORIZED))
    );
    assert_eq!(
        app.count("select count(*) from client where registered = 'dynamic'")
            .await,
        3
    );
    // An expired token is refused.
    let expired = OpaqueToken::generate();
    app.state
        .store
        .create_initial_token(&expired.digest(), now - 1, 5, now - 100)
        .await
        .unwrap();
    let late = post_register(&app.http, &app, Some(expired.as_str()), &mcp_like()).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    // Under `token`, client_credentials is allowed to a confidential client, and it gets tokens.
    let fresh = OpaqueToken::generate();
    app.state
        .store
        .create_initial_token(&fresh.digest(), now + 60, 1, now)
        .await
        .unwrap();
    let machine: Value = post_register(
        &app.http,
        &app,
        Some(fresh.as_str()),
        &json!({"grant_types": ["client_credentials"], "scope": "read"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let machine = TestClient {
        id: machine["client_id"].as_str().unwrap().to_owned(),
        secret: machine["client_secret"].as_str().map(str::to_owned),
    };
    assert_eq!(
        app.client_credentials(&machine).await["token_type"],
        "Bearer"
    );
}

/// Runs `count` futures made by `make` at once; their results in order.
async fn futures_join<F, Fut, T>(count: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..count).map(|index| tokio::spawn(make(index))).collect();
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

async fn open_registration_is_capped_per_source_and_in_total(backend: Backend) {
    let app = open(backend, |serve| serve.registration_max_clients = 300).await;
    app.register(ClientSpec::machine().scope("read")).await;
    let from = |last: u8| testkit::http::client_from(IpAddr::from([127, 0, 0, last]));
    // Twelve at once from one source: ten are read (bad or not), two are refused before.
    let flood: Vec<StatusCode> = futures_join(12, |index| {
        let http = from(1);
        let url = app.url("/register");
        async move {
            // Half invalid: the limit counts requests, not registrations.
            let body = if index % 2 == 0 {
                mcp_like()
            } else {
                json!({"redirect_uris": ["http://evil.example/cb"]})
            };
            http.post(url).json(&body).send().await.unwrap().status()
        }
    })
    .await;
    assert_eq!(
        flood
            .iter()
            .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{flood:?}"
    );
    let refused = from(1)
        .post(app.url("/register"))
        .json(&mcp_like())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Another source is served meanwhile.
    let other = from(2)
        .post(app.url("/register"))
        .json(&mcp_like())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    // One source's daily share is 1% of the cap (3 of 300): of the flood's six valid registrations, at
    // least four were counted, three stored and the rest refused 403.
    let count = |wanted: StatusCode| flood.iter().filter(|status| **status == wanted).count();
    assert_eq!(count(StatusCode::CREATED), 3, "{flood:?}");
    assert!(count(StatusCode::FORBIDDEN) >= 1, "{flood:?}");
    assert_eq!(
        app.count("select count(*) from client where registered = 'dynamic'")
            .await,
        4,
        "three from the flood, one from the other source"
    );
    // At the total cap, everyone gets 403 access_denied.
    let small = open(Backend::Sqlite, |serve| serve.registration_max_clients = 2).await;
    small.register(ClientSpec::machine().scope("read")).await;
    for last in [3, 4] {
        let created = from(last)
            .post(small.url("/register"))
            .json(&mcp_like())
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let full = from(5)
        .post(small.url("/register"))
        .json(&mcp_like())
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), StatusCode::FORBIDDEN);
    let body: Value = full.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
}

async fn a_registration_is_read_replaced_and_deleted_only_with_its_current_token(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = RegistrationPolicy::Token
    })
    .await;
    app.register(ClientSpec::machine().scope("read")).await;
    let introspector = app.register(ClientSpec::resource_server("rs")).await;
    let now = app.clock.now();
    let initial = OpaqueToken::generate();
    app.state
        .store
        .create_initial_token(&initial.digest(), now + 60, 2, now)
        .await
        .unwrap();
    let register = |body: Value| {
        let app = &app;
        let token = initial.as_str().to_owned();
        async move {
            post_register(&app.http, app, Some(&token), &body)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = register(
        json!({"grant_types": ["client_credentials"], "scope": "read", "client_name": "First"}),
    )
    .await;
    let second = register(mcp_like()).await;
    let uri = first["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = first["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = first["client_secret"].as_str().unwrap().to_owned();
    let get = |bearer: Option<String>| {
        let http = app.http.clone();
        let uri = uri.clone();
        async move {
            let mut request = http.get(uri);
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            request.send().await.unwrap()
        }
    };
    // Read: only with its own token; the secret is never in it.
    let read = get(Some(token.clone())).await;
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["client_name"], "First");
    assert_eq!(read.get("client_secret"), None);
    for bearer in [
        None,
        Some("made-up".to_owned()),
        Some(
            second["registration_access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    ] {
        let refused = get(bearer.clone()).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{bearer:?}");
    }
    // An operator's client has no registration to manage.
    let operator = app
        .http
        .get(app.url(&format!("/register/{}", introspector.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), StatusCode::UNAUTHORIZED);
    // A token issued before the update stays active through it.
    let client = TestClient {
        id: first["client_id"].as_str().unwrap().to_owned(),
        secret: Some(secret.clone()),
    };
    let access = app.access_token(&client).await;
    // Replace: a changed auth method or another client id is refused and changes nothing.
    let put = |bearer: &str, body: Value| {
        let http = app.http.clone();
        let uri = uri.clone();
        let bearer = bearer.to_owned();
        async move {
            http.put(uri)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let client_id = first["client_id"].clone();
    let method = put(&token, json!({"client_id": client_id, "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks"})).await;
    assert_eq!(method.status(), StatusCode::BAD_REQUEST);
    let other_id = put(
        &token,
        json!({"client_id": "someone-else", "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(other_id.status(), StatusCode::BAD_REQUEST);
    let replaced = put(&token, json!({"client_id": client_id, "client_secret": secret, "grant_types": ["client_credentials"], "scope": "read", "client_name": "Renamed"})).await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["client_name"], "Renamed");
    let rotated = replaced["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, token);
    assert_eq!(
        get(Some(token.clone())).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old token is dead"
    );
    assert_eq!(get(Some(rotated.clone())).await.status(), StatusCode::OK);
    assert_eq!(
        app.client_credentials(&client).await["token_type"],
        "Bearer",
        "the same secret"
    );
    assert_eq!(
        app.introspect_as(&introspector, &access).await["active"],
        true
    );
    // At most 30 management calls a minute per client, counted only once the token is right: a stranger's
    // forty wrong tokens spend nothing of the developer's.
    app.clock.advance(61);
    let stranger = testkit::http::client_from("127.0.0.2".parse().unwrap());
    for _ in 0..40 {
        let refused = stranger
            .get(uri.clone())
            .bearer_auth("a-guess")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let mut statuses = Vec::new();
    for _ in 0..32 {
        statuses.push(get(Some(rotated.clone())).await.status());
    }
    assert_eq!(
        statuses,
        [
            vec![StatusCode::OK; 30],
            vec![StatusCode::TOO_MANY_REQUESTS; 2]
        ]
        .concat()
    );
    app.clock.advance(61);
    // Delete: as `client delete`, its tokens die.
    let deleted = app
        .http
        .delete(uri.clone())
        .bearer_auth(&rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.introspect_as(&introspector, &access).await["active"],
        false
    );
    assert_eq!(get(Some(rotated)).await.status(), StatusCode::UNAUTHORIZED);
}

async fn an_openidconnect_relying_party_registers_itself_and_signs_in(backend: Backend) {
    use openidconnect::core::{CoreClientRegistrationRequest, CoreProviderMetadata};
    use openidconnect::{IssuerUrl, RedirectUrl, RegistrationUrl};

    let app = open(backend, |_| {}).await;
    app.register(ClientSpec::machine().scope("read")).await;
    app.user("alice").await;
    let http = crate::client_credentials::oauth2_http;
    let provider = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.issuer().to_owned()).unwrap(),
        &http,
    )
    .await
    .unwrap();
    let registration_url: RegistrationUrl = provider
        .registration_endpoint()
        .cloned()
        .expect("the provider advertises registration");
    let registered = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT_URI.to_owned()).unwrap()],
        Default::default(),
    )
    .register_async(&registration_url, &http)
    .await
    .unwrap();
    let client = TestClient {
        id: registered.client_id().as_str().to_owned(),
        secret: registered
            .client_secret()
            .map(|secret| secret.secret().to_owned()),
    };
    assert!(client.secret.is_some(), "client_secret_basic by default");
    let tokens = app.code_flow_for(&client, "alice", Some("openid")).await;
    let claims = testkit::jwt::claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], client.id.as_str());
}
