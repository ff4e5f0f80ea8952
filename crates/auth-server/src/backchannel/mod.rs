//! OpenID Connect Back-Channel Logout 1.0: when a session ends, every client that got an ID token in it and
//! registered a `backchannel_logout_uri` is told, server to server, with a signed logout token (§2.4).
//!
//! The transaction that ends a session queues the logouts (the store: bounded in all and per client,
//! beyond that dropped and audited), so no response waits for a client. Each `serve` replica runs
//! [`deliver`]: it claims due rows (one replica per row), mints the token at the first try and keeps it,
//! and POSTs it (§2.5) with 5 s for the whole exchange, never following a redirect and reading at most
//! 4 KiB of the answer. 200 or 204 is delivered; anything else is tried again about 1 s and then 5 s later,
//! three tries in all, each audited. At most 16 deliveries run at once per replica, at most 2 for one
//! client, so a dead or slow client holds only its own share. Only a client's registered URI is ever
//! called; for a self-registered client, never at a special-use address (the document fetch's rule).

use std::time::Duration;

use auth_core::id_token::{LogoutTokenClaims, issue_logout_token};
use auth_core::keys::SigningAlgorithm;
use service_kit::telemetry::untrusted;

use crate::clients::document_fetch::literal_permitted;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{ClientRecord, QueuedLogout, Registered};

pub mod deliverer;

pub use deliverer::{Deliverer, MAX_IN_FLIGHT};

/// Tries per logout, all with the same token.
pub const TRIES: i64 = 3;
pub use deliverer::TIMEOUT;
/// The most of a client's answer read.
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// A logout token's lifetime (§2.4 asks for a short one; a retry within it reuses the token).
pub const TOKEN_LIFETIME: i64 = 120;
/// The most one try may take, database work included: well inside a claim's 30 s.
const WHOLE_TRY: Duration = Duration::from_secs(20);
/// How often a replica looks for due logouts when nothing woke it (a CLI command's queue is seen within it).
const POLL: Duration = Duration::from_secs(1);

/// Runs for the life of the replica: claims due logouts and delivers each on its own task.
pub async fn deliver(state: AppState) {
    loop {
        let _ = tokio::time::timeout(POLL, state.backchannel.wake.notified()).await;
        let free = state.backchannel.in_flight.available_permits();
        if free == 0 {
            continue;
        }
        let now = state.clock.now();
        let claimed = match state
            .store
            .claim_logouts(now, i64::try_from(free).unwrap_or(1))
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming back-channel logouts failed; will retry");
                continue;
            }
        };
        for logout in claimed {
            let Ok(permit) = state.backchannel.in_flight.clone().try_acquire_owned() else {
                // Never more than were free: give the row back for the next round.
                let _ = state.store.logout_retry(logout.id, now).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                // Well inside the 30 s claim, however slow the database: a row is never delivered by two
                // replicas because one outlived its claim.
                let id = logout.id;
                if tokio::time::timeout(WHOLE_TRY, deliver_one(&state, logout))
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        id,
                        "a back-channel logout try took too long; another try follows"
                    );
                }
                drop(permit);
            });
        }
    }
}

