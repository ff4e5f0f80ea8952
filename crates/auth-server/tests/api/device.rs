//! The device authorization grant (RFC 8628): the endpoint's answer, every polling answer, expiry, a user
//! code guessed from one source while another is unaffected, a device code redeemed once under concurrency,
//! DPoP binding on the winning poll, the pages (CSRF, login, consent always shown, deny), and two replicas
//! (poll at one, approve at the other).

use reqwest::StatusCode;
use serde_json::Value;

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use testkit::browser::{Browser, Page};
use testkit::dpop::ProofKey;
use testkit::jwt::claims;
use testkit::{Backend, ClientSpec, PASSWORD, TestClient, TestIssuer, backend_tests};

backend_tests!(
    the_endpoint_answers_rfc_8628_and_checks_the_client,
    polling_answers_pending_slow_down_denied_and_expired,
    an_approved_code_is_redeemed_once_under_concurrency,
    the_winning_poll_binds_the_tokens_to_its_dpop_key,
    wrong_user_codes_are_throttled_per_source,
    the_pages_need_their_csrf_tokens_and_show_the_code,
    a_replica_approves_what_another_polls,
    unexpired_device_codes_are_bounded_in_total,
);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn tv() -> ClientSpec {
    ClientSpec::public("tv")
        .name("Living Room TV")
        .grants([GrantType::DeviceCode, GrantType::RefreshToken])
        .scope("openid read write")
}

