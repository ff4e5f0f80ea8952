//! The authorization endpoint: what is shown, what is redirected, and the browser protections.

use reqwest::StatusCode;
use testkit::jwt::pkce;
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestIssuer, backend_tests};

backend_tests!(
    unknown_client_or_unregistered_redirect_uri_is_a_page_never_a_redirect,
    request_errors_redirect_with_error_state_and_iss,
    pkce_s256_is_required_and_plain_refused,
    user_can_deny_consent,
    login_form_is_protected_and_csrf_checked,
    csrf_tokens_are_issued_by_the_server_bound_to_the_browser_and_renewed_at_login,
    wrong_username_and_wrong_password_get_the_same_answer_and_are_throttled,
    session_cookie_skips_the_login_form,
    cookies_are_secure_and_host_prefixed_when_the_issuer_is_https,
    not_you_sign_out_needs_the_consent_forms_token,
);

/// An /authorize URL with exactly these parameters.
fn authorize(issuer: &TestIssuer, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&issuer.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

async fn unknown_client_or_unregistered_redirect_uri_is_a_page_never_a_redirect(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let unknown = browser
        .get(&issuer.authorize_url("nobody", &challenge, &[]))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.location().is_none());
    assert!(unknown.html.contains("not registered"), "{}", unknown.html);
    let base = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // Not another host, nor a longer path, nor a trailing-slash variant of the registered URI.
    for redirect_uri in [
        "http://evil.example/cb".to_owned(),
        format!("{REDIRECT_URI}/x"),
        format!("{REDIRECT_URI}/"),
        REDIRECT_URI.to_uppercase(),
    ] {
        let mut params = base.to_vec();
        params.push(("redirect_uri", &redirect_uri));
        let page = browser.get(&authorize(&issuer, &params)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{redirect_uri}");
        assert!(
            page.location().is_none(),
            "never redirect to {redirect_uri}"
        );
        assert!(page.html.contains("not registered"), "{}", page.html);
        assert!(
            !page.html.contains(&redirect_uri) && !page.html.contains("evil.example"),
            "the page does not repeat what was sent: {}",
            page.html
        );
    }
}

async fn request_errors_redirect_with_error_state_and_iss(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("scope", "admin")], "invalid_scope"),
        (
            &[("resource", "https://unregistered.example/")],
            "invalid_target",
        ),
        // A second response_type: repeated parameters are refused (RFC 6749 §3.1).
        (&[("response_type", "token")], "invalid_request"),
    ];
    for (extra, expected) in cases {
        let page = browser
            .get(&issuer.authorize_url("web", &challenge, extra))
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{expected}");
        assert!(page.location().unwrap().starts_with(REDIRECT_URI));
        assert_eq!(page.redirect_param("error").as_deref(), Some(expected));
        assert_eq!(page.redirect_param("state").as_deref(), Some("xyz-state"));
        assert_eq!(page.redirect_param("iss").as_deref(), Some(issuer.issuer()));
        assert_eq!(page.redirect_param("code"), None);
    }
    let page = browser
        .get(&authorize(
            &issuer,
            &[
                ("response_type", "token"),
                ("client_id", "web"),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("unsupported_response_type")
    );
}

async fn pkce_s256_is_required_and_plain_refused(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    let (verifier, _) = pkce();
    let mut browser = issuer.browser();
    let base = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", REDIRECT_URI),
    ];
    let without = browser.get(&authorize(&issuer, &base)).await;
    assert_eq!(
        without.redirect_param("error").as_deref(),
        Some("invalid_request")
    );
    assert!(
        without
            .redirect_param("error_description")
            .unwrap()
            .contains("code_challenge")
    );
    let mut plain = base.to_vec();
    plain.extend([
        ("code_challenge", verifier.as_str()),
        ("code_challenge_method", "plain"),
    ]);
    let plain = browser.get(&authorize(&issuer, &plain)).await;
    assert_eq!(
        plain.redirect_param("error").as_deref(),
        Some("invalid_request")
    );
    assert!(
        plain
            .redirect_param("error_description")
            .unwrap()
            .contains("S256")
    );
}

