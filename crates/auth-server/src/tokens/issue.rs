//! Access tokens and what happens to them after issue: minting (RFC 9068), the token response (RFC 6749
//! §5.1), introspection (RFC 7662) and revocation (RFC 7009). To add a claim to access tokens, start here.

use std::sync::Arc;

use auth_core::keys::SigningKey;
use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use auth_core::token::{self, AccessTokenClaims, Audience, Confirmation, ValidationPolicy};
use auth_core::wire::{GrantType, IntrospectionResponse, TokenResponse, TokenType};

use auth_core::wire::ErrorCode;

use crate::clients::{AuthMethod, AuthenticatedClient};
use crate::error::{Error, OAuthError, Result, oauth};
use crate::state::AppState;

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
    /// The family the token descends from (user grants only): revoking it revokes the token.
    pub family_id: Option<&'a str>,
    /// The thumbprint of the client's DPoP key, for a sender-constrained token (RFC 9449 §6).
    pub jkt: Option<&'a str>,
}

/// The key that signs now. A grant takes it before it changes anything, so a replica that cannot sign
/// (no key active yet) refuses before a code or refresh token is used up.
pub fn current_signer(state: &AppState) -> Result<Arc<SigningKey>> {
    state
        .keys
        .snapshot()
        .signer
        .clone()
        .ok_or(Error::NoSigningKey)
}

/// Signs an access token with `signer` (from [`current_signer`]). Writes nothing anywhere: revocation is
/// decided by its family (the `fam` claim) or its `jti`, looked up when it is introspected.
pub fn mint_access_token(
    state: &AppState,
    signer: &SigningKey,
    grant: AccessTokenGrant<'_>,
) -> Result<String> {
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
        fam: grant.family_id.map(str::to_owned),
        cnf: grant.jkt.map(|jkt| Confirmation {
            jkt: jkt.to_owned(),
        }),
    };
    token::issue(&claims, signer).map_err(|_| Error::Signing)
}

/// The RFC 6749 §5.1 answer, counted per grant; with an ID token for `openid` grants (Core §3.1.3.3).
pub fn token_response(
    state: &AppState,
    access_token: String,
    scope: &ScopeSet,
    refresh_token: Option<String>,
    id_token: Option<String>,
    grant: GrantType,
    jkt: Option<&str>,
) -> TokenResponse {
    state
        .metrics
        .increment("auth_tokens_issued_total", &[("grant", grant.as_str())]);
    TokenResponse {
        access_token,
        // RFC 9449 §5: a DPoP-bound token is of type DPoP.
        token_type: if jkt.is_some() {
            TokenType::Dpop
        } else {
            TokenType::Bearer
        },
        expires_in: u64::try_from(state.settings.access_token_ttl).unwrap_or(0),
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        refresh_token,
        id_token,
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
        .access_token_state(&claims.jti, claims.fam.as_deref(), &claims.client_id)
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
        || record.authorization.client_id != caller.client.client_id
    {
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
        cnf: None,
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
