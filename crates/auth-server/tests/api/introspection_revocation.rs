//! /introspect (RFC 7662) and /revoke (RFC 7009).

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::wire::GrantType;
use testkit::jwt::{claims, pkce};
use testkit::{Backend, ClientSpec, PASSWORD, TestIssuer, backend_tests};

backend_tests!(
    introspection_describes_active_tokens_and_hides_everything_else,
    revoked_access_token_is_inactive_until_its_exp,
    revoking_a_refresh_token_revokes_its_family,
    revoke_answers_200_for_unknown_and_foreign_tokens_without_effect,
    introspection_is_for_authenticated_resource_servers_only,
    refresh_tokens_are_active_only_to_their_own_client,
    purge_removes_whole_families_and_never_revives_a_token,
    a_user_token_without_a_family_fails_closed,
    the_running_server_purges_every_ten_minutes_of_its_clock,
);

/// The poller purges by the server's clock (every `PURGE_EVERY_SECONDS`), not by counting its ticks.
async fn the_running_server_purges_every_ten_minutes_of_its_clock(backend: Backend) {
    use auth_server::startup::PURGE_EVERY_SECONDS;
    use auth_server::store::sql::PURGE_LEEWAY;
    let app = TestIssuer::spawn(backend).await;
    let machine = app.register(ClientSpec::machine()).await;
    for round in 0..2 {
        let token = app.access_token(&machine).await;
        assert_eq!(app.revoke(&machine, &token).await, StatusCode::OK);
        assert_eq!(
            app.count("select count(*) from revoked_access_token").await,
            1,
            "round {round}"
        );
        // Past the token's expiry (900 s), the purge leeway and a purge period: the deny-list entry goes at
        // the poller's next tick (100 ms here).
        app.clock
            .advance(900 + PURGE_LEEWAY + PURGE_EVERY_SECONDS + 1);
        let mut purged = false;
        for _ in 0..50 {
            if app.count("select count(*) from revoked_access_token").await == 0 {
                purged = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(purged, "round {round}: not purged");
    }
}

/// A user's access token without `fam` was minted before revocation was decided by family (an upgraded
/// database): whether its family was revoked since cannot be told, so it is inactive. A client's own token
/// (client_credentials: no `auth_time`) has no family and is judged by the deny list alone.
async fn a_user_token_without_a_family_fails_closed(backend: Backend) {
    use auth_core::clock::Clock;
    use auth_core::token::{AccessTokenClaims, Audience, issue};
    let app = TestIssuer::spawn(backend).await;
    app.register(ClientSpec::web()).await;
    let signer = app
        .state
        .keys
        .snapshot()
        .signer(app.state.keys.access_alg())
        .cloned()
        .unwrap();
    let now = app.clock.now();
    let claims = |auth_time: Option<i64>| AccessTokenClaims {
        iss: app.issuer().to_owned(),
        sub: "someone".into(),
        aud: Audience::One("resource-api".into()),
        client_id: "web".into(),
        scope: "read".parse().unwrap(),
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        auth_time,
        fam: None,
        cnf: None,
        act: None,
        may_act: None,
    };
    let old_user_token = issue(&claims(Some(now - 10)), &signer).unwrap();
    assert_eq!(
        app.introspect(&old_user_token).await,
        json!({ "active": false })
    );
    let client_token = issue(&claims(None), &signer).unwrap();
    assert_eq!(app.introspect(&client_token).await["active"], true);
}

async fn introspection_describes_active_tokens_and_hides_everything_else(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine().introspection()).await;
    let token = app.access_token(&client).await;
    let response = app
        .post_form(
            "/introspect",
            &client,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let issued = claims(&token);
    assert_eq!(
        body,
        json!({
            "active": true,
            "scope": "read write",
            "client_id": "machine",
            "sub": "machine",
            "aud": "resource-api",
            "iss": app.issuer(),
            "exp": issued["exp"],
            "iat": issued["iat"],
            "jti": issued["jti"],
            "token_type": "Bearer",
        })
    );
    assert_eq!(
        issued["exp"].as_i64().unwrap() - issued["iat"].as_i64().unwrap(),
        900
    );
    let response = app
        .post_form("/introspect", &client, &[("token", "")])
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "token is required"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    for garbage in ["garbage", "a.b.c", &format!("{token}x")] {
        let response = app
            .post_form("/introspect", &client, &[("token", garbage)])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "RFC 7662 §2.2");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({ "active": false }),
            "{garbage}"
        );
    }
    // Active up to its last second, inactive from exp on (no leeway at the issuer, RFC 7662 §2.2).
    app.clock.advance(899);
    assert_eq!(app.introspect(&token).await["active"], true);
    app.clock.advance(1);
    assert_eq!(
        app.introspect(&token).await,
        json!({ "active": false }),
        "expired"
    );
}

