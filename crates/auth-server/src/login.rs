//! Sign-in: the password check behind the login form, the throttle on failed attempts, and the login
//! sessions a browser keeps. The rules that slow down password guessing live here.

use std::net::IpAddr;

use auth_core::secret::{OpaqueToken, SecretDigest};

use crate::error::Result;
use crate::state::AppState;
use crate::throttle::{LOGIN_FAILURES_PER_ADDRESS, LOGIN_FAILURES_PER_USER};

/// A signed-in user, as a browser session knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    /// When the user last typed their password (OpenID Connect's `auth_time`).
    pub auth_time: i64,
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
    /// Too many failures: try again after this many seconds.
    Throttled { retry_after: i64 },
}

/// Checks a username and password typed into the login form for `client_id`, from `source`.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    source: IpAddr,
    client_id: &str,
) -> Result<SignIn> {
    let now = state.clock.now();
    let user_key = format!("user:{username}");
    let address_key = format!("addr:{source}");
    if let Err(retry_after) = state
        .throttle
        .check(&user_key, LOGIN_FAILURES_PER_USER, now)
        .and_then(|()| {
            state
                .throttle
                .check(&address_key, LOGIN_FAILURES_PER_ADDRESS, now)
        })
    {
        state
            .metrics
            .increment("auth_login_attempts_total", &[("result", "throttled")]);
        tracing::warn!(target: "audit", event = "login", user = ?username, client_id = ?client_id, source = %source, outcome = "throttled", "login throttled");
        return Ok(SignIn::Throttled { retry_after });
    }
    let user = state.store.find_user_by_username(username).await?;
    // argon2 is CPU-heavy: run it on the blocking pool. An unknown user costs one dummy verification, so a
    // wrong username and a wrong password take the same time and get the same answer.
    let hasher = state.hasher.clone();
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => hasher.verify(&password, &stored).unwrap_or(false),
        None => hasher.verify_unknown_user(&password),
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        state.throttle.record_failure(&user_key, now);
        state.throttle.record_failure(&address_key, now);
        state
            .metrics
            .increment("auth_login_attempts_total", &[("result", "failure")]);
        tracing::warn!(target: "audit", event = "login", user = ?username, client_id = ?client_id, source = %source, outcome = "failure", "login failed");
        return Ok(SignIn::Rejected);
    };
    state.throttle.reset(&user_key);
    state
        .metrics
        .increment("auth_login_attempts_total", &[("result", "success")]);
    tracing::info!(target: "audit", event = "login", user = ?user.username, client_id = ?client_id, source = %source, outcome = "success", "login succeeded");
    let cookie = OpaqueToken::try_generate()?;
    state
        .store
        .create_session(
            &cookie.digest(),
            &user.user_id,
            now,
            now + state.settings.session_ttl,
        )
        .await?;
    Ok(SignIn::SignedIn {
        session: Session {
            user_id: user.user_id,
            username: user.username,
            auth_time: now,
        },
        cookie,
    })
}

/// The session a session cookie names, when it is live and its user still exists.
pub async fn current_session(state: &AppState, cookie: Option<&str>) -> Result<Option<Session>> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let Some((user_id, auth_time)) = state
        .store
        .find_session(&SecretDigest::of(cookie), state.clock.now())
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = state.store.find_user(&user_id).await? else {
        return Ok(None);
    };
    Ok(Some(Session {
        user_id: user.user_id,
        username: user.username,
        auth_time,
    }))
}