async fn start(app: &TestIssuer, client: &TestClient, scope: Option<&str>) -> Value {
    let mut form = vec![("client_id", client.id.as_str())];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = app
        .http
        .post(app.url("/device_authorization"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn poll(app: &TestIssuer, client: &TestClient, device_code: &str) -> reqwest::Response {
    app.post_token(
        client,
        &[("grant_type", GRANT), ("device_code", device_code)],
    )
    .await
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn pending() -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, "authorization_pending".into())
}

/// Enters `user_code` at /device in `browser`, signs in as `username` if asked, and answers `decision`.
async fn answer(
    app: &TestIssuer,
    browser: &mut Browser,
    user_code: &str,
    username: &str,
    decision: &str,
) -> Page {
    let device = app.url("/device");
    let entry = browser.get(&device).await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.html);
    let mut page = browser
        .post_to(
            &device,
            &entry.form().submission(&[("user_code", user_code)]),
        )
        .await;
    if page.is_login_form() {
        page = browser
            .post_to(
                &device,
                &page
                    .form()
                    .submission(&[("username", username), ("password", PASSWORD)]),
            )
            .await;
    }
    assert!(page.is_consent_form(), "consent expected: {}", page.html);
    browser
        .post_to(&device, &page.form().submission(&[("decision", decision)]))
        .await
}

async fn the_endpoint_answers_rfc_8628_and_checks_the_client(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    let started = start(&app, &tv, None).await;
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    assert!(started["device_code"].as_str().unwrap().len() >= 43);
    assert_eq!(started["verification_uri"], app.url("/device"));
    assert_eq!(
        started["verification_uri_complete"],
        format!("{}?user_code={user_code}", app.url("/device"))
    );
    assert_eq!(started["expires_in"], 600);
    assert_eq!(started["interval"], 5);
    // The metadata names the endpoint and the grant.
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["device_authorization_endpoint"],
        app.url("/device_authorization")
    );
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(GRANT))
    );
    // A client without the grant, and a scope beyond the client's.
    let web = app
        .register(ClientSpec::public("spa").grants([GrantType::AuthorizationCode]))
        .await;
    let refused = app
        .http
        .post(app.url("/device_authorization"))
        .form(&[("client_id", web.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(refused).await,
        (StatusCode::BAD_REQUEST, "unauthorized_client".into())
    );
    let wide = app
        .http
        .post(app.url("/device_authorization"))
        .form(&[("client_id", "tv"), ("scope", "read admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(wide).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
    // 30 a minute per (client, source): the 31st is 429, a second source is unaffected.
    let mut last = StatusCode::OK;
    for _ in 0..30 {
        last = app
            .http
            .post(app.url("/device_authorization"))
            .form(&[("client_id", "tv")])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let other = testkit::http::client_from([127, 0, 0, 2].into())
        .post(app.url("/device_authorization"))
        .form(&[("client_id", "tv")])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

async fn polling_answers_pending_slow_down_denied_and_expired(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    app.user("alice").await;
    let started = start(&app, &tv, Some("read")).await;
    let device_code = started["device_code"].as_str().unwrap();
    assert_eq!(
        error_of(poll(&app, &tv, device_code).await).await,
        pending()
    );
    // At once again: too soon, and the interval grows to 10 s.
    assert_eq!(
        error_of(poll(&app, &tv, device_code).await).await,
        (StatusCode::BAD_REQUEST, "slow_down".into())
    );
    app.clock.advance(6);
    assert_eq!(
        error_of(poll(&app, &tv, device_code).await).await,
        (StatusCode::BAD_REQUEST, "slow_down".into()),
        "6 s is too soon once the interval is 10 s"
    );
    app.clock.advance(14);
    assert_eq!(
        error_of(poll(&app, &tv, device_code).await).await,
        pending()
    );
    // Another client presenting the code, and a code that does not exist.
    let other = app
        .register(
            ClientSpec::public("other-tv")
                .grants([GrantType::DeviceCode])
                .scope("read"),
        )
        .await;
    assert_eq!(
        error_of(poll(&app, &other, device_code).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        error_of(poll(&app, &tv, "not-a-device-code").await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    // The user denies.
    let mut browser = app.browser();
    let done = answer(
        &app,
        &mut browser,
        started["user_code"].as_str().unwrap(),
        "alice",
        "deny",
    )
    .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("id=\"device-denied\""), "{}", done.html);
    app.clock.advance(20);
    assert_eq!(
        error_of(poll(&app, &tv, device_code).await).await,
        (StatusCode::BAD_REQUEST, "access_denied".into())
    );
    // A code nobody answered expires after 600 s.
    let late = start(&app, &tv, Some("read")).await;
    let late_code = late["device_code"].as_str().unwrap();
    app.clock.advance(600);
    assert_eq!(
        error_of(poll(&app, &tv, late_code).await).await,
        (StatusCode::BAD_REQUEST, "expired_token".into())
    );
    // Its user code no longer leads anywhere.
    let mut browser = app.browser();
    let entry = browser.get(&app.url("/device")).await;
    let page = browser
        .post_to(
            &app.url("/device"),
            &entry
                .form()
                .submission(&[("user_code", late["user_code"].as_str().unwrap())]),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

async fn an_approved_code_is_redeemed_once_under_concurrency(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    app.user("alice").await;
    let started = start(&app, &tv, Some("openid read write")).await;
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    assert_eq!(
        error_of(poll(&app, &tv, &device_code).await).await,
        pending()
    );
    let mut browser = app.browser();
    // The user code as a person might type it: lower case, without the dash.
    let typed = started["user_code"]
        .as_str()
        .unwrap()
        .replace('-', " ")
        .to_lowercase();
    let done = answer(&app, &mut browser, &typed, "alice", "approve").await;
    assert!(
        done.html.contains("id=\"device-approved\""),
        "{}",
        done.html
    );
    // Twelve polls at one barrier.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let barrier = barrier.clone();
            let request = app.http.post(app.url("/token")).form(&[
                ("grant_type", GRANT),
                ("device_code", device_code.as_str()),
                ("client_id", "tv"),
            ]);
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == StatusCode::OK {
            won.push(body);
        } else {
            assert_eq!(
                (status, body["error"].as_str().unwrap()),
                (StatusCode::BAD_REQUEST, "invalid_grant")
            );
        }
    }
    assert_eq!(won.len(), 1, "exactly one poll gets the tokens");
    let tokens = &won[0];
    assert_eq!(tokens["scope"], "openid read write");
    assert!(tokens["refresh_token"].is_string());
    let access = claims(tokens["access_token"].as_str().unwrap());
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(access["client_id"], "tv");
    assert_eq!(id_token["sub"], access["sub"]);
    assert!(id_token["sid"].is_string(), "the approving session's sid");
    assert!(id_token.get("nonce").is_none());
    // The refresh token works; afterwards the device code is spent.
    let refreshed = app
        .post_token(
            &tv,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(
        error_of(poll(&app, &tv, &device_code).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

async fn the_winning_poll_binds_the_tokens_to_its_dpop_key(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    app.user("alice").await;
    let started = start(&app, &tv, Some("read")).await;
    let device_code = started["device_code"].as_str().unwrap();
    let mut browser = app.browser();
    answer(
        &app,
        &mut browser,
        started["user_code"].as_str().unwrap(),
        "alice",
        "approve",
    )
    .await;
    let key = ProofKey::generate("ES256");
    let token_url = app.url("/token");
    let form = [
        ("grant_type", GRANT),
        ("device_code", device_code),
        ("client_id", "tv"),
    ];
    // A proof for another URL: refused, and nothing is spent.
    let bad = app
        .http
        .post(&token_url)
        .header(
            "DPoP",
            key.proof("POST", &app.url("/par"), app.clock.now(), None),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(bad).await,
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof".into())
    );
    let good = app
        .http
        .post(&token_url)
        .header("DPoP", key.proof("POST", &token_url, app.clock.now(), None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let tokens: Value = good.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
    // A proof already spent is refused without spending another approved device code.
    let second = start(&app, &tv, Some("read")).await;
    let second_code = second["device_code"].as_str().unwrap();
    answer(
        &app,
        &mut browser,
        second["user_code"].as_str().unwrap(),
        "alice",
        "approve",
    )
    .await;
    let spent = key.proof("POST", &token_url, app.clock.now(), None);
    let second_form = [
        ("grant_type", GRANT),
        ("device_code", second_code),
        ("client_id", "tv"),
    ];
    let third = start(&app, &tv, Some("read")).await;
    answer(
        &app,
        &mut browser,
        third["user_code"].as_str().unwrap(),
        "alice",
        "approve",
    )
    .await;
    let third_form = [
        ("grant_type", GRANT),
        ("device_code", third["device_code"].as_str().unwrap()),
        ("client_id", "tv"),
    ];
    let first_use = app
        .http
        .post(&token_url)
        .header("DPoP", &spent)
        .form(&third_form)
        .send()
        .await
        .unwrap();
    assert_eq!(first_use.status(), StatusCode::OK);
    let replayed = app
        .http
        .post(&token_url)
        .header("DPoP", &spent)
        .form(&second_form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(replayed).await,
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof".into())
    );
    let fresh = app
        .http
        .post(&token_url)
        .header("DPoP", key.proof("POST", &token_url, app.clock.now(), None))
        .form(&second_form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "the device code was not spent"
    );
    // The public client's refresh token is bound to the key too: without a proof it is refused.
    let refresh = app
        .post_token(
            &tv,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(
        error_of(refresh).await,
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof".into())
    );
}

async fn wrong_user_codes_are_throttled_per_source(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    app.user("alice").await;
    let started = start(&app, &tv, Some("read")).await;
    let real = started["user_code"].as_str().unwrap();
    let device = app.url("/device");
    let mut attacker = app.browser();
    let entry = attacker.get(&device).await;
    let form = entry.form();
    // A right code gives its count back: typing one's own code does not use up the budget.
    for _ in 0..3 {
        let page = attacker
            .post_to(&device, &form.submission(&[("user_code", real)]))
            .await;
        assert_eq!(page.status, StatusCode::OK);
    }
    for guess in [
        "BBBB-BBBB",
        "CCCC-CCCC",
        "DDDD-DDDD",
        "FFFF-FFFF",
        "garbage",
    ] {
        let page = attacker
            .post_to(&device, &form.submission(&[("user_code", guess)]))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{guess}");
    }
    // The sixth failure in the minute is refused before any lookup, even for the right code.
    let throttled = attacker
        .post_to(&device, &form.submission(&[("user_code", real)]))
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers.contains_key("retry-after"));
    // Another source is unaffected: the user approves from 127.0.0.2.
    let mut user = app.browser_from([127, 0, 0, 2].into());
    let done = answer(&app, &mut user, real, "alice", "approve").await;
    assert!(
        done.html.contains("id=\"device-approved\""),
        "{}",
        done.html
    );
    // After the window, the first source may try again.
    app.clock.advance(61);
    let later = attacker
        .post_to(&device, &form.submission(&[("user_code", "GGGG-GGGG")]))
        .await;
    assert_eq!(later.status, StatusCode::BAD_REQUEST);
}

async fn the_pages_need_their_csrf_tokens_and_show_the_code(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let tv = app.register(tv()).await;
    app.user("alice").await;
    let started = start(&app, &tv, Some("read")).await;
    let user_code = started["user_code"].as_str().unwrap();
    let device = app.url("/device");
    let mut browser = app.browser();
    // verification_uri_complete fills the form in and submits nothing.
    let filled = browser
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(filled.status, StatusCode::OK);
    assert!(
        filled.html.contains(&format!("value=\"{user_code}\"")),
        "{}",
        filled.html
    );
    assert!(!filled.is_login_form() && !filled.is_consent_form());
    // Without the CSRF token, or with another browser's, nothing happens.
    let forged = browser.post_to(&device, &[("user_code", user_code)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut stranger = app.browser();
    let strangers_form = stranger.get(&device).await.form();
    let crossed = browser
        .post_to(
            &device,
            &strangers_form.submission(&[("user_code", user_code)]),
        )
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    // Sign in; the consent page names the client and shows the code to compare, and is shown even though
    // the user is signed in already (a second round).
    let login = browser
        .post_to(
            &device,
            &filled.form().submission(&[("user_code", user_code)]),
        )
        .await;
    assert!(login.is_login_form(), "{}", login.html);
    let consent = browser
        .post_to(
            &device,
            &login
                .form()
                .submission(&[("username", "alice"), ("password", PASSWORD)]),
        )
        .await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    assert!(consent.html.contains("Living Room TV"));
    assert!(consent.html.contains(user_code));
    assert!(consent.html.contains("If someone sent you this code"));
    // A consent token answers only its own code: replayed for another code it is refused.
    let other = start(&app, &tv, Some("read")).await;
    let other_code = other["user_code"].as_str().unwrap();
    let form = consent.form();
    let mut swapped: Vec<(&str, &str)> = form
        .submission(&[("decision", "approve")])
        .into_iter()
        .map(|(name, value)| {
            if name == "user_code" {
                (name, other_code)
            } else {
                (name, value)
            }
        })
        .collect();
    let refused = browser.post_to(&device, &swapped).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    swapped.clear();
    // The signed-in user entering a second code goes straight to its consent page, never to approval.
    let entry = browser.get(&device).await;
    let second = browser
        .post_to(
            &device,
            &entry.form().submission(&[("user_code", other_code)]),
        )
        .await;
    assert!(second.is_consent_form(), "{}", second.html);
    assert!(second.html.contains(other_code));
    let tv_poll = poll(&app, &tv, other["device_code"].as_str().unwrap()).await;
    assert_eq!(error_of(tv_poll).await, pending());
}

async fn a_replica_approves_what_another_polls(backend: Backend) {
    let first = TestIssuer::spawn(backend).await;
    let tv = first.register(tv()).await;
    first.user("alice").await;
    let second = first.replica().await;
    let started = start(&first, &tv, Some("read")).await;
    let device_code = started["device_code"].as_str().unwrap();
    assert_eq!(
        error_of(poll(&first, &tv, device_code).await).await,
        pending()
    );
    // Poll state is in the database: a poll at the other replica at once is too soon.
    assert_eq!(
        error_of(poll(&second, &tv, device_code).await).await,
        (StatusCode::BAD_REQUEST, "slow_down".into())
    );
    let mut browser = second.browser();
    let done = answer(
        &second,
        &mut browser,
        started["user_code"].as_str().unwrap(),
        "alice",
        "approve",
    )
    .await;
    assert!(
        done.html.contains("id=\"device-approved\""),
        "{}",
        done.html
    );
    let tokens = poll(&first, &tv, device_code).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    assert_eq!(
        error_of(poll(&second, &tv, device_code).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

/// The store refuses a device authorization once `max_unexpired` unexpired ones exist (the endpoint passes
/// 100,000); expired ones do not count.
async fn unexpired_device_codes_are_bounded_in_total(backend: Backend) {
    use auth_server::store::DeviceAuthorizationRecord;
    let app = TestIssuer::spawn(backend).await;
    app.register(tv()).await;
    let now = app.clock.now();
    let record = |n: u8, expires_at: i64| DeviceAuthorizationRecord {
        device_code_digest: auth_core::secret::SecretDigest::of(&format!("device-{n}")),
        user_code: format!("BCDFGHJ{}", char::from(b"KLMNPQ"[usize::from(n)])),
        client_id: auth_core::id::ClientId::from_trusted("tv"),
        scope: auth_core::scope::ScopeSet::parse("read").unwrap(),
        audience: "https://api.example/".into(),
        created_at: now,
        expires_at,
        interval: 5,
        approved: None,
        denied: false,
        used: false,
    };
    let store = &app.state.store;
    assert!(
        store
            .create_device_authorization(&record(0, now - 100), 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .create_device_authorization(&record(1, now + 600), 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .create_device_authorization(&record(2, now + 600), 2)
            .await
            .unwrap(),
        "the expired one does not count"
    );
    assert!(
        !store
            .create_device_authorization(&record(3, now + 600), 2)
            .await
            .unwrap(),
        "two unexpired: full"
    );
    // A taken user code is refused too (the caller draws another).
    let mut taken = record(4, now + 600);
    taken.user_code = record(1, 0).user_code;
    assert!(!store.create_device_authorization(&taken, 10).await.unwrap());
    assert!(
        store
            .create_device_authorization(&record(5, now + 600), 10)
            .await
            .unwrap()
    );
}
