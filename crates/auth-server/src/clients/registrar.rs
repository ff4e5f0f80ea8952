//! The registration endpoint's decisions (RFC 7591 §3, RFC 7592 §2): who may register under each
//! `--registration` policy, the per-source and total caps of open registration, the registration access
//! token that alone reads, replaces or deletes a dynamic client, and what each answer holds. Every refusal
//! stores nothing but the throttle counters it names.

use serde_json::{Map, Value};

use auth_core::secret::{OpaqueToken, SecretDigest};

use super::dynamic::{self, Allowance, RegistrationError};
use crate::clients::policy::RegistrationPolicy as Policy;
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::{
    ClientRecord, DynamicRegistration, Registered, RegistrationRefused, StoreError,
};

/// Under `open`, one source may create at most this share of `--registration-max-clients` a day, so that
/// one party cannot close registration for everyone.
pub const SOURCE_DAILY_SHARE_PERCENT: u64 = 1;

/// Idle dynamic clients deleted per purge round at most (the next round, minutes later, takes the rest).
const IDLE_DELETIONS_PER_ROUND: u32 = 500;

/// Notes that a token was issued to `client`, when it registered itself: once a day per replica (the
/// first issuance of the day writes, the others only read a set in memory). A failed write is logged and
/// tried again at the next issuance; it never fails the token request.
pub async fn note_issuance(state: &AppState, client: &ClientRecord) {
    if !matches!(
        client.registered,
        Registered::Dynamic | Registered::Document
    ) {
        return;
    }
    let now = state.clock.now();
    if !state.issued_today.first_today(&client.client_id, now) {
        return;
    }
    if let Err(error) = state
        .store
        .record_dynamic_issuance(&client.client_id, now)
        .await
    {
        state.issued_today.forget(&client.client_id);
        tracing::warn!(%error, client_id = %client.client_id.as_str(), "noting a dynamic client's activity failed");
    }
}

/// Deletes the dynamic clients to which no token was issued (nor registered) for `--registration-idle-days`,
/// as `client delete` deletes; each one audited.
pub async fn delete_idle(state: &AppState, now: i64) -> Result<usize, StoreError> {
    // Activity is noted at the first token of a day, so a client noted at `t` may have had tokens until
    // `t` + a day: one more day of margin.
    let before = now - (state.settings.registration_idle_days + 1) * super::idle::DAY_SECONDS;
    let deleted = state
        .store
        .delete_idle_clients(before, IDLE_DELETIONS_PER_ROUND, now)
        .await?;
    for client_id in &deleted {
        tracing::info!(target: "audit", event = "client_deleted", client_id = %client_id.as_str(), outcome = "idle", "self-registered client deleted: no token for --registration-idle-days");
    }
    Ok(deleted.len())
}

/// Why a registration request gets no 2xx.
#[derive(Debug)]
pub enum Refusal {
    /// `--registration off`: there is no endpoint (404).
    Off,
    /// No initial access token, or no registration access token (401, a bare `Bearer` challenge).
    MissingToken,
    /// An unknown, expired or spent token, or one for another client (401 `invalid_token`).
    InvalidToken,
    /// Too many requests from this source, or for this client (429 `temporarily_unavailable`).
    TooMany { retry_after: i64 },
    /// The dynamic clients are at their cap, or this source at its daily share (403 `access_denied`).
    Full,
    /// The metadata is refused (400, RFC 7591 §3.2.2).
    Metadata(RegistrationError),
    /// The database failed (503).
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        match error {
            // A value the database cannot hold (a NUL on PostgreSQL) is the registrant's mistake.
            StoreError::Rejected(_) => Self::Metadata(dynamic::metadata_error(
                "a member holds a value that cannot be stored",
            )),
            error => Self::Store(error),
        }
    }
}

/// `--registration-scopes`, or every scope of `scopes_supported` (OpenID Connect's and every registered
/// client's, read now: a client registered a moment ago counts), so that a client asking for a resource's
/// scopes can register.
pub(super) async fn policy_scopes(
    state: &AppState,
) -> Result<auth_core::scope::ScopeSet, StoreError> {
    if let Some(scopes) = &state.settings.registration_scopes {
        return Ok(scopes.clone());
    }
    let registered = state.store.registered_scopes().await?;
    let all = crate::tokens::openid::USER_SCOPES
        .iter()
        .map(|scope| (*scope).to_owned())
        .chain(registered.iter().map(str::to_owned));
    Ok(auth_core::scope::ScopeSet::from_tokens(all).unwrap_or(registered))
}

