//! The grant rules (SPEC §3.2, §3.5): what each grant checks, what it stores and what it issues. No HTTP here:
//! handlers parse and authenticate, then call these functions.

use std::borrow::Cow;

use auth_core::pkce::CodeChallenge;
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::token::{self, AccessTokenClaims, Audience, ValidationPolicy};
use auth_core::wire::{ErrorCode, GrantType, IntrospectionResponse, TokenResponse, TokenType};

use crate::state::AppState;
use crate::store::{
    Authorization, AuthorizationCodeRecord, ClientRecord, CodeExchange, IssuedAccessToken,
    RefreshTokenRecord, Rotation, StoreError,
};

/// Why a grant was refused.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// An OAuth error the client sees (RFC 6749 §5.2).
    #[error("{code}: {description}")]
    OAuth {
        /// The code.
        code: ErrorCode,
        /// What to tell the client developer.
        description: Cow<'static, str>,
    },
    /// Storage failed: the client gets 503, the log gets the cause.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key can sign right now.
    #[error("no signing key is active")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

/// An OAuth error with a description.
pub fn oauth(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> GrantError {
    GrantError::OAuth {
        code,
        description: description.into(),
    }
}

/// RFC 8707 §2: `resource` is an absolute URI without a fragment, registered for the client. Without it the
/// audience is the client's first registered audience, else the server default.
pub fn resolve_audience(
    client: &ClientRecord,
    resource: Option<&str>,
    default_audience: &str,
) -> Result<String, GrantError> {
    match resource {
        Some(resource) => {
            let parsed = url::Url::parse(resource)
                .map_err(|_| oauth(ErrorCode::InvalidTarget, "resource must be an absolute URI"))?;
            if parsed.fragment().is_some() {
                return Err(oauth(
                    ErrorCode::InvalidTarget,
                    "resource must not contain a fragment",
                ));
            }
            if !client.audiences.iter().any(|audience| audience == resource) {
                return Err(oauth(
                    ErrorCode::InvalidTarget,
                    "resource is not registered for this client",
                ));
            }
            Ok(resource.to_owned())
        }
        None => Ok(client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| default_audience.to_owned())),
    }
}

/// A requested scope must be a subset of what is allowed; none requested means all that is allowed.
pub fn resolve_scope(requested: Option<&str>, allowed: &ScopeSet) -> Result<ScopeSet, GrantError> {
    match requested {
        None | Some("") => Ok(allowed.clone()),
        Some(text) => {
            let requested = ScopeSet::parse(text)
                .map_err(|error| oauth(ErrorCode::InvalidScope, error.to_string()))?;
            if !requested.is_subset_of(allowed) {
                let missing: Vec<&str> = requested.missing_from(allowed).collect();
                return Err(oauth(
                    ErrorCode::InvalidScope,
                    format!("scope not allowed: {}", missing.join(" ")),
                ));
            }
            Ok(requested)
        }
    }
}

/// Signs an access token. Writes nothing anywhere.
pub fn mint_access_token(
    state: &AppState,
    subject: &str,
    client_id: &str,
    audience: &str,
    scope: &ScopeSet,
    auth_time: Option<i64>,
) -> Result<(String, IssuedAccessToken), GrantError> {
    let snapshot = state.keys.snapshot();
    let signer = snapshot.signer.as_ref().ok_or(GrantError::NoSigningKey)?;
    let now = state.clock.now();
    let claims = AccessTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: subject.to_owned(),
        aud: Audience::One(audience.to_owned()),
        client_id: client_id.to_owned(),
        scope: scope.clone(),
        iat: now,
        exp: now + state.settings.access_token_ttl,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        auth_time,
    };
    let token = token::issue(&claims, signer).map_err(|_| GrantError::Signing)?;
    Ok((
        token,
        IssuedAccessToken {
            jti: claims.jti,
            expires_at: claims.exp,
        },
    ))
}

fn token_response(
    state: &AppState,
    access_token: String,
    scope: &ScopeSet,
    refresh_token: Option<String>,
    grant: GrantType,
) -> TokenResponse {
    metrics::counter!("auth_tokens_issued_total", "grant" => grant.as_str()).increment(1);
    TokenResponse {
        access_token,
        token_type: TokenType::Bearer,
        expires_in: u64::try_from(state.settings.access_token_ttl).unwrap_or(0),
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        refresh_token,
    }
}

