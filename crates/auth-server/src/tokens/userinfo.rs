//! UserInfo (OpenID Connect Core §5.3): the claims about the user of an access token of this issuer,
//! presented as a Bearer token or with DPoP. The handlers in `http::userinfo` only map this to HTTP.

use auth_core::id::Jkt;

use super::access::{OwnAccessToken, read_own_access_token};
use super::dpop::{ProofCheck, invalid_proof, record_use, verify};
use super::openid::{UserInfo, is_openid};
use crate::error::Error;
use crate::state::AppState;

/// Why UserInfo refuses (RFC 6750 §3.1).
#[derive(Debug)]
pub enum UserInfoRefusal {
    /// Not an unexpired, unrevoked access token of this issuer, or its user is gone: 401 `invalid_token`.
    InvalidToken,
    /// A DPoP-bound token sent as a bearer token, or an unbound one with the DPoP scheme: 401 `invalid_token`
    /// with a DPoP challenge (RFC 9449 §7.1).
    WrongScheme,
    /// The token lacks scope `openid`: 403 `insufficient_scope`.
    InsufficientScope,
    /// The DPoP proof of a bound token is missing, invalid or replayed (`invalid_dpop_proof`), or lacks the
    /// nonce (`Error::UseDpopNonce`): 401 with a DPoP challenge (RFC 9449 §7.1).
    Proof(Error),
    /// The store failed.
    Failed(Error),
}

/// How the access token came (RFC 6750 §2, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub enum Presentation<'a> {
    /// As a bearer token.
    Bearer,
    /// With the DPoP scheme and this proof (`None`: no `DPoP` header), for this method.
    Dpop {
        proof: Option<&'a str>,
        method: &'a str,
    },
}

impl From<Error> for UserInfoRefusal {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// The claims about the user of `token`: any access token of this issuer carrying `openid`, whatever its
/// audience (Core §5.3), unexpired and unrevoked (the same rules as introspection).
pub async fn userinfo(
    state: &AppState,
    token: &str,
    presentation: Presentation<'_>,
) -> std::result::Result<UserInfo, UserInfoRefusal> {
    let Some(OwnAccessToken { claims, active }) = read_own_access_token(state, token).await? else {
        return Err(UserInfoRefusal::InvalidToken);
    };
    if !active || claims.auth_time.is_none() {
        // Revoked, or a client's own token (client_credentials has no user).
        return Err(UserInfoRefusal::InvalidToken);
    }
    let proof = match (presentation, &claims.cnf) {
        (Presentation::Bearer, None) => None,
        // RFC 9449 §7.2: a bound token is never a bearer token; an unbound one is not presented as DPoP.
        (Presentation::Bearer, Some(_)) | (Presentation::Dpop { .. }, None) => {
            return Err(UserInfoRefusal::WrongScheme);
        }
        (Presentation::Dpop { proof, method }, Some(cnf)) => {
            let proof = proof.ok_or_else(|| {
                UserInfoRefusal::Proof(invalid_proof("the DPoP scheme needs a DPoP proof header"))
            })?;
            // The proof policy compares the proof's key with the one the token is bound to.
            let bound_to: &Jkt = &cnf.jkt;
            let verified = verify(
                state,
                &ProofCheck {
                    proof,
                    method,
                    path: "/userinfo",
                    access_token: Some(token),
                    bound_to: Some(bound_to),
                },
            )
            .map_err(UserInfoRefusal::Proof)?;
            Some(verified)
        }
    };
    if !is_openid(&claims.scope) {
        return Err(UserInfoRefusal::InsufficientScope);
    }
    let user = state
        .store
        .find_user(&auth_core::id::UserId::from_trusted(claims.sub.clone()))
        .await
        .map_err(Error::from)?
        .ok_or(UserInfoRefusal::InvalidToken)?;
    // Spent only by a request that is answered.
    if let Some(verified) = &proof {
        record_use(state, verified)
            .await
            .map_err(|error| match error {
                Error::Store(_) => UserInfoRefusal::Failed(error),
                other => UserInfoRefusal::Proof(other),
            })?;
    }
    Ok(UserInfo::of(user, &claims.scope))
}
