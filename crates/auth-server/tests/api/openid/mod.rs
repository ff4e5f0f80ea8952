//! OpenID Connect 1.0 as a relying party sees it: the `openidconnect` crate (the Rust OIDC client) discovers
//! the provider, signs a user in through the real login form, and validates the ID token (signature, issuer,
//! audience, expiry, nonce, at_hash) exactly as an app would; discovery and refresh here, and one file per
//! concern beside: UserInfo, prompt/max_age and consent, RP-initiated logout.

mod logout;
mod prompt;
mod requests;
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
    a_relying_party_signs_in_over_https,
    a_relying_party_configured_with_no_algorithm_gets_rs256_and_one_registered_for_es256_gets_es256,
    keys_rotate_for_id_tokens_as_for_access_tokens,
);

/// The app's sign-in as `rp` (however it was built) gives: the raw ID token and its nonce.
async fn sign_in_raw<C>(app: &TestIssuer, rp: &C) -> (CoreTokenResponse, Nonce)
where
    C: ExchangesCodes,
{
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp.authorize(challenge);
    let mut browser = app.browser();
    let code = browse_to_code(&mut browser, url.as_str(), &state, "alice").await;
    let tokens = rp.exchange(code, verifier).await;
    (tokens, nonce)
}

/// What [`sign_in_raw`] needs of a relying party, whatever type the crate gave it.
trait ExchangesCodes {
    fn authorize(&self, challenge: PkceCodeChallenge) -> (url::Url, CsrfToken, Nonce);
    async fn exchange(
        &self,
        code: String,
        verifier: openidconnect::PkceCodeVerifier,
    ) -> CoreTokenResponse;
}

/// A relying party as an app configures it by hand, without reading the discovery document's algorithm
/// list: the `openidconnect` crate then accepts RS256 ID tokens only.
type HandmadeRp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

impl ExchangesCodes for HandmadeRp {
    fn authorize(&self, challenge: PkceCodeChallenge) -> (url::Url, CsrfToken, Nonce) {
        self.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url()
    }

    async fn exchange(
        &self,
        code: String,
        verifier: openidconnect::PkceCodeVerifier,
    ) -> CoreTokenResponse {
        self.exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&oauth2_http)
            .await
            .unwrap()
    }
}

