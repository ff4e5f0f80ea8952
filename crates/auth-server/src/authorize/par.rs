//! Pushed authorization requests (RFC 9126): a client sends its authorization parameters to `POST /par`
//! over its authenticated back channel, they are validated as /authorize would validate them, and it gets a
//! one-time `request_uri` to send the browser with instead.

use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::wire::ErrorCode;
use serde::Serialize;

use super::request::{Origin, REQUEST_URI_PREFIX, bind};
use crate::clients::authentication::AuthenticatedClient;
use crate::error::{Result, invalid_request, oauth};
use crate::params::Params;
use crate::state::AppState;
use crate::store::PushedRequest;
use crate::tokens::dpop::{ProofCheck, check_proof, invalid_proof};

/// How long a `request_uri` may be used (RFC 9126 §2.2 suggests 5 to 600 seconds).
pub const REQUEST_URI_TTL: i64 = 60;

/// The most bytes of parameters stored for one push: real authorization requests are far smaller, and a
/// public client pushes with no secret, so each push must cost little.
pub const MAX_PUSHED_BYTES: usize = 8 * 1024;

/// The answer of RFC 9126 §2.2.
#[derive(Debug, Clone, Serialize)]
pub struct PushedResponse {
    pub request_uri: String,
    pub expires_in: i64,
}

/// Validates and stores `params` pushed by `caller` (RFC 9126 §2.1): the same checks as /authorize, with
/// errors as JSON; `request_uri` inside a push is refused, and a `client_id` must be the caller's.
///
/// A DPoP proof with the push binds the code to its key (RFC 9449 §10.1), as `dpop_jkt` would; both given,
/// they must agree.
pub async fn push(
    state: &AppState,
    caller: &AuthenticatedClient,
    params: Params,
    proof: Option<&str>,
) -> Result<PushedResponse> {
    let client_id = caller.client.client_id.as_str();
    if params.has("request_uri") {
        return Err(invalid_request("request_uri cannot be pushed"));
    }
    if params.get("client_id")?.is_some_and(|id| id != client_id) {
        return Err(oauth(
            ErrorCode::InvalidRequest,
            "client_id differs from the authenticated client",
        ));
    }
    // Client authentication parameters are not authorization parameters.
    let params = Params::parse(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.pairs().filter(|(name, _)| {
                !matches!(
                    *name,
                    "client_secret" | "client_assertion" | "client_assertion_type"
                )
            }))
            .finish()
            .as_bytes(),
    )
    .with_default("client_id", client_id);
    let params = match proof {
        Some(proof) => {
            let verified = check_proof(state, &ProofCheck::new(proof, "POST", "/par")).await?;
            if params
                .get("dpop_jkt")?
                .is_some_and(|jkt| jkt != verified.jkt.as_str())
            {
                return Err(invalid_proof(
                    "dpop_jkt is not the thumbprint of the proof's key",
                ));
            }
            params.with_default("dpop_jkt", verified.jkt.as_str())
        }
        None => params,
    };
    // Validated as a pushed request, so `--require-par` is satisfied by this very push.
    bind(state, &params)
        .await
        .map_err(|refusal| refusal.into_error())?
        .validate(state, &params, Origin::BeingPushed)
        .await
        .map_err(|refusal| refusal.into_error())?;
    let encoded = params.encode();
    if encoded.len() > MAX_PUSHED_BYTES {
        return Err(invalid_request(
            "the pushed parameters are larger than 8 KiB",
        ));
    }
    let token = OpaqueToken::try_generate()?;
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", token.as_str());
    let now = state.clock.now();
    state
        .store
        .push_request(
            &SecretDigest::of(&request_uri),
            &PushedRequest {
                client_id: caller.client.client_id.clone(),
                params: encoded,
                expires_at: now + REQUEST_URI_TTL,
                consumed_at: None,
            },
            // Expired pushes go at once (they can never be used), not with the periodic purge: pushing
            // costs a public client nothing, so rows must not pile up.
            now - REQUEST_URI_TTL,
        )
        .await?;
    Ok(PushedResponse {
        request_uri,
        expires_in: REQUEST_URI_TTL,
    })
}
