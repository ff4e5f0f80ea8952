//! OpenID Connect 1.0 as a relying party sees it: the `openidconnect` crate (the Rust OIDC client) discovers
//! the provider, signs a user in through the real login form, and validates the ID token (signature, issuer,
//! audience, expiry, nonce, at_hash) exactly as an app would; then UserInfo, refresh, prompt/max_age,
//! remembered consent, strict parameters and RP-initiated logout.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::keys::SigningAlgorithm;
use auth_core::wire::GrantType;
use testkit::browser::{Browser, Page};
use testkit::jwt::{claims, pkce};
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

use crate::client_credentials::oauth2_http;

backend_tests!(
    a_relying_party_signs_users_in_with_every_signing_algorithm,
    discovery_lists_what_strict_relying_parties_check,
    userinfo_answers_by_scope_and_refuses_as_rfc6750_says,
    refreshing_an_openid_grant_returns_a_new_id_token_without_nonce,
    prompt_and_max_age_decide_what_the_user_sees,
    remembered_consent_can_be_withdrawn_from_the_command_line,
    openid_requests_are_strict_about_their_parameters,
    openid_scopes_are_never_granted_to_client_credentials,
    a_nonce_belongs_to_its_own_flow,
    a_consent_page_approves_only_the_request_it_was_shown_for,
    logout_with_a_hint_ends_the_session_and_returns_to_a_registered_uri,
    logout_without_a_hint_asks_first_and_never_redirects_elsewhere,
);

/// The client as `openidconnect` builds it from discovery.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Where RP-initiated logout may return.
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/signed-out";

/// The web app of these tests: confidential, code + refresh, `openid profile email read`.
fn web_app() -> ClientSpec {
    ClientSpec::confidential("web")
        .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .scope("openid profile email read")
        .post_logout_redirect_uri(AFTER_LOGOUT)
}

/// Discovery, as the app does it at start.
async fn relying_party(app: &TestIssuer, client: &TestClient) -> Rp {
    let provider = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.issuer().to_owned()).unwrap(),
        &oauth2_http,
    )
    .await
    .unwrap();
    CoreClient::from_provider_metadata(
        provider,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
}

/// What a sign-in through the app gave.
struct SignedIn {
    tokens: CoreTokenResponse,
    nonce: Nonce,
}

/// The user's part: the login form (unless the browser has a session), the consent page if shown; the
/// code of the redirect, checked to carry the app's state.
async fn browse_to_code(
    browser: &mut Browser,
    url: &str,
    state: &CsrfToken,
    username: &str,
) -> String {
    let mut page = browser.get(url).await;
    if page.is_login_form() {
        page = browser.sign_in(&page, username, PASSWORD).await;
    }
    if page.is_consent_form() {
        page = browser.decide(&page, "approve").await;
    }
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(
        page.redirect_param("state").as_deref(),
        Some(state.secret().as_str())
    );
    page.redirect_param("code").expect("a code")
}

/// The app's sign-in: authorization URL with nonce and PKCE, the user's part, the code exchange.
async fn sign_in(
    rp: &Rp,
    browser: &mut Browser,
    scopes: &[&str],
    extra: &[(&str, &str)],
) -> SignedIn {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    for (name, value) in extra {
        request = request.add_extra_param(*name, *value);
    }
    let (url, state, nonce) = request.url();
    let code = browse_to_code(browser, url.as_str(), &state, "alice").await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&oauth2_http)
        .await
        .unwrap();
    SignedIn { tokens, nonce }
}

/// Validates the ID token as the app does (signature by a key of the discovered JWKS with an algorithm the
/// provider announced, issuer, audience, expiry, nonce) and its at_hash against the access token; returns
/// its raw claims.
fn validate_id_token(
    rp: &Rp,
    id_token: &CoreIdToken,
    access_token: &openidconnect::AccessToken,
    nonce: Option<&Nonce>,
) -> Value {
    let verifier = rp.id_token_verifier();
    let checked = match nonce {
        Some(nonce) => id_token.claims(&verifier, nonce),
        // A refreshed ID token has no nonce (Core §12.2).
        None => id_token.claims(&verifier, |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_owned()),
        }),
    }
    .expect("the ID token validates");
    let expected = checked.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        access_token,
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash");
    claims(&id_token.to_string())
}

