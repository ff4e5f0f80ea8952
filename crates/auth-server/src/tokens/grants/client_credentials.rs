//! RFC 6749 §4.4: the client acts for itself. No refresh token, nothing stored. The OpenID Connect scopes
//! (`openid`, `profile`, `email`) describe a user, so they are never granted here.

use auth_core::scope::ScopeSet;
use auth_core::wire::{GrantType, TokenResponse};

use super::{resolve_audience, resolve_scope};
use crate::error::Result;
use crate::state::AppState;
use crate::store::ClientRecord;
use crate::tokens::{AccessTokenGrant, current_signer, mint_access_token, token_response};

/// The parameters of a client_credentials request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub scope: Option<&'a str>,
    /// RFC 8707 resource indicator.
    pub resource: Option<&'a str>,
}

/// Issues an access token whose subject is the client.
pub fn grant(
    state: &AppState,
    client: &ClientRecord,
    request: Request<'_>,
    jkt: Option<&str>,
) -> Result<TokenResponse> {
    let own_scope = ScopeSet::from_tokens(
        client
            .scope
            .iter()
            .filter(|scope| !crate::openid::USER_SCOPES.contains(scope)),
    )
    .map_err(|_| crate::store::StoreError::Corrupt("client scope"))?;
    let scope = resolve_scope(request.scope, &own_scope)?;
    let audience = resolve_audience(client, request.resource, &state.settings.default_audience)?;
    let access_token = mint_access_token(
        state,
        &*current_signer(state)?,
        AccessTokenGrant {
            subject: &client.client_id,
            client_id: &client.client_id,
            audience: &audience,
            scope: &scope,
            auth_time: None,
            family_id: None,
            jkt,
        },
    )?;
    Ok(token_response(
        state,
        access_token,
        &scope,
        None,
        None,
        GrantType::ClientCredentials,
        jkt,
    ))
}
