//! The authorization endpoint: what is shown, what is redirected, and the browser protections.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::{
    Backend, REDIRECT_URI, hidden_fields, location_params, param, pkce, spawn_app, spawn_app_with,
};

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

async fn unknown_client_or_unregistered_redirect_uri_is_a_page_never_a_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    let (_, challenge) = pkce();
    let unknown = app
        .http
        .get(app.authorize_url("nobody", &challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.headers().get("location").is_none());
    assert!(unknown.text().await.unwrap().contains("not registered"));
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", "http://evil.example/cb")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let evil = app.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
    assert!(
        evil.headers().get("location").is_none(),
        "never redirect to an unverified URI"
    );
    // Not even a prefix or a trailing-slash variant of the registered URI.
    let mut near = url::Url::parse(&app.url("/authorize")).unwrap();
    near.query_pairs_mut()
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", &format!("{REDIRECT_URI}/x"));
    assert_eq!(
        app.http.get(near.as_str()).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

async fn request_errors_redirect_with_error_state_and_iss(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    let (_, challenge) = pkce();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("scope", "admin")], "invalid_scope"),
        (
            &[("resource", "https://unregistered.example/")],
            "invalid_target",
        ),
        (&[("response_type", "token")], "invalid_request"),
    ];
    for (extra, expected) in cases {
        let response = app
            .http
            .get(app.authorize_url("web", &challenge, extra))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{expected}");
        let (base, params) = location_params(&response);
        assert_eq!(base, REDIRECT_URI);
        assert_eq!(param(&params, "error"), Some(expected));
        assert_eq!(param(&params, "state"), Some("xyz-state"));
        assert_eq!(
            param(&params, "iss"),
            Some(app.state.settings.issuer.as_str())
        );
    }
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "token")
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let response = app.http.get(url.as_str()).send().await.unwrap();
    let (_, params) = location_params(&response);
    assert_eq!(param(&params, "error"), Some("unsupported_response_type"));
}

async fn pkce_s256_is_required_and_plain_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    let (verifier, _) = pkce();
    let mut without = url::Url::parse(&app.url("/authorize")).unwrap();
    without
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", REDIRECT_URI);
    let response = app.http.get(without.as_str()).send().await.unwrap();
    let (_, params) = location_params(&response);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert!(
        param(&params, "error_description")
            .unwrap()
            .contains("code_challenge")
    );
    let mut plain = without.clone();
    plain
        .query_pairs_mut()
        .append_pair("code_challenge", &verifier)
        .append_pair("code_challenge_method", "plain");
    let response = app.http.get(plain.as_str()).send().await.unwrap();
    let (_, params) = location_params(&response);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert!(
        param(&params, "error_description")
            .unwrap()
            .contains("S256")
    );
}

async fn user_can_deny_consent(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    app.create_user("alice").await;
    let (_, challenge) = pkce();
    let (cookies, mut form) = app
        .login_page(&app.authorize_url("web", &challenge, &[]))
        .await;
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), crate::helpers::PASSWORD.into()));
    let consent = app
        .http
        .post(app.url("/authorize"))
        .header("cookie", &cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    let cookies = crate::helpers::cookies_from(&consent, &cookies);
    let mut form = hidden_fields(&consent.text().await.unwrap());
    form.push(("decision".into(), "deny".into()));
    let denied = app
        .http
        .post(app.url("/authorize"))
        .header("cookie", &cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::SEE_OTHER);
    let (_, params) = location_params(&denied);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("xyz-state"));
    assert!(param(&params, "code").is_none());
}

async fn login_form_is_protected_and_csrf_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    app.create_user("alice").await;
    let (_, challenge) = pkce();
    let page = app
        .http
        .get(app.authorize_url("web", &challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "http issuer: no Secure flag"
    );
    let cookies = crate::helpers::cookies_from(&page, "");
    let mut form = hidden_fields(&page.text().await.unwrap());
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), crate::helpers::PASSWORD.into()));
    // Without the CSRF cookie (a cross-site post), or with a mismatched token: refused.
    let forged = app
        .http
        .post(app.url("/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let mismatched = app
        .http
        .post(app.url("/authorize"))
        .header(
            "cookie",
            "auth_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(mismatched.status(), StatusCode::FORBIDDEN);
    let good = app
        .http
        .post(app.url("/authorize"))
        .header("cookie", cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let session_cookie = good
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("auth_session="))
        .unwrap();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
}

async fn wrong_username_and_wrong_password_get_the_same_answer_and_are_throttled(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(false).await;
    app.create_user("alice").await;
    let (_, challenge) = pkce();
    let (cookies, fields) = app
        .login_page(&app.authorize_url("web", &challenge, &[]))
        .await;
    let attempt = |username: &'static str, password: &'static str| {
        let mut form = fields.clone();
        form.push(("username".into(), username.into()));
        form.push(("password".into(), password.into()));
        let request = app
            .http
            .post(app.url("/authorize"))
            .header("cookie", cookies.clone())
            .form(&form);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            (status, body)
        }
    };
    let (wrong_user_status, wrong_user) = attempt("mallory", "whatever").await;
    let (wrong_password_status, wrong_password) = attempt("alice", "wrong").await;
    assert_eq!(wrong_user_status, wrong_password_status);
    assert!(wrong_user.contains("Invalid username or password."));
    assert_eq!(wrong_user, wrong_password, "the same page, byte for byte");
    for _ in 0..4 {
        attempt("alice", "wrong").await;
    }
    let (status, body) = attempt("alice", crate::helpers::PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the window"
    );
    assert!(body.contains("Too many failed attempts"));
    app.clock.advance(61);
    let (status, body) = attempt("alice", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("value=\"approve\""));
}

async fn session_cookie_skips_the_login_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client(false).await;
    app.create_user("alice").await;
    let (_, challenge) = pkce();
    let (_, cookies) = app
        .browser_login_and_approve(&client.id, "alice", &challenge, &[])
        .await;
    let again = app
        .http
        .get(app.authorize_url("web", &challenge, &[]))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let html = again.text().await.unwrap();
    assert!(html.contains("value=\"approve\""), "consent, not login");
    assert!(!html.contains("name=\"password\""));
}

async fn cookies_are_secure_when_the_issuer_is_https(backend: Backend) {
    // TLS is terminated in front of the server; the issuer says https, so cookies must say Secure.
    let app = spawn_app_with(backend, |serve| {
        serve.issuer = format!("https://{}", serve.listen)
    })
    .await;
    app.web_client(false).await;
    let (_, challenge) = pkce();
    let page = app
        .http
        .get(app.authorize_url("web", &challenge, &[]))
        .send()
        .await
        .unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}