/// `POST /register`: a new dynamic client. `bearer` is the request's Bearer token, if any.
pub async fn register(
    state: &AppState,
    source: RequestSource,
    bearer: Option<&str>,
    body: &[u8],
) -> Result<Value, Refusal> {
    let now = state.clock.now();
    let initial_token = match state.settings.registration {
        Policy::Off => return Err(Refusal::Off),
        Policy::Token => {
            let token = bearer.ok_or(Refusal::MissingToken)?;
            let digest = SecretDigest::of(token);
            // Checked before the metadata, so that nobody without a token learns what is valid; spent
            // only with the client stored, in the same transaction.
            if !state.store.initial_token_usable(&digest, now).await? {
                return Err(Refusal::InvalidToken);
            }
            Some(digest)
        }
        Policy::Open => {
            // Counted before the body is read: a flood of bad registrations costs its source too.
            state
                .throttle
                .count_registration(source.key, now)
                .map_err(|retry_after| Refusal::TooMany { retry_after })?;
            None
        }
    };
    let scopes = policy_scopes(state).await?;
    let client_id = dynamic::new_client_id();
    let registration = dynamic::register(
        body,
        &client_id,
        &Allowance {
            trusted: initial_token.is_some(),
            jwks_uri_allowed: initial_token.is_some(),
            scopes: &scopes,
            audience: &state.settings.default_audience,
        },
        None,
    )
    .map_err(Refusal::Metadata)?;
    let access_token = OpaqueToken::generate();
    let stored = DynamicRegistration {
        token_digest: access_token.digest(),
        metadata: Value::Object(registration.metadata.clone()).to_string(),
        source: source.key.to_string(),
    };
    let max = state.settings.registration_max_clients;
    let source_daily = (state.settings.registration == Policy::Open)
        .then(|| (max * SOURCE_DAILY_SHARE_PERCENT / 100).max(1));
    match state
        .store
        .register_client(
            &registration.client,
            &stored,
            initial_token.as_ref(),
            max,
            source_daily,
            now,
        )
        .await?
    {
        Ok(()) => {}
        Err(RegistrationRefused::InitialToken) => return Err(Refusal::InvalidToken),
        Err(RegistrationRefused::Full | RegistrationRefused::SourceShare) => {
            return Err(Refusal::Full);
        }
    }
    tracing::info!(target: "audit", event = "client_registered", client_id = %client_id, source = %source.address, with_initial_token = initial_token.is_some(), outcome = "created", "client registered itself");
    Ok(dynamic::response(
        &registration.client,
        &registration.metadata,
        registration.secret.as_ref(),
        access_token.as_str(),
        &state.settings.issuer,
        Some(now),
    ))
}

