//! OpenID Connect Back-Channel Logout 1.0: a relying party (a real HTTP server on port 0) receives a logout
//! token for each session that ends, and checks it with an independent JOSE implementation (RustCrypto's
//! `rsa`); a 503 is tried again with the same token; the operator's commands tell the clients too; and a
//! black hole that never answers neither delays a logout nor grows the queue beyond its bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::id::{ClientId, UserId};
use auth_core::wire::GrantType;
use testkit::browser::Browser;
use testkit::jwt::{claims, pkce, verify_rs256};
use testkit::{Backend, ClientSpec, PASSWORD, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    logout_tells_each_client_of_the_session_with_a_logout_token,
    a_failed_delivery_is_tried_again_with_the_same_token,
    the_operators_commands_tell_the_clients_too,
    a_black_hole_neither_delays_logouts_nor_grows_the_queue,
    a_self_registered_client_is_never_posted_to_at_a_special_use_address,
    self_registered_clients_fill_at_most_half_of_the_queue,
);

/// A relying party's back channel: records every logout token; answers 503 to the first `failures` posts.
struct RelyingParty {
    uri: String,
    received: Arc<Mutex<Vec<String>>>,
}

impl RelyingParty {
    async fn start(failures: usize) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post({
                let received = received.clone();
                move |body: String| {
                    let received = received.clone();
                    let failed = failed.clone();
                    async move {
                        let token = url::form_urlencoded::parse(body.as_bytes())
                            .find(|(name, _)| name == "logout_token")
                            .map(|(_, value)| value.into_owned());
                        let Some(token) = token else {
                            return StatusCode::BAD_REQUEST;
                        };
                        received.lock().unwrap().push(token);
                        if failed.fetch_add(1, Ordering::SeqCst) < failures {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::OK
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { uri, received }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `count` posts arrived.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..150 {
            if self.received().len() >= count {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{count} logout posts expected, got {}",
            self.received().len()
        );
    }
}

fn rp_client(id: &str, uri: Option<&str>) -> ClientSpec {
    let spec = ClientSpec::confidential(id)
        .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .scope("openid read")
        .skip_consent();
    match uri {
        Some(uri) => spec.backchannel_logout_uri(uri),
        None => spec,
    }
}

/// Signs in at `client` in `browser` (signing in first if the browser has no session) and returns the
/// tokens of the code flow.
async fn sign_in(app: &TestIssuer, browser: &mut Browser, client: &TestClient) -> Value {
    let (verifier, challenge) = pkce();
    let url = app.authorize_url(&client.id, &challenge, &[("scope", "openid")]);
    let mut page = browser.get(&url).await;
    if page.is_login_form() {
        page = browser.sign_in(&page, "alice", PASSWORD).await;
    }
    if page.is_consent_form() {
        page = browser.decide(&page, "approve").await;
    }
    let code = browser.code_of(&page);
    let response = app
        .post_token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// RP-initiated logout with the browser's own ID token as the hint: ends its session at once.
async fn log_out(app: &TestIssuer, browser: &mut Browser, id_token: &str) {
    let mut url = url::Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", id_token);
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
}

async fn jwks(app: &TestIssuer) -> Value {
    app.http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn logout_tells_each_client_of_the_session_with_a_logout_token(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let rp = RelyingParty::start(0).await;
    let told = app.register(rp_client("told", Some(&rp.uri))).await;
    let silent = app.register(rp_client("silent", None)).await;
    app.user("alice").await;
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["backchannel_logout_supported"], true);
    assert_eq!(metadata["backchannel_logout_session_supported"], true);
    // Another browser's session at the same client is not told.
    let mut other = app.browser();
    sign_in(&app, &mut other, &told).await;
    // One session, ID tokens to both clients.
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &told).await;
    sign_in(&app, &mut browser, &silent).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let id_claims = claims(id_token);
    log_out(&app, &mut browser, id_token).await;
    let received = rp.wait_for(1).await;
    // Only the one client with a back channel, once.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rp.received().len(), 1, "one logout token: {received:?}");
    let (header, logout) = verify_rs256(&received[0], &jwks(&app).await)
        .expect("signed by a published RSA key, checked by RustCrypto");
    assert_eq!(header["typ"], "logout+jwt");
    assert!(header["kid"].is_string());
    assert_eq!(logout["iss"], app.issuer());
    assert_eq!(logout["aud"], "told");
    assert_eq!(logout["sub"], id_claims["sub"]);
    assert_eq!(logout["sid"], id_claims["sid"]);
    assert!(logout["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    let iat = logout["iat"].as_i64().unwrap();
    assert!(logout["exp"].as_i64().unwrap() <= iat + 120);
    assert!(logout.get("nonce").is_none());
    assert_eq!(
        logout["events"],
        json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
    );
    // The grant lives on (offline access), but its ID tokens no longer name the ended session.
    let refreshed: Value = app
        .post_token(
            &told,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let new_id = claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(new_id["sub"], id_claims["sub"]);
    assert!(new_id.get("sid").is_none(), "{new_id}");
}

async fn a_failed_delivery_is_tried_again_with_the_same_token(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let rp = RelyingParty::start(1).await;
    let client = app.register(rp_client("flaky", Some(&rp.uri))).await;
    app.user("alice").await;
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &client).await;
    log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    rp.wait_for(1).await;
    // The retry is due about a second later (the server's clock).
    app.clock.advance(2);
    let received = rp.wait_for(2).await;
    assert_eq!(received[0], received[1], "the same token is sent again");
    // Delivered: nothing waits any more.
    for _ in 0..50 {
        if app.state.store.pending_logouts().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.state.store.pending_logouts().await.unwrap(), 0);
}

async fn the_operators_commands_tell_the_clients_too(backend: Backend) {
    let app = TestIssuer::spawn(backend).await;
    let rp = RelyingParty::start(0).await;
    let client = app.register(rp_client("app", Some(&rp.uri))).await;
    let user_id = UserId::from_trusted(app.user("alice").await);
    // `consent revoke`: this client, for the user's session (which goes on).
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &client).await;
    let sid = claims(tokens["id_token"].as_str().unwrap())["sid"].clone();
    app.state
        .store
        .withdraw_consent(&user_id, &ClientId::from_trusted("app"), app.clock.now())
        .await
        .unwrap();
    let received = rp.wait_for(1).await;
    assert_eq!(claims(&received[0])["sid"], sid);
    // `user set-password`: every session of the user.
    let mut second = app.browser();
    let tokens = sign_in(&app, &mut second, &client).await;
    let second_sid = claims(tokens["id_token"].as_str().unwrap())["sid"].clone();
    app.state
        .store
        .set_password("alice", "a-new-hash-never-checked-here", app.clock.now())
        .await
        .unwrap();
    let received = rp.wait_for(3).await;
    let sids: Vec<Value> = received[1..]
        .iter()
        .map(|token| claims(token)["sid"].clone())
        .collect();
    assert!(
        sids.contains(&sid) && sids.contains(&second_sid),
        "{sids:?}"
    );
    // `client delete` tells nobody; `user delete` of a user without sessions neither.
    assert!(app.state.store.delete_user("alice").await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rp.received().len(), 3);
}

async fn a_black_hole_neither_delays_logouts_nor_grows_the_queue(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| serve.backchannel_max_pending = 5).await;
    // Accepts connections and never answers, until released; counts connections open at once.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/logout", hole.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let (open, most) = (open.clone(), most.clone());
        async move {
            loop {
                let Ok((socket, _)) = hole.accept().await else {
                    return;
                };
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let (open, mut released) = (open.clone(), released.clone());
                tokio::spawn(async move {
                    let _ = released.wait_for(|done| *done).await;
                    drop(socket);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
    });
    let client = app.register(rp_client("hole", Some(&uri))).await;
    app.user("alice").await;
    // Twelve sessions end while the hole holds every delivery: each logout answers (were one waiting for
    // its delivery, it would wait for the release that comes only after all of them).
    for _ in 0..12 {
        let mut browser = app.browser();
        let tokens = sign_in(&app, &mut browser, &client).await;
        log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    }
    let pending = app.state.store.pending_logouts().await.unwrap();
    assert!(pending <= 5, "the queue is bounded: {pending}");
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "at most two deliveries in flight for one client"
    );
    release.send(true).unwrap();
}

async fn a_self_registered_client_is_never_posted_to_at_a_special_use_address(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = auth_server::clients::policy::RegistrationPolicy::Open;
    })
    .await;
    let rp = RelyingParty::start(0).await;
    app.user("alice").await;
    // Registration accepts a loopback http URI (a developer's machine) ...
    let registered: Value = app
        .http
        .post(app.url("/register"))
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "scope": "openid",
            "backchannel_logout_uri": rp.uri,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        registered["backchannel_logout_uri"],
        rp.uri.as_str(),
        "{registered}"
    );
    let client = TestClient {
        id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().map(str::to_owned),
    };
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &client).await;
    log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    // ... but a stranger's URI is never posted to at a special-use address (127.0.0.1 here).
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(
        rp.received().is_empty(),
        "nothing reaches a loopback address"
    );
    // The same URI registered by the operator is the operator's choice, and is called.
    let operator = app.register(rp_client("operator-app", Some(&rp.uri))).await;
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &operator).await;
    log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    rp.wait_for(1).await;
}

async fn self_registered_clients_fill_at_most_half_of_the_queue(backend: Backend) {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.registration = auth_server::clients::policy::RegistrationPolicy::Open;
        serve.backchannel_max_pending = 4;
    })
    .await;
    app.user("alice").await;
    // A stranger's client whose back channel is never reached (a loopback address): its logouts wait.
    let registered: Value = app
        .http
        .post(app.url("/register"))
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "scope": "openid",
            "backchannel_logout_uri": "http://127.0.0.1:9/never",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stranger = TestClient {
        id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().map(str::to_owned),
    };
    for _ in 0..4 {
        let mut browser = app.browser();
        let tokens = sign_in(&app, &mut browser, &stranger).await;
        log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    }
    assert_eq!(
        app.state.store.pending_logouts().await.unwrap(),
        2,
        "strangers fill half of a queue of 4"
    );
    // The operator's client still gets its place.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/bcl", hole.local_addr().unwrap());
    let operator = app.register(rp_client("operator-app", Some(&uri))).await;
    let mut browser = app.browser();
    let tokens = sign_in(&app, &mut browser, &operator).await;
    log_out(&app, &mut browser, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(app.state.store.pending_logouts().await.unwrap(), 3);
    drop(hole);
}