async fn a_relying_party_signs_users_in_with_every_signing_algorithm(backend: Backend) {
    for alg in SigningAlgorithm::ALL {
        let app = TestIssuer::spawn_with(backend.clone(), |serve| serve.signing_alg = alg).await;
        let web = app.register(web_app()).await;
        let user_id = app
            .user_with_profile(
                "alice",
                PASSWORD,
                Some("Alice Liddell"),
                Some("alice@example.org"),
                true,
            )
            .await;
        let rp = relying_party(&app, &web).await;
        let mut browser = app.browser();
        let signed_in = sign_in(&rp, &mut browser, &["profile", "email"], &[]).await;
        let id_token = signed_in.tokens.id_token().expect("an id_token");
        let raw = validate_id_token(
            &rp,
            id_token,
            signed_in.tokens.access_token(),
            Some(&signed_in.nonce),
        );
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                id_token.to_string().split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], "JWT", "{alg}: never at+jwt");
        assert_eq!(header["alg"], alg.as_str());
        let access = claims(signed_in.tokens.access_token().secret());
        assert_eq!(raw["sub"], user_id.as_str(), "{alg}");
        assert_eq!(
            raw["sub"], access["sub"],
            "the same sub as the access token"
        );
        assert_eq!(raw["aud"], "web");
        assert_eq!(raw["iss"], app.issuer());
        assert_eq!(raw["auth_time"], access["auth_time"]);
        assert_eq!(
            raw["exp"].as_i64().unwrap() - raw["iat"].as_i64().unwrap(),
            900,
            "an ID token lives as long as an access token"
        );
        let sid = raw["sid"].as_str().expect("sid");
        assert_ne!(
            Some(sid),
            access["fam"].as_str(),
            "the session, never the family"
        );
        // UserInfo through the crate, checking the subject it expects.
        let info: CoreUserInfoClaims = rp
            .user_info(
                signed_in.tokens.access_token().clone(),
                Some(openidconnect::SubjectIdentifier::new(user_id.clone())),
            )
            .unwrap()
            .request_async(&oauth2_http)
            .await
            .unwrap();
        assert_eq!(info.subject().as_str(), user_id);
        assert_eq!(
            info.preferred_username().map(|name| name.as_str()),
            Some("alice")
        );
        assert_eq!(
            info.email().map(|email| email.as_str()),
            Some("alice@example.org")
        );
        assert_eq!(info.email_verified(), Some(true));
    }
}

async fn discovery_lists_what_strict_relying_parties_check(backend: Backend) {
    for alg in SigningAlgorithm::ALL {
        let app = TestIssuer::spawn_with(backend.clone(), |serve| serve.signing_alg = alg).await;
        let openid = app.get_json("/.well-known/openid-configuration").await;
        assert_eq!(openid["issuer"], app.issuer());
        for (member, path) in [
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("jwks_uri", "/jwks.json"),
            ("userinfo_endpoint", "/userinfo"),
            ("end_session_endpoint", "/logout"),
        ] {
            assert_eq!(openid[member], app.url(path), "{member}");
        }
        assert_eq!(openid["subject_types_supported"], json!(["public"]));
        assert_eq!(openid["response_types_supported"], json!(["code"]));
        assert_eq!(openid["response_modes_supported"], json!(["query"]));
        assert_eq!(openid["request_parameter_supported"], false);
        assert_eq!(openid["request_uri_parameter_supported"], false);
        assert_eq!(
            openid["id_token_signing_alg_values_supported"],
            json!([alg.as_str()]),
            "the algorithm the ID tokens are signed with"
        );
        for claim in [
            "sub",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "email",
            "preferred_username",
        ] {
            assert!(
                openid["claims_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(claim)),
                "{claim}"
            );
        }
        for scope in ["openid", "profile", "email"] {
            assert!(
                openid["scopes_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(scope))
            );
        }
        assert_eq!(
            app.metadata().await,
            openid,
            "RFC 8414 and Discovery documents agree"
        );
    }
    // An issuer with a path: Discovery appends to it (Discovery §4), RFC 8414 inserts (RFC 8414 §3.1).
    let app = TestIssuer::spawn_with(backend.clone(), |serve| {
        serve.issuer = Some("http://127.0.0.1:1/tenant".into());
    })
    .await;
    let openid = app
        .http
        .get(format!(
            "http://{}/tenant/.well-known/openid-configuration",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(openid.status(), StatusCode::OK);
    let openid: Value = openid.json().await.unwrap();
    assert_eq!(openid["issuer"], "http://127.0.0.1:1/tenant");
    assert_eq!(
        openid["userinfo_endpoint"],
        "http://127.0.0.1:1/tenant/userinfo"
    );
}

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

async fn refreshing_an_openid_grant_returns_a_new_id_token_without_nonce(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app().skip_consent()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let first = sign_in(&rp, &mut browser, &[], &[]).await;
    let first_claims = validate_id_token(
        &rp,
        first.tokens.id_token().unwrap(),
        first.tokens.access_token(),
        Some(&first.nonce),
    );
    assert!(first_claims["nonce"].is_string());
    app.clock.advance(120);
    let refreshed = rp
        .exchange_refresh_token(&RefreshToken::new(
            first.tokens.refresh_token().unwrap().secret().clone(),
        ))
        .unwrap()
        .request_async(&oauth2_http)
        .await
        .unwrap();
    let id_token = refreshed.id_token().expect("a new id_token on refresh");
    let claims = validate_id_token(&rp, id_token, refreshed.access_token(), None);
    assert_eq!(claims["sub"], first_claims["sub"]);
    assert_eq!(
        claims["auth_time"], first_claims["auth_time"],
        "no new sign-in"
    );
    assert_eq!(claims["sid"], first_claims["sid"]);
    assert!(claims.get("nonce").is_none());
    assert!(claims["iat"].as_i64().unwrap() >= first_claims["iat"].as_i64().unwrap() + 120);
    // A grant without openid gets no ID token, at the code exchange or on refresh.
    let plain = app
        .register(
            ClientSpec::confidential("plain")
                .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
                .scope("read")
                .skip_consent(),
        )
        .await;
    let tokens = app.code_flow(&plain, "alice").await;
    assert!(tokens.get("id_token").is_none());
    let refreshed = app
        .post_token(
            &plain,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(refreshed.get("id_token").is_none());
}

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
    let withdrawn = crate::cli::json(&crate::cli::run(
        &["consent", "revoke", "--user", "alice", "--client", "web"],
        &app.database_url,
        None,
    ));
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
    // Accepted however long ago it expired.
    app.clock.advance(86_400);
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
