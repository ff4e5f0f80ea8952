//! Pushed authorization requests (RFC 9126): a client sends its authorization parameters to `POST /par`
//! over its back channel, they are validated as /authorize would validate them, and it gets a one-time
//! `request_uri` to send the browser with instead.
//!
//! A public client pushes with nothing but its id, so every push must cost the server little and be bounded
//! (docs/security.md): only the parameters /authorize uses are stored, at most 4 KiB of them; a public client
//! pushes at most 30 times a minute from one source; at most 100,000 unexpired pushes exist in all; and a
//! refused push stores nothing, not even its DPoP proof's `jti`.

use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::wire::ErrorCode;
use serde::Serialize;

use super::request::{Origin, REQUEST_FIELDS, REQUEST_URI_PREFIX, bind};
use crate::clients::authentication::{AuthMethod, AuthenticatedClient};
use crate::error::{Error, Result, invalid_request, oauth};
use crate::params::Params;
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::PushedRequest;
use crate::tokens::dpop::{ProofCheck, invalid_proof, record_use, verify};

/// How long a `request_uri` may wait for its first use (RFC 9126 §2.2 suggests 5 to 600 seconds).
pub const REQUEST_URI_TTL: i64 = 60;

/// The most bytes of parameters stored for one push: real authorization requests are far smaller.
pub const MAX_PUSHED_BYTES: usize = 4 * 1024;

/// What a pushed `id_token_hint` too long to store becomes: a hint that verifies as nothing.
const UNREADABLE_HINT: &str = "unreadable";

/// The most unexpired pushes at once, over every client.
pub const MAX_UNEXPIRED_PUSHES: u64 = 100_000;

/// The answer of RFC 9126 §2.2.
#[derive(Debug, Clone, Serialize)]
pub struct PushedResponse {
    pub request_uri: String,
    pub expires_in: i64,
}

/// Validates and stores `params` pushed by `caller` from `source` (RFC 9126 §2.1): the same checks as
/// /authorize, with errors as JSON; `request_uri` inside a push is refused, and a `client_id` must be the
/// caller's.
///
/// A DPoP proof with the push binds the code to its key (RFC 9449 §10.1), as `dpop_jkt` would; both given,
/// they must agree.
pub async fn push(
    state: &AppState,
    caller: &AuthenticatedClient,
    params: Params,
    proof: Option<&str>,
    source: RequestSource,
) -> Result<PushedResponse> {
    let client_id = caller.client.client_id.as_str();
    let now = state.clock.now();
    // Counted before anything is validated: a flood of refused pushes is bounded too.
    if caller.method == AuthMethod::None
        && let Err(retry_after) = state.throttle.count_push(client_id, source.key, now)
    {
        return Err(Error::TooMany { retry_after });
    }
    if params.get("request_uri")?.is_some() {
        return Err(invalid_request("request_uri cannot be pushed"));
    }
    if params.get("client_id")?.is_some_and(|id| id != client_id) {
        return Err(oauth(
            ErrorCode::InvalidRequest,
            "client_id differs from the authenticated client",
        ));
    }
    let params = params.with_default("client_id", client_id);
    let proof = match proof {
        Some(proof) => Some(verify(state, &ProofCheck::new(proof, "POST", "/par"))?),
        None => None,
    };
    let params = match &proof {
        Some(verified) => {
            if params
                .get("dpop_jkt")?
                .is_some_and(|jkt| jkt != verified.jkt.as_str())
            {
                return Err(invalid_proof(
                    "dpop_jkt is not the thumbprint of the proof's key",
                ));
            }
            // An empty `dpop_jkt=` is absent (RFC 6749 §3.1): the proof's key binds the code.
            params.with_value("dpop_jkt", verified.jkt.as_str())
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
    // Only what /authorize reads is kept (client authentication and unknown parameters are dropped): the
    // fields its forms carry, and the `id_token_hint`, read again at each use.
    let fields = params.only(&REQUEST_FIELDS);
    let hint = params.get("id_token_hint")?.filter(|hint| !hint.is_empty());
    let mut encoded = match hint {
        Some(hint) => fields.clone().with_value("id_token_hint", hint).encode(),
        None => fields.encode(),
    };
    // A hint too long to keep is a hint that cannot be read (OpenID Connect Core §3.1.2.1: the request is
    // never refused for it): stored as one that does not verify, it still cannot vouch for prompt=none.
    if encoded.len() > MAX_PUSHED_BYTES && hint.is_some() {
        encoded = fields.with_value("id_token_hint", UNREADABLE_HINT).encode();
    }
    if encoded.len() > MAX_PUSHED_BYTES {
        return Err(invalid_request(
            "the pushed parameters are larger than 4 KiB",
        ));
    }
    if let Some(verified) = &proof {
        record_use(state, verified).await?;
    }
    let token = OpaqueToken::try_generate()?;
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", token.as_str());
    let stored = state
        .store
        .push_request(
            &SecretDigest::of(&request_uri),
            &PushedRequest {
                client_id: caller.client.client_id.clone(),
                params: encoded,
                expires_at: now + REQUEST_URI_TTL,
                consumed_at: None,
                browser: None,
            },
            now,
            MAX_UNEXPIRED_PUSHES,
        )
        .await?;
    if !stored {
        tracing::warn!(
            max = MAX_UNEXPIRED_PUSHES,
            "pushed authorization requests refused: too many unexpired ones"
        );
        return Err(Error::TooMany {
            retry_after: REQUEST_URI_TTL,
        });
    }
    Ok(PushedResponse {
        request_uri,
        expires_in: REQUEST_URI_TTL,
    })
}
