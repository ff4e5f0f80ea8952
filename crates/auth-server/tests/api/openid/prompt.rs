//! What the user sees and what a request may ask (Core §3.1.2.1): `prompt`, `max_age`, remembered consent
//! and its withdrawal, strict parameters, `nonce`, the OpenID scopes never granted to a client alone, and a
//! consent page that answers only its own request.

use super::*;

backend_tests!(
    prompt_and_max_age_decide_what_the_user_sees,
    remembered_consent_can_be_withdrawn_from_the_command_line,
    openid_requests_are_strict_about_their_parameters,
    openid_scopes_are_never_granted_to_client_credentials,
    a_nonce_belongs_to_its_own_flow,
    a_consent_page_approves_only_the_request_it_was_shown_for,
);

/// An authorization request of the web app for `extra` parameters (a fixed PKCE challenge).
fn authorize(app: &TestIssuer, extra: &[(&str, &str)]) -> String {
    let (_, challenge) = pkce();
    let mut params = vec![("scope", "openid")];
    params.extend_from_slice(extra);
    app.authorize_url("web", &challenge, &params)
}

fn error_of(page: &Page) -> Option<String> {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.redirect_param("state").as_deref(), Some("xyz-state"));
    page.redirect_param("error")
}

async fn prompt_and_max_age_decide_what_the_user_sees(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app()).await;
    app.user("alice").await;
    let mut browser = app.browser();
    // prompt=none without a session: login_required, as a redirect (Core §3.1.2.6).
    let page = browser.get(&authorize(&app, &[("prompt", "none")])).await;
    assert_eq!(error_of(&page).as_deref(), Some("login_required"));
    assert_eq!(page.redirect_param("iss").as_deref(), Some(app.issuer()));
    // Signed in, but no consent yet: consent_required.
    let login = browser.open_login(&authorize(&app, &[])).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form());
    let page = browser.get(&authorize(&app, &[("prompt", "none")])).await;
    assert_eq!(error_of(&page).as_deref(), Some("consent_required"));
    // Consent given (and remembered): prompt=none now gets a code without any page.
    let approved = browser.decide(&consent, "approve").await;
    assert!(approved.redirect_param("code").is_some());
    let silent = browser.get(&authorize(&app, &[("prompt", "none")])).await;
    assert!(silent.redirect_param("code").is_some(), "{}", silent.html);
    // prompt=consent asks again, remembered or not.
    let asked = browser
        .get(&authorize(&app, &[("prompt", "consent")]))
        .await;
    assert!(asked.is_consent_form());
    // prompt=login shows the login form despite the session; signing in moves auth_time.
    app.clock.advance(30);
    let relogin = browser.get(&authorize(&app, &[("prompt", "login")])).await;
    assert!(relogin.is_login_form(), "{}", relogin.html);
    let after = browser.sign_in(&relogin, "alice", PASSWORD).await;
    assert!(
        after.redirect_param("code").is_some(),
        "consent remembered: a code"
    );
    let auth_time = app.clock.now();
    // max_age: the session is younger than 60 s, so no login; max_age=0 always signs in again.
    app.clock.advance(10);
    let young = browser.get(&authorize(&app, &[("max_age", "60")])).await;
    assert!(young.redirect_param("code").is_some(), "{}", young.html);
    let always = browser.get(&authorize(&app, &[("max_age", "0")])).await;
    assert!(always.is_login_form());
    app.clock.advance(60);
    let old = browser.get(&authorize(&app, &[("max_age", "60")])).await;
    assert!(old.is_login_form(), "now − auth_time ≥ max_age");
    let old_and_silent = browser
        .get(&authorize(&app, &[("max_age", "60"), ("prompt", "none")]))
        .await;
    assert_eq!(error_of(&old_and_silent).as_deref(), Some("login_required"));
    // The ID token says when the user last typed their password.
    let (verifier, challenge) = pkce();
    let url = app.authorize_url("web", &challenge, &[("scope", "openid")]);
    let page = browser.get(&url).await;
    let code = page.redirect_param("code").unwrap();
    let tokens: Value = app
        .post_token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let id_claims = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_claims["auth_time"], auth_time, "the last real sign-in");
    // prompt=consent shows the page even for a client registered to skip it.
    app.register(
        ClientSpec::confidential("trusted")
            .grants([GrantType::AuthorizationCode])
            .scope("openid")
            .skip_consent(),
    )
    .await;
    let (_, challenge) = pkce();
    let trusted = browser
        .get(&app.authorize_url(
            "trusted",
            &challenge,
            &[("scope", "openid"), ("prompt", "consent")],
        ))
        .await;
    assert!(trusted.is_consent_form());
    // Values that make no sense are invalid_request.
    for prompt in ["none login", "bogus"] {
        let page = browser.get(&authorize(&app, &[("prompt", prompt)])).await;
        assert_eq!(
            error_of(&page).as_deref(),
            Some("invalid_request"),
            "{prompt}"
        );
    }
    let page = browser.get(&authorize(&app, &[("max_age", "-1")])).await;
    assert_eq!(error_of(&page).as_deref(), Some("invalid_request"));
}

