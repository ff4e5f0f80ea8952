//! One source against everyone else, and what a client can make the server write or forget: the
//! per-source connection cap, the bounds on pushed requests and proof `jti`s, a logout nobody can force, a
//! pushed request that serves one browser, the absolute lifetime of a refresh family, consent per audience,
//! IPv6 sources by their /64 — each over real sockets, on both back-ends.

use std::sync::Arc;
use std::time::Duration;

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::dpop::ProofKey;
use testkit::issuer::{OTHER_SOURCE, client_from};
use testkit::jwt::pkce;
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestIssuer, backend_tests};

backend_tests!(
    one_source_at_its_connection_cap_leaves_another_source_served,
    a_par_flood_from_one_source_stores_a_bounded_number_of_rows,
    pushes_keep_only_what_authorize_reads_and_at_most_4_kib,
    a_refused_grant_writes_no_jti,
    a_forced_logout_leaves_the_victim_signed_in,
    a_pushed_request_serves_the_browser_that_first_used_it,
    a_refresh_family_ends_at_its_absolute_lifetime,
    consent_to_one_audience_is_not_consent_to_another,
    an_empty_dpop_jkt_at_par_leaves_the_code_bound_to_the_proof,
    ipv6_sources_are_throttled_by_their_64_bit_prefix,
);

async fn one_source_at_its_connection_cap_leaves_another_source_served(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| serve.max_connections_per_source = 4).await;
    let machine = app
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    // 127.0.0.1 holds its four slots with silent connections.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(app.address).await.unwrap());
    }
    // A fifth from the same source is closed at once.
    let fifth = client_from("127.0.0.1".parse().unwrap())
        .get(app.url("/healthz"))
        .send()
        .await;
    assert!(
        fifth.is_err(),
        "served beyond the per-source cap: {fifth:?}"
    );
    // Another source gets its token meanwhile (a generous bound, never a timing target).
    let other = client_from(OTHER_SOURCE);
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        other
            .post(app.url("/token"))
            .basic_auth(&machine.id, machine.secret.as_deref())
            .form(&[("grant_type", "client_credentials")])
            .send(),
    )
    .await
    .expect("the other source waited")
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    drop(held);
}

