//! Hostile clients: a flood of bad secrets, and a client trickling its headers. The server
//! throttles or cuts them off and keeps serving everyone else. Both are about the HTTP layer and the
//! in-memory throttle, so they run on SQLite only.

use reqwest::StatusCode;

use auth_core::wire::GrantType;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use testkit::{Backend, ClientSpec, TestIssuer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_secrets_are_throttled_and_others_keep_being_served() {
    const REQUESTS: usize = 10_000;
    const WORKERS: usize = 32;
    let app = TestIssuer::spawn(Backend::Sqlite).await;
    let victim = app.register(ClientSpec::machine()).await;
    let other = app
        .register(
            ClientSpec::confidential("other")
                .grants([GrantType::ClientCredentials])
                .scope("read"),
        )
        .await;
    let wrong = victim.with_secret("guess");
    let url = app.url("/token");
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (http, url, wrong, answered) = (
            app.http.clone(),
            url.clone(),
            wrong.clone(),
            answered.clone(),
        );
        workers.spawn(async move {
            let mut statuses = Vec::with_capacity(REQUESTS / WORKERS);
            for _ in 0..REQUESTS / WORKERS {
                let response = http
                    .post(&url)
                    .basic_auth(&wrong.id, wrong.secret.as_deref())
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                answered.fetch_add(1, Ordering::Relaxed);
                statuses.push(response.status());
            }
            statuses
        });
    }
    // While the flood runs, another client of the same address is served every time: the flood has
    // started before its first request and not finished after its last.
    while answered.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        let response = app
            .post_token(&other, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let during = answered.load(Ordering::Relaxed);
    assert!(
        during < REQUESTS / WORKERS * WORKERS,
        "the 50 requests were served during the flood ({during} answered)"
    );
    let mut statuses = Vec::new();
    while let Some(worker) = workers.join_next().await {
        statuses.extend(worker.unwrap());
    }
    let unauthorized = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized + throttled, statuses.len(), "only 401 and 429");
    // Ten failures open the throttle; requests already past the check when it closed add at most one
    // per worker. Every guess after that is refused without a comparison.
    assert!(
        (10..=10 + WORKERS).contains(&unauthorized),
        "{unauthorized} guesses were compared"
    );
    assert!(throttled >= REQUESTS / WORKERS * WORKERS - 10 - WORKERS);
    // The right secret waits for the window too (the guesser may have it); the other client does not.
    let response = app
        .post_token(&victim, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let response = app
        .post_token(&other, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_off_at_the_deadline_while_others_are_served() {
    let app =
        TestIssuer::spawn_with(Backend::Sqlite, |serve| serve.header_read_timeout_ms = 500).await;
    let trickle =
        service_kit::testing::trickle_headers(app.address, "POST /token HTTP/1.1", async {
            let response = app.http.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        })
        .await
        .unwrap();
    assert!(trickle.closed, "still open after 10 s: {trickle:?}");
    // At the configured 500 ms deadline, not at some other limit.
    assert!(
        trickle.closed_after < std::time::Duration::from_secs(3),
        "{trickle:?}"
    );
    // hyper may answer 408 before closing; the request never reached a handler.
    assert!(trickle.reached_no_handler(), "{trickle:?}");
}
