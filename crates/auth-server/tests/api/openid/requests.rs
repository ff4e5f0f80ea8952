//! What OpenID clients send with an authorization request (Core §3.1.2.1): the request by POST, `login_hint`,
//! `id_token_hint`, the parameters this server ignores, and the loopback redirect URI on a port the app
//! chose when it started (RFC 8252 §7.3).

use super::*;

backend_tests!(
    an_authorization_request_by_post_gets_the_answer_of_the_get,
    login_hint_prefills_the_username_and_display_and_locales_are_accepted,
    an_id_token_hint_for_another_user_asks_that_user_to_sign_in,
    a_loopback_redirect_uri_matches_on_any_port_and_on_nothing_else,
);

/// The query pairs of an authorization URL, as a form.
fn form_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

async fn post(browser: &mut Browser, form: &[(String, String)]) -> Page {
    let fields: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    browser.post(&fields).await
}

async fn an_authorization_request_by_post_gets_the_answer_of_the_get(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    app.register(web_app()).await;
    app.user("alice").await;
    let (_, challenge) = pkce();
    let url = app.authorize_url("web", &challenge, &[("scope", "openid"), ("nonce", "n-1")]);
    let mut browser = app.browser();
    // No session: the login form, as for the GET; its own post then signs in as usual.
    let login = post(&mut browser, &form_of(&url)).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.html);
    assert!(login.is_login_form(), "{}", login.html);
    // A post of credentials without the form's token is a request, never a sign-in.
    let mut credentials = form_of(&url);
    credentials.push(("username".into(), "alice".into()));
    credentials.push(("password".into(), PASSWORD.into()));
    assert!(post(&mut browser, &credentials).await.is_login_form());
    assert_eq!(app.count("select count(*) from login_session").await, 0);
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    // Signed in: the consent page, as for the GET (a post carrying a decision but no token decides nothing).
    let mut decision = form_of(&url);
    decision.push(("decision".into(), "approve".into()));
    let page = post(&mut browser, &decision).await;
    assert!(page.is_consent_form(), "{}", page.html);
    assert!(browser.get(&url).await.is_consent_form());
    let approved = browser.decide(&consent, "approve").await;
    assert!(
        approved.redirect_param("code").is_some(),
        "{}",
        approved.html
    );
    // Consent remembered: the post redirects with a code, state and iss, as the GET does.
    let by_post = post(&mut browser, &form_of(&url)).await;
    assert_eq!(by_post.status, StatusCode::SEE_OTHER, "{}", by_post.html);
    assert!(by_post.redirect_param("code").is_some());
    assert_eq!(
        by_post.redirect_param("state").as_deref(),
        Some("xyz-state")
    );
    assert_eq!(by_post.redirect_param("iss").as_deref(), Some(app.issuer()));
    // Errors too: one for the client by redirect, one about the client as a page.
    let mut wider = form_of(&url);
    wider.retain(|(name, _)| name != "scope");
    wider.push(("scope".into(), "openid admin".into()));
    let refused = post(&mut browser, &wider).await;
    assert_eq!(
        refused.redirect_param("error").as_deref(),
        Some("invalid_scope")
    );
    let mut elsewhere = form_of(&url);
    elsewhere.retain(|(name, _)| name != "redirect_uri");
    elsewhere.push(("redirect_uri".into(), "https://attacker.example/cb".into()));
    let page = post(&mut browser, &elsewhere).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location().is_none());
}

