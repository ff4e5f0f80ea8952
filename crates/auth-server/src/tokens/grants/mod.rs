//! The grants of the token endpoint (RFC 6749 §4.1.3, §4.4, §6, RFC 8628 §3.4, RFC 8693 §2), one module each. Handlers parse a
//! [`TokenRequest`] and authenticate the client, then call [`exchange`]; each grant decides what to issue and
//! hands an `IssueRequest` to the one issuer (`tokens::issue`). To add a grant: a module here, a variant
//! of [`TokenRequest`], and its parameters in `http::oauth2::token_request`.

use auth_core::wire::{ErrorCode, GrantType, TokenResponse};

use crate::clients::authentication::{AuthMethod, AuthenticatedClient};
use crate::error::{Result, oauth};
use crate::state::AppState;
use crate::tokens::dpop::{record_use, token_request_proof};

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh;
pub mod token_exchange;

/// A token request, by grant, with the parameters each grant takes.
#[derive(Debug, Clone)]
pub enum TokenRequest<'a> {
    ClientCredentials(client_credentials::Request<'a>),
    AuthorizationCode(authorization_code::Request<'a>),
    RefreshToken(refresh::Request<'a>),
    TokenExchange(token_exchange::Request<'a>),
    DeviceCode(device_code::Request<'a>),
}

impl TokenRequest<'_> {
    /// The `grant_type` of the request.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
            Self::AuthorizationCode(_) => GrantType::AuthorizationCode,
            Self::RefreshToken(_) => GrantType::RefreshToken,
            Self::TokenExchange(_) => GrantType::TokenExchange,
            Self::DeviceCode(_) => GrantType::DeviceCode,
        }
    }
}

/// Runs the grant for an authenticated client.
///
/// `proof` is the request's DPoP header (RFC 9449 §5): when present and valid, the access token is bound to
/// its key.
pub async fn exchange(
    state: &AppState,
    caller: &AuthenticatedClient,
    request: TokenRequest<'_>,
    proof: Option<&str>,
) -> Result<TokenResponse> {
    let client = &caller.client;
    if !client.allows(request.grant_type()) {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for this grant type",
        ));
    }
    // RFC 6749 §4.4, RFC 8693 §2.1: acting for itself or for others needs a client that proves who it is.
    if caller.method == AuthMethod::None
        && matches!(
            request,
            TokenRequest::ClientCredentials(_) | TokenRequest::TokenExchange(_)
        )
    {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "a public client cannot use this grant",
        ));
    }
    let proof = token_request_proof(state, client, proof)?;
    let request_kind = request.grant_type();
    let jkt = proof.as_ref().map(|proof| proof.jkt.clone());
    let response = match request {
        TokenRequest::ClientCredentials(request) => {
            client_credentials::grant(state, client, request, jkt)
        }
        TokenRequest::AuthorizationCode(request) => {
            authorization_code::grant(state, client, request, jkt).await
        }
        TokenRequest::RefreshToken(request) => refresh::grant(state, client, request, jkt).await,
        TokenRequest::TokenExchange(request) => {
            token_exchange::grant(state, client, request, jkt).await
        }
        // The device grant spends the proof itself, just before the code (RFC 8628 §3.5 polls are many, the
        // redemption one): a replayed proof spends no device code.
        TokenRequest::DeviceCode(request) => {
            device_code::grant(state, client, request, proof.as_ref()).await
        }
    }?;
    // The proof's jti is spent only by a request that succeeded (a refused one writes nothing); a replayed
    // proof is refused here, and the tokens just signed are never sent.
    if let Some(proof) = &proof
        && !matches!(request_kind, GrantType::DeviceCode)
    {
        record_use(state, proof).await?;
    }
    crate::clients::registrar::note_issuance(state, client).await;
    Ok(response)
}
