//! The pages in a real browser: headless Chromium over WebDriver types into the login form, clicks the
//! buttons, follows the server's redirects (so the content security policy, cookies and forms are the
//! browser's own business), and lands on a stand-in application's redirect URI. Screenshots of every page go
//! to `target/browser-screenshots/`. SQLite only: the pages do not depend on the back-end.

use auth_core::wire::GrantType;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::webdriver::{CallbackApp, HeadlessChrome};
use testkit::{Backend, ClientSpec, PASSWORD, TestClient, TestIssuer};

/// An issuer with a confidential web client named "Photo Album" whose redirect URI is a live stand-in app.
async fn setup() -> Option<(TestIssuer, CallbackApp, TestClient, HeadlessChrome)> {
    let browser = HeadlessChrome::start().await?;
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let app = CallbackApp::start().await;
    let client = issuer
        .register(
            ClientSpec::confidential("photo-album")
                .name("Photo Album")
                .grants([GrantType::AuthorizationCode])
                .redirect_uri(&app.redirect_uri)
                .post_logout_redirect_uri(&format!("{}/signed-out", app.origin))
                .scope("openid profile email read write"),
        )
        .await;
    issuer.user("alice").await;
    issuer.user("bob").await;
    Some((issuer, app, client, browser))
}

/// An authorization request to `app`'s redirect URI; returns the URL and the PKCE verifier.
fn authorize_url(issuer: &TestIssuer, app: &CallbackApp, scope: &str) -> (String, String) {
    let (verifier, challenge) = testkit::jwt::pkce();
    let mut url = url::Url::parse(&issuer.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "photo-album")
        .append_pair("redirect_uri", &app.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "s-123")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    (url.to_string(), verifier)
}

/// The query parameters of the page the browser is on.
async fn landed(browser: &HeadlessChrome) -> (url::Url, std::collections::HashMap<String, String>) {
    let url = browser.url().await;
    let query = url.query_pairs().into_owned().collect();
    (url, query)
}

async fn sign_in(browser: &HeadlessChrome, username: &str, password: &str) {
    browser.type_into("#username", username).await;
    browser.type_into("#password", password).await;
    browser.click("button[type=submit]").await;
}

/// At a phone's width (390 px), the page must not scroll sideways; a screenshot named `screenshot` when
/// given; then back to the desktop window.
async fn assert_fits_a_phone(browser: &HeadlessChrome, page: &str, screenshot: Option<&str>) {
    browser.client().set_window_size(390, 844).await.unwrap();
    assert!(
        !scrolls_sideways(browser).await,
        "the {page} page fits 390 px"
    );
    if let Some(name) = screenshot {
        browser.screenshot(name).await;
    }
    browser.client().set_window_size(1280, 900).await.unwrap();
}

