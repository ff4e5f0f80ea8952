//! OpenID Connect 1.0 as a relying party sees it: the `openidconnect` crate (the Rust OIDC client) discovers
//! the provider, signs a user in through the real login form, and validates the ID token (signature, issuer,
//! audience, expiry, nonce, at_hash) exactly as an app would; discovery and refresh here, and one file per
//! concern beside: UserInfo, prompt/max_age and consent, RP-initiated logout.

mod logout;
mod prompt;
mod userinfo;

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
    refreshing_an_openid_grant_returns_a_new_id_token_without_nonce,
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