async fn a_relying_party_configured_with_no_algorithm_gets_rs256_and_one_registered_for_es256_gets_es256(
    backend: Backend,
) {
    // Access tokens stay ES256 (the default): only ID tokens are RS256.
    let app = TestIssuer::spawn(backend).await;
    let plain = app.register(web_app().skip_consent()).await;
    let es = app
        .register(
            ClientSpec::confidential("es-app")
                .grants([GrantType::AuthorizationCode])
                .scope("openid read")
                .skip_consent()
                .id_token_alg("ES256"),
        )
        .await;
    app.user("alice").await;
    let provider = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.issuer().to_owned()).unwrap(),
        &oauth2_http,
    )
    .await
    .unwrap();
    let handmade = |client: &TestClient| -> HandmadeRp {
        CoreClient::new(
            ClientId::new(client.id.clone()),
            provider.issuer().clone(),
            provider.jwks().clone(),
        )
        .set_client_secret(ClientSecret::new(client.secret.clone().unwrap()))
        .set_auth_uri(provider.authorization_endpoint().clone())
        .set_token_uri(provider.token_endpoint().unwrap().clone())
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
    };
    // No algorithm configured: RS256 expected, RS256 served.
    let rp = handmade(&plain);
    let (tokens, nonce) = sign_in_raw(&app, &rp).await;
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("an RS256 ID token validates with the crate's defaults");
    assert_eq!(claims.audiences()[0].as_str(), "web");
    assert_eq!(testkit::jwt::header(&id_token.to_string())["alg"], "RS256");
    assert_eq!(
        testkit::jwt::header(tokens.access_token().secret())["alg"],
        "ES256",
        "access tokens keep --signing-alg"
    );
    // at_hash by the ID token's algorithm (SHA-256 for RS256).
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&rp.id_token_verifier()).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);
    // Registered for ES256: ES256 served, which the crate's default (RS256 only) refuses and an app told
    // to expect ES256 accepts.
    let rp = handmade(&es);
    let (tokens, nonce) = sign_in_raw(&app, &rp).await;
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(testkit::jwt::header(&id_token.to_string())["alg"], "ES256");
    assert!(id_token.claims(&rp.id_token_verifier(), &nonce).is_err());
    let es_verifier = rp
        .id_token_verifier()
        .set_allowed_algs([openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    assert!(id_token.claims(&es_verifier, &nonce).is_ok());
}

/// `keys rotate` covers every algorithm in use: a new RS256 key is published first, then signs ID tokens;
/// the old one stays published until its tokens' verifiers are done, and never retires the ES256 key.
async fn keys_rotate_for_id_tokens_as_for_access_tokens(backend: Backend) {
    use auth_core::keys::SigningKey;
    use auth_server::keys::keyring::stored_form;
    let app = TestIssuer::spawn(backend).await;
    let web = app.register(web_app().skip_consent()).await;
    app.user("alice").await;
    let rp = relying_party(&app, &web).await;
    let kid = |token: &str| {
        testkit::jwt::header(token)["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = sign_in(&rp, &mut app.browser(), &[], &[]).await;
    let (old_id, old_access) = (
        kid(&first.tokens.id_token().unwrap().to_string()),
        kid(first.tokens.access_token().secret()),
    );
    let now = app.clock.now();
    let new_rs = SigningKey::generate(SigningAlgorithm::Rs256).unwrap();
    app.state
        .store
        .insert_key(&stored_form(&new_rs, None, now, now + 300).unwrap())
        .await
        .unwrap();
    let jwks_kids = async || -> Vec<String> {
        app.get_json("/jwks.json").await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut published = jwks_kids().await;
    for _ in 0..100 {
        if published.contains(&new_rs.kid().to_owned()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        published = jwks_kids().await;
    }
    assert!(
        published.contains(&new_rs.kid().to_owned()),
        "published before it signs"
    );
    let before = sign_in(&rp, &mut app.browser(), &[], &[]).await;
    assert_eq!(kid(&before.tokens.id_token().unwrap().to_string()), old_id);
    app.clock.advance(300);
    app.state.keys.refresh(app.clock.now());
    let rp = relying_party(&app, &web).await;
    let after = sign_in(&rp, &mut app.browser(), &[], &[]).await;
    validate_id_token(
        &rp,
        after.tokens.id_token().unwrap(),
        after.tokens.access_token(),
        Some(&after.nonce),
    );
    assert_eq!(
        kid(&after.tokens.id_token().unwrap().to_string()),
        new_rs.kid()
    );
    assert_eq!(
        kid(after.tokens.access_token().secret()),
        old_access,
        "the ES256 key was not rotated"
    );
    app.clock.advance(900 + 60);
    app.state.keys.refresh(app.clock.now());
    let retired = jwks_kids().await;
    assert!(!retired.contains(&old_id), "the old RS256 key retires");
    assert!(retired.contains(&old_access), "the ES256 key stays");
    assert!(retired.contains(&new_rs.kid().to_owned()));
}

/// The whole sign-in over https: discovery, the pages, the code exchange, the ID token's keys and UserInfo,
/// with a client that trusts the test CA alone; every endpoint in the discovery document is https.
async fn a_relying_party_signs_in_over_https(backend: Backend) {
    let app = TestIssuer::spawn_tls(backend).await;
    assert!(app.issuer().starts_with("https://"));
    let web = app.register(web_app()).await;
    let user_id = app.user("alice").await;
    let openid = app.get_json("/.well-known/openid-configuration").await;
    for (member, value) in openid.as_object().unwrap() {
        if let Some(url) = value.as_str()
            && (member.ends_with("_endpoint") || member.ends_with("_uri") || member == "issuer")
        {
            assert!(url.starts_with("https://"), "{member}: {url}");
        }
    }
    let rp = relying_party(&app, &web).await;
    let mut browser = app.browser();
    let signed_in = sign_in(&rp, &mut browser, &["read"], &[]).await;
    let id_token = signed_in.tokens.id_token().expect("an id_token");
    let raw = validate_id_token(
        &rp,
        id_token,
        signed_in.tokens.access_token(),
        Some(&signed_in.nonce),
    );
    assert_eq!(raw["sub"], user_id.as_str());
    assert_eq!(raw["iss"], app.issuer());
}

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
    sign_in_as(rp, browser, "alice", scopes, extra).await
}

/// [`sign_in`] as `username`.
async fn sign_in_as(
    rp: &Rp,
    browser: &mut Browser,
    username: &str,
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
    let code = browse_to_code(browser, url.as_str(), &state, username).await;
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

/// Every ID-token algorithm a client may register (RS256 by registering none), beside every access-token
/// algorithm: the ID token is signed with the client's, the access token with the server's.
async fn a_relying_party_signs_users_in_with_every_signing_algorithm(backend: Backend) {
    let access_algs = [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Es256,
    ];
    let id_algs = [
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Ps256,
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
    ];
    for (access_alg, alg) in access_algs.into_iter().zip(id_algs) {
        let app =
            TestIssuer::spawn_with(backend.clone(), |serve| serve.signing_alg = access_alg).await;
        let spec = match alg {
            SigningAlgorithm::Rs256 => web_app(),
            other => web_app().id_token_alg(other.as_str()),
        };
        let web = app.register(spec).await;
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
        assert_eq!(
            testkit::jwt::header(signed_in.tokens.access_token().secret())["alg"],
            access_alg.as_str()
        );
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
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
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
            json!(["RS256", "PS256", "ES256", "EdDSA"]),
            "what a client may register, RS256 first (Discovery §3 requires it)"
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
