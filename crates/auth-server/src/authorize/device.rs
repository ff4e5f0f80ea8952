//! The device authorization grant's user side (RFC 8628 §3.1–§3.3): a client on a device without a browser
//! (a CLI, a TV, an SSH session) asks for a device code and a user code; the user types the user code at
//! `/device` on another device, signs in there with the same throttles as at /authorize, and approves or
//! denies on a consent page that names the client and is always shown (§5.4: the page is the one defence
//! against a user code sent by a phisher). The token side (the polling) is `tokens::grants::device_code`.
//!
//! Wrong user codes are throttled per source: a lookup reserves a count before it runs and a code that
//! exists gives it back, so a user who types their code right is never slowed by it (§5.1).

use auth_core::id::FamilyId;
use auth_core::secret::{OpaqueToken, SecretDigest, fill_random};
use auth_core::wire::{ErrorCode, GrantType};
use serde::Serialize;
use service_kit::telemetry::untrusted;

use crate::authorize::login::Session;
use crate::error::{Error, Result, oauth};
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::{Authorization, ClientRecord, DeviceAuthorizationRecord};
use crate::tokens::rules::{requested_scope, resolve_audience};

/// How long a device code lives (seconds).
pub const DEVICE_CODE_LIFETIME: i64 = 600;
/// The first polling interval (seconds).
pub const POLL_INTERVAL: i64 = 5;
/// RFC 8628 §6.1: consonants only (no vowels, so no words), none that look alike.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// The most unexpired device authorizations at once, over every client (a public client needs no credential
/// to make one: bounded per (client, source) and in total, as pushed requests are).
pub const MAX_UNEXPIRED: u64 = 100_000;
/// Letters in a user code (20^8 ≈ 2^34.6 codes; §5.1 with the per-source throttle).
pub const USER_CODE_LENGTH: usize = 8;

/// The answer of the device authorization endpoint (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A user code as it is shown: `XXXX-XXXX`.
pub fn display(user_code: &str) -> String {
    let (first, second) = user_code.split_at(user_code.len().min(USER_CODE_LENGTH / 2));
    format!("{first}-{second}")
}

/// A user code as typed, normalized: case and every character outside the alphabet (the dash, spaces)
/// ignored. `None` when what is left cannot be a user code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .filter(|c| c.is_ascii() && USER_CODE_ALPHABET.contains(&(*c as u8)))
        .collect();
    (code.len() == USER_CODE_LENGTH).then_some(code)
}

/// A new random user code (rejection sampling: each letter uniform over the alphabet).
fn new_user_code() -> Result<String> {
    let mut code = String::with_capacity(USER_CODE_LENGTH);
    let mut bytes = [0u8; 32];
    while code.len() < USER_CODE_LENGTH {
        fill_random(&mut bytes)?;
        for byte in bytes {
            // 240 = 12 × 20: bytes above it would favour the first letters.
            if byte < 240 && code.len() < USER_CODE_LENGTH {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(byte % 20)]));
            }
        }
    }
    Ok(code)
}

/// `POST /device_authorization` for an authenticated client: stores a pending device authorization and
/// answers RFC 8628 §3.2.
pub async fn start(
    state: &AppState,
    client: &ClientRecord,
    scope: Option<&str>,
    resource: Option<&str>,
    source: RequestSource,
) -> Result<DeviceAuthorizationResponse> {
    if !client.allows(GrantType::DeviceCode) {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for the device authorization grant",
        ));
    }
    let now = state.clock.now();
    // Each request stores a row: bounded per (client, source) before anything else is done.
    if let Err(retry_after) =
        state
            .device_throttle
            .count_device_authorization(client.client_id.as_str(), source.key, now)
    {
        return Err(Error::TooMany { retry_after });
    }
    let scope = requested_scope(scope, client)?;
    if scope.is_empty() {
        return Err(oauth(ErrorCode::InvalidScope, "no scope left to grant"));
    }
    let audience = resolve_audience(client, resource, &state.settings.default_audience)?;
    let device_code = OpaqueToken::try_generate()?;
    // A user code collides with a live one about once in 10^7 draws at 2,500 live codes: draw again.
    for _ in 0..5 {
        let user_code = new_user_code()?;
        let record = DeviceAuthorizationRecord {
            device_code_digest: device_code.digest(),
            user_code: user_code.clone(),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            audience: audience.clone(),
            created_at: now,
            expires_at: now + DEVICE_CODE_LIFETIME,
            interval: POLL_INTERVAL,
            approved: None,
            denied: false,
            used: false,
        };
        if state
            .store
            .create_device_authorization(&record, MAX_UNEXPIRED)
            .await?
        {
            let verification_uri = format!("{}/device", state.settings.base_url);
            return Ok(DeviceAuthorizationResponse {
                device_code: device_code.into_string(),
                verification_uri_complete: format!(
                    "{verification_uri}?user_code={}",
                    display(&user_code)
                ),
                user_code: display(&user_code),
                verification_uri,
                expires_in: DEVICE_CODE_LIFETIME,
                interval: POLL_INTERVAL,
            });
        }
    }
    // Five draws all taken: the total bound is reached (a collision five times over is not credible).
    tracing::warn!(
        max = MAX_UNEXPIRED,
        "device authorizations refused: too many unexpired ones"
    );
    Err(Error::TooMany {
        retry_after: POLL_INTERVAL * 12,
    })
}