/// One try of one logout, with its audit line, and what follows it.
async fn deliver_one(state: &AppState, logout: QueuedLogout) {
    let client = match state
        .clients
        .get(state.store.as_ref(), logout.client_id.as_str())
        .await
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "reading a client for back-channel logout failed; will retry");
            let _ = state
                .store
                .logout_retry(logout.id, state.clock.now() + 5)
                .await;
            return;
        }
    };
    let Some((client, uri)) = client.and_then(|client| {
        let uri = client.backchannel_logout_uri.clone()?;
        Some((client, uri))
    }) else {
        // Deleted, or its URI removed, meanwhile: nobody to tell.
        audit(&logout, "dropped", logout.attempts, None);
        let _ = state.store.logout_done(logout.id).await;
        return;
    };
    let token = match &logout.logout_token {
        Some(token) => token.clone(),
        None => match mint(state, &client, &logout) {
            Ok(token) => {
                // Kept before it is sent, so every try sends this one token.
                if let Err(error) = state.store.keep_logout_token(logout.id, &token).await {
                    tracing::warn!(%error, "keeping a logout token failed; will retry");
                    let _ = state
                        .store
                        .logout_retry(logout.id, state.clock.now() + 5)
                        .await;
                    return;
                }
                token
            }
            Err(error) => {
                tracing::warn!(%error, "minting a logout token failed; will retry");
                let _ = state
                    .store
                    .logout_retry(logout.id, state.clock.now() + 5)
                    .await;
                return;
            }
        },
    };
    let outcome = post(state, &client, &uri, &token).await;
    let now = state.clock.now();
    match outcome {
        Ok(()) => {
            audit(&logout, "delivered", logout.attempts, None);
            state.metrics.increment(
                "auth_backchannel_logouts_total",
                &[("outcome", "delivered")],
            );
            let _ = state.store.logout_done(logout.id).await;
        }
        Err(why) => {
            audit(&logout, "failed", logout.attempts, Some(&why));
            state
                .metrics
                .increment("auth_backchannel_logouts_total", &[("outcome", "failed")]);
            if logout.attempts >= TRIES {
                audit(&logout, "dropped", logout.attempts, Some("no more tries"));
                let _ = state.store.logout_done(logout.id).await;
            } else {
                // About 1 s after the first try, 5 s after the second.
                let wait = if logout.attempts <= 1 { 1 } else { 5 };
                let _ = state.store.logout_retry(logout.id, now + wait).await;
            }
        }
    }
}

fn audit(logout: &QueuedLogout, outcome: &'static str, attempt: i64, why: Option<&str>) {
    tracing::info!(target: "audit", event = "backchannel_logout", client_id = &*untrusted(logout.client_id.as_str()), user = logout.user_id.as_str(), sid = logout.sid.as_str(), attempt, outcome, reason = why.unwrap_or(""), "back-channel logout");
}

/// The logout token (§2.4): signed like the client's ID tokens, naming the user and the session as they did.
fn mint(state: &AppState, client: &ClientRecord, logout: &QueuedLogout) -> Result<String> {
    let alg = client
        .id_token_signed_response_alg
        .unwrap_or(SigningAlgorithm::Rs256);
    let signer = state
        .keys
        .snapshot()
        .signer(alg)
        .cloned()
        .ok_or(Error::NoSigningKey)?;
    let now = state.clock.now();
    let claims = LogoutTokenClaims {
        iss: state.settings.issuer.clone(),
        aud: client.client_id.as_str().to_owned(),
        iat: now,
        exp: now + TOKEN_LIFETIME,
        jti: uuid::Uuid::new_v4().to_string(),
        sub: logout.user_id.as_str().to_owned(),
        sid: logout.sid.clone(),
        events: LogoutTokenClaims::events(),
    };
    issue_logout_token(&claims, &signer).map_err(|_| Error::Signing)
}

/// §2.5: `POST` of `logout_token` as a form; 200 or 204 is success. Anything else, a redirect (never
/// followed), or no answer within 5 s is a failure, said in one generic line (the URI is the client's own).
async fn post(
    state: &AppState,
    client: &ClientRecord,
    uri: &str,
    token: &str,
) -> std::result::Result<(), String> {
    let self_registered = client.registered != Registered::Operator;
    let http = if self_registered {
        let parsed = url::Url::parse(uri).map_err(|_| "not a URL".to_owned())?;
        if !literal_permitted(&parsed, state.backchannel.loopback) {
            return Err("a special-use address".into());
        }
        state.backchannel.guarded.as_ref()
    } else {
        state.backchannel.operator.as_ref()
    }
    .ok_or_else(|| "no HTTP client".to_owned())?;
    let exchange = async {
        let mut response = http
            .post(uri)
            .header(reqwest::header::CACHE_CONTROL, "no-cache, no-store")
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|_| "no answer".to_owned())?;
        let status = response.status();
        // Read a little of the answer (a connection left half-read is not reused), never more.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if status == reqwest::StatusCode::OK || status == reqwest::StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(format!("answered {}", status.as_u16()))
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
}