async fn login_hint_prefills_the_username_and_display_and_locales_are_accepted(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    app.register(web_app()).await;
    app.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let url = app.authorize_url(
        "web",
        &challenge,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("display", "popup"),
            ("ui_locales", "fr-CA fr en"),
            ("claims_locales", "de"),
            ("acr_values", "urn:mace:incommon:iap:silver"),
        ],
    );
    let login = browser.get(&url).await;
    assert!(login.is_login_form(), "{}", login.html);
    assert!(
        login.html.contains(r#"name="username" value="alice""#),
        "{}",
        login.html
    );
    // Escaped, never markup.
    let hostile = app.authorize_url(
        "web",
        &challenge,
        &[
            ("scope", "openid"),
            ("login_hint", r#""><script>alert(1)</script>"#),
        ],
    );
    let page = browser.get(&hostile).await;
    assert!(page.is_login_form());
    assert!(!page.html.contains("<script>alert(1)"), "{}", page.html);
    assert!(page.html.contains("&#60;script&#62;"), "{}", page.html);
    // Longer than a username may be: ignored, the field is empty.
    let long = "a".repeat(257);
    let page = browser
        .get(&app.authorize_url(
            "web",
            &challenge,
            &[("scope", "openid"), ("login_hint", &long)],
        ))
        .await;
    assert!(page.is_login_form());
    assert!(
        page.html.contains(r#"name="username" value="""#),
        "{}",
        page.html
    );
    // The hint is carried through the form: a wrong password shows what was typed, the right one signs in.
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
}

async fn an_id_token_hint_for_another_user_asks_that_user_to_sign_in(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app()).await;
    app.user("alice").await;
    app.user("bob").await;
    let rp = relying_party(&app, &web).await;
    let mut bobs_browser = app.browser();
    let bob = sign_in_as(&rp, &mut bobs_browser, "bob", &[], &[]).await;
    let bobs_hint = bob.tokens.id_token().unwrap().to_string();
    let mut browser = app.browser();
    let alice = sign_in(&rp, &mut browser, &[], &[]).await;
    let alices_hint = alice.tokens.id_token().unwrap().to_string();
    // Expired hints still name their user (Core §3.1.2.1).
    app.clock.advance(1_800);
    let (_, challenge) = pkce();
    let url = |extra: &[(&str, &str)]| {
        let mut params = vec![("scope", "openid")];
        params.extend_from_slice(extra);
        app.authorize_url("web", &challenge, &params)
    };
    // The signed-in user's own hint: silent sign-in works.
    let silent = browser
        .get(&url(&[("prompt", "none"), ("id_token_hint", &alices_hint)]))
        .await;
    assert!(silent.redirect_param("code").is_some(), "{}", silent.html);
    // Another user's hint: login_required without a page, else the login form; never an error page.
    let other = browser
        .get(&url(&[("prompt", "none"), ("id_token_hint", &bobs_hint)]))
        .await;
    assert_eq!(
        other.redirect_param("error").as_deref(),
        Some("login_required")
    );
    assert_eq!(other.redirect_param("state").as_deref(), Some("xyz-state"));
    let login = browser.get(&url(&[("id_token_hint", &bobs_hint)])).await;
    assert!(login.is_login_form(), "{}", login.html);
    // Signing in as the hinted user answers it (bob consented before: straight back with a code).
    let page = browser.sign_in(&login, "bob", PASSWORD).await;
    assert!(page.redirect_param("code").is_some(), "{}", page.html);
    // A hint that is not ours, or too long to read: ignored, but it cannot vouch for prompt=none.
    let mut forged = alices_hint.clone();
    forged.pop();
    let too_long = format!("{alices_hint}{}", "A".repeat(8 * 1024));
    for hint in [forged.as_str(), "not-a-jwt", too_long.as_str()] {
        let page = browser
            .get(&url(&[("prompt", "none"), ("id_token_hint", hint)]))
            .await;
        assert_eq!(
            page.redirect_param("error").as_deref(),
            Some("login_required"),
            "{hint:.20}"
        );
        let page = browser.get(&url(&[("id_token_hint", hint)])).await;
        assert!(
            page.redirect_param("code").is_some(),
            "{hint:.20}: {}",
            page.html
        );
    }
    // Pushed, the same: a hint too long to store is no error at /par, and cannot vouch for prompt=none.
    let pushed = app
        .post_form(
            "/par",
            &web,
            &[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid"),
                ("state", "xyz-state"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("prompt", "none"),
                ("id_token_hint", &too_long[..6 * 1024]),
            ],
        )
        .await;
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let request_uri = pushed.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut by_reference = url::Url::parse(&app.url("/authorize")).unwrap();
    by_reference
        .query_pairs_mut()
        .append_pair("client_id", "web")
        .append_pair("request_uri", &request_uri);
    let page = browser.get(by_reference.as_str()).await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("login_required"),
        "{}",
        page.html
    );
}

async fn a_loopback_redirect_uri_matches_on_any_port_and_on_nothing_else(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let cli = app
        .register(
            ClientSpec::public("cli")
                .grants([GrantType::AuthorizationCode])
                .scope("openid read")
                .redirect_uri("http://127.0.0.1/callback"),
        )
        .await;
    app.user("alice").await;
    let authorize = |redirect_uri: &str, challenge: &str| {
        let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "cli")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", "xyz-state")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    };
    // The port a CLI bound when it started: the code comes back there, and the token request repeats it.
    let (verifier, challenge) = pkce();
    let chosen = "http://127.0.0.1:53217/callback";
    let mut browser = app.browser();
    let login = browser.open_login(&authorize(chosen, &challenge)).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    let back = browser.decide(&consent, "approve").await;
    assert!(
        back.location().unwrap().starts_with(&format!("{chosen}?")),
        "{:?}",
        back.location()
    );
    let code = back.redirect_param("code").unwrap();
    let response = app
        .post_token(
            &cli,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", chosen),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The same through /par.
    let pushed = app
        .post_form(
            "/par",
            &cli,
            &[
                ("response_type", "code"),
                ("redirect_uri", "http://127.0.0.1:41000/callback"),
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(pushed.status(), StatusCode::CREATED);
    // Anything but the port differs: a page, never a redirect; at /par, invalid_request.
    for presented in [
        "http://127.0.0.1:53217/other",
        "http://localhost:53217/callback",
        "http://127.0.0.1:53217@attacker.example/callback",
        "http://127.0.0.1.attacker.example:53217/callback",
        "https://127.0.0.1:53217/callback",
    ] {
        let page = browser.get(&authorize(presented, &challenge)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{presented}");
        assert!(page.location().is_none(), "{presented}");
        let pushed = app
            .post_form(
                "/par",
                &cli,
                &[
                    ("response_type", "code"),
                    ("redirect_uri", presented),
                    ("scope", "openid"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        assert_eq!(pushed.status(), StatusCode::BAD_REQUEST, "{presented}");
    }
    // A registered URI that is not loopback matches exactly, port included.
    app.register(
        ClientSpec::public("app")
            .grants([GrantType::AuthorizationCode])
            .scope("openid")
            .redirect_uri("https://app.example/cb"),
    )
    .await;
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "app")
        .append_pair("redirect_uri", "https://app.example:8443/cb")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location().is_none());
}
