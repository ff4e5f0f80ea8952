//! Revocation (RFC 7009): a refresh token revokes its family, an access token goes on the deny list.

use auth_core::secret::SecretDigest;

use super::access::{looks_like_jwt, verify_own_token};
use crate::clients::authentication::AuthenticatedClient;
use crate::error::Result;
use crate::state::AppState;

/// RFC 7009 §2.1: revokes a token of the calling client. Unknown tokens and other clients' tokens are
/// answered like success (RFC 7009 §2.2), without effect.
pub async fn revoke(state: &AppState, caller: &AuthenticatedClient, token: &str) -> Result<()> {
    let client_id = caller.client.client_id.as_str();
    let now = state.clock.now();
    if looks_like_jwt(token) {
        if let Some(claims) = verify_own_token(state, token)
            && claims.client_id == client_id
        {
            state
                .store
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
            tracing::info!(target: "audit", event = "revocation", client_id = ?client_id, user = ?claims.sub, token_type = "access_token", outcome = "revoked", "access token revoked");
        }
        return Ok(());
    }
    if let Some(record) = state
        .store
        .find_refresh_token(&SecretDigest::of(token))
        .await?
        && record.authorization.client_id == client_id
    {
        state
            .store
            .revoke_family(&record.authorization.family_id, now)
            .await?;
        tracing::info!(target: "audit", event = "revocation", client_id = ?client_id, user = ?record.authorization.user_id, token_type = "refresh_token", outcome = "family_revoked", "refresh token family revoked");
    }
    Ok(())
}
