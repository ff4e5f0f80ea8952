//! Sign-in: the password check behind the login form, the rules that slow down password guessing, and the
//! login sessions a browser keeps.
//!
//! The rules: an attempt is counted before its check (`crate::protection::throttle`: 5 per (username, source), 20 per
//! source, per minute), so a concurrent burst gets no more checks than the limit; a check waits at most 2 s
//! for one of the `--max-password-checks` slots (`crate::protection::password_checks`), else the login answers 503;
//! a wrong username costs the same argon2 work as a wrong password and gets the same answer.

use auth_core::id::{UnixTime, UserId};
use auth_core::secret::{OpaqueToken, SecretDigest};
use service_kit::telemetry::untrusted;

use crate::error::Result;
use crate::protection::password_checks::MAX_WAIT;
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::StoredSession;

/// Longest username `user create` accepts (bytes). A longer one, or one with a control character, cannot
/// exist, and is refused without a database lookup.
pub const MAX_USERNAME_BYTES: usize = 255;

/// A signed-in user, as a browser session knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub username: String,
    /// When the user last typed their password (OpenID Connect's `auth_time`).
    pub auth_time: UnixTime,
    /// The session's public id (the ID token's `sid`), never its cookie.
    pub sid: Option<String>,
}

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignIn {
    /// The password was right: a new session, and the cookie value that names it (shown once).
    SignedIn {
        session: Session,
        cookie: OpaqueToken,
    },
    /// Wrong username or wrong password: one answer for both (RFC 9700 §4.15, no user enumeration).
    Rejected,
    /// Too many failures from this source (for this username): try again after this many seconds.
    Throttled { retry_after: i64 },
    /// Every password-check slot stayed busy for 2 s: try again in a second.
    Busy,
}

/// Could `username` be a registered name? `user create` refuses control characters and long names.
pub fn is_possible_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && !username.chars().any(char::is_control)
}

/// Checks a username and password typed into the login form for `client_id`, from `source`.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    source: RequestSource,
    client_id: &str,
) -> Result<SignIn> {
    let now = state.clock.now();
    let audit = |outcome: &'static str| {
        state
            .metrics
            .increment("auth_login_attempts_total", &[("result", outcome)]);
        tracing::warn!(target: "audit", event = "login", user = &*untrusted(username), client_id = &*untrusted(client_id), source = %source.address, outcome, "login refused");
    };
    let attempt = match state.throttle.count_login(username, source.key, now) {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            audit("throttled");
            return Ok(SignIn::Throttled { retry_after });
        }
    };
    let user = if is_possible_username(username) {
        match state.store.find_user_by_username(username).await {
            Ok(user) => user,
            Err(error) => {
                state.throttle.give_back(attempt);
                return Err(error.into());
            }
        }
    } else {
        None
    };
    let Some(check) = state.password_checks.acquire(source.key, MAX_WAIT).await else {
        // The check never ran: the attempt is not a failure.
        state.throttle.give_back(attempt);
        audit("busy");
        return Ok(SignIn::Busy);
    };
    // argon2 is CPU-heavy: it runs on the blocking pool, holding its slot. An unknown user costs one
    // dummy verification, so a wrong username and a wrong password take the same time.
    let hasher = state.hasher.clone();
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || {
        let verified = match stored {
            Some(stored) => hasher.verify(&password, &stored).unwrap_or(false),
            None => hasher.verify_unknown_user(&password),
        };
        drop(check);
        verified
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        audit("failure");
        return Ok(SignIn::Rejected);
    };
    state.throttle.give_back(attempt);
    state.throttle.forgive_login(username, source.key);
    state
        .metrics
        .increment("auth_login_attempts_total", &[("result", "success")]);
    let cookie = OpaqueToken::try_generate()?;
    let sid = uuid::Uuid::new_v4().to_string();
    let created = state
        .store
        .create_session(
            &StoredSession {
                digest: cookie.digest(),
                user_id: user.user_id.clone(),
                sid: Some(sid.clone()),
                auth_time: UnixTime(now),
                expires_at: now + state.settings.session_ttl,
            },
            &user.password_hash,
        )
        .await?;
    if !created {
        // The password was changed (or the user deleted) while it was being checked: the old one no longer
        // signs in, even by a moment.
        audit("failure");
        return Ok(SignIn::Rejected);
    }
    tracing::info!(target: "audit", event = "login", user = &*untrusted(&user.username), client_id = &*untrusted(client_id), source = %source.address, outcome = "success", "login succeeded");
    Ok(SignIn::SignedIn {
        session: Session {
            user_id: user.user_id,
            username: user.username,
            auth_time: UnixTime(now),
            sid: Some(sid),
        },
        cookie,
    })
}

/// The session a session cookie names, when it is live and its user still exists.
pub async fn current_session(state: &AppState, cookie: Option<&str>) -> Result<Option<Session>> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let Some(stored) = state
        .store
        .find_session(&SecretDigest::of(cookie), state.clock.now())
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = state.store.find_user(&stored.user_id).await? else {
        return Ok(None);
    };
    Ok(Some(Session {
        user_id: user.user_id,
        username: user.username,
        auth_time: stored.auth_time,
        sid: stored.sid,
    }))
}

/// Ends the session a cookie names (sign-out); false when there was none. The same transaction queues a
/// back-channel logout for each client that got an ID token in it (`crate::backchannel`), sent at once.
pub async fn end_session(state: &AppState, cookie: &str) -> Result<bool> {
    let ended = state.store.end_session(&SecretDigest::of(cookie)).await?;
    if ended {
        state.backchannel.wake();
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_exist_are_told_apart_without_a_lookup() {
        assert!(is_possible_username("alice"));
        assert!(is_possible_username("émile o'brien"));
        assert!(!is_possible_username(""));
        assert!(!is_possible_username("nul\0byte"));
        assert!(!is_possible_username("new\nline"));
        assert!(!is_possible_username(&"a".repeat(256)));
    }
}
