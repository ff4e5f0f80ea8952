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
    wrong_username_and_wrong_password_get_the_same_answer_and_are_throttled,
    session_cookie_skips_the_login_form,
    cookies_are_secure_when_the_issuer_is_https,
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
    // Without the CSRF cookie (a cross-site post), or with a token that does not match it: refused.
    let mut cross_site = issuer.browser();
    let forged = cross_site.submit(&form, &credentials).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.html.contains("did not come from this site"));
    let mut mismatched = issuer.browser();
    mismatched.set_cookie("auth_csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        mismatched.submit(&form, &credentials).await.status,
        StatusCode::FORBIDDEN
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
    assert_eq!(
        wrong_user.html, wrong_password.html,
        "the same page, byte for byte"
    );
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

async fn session_cookie_skips_the_login_form(backend: Backend) {
    let issuer = TestIssuer::spawn(backend).await;
    issuer.register(ClientSpec::web()).await;
    issuer.user("alice").await;
    let (_, challenge) = pkce();
    let url = issuer.authorize_url("web", &challenge, &[]);
    let mut browser = issuer.browser();
    browser.login_and_approve(&url, "alice", PASSWORD).await;
    let again = browser.get(&url).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(
        again.is_consent_form(),
        "consent, not login: {}",
        again.html
    );
    assert!(!again.is_login_form());
    assert!(again.html.contains("alice"));
}

async fn cookies_are_secure_when_the_issuer_is_https(backend: Backend) {
    // TLS is terminated in front of the server; the issuer says https, so cookies must say Secure.
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
    let csrf = login.headers["set-cookie"].to_str().unwrap();
    assert!(csrf.contains("; Secure"), "{csrf}");
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    let session = consent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|cookie| cookie.starts_with("auth_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");
}
