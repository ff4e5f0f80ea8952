//! Introspection (RFC 7662): who may ask, and what is active.

use auth_core::secret::SecretDigest;
use auth_core::token::Audience;
use auth_core::wire::{ErrorCode, IntrospectionResponse};

use super::access::{OwnAccessToken, looks_like_jwt, read_own_access_token};
use crate::clients::authentication::{AuthMethod, AuthenticatedClient};
use crate::error::{Error, OAuthError, Result, oauth};
use crate::state::AppState;

/// Who may introspect (RFC 7662 §2.1, §4: the server decides who may learn about tokens): a client registered
/// with `--introspection`, which authenticated with a secret. A public client is `invalid_client`
/// (it cannot prove who it is), another confidential client `unauthorized_client` (403).
pub fn may_introspect(caller: &AuthenticatedClient) -> Result<()> {
    if caller.method == AuthMethod::None {
        return Err(oauth(
            ErrorCode::InvalidClient,
            "introspection requires client authentication",
        ));
    }
    if !caller.client.introspection {
        return Err(Error::Forbidden(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for introspection",
        )));
    }
    Ok(())
}

/// RFC 7662 §2.2: `{"active": false}` for anything expired, revoked, malformed or unknown. An access token
/// is inactive when its `jti` is deny-listed or its family revoked (or purged); a refresh token is reported
/// active only to the client it was issued to.
pub async fn introspect(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
) -> Result<IntrospectionResponse> {
    may_introspect(caller)?;
    if looks_like_jwt(token) {
        let Some(OwnAccessToken {
            claims,
            active: true,
        }) = read_own_access_token(state, token).await?
        else {
            return Ok(IntrospectionResponse::inactive());
        };
        return Ok(IntrospectionResponse {
            active: true,
            scope: Some(claims.scope.to_string()),
            client_id: Some(claims.client_id),
            username: None,
            token_type: Some(
                if claims.cnf.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                }
                .into(),
            ),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: claims.nbf,
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
            cnf: claims.cnf,
            act: claims.act,
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
    if record.used_at.is_some()
        || record.family_revoked
        || now >= record.expires_at
        || record.family_created_at <= now - state.settings.refresh_family_max_age
        || record.authorization.client_id != caller.client.client_id
    {
        return Ok(IntrospectionResponse::inactive());
    }
    let grant = record.authorization;
    Ok(IntrospectionResponse {
        active: true,
        scope: Some(grant.scope.to_string()),
        client_id: Some(grant.client_id.into_string()),
        username: None,
        token_type: Some("refresh_token".into()),
        exp: Some(record.expires_at),
        iat: Some(record.created_at),
        nbf: None,
        sub: Some(grant.user_id.into_string()),
        aud: Some(Audience::One(grant.audience)),
        iss: Some(state.settings.issuer.clone()),
        jti: None,
        cnf: None,
        act: None,
    })
}
