//! Revocation (RFC 7009): a refresh token revokes its family, an access token goes on the deny list. A public
//! client's DPoP-bound refresh token is revoked only with a proof by its key (RFC 9449 §5): a thief who has
//! the token but not the key can neither use it nor revoke the grant it belongs to.

use auth_core::secret::SecretDigest;

use super::access::{looks_like_jwt, verify_own_token};
use super::dpop::{ProofCheck, record_use, verify};
use crate::clients::authentication::AuthenticatedClient;
use crate::error::Result;
use crate::state::AppState;

/// RFC 7009 §2.1: revokes a token of the calling client. Unknown tokens and other clients' tokens are
/// answered like success (RFC 7009 §2.2), without effect; so is a public client's DPoP-bound refresh token
/// without a valid proof (`proof`, the request's `DPoP` header) by its key.
pub async fn revoke(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
    proof: Option<&str>,
) -> Result<()> {
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
            tracing::info!(target: "audit", event = "revocation", client_id = client_id, user = claims.sub.as_str(), token_type = "access_token", outcome = "revoked", "access token revoked");
        }
        return Ok(());
    }
    if let Some(record) = state
        .store
        .find_refresh_token(&SecretDigest::of(token))
        .await?
        && record.authorization.client_id == client_id
    {
        if let Some(bound) = &record.dpop_jkt
            && caller.client.is_public
        {
            let check = |proof| ProofCheck {
                bound_to: Some(bound),
                ..ProofCheck::new(proof, "POST", "/revoke")
            };
            let verified = match proof.map(|proof| verify(state, &check(proof))) {
                Some(Ok(verified)) => verified,
                _ => {
                    tracing::info!(target: "audit", event = "revocation", client_id = client_id, token_type = "refresh_token", outcome = "refused_without_proof", "a DPoP-bound refresh token needs a proof by its key");
                    return Ok(());
                }
            };
            match record_use(state, &verified).await {
                Ok(()) => {}
                // A replayed proof revokes nothing either.
                Err(crate::error::Error::OAuth(_)) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        state
            .store
            .revoke_family(&record.authorization.family_id, now)
            .await?;
        tracing::info!(target: "audit", event = "revocation", client_id = client_id, user = record.authorization.user_id.as_str(), token_type = "refresh_token", outcome = "family_revoked", "refresh token family revoked");
    }
    Ok(())
}
