//! DPoP at this server (RFC 9449): the proof sent with a token request, checked against that request, its
//! `jti` used once across every replica, and the server's nonces. The resource-server side (a proof with
//! each use of a token) is auth-bearer's, and /userinfo's here.

use auth_core::dpop::{IAT_WINDOW, ProofContext, VerifiedProof, verify_proof};
use auth_core::secret::SecretDigest;
use auth_core::wire::ErrorCode;

use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::ClientRecord;

/// `invalid_dpop_proof` (RFC 9449 §5.4, §7.1), with what was wrong.
pub fn invalid_proof(description: impl Into<String>) -> Error {
    oauth(ErrorCode::InvalidDpopProof, description)
}

/// Checks a proof made for `method` on this server's `path` (and, at a protected resource, for the access
/// token presented with it): every RFC 9449 §4.3 check, the nonce when `--dpop-nonce` requires one, and the
/// `jti` recorded as used (a second use, at any replica, is refused). Returns the proof with its key's
/// thumbprint.
pub async fn check_proof(
    state: &AppState,
    proof: &str,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<VerifiedProof> {
    let now = state.clock.now();
    let uri = format!("{}{path}", state.settings.base_url);
    let verified = verify_proof(
        proof,
        &ProofContext {
            method,
            uri: &uri,
            now,
            access_token,
        },
    )
    .map_err(|error| invalid_proof(error.to_string()))?;
    // RFC 9449 §8: without the current nonce the client is told to retry with it, before the jti is spent.
    if let Some(nonces) = &state.dpop_nonces
        && !verified
            .nonce
            .as_deref()
            .is_some_and(|nonce| nonces.accepts(nonce, now))
    {
        return Err(Error::UseDpopNonce(nonces.current(now)));
    }
    // §11.1: a proof is accepted while its iat is within the window of now, so its jti is remembered until
    // the last moment it could still be accepted.
    let digest = SecretDigest::of(&format!("dpop\u{0}{}\u{0}{}", verified.jkt, verified.jti));
    if !state
        .jtis
        .first_use(digest, verified.iat + IAT_WINDOW + 1)
        .await?
    {
        return Err(invalid_proof("the proof's jti was used before"));
    }
    Ok(verified)
}

/// The proof of a token request (RFC 9449 §5): `None` when the client sent none and may do without. A
/// client registered with `--require-dpop` must send one.
pub async fn token_request_proof(
    state: &AppState,
    client: &ClientRecord,
    proof: Option<&str>,
) -> Result<Option<VerifiedProof>> {
    match proof {
        Some(proof) => Ok(Some(
            check_proof(state, proof, "POST", "/token", None).await?,
        )),
        None if client.require_dpop => Err(invalid_proof(
            "this client must send a DPoP proof with every token request",
        )),
        None => Ok(None),
    }
}
