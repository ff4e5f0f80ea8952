//! RFC 6749 §4.1.3 with RFC 7636 §4.6: a code, its PKCE verifier, and the tokens it buys, once.

use auth_core::id::Jkt;
use auth_core::pkce::CodeChallenge;
use auth_core::secret::SecretDigest;
use auth_core::token::Audience;
use auth_core::wire::{ErrorCode, GrantType, TokenResponse};
use service_kit::telemetry::untrusted;

use super::refresh::first_refresh_token;
use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::{ClientRecord, Consumption, StoreError};
use crate::tokens::dpop::invalid_proof;
use crate::tokens::issue::{IdTokenDue, IssueRequest, Issuer, Subject};
use crate::tokens::openid::is_openid;
use crate::tokens::rules::same_resource;

/// The parameters of an authorization_code request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: &'a str,
    /// RFC 8707 resource indicator: when given, it must be the audience of the authorization request.
    pub resource: Option<&'a str>,
}

fn invalid_code() -> Error {
    oauth(
        ErrorCode::InvalidGrant,
        "the authorization code is invalid, expired or already used",
    )
}

/// Revokes the family of a code used twice, with its audit line.
async fn revoke_on_replay(
    state: &AppState,
    client: &ClientRecord,
    grant: &crate::store::Authorization,
    now: i64,
) -> Result<()> {
    state.store.revoke_family(&grant.family_id, now).await?;
    tracing::warn!(target: "audit", event = "code_replay", client_id = &*untrusted(client.client_id.as_str()), user = grant.user_id.as_str(), outcome = "family_revoked", "authorization code used twice");
    Ok(())
}

/// Exchanges a code for an access token (and a refresh token when the client may refresh).
pub async fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    jkt: Option<Jkt>,
) -> Result<TokenResponse> {
    let digest = SecretDigest::of(request.code);
    let record = state
        .store
        .find_code(&digest)
        .await?
        .ok_or_else(invalid_code)?;
    let grant = &record.authorization;
    // RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
    if grant.client_id != client.client_id {
        return Err(invalid_code());
    }
    // RFC 9449 §10: a code bound to a DPoP key is exchanged only with a proof by that key (and is not
    // spent by a request without one).
    if let Some(bound) = &record.dpop_jkt
        && jkt.as_ref() != Some(bound)
    {
        return Err(invalid_proof(
            "the code is bound to a DPoP key: send a proof by that key",
        ));
    }
    let now = state.clock.now();
    if record.used_at.is_some() {
        // RFC 6749 §4.1.2, RFC 9700 §4.2.4: a replayed code revokes what it produced.
        revoke_on_replay(state, client, grant, now).await?;
        return Err(invalid_code());
    }
    if record.family_revoked || now >= record.expires_at {
        return Err(invalid_code());
    }
    // RFC 6749 §4.1.3: when the authorization request carried redirect_uri, the token request must carry the
    // identical value.
    match request.redirect_uri {
        Some(redirect_uri) if redirect_uri != record.redirect_uri => {
            return Err(oauth(
                ErrorCode::InvalidGrant,
                "redirect_uri does not match the authorization request",
            ));
        }
        None if record.redirect_uri_given => {
            return Err(oauth(
                ErrorCode::InvalidRequest,
                "redirect_uri is required: the authorization request carried one",
            ));
        }
        _ => {}
    }
    let challenge = CodeChallenge::from_stored(&record.code_challenge)
        .map_err(|_| StoreError::Corrupt("code challenge"))?;
    challenge.verify(request.code_verifier).map_err(|_| {
        oauth(
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge",
        )
    })?;
    if let Some(resource) = request.resource
        && !same_resource(&grant.audience, resource)
    {
        return Err(oauth(
            ErrorCode::InvalidTarget,
            "resource differs from the authorization request",
        ));
    }
    let issuer = Issuer::ready(state, client)?;
    let refresh = first_refresh_token(state, client, grant, now, jkt.as_ref())?;
    let (refresh_token, refresh_record) = refresh.unzip();
    // Signed before the code is spent: the tokens carry the family, so if the exchange is refused below they
    // die with it.
    let response = issuer.issue(
        state,
        IssueRequest {
            grant: GrantType::AuthorizationCode,
            client,
            subject: Subject::User {
                user_id: grant.user_id.clone(),
                auth_time: grant.auth_time,
            },
            scope: grant.scope.clone(),
            audience: Audience::One(grant.audience.clone()),
            family: Some(grant.family_id.clone()),
            cnf: jkt,
            // OpenID Connect Core §3.1.3.3: an `openid` grant answers with an ID token too.
            id_token: is_openid(&grant.scope).then(|| IdTokenDue {
                nonce: record.nonce.clone(),
                sid: grant.sid.clone(),
            }),
            refresh_token,
            act: None,
            expires_at: None,
        },
    )?;
    match state
        .store
        .exchange_code(&record, now, refresh_record.as_ref())
        .await?
    {
        Consumption::Consumed => {}
        // Used meanwhile (two exchanges raced: a replay) or its family revoked meanwhile: either way the
        // family goes, and the tokens minted above (which carry it) with it.
        Consumption::Refused => {
            revoke_on_replay(state, client, grant, now).await?;
            return Err(invalid_code());
        }
    }
    Ok(response)
}
