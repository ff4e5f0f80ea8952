//! RFC 8628 §3.4–§3.5: the device polls with its device code until the user answered at `/device`
//! (`authorize::device`). While pending it hears `authorization_pending`, or `slow_down` when it polls too
//! soon (its interval then grows 5 s for good); after a denial `access_denied`; after expiry
//! `expired_token`; once approved, the tokens, exactly once under concurrency (the same atomic,
//! family-conditional step as a code's), then `invalid_grant`.

use auth_core::dpop::VerifiedProof;
use auth_core::secret::SecretDigest;
use auth_core::token::Audience;
use auth_core::wire::{ErrorCode, GrantType, TokenResponse};

use super::refresh::first_refresh_token;
use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::{ClientRecord, Consumption, Poll};
use crate::tokens::dpop::record_use;
use crate::tokens::issue::{IdTokenDue, IssueRequest, Issuer, Subject};
use crate::tokens::openid::is_openid;

/// The parameters of a device_code request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub device_code: &'a str,
}

fn invalid_code() -> Error {
    oauth(
        ErrorCode::InvalidGrant,
        "the device code is invalid or was already used",
    )
}

/// Answers one poll.
pub async fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    proof: Option<&VerifiedProof>,
) -> Result<TokenResponse> {
    let jkt = proof.map(|proof| proof.jkt.clone());
    let digest = SecretDigest::of(request.device_code);
    let mut record = state
        .store
        .find_device_authorization(&digest)
        .await?
        .ok_or_else(invalid_code)?;
    // RFC 8628 §3.4: the device code was issued to this client.
    if record.client_id != client.client_id || record.used {
        return Err(invalid_code());
    }
    let now = state.clock.now();
    if now >= record.expires_at {
        return Err(oauth(ErrorCode::ExpiredToken, "the device code expired"));
    }
    if record.denied {
        return Err(oauth(
            ErrorCode::AccessDenied,
            "the user denied the request",
        ));
    }
    if record.approved.is_none() {
        match state.store.poll_device_code(&digest, now).await? {
            Poll::Pending => {
                return Err(oauth(
                    ErrorCode::AuthorizationPending,
                    "the user has not answered yet",
                ));
            }
            Poll::SlowDown => {
                return Err(oauth(
                    ErrorCode::SlowDown,
                    "polling too often: wait 5 seconds more between polls",
                ));
            }
            // Answered between the read and the poll: read it again.
            Poll::Decided => {
                record = state
                    .store
                    .find_device_authorization(&digest)
                    .await?
                    .ok_or_else(invalid_code)?;
                if record.denied {
                    return Err(oauth(
                        ErrorCode::AccessDenied,
                        "the user denied the request",
                    ));
                }
                if now >= record.expires_at {
                    return Err(oauth(ErrorCode::ExpiredToken, "the device code expired"));
                }
            }
        }
    }
    let Some(grant) = record.approved.clone() else {
        return Err(invalid_code());
    };
    let issuer = Issuer::ready(state, client)?;
    let refresh = first_refresh_token(state, client, &grant, now, jkt.as_ref())?;
    let (refresh_token, refresh_record) = refresh.unzip();
    // Signed before the code is spent; a poll that loses the race below never sends them.
    let response = issuer.issue(
        state,
        IssueRequest {
            grant: GrantType::DeviceCode,
            client,
            subject: Subject::User {
                user_id: grant.user_id.clone(),
                auth_time: grant.auth_time,
            },
            scope: grant.scope.clone(),
            audience: Audience::One(grant.audience.clone()),
            family: Some(grant.family_id.clone()),
            cnf: jkt,
            // The approving session's `sid`; there was no authorization request, so no `nonce`.
            id_token: is_openid(&grant.scope).then(|| IdTokenDue {
                nonce: None,
                sid: grant.sid.clone(),
            }),
            refresh_token,
            act: None,
            expires_at: None,
        },
    )?;
    // The proof is spent before the code: a replayed proof is refused with the code still unspent.
    if let Some(proof) = proof {
        record_use(state, proof).await?;
    }
    match state
        .store
        .redeem_device_code(&record, now, refresh_record.as_ref())
        .await?
    {
        Consumption::Consumed => Ok(response),
        Consumption::Refused => Err(invalid_code()),
    }
}