/// The form of a push by public client `spa` with this challenge.
fn push_form(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", "spa".into()),
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT_URI.into()),
        ("scope", "read".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

async fn spa(app: &TestIssuer) {
    app.register(
        ClientSpec::public("spa")
            .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
            .scope("read")
            .skip_consent(),
    )
    .await;
}

async fn a_par_flood_from_one_source_stores_a_bounded_number_of_rows(backend: Backend) {
    const PUSHES: usize = 60;
    let app = TestIssuer::spawn(backend).await;
    spa(&app).await;
    let (_, challenge) = pkce();
    let start = Arc::new(tokio::sync::Barrier::new(PUSHES));
    let mut pushes = tokio::task::JoinSet::new();
    for _ in 0..PUSHES {
        let (http, url, form, start) = (
            app.http.clone(),
            app.url("/par"),
            push_form(&challenge),
            start.clone(),
        );
        pushes.spawn(async move {
            start.wait().await;
            http.post(url).form(&form).send().await.unwrap()
        });
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(response) = pushes.join_next().await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
                refused += 1;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(
        (created, refused),
        (30, 30),
        "30 pushes a minute per (public client, source)"
    );
    assert_eq!(app.count("select count(*) from pushed_request").await, 30);
    // Another source pushes meanwhile; the first again once its window has passed.
    let other = client_from(OTHER_SOURCE)
        .post(app.url("/par"))
        .form(&push_form(&challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    app.clock.advance(61);
    let again = app
        .http
        .post(app.url("/par"))
        .form(&push_form(&challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    // The expired pushes went with that push: the table holds only live ones.
    assert_eq!(app.count("select count(*) from pushed_request").await, 1);
}

async fn pushes_keep_only_what_authorize_reads_and_at_most_4_kib(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    spa(&app).await;
    let (_, challenge) = pkce();
    let mut form = push_form(&challenge);
    form.push(("unknown_parameter", "x".repeat(2_000)));
    form.push(("state", "kept".into()));
    let response = app
        .http
        .post(app.url("/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let stored = app
        .count("select count(*) from pushed_request where params like '%unknown_parameter%'")
        .await;
    assert_eq!(
        stored, 0,
        "a parameter /authorize does not read is not stored"
    );
    assert_eq!(
        app.count("select count(*) from pushed_request where params like '%state=kept%'")
            .await,
        1
    );
    // What is kept may not exceed 4 KiB.
    let mut large = push_form(&challenge);
    large.push(("state", "s".repeat(4_200)));
    let response = app
        .http
        .post(app.url("/par"))
        .form(&large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(app.count("select count(*) from pushed_request").await, 1);
}

async fn a_refused_grant_writes_no_jti(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    spa(&app).await;
    let machine = app
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    let key = ProofKey::generate("ES256");
    let token_uri = app.url("/token");
    // A made-up refresh token with a fresh, self-made proof: refused, nothing written.
    for _ in 0..5 {
        let response = app
            .http
            .post(&token_uri)
            .header("DPoP", key.proof("POST", &token_uri, app.clock.now(), None))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "made-up"),
                ("client_id", "spa"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    // A push refused for its scope, with a proof: nothing either.
    let (_, challenge) = pkce();
    let mut form = push_form(&challenge);
    form[3].1 = "admin".into();
    let refused = app
        .http
        .post(app.url("/par"))
        .header(
            "DPoP",
            key.proof("POST", &app.url("/par"), app.clock.now(), None),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.count("select count(*) from used_jti").await, 0);
    // A grant that succeeds spends its proof: one row, and the same proof again is refused.
    let proof = key.proof("POST", &token_uri, app.clock.now(), None);
    let send = || {
        app.http
            .post(&token_uri)
            .basic_auth(&machine.id, machine.secret.as_deref())
            .header("DPoP", proof.as_str())
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.count("select count(*) from used_jti").await, 1);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
}

/// Signs `username` in to `web` with scope `openid` in `browser`; returns the ID token.
async fn id_token_of(
    app: &TestIssuer,
    web: &testkit::TestClient,
    browser: &mut testkit::Browser,
    username: &str,
) -> String {
    let (verifier, challenge) = pkce();
    let code = browser
        .login_and_approve(
            &app.authorize_url("web", &challenge, &[("scope", "openid")]),
            username,
            PASSWORD,
        )
        .await;
    let response = app
        .post_token(
            web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    let tokens: Value = response.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// Is `browser` still signed in? (`prompt=none` answers with a code only to a live session.)
async fn signed_in(app: &TestIssuer, browser: &mut testkit::Browser) -> bool {
    let (_, challenge) = pkce();
    let page = browser
        .get(&app.authorize_url(
            "web",
            &challenge,
            &[("scope", "openid"), ("prompt", "none")],
        ))
        .await;
    page.redirect_param("code").is_some()
}

async fn a_forced_logout_leaves_the_victim_signed_in(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(
            ClientSpec::confidential("web")
                .grants([GrantType::AuthorizationCode])
                .scope("openid")
                .skip_consent(),
        )
        .await;
    app.user("victim").await;
    app.user("attacker").await;
    let mut victim = app.browser();
    let victims_token = id_token_of(&app, &web, &mut victim, "victim").await;
    let mut attacker = app.browser();
    let attackers_token = id_token_of(&app, &web, &mut attacker, "attacker").await;
    let logout = |hint: &str| {
        let mut url = url::Url::parse(&app.url("/logout")).unwrap();
        url.query_pairs_mut().append_pair("id_token_hint", hint);
        url.to_string()
    };
    // The attacker's own (valid, even expired) ID token, loaded by the victim's browser: a confirmation
    // page, no cookie cleared, the victim still signed in.
    app.clock.advance(1_000);
    let page = victim.get(&logout(&attackers_token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("confirm"), "{}", page.html);
    assert!(
        !page
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|cookie| cookie.to_str().unwrap().contains("auth_session=;")),
        "a cookie was cleared without its session ending"
    );
    assert!(
        signed_in(&app, &mut victim).await,
        "the victim was signed out"
    );
    // The victim's own ID token, from a request without the victim's cookie (the attacker's machine): a
    // confirmation page; confirming there ends the attacker's session, never the victim's.
    let cookieless = client_from(OTHER_SOURCE)
        .get(logout(&victims_token))
        .send()
        .await
        .unwrap();
    assert_eq!(cookieless.status(), StatusCode::OK);
    let page = attacker.get(&logout(&victims_token)).await;
    assert_eq!(page.status, StatusCode::OK);
    let form = page.form();
    let confirmed = attacker
        .post_to(&app.url("/logout"), &form.submission(&[("confirm", "yes")]))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.html);
    assert!(
        signed_in(&app, &mut victim).await,
        "the hint's session was ended"
    );
    assert!(
        !signed_in(&app, &mut attacker).await,
        "the confirming browser's own session ends"
    );
    // The victim's own hint from the victim's own browser: signed out at once.
    let page = victim.get(&logout(&victims_token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(!page.html.contains("confirm"), "{}", page.html);
    assert!(!signed_in(&app, &mut victim).await);
}

async fn a_pushed_request_serves_the_browser_that_first_used_it(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    spa(&app).await;
    app.user("alice").await;
    let (verifier, challenge) = pkce();
    let response = app
        .http
        .post(app.url("/par"))
        .form(&push_form(&challenge))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let request_uri = body["request_uri"].as_str().unwrap().to_owned();
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "spa")
        .append_pair("request_uri", &request_uri);
    let mut browser = app.browser();
    let login = browser.open_login(url.as_str()).await;
    // Past the 60 s a request_uri waits for its first use, the browser that used it goes on signing in.
    app.clock.advance(120);
    let again = browser.get(url.as_str()).await;
    assert!(again.is_login_form(), "{}", again.html);
    // Another browser presenting it: the error page.
    let other = app.browser().get(url.as_str()).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(other.html.contains("invalid_request_uri"), "{}", other.html);
    let done = browser.sign_in(&login, "alice", PASSWORD).await;
    let code = done.redirect_param("code").expect("a code");
    let spa_client = testkit::TestClient {
        id: "spa".into(),
        secret: None,
    };
    let response = app
        .post_token(
            &spa_client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Ten minutes after the first use it is gone, even for that browser.
    let (_, challenge) = pkce();
    let response = app
        .http
        .post(app.url("/par"))
        .form(&push_form(&challenge))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "spa")
        .append_pair("request_uri", body["request_uri"].as_str().unwrap());
    let mut browser = app.browser();
    browser.open_login(url.as_str()).await;
    app.clock.advance(601);
    let expired = browser.get(url.as_str()).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
}

async fn a_refresh_family_ends_at_its_absolute_lifetime(backend: Backend) {
    let app =
        TestIssuer::spawn_with(backend, |serve| serve.refresh_family_max_age = 3 * 86_400).await;
    let web = app.register(ClientSpec::web()).await;
    app.user("alice").await;
    let tokens = app.code_flow(&web, "alice").await;
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // Rotated every day: fine for three days...
    for _ in 0..2 {
        app.clock.advance(86_400);
        let response = app
            .post_token(
                &web,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let rotated: Value = response.json().await.unwrap();
        refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    }
    // ...then the family ends, however fresh its newest token.
    app.clock.advance(86_400);
    let response = app
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

async fn consent_to_one_audience_is_not_consent_to_another(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    app.register(
        ClientSpec::confidential("web")
            .grants([GrantType::AuthorizationCode])
            .scope("read")
            .audiences(["https://api.example/", "https://billing.example/"]),
    )
    .await;
    app.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let first = app.authorize_url("web", &challenge, &[("resource", "https://api.example/")]);
    browser.login_and_approve(&first, "alice", PASSWORD).await;
    // The same audience again: remembered, straight back with a code.
    let again = browser.get(&first).await;
    assert!(again.redirect_param("code").is_some(), "{}", again.html);
    // Another audience: the consent page.
    let other = browser
        .get(&app.authorize_url(
            "web",
            &challenge,
            &[("resource", "https://billing.example/")],
        ))
        .await;
    assert!(other.is_consent_form(), "{}", other.html);
}

async fn an_empty_dpop_jkt_at_par_leaves_the_code_bound_to_the_proof(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    spa(&app).await;
    app.user("alice").await;
    let key = ProofKey::generate("ES256");
    let (verifier, challenge) = pkce();
    let mut form = push_form(&challenge);
    form.push(("state", "xyz-state".into()));
    form.push(("dpop_jkt", String::new()));
    let response = app
        .http
        .post(app.url("/par"))
        .header(
            "DPoP",
            key.proof("POST", &app.url("/par"), app.clock.now(), None),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "spa")
        .append_pair("request_uri", body["request_uri"].as_str().unwrap());
    let code = app
        .browser()
        .login_and_approve(url.as_str(), "alice", PASSWORD)
        .await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
        ("client_id", "spa"),
    ];
    // Without a proof: refused, the code not spent.
    let refused = app
        .http
        .post(app.url("/token"))
        .form(&exchange)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    let bound = app
        .http
        .post(app.url("/token"))
        .header(
            "DPoP",
            key.proof("POST", &app.url("/token"), app.clock.now(), None),
        )
        .form(&exchange)
        .send()
        .await
        .unwrap();
    assert_eq!(bound.status(), StatusCode::OK);
}

async fn ipv6_sources_are_throttled_by_their_64_bit_prefix(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    app.register(ClientSpec::web()).await;
    app.user("alice").await;
    let (_, challenge) = pkce();
    let url = app.authorize_url("web", &challenge, &[]);
    let from = |address: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        app.browser_with(None, headers)
    };
    // Twenty failures, each from another address of one /64: the /64 is one source.
    for index in 0..20 {
        let mut browser = from(&format!("2001:db8:1:2::{:x}", index + 1));
        let login = browser.open_login(&url).await;
        let page = browser
            .submit(
                &login.form(),
                &[("username", &format!("u{index}")), ("password", "wrong")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "attempt {index}");
    }
    let mut browser = from("2001:db8:1:2:ffff::1");
    let login = browser.open_login(&url).await;
    let throttled = browser
        .submit(
            &login.form(),
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    // Another /64 signs in.
    let mut browser = from("2001:db8:1:3::1");
    let login = browser.open_login(&url).await;
    let page = browser
        .submit(
            &login.form(),
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_ne!(page.status, StatusCode::TOO_MANY_REQUESTS);
}
