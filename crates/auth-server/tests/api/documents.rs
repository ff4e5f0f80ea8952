//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document) over real sockets: a client
//! whose `client_id` is its document's URL signs a user in without registering; documents that are slow,
//! huge, redirecting, mismatched or otherwise invalid fail closed (a page at /authorize, `invalid_client` at
//! the JSON endpoints) and are never cached; a special-use address is never fetched without the test flag;
//! a source's fetches are limited while another source is served; and an id the operator deleted is refused
//! for a day.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::clock::Clock;
use auth_core::id::ClientId;
use testkit::{Backend, ClientSpec, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    a_document_client_signs_a_user_in_and_its_document_is_cached,
    bad_documents_fail_closed_and_are_never_cached,
    fetches_are_limited_per_source_and_a_deleted_client_waits_a_day,
);

/// A web server of documents on 127.0.0.1:0; each answer counts as one fetch.
struct Documents {
    base: String,
    fetches: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Documents {
    async fn start() -> Self {
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .fallback(serve_document)
            .with_state((base.clone(), fetches.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base,
            fetches,
            _task: task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Document App",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": "read",
    })
}

/// `/good…` (any query) is a valid document for its own URL; the other paths are each one way to be bad.
async fn serve_document(
    State((base, fetches)): State<(String, Arc<AtomicUsize>)>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    fetches.fetch_add(1, Ordering::SeqCst);
    let url = format!("{base}{uri}");
    let json = |value: Value| {
        ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(value)).into_response()
    };
    match uri.path() {
        "/good" => json(document(&url)),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(8)).await;
            json(document(&url))
        }
        "/huge" => {
            let mut body = document(&url);
            body["client_uri"] = json!(format!("https://app.example/{}", "a".repeat(100_000)));
            json(body)
        }
        "/redirect" => (
            AxumStatus::FOUND,
            [(header::LOCATION, format!("{base}/good"))],
        )
            .into_response(),
        "/mismatch" => json(document(&format!("{base}/good"))),
        "/secret" => {
            let mut body = document(&url);
            body["client_secret"] = json!("a secret the document should never hold");
            json(body)
        }
        "/basic" => {
            let mut body = document(&url);
            body["token_endpoint_auth_method"] = json!("client_secret_basic");
            json(body)
        }
        "/evil-redirect" => {
            let mut body = document(&url);
            body["redirect_uris"] = json!(["http://evil.example/cb"]);
            json(body)
        }
        "/array" => json(json!([document(&url)])),
        "/text" => (
            [(header::CONTENT_TYPE, "text/plain")],
            document(&url).to_string(),
        )
            .into_response(),
        _ => AxumStatus::NOT_FOUND.into_response(),
    }
}

async fn issuer(backend: Backend, loopback: bool) -> TestIssuer {
    let app = TestIssuer::spawn_with(backend, |serve| {
        serve.client_id_metadata_documents = true;
        serve.insecure_loopback_metadata = loopback;
    })
    .await;
    // The scope documents ask for exists on this server.
    app.register(ClientSpec::machine().scope("read")).await;
    app.user("alice").await;
    app
}

/// The status of /authorize for `client_id`, and the status and error of /token.
async fn refused_everywhere(app: &TestIssuer, client_id: &str) -> (StatusCode, StatusCode, Value) {
    let (_, challenge) = testkit::jwt::pkce();
    let page = app
        .http
        .get(app.authorize_url(client_id, &challenge, &[("scope", "read")]))
        .send()
        .await
        .unwrap();
    let page_status = page.status();
    assert!(
        page.headers().get(header::LOCATION.as_str()).is_none(),
        "never a redirect for an unusable document"
    );
    let token = app
        .post_token(
            &TestClient {
                id: client_id.to_owned(),
                secret: None,
            },
            &[
                ("grant_type", "authorization_code"),
                ("code", "made-up"),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &"v".repeat(43)),
            ],
        )
        .await;
    let token_status = token.status();
    (page_status, token_status, token.json().await.unwrap())
}