/// The dynamic client `client_id` if `bearer` is its registration access token; every failure is the same
/// `invalid_token` (RFC 7592 §2.1), whether the client does not exist, is the operator's, or the token is
/// another's. Calls are counted per client once the token is right: a stranger guessing tokens (256-bit) spends
/// none of the developer's.
async fn authorized(
    state: &AppState,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<(crate::store::ClientRecord, DynamicRegistration), Refusal> {
    if state.settings.registration == Policy::Off {
        return Err(Refusal::Off);
    }
    let token = bearer.ok_or(Refusal::MissingToken)?;
    let Some(id) = dynamic::parse_client_id(client_id) else {
        return Err(Refusal::InvalidToken);
    };
    let now = state.clock.now();
    let Some((client, registration)) = state.store.find_registration(&id).await? else {
        return Err(Refusal::InvalidToken);
    };
    if !registration.token_digest.matches(token) {
        return Err(Refusal::InvalidToken);
    }
    state
        .throttle
        .count_management(client_id, now)
        .map_err(|retry_after| Refusal::TooMany { retry_after })?;
    Ok((client, registration))
}

/// The registered metadata as stored.
fn stored_metadata(registration: &DynamicRegistration) -> Map<String, Value> {
    match serde_json::from_str(&registration.metadata) {
        Ok(Value::Object(members)) => members,
        _ => Map::new(),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the registration, without the secret, with the presented
/// token.
pub async fn read(
    state: &AppState,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<Value, Refusal> {
    let (client, registration) = authorized(state, client_id, bearer).await?;
    Ok(dynamic::response(
        &client,
        &stored_metadata(&registration),
        None,
        bearer.unwrap_or_default(),
        &state.settings.issuer,
        None,
    ))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): the full metadata replaces the old (omitted members back to
/// their defaults); `client_id`, and `client_secret` if sent, must be the current ones; the authentication
/// method cannot change. Answered with a new registration access token (the old one is dead) and the same
/// secret.
pub async fn update(
    state: &AppState,
    client_id: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Result<Value, Refusal> {
    let (client, registration) = authorized(state, client_id, bearer).await?;
    let Ok(Value::Object(mut members)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal::Metadata(dynamic::metadata_error(
            "the registration must be a JSON object",
        )));
    };
    let invalid = |description: &str| Refusal::Metadata(dynamic::metadata_error(description));
    if members.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err(invalid("client_id must be the client's"));
    }
    if let Some(secret) = members.get("client_secret") {
        let matches = secret
            .as_str()
            .zip(client.secret_digest)
            .is_some_and(|(secret, digest)| digest.matches(secret));
        if !matches {
            return Err(invalid("client_secret must be the client's current secret"));
        }
    }
    // Server-managed members are ignored (RFC 7592 §2.2).
    for member in [
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    ] {
        members.remove(member);
    }
    let previous = stored_metadata(&registration);
    let method = |metadata: &Map<String, Value>| {
        metadata
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            .unwrap_or("client_secret_basic")
            .to_owned()
    };
    if method(&members) != method(&previous) {
        return Err(invalid("token_endpoint_auth_method cannot change"));
    }
    let scopes = policy_scopes(state).await?;
    let updated = dynamic::register(
        Value::Object(members).to_string().as_bytes(),
        client.client_id.as_str(),
        &Allowance {
            // What it may be was decided when it registered: client_credentials only if it had it then.
            trusted: client.allows(auth_core::wire::GrantType::ClientCredentials),
            // A jwks_uri it registered with an initial access token stays allowed; none is added.
            jwks_uri_allowed: client.jwks_uri.is_some(),
            scopes: &scopes,
            audience: &state.settings.default_audience,
        },
        client.secret_digest,
    )
    .map_err(Refusal::Metadata)?;
    let access_token = OpaqueToken::generate();
    let stored = DynamicRegistration {
        token_digest: access_token.digest(),
        metadata: Value::Object(updated.metadata.clone()).to_string(),
        source: registration.source.clone(),
    };
    let now = state.clock.now();
    if !state
        .store
        .update_registration(&updated.client, &stored, &registration.token_digest, now)
        .await?
    {
        // Another update with the same token came first: this token is dead.
        return Err(Refusal::InvalidToken);
    }
    state.clients.clear();
    tracing::info!(target: "audit", event = "client_updated", client_id = %client.client_id.as_str(), outcome = "updated", "dynamic client updated");
    Ok(dynamic::response(
        &updated.client,
        &updated.metadata,
        None,
        access_token.as_str(),
        &state.settings.issuer,
        None,
    ))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): as `client delete`, every token of the client dies.
pub async fn delete(
    state: &AppState,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<(), Refusal> {
    let (client, registration) = authorized(state, client_id, bearer).await?;
    // The token is checked again by the deleting statement: a concurrent PUT that rotated it wins.
    if !state
        .store
        .delete_registration(
            &client.client_id,
            &registration.token_digest,
            state.clock.now(),
        )
        .await?
    {
        return Err(Refusal::InvalidToken);
    }
    state.clients.clear();
    tracing::info!(target: "audit", event = "client_deleted", client_id = %client.client_id.as_str(), outcome = "deleted", "dynamic client deleted by its developer");
    Ok(())
}
