//! DPoP at this server (RFC 9449): a proof sent to /token, /par or /userinfo, checked under the one proof
//! policy of `auth_core::dpop` against that request, its `jti` used once across every replica, and the
//! server's nonces. The resource-server side (a proof with each use of a token) is auth-bearer's.

use auth_core::dpop::{ProofContext, ProofError, VerifiedProof, verify_proof};
use auth_core::id::Jkt;
use auth_core::secret::SecretDigest;
use auth_core::wire::ErrorCode;

use crate::error::{Error, Result, oauth};
use crate::state::AppState;
use crate::store::ClientRecord;

/// `invalid_dpop_proof` (RFC 9449 §5.4, §7.1), with what was wrong.
pub fn invalid_proof(description: impl Into<String>) -> Error {
    oauth(ErrorCode::InvalidDpopProof, description)
}

/// A proof as a request to this server presented it, and what it must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofCheck<'a> {
    /// The `DPoP` header.
    pub proof: &'a str,
    /// The request's method (`htm`).
    pub method: &'a str,
    /// This server's path the request came to (`htu` is the issuer's base URL and this).
    pub path: &'a str,
    /// At /userinfo, the access token presented with the proof (`ath`).
    pub access_token: Option<&'a str>,
    /// The key the token is bound to, when it is.
    pub bound_to: Option<&'a Jkt>,
}

impl<'a> ProofCheck<'a> {
    /// A proof of a token or pushed-authorization request: no access token, no binding yet.
    pub fn new(proof: &'a str, method: &'a str, path: &'a str) -> Self {
        Self {
            proof,
            method,
            path,
            access_token: None,
            bound_to: None,
        }
    }
}

/// Checks a proof: every RFC 9449 §4.3 check and the nonce when `--dpop-nonce` requires one. Returns the
/// proof with its key's thumbprint. Its `jti` is not recorded here: [`record_use`] does that once the request
/// it came with has succeeded, so a failed request writes nothing (a made-up refresh token with a fresh
/// self-made proof must not cost a row).
pub fn verify(state: &AppState, check: &ProofCheck<'_>) -> Result<VerifiedProof> {
    let now = state.clock.now();
    let uri = format!("{}{}", state.settings.base_url, check.path);
    let verified = verify_proof(
        check.proof,
        &ProofContext {
            method: check.method,
            uri: &uri,
            now,
            access_token: check.access_token,
            bound_to: check.bound_to,
            nonces: state.dpop_nonces.as_ref(),
        },
    )
    .map_err(|error| match error {
        // RFC 9449 §8: the client is told to retry with the nonce, before the jti is spent.
        ProofError::UseNonce(nonce) => Error::UseDpopNonce(nonce),
        other => invalid_proof(other.to_string()),
    })?;
    Ok(verified)
}

/// Records a verified proof's `jti` as used (RFC 9449 §11.1): at any replica, a second use is refused.
pub async fn record_use(state: &AppState, verified: &VerifiedProof) -> Result<()> {
    let digest = SecretDigest::of(&format!("dpop\u{0}{}\u{0}{}", verified.jkt, verified.jti));
    if state
        .jtis
        .first_use(digest, verified.remember_until())
        .await?
    {
        Ok(())
    } else {
        Err(invalid_proof("the proof's jti was used before"))
    }
}

/// The proof of a token request (RFC 9449 §5), verified but not yet recorded: `None` when the client sent
/// none and may do without. A client registered with `--require-dpop` must send one.
pub fn token_request_proof(
    state: &AppState,
    client: &ClientRecord,
    proof: Option<&str>,
) -> Result<Option<VerifiedProof>> {
    match proof {
        Some(proof) => Ok(Some(verify(
            state,
            &ProofCheck::new(proof, "POST", "/token"),
        )?)),
        None if client.require_dpop => Err(invalid_proof(
            "this client must send a DPoP proof with every token request",
        )),
        None => Ok(None),
    }
}
