//! RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a new refresh token every time, and a used one presented
//! again revokes its whole family.

use auth_core::id::Jkt;
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::token::Audience;
use auth_core::wire::{ErrorCode, GrantType, TokenResponse};
use service_kit::telemetry::untrusted;

use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::{Authorization, ClientRecord, RefreshTokenRecord, Rotation, RotationOutcome};
use crate::tokens::dpop::invalid_proof;
use crate::tokens::issue::{IdTokenDue, IssueRequest, Issuer, Subject};
use crate::tokens::openid::is_openid;
use crate::tokens::rules::{resolve_scope, same_resource};

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
    dpop_jkt: Option<Jkt>,
) -> Result<(OpaqueToken, RefreshTokenRecord)> {
    let token = OpaqueToken::try_generate()?;
    let record = RefreshTokenRecord {
        token_digest: token.digest(),
        authorization,
        created_at: now,
        expires_at: now + state.settings.refresh_token_ttl,
        used_at: None,
        family_revoked: false,
        family_created_at: now,
        dpop_jkt,
    };
    Ok((token, record))
}

/// The refresh token a user grant's first tokens come with, when the client may refresh (RFC 6749 §6). RFC
/// 9449 §5: a public client's is bound to its proof key (a confidential client's is bound to the client by its
/// authentication already).
pub(super) fn first_refresh_token(
    state: &AppState,
    client: &ClientRecord,
    authorization: &Authorization,
    now: i64,
    jkt: Option<&Jkt>,
) -> Result<Option<(OpaqueToken, RefreshTokenRecord)>> {
    if !client.allows(GrantType::RefreshToken) {
        return Ok(None);
    }
    let bound = if client.is_public { jkt.cloned() } else { None };
    new_refresh_token(state, authorization.clone(), now, bound).map(Some)
}

fn invalid_refresh_token() -> Error {
    oauth(
        ErrorCode::InvalidGrant,
        "the refresh token is invalid, expired or revoked",
    )
}

/// Revokes the family of a refresh token presented after it was used, with its audit line.
async fn revoke_on_reuse(
    state: &AppState,
    client: &ClientRecord,
    grant: &Authorization,
    now: i64,
) -> Result<()> {
    state.store.revoke_family(&grant.family_id, now).await?;
    tracing::warn!(target: "audit", event = "refresh_token_reuse", client_id = &*untrusted(client.client_id.as_str()), user = grant.user_id.as_str(), outcome = "family_revoked", "rotated refresh token presented again");
    Ok(())
}

/// Rotates a refresh token: new access and refresh tokens, the presented one used up. The happy path is one
/// store call (on PostgreSQL one statement): the checks are conditions of the rotation itself, and only when
/// it refuses is the token as found examined to answer why.
pub async fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    jkt: Option<Jkt>,
) -> Result<TokenResponse> {
    // A narrower scope (RFC 6749 §6) must be well formed before anything is touched.
    let asked = match request.scope {
        None | Some("") => None,
        Some(text) => Some(
            ScopeSet::parse(text)
                .map_err(|error| oauth(ErrorCode::InvalidScope, error.to_string()))?,
        ),
    };
    // Before the rotation: a replica that cannot sign must not use the token up (the client's retry would
    // then look like reuse and revoke its family).
    let issuer = Issuer::ready(state, client)?;
    let now = state.clock.now();
    let (new_token, new_digest) = {
        let token = OpaqueToken::try_generate()?;
        let digest = token.digest();
        (token, digest)
    };
    let outcome = state
        .store
        .rotate_refresh_token(&Rotation {
            presented: &SecretDigest::of(request.refresh_token),
            client_id: &client.client_id,
            now,
            scope: asked.as_ref(),
            resource: request.resource,
            jkt: jkt.as_ref(),
            family_created_after: now - state.settings.refresh_family_max_age,
            new_digest: &new_digest,
            new_expires_at: now + state.settings.refresh_token_ttl,
        })
        .await?;
    let grant = match outcome {
        RotationOutcome::Rotated(grant) => grant,
        RotationOutcome::Refused(found) => {
            return Err(refusal(state, client, &request, jkt.as_ref(), found, now).await);
        }
    };
    // The new access token may be narrower; the new refresh token kept the presented one's scope, so
    // narrowing once does not narrow the grant for good.
    let scope = asked.unwrap_or_else(|| grant.scope.clone());
    issuer.issue(
        state,
        IssueRequest {
            grant: GrantType::RefreshToken,
            client,
            subject: Subject::User {
                user_id: grant.user_id.clone(),
                auth_time: grant.auth_time,
            },
            scope,
            audience: Audience::One(grant.audience.clone()),
            family: Some(grant.family_id.clone()),
            cnf: jkt,
            // OpenID Connect Core §12.2: a new ID token for an `openid` grant, the same user and auth_time,
            // no nonce.
            id_token: is_openid(&grant.scope).then(|| IdTokenDue {
                nonce: None,
                sid: grant.sid.clone(),
            }),
            refresh_token: Some(new_token),
            act: None,
            expires_at: None,
        },
    )
}

/// Why a rotation was refused, from the token as it was found. A token that was already used (or that a
/// concurrent request used first: a race and a theft look the same) revokes its family (RFC 9700 §4.14.2).
async fn refusal(
    state: &AppState,
    client: &ClientRecord,
    request: &Request<'_>,
    jkt: Option<&Jkt>,
    found: Option<RefreshTokenRecord>,
    now: i64,
) -> Error {
    let Some(record) = found else {
        return invalid_refresh_token();
    };
    let grant = &record.authorization;
    // Bound to its client (RFC 6749 §6): another client's token is simply invalid here. A family past its
    // absolute lifetime ends however recently its token was rotated.
    if grant.client_id != client.client_id
        || record.family_revoked
        || now >= record.expires_at
        || record.family_created_at <= now - state.settings.refresh_family_max_age
    {
        return invalid_refresh_token();
    }
    // RFC 9449 §5: a bound token is used only with a proof by its key. Without it nothing happens, used or
    // not: a thief without the key spends nothing and cannot trigger the family's revocation either.
    if let Some(bound) = &record.dpop_jkt
        && Some(bound) != jkt
    {
        return invalid_proof("the refresh token is bound to another DPoP key (or needs a proof)");
    }
    if record.used_at.is_none() {
        // Live, so one of the request's own conditions failed: the token stays usable.
        if let Err(error) = resolve_scope(request.scope, &grant.scope) {
            return error;
        }
        if let Some(resource) = request.resource
            && !same_resource(&grant.audience, resource)
        {
            return oauth(
                ErrorCode::InvalidTarget,
                "resource differs from the original authorization",
            );
        }
    }
    // Used before, or used by a concurrent request between the read and the write.
    match revoke_on_reuse(state, client, grant, now).await {
        Ok(()) => invalid_refresh_token(),
        Err(error) => error,
    }
}
