//! RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a new refresh token every time, and a used one presented
//! again revokes its whole family.

use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::wire::{ErrorCode, GrantType, TokenResponse};

use super::resolve_scope;
use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::{Authorization, ClientRecord, RefreshTokenRecord, Rotation};
use crate::tokens::{AccessTokenGrant, mint_access_token, token_response};

/// The parameters of a refresh_token request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub refresh_token: &'a str,
    /// A narrower scope for the new access token (RFC 6749 §6).
    pub scope: Option<&'a str>,
    /// RFC 8707 resource indicator: when given, it must be the family's audience.
    pub resource: Option<&'a str>,
}

/// A new refresh token of `authorization`'s family, and its record to store.
pub(super) fn new_refresh_token(
    state: &AppState,
    authorization: Authorization,
    now: i64,
) -> Result<(OpaqueToken, RefreshTokenRecord)> {
    let token = OpaqueToken::try_generate()?;
    let record = RefreshTokenRecord {
        token_digest: token.digest(),
        authorization,
        created_at: now,
        expires_at: now + state.settings.refresh_token_ttl,
        used_at: None,
        family_revoked: false,
    };
    Ok((token, record))
}

fn invalid_refresh_token() -> Error {
    oauth(
        ErrorCode::InvalidGrant,
        "the refresh token is invalid, expired or revoked",
    )
}

/// Rotates a refresh token: new access and refresh tokens, the presented one used up.
pub async fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
) -> Result<TokenResponse> {
    let digest = SecretDigest::of(request.refresh_token);
    let record = state
        .store
        .find_refresh_token(&digest)
        .await?
        .ok_or_else(invalid_refresh_token)?;
    let grant = &record.authorization;
    // Bound to its client (RFC 6749 §6): another client's token is simply invalid here.
    if grant.client_id != client.client_id {
        return Err(invalid_refresh_token());
    }
    let now = state.clock.now();
    if record.family_revoked || now >= record.expires_at {
        return Err(invalid_refresh_token());
    }
    if record.used_at.is_some() {
        state.store.revoke_family(&grant.family_id, now).await?;
        tracing::warn!(target: "audit", event = "refresh_token_reuse", client_id = ?client.client_id, user = ?grant.user_id, outcome = "family_revoked", "rotated refresh token presented again");
        return Err(invalid_refresh_token());
    }
    // RFC 6749 §6: the scope may be narrowed, never widened.
    let narrowed = resolve_scope(request.scope, &grant.scope)?;
    if let Some(resource) = request.resource
        && resource != grant.audience
    {
        return Err(oauth(
            ErrorCode::InvalidTarget,
            "resource differs from the original authorization",
        ));
    }
    let mut authorization = grant.clone();
    authorization.scope = narrowed.clone();
    let (access_token, issued) = mint_access_token(
        state,
        AccessTokenGrant {
            subject: &grant.user_id,
            client_id: &client.client_id,
            audience: &grant.audience,
            scope: &narrowed,
            auth_time: Some(grant.auth_time),
        },
    )?;
    let (new_token, new_record) = new_refresh_token(state, authorization, now)?;
    match state
        .store
        .rotate_refresh_token(&digest, now, &issued, &new_record)
        .await?
    {
        Rotation::Rotated => Ok(token_response(
            state,
            access_token,
            &narrowed,
            Some(new_token.into_string()),
            GrantType::RefreshToken,
        )),
        Rotation::AlreadyUsed => {
            // Lost a race with another use of the same token: indistinguishable from theft, so the family goes.
            state.store.revoke_family(&grant.family_id, now).await?;
            tracing::warn!(target: "audit", event = "refresh_token_reuse", client_id = ?client.client_id, user = ?grant.user_id, outcome = "family_revoked", "refresh token used concurrently");
            Err(invalid_refresh_token())
        }
    }
}
