//! Revocation against racing requests. Each round sends real concurrent HTTP requests released together by a
//! barrier, at one server or split across two replicas of one database; then it checks the end state, which
//! does not depend on who won: once a family is revoked, no access token of it is active and no token comes
//! out of it (RFC 9700 §4.14.2, RFC 6749 §4.1.2, RFC 7009 §2.1).

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

use testkit::browser::Browser;
use testkit::jwt::pkce;
use testkit::{Backend, ClientSpec, REDIRECT_URI, TestClient, TestIssuer, backend_tests};

backend_tests!(
    revoke_racing_a_refresh_leaves_nothing_of_the_family_active,
    reuse_racing_a_thief_who_keeps_rotating_leaves_the_thief_nothing,
    concurrent_exchanges_of_one_code_leave_nothing_active,
);

/// Rounds per test: half at one server, half across two replicas.
const ROUNDS: usize = 16;

/// Two replicas of one database, a client that may introspect its own refresh tokens, and a browser signed
/// in at the first replica (so each new code costs one request, not a password check).
struct Race {
    a: TestIssuer,
    b: TestIssuer,
    client: TestClient,
    browser: Browser,
}

/// What a round saw come out of the family: every token that must end dead.
#[derive(Default)]
struct Issued {
    access: Vec<String>,
    refresh: Vec<String>,
}

impl Issued {
    fn keep(&mut self, body: &Value) {
        if let Some(access) = body["access_token"].as_str() {
            self.access.push(access.to_owned());
        }
        if let Some(refresh) = body["refresh_token"].as_str() {
            self.refresh.push(refresh.to_owned());
        }
    }
}

impl Race {
    async fn start(backend: Backend) -> Self {
        let a = TestIssuer::spawn(backend).await;
        let b = a.replica().await;
        let client = a
            .register(ClientSpec::web().skip_consent().introspection())
            .await;
        a.user("alice").await;
        let mut browser = a.browser();
        let (_, challenge) = pkce();
        browser
            .login_and_approve(
                &a.authorize_url(&client.id, &challenge, &[]),
                "alice",
                testkit::PASSWORD,
            )
            .await;
        Self {
            a,
            b,
            client,
            browser,
        }
    }

    /// The servers of round `round`: the same one twice, or the two replicas.
    fn servers(&self, round: usize) -> (&TestIssuer, &TestIssuer) {
        if round.is_multiple_of(2) {
            (&self.a, &self.a)
        } else {
            (&self.a, &self.b)
        }
    }

    /// A new authorization code (the browser's session skips login and consent), and its verifier.
    async fn code(&mut self) -> (String, String) {
        let (verifier, challenge) = pkce();
        let page = self
            .browser
            .get(&self.a.authorize_url(&self.client.id, &challenge, &[]))
            .await;
        (self.browser.code_of(&page), verifier)
    }

    /// A new family: its first access and refresh tokens.
    async fn family(&mut self) -> Value {
        let (code, verifier) = self.code().await;
        let response = self
            .a
            .post_token(&self.client, &exchange_form(&code, &verifier))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A refresh request, built to be sent later.
    fn refresh_request(&self, at: &TestIssuer, token: &str) -> reqwest::RequestBuilder {
        at.http
            .post(at.url("/token"))
            .basic_auth(&self.client.id, self.client.secret.as_deref())
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
    }

    /// The end state: no access token of the family is active at either replica, no refresh token of it is
    /// active or usable.
    async fn assert_dead(&self, round: usize, issued: &Issued) {
        for access in &issued.access {
            for server in [&self.a, &self.b] {
                assert_eq!(
                    server.introspect(access).await,
                    serde_json::json!({ "active": false }),
                    "round {round}: an access token of a revoked family is active at {}",
                    server.base
                );
            }
        }
        for refresh in &issued.refresh {
            assert_eq!(
                self.b.introspect_as(&self.client, refresh).await["active"],
                false,
                "round {round}: a refresh token of a revoked family is active"
            );
            let (status, body) = answer(self.refresh_request(&self.a, refresh)).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant")),
                "round {round}: a token came out of a revoked family"
            );
        }
    }
}