async fn a_document_client_signs_a_user_in_and_its_document_is_cached(backend: Backend) {
    let documents = Documents::start().await;
    let app = issuer(backend, true).await;
    assert_eq!(
        app.metadata().await["client_id_metadata_document_supported"],
        true
    );
    let client_id = documents.url("/good");
    let (verifier, challenge) = testkit::jwt::pkce();
    let url = app.authorize_url(&client_id, &challenge, &[("scope", "read")]);
    let mut browser = app.browser();
    let login = browser.open_login(&url).await;
    let consent = browser.sign_in(&login, "alice", testkit::PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    for said in [
        "registered by its developer, not by the operator of this server",
        "Its description comes from <strong>127.0.0.1</strong>",
    ] {
        assert!(consent.html.contains(said), "{said}: {}", consent.html);
    }
    let approved = browser.decide(&consent, "approve").await;
    let code = browser.code_of(&approved);
    let client = TestClient {
        id: client_id.clone(),
        secret: None,
    };
    let tokens = app
        .post_token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    let claims = testkit::jwt::claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client_id.as_str());
    // Fetched once: the login, consent and token requests were served from the cache (max-age=3600).
    assert_eq!(documents.fetches(), 1);
    let stored = app
        .state
        .store
        .find_client(&ClientId::parse(&client_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.registered.as_str(), "document");
    assert!(stored.is_public);
    // Consent is never remembered for it.
    let again = browser.get(&url).await;
    assert!(again.is_consent_form(), "{}", again.html);
    // An hour on, the document is fetched again.
    app.clock.advance(3_601);
    browser.get(&url).await;
    assert_eq!(documents.fetches(), 2);
}

async fn bad_documents_fail_closed_and_are_never_cached(backend: Backend) {
    let documents = Documents::start().await;
    let app = issuer(backend.clone(), true).await;
    for path in [
        "/slow",
        "/huge",
        "/redirect",
        "/mismatch",
        "/secret",
        "/basic",
        "/evil-redirect",
        "/array",
        "/text",
        "/missing",
    ] {
        let before = documents.fetches();
        let client_id = documents.url(path);
        let (page, token, error) = refused_everywhere(&app, &client_id).await;
        assert_eq!(page, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(token, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error["error"], "invalid_client", "{path}: {error}");
        assert_eq!(
            documents.fetches(),
            before + 2,
            "{path}: a failure is never cached"
        );
        assert_eq!(
            app.count(&format!(
                "select count(*) from client where client_id = '{client_id}'"
            ))
            .await,
            0,
            "{path}: nothing stored"
        );
        // Past this source's fetches of the minute (two a document: /authorize and /token).
        app.clock.advance(61);
    }
    // The redirect was not followed: /good was never asked for.
    let good = app
        .count("select count(*) from client where registered = 'document'")
        .await;
    assert_eq!(good, 0);

    // Without the test flag, loopback documents are never fetched: over http the id is no document URL at
    // all; over https the address (written, or resolved from `localhost`) is refused before connecting.
    let strict = issuer(backend, false).await;
    let port = documents.base.rsplit(':').next().unwrap().to_owned();
    let before = documents.fetches();
    for (client_id, why) in [
        (documents.url("/good"), "client authentication failed"),
        (
            format!("https://127.0.0.1:{port}/good"),
            "is a special-use address",
        ),
        (
            format!("https://[::1]:{port}/good"),
            "is a special-use address",
        ),
        (
            format!("https://localhost:{port}/good"),
            "resolves only to special-use addresses",
        ),
    ] {
        let (page, token, error) = refused_everywhere(&strict, &client_id).await;
        assert_eq!(page, StatusCode::BAD_REQUEST, "{client_id}");
        assert_eq!(token, StatusCode::UNAUTHORIZED, "{client_id}");
        let description = error["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(why), "{client_id}: {error}");
    }
    assert_eq!(
        documents.fetches(),
        before,
        "a special-use address was reached"
    );
}

async fn fetches_are_limited_per_source_and_a_deleted_client_waits_a_day(backend: Backend) {
    let documents = Documents::start().await;
    let app = issuer(backend, true).await;
    let (_, challenge) = testkit::jwt::pkce();
    let open = |http: reqwest::Client, client_id: String| {
        let url = app.authorize_url(&client_id, &challenge, &[("scope", "read")]);
        async move { http.get(url).send().await.unwrap().status() }
    };
    // Twelve documents never seen from one source: ten fetches a minute, then 429.
    let mut statuses = Vec::new();
    for n in 0..12 {
        statuses.push(open(app.http.clone(), documents.url(&format!("/good?n={n}"))).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2
    );
    // A cached document is still served to that source, and another source fetches.
    assert_eq!(
        open(app.http.clone(), documents.url("/good?n=0")).await,
        StatusCode::OK
    );
    // An hour on, every document is stale. With this source's fetches used up again, a client already
    // stored is served as stored (no fetch) while a document never seen waits.
    app.clock.advance(3_601);
    for n in 30..40 {
        assert_eq!(
            open(app.http.clone(), documents.url(&format!("/good?n={n}"))).await,
            StatusCode::OK
        );
    }
    let fetched = documents.fetches();
    assert_eq!(
        open(app.http.clone(), documents.url("/good?n=0")).await,
        StatusCode::OK,
        "a stored client locked out by the fetch limit"
    );
    assert_eq!(documents.fetches(), fetched);
    assert_eq!(
        open(app.http.clone(), documents.url("/good?n=40")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(
        open(
            testkit::http::client_from(other),
            documents.url("/good?n=99")
        )
        .await,
        StatusCode::OK
    );

    // The operator deletes a document's client: refused for a day, then its document registers it again.
    let client_id = documents.url("/good?n=0");
    assert!(
        app.state
            .store
            .delete_client(&ClientId::parse(&client_id).unwrap(), app.clock.now())
            .await
            .unwrap()
    );
    app.clock.advance(61);
    let mut status = StatusCode::OK;
    for _ in 0..50 {
        status = open(app.http.clone(), client_id.clone()).await;
        if status == StatusCode::BAD_REQUEST {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "refused after client delete"
    );
    app.clock.advance(86_400);
    assert_eq!(open(app.http.clone(), client_id).await, StatusCode::OK);
}