/// RFC 6749 §4.4: the client acts for itself. No refresh token; nothing stored.
pub fn client_credentials(
    state: &AppState,
    client: &ClientRecord,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, GrantError> {
    let scope = resolve_scope(scope, &client.scope)?;
    let audience = resolve_audience(client, resource, &state.settings.default_audience)?;
    let (access_token, _) = mint_access_token(
        state,
        &client.client_id,
        &client.client_id,
        &audience,
        &scope,
        None,
    )?;
    Ok(token_response(
        state,
        access_token,
        &scope,
        None,
        GrantType::ClientCredentials,
    ))
}

/// Stores a new authorization and its code; returns the code to send to the client.
pub async fn issue_code(
    state: &AppState,
    authorization: Authorization,
    redirect_uri: &str,
    challenge: &CodeChallenge,
) -> Result<OpaqueToken, GrantError> {
    let code = OpaqueToken::try_generate().map_err(|_| GrantError::Signing)?;
    let now = state.clock.now();
    let record = AuthorizationCodeRecord {
        code_digest: code.digest(),
        authorization,
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: challenge.as_str().to_owned(),
        expires_at: now + state.settings.auth_code_ttl,
        used_at: None,
    };
    state.store.create_code(&record, now).await?;
    Ok(code)
}

fn new_refresh_token(
    state: &AppState,
    authorization: Authorization,
    now: i64,
) -> Result<(OpaqueToken, RefreshTokenRecord), GrantError> {
    let token = OpaqueToken::try_generate().map_err(|_| GrantError::Signing)?;
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

/// RFC 6749 §4.1.3 with RFC 7636 §4.6: exchange a code for tokens.
pub async fn exchange_code(
    state: &AppState,
    client: &ClientRecord,
    code: Option<&str>,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, GrantError> {
    let code = code.ok_or_else(|| oauth(ErrorCode::InvalidRequest, "code is required"))?;
    let verifier = code_verifier.ok_or_else(|| {
        oauth(
            ErrorCode::InvalidRequest,
            "code_verifier is required (PKCE)",
        )
    })?;
    let digest = SecretDigest::of(code);
    let invalid = || {
        oauth(
            ErrorCode::InvalidGrant,
            "the authorization code is invalid, expired or already used",
        )
    };
    let record = state.store.find_code(&digest).await?.ok_or_else(invalid)?;
    let grant = &record.authorization;
    // RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
    if grant.client_id != client.client_id {
        return Err(invalid());
    }
    let now = state.clock.now();
    if record.used_at.is_some() {
        // RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a replayed code revokes what it produced.
        state.store.revoke_family(&grant.family_id, now).await?;
        tracing::warn!(target: "audit", event = "code_replay", client_id = %client.client_id, user = %grant.user_id, outcome = "family_revoked", "authorization code used twice");
        return Err(invalid());
    }
    if now >= record.expires_at {
        return Err(invalid());
    }
    if let Some(redirect_uri) = redirect_uri
        && redirect_uri != record.redirect_uri
    {
        return Err(oauth(
            ErrorCode::InvalidGrant,
            "redirect_uri does not match the authorization request",
        ));
    }
    let challenge = CodeChallenge::from_stored(&record.code_challenge)
        .map_err(|_| StoreError::Corrupt("code challenge"))?;
    challenge.verify(verifier).map_err(|_| {
        oauth(
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge",
        )
    })?;
    if let Some(resource) = resource
        && resource != grant.audience
    {
        return Err(oauth(
            ErrorCode::InvalidTarget,
            "resource differs from the authorization request",
        ));
    }
    let (access_token, issued) = mint_access_token(
        state,
        &grant.user_id,
        &client.client_id,
        &grant.audience,
        &grant.scope,
        Some(grant.auth_time),
    )?;
    let refresh = if client.allows(GrantType::RefreshToken) {
        Some(new_refresh_token(state, grant.clone(), now)?)
    } else {
        None
    };
    match state
        .store
        .exchange_code(
            &digest,
            &grant.family_id,
            now,
            &issued,
            refresh.as_ref().map(|(_, record)| record),
        )
        .await?
    {
        CodeExchange::Exchanged => {}
        CodeExchange::AlreadyUsed => {
            state.store.revoke_family(&grant.family_id, now).await?;
            tracing::warn!(target: "audit", event = "code_replay", client_id = %client.client_id, user = %grant.user_id, outcome = "family_revoked", "authorization code used concurrently");
            return Err(invalid());
        }
    }
    Ok(token_response(
        state,
        access_token,
        &grant.scope,
        refresh.map(|(token, _)| token.into_string()),
        GrantType::AuthorizationCode,
    ))
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a new refresh token every time, reuse revokes the family.
pub async fn refresh(
    state: &AppState,
    client: &ClientRecord,
    refresh_token: Option<&str>,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, GrantError> {
    let presented = refresh_token
        .ok_or_else(|| oauth(ErrorCode::InvalidRequest, "refresh_token is required"))?;
    let digest = SecretDigest::of(presented);
    let invalid = || {
        oauth(
            ErrorCode::InvalidGrant,
            "the refresh token is invalid, expired or revoked",
        )
    };
    let record = state
        .store
        .find_refresh_token(&digest)
        .await?
        .ok_or_else(invalid)?;
    let grant = &record.authorization;
    // Bound to its client (RFC 6749 §6): another client's token is simply invalid here.
    if grant.client_id != client.client_id {
        return Err(invalid());
    }
    let now = state.clock.now();
    if record.family_revoked || now >= record.expires_at {
        return Err(invalid());
    }
    if record.used_at.is_some() {
        state.store.revoke_family(&grant.family_id, now).await?;
        tracing::warn!(target: "audit", event = "refresh_token_reuse", client_id = %client.client_id, user = %grant.user_id, outcome = "family_revoked", "rotated refresh token presented again");
        return Err(invalid());
    }
    // RFC 6749 §6: the scope may be narrowed, never widened.
    let narrowed = resolve_scope(scope, &grant.scope)?;
    if let Some(resource) = resource
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
        &grant.user_id,
        &client.client_id,
        &grant.audience,
        &narrowed,
        Some(grant.auth_time),
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
            tracing::warn!(target: "audit", event = "refresh_token_reuse", client_id = %client.client_id, user = %grant.user_id, outcome = "family_revoked", "refresh token used concurrently");
            Err(invalid())
        }
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
pub async fn introspect(
    state: &AppState,
    token: &str,
) -> Result<IntrospectionResponse, GrantError> {
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

/// RFC 7009 §2.1: revoke a token of the calling client. Unknown tokens and other clients' tokens are
/// answered like success (§2.2), without effect.
pub async fn revoke(
    state: &AppState,
    client: &ClientRecord,
    token: &str,
) -> Result<(), GrantError> {
    let now = state.clock.now();
    if looks_like_jwt(token) {
        if let Some(claims) = verify_own_token(state, token)
            && claims.client_id == client.client_id
        {
            state
                .store
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
            tracing::info!(target: "audit", event = "revocation", client_id = %client.client_id, user = %claims.sub, token_type = "access_token", outcome = "revoked", "access token revoked");
        }
        return Ok(());
    }
    if let Some(record) = state
        .store
        .find_refresh_token(&SecretDigest::of(token))
        .await?
        && record.authorization.client_id == client.client_id
    {
        state
            .store
            .revoke_family(&record.authorization.family_id, now)
            .await?;
        tracing::info!(target: "audit", event = "revocation", client_id = %client.client_id, user = %record.authorization.user_id, token_type = "refresh_token", outcome = "family_revoked", "refresh token family revoked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(audiences: &[&str]) -> ClientRecord {
        ClientRecord {
            client_id: "c".into(),
            secret_digest: None,
            is_public: false,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: "read write".parse().unwrap(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            skip_consent: false,
        }
    }

    fn code(error: GrantError) -> ErrorCode {
        match error {
            GrantError::OAuth { code, .. } => code,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn audience_resolution_follows_rfc8707() {
        let registered = client(&["https://api.example/", "resource-api"]);
        assert_eq!(
            resolve_audience(&registered, None, "default").unwrap(),
            "https://api.example/"
        );
        assert_eq!(
            resolve_audience(&client(&[]), None, "default").unwrap(),
            "default"
        );
        assert_eq!(
            resolve_audience(&registered, Some("https://api.example/"), "d").unwrap(),
            "https://api.example/"
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("resource-api"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("https://other.example/"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code(resolve_audience(&registered, Some("https://api.example/#f"), "d").unwrap_err()),
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn scope_resolution_allows_subsets_only() {
        let allowed: ScopeSet = "read write".parse().unwrap();
        assert_eq!(resolve_scope(None, &allowed).unwrap(), allowed);
        assert_eq!(resolve_scope(Some(""), &allowed).unwrap(), allowed);
        assert_eq!(
            resolve_scope(Some("read"), &allowed).unwrap().to_string(),
            "read"
        );
        assert_eq!(
            code(resolve_scope(Some("read admin"), &allowed).unwrap_err()),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            code(resolve_scope(Some("read  write"), &allowed).unwrap_err()),
            ErrorCode::InvalidScope
        );
    }
}