/// What a typed user code found.
#[derive(Debug)]
pub enum Lookup {
    /// A pending code, and its client.
    Pending {
        record: Box<DeviceAuthorizationRecord>,
        client: std::sync::Arc<ClientRecord>,
    },
    /// No pending code by that name (unknown, expired, answered, or not a code at all).
    NotFound,
    /// Too many wrong codes from this source: try again after this many seconds.
    Throttled { retry_after: i64 },
}

/// Looks a typed user code up for `source`, counting it as a failure unless it is found pending.
pub async fn lookup(state: &AppState, typed: &str, source: RequestSource) -> Result<Lookup> {
    let now = state.clock.now();
    let attempt = match state.throttle.count_user_code(source.key, now) {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            tracing::warn!(target: "audit", event = "device_user_code", source = %source.address, outcome = "throttled", "user code lookups throttled");
            return Ok(Lookup::Throttled { retry_after });
        }
    };
    let Some(code) = normalize(typed) else {
        return Ok(Lookup::NotFound);
    };
    let Some(record) = state.store.find_user_code(&code).await? else {
        return Ok(Lookup::NotFound);
    };
    if record.approved.is_some() || record.denied || now >= record.expires_at {
        return Ok(Lookup::NotFound);
    }
    let Some(client) = state
        .clients
        .get(state.store.as_ref(), record.client_id.as_str())
        .await?
    else {
        return Ok(Lookup::NotFound);
    };
    state.throttle.give_back(attempt);
    Ok(Lookup::Pending {
        record: Box::new(record),
        client,
    })
}

/// The fingerprint the device consent form's CSRF token covers: the (normalized) user code it answers.
pub fn fingerprint(user_code: &str) -> SecretDigest {
    SecretDigest::of(&format!("device\u{0}{user_code}"))
}

/// The user approved: the grant is recorded for the polling client (its family created now). `false` when
/// the code was answered or expired meanwhile.
pub async fn approve(
    state: &AppState,
    record: &DeviceAuthorizationRecord,
    session: &Session,
) -> Result<bool> {
    let grant = Authorization {
        family_id: FamilyId::generate(),
        client_id: record.client_id.clone(),
        user_id: session.user_id.clone(),
        scope: record.scope.clone(),
        audience: record.audience.clone(),
        auth_time: session.auth_time,
        sid: session.sid.clone(),
    };
    let now = state.clock.now();
    let approved = state
        .store
        .approve_user_code(&record.user_code, &grant, now)
        .await?;
    tracing::info!(target: "audit", event = "device_authorization", client_id = &*untrusted(record.client_id.as_str()), user = session.user_id.as_str(), outcome = if approved { "approved" } else { "already_answered" }, "device code answered");
    Ok(approved)
}

/// The user denied: the polling client gets `access_denied`.
pub async fn deny(state: &AppState, record: &DeviceAuthorizationRecord) -> Result<bool> {
    let denied = state
        .store
        .deny_user_code(&record.user_code, state.clock.now())
        .await?;
    tracing::info!(target: "audit", event = "device_authorization", client_id = &*untrusted(record.client_id.as_str()), outcome = if denied { "denied" } else { "already_answered" }, "device code answered");
    Ok(denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_read_back_however_typed() {
        for _ in 0..200 {
            let code = new_user_code().unwrap();
            assert_eq!(code.len(), USER_CODE_LENGTH);
            assert!(
                code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
            let shown = display(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(normalize(&shown).as_deref(), Some(code.as_str()));
            assert_eq!(
                normalize(&format!(" {} ", shown.to_lowercase())).as_deref(),
                Some(code.as_str())
            );
        }
        assert_eq!(normalize("BCDF-GHJ"), None, "too short");
        assert_eq!(normalize("BCDF-GHJKL"), None, "too long");
        assert_eq!(
            normalize("BCDF-GHJA"),
            None,
            "a vowel is not in the alphabet"
        );
        assert_eq!(normalize("ＢCDF-GHJK"), None, "no full-width look-alikes");
    }
}