async fn user_can_deny_consent(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let login = browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    let denied = browser.decide(&consent, "deny").await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    assert!(denied.location().unwrap().starts_with(REDIRECT_URI));
    assert_eq!(
        denied.redirect_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(denied.redirect_param("state").as_deref(), Some("xyz-state"));
    assert_eq!(
        denied.redirect_param("iss").as_deref(),
        Some(issuer.issuer())
    );
    assert_eq!(denied.redirect_param("code"), None);
}

async fn login_form_is_protected_and_csrf_checked(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let login = browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert!(
        login.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let set_cookie = login.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "http issuer: no Secure flag"
    );
    let form = login.form();
    let credentials = [("username", "alice"), ("password", PASSWORD)];
    // Without the browser's cookie (a cross-site post), or from another browser: refused.
    let mut cross_site = issuer.browser();
    let forged = cross_site.submit(&form, &credentials).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.html.contains("did not come from this site"));
    let mut other_browser = issuer.browser();
    other_browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    assert_eq!(
        other_browser.submit(&form, &credentials).await.status,
        StatusCode::FORBIDDEN,
        "a token issued to another browser"
    );
    let consent = browser.submit(&form, &credentials).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.is_consent_form());
    let session_cookie = consent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|cookie| cookie.starts_with("auth_session="))
        .unwrap();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
}