/// Whether the page scrolls sideways (a layout too wide for the window).
async fn scrolls_sideways(browser: &HeadlessChrome) -> bool {
    let wide = browser
        .client()
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    wide.as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_allows_and_the_app_exchanges_its_code() {
    let Some((issuer, app, client, browser)) = setup().await else {
        return;
    };
    let (url, verifier) = authorize_url(&issuer, &app, "openid profile read");
    browser.goto(&url).await;

    // The login page: the client's name, labels bound to their inputs, autocomplete hints, focus on the
    // username, and a layout that fits a phone.
    let text = browser.text().await;
    assert!(text.contains("Continue to Photo Album"), "{text}");
    assert!(
        text.contains("photo-album"),
        "the client id is shown too: {text}"
    );
    let username = browser.find("label[for=username] + input#username").await;
    assert_eq!(
        username.attr("autocomplete").await.unwrap().as_deref(),
        Some("username")
    );
    let password = browser.find("label[for=password] + input#password").await;
    assert_eq!(
        password.attr("autocomplete").await.unwrap().as_deref(),
        Some("current-password")
    );
    let focused = browser.client().active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("username")
    );
    let style = browser
        .client()
        .execute(
            "return getComputedStyle(document.querySelector('button.primary')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(
        style.as_str(),
        Some("rgba(0, 0, 0, 0)"),
        "the stylesheet loaded under the page's CSP"
    );
    browser.screenshot("login").await;
    assert_fits_a_phone(&browser, "login", Some("login-phone")).await;

    sign_in(&browser, "alice", PASSWORD).await;

    // The consent page: who is signed in, what each scope means, Allow first in the focus order.
    let text = browser.text().await;
    assert!(
        text.contains("Photo Album wants to access your account"),
        "{text}"
    );
    assert!(text.contains("Signed in as alice"), "{text}");
    assert!(
        text.contains("photo-album"),
        "the client id is shown too: {text}"
    );
    assert!(text.contains("Not alice? Sign out"), "{text}");
    assert!(text.contains("Know who you are"), "{text}");
    assert!(text.contains("See your name and username"), "{text}");
    assert!(text.contains("Read your data"), "{text}");
    assert!(
        !text.contains("Change your data"),
        "only the requested scopes: {text}"
    );
    assert_eq!(browser.focused("value").await.as_deref(), Some("approve"));
    browser.screenshot("consent").await;
    browser.press_tab().await;
    assert_eq!(
        browser.focused("value").await.as_deref(),
        Some("deny"),
        "Tab goes from Allow to Deny"
    );
    assert_fits_a_phone(&browser, "consent", Some("consent-phone")).await;

    browser.click("button[value=approve]").await;

    // The browser followed the 303 to the app (the pages' CSP has no form-action to stop it).
    let (landed_url, query) = landed(&browser).await;
    assert!(
        landed_url.as_str().starts_with(&app.redirect_uri),
        "{landed_url}"
    );
    assert_eq!(query["state"], "s-123");
    assert_eq!(query["iss"], issuer.issuer());
    assert!(browser.text().await.contains("Back at the app"));
    let response = issuer
        .post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &query["code"]),
                ("redirect_uri", &app.redirect_uri),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert!(
        tokens["access_token"].is_string() && tokens["id_token"].is_string(),
        "{tokens}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_you_signs_out_to_the_login_form_and_deny_tells_the_app() {
    let Some((issuer, app, _client, browser)) = setup().await else {
        return;
    };
    let (url, _) = authorize_url(&issuer, &app, "read");
    browser.goto(&url).await;
    sign_in(&browser, "alice", PASSWORD).await;
    assert!(browser.text().await.contains("Signed in as alice"));

    // "Not alice? Sign out": the session ends and the same request asks who is there.
    browser.click("button[value=switch]").await;
    let text = browser.text().await;
    assert!(text.contains("Continue to Photo Album"), "{text}");
    assert_eq!(
        browser
            .find("#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    assert_eq!(issuer.count("select count(*) from login_session").await, 0);
    sign_in(&browser, "bob", PASSWORD).await;
    assert!(browser.text().await.contains("Signed in as bob"));

    browser.click("button[value=deny]").await;
    let (landed_url, query) = landed(&browser).await;
    assert!(
        landed_url.as_str().starts_with(&app.redirect_uri),
        "{landed_url}"
    );
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "s-123");
    assert!(!query.contains_key("code"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_an_expired_session_and_a_bad_request_get_helpful_pages() {
    let Some((issuer, app, _client, browser)) = setup().await else {
        return;
    };
    let (url, _) = authorize_url(&issuer, &app, "read");
    browser.goto(&url).await;
    sign_in(&browser, "alice", "not the password").await;
    let alert = browser.find("[role=alert]").await.text().await.unwrap();
    assert_eq!(alert, "Invalid username or password.");
    assert_eq!(
        browser
            .find("#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("alice"),
        "the username is kept"
    );
    let focused = browser.client().active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("password")
    );
    browser.screenshot("login-wrong-password").await;

    // Signed in, then the session expires while the consent page is open.
    browser.find("#username").await.clear().await.unwrap();
    sign_in(&browser, "alice", PASSWORD).await;
    assert!(browser.text().await.contains("Signed in as alice"));
    issuer.clock.advance(issuer.state.settings.session_ttl + 1);
    browser.click("button[value=approve]").await;
    let alert = browser.find("[role=alert]").await.text().await.unwrap();
    assert_eq!(alert, "Your session has ended. Sign in again.");
    browser.screenshot("login-session-ended").await;
    sign_in(&browser, "alice", PASSWORD).await;
    browser.click("button[value=approve]").await;
    let (_, query) = landed(&browser).await;
    assert!(query.contains_key("code"), "{query:?}");

    // An unknown client: an error page that says what to do and does not repeat what was sent.
    browser
        .goto(&issuer.url(
            "/authorize?response_type=code&client_id=%3Cb%3Eevil%3C%2Fb%3E&redirect_uri=http%3A%2F%2Fevil.example%2F",
        ))
        .await;
    let text = browser.text().await;
    assert!(text.contains("This request cannot be completed"), "{text}");
    assert!(text.contains("Return to the application"), "{text}");
    assert!(!text.contains("evil"), "no echo of the request: {text}");
    browser.screenshot("error").await;
    assert_fits_a_phone(&browser, "error", None).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_in_the_browser_ends_the_session() {
    let Some((issuer, app, _client, browser)) = setup().await else {
        return;
    };
    let (url, _) = authorize_url(&issuer, &app, "openid");
    browser.goto(&url).await;
    sign_in(&browser, "alice", PASSWORD).await;
    browser.click("button[value=approve]").await;
    assert!(landed(&browser).await.1.contains_key("code"));

    // Without an id_token_hint the server asks first (RP-Initiated Logout §2), then signs out.
    browser.goto(&issuer.url("/logout")).await;
    let text = browser.text().await;
    assert!(text.contains("Sign out?"), "{text}");
    browser.screenshot("logout").await;
    browser.click("button[value=yes]").await;
    let text = browser.text().await;
    assert!(text.contains("You are signed out"), "{text}");
    browser.screenshot("signed-out").await;
    assert_fits_a_phone(&browser, "signed-out", None).await;
    assert_eq!(issuer.count("select count(*) from login_session").await, 0);

    // With the client's registered post-logout URI, the browser goes back to the app.
    browser
        .goto(&issuer.url(&format!(
            "/logout?client_id=photo-album&post_logout_redirect_uri={}&state=bye",
            url::form_urlencoded::byte_serialize(format!("{}/signed-out", app.origin).as_bytes())
                .collect::<String>()
        )))
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("Photo Album asks you to sign out")
    );
    browser.click("button[value=yes]").await;
    let (landed_url, query) = landed(&browser).await;
    assert!(
        landed_url
            .as_str()
            .starts_with(&format!("{}/signed-out", app.origin)),
        "{landed_url}"
    );
    assert_eq!(query["state"], "bye");

    // The next authorization request asks for a password again.
    browser.goto(&url).await;
    assert!(browser.text().await.contains("Continue to Photo Album"));
    browser.close().await;
}

/// The pages over https: the browser trusts the test server's certificate alone (its key pinned with
/// `--ignore-certificate-errors-spki-list`, which ignores no other error), the cookies are `__Host-` and
/// `Secure`, and the person lands on the app with a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_over_https() {
    let ca = testkit::tls::ca();
    let Some(browser) = HeadlessChrome::start_with(&[format!(
        "--ignore-certificate-errors-spki-list={}",
        ca.server_spki_sha256
    )])
    .await
    else {
        return;
    };
    let issuer = TestIssuer::spawn_tls(Backend::Sqlite).await;
    assert!(issuer.issuer().starts_with("https://"));
    let app = CallbackApp::start().await;
    issuer
        .register(
            ClientSpec::confidential("photo-album")
                .name("Photo Album")
                .grants([GrantType::AuthorizationCode])
                .redirect_uri(&app.redirect_uri)
                .scope("openid profile read")
                .skip_consent(),
        )
        .await;
    issuer.user("alice").await;
    let (url, _) = authorize_url(&issuer, &app, "openid read");
    browser.goto(&url).await;
    let text = browser.text().await;
    assert!(text.contains("Continue to Photo Album"), "{text}");
    let cookies = browser.client().get_all_cookies().await.unwrap();
    assert!(
        cookies
            .iter()
            .all(|cookie| cookie.name().starts_with("__Host-") && cookie.secure() == Some(true)),
        "{cookies:?}"
    );
    sign_in(&browser, "alice", PASSWORD).await;
    let (landed_at, query) = landed(&browser).await;
    assert!(
        landed_at.as_str().starts_with(&app.redirect_uri),
        "{landed_at}"
    );
    assert!(query.contains_key("code"), "{query:?}");
    assert_eq!(query.get("iss").map(String::as_str), Some(issuer.issuer()));
    browser.close().await;
}

/// A client that registered itself (RFC 7591, `--registration open`): in a real browser its consent page
/// says its developer registered it, not the operator, and it still reaches the application; a second visit
/// shows the page again (consent to a self-registered client is never remembered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_registered_clients_consent_page_says_who_registered_it() {
    let Some(browser) = HeadlessChrome::start().await else {
        return;
    };
    let issuer = TestIssuer::spawn_with(Backend::Sqlite, |serve| {
        serve.registration = auth_server::config::RegistrationPolicy::Open;
    })
    .await;
    issuer.register(ClientSpec::machine().scope("read")).await;
    issuer.user("alice").await;
    let app = CallbackApp::start().await;
    let registered: Value = issuer
        .http
        .post(issuer.url("/register"))
        .json(&serde_json::json!({
            "redirect_uris": [app.redirect_uri],
            "token_endpoint_auth_method": "none",
            "client_name": "Your Bank",
            "scope": "read",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let (_, challenge) = testkit::jwt::pkce();
    let mut url = url::Url::parse(&issuer.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &app.redirect_uri)
        .append_pair("scope", "read")
        .append_pair("state", "s-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    browser.goto(url.as_str()).await;
    sign_in(&browser, "alice", PASSWORD).await;
    let text = browser.text().await;
    assert!(
        text.contains("Your Bank wants to access your account"),
        "{text}"
    );
    assert!(
        text.contains("registered by its developer, not by the operator of this server"),
        "{text}"
    );
    assert!(
        text.contains(&client_id),
        "the id beside the claimed name: {text}"
    );
    browser.screenshot("consent-self-registered").await;
    browser.click("button[value=approve]").await;
    let (landed_at, query) = landed(&browser).await;
    assert!(
        landed_at.as_str().starts_with(&app.redirect_uri),
        "{landed_at}"
    );
    assert!(query.contains_key("code"), "{landed_at}");
    // Never remembered: the next request asks again.
    browser.goto(url.as_str()).await;
    let again = browser.text().await;
    assert!(again.contains("registered by its developer"), "{again}");
    browser.close().await;
}

/// RFC 8628 end to end: the `oauth2` crate as the device (it implements the device flow: the request, the
/// polling, `authorization_pending` and `slow_down`), and a person in Chromium on "another device" who
/// opens `verification_uri_complete`, confirms the code, signs in and allows. The device's polls advance the
/// server's clock by the interval they wait, so the test takes real seconds only for the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_connected_from_a_browser_on_another_device() {
    use oauth2::{
        ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse,
        TokenResponse, TokenUrl,
    };
    let Some(browser) = HeadlessChrome::start().await else {
        return;
    };
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    issuer
        .register(
            ClientSpec::public("tv")
                .name("Living Room TV")
                .grants([GrantType::DeviceCode, GrantType::RefreshToken])
                .scope("read write"),
        )
        .await;
    issuer.user("alice").await;
    let device = oauth2::basic::BasicClient::new(ClientId::new("tv".into()))
        .set_auth_type(oauth2::AuthType::RequestBody)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(issuer.url("/device_authorization")).unwrap(),
        )
        .set_token_uri(TokenUrl::new(issuer.url("/token")).unwrap());
    let details: StandardDeviceAuthorizationResponse = device
        .exchange_device_code()
        .add_scope(Scope::new("read".into()))
        .request_async(&super::client_credentials::oauth2_http)
        .await
        .unwrap();
    assert_eq!(details.verification_uri().as_str(), issuer.url("/device"));
    let complete = details
        .verification_uri_complete()
        .expect("verification_uri_complete")
        .secret()
        .clone();
    let user_code = details.user_code().secret().clone();
    let clock = issuer.clock.clone();
    let polling = tokio::spawn(async move {
        device
            .exchange_device_access_token(&details)
            .request_async(
                &super::client_credentials::oauth2_http,
                move |wait| {
                    clock.advance(i64::try_from(wait.as_secs()).unwrap());
                    tokio::time::sleep(std::time::Duration::from_millis(200))
                },
                None,
            )
            .await
    });

    // The person: the code is filled in, shown, and waits for them to confirm it.
    browser.goto(&complete).await;
    let field = browser.find("input#user_code").await;
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some(user_code.as_str())
    );
    browser.screenshot("device-code").await;
    browser.click("button[type=submit]").await;
    sign_in(&browser, "alice", testkit::PASSWORD).await;
    let text = browser.text().await;
    assert!(text.contains("Living Room TV"), "{text}");
    assert!(text.contains(&user_code), "the code to compare: {text}");
    browser.screenshot("device-consent").await;
    assert_fits_a_phone(&browser, "device consent", None).await;
    browser.click("button[value=approve]").await;
    let text = browser.text().await;
    assert!(text.contains("You can return to your device"), "{text}");

    let token = polling.await.unwrap().expect("the device gets its tokens");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "read");
    assert!(token.refresh_token().is_some());
    let claims = testkit::jwt::claims(token.access_token().secret());
    assert_eq!(claims["client_id"], "tv");
    assert_eq!(
        issuer.introspect(token.access_token().secret()).await["active"],
        true
    );
    browser.close().await;
}