async fn revoked_access_token_is_inactive_until_its_exp(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app.register(ClientSpec::machine()).await;
    use auth_core::clock::Clock;
    let token = app.access_token(&client).await;
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    assert_eq!(app.introspect(&token).await, json!({ "active": false }));
    // Revoking twice is fine.
    assert_eq!(app.revoke(&client, &token).await, StatusCode::OK);
    // Until its last second, purging keeps the deny-list entry; after exp the entry may go, and the
    // token stays inactive because it has expired.
    app.clock.advance(899);
    app.state
        .store
        .purge_expired(app.clock.now(), auth_server::config::MAX_ACCESS_TOKEN_TTL)
        .await
        .unwrap();
    assert_eq!(app.introspect(&token).await, json!({ "active": false }));
    app.clock.advance(2);
    app.state
        .store
        .purge_expired(app.clock.now(), auth_server::config::MAX_ACCESS_TOKEN_TTL)
        .await
        .unwrap();
    assert_eq!(app.introspect(&token).await, json!({ "active": false }));
}

async fn revoking_a_refresh_token_revokes_its_family(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let client = app
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    app.user("alice").await;
    let tokens = app.code_flow(&client, "alice").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.post_form(
            "/revoke",
            &client,
            &[("token", refresh), ("token_type_hint", "refresh_token")]
        )
        .await
        .status(),
        StatusCode::OK
    );
    assert_eq!(app.introspect_as(&client, refresh).await["active"], false);
    assert_eq!(app.introspect(access).await["active"], false);
    let response = app
        .post_token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn revoke_answers_200_for_unknown_and_foreign_tokens_without_effect(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let owner = app.register(ClientSpec::machine()).await;
    let other = app
        .register(
            ClientSpec::confidential("other")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    let token = app.access_token(&owner).await;
    assert_eq!(app.revoke(&other, "never-issued").await, StatusCode::OK);
    assert_eq!(
        app.revoke(&other, &token).await,
        StatusCode::OK,
        "RFC 7009 §2.2: same answer"
    );
    assert_eq!(
        app.introspect(&token).await["active"],
        true,
        "a client can revoke only its own tokens"
    );
    // The same for a refresh token: another client's revocation of it revokes no family.
    let web = app.register(ClientSpec::web()).await;
    app.user("alice").await;
    let tokens = app.code_flow(&web, "alice").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.revoke(&other, refresh).await, StatusCode::OK);
    assert_eq!(
        app.introspect(tokens["access_token"].as_str().unwrap())
            .await["active"],
        true,
        "the family lives"
    );
    let response = app
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "the refresh token lives");
}

async fn introspection_is_for_authenticated_resource_servers_only(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let machine = app.register(ClientSpec::machine()).await;
    let spa = app
        .register(ClientSpec::public("spa").grants([GrantType::AuthorizationCode]))
        .await;
    let resource_server = app.register(ClientSpec::resource_server("api")).await;
    let token = app.access_token(&machine).await;
    let answer = async |request: reqwest::RequestBuilder| {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].as_str().map(str::to_owned))
    };
    let form = [("token", token.as_str())];
    let introspect = app.url("/introspect");
    // RFC 7662 §2.1: the caller authenticates; §4: the server decides who may learn about tokens.
    let refusals = [
        (
            "no credentials",
            app.http.post(&introspect).form(&form),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "a wrong secret",
            app.http
                .post(&introspect)
                .basic_auth("api", Some("not-the-secret"))
                .form(&form),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "a public client",
            app.http
                .post(&introspect)
                .form(&[("token", token.as_str()), ("client_id", spa.id.as_str())]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "a confidential client without --introspection, even about its own token",
            app.http
                .post(&introspect)
                .basic_auth(&machine.id, machine.secret.as_deref())
                .form(&form),
            StatusCode::FORBIDDEN,
            "unauthorized_client",
        ),
    ];
    for (what, request, status, error) in refusals {
        assert_eq!(
            answer(request).await,
            (status, Some(error.to_owned())),
            "{what}"
        );
    }
    assert_eq!(
        app.introspect_as(&resource_server, &token).await["active"],
        true,
        "a client registered with --introspection"
    );
    // A client that may only introspect gets no token.
    let response = app
        .post_token(&resource_server, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let revoke_anonymous = app
        .http
        .post(app.url("/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke_anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        revoke_anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(
        app.introspect(&token).await["active"],
        true,
        "the anonymous revocation did nothing"
    );
}

async fn refresh_tokens_are_active_only_to_their_own_client(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app
        .register(ClientSpec::web().skip_consent().introspection())
        .await;
    let resource_server = app.register(ClientSpec::resource_server("api")).await;
    app.user("alice").await;
    let tokens = app.code_flow(&web, "alice").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let own = app.introspect_as(&web, refresh).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["client_id"], "web");
    assert_eq!(own["scope"], "read write");
    assert!(own["jti"].is_null(), "a refresh token has no jti: {own}");
    // RFC 7662 §4: a refresh token is of no concern to a resource server (nor to any other client).
    assert_eq!(
        app.introspect_as(&resource_server, refresh).await,
        json!({ "active": false })
    );
    // The access token is for the resource server to check.
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect_as(&resource_server, access).await["active"],
        true
    );
}