fn exchange_form<'a>(code: &'a str, verifier: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    // /revoke answers 200 with an empty body.
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Sends `requests` at once (each task waits at one barrier) and returns the answers in order.
async fn together(requests: Vec<reqwest::RequestBuilder>) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                answer(request).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// /revoke of the family's refresh token and a refresh with it, at the same moment: whichever commits first,
/// the family ends revoked, and a rotation that won mints tokens that die with it.
async fn revoke_racing_a_refresh_leaves_nothing_of_the_family_active(backend: Backend) {
    let mut race = Race::start(backend).await;
    let (mut rotated_first, mut revoked_first) = (0, 0);
    for round in 0..ROUNDS {
        let family = race.family().await;
        let mut issued = Issued::default();
        issued.keep(&family);
        let refresh = family["refresh_token"].as_str().unwrap();
        let (one, other) = race.servers(round);
        let revoke = other
            .http
            .post(other.url("/revoke"))
            .basic_auth(&race.client.id, race.client.secret.as_deref())
            .form(&[("token", refresh), ("token_type_hint", "refresh_token")]);
        let answers = together(vec![race.refresh_request(one, refresh), revoke]).await;
        let (status, body) = &answers[0];
        match *status {
            StatusCode::OK => rotated_first += 1,
            StatusCode::BAD_REQUEST => {
                assert_eq!(body["error"], "invalid_grant", "round {round}");
                revoked_first += 1;
            }
            other => panic!("round {round}: refresh answered {other} {body}"),
        }
        assert_eq!(answers[1].0, StatusCode::OK, "round {round}: /revoke");
        issued.keep(body);
        race.assert_dead(round, &issued).await;
    }
    eprintln!("rotation first {rotated_first}, revocation first {revoked_first}");
}

/// A thief holding a stolen refresh token rotates it as fast as it can while the rightful client presents
/// the token the thief already rotated away (reuse, which revokes the family). Every access token the thief
/// got, including one minted while the revocation ran, ends inactive, and its last refresh token is dead.
async fn reuse_racing_a_thief_who_keeps_rotating_leaves_the_thief_nothing(backend: Backend) {
    let mut race = Race::start(backend).await;
    for round in 0..ROUNDS {
        let family = race.family().await;
        let mut issued = Issued::default();
        issued.keep(&family);
        let stolen = family["refresh_token"].as_str().unwrap().to_owned();
        let (victim_at, thief_at) = race.servers(round);
        // The thief's first rotation: the victim's token is now a used one.
        let (status, rotated) = answer(race.refresh_request(thief_at, &stolen)).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {rotated}");
        issued.keep(&rotated);
        let mut thief_token = rotated["refresh_token"].as_str().unwrap().to_owned();
        let barrier = Arc::new(Barrier::new(2));
        let reuse = race.refresh_request(victim_at, &stolen);
        let victim = {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                answer(reuse).await
            })
        };
        barrier.wait().await;
        // The thief's chain: rotate until refused (at most 50 links).
        for _ in 0..50 {
            let (status, body) = answer(race.refresh_request(thief_at, &thief_token)).await;
            if status != StatusCode::OK {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (StatusCode::BAD_REQUEST, Some("invalid_grant")),
                    "round {round}"
                );
                break;
            }
            issued.keep(&body);
            thief_token = body["refresh_token"].as_str().unwrap().to_owned();
        }
        let (status, body) = victim.await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "round {round}: the reused token"
        );
        race.assert_dead(round, &issued).await;
    }
}

/// Four exchanges of one code at once: at most one gets tokens (RFC 6749 §4.1.2), the others are replays,
/// which revoke what the code produced; so nothing of the family stays active.
async fn concurrent_exchanges_of_one_code_leave_nothing_active(backend: Backend) {
    let mut race = Race::start(backend).await;
    for round in 0..ROUNDS {
        let (code, verifier) = race.code().await;
        let (one, other) = race.servers(round);
        let requests = [one, other, one, other]
            .into_iter()
            .map(|server| {
                server
                    .http
                    .post(server.url("/token"))
                    .basic_auth(&race.client.id, race.client.secret.as_deref())
                    .form(&exchange_form(&code, &verifier))
            })
            .collect();
        let answers = together(requests).await;
        let mut issued = Issued::default();
        let mut winners = 0;
        for (status, body) in &answers {
            match *status {
                StatusCode::OK => {
                    winners += 1;
                    issued.keep(body);
                }
                StatusCode::BAD_REQUEST => {
                    assert_eq!(body["error"], "invalid_grant", "round {round}")
                }
                other => panic!("round {round}: {other} {body}"),
            }
        }
        assert!(winners <= 1, "round {round}: {answers:?}");
        race.assert_dead(round, &issued).await;
    }
}
