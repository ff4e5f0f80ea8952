//! UserInfo (Core §5.3) as a relying party calls it: the claims of each scope, and RFC 6750 refusals.

use super::*;

backend_tests!(userinfo_answers_by_scope_and_refuses_as_rfc6750_says,);

/// GET /userinfo with a Bearer token (or POST with it in the header or the body).
async fn userinfo(app: &TestIssuer, token: &str, how: &str) -> (StatusCode, Option<String>, Value) {
    let request = match how {
        "get" => app.http.get(app.url("/userinfo")).bearer_auth(token),
        "post header" => app.http.post(app.url("/userinfo")).bearer_auth(token),
        "post body" => app
            .http
            .post(app.url("/userinfo"))
            .form(&[("access_token", token)]),
        _ => unreachable!(),
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn userinfo_answers_by_scope_and_refuses_as_rfc6750_says(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(web_app().scope("openid profile email read").skip_consent())
        .await;
    let user_id = app
        .user_with_profile(
            "alice",
            PASSWORD,
            Some("Alice"),
            Some("alice@example.org"),
            false,
        )
        .await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let token = |signed_in: &SignedIn| signed_in.tokens.access_token().secret().to_owned();
    let openid_only = token(&sign_in(&rp, &mut browser, &[], &[]).await);
    let profile = token(&sign_in(&rp, &mut browser, &["profile"], &[]).await);
    let email = token(&sign_in(&rp, &mut browser, &["email"], &[]).await);
    for how in ["get", "post header", "post body"] {
        assert_eq!(
            userinfo(&app, &openid_only, how).await,
            (StatusCode::OK, None, json!({ "sub": user_id })),
            "{how}"
        );
    }
    assert_eq!(
        userinfo(&app, &profile, "get").await.2,
        json!({ "sub": user_id, "name": "Alice", "preferred_username": "alice" })
    );
    assert_eq!(
        userinfo(&app, &email, "get").await.2,
        json!({ "sub": user_id, "email": "alice@example.org", "email_verified": false })
    );
    // No token: a bare challenge (RFC 6750 §3.1).
    let bare = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Bearer realm=\"userinfo\""
    );
    // A bad token, a client's own token, a token without openid, a revoked one.
    let (status, challenge, body) = userinfo(&app, "not-a-token", "get").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    assert_eq!(body["error"], "invalid_token");
    let machine = app
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    let client_token = app.access_token(&machine).await;
    assert_eq!(
        userinfo(&app, &client_token, "get").await.0,
        StatusCode::UNAUTHORIZED,
        "no user behind a client_credentials token"
    );
    let plain = app
        .register(
            ClientSpec::confidential("plain")
                .grants([GrantType::AuthorizationCode])
                .scope("read")
                .skip_consent(),
        )
        .await;
    let no_openid = app.code_flow(&plain, "alice").await;
    let (status, challenge, body) =
        userinfo(&app, no_openid["access_token"].as_str().unwrap(), "get").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"openid\"")
    );
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(app.revoke(&web, &profile).await, StatusCode::OK);
    assert_eq!(
        userinfo(&app, &profile, "get").await.0,
        StatusCode::UNAUTHORIZED
    );
    // One method only (RFC 6750 §2).
    let both = app
        .http
        .post(app.url("/userinfo"))
        .bearer_auth(&email)
        .form(&[("access_token", email.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    // Expired: inactive like everywhere else.
    app.clock.advance(900);
    assert_eq!(
        userinfo(&app, &email, "get").await.0,
        StatusCode::UNAUTHORIZED
    );
}