/// Rows of the families and everything they own.
async fn family_rows(app: &TestIssuer) -> (i64, i64, i64) {
    (
        app.count("select count(*) from token_family").await,
        app.count("select count(*) from authorization_code").await,
        app.count("select count(*) from refresh_token").await,
    )
}

async fn purge_removes_whole_families_and_never_revives_a_token(backend: Backend) {
    use auth_core::clock::Clock;
    use auth_server::config::MAX_ACCESS_TOKEN_TTL as HORIZON;
    use auth_server::store::sql::PURGE_LEEWAY;
    let app = TestIssuer::spawn(backend).await;
    let machine = app.register(ClientSpec::machine()).await;
    let web = app.register(ClientSpec::web().skip_consent()).await;
    app.user("alice").await;
    let t0 = app.clock.now();
    // A revoked client_credentials token: a deny-list entry until its exp (t0 + 900).
    let denied = app.access_token(&machine).await;
    assert_eq!(app.revoke(&machine, &denied).await, StatusCode::OK);
    // Family A: a code that is never exchanged (it lives 60 s).
    let (verifier, challenge) = pkce();
    let unused_code = app
        .browser()
        .login_and_approve(
            &app.authorize_url(&web.id, &challenge, &[]),
            "alice",
            PASSWORD,
        )
        .await;
    // Family B: exchanged, refreshed once, then revoked.
    let issued = app.code_flow(&web, "alice").await;
    let rotated: Value = app
        .post_token(
            &web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", issued["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.revoke(&web, &refresh).await, StatusCode::OK);
    assert_eq!(family_rows(&app).await, (2, 2, 2));
    // Every purge waits PURGE_LEEWAY beyond an expiry (clock skew between replicas): `purge(t, h)` is the
    // purge that treats `t` as its now.
    let purge = async |now: i64, horizon: i64| {
        app.state
            .store
            .purge_expired(now + PURGE_LEEWAY, horizon)
            .await
            .unwrap()
    };

    // While any of its tokens can live, a family stays, revoked or not.
    assert_eq!(purge(t0 + 899, HORIZON).await, 0, "nothing has ended");
    assert_eq!(family_rows(&app).await, (2, 2, 2));
    assert_eq!(app.introspect(&denied).await["active"], false);
    assert_eq!(app.introspect(&access).await["active"], false);
    // The deny-list entry goes PURGE_LEEWAY after its token's exp (not before: a replica whose clock is
    // behind still sees the token unexpired), and the token stays inactive because it has expired.
    app.state
        .store
        .purge_expired(t0 + 901, HORIZON)
        .await
        .unwrap();
    assert_eq!(
        app.count("select count(*) from revoked_access_token").await,
        1
    );
    assert_eq!(purge(t0 + 901, HORIZON).await, 1);
    assert_eq!(
        app.count("select count(*) from revoked_access_token").await,
        0
    );
    // Family A: its code ended at t0 + 60, and an access token minted by then lives at most HORIZON more.
    purge(t0 + 60 + HORIZON, HORIZON).await;
    assert_eq!(family_rows(&app).await, (2, 2, 2), "not a second early");
    purge(t0 + 61 + HORIZON, HORIZON).await;
    assert_eq!(
        family_rows(&app).await,
        (1, 0, 2),
        "family A went; every code (B's too) ended long ago"
    );
    // Family B lives until its last refresh token has expired.
    let refresh_ttl = app.state.settings.refresh_token_ttl;
    let last_refresh_expiry = t0 + refresh_ttl + 5;
    purge(last_refresh_expiry - 10, HORIZON).await;
    assert_eq!(
        family_rows(&app).await.0,
        1,
        "family B still has a refresh token"
    );
    purge(last_refresh_expiry + HORIZON, HORIZON).await;
    assert_eq!(family_rows(&app).await, (0, 0, 0), "all of family B went");

    // Even a family purged too early (a zero horizon) revives nothing: an access token whose family is
    // unknown is inactive, and its refresh token is unknown.
    let issued = app.code_flow(&web, "alice").await;
    let access = issued["access_token"].as_str().unwrap();
    let refresh = issued["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(access).await["active"], true);
    app.state
        .store
        .revoke_family(
            &auth_core::id::FamilyId::from_trusted(
                testkit::jwt::claims(access)["fam"].as_str().unwrap(),
            ),
            app.clock.now(),
        )
        .await
        .unwrap();
    purge(app.clock.now() + refresh_ttl + 1, 0).await;
    assert_eq!(family_rows(&app).await.0, 0);
    assert_eq!(app.introspect(access).await["active"], false);
    let response = app
        .post_token(
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // The code of family A was purged with it: exchanging it now is invalid_grant, not a 5xx.
    let exchanged = app
        .post_token(
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &unused_code),
                ("redirect_uri", testkit::REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(exchanged.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        exchanged.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}