async fn remembered_consent_can_be_withdrawn_from_the_command_line(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let signed_in = sign_in(&rp, &mut browser, &["read"], &[]).await;
    let access = signed_in.tokens.access_token().secret().clone();
    let refresh = signed_in.tokens.refresh_token().unwrap().secret().clone();
    // Remembered: the next sign-in of the app shows no page.
    let (_, challenge) = pkce();
    let silent = browser
        .get(&app.authorize_url("web", &challenge, &[("scope", "openid read")]))
        .await;
    assert!(silent.redirect_param("code").is_some(), "{}", silent.html);
    // The audit line says what happened: revoked now, nothing the second time.
    let audited = |run: &testkit::binary::Run| -> Value {
        run.stderr
            .lines()
            .find_map(|line| {
                serde_json::from_str::<Value>(line)
                    .ok()
                    .filter(|line| line["event"] == "consent_revoked")
            })
            .unwrap_or_else(|| panic!("no consent_revoked event: {}", run.stderr))
    };
    let revoke = || {
        testkit::binary::run(
            crate::binary(),
            &[
                "--log-format",
                "json",
                "consent",
                "revoke",
                "--user",
                "alice",
                "--client",
                "web",
            ],
            &[],
            &app.database_url,
            None,
            "audit=info",
        )
    };
    let first = revoke();
    let withdrawn = crate::cli::json(&first);
    assert_eq!(audited(&first)["outcome"], "revoked");
    assert_eq!(audited(&first)["client_id"], "web");
    assert_eq!(withdrawn["consent_removed"], true);
    assert!(
        withdrawn["grants_revoked"].as_u64().unwrap() >= 2,
        "{withdrawn}"
    );
    // The grants are gone: the refresh token fails, the access token is inactive.
    let response = app
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.introspect(&access).await["active"], false);
    // And the consent page is back.
    let asked = browser
        .get(&app.authorize_url("web", &challenge, &[("scope", "openid read")]))
        .await;
    assert!(asked.is_consent_form(), "{}", asked.html);
    let again = revoke();
    assert_eq!(
        crate::cli::json(&again),
        serde_json::json!({ "user": "alice", "client_id": "web", "consent_removed": false, "grants_revoked": 0 })
    );
    assert_eq!(audited(&again)["outcome"], "nothing_to_revoke");
    let unknown = crate::cli::run(
        &["consent", "revoke", "--user", "nobody", "--client", "web"],
        &app.database_url,
        None,
    );
    assert!(!unknown.success);
    assert_eq!(
        unknown.stderr.trim().lines().count(),
        1,
        "{}",
        unknown.stderr
    );
}