/// The server issues the CSRF token: a MAC of the browser's own id (an HttpOnly cookie it set) and of its
/// login session. A double-submitted pair the server never issued is refused, and the token changes at
/// login, so a token seen before login is worthless after it (RFC 9700 §4.7).
async fn csrf_tokens_are_issued_by_the_server_bound_to_the_browser_and_renewed_at_login(
    backend: Backend,
) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let url = issuer.authorize_url("web", &challenge, &[]);
    let credentials = [("username", "alice"), ("password", PASSWORD)];

    // An attacker's own pair: a well-formed cookie and the same value in the form (plain double-submit).
    let mut forger = issuer.browser();
    let login = forger.open_login(&url).await;
    let made_up = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    forger.set_cookie("auth_csrf", made_up);
    let form = login.form();
    let mut fields = form.submission(&credentials);
    fields.retain(|(name, _)| *name != "csrf_token");
    fields.push(("csrf_token", made_up));
    let forged = forger.post(&fields).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "never issued");
    assert!(forged.html.contains("did not come from this site"));

    // The real browser: its token works before login, and not after.
    let mut browser = issuer.browser();
    let login = browser.open_login(&url).await;
    let before = login.form().field("csrf_token").unwrap().to_owned();
    assert_eq!(before.len(), 43, "{before}");
    assert_eq!(
        browser.open_login(&url).await.form().field("csrf_token"),
        Some(before.as_str()),
        "stable for one browser before login"
    );
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    let after = consent.form().field("csrf_token").unwrap().to_owned();
    assert_ne!(after, before, "renewed at login");
    let form = consent.form();
    let stale: Vec<(&str, &str)> = form
        .submission(&[("decision", "approve")])
        .into_iter()
        .map(|(name, value)| match name {
            "csrf_token" => (name, before.as_str()),
            _ => (name, value),
        })
        .collect();
    let refused = browser.post(&stale).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the pre-login token after login"
    );
    // Nor can the pre-login token sign in again over the new session.
    assert_eq!(
        browser.sign_in(&login, "alice", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    let approved = browser.decide(&consent, "approve").await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    assert!(approved.redirect_param("code").is_some());
    // A second replica (same database, same secret) accepts what the first issued.
    let replica = issuer.replica().await;
    let mut browser = replica.browser();
    let login = browser.open_login(&url).await;
    let mut across = issuer.browser();
    across.set_cookie(
        "auth_csrf",
        &cookie_value(&login, "auth_csrf").expect("the browser id cookie"),
    );
    let signed_in = across.submit(&login.form(), &credentials).await;
    // Signed in (alice's consent is remembered from above, so straight back with a code).
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    assert!(signed_in.redirect_param("code").is_some());
}

/// The value a page's `Set-Cookie` gives cookie `name`.
fn cookie_value(page: &testkit::browser::Page, name: &str) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| {
            cookie
                .split(';')
                .next()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
}

async fn wrong_username_and_wrong_password_get_the_same_answer_and_are_throttled(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let login = browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    let wrong_user = browser.sign_in(&login, "mallory", "whatever").await;
    let wrong_password = browser.sign_in(&login, "alice", "wrong").await;
    assert_eq!(wrong_user.status, StatusCode::OK);
    assert_eq!(wrong_user.status, wrong_password.status);
    assert!(wrong_user.html.contains("Invalid username or password."));
    // The form keeps what was typed as the username; apart from that, the same page byte for byte.
    assert!(wrong_user.html.contains(r#"value="mallory""#));
    assert_eq!(
        wrong_user
            .html
            .replace(r#"value="mallory""#, r#"value="alice""#),
        wrong_password.html,
        "the same page, byte for byte"
    );
    // What was typed is shown back escaped, never as markup.
    let marked_up = browser.sign_in(&login, "<b>x</b>", "whatever").await;
    assert!(!marked_up.html.contains("<b>x"), "{}", marked_up.html);
    for _ in 0..4 {
        let page = browser.sign_in(&login, "alice", "wrong").await;
        assert!(page.html.contains("Invalid username or password."));
    }
    let throttled = browser.sign_in(&login, "alice", PASSWORD).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the window"
    );
    assert!(throttled.html.contains("Too many failed attempts"));
    issuer.clock.advance(61);
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.is_consent_form());
}

/// A live session skips the login form; remembered consent (OpenID Connect Core §3.1.2.4) skips the consent
/// page for scopes already granted, and only for those.
async fn session_cookie_skips_the_login_form(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let read = issuer.authorize_url("web", &challenge, &[("scope", "read")]);
    let mut browser = issuer.browser();
    browser.login_and_approve(&read, "alice", PASSWORD).await;
    let again = browser.get(&read).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    assert!(again.redirect_param("code").is_some(), "no page at all");
    // A wider request asks again, signed in.
    let wider = browser
        .get(&issuer.authorize_url("web", &challenge, &[("scope", "read write")]))
        .await;
    assert_eq!(wider.status, StatusCode::OK);
    assert!(
        wider.is_consent_form(),
        "consent, not login: {}",
        wider.html
    );
    assert!(!wider.is_login_form());
    assert!(wider.html.contains("alice"));
}

async fn cookies_are_secure_and_host_prefixed_when_the_issuer_is_https(backend: Backend) {
    // TLS is terminated in front of the server; the issuer says https, so cookies say Secure and carry the
    // `__Host-` prefix (Secure, Path=/, no Domain: no sibling host can set or overwrite them).
    let issuer = TestIssuer::spawn_with(backend, |serve| {
        serve.issuer = Some("https://id.example".into())
    })
    .await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let mut browser = issuer.browser();
    let login = browser
        .open_login(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    let host_cookie = |set_cookie: &str, name: &str| {
        assert!(
            set_cookie.starts_with(&format!("__Host-{name}=")),
            "{set_cookie}"
        );
        for attribute in ["; Secure", "; Path=/;", "; HttpOnly", "; SameSite=Lax"] {
            assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
        }
        assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    };
    host_cookie(login.headers["set-cookie"].to_str().unwrap(), "auth_csrf");
    // The unprefixed name an attacker on a sibling host could plant is not read.
    let mut planted = issuer.browser();
    planted.set_cookie(
        "auth_csrf",
        &cookie_value(&login, "__Host-auth_csrf").unwrap(),
    );
    assert_eq!(
        planted
            .submit(
                &login.form(),
                &[("username", "alice"), ("password", PASSWORD)]
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    let session = consent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|cookie| cookie.contains("auth_session="))
        .unwrap();
    host_cookie(session, "auth_session");
    // The session cookie is read under its prefixed name: the next authorization skips the login form.
    let again = browser
        .get(&issuer.authorize_url("web", &challenge, &[]))
        .await;
    assert!(again.is_consent_form(), "{}", again.html);
}

/// "Not alice? Sign out" ends the session only for a post carrying the consent page's own CSRF token: a
/// cross-site page cannot sign a victim out, and another browser's token does nothing.
async fn not_you_sign_out_needs_the_consent_forms_token(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let url = issuer.authorize_url("web", &challenge, &[]);
    let mut browser = issuer.browser();
    let login = browser.open_login(&url).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    let form = consent.form();
    let switch = [("decision", "switch")];

    let mut cross_site = issuer.browser();
    assert_eq!(
        cross_site.submit(&form, &switch).await.status,
        StatusCode::FORBIDDEN
    );
    let mut other_browser = issuer.browser();
    other_browser.open_login(&url).await;
    assert_eq!(
        other_browser.submit(&form, &switch).await.status,
        StatusCode::FORBIDDEN,
        "another browser's token"
    );
    // Without a token the post is an authorization request by POST (Core §3.1.2.1): it shows the consent
    // page again, as the GET would, and signs nobody out.
    let mut fields = form.submission(&switch);
    fields.retain(|(name, _)| *name != "csrf_token");
    let page = browser.post(&fields).await;
    assert!(page.is_consent_form(), "no token: {}", page.html);
    assert_eq!(issuer.count("select count(*) from login_session").await, 1);
    assert!(browser.get(&url).await.is_consent_form(), "still signed in");

    let page = browser.submit(&form, &switch).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.is_login_form(), "{}", page.html);
    assert!(
        page.html.contains("Continue to web"),
        "a client without --name is called by its id: {}",
        page.html
    );
    assert_eq!(issuer.count("select count(*) from login_session").await, 0);
    assert!(browser.get(&url).await.is_login_form(), "signed out");
}
