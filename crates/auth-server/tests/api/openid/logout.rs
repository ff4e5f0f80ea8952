//! RP-Initiated Logout 1.0: a hint that ends the session and returns to a registered URI, and a confirmation
//! whenever the request cannot prove it comes from the user's own session.

use super::*;

backend_tests!(
    logout_with_a_hint_ends_the_session_and_returns_to_a_registered_uri,
    logout_without_a_hint_asks_first_and_never_redirects_elsewhere,
);

/// GET /logout with these parameters.
async fn logout(browser: &mut Browser, app: &TestIssuer, params: &[(&str, &str)]) -> Page {
    let mut url = url::Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    browser.get(url.as_str()).await
}

async fn logout_with_a_hint_ends_the_session_and_returns_to_a_registered_uri(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app().skip_consent()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let signed_in = sign_in(&rp, &mut browser, &[], &[]).await;
    let hint = signed_in.tokens.id_token().unwrap().to_string();
    let refresh = signed_in.tokens.refresh_token().unwrap().secret().clone();
    // Accepted however long ago the hint expired (an ID token lives as long as an access token, 900 s), as
    // long as it names this browser's live session.
    app.clock.advance(1_800);
    let out = logout(
        &mut browser,
        &app,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", AFTER_LOGOUT),
            ("state", "bye"),
        ],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.html);
    assert_eq!(
        out.location(),
        Some(format!("{AFTER_LOGOUT}?state=bye").as_str())
    );
    // The session ended at the server: the browser must sign in again.
    let (_, challenge) = pkce();
    let again = browser
        .get(&app.authorize_url("web", &challenge, &[("scope", "openid")]))
        .await;
    assert!(again.is_login_form(), "{}", again.html);
    // The grant lives on: logout ends the browser's session, not the app's refresh token.
    let response = app
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A hint for another client than client_id, an unregistered URI, an access token as a hint:
    // a 400 page at once, no redirect.
    app.register(
        ClientSpec::confidential("other")
            .grants([GrantType::AuthorizationCode])
            .scope("openid")
            .post_logout_redirect_uri("http://127.0.0.1:9/other-signed-out"),
    )
    .await;
    let access = signed_in.tokens.access_token().secret().clone();
    for (what, params) in [
        (
            "hint of another client",
            vec![("id_token_hint", hint.as_str()), ("client_id", "other")],
        ),
        (
            "unregistered URI",
            vec![
                ("id_token_hint", hint.as_str()),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ],
        ),
        (
            "another client's URI",
            vec![
                ("id_token_hint", hint.as_str()),
                (
                    "post_logout_redirect_uri",
                    "http://127.0.0.1:9/other-signed-out",
                ),
            ],
        ),
        (
            "an access token as the hint",
            vec![
                ("id_token_hint", access.as_str()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
            ],
        ),
        (
            "a forged hint",
            vec![
                ("id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
            ],
        ),
    ] {
        let page = logout(&mut browser, &app, &params).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            page.html
        );
        assert!(page.location().is_none(), "{what}");
    }
}

async fn logout_without_a_hint_asks_first_and_never_redirects_elsewhere(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app().skip_consent()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    sign_in(&rp, &mut browser, &[], &[]).await;
    // client_id alone: a confirmation page first; nothing ends yet.
    let confirm = logout(
        &mut browser,
        &app,
        &[
            ("client_id", "web"),
            ("post_logout_redirect_uri", AFTER_LOGOUT),
            ("state", "s1"),
        ],
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.html.contains("Sign out"), "{}", confirm.html);
    let (_, challenge) = pkce();
    let url = app.authorize_url("web", &challenge, &[("scope", "openid")]);
    let still = browser.get(&url).await;
    assert!(still.redirect_param("code").is_some(), "still signed in");
    // Someone else's form post (no browser cookie, a made-up token) is refused.
    let mut stranger = app.browser();
    let confirm_form = confirm.form();
    let mut fields = confirm_form.submission(&[]);
    fields.retain(|(name, _)| *name != "csrf_token");
    fields.push(("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    fields.push(("confirm", "yes"));
    let forged = stranger.post_to(&app.url("/logout"), &fields).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Confirmed: signed out, back to the registered URI with state.
    let form = confirm.form();
    let out = browser
        .post_to(&app.url("/logout"), &form.submission(&[("confirm", "yes")]))
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.html);
    assert_eq!(
        out.location(),
        Some(format!("{AFTER_LOGOUT}?state=s1").as_str())
    );
    assert!(browser.get(&url).await.is_login_form());
    // An unregistered URI: a 400 page before any confirmation.
    let page = logout(
        &mut browser,
        &app,
        &[
            ("client_id", "web"),
            ("post_logout_redirect_uri", "http://evil.example/"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // A URI without anything naming its client: refused too.
    let page = logout(
        &mut browser,
        &app,
        &[("post_logout_redirect_uri", AFTER_LOGOUT)],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // Without a URI: confirmed, then the signed-out page.
    let confirm = logout(&mut browser, &app, &[]).await;
    let form = confirm.form();
    let done = browser
        .post_to(&app.url("/logout"), &form.submission(&[("confirm", "yes")]))
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("signed out"), "{}", done.html);
}