async fn openid_requests_are_strict_about_their_parameters(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    app.register(web_app()).await;
    app.user("alice").await;
    let mut browser = app.browser();
    let (_, challenge) = pkce();
    // Without redirect_uri: a page, never a redirect, even though the client has one registered URI.
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "web"),
        ("scope", "openid"),
        ("state", "xyz-state"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location().is_none());
    // A request object is not supported (Core §6): an error redirect.
    let page = browser
        .get(&authorize(&app, &[("request", "eyJhbGciOiJub25lIn0.e30.")]))
        .await;
    assert_eq!(error_of(&page).as_deref(), Some("request_not_supported"));
    // A request_uri this server never issued: a page naming invalid_request_uri (RFC 9126 §4).
    let page = browser
        .get(&authorize(
            &app,
            &[("request_uri", "urn:ietf:params:oauth:request_uri:made-up")],
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location().is_none());
    assert!(page.html.contains("invalid_request_uri"), "{}", page.html);
    // nonce: at most 512 characters.
    let long = "n".repeat(513);
    let page = browser.get(&authorize(&app, &[("nonce", &long)])).await;
    assert_eq!(error_of(&page).as_deref(), Some("invalid_request"));
    let fits = "n".repeat(512);
    let login = browser.get(&authorize(&app, &[("nonce", &fits)])).await;
    assert!(login.is_login_form());
    // openid is granted only to clients registered with it.
    app.register(
        ClientSpec::confidential("plain")
            .grants([GrantType::AuthorizationCode])
            .scope("read"),
    )
    .await;
    let page = browser
        .get(&app.authorize_url("plain", &challenge, &[("scope", "openid read")]))
        .await;
    assert_eq!(error_of(&page).as_deref(), Some("invalid_scope"));
}

async fn openid_scopes_are_never_granted_to_client_credentials(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let both = app
        .register(
            ClientSpec::confidential("both")
                .grants([GrantType::ClientCredentials, GrantType::AuthorizationCode])
                .scope("openid profile email read write"),
        )
        .await;
    for scope in ["openid", "profile", "email", "read openid"] {
        let response = app
            .post_token(
                &both,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{scope}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_scope"
        );
    }
    let default: Value = app
        .post_token(&both, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        default["scope"], "read write",
        "the client's scopes without the user ones"
    );
    assert!(default.get("id_token").is_none());
}

async fn a_nonce_belongs_to_its_own_flow(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app().skip_consent()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let first = sign_in(&rp, &mut browser, &[], &[]).await;
    let second = sign_in(&rp, &mut browser, &[], &[]).await;
    assert_ne!(first.nonce.secret(), second.nonce.secret());
    let id_token = second.tokens.id_token().unwrap();
    assert_eq!(
        claims(&id_token.to_string())["nonce"],
        second.nonce.secret().as_str(),
        "echoed exactly"
    );
    // The app checking the second flow's token against the first flow's nonce refuses it.
    assert!(
        id_token
            .claims(&rp.id_token_verifier(), &first.nonce)
            .is_err()
    );
    // And an ID token is no access token: resource servers refuse it by its type (RFC 9068 §4).
    let as_access = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(id_token.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(as_access.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.introspect(&id_token.to_string()).await,
        json!({ "active": false })
    );
}

async fn a_consent_page_approves_only_the_request_it_was_shown_for(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    app.register(web_app()).await;
    app.user("alice").await;
    let mut browser = app.browser();
    let login = browser.open_login(&authorize(&app, &[])).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    let form = consent.form();
    // The same form with any request parameter changed (a wider scope, another nonce, a prompt or max_age
    // dropped) is refused: its CSRF token is bound to the parameters the page was shown for.
    for (name, value) in [
        ("scope", "openid profile email read"),
        ("nonce", "another"),
        ("state", "other-state"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
    ] {
        let mut changed = form.clone();
        match changed.hidden.iter_mut().find(|(field, _)| field == name) {
            Some(field) => field.1 = value.to_owned(),
            None => changed.hidden.push((name.to_owned(), value.to_owned())),
        }
        let page = browser.submit(&changed, &[("decision", "approve")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{name}: {}", page.html);
        assert!(page.location().is_none());
    }
    // Unchanged, it approves.
    let approved = browser.decide(&consent, "approve").await;
    assert!(
        approved.redirect_param("code").is_some(),
        "{}",
        approved.html
    );
}
