//! Our own access tokens read back (introspection, revocation, UserInfo): the signature by a published key,
//! the issuer, expiry, and whether revocation has touched it (its `jti` deny-listed, its family revoked, its
//! client deleted).

use auth_core::id::{ClientId, FamilyId};
use auth_core::token::{self, AccessTokenClaims, ValidationPolicy};

use crate::error::Result;
use crate::state::AppState;

/// Looks like a JWT (three dot-separated parts)?
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&byte| byte == b'.').count() == 2
}

/// Verifies one of our own access tokens. The usual leeway absorbs clock skew between replicas for `iat`
/// and `nbf`, but expiry is strict: a token past its `exp` is not active (RFC 7662 §2.2).
pub fn verify_own_token(state: &AppState, token: &str) -> Option<AccessTokenClaims> {
    let policy = ValidationPolicy::any_audience(state.settings.issuer.clone(), state.clock.clone());
    let claims = token::verify(token, &state.keys.snapshot().published, &policy).ok()?;
    (state.clock.now() < claims.exp).then_some(claims)
}

/// One of our own access tokens, read back: its claims, and whether it is still active (not deny-listed, its
/// family live).
#[derive(Debug, Clone)]
pub struct OwnAccessToken {
    pub claims: AccessTokenClaims,
    pub active: bool,
}

/// Reads an access token of this issuer (any audience): `None` when it is not one, or has expired;
/// otherwise its claims and whether revocation has touched it. An access token is inactive when its `jti`
/// is deny-listed or its family revoked (or purged).
pub async fn read_own_access_token(
    state: &AppState,
    token: &str,
) -> Result<Option<OwnAccessToken>> {
    if !looks_like_jwt(token) {
        return Ok(None);
    }
    let Some(claims) = verify_own_token(state, token) else {
        return Ok(None);
    };
    let known = state
        .store
        .access_token_state(
            &claims.jti,
            claims.fam.clone().map(FamilyId::from_trusted).as_ref(),
            &ClientId::from_trusted(claims.client_id.clone()),
        )
        .await?;
    // `client delete`: nothing issued to a deleted client stays active. Its client must exist and have been
    // registered by `iat` (what a replica minted from its cache after the deletion, even once the id is
    // registered again), and not deleted since (`deleted_at` ≥ `iat`: a token of the same second as a
    // deletion and a re-registration is refused rather than revived).
    let client_live = known
        .client_created_at
        .is_some_and(|created_at| created_at <= claims.iat)
        && known
            .client_deleted_at
            .is_none_or(|deleted_at| deleted_at < claims.iat);
    let family_live = match (&claims.fam, claims.auth_time) {
        (Some(_), _) => known.family_live == Some(true),
        // A user's token without a family was minted before revocation was decided by family: whether
        // its family was revoked since cannot be told, so it fails closed (it expires soon anyway).
        (None, Some(_)) => false,
        // client_credentials: no family, only the deny list.
        (None, None) => true,
    };
    Ok(Some(OwnAccessToken {
        active: !known.denied && family_live && client_live,
        claims,
    }))
}
