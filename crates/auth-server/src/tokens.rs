//! Access tokens and what happens to them after issue: minting (RFC 9068), the token response (RFC 6749
//! §5.1), introspection (RFC 7662) and revocation (RFC 7009). To add a claim to access tokens, start here.

use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use auth_core::token::{self, AccessTokenClaims, Audience, ValidationPolicy};
use auth_core::wire::{GrantType, IntrospectionResponse, TokenResponse, TokenType};

use crate::clients::AuthenticatedClient;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::IssuedAccessToken;

/// Who and what an access token is for.
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenGrant<'a> {
    /// The user id for user grants, the client id for client_credentials.
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scope: &'a ScopeSet,
    /// When the user signed in (user grants only).
    pub auth_time: Option<i64>,
}

/// Signs an access token with the current key. Writes nothing anywhere.
pub fn mint_access_token(
    state: &AppState,
    grant: AccessTokenGrant<'_>,
) -> Result<(String, IssuedAccessToken)> {
    let snapshot = state.keys.snapshot();
    let signer = snapshot.signer.as_ref().ok_or(Error::NoSigningKey)?;
    let now = state.clock.now();
    let claims = AccessTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: grant.subject.to_owned(),
        aud: Audience::One(grant.audience.to_owned()),
        client_id: grant.client_id.to_owned(),
        scope: grant.scope.clone(),
        iat: now,
        exp: now + state.settings.access_token_ttl,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        auth_time: grant.auth_time,
    };
    let token = token::issue(&claims, signer).map_err(|_| Error::Signing)?;
    Ok((
        token,
        IssuedAccessToken {
            jti: claims.jti,
            expires_at: claims.exp,
        },
    ))
}

/// The RFC 6749 §5.1 answer, counted per grant.
pub fn token_response(
    state: &AppState,
    access_token: String,
    scope: &ScopeSet,
    refresh_token: Option<String>,
    grant: GrantType,
) -> TokenResponse {
    state
        .metrics
        .increment("auth_tokens_issued_total", &[("grant", grant.as_str())]);
    TokenResponse {
        access_token,
        token_type: TokenType::Bearer,
        expires_in: u64::try_from(state.settings.access_token_ttl).unwrap_or(0),
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        refresh_token,
    }
}

/// Looks like a JWT (three dot-separated parts)?
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&byte| byte == b'.').count() == 2
}

/// Verifies one of our own access tokens. The usual leeway absorbs clock skew between replicas for `iat`
/// and `nbf`, but expiry is strict: a token past its `exp` is not active (RFC 7662 §2.2).
fn verify_own_token(state: &AppState, token: &str) -> Option<AccessTokenClaims> {
    let policy = ValidationPolicy::any_audience(state.settings.issuer.clone(), state.clock.clone());
    let claims = token::verify(token, &state.keys.snapshot().published, &policy).ok()?;
    (state.clock.now() < claims.exp).then_some(claims)
}

/// RFC 7662 §2.2: `{"active": false}` for anything expired, revoked, malformed or unknown.
pub async fn introspect(state: &AppState, token: &str) -> Result<IntrospectionResponse> {
    if looks_like_jwt(token) {
        let Some(claims) = verify_own_token(state, token) else {
            return Ok(IntrospectionResponse::inactive());
        };
        if state.store.is_access_token_revoked(&claims.jti).await? {
            return Ok(IntrospectionResponse::inactive());
        }
        return Ok(IntrospectionResponse {
            active: true,
            scope: Some(claims.scope.to_string()),
            client_id: Some(claims.client_id),
            username: None,
            token_type: Some("Bearer".into()),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: claims.nbf,
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
        });
    }
    let Some(record) = state
        .store
        .find_refresh_token(&SecretDigest::of(token))
        .await?
    else {
        return Ok(IntrospectionResponse::inactive());
    };
    let now = state.clock.now();
    if record.used_at.is_some() || record.family_revoked || now >= record.expires_at {
        return Ok(IntrospectionResponse::inactive());
    }
    let grant = record.authorization;
    Ok(IntrospectionResponse {
        active: true,
        scope: Some(grant.scope.to_string()),
        client_id: Some(grant.client_id),
        username: None,
        token_type: Some("refresh_token".into()),
        exp: Some(record.expires_at),
        iat: Some(record.created_at),
        nbf: None,
        sub: Some(grant.user_id),
        aud: Some(Audience::One(grant.audience)),
        iss: Some(state.settings.issuer.clone()),
        jti: None,
    })
}

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
